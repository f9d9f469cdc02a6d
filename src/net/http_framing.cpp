#include "net/http_framing.hpp"

#include <boost/beast/core/string.hpp>

namespace sg::net {

namespace {

constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kHeadEnd = "\r\n\r\n";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// RFC 3986 authority characters as a Host value may hold them: reg-name or IP literal, then an
// optional port. The structure is not checked, only that nothing outside it (space, '/', '@',
// '?', '#', control characters) can smuggle a different authority past a proxy.
bool is_host_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
  return std::string_view("-._~%!$&'()*+,;=:[]").find(c) != std::string_view::npos;
}

// "HTTP/1.1" → 11; nullopt when the request line doesn't end in HTTP/DIGIT.DIGIT (Beast
// refuses such a line, so no rule here needs to hold for it).
std::optional<int> request_version(std::string_view request_line) {
  const auto sp = request_line.rfind(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  const std::string_view v = request_line.substr(sp + 1);
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !is_digit(v[5]) || v[6] != '.' ||
      !is_digit(v[7])) {
    return std::nullopt;
  }
  return (v[5] - '0') * 10 + (v[7] - '0');
}

// What the header lines say about framing, with every Transfer-Encoding line's codings taken
// together in order, as RFC 9110 §5.3 combines repeated fields.
struct HeadFacts {
  bool obs_fold = false;
  bool content_length = false;
  bool transfer_encoding = false;
  int codings = 0;               // non-empty list elements over all Transfer-Encoding lines
  int chunked = 0;               // of which `chunked`
  bool last_is_chunked = false;  // the last element is `chunked`
  int hosts = 0;
  bool bad_host = false;
};

void add_codings(HeadFacts& facts, std::string_view value) {
  facts.transfer_encoding = true;
  for (;;) {
    const auto comma = value.find(',');
    // Empty elements ("chunked, , ") are allowed and ignored (RFC 9110 §5.6.1).
    if (const std::string_view coding = core::trim(value.substr(0, comma)); !coding.empty()) {
      ++facts.codings;
      // `chunked` has no parameters, so "chunked;x=1" is some other, unknown, coding.
      facts.last_is_chunked = boost::beast::iequals(coding, "chunked");
      if (facts.last_is_chunked) ++facts.chunked;
    }
    if (comma == std::string_view::npos) return;
    value.remove_prefix(comma + 1);
  }
}

HeadFacts scan_fields(std::string_view fields) {
  HeadFacts facts;
  while (!fields.empty()) {
    const auto eol = fields.find(kCrlf);
    const std::string_view line = fields.substr(0, eol);
    fields.remove_prefix(eol == std::string_view::npos ? fields.size() : eol + kCrlf.size());
    if (line.empty()) break;  // the blank line that ends the head
    // Also whitespace between the request line and the first field (RFC 9112 §2.2), which
    // some parsers take as a field of its own and others as part of the request line.
    if (line.front() == ' ' || line.front() == '\t') {
      facts.obs_fold = true;
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // not a field: Beast refuses it
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = core::trim(line.substr(colon + 1));
    if (boost::beast::iequals(name, "transfer-encoding")) {
      add_codings(facts, value);
    } else if (boost::beast::iequals(name, "content-length")) {
      facts.content_length = true;
    } else if (boost::beast::iequals(name, "host")) {
      ++facts.hosts;
      for (const char c : value) facts.bad_host = facts.bad_host || !is_host_char(c);
    }
  }
  return facts;
}

}  // namespace

std::string_view to_string(FramingError e) {
  switch (e) {
    case FramingError::kObsFold:
      return "obs_fold";
    case FramingError::kLengthWithTransferEncoding:
      return "content_length_with_transfer_encoding";
    case FramingError::kChunkedNotLast:
      return "chunked_not_last";
    case FramingError::kUnsupportedTransferCoding:
      return "unsupported_transfer_coding";
    case FramingError::kTransferEncodingInHttp10:
      return "transfer_encoding_in_http10";
    case FramingError::kMissingHost:
      return "missing_host";
    case FramingError::kDuplicateHost:
      return "duplicate_host";
    case FramingError::kBadHost:
      return "bad_host";
  }
  return "unknown";
}

std::string_view describe(FramingError e) {
  switch (e) {
    case FramingError::kObsFold:
      return "a header line starts with a space or tab (obsolete line folding is not accepted)";
    case FramingError::kLengthWithTransferEncoding:
      return "the request has both Content-Length and Transfer-Encoding";
    case FramingError::kChunkedNotLast:
      return "Transfer-Encoding must end with chunked, once";
    case FramingError::kUnsupportedTransferCoding:
      return "Transfer-Encoding names a coding other than chunked, the only one supported";
    case FramingError::kTransferEncodingInHttp10:
      return "an HTTP/1.0 request can't have Transfer-Encoding";
    case FramingError::kMissingHost:
      return "an HTTP/1.1 request must have a Host header";
    case FramingError::kDuplicateHost:
      return "the request has more than one Host header";
    case FramingError::kBadHost:
      return "the Host header is not a valid host[:port]";
  }
  return "bad request framing";
}

std::optional<std::size_t> find_head_end(std::string_view bytes, std::size_t from) {
  // The terminator may straddle the boundary of what was searched before.
  from = from > kHeadEnd.size() - 1 ? from - (kHeadEnd.size() - 1) : 0;
  const auto at = bytes.find(kHeadEnd, from);
  if (at == std::string_view::npos) return std::nullopt;
  return at + kHeadEnd.size();
}

std::optional<FramingError> check_framing(std::string_view head) {
  const auto eol = head.find(kCrlf);
  if (eol == std::string_view::npos) return std::nullopt;
  const std::optional<int> version = request_version(head.substr(0, eol));
  const HeadFacts f = scan_fields(head.substr(eol + kCrlf.size()));

  if (f.obs_fold) return FramingError::kObsFold;
  if (f.transfer_encoding) {
    if (f.content_length) return FramingError::kLengthWithTransferEncoding;
    // chunked applied twice is as undecodable as chunked in the middle (RFC 9112 §7).
    if (!f.last_is_chunked || f.chunked > 1) return FramingError::kChunkedNotLast;
    if (f.codings > f.chunked) return FramingError::kUnsupportedTransferCoding;
    if (version && *version < 11) return FramingError::kTransferEncodingInHttp10;
  }
  if (f.hosts == 0 && version && *version >= 11) return FramingError::kMissingHost;
  if (f.hosts > 1) return FramingError::kDuplicateHost;
  if (f.bad_host) return FramingError::kBadHost;
  return std::nullopt;
}

}  // namespace sg::net
