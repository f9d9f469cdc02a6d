#include "net/request_parser.hpp"

#include <gtest/gtest.h>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <string>
#include <string_view>

namespace sg::net {
namespace {

namespace http = boost::beast::http;

// Feeds `bytes` as HttpSession does: the head in one put, then the rest.
boost::beast::error_code put_all(RequestParser& p, std::string_view bytes, bool to_string = true) {
  boost::beast::error_code ec;
  std::size_t used = p.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec || !p.is_header_done()) return ec;
  if (to_string) p.read_body_to_string();
  p.eager(true);
  while (!ec && !p.is_done() && used < bytes.size()) {
    used += p.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
  }
  return ec;
}

TEST(RequestParser, KeepsTheRequestLineAndFieldsAsBeastsMessageDid) {
  RequestHeadBuffer buffer;
  RequestParser p(buffer);
  const std::string head =
      "POST /v2/realtime/publish?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization:  Bearer k \r\n"
      "X-Custom: one\r\nx-custom: two\r\nContent-Length: 2\r\n\r\n{}";
  ASSERT_FALSE(put_all(p, head));
  ASSERT_TRUE(p.is_done());
  EXPECT_EQ(p.method(), http::verb::post);
  EXPECT_EQ(p.method_string(), "POST");
  EXPECT_EQ(p.target(), "/v2/realtime/publish?x=1");
  EXPECT_EQ(p.field(http::field::authorization), "Bearer k");
  // Names compare case-insensitively; of repeated fields the first counts.
  EXPECT_EQ(p.field("X-CUSTOM"), "one");
  EXPECT_EQ(p.field("absent"), "");
  EXPECT_EQ(p.body(), "{}");
  EXPECT_TRUE(p.message_keep_alive());
  std::size_t n = 0;
  p.for_each_field([&n](http::field, std::string_view) { ++n; });
  EXPECT_EQ(n, 5u);
}

TEST(RequestParser, KeepAliveFollowsTheVersionAndTheFirstConnectionField) {
  const auto keep_alive = [](std::string_view head) {
    RequestHeadBuffer buffer;
    RequestParser p(buffer);
    EXPECT_FALSE(put_all(p, head)) << head;
    return p.message_keep_alive();
  };
  EXPECT_TRUE(keep_alive("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
  EXPECT_FALSE(keep_alive("GET / HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_TRUE(keep_alive("GET / HTTP/1.1\r\nConnection: upgrade\r\nConnection: close\r\n\r\n"));
}

TEST(RequestParser, ReadsAChunkedBodyIntoTheString) {
  RequestHeadBuffer buffer;
  RequestParser p(buffer);
  ASSERT_FALSE(put_all(p,
                       "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  ASSERT_TRUE(p.is_done());
  EXPECT_TRUE(p.chunked());
  EXPECT_EQ(p.body(), "abcde");
}

TEST(RequestParser, EnforcesTheBodyLimit) {
  RequestHeadBuffer buffer;
  RequestParser p(buffer);
  p.body_limit(3);
  EXPECT_EQ(put_all(p, "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"),
            http::error::body_limit);
}

TEST(RequestParser, FillsThePieceAndAsksForAnotherWhenItIsFull) {
  RequestHeadBuffer buffer;
  RequestParser p(buffer);
  const std::string bytes = "PATCH /u HTTP/1.1\r\nContent-Length: 6\r\n\r\nabcdef";
  boost::beast::error_code ec;
  std::size_t used = p.put(boost::asio::buffer(bytes), ec);
  ASSERT_FALSE(ec);
  ASSERT_TRUE(p.is_header_done());
  char piece[4];
  p.read_body_to(piece, sizeof piece);
  p.eager(true);
  used += p.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
  EXPECT_EQ(ec, http::error::need_buffer);
  EXPECT_EQ(p.piece_left(), 0u);
  EXPECT_EQ(std::string_view(piece, 4), "abcd");
  p.read_body_to(piece, sizeof piece);
  ec = {};
  used += p.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(p.is_done());
  EXPECT_EQ(sizeof piece - p.piece_left(), 2u);
  EXPECT_EQ(std::string_view(piece, 2), "ef");
  EXPECT_EQ(used, bytes.size());
}

TEST(RequestParser, ANewRequestOnTheSameBufferStartsEmptyAndKeepsTheCapacity) {
  RequestHeadBuffer buffer;
  {
    RequestParser p(buffer);
    ASSERT_FALSE(put_all(p, "GET /a HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n"));
  }
  const std::size_t capacity = buffer.text.capacity();
  RequestParser p(buffer);
  ASSERT_FALSE(put_all(p, "GET /b HTTP/1.1\r\nC: 3\r\n\r\n"));
  EXPECT_EQ(p.target(), "/b");
  EXPECT_EQ(p.field("A"), "");
  EXPECT_EQ(p.field("c"), "3");
  EXPECT_EQ(buffer.text.capacity(), capacity);
}

TEST(RequestParser, ABigRequestsRoomIsNotKeptForTheNext) {
  RequestHeadBuffer buffer;
  {
    RequestParser p(buffer);
    p.body_limit(1 << 20);
    const std::string body(100000, 'x');
    ASSERT_FALSE(put_all(p, "POST / HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                                "\r\n\r\n" + body));
    ASSERT_EQ(p.body().size(), body.size());
  }
  RequestParser p(buffer);
  EXPECT_LE(buffer.body.capacity(), RequestHeadBuffer::kKeptBytes);
  EXPECT_LE(buffer.text.capacity(), RequestHeadBuffer::kKeptBytes);
}

}  // namespace
}  // namespace sg::net
