// ChatConn: the chat rooms of one stream connection — join (presence, history, then live),
// leave, message, typing and history pages — on top of the hub and the chat module. Created
// on a connection's first chat message, owned by its StreamSession, used on its worker only.
// It reaches the connection only through ChatHost.
#pragma once

#include "auth/auth.hpp"
#include "broker/broker.hpp"
#include "chat/chat.hpp"
#include "hub/hub.hpp"
#include "protocol/protocol.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sg::node {
struct Context;
}

namespace sg::stream {

// What chat needs of the connection it runs on.
class ChatHost {
 public:
  virtual const auth::Principal& principal() const = 0;
  virtual std::string_view connection_id() const = 0;  // for logs
  // The connection as a hub member, and its worker's shard, for a room's channel.
  virtual hub::Member& member() = 0;
  virtual hub::Shard& shard() = 0;
  virtual boost::asio::io_context& io() = 0;  // the connection's worker
  // Held, keeps the connection (and its ChatConn) alive; active() says whether it still talks.
  virtual std::shared_ptr<const void> keep_alive() = 0;
  virtual bool active() const = 0;
  virtual void reply(std::string text) = 0;
  // Requests wait while one is in flight (docs/protocol.md#flow-control).
  virtual void pause_requests() = 0;
  virtual void resume_requests() = 0;
  // Events could not be queued: the connection closes as a slow consumer.
  virtual void events_lost() = 0;

 protected:
  ~ChatHost() = default;
};

class ChatConn {
 public:
  ChatConn(ChatHost& host, node::Context& ctx) : host_(host), ctx_(ctx) {}
  ChatConn(const ChatConn&) = delete;
  ChatConn& operator=(const ChatConn&) = delete;

  // One parsed chat message (Join, Leave, ChatSend, Typing or HistoryRequest). A join, a message
  // and a history request stop the session's reading until they are answered: later messages see
  // the room joined, and at most one reply is owed at any time (docs/protocol.md#flow-control).
  void handle(protocol::ClientMessage& message);
  // The connection is closing: give up every room (presence, chat.left). The session detaches
  // the hub memberships itself. Idempotent.
  void on_close();
  // The token was refreshed: leaves, with a `left` frame and a forbidden_room error each, the
  // rooms its rooms claim no longer allows.
  void leave_forbidden_rooms();

 private:
  struct Room {
    std::string name;
    broker::Channel channel;
    bool entered = false;  // counted in the registry (and presence)
    bool live = false;     // attached: may send, type and page
    bool typed = false;
    std::chrono::steady_clock::time_point last_typing;
  };

  void join(const protocol::Join& m);
  void on_join_presence(const std::string& name, std::size_t history,
                        Result<std::vector<broker::PresenceEntry>> online);
  void on_join_head(const std::string& name, std::size_t history, bool announce,
                    Result<broker::History> head);
  void on_join_attached(const std::string& name, bool announce, hub::AttachResult result);
  void fail_join(const std::string& name, chat::ChatError error, std::string_view message);
  void leave(const std::string& name);
  void send(const protocol::ChatSend& m);
  void typing(const std::string& name);
  void history(const protocol::HistoryRequest& m);

  Room* find(std::string_view name);
  Room* find_live(std::string_view name, std::string_view client_message_id);
  void leave_room(Room& room);
  void refuse(chat::ChatError error, std::string_view message, std::string_view room,
              std::string_view client_message_id = {});
  // Wraps `then` into a callback the broker may call from any thread: it runs on this
  // connection's worker, and only while the connection is still open.
  template <class T, class F>
  std::function<void(T)> on_worker(F then);

  ChatHost& host_;
  node::Context& ctx_;
  std::vector<Room> rooms_;
};

}  // namespace sg::stream
