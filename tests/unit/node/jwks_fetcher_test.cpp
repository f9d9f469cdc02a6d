// --jwks-url: the URL forms the fetcher takes, and its backoff after failed fetches.
#include "node/jwks_fetcher.hpp"

#include <gtest/gtest.h>

namespace sg::node {
namespace {

using std::chrono::seconds;

TEST(JwksUrl, TakesHttpAndHttpsWithDefaultPortsAndPaths) {
  const auto plain = parse_jwks_url("http://idp.example.com/.well-known/jwks.json");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->tls);
  EXPECT_EQ(plain->host, "idp.example.com");
  EXPECT_EQ(plain->port, "80");
  EXPECT_EQ(plain->target, "/.well-known/jwks.json");

  const auto tls = parse_jwks_url("https://127.0.0.1:8443");
  ASSERT_TRUE(tls);
  EXPECT_TRUE(tls->tls);
  EXPECT_EQ(tls->host, "127.0.0.1");
  EXPECT_EQ(tls->port, "8443");
  EXPECT_EQ(tls->target, "/");

  const auto v6 = parse_jwks_url("https://[::1]/keys?tenant=a");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "443");
  EXPECT_EQ(v6->target, "/keys?tenant=a");

  const auto query = parse_jwks_url("http://h?x=1");
  ASSERT_TRUE(query);
  EXPECT_EQ(query->target, "/?x=1");
}

TEST(JwksUrl, RefusesWhatItCannotFetch) {
  for (const char* url : {"", "ftp://h/j", "http://", "http:///j", "http://user:pw@h/j",
                          "http://h:0/j", "http://h:65536/j", "http://h:80x/j", "http://[::1/j",
                          "http://[::1]x/j", "http://h/j#k", "http://h/a b", "HTTP://h/j"}) {
    EXPECT_FALSE(parse_jwks_url(url)) << url;
  }
}

TEST(JwksBackoff, DoublesFromOneSecondToAMinuteAndNeverPastTheRefresh) {
  EXPECT_EQ(jwks_backoff(1, seconds(300)), seconds(1));
  EXPECT_EQ(jwks_backoff(2, seconds(300)), seconds(2));
  EXPECT_EQ(jwks_backoff(3, seconds(300)), seconds(4));
  EXPECT_EQ(jwks_backoff(7, seconds(300)), seconds(60));
  EXPECT_EQ(jwks_backoff(1000, seconds(300)), seconds(60));
  EXPECT_EQ(jwks_backoff(5, seconds(10)), seconds(10));
  EXPECT_EQ(jwks_backoff(0, seconds(1)), seconds(1));
}

}  // namespace
}  // namespace sg::node
