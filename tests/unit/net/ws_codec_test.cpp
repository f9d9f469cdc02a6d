#include "net/ws_codec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace sg::net::ws {
namespace {

using Kind = Decoded::Kind;

constexpr std::uint8_t kFin = 0x80;
constexpr std::array<std::uint8_t, 4> kRfcMask = {0x37, 0xfa, 0x21, 0x3d};

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// A client frame: `first` is FIN/RSV/opcode verbatim; the length uses the shortest form; the
// payload is masked with `mask`.
std::string client_frame(std::uint8_t first, std::string_view payload,
                         std::array<std::uint8_t, 4> mask = kRfcMask) {
  std::string out;
  out.push_back(static_cast<char>(first));
  const std::uint64_t n = payload.size();
  if (n <= 125) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(0x80 | 126));
    for (int shift = 8; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  }
  for (auto m : mask) out.push_back(static_cast<char>(m));
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<char>(payload[i] ^ static_cast<char>(mask[i % 4])));
  }
  return out;
}

std::uint8_t op(Opcode o) {
  return static_cast<std::uint8_t>(o);
}

// What a caller observed from one decode step, with the payload copied out.
struct Event {
  Kind kind;
  Opcode opcode;
  std::uint16_t close_code;
  std::string payload;
  bool operator==(const Event&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Event& e) {
  return os << "{kind=" << static_cast<int>(e.kind) << " opcode=" << static_cast<int>(e.opcode)
            << " code=" << e.close_code << " payload=" << e.payload.size() << "B}";
}

// Plays a session: appends each chunk to its read buffer, decodes until kNeedMore, drops
// `consumed` bytes after every step, stops at kError or kClose. A trailing kNeedMore event
// records whether bytes were left over.
std::vector<Event> feed(Decoder& decoder, std::string_view stream,
                        const std::vector<std::size_t>& chunk_sizes) {
  std::vector<Event> events;
  std::string buffer;
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < stream.size() || i == 0; ++i) {
    const std::size_t n = i < chunk_sizes.size() ? chunk_sizes[i] : stream.size() - pos;
    buffer.append(stream.substr(pos, n));
    pos += std::min(n, stream.size() - pos);
    for (;;) {
      const Decoded d = decoder.decode(std::span<char>(buffer.data(), buffer.size()));
      EXPECT_LE(d.consumed, buffer.size());
      if (d.kind != Kind::kNeedMore) {
        const bool opcode_matters = d.kind != Kind::kError;
        events.push_back({d.kind, opcode_matters ? d.opcode : Opcode::kText, d.close_code,
                          std::string(d.payload)});
      }
      buffer.erase(0, d.consumed);
      if (d.kind == Kind::kError || d.kind == Kind::kClose) return events;
      if (d.kind == Kind::kNeedMore) break;
    }
  }
  if (!buffer.empty()) events.push_back({Kind::kNeedMore, Opcode::kText, 0, ""});
  return events;
}

std::vector<Event> feed_whole(std::string_view stream, std::size_t limit = 1 << 20) {
  Decoder decoder(limit);
  return feed(decoder, stream, {stream.size()});
}

Decoded decode_once(Decoder& decoder, std::string& buffer) {
  return decoder.decode(std::span<char>(buffer.data(), buffer.size()));
}

Event message(Opcode o, std::string payload) {
  return {Kind::kMessage, o, 0, std::move(payload)};
}
Event error(std::uint16_t code) {
  return {Kind::kError, Opcode::kText, code, ""};
}

// --- accept_key -------------------------------------------------------------------------------

TEST(AcceptKey, MatchesRfc6455Example) {
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

// --- RFC 6455 §5.7 examples -------------------------------------------------------------------

TEST(Decoder, DecodesRfcMaskedHello) {
  std::string in = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  Decoder decoder(1024);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kMessage);
  EXPECT_EQ(d.opcode, Opcode::kText);
  EXPECT_EQ(d.payload, "Hello");
  EXPECT_EQ(d.consumed, 11u);
}

