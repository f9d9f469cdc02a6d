// Feeds arbitrary bytes to the request-head framing check and, differentially, to Beast's
// request parser. Nothing may crash or read out of bounds, and a head that passes the check
// and that Beast parses must be framed the one way the check promises: chunked alone or a
// Content-Length alone (never both, never a Transfer-Encoding Beast doesn't take as chunked),
// and one Host for HTTP/1.1.
#include "net/http_framing.hpp"

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

namespace http = boost::beast::http;

void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto end = sg::net::find_head_end(bytes);
  if (!end) return 0;
  require(*end <= bytes.size() && bytes.substr(*end - 4, 4) == "\r\n\r\n");
  const std::string_view head = bytes.substr(0, *end);
  if (sg::net::check_framing(head)) return 0;

  http::request_parser<http::empty_body> parser;
  boost::beast::error_code ec;
  parser.put(boost::asio::const_buffer(head.data(), head.size()), ec);
  if (ec || !parser.is_header_done()) return 0;
  const auto& msg = parser.get();
  const bool has_te = msg.count(http::field::transfer_encoding) > 0;
  const bool has_cl = msg.count(http::field::content_length) > 0;
  require(!(has_te && has_cl));
  require(has_te == parser.chunked());
  if (msg.version() >= 11) require(msg.count(http::field::host) == 1);
  return 0;
}
