// --jwks-file: RS256/ES256 keys from a JWK Set (RFC 7517), chosen by the token's kid.
#include "auth/auth.hpp"
#include "core/core.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <vector>

namespace sg::auth {
namespace {

using std::chrono::seconds;
using TimePoint = std::chrono::system_clock::time_point;
using KeyPtr = std::shared_ptr<EVP_PKEY>;

constexpr std::int64_t kNow = 1'700'000'000;
const TimePoint now{seconds(kNow)};

const KeyPtr& rsa_key() {
  static const KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048}),
                          EVP_PKEY_free);
  return key;
}
const KeyPtr& ec_key() {
  static const KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  return key;
}
const KeyPtr& other_ec_key() {
  static const KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  return key;
}

// A big-endian, base64url member of a JWK from a key parameter; `pad` for EC coordinates.
std::string b64_param(const KeyPtr& key, const char* name, int pad = 0) {
  BIGNUM* bn = nullptr;
  EVP_PKEY_get_bn_param(key.get(), name, &bn);
  std::string bytes(
      pad > 0 ? static_cast<std::size_t>(pad) : static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  BN_free(bn);
  return core::base64url_encode(bytes);
}

std::string rsa_jwk(const KeyPtr& key, std::string_view kid, std::string_view extra = {}) {
  return R"({"kty":"RSA","kid":")" + std::string(kid) + R"(","n":")" +
         b64_param(key, OSSL_PKEY_PARAM_RSA_N) + R"(","e":")" +
         b64_param(key, OSSL_PKEY_PARAM_RSA_E) + "\"" + std::string(extra) + "}";
}

std::string ec_jwk(const KeyPtr& key, std::string_view kid, std::string_view extra = {}) {
  return R"({"kty":"EC","crv":"P-256","kid":")" + std::string(kid) + R"(","x":")" +
         b64_param(key, OSSL_PKEY_PARAM_EC_PUB_X, 32) + R"(","y":")" +
         b64_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32) + "\"" + std::string(extra) + "}";
}

std::string set_of(const std::vector<std::string>& keys) {
  std::string out = R"({"keys":[)";
  for (std::size_t i = 0; i < keys.size(); ++i) out += (i ? "," : "") + keys[i];
  return out + "]}";
}

Result<std::shared_ptr<const TokenVerifier>> verifier_for(std::string jwks) {
  VerifierOptions o;
  o.jwks = std::move(jwks);
  return TokenVerifier::create(o);
}

std::string evp_sign(const KeyPtr& key, std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get());
  EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, data.size());
  sig.resize(len);
  return sig;
}

std::string der_to_raw(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())), ECDSA_SIG_free);
  std::string raw(64, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out, 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out + 32, 32);
  return raw;
}

// A token signed by `key` with `alg`, naming `kid` in its header (none when empty).
std::string token(const KeyPtr& key, std::string_view alg, std::string_view kid) {
  std::string header = R"({"alg":")" + std::string(alg) + "\"";
  if (!kid.empty()) header += R"(,"kid":")" + std::string(kid) + "\"";
  header += "}";
  const std::string claims = R"({"sub":"u","org_id":1,"exp":)" + std::to_string(kNow + 3600) + "}";
  const std::string input = core::base64url_encode(header) + "." + core::base64url_encode(claims);
  std::string sig = evp_sign(key, input);
  if (alg == "ES256") sig = der_to_raw(sig);
  return input + "." + core::base64url_encode(sig);
}

ErrorCode error_of(const Result<Principal>& r) {
  return r ? ErrorCode() : r.error();
}

TEST(Jwks, VerifiesRs256AndEs256ByKid) {
  const auto v = verifier_for(
      set_of({rsa_jwk(rsa_key(), "r1"), ec_jwk(ec_key(), "e1"), ec_jwk(other_ec_key(), "e2")}));
  ASSERT_TRUE(v.has_value()) << v.error().message();
  EXPECT_TRUE((*v)->verify(token(rsa_key(), "RS256", "r1"), now).has_value());
  EXPECT_TRUE((*v)->verify(token(ec_key(), "ES256", "e1"), now).has_value());
  EXPECT_TRUE((*v)->verify(token(other_ec_key(), "ES256", "e2"), now).has_value());
}

