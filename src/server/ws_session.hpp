// WsSession: one client's WebSocket on one worker, from the 101 response to the close. Reads
// with the worker's scratch buffer (nothing held while idle), speaks RFC 6455 through
// ws_codec, runs the streamgate protocol (handshake, subscribe, events, resume) against the
// hub shard, and writes its bounded outbox with gather writes. Worker thread only.
#pragma once

#include "auth/auth.hpp"
#include "hub/hub.hpp"
#include "protocol/protocol.hpp"
#include "server/outbox.hpp"
#include "server/ws_codec.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <sys/uio.h>

#include <array>
#include <chrono>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace sg::server {

class Worker;
struct Context;
class ChatConn;
class SendRing;

class WsSession final : public std::enable_shared_from_this<WsSession>, public hub::Member {
 public:
  // `socket` has completed the HTTP upgrade request; `leftover` holds bytes the client sent
  // after it; `admitted` tells that hub.admit() counted this connection.
  WsSession(Worker& worker, boost::asio::ip::tcp::socket socket, auth::Principal principal,
            std::string leftover);
  ~WsSession();

  // Queues the 101 response, registers with the worker and starts reading.
  void start(std::string upgrade_response);

  void deliver(const broker::EventPtr& event) override;
  void hold_overflowed() override;
  // Graceful close: detach, send a close frame after what is queued (or instead of it, with
  // `discard_queued`), then wait briefly for the peer's close frame.
  void close(std::uint16_t code, std::string_view reason, bool discard_queued = false);
  void flush();
  // flush() for the worker's batched flush: the queue's send goes into `ring` under `tag`, and
  // its result comes back through on_sent(). False, doing nothing, when the ring (not empty)
  // lacks room for the whole queue: submit it and call again.
  bool flush_into(SendRing& ring, std::uint32_t tag);
  void on_sent(int result);
  void on_tick(std::chrono::steady_clock::time_point now,
               std::chrono::system_clock::time_point wall);

  // False from close() on: what a drain still has to close.
  bool open() const { return state_ == State::kAwaitingHandshake || state_ == State::kActive; }

  std::size_t worker_slot() const { return worker_slot_; }
  void set_worker_slot(std::size_t slot) { worker_slot_ = slot; }

 private:
  friend class ChatConn;  // the chat part of the protocol, kept in its own file
  enum class State { kAwaitingHandshake, kActive, kClosing, kClosed };

  void do_read();
  void on_readable(const boost::system::error_code& ec);
  void process(std::span<char> data);
  void handle_text(std::string_view text);
  void handle_peer_close(std::uint16_t code);
  // `service`: the one the error is about, if any (sent as the frame's "service").
  void reject(std::string_view code, std::string_view message, std::uint16_t close_code,
              std::string_view service = {});
  // After a paused request is answered: messages that waited, then the socket again.
  void resume_reading();

  void start_subscribe(std::vector<std::string> services, const protocol::ResumeMap& resume,
                       bool is_handshake);
  void on_attached(std::size_t request, std::string service, hub::AttachResult result);
  // Moves replayed events into the outbox while it is below its low-water mark, asks the hub
  // for the next page once a channel's are all queued, and takes a caught-up channel live.
  void pump_replay();
  void on_replay_page(const std::string& service, hub::ReplayPage page);
  void unsubscribe(const std::vector<std::string>& services);

  // Replies (and the 101 response): queued past --outbox-bytes if need be, which stops reading
  // until the queue drains (docs/protocol.md#flow-control).
  void queue_text(std::string text);
  void queue_raw(std::string bytes);
  void queue_control(std::string frame);
  void queue_pong(std::string_view payload);
  void after_reply(Outbox::Push pushed);
  // The queue drained back within the limit: read the client's requests again.
  void on_drained();
  void close_slow(std::string_view cause);
  // After our close frame for a protocol error: FIN, then read and discard until EOF.
  void start_linger();
  void discard_input();
  void schedule_flush();
  bool begin_flush();  // false: nothing to write now (closed, closing as slow, or blocked)
  std::size_t gather(std::span<iovec> iov) const;  // queued frames as buffers, in order
  // Accounts for one write's result (bytes, or -errno); true when writing may go on now.
  bool apply_write(long result);
  void write_now();
  void on_writable(const boost::system::error_code& ec);
  void finalize(std::uint16_t code);

  // On the worker's concrete executor rather than any_io_executor: 48 bytes less per session and
  // half the size (104 instead of 208 bytes) of the read wait every idle session keeps pending.
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                                  boost::asio::io_context::executor_type>;

  Worker& worker_;
  Context& ctx_;
  Socket socket_;
  auth::Principal principal_;
  // 16 hex digits inline: as a std::string (whose inline buffer holds 15) it would cost a heap
  // block per connection. Reads as a string_view in logs and the ack.
  struct Id {
    std::array<char, 16> hex{};
    operator std::string_view() const { return {hex.data(), hex.size()}; }
  };
  Id id_;
  ws::Decoder decoder_;
  std::string in_;  // bytes of a partial frame kept between reads
  Outbox outbox_;
  std::size_t write_offset_ = 0;  // bytes of the front frame already written
  std::uint64_t seq_ = 0;         // last seq sent; the ack is 0
  State state_ = State::kAwaitingHandshake;
  bool reading_ = false;
  bool writing_ = false;  // waiting for the socket to become writable
  bool paused_ = false;   // a subscribe is in flight: later messages wait
  bool dirty_ = false;
  bool slow_ = false;  // the outbox overflowed: close as slow consumer at the next flush
  bool close_queued_ = false;
  bool close_sent_ = false;
  bool peer_closed_ = false;
  bool failed_ = false;  // a protocol error: drop the socket once our close frame is out
  bool ping_outstanding_ = false;
  // Replies took the outbox over its limit: no reading until it drains, 4008 if it doesn't.
  bool throttled_ = false;
  bool lingering_ = false;  // our close frame and FIN are out; input is read and dropped
  std::uint16_t close_code_ = 0;
  std::size_t worker_slot_ = 0;
  std::size_t lingered_bytes_ = 0;
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
  // Resumes still replaying history, paced by the socket: a page at a time, each fed to the
  // outbox as it drains, so a backlog larger than the outbox is no slow consumer. Null when none
  // (most of the time): a pointer costs an idle connection less than an empty vector.
  struct Replay {
    std::string service;
    std::deque<broker::EventPtr> queued;  // read, not yet in the outbox
    bool more = false;                    // the hub has more pages
    bool reading = false;                 // a page is being read
  };
  std::unique_ptr<std::vector<Replay>> replays_;
  std::unique_ptr<ChatConn> chat_;  // from the first chat message on; null for event-only clients

  std::chrono::steady_clock::time_point opened_at_;
  std::chrono::steady_clock::time_point last_rx_;
  std::chrono::steady_clock::time_point ping_sent_at_;
  std::chrono::steady_clock::time_point close_deadline_;
  std::chrono::steady_clock::time_point throttled_since_;
};

}  // namespace sg::server
