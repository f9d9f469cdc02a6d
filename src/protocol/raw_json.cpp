#include "protocol/raw_json.hpp"

#include "protocol/json_fields.hpp"

#include <algorithm>
#include <cstring>

namespace sg::protocol::detail {

namespace {

namespace json = boost::json;

// JSON's whole set of insignificant whitespace (RFC 8259 §2); Boost.JSON accepts no other.
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Just past the string that opens at `open`: its closing quote is the first one after it that
// an odd run of backslashes doesn't escape. The end of `value` if it has none.
std::size_t string_end(std::string_view value, std::size_t open) {
  std::size_t from = open + 1;
  for (;;) {
    const std::size_t quote = value.find('"', from);
    if (quote == std::string_view::npos) return value.size();
    std::size_t backslashes = 0;
    while (quote - backslashes > open + 1 && value[quote - backslashes - 1] == '\\') {
      ++backslashes;
    }
    if (backslashes % 2 == 0) return quote + 1;
    from = quote + 1;
  }
}

// A position in `text` that moves over whole tokens. Every step checks bounds, so input the
// caller promised was valid but isn't yields a failed step, not an out-of-bounds read.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  std::size_t pos() const { return pos_; }
  std::string_view since(std::size_t from) const { return text_.substr(from, pos_ - from); }

  void skip_space() {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
  }

  bool consume(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  // Moves past the string token starting here, quotes included.
  bool skip_string() {
    if (!consume('"')) return false;
    const std::size_t start = pos_;
    // memchr to each quote (strings are most of a publish's bytes): a quote ends the string
    // unless an odd run of backslashes precedes it inside the string. The hex digits of
    // \uXXXX need no special case, they can't be a quote or a backslash.
    while (pos_ < text_.size()) {
      const void* hit = std::memchr(text_.data() + pos_, '"', text_.size() - pos_);
      if (hit == nullptr) break;
      const std::size_t quote =
          static_cast<std::size_t>(static_cast<const char*>(hit) - text_.data());
      std::size_t backslashes = 0;
      while (quote - backslashes > start && text_[quote - backslashes - 1] == '\\') ++backslashes;
      pos_ = quote + 1;
      if (backslashes % 2 == 0) return true;
    }
    pos_ = text_.size();
    return false;
  }

  // Moves past the value starting here, of any kind.
  bool skip_value() {
    if (pos_ >= text_.size()) return false;
    switch (text_[pos_]) {
      case '"':
        return skip_string();
      case '{':
      case '[':
        return skip_container();
      default:
        return skip_scalar();
    }
  }

 private:
  // Counts brackets outside strings instead of recursing: the text is known to be balanced,
  // and a loop has no stack depth to reason about.
  bool skip_container() {
    std::size_t depth = 0;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '"') {
        if (!skip_string()) return false;
        continue;
      }
      ++pos_;
      if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return true;
      }
    }
    return false;
  }

  // A number, true, false or null: everything up to the next delimiter.
  bool skip_scalar() {
    const std::size_t from = pos_;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (is_space(c) || c == ',' || c == ':' || c == ']' || c == '}') break;
      ++pos_;
    }
    return pos_ > from;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// `token` is a key with its quotes (so at least 2 bytes). Keys almost never hold escapes, so only
// then is it decoded, and by Boost.JSON itself, so that it means exactly what it meant to the DOM.
bool key_equals(std::string_view token, std::string_view key) {
  const std::string_view inner = token.substr(1, token.size() - 2);
  if (inner.find('\\') == std::string_view::npos) return inner == key;
  unsigned char buffer[256];
  json::monotonic_resource resource(buffer, sizeof buffer);
  boost::system::error_code ec;
  const json::value v =
      json::parse(json::string_view(token.data(), token.size()), ec, json::storage_ptr(&resource));
  return !ec && v.is_string() && view(v.get_string()) == key;
}

}  // namespace

Result<std::vector<std::string_view>> raw_array_elements(std::string_view text) {
  Cursor in(text);
  in.skip_space();
  if (!in.consume('[')) return ProtocolError::kMalformedJson;
  std::vector<std::string_view> elements;
  in.skip_space();
  if (in.consume(']')) return elements;
  for (;;) {
    in.skip_space();
    const std::size_t from = in.pos();
    if (!in.skip_value()) return ProtocolError::kMalformedJson;
    elements.push_back(in.since(from));
    in.skip_space();
    if (in.consume(']')) return elements;
    if (!in.consume(',')) return ProtocolError::kMalformedJson;
  }
}

Result<std::string_view> raw_member(std::string_view text, std::string_view key) {
  Cursor in(text);
  in.skip_space();
  if (!in.consume('{')) return ProtocolError::kMalformedJson;
  std::string_view found;
  in.skip_space();
  if (in.consume('}')) return found;
  for (;;) {
    in.skip_space();
    const std::size_t key_from = in.pos();
    if (!in.skip_string()) return ProtocolError::kMalformedJson;
    const std::string_view name = in.since(key_from);
    in.skip_space();
    if (!in.consume(':')) return ProtocolError::kMalformedJson;
    in.skip_space();
    const std::size_t value_from = in.pos();
    if (!in.skip_value()) return ProtocolError::kMalformedJson;
    // No early return: a later duplicate replaces this one, as it does in the DOM.
    if (key_equals(name, key)) found = in.since(value_from);
    in.skip_space();
    if (in.consume('}')) return found;
    if (!in.consume(',')) return ProtocolError::kMalformedJson;
  }
}

std::string minify_json(std::string_view value, std::size_t headroom) {
  // One pass that copies only where whitespace outside a string is left out: what a serializer
  // writes has none, so the usual "data" is one copy. This runs once per published event.
  std::string out;
  out.reserve(value.size() + headroom);
  const std::size_t n = value.size();
  std::size_t copied = 0;  // value[0, copied) is in `out` or left out
  std::size_t i = 0;
  while (i < n) {
    const char c = value[i];
    if (c == '"') {
      i = string_end(value, i);
    } else if (is_space(c)) {
      out.append(value.data() + copied, i - copied);
      while (i < n && is_space(value[i])) ++i;
      copied = i;
    } else {
      ++i;
    }
  }
  out.append(value.data() + copied, n - copied);
  return out;
}

}  // namespace sg::protocol::detail
