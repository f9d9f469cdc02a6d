#include "net/http_types.hpp"

#include <gtest/gtest.h>

namespace sg::net {
namespace {

TEST(QueryParam, FindsTheParameterAmongOthers) {
  EXPECT_EQ(query_param("access_token=a.b.c", "access_token"), "a.b.c");
  EXPECT_EQ(query_param("x=1&access_token=a.b.c&y=2", "access_token"), "a.b.c");
}

TEST(QueryParam, PercentDecodes) {
  EXPECT_EQ(query_param("access_token=a%2Eb%2ec", "access_token"), "a.b.c");
  EXPECT_EQ(query_param("access_token=a+b", "access_token"), "a b");
}

TEST(QueryParam, IsEmptyWhenAbsentOrMalformed) {
  EXPECT_EQ(query_param("", "access_token"), "");
  EXPECT_EQ(query_param("token=a.b.c", "access_token"), "");
  EXPECT_EQ(query_param("xaccess_token=a.b.c", "access_token"), "");
  EXPECT_EQ(query_param("access_token=abc%", "access_token"), "");
  EXPECT_EQ(query_param("access_token=abc%4", "access_token"), "");
  EXPECT_EQ(query_param("access_token=abc%zz", "access_token"), "");
}

// Regression: a query string that is a view into a larger buffer must not be read past its end.
TEST(QueryParam, ReadsOnlyTheGivenView) {
  const std::string buffer = "access_token=abc HTTP/1.1\r\nHost: x";
  EXPECT_EQ(query_param(std::string_view(buffer).substr(0, 16), "access_token"), "abc");
}

TEST(QueryParam, FindsTheNamedParameterOnlyByItsWholeName) {
  EXPECT_EQ(query_param("scope=cluster", "scope"), "cluster");
  EXPECT_EQ(query_param("xscope=a&scope=b", "scope"), "b");
  EXPECT_EQ(query_param("scopes=a", "scope"), "");
  EXPECT_EQ(query_param("orgId=o%2F1&orgId=2", "orgId"), "o/1");
}

}  // namespace
}  // namespace sg::net
