#include "upload/upload.hpp"

#include <gtest/gtest.h>

namespace sg::upload {
namespace {

TEST(Sha256Hex, RoundTripsEitherCase) {
  const std::string hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
  auto digest = parse_sha256_hex(hex);
  ASSERT_TRUE(digest);
  EXPECT_EQ(to_hex(*digest), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Hex, RejectsWrongLengthAndNonHex) {
  EXPECT_FALSE(parse_sha256_hex(""));
  EXPECT_FALSE(parse_sha256_hex(std::string(63, 'a')));
  EXPECT_FALSE(parse_sha256_hex(std::string(65, 'a')));
  EXPECT_FALSE(parse_sha256_hex(std::string(63, 'a') + "g"));
}

TEST(UploadError, HasStableReasons) {
  EXPECT_EQ(ErrorCode(UploadError::kNotFound).message(), "not_found");
  EXPECT_EQ(ErrorCode(UploadError::kChecksumMismatch).message(), "checksum_mismatch");
  EXPECT_STREQ(ErrorCode(UploadError::kStorage).category().name(), "upload");
}

TEST(UploadInfo, PercentOfZeroByteUploadIsHundredOnlyWhenComplete) {
  UploadInfo info;
  EXPECT_EQ(info.percent(), 0.0);
  info.status = Status::kComplete;
  EXPECT_EQ(info.percent(), 100.0);
  info.size = 200;
  info.received = 50;
  EXPECT_EQ(info.percent(), 25.0);
}

}  // namespace
}  // namespace sg::upload
