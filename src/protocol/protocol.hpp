// protocol: the wire format between streamgate and its clients and producers, as typed
// values. Parses client WebSocket messages and publish bodies; serializes server frames.
// Pure: no I/O, no clocks, no globals; safe from any thread. docs/protocol.md is its prose twin.
#pragma once

#include "core/core.hpp"

#include <boost/container/small_vector.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace sg::protocol {

// The WebSocket close codes of streamgate's own (RFC 6455 §7.4.2 leaves 4000-4999 to
// applications); docs/protocol.md says what a client does on each.
namespace close_code {
inline constexpr std::uint16_t kTokenExpired = 4001;      // refresh the token and reconnect
inline constexpr std::uint16_t kHandshakeTimeout = 4002;  // no handshake message in time
inline constexpr std::uint16_t kPingTimeout = 4003;       // no traffic after a ping
// A producer disconnected the user (POST /v2/realtime/disconnect): don't reconnect unless the
// close reason says "reconnect".
inline constexpr std::uint16_t kDisconnected = 4004;
inline constexpr std::uint16_t kSlowConsumer = 4008;  // fell behind; reconnect and resume
}  // namespace close_code

enum class ProtocolError {
  kMalformedJson = 1,  // not JSON at all → close 1007
  kNotAnObject,        // JSON, but not the expected object/array shape → 1008
  kUnknownType,        // "type" names no message we know
  kMissingField,       // a required field is absent
  kBadField,           // a field has the wrong type, is empty, or too long
  kBadVersion,         // handshake "version" is not one we speak
  kTooManyItems,       // more services/resume entries/batch items than allowed
  kBadEventId,         // an event id that doesn't parse as "<epoch>-<offset>"
  kUnknownField,       // a publish item has a field the protocol doesn't define
  kEmptyBatch,         // a publish batch with no items
};
std::string_view to_string(ProtocolError e);
constexpr const char* error_domain(ProtocolError) {
  return "protocol";
}
SG_DECLARE_ERROR_ENUM(ProtocolError)

constexpr int kProtocolVersion = 1;
// Names of services, rooms and event types: 1..64 bytes of [A-Za-z0-9_.:-].
constexpr std::size_t kMaxNameBytes = 64;
bool is_valid_name(std::string_view name);

// An event's stable position in its channel: the channel's epoch (changes when history is
// lost, e.g. memory broker restart) and a 1-based offset. Wire form: "<epoch>-<offset>",
// epoch = 1..32 chars of [0-9a-z], offset decimal.
struct EventId {
  std::string epoch;
  std::uint64_t offset = 0;
  friend bool operator==(const EventId&, const EventId&) = default;
};
std::string format_event_id(std::string_view epoch, std::uint64_t offset);
Result<EventId> parse_event_id(std::string_view text);

// ---- client → server (WebSocket text messages) ----

// service → the last event id the client saw there, as sent.
using ResumeMap = std::vector<std::pair<std::string, std::string>>;

// First message: {"services":["finance"],"version":1,"resume":{"finance":"<id>"}}.
// "type":"handshake" is accepted but optional.
struct Handshake {
  std::vector<std::string> services;
  int version = kProtocolVersion;
  ResumeMap resume;
};
// {"type":"subscribe","services":[...],"resume":{...}}
struct Subscribe {
  std::vector<std::string> services;
  ResumeMap resume;
};
// {"type":"unsubscribe","services":[...]}
struct Unsubscribe {
  std::vector<std::string> services;
};
// {"type":"ping"} — an application-level keepalive for clients that can't send WS pings.
struct Ping {};
// {"type":"refresh","token":"<jwt>"} — a fresh token for the open connection (in-band refresh).
// Only its shape is checked here: a non-empty string; the token itself is auth's to judge.
struct Refresh {
  std::string token;
};

