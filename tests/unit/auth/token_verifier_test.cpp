#include "auth/auth.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace sg::auth {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using TimePoint = std::chrono::system_clock::time_point;
using KeyPtr = std::shared_ptr<EVP_PKEY>;

constexpr std::int64_t kNow = 1'700'000'000;
const TimePoint now{seconds(kNow)};
constexpr std::string_view kSecret = "test-secret-that-is-long-enough-for-hs256!";

// --- Test-only key material and RS256/ES256 signer --------------------------------------

KeyPtr generate_rsa(std::size_t bits) {
  return KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits), EVP_PKEY_free);
}
KeyPtr generate_ec(const char* curve) {
  return KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve), EVP_PKEY_free);
}
KeyPtr generate(const char* type) {
  return KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, type), EVP_PKEY_free);
}

// RSA generation is slow under ASan; every test shares these.
const KeyPtr& rsa_key() {
  static const KeyPtr key = generate_rsa(2048);
  return key;
}
const KeyPtr& other_rsa_key() {
  static const KeyPtr key = generate_rsa(2048);
  return key;
}
const KeyPtr& ec_key() {
  static const KeyPtr key = generate_ec("P-256");
  return key;
}
const KeyPtr& other_ec_key() {
  static const KeyPtr key = generate_ec("P-256");
  return key;
}

std::string drain(BIO* bio) {
  std::string out(BIO_ctrl_pending(bio), '\0');
  const int n = BIO_read(bio, out.data(), static_cast<int>(out.size()));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

std::string public_pem(const KeyPtr& key) {
  std::unique_ptr<BIO, decltype(&BIO_free_all)> bio(BIO_new(BIO_s_mem()), BIO_free_all);
  PEM_write_bio_PUBKEY(bio.get(), key.get());
  return drain(bio.get());
}

std::string private_pem(const KeyPtr& key) {
  std::unique_ptr<BIO, decltype(&BIO_free_all)> bio(BIO_new(BIO_s_mem()), BIO_free_all);
  PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return drain(bio.get());
}

// "BEGIN RSA PUBLIC KEY" (PKCS#1), as `openssl rsa -RSAPublicKey_out` writes it.
std::string pkcs1_public_pem(const KeyPtr& key) {
  std::unique_ptr<OSSL_ENCODER_CTX, decltype(&OSSL_ENCODER_CTX_free)> ctx(
      OSSL_ENCODER_CTX_new_for_pkey(key.get(), EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific",
                                    nullptr),
      OSSL_ENCODER_CTX_free);
  unsigned char* data = nullptr;
  std::size_t len = 0;
  if (!ctx || OSSL_ENCODER_to_data(ctx.get(), &data, &len) != 1) return {};
  std::string out(reinterpret_cast<const char*>(data), len);
  OPENSSL_free(data);
  return out;
}

std::string self_signed_certificate_pem(const KeyPtr& key) {
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_sign(cert.get(), key.get(), EVP_sha256());
  std::unique_ptr<BIO, decltype(&BIO_free_all)> bio(BIO_new(BIO_s_mem()), BIO_free_all);
  PEM_write_bio_X509(bio.get(), cert.get());
  return drain(bio.get());
}

// SHA-256 signature as EVP produces it: PKCS#1 v1.5 for RSA, DER ECDSA-Sig-Value for EC.
std::string evp_sign(const KeyPtr& key, std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1) {
    return {};
  }
  std::string sig(len, '\0');
  EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, data.size());
  sig.resize(len);
  return sig;
}

// JWS ES256 wants R || S, 32 bytes each, instead of DER.
std::string der_to_raw(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())), ECDSA_SIG_free);
  if (!sig) return {};
  std::string raw(64, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out, 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out + 32, 32);
  return raw;
}

