#include "core/core.hpp"

#include <gtest/gtest.h>

namespace sg::core {
namespace {

TEST(Base64, EncodesWithPadding) {
  const std::string in = "hello";
  EXPECT_EQ(base64_encode(std::span(reinterpret_cast<const unsigned char*>(in.data()), in.size())),
            "aGVsbG8=");
}

TEST(Base64Url, RoundTripsEveryLength) {
  std::string in;
  for (int i = 0; i < 40; ++i) {
    in.push_back(static_cast<char>(i * 37));
    std::string out;
    ASSERT_TRUE(base64url_decode(base64url_encode(in), out));
    EXPECT_EQ(out, in);
  }
}

TEST(Base64Url, RejectsCharactersOutsideTheAlphabet) {
  std::string out;
  EXPECT_FALSE(base64url_decode("ab+c", out));
  EXPECT_FALSE(base64url_decode("ab=c", out));
  EXPECT_FALSE(base64url_decode("a", out));
}

TEST(Base64Url, RejectsNonZeroTrailingBits) {
  std::string out;
  EXPECT_TRUE(base64url_decode("QQ", out));
  EXPECT_FALSE(base64url_decode("QR", out));
}

TEST(Rfc3339, FormatsUtcWithMilliseconds) {
  const auto t = WallClock::time_point(std::chrono::milliseconds(1'700'000'000'123));
  EXPECT_EQ(format_rfc3339(t), "2023-11-14T22:13:20.123Z");
}

TEST(RandomHex, HasRequestedLengthAndVaries) {
  const auto a = random_hex(8);
  EXPECT_EQ(a.size(), 16u);
  EXPECT_NE(a, random_hex(8));
}

TEST(PercentDecode, DecodesEscapesAndPlusAsSpace) {
  std::string out;
  EXPECT_TRUE(core::percent_decode("a%2Bb+c%3d%7E", out));
  EXPECT_EQ(out, "a+b c=~");
  EXPECT_TRUE(core::percent_decode("", out));
  EXPECT_EQ(out, "");
  // URL userinfo (a Redis password) keeps '+' as it is.
  EXPECT_TRUE(core::percent_decode("p+w%40", out, false));
  EXPECT_EQ(out, "p+w@");
}

TEST(PercentDecode, RejectsTruncatedOrNonHexEscapes) {
  std::string out;
  EXPECT_FALSE(core::percent_decode("abc%2", out));
  EXPECT_FALSE(core::percent_decode("abc%", out));
  EXPECT_FALSE(core::percent_decode("%zz", out));
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

}  // namespace
}  // namespace sg::core