TEST(Decoder, UnmasksUnfragmentedMessageInPlaceWithoutCopying) {
  std::string in = client_frame(kFin | op(Opcode::kBinary), "zero-copy");
  Decoder decoder(1024);
  const Decoded d = decode_once(decoder, in);
  ASSERT_EQ(d.kind, Kind::kMessage);
  EXPECT_EQ(d.payload.data(), in.data() + 6);
  EXPECT_EQ(in.substr(6), "zero-copy");
}

TEST(Decoder, DecodesRfcMaskedPong) {
  std::string in = bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  Decoder decoder(1024);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kPong);
  EXPECT_EQ(d.opcode, Opcode::kPong);
  EXPECT_EQ(d.payload, "Hello");
  EXPECT_EQ(d.consumed, 11u);
}

TEST(Decoder, DecodesMaskedPing) {
  std::string in = client_frame(kFin | op(Opcode::kPing), "Hello");
  Decoder decoder(1024);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kPing);
  EXPECT_EQ(d.payload, "Hello");
  EXPECT_EQ(d.consumed, in.size());
}

TEST(Decoder, RejectsRfcUnmaskedExamplesBecauseClientsMustMask) {
  for (std::string in :
       {bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), bytes({0x01, 0x03, 0x48, 0x65, 0x6c}),
        bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f})}) {
    Decoder decoder(1024);
    const Decoded d = decode_once(decoder, in);
    EXPECT_EQ(d.kind, Kind::kError);
    EXPECT_EQ(d.close_code, close_code::kProtocolError);
  }
}

TEST(Decoder, ReassemblesFragmentedHello) {
  std::string in = client_frame(op(Opcode::kText), "Hel") +
                   client_frame(kFin | op(Opcode::kContinuation), "lo", {1, 2, 3, 4});
  Decoder decoder(1024);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kMessage);
  EXPECT_EQ(d.opcode, Opcode::kText);
  EXPECT_EQ(d.payload, "Hello");
  EXPECT_EQ(d.consumed, in.size());
  EXPECT_EQ(decoder.buffered_bytes(), 5u);
  std::string rest;
  EXPECT_EQ(decode_once(decoder, rest).kind, Kind::kNeedMore);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

TEST(Decoder, Decodes256ByteBinaryWith16BitLength) {
  std::string payload(256, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i);
  std::string in = client_frame(kFin | op(Opcode::kBinary), payload);
  ASSERT_EQ(in.substr(0, 4), bytes({0x82, 0xFE, 0x01, 0x00}));
  Decoder decoder(1 << 20);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kMessage);
  EXPECT_EQ(d.opcode, Opcode::kBinary);
  EXPECT_EQ(d.payload, payload);
  EXPECT_EQ(d.consumed, 4u + 4u + 256u);
}

TEST(Decoder, Decodes64KiBBinaryWith64BitLength) {
  std::string payload(65536, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
  std::string in = client_frame(kFin | op(Opcode::kBinary), payload);
  ASSERT_EQ(in.substr(0, 10), bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0}));
  Decoder decoder(65536);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kMessage);
  EXPECT_EQ(d.payload, payload);
  EXPECT_EQ(d.consumed, 10u + 4u + 65536u);
}

// --- need more / consumed contract ------------------------------------------------------------

TEST(Decoder, ReturnsNeedMoreWithoutConsumingAPartialFrame) {
  const std::string whole = client_frame(kFin | op(Opcode::kBinary), std::string(300, 'x'));
  for (std::size_t n = 0; n < whole.size(); ++n) {
    std::string in = whole.substr(0, n);
    Decoder decoder(1024);
    const Decoded d = decode_once(decoder, in);
    EXPECT_EQ(d.kind, Kind::kNeedMore) << n;
    EXPECT_EQ(d.consumed, 0u) << n;
  }
}

TEST(Decoder, NeedMoreCountsFragmentsAbsorbedInTheSameCall) {
  const std::string first = client_frame(op(Opcode::kBinary), "abc");
  const std::string second = client_frame(op(Opcode::kContinuation), "def");
  const std::string last = client_frame(kFin | op(Opcode::kContinuation), "ghi");
  std::string in = first + second + last.substr(0, 4);
  Decoder decoder(1024);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kNeedMore);
  EXPECT_EQ(d.consumed, first.size() + second.size());
  EXPECT_EQ(decoder.buffered_bytes(), 6u);
  std::string rest = last;
  const Decoded m = decode_once(decoder, rest);
  EXPECT_EQ(m.kind, Kind::kMessage);
  EXPECT_EQ(m.opcode, Opcode::kBinary);
  EXPECT_EQ(m.payload, "abcdefghi");
  EXPECT_EQ(m.consumed, last.size());
}