std::string hmac_sha256(std::string_view secret, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

std::string header_for(std::string_view alg) {
  return std::string(R"({"alg":")") + std::string(alg) + R"(","typ":"JWT"})";
}

std::string signing_input(std::string_view header_json, std::string_view claims_json) {
  return core::base64url_encode(header_json) + "." + core::base64url_encode(claims_json);
}

std::string with_signature(const std::string& input, std::string_view signature) {
  return input + "." + core::base64url_encode(signature);
}

std::string sign_rs256(const KeyPtr& key, std::string_view claims_json,
                       std::string_view alg = "RS256") {
  const std::string input = signing_input(header_for(alg), claims_json);
  return with_signature(input, evp_sign(key, input));
}

std::string sign_es256(const KeyPtr& key, std::string_view claims_json,
                       std::string_view alg = "ES256") {
  const std::string input = signing_input(header_for(alg), claims_json);
  return with_signature(input, der_to_raw(evp_sign(key, input)));
}

// --- Helpers for building verifiers and claims -------------------------------------------

std::shared_ptr<const TokenVerifier> make_verifier(std::string secret, std::string pem = {},
                                                   seconds leeway = seconds(30)) {
  auto v = TokenVerifier::create(VerifierOptions{std::move(secret), std::move(pem), leeway});
  EXPECT_TRUE(v.has_value()) << (v ? "" : v.error().message());
  return v ? *v : nullptr;
}

std::shared_ptr<const TokenVerifier> hs_verifier() {
  return make_verifier(std::string(kSecret));
}

std::string claims(std::string_view extra = {}, std::int64_t exp = kNow + 3600) {
  std::string out = R"({"sub":"user-1","org_id":456,"exp":)" + std::to_string(exp);
  if (!extra.empty()) out += "," + std::string(extra);
  return out + "}";
}

std::string hs_token(std::string_view claims_json) {
  return mint_hs256(claims_json, kSecret);
}

ErrorCode error_of(const Result<Principal>& r) {
  return r ? ErrorCode() : r.error();
}

// --- HS256 --------------------------------------------------------------------------------

TEST(TokenVerifier, AcceptsValidHs256Token) {
  const auto r = hs_verifier()->verify(hs_token(claims()), now);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->user, "user-1");
  EXPECT_EQ(r->org, "456");
  EXPECT_FALSE(r->services.has_value());
  EXPECT_FALSE(r->rooms.has_value());
  EXPECT_EQ(r->expiry, TimePoint(seconds(kNow + 3600)));
}

TEST(TokenVerifier, RejectsExpiredToken) {
  EXPECT_EQ(error_of(hs_verifier()->verify(hs_token(claims({}, kNow - 31)), now)),
            AuthError::kExpired);
}

TEST(TokenVerifier, AcceptsExpWithinLeeway) {
  const auto r = hs_verifier()->verify(hs_token(claims({}, kNow - 29)), now);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->expiry, TimePoint(seconds(kNow - 29)));
}

TEST(TokenVerifier, RejectsExpExactlyAtTheEndOfLeeway) {
  EXPECT_EQ(error_of(hs_verifier()->verify(hs_token(claims({}, kNow - 30)), now)),
            AuthError::kExpired);
}

TEST(TokenVerifier, ClampsNegativeLeewayToZero) {
  const auto v = make_verifier(std::string(kSecret), {}, seconds(-100));
  EXPECT_EQ(error_of(v->verify(hs_token(claims({}, kNow)), now)), AuthError::kExpired);
  EXPECT_TRUE(v->verify(hs_token(claims({}, kNow + 1)), now).has_value());
}

TEST(TokenVerifier, AcceptsFractionalExp) {
  const std::string c = R"({"sub":"u","org_id":1,"exp":)" + std::to_string(kNow + 10) + ".25}";
  const auto r = hs_verifier()->verify(hs_token(c), now);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->expiry, TimePoint(seconds(kNow + 10) + milliseconds(250)));
}