// Chat rooms (docs/protocol.md#chat-rooms). Room names follow is_valid_name.
// {"type":"join","room":"general","history":20}; history absent = the server's default.
struct Join {
  std::string room;
  std::optional<std::uint64_t> history;
};
// {"type":"leave","room":"general"}
struct Leave {
  std::string room;
};
// {"type":"message","room":"general","text":"hi","clientMessageId":"m-1"}. The text is
// checked here only for being a non-empty string; its size limit is the chat module's.
struct ChatSend {
  std::string room;
  std::string text;
  std::string client_message_id;  // 1..128 bytes, no control characters
};
// {"type":"typing","room":"general"}
struct Typing {
  std::string room;
};
// {"type":"history","room":"general","before":"<id>","limit":50}: messages older than
// `before` (absent: the newest), at most `limit` (absent: the server's default).
struct HistoryRequest {
  std::string room;
  std::optional<EventId> before;
  std::optional<std::uint64_t> limit;
};

using ClientMessage = std::variant<Handshake, Subscribe, Unsubscribe, Ping, Refresh, Join, Leave,
                                   ChatSend, Typing, HistoryRequest>;

struct ParseLimits {
  std::size_t max_services = 64;  // per message
};

// Parses one client message. `expect_handshake` is true for the first message of a
// connection: then only a Handshake is valid; afterwards a message without "type" (or a second
// handshake) is kUnknownType. Errors say which rule was broken. Services are deduplicated
// keeping first order; the limit counts them before that. Resume ids are returned raw (1..128
// bytes): check them with parse_event_id. Unknown fields are ignored; a null field is absent.
Result<ClientMessage> parse_client_message(std::string_view text, bool expect_handshake,
                                           const ParseLimits& limits = {});

// ---- producer → server (POST /v2/realtime/publish) ----

struct PublishRequest {
  std::string org;        // "orgId": number or string, normalized to its decimal/string form
  std::string service;    // "service"
  std::string event;      // "event": the event type, e.g. "invoice.paid"
  std::string data;       // "data": its JSON text as sent, minified (absent or null → "null")
  std::string user;       // optional "userId": deliver only to this user's connections
  std::string event_key;  // optional "eventId": idempotency key for retried publishes
};

// Parses a single object, or an array of them (the batch form) with 1..`max_batch` items
// (an empty array is kEmptyBatch, a longer one kTooManyItems). `batch` is set when the body was
// an array. One bad item fails the whole body. An item with a field not in PublishRequest is
// kUnknownField, even when its value is null. An empty "userId" is kBadField (not
// "everyone"); null optional fields are absent. "orgId" follows core's org id rule
// (core::org_id_from_text/_integer). "data" is the value's source text with the whitespace
// between tokens removed: strings (escapes included) and numbers (of any size, 1e400 too) stay
// byte for byte as the producer sent them, in a string with room for the rest of the event's
// body (serialize_event_body_in_place). `items` holds one event, the usual body, in place.
struct PublishBody {
  boost::container::small_vector<PublishRequest, 1> items;
  bool batch = false;
};
// Where a rejected body broke a rule, for the producer's error answer.
struct PublishErrorDetail {
  // The item's field at fault ("orgId"; for kUnknownField the unknown name as sent, after JSON
  // unescaping); empty when the error is about the body or the item as a whole.
  std::string field;
  // In a batch, the 0-based position of the failing item; unset for the body as a whole.
  std::optional<std::size_t> index;
  // For kUnknownField: the defined field it probably meant ("userId" for "user_id"), or empty.
  std::string_view suggestion;
};
// On failure, fills `detail` when given (it is reset first).
Result<PublishBody> parse_publish(std::string_view body, std::size_t max_batch = 1000,
                                  PublishErrorDetail* detail = nullptr);

// ---- server → client ----

struct ResumeStatus {
  std::string service;
  bool recovered = true;  // false: some events after the client's id are gone
  // When not recovered: "epoch_changed", "too_old", "unknown_id" or "unavailable".
  std::string reason;
};

struct Ack {
  std::string connection_id;
  std::vector<std::string> services;
  std::vector<ResumeStatus> resume;  // one per service that asked to resume
  std::string timestamp;             // RFC 3339
};
// {"type":"ack","seq":0,"timestamp":…,"connectionId":…,"services":[…],"resume":{"finance":{"recovered":true}}}
std::string serialize_ack(const Ack& ack);

