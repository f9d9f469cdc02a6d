#include "net/ws_connection.hpp"

#include "net/exact_allocator.hpp"
#include "net/send_ring.hpp"
#include "net/worker.hpp"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sg::net {

namespace {
namespace cc = ws::close_code;

// Reported (never sent) when the connection ended without a close frame (RFC 6455 §7.1.5).
constexpr std::uint16_t kAbnormal = 1006;

// How long a closing connection waits for the peer's close frame (or for its unread data to
// drain) before the socket is dropped.
constexpr auto kCloseWait = std::chrono::seconds(2);
// Lingering close (RFC 6455 §7.1.1, RFC 9112 §9.6). After the close frame for a protocol error
// the client may still be sending, typically the rest of the message that was too big. Closing
// the socket with its bytes unread makes the kernel answer with RST, and the RST discards our
// close frame from the client's receive buffer: the client sees a dropped connection (1006), not
// the reason, and retries. So we send FIN and read and drop its input until it is done.
// kLingerBytes: a few times what a fast path holds in flight when the client learns of the close
// (Linux autotunes socket buffers up to 4 MiB for sending and 6 MiB for receiving), so a client
// that was mid-message usually finishes and ends cleanly. It costs recv() into the worker's
// scratch buffer, no memory. Past it reading stops, but the socket stays open until kLingerTime,
// so the client still has that long to read the close frame before an RST can destroy it.
constexpr std::size_t kLingerBytes = 16 << 20;
// Apache lingers as long: enough for a client on a slow link to read the close frame, short
// enough that one that keeps sending holds a descriptor only briefly.
constexpr auto kLingerTime = std::chrono::seconds(2);
// Frames gathered into one sendmsg(); IOV_MAX is 1024 on Linux.
constexpr std::size_t kMaxIov = 256;
// Reads per readiness event before yielding to other connections on the worker.
constexpr int kMaxReadsPerTurn = 4;

// The text is moved into the frame's shared body, not copied: a reply is built once.
OutFrame text_frame(std::string text) {
  std::array<char, 10> header;
  const std::size_t n = ws::frame_header(ws::Opcode::kText, text.size(), header);
  OutFrame frame;
  std::copy_n(header.begin(), n, frame.head.begin());
  frame.head_len = static_cast<std::uint8_t>(n);
  auto payload = std::make_shared<const std::string>(std::move(text));
  frame.body = *payload;
  frame.keep = std::move(payload);
  return frame;
}

OutFrame raw_frame(std::string bytes) {
  auto kept = std::make_shared<const std::string>(std::move(bytes));
  OutFrame frame;
  frame.body = *kept;
  frame.keep = std::move(kept);
  return frame;
}

// Moves the upgraded connection's descriptor onto a socket typed on the worker's executor (the
// HTTP side speaks any_io_executor). Costs an epoll deregister and register per connection.
template <typename Socket>
Socket adopt(boost::asio::io_context& io, boost::asio::ip::tcp::socket socket) {
  Socket out(io);
  boost::system::error_code ec;
  const auto protocol = socket.local_endpoint(ec).protocol();
  if (ec) return out;  // the peer is already gone; the first wait reports it
  const int fd = socket.release(ec);
  if (ec) return out;
  out.assign(protocol, fd, ec);
  if (ec) ::close(fd);
  return out;
}
}  // namespace

WsConnection::WsConnection(Worker& worker, boost::asio::ip::tcp::socket socket,
                           std::string leftover, const WsOptions& options)
    : worker_(worker),
      options_(options),
      socket_(adopt<Socket>(worker.io(), std::move(socket))),
      decoder_(options.max_message_bytes),
      in_(std::move(leftover)),
      outbox_(options.outbox_bytes) {}

WsConnection::~WsConnection() = default;

void WsConnection::start(std::string upgrade_response) {
  opened_at_ = last_rx_ = Clock::now();
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(boost::asio::ip::tcp::no_delay(true), ec);
  worker_.add(shared_from_this());
  queue_raw(std::move(upgrade_response));
  // A byte stream's peer has nothing to say after its request; a pipelined one goes unanswered.
  if (options_.byte_stream) std::string().swap(in_);
  if (!in_.empty()) process({});
  do_read();
}

// ---- reading ----