TEST(TokenVerifier, ClampsFarFutureExpToYear2200) {
  const auto r = hs_verifier()->verify(hs_token(R"({"sub":"u","org_id":1,"exp":1e300})"), now);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->expiry, TimePoint(seconds(7'258'118'400)));
  const auto big =
      hs_verifier()->verify(hs_token(R"({"sub":"u","org_id":1,"exp":18446744073709551615})"), now);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->expiry, TimePoint(seconds(7'258'118'400)));
}

TEST(TokenVerifier, RejectsNbfInTheFuture) {
  const std::string nbf = "\"nbf\":" + std::to_string(kNow + 31);
  EXPECT_EQ(error_of(hs_verifier()->verify(hs_token(claims(nbf)), now)), AuthError::kNotYetValid);
}

TEST(TokenVerifier, AcceptsNbfWithinLeeway) {
  const std::string nbf = "\"nbf\":" + std::to_string(kNow + 30);
  EXPECT_TRUE(hs_verifier()->verify(hs_token(claims(nbf)), now).has_value());
}

TEST(TokenVerifier, RejectsWrongSecret) {
  EXPECT_EQ(error_of(hs_verifier()->verify(mint_hs256(claims(), "another-secret"), now)),
            AuthError::kBadSignature);
}

TEST(TokenVerifier, RejectsTamperedPayload) {
  const std::string token = hs_token(claims());
  const std::string forged = hs_token(R"({"sub":"admin","org_id":1,"exp":4000000000})");
  // The forged payload with the original signature.
  const std::size_t a = token.find('.');
  const std::size_t b = token.rfind('.');
  const std::size_t fa = forged.find('.');
  const std::size_t fb = forged.rfind('.');
  const std::string tampered = token.substr(0, a) + forged.substr(fa, fb - fa) + token.substr(b);
  EXPECT_EQ(error_of(hs_verifier()->verify(tampered, now)), AuthError::kBadSignature);
}

TEST(TokenVerifier, RejectsEmptySignature) {
  const std::string input = signing_input(header_for("HS256"), claims());
  EXPECT_EQ(error_of(hs_verifier()->verify(input + ".", now)), AuthError::kBadSignature);
}

TEST(TokenVerifier, IgnoresTypAndOtherHeaderFields) {
  for (const char* header :
       {R"({"alg":"HS256"})", R"({"alg":"HS256","typ":"at+jwt","kid":"k1"})"}) {
    const std::string input = signing_input(header, claims());
    EXPECT_TRUE(hs_verifier()->verify(with_signature(input, hmac_sha256(kSecret, input)), now))
        << header;
  }
}

TEST(TokenVerifier, MintsTheWellKnownJwtIoExample) {
  EXPECT_EQ(mint_hs256(R"({"sub":"1234567890","name":"John Doe","iat":1516239022})",
                       "your-256-bit-secret"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
            "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
            "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
}

// --- Algorithms -----------------------------------------------------------------------------

TEST(TokenVerifier, RejectsAlgNoneWithoutSignature) {
  const std::string token = signing_input(R"({"alg":"none","typ":"JWT"})", claims()) + ".";
  EXPECT_EQ(error_of(hs_verifier()->verify(token, now)), AuthError::kUnsupportedAlgorithm);
}

TEST(TokenVerifier, RejectsAlgNoneWithSignature) {
  const std::string input = signing_input(R"({"alg":"none"})", claims());
  // Even a signature that is a valid HMAC of the input under the configured secret.
  const std::string token = with_signature(input, hmac_sha256(kSecret, input));
  EXPECT_EQ(error_of(hs_verifier()->verify(token, now)), AuthError::kUnsupportedAlgorithm);
}

TEST(TokenVerifier, RejectsUnknownAndMiscasedAlgorithms) {
  for (const char* alg : {"HS512", "hs256", "PS256", "EdDSA", "NONE", ""}) {
    const std::string token = with_signature(signing_input(header_for(alg), claims()), "sig");
    EXPECT_EQ(error_of(hs_verifier()->verify(token, now)), AuthError::kUnsupportedAlgorithm) << alg;
  }
}

TEST(TokenVerifier, RejectsHeaderWithoutStringAlg) {
  for (const char* header : {R"({"typ":"JWT"})", R"({"alg":256})", R"({"alg":null})"}) {
    const std::string token = with_signature(signing_input(header, claims()), "sig");
    EXPECT_EQ(error_of(hs_verifier()->verify(token, now)), AuthError::kMalformedToken) << header;
  }
}

TEST(TokenVerifier, RejectsCriticalHeaderExtensions) {
  const std::string header = R"({"alg":"HS256","crit":["exp"],"exp":1})";
  const std::string input = signing_input(header, claims());
  // Signed properly, so only `crit` can be the reason.
  EXPECT_EQ(
      error_of(hs_verifier()->verify(with_signature(input, hmac_sha256(kSecret, input)), now)),
      AuthError::kUnsupportedAlgorithm);
}

TEST(TokenVerifier, RejectsHs256SignedWithThePublicKeyPemAsSecret) {
  for (const KeyPtr* key : {&rsa_key(), &ec_key()}) {
    const std::string pem = public_pem(*key);
    const auto v = make_verifier({}, pem);
    EXPECT_EQ(error_of(v->verify(mint_hs256(claims(), pem), now)),
              AuthError::kUnsupportedAlgorithm);
  }
}

TEST(TokenVerifier, RejectsRs256WhenOnlyASecretIsConfigured) {
  EXPECT_EQ(error_of(hs_verifier()->verify(sign_rs256(rsa_key(), claims()), now)),
            AuthError::kUnsupportedAlgorithm);
  EXPECT_EQ(error_of(hs_verifier()->verify(sign_es256(ec_key(), claims()), now)),
            AuthError::kUnsupportedAlgorithm);
}

TEST(TokenVerifier, RejectsRs256TokenHmacSignedWithTheSecret) {
  // Both configured: the RS256 header sends it to the RSA key, whatever the bytes are.
  const auto v = make_verifier(std::string(kSecret), public_pem(rsa_key()));
  const std::string input = signing_input(header_for("RS256"), claims());
  EXPECT_EQ(error_of(v->verify(with_signature(input, hmac_sha256(kSecret, input)), now)),
            AuthError::kBadSignature);
}

// --- RS256 ----------------------------------------------------------------------------------

TEST(TokenVerifier, AcceptsValidRs256Token) {
  const auto v = make_verifier({}, public_pem(rsa_key()));
  const auto r = v->verify(sign_rs256(rsa_key(), claims()), now);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->user, "user-1");
  EXPECT_EQ(r->org, "456");
}

TEST(TokenVerifier, RejectsRs256SignedByAnotherKey) {
  const auto v = make_verifier({}, public_pem(rsa_key()));
  EXPECT_EQ(error_of(v->verify(sign_rs256(other_rsa_key(), claims()), now)),
            AuthError::kBadSignature);
}

TEST(TokenVerifier, RejectsRs256WithTamperedPayload) {
  const auto v = make_verifier({}, public_pem(rsa_key()));
  const std::string token = sign_rs256(rsa_key(), claims());
  const std::string other = sign_rs256(rsa_key(), claims(R"("services":["all"])"));
  const std::string tampered = token.substr(0, token.rfind('.')) + other.substr(other.rfind('.'));
  EXPECT_EQ(error_of(v->verify(tampered, now)), AuthError::kBadSignature);
}

TEST(TokenVerifier, RejectsEs256TokenWhenTheKeyIsRsa) {
  const auto v = make_verifier({}, public_pem(rsa_key()));
  EXPECT_EQ(error_of(v->verify(sign_es256(ec_key(), claims()), now)),
            AuthError::kUnsupportedAlgorithm);
}

TEST(TokenVerifier, AcceptsRsaKeyAsPkcs1Pem) {
  const std::string pem = pkcs1_public_pem(rsa_key());
  ASSERT_NE(pem.find("BEGIN RSA PUBLIC KEY"), std::string::npos);
  const auto v = make_verifier({}, pem);
  EXPECT_TRUE(v->verify(sign_rs256(rsa_key(), claims()), now).has_value());
}

TEST(TokenVerifier, AcceptsKeyFromCertificate) {
  const auto v = make_verifier({}, self_signed_certificate_pem(rsa_key()));
  EXPECT_TRUE(v->verify(sign_rs256(rsa_key(), claims()), now).has_value());
}

// --- ES256 ----------------------------------------------------------------------------------

TEST(TokenVerifier, AcceptsValidEs256Token) {
  const auto v = make_verifier({}, public_pem(ec_key()));
  const auto r = v->verify(sign_es256(ec_key(), claims(R"("services":["finance"])")), now);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->user, "user-1");
  EXPECT_EQ(r->services, std::vector<std::string>{"finance"});
}

TEST(TokenVerifier, RejectsEs256SignedByAnotherKey) {
  const auto v = make_verifier({}, public_pem(ec_key()));
  EXPECT_EQ(error_of(v->verify(sign_es256(other_ec_key(), claims()), now)),
            AuthError::kBadSignature);
}

TEST(TokenVerifier, RejectsEs256SignatureInDerForm) {
  const auto v = make_verifier({}, public_pem(ec_key()));
  const std::string input = signing_input(header_for("ES256"), claims());
  EXPECT_EQ(error_of(v->verify(with_signature(input, evp_sign(ec_key(), input)), now)),
            AuthError::kBadSignature);
}

TEST(TokenVerifier, RejectsEs256WithFlippedSignatureBit) {
  const auto v = make_verifier({}, public_pem(ec_key()));
  const std::string input = signing_input(header_for("ES256"), claims());
  std::string raw = der_to_raw(evp_sign(ec_key(), input));
  ASSERT_EQ(raw.size(), 64u);
  raw[40] = static_cast<char>(raw[40] ^ 1);
  EXPECT_EQ(error_of(v->verify(with_signature(input, raw), now)), AuthError::kBadSignature);
}

TEST(TokenVerifier, RejectsRs256TokenWhenTheKeyIsEc) {
  const auto v = make_verifier({}, public_pem(ec_key()));
  EXPECT_EQ(error_of(v->verify(sign_rs256(rsa_key(), claims()), now)),
            AuthError::kUnsupportedAlgorithm);
}

TEST(TokenVerifier, LetsTheTokenAlgPickTheKeyWhenBothAreConfigured) {
  const auto v = make_verifier(std::string(kSecret), public_pem(ec_key()));
  EXPECT_TRUE(v->verify(hs_token(claims()), now).has_value());
  EXPECT_TRUE(v->verify(sign_es256(ec_key(), claims()), now).has_value());
  EXPECT_EQ(error_of(v->verify(sign_rs256(rsa_key(), claims()), now)),
            AuthError::kUnsupportedAlgorithm);
}

// --- Keys -----------------------------------------------------------------------------------

Result<std::shared_ptr<const TokenVerifier>> create_with_pem(std::string pem) {
  return TokenVerifier::create(VerifierOptions{{}, std::move(pem), seconds(30)});
}

TEST(TokenVerifierCreate, RejectsConfigurationWithoutAnyKey) {
  const auto r = TokenVerifier::create(VerifierOptions{});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), AuthError::kBadKey);
}

TEST(TokenVerifierCreate, RejectsUnparseablePem) {
  for (const char* pem :
       {"not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}) {
    const auto r = create_with_pem(pem);
    ASSERT_FALSE(r.has_value()) << pem;
    EXPECT_EQ(r.error(), AuthError::kBadKey);
  }
}

TEST(TokenVerifierCreate, RejectsPrivateKeyPem) {
  const auto r = create_with_pem(private_pem(ec_key()));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), AuthError::kBadKey);
}

TEST(TokenVerifierCreate, RejectsRsaKeysUnder2048Bits) {
  const auto r = create_with_pem(public_pem(generate_rsa(1024)));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), AuthError::kBadKey);
}

