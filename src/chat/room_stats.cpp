#include "chat/chat.hpp"

#include <algorithm>

namespace sg::chat {

RoomStats room_stats(const broker::History& recent,
                     const std::vector<broker::PresenceEntry>& online,
                     std::chrono::system_clock::time_point now) {
  RoomStats stats;
  stats.online_users = online.size();
  for (const auto& entry : online) {
    stats.connections += entry.connections;
    if (!stats.created_at || entry.since < *stats.created_at) stats.created_at = entry.since;
  }
  stats.messages_total = recent.last_offset;
  const auto minute_ago = now - std::chrono::minutes(1);
  for (const auto& event : recent.events) {
    if (event->published_at > minute_ago) ++stats.messages_last_minute;
  }
  if (!recent.events.empty()) {
    const auto oldest = recent.events.front()->published_at;
    if (!stats.created_at || oldest < *stats.created_at) stats.created_at = oldest;
    stats.last_message_at = recent.events.back()->published_at;
  }
  return stats;
}

}  // namespace sg::chat
