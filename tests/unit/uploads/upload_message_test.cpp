#include "uploads/upload_message.hpp"

#include <gtest/gtest.h>

namespace sg::uploads {
namespace {

using Kind = UploadMessage::Kind;

TEST(UploadMessage, ParsesAFullStart) {
  const auto m = parse_upload_message(
      R"({"type":"start","filename":"a.pdf","size":123,"contentType":"application/pdf",)"
      R"("sha256":"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"})");
  ASSERT_EQ(m.kind, Kind::kStart) << m.message;
  EXPECT_EQ(m.start.filename, "a.pdf");
  EXPECT_EQ(m.start.content_type, "application/pdf");
  EXPECT_EQ(m.start.size, 123u);
  ASSERT_TRUE(m.start.sha256);
  EXPECT_EQ(upload::to_hex(*m.start.sha256),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(UploadMessage, StartNeedsOnlyAWholeNumberSize) {
  const auto m = parse_upload_message(R"({"type":"start","size":0,"filename":null})");
  ASSERT_EQ(m.kind, Kind::kStart);
  EXPECT_EQ(m.start.size, 0u);
  EXPECT_FALSE(m.start.sha256);
  EXPECT_EQ(parse_upload_message(R"({"type":"start","size":18446744073709551615})").start.size,
            18446744073709551615ull);
}

TEST(UploadMessage, RefusesBadStarts) {
  for (const char* text : {
           R"({"type":"start"})",
           R"({"type":"start","size":-1})",
           R"({"type":"start","size":1.5})",
           R"({"type":"start","size":"10"})",
           R"({"type":"start","size":1,"filename":3})",
           R"({"type":"start","size":1,"contentType":{}})",
           R"({"type":"start","size":1,"sha256":"abc"})",
           R"({"type":"start","size":1,"sha256":7})",
       }) {
    const auto m = parse_upload_message(text);
    EXPECT_EQ(m.kind, Kind::kInvalid) << text;
    EXPECT_EQ(m.error, "bad_request") << text;
    EXPECT_FALSE(m.message.empty());
  }
}

TEST(UploadMessage, ParsesResumeAndPing) {
  const auto r = parse_upload_message(R"({"type":"resume","uploadId":"abc"})");
  ASSERT_EQ(r.kind, Kind::kResume);
  EXPECT_EQ(r.upload_id, "abc");
  EXPECT_EQ(parse_upload_message(R"({"type":"ping"})").kind, Kind::kPing);
  EXPECT_EQ(parse_upload_message(R"({"type":"resume"})").error, "bad_request");
  EXPECT_EQ(parse_upload_message(R"({"type":"resume","uploadId":""})").error, "bad_request");
  EXPECT_EQ(
      parse_upload_message(R"({"type":"resume","uploadId":")" + std::string(65, 'a') + R"("})")
          .error,
      "bad_request");
}

TEST(UploadMessage, NamesNonObjectsAndUnknownTypes) {
  EXPECT_EQ(parse_upload_message("not json").error, "malformed_json");
  EXPECT_EQ(parse_upload_message("[1]").error, "malformed_json");
  EXPECT_EQ(parse_upload_message(R"({"size":1})").error, "unknown_message");
  EXPECT_EQ(parse_upload_message(R"({"type":"upload","size":1})").error, "unknown_message");
}

}  // namespace
}  // namespace sg::uploads