TEST(TokenVerifierCreate, RejectsCurvesOtherThanP256) {
  const auto r = create_with_pem(public_pem(generate_ec("P-384")));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), AuthError::kBadKey);
}

TEST(TokenVerifierCreate, RejectsEd25519Keys) {
  const auto r = create_with_pem(public_pem(generate("ED25519")));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), AuthError::kBadKey);
}

TEST(TokenVerifierCreate, RejectsBadPemEvenWhenASecretIsSet) {
  const auto r = TokenVerifier::create(VerifierOptions{std::string(kSecret), "junk", seconds(30)});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), AuthError::kBadKey);
}

// --- Claims ---------------------------------------------------------------------------------

Result<Principal> verify_claims(std::string_view claims_json) {
  return hs_verifier()->verify(hs_token(claims_json), now);
}

std::string exp_claim() {
  return "\"exp\":" + std::to_string(kNow + 60);
}

TEST(TokenClaims, AcceptsOrgIdAsString) {
  const auto r = verify_claims(R"({"sub":"u","org_id":"acme-eu",)" + exp_claim() + "}");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->org, "acme-eu");
}

TEST(TokenClaims, PrintsIntegerOrgIdInDecimal) {
  const auto big =
      verify_claims(R"({"sub":"u","org_id":18446744073709551615,)" + exp_claim() + "}");
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->org, "18446744073709551615");
  const auto zero = verify_claims(R"({"sub":"u","org_id":0,)" + exp_claim() + "}");
  ASSERT_TRUE(zero.has_value());
  EXPECT_EQ(zero->org, "0");
}