TEST(Decoder, ReturnsOneStepPerCallAndLeavesTheRest) {
  const std::string a = client_frame(kFin | op(Opcode::kText), "one");
  const std::string b = client_frame(kFin | op(Opcode::kPing), "two");
  std::string in = a + b;
  Decoder decoder(1024);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.payload, "one");
  EXPECT_EQ(d.consumed, a.size());
  EXPECT_EQ(feed_whole(a + b), (std::vector<Event>{message(Opcode::kText, "one"),
                                                   {Kind::kPing, Opcode::kPing, 0, "two"}}));
}

TEST(Decoder, AcceptsEmptyMessages) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kText), "")),
            std::vector<Event>{message(Opcode::kText, "")});
  EXPECT_EQ(feed_whole(client_frame(op(Opcode::kBinary), "") +
                       client_frame(kFin | op(Opcode::kContinuation), "")),
            std::vector<Event>{message(Opcode::kBinary, "")});
}

// --- header rules -----------------------------------------------------------------------------

TEST(Decoder, RejectsEachReservedBit) {
  for (std::uint8_t rsv : {0x40, 0x20, 0x10}) {
    EXPECT_EQ(feed_whole(client_frame(kFin | rsv | op(Opcode::kText), "x")),
              std::vector<Event>{error(close_code::kProtocolError)})
        << int{rsv};
  }
}

TEST(Decoder, RejectsUnknownOpcodes) {
  for (std::uint8_t o : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    EXPECT_EQ(feed_whole(client_frame(kFin | o, "x")),
              std::vector<Event>{error(close_code::kProtocolError)})
        << int{o};
  }
}

TEST(Decoder, RejectsUnmaskedFrameFromItsFirstTwoBytes) {
  std::string in = bytes({0x82, 0x05});
  Decoder decoder(1024);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kError);
  EXPECT_EQ(d.close_code, close_code::kProtocolError);
}

TEST(Decoder, Rejects64BitLengthWithHighBitSet) {
  std::string in = bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0});
  Decoder decoder(1024);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kError);
  EXPECT_EQ(d.close_code, close_code::kProtocolError);
}

TEST(Decoder, RejectsLengthsNotInTheirMinimalForm) {
  const std::string mask = bytes({1, 2, 3, 4});
  // 5 bytes in the 16-bit form, 125 in the 16-bit form, 65535 in the 64-bit form.
  for (std::string in : {bytes({0x82, 0xFE, 0x00, 0x05}) + mask + "hello",
                         bytes({0x82, 0xFE, 0x00, 0x7D}) + mask + std::string(125, 'a'),
                         bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}) + mask}) {
    Decoder decoder(1 << 20);
    const Decoded d = decode_once(decoder, in);
    EXPECT_EQ(d.kind, Kind::kError);
    EXPECT_EQ(d.close_code, close_code::kProtocolError);
  }
}

TEST(Decoder, AcceptsSmallestLengthOfEachForm) {
  for (std::size_t n : {125u, 126u, 65535u, 65536u}) {
    EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kBinary), std::string(n, 'q'))),
              std::vector<Event>{message(Opcode::kBinary, std::string(n, 'q'))})
        << n;
  }
}

// --- control frames ---------------------------------------------------------------------------

TEST(Decoder, AcceptsControlFrameOf125Bytes) {
  const std::string payload(125, 'p');
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kPing), payload)),
            (std::vector<Event>{{Kind::kPing, Opcode::kPing, 0, payload}}));
}

TEST(Decoder, RejectsControlFrameOver125BytesFromItsFirstTwoBytes) {
  for (Opcode o : {Opcode::kPing, Opcode::kPong, Opcode::kClose}) {
    std::string in = bytes({kFin | op(o), 0x80 | 126});
    Decoder decoder(1 << 20);
    const Decoded d = decode_once(decoder, in);
    EXPECT_EQ(d.kind, Kind::kError);
    EXPECT_EQ(d.close_code, close_code::kProtocolError);
  }
}

