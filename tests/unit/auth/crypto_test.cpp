#include "auth/crypto.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sg::auth::crypto {
namespace {

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

TEST(HmacSha256, MatchesRfc4231TestCase2) {
  EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HmacSha256, AcceptsAnEmptyKeyAndMessage) {
  EXPECT_EQ(hex(hmac_sha256("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(Es256RawToDer, EncodesSmallIntegersMinimally) {
  std::string raw(64, '\0');
  raw[31] = 1;
  raw[63] = 2;
  EXPECT_EQ(hex(es256_raw_to_der(raw)), "3006020101020102");
}

TEST(Es256RawToDer, PadsHighBitIntegersWithAZeroByte) {
  std::string raw(64, '\x11');
  raw[0] = '\x80';
  const std::string der = es256_raw_to_der(raw);
  ASSERT_EQ(der.size(), 2u + 2 * (2 + 33) - 1);  // r needs the pad byte, s doesn't
  EXPECT_EQ(hex(der.substr(0, 6)), "304502210080");
}

TEST(Es256RawToDer, RejectsWrongLengths) {
  EXPECT_EQ(es256_raw_to_der(std::string(63, '\1')), "");
  EXPECT_EQ(es256_raw_to_der(std::string(65, '\1')), "");
  EXPECT_EQ(es256_raw_to_der(""), "");
}

TEST(PublicKey, RejectsEmptyAndGarbagePem) {
  EXPECT_EQ(PublicKey::from_pem("").error(), AuthError::kBadKey);
  EXPECT_EQ(PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n").error(),
            AuthError::kBadKey);
}

}  // namespace
}  // namespace sg::auth::crypto
