#include "net/http_types.hpp"

#include <gtest/gtest.h>
#include <boost/beast/core/ostream.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <functional>
#include <memory>
#include <sstream>
#include <vector>

namespace sg::net {
namespace {

// Records where it ran: inside the Reply's own bytes means it was kept in place.
struct WhereProbe {
  const void** where;
  std::shared_ptr<int> keep;  // what the HTTP session's reply holds: itself
  void operator()(HttpResponse) const { *where = this; }
};

bool inside(const void* p, const Reply& reply) {
  const auto* begin = reinterpret_cast<const unsigned char*>(&reply);
  const auto* at = static_cast<const unsigned char*>(p);
  return at >= begin && at < begin + sizeof(Reply);
}

TEST(Reply, KeepsTheSessionsCallableInPlaceAndABiggerOneOnTheHeap) {
  const void* where = nullptr;
  const Reply small = WhereProbe{&where, std::make_shared<int>(1)};
  small(HttpResponse{});
  EXPECT_TRUE(inside(where, small));

  struct Big {
    WhereProbe probe;
    char padding[64] = {};
    void operator()(HttpResponse r) const { probe(std::move(r)); }
  };
  const Reply big = Big{WhereProbe{&where, nullptr}};
  big(HttpResponse{});
  EXPECT_FALSE(inside(where, big));
}

TEST(Reply, CopiesMovesAndReleasesLikeStdFunction) {
  auto held = std::make_shared<int>(0);
  for (const bool big : {false, true}) {
    std::vector<unsigned> statuses;
    std::array<char, 64> padding{};
    Reply a;
    if (big) {
      a = [&statuses, held, padding](HttpResponse r) {
        if (padding[0] == 0) statuses.push_back(r.status);
      };
    } else {
      a = [&statuses, held](HttpResponse r) { statuses.push_back(r.status); };
    }
    EXPECT_EQ(held.use_count(), 2);
    Reply b = a;  // a copy holds its own capture
    EXPECT_EQ(held.use_count(), 3);
    Reply c = std::move(a);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty, as std::function
    EXPECT_EQ(held.use_count(), 3);
    HttpResponse r;
    r.status = 201;
    b(r);
    c(std::move(r));
    EXPECT_EQ(statuses, (std::vector<unsigned>{201, 201}));
    b = nullptr;
    EXPECT_EQ(held.use_count(), 2);
    c = b;
    EXPECT_FALSE(c);
    EXPECT_EQ(held.use_count(), 1);
    EXPECT_THROW(c(HttpResponse{}), std::bad_function_call);
  }
}

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

// What the HTTP session wrote for `r` before append_plain_response: Beast's message and serializer.
std::string beast_bytes(const HttpResponse& r, Persistence persistence) {
  namespace http = boost::beast::http;
  http::response<http::string_body> res;
  res.version(11);
  res.result(r.status);
  if (!r.reason.empty()) res.reason(r.reason);
  res.set(http::field::server, "streamgate");
  res.set(http::field::content_type, r.content_type);
  res.set(http::field::cache_control, "no-store");
  for (const auto& [name, value] : r.headers) res.set(name, value);
  res.keep_alive(persistence != Persistence::kClose);
  if (persistence == Persistence::kKeepAlive) res.set(http::field::connection, "keep-alive");
  res.body() = r.body;
  res.prepare_payload();
  std::ostringstream out;
  out << res;
  return out.str();
}

TEST(JsonFieldError, NamesTheFieldOnlyWhenThereIsOne) {
  const HttpResponse named = json_field_error("bad_field", "say \"why\"", "orgId");
  EXPECT_EQ(named.status, 400u);
  EXPECT_EQ(named.body, R"({"error":"bad_field","message":"say \"why\"","field":"orgId"})");
  EXPECT_EQ(json_field_error("malformed_json", "not JSON", "").body,
            R"({"error":"malformed_json","message":"not JSON"})");
}

TEST(PlainResponse, IsWhatBeastWritesForTheSameAnswer) {
  std::vector<HttpResponse> answers = {json_ok(R"({"id":"1-2"})"),
                                       json_error(400, "bad_request", "malformed"),
                                       json_error(401, "invalid_api_key", "no"),
                                       json_error(404, "not_found", "no such path"),
                                       json_error(413, "payload_too_large", "too big"),
                                       json_error(503, "broker_unavailable", "down"),
                                       json_ok("")};
  HttpResponse text = json_ok("a 1\n");
  text.content_type = "text/plain; version=0.0.4; charset=utf-8";
  answers.push_back(text);
  HttpResponse odd = json_error(599, "x", "y");
  answers.push_back(odd);
  for (const auto& r : answers) {
    for (const auto persistence :
         {Persistence::kDefault, Persistence::kClose, Persistence::kKeepAlive}) {
      std::string out = "kept";
      ASSERT_TRUE(append_plain_response(r, persistence, out)) << r.status;
      EXPECT_EQ(out, "kept" + beast_bytes(r, persistence))
          << r.status << " persistence " << static_cast<int>(persistence);
    }
  }
}

TEST(PlainResponse, LeavesAnswersWithBeastsFieldRulesToBeast) {
  HttpResponse with_header = json_ok("{}");
  with_header.headers.emplace_back("Allow", "GET");
  HttpResponse with_reason = json_ok("{}");
  with_reason.status = 460;
  with_reason.reason = "Checksum Mismatch";
  HttpResponse no_content;
  no_content.status = 204;
  HttpResponse informational;
  informational.status = 101;
  HttpResponse broken_type = json_ok("{}");
  broken_type.content_type = "text/plain\r\nX-Injected: 1";
  for (const auto& r : {with_header, with_reason, no_content, informational, broken_type}) {
    std::string out = "kept";
    EXPECT_FALSE(append_plain_response(r, Persistence::kDefault, out)) << r.status;
    EXPECT_EQ(out, "kept");
  }
}

}  // namespace
}  // namespace sg::net
