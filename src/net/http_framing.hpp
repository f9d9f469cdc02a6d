// http_framing: the message-framing rules of RFC 9112 that Boost.Beast's request parser lets
// through, checked on the raw request head before Beast parses it. Beast unfolds obs-fold
// silently, frames `Transfer-Encoding: chunked, identity` by Content-Length, reads
// `gzip, chunked` as chunked and never asks for Host; behind a proxy that reads the same head
// differently each of these is request smuggling. Pure: no I/O, safe from any thread.
#pragma once

#include "core/core.hpp"

#include <cstddef>
#include <optional>
#include <string_view>

namespace sg::net {

enum class FramingError {
  kObsFold = 1,                 // a header line starts with SP or HTAB (RFC 9112 §5.2)
  kLengthWithTransferEncoding,  // Content-Length and Transfer-Encoding together (§6.1)
  kChunkedNotLast,              // a Transfer-Encoding whose last coding isn't `chunked` (§6.3)
  kUnsupportedTransferCoding,   // a coding other than `chunked`, which is all the server decodes
  kTransferEncodingInHttp10,    // HTTP/1.0 has no transfer codings (§6.1)
  kMissingHost,                 // HTTP/1.1 without Host (§3.2)
  kDuplicateHost,               // more than one Host line (§3.2)
  kBadHost,                     // a Host value that can't be a URI authority (§3.2)
};
std::string_view to_string(FramingError e);  // "obs_fold", … (the JSON "error")
std::string_view describe(FramingError e);   // the JSON "message": which rule, in words
constexpr const char* error_domain(FramingError) {
  return "http_framing";
}
SG_DECLARE_ERROR_ENUM(FramingError)

// Where the request head in `bytes` ends: one past the CRLF CRLF that closes it, as Beast
// finds it; nullopt while it hasn't arrived. `from` skips bytes already searched (a previous
// call's bytes.size()), so a head that arrives a byte at a time is searched once, not once per
// byte.
std::optional<std::size_t> find_head_end(std::string_view bytes, std::size_t from = 0);

// Checks a complete request head (request line through the blank line, as find_head_end
// delimits it) against the rules above and returns the first one broken, in the enum's order.
// Only these rules: the rest of the syntax (methods, targets, field names, Content-Length
// values) is Beast's to refuse, so a head Beast can't parse may pass here.
std::optional<FramingError> check_framing(std::string_view head);

}  // namespace sg::net

template <>
struct boost::system::is_error_code_enum<sg::net::FramingError> : std::true_type {};
