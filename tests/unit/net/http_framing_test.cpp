#include "net/http_framing.hpp"

#include <gtest/gtest.h>
// GCC 12 with -fsanitize=address inlines Beast's content-length parse into the parser's do_field
// and warns that a boost::optional there may be read uninitialized; it is set on every path that
// reads it. The warning points into Beast's headers, so it is silenced for them alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#pragma GCC diagnostic pop

#include <string>

namespace sg::net {
namespace {

namespace http = boost::beast::http;

// Beast's verdict on a head, the way HttpSession feeds it: the whole head in one put().
bool beast_accepts(std::string_view head) {
  http::request_parser<http::empty_body> parser;
  boost::beast::error_code ec;
  parser.put(boost::asio::const_buffer(head.data(), head.size()), ec);
  return !ec && parser.is_header_done();
}

std::string head(std::string_view fields, std::string_view request_line = "POST /x HTTP/1.1") {
  return std::string(request_line) + "\r\n" + std::string(fields) + "\r\n";
}

// The heads the issue found accepted: Beast takes every one of them, which is why the check
// runs before it. Each is refused, for the rule it breaks.
TEST(HttpFraming, RefusesWhatBeastAccepts) {
  const struct {
    std::string head;
    FramingError error;
  } cases[] = {
      {head("Host: a\r\nTransfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n"),
       FramingError::kLengthWithTransferEncoding},
      {head("Host: a\r\nTransfer-Encoding: gzip, chunked\r\n"),
       FramingError::kUnsupportedTransferCoding},
      {head("Host: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
       FramingError::kUnsupportedTransferCoding},
      {head("Host: a\r\nTransfer-Encoding: chunked, identity\r\n"), FramingError::kChunkedNotLast},
      {head("Host: a\r\nTransfer-Encoding: identity\r\n"), FramingError::kChunkedNotLast},
      {head("Content-Length: 0\r\n"), FramingError::kMissingHost},
      {head("Host: a\r\nHost: b\r\n"), FramingError::kDuplicateHost},
      {head("Host: a\r\nHost: a\r\n"), FramingError::kDuplicateHost},
      {head("Host: a\r\nX-Long: one\r\n two\r\nContent-Length: 0\r\n"), FramingError::kObsFold},
      {head("Host: a\r\nX-Long: one\r\n\ttwo\r\n"), FramingError::kObsFold},
      {head("Host: a\r\nTransfer-Encoding: chunked\r\n", "POST /x HTTP/1.0"),
       FramingError::kTransferEncodingInHttp10},
      {head("Host: a b\r\n"), FramingError::kBadHost},
      {head("Host: evil.example/path\r\n"), FramingError::kBadHost},
      {head("Host: user@a\r\n"), FramingError::kBadHost},
  };
  for (const auto& c : cases) {
    EXPECT_TRUE(beast_accepts(c.head)) << c.head;
    const auto got = check_framing(c.head);
    ASSERT_TRUE(got.has_value()) << c.head;
    EXPECT_EQ(*got, c.error) << c.head << " gave " << to_string(*got);
  }
}

// Beast refuses this order itself; the check doesn't depend on the order.
TEST(HttpFraming, RefusesLengthThenTransferEncoding) {
  EXPECT_EQ(check_framing(head("Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n")),
            FramingError::kLengthWithTransferEncoding);
}

TEST(HttpFraming, RefusesObsFoldBeforeTheFirstField) {
  EXPECT_EQ(check_framing("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), FramingError::kObsFold);
}

TEST(HttpFraming, RefusesChunkedTwiceAndAnEmptyCodingList) {
  EXPECT_EQ(check_framing(head("Host: a\r\nTransfer-Encoding: chunked, chunked\r\n")),
            FramingError::kChunkedNotLast);
  EXPECT_EQ(check_framing(head("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                               "chunked\r\n")),
            FramingError::kChunkedNotLast);
  EXPECT_EQ(check_framing(head("Host: a\r\nTransfer-Encoding:\r\n")),
            FramingError::kChunkedNotLast);
  EXPECT_EQ(check_framing(head("Host: a\r\nTransfer-Encoding: chunked;ext=1\r\n")),
            FramingError::kChunkedNotLast);
}

TEST(HttpFraming, MatchesHeaderNamesWithoutRegardToCase) {
  EXPECT_EQ(check_framing(head("hOsT: a\r\nTRANSFER-ENCODING: Chunked\r\ncontent-LENGTH: 3\r\n")),
            FramingError::kLengthWithTransferEncoding);
  EXPECT_EQ(check_framing(head("HOST: a\r\nhost: a\r\n")), FramingError::kDuplicateHost);
}

TEST(HttpFraming, AcceptsWellFramedRequests) {
  for (const std::string& ok : {
           head("Host: 127.0.0.1:4000\r\nContent-Length: 12\r\n"),
           head("Host: a\r\nTransfer-Encoding: chunked\r\n"),
           head("Host: a\r\nTransfer-Encoding: CHUNKED\r\n"),
           // Empty list elements are ignored (RFC 9110 §5.6.1).
           head("Host: a\r\nTransfer-Encoding: , chunked ,\r\n"),
           head("Host: a\r\nTransfer-Encoding:\tchunked\t\r\n"),
           head("Host: [::1]:8080\r\n", "GET / HTTP/1.1"),
           head("Host:\r\n", "GET / HTTP/1.1"),  // an empty authority is allowed (§3.2)
           head("Host: xn--bcher-kva.example\r\nX-Note: a  b\t c\r\n", "GET / HTTP/1.1"),
           head("", "GET / HTTP/1.0"),  // HTTP/1.0 needs no Host
           head("Host: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
                "GET /v2/realtime/stream HTTP/1.1"),
       }) {
    EXPECT_TRUE(beast_accepts(ok)) << ok;
    const auto got = check_framing(ok);
    EXPECT_FALSE(got.has_value()) << ok << " gave " << to_string(*got);
  }
}

// A field that merely mentions the names, in its name or value, is no Host or Transfer-Encoding.
TEST(HttpFraming, LooksOnlyAtWholeFieldNames) {
  EXPECT_FALSE(
      check_framing(head("Host: a\r\nX-Host: b\r\nX-Transfer-Encoding: gzip\r\n"
                         "X-Note: Transfer-Encoding: gzip\r\n")));
}

// Heads Beast refuses on its own are left to it: the check answers only for its rules.
TEST(HttpFraming, LeavesOtherSyntaxToBeast) {
  const std::string beast_refuses[] = {
      head("Host: a\r\nTransfer-Encoding : chunked\r\n"),  // space before the colon
      head("Host: a\r\n", "POST /x HTTP/x.y"),
  };
  for (const auto& h : beast_refuses) {
    EXPECT_FALSE(beast_accepts(h)) << h;
    EXPECT_FALSE(check_framing(h)) << h;
  }
}

TEST(HttpFraming, EveryErrorHasACodeAndAMessage) {
  for (int i = 1; i <= static_cast<int>(FramingError::kBadHost); ++i) {
    const auto e = static_cast<FramingError>(i);
    EXPECT_NE(to_string(e), "unknown") << i;
    EXPECT_NE(describe(e), "bad request framing") << i;
    EXPECT_EQ(make_error_code(e).message().empty(), false) << i;
  }
}

TEST(HttpFramingHeadEnd, FindsTheBlankLine) {
  EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), 27u);
  EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n"), std::nullopt);
  EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\n\n"), std::nullopt);  // Beast wants CRLF
  EXPECT_EQ(find_head_end(""), std::nullopt);
}

// The session searches again from where it stopped; a terminator split between two reads is
// still found.
TEST(HttpFramingHeadEnd, FindsATerminatorSplitAcrossReads) {
  const std::string all = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  for (std::size_t cut = 0; cut <= all.size(); ++cut) {
    const std::string_view first(all.data(), cut);
    const auto early = find_head_end(first);
    if (cut < all.size()) {
      EXPECT_EQ(early, std::nullopt) << cut;
      EXPECT_EQ(find_head_end(all, cut), all.size()) << cut;
    } else {
      EXPECT_EQ(early, all.size());
    }
  }
}

}  // namespace
}  // namespace sg::net
