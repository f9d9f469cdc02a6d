#include "core/core.hpp"

#include <cstring>

namespace sg::core {

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

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

// What a lead byte asks of the bytes after it (RFC 3629 §4, Unicode Table 3-7): how many
// continuation bytes, and the range of the first one. The narrowed ranges after E0, ED, F0 and
// F4 are what exclude overlongs, surrogates and code points above U+10FFFF; every later
// continuation byte is 80..BF. For a byte of 80..FF only; trail 0: it can't start a character.
struct LeadRule {
  unsigned char trail;
  unsigned char lo;
  unsigned char hi;
};

[[gnu::always_inline]] constexpr LeadRule lead_rule(unsigned char c) {
  if (c < 0xC2) return {0, 0, 0};  // stray continuation byte, or overlong C0/C1 lead
  if (c < 0xE0) return {1, 0x80, 0xBF};
  if (c == 0xE0) return {2, 0xA0, 0xBF};
  if (c == 0xED) return {2, 0x80, 0x9F};
  if (c < 0xF0) return {2, 0x80, 0xBF};
  if (c == 0xF0) return {3, 0x90, 0xBF};
  if (c < 0xF4) return {3, 0x80, 0xBF};
  if (c == 0xF4) return {3, 0x80, 0x8F};
  return {0, 0, 0};  // F5..FF: beyond U+10FFFF or the old 5- and 6-byte forms
}

// The incremental validator's state: 0 between characters, else the continuation bytes still
// due (low byte) and the range the next one must fall in (lo, hi in the next two bytes).
constexpr std::uint32_t kUtf8Accept = 0;
constexpr std::uint32_t kUtf8Reject = 0xFF;  // sticky

constexpr std::uint32_t utf8_pending(unsigned trail, unsigned char lo, unsigned char hi) {
  return trail | (std::uint32_t{lo} << 8) | (std::uint32_t{hi} << 16);
}

// Feeds `n` bytes to the validator; returns the new state (kUtf8Reject as soon as a byte
// cannot continue a well-formed sequence).
std::uint32_t utf8_advance(std::uint32_t state, const unsigned char* p, std::size_t n) {
  constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
  if (state == kUtf8Reject) return state;
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
      const unsigned char c = p[i++];
      if (c < 0x80) continue;
      const LeadRule rule = lead_rule(c);
      if (rule.trail == 0) return kUtf8Reject;
      state = utf8_pending(rule.trail, rule.lo, rule.hi);
      continue;
    }
    const unsigned char c = p[i++];
    if (c < ((state >> 8) & 0xFF) || c > (state >> 16)) return kUtf8Reject;
    const unsigned left = (state & 0xFF) - 1;
    state = left == 0 ? kUtf8Accept : utf8_pending(left, 0x80, 0xBF);
  }
  return state;
}

// Length of the UTF-8 sequence at p (p[0] >= 0x80), with `ok` set when it is well-formed.
// When ill-formed, the length of its maximal subpart (at least 1), which is what one U+FFFD
// replaces (Unicode §3.9, as browsers decode).
[[gnu::always_inline]] inline std::size_t utf8_sequence(const unsigned char* p, std::size_t n,
                                                        bool& ok) {
  const LeadRule rule = lead_rule(p[0]);
  if (rule.trail == 0) {
    ok = false;
    return 1;
  }
  const std::size_t trail = rule.trail;
  unsigned char lo = rule.lo;
  unsigned char hi = rule.hi;
  for (std::size_t i = 1; i <= trail; ++i) {
    if (i >= n || p[i] < lo || p[i] > hi) {
      ok = false;
      return i;
    }
    lo = 0x80;
    hi = 0xBF;
  }
  ok = true;
  return trail + 1;
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

// append_json_string for one style: a template so that the compact style's loop, on the
// fan-out path, tests nothing it doesn't need.
template <JsonStyle kStyle>
void append_json(std::string& out, std::string_view text) {
  constexpr bool kTerminal = kStyle == JsonStyle::kTerminal;
  constexpr std::string_view kReplacement = kTerminal ? "\\ufffd" : "\xEF\xBF\xBD";  // U+FFFD
  constexpr unsigned char kPlainEnd = kTerminal ? 0x7F : 0x80;  // DEL escaped or not
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  // Bytes that need no change are copied in runs rather than one at a time.
  std::size_t run = 0;
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = bytes[i];
    if (c >= 0x20 && c < kPlainEnd && c != '"' && c != '\\') {
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
      out.append(kReplacement);
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
  if (style == JsonStyle::kTerminal) return append_json<JsonStyle::kTerminal>(out, text);
  append_json<JsonStyle::kCompact>(out, text);
}

}  // namespace sg::core