TEST(Decoder, RejectsFragmentedControlFrame) {
  for (Opcode o : {Opcode::kPing, Opcode::kPong, Opcode::kClose}) {
    EXPECT_EQ(feed_whole(client_frame(op(o), "")),
              std::vector<Event>{error(close_code::kProtocolError)});
  }
}

TEST(Decoder, DeliversPingInterleavedInFragmentedMessage) {
  const std::string stream =
      client_frame(op(Opcode::kText), "fra") + client_frame(kFin | op(Opcode::kPing), "ping!") +
      client_frame(op(Opcode::kContinuation), "gme") + client_frame(kFin | op(Opcode::kPong), "") +
      client_frame(kFin | op(Opcode::kContinuation), "nted");
  EXPECT_EQ(feed_whole(stream), (std::vector<Event>{{Kind::kPing, Opcode::kPing, 0, "ping!"},
                                                    {Kind::kPong, Opcode::kPong, 0, ""},
                                                    message(Opcode::kText, "fragmented")}));
}

TEST(Decoder, DeliversCloseInsideFragmentedMessage) {
  const std::string stream =
      client_frame(op(Opcode::kText), "half") + client_frame(kFin | op(Opcode::kClose), "");
  EXPECT_EQ(feed_whole(stream),
            (std::vector<Event>{{Kind::kClose, Opcode::kClose, close_code::kNoStatus, ""}}));
}

// --- fragmentation order ----------------------------------------------------------------------

TEST(Decoder, RejectsContinuationWithoutAStartedMessage) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kContinuation), "x")),
            std::vector<Event>{error(close_code::kProtocolError)});
  EXPECT_EQ(feed_whole(client_frame(op(Opcode::kContinuation), "x")),
            std::vector<Event>{error(close_code::kProtocolError)});
  // A continuation after the message it belonged to has ended.
  EXPECT_EQ(feed_whole(client_frame(op(Opcode::kText), "a") +
                       client_frame(kFin | op(Opcode::kContinuation), "b") +
                       client_frame(kFin | op(Opcode::kContinuation), "c")),
            (std::vector<Event>{message(Opcode::kText, "ab"), error(close_code::kProtocolError)}));
}

TEST(Decoder, RejectsNewMessageWhileFragmentedMessageIsOpen) {
  for (Opcode o : {Opcode::kText, Opcode::kBinary}) {
    EXPECT_EQ(feed_whole(client_frame(op(Opcode::kBinary), "a") + client_frame(kFin | op(o), "b")),
              std::vector<Event>{error(close_code::kProtocolError)});
  }
}

// --- size limit -------------------------------------------------------------------------------

TEST(Decoder, AcceptsMessageExactlyAtTheLimit) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kBinary), std::string(100, 'a')), 100),
            std::vector<Event>{message(Opcode::kBinary, std::string(100, 'a'))});
  EXPECT_EQ(
      feed_whole(client_frame(op(Opcode::kBinary), std::string(60, 'a')) +
                     client_frame(kFin | op(Opcode::kContinuation), std::string(40, 'b')),
                 100),
      std::vector<Event>{message(Opcode::kBinary, std::string(60, 'a') + std::string(40, 'b'))});
}

TEST(Decoder, RejectsOversizedFrameFromItsHeaderAlone) {
  // Only the header of a 1 GiB frame: the verdict must not wait for the payload.
  std::string in = bytes({0x82, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0});
  Decoder decoder(65536);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kError);
  EXPECT_EQ(d.close_code, close_code::kMessageTooBig);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

TEST(Decoder, RejectsOneByteOverTheLimit) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kText), std::string(101, 'a')), 100),
            std::vector<Event>{error(close_code::kMessageTooBig)});
}

TEST(Decoder, RejectsMessageOverTheLimitAcrossFragments) {
  const std::string stream = client_frame(op(Opcode::kBinary), std::string(60, 'a')) +
                             client_frame(op(Opcode::kContinuation), std::string(40, 'b')) +
                             client_frame(kFin | op(Opcode::kContinuation), "c");
  EXPECT_EQ(feed_whole(stream, 100), std::vector<Event>{error(close_code::kMessageTooBig)});
  // Also when only the header of the fragment that crosses the limit has arrived.
  Decoder decoder(100);
  std::string in = stream.substr(0, stream.size() - 5);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kError);
  EXPECT_EQ(d.close_code, close_code::kMessageTooBig);
}

