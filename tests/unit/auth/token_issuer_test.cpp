// Tokens from other issuers: --jwt-audience, --jwt-issuer, --org-claim and --user-claim as the
// verifier applies them (VerifierOptions audience, issuer, org_claim, user_claim).
#include "auth/auth.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

namespace sg::auth {
namespace {

using std::chrono::seconds;
using TimePoint = std::chrono::system_clock::time_point;

constexpr std::int64_t kNow = 1'700'000'000;
const TimePoint now{seconds(kNow)};
constexpr std::string_view kSecret = "test-secret-that-is-long-enough-for-hs256!";

std::shared_ptr<const TokenVerifier> verifier(VerifierOptions o) {
  o.hs256_secret = std::string(kSecret);
  auto v = TokenVerifier::create(o);
  EXPECT_TRUE(v.has_value()) << (v ? "" : v.error().message());
  return v ? *v : nullptr;
}

// {"sub":"user-1","org_id":456,"exp":…,<extra>}
std::string claims(std::string_view extra = {}) {
  std::string out = R"({"sub":"user-1","org_id":456,"exp":)";
  out += std::to_string(kNow + 3600);
  if (!extra.empty()) out.append(",").append(extra);
  out += '}';
  return out;
}

Result<Principal> verify(const VerifierOptions& o, std::string_view claims_json) {
  return verifier(o)->verify(mint_hs256(claims_json, kSecret), now);
}

ErrorCode error_of(const Result<Principal>& r) {
  return r ? ErrorCode() : r.error();
}

// Options are set field by field: a designated initializer that leaves fields out trips
// -Wmissing-field-initializers.
VerifierOptions options(std::string audience, std::string issuer, std::string org_claim = "org_id",
                        std::string user_claim = "sub") {
  VerifierOptions o;
  o.audience = std::move(audience);
  o.issuer = std::move(issuer);
  o.org_claim = std::move(org_claim);
  o.user_claim = std::move(user_claim);
  return o;
}

const VerifierOptions kAudience = options("streamgate", "");
const VerifierOptions kIssuer = options("", "https://idp.example.com/");

TEST(TokenAudience, AcceptsAStringAudienceThatMatches) {
  EXPECT_TRUE(verify(kAudience, claims(R"("aud":"streamgate")")).has_value());
}

TEST(TokenAudience, AcceptsAnArrayNamingIt) {
  EXPECT_TRUE(verify(kAudience, claims(R"("aud":["billing","streamgate"])")).has_value());
}

TEST(TokenAudience, RejectsAnotherAudience) {
  EXPECT_EQ(error_of(verify(kAudience, claims(R"("aud":"billing")"))), AuthError::kBadAudience);
  EXPECT_EQ(error_of(verify(kAudience, claims(R"("aud":["billing"])"))), AuthError::kBadAudience);
  EXPECT_EQ(error_of(verify(kAudience, claims(R"("aud":"Streamgate")"))), AuthError::kBadAudience);
  EXPECT_EQ(error_of(verify(kAudience, claims(R"("aud":[])"))), AuthError::kBadAudience);
}

TEST(TokenAudience, RejectsAMissingOrMistypedAudience) {
  EXPECT_EQ(error_of(verify(kAudience, claims())), AuthError::kBadAudience);
  for (const char* aud : {R"("aud":null)", R"("aud":1)", R"("aud":{"a":"streamgate"})",
                          R"("aud":["streamgate",1])"}) {
    EXPECT_EQ(error_of(verify(kAudience, claims(aud))), AuthError::kBadAudience) << aud;
  }
}

TEST(TokenAudience, IsNotCheckedWhenNotConfigured) {
  EXPECT_TRUE(verify({}, claims(R"("aud":"anything")")).has_value());
  EXPECT_TRUE(verify({}, claims(R"("aud":5)")).has_value());
}

TEST(TokenIssuer, AcceptsTheConfiguredIssuer) {
  EXPECT_TRUE(verify(kIssuer, claims(R"("iss":"https://idp.example.com/")")).has_value());
}

TEST(TokenIssuer, RejectsAnotherMissingOrMistypedIssuer) {
  for (const char* iss :
       {R"("iss":"https://idp.example.com")", R"("iss":"https://evil.example.com/")",
        R"("iss":null)", R"("iss":["https://idp.example.com/"])", R"("iss":7)"}) {
    EXPECT_EQ(error_of(verify(kIssuer, claims(iss))), AuthError::kBadIssuer) << iss;
  }
  EXPECT_EQ(error_of(verify(kIssuer, claims())), AuthError::kBadIssuer);
}

TEST(TokenIssuer, IsCheckedOnlyAfterTheSignature) {
  const std::string forged =
      mint_hs256(claims(R"("iss":"x")"), "another-secret-long-enough-32bytes!");
  EXPECT_EQ(error_of(verifier(kIssuer)->verify(forged, now)), AuthError::kBadSignature);
}

TEST(TokenIssuer, AndAudienceAreBothRequiredWhenBothAreSet) {
  const VerifierOptions both = options("streamgate", "idp");
  EXPECT_TRUE(verify(both, claims(R"("iss":"idp","aud":"streamgate")")).has_value());
  EXPECT_EQ(error_of(verify(both, claims(R"("iss":"idp")"))), AuthError::kBadAudience);
  EXPECT_EQ(error_of(verify(both, claims(R"("aud":"streamgate")"))), AuthError::kBadIssuer);
}

TEST(TokenClaimNames, ReadOrgAndUserFromTheConfiguredClaims) {
  const VerifierOptions names = options("", "", "tenant", "uid");
  const auto r = verify(names, R"({"uid":"u-7","tenant":"acme","exp":)" +
                                   std::to_string(kNow + 60) + R"(,"sub":"ignored","org_id":1})");
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->user, "u-7");
  EXPECT_EQ(r->org, "acme");
}

TEST(TokenClaimNames, ApplyTheSameRulesAsTheDefaults) {
  const VerifierOptions names = options("", "", "tenant", "uid");
  // The default claims don't stand in for the configured ones.
  EXPECT_EQ(error_of(verify(names, claims())), AuthError::kMissingClaim);
  const std::string exp = R"(,"exp":)" + std::to_string(kNow + 60) + "}";
  EXPECT_EQ(error_of(verify(names, R"({"uid":"u","tenant":-1)" + exp)), AuthError::kBadClaim);
  EXPECT_EQ(error_of(verify(names, R"({"uid":"","tenant":1)" + exp)), AuthError::kBadClaim);
  const auto numeric = verify(names, R"({"uid":42,"tenant":9)" + exp);
  ASSERT_TRUE(numeric.has_value());
  EXPECT_EQ(numeric->user, "42");
  EXPECT_EQ(numeric->org, "9");
}

TEST(TokenClaimNames, MustNotBeEmpty) {
  VerifierOptions no_org = options("", "", "", "sub");
  no_org.hs256_secret = std::string(kSecret);
  const auto v = TokenVerifier::create(no_org);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error(), AuthError::kBadKey);
  VerifierOptions no_user = options("", "", "org_id", "");
  no_user.hs256_secret = std::string(kSecret);
  EXPECT_FALSE(TokenVerifier::create(no_user).has_value());
}

TEST(AuthError, NamesTheIssuerErrors) {
  EXPECT_EQ(to_string(AuthError::kBadAudience), "bad_audience");
  EXPECT_EQ(to_string(AuthError::kBadIssuer), "bad_issuer");
}

}  // namespace
}  // namespace sg::auth
