// ws_codec: the server side of RFC 6455 framing, pure and allocation-aware. Sessions feed it
// the bytes they read and get whole messages and control frames back; it builds the frames
// they write. No I/O, no Asio: unit tested and fuzzed on byte strings. One instance per
// connection, used from that connection's worker thread only.
#pragma once

#include "core/core.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sg::net::ws {

enum class Opcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// The close codes of RFC 6455 §7.4.1 the server sends or reports. An application's own codes
// (4000-4999) are the application's: streamgate's are in protocol.hpp.
namespace close_code {
inline constexpr std::uint16_t kNormal = 1000;
inline constexpr std::uint16_t kGoingAway = 1001;
inline constexpr std::uint16_t kProtocolError = 1002;
inline constexpr std::uint16_t kUnsupportedData = 1003;
inline constexpr std::uint16_t kNoStatus = 1005;  // never sent; reported when a close had no code
inline constexpr std::uint16_t kInvalidPayload = 1007;
inline constexpr std::uint16_t kPolicyViolation = 1008;
inline constexpr std::uint16_t kMessageTooBig = 1009;
inline constexpr std::uint16_t kInternalError = 1011;
}  // namespace close_code

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
std::string accept_key(std::string_view client_key);

// What the decoder found at the front of the input.
struct Decoded {
  enum class Kind {
    kNeedMore,  // not enough bytes yet; `consumed` may still be > 0 (absorbed fragments)
    kMessage,   // a complete text or binary message: `opcode`, `payload`
    kPing,      // `payload` = ping application data; answer with a pong of the same
    kPong,
    kClose,  // `close_code` (kNoStatus when absent), `payload` = reason
    kError,  // protocol violation: close with `close_code` and stop reading
  };
  Kind kind = Kind::kNeedMore;
  Opcode opcode = Opcode::kText;
  std::uint16_t close_code = 0;
  // Points into the input span (unfragmented messages and control frames, unmasked in place)
  // or into the decoder (fragmented messages). Valid until the next decode() call and, for the
  // input case, for as long as the caller keeps those bytes.
  std::string_view payload;
  std::size_t consumed = 0;  // bytes of the input this step used; always drop them, any kind
  std::string_view error;    // for kError: what rule broke, for logs
};

// Decodes client→server frames: enforces masking, opcode and reserved-bit rules, control
// frame rules (≤125 bytes, not fragmented), fragmentation order, the message size limit
// (across fragments) and UTF-8 validity of text messages and close reasons.
class Decoder {
 public:
  explicit Decoder(std::size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // Decodes frames at the front of `input`, unmasking them in place, until one produces a step
  // (message, control frame, close or error) or the input runs out. Non-final fragments are
  // copied into the decoder on the way and counted in `consumed`, so every result, kNeedMore
  // included, tells the caller how many bytes to drop from the front of its buffer. After a
  // non-kNeedMore step, call again with the rest; after kNeedMore, call again once more bytes
  // have arrived, with the buffer starting where `consumed` left it (the first bytes of a
  // partial frame may already be unmasked: pass them back unchanged). After kError or kClose,
  // stop. Checks run as soon as the bytes they need are present (an oversized frame fails on
  // its header, invalid UTF-8 on the first bad byte), so the verdict does not depend on how the
  // stream was split across calls.
  Decoded decode(std::span<char> input);

  // Bytes of a fragmented message held across calls (for memory accounting); 0 when idle.
  std::size_t buffered_bytes() const { return fragments_.size(); }

 private:
  std::size_t max_message_bytes_;
  std::string fragments_;  // payload of an unfinished fragmented message
  Opcode fragmented_opcode_ = Opcode::kText;
  bool in_fragmented_ = false;
  core::Utf8Validator utf8_;  // incremental validation across fragments
  // Payload bytes of the partial frame at the front of the input already unmasked (and
  // validated, for text) by earlier calls; lets UTF-8 fail before the frame is complete.
  std::uint64_t unmasked_ = 0;
};

// Builds a server→client frame header (FIN set, unmasked) into `out`; returns its length
// (2, 4 or 10). The payload follows it on the wire, so a session can gather header and a
// shared body without copying the body.
std::size_t frame_header(Opcode opcode, std::size_t payload_bytes, std::array<char, 10>& out);

// A whole close frame with code and reason. The reason is cut at a UTF-8 character boundary to
// fit the 123 bytes left after the code. kNoStatus yields a close frame with no payload (the
// wire form of "no status"), so a received close can be echoed as is.
std::string close_frame(std::uint16_t code, std::string_view reason);
// A whole control frame (ping/pong) with the first 125 bytes of `payload`.
std::string control_frame(Opcode opcode, std::string_view payload);

}  // namespace sg::net::ws