TEST(Jwks, RefusesATokenSignedByAnotherKeyOfTheSet) {
  const auto v = verifier_for(set_of({ec_jwk(ec_key(), "e1"), ec_jwk(other_ec_key(), "e2")}));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(error_of((*v)->verify(token(other_ec_key(), "ES256", "e1"), now)),
            AuthError::kBadSignature);
}

TEST(Jwks, NamesAnUnknownKid) {
  const auto v = verifier_for(set_of({ec_jwk(ec_key(), "e1"), ec_jwk(other_ec_key(), "e2")}));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(error_of((*v)->verify(token(ec_key(), "ES256", "rotated-away"), now)),
            AuthError::kUnknownKey);
  // Without kid there is no telling which of two keys is meant.
  EXPECT_EQ(error_of((*v)->verify(token(ec_key(), "ES256", ""), now)), AuthError::kUnknownKey);
  EXPECT_EQ(to_string(AuthError::kUnknownKey), "unknown_key");
}

TEST(Jwks, ATokenWithoutKidUsesTheOnlyKeyOfItsKind) {
  const auto v = verifier_for(set_of({ec_jwk(ec_key(), "e1"), rsa_jwk(rsa_key(), "r1")}));
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE((*v)->verify(token(ec_key(), "ES256", ""), now).has_value());
}

TEST(Jwks, AKidOfTheWrongKindIsNotUsed) {
  const auto v = verifier_for(set_of({rsa_jwk(rsa_key(), "k"), ec_jwk(other_ec_key(), "e")}));
  ASSERT_TRUE(v.has_value());
  // "k" is an RSA key: an ES256 token naming it doesn't get it.
  EXPECT_EQ(error_of((*v)->verify(token(ec_key(), "ES256", "k"), now)), AuthError::kUnknownKey);
}

TEST(Jwks, RefusesHs256WithoutASecret) {
  const auto v = verifier_for(set_of({ec_jwk(ec_key(), "e1")}));
  ASSERT_TRUE(v.has_value());
  const std::string hs = mint_hs256(R"({"sub":"u","org_id":1,"exp":1800000000})", "secret");
  EXPECT_EQ(error_of((*v)->verify(hs, now)), AuthError::kUnsupportedAlgorithm);
  // No RSA key in the set: RS256 is refused before any key lookup.
  EXPECT_EQ(error_of((*v)->verify(token(rsa_key(), "RS256", "r1"), now)),
            AuthError::kUnsupportedAlgorithm);
}

TEST(Jwks, SkipsKeysItCannotUse) {
  const auto v = verifier_for(set_of({
      R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})",
      R"({"kty":"oct","k":"c2VjcmV0"})",
      ec_jwk(other_ec_key(), "enc", R"(,"use":"enc")"),
      ec_jwk(other_ec_key(), "wrong-alg", R"(,"alg":"ES384")"),
      R"({"kty":"EC","crv":"P-384","x":"AA","y":"AA"})",
      ec_jwk(ec_key(), "good", R"(,"use":"sig","alg":"ES256")"),
  }));
  ASSERT_TRUE(v.has_value()) << v.error().message();
  EXPECT_TRUE((*v)->verify(token(ec_key(), "ES256", "good"), now).has_value());
  EXPECT_EQ(error_of((*v)->verify(token(other_ec_key(), "ES256", "enc"), now)),
            AuthError::kUnknownKey);
}

TEST(Jwks, ASetWithoutAUsableKeyIsABadKey) {
  for (
      const char* text :
      {"", "not json", "[]", R"({"keys":{}})", R"({"keys":[]})", R"({"keys":[1]})",
       R"({"keys":[{"kty":"oct","k":"AA"}]})",
       // A point that is not on P-256.
       R"({"keys":[{"kty":"EC","crv":"P-256","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]})",
       // RSA under 2048 bits.
       R"({"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]})"}) {
    VerifierOptions o;
    o.jwks = text;
    const auto v = TokenVerifier::create(o);
    EXPECT_FALSE(v.has_value()) << text;
    if (!v) {
      EXPECT_EQ(v.error(), AuthError::kBadKey) << text;
    }
  }
}