// Regression: the token accepted org ids that publish's orgId refuses, so such a user could
// connect to an org no producer could ever address. Both now follow core's org id rule.
TEST(TokenClaims, RejectsOrgIdsThatPublishCouldNeverAddress) {
  for (std::string org :
       {std::string("-7"), std::string("-1"), std::string("-9223372036854775808"),
        std::string(R"("a\nb")"), std::string(R"("\u0000")"), std::string(R"("tab\there")"),
        std::string(R"("del\u007f")"), std::string(R"("esc\u001b[31m")")}) {
    EXPECT_EQ(error_of(verify_claims(R"({"sub":"u","org_id":)" + org + "," + exp_claim() + "}")),
              AuthError::kBadClaim)
        << org;
  }
  // The string form of a negative number is an ordinary string id, for both sides.
  const auto text = verify_claims(R"({"sub":"u","org_id":"-7",)" + exp_claim() + "}");
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->org, "-7");
}

TEST(TokenClaims, NamesAnOrgExactlyAsCoresOrgIdRuleDoes) {
  for (const std::string_view org : {"456", "acme-eu", "caf\xc3\xa9", "a b"}) {
    const auto r =
        verify_claims(R"({"sub":"u","org_id":")" + std::string(org) + "\"," + exp_claim() + "}");
    ASSERT_TRUE(r.has_value()) << org;
    EXPECT_EQ(r->org, core::org_id_from_text(org));
  }
  const auto number = verify_claims(R"({"sub":"u","org_id":456,)" + exp_claim() + "}");
  ASSERT_TRUE(number.has_value());
  EXPECT_EQ(number->org, core::org_id_from_integer(std::int64_t{456}));
}

