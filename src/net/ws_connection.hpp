// WsConnection: one WebSocket connection on one worker, from the 101 response to the close —
// the part of RFC 6455 every endpoint shares. It reads with the worker's scratch buffer (nothing
// held while idle), decodes with ws_codec, answers pings, runs the close handshake and the
// lingering close after a protocol error, writes its bounded outbox with gather writes in the
// worker's flush, and enforces the outbox bound and the ping deadline. What messages mean is the
// endpoint's: a subclass gets whole messages through on_message() and answers with send_text()
// and send_event(). Worker thread only. The worker owns the connection (a shared_ptr) from
// start() until the socket is closed; pending waits and callbacks hold it too.
#pragma once

#include "net/outbox.hpp"
#include "net/ws_codec.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace sg::net {

class Worker;
class SendRing;

// An endpoint's bounds for its connections; one instance shared by all of them.
struct WsOptions {
  std::size_t max_message_bytes = 64 * 1024;
  std::size_t outbox_bytes = 1 << 20;
  std::chrono::milliseconds ping_interval{25'000};
  std::chrono::milliseconds pong_timeout{10'000};
  // How long replies may keep the outbox over its bound (reading stopped) before the close.
  std::chrono::milliseconds slow_consumer_grace{5'000};
  // The application's close codes for a missed pong and for a client that does not read.
  std::uint16_t ping_timeout_code = ws::close_code::kPolicyViolation;
  std::uint16_t slow_consumer_code = ws::close_code::kPolicyViolation;
  // A one-way byte stream after the response instead of RFC 6455 (a streamed HTTP response
  // body): input is read and dropped, nothing is pinged (the endpoint keeps the connection warm
  // with send_bytes()), and close() writes `stream_end` after what is queued, then FIN, instead
  // of a close frame. The peer's FIN ends it as a normal close (1000), a reset as 1006.
  bool byte_stream = false;
  std::string stream_end;
};

class WsConnection : public std::enable_shared_from_this<WsConnection> {
 public:
  using Clock = std::chrono::steady_clock;

  // `socket` has completed the HTTP upgrade request; `leftover` holds bytes the client sent
  // after it. `options` must outlive the connection.
  WsConnection(Worker& worker, boost::asio::ip::tcp::socket socket, std::string leftover,
               const WsOptions& options);
  virtual ~WsConnection();
  WsConnection(const WsConnection&) = delete;
  WsConnection& operator=(const WsConnection&) = delete;

  // Queues the 101 response, registers with the worker and starts reading.
  void start(std::string upgrade_response);
  // Graceful close: on_closing(), then a close frame after what is queued (or instead of it,
  // with `discard_queued`), then a short wait for the peer's close frame.
  void close(std::uint16_t code, std::string_view reason, bool discard_queued = false);
  // False from close() on: what a drain still has to close.
  bool open() const { return state_ == State::kOpen; }

  // ---- for the worker ----
  // Writes what is queued with sendmsg.
  void flush();
  // flush() for the worker's batched flush: the queue's send goes into `ring` under `tag`, and
  // its result comes back through on_sent(). False, doing nothing, when the ring (not empty)
  // lacks room for the whole queue: submit it and call again.
  bool flush_into(SendRing& ring, std::uint32_t tag);
  void on_sent(int result);
  // Every worker tick: close and ping deadlines, the outbox bound's grace, on_tick().
  void tick(Clock::time_point now, std::chrono::system_clock::time_point wall);
  // The node stops: close with `code` (1001). An endpoint may say more first.
  virtual void shut_down(std::uint16_t code);
  // Connections of one group (an org, for the stream) share a turn in the worker's flush,
  // which serves the groups round robin. Called at each flush request; cheap.
  virtual std::uint64_t flush_group() const { return 0; }
  // Whether the drain period closes this connection (else only the final shut_down does).
  virtual bool leaves_on_drain() const { return true; }
  std::size_t worker_slot() const { return worker_slot_; }
  void set_worker_slot(std::size_t slot) { worker_slot_ = slot; }

 protected:
  // A whole text or binary message. The payload is valid for the call only.
  virtual void on_message(ws::Opcode opcode, std::string_view payload) = 0;
  // Each tick while open, before the ping deadline: the endpoint's own deadlines.
  virtual void on_tick(Clock::time_point /*now*/, std::chrono::system_clock::time_point /*wall*/) {}
  // The connection stops taking part: leave every subscription. Once, before on_closed().
  virtual void on_closing() {}
  // The socket is closed; `code` is the close code to report. The last call.
  virtual void on_closed(std::uint16_t code) = 0;
  // Frames left the outbox (room to refill it, for an endpoint that paces what it queues).
  virtual void on_written() {}
  // About to close with options().slow_consumer_code; `cause` says which bound.
  virtual void on_slow_consumer(std::string_view /*cause*/) {}
  // Replies took the outbox over its bound and reading stopped (true), or it drained back
  // within the bound and reading goes on (false).
  virtual void on_throttled(bool /*throttled*/) {}
  // The peer broke RFC 6455; the connection closes with the codec's code.
  virtual void on_protocol_error(std::string_view /*error*/) {}
  // Bytes of the `wanted` queued ones this connection may write now: an egress rate the
  // endpoint shares among connections (an org's). 0: none; what is queued waits and the
  // worker's next tick asks again. Called before each write, so it must be cheap when unlimited.
  virtual std::size_t egress_allowance(std::size_t wanted, Clock::time_point /*now*/) {
    return wanted;
  }
  // `bytes` went out on the socket (what egress_allowance rations).
  virtual void egress_spent(std::size_t /*bytes*/, Clock::time_point /*now*/) {}

  Worker& worker() const { return worker_; }
  const WsOptions& options() const { return options_; }
  // A reply (a text message): always queued. Past the outbox bound, reading stops until the
  // queue drains, and the connection closes as a slow consumer after the grace.
  void send_text(std::string text);
  // A reply of which only the newest matters (a progress report): replaces the one of the same
  // `kind` still waiting to be written.
  void send_latest_text(std::string text, Outbox::Latest kind);
  // An event frame: refused past the outbox bound, and then the connection closes as a slow
  // consumer at the next flush (an event cannot wait for the client). False when refused.
  bool send_event(OutFrame&& frame);
  // Bytes written as they are (a byte stream's own framing), as a reply: send_text's rules.
  void send_bytes(std::string bytes);
  // send_bytes() for bytes of which only the newest matters (a keep-alive).
  void send_latest_bytes(std::string bytes, Outbox::Latest kind);
  // Close as a slow consumer at the next flush (the endpoint lost events it could not queue).
  void mark_slow();
  // Stop decoding and reading after the current message (a request is in flight) and go on.
  void pause_reading() { paused_ = true; }
  void resume_reading();
  bool closing() const { return state_ != State::kOpen; }
  bool closed() const { return state_ == State::kClosed; }
  bool lost() const { return slow_; }  // events were refused: closing as a slow consumer
  std::size_t queued_bytes() const { return outbox_.bytes(); }
  Clock::time_point opened_at() const { return opened_at_; }

 private:
  enum class State { kOpen, kClosing, kClosed };

  void do_read();
  void on_readable(const boost::system::error_code& ec);
  void drop_input();
  void process(std::span<char> data);
  void handle_peer_close(std::uint16_t code);

  void queue_raw(std::string bytes);
  void queue_control(std::string frame);
  void queue_pong(std::string_view payload);
  void after_reply(Outbox::Push pushed);
  void on_drained();
  void close_slow(std::string_view cause);
  void start_linger();
  void discard_input();
  void schedule_flush();
  bool begin_flush();  // false: nothing to write now (closed, closing as slow, or blocked)
  // At most `max_bytes` (a cut inside a frame is finished by a later write).
  std::size_t gather(std::span<iovec> iov, std::size_t max_bytes) const;
  // What egress_allowance lets out of the queue now; 0 sets egress_waiting_.
  std::size_t egress_budget(Clock::time_point now);
  bool apply_write(long result);  // true when writing may go on now
  void write_now();
  void on_writable(const boost::system::error_code& ec);
  void finalize(std::uint16_t code);

  // On the worker's concrete executor rather than any_io_executor: 48 bytes less per connection
  // and half the size (104 instead of 208 bytes) of the read wait every idle connection keeps.
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                                  boost::asio::io_context::executor_type>;

  Worker& worker_;
  const WsOptions& options_;
  Socket socket_;
  ws::Decoder decoder_;
  std::string in_;  // bytes of a partial frame kept between reads
  Outbox outbox_;
  std::size_t write_offset_ = 0;  // bytes of the front frame already written
  State state_ = State::kOpen;
  bool reading_ = false;
  bool writing_ = false;  // waiting for the socket to become writable
  bool paused_ = false;   // the endpoint has a request in flight: later messages wait
  bool dirty_ = false;
  bool slow_ = false;  // an event was refused: close as slow consumer at the next flush
  bool close_queued_ = false;
  bool close_sent_ = false;
  bool peer_closed_ = false;
  bool failed_ = false;  // a protocol error: drop the socket once our close frame is out
  bool ping_outstanding_ = false;
  // Replies took the outbox over its limit: no reading until it drains, the slow-consumer close
  // if it doesn't within the grace.
  bool throttled_ = false;
  bool lingering_ = false;       // our close frame and FIN are out; input is read and dropped
  bool egress_waiting_ = false;  // egress_allowance said 0: the next tick flushes again
  std::uint16_t close_code_ = 0;
  std::size_t worker_slot_ = 0;
  std::size_t lingered_bytes_ = 0;
  Clock::time_point opened_at_;
  Clock::time_point last_rx_;
  Clock::time_point ping_sent_at_;
  Clock::time_point close_deadline_;
  Clock::time_point throttled_since_;
};

}  // namespace sg::net