TEST(Decoder, DoesNotCountControlFramesAgainstTheMessageLimit) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kPing), std::string(50, 'p')), 10),
            (std::vector<Event>{{Kind::kPing, Opcode::kPing, 0, std::string(50, 'p')}}));
}

// --- UTF-8 in text messages -------------------------------------------------------------------

TEST(Decoder, RejectsTextThatIsNotUtf8) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kText), "ok \xC0\xAF")),
            std::vector<Event>{error(close_code::kInvalidPayload)});
}

TEST(Decoder, DoesNotValidateBinaryAsUtf8) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kBinary), "\xFF\xFE")),
            std::vector<Event>{message(Opcode::kBinary, "\xFF\xFE")});
}

TEST(Decoder, AcceptsUtf8SequenceSplitAcrossFragments) {
  // U+1F600 is F0 9F 98 80: split after every byte.
  const std::string smile = "\xF0\x9F\x98\x80";
  for (std::size_t cut = 1; cut < smile.size(); ++cut) {
    // Appended, not "a" + smile.substr(...): GCC 12 at -O3 reports a false -Wrestrict there.
    std::string first = "a";
    first += smile.substr(0, cut);
    const std::string stream =
        client_frame(op(Opcode::kText), first) +
        client_frame(kFin | op(Opcode::kContinuation), smile.substr(cut) + "b");
    EXPECT_EQ(feed_whole(stream), std::vector<Event>{message(Opcode::kText, "a" + smile + "b")})
        << cut;
  }
  // One byte per fragment.
  const std::string stream = client_frame(op(Opcode::kText), "\xE2") +
                             client_frame(op(Opcode::kContinuation), "\x82") +
                             client_frame(kFin | op(Opcode::kContinuation), "\xAC");
  EXPECT_EQ(feed_whole(stream), std::vector<Event>{message(Opcode::kText, "\xE2\x82\xAC")});
}

TEST(Decoder, RejectsTextWhoseFinalFragmentEndsMidSequence) {
  EXPECT_EQ(feed_whole(client_frame(op(Opcode::kText), "a") +
                       client_frame(kFin | op(Opcode::kContinuation), "\xE2\x82")),
            std::vector<Event>{error(close_code::kInvalidPayload)});
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kText), "\xF0\x9F")),
            std::vector<Event>{error(close_code::kInvalidPayload)});
}

TEST(Decoder, FailsFastOnInvalidUtf8InANonFinalFragment) {
  // The final fragment never arrives; the first one is already invalid.
  std::string in = client_frame(op(Opcode::kText), "ok\xED\xA0\x80");
  Decoder decoder(1024);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kError);
  EXPECT_EQ(d.close_code, close_code::kInvalidPayload);
}

TEST(Decoder, FailsFastOnInvalidUtf8BeforeTheFrameIsComplete) {
  const std::string whole =
      client_frame(kFin | op(Opcode::kText), "abc\xFF" + std::string(1000, 'z'));
  std::string in = whole.substr(0, 4 + 4 + 4);  // header, mask and "abc\xFF"
  Decoder decoder(4096);
  const Decoded d = decode_once(decoder, in);
  EXPECT_EQ(d.kind, Kind::kError);
  EXPECT_EQ(d.close_code, close_code::kInvalidPayload);
}

TEST(Decoder, KeepsPartiallyUnmaskedFrameConsistentAcrossCalls) {
  const std::string payload = "caf\xC3\xA9 " + std::string(200, 'x');
  const std::string whole = client_frame(kFin | op(Opcode::kText), payload);
  Decoder decoder(4096);
  std::string buffer = whole.substr(0, 12);
  EXPECT_EQ(decode_once(decoder, buffer).kind, Kind::kNeedMore);
  buffer += whole.substr(12, 50);
  EXPECT_EQ(decode_once(decoder, buffer).kind, Kind::kNeedMore);
  buffer += whole.substr(62);
  const Decoded d = decode_once(decoder, buffer);
  EXPECT_EQ(d.kind, Kind::kMessage);
  EXPECT_EQ(d.payload, payload);
}