TEST(TokenClaims, PrintsIntegerSubInDecimal) {
  const auto r = verify_claims(R"({"sub":1234567890123,"org_id":1,)" + exp_claim() + "}");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->user, "1234567890123");
}

TEST(TokenClaims, RejectsOrgIdOfWrongTypeOrSize) {
  for (std::string org :
       {std::string("\"\""), std::string("4.5"), std::string("true"), std::string("null"),
        std::string("[1]"), std::string("{}"), "\"" + std::string(129, 'o') + "\""}) {
    EXPECT_EQ(error_of(verify_claims(R"({"sub":"u","org_id":)" + org + "," + exp_claim() + "}")),
              AuthError::kBadClaim)
        << org;
  }
  const auto longest =
      verify_claims(R"({"sub":"u","org_id":")" + std::string(128, 'o') + "\"," + exp_claim() + "}");
  ASSERT_TRUE(longest.has_value());
  EXPECT_EQ(longest->org.size(), 128u);
}

TEST(TokenClaims, RejectsSubOfWrongTypeOrSize) {
  for (std::string sub : {std::string("\"\""), std::string("1.5"), std::string("false"),
                          std::string("null"), "\"" + std::string(257, 's') + "\""}) {
    EXPECT_EQ(error_of(verify_claims(R"({"org_id":1,"sub":)" + sub + "," + exp_claim() + "}")),
              AuthError::kBadClaim)
        << sub;
  }
  const auto longest =
      verify_claims(R"({"org_id":1,"sub":")" + std::string(256, 's') + "\"," + exp_claim() + "}");
  ASSERT_TRUE(longest.has_value());
  EXPECT_EQ(longest->user.size(), 256u);
}

