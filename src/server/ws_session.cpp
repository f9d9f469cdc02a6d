#include "server/ws_session.hpp"

#include "chat/chat.hpp"
#include "core/core.hpp"
#include "log/log.hpp"
#include "server/chat_conn.hpp"
#include "server/context.hpp"
#include "server/exact_allocator.hpp"
#include "server/send_ring.hpp"
#include "server/worker.hpp"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sg::server {

namespace {
using Clock = std::chrono::steady_clock;
namespace cc = ws::close_code;

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
// Events a resume reads from history at a time. A page is what a replay holds beyond the
// outbox (shared with the memory broker's history, copies with Redis's), so it stays small.
constexpr std::size_t kReplayPageEvents = 64;

std::chrono::milliseconds ms(std::int64_t v) {
  return std::chrono::milliseconds(v);
}

OutFrame make_frame(ws::Opcode opcode, std::shared_ptr<const std::string> payload) {
  OutFrame frame;
  std::array<char, 10> header;
  const std::size_t n = ws::frame_header(opcode, payload->size(), header);
  std::copy_n(header.begin(), n, frame.head.begin());
  frame.head_len = static_cast<std::uint8_t>(n);
  frame.body = *payload;
  frame.keep = std::move(payload);
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

OutFrame raw_frame(std::shared_ptr<const std::string> bytes) {
  OutFrame frame;
  frame.body = *bytes;
  frame.keep = std::move(bytes);
  return frame;
}
}  // namespace

WsSession::WsSession(Worker& worker, boost::asio::ip::tcp::socket socket, auth::Principal principal,
                     std::string leftover)
    : worker_(worker),
      ctx_(worker.context()),
      socket_(adopt<Socket>(worker.io(), std::move(socket))),
      principal_(std::move(principal)),
      decoder_(ctx_.settings.max_message_bytes),
      in_(std::move(leftover)),
      outbox_(ctx_.settings.outbox_bytes) {
  const std::string hex = core::random_hex(id_.hex.size() / 2);
  std::copy_n(hex.begin(), id_.hex.size(), id_.hex.begin());
}

WsSession::~WsSession() = default;

void WsSession::start(std::string upgrade_response) {
  opened_at_ = last_rx_ = Clock::now();
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(boost::asio::ip::tcp::no_delay(true), ec);
  worker_.add(shared_from_this());
  ctx_.metrics->connections_total.inc();
  log::info("stream", "connection opened",
            {{"conn", id_},
             {"org", principal_.org},
             {"user", principal_.user},
             {"worker", worker_.index()}});
  queue_raw(std::move(upgrade_response));
  if (!in_.empty()) {
    process({});
  }
  do_read();
}

// ---- reading ----

void WsSession::do_read() {
  if (reading_ || paused_ || throttled_ || state_ == State::kClosed) return;
  reading_ = true;
  socket_.async_wait(
      Socket::wait_read,
      boost::asio::bind_allocator(ExactAllocator<void>(),
                                  [self = shared_from_this()](const boost::system::error_code& ec) {
                                    self->on_readable(ec);
                                  }));
}

void WsSession::on_readable(const boost::system::error_code& ec) {
  reading_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    finalize(cc::kNoStatus);
    return;
  }
  if (lingering_) {
    discard_input();
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
    finalize(peer_closed_ ? close_code_ : std::uint16_t{1006});
    return;
  }
  do_read();
}

