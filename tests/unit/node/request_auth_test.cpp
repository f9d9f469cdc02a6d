#include "node/request_auth.hpp"

#include <gtest/gtest.h>

namespace sg::node {
namespace {

using net::HttpRequest;

HttpRequest request(std::string_view authorization, std::string_view query) {
  HttpRequest req;
  req.method = "GET";
  req.path = "/v2/realtime/stream";
  req.authorization = authorization;
  req.query = query;
  return req;
}

TEST(RequestToken, PrefersTheBearerHeaderOverTheQuery) {
  EXPECT_EQ(request_token(request("Bearer h.e.ader", "access_token=q.u.ery")), "h.e.ader");
  EXPECT_EQ(request_token(request("bearer   h.e.ader", "access_token=q.u.ery")), "h.e.ader");
}

TEST(RequestToken, FallsBackToTheQueryWithoutABearerHeader) {
  EXPECT_EQ(request_token(request("", "access_token=q.u.ery")), "q.u.ery");
  EXPECT_EQ(request_token(request("Basic dXNlcjpwYXNz", "access_token=q.u.ery")), "q.u.ery");
  EXPECT_EQ(request_token(request("Bearer", "x=1&access_token=q%2Eu.ery")), "q.u.ery");
}

TEST(RequestToken, IsEmptyWhenNeitherCarriesOne) {
  EXPECT_EQ(request_token(request("", "")), "");
  EXPECT_EQ(request_token(request("Basic dXNlcjpwYXNz", "token=x")), "");
}

}  // namespace
}  // namespace sg::node
