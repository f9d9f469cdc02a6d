#include "auth/auth.hpp"

#include <gtest/gtest.h>

namespace sg::auth {
namespace {

TEST(OriginPolicy, AllowsEverythingWhenTheListIsEmpty) {
  const OriginPolicy policy({});
  EXPECT_TRUE(policy.allows("https://anything.test"));
  EXPECT_TRUE(policy.allows("null"));
}

TEST(OriginPolicy, TreatsOnlyBlankEntriesAsAnEmptyList) {
  const OriginPolicy policy({"", "  "});
  EXPECT_TRUE(policy.allows("https://anything.test"));
}

TEST(OriginPolicy, AllowsEverythingWithAStar) {
  const OriginPolicy policy({"https://app.example.com", "*"});
  EXPECT_TRUE(policy.allows("http://evil.test"));
}

TEST(OriginPolicy, AllowsRequestsWithoutOrigin) {
  const OriginPolicy policy({"https://app.example.com"});
  EXPECT_TRUE(policy.allows(std::nullopt));
}

TEST(OriginPolicy, MatchesExactOriginsCaseInsensitively) {
  const OriginPolicy policy({"https://App.Example.com"});
  EXPECT_TRUE(policy.allows("https://app.example.com"));
  EXPECT_TRUE(policy.allows("HTTPS://APP.EXAMPLE.COM"));
}

TEST(OriginPolicy, RejectsOtherSchemesHostsAndPorts) {
  const OriginPolicy policy({"https://app.example.com"});
  EXPECT_FALSE(policy.allows("http://app.example.com"));
  EXPECT_FALSE(policy.allows("https://app.example.com:8443"));
  EXPECT_FALSE(policy.allows("https://app.example.com.evil.test"));
  EXPECT_FALSE(policy.allows("https://evilapp.example.com"));
  EXPECT_FALSE(policy.allows("https://example.com"));
  EXPECT_FALSE(policy.allows(""));
  EXPECT_FALSE(policy.allows("null"));
}

TEST(OriginPolicy, TreatsDefaultPortsAsImplied) {
  const OriginPolicy policy({"https://app.example.com:443", "http://localhost:3000"});
  EXPECT_TRUE(policy.allows("https://app.example.com"));
  EXPECT_TRUE(policy.allows("https://app.example.com:443"));
  EXPECT_TRUE(policy.allows("http://localhost:3000"));
  EXPECT_FALSE(policy.allows("http://localhost"));
  EXPECT_FALSE(policy.allows("http://localhost:3001"));
}

TEST(OriginPolicy, IgnoresATrailingSlashInConfiguredEntries) {
  const OriginPolicy policy({"https://app.example.com/"});
  EXPECT_TRUE(policy.allows("https://app.example.com"));
}

TEST(OriginPolicy, RejectsOriginsWithPathsOrCredentials) {
  const OriginPolicy policy({"https://app.example.com"});
  EXPECT_FALSE(policy.allows("https://app.example.com/"));
  EXPECT_FALSE(policy.allows("https://app.example.com/path"));
  EXPECT_FALSE(policy.allows("https://user@app.example.com"));
}

TEST(OriginPolicy, WildcardMatchesAnySubdomainButNotTheBareDomain) {
  const OriginPolicy policy({"https://*.example.com"});
  EXPECT_TRUE(policy.allows("https://app.example.com"));
  EXPECT_TRUE(policy.allows("https://a.b.example.com"));
  EXPECT_TRUE(policy.allows("https://APP.Example.COM"));
  EXPECT_FALSE(policy.allows("https://example.com"));
  EXPECT_FALSE(policy.allows("https://.example.com"));
  EXPECT_FALSE(policy.allows("https://evilexample.com"));
  EXPECT_FALSE(policy.allows("https://example.com.evil.test"));
  EXPECT_FALSE(policy.allows("http://app.example.com"));
  EXPECT_FALSE(policy.allows("https://app.example.com:8443"));
}

TEST(OriginPolicy, WildcardKeepsItsPort) {
  const OriginPolicy policy({"http://*.dev.test:8080"});
  EXPECT_TRUE(policy.allows("http://a.dev.test:8080"));
  EXPECT_FALSE(policy.allows("http://a.dev.test"));
}

TEST(OriginPolicy, MatchesIpv6Literals) {
  const OriginPolicy policy({"http://[::1]:3000"});
  EXPECT_TRUE(policy.allows("http://[::1]:3000"));
  EXPECT_FALSE(policy.allows("http://[::2]:3000"));
}

TEST(OriginPolicy, MatchesNonUrlEntriesVerbatim) {
  const OriginPolicy policy({"null"});
  EXPECT_TRUE(policy.allows("null"));
  EXPECT_TRUE(policy.allows("NULL"));
  EXPECT_FALSE(policy.allows("https://app.example.com"));
}

}  // namespace
}  // namespace sg::auth