void WsConnection::do_read() {
  if (reading_ || paused_ || throttled_ || state_ == State::kClosed) return;
  reading_ = true;
  socket_.async_wait(
      Socket::wait_read,
      boost::asio::bind_allocator(ExactAllocator<void>(),
                                  [self = shared_from_this()](const boost::system::error_code& ec) {
                                    self->on_readable(ec);
                                  }));
}

void WsConnection::on_readable(const boost::system::error_code& ec) {
  reading_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    finalize(kAbnormal);
    return;
  }
  if (lingering_) {
    discard_input();
    return;
  }
  if (options_.byte_stream) {
    drop_input();
    return;
  }
  auto scratch = worker_.scratch();
  for (int i = 0;
       i < kMaxReadsPerTurn && !paused_ && !throttled_ && !lingering_ && state_ != State::kClosed;
       ++i) {
    const ssize_t n = ::recv(socket_.native_handle(), scratch.data(), scratch.size(), 0);
    if (n > 0) {
      last_rx_ = Clock::now();
      ping_outstanding_ = false;
      process(scratch.first(static_cast<std::size_t>(n)));
      if (static_cast<std::size_t>(n) < scratch.size()) break;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
    // EOF or a reset: the peer is gone, nothing more can be sent.
    finalize(peer_closed_ ? close_code_ : kAbnormal);
    return;
  }
  do_read();
}