TEST(Decoder, StartsEachTextMessageWithFreshUtf8State) {
  // A message that ended cleanly leaves nothing behind for the next one.
  const std::string stream = client_frame(kFin | op(Opcode::kText), "\xC3\xA9") +
                             client_frame(kFin | op(Opcode::kText), "\xE2\x82\xAC");
  EXPECT_EQ(feed_whole(stream), (std::vector<Event>{message(Opcode::kText, "\xC3\xA9"),
                                                    message(Opcode::kText, "\xE2\x82\xAC")}));
}

// --- close frames -----------------------------------------------------------------------------

TEST(Decoder, ReportsNoStatusForEmptyClose) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kClose), "")),
            (std::vector<Event>{{Kind::kClose, Opcode::kClose, close_code::kNoStatus, ""}}));
}

TEST(Decoder, RejectsCloseWithOneBytePayload) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kClose), "\x03")),
            std::vector<Event>{error(close_code::kProtocolError)});
}

TEST(Decoder, DecodesCloseCodeAndReason) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kClose),
                                    "\x03\xE8"
                                    "bye \xC3\xA9")),
            (std::vector<Event>{{Kind::kClose, Opcode::kClose, 1000, "bye \xC3\xA9"}}));
}

TEST(Decoder, AcceptsEveryValidCloseCode) {
  for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
                   3999, 4000, 4001, 4999}) {
    const std::string body = bytes({code >> 8, code & 0xFF});
    EXPECT_EQ(
        feed_whole(client_frame(kFin | op(Opcode::kClose), body)),
        (std::vector<Event>{{Kind::kClose, Opcode::kClose, static_cast<std::uint16_t>(code), ""}}))
        << code;
  }
}

TEST(Decoder, RejectsInvalidCloseCodes) {
  for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    const std::string body = bytes({code >> 8, code & 0xFF});
    EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kClose), body)),
              std::vector<Event>{error(close_code::kProtocolError)})
        << code;
  }
}

TEST(Decoder, RejectsCloseReasonThatIsNotUtf8) {
  EXPECT_EQ(feed_whole(client_frame(kFin | op(Opcode::kClose), "\x03\xE8\xCE\xBA\xE1\xBD")),
            std::vector<Event>{error(close_code::kInvalidPayload)});
}

TEST(Decoder, ChecksCloseReasonIndependentlyOfAnOpenTextMessage) {
  // The open text message ends mid-sequence; the close reason must still validate on its own.
  const std::string stream = client_frame(op(Opcode::kText), "\xE2\x82") +
                             client_frame(kFin | op(Opcode::kClose), "\x03\xE8ok");
  EXPECT_EQ(feed_whole(stream), (std::vector<Event>{{Kind::kClose, Opcode::kClose, 1000, "ok"}}));
}

// --- splitting ------------------------------------------------------------------------------

std::vector<std::string> sample_streams() {
  const std::string hello = client_frame(kFin | op(Opcode::kText), "Hello");
  const std::string big = client_frame(kFin | op(Opcode::kBinary), std::string(200, 'b'));
  return {
      hello + big +
          client_frame(kFin | op(Opcode::kClose),
                       "\x03\xE8"
                       "done"),
      client_frame(op(Opcode::kText), "Hel\xC3") + client_frame(kFin | op(Opcode::kPing), "p") +
          client_frame(op(Opcode::kContinuation), "\xA9l") +
          client_frame(kFin | op(Opcode::kContinuation), "o \xF0\x9F\x98\x80") + hello,
      hello + client_frame(kFin | op(Opcode::kText),
                           "bad \xED\xA0\x80 surrogate" + std::string(200, 'x')),
      hello + client_frame(op(Opcode::kText), std::string(150, 'a')) +
          client_frame(kFin | op(Opcode::kContinuation), std::string(150, 'b')),  // over 256
      hello + bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}),
      hello + bytes({0x82, 0xFE, 0x00, 0x05, 1, 2, 3, 4}) + "hello",
      hello + client_frame(kFin | 0x40 | op(Opcode::kText), "rsv"),
      hello + client_frame(op(Opcode::kPing), "frag ping"),
      hello + client_frame(kFin | op(Opcode::kClose), "\x03"),
      hello + client_frame(kFin | op(Opcode::kClose), "\x03\xE8\xED"),
      hello + bytes({0x81, 0x05}) + "Hello",
      hello + hello.substr(0, 7),  // ends inside a frame
  };
}

