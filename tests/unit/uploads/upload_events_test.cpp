#include "uploads/upload_events.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace sg::uploads {
namespace {

std::string percent(std::uint64_t received, std::uint64_t total, bool complete = false) {
  std::string out;
  append_percent(out, received, total, complete);
  return out;
}

TEST(UploadPercent, HasAtMostTwoDecimalsAndIsHundredOnlyWhenDone) {
  EXPECT_EQ(percent(0, 100), "0");
  EXPECT_EQ(percent(40, 100), "40");
  EXPECT_EQ(percent(1, 3), "33.33");
  EXPECT_EQ(percent(1, 8), "12.5");
  EXPECT_EQ(percent(999999, 1000000), "99.99");  // rounded down, never 100 early
  EXPECT_EQ(percent(1000000, 1000000), "100");
  EXPECT_EQ(percent(0, 0), "0");
  EXPECT_EQ(percent(0, 0, true), "100");
  EXPECT_EQ(percent((1ull << 50) - 1, 1ull << 50), "99.99");
}

TEST(UploadStatusJson, CarriesTheDocumentedFields) {
  upload::UploadInfo info;
  info.id = "abc";
  info.filename = "a \"quoted\" name.pdf";
  info.content_type = "application/pdf";
  info.size = 200;
  info.received = 50;
  info.bytes_per_second = 12.5;
  info.eta_seconds = 12.0;
  const auto v = boost::json::parse(upload_status_json(info)).as_object();
  EXPECT_EQ(v.at("uploadId").as_string(), "abc");
  EXPECT_EQ(v.at("status").as_string(), "uploading");
  EXPECT_EQ(v.at("filename").as_string(), "a \"quoted\" name.pdf");
  EXPECT_EQ(v.at("received").to_number<std::uint64_t>(), 50u);
  EXPECT_EQ(v.at("total").to_number<std::uint64_t>(), 200u);
  EXPECT_EQ(v.at("percent").to_number<double>(), 25.0);
  EXPECT_EQ(v.at("bytesPerSecond").to_number<double>(), 12.5);
  EXPECT_EQ(v.at("etaSeconds").to_number<double>(), 12.0);
  EXPECT_FALSE(v.contains("sha256"));
  EXPECT_FALSE(v.contains("error"));
  EXPECT_TRUE(v.contains("createdAt") && v.contains("updatedAt") && v.contains("expiresAt"));

  info.eta_seconds.reset();
  info.status = upload::Status::kFailed;
  info.error = "checksum_mismatch";
  info.error_message = "differs";
  const auto failed = boost::json::parse(upload_status_json(info)).as_object();
  EXPECT_TRUE(failed.at("etaSeconds").is_null());
  EXPECT_EQ(failed.at("error").as_string(), "checksum_mismatch");
  EXPECT_EQ(failed.at("message").as_string(), "differs");

  info.status = upload::Status::kComplete;
  info.received = 200;
  info.sha256 = std::string(64, 'a');
  const auto done = boost::json::parse(upload_status_json(info)).as_object();
  EXPECT_EQ(done.at("percent").to_number<double>(), 100.0);
  EXPECT_EQ(done.at("sha256").as_string(), std::string(64, 'a'));
}

}  // namespace
}  // namespace sg::uploads