// --jwks-url: the fetcher replaces the set while tokens are verified.
TEST(JwkSet, AReplacedSetVerifiesItsKidsAndAFailedReplaceKeepsTheLast) {
  auto set = std::make_shared<JwkSet>();
  EXPECT_FALSE(set->loaded());
  VerifierOptions o;
  o.jwk_set = set;
  const auto v = TokenVerifier::create(o);
  ASSERT_TRUE(v.has_value()) << v.error().message();
  // Not loaded yet: refused as unknown, whichever the kind.
  EXPECT_EQ(error_of((*v)->verify(token(ec_key(), "ES256", "e1"), now)), AuthError::kUnknownKey);
  EXPECT_EQ(error_of((*v)->verify(token(rsa_key(), "RS256", "r1"), now)), AuthError::kUnknownKey);

  ASSERT_EQ(set->replace(set_of({ec_jwk(ec_key(), "e1")})).value(), 1u);
  EXPECT_TRUE(set->loaded());
  EXPECT_TRUE((*v)->verify(token(ec_key(), "ES256", "e1"), now).has_value());
  // RS256 is still accepted as an algorithm: the next set may hold an RSA key.
  EXPECT_EQ(error_of((*v)->verify(token(rsa_key(), "RS256", "r1"), now)), AuthError::kUnknownKey);

  // Rotation: e1 retired, r1 and e2 in.
  ASSERT_EQ(set->replace(set_of({rsa_jwk(rsa_key(), "r1"), ec_jwk(other_ec_key(), "e2")})).value(),
            2u);
  EXPECT_TRUE((*v)->verify(token(rsa_key(), "RS256", "r1"), now).has_value());
  EXPECT_TRUE((*v)->verify(token(other_ec_key(), "ES256", "e2"), now).has_value());
  EXPECT_EQ(error_of((*v)->verify(token(ec_key(), "ES256", "e1"), now)), AuthError::kUnknownKey);

  // Garbage, or a set with nothing usable, changes nothing.
  EXPECT_EQ(set->replace("{\"keys\": [garbage").error(), AuthError::kBadKey);
  EXPECT_EQ(set->replace(R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})").error(), AuthError::kBadKey);
  EXPECT_TRUE((*v)->verify(token(rsa_key(), "RS256", "r1"), now).has_value());
}

TEST(JwkSet, AnUnknownKidCallsTheMissHook) {
  auto set = std::make_shared<JwkSet>();
  int misses = 0;
  set->on_unknown_kid([&misses] { ++misses; });
  ASSERT_TRUE(set->replace(set_of({ec_jwk(ec_key(), "e1")})).has_value());
  VerifierOptions o;
  o.jwk_set = set;
  const auto v = TokenVerifier::create(o);
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE((*v)->verify(token(ec_key(), "ES256", "e1"), now).has_value());
  EXPECT_EQ(misses, 0);
  EXPECT_EQ(error_of((*v)->verify(token(ec_key(), "ES256", "new"), now)), AuthError::kUnknownKey);
  EXPECT_EQ(misses, 1);
  // A bad signature under a known kid is no reason to fetch.
  EXPECT_EQ(error_of((*v)->verify(token(other_ec_key(), "ES256", "e1"), now)),
            AuthError::kBadSignature);
  EXPECT_EQ(misses, 1);
}

TEST(JwkSet, IsExclusiveWithAJwksFile) {
  VerifierOptions o;
  o.jwk_set = std::make_shared<JwkSet>();
  o.jwks = set_of({ec_jwk(ec_key(), "e1")});
  EXPECT_EQ(TokenVerifier::create(o).error(), AuthError::kBadKey);
}

}  // namespace
}  // namespace sg::auth