void WsSession::process(std::span<char> data) {
  // Decode from the scratch buffer directly unless a partial frame is waiting in in_.
  std::span<char> input = data;
  if (!in_.empty()) {
    in_.append(data.data(), data.size());
    input = std::span<char>(in_.data(), in_.size());
  }
  std::size_t offset = 0;
  bool stop = false;
  // Stops where a reply took the outbox over its limit: the rest waits in in_ until it drains.
  while (!stop && !paused_ && !throttled_ && state_ != State::kClosed && offset < input.size()) {
    const ws::Decoded d = decoder_.decode(input.subspan(offset));
    offset += d.consumed;
    switch (d.kind) {
      case ws::Decoded::Kind::kNeedMore:
        stop = true;
        break;
      case ws::Decoded::Kind::kMessage:
        if (state_ == State::kClosing) break;  // the peer may still send; we no longer listen
        if (d.opcode == ws::Opcode::kBinary) {
          reject("binary_not_supported", "this endpoint speaks JSON text messages only",
                 cc::kUnsupportedData);
        } else {
          handle_text(d.payload);
        }
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
        log::info("stream", "protocol error",
                  {{"conn", id_}, {"org", principal_.org}, {"error", d.error}});
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

void WsSession::handle_text(std::string_view text) {
  auto parsed = protocol::parse_client_message(text, state_ == State::kAwaitingHandshake,
                                               protocol::ParseLimits{ctx_.settings.max_services});
  if (!parsed) {
    const auto& ec = parsed.error();
    const bool not_json = ec == protocol::ProtocolError::kMalformedJson;
    reject(core::reason(ec), not_json ? "message is not valid JSON" : "message not understood",
           not_json ? cc::kInvalidPayload : cc::kPolicyViolation);
    return;
  }
  auto& message = *parsed;
  if (auto* handshake = std::get_if<protocol::Handshake>(&message)) {
    start_subscribe(std::move(handshake->services), handshake->resume, true);
  } else if (auto* subscribe = std::get_if<protocol::Subscribe>(&message)) {
    start_subscribe(std::move(subscribe->services), subscribe->resume, false);
  } else if (auto* unsub = std::get_if<protocol::Unsubscribe>(&message)) {
    unsubscribe(unsub->services);
  } else if (std::holds_alternative<protocol::Ping>(message)) {
    queue_text(protocol::serialize_pong(core::format_rfc3339(core::WallClock::now())));
  } else {
    if (!chat_) chat_ = std::make_unique<ChatConn>(*this);
    chat_->handle(message);
  }
}

void WsSession::reject(std::string_view code, std::string_view message, std::uint16_t close_code,
                       std::string_view service) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  queue_text(protocol::serialize_error(code, message, service));
  close(close_code, code);
}

// ---- subscriptions ----

void WsSession::start_subscribe(std::vector<std::string> services,
                                const protocol::ResumeMap& resume, bool is_handshake) {
  for (const auto& service : services) {
    if (!ctx_.service_allowed(service)) {
      reject("unknown_service", "no such service: " + service, cc::kPolicyViolation, service);
      return;
    }
    // A user's own upload progress is theirs to see, whatever else the token restricts.
    const bool own_uploads = ctx_.uploads && service == kUploadsService;
    if (principal_.services && !own_uploads &&
        std::find(principal_.services->begin(), principal_.services->end(), service) ==
            principal_.services->end()) {
      reject("forbidden_service", "the token does not allow service " + service,
             cc::kPolicyViolation, service);
      return;
    }
  }
  std::size_t total = services_.size();
  for (const auto& service : services) {
    if (std::find(services_.begin(), services_.end(), service) == services_.end()) ++total;
  }
  if (total > ctx_.settings.max_services) {
    reject("too_many_services",
           "a connection may subscribe to at most " + std::to_string(ctx_.settings.max_services) +
               " services",
           cc::kPolicyViolation);
    return;
  }
  std::vector<std::optional<broker::Position>> positions(services.size());
  for (const auto& [service, raw_id] : resume) {
    auto it = std::find(services.begin(), services.end(), service);
    if (it == services.end()) continue;
    auto id = protocol::parse_event_id(raw_id);
    if (!id) {
      reject("bad_event_id", "resume id for " + service + " is not an event id",
             cc::kPolicyViolation);
      return;
    }
    positions[static_cast<std::size_t>(it - services.begin())] =
        broker::Position{id->epoch, id->offset};
  }

  if (is_handshake) state_ = State::kActive;
  auto request = std::make_unique<Request>();
  request->services = services;
  request->is_handshake = is_handshake;
  request->waiting = services.size();
  const std::size_t request_id = ++request_id_;
  request_ = std::move(request);
  paused_ = true;  // later messages wait until this one is answered
  for (std::size_t i = 0; i < services.size(); ++i) {
    if (std::find(services_.begin(), services_.end(), services[i]) == services_.end()) {
      services_.push_back(services[i]);
    }
    if (positions[i]) request_->resume.push_back({services[i], true, {}});
    worker_.shard().attach(
        *this, principal_.user, broker::Channel{principal_.org, services[i]}, positions[i],
        [self = shared_from_this(), request_id, service = services[i]](hub::AttachResult r) {
          self->on_attached(request_id, service, std::move(r));
        },
        kReplayPageEvents);
  }
  if (services.empty()) on_attached(request_id, {}, {});
}

void WsSession::on_attached(std::size_t request_id, std::string service, hub::AttachResult result) {
  if (state_ != State::kActive || !request_ || request_id != request_id_) return;
  Request& request = *request_;
  if (!service.empty()) {
    for (auto& status : request.resume) {
      if (status.service == service) {
        status.recovered = result.recovered;
        status.reason = result.reason;
      }
    }
    request.results.emplace_back(std::move(service), std::move(result));
    if (--request.waiting > 0) return;
  }
  const std::string now = core::format_rfc3339(core::WallClock::now());
  if (request.is_handshake) {
    protocol::Ack ack;
    ack.connection_id = id_;
    ack.services = request.services;
    ack.resume = request.resume;
    ack.timestamp = now;
    queue_text(protocol::serialize_ack(ack));
  } else {
    queue_text(protocol::serialize_subscribed(request.services, request.resume, now));
  }
  auto done = std::move(request_);
  for (auto& [svc, res] : done->results) {
    const auto& name = svc;
    // Subscribing again to a service still replaying attached nothing: its replay goes on.
    if (replays_ && std::any_of(replays_->begin(), replays_->end(),
                                [&](const Replay& r) { return r.service == name; })) {
      continue;
    }
    if (res.replay.empty() && !res.more) {
      if (!worker_.shard().go_live(*this, broker::Channel{principal_.org, svc})) slow_ = true;
      continue;
    }
    if (!replays_) replays_ = std::make_unique<std::vector<Replay>>();
    replays_->push_back(Replay{svc, {res.replay.begin(), res.replay.end()}, res.more, false});
  }
  pump_replay();
  resume_reading();
}

void WsSession::pump_replay() {
  if (!replays_) return;
  auto& replays = *replays_;
  const std::size_t limit = ctx_.settings.outbox_bytes;
  // Half the outbox stays for live events of the connection's other channels.
  const std::size_t low_water = limit / 2;
  for (std::size_t i = 0; i < replays.size();) {
    if (state_ != State::kActive || slow_) return;
    Replay& replay = replays[i];
    while (!replay.queued.empty()) {
      const std::size_t size = OutFrame::kHeadBytes + replay.queued.front()->body.size();
      const std::size_t queued = outbox_.bytes();
      // An event too big for even an empty outbox goes anyway, and fails as a live one would.
      if (!outbox_.empty() && (queued >= low_water || queued + size > limit)) break;
      deliver(replay.queued.front());
      replay.queued.pop_front();
    }
    if (!replay.queued.empty() || replay.reading) {
      ++i;
      continue;
    }
    if (replay.more) {
      replay.reading = true;
      worker_.shard().next_page(
          *this, broker::Channel{principal_.org, replay.service},
          [self = shared_from_this(), service = replay.service](hub::ReplayPage page) {
            self->on_replay_page(service, std::move(page));
          });
      ++i;
      continue;
    }
    // Everything up to where history was read is queued: the held live events follow.
    const broker::Channel channel{principal_.org, std::move(replay.service)};
    replays.erase(replays.begin() + static_cast<std::ptrdiff_t>(i));
    if (!worker_.shard().go_live(*this, channel)) slow_ = true;
  }
  if (replays_->empty()) replays_.reset();
  if (slow_) schedule_flush();
}

void WsSession::on_replay_page(const std::string& service, hub::ReplayPage page) {
  if (state_ != State::kActive || !replays_) return;
  auto it = std::find_if(replays_->begin(), replays_->end(),
                         [&](const Replay& r) { return r.service == service; });
  if (it == replays_->end() || !it->reading) return;
  if (!page.failure.empty()) {
    log::warn(
        "stream", "replay interrupted",
        {{"conn", id_}, {"org", principal_.org}, {"service", service}, {"reason", page.failure}});
    // What was sent stays good: the client resumes from the last event it got.
    reject("replay_interrupted",
           "the replay of " + service + " could not go on; resume from the last event received",
           cc::kInternalError, service);
    return;
  }
  it->reading = false;
  it->more = page.more;
  it->queued.insert(it->queued.end(), page.events.begin(), page.events.end());
  pump_replay();
}

void WsSession::resume_reading() {
  paused_ = false;
  if (slow_) schedule_flush();
  // Messages that arrived while the request was in flight.
  if (!in_.empty()) process({});
  do_read();
}

void WsSession::unsubscribe(const std::vector<std::string>& services) {
  for (const auto& service : services) {
    if (chat::is_room_topic(service)) continue;  // rooms are left with "leave"
    worker_.shard().detach(*this, broker::Channel{principal_.org, service});
    services_.erase(std::remove(services_.begin(), services_.end(), service), services_.end());
    if (replays_) {
      std::erase_if(*replays_, [&](const Replay& r) { return r.service == service; });
    }
  }
  queue_text(protocol::serialize_unsubscribed(services));
}

// ---- writing ----

void WsSession::deliver(const broker::EventPtr& event) {
  if (state_ != State::kActive || slow_) return;
  OutFrame frame;
  // Payload = per-recipient prefix + shared body; the WebSocket header precedes both, and its
  // length depends on the prefix's, so the prefix is written first, behind the longest header.
  char prefix[protocol::kMaxEventFramePrefix];
  const std::size_t prefix_len = protocol::write_event_frame_prefix(prefix, ++seq_);
  std::array<char, 10> header;
  const std::size_t n =
      ws::frame_header(ws::Opcode::kText, prefix_len + event->body.size(), header);
  std::memcpy(frame.head.data(), header.data(), n);
  std::memcpy(frame.head.data() + n, prefix, prefix_len);
  frame.head_len = static_cast<std::uint8_t>(n + prefix_len);
  frame.body = event->body;
  frame.keep = event;
  if (outbox_.push(std::move(frame)) == Outbox::Push::kOverLimit) {
    slow_ = true;
  }
  schedule_flush();
}

void WsSession::hold_overflowed() {
  if (state_ != State::kActive) return;
  slow_ = true;
  schedule_flush();
}

void WsSession::queue_text(std::string text) {
  if (state_ == State::kClosed || close_queued_) return;
  after_reply(outbox_.push_reply(
      make_frame(ws::Opcode::kText, std::make_shared<const std::string>(std::move(text)))));
}

void WsSession::queue_raw(std::string bytes) {
  after_reply(outbox_.push_reply(raw_frame(std::make_shared<const std::string>(std::move(bytes)))));
}

void WsSession::queue_control(std::string frame) {
  if (state_ == State::kClosed || close_queued_) return;
  after_reply(outbox_.push_reply(raw_frame(std::make_shared<const std::string>(std::move(frame)))));
}

void WsSession::queue_pong(std::string_view payload) {
  if (state_ == State::kClosed || close_queued_) return;
  auto frame =
      raw_frame(std::make_shared<const std::string>(ws::control_frame(ws::Opcode::kPong, payload)));
  after_reply(outbox_.push_pong(std::move(frame), write_offset_ > 0));
}

void WsSession::after_reply(Outbox::Push pushed) {
  if (pushed == Outbox::Push::kOverLimit && !throttled_ &&
      (state_ == State::kActive || state_ == State::kAwaitingHandshake)) {
    // Reading stops (process() and do_read() check this), so the client's requests stop
    // costing memory; on_tick() closes with 4008 if the queue stays over the limit.
    throttled_ = true;
    throttled_since_ = Clock::now();
    log::debug("stream", "reading paused: replies over the outbox limit",
               {{"conn", id_}, {"queued_bytes", outbox_.bytes()}});
  }
  schedule_flush();
}

void WsSession::on_drained() {
  throttled_ = false;
  log::debug("stream", "reading resumed", {{"conn", id_}});
  // Not from inside the write that drained the queue: reading queues replies and may close.
  boost::asio::post(worker_.io(), [self = shared_from_this()] {
    if (self->state_ == State::kClosing || self->state_ == State::kClosed || self->throttled_) {
      return;
    }
    // The pong wait restarts: while we did not read, the client's pong could not count.
    if (self->ping_outstanding_) self->ping_sent_at_ = Clock::now();
    if (!self->in_.empty()) self->process({});
    self->do_read();
  });
}

void WsSession::schedule_flush() {
  if (dirty_ || state_ == State::kClosed) return;
  dirty_ = true;
  worker_.mark_dirty(*this);
}

bool WsSession::begin_flush() {
  dirty_ = false;
  if (state_ == State::kClosed) return false;
  if (slow_ && state_ == State::kActive) {
    close_slow("an event would pass the limit");
    return false;
  }
  return !writing_;
}

void WsSession::flush() {
  if (begin_flush()) write_now();
}

bool WsSession::flush_into(SendRing& ring, std::uint32_t tag) {
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
  std::array<iovec, SendRing::kMaxIov> iov;
  const std::size_t count = gather(std::span(iov).first(std::min(iov.size(), ring.iov_room())));
  if (!ring.add(socket_.native_handle(), {iov.data(), count}, tag)) write_now();
  return true;
}

void WsSession::on_sent(int result) {
  if (state_ == State::kClosed) return;
  if (apply_write(result)) write_now();
}

std::size_t WsSession::gather(std::span<iovec> iov) const {
  std::size_t count = 0;
  std::size_t offset = write_offset_;
  for (std::size_t i = 0; i < outbox_.frames() && count + 2 <= iov.size(); ++i) {
    const OutFrame& f = outbox_.at(i);
    if (offset < f.head_len) {
      iov[count++] = {const_cast<char*>(f.head.data() + offset), f.head_len - offset};
      offset = 0;
    } else {
      offset -= f.head_len;
    }
    if (offset < f.body.size()) {
      iov[count++] = {const_cast<char*>(f.body.data() + offset), f.body.size() - offset};
    }
    offset = 0;
  }
  return count;
}

bool WsSession::apply_write(long result) {
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
    finalize(1006);
    return false;
  }
  // Drop whole frames written; remember how far into the next one we got.
  std::size_t written = static_cast<std::size_t>(result) + write_offset_;
  std::size_t done = 0;
  while (done < outbox_.frames() && written >= outbox_.at(done).size()) {
    written -= outbox_.at(done).size();
    ++done;
  }
  outbox_.pop(done);
  write_offset_ = written;
  if (done > 0) worker_.count_write(done);
  if (replays_ && done > 0) pump_replay();  // a replay refills the outbox as it drains
  if (throttled_ && !outbox_.over_limit()) on_drained();
  return true;
}

void WsSession::write_now() {
  const int fd = socket_.native_handle();
  while (!outbox_.empty()) {
    std::array<iovec, kMaxIov> iov;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = gather(iov);
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (!apply_write(n < 0 ? -errno : n)) return;
  }
  if (close_queued_ && !close_sent_) {
    close_sent_ = true;
    if (peer_closed_) {
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

void WsSession::on_writable(const boost::system::error_code& ec) {
  writing_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    finalize(1006);
    return;
  }
  write_now();
}

// ---- closing ----

void WsSession::close(std::uint16_t code, std::string_view reason, bool discard_queued) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  state_ = State::kClosing;
  close_code_ = code;
  close_deadline_ = Clock::now() + kCloseWait;
  worker_.shard().detach_all(*this);
  if (chat_) chat_->on_close();
  request_.reset();
  // A frame half written must be finished first; the rest goes unless the queue is the problem.
  if (discard_queued) outbox_.truncate(write_offset_ > 0 ? 1 : 0);
  // Outside the limit (one per connection), and reading goes on for the peer's close frame.
  outbox_.push_reply(raw_frame(std::make_shared<const std::string>(ws::close_frame(code, reason))));
  close_queued_ = true;
  throttled_ = false;
  schedule_flush();
}

void WsSession::close_slow(std::string_view cause) {
  ctx_.metrics->slow_consumer_closes.inc();
  log::warn("stream", "slow consumer closed",
            {{"conn", id_},
             {"org", principal_.org},
             {"user", principal_.user},
             {"cause", cause},
             {"queued_bytes", outbox_.bytes()},
             {"limit_bytes", ctx_.settings.outbox_bytes}});
  close(cc::kSlowConsumer, "slow consumer: outbound queue over limit", true);
}

void WsSession::start_linger() {
  lingering_ = true;
  close_deadline_ = Clock::now() + kLingerTime;
  boost::system::error_code ec;
  socket_.shutdown(Socket::shutdown_send, ec);
  std::string().swap(in_);
  paused_ = false;
  do_read();
}

void WsSession::discard_input() {
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

void WsSession::handle_peer_close(std::uint16_t code) {
  peer_closed_ = true;
  paused_ = true;
  if (state_ == State::kClosing) {
    if (close_sent_) finalize(close_code_);
    return;
  }
  // Echo the peer's code, as RFC 6455 §5.5.1 asks; "no status" is echoed as an empty close.
  close(code == cc::kNoStatus ? cc::kNoStatus : code, "");
}

void WsSession::finalize(std::uint16_t code) {
  if (state_ == State::kClosed) return;
  const bool was_closing = state_ == State::kClosing;
  state_ = State::kClosed;
  const std::uint16_t reported = was_closing ? close_code_ : code;
  worker_.shard().detach_all(*this);
  if (chat_) chat_->on_close();
  request_.reset();
  boost::system::error_code ec;
  socket_.shutdown(Socket::shutdown_both, ec);
  socket_.close(ec);
  ctx_.hub->release(principal_.org, principal_.user);
  ctx_.metrics->count_close(reported);
  const auto duration =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - opened_at_);
  log::info("stream", "connection closed",
            {{"conn", id_},
             {"org", principal_.org},
             {"user", principal_.user},
             {"code", reported},
             {"duration_ms", duration.count()}});
  auto self = shared_from_this();  // keep alive until remove() returns
  worker_.remove(*this);
}

void WsSession::on_tick(Clock::time_point now, std::chrono::system_clock::time_point wall) {
  const auto& s = ctx_.settings;
  // Queue memory is kept while a connection is busy (no regrowth per write) and given back
  // once it has drained.
  if (outbox_.empty()) outbox_.release_memory();
  switch (state_) {
    case State::kClosed:
      return;
    case State::kClosing:
      if (now >= close_deadline_) finalize(close_code_);
      return;
    case State::kAwaitingHandshake:
      if (now - opened_at_ >= ms(s.handshake_timeout_ms)) {
        reject("handshake_timeout", "no handshake message in time", cc::kHandshakeTimeout);
        return;
      }
      break;
    case State::kActive:
      break;
  }
  if (wall >= principal_.expiry + std::chrono::seconds(s.jwt_leeway_seconds)) {
    reject("token_expired", "the access token expired; reconnect with a fresh one",
           cc::kTokenExpired);
    return;
  }
  if (throttled_) {
    // Not reading, so no pings and no pong deadline (on_drained() restarts it): the grace
    // decides, counted from when replies first took the queue over the limit.
    if (now - throttled_since_ >= ms(s.slow_consumer_grace_ms)) {
      close_slow("replies kept the queue over the limit for --slow-consumer-grace");
    }
    return;
  }
  if (ping_outstanding_) {
    if (now - ping_sent_at_ >= ms(s.pong_timeout_ms)) {
      close(cc::kPingTimeout, "ping timeout");
    }
  } else if (now - last_rx_ >= ms(s.ping_interval_ms)) {
    ping_outstanding_ = true;
    ping_sent_at_ = now;
    queue_control(ws::control_frame(ws::Opcode::kPing, {}));
  }
}

}  // namespace sg::server
