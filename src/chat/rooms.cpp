#include "chat/chat.hpp"

#include "protocol/protocol.hpp"

#include <algorithm>

namespace sg::chat {

std::string_view to_string(ChatError e) {
  switch (e) {
    case ChatError::kNotJoined:
      return "not_joined";
    case ChatError::kForbiddenRoom:
      return "forbidden_room";
    case ChatError::kTooManyRooms:
      return "too_many_rooms";
    case ChatError::kRoomFull:
      return "room_full";
    case ChatError::kMessageTooLarge:
      return "message_too_large";
    case ChatError::kRateLimited:
      return "rate_limited";
    case ChatError::kUnavailable:
      return "unavailable";
    case ChatError::kQuotaExceeded:
      return "quota_exceeded";
  }
  return "unknown";
}

std::string room_topic(std::string_view room) {
  std::string topic(kRoomPrefix);
  topic.append(room);
  return topic;
}

bool is_room_topic(std::string_view topic) {
  return topic.starts_with(kRoomPrefix);
}

broker::Channel room_channel(std::string_view org, std::string_view room) {
  return broker::Channel{std::string(org), room_topic(room)};
}

bool room_allowed(const std::optional<std::vector<std::string>>& claim, std::string_view room) {
  return !claim || std::find(claim->begin(), claim->end(), room) != claim->end();
}

std::string message_data(std::string_view user, std::string_view text,
                         std::string_view client_message_id) {
  std::string out;
  out.reserve(48 + user.size() + text.size() + client_message_id.size());
  out.append("{\"user\":");
  protocol::append_json_string(out, user);
  out.append(",\"text\":");
  protocol::append_json_string(out, text);
  out.append(",\"clientMessageId\":");
  protocol::append_json_string(out, client_message_id);
  out.push_back('}');
  return out;
}

std::string member_data(std::string_view user) {
  std::string out("{\"user\":");
  protocol::append_json_string(out, user);
  out.push_back('}');
  return out;
}

std::string message_key(std::string_view user, std::string_view client_message_id) {
  // Length-prefixed, so no choice of user and id can collide with another pair.
  std::string key;
  core::append_decimal(key, user.size());
  key.push_back(':');
  key.append(user);
  key.push_back(':');
  key.append(client_message_id);
  return key;
}

}  // namespace sg::chat
