#include "core/core.hpp"

#include <pthread.h>
#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace sg::core {

std::string format_rfc3339(WallClock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  const int millis = static_cast<int>(ms.count() % 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::array<char, 32> buf{};
  const int n = std::snprintf(buf.data(), buf.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                              tm.tm_sec, millis);
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

std::int64_t unix_millis(WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

namespace {

void kernel_random(unsigned char* out, std::size_t size) {
  std::size_t filled = 0;
  while (filled < size) {
    const ssize_t n = getrandom(out + filled, size - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "streamgate: getrandom(2) failed (%s); cannot make unguessable ids\n",
                   std::strerror(errno));
      std::abort();
    }
    filled += static_cast<std::size_t>(n);
  }
}

// Kernel bytes fetched ahead, per thread: a syscall is cheap on bare metal but costs ~10 us in
// the sandboxes and VMs this runs in, as much as the rest of a connection's set-up syscalls
// together; one getrandom now serves 32 connection ids. What sits here is only ever handed out
// once. 256 bytes: the most one getrandom call returns without a short read.
struct RandomPool {
  std::array<unsigned char, 256> bytes;
  std::size_t used = bytes.size();
};
thread_local RandomPool pool;

// A forked child has a copy of the forking thread's pool: without this it would hand out the
// very ids its parent hands out next.
void empty_pool_after_fork() {
  pool.used = pool.bytes.size();
}

}  // namespace

void random_bytes(std::span<unsigned char> out) {
  static const int fork_guard = pthread_atfork(nullptr, nullptr, empty_pool_after_fork);
  (void)fork_guard;
  if (out.size() > pool.bytes.size() / 4) {
    kernel_random(out.data(), out.size());
    return;
  }
  if (pool.bytes.size() - pool.used < out.size()) {
    kernel_random(pool.bytes.data(), pool.bytes.size());
    pool.used = 0;
  }
  std::memcpy(out.data(), pool.bytes.data() + pool.used, out.size());
  pool.used += out.size();
}

std::string random_hex(std::size_t bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::array<unsigned char, 64> chunk;
  std::string out;
  out.reserve(bytes * 2);
  while (bytes > 0) {
    const std::size_t n = std::min(bytes, chunk.size());
    random_bytes(std::span(chunk.data(), n));
    for (std::size_t i = 0; i < n; ++i) {
      out.push_back(kDigits[chunk[i] >> 4]);
      out.push_back(kDigits[chunk[i] & 0xf]);
    }
    bytes -= n;
  }
  return out;
}

namespace {
bool has_control_bytes(std::string_view text) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) return true;
  }
  return false;
}
}  // namespace

std::optional<std::string> org_id_from_text(std::string_view text) {
  if (text.empty() || text.size() > kMaxOrgIdBytes || has_control_bytes(text)) return std::nullopt;
  return std::string(text);
}

bool user_id_text_ok(std::string_view text) {
  return !text.empty() && text.size() <= kMaxUserIdBytes && !has_control_bytes(text);
}

std::optional<std::string> org_id_from_integer(std::int64_t value) {
  if (value < 0) return std::nullopt;
  return org_id_from_integer(static_cast<std::uint64_t>(value));
}

std::string org_id_from_integer(std::uint64_t value) {
  std::string out;
  append_decimal(out, value);
  return out;
}

namespace {

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(std::span<const unsigned char> data, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  const std::size_t rest = data.size() - i;
  if (rest > 0) {
    unsigned v = data[i] << 16;
    if (rest == 2) v |= data[i + 1] << 8;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (rest == 2) out.push_back(alphabet[(v >> 6) & 63]);
    if (pad) out.append(rest == 1 ? "==" : "=");
  }
  return out;
}

// The value of base64 digit c in `alphabet`; -1 when c isn't one of its digits.
int digit_value(char c, const char* alphabet) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == alphabet[62]) return 62;
  if (c == alphabet[63]) return 63;
  return -1;
}

// Decodes unpadded digits of `alphabet`.
bool decode(std::string_view text, const char* alphabet, std::string& out) {
  if (text.size() % 4 == 1) return false;
  out.reserve(text.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = digit_value(c, alphabet);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero, otherwise two encodings would decode to the same bytes.
  return (acc & ((1u << bits) - 1)) == 0;
}

}  // namespace

std::string base64_encode(std::span<const unsigned char> data) {
  return encode(data, kStd, true);
}

std::string base64url_encode(std::span<const unsigned char> data) {
  return encode(data, kUrl, false);
}

bool base64_decode(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 != 0) return false;
  // The padding says how many digits the last group lacks; what is left must then be exactly
  // those digits ('=' anywhere else is outside the alphabet).
  for (int pad = 0; pad < 2 && text.ends_with('='); ++pad) text.remove_suffix(1);
  return decode(text, kStd, out);
}

bool base64url_decode(std::string_view text, std::string& out) {
  out.clear();
  return decode(text, kUrl, out);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = a.size() < b.size() ? a.size() : b.size();
  for (std::size_t i = 0; i < n; ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

void append_decimal(std::string& out, std::uint64_t v) {
  std::array<char, 20> buf;
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

bool percent_decode(std::string_view text, std::string& out, bool plus_is_space) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out.clear();
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '%') {
      out.push_back(c == '+' && plus_is_space ? ' ' : c);
      continue;
    }
    if (i + 2 >= text.size()) return false;
    const int hi = hex(text[i + 1]);
    const int lo = hex(text[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

}  // namespace sg::core
