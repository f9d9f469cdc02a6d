// log: structured JSON lines for state changes (connection opened/closed, auth rejected,
// limit hit, broker lost/regained, config loaded). One object per line on stderr:
// {"time":…,"level":…,"component":…,"message":…, fields…}. Every string value is redacted
// (query strings, bearer tokens, JWT-shaped text) so no secret reaches a log. Thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace sg::log {

enum class Level { kDebug = 0, kInfo, kWarn, kError };
// "debug" | "info" | "warn" | "error"; false on anything else.
bool parse_level(std::string_view text, Level& out);
void set_level(Level level);
bool enabled(Level level);
// Where lines go (default stderr; nullptr restores it). For tests. The stream must outlive
// its use; each line is written with one fwrite and flushed.
void set_output(std::FILE* out);

struct Field {
  using Value = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;
  std::string_view key;
  Value value;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  // clang-format 14 mangles requires-clauses.
  // clang-format off
  template <class I>
    requires std::is_integral_v<I> && (!std::is_same_v<I, bool>)
  Field(std::string_view k, I v)
      : key(k),
        value(std::is_signed_v<I> ? Value(static_cast<std::int64_t>(v))
                                  : Value(static_cast<std::uint64_t>(v))) {}
  // clang-format on
};

// Formats one line and writes it if `level` is enabled. Safe from any thread; a line is never
// interleaved with another. Fields follow the fixed keys in the order given; a field that
// reuses a fixed key ("time", "message") yields a duplicate key, so don't.
void write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields = {});

inline void debug(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  if (enabled(Level::kDebug)) write(Level::kDebug, c, m, f);
}
inline void info(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::kInfo, c, m, f);
}
inline void warn(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::kWarn, c, m, f);
}
inline void error(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::kError, c, m, f);
}

// Removes secrets from free text: the query string of any URL-ish text ("?…" → "?[redacted]"),
// "Bearer <x>" (any case) → "Bearer [redacted]", "access_token=<x>" (and other …token=,
// secret=, password=, api_key= assignments) → "…=[redacted]", and anything shaped like a JWT
// (three base64url parts of ≥ 8 characters, the first starting "eyJ") → "[redacted-jwt]".
// Used on the message and every string field; exposed for tests and for callers that build
// messages. Keys and the component are not redacted: they are the caller's constants.
std::string redact(std::string_view text);

}  // namespace sg::log