TEST(TokenClaims, RejectsSubWithControlCharacters) {
  // A user a targeted publish could never name: its userId refuses them.
  for (std::string escaped : {"\\u0000", "\\n", "\\t", "\\u001b", "\\u007f"}) {
    EXPECT_EQ(
        error_of(verify_claims(R"({"org_id":1,"sub":"a)" + escaped + R"(b",)" + exp_claim() + "}")),
        AuthError::kBadClaim)
        << escaped;
  }
  const auto unicode = verify_claims(R"({"org_id":1,"sub":"Caf\u00e9",)" + exp_claim() + "}");
  ASSERT_TRUE(unicode.has_value());
  EXPECT_EQ(unicode->user, "Caf\xc3\xa9");
}

TEST(TokenClaims, ReportsMissingRequiredClaims) {
  EXPECT_EQ(error_of(verify_claims(R"({"org_id":1,)" + exp_claim() + "}")),
            AuthError::kMissingClaim);
  EXPECT_EQ(error_of(verify_claims(R"({"sub":"u",)" + exp_claim() + "}")),
            AuthError::kMissingClaim);
  EXPECT_EQ(error_of(verify_claims(R"({"sub":"u","org_id":1})")), AuthError::kMissingClaim);
}

TEST(TokenClaims, RejectsNonNumericExpAndNbf) {
  EXPECT_EQ(error_of(verify_claims(R"({"sub":"u","org_id":1,"exp":"1800000000"})")),
            AuthError::kBadClaim);
  EXPECT_EQ(error_of(verify_claims(R"({"sub":"u","org_id":1,"exp":null})")), AuthError::kBadClaim);
  EXPECT_EQ(error_of(verify_claims(claims(R"("nbf":"0")"))), AuthError::kBadClaim);
}

TEST(TokenClaims, ReadsServicesAndRooms) {
  const auto r = verify_claims(claims(R"("services":["finance","hr"],"rooms":["general"])"));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->services, (std::vector<std::string>{"finance", "hr"}));
  EXPECT_EQ(r->rooms, std::vector<std::string>{"general"});
}

TEST(TokenClaims, KeepsAnEmptyServicesListDistinctFromAbsent) {
  const auto r = verify_claims(claims(R"("services":[])"));
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->services.has_value());
  EXPECT_TRUE(r->services->empty());
  EXPECT_FALSE(r->rooms.has_value());
}

TEST(TokenClaims, RejectsServicesAndRoomsOfWrongType) {
  for (const char* extra : {R"("services":"finance")", R"("services":[1])", R"("services":null)",
                            R"("rooms":{"a":1})", R"("rooms":["ok",null])"}) {
    EXPECT_EQ(error_of(verify_claims(claims(extra))), AuthError::kBadClaim) << extra;
  }
}

