// StreamSession: one client's event stream (/v2/realtime/stream) on a WebSocket connection —
// the streamgate protocol (handshake, subscribe, unsubscribe, events with per-connection seq,
// resume) against this worker's hub shard, and chat on the same socket through ChatConn. The
// WebSocket itself (reading, pings, close handshake, outbox, writes) is net::WsConnection's.
// Worker thread only; lives as long as its connection.
#pragma once

#include "auth/auth.hpp"
#include "hub/hub.hpp"
#include "net/ws_connection.hpp"
#include "protocol/protocol.hpp"
#include "stream/chat_conn.hpp"
#include "stream/paced_replay.hpp"

#include <array>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace sg::node {
struct Context;
}

namespace sg::stream {

class StreamSession final : public net::WsConnection, public hub::Member, private ChatHost {
 public:
  // `principal` was admitted in the hub by the upgrade decision; the session releases it.
  StreamSession(net::Worker& worker, boost::asio::ip::tcp::socket socket,
                const net::WsOptions& options, node::Context& ctx, auth::Principal principal,
                std::string leftover);
  ~StreamSession() override;

  // Logs the connection and starts the WebSocket with the 101 response.
  void begin(std::string upgrade_response);

  // hub::Member
  void deliver(const broker::EventPtr& event) override;
  void hold_overflowed() override;
  bool cut_off(const hub::Cutoff& cut) override;
  void describe(std::string& out) const override;
  std::uint64_t flush_group() const override;

 private:
  // net::WsConnection
  void on_message(net::ws::Opcode opcode, std::string_view payload) override;
  void on_tick(Clock::time_point now, std::chrono::system_clock::time_point wall) override;
  void on_closing() override;
  void on_closed(std::uint16_t code) override;
  void on_written() override;
  void on_slow_consumer(std::string_view cause) override;
  void on_throttled(bool throttled) override;
  void on_protocol_error(std::string_view error) override;
  std::size_t egress_allowance(std::size_t wanted, Clock::time_point now) override;
  void egress_spent(std::size_t bytes, Clock::time_point now) override;

  // ChatHost
  const auth::Principal& principal() const override { return principal_; }
  std::string_view connection_id() const override { return id_; }
  hub::Member& member() override { return *this; }
  hub::Shard& shard() override;
  boost::asio::io_context& io() override;
  std::shared_ptr<const void> keep_alive() override { return shared_from_this(); }
  bool active() const override { return active_ && !closing(); }
  void reply(std::string text) override { send_text(std::move(text)); }
  void pause_requests() override { pause_reading(); }
  void resume_requests() override { resume_reading(); }
  void events_lost() override { mark_slow(); }

  void handle_text(std::string_view text);
  // `service`: the one the error is about, if any (sent as the frame's "service").
  void reject(std::string_view code, std::string_view message, std::uint16_t close_code,
              std::string_view service = {});

  void start_subscribe(std::vector<std::string> services, const protocol::ResumeMap& resume,
                       bool is_handshake);
  void on_attached(std::size_t request, std::string service, hub::AttachResult result);
  // Moves replayed events into the outbox while it has room, asks the hub for the next page
  // once a channel's are all queued, and takes a caught-up channel live (PacedReplay).
  void pump_replay();
  void on_replay_page(const std::string& service, hub::ReplayPage page);
  void unsubscribe(const std::vector<std::string>& services);
  // In-band refresh: a new token for this connection (docs/protocol.md#token-refresh).
  void refresh(std::string_view token);
  // Whether the token's services claim lets this connection have `service`.
  bool token_allows(std::string_view service) const;
  // Sends `expiring` once per token when its notice is due; never before the ack.
  void notice_expiry(std::chrono::system_clock::time_point now);
  std::shared_ptr<StreamSession> self();

  node::Context& ctx_;
  auth::Principal principal_;
  // 16 hex digits inline: as a std::string (whose inline buffer holds 15) it would cost a heap
  // block per connection. Reads as a string_view in logs and the ack.
  struct Id {
    std::array<char, 16> hex{};
    operator std::string_view() const { return {hex.data(), hex.size()}; }
  };
  Id id_;
  std::uint64_t seq_ = 0;  // last seq sent; the ack is 0
  bool active_ = false;    // the handshake message was accepted
  // In the padding after active_: the current token's `expiring` was sent; ticks before the
  // next refresh is served (the refresh rate limit).
  bool expiring_sent_ = false;
  std::uint8_t refresh_wait_ticks_ = 0;
  std::vector<std::string> services_;

  // An in-flight handshake or subscribe: answered once every channel has attached.
  struct Request {
    std::vector<std::string> services;
    std::vector<protocol::ResumeStatus> resume;
    std::vector<std::pair<std::string, hub::AttachResult>> results;
    std::size_t waiting = 0;
    bool is_handshake = false;
  };
  std::unique_ptr<Request> request_;
  std::size_t request_id_ = 0;
  // Resumes still replaying history, paced by the socket (paced_replay.hpp).
  PacedReplay replay_;
  struct ReplayOwner;  // the session as the replay's PacedReplay::Owner, made on the stack
  std::unique_ptr<ChatConn> chat_;  // from the first chat message on; null for event-only clients
};

}  // namespace sg::stream
