// Fuzzes the WebSocket frame decoder with client bytes, and checks three properties on every
// input: decoding never crashes and keeps its invariants; the verdict does not depend on how
// the stream is split across reads; and frames built from the input (masked as a browser
// would) decode back to the input, in one frame or in fragments. is_valid_utf8 is checked
// against a plain reference decoder.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "net/ws_codec.hpp"

namespace {

using sg::net::ws::Decoded;
using sg::net::ws::Decoder;
using sg::net::ws::Opcode;
namespace close_code = sg::net::ws::close_code;
using Kind = Decoded::Kind;

constexpr std::size_t kMaxMessage = 64 * 1024;

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (false)

// Deterministic per input, so a crash reproduces from its file alone.
class Rng {
 public:
  explicit Rng(std::string_view data) {
    for (unsigned char c : data) state_ = (state_ ^ c) * 0x100000001B3ULL;
  }
  std::uint64_t next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return state_;
  }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : next() % n; }

 private:
  std::uint64_t state_ = 0xCBF29CE484222325ULL;
};

struct Event {
  Kind kind;
  Opcode opcode;
  std::uint16_t close_code;
  std::string payload;
  bool operator==(const Event&) const = default;
};

// Plays a session reading `stream` in chunks of the given sizes (the rest in one last chunk).
std::vector<Event> run(std::string_view stream, const std::vector<std::size_t>& chunks,
                       std::size_t limit = kMaxMessage) {
  Decoder decoder(limit);
  std::vector<Event> events;
  std::string buffer;
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < stream.size() || i == 0; ++i) {
    const std::size_t want = i < chunks.size() ? chunks[i] : stream.size() - pos;
    const std::size_t n = std::min(want, stream.size() - pos);
    buffer.append(stream.substr(pos, n));
    pos += n;
    for (;;) {
      const Decoded d = decoder.decode(std::span<char>(buffer.data(), buffer.size()));
      FUZZ_CHECK(d.consumed <= buffer.size());
      FUZZ_CHECK(decoder.buffered_bytes() <= limit);
      switch (d.kind) {
        case Kind::kNeedMore:
          FUZZ_CHECK(d.payload.empty());
          break;
        case Kind::kMessage:
          FUZZ_CHECK(d.payload.size() <= limit);
          FUZZ_CHECK(d.opcode == Opcode::kText || d.opcode == Opcode::kBinary);
          if (d.opcode == Opcode::kText) FUZZ_CHECK(sg::core::is_valid_utf8(d.payload));
          break;
        case Kind::kPing:
        case Kind::kPong:
          FUZZ_CHECK(d.payload.size() <= 125);
          break;
        case Kind::kClose:
          FUZZ_CHECK(d.payload.size() <= 123);
          FUZZ_CHECK(sg::core::is_valid_utf8(d.payload));
          break;
        case Kind::kError:
          FUZZ_CHECK(d.close_code == close_code::kProtocolError ||
                     d.close_code == close_code::kInvalidPayload ||
                     d.close_code == close_code::kMessageTooBig);
          FUZZ_CHECK(!d.error.empty());
          break;
      }
      if (d.kind != Kind::kNeedMore) {
        const bool has_opcode = d.kind != Kind::kError;
        events.push_back(
            {d.kind, has_opcode ? d.opcode : Opcode::kText, d.close_code, std::string(d.payload)});
      }
      buffer.erase(0, d.consumed);
      if (d.kind == Kind::kError || d.kind == Kind::kClose) return events;
      if (d.kind == Kind::kNeedMore) break;
    }
  }
  return events;
}

std::vector<std::size_t> random_chunks(Rng& rng, std::size_t total) {
  std::vector<std::size_t> chunks;
  const std::size_t scale = 1 + rng.below(64);
  for (std::size_t sum = 0; sum < total;) {
    const std::size_t n = rng.below(2 * scale + 1);  // zero-length reads included
    chunks.push_back(n);
    sum += n;
  }
  return chunks;
}

// A browser's frame: FIN/opcode byte, shortest length form from frame_header, masked payload.
void append_client_frame(std::string& out, bool fin, Opcode opcode, std::string_view payload,
                         Rng& rng) {
  std::array<char, 10> header{};
  const std::size_t n = sg::net::ws::frame_header(opcode, payload.size(), header);
  if (!fin) header[0] = static_cast<char>(header[0] & 0x7F);
  header[1] = static_cast<char>(header[1] | 0x80);
  out.append(header.data(), n);
  const std::uint64_t key = rng.next();
  char mask[4];
  for (int i = 0; i < 4; ++i) mask[i] = static_cast<char>(key >> (8 * i));
  out.append(mask, 4);
  for (std::size_t i = 0; i < payload.size(); ++i) out.push_back(payload[i] ^ mask[i % 4]);
}

