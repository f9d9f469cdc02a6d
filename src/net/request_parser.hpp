// Internal to net: the HTTP session's request parser. Beast's tokenizer (basic_parser: RFC 9112
// framing, limits, chunked bodies) without Beast's field list, which allocates a node per
// header: the head's text is copied into one buffer the connection keeps between requests,
// and the body goes to a string or to the caller's piece buffer. Worker thread only.
#pragma once

// GCC 12 with -fsanitize=address inlines Beast's content-length parse into the parser's do_field
// and warns that a boost::optional there may be read uninitialized; it is set on every path that
// reads it. The warning points into Beast's headers, so it is silenced for them alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/beast/http/basic_parser.hpp>
#pragma GCC diagnostic pop
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sg::net {

// What a connection keeps of its requests between them, so that a request of the usual size
// allocates nothing: the head's text, the index of its fields and a body read whole. Reused up
// to kKeptBytes / kKeptFields.
struct RequestHeadBuffer {
  // What is kept between requests at most; a bigger request's room is freed when the next
  // one starts.
  static constexpr std::size_t kKeptBytes = 4096;
  static constexpr std::size_t kKeptFields = 32;

  struct Field {
    boost::beast::http::field id;
    std::uint32_t name_at, name_size, value_at, value_size;
  };
  std::string text;
  std::vector<Field> fields;
  std::string body;  // a body read whole (RequestParser::read_body_to_string)
};

// One request: a new parser per request (Beast's parsers can't be reset), on the connection's
// RequestHeadBuffer. Views it returns point into that buffer and are valid until the next
// request's parser is made on it.
class RequestParser : public boost::beast::http::basic_parser<true> {
 public:
  explicit RequestParser(RequestHeadBuffer& buffer);

  // The request line, once the header is done.
  boost::beast::http::verb method() const { return method_; }
  std::string_view method_string() const { return view(method_at_, method_size_); }
  std::string_view target() const { return view(target_at_, target_size_); }
  unsigned version() const { return version_; }

  // The first field named `name` (case-insensitive), as Beast's message[name] gives it; empty
  // when absent.
  std::string_view field(std::string_view name) const;
  std::string_view field(boost::beast::http::field id) const;
  // Calls f(id, value) for every field in the order received.
  template <class F>
  void for_each_field(F&& f) const {
    for (const auto& x : buffer_.fields) f(x.id, view(x.value_at, x.value_size));
  }
  // As beast's message::keep_alive(): from the version and the first Connection field.
  bool message_keep_alive() const;

  // Where the body goes, chosen after the header and before the body is parsed. With neither,
  // any body byte is an error (a header-only parse stops before the body: eager is off).
  // The whole body into buffer.body (its size is bounded by body_limit).
  void read_body_to_string();
  // The next bytes into [data, data + size), as beast's buffer_body: when it is full the parse
  // stops with http::error::need_buffer; piece_left() is what is still free in it.
  void read_body_to(char* data, std::size_t size);
  std::size_t piece_left() const { return piece_size_; }
  std::string_view body() const { return buffer_.body; }

 private:
  enum class BodyTo : unsigned char { kNowhere, kString, kPiece };

  std::string_view view(std::uint32_t at, std::uint32_t size) const {
    return {buffer_.text.data() + at, size};
  }
  std::uint32_t append(std::string_view s);

  void on_request_impl(boost::beast::http::verb method, boost::beast::string_view method_str,
                       boost::beast::string_view target, int version,
                       boost::beast::error_code& ec) override;
  void on_response_impl(int, boost::beast::string_view, int, boost::beast::error_code& ec) override;
  void on_field_impl(boost::beast::http::field name, boost::beast::string_view name_string,
                     boost::beast::string_view value, boost::beast::error_code& ec) override;
  void on_header_impl(boost::beast::error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         boost::beast::error_code& ec) override;
  std::size_t on_body_impl(boost::beast::string_view body, boost::beast::error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t size, boost::beast::string_view extensions,
                            boost::beast::error_code& ec) override;
  std::size_t on_chunk_body_impl(std::uint64_t remain, boost::beast::string_view body,
                                 boost::beast::error_code& ec) override;
  void on_finish_impl(boost::beast::error_code& ec) override;

  RequestHeadBuffer& buffer_;
  boost::beast::http::verb method_ = boost::beast::http::verb::unknown;
  std::uint32_t method_at_ = 0, method_size_ = 0, target_at_ = 0, target_size_ = 0;
  unsigned version_ = 11;
  BodyTo body_to_ = BodyTo::kNowhere;
  char* piece_ = nullptr;
  std::size_t piece_size_ = 0;
};

}  // namespace sg::net
