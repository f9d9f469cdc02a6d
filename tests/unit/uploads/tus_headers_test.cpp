#include "uploads/tus_headers.hpp"

#include <gtest/gtest.h>

namespace sg::uploads::tus {
namespace {

TEST(TusVersion, AcceptsOnly100) {
  EXPECT_TRUE(version_supported("1.0.0"));
  EXPECT_TRUE(version_supported(" 1.0.0 "));
  EXPECT_FALSE(version_supported(""));
  EXPECT_FALSE(version_supported("0.2.2"));
  EXPECT_FALSE(version_supported("1.0"));
  EXPECT_FALSE(version_supported("1.0.0,0.2.2"));
}

TEST(TusSize, ParsesPlainDecimals) {
  EXPECT_EQ(parse_size("0").value(), 0u);
  EXPECT_EQ(parse_size("1048576").value(), 1048576u);
  EXPECT_EQ(parse_size(" 42 ").value(), 42u);
  EXPECT_EQ(parse_size("9223372036854775807").value(), 9223372036854775807ull);
}

TEST(TusSize, RejectsSignsGarbageAndOverflow) {
  for (std::string_view bad : {"", " ", "-1", "+1", "1.5", "0x10", "12a", "1 2",
                               "9223372036854775808", "99999999999999999999"}) {
    auto r = parse_size(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error(), TusError::kBadNumber) << bad;
  }
}

TEST(TusMetadata, DecodesPairsInOrder) {
  auto m =
      parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential,type YQ==");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[0].first, "filename");
  EXPECT_EQ((*m)[0].second, "world_domination_plan.pdf");
  EXPECT_EQ((*m)[1].first, "is_confidential");
  EXPECT_EQ((*m)[1].second, "");
  EXPECT_EQ((*m)[2].second, "a");
}

TEST(TusMetadata, EmptyHeaderIsNoMetadata) {
  auto m = parse_metadata("");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->empty());
}

TEST(TusMetadata, ToleratesSpacesAroundPairs) {
  auto m = parse_metadata("a Zg== , b Zm8=");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[1].second, "fo");
}

TEST(TusMetadata, RejectsDuplicateEmptyOrBadlyEncodedEntries) {
  for (std::string_view bad : {"a Zg==,a Zm8=", ",a Zg==", "a Zg==,", "a not*base64", "a Zg"}) {
    auto r = parse_metadata(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error(), TusError::kBadMetadata) << bad;
  }
}

TEST(TusChecksum, ParsesSha256) {
  // sha256("") in base64.
  auto d = parse_checksum("sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->algorithm, ChecksumAlgorithm::kSha256);
  ASSERT_EQ(d->digest.size(), 32u);
  EXPECT_EQ(static_cast<unsigned char>(d->digest[0]), 0xe3);
  EXPECT_EQ(static_cast<unsigned char>(d->digest[31]), 0x55);
  EXPECT_TRUE(parse_checksum("SHA256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="));
}

TEST(TusChecksum, ParsesSha1AndMd5) {
  // sha1("") and md5("") in base64; tus requires sha1.
  auto sha1 = parse_checksum("sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
  ASSERT_TRUE(sha1);
  EXPECT_EQ(sha1->algorithm, ChecksumAlgorithm::kSha1);
  ASSERT_EQ(sha1->digest.size(), 20u);
  EXPECT_EQ(static_cast<unsigned char>(sha1->digest[0]), 0xda);
  auto md5 = parse_checksum("MD5 1B2M2Y8AsgTpgAmY7PhCfg==");
  ASSERT_TRUE(md5);
  EXPECT_EQ(md5->algorithm, ChecksumAlgorithm::kMd5);
  ASSERT_EQ(md5->digest.size(), 16u);
  EXPECT_EQ(static_cast<unsigned char>(md5->digest[0]), 0xd4);
  EXPECT_EQ(kChecksumAlgorithms, "sha1,md5,sha256");
}

TEST(TusChecksum, RejectsADigestOfAnotherAlgorithmsLength) {
  // An md5-sized digest named sha1, a sha1-sized one named sha256.
  for (std::string_view bad :
       {"sha1 1B2M2Y8AsgTpgAmY7PhCfg==", "sha256 2jmj7l5rSw0yVb/vlWAYkK/YBwk="}) {
    auto r = parse_checksum(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error(), TusError::kBadChecksum) << bad;
  }
}

TEST(TusChecksum, NamesAnUnsupportedAlgorithm) {
  auto r = parse_checksum("crc32 AAAAAA==");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), TusError::kUnsupportedChecksum);
}

TEST(TusChecksum, RejectsMalformedValues) {
  for (std::string_view bad : {"", "sha256", "sha256 ", " 47DEQ", "sha256 Zm9v",
                               "sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"}) {
    auto r = parse_checksum(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error(), TusError::kBadChecksum) << bad;
  }
}

TEST(TusDate, FormatsImfFixdate) {
  // 1994-11-06T08:49:37Z, RFC 7231's example.
  const auto t = core::WallClock::time_point(std::chrono::seconds(784111777));
  EXPECT_EQ(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
}

TEST(TusError, HasStableReasons) {
  EXPECT_EQ(core::reason(make_error_code(TusError::kUnsupportedChecksum)),
            "unsupported_checksum_algorithm");
  EXPECT_EQ(core::reason(make_error_code(TusError::kBadMetadata)), "bad_metadata");
}

}  // namespace
}  // namespace sg::uploads::tus
