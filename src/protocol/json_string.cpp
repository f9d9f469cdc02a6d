#include "protocol/protocol.hpp"

namespace sg::protocol {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at p (Unicode Table 3-7: no overlongs, no
// surrogates, nothing above U+10FFFF), with `ok` set. When ill-formed, returns the length of
// its maximal subpart (at least 1), which is what one U+FFFD replaces (Unicode §3.9,
// "substitution of maximal subparts", as browsers decode).
std::size_t utf8_sequence(const unsigned char* p, std::size_t n, bool& ok) {
  const unsigned char lead = p[0];
  std::size_t trail = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    trail = 1;
  } else if (lead == 0xE0) {
    trail = 2;
    lo = 0xA0;
  } else if (lead == 0xED) {
    trail = 2;
    hi = 0x9F;
  } else if (lead >= 0xE1 && lead <= 0xEF) {
    trail = 2;
  } else if (lead == 0xF0) {
    trail = 3;
    lo = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    trail = 3;
  } else if (lead == 0xF4) {
    trail = 3;
    hi = 0x8F;
  } else {
    ok = false;
    return 1;
  }
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

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  // Bytes that need no change are copied in runs rather than one at a time.
  std::size_t run = 0;
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = bytes[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
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

}  // namespace sg::protocol
