#include "stream/chat_conn.hpp"

#include "core/core.hpp"
#include "log/log.hpp"
#include "node/context.hpp"
#include "tenancy/tenancy.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>

namespace sg::stream {

namespace {

std::string now_rfc3339() {
  return core::format_rfc3339(core::WallClock::now());
}

bool present(const std::vector<broker::PresenceEntry>& online, const std::string& user) {
  return std::any_of(online.begin(), online.end(), [&](const broker::PresenceEntry& e) {
    return e.user == user && e.connections > 0;
  });
}

void ignore_result(Result<void>) {}

// A user's last connection here left `room`: unless presence still shows the user on another
// node, the members hear chat.left. Runs after the session may be gone, so it holds only the
// broker (which outlives every callback it makes; both brokers call `done` holding no lock).
void announce_left_if_gone(broker::Broker& broker, broker::Channel room, std::string user) {
  broker.presence(room, [&broker, room, user](Result<std::vector<broker::PresenceEntry>> r) {
    if (!r || present(*r, user)) return;
    broker.signal(
        room, broker::PublishInput{std::string(chat::kLeftEvent), chat::member_data(user), {}, {}},
        ignore_result);
  });
}

}  // namespace

template <class T, class F>
std::function<void(T)> ChatConn::on_worker(F then) {
  // `keep` keeps the connection, and with it this ChatConn, alive until the task has run.
  auto keep = host_.keep_alive();
  boost::asio::io_context* io = &host_.io();
  return [keep, io, chat = this, then = std::move(then)](T value) mutable {
    boost::asio::post(*io,
                      [keep, chat, then = std::move(then), value = std::move(value)]() mutable {
                        if (!chat->host_.active()) return;
                        then(*chat, std::move(value));
                      });
  };
}

void ChatConn::handle(protocol::ClientMessage& message) {
  if (const auto* m = std::get_if<protocol::Join>(&message)) {
    join(*m);
  } else if (const auto* l = std::get_if<protocol::Leave>(&message)) {
    leave(l->room);
  } else if (const auto* s = std::get_if<protocol::ChatSend>(&message)) {
    send(*s);
  } else if (const auto* t = std::get_if<protocol::Typing>(&message)) {
    typing(t->room);
  } else if (const auto* h = std::get_if<protocol::HistoryRequest>(&message)) {
    history(*h);
  }
}

ChatConn::Room* ChatConn::find(std::string_view name) {
  for (auto& room : rooms_) {
    if (room.name == name) return &room;
  }
  return nullptr;
}

ChatConn::Room* ChatConn::find_live(std::string_view name, std::string_view client_message_id) {
  Room* room = find(name);
  if (room != nullptr && room->live) return room;
  refuse(chat::ChatError::kNotJoined, "join the room first", name, client_message_id);
  return nullptr;
}

void ChatConn::refuse(chat::ChatError error, std::string_view message, std::string_view room,
                      std::string_view client_message_id) {
  ctx_.chat->count_refusal(error);
  host_.reply(
      protocol::serialize_chat_error(chat::to_string(error), message, room, client_message_id));
}

// ---- join: presence (members limit, first connection?) → registry → history head → attach ----

void ChatConn::join(const protocol::Join& m) {
  const chat::ChatOptions& options = ctx_.chat->options();
  if (const Room* room = find(m.room); room != nullptr && room->live) {
    host_.reply(protocol::serialize_joined(m.room, now_rfc3339()));
    return;
  }
  if (!chat::room_allowed(host_.principal().rooms, m.room)) {
    refuse(chat::ChatError::kForbiddenRoom, "the token does not allow room " + m.room, m.room);
    return;
  }
  if (rooms_.size() >= options.max_rooms) {
    refuse(chat::ChatError::kTooManyRooms,
           "a connection may be in at most " + std::to_string(options.max_rooms) + " rooms",
           m.room);
    return;
  }
  const std::size_t history =
      std::min<std::uint64_t>(m.history.value_or(options.history), options.history);
  Room& added = rooms_.emplace_back();
  added.name = m.room;
  added.channel = chat::room_channel(host_.principal().org, m.room);
  host_.pause_requests();  // later messages wait until the join is answered
  ctx_.broker.presence(
      rooms_.back().channel,
      on_worker<Result<std::vector<broker::PresenceEntry>>>(
          [name = m.room, history](ChatConn& self, Result<std::vector<broker::PresenceEntry>> r) {
            self.on_join_presence(name, history, std::move(r));
          }));
}

void ChatConn::on_join_presence(const std::string& name, std::size_t history,
                                Result<std::vector<broker::PresenceEntry>> online) {
  Room* room = find(name);
  if (room == nullptr) return host_.resume_requests();
  if (!online) {
    return fail_join(name, chat::ChatError::kUnavailable, "presence could not be read; retry");
  }
  const std::string& user = host_.principal().user;
  const bool here_already = present(*online, user);
  const std::size_t max_members = ctx_.chat->options().max_members;
  if (!here_already && online->size() >= max_members) {
    log::info("chat", "room full",
              {{"conn", host_.connection_id()},
               {"org", host_.principal().org},
               {"room", name},
               {"limit", max_members}});
    return fail_join(name, chat::ChatError::kRoomFull,
                     "the room has its maximum of " + std::to_string(max_members) + " members");
  }
  const std::uint32_t here = ctx_.chat->enter(room->channel, user);
  room->entered = true;
  // The user's first connection anywhere: presence read before this node counted it showed
  // nobody, and no other connection here got in first.
  const bool announce = !here_already && here == 1;
  ctx_.broker.history(room->channel, std::nullopt,
                      on_worker<Result<broker::History>>(
                          [name, history, announce](ChatConn& self, Result<broker::History> head) {
                            self.on_join_head(name, history, announce, std::move(head));
                          }));
}

void ChatConn::on_join_head(const std::string& name, std::size_t history, bool announce,
                            Result<broker::History> head) {
  Room* room = find(name);
  if (room == nullptr) return host_.resume_requests();
  // The last `history` messages are replayed by the hub's resume path, which joins them to
  // live ones without gap or duplicate. Without a head (broker trouble) the join goes live
  // without history rather than failing.
  std::optional<broker::Position> from;
  if (head && history > 0 && head->last_offset > 0) {
    from = broker::Position{
        head->epoch, head->last_offset - std::min<std::uint64_t>(history, head->last_offset)};
  }
  host_.shard().attach(
      host_.member(), host_.principal().user, room->channel, from,
      [keep = host_.keep_alive(), chat = this, name, announce](hub::AttachResult result) {
        if (!chat->host_.active()) return;
        chat->on_join_attached(name, announce, std::move(result));
      });
}

void ChatConn::on_join_attached(const std::string& name, bool announce, hub::AttachResult result) {
  Room* room = find(name);
  if (room == nullptr) return host_.resume_requests();
  room->live = true;
  host_.reply(protocol::serialize_joined(name, now_rfc3339()));
  for (const auto& event : result.replay) host_.member().deliver(event);
  if (!host_.shard().go_live(host_.member(), room->channel)) host_.events_lost();
  if (announce) {
    ctx_.broker.signal(
        room->channel,
        broker::PublishInput{
            std::string(chat::kJoinedEvent), chat::member_data(host_.principal().user), {}, {}},
        ignore_result);
  }
  host_.resume_requests();
}

void ChatConn::fail_join(const std::string& name, chat::ChatError error, std::string_view message) {
  auto it =
      std::find_if(rooms_.begin(), rooms_.end(), [&](const Room& r) { return r.name == name; });
  if (it != rooms_.end()) {
    leave_room(*it);
    rooms_.erase(it);
  }
  refuse(error, message, name);
  host_.resume_requests();
}

// ---- leave ----

void ChatConn::leave(const std::string& name) {
  auto it =
      std::find_if(rooms_.begin(), rooms_.end(), [&](const Room& r) { return r.name == name; });
  if (it != rooms_.end()) {
    host_.shard().detach(host_.member(), it->channel);
    leave_room(*it);
    rooms_.erase(it);
  }
  // Leaving a room the connection is not in is not an error, as with unsubscribe.
  host_.reply(protocol::serialize_left(name));
}

void ChatConn::leave_room(Room& room) {
  if (!room.entered) return;
  room.entered = false;
  const std::string& user = host_.principal().user;
  if (ctx_.chat->leave(room.channel, user) == 0) {
    announce_left_if_gone(ctx_.broker, room.channel, user);
  }
}

void ChatConn::on_close() {
  for (auto& room : rooms_) leave_room(room);
  rooms_.clear();
}

void ChatConn::leave_forbidden_rooms() {
  std::vector<std::string> forbidden;
  for (const Room& room : rooms_) {
    if (!chat::room_allowed(host_.principal().rooms, room.name)) forbidden.push_back(room.name);
  }
  for (const std::string& name : forbidden) {
    leave(name);
    refuse(chat::ChatError::kForbiddenRoom, "the refreshed token does not allow room " + name,
           name);
  }
}

// ---- messages, typing, history ----

void ChatConn::send(const protocol::ChatSend& m) {
  Room* room = find_live(m.room, m.client_message_id);
  if (room == nullptr) return;
  const chat::ChatOptions& options = ctx_.chat->options();
  if (m.text.size() > options.max_bytes) {
    refuse(chat::ChatError::kMessageTooLarge,
           "a message may have at most " + std::to_string(options.max_bytes) + " bytes", m.room,
           m.client_message_id);
    return;
  }
  const std::string& user = host_.principal().user;
  // The org's quota before the user's bucket, so a refusal for the org costs the user nothing.
  if (ctx_.quotas &&
      !ctx_.quotas->take_chat(host_.principal().org, std::chrono::steady_clock::now()).allowed) {
    ctx_.quotas->count_refusal(tenancy::Quota::kChatRate);
    refuse(chat::ChatError::kQuotaExceeded,
           "this org is over its chatRate quota (docs/protocol.md#org-quotas)", m.room,
           m.client_message_id);
    return;
  }
  if (!ctx_.chat->take_message_token(host_.principal().org, user,
                                     std::chrono::steady_clock::now())) {
    refuse(chat::ChatError::kRateLimited,
           "too many messages: at most " + std::to_string(options.messages_per_minute) +
               " per minute after a burst of " + std::to_string(options.burst),
           m.room, m.client_message_id);
    return;
  }
  broker::PublishInput input{std::string(chat::kMessageEvent),
                             chat::message_data(user, m.text, m.client_message_id),
                             {},
                             chat::message_key(user, m.client_message_id)};
  // Later messages wait for the answer, as for a join: with one request in flight at a time,
  // the session can stop taking requests once replies fill its outbox, and replies beyond it
  // can't pile up meanwhile.
  host_.pause_requests();
  ctx_.broker.publish(
      room->channel, std::move(input),
      on_worker<Result<broker::PublishResult>>(
          [room_name = m.room, cmid = m.client_message_id, org = room->channel.org](
              ChatConn& self, Result<broker::PublishResult> r) {
            if (!r) {
              self.refuse(chat::ChatError::kUnavailable,
                          "the message could not be stored; retry with the same clientMessageId",
                          room_name, cmid);
            } else {
              if (!r->duplicate) self.ctx_.chat->count_message();
              if (!r->duplicate && self.ctx_.usage != nullptr) {
                self.ctx_.usage->add(org, tenancy::UsageField::kChatMessages, 1,
                                     tenancy::UsageClock::now());
              }
              self.host_.reply(protocol::serialize_sent(room_name, cmid, r->id, r->duplicate));
            }
            self.host_.resume_requests();
          }));
}

void ChatConn::typing(const std::string& name) {
  Room* room = find_live(name, {});
  if (room == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  const auto interval = ctx_.chat->options().typing_interval;
  // Dropped silently: typing is a hint, and clients send it on every keystroke.
  if (room->typed && now - room->last_typing < interval) return;
  room->typed = true;
  room->last_typing = now;
  ctx_.broker.signal(
      room->channel,
      broker::PublishInput{
          std::string(chat::kTypingEvent), chat::member_data(host_.principal().user), {}, {}},
      ignore_result);
}

void ChatConn::history(const protocol::HistoryRequest& m) {
  Room* room = find_live(m.room, {});
  if (room == nullptr) return;
  const std::size_t most = ctx_.chat->options().history;
  const std::size_t limit = std::min<std::uint64_t>(m.limit.value_or(most), most);
  // Offsets start at 1: nothing is older than the first message.
  if (limit == 0 || (m.before && m.before->offset <= 1)) {
    host_.reply(protocol::serialize_history_page(m.room, {}, false));
    return;
  }
  std::optional<std::string> epoch;
  if (m.before) epoch = m.before->epoch;
  // One page in flight at a time (see send()): a page can be large, and a client that asks for
  // many without reading must not get them all queued.
  host_.pause_requests();
  ctx_.broker.history_before(
      room->channel, m.before ? m.before->offset : 0, limit,
      on_worker<Result<broker::History>>([room_name = m.room, epoch](ChatConn& self,
                                                                     Result<broker::History> r) {
        if (!r) {
          self.refuse(chat::ChatError::kUnavailable, "history could not be read; retry", room_name);
          self.host_.resume_requests();
          return;
        }
        std::vector<std::string_view> bodies;
        // An id from an earlier life of the room names nothing in this one.
        if (!epoch || *epoch == r->epoch) {
          bodies.reserve(r->events.size());
          for (const auto& event : r->events) bodies.push_back(event->body);
        }
        const bool more = !bodies.empty() && r->events.front()->offset > 1;
        self.host_.reply(protocol::serialize_history_page(room_name, bodies, more));
        self.host_.resume_requests();
      }));
}

}  // namespace sg::stream