void WsConnection::drop_input() {
  auto scratch = worker_.scratch();
  for (int i = 0; i < kMaxReadsPerTurn; ++i) {
    const ssize_t n = ::recv(socket_.native_handle(), scratch.data(), scratch.size(), 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // A byte stream has no close handshake: the peer's FIN is how its client says goodbye.
    finalize(n == 0 ? cc::kNormal : kAbnormal);
    return;
  }
  do_read();
}

void WsConnection::process(std::span<char> data) {
  // Decode from the scratch buffer directly unless a partial frame is waiting in in_.
  std::span<char> input = data;
  if (!in_.empty()) {
    in_.append(data.data(), data.size());
    input = std::span<char>(in_.data(), in_.size());
  }
  std::size_t offset = 0;
  bool stop = false;
  // Stops where a reply took the outbox over its limit, or where the endpoint paused for a
  // request: the rest waits in in_.
  while (!stop && !paused_ && !throttled_ && state_ != State::kClosed && offset < input.size()) {
    const ws::Decoded d = decoder_.decode(input.subspan(offset));
    offset += d.consumed;
    switch (d.kind) {
      case ws::Decoded::Kind::kNeedMore:
        stop = true;
        break;
      case ws::Decoded::Kind::kMessage:
        if (state_ == State::kClosing) break;  // the peer may still send; we no longer listen
        on_message(d.opcode, d.payload);
        break;
      case ws::Decoded::Kind::kPing:
        queue_pong(d.payload);
        break;
      case ws::Decoded::Kind::kPong:
        break;
      case ws::Decoded::Kind::kClose:
        handle_peer_close(d.close_code);
        stop = true;
        break;
      case ws::Decoded::Kind::kError:
        on_protocol_error(d.error);
        close(d.close_code, d.error);
        // Nothing after a protocol error can be trusted; stop decoding.
        failed_ = true;
        paused_ = true;
        stop = true;
        // Already closing for another reason, with our close frame out: linger from here.
        if (close_sent_ && !peer_closed_) start_linger();
        break;
    }
  }
  // Lingering dropped in_ (which `input` may point into): nothing more to keep.
  if (state_ == State::kClosed || lingering_) return;
  if (input.data() == in_.data() && !in_.empty()) {
    in_.erase(0, std::min(offset, in_.size()));
  } else {
    in_.assign(input.data() + offset, input.size() - offset);
  }
  if (in_.empty() && in_.capacity() > 256) in_.shrink_to_fit();
}

void WsConnection::resume_reading() {
  if (state_ == State::kClosed || failed_ || (peer_closed_ && state_ == State::kClosing)) return;
  paused_ = false;
  // The pong wait restarts: while we did not read, the client's pong could not count.
  if (ping_outstanding_) ping_sent_at_ = Clock::now();
  if (slow_) schedule_flush();
  // Messages that arrived while the request was in flight.
  if (!in_.empty()) process({});
  do_read();
}

// ---- queuing ----

void WsConnection::send_text(std::string text) {
  if (state_ == State::kClosed || close_queued_) return;
  after_reply(outbox_.push_reply(text_frame(std::move(text))));
}

void WsConnection::send_latest_text(std::string text, Outbox::Latest kind) {
  if (state_ == State::kClosed || close_queued_) return;
  after_reply(outbox_.push_latest(text_frame(std::move(text)), kind, write_offset_ > 0));
}

bool WsConnection::send_event(OutFrame&& frame) {
  if (state_ != State::kOpen || slow_) return false;
  if (outbox_.push(std::move(frame)) == Outbox::Push::kOverLimit) slow_ = true;
  schedule_flush();
  return !slow_;
}

void WsConnection::send_bytes(std::string bytes) {
  if (state_ == State::kClosed || close_queued_) return;
  after_reply(outbox_.push_reply(raw_frame(std::move(bytes))));
}

void WsConnection::send_latest_bytes(std::string bytes, Outbox::Latest kind) {
  if (state_ == State::kClosed || close_queued_) return;
  after_reply(outbox_.push_latest(raw_frame(std::move(bytes)), kind, write_offset_ > 0));
}

void WsConnection::mark_slow() {
  if (state_ != State::kOpen) return;
  slow_ = true;
  schedule_flush();
}

void WsConnection::queue_raw(std::string bytes) {
  after_reply(outbox_.push_reply(raw_frame(std::move(bytes))));
}

void WsConnection::queue_control(std::string frame) {
  if (state_ == State::kClosed || close_queued_) return;
  after_reply(outbox_.push_reply(raw_frame(std::move(frame))));
}

void WsConnection::queue_pong(std::string_view payload) {
  if (state_ == State::kClosed || close_queued_) return;
  after_reply(outbox_.push_latest(raw_frame(ws::control_frame(ws::Opcode::kPong, payload)),
                                  Outbox::Latest::kPong, write_offset_ > 0));
}

void WsConnection::after_reply(Outbox::Push pushed) {
  if (pushed == Outbox::Push::kOverLimit && !throttled_ && state_ == State::kOpen) {
    // Reading stops (process() and do_read() check this), so the client's requests stop
    // costing memory; tick() closes as a slow consumer if the queue stays over the limit.
    throttled_ = true;
    throttled_since_ = Clock::now();
    on_throttled(true);
  }
  schedule_flush();
}

void WsConnection::on_drained() {
  throttled_ = false;
  on_throttled(false);
  // Not from inside the write that drained the queue: reading queues replies and may close.
  boost::asio::post(worker_.io(), [self = shared_from_this()] {
    if (self->state_ != State::kOpen || self->throttled_) return;
    if (self->ping_outstanding_) self->ping_sent_at_ = Clock::now();
    if (!self->in_.empty()) self->process({});
    self->do_read();
  });
}

// ---- writing ----

void WsConnection::schedule_flush() {
  if (dirty_ || state_ == State::kClosed) return;
  dirty_ = true;
  worker_.mark_dirty(*this);
}

bool WsConnection::begin_flush() {
  dirty_ = false;
  if (state_ == State::kClosed) return false;
  if (slow_ && state_ == State::kOpen) {
    close_slow("an event would pass the limit");
    return false;
  }
  return !writing_;
}

void WsConnection::flush() {
  if (begin_flush()) write_now();
}

bool WsConnection::flush_into(SendRing& ring, std::uint32_t tag) {
  // Everything queued in one entry, so a connection that fell behind still costs one send: if
  // the ring has less room than that left, it is submitted first (an empty ring takes what fits
  // and the rest follows by sendmsg once that send completes).
  const std::size_t wanted = std::min(2 * outbox_.frames(), SendRing::kMaxIov);
  if (!ring.empty() && ring.iov_room() < wanted) return false;
  if (!begin_flush()) return true;
  // Nothing to send: only the close bookkeeping to do.
  if (outbox_.empty()) {
    write_now();
    return true;
  }
  const std::size_t budget = egress_budget(Clock::now());
  if (budget == 0) return true;
  std::array<iovec, SendRing::kMaxIov> iov;
  const std::size_t count =
      gather(std::span(iov).first(std::min(iov.size(), ring.iov_room())), budget);
  if (!ring.add(socket_.native_handle(), {iov.data(), count}, tag)) write_now();
  return true;
}

void WsConnection::on_sent(int result) {
  if (state_ == State::kClosed) return;
  if (apply_write(result)) write_now();
}

std::size_t WsConnection::egress_budget(Clock::time_point now) {
  const std::size_t queued = outbox_.bytes() - write_offset_;
  // A closing connection's last bytes (at most its bound, once) go unpaced: paced, the close
  // frame could miss the close handshake's deadline and the client would see 1006, not why.
  if (state_ != State::kOpen) return queued;
  const std::size_t budget = egress_allowance(queued, now);
  egress_waiting_ = budget == 0 && queued != 0;
  return budget;
}

std::size_t WsConnection::gather(std::span<iovec> iov, std::size_t max_bytes) const {
  std::size_t count = 0;
  std::size_t offset = write_offset_;
  for (std::size_t i = 0; i < outbox_.frames() && count + 2 <= iov.size() && max_bytes > 0; ++i) {
    const OutFrame& f = outbox_.at(i);
    if (offset < f.head_len) {
      const std::size_t n = std::min<std::size_t>(f.head_len - offset, max_bytes);
      iov[count++] = {const_cast<char*>(f.head.data() + offset), n};
      max_bytes -= n;
      offset = 0;
    } else {
      offset -= f.head_len;
    }
    if (offset < f.body.size() && max_bytes > 0) {
      const std::size_t n = std::min(f.body.size() - offset, max_bytes);
      iov[count++] = {const_cast<char*>(f.body.data() + offset), n};
      max_bytes -= n;
    }
    offset = 0;
  }
  return count;
}

bool WsConnection::apply_write(long result) {
  if (result < 0) {
    if (result == -EINTR) return true;
    if (result == -EAGAIN || result == -EWOULDBLOCK) {
      writing_ = true;
      socket_.async_wait(Socket::wait_write,
                         boost::asio::bind_allocator(
                             ExactAllocator<void>(),
                             [self = shared_from_this()](const boost::system::error_code& ec) {
                               self->on_writable(ec);
                             }));
      return false;
    }
    finalize(kAbnormal);
    return false;
  }
  if (result > 0) egress_spent(static_cast<std::size_t>(result), Clock::now());
  // Drop whole frames written; remember how far into the next one we got.
  std::size_t written = static_cast<std::size_t>(result) + write_offset_;
  std::size_t done = 0;
  while (done < outbox_.frames() && written >= outbox_.at(done).size()) {
    written -= outbox_.at(done).size();
    ++done;
  }
  outbox_.pop(done);
  write_offset_ = written;
  if (done > 0) {
    worker_.count_write(done);
    on_written();
  }
  if (throttled_ && !outbox_.over_limit()) on_drained();
  return state_ != State::kClosed;
}

void WsConnection::write_now() {
  const int fd = socket_.native_handle();
  while (!outbox_.empty()) {
    const std::size_t budget = egress_budget(Clock::now());
    if (budget == 0) return;
    std::array<iovec, kMaxIov> iov;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = gather(iov, budget);
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (!apply_write(n < 0 ? -errno : n)) return;
  }
  if (close_queued_ && !close_sent_) {
    close_sent_ = true;
    if (options_.byte_stream) {
      // FIN after the stream's end; reading on until the peer's FIN, so no reset destroys it.
      start_linger();
    } else if (peer_closed_) {
      finalize(close_code_);
    } else if (failed_) {
      start_linger();
    } else {
      // The client answers with its own close frame; reading goes on until then.
      paused_ = false;
      do_read();
    }
  }
}

void WsConnection::on_writable(const boost::system::error_code& ec) {
  writing_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    finalize(kAbnormal);
    return;
  }
  // Through the worker's flush rather than at once: when many sockets turn writable in one
  // poll, writing them all here would be one long unit that other orgs' events wait behind.
  schedule_flush();
}