TEST(Decoder, GivesTheSameResultForEverySplitOfTheStream) {
  const auto streams = sample_streams();
  for (std::size_t s = 0; s < streams.size(); ++s) {
    const std::string& stream = streams[s];
    Decoder whole_decoder(256);
    const std::vector<Event> whole = feed(whole_decoder, stream, {stream.size()});
    ASSERT_FALSE(whole.empty()) << s;

    Decoder byte_decoder(256);
    EXPECT_EQ(feed(byte_decoder, stream, std::vector<std::size_t>(stream.size(), 1)), whole)
        << "stream " << s << " byte at a time";

    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
      Decoder decoder(256);
      EXPECT_EQ(feed(decoder, stream, {cut, stream.size() - cut}), whole)
          << "stream " << s << " cut at " << cut;
    }
  }
}

TEST(Decoder, SampleStreamsGiveTheExpectedVerdicts) {
  const auto streams = sample_streams();
  const auto last = [](std::string_view stream) {
    Decoder decoder(256);
    return feed(decoder, stream, {stream.size()}).back();
  };
  EXPECT_EQ(last(streams[0]), (Event{Kind::kClose, Opcode::kClose, 1000, "done"}));
  EXPECT_EQ(last(streams[1]), message(Opcode::kText, "Hello"));
  EXPECT_EQ(last(streams[2]), error(close_code::kInvalidPayload));
  EXPECT_EQ(last(streams[3]), error(close_code::kMessageTooBig));
  for (std::size_t s = 4; s <= 9; ++s) {
    const std::uint16_t want = s == 9 ? close_code::kInvalidPayload : close_code::kProtocolError;
    EXPECT_EQ(last(streams[s]), error(want)) << s;
  }
  EXPECT_EQ(last(streams[10]), error(close_code::kProtocolError));
  EXPECT_EQ(last(streams[11]), (Event{Kind::kNeedMore, Opcode::kText, 0, ""}));
}

TEST(Decoder, StaysSmallBecauseThereIsOnePerConnection) {
  EXPECT_LE(sizeof(Decoder), 64u);
}

TEST(Decoder, ReleasesALargeReassemblyBufferAfterDelivery) {
  std::string in = client_frame(op(Opcode::kBinary), std::string(40000, 'a')) +
                   client_frame(kFin | op(Opcode::kContinuation), "b");
  Decoder decoder(1 << 20);
  EXPECT_EQ(decode_once(decoder, in).kind, Kind::kMessage);
  EXPECT_EQ(decoder.buffered_bytes(), 40001u);
  std::string empty;
  EXPECT_EQ(decode_once(decoder, empty).kind, Kind::kNeedMore);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

// --- encoder ----------------------------------------------------------------------------------

TEST(FrameHeader, MatchesRfcExamples) {
  std::array<char, 10> h{};
  ASSERT_EQ(frame_header(Opcode::kText, 5, h), 2u);
  EXPECT_EQ(std::string(h.data(), 2) + "Hello", bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  ASSERT_EQ(frame_header(Opcode::kPing, 5, h), 2u);
  EXPECT_EQ(std::string(h.data(), 2), bytes({0x89, 0x05}));
  ASSERT_EQ(frame_header(Opcode::kBinary, 256, h), 4u);
  EXPECT_EQ(std::string(h.data(), 4), bytes({0x82, 0x7E, 0x01, 0x00}));
  ASSERT_EQ(frame_header(Opcode::kBinary, 65536, h), 10u);
  EXPECT_EQ(std::string(h.data(), 10), bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}));
}

