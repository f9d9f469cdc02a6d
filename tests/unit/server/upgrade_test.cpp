#include "server/upgrade.hpp"

#include <gtest/gtest.h>

namespace sg::server {
namespace {

TEST(QueryToken, FindsTheAccessTokenAmongOtherParameters) {
  EXPECT_EQ(query_token("access_token=a.b.c"), "a.b.c");
  EXPECT_EQ(query_token("x=1&access_token=a.b.c&y=2"), "a.b.c");
}

TEST(QueryToken, PercentDecodes) {
  EXPECT_EQ(query_token("access_token=a%2Eb%2ec"), "a.b.c");
  EXPECT_EQ(query_token("access_token=a+b"), "a b");
}

TEST(QueryToken, IsEmptyWhenAbsentOrMalformed) {
  EXPECT_EQ(query_token(""), "");
  EXPECT_EQ(query_token("token=a.b.c"), "");
  EXPECT_EQ(query_token("xaccess_token=a.b.c"), "");
  EXPECT_EQ(query_token("access_token=abc%"), "");
  EXPECT_EQ(query_token("access_token=abc%4"), "");
  EXPECT_EQ(query_token("access_token=abc%zz"), "");
}

// Regression: a query string that is a view into a larger buffer must not be read past its end.
TEST(QueryToken, ReadsOnlyTheGivenView) {
  const std::string buffer = "access_token=abc HTTP/1.1\r\nHost: x";
  EXPECT_EQ(query_token(std::string_view(buffer).substr(0, 16)), "abc");
}

TEST(QueryParam, FindsTheNamedParameterOnlyByItsWholeName) {
  EXPECT_EQ(query_param("scope=cluster", "scope"), "cluster");
  EXPECT_EQ(query_param("xscope=a&scope=b", "scope"), "b");
  EXPECT_EQ(query_param("scopes=a", "scope"), "");
  EXPECT_EQ(query_param("orgId=o%2F1&orgId=2", "orgId"), "o/1");
}

}  // namespace
}  // namespace sg::server