// ---- closing ----

void WsConnection::close(std::uint16_t code, std::string_view reason, bool discard_queued) {
  if (state_ != State::kOpen) return;
  state_ = State::kClosing;
  close_code_ = code;
  close_deadline_ = Clock::now() + kCloseWait;
  on_closing();
  // A frame half written must be finished first; the rest goes unless the queue is the problem.
  if (discard_queued) outbox_.truncate(write_offset_ > 0 ? 1 : 0);
  // Outside the limit (one per connection), and reading goes on for the peer's close frame.
  if (!options_.byte_stream) {
    outbox_.push_reply(raw_frame(ws::close_frame(code, reason)));
  } else if (!options_.stream_end.empty()) {
    outbox_.push_reply(raw_frame(options_.stream_end));
  }
  close_queued_ = true;
  throttled_ = false;
  schedule_flush();
}

void WsConnection::shut_down(std::uint16_t code) {
  close(code, "server shutting down");
}

void WsConnection::close_slow(std::string_view cause) {
  on_slow_consumer(cause);
  close(options_.slow_consumer_code, "slow consumer: outbound queue over limit", true);
}

void WsConnection::start_linger() {
  lingering_ = true;
  close_deadline_ = Clock::now() + kLingerTime;
  boost::system::error_code ec;
  socket_.shutdown(Socket::shutdown_send, ec);
  std::string().swap(in_);
  paused_ = false;
  do_read();
}