TEST(TokenClaims, IgnoresUnknownClaims) {
  const auto r = verify_claims(claims(R"("iat":1,"iss":"x","aud":["y"],"nested":{"a":[1,2]})"));
  EXPECT_TRUE(r.has_value());
}

// --- Malformed tokens -----------------------------------------------------------------------

TEST(TokenVerifier, ReportsEmptyTokenAsMissing) {
  EXPECT_EQ(error_of(hs_verifier()->verify("", now)), AuthError::kMissingToken);
}

TEST(TokenVerifier, RejectsWrongPartCount) {
  const std::string token = hs_token(claims());
  const std::string two_parts = token.substr(0, token.rfind('.'));
  for (const std::string& t : {two_parts, token + ".extra", std::string("abc"), std::string(".."),
                               std::string("a.b.c.d")}) {
    EXPECT_EQ(error_of(hs_verifier()->verify(t, now)), AuthError::kMalformedToken) << t;
  }
}

TEST(TokenVerifier, RejectsBadBase64url) {
  const std::string token = hs_token(claims());
  for (const std::string& t : {"!!!" + token.substr(token.find('.')), "eyJ+" + token,
                               token.substr(0, token.rfind('.')) + ".a=b", "A" + token}) {
    EXPECT_EQ(error_of(hs_verifier()->verify(t, now)), AuthError::kMalformedToken) << t;
  }
}

TEST(TokenVerifier, RejectsNonJsonHeader) {
  const std::string token = with_signature(signing_input("not json", claims()), "sig");
  EXPECT_EQ(error_of(hs_verifier()->verify(token, now)), AuthError::kMalformedToken);
}

TEST(TokenVerifier, RejectsSignedNonJsonOrNonObjectPayload) {
  for (const char* payload : {"not json", "[1,2]", "\"str\"", "", "{\"sub\":"}) {
    EXPECT_EQ(error_of(hs_verifier()->verify(hs_token(payload), now)), AuthError::kMalformedToken)
        << payload;
  }
}

TEST(TokenVerifier, AcceptsTokensUpTo8KiBAndRejectsLonger) {
  std::string pad;
  while (hs_token(claims("\"pad\":\"" + pad + "\"")).size() < 8192) pad += 'p';
  const std::string at_limit = hs_token(claims("\"pad\":\"" + pad + "\""));
  ASSERT_EQ(at_limit.size(), 8192u);
  EXPECT_TRUE(hs_verifier()->verify(at_limit, now).has_value());

  const std::string over = hs_token(claims("\"pad\":\"" + pad + "p\""));
  ASSERT_GT(over.size(), 8192u);
  EXPECT_EQ(error_of(hs_verifier()->verify(over, now)), AuthError::kMalformedToken);
}

// --- Errors ---------------------------------------------------------------------------------

TEST(AuthError, HasStableReasons) {
  EXPECT_EQ(to_string(AuthError::kMissingToken), "missing_token");
  EXPECT_EQ(to_string(AuthError::kMalformedToken), "malformed_token");
  EXPECT_EQ(to_string(AuthError::kUnsupportedAlgorithm), "unsupported_algorithm");
  EXPECT_EQ(to_string(AuthError::kBadSignature), "bad_signature");
  EXPECT_EQ(to_string(AuthError::kExpired), "token_expired");
  EXPECT_EQ(to_string(AuthError::kNotYetValid), "token_not_yet_valid");
  EXPECT_EQ(to_string(AuthError::kMissingClaim), "missing_claim");
  EXPECT_EQ(to_string(AuthError::kBadClaim), "bad_claim");
  EXPECT_EQ(to_string(AuthError::kBadKey), "bad_key");
}

TEST(AuthError, ConvertsToAnErrorCodeInTheAuthDomain) {
  const ErrorCode ec = AuthError::kExpired;
  EXPECT_EQ(core::reason(ec), "token_expired");
  EXPECT_STREQ(ec.category().name(), "auth");
  EXPECT_EQ(ec, AuthError::kExpired);
}

}  // namespace
}  // namespace sg::auth
