// core: the small vocabulary every module shares — Result and per-module error enums,
// wall-clock formatting, random ids, the org id rule, and the text helpers every module would
// otherwise write again (trim, ASCII case-insensitive compare, base64, UTF-8 validation, JSON
// string literals, message digests). Pure functions and value types; no I/O, safe from any
// thread (a Digest or Utf8Validator object belongs to one thread at a time).
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

// OpenSSL's digest context, named here so that this header needn't include OpenSSL's.
struct evp_md_ctx_st;

namespace sg {

// Expected failures are values: a Result holds either a T or an error_code whose category
// names the module and whose message is human readable.
template <class T>
using Result = boost::system::result<T>;
using ErrorCode = boost::system::error_code;

namespace core {

// Gives a module's error enum a category. The module declares, next to its enum E,
//   std::string_view to_string(E);           // stable snake_case reason, used in JSON errors
//   constexpr const char* error_domain(E);   // the module name
// and specializes boost::system::is_error_code_enum<E>. make_error_code(E) then works via ADL.
template <class E>
class EnumCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return error_domain(E{}); }
  std::string message(int value) const override {
    return std::string(to_string(static_cast<E>(value)));
  }
};

template <class E>
const boost::system::error_category& enum_category() {
  static const EnumCategory<E> category;
  return category;
}

// The stable snake_case reason of an error produced by any module's enum, e.g. "token_expired".
inline std::string reason(const ErrorCode& ec) {
  return ec.message();
}

// Wall clock, for timestamps on the wire. Timeouts use std::chrono::steady_clock.
using WallClock = std::chrono::system_clock;

// RFC 3339 UTC with millisecond precision: "2026-11-27T10:43:50.123Z".
std::string format_rfc3339(WallClock::time_point t);

// Milliseconds since the Unix epoch.
std::int64_t unix_millis(WallClock::time_point t);

// Fills `out` from the kernel's CSPRNG (getrandom(2)), through a small per-thread buffer of
// bytes fetched ahead (each byte handed out once; emptied in a forked child): every id a client
// sees (connection and upload ids, epochs) and every generated secret comes from here, so one
// id tells nothing about another. Blocks only until the kernel's pool is first seeded, early in
// boot. Ends the process with a message if the kernel refuses (no getrandom, or a seccomp
// filter denying it): there is no safe fallback, and the first call happens at start-up.
void random_bytes(std::span<unsigned char> out);

// `bytes` random bytes (random_bytes) as lowercase hex: 2 * bytes characters.
std::string random_hex(std::size_t bytes);

// Org ids, one rule wherever one enters the server (publish's "orgId", the token's "org_id"):
// a non-negative integer, named by its decimal form, or a string of 1..kMaxOrgIdBytes bytes
// without control characters (C0 or DEL; they would reach logs and broker keys). 456 and "456"
// name the same org. Each returns the org's text, or nothing when the rule refuses the value,
// so that no side accepts an org the other could never address.
inline constexpr std::size_t kMaxOrgIdBytes = 128;
std::optional<std::string> org_id_from_text(std::string_view text);
std::optional<std::string> org_id_from_integer(std::int64_t value);
std::string org_id_from_integer(std::uint64_t value);

// User ids as text, one rule wherever one enters (publish's "userId", the token's user claim):
// 1..kMaxUserIdBytes bytes without control characters, so that a token never names a user a
// targeted publish could not address, and no control character reaches a log line or a broker
// key. (Integers enter as their decimal form on both sides.)
inline constexpr std::size_t kMaxUserIdBytes = 256;
bool user_id_text_ok(std::string_view text);

// Standard base64 (RFC 4648 §4) with padding.
std::string base64_encode(std::span<const unsigned char> data);
// Standard base64 with its padding, strictly: a length that is a multiple of 4, '=' only as the
// last one or two characters, no character outside the alphabet, and zero bits after the last
// byte (one text per value). False otherwise (tus headers, Sec-WebSocket-Key).
bool base64_decode(std::string_view text, std::string& out);
// base64url (RFC 4648 §5) without padding, as JWTs use it. Returns false on any character
// outside the alphabet (padding included), an impossible length or non-zero bits after the
// last byte.
bool base64url_decode(std::string_view text, std::string& out);
std::string base64url_encode(std::span<const unsigned char> data);
inline std::string base64url_encode(std::string_view data) {
  return base64url_encode(
      std::span(reinterpret_cast<const unsigned char*>(data.data()), data.size()));
}

