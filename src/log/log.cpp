#include "log/log.hpp"

#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <mutex>

#include "core/core.hpp"

namespace sg::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
// One fwrite per line under this lock keeps lines from interleaving across threads.
std::mutex g_write_mu;
// Guarded by g_write_mu. nullptr stands for stderr, which is not a constant expression.
std::FILE* g_output = nullptr;

std::string_view level_name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_base64url(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool starts_with_nocase(std::string_view text, std::size_t at, std::string_view word) {
  return core::iequals(text.substr(at, word.size()), word);
}

constexpr std::string_view kRedacted = "[redacted]";

// A line shows no raw DEL or replacement character on a terminal, whatever a client sent.
constexpr core::JsonStyle kStyle = core::JsonStyle::kTerminal;

// Where a secret value ends: quotes too, so a redacted value inside quoted text keeps its
// closing quote.
bool ends_value(char c) {
  return is_space(c) || c == '"' || c == '\'';
}

// "?x…" → "?[redacted]": the whole query string of any URL-ish text.
std::string redact_query(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    out.push_back(c);
    ++i;
    if (c == '?' && i < text.size() && !ends_value(text[i])) {
      out.append(kRedacted);
      while (i < text.size() && !ends_value(text[i])) ++i;
    }
  }
  return out;
}

// "access_token=x", "id_token=x", "api_key=x", "password=x"… outside a query string (in a
// form body, a cookie, a fragment).
std::string redact_assignments(std::string_view text) {
  static constexpr std::array<std::string_view, 5> kKeys = {
      "token=", "secret=", "password=", "api_key=", "apikey="};
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    bool matched = false;
    for (std::string_view key : kKeys) {
      if (!starts_with_nocase(text, i, key)) continue;
      out.append(text.substr(i, key.size()));
      i += key.size();
      if (i < text.size() && !ends_value(text[i]) && text[i] != '&') {
        out.append(kRedacted);
        while (i < text.size() && !ends_value(text[i]) && text[i] != '&' && text[i] != ';' &&
               text[i] != ',') {
          ++i;
        }
      }
      matched = true;
      break;
    }
    if (!matched) out.push_back(text[i++]);
  }
  return out;
}

// "Bearer <x>" in any case → "Bearer [redacted]".
std::string redact_bearer(std::string_view text) {
  static constexpr std::string_view kWord = "bearer";
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const bool at_word_start = i == 0 || !is_base64url(text[i - 1]);
    if (at_word_start && starts_with_nocase(text, i, kWord)) {
      std::size_t j = i + kWord.size();
      const std::size_t space_start = j;
      while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
      if (j > space_start && j < text.size() && !ends_value(text[j])) {
        out.append(text.substr(i, j - i));
        out.append(kRedacted);
        while (j < text.size() && !ends_value(text[j])) ++j;
        i = j;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

// Length of the run of base64url characters at `at`.
std::size_t segment(std::string_view text, std::size_t at) {
  std::size_t n = 0;
  while (at + n < text.size() && is_base64url(text[at + n])) ++n;
  return n;
}

// "eyJ…" "." "…" "." "…", each part at least 8 characters: a JWT (its header is JSON, so its
// base64url always starts with "eyJ").
std::string redact_jwt(std::string_view text) {
  static constexpr std::size_t kMinSegment = 8;
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "eyJ") == 0) {
      const std::size_t a = segment(text, i);
      const std::size_t b_at = i + a + 1;
      if (a >= kMinSegment && b_at < text.size() && text[b_at - 1] == '.') {
        const std::size_t b = segment(text, b_at);
        const std::size_t c_at = b_at + b + 1;
        if (b >= kMinSegment && c_at <= text.size() && text[c_at - 1] == '.') {
          const std::size_t c = segment(text, c_at);
          if (c >= kMinSegment) {
            out.append("[redacted-jwt]");
            i = c_at + c;
            continue;
          }
        }
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

void append_double(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out.append("null");  // JSON has no NaN or Infinity
    return;
  }
  std::array<char, 32> buf;
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

void append_value(std::string& out, const Field::Value& value) {
  if (const auto* s = std::get_if<std::string_view>(&value)) {
    core::append_json_string(out, redact(*s), kStyle);
  } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
    if (*i < 0) {
      out.push_back('-');
      // Negate in unsigned arithmetic: -INT64_MIN overflows as a signed value.
      core::append_decimal(out, 0 - static_cast<std::uint64_t>(*i));
    } else {
      core::append_decimal(out, static_cast<std::uint64_t>(*i));
    }
  } else if (const auto* u = std::get_if<std::uint64_t>(&value)) {
    core::append_decimal(out, *u);
  } else if (const auto* d = std::get_if<double>(&value)) {
    append_double(out, *d);
  } else if (const auto* b = std::get_if<bool>(&value)) {
    out.append(*b ? "true" : "false");
  }
}

}  // namespace

bool parse_level(std::string_view text, Level& out) {
  if (text == "debug") {
    out = Level::kDebug;
  } else if (text == "info") {
    out = Level::kInfo;
  } else if (text == "warn") {
    out = Level::kWarn;
  } else if (text == "error") {
    out = Level::kError;
  } else {
    return false;
  }
  return true;
}

void set_level(Level level) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

bool enabled(Level level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void set_output(std::FILE* out) {
  // Under the write lock, so a line in flight finishes on the stream it started on.
  std::lock_guard lock(g_write_mu);
  g_output = out;
}

std::string redact(std::string_view text) {
  return redact_jwt(redact_bearer(redact_assignments(redact_query(text))));
}

void write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields) {
  if (!enabled(level)) return;
  std::string line;
  line.reserve(128 + message.size());
  line.append("{\"time\":\"");
  line.append(core::format_rfc3339(core::WallClock::now()));
  line.append("\",\"level\":\"");
  line.append(level_name(level));
  line.append("\",\"component\":");
  core::append_json_string(line, component, kStyle);
  line.append(",\"message\":");
  core::append_json_string(line, redact(message), kStyle);
  for (const Field& field : fields) {
    line.push_back(',');
    core::append_json_string(line, field.key, kStyle);
    line.push_back(':');
    append_value(line, field.value);
  }
  line.append("}\n");

  std::lock_guard lock(g_write_mu);
  std::FILE* out = g_output != nullptr ? g_output : stderr;
  std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

}  // namespace sg::log