TEST(FrameHeader, UsesTheShortestLengthForm) {
  std::array<char, 10> h{};
  EXPECT_EQ(frame_header(Opcode::kText, 0, h), 2u);
  EXPECT_EQ(frame_header(Opcode::kText, 125, h), 2u);
  EXPECT_EQ(frame_header(Opcode::kText, 126, h), 4u);
  EXPECT_EQ(frame_header(Opcode::kText, 65535, h), 4u);
  EXPECT_EQ(std::string(h.data(), 4), bytes({0x81, 0x7E, 0xFF, 0xFF}));
  EXPECT_EQ(frame_header(Opcode::kText, 65536, h), 10u);
  EXPECT_EQ(frame_header(Opcode::kText, 0x0102030405060708ULL, h), 10u);
  EXPECT_EQ(std::string(h.data(), 10), bytes({0x81, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8}));
}

// Turns a server frame into the client frame a browser would send: mask bit, key, masked body.
std::string mask_server_frame(const std::string& frame, std::size_t header_len) {
  std::string out = frame.substr(0, header_len);
  out[1] = static_cast<char>(out[1] | 0x80);
  const std::string key = bytes({0xA1, 0x5B, 0x00, 0xFF});
  out += key;
  for (std::size_t i = header_len; i < frame.size(); ++i) {
    out.push_back(static_cast<char>(frame[i] ^ key[(i - header_len) % 4]));
  }
  return out;
}

TEST(FrameHeader, RoundTripsThroughTheDecoderAtEveryLengthForm) {
  for (std::size_t n : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 70000u}) {
    std::string payload(n, '\0');
    for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>(i * 31 + 7);
    std::array<char, 10> h{};
    const std::size_t len = frame_header(Opcode::kBinary, n, h);
    EXPECT_EQ(feed_whole(mask_server_frame(std::string(h.data(), len) + payload, len)),
              std::vector<Event>{message(Opcode::kBinary, payload)})
        << n;
  }
}

TEST(CloseFrame, EncodesCodeAndReason) {
  EXPECT_EQ(close_frame(close_code::kGoingAway, "bye"), bytes({0x88, 0x05, 0x03, 0xE9}) + "bye");
  EXPECT_EQ(close_frame(4008, ""), bytes({0x88, 0x02, 0x0F, 0xA8}));
}

TEST(CloseFrame, SendsNoStatusAsAnEmptyClose) {
  EXPECT_EQ(close_frame(close_code::kNoStatus, "ignored"), bytes({0x88, 0x00}));
}

TEST(CloseFrame, KeepsAReasonOfExactly123Bytes) {
  const std::string reason(123, 'r');
  const std::string frame = close_frame(1000, reason);
  EXPECT_EQ(frame.size(), 127u);
  EXPECT_EQ(frame.substr(4), reason);
}

TEST(CloseFrame, TruncatesTheReasonAtACharacterBoundary) {
  EXPECT_EQ(close_frame(1000, std::string(200, 'r')).substr(4), std::string(123, 'r'));
  // 122 ASCII bytes then a 2-byte character that would straddle the limit: dropped whole.
  EXPECT_EQ(close_frame(1000, std::string(122, 'r') + "\xC3\xA9").substr(4), std::string(122, 'r'));
  // A 4-byte character straddling by one, two and three bytes.
  for (std::size_t ascii : {120u, 121u, 122u}) {
    const std::string frame = close_frame(1000, std::string(ascii, 'r') + "\xF0\x9F\x98\x80");
    EXPECT_EQ(frame.substr(4), std::string(ascii, 'r')) << ascii;
  }
  EXPECT_EQ(close_frame(1000, std::string(119, 'r') + "\xF0\x9F\x98\x80z").substr(4),
            std::string(119, 'r') + "\xF0\x9F\x98\x80");
}

TEST(CloseFrame, DecodesBackAfterMasking) {
  const std::string frame = close_frame(4001, "token expired \xE2\x8F\xB0");
  EXPECT_EQ(
      feed_whole(mask_server_frame(frame, 2)),
      (std::vector<Event>{{Kind::kClose, Opcode::kClose, 4001, "token expired \xE2\x8F\xB0"}}));
}

TEST(ControlFrame, TruncatesPayloadTo125Bytes) {
  const std::string frame = control_frame(Opcode::kPing, std::string(300, 'p'));
  EXPECT_EQ(frame, bytes({0x89, 0x7D}) + std::string(125, 'p'));
  EXPECT_EQ(control_frame(Opcode::kPong, "hi"), bytes({0x8A, 0x02}) + "hi");
}

}  // namespace
}  // namespace sg::net::ws
