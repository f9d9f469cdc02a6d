#include "api/chat_api.hpp"

#include "auth/auth.hpp"
#include "chat/chat.hpp"
#include "core/core.hpp"
#include "node/context.hpp"
#include "node/request_auth.hpp"
#include "protocol/protocol.hpp"

#include <algorithm>
#include <memory>

namespace sg::api {

namespace {

constexpr std::string_view kRoomsPrefix = "/v2/realtime/rooms/";
// Stats count the last minute among this many of the newest messages at most.
constexpr std::size_t kMaxStatsScan = 10000;

void append_time_or_null(std::string& out,
                         const std::optional<std::chrono::system_clock::time_point>& t) {
  if (t) {
    protocol::append_json_string(out, core::format_rfc3339(*t));
  } else {
    out.append("null");
  }
}

std::string online_body(std::string_view room, const std::vector<broker::PresenceEntry>& online) {
  std::string out("{\"room\":");
  protocol::append_json_string(out, room);
  out.append(",\"users\":[");
  for (std::size_t i = 0; i < online.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append("{\"userId\":");
    protocol::append_json_string(out, online[i].user);
    out.append(",\"since\":");
    protocol::append_json_string(out, core::format_rfc3339(online[i].since));
    out.append(",\"connections\":");
    core::append_decimal(out, online[i].connections);
    out.push_back('}');
  }
  out.append("]}");
  return out;
}

std::string stats_body(std::string_view room, const chat::RoomStats& s) {
  std::string out("{\"room\":");
  protocol::append_json_string(out, room);
  out.append(",\"onlineUsers\":");
  core::append_decimal(out, s.online_users);
  out.append(",\"connections\":");
  core::append_decimal(out, s.connections);
  out.append(",\"messagesTotal\":");
  core::append_decimal(out, s.messages_total);
  out.append(",\"messagesLastMinute\":");
  core::append_decimal(out, s.messages_last_minute);
  out.append(",\"createdAt\":");
  append_time_or_null(out, s.created_at);
  out.append(",\"lastMessageAt\":");
  append_time_or_null(out, s.last_message_at);
  out.push_back('}');
  return out;
}

HttpResponse unavailable() {
  return json_error(503, "broker_unavailable", "room state could not be read; retry");
}

// Users present in the room (cluster-wide with Redis), sorted by user.
void online(Context& ctx, const std::string& room, const broker::Channel& channel, Reply reply) {
  ctx.broker.presence(
      channel, [room, reply = std::move(reply)](Result<std::vector<broker::PresenceEntry>> r) {
        reply(r ? json_ok(online_body(room, *r)) : unavailable());
      });
}

void stats(Context& ctx, const std::string& room, const broker::Channel& channel, Reply reply) {
  const std::size_t scan = std::min(ctx.settings.history, kMaxStatsScan);
  broker::Broker& broker = ctx.broker;
  broker.presence(channel, [&broker, room, channel, scan, reply = std::move(reply)](
                               Result<std::vector<broker::PresenceEntry>> online) mutable {
    if (!online) return reply(unavailable());
    broker.history_before(
        channel, 0, scan,
        [room, online = std::move(*online), reply = std::move(reply)](Result<broker::History> h) {
          if (!h) return reply(unavailable());
          reply(json_ok(stats_body(room, chat::room_stats(*h, online, core::WallClock::now()))));
        });
  });
}

}  // namespace

bool is_chat_api_path(std::string_view path) {
  return path.starts_with(kRoomsPrefix);
}

void handle_chat_api(Context& ctx, const HttpRequest& req, Reply reply) {
  node::UserAuth who = node::authenticate_user(ctx, req);
  if (who.reject) return reply(std::move(*who.reject));
  const auth::Principal& principal = who.principal;
  // "/v2/realtime/rooms/<room>/<what>"
  const std::string_view rest = req.path.substr(kRoomsPrefix.size());
  const auto slash = rest.find('/');
  const std::string_view room = rest.substr(0, slash);
  const std::string_view what =
      slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  if (what != "online" && what != "stats") {
    return reply(json_error(404, "not_found", "no such endpoint"));
  }
  if (!protocol::is_valid_name(room)) {
    return reply(json_error(400, "bad_room", "a room name is 1 to 64 of A-Z a-z 0-9 _ . : -"));
  }
  if (!chat::room_allowed(principal.rooms, room)) {
    return reply(json_error(403, "forbidden_room", "the token does not allow this room"));
  }
  // The caller's own org only: the org comes from the token, never from the request.
  const broker::Channel channel = chat::room_channel(principal.org, room);
  if (what == "online") {
    online(ctx, std::string(room), channel, std::move(reply));
  } else {
    stats(ctx, std::string(room), channel, std::move(reply));
  }
}

}  // namespace sg::api
