// chat: per-org chat rooms on top of the hub and broker. A room is the channel
// (org, "room:<name>"): messages are its stored events, typing and joined/left are signals.
// This module holds what is not a connection's own state: naming and access rules, the payloads
// of chat events, the node's presence bookkeeping and per-user rate limits (Registry, any
// thread), and the arithmetic of room stats. The WebSocket and HTTP ends live in server.
#pragma once

#include "broker/broker.hpp"
#include "core/core.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sg::metrics {
class Counter;
class Registry;
}  // namespace sg::metrics

namespace sg::chat {

enum class ChatError {
  kNotJoined = 1,    // message/typing/history for a room the connection has not joined
  kForbiddenRoom,    // the token's rooms claim does not list the room
  kTooManyRooms,     // over --chat-max-rooms for the connection
  kRoomFull,         // over --chat-max-members distinct users in the room
  kMessageTooLarge,  // text over --chat-max-bytes
  kRateLimited,      // the user's message bucket is empty (--chat-messages-per-minute)
  kUnavailable,      // the broker could not be read or written
  kQuotaExceeded,    // the org is over its chat quota (chatRate, docs/protocol.md#org-quotas)
};
std::string_view to_string(ChatError e);
constexpr const char* error_domain(ChatError) {
  return "chat";
}
SG_DECLARE_ERROR_ENUM(ChatError)

// Limits, from the --chat-* flags (docs/configuration.md).
struct ChatOptions {
  std::size_t max_bytes = 4096;                     // message text, UTF-8 bytes
  std::size_t history = 50;                         // messages sent on join, and the largest page
  std::uint32_t messages_per_minute = 60;           // sustained per-user message rate on a node
  std::uint32_t burst = 10;                         // messages a user may send at once
  std::size_t max_rooms = 32;                       // rooms one connection may be in
  std::size_t max_members = 1000;                   // distinct users in one room, cluster-wide
  std::chrono::milliseconds typing_interval{2000};  // per connection and room
};

// Event types of room events, as clients see them in "event".
inline constexpr std::string_view kMessageEvent = "chat.message";
inline constexpr std::string_view kJoinedEvent = "chat.joined";
inline constexpr std::string_view kLeftEvent = "chat.left";
inline constexpr std::string_view kTypingEvent = "chat.typing";

// Rooms share the channel namespace with services, under a prefix no client may subscribe to.
inline constexpr std::string_view kRoomPrefix = "room:";
std::string room_topic(std::string_view room);
bool is_room_topic(std::string_view topic);
broker::Channel room_channel(std::string_view org, std::string_view room);

// The token's rooms claim: nullopt lets the user join any room of the org.
bool room_allowed(const std::optional<std::vector<std::string>>& claim, std::string_view room);

// JSON payloads ("data") of room events.
std::string message_data(std::string_view user, std::string_view text,
                         std::string_view client_message_id);
std::string member_data(std::string_view user);
// The broker's idempotency key for a message: per sender, so two users picking the same
// clientMessageId in one room do not swallow each other's messages.
std::string message_key(std::string_view user, std::string_view client_message_id);

// What GET /v2/realtime/rooms/{room}/stats reports.
struct RoomStats {
  std::uint64_t online_users = 0;
  std::uint64_t connections = 0;
  std::uint64_t messages_total = 0;
  std::uint64_t messages_last_minute = 0;
  std::optional<std::chrono::system_clock::time_point> created_at;
  std::optional<std::chrono::system_clock::time_point> last_message_at;
};
// `recent`: the room channel's newest messages (history_before(room, 0, n)), oldest first;
// only messages are stored in a room channel, so its last offset counts them. The last minute
// is counted among `recent` only. created_at is the earliest of the oldest kept message and
// the earliest online member's since: the room's first message while it is still kept.
RoomStats room_stats(const broker::History& recent,
                     const std::vector<broker::PresenceEntry>& online,
                     std::chrono::system_clock::time_point now);

// A token bucket: `burst` tokens, refilled at `per_minute`. Pure; the caller brings the time.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(std::uint32_t burst, std::uint32_t per_minute, Clock::time_point now);
  // Takes one token if there is one.
  bool take(Clock::time_point now);

 private:
  double tokens_;
  double capacity_;
  double per_second_;
  Clock::time_point updated_;
};

// This node's chat bookkeeping, shared by every worker (one mutex, taken on join, leave and
// message, never per delivered event). Counts each user's connections per room and mirrors
// the count into the broker's presence, which sums it over nodes; keeps each user's message
// bucket while the user is in some room here. Memory is bounded by live memberships.
class Registry {
 public:
  // Registers the chat metrics in `metrics` (streamgate_chat_*), which must outlive this.
  Registry(broker::Broker& broker, ChatOptions options, metrics::Registry& metrics);
  ~Registry();

  // A connection of `user` entered / left `room`. Writes the new count to the broker's
  // presence while holding the lock, so one (room, user)'s writes reach the broker in order.
  // Returns the user's connections in the room on this node afterwards.
  std::uint32_t enter(const broker::Channel& room, const std::string& user);
  std::uint32_t leave(const broker::Channel& room, const std::string& user);

  // Takes a token from the user's message bucket (org-scoped); false: over the rate. A user
  // with no membership here always gets false.
  bool take_message_token(const std::string& org, const std::string& user,
                          TokenBucket::Clock::time_point now);

  // Traffic counters: a message stored, a request refused (by reason).
  void count_message();
  void count_refusal(ChatError error);

  const ChatOptions& options() const { return options_; }
  std::size_t memberships() const;  // (room, user) pairs with a connection here
  std::size_t rooms() const;        // rooms with a connection here

 private:
  struct UserState {
    std::uint32_t memberships = 0;
    TokenBucket bucket;
  };
  broker::Broker& broker_;
  ChatOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::uint32_t> connections_;  // room key '\0' user
  std::unordered_map<std::string, UserState> users_;            // org '\0' user
  std::unordered_map<std::string, std::uint32_t> rooms_;        // room key → its pairs here
  metrics::Counter& messages_;
  std::vector<metrics::Counter*> refusals_;  // by ChatError value
};

}  // namespace sg::chat

template <>
struct boost::system::is_error_code_enum<sg::chat::ChatError> : std::true_type {};
