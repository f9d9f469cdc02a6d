#include "core/core.hpp"

#include <cstring>

namespace sg::core {

std::string_view trim(std::string_view s, std::string_view blanks) {
  const auto first = s.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(blanks) - first + 1);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  const auto lower = [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  };
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

namespace {

// UTF-8 validator states (RFC 3629 §4). A non-accepting state says how many continuation bytes
// remain and the range the next one must fall in: the narrowed ranges after E0, ED, F0 and F4
// are what exclude overlongs, surrogates and code points above U+10FFFF.
constexpr std::uint32_t kUtf8Accept = 0;
constexpr std::uint32_t kUtf8Need1 = 1;         // 80..BF
constexpr std::uint32_t kUtf8Need2 = 2;         // 80..BF 80..BF
constexpr std::uint32_t kUtf8Need2AfterE0 = 3;  // A0..BF 80..BF
constexpr std::uint32_t kUtf8Need2AfterED = 4;  // 80..9F 80..BF
constexpr std::uint32_t kUtf8Need3 = 5;         // 80..BF 80..BF 80..BF
constexpr std::uint32_t kUtf8Need3AfterF0 = 6;  // 90..BF 80..BF 80..BF
constexpr std::uint32_t kUtf8Need3AfterF4 = 7;  // 80..8F 80..BF 80..BF
constexpr std::uint32_t kUtf8Reject = 8;        // sticky

std::uint32_t utf8_lead(unsigned char c) {
  if (c < 0x80) return kUtf8Accept;
  if (c < 0xC2) return kUtf8Reject;  // stray continuation byte, or overlong C0/C1 lead
  if (c < 0xE0) return kUtf8Need1;
  if (c == 0xE0) return kUtf8Need2AfterE0;
  if (c == 0xED) return kUtf8Need2AfterED;
  if (c < 0xF0) return kUtf8Need2;
  if (c == 0xF0) return kUtf8Need3AfterF0;
  if (c < 0xF4) return kUtf8Need3;
  if (c == 0xF4) return kUtf8Need3AfterF4;
  return kUtf8Reject;  // F5..FF: beyond U+10FFFF or the old 5- and 6-byte forms
}

// The state after byte c in `state`, which is neither accepting nor rejecting.
std::uint32_t utf8_trail(std::uint32_t state, unsigned char c) {
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  std::uint32_t next = kUtf8Accept;
  switch (state) {
    case kUtf8Need1:
      break;
    case kUtf8Need2:
      next = kUtf8Need1;
      break;
    case kUtf8Need2AfterE0:
      lo = 0xA0;
      next = kUtf8Need1;
      break;
    case kUtf8Need2AfterED:
      hi = 0x9F;
      next = kUtf8Need1;
      break;
    case kUtf8Need3:
      next = kUtf8Need2;
      break;
    case kUtf8Need3AfterF0:
      lo = 0x90;
      next = kUtf8Need2;
      break;
    case kUtf8Need3AfterF4:
      hi = 0x8F;
      next = kUtf8Need2;
      break;
    default:
      return kUtf8Reject;
  }
  return c < lo || c > hi ? kUtf8Reject : next;
}

// Feeds `n` bytes to the validator; returns the new state (kUtf8Reject as soon as a byte
// cannot continue a well-formed sequence).
std::uint32_t utf8_advance(std::uint32_t state, const unsigned char* p, std::size_t n) {
  constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
  std::size_t i = 0;
  while (i < n) {
    if (state == kUtf8Accept) {
      // ASCII, the common case, eight bytes at a time.
      while (n - i >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p + i, sizeof word);
        if ((word & kHighBits) != 0) break;
        i += 8;
      }
      if (i == n) break;
      state = utf8_lead(p[i++]);
    } else {
      state = utf8_trail(state, p[i++]);
    }
    if (state == kUtf8Reject) return state;
  }
  return state;
}

// Length of the UTF-8 sequence at p (p[0] >= 0x80), with `ok` set when it is well-formed.
// When ill-formed, the length of its maximal subpart (at least 1), which is what one U+FFFD
// replaces.
std::size_t utf8_sequence(const unsigned char* p, std::size_t n, bool& ok) {
  std::uint32_t state = utf8_lead(p[0]);
  std::size_t len = 1;
  while (state != kUtf8Accept && state != kUtf8Reject && len < n) {
    const std::uint32_t next = utf8_trail(state, p[len]);
    if (next == kUtf8Reject) break;
    state = next;
    ++len;
  }
  ok = state == kUtf8Accept;
  return len;
}

void append_escape(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  switch (c) {
    case '"':
      out.append("\\\"");
      return;
    case '\\':
      out.append("\\\\");
      return;
    case '\b':
      out.append("\\b");
      return;
    case '\f':
      out.append("\\f");
      return;
    case '\n':
      out.append("\\n");
      return;
    case '\r':
      out.append("\\r");
      return;
    case '\t':
      out.append("\\t");
      return;
    default: {
      const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.append(escaped, sizeof escaped);
    }
  }
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  return utf8_advance(kUtf8Accept, reinterpret_cast<const unsigned char*>(text.data()),
                      text.size()) == kUtf8Accept;
}

bool Utf8Validator::feed(std::string_view bytes) {
  state_ = utf8_advance(state_, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return state_ != kUtf8Reject;
}

bool Utf8Validator::failed() const {
  return state_ == kUtf8Reject;
}

void append_json_string(std::string& out, std::string_view text, JsonStyle style) {
  const std::string_view replacement =
      style == JsonStyle::kTerminal ? "\\ufffd" : "\xEF\xBF\xBD";  // U+FFFD
  const bool escape_del = style == JsonStyle::kTerminal;
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  // Bytes that need no change are copied in runs rather than one at a time.
  std::size_t run = 0;
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = bytes[i];
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c == 0x7F && !escape_del) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      bool ok = false;
      const std::size_t len = utf8_sequence(bytes + i, n - i, ok);
      if (ok) {
        i += len;
        continue;
      }
      out.append(text.substr(run, i - run));
      out.append(replacement);
      i += len;
      run = i;
      continue;
    }
    out.append(text.substr(run, i - run));
    append_escape(out, c);
    ++i;
    run = i;
  }
  out.append(text.substr(run, n - run));
  out.push_back('"');
}

}  // namespace sg::core
