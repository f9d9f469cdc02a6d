#include "net/request_parser.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <algorithm>
#include <cstring>

namespace sg::net {

namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;

std::string_view to_view(beast::string_view s) {
  return {s.data(), s.size()};
}

// As Beast's field list stores a value: without the spaces and tabs around it.
std::string_view trimmed(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

RequestParser::RequestParser(RequestHeadBuffer& buffer) : buffer_(buffer) {
  buffer_.text.clear();
  buffer_.fields.clear();
  buffer_.body.clear();
  // A keep-alive connection that once sent a big head or body must not hold that much while it
  // idles: only the usual request's room is kept.
  if (buffer_.text.capacity() > RequestHeadBuffer::kKeptBytes) std::string().swap(buffer_.text);
  if (buffer_.body.capacity() > RequestHeadBuffer::kKeptBytes) std::string().swap(buffer_.body);
  if (buffer_.fields.capacity() > RequestHeadBuffer::kKeptFields) {
    std::vector<RequestHeadBuffer::Field>().swap(buffer_.fields);
  }
}

std::uint32_t RequestParser::append(std::string_view s) {
  // The head is bounded by header_limit (at most --max-http-header-bytes), far below 4 GiB.
  const auto at = static_cast<std::uint32_t>(buffer_.text.size());
  buffer_.text.append(s);
  return at;
}

std::string_view RequestParser::field(std::string_view name) const {
  for (const auto& f : buffer_.fields) {
    if (beast::iequals(view(f.name_at, f.name_size), name)) return view(f.value_at, f.value_size);
  }
  return {};
}

std::string_view RequestParser::field(http::field id) const {
  for (const auto& f : buffer_.fields) {
    if (f.id == id) return view(f.value_at, f.value_size);
  }
  return {};
}

bool RequestParser::message_keep_alive() const {
  const auto it = std::find_if(buffer_.fields.begin(), buffer_.fields.end(),
                               [](const auto& f) { return f.id == http::field::connection; });
  if (version_ < 11) {
    if (it == buffer_.fields.end()) return false;
    return http::token_list(view(it->value_at, it->value_size)).exists("keep-alive");
  }
  if (it == buffer_.fields.end()) return true;
  return !http::token_list(view(it->value_at, it->value_size)).exists("close");
}

void RequestParser::read_body_to_string() {
  body_to_ = BodyTo::kString;
}

void RequestParser::read_body_to(char* data, std::size_t size) {
  body_to_ = BodyTo::kPiece;
  piece_ = data;
  piece_size_ = size;
}

void RequestParser::on_request_impl(http::verb method, beast::string_view method_str,
                                    beast::string_view target, int version, beast::error_code& ec) {
  ec = {};
  method_ = method;
  version_ = static_cast<unsigned>(version);
  method_size_ = static_cast<std::uint32_t>(method_str.size());
  method_at_ = append(to_view(method_str));
  target_size_ = static_cast<std::uint32_t>(target.size());
  target_at_ = append(to_view(target));
}

void RequestParser::on_response_impl(int, beast::string_view, int, beast::error_code& ec) {
  ec = {};
}

void RequestParser::on_field_impl(http::field name, beast::string_view name_string,
                                  beast::string_view value, beast::error_code& ec) {
  ec = {};
  // Copied: an obs-fold value is handed over in Beast's scratch buffer.
  const std::string_view v = trimmed(to_view(value));
  RequestHeadBuffer::Field f{name, 0, static_cast<std::uint32_t>(name_string.size()), 0,
                             static_cast<std::uint32_t>(v.size())};
  f.name_at = append(to_view(name_string));
  f.value_at = append(v);
  buffer_.fields.push_back(f);
}

void RequestParser::on_header_impl(beast::error_code& ec) {
  ec = {};
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                                      beast::error_code& ec) {
  ec = {};
  if (body_to_ == BodyTo::kString && content_length) {
    // body_limit already refused a length over it.
    buffer_.body.reserve(static_cast<std::size_t>(*content_length));
  }
}

std::size_t RequestParser::on_body_impl(beast::string_view body, beast::error_code& ec) {
  ec = {};
  switch (body_to_) {
    case BodyTo::kString:
      buffer_.body.append(body.data(), body.size());
      return body.size();
    case BodyTo::kPiece: {
      if (piece_ == nullptr) {
        ec = http::error::need_buffer;
        return 0;
      }
      const std::size_t n = std::min(piece_size_, body.size());
      if (n > 0) std::memcpy(piece_, body.data(), n);
      piece_ += n;
      piece_size_ -= n;
      if (n < body.size()) ec = http::error::need_buffer;
      return n;
    }
    case BodyTo::kNowhere:
      ec = http::error::unexpected_body;
      return 0;
  }
  return 0;
}

void RequestParser::on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code& ec) {
  ec = {};
}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t, beast::string_view body,
                                              beast::error_code& ec) {
  return on_body_impl(body, ec);
}

void RequestParser::on_finish_impl(beast::error_code& ec) {
  ec = {};
}

}  // namespace sg::net
