#include "net/ws_codec.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include "core/core.hpp"

namespace sg::net::ws {
namespace {

constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::size_t kMaxControlPayload = 125;
constexpr std::size_t kMaxCloseReason = kMaxControlPayload - 2;
// A connection that once received a large fragmented message shouldn't keep its buffer for
// life; small buffers are kept to avoid reallocating for every fragmented message.
constexpr std::size_t kKeptFragmentCapacity = 4096;

// RFC 6455 §7.4: codes a peer may put on the wire. 1004-1006 and 1015 are reserved; 1012-1014
// (service restart, try again later, bad gateway) are registered with IANA since the RFC and
// sent by real servers and proxies; the rest of 1000-2999 is unassigned, and 3000-4999 belong
// to libraries and applications.
bool is_valid_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

std::string_view truncate_utf8(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t cut = max_bytes;
  // text[cut] is the first byte dropped; if it continues a character, drop that whole character.
  for (int i = 0; i < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80; ++i) {
    --cut;
  }
  return text.substr(0, cut);
}

Decoded need_more(std::size_t consumed) {
  Decoded d;
  d.kind = Decoded::Kind::kNeedMore;
  d.consumed = consumed;
  return d;
}

Decoded failure(std::uint16_t code, std::string_view why, std::size_t consumed) {
  Decoded d;
  d.kind = Decoded::Kind::kError;
  d.close_code = code;
  d.error = why;
  d.consumed = consumed;
  return d;
}

std::uint64_t read_be(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::string accept_key(std::string_view client_key) {
  std::string input;
  input.reserve(client_key.size() + kAcceptGuid.size());
  input.append(client_key).append(kAcceptGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return core::base64_encode(std::span<const unsigned char>(digest));
}

Decoded Decoder::decode(std::span<char> input) {
  using Kind = Decoded::Kind;
  if (!in_fragmented_ && !fragments_.empty()) {
    // The previous call handed out a reassembled message; its view ends here.
    if (fragments_.capacity() > kKeptFragmentCapacity) {
      std::string().swap(fragments_);
    } else {
      fragments_.clear();
    }
  }

  std::size_t offset = 0;  // start of the frame being looked at; bytes before it are absorbed
  for (;;) {
    const std::span<char> frame = input.subspan(offset);
    auto* const p = reinterpret_cast<unsigned char*>(frame.data());
    if (frame.size() < 2) return need_more(offset);

    // Every check that needs only the first two bytes runs before any that needs more, so the
    // verdict is the same however the stream is split.
    const bool fin = (p[0] & 0x80) != 0;
    if ((p[0] & 0x70) != 0) {
      return failure(close_code::kProtocolError, "reserved bits set", offset);
    }
    const auto opcode = static_cast<Opcode>(p[0] & 0x0F);
    bool control = false;
    switch (opcode) {
      case Opcode::kContinuation:
      case Opcode::kText:
      case Opcode::kBinary:
        break;
      case Opcode::kClose:
      case Opcode::kPing:
      case Opcode::kPong:
        control = true;
        break;
      default:
        return failure(close_code::kProtocolError, "unknown opcode", offset);
    }
    if ((p[1] & 0x80) == 0) {
      return failure(close_code::kProtocolError, "client frame not masked", offset);
    }
    std::uint64_t length = p[1] & 0x7F;
    if (control) {
      if (!fin) return failure(close_code::kProtocolError, "fragmented control frame", offset);
      if (length > kMaxControlPayload) {
        return failure(close_code::kProtocolError, "control frame payload over 125 bytes", offset);
      }
    } else if (opcode == Opcode::kContinuation && !in_fragmented_) {
      return failure(close_code::kProtocolError, "continuation without a message", offset);
    } else if (opcode != Opcode::kContinuation && in_fragmented_) {
      return failure(close_code::kProtocolError, "new message inside a fragmented one", offset);
    }

    std::size_t header = 2;
    if (length == 126) {
      if (frame.size() < 4) return need_more(offset);
      length = read_be(p + 2, 2);
      header = 4;
      if (length < 126) {
        return failure(close_code::kProtocolError, "length not minimally encoded", offset);
      }
    } else if (length == 127) {
      if (frame.size() < 10) return need_more(offset);
      length = read_be(p + 2, 8);
      header = 10;
      if ((length >> 63) != 0) {
        return failure(close_code::kProtocolError, "64-bit length with the high bit set", offset);
      }
      if (length <= 0xFFFF) {
        return failure(close_code::kProtocolError, "length not minimally encoded", offset);
      }
    }
    if (!control) {
      // Refuse on the header alone, so an oversized frame is never buffered.
      const std::size_t held = in_fragmented_ ? fragments_.size() : 0;
      if (length > max_message_bytes_ - std::min(held, max_message_bytes_)) {
        return failure(close_code::kMessageTooBig, "message over the size limit", offset);
      }
    }

    if (frame.size() < header + 4) return need_more(offset);
    const unsigned char* const key = p + header;
    header += 4;
    unsigned char* const payload = p + header;

    const bool text = opcode == Opcode::kText ||
                      (opcode == Opcode::kContinuation && fragmented_opcode_ == Opcode::kText);
    const std::uint64_t present = std::min<std::uint64_t>(length, frame.size() - header);
    if (present > unmasked_) {
      for (std::uint64_t i = unmasked_; i < present; ++i) payload[i] ^= key[i & 3];
      if (text) {
        utf8_.feed(std::string_view(reinterpret_cast<const char*>(payload) + unmasked_,
                                    present - unmasked_));
      }
      unmasked_ = present;
      if (text && utf8_.failed()) {
        return failure(close_code::kInvalidPayload, "text is not valid UTF-8", offset);
      }
    }
    if (present < length) return need_more(offset);
    unmasked_ = 0;

    const std::string_view data(reinterpret_cast<const char*>(payload), length);
    const std::size_t end = offset + header + length;
    Decoded d;
    d.opcode = opcode;
    d.consumed = end;
    switch (opcode) {
      case Opcode::kPing:
      case Opcode::kPong:
        d.kind = opcode == Opcode::kPing ? Kind::kPing : Kind::kPong;
        d.payload = data;
        return d;
      case Opcode::kClose:
        d.kind = Kind::kClose;
        if (data.empty()) {
          d.close_code = close_code::kNoStatus;
          return d;
        }
        if (data.size() == 1) {
          return failure(close_code::kProtocolError, "close payload of one byte", offset);
        }
        d.close_code = static_cast<std::uint16_t>(read_be(payload, 2));
        if (!is_valid_close_code(d.close_code)) {
          return failure(close_code::kProtocolError, "invalid close code", offset);
        }
        d.payload = data.substr(2);
        if (!core::is_valid_utf8(d.payload)) {
          return failure(close_code::kInvalidPayload, "close reason is not valid UTF-8", offset);
        }
        return d;
      default:
        break;
    }

    if (opcode != Opcode::kContinuation) {
      if (!fin) {
        in_fragmented_ = true;
        fragmented_opcode_ = opcode;
        fragments_.assign(data);
        offset = end;
        continue;
      }
      d.payload = data;  // zero-copy: the message is the frame's own payload
    } else {
      fragments_.append(data);
      if (!fin) {
        offset = end;
        continue;
      }
      in_fragmented_ = false;
      d.opcode = fragmented_opcode_;
      d.payload = fragments_;
    }
    if (text && !utf8_.complete()) {
      return failure(close_code::kInvalidPayload, "text ends inside a UTF-8 sequence", offset);
    }
    d.kind = Kind::kMessage;
    return d;
  }
}

std::size_t frame_header(Opcode opcode, std::size_t payload_bytes, std::array<char, 10>& out) {
  out[0] = static_cast<char>(0x80 | static_cast<unsigned>(opcode));
  std::size_t width = 0;
  if (payload_bytes <= 125) {
    out[1] = static_cast<char>(payload_bytes);
    return 2;
  }
  if (payload_bytes <= 0xFFFF) {
    out[1] = static_cast<char>(126);
    width = 2;
  } else {
    out[1] = static_cast<char>(127);
    width = 8;
  }
  const auto length = static_cast<std::uint64_t>(payload_bytes);
  for (std::size_t i = 0; i < width; ++i) {
    out[2 + i] = static_cast<char>((length >> (8 * (width - 1 - i))) & 0xFF);
  }
  return 2 + width;
}

std::string control_frame(Opcode opcode, std::string_view payload) {
  payload = payload.substr(0, kMaxControlPayload);
  std::array<char, 10> header;
  const std::size_t n = frame_header(opcode, payload.size(), header);
  std::string out;
  out.reserve(n + payload.size());
  out.append(header.data(), n).append(payload);
  return out;
}

std::string close_frame(std::uint16_t code, std::string_view reason) {
  if (code == close_code::kNoStatus) return control_frame(Opcode::kClose, {});
  reason = truncate_utf8(reason, kMaxCloseReason);
  std::string body;
  body.reserve(2 + reason.size());
  body.push_back(static_cast<char>(code >> 8));
  body.push_back(static_cast<char>(code & 0xFF));
  body.append(reason);
  return control_frame(Opcode::kClose, body);
}

}  // namespace sg::net::ws
