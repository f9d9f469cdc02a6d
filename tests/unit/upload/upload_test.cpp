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

TEST(UploadError, DescribesEveryErrorWithTheLimitsItNames) {
  ManagerOptions limits;
  limits.max_bytes = 1000;
  limits.max_per_user = 3;
  limits.max_org_bytes = 5000;
  EXPECT_EQ(describe(UploadError::kTooLarge, limits, false),
            "size is over --upload-max-bytes (1000)");
  EXPECT_EQ(describe(UploadError::kTooLarge, limits, true),
            "more bytes than the declared size; the upload was discarded");
  EXPECT_EQ(describe(UploadError::kTooManyUploads, limits, false),
            "this user has --upload-max-per-user (3) unfinished uploads");
  EXPECT_EQ(describe(UploadError::kOrgQuota, limits, true),
            "the org's unfinished uploads would pass --upload-max-org-bytes (5000)");
  EXPECT_EQ(describe(UploadError::kNotFound, limits, true), "no such upload");
  for (int e = static_cast<int>(UploadError::kNotFound);
       e <= static_cast<int>(UploadError::kShuttingDown); ++e) {
    const std::string text = describe(static_cast<UploadError>(e), limits, false);
    EXPECT_FALSE(text.empty()) << e;
    EXPECT_NE(text, "the upload could not be processed") << e;  // the fallback: none is missing
  }
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