// A client frame taken from a server frame (close_frame/control_frame output): set the mask bit
// and mask the body.
std::string mask_server_frame(const std::string& frame, Rng& rng) {
  const std::size_t header = (frame[1] & 0x7F) == 126 ? 4 : (frame[1] & 0x7F) == 127 ? 10 : 2;
  std::string out;
  append_client_frame(out, true, static_cast<Opcode>(frame[0] & 0x0F),
                      std::string_view(frame).substr(header), rng);
  return out;
}

// RFC 3629 read literally: decode each sequence to a code point, then check the code point.
bool reference_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void check_split_invariance(std::string_view data, Rng& rng) {
  const std::vector<Event> whole = run(data, {data.size()});
  FUZZ_CHECK(run(data, random_chunks(rng, data.size())) == whole);
  // Inputs are far below 64 KiB, so a small limit is what exercises the size rules.
  const std::size_t limit = rng.below(300);
  const std::vector<Event> whole_small = run(data, {data.size()}, limit);
  FUZZ_CHECK(run(data, random_chunks(rng, data.size()), limit) == whole_small);
}

void check_round_trips(std::string_view data, Rng& rng) {
  const bool utf8 = sg::core::is_valid_utf8(data);
  FUZZ_CHECK(utf8 == reference_utf8(data));
  if (data.size() > kMaxMessage) return;

  for (Opcode opcode : {Opcode::kBinary, Opcode::kText}) {
    const bool ok = opcode == Opcode::kBinary || utf8;
    const std::vector<Event> expect =
        ok ? std::vector<Event>{{Kind::kMessage, opcode, 0, std::string(data)}}
           : std::vector<Event>{{Kind::kError, Opcode::kText, close_code::kInvalidPayload, ""}};

    std::string single;
    append_client_frame(single, true, opcode, data, rng);
    FUZZ_CHECK(run(single, random_chunks(rng, single.size())) == expect);

    // The same message in fragments at random cut points, with a ping between two of them.
    std::string fragmented;
    std::vector<Event> expect_fragmented;
    std::size_t pos = 0;
    bool first = true;
    do {
      const std::size_t n = rng.below(data.size() - pos + 1);
      const bool fin = pos + n == data.size() && rng.below(2) == 0;
      append_client_frame(fragmented, fin, first ? opcode : Opcode::kContinuation,
                          data.substr(pos, n), rng);
      pos += n;
      first = false;
      if (!fin && rng.below(4) == 0) {
        const std::string_view ping = data.substr(0, std::min<std::size_t>(data.size(), 125));
        append_client_frame(fragmented, true, Opcode::kPing, ping, rng);
        if (ok) expect_fragmented.push_back({Kind::kPing, Opcode::kPing, 0, std::string(ping)});
      }
      if (fin) break;
    } while (true);
    if (ok) {
      expect_fragmented.push_back(expect.front());
    } else {
      // Invalid text fails at the first fragment that makes it so; pings before it still count.
      const std::vector<Event> got = run(fragmented, {fragmented.size()});
      FUZZ_CHECK(!got.empty() && got.back() == expect.front());
      expect_fragmented = got;
    }
    FUZZ_CHECK(run(fragmented, random_chunks(rng, fragmented.size())) == expect_fragmented);
  }

  // Close frames: a valid code and the input as reason, cut to 123 bytes on a character boundary.
  static constexpr std::uint16_t kCodes[] = {1000, 1001, 1011, 3000, 4001, 4999};
  const std::uint16_t code = kCodes[rng.below(std::size(kCodes))];
  const std::string close = mask_server_frame(sg::net::ws::close_frame(code, data), rng);
  const std::vector<Event> got = run(close, random_chunks(rng, close.size()));
  FUZZ_CHECK(got.size() == 1);
  if (utf8) {
    FUZZ_CHECK(got[0].kind == Kind::kClose && got[0].close_code == code);
    FUZZ_CHECK(data.substr(0, got[0].payload.size()) == got[0].payload);
    FUZZ_CHECK(got[0].payload.size() == data.size() ||
               (got[0].payload.size() <= 123 && got[0].payload.size() >= 120));
  }

  const std::string pong = mask_server_frame(sg::net::ws::control_frame(Opcode::kPong, data), rng);
  const std::vector<Event> pongs = run(pong, {pong.size()});
  FUZZ_CHECK(pongs.size() == 1 && pongs[0].kind == Kind::kPong);
  FUZZ_CHECK(pongs[0].payload == data.substr(0, 125));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view data(reinterpret_cast<const char*>(bytes), size);
  Rng rng(data);
  check_split_invariance(data, rng);
  check_round_trips(data, rng);
  return 0;
}