// {"type":"subscribed","services":[…],"resume":{…},"timestamp":…} — answer to a later subscribe.
std::string serialize_subscribed(const std::vector<std::string>& services,
                                 const std::vector<ResumeStatus>& resume,
                                 std::string_view timestamp);
// {"type":"unsubscribed","services":[…]}
std::string serialize_unsubscribed(const std::vector<std::string>& services);
// {"type":"pong","timestamp":…}
std::string serialize_pong(std::string_view timestamp);
// {"type":"refreshed","expiresAt":…} — a refresh was accepted; `expires_at` is the new token's
// exp (RFC 3339).
std::string serialize_refreshed(std::string_view expires_at);
// {"type":"expiring","expiresAt":…} — the token's exp is near (--token-refresh-notice): send a
// refresh before it, or be closed with 4001 at exp (+ leeway).
std::string serialize_expiring(std::string_view expires_at);
// {"type":"error","code":"unknown_service","message":"…"}, with "service":"…" after the message
// when the error is about one service (so a client can tell which one without parsing text).
std::string serialize_error(std::string_view code, std::string_view message,
                            std::string_view service = {});

// The part of an event frame that is the same for every recipient, built once per event:
//   "service":"finance","id":"…","event":"invoice.paid","data":{…},"timestamp":"…"}
// `data` must already be valid serialized JSON (empty is written as null); an empty `id` (an
// ephemeral event, never stored) leaves "id" out. A recipient's
// frame is append_event_frame_prefix(frame, seq) followed by the body.
std::string serialize_event_body(std::string_view service, std::string_view id,
                                 std::string_view event, std::string_view data,
                                 std::string_view timestamp);
// The same bytes, built in `data`'s own buffer (moved into the result): a published event's
// "data" comes from parse_publish with room for the rest of its body, so the body takes no
// allocation of its own. Without that room the buffer grows once, as the copy would.
std::string serialize_event_body_in_place(std::string_view service, std::string_view id,
                                          std::string_view event, std::string&& data,
                                          std::string_view timestamp);
// {"type":"event","seq":N,   — written per recipient. Appends to `out` without other allocation.
void append_event_frame_prefix(std::string& out, std::uint64_t seq);
// The same prefix written into `out`, which must hold kMaxEventFramePrefix bytes; returns its
// length. For the fan-out path, which writes it straight into a frame's inline head.
inline constexpr std::size_t kMaxEventFramePrefix = 43;
std::size_t write_event_frame_prefix(char* out, std::uint64_t seq);

// ---- chat frames (server → client) ----

// {"type":"joined","room":…,"timestamp":…} — answer to a join; the room's history events follow.
std::string serialize_joined(std::string_view room, std::string_view timestamp);
// {"type":"left","room":…}
std::string serialize_left(std::string_view room);
// {"type":"sent","room":…,"clientMessageId":…,"id":…,"duplicate":false} — a message was stored
// (or, with duplicate, had been stored before under the same clientMessageId).
std::string serialize_sent(std::string_view room, std::string_view client_message_id,
                           std::string_view id, bool duplicate);
// {"type":"history","room":…,"events":[{"service":…,"id":…,…},…],"more":true} — `bodies` are
// event bodies (serialize_event_body), oldest first.
std::string serialize_history_page(std::string_view room,
                                   const std::vector<std::string_view>& bodies, bool more);
// {"type":"error","code":…,"message":…,"room":…,"clientMessageId":…} — a chat request refused
// without closing the connection; clientMessageId only when not empty.
std::string serialize_chat_error(std::string_view code, std::string_view message,
                                 std::string_view room, std::string_view client_message_id);

// Appends `text` as a JSON string literal, quotes included: escapes '"', '\\' and control
// characters, passes valid UTF-8 through and replaces invalid bytes with U+FFFD, so the output
// is always valid JSON in valid UTF-8. The one in core, in its compact style: what every
// message on the wire uses.
using core::append_json_string;

}  // namespace sg::protocol

template <>
struct boost::system::is_error_code_enum<sg::protocol::ProtocolError> : std::true_type {};