void WsConnection::discard_input() {
  auto scratch = worker_.scratch();
  for (int i = 0; i < kMaxReadsPerTurn; ++i) {
    const ssize_t n = ::recv(socket_.native_handle(), scratch.data(), scratch.size(), 0);
    if (n > 0) {
      lingered_bytes_ += static_cast<std::size_t>(n);
      // Enough read: no more reading, but the socket stays until the deadline (kLingerBytes).
      if (lingered_bytes_ >= kLingerBytes) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // EOF: the client is done sending and has had everything we sent; or it reset.
    finalize(close_code_);
    return;
  }
  do_read();
}

void WsConnection::handle_peer_close(std::uint16_t code) {
  peer_closed_ = true;
  paused_ = true;
  if (state_ == State::kClosing) {
    if (close_sent_) finalize(close_code_);
    return;
  }
  // Echo the peer's code, as RFC 6455 §5.5.1 asks; "no status" is echoed as an empty close.
  close(code == cc::kNoStatus ? cc::kNoStatus : code, "");
}

void WsConnection::finalize(std::uint16_t code) {
  if (state_ == State::kClosed) return;
  const bool was_closing = state_ == State::kClosing;
  state_ = State::kClosed;
  const std::uint16_t reported = was_closing ? close_code_ : code;
  if (!was_closing) on_closing();
  boost::system::error_code ec;
  socket_.shutdown(Socket::shutdown_both, ec);
  socket_.close(ec);
  auto self = shared_from_this();  // keep alive until remove() returns
  on_closed(reported);
  worker_.remove(*this);
}

void WsConnection::tick(Clock::time_point now, std::chrono::system_clock::time_point wall) {
  // Queue memory is kept while a connection is busy (no regrowth per write) and given back
  // once it has drained.
  if (outbox_.empty()) outbox_.release_memory();
  // Paced by egress_allowance: the queue waited for this tick (the close frame too).
  if (egress_waiting_ && state_ != State::kClosed) {
    egress_waiting_ = false;
    schedule_flush();
  }
  switch (state_) {
    case State::kClosed:
      return;
    case State::kClosing:
      if (now >= close_deadline_) finalize(close_code_);
      return;
    case State::kOpen:
      break;
  }
  on_tick(now, wall);
  if (state_ != State::kOpen) return;
  if (throttled_) {
    // Not reading, so no pings and no pong deadline (on_drained() restarts it): the grace
    // decides, counted from when replies first took the queue over the limit.
    if (now - throttled_since_ >= options_.slow_consumer_grace) {
      close_slow("replies kept the queue over the limit for --slow-consumer-grace");
    }
    return;
  }
  // A request in flight (a disk write, a history read) is not the client's silence, and its
  // pong can't be read until it is answered: resume_reading() restarts the wait.
  if (paused_ || options_.byte_stream) return;
  if (ping_outstanding_) {
    if (now - ping_sent_at_ >= options_.pong_timeout) {
      close(options_.ping_timeout_code, "ping timeout");
    }
  } else if (now - last_rx_ >= options_.ping_interval) {
    ping_outstanding_ = true;
    ping_sent_at_ = now;
    queue_control(ws::control_frame(ws::Opcode::kPing, {}));
  }
}

}  // namespace sg::net
