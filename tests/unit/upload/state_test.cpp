#include "upload/state.hpp"

#include <gtest/gtest.h>

namespace sg::upload {
namespace {

UploadInfo sample() {
  UploadInfo info;
  info.id = "0123456789abcdef0123456789abcdef";
  info.owner = {"456", "alice smith"};
  info.filename = "r\xc3\xa9sum\xc3\xa9\n.pdf";
  info.content_type = "application/pdf";
  info.metadata = {{"filename", std::string("a\0b", 3)}, {"empty", ""}};
  info.size = 1000;
  info.received = 300;
  info.created_at = core::WallClock::time_point(std::chrono::milliseconds(1700000000123));
  info.updated_at = core::WallClock::time_point(std::chrono::milliseconds(1700000001000));
  info.expires_at = core::WallClock::time_point(std::chrono::milliseconds(1700086401000));
  return info;
}

TEST(UploadState, RoundTripsEveryField) {
  const UploadInfo info = sample();
  const auto expected = parse_sha256_hex(std::string(64, 'a'));
  auto s = parse_state(serialize_state(info, expected));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->info.id, info.id);
  EXPECT_EQ(s->info.owner, info.owner);
  EXPECT_EQ(s->info.filename, info.filename);
  EXPECT_EQ(s->info.content_type, info.content_type);
  EXPECT_EQ(s->info.metadata, info.metadata);
  EXPECT_EQ(s->info.size, 1000u);
  EXPECT_EQ(s->info.received, 300u);
  EXPECT_EQ(s->info.status, Status::kUploading);
  EXPECT_EQ(s->info.created_at, info.created_at);
  EXPECT_EQ(s->info.updated_at, info.updated_at);
  EXPECT_EQ(s->info.expires_at, info.expires_at);
  EXPECT_EQ(s->expected, expected);
}

TEST(UploadState, RoundTripsACompleteUpload) {
  UploadInfo info = sample();
  info.received = info.size;
  info.status = Status::kComplete;
  info.sha256 = std::string(64, 'b');
  auto s = parse_state(serialize_state(info, std::nullopt));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->info.status, Status::kComplete);
  EXPECT_EQ(s->info.sha256, info.sha256);
  EXPECT_FALSE(s->expected);
}

TEST(UploadState, RefusesCutOffOrCorruptRecords) {
  const std::string good = serialize_state(sample(), std::nullopt);
  for (std::size_t cut : {std::size_t{0}, std::size_t{5}, good.size() / 2, good.size() - 1}) {
    EXPECT_FALSE(parse_state(good.substr(0, cut))) << cut;
  }
  auto replace = [&](std::string_view from, std::string_view to) {
    std::string t = good;
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  EXPECT_FALSE(parse_state(replace("streamgate-upload 1", "streamgate-upload 2")));
  EXPECT_FALSE(parse_state(replace("offset 300", "offset 1001")));  // past the size
  EXPECT_FALSE(parse_state(replace("offset 300", "offset -1")));
  EXPECT_FALSE(parse_state(replace("size 1000\n", "")));
  EXPECT_FALSE(parse_state(replace("id 0123", "id ../x")));
  EXPECT_FALSE(parse_state(replace("org 343536", "org 34353")));
  EXPECT_FALSE(parse_state(replace("end\n", "end\nextra\n")));
  EXPECT_FALSE(parse_state(replace("status uploading", "status complete")));  // no sha256
}

}  // namespace
}  // namespace sg::upload