// RFC 3986 percent-decoding; with `plus_is_space`, '+' reads as a space (form encoding, as in
// query strings). False on a malformed escape.
bool percent_decode(std::string_view text, std::string& out, bool plus_is_space = true);

// Compares in time independent of where the first difference is (API keys, HMACs).
bool constant_time_equal(std::string_view a, std::string_view b);

// Appends the decimal form of v to out; no allocation beyond out's growth.
void append_decimal(std::string& out, std::uint64_t v);

// HTTP's optional whitespace (RFC 9110 §5.6.3): space and horizontal tab.
inline constexpr std::string_view kOws = " \t";
constexpr bool is_ows(char c) {
  return c == ' ' || c == '\t';
}
// `s` without leading and trailing HTTP OWS. Used on every request's header values, so it
// compares characters rather than searching `kOws` for each.
std::string_view trim(std::string_view s);
// `s` without leading and trailing characters of `blanks`.
std::string_view trim(std::string_view s, std::string_view blanks);

// Equal ignoring ASCII case; other bytes compare exactly (no locale).
bool iequals(std::string_view a, std::string_view b);

// Well-formed UTF-8 (RFC 3629, Unicode Table 3-7): no overlong forms, no surrogates, nothing
// above U+10FFFF.
bool is_valid_utf8(std::string_view text);

// The same check over text that arrives in pieces (WebSocket fragments): a character may
// straddle two feed() calls.
class Utf8Validator {
 public:
  // False once the bytes fed so far can't begin well-formed UTF-8; it stays false.
  bool feed(std::string_view bytes);
  bool failed() const;
  // Everything fed is well-formed and ends on a character boundary.
  bool complete() const { return state_ == 0; }

 private:
  std::uint32_t state_ = 0;
};

// How append_json_string spells what isn't plain printable text. Both are valid JSON in valid
// UTF-8 and read back as the same string.
enum class JsonStyle {
  kCompact,   // DEL as is, each ill-formed sequence as the character U+FFFD (the wire format)
  kTerminal,  // DEL as \u007f and U+FFFD as the escape \ufffd: no raw control or replacement
              // bytes in a log line
};
// Appends `text` as a JSON string literal, quotes included: escapes '"', '\\' and the C0
// controls, passes well-formed UTF-8 through and replaces each ill-formed sequence (its maximal
// subpart, Unicode §3.9, as browsers decode) with one U+FFFD, so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view text,
                        JsonStyle style = JsonStyle::kCompact);

// Incremental message digests over OpenSSL: the running SHA-256 of an upload, tus's
// Upload-Checksum (sha1, md5, sha256). Ends the process if OpenSSL can't allocate a context:
// nothing sensible could continue.
enum class DigestAlgorithm { kSha1, kMd5, kSha256 };
// The digest length of `algorithm` in bytes: 20, 16 or 32.
std::size_t digest_size(DigestAlgorithm algorithm);

class Digest {
 public:
  explicit Digest(DigestAlgorithm algorithm = DigestAlgorithm::kSha256);
  ~Digest();
  Digest(Digest&& other) noexcept;
  Digest& operator=(Digest&& other) noexcept;
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;

  void update(std::string_view bytes);
  // The raw digest (digest_size bytes) of everything since construction or reset(); the
  // digest starts over after.
  std::string finish();
  void reset();

 private:
  evp_md_ctx_st* ctx_;
  DigestAlgorithm algorithm_;
};

}  // namespace core

// Declares the make_error_code hook for a module's enum; call inside the module's namespace.
#define SG_DECLARE_ERROR_ENUM(E)                                                 \
  inline ::sg::ErrorCode make_error_code(E e) {                                  \
    return ::sg::ErrorCode(static_cast<int>(e), ::sg::core::enum_category<E>()); \
  }

}  // namespace sg
