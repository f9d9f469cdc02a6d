// SseConnection: one client's Server-Sent Events stream (GET /v2/realtime/sse) — the event
// stream of StreamSession for clients that can't use a WebSocket. The services are named in the
// request; each event is a text/event-stream message whose `id:` is a cursor over every service
// of the connection (sse_request.hpp), so a reconnect with Last-Event-ID resumes all of them.
// It runs on net::WsConnection in its byte-stream mode (outbox bound, batched flush, slow
// consumer, drain, token expiry on the worker's tick) and joins the hub as a StreamSession does.
// Worker thread only; lives as long as its connection.
#pragma once

#include "auth/auth.hpp"
#include "hub/hub.hpp"
#include "net/ws_connection.hpp"
#include "stream/paced_replay.hpp"
#include "stream/sse_request.hpp"

#include <array>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sg::node {
struct Context;
}

namespace sg::stream {

class SseConnection final : public net::WsConnection, public hub::Member {
 public:
  // `principal` was admitted in the hub; the connection releases it. `options` is what
  // sse_options() made; the connection keeps it alive.
  SseConnection(net::Worker& worker, boost::asio::ip::tcp::socket socket,
                std::shared_ptr<const net::WsOptions> options, node::Context& ctx,
                auth::Principal principal, SseRequest request);
  ~SseConnection() override;

  // Logs the connection, sends the 200 response head (CORS for `origin` when the request had
  // one) and joins the services; the first message is `event: ack`.
  void begin(std::string_view origin);

  // hub::Member
  void deliver(const broker::EventPtr& event) override;
  void hold_overflowed() override;
  std::uint64_t flush_group() const override;
  // A producer's disconnect or revoke (hub::Cutoff): an error event, then the response ends.
  bool cut_off(const hub::Cutoff& cut) override;

 private:
  // net::WsConnection
  void on_message(net::ws::Opcode, std::string_view) override {}  // a byte stream reads nothing
  void on_tick(Clock::time_point now, std::chrono::system_clock::time_point wall) override;
  void on_closing() override;
  void on_closed(std::uint16_t code) override;
  void on_written() override;
  void on_slow_consumer(std::string_view cause) override;
  std::size_t egress_allowance(std::size_t wanted, Clock::time_point now) override;
  void egress_spent(std::size_t bytes, Clock::time_point now) override;

  void read_head(std::size_t index);
  void on_head(std::size_t index, const Result<broker::History>& head);
  void join(std::size_t index, std::optional<broker::Position> from);
  void on_attached(std::size_t index, hub::AttachResult result);
  void pump_replay();
  void on_replay_page(const std::string& service, hub::ReplayPage page);
  // A message that is no event (ack, resume_failed, error): a reply, with the cursor as its id
  // when `with_id`.
  void send_message(std::string_view event, std::string_view data, bool with_id);
  // The SSE message as one chunk of the chunked response body.
  std::string message(std::string_view event, std::string_view prefix, std::string_view data,
                      bool with_id) const;
  std::shared_ptr<SseConnection> self();
  hub::Shard& shard();

  node::Context& ctx_;
  std::shared_ptr<const net::WsOptions> options_;
  auth::Principal principal_;
  std::array<char, 16> id_{};  // hex; logs and the ack
  std::string_view id() const { return {id_.data(), id_.size()}; }
  std::vector<std::string> services_;
  // What the client's Last-Event-ID said per service, and where the connection is now (the
  // cursor: nullopt for a service whose position is unknown, which then joins afresh).
  std::vector<std::optional<broker::Position>> asked_;
  std::vector<std::optional<broker::Position>> positions_;
  std::vector<std::optional<hub::AttachResult>> attached_;
  std::size_t waiting_ = 0;  // services not attached yet
  std::uint64_t seq_ = 0;
  bool active_ = false;  // the ack went out; events flow
  bool sent_ = false;    // something was queued since the last tick
  Clock::time_point last_sent_;

  // As StreamSession's: replays paced by the socket, a page at a time (paced_replay.hpp).
  PacedReplay replay_;
  struct ReplayOwner;  // the connection as the replay's PacedReplay::Owner, made on the stack
};

// The bounds of every SSE connection: the WebSocket ones as a chunked byte stream.
std::shared_ptr<const net::WsOptions> sse_options(const node::Context& ctx);

}  // namespace sg::stream
