#include "server/upload_session.hpp"

#include "core/core.hpp"
#include "log/log.hpp"
#include "protocol/protocol.hpp"
#include "server/context.hpp"
#include "server/upload_events.hpp"
#include "server/upload_message.hpp"
#include "server/worker.hpp"
#include "server/ws_codec.hpp"
#include "upload/upload.hpp"

#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cerrno>
#include <deque>

namespace sg::server {

namespace {

namespace asio = boost::asio;
namespace cc = ws::close_code;
using Clock = std::chrono::steady_clock;

constexpr auto kTick = std::chrono::milliseconds(250);
constexpr auto kCloseWait = std::chrono::seconds(2);
// After our close frame is out, what a client still sending is allowed before the socket
// closes (RFC 6455 7.1.1, RFC 9112 9.6 "lingering close"): closing with unread input makes the
// kernel answer with RST, which discards the close frame still unread in the client's receive
// buffer, and the client sees 1006 instead of the code. The byte bound must pass what a client
// can have in flight when the close goes out (its send buffer plus ours to receive: several MiB
// on loopback), or the RST still comes before the client got to read; 1 MiB was not enough for a
// ws client sending 10 MiB. Discarding costs no memory (a 16 KiB scratch buffer).
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr std::size_t kLingerBytes = 16 << 20;
constexpr std::size_t kReadBytes = 64 * 1024;
// Progress cadence on the socket: at least every this many bytes or kTick, whichever first.
constexpr std::uint64_t kProgressBytes = 1 << 20;

std::string frame_of(ws::Opcode opcode, std::string_view payload) {
  std::array<char, 10> header;
  const std::size_t n = ws::frame_header(opcode, payload.size(), header);
  std::string out(header.data(), n);
  out.append(payload);
  return out;
}

std::uint16_t close_code_for(upload::UploadError e) {
  switch (e) {
    case upload::UploadError::kStorage:
      return cc::kInternalError;
    case upload::UploadError::kShuttingDown:
      return cc::kGoingAway;
    default:
      return cc::kPolicyViolation;
  }
}

class UploadSession final : public std::enable_shared_from_this<UploadSession> {
 public:
  UploadSession(Worker& worker, asio::ip::tcp::socket socket, auth::Principal principal,
                std::string leftover)
      : ctx_(worker.context()),
        manager_(*ctx_.uploads),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        owner_{principal.org, principal.user},
        principal_(std::move(principal)),
        id_(core::random_hex(8)),
        decoder_(ctx_.settings.max_message_bytes),
        in_(std::move(leftover)) {}

  void start(std::string upgrade_response) {
    opened_at_ = last_rx_ = Clock::now();
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    ctx_.metrics->connections_total.inc();
    ctx_.upload_sessions.fetch_add(1);
    log::info("upload", "upload connection opened",
              {{"conn", id_}, {"org", owner_.org}, {"user", owner_.user}});
    queue(std::move(upgrade_response));
    schedule_tick();
    process();
    do_read();
  }

 private:
  enum class State { kAwaitingStart, kUploading, kIdle, kClosing, kClosed };

  // ---- reading ----

  void do_read() {
    if (reading_ || busy_ || state_ == State::kClosed || peer_closed_) return;
    reading_ = true;
    socket_.async_wait(asio::ip::tcp::socket::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         self->on_readable(ec);
                       });
  }

  void on_readable(const boost::system::error_code& ec) {
    reading_ = false;
    if (state_ == State::kClosed) return;
    if (ec) return finalize(1006);
    const std::size_t old = in_.size();
    in_.resize(old + kReadBytes);
    const ssize_t n = ::recv(socket_.native_handle(), in_.data() + old, kReadBytes, 0);
    in_.resize(old + (n > 0 ? static_cast<std::size_t>(n) : 0));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      // EOF or reset: the client is gone. The upload stays resumable.
      return finalize(peer_closed_ ? close_code_ : std::uint16_t{1006});
    }
    if (n > 0) last_rx_ = Clock::now();
    process();
    do_read();
  }

  // Decodes what is buffered until a message needs the manager (then waits for its answer).
  void process() {
    std::size_t offset = 0;
    while (!busy_ && !peer_closed_ && state_ != State::kClosed && offset < in_.size()) {
      const ws::Decoded d =
          decoder_.decode(std::span<char>(in_.data() + offset, in_.size() - offset));
      offset += d.consumed;
      using Kind = ws::Decoded::Kind;
      if (d.kind == Kind::kNeedMore) break;
      switch (d.kind) {
        case Kind::kMessage:
          if (state_ == State::kClosing) break;
          if (d.opcode == ws::Opcode::kBinary) {
            on_bytes(std::string(d.payload));
          } else {
            on_text(d.payload);
          }
          break;
        case Kind::kPing:
          queue(ws::control_frame(ws::Opcode::kPong, d.payload));
          break;
        case Kind::kPong:
          ping_outstanding_ = false;
          break;
        case Kind::kClose:
          peer_closed_ = true;
          if (state_ == State::kClosing) {
            if (close_written_) finalize(close_code_, true);
          } else {
            close(d.close_code == cc::kNoStatus ? cc::kNoStatus : d.close_code, "");
          }
          break;
        case Kind::kError:
          log::info("upload", "protocol error",
                    {{"conn", id_}, {"org", owner_.org}, {"error", d.error}});
          close(d.close_code, d.error);
          peer_closed_ = true;  // nothing after a protocol error can be trusted
          break;
        case Kind::kNeedMore:
          break;
      }
    }
    if (state_ == State::kClosed) return;
    in_.erase(0, std::min(offset, in_.size()));
    if (in_.empty() && in_.capacity() > 4 * kReadBytes && state_ != State::kUploading) {
      std::string().swap(in_);
    }
  }

  // ---- messages ----

  void on_text(std::string_view text) {
    UploadMessage m = parse_upload_message(text);
    switch (m.kind) {
      case UploadMessage::Kind::kInvalid:
        return fail_with(m.error, m.message,
                         m.error == "malformed_json" ? cc::kInvalidPayload : cc::kPolicyViolation);
      case UploadMessage::Kind::kPing:
        return queue_text(protocol::serialize_pong(core::format_rfc3339(core::WallClock::now())));
      case UploadMessage::Kind::kStart:
      case UploadMessage::Kind::kResume:
        break;
    }
    if (state_ == State::kUploading) {
      return fail_with("upload_in_progress",
                       "this connection is already uploading; open another for a second upload",
                       cc::kPolicyViolation);
    }
    busy_ = true;
    if (m.kind == UploadMessage::Kind::kResume) {
      // Claimed, not just found: bytes of a dropped connection still in flight can't append
      // behind this one's back and invalidate the offset it is about to be given.
      manager_.claim(owner_, std::move(m.upload_id),
                     post_back([](UploadSession& s, Result<upload::UploadInfo> r) {
                       s.on_resumed(std::move(r));
                     }));
      return;
    }
    manager_.create(owner_, std::move(m.start),
                    post_back([](UploadSession& s, Result<upload::UploadInfo> r) {
                      s.on_created(std::move(r));
                    }));
  }

  void on_bytes(std::string bytes) {
    if (state_ == State::kAwaitingStart) {
      return fail_with("not_started", "send a start or resume message before the bytes",
                       cc::kPolicyViolation);
    }
    busy_ = true;
    const std::uint64_t offset = received_;
    manager_.append_leased(owner_, upload_id_, lease_, offset, std::move(bytes),
                           post_back([](UploadSession& s, Result<upload::UploadInfo> r) {
                             s.on_appended(std::move(r));
                           }));
  }

  void on_created(Result<upload::UploadInfo> r) {
    if (!r) return fail_upload(r.error(), "");
    log::info("upload", "upload started",
              {{"conn", id_}, {"org", owner_.org}, {"upload_id", r->id}, {"size", r->size}});
    begin(*r);
  }

  void on_resumed(Result<upload::UploadInfo> r) {
    if (!r) return fail_upload(r.error(), "");
    switch (r->status) {
      case upload::Status::kUploading:
        return begin(*r);
      case upload::Status::kComplete:
        upload_id_ = r->id;
        state_ = State::kIdle;
        queue_text(ready_json(*r));
        queue_text(complete_json(*r));
        return;
      case upload::Status::kFailed:
        return fail_upload(
            r->error == "expired" ? upload::UploadError::kExpired : upload::UploadError::kFailed,
            r->error_message);
    }
  }

  void begin(const upload::UploadInfo& info) {
    upload_id_ = info.id;
    lease_ = info.lease;
    total_ = info.size;
    received_ = last_progress_bytes_ = info.received;
    last_progress_at_ = Clock::now();
    state_ = info.status == upload::Status::kComplete ? State::kIdle : State::kUploading;
    queue_text(ready_json(info));
    if (info.status == upload::Status::kComplete) queue_text(complete_json(info));
  }

  void on_appended(Result<upload::UploadInfo> r) {
    if (!r) return fail_upload(r.error(), "");
    received_ = r->received;
    const auto now = Clock::now();
    if (r->status == upload::Status::kComplete) {
      send_progress(now);
      queue_text(complete_json(*r));
      state_ = State::kIdle;
      return;
    }
    if (received_ - last_progress_bytes_ >= kProgressBytes || now - last_progress_at_ >= kTick) {
      checkpoint();
    }
  }

  // A progress message acknowledges bytes: it goes out only once they would survive a crash.
  void checkpoint() {
    busy_ = true;
    manager_.checkpoint(owner_, upload_id_,
                        post_back([](UploadSession& s, Result<upload::UploadInfo> r) {
                          s.on_checkpointed(std::move(r));
                        }));
  }

  void on_checkpointed(Result<upload::UploadInfo> r) {
    if (!r) return fail_upload(r.error(), "");
    if (state_ != State::kUploading) return;
    send_progress(Clock::now());
  }

  void fail_upload(const ErrorCode& ec, std::string detail) {
    const auto e = static_cast<upload::UploadError>(ec.value());
    std::string message;
    const auto& s = ctx_.settings;
    switch (e) {
      case upload::UploadError::kNotFound:
        message = "no such upload";
        break;
      case upload::UploadError::kTooLarge:
        message =
            state_ == State::kUploading
                ? "more bytes than the declared size; the upload was discarded"
                : "size is over --upload-max-bytes (" + std::to_string(s.upload_max_bytes) + ")";
        break;
      case upload::UploadError::kOffsetMismatch:
        message = "the upload moved on elsewhere; resume it to learn its offset";
        break;
      case upload::UploadError::kChecksumMismatch:
        message = "the file's SHA-256 differs from the declared one; the upload was discarded";
        break;
      case upload::UploadError::kStorage:
        message = "the server could not store the upload; it was discarded";
        break;
      case upload::UploadError::kTooManyUploads:
        message = "this user has --upload-max-per-user (" + std::to_string(s.upload_max_per_user) +
                  ") unfinished uploads";
        break;
      case upload::UploadError::kOrgQuota:
        message = "the org's unfinished uploads would pass --upload-max-org-bytes (" +
                  std::to_string(s.upload_max_org_bytes) + ")";
        break;
      case upload::UploadError::kAlreadyComplete:
        message = "the upload is already complete";
        break;
      case upload::UploadError::kFailed:
        message = "the upload failed earlier; start a new one";
        break;
      case upload::UploadError::kExpired:
        message = "the upload expired (--upload-expiry); start a new one";
        break;
      case upload::UploadError::kBadRequest:
        message = "the start message was refused (filename or contentType too long)";
        break;
      case upload::UploadError::kShuttingDown:
        message = "the server is shutting down";
        break;
    }
    if (!detail.empty()) message += ": " + detail;
    fail_with(core::reason(ec), message, close_code_for(e));
  }

  // ---- output ----

  std::string ready_json(const upload::UploadInfo& info) const {
    std::string out = "{\"type\":\"ready\",\"uploadId\":";
    protocol::append_json_string(out, info.id);
    out += ",\"offset\":";
    core::append_decimal(out, info.received);
    out += ",\"size\":";
    core::append_decimal(out, info.size);
    out += "}";
    return out;
  }

  std::string complete_json(const upload::UploadInfo& info) const {
    std::string out = "{\"type\":\"complete\",\"uploadId\":";
    protocol::append_json_string(out, info.id);
    out += ",\"size\":";
    core::append_decimal(out, info.size);
    out += ",\"sha256\":";
    protocol::append_json_string(out, info.sha256);
    out += "}";
    return out;
  }

  void send_progress(Clock::time_point now) {
    last_progress_bytes_ = received_;
    last_progress_at_ = now;
    std::string out = "{\"type\":\"progress\",\"uploadId\":";
    protocol::append_json_string(out, upload_id_);
    out += ",\"received\":";
    core::append_decimal(out, received_);
    out += ",\"total\":";
    core::append_decimal(out, total_);
    out += ",\"percent\":";
    append_percent(out, received_, total_, received_ == total_);
    out += "}";
    queue(frame_of(ws::Opcode::kText, out), true);
  }

  void queue_text(std::string_view json) { queue(frame_of(ws::Opcode::kText, json)); }

  // A progress frame not yet being written is replaced by a newer one, so a client that reads
  // slowly holds one, not one per MiB.
  void queue(std::string frame, bool progress = false) {
    if (state_ == State::kClosed || close_queued_) return;
    if (progress && last_is_progress_ && out_.size() > (writing_ ? 1u : 0u)) {
      queued_bytes_ -= out_.back().size();
      queued_bytes_ += frame.size();
      out_.back() = std::move(frame);
      return;
    }
    last_is_progress_ = progress;
    queued_bytes_ += frame.size();
    out_.push_back(std::move(frame));
    if (queued_bytes_ > ctx_.settings.outbox_bytes) {
      // Only pongs can pile up like this: a client pinging without reading.
      log::warn("upload", "slow consumer closed", {{"conn", id_}, {"org", owner_.org}});
      return finalize(cc::kSlowConsumer);
    }
    write_next();
  }

  void write_next() {
    if (writing_ || out_.empty() || state_ == State::kClosed) return;
    writing_ = true;
    asio::async_write(socket_, asio::buffer(out_.front()),
                      [self = shared_from_this()](const boost::system::error_code& ec,
                                                  std::size_t) { self->on_written(ec); });
  }

  void on_written(const boost::system::error_code& ec) {
    writing_ = false;
    if (state_ == State::kClosed) return;
    if (ec) return finalize(1006);
    queued_bytes_ -= out_.front().size();
    out_.pop_front();
    if (out_.empty()) last_is_progress_ = false;
    if (out_.empty() && close_queued_) {
      close_written_ = true;
      if (peer_closed_) return finalize(close_code_, true);
      return;  // wait for the client's close frame (or the deadline)
    }
    write_next();
  }

  // ---- closing ----

  void fail_with(std::string_view code, std::string_view message, std::uint16_t close_code) {
    if (state_ == State::kClosing || state_ == State::kClosed) return;
    queue_text(protocol::serialize_error(code, message));
    close(close_code, code);
  }

  void close(std::uint16_t code, std::string_view reason) {
    if (state_ == State::kClosing || state_ == State::kClosed) return;
    state_ = State::kClosing;
    close_code_ = code;
    close_deadline_ = Clock::now() + kCloseWait;
    queue(ws::close_frame(code, reason));
    close_queued_ = true;
  }

  // `linger`: our close frame is written and the socket is healthy, so the client gets time to
  // read it (see kLingerTime) instead of an RST.
  void finalize(std::uint16_t code, bool linger = false) {
    if (state_ == State::kClosed) return;
    const std::uint16_t reported = state_ == State::kClosing ? close_code_ : code;
    state_ = State::kClosed;
    timer_.cancel();
    boost::system::error_code ec;
    if (linger) {
      socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
      if (!ec) start_linger();
    }
    if (!linger || ec) {
      socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
      socket_.close(ec);
    }
    ctx_.hub->release(owner_.org, owner_.user);
    ctx_.upload_sessions.fetch_sub(1);
    ctx_.metrics->count_close(reported);
    log::info("upload", "upload connection closed",
              {{"conn", id_},
               {"org", owner_.org},
               {"user", owner_.user},
               {"upload_id", upload_id_},
               {"received", received_},
               {"code", reported}});
    out_.clear();
    std::string().swap(in_);
  }

  // ---- lingering close: read and discard, bounded, until the client's FIN ----

  void start_linger() {
    linger_bytes_ = 0;
    timer_.expires_after(kLingerTime);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->end_linger();
    });
    wait_linger();
  }

  void wait_linger() {
    socket_.async_wait(asio::ip::tcp::socket::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         self->on_linger_readable(ec);
                       });
  }

  void on_linger_readable(const boost::system::error_code& ec) {
    if (ec || !socket_.is_open()) return end_linger();
    // Discarded input needs no buffer of the session's own.
    thread_local std::array<char, 16 * 1024> sink;
    for (;;) {
      const ssize_t n = ::recv(socket_.native_handle(), sink.data(), sink.size(), 0);
      if (n > 0) {
        linger_bytes_ += static_cast<std::size_t>(n);
        if (linger_bytes_ >= kLingerBytes) return end_linger();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return wait_linger();
      return end_linger();  // the client's FIN (or a reset): done
    }
  }

  void end_linger() {
    if (!socket_.is_open()) return;
    boost::system::error_code ec;
    timer_.cancel();
    socket_.close(ec);
  }

  void schedule_tick() {
    timer_.expires_after(kTick);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->state_ == State::kClosed) return;
      self->on_tick();
      self->schedule_tick();
    });
  }

  void on_tick() {
    const auto now = Clock::now();
    const auto& s = ctx_.settings;
    if (state_ == State::kClosing) {
      if (now >= close_deadline_) finalize(close_code_, close_written_);
      return;
    }
    if (ctx_.shutting_down.load()) {
      return fail_with("shutting_down", "the server is shutting down; resume on reconnect",
                       cc::kGoingAway);
    }
    if (core::WallClock::now() >= principal_.expiry + std::chrono::seconds(s.jwt_leeway_seconds)) {
      return fail_with("token_expired", "the access token expired; reconnect and resume",
                       cc::kTokenExpired);
    }
    if (state_ == State::kAwaitingStart && !busy_ &&
        now - opened_at_ >= std::chrono::milliseconds(s.handshake_timeout_ms)) {
      return fail_with("handshake_timeout", "no start or resume message in time",
                       cc::kHandshakeTimeout);
    }
    // A disk write in progress is not the client's silence.
    if (busy_) return;
    if (state_ == State::kUploading && received_ > last_progress_bytes_ &&
        now - last_progress_at_ >= kTick) {
      return checkpoint();
    }
    if (ping_outstanding_) {
      if (now - ping_sent_at_ >= std::chrono::milliseconds(s.pong_timeout_ms) &&
          last_rx_ < ping_sent_at_) {
        close(cc::kPingTimeout, "ping timeout");
      }
    } else if (now - last_rx_ >= std::chrono::milliseconds(s.ping_interval_ms)) {
      ping_outstanding_ = true;
      ping_sent_at_ = now;
      queue(ws::control_frame(ws::Opcode::kPing, {}));
    }
  }

  // Wraps a handler so it runs on this session's worker, with the session kept alive.
  template <class T, class F>
  upload::Callback<T> post_back_impl(F f) {
    return [self = shared_from_this(), f](Result<T> r) mutable {
      auto exec = self->socket_.get_executor();
      asio::post(exec, [self = std::move(self), f, r = std::move(r)]() mutable {
        self->busy_ = false;
        if (self->state_ == State::kClosed) return;
        self->last_rx_ = Clock::now();
        // Closing: the answer no longer matters, but the client's close frame still does.
        if (self->state_ != State::kClosing) f(*self, std::move(r));
        self->process();
        self->do_read();
      });
    };
  }
  template <class F>
  upload::Callback<upload::UploadInfo> post_back(F f) {
    return post_back_impl<upload::UploadInfo>(std::move(f));
  }

  Context& ctx_;
  upload::Manager& manager_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  upload::Owner owner_;
  auth::Principal principal_;
  std::string id_;
  ws::Decoder decoder_;
  std::string in_;  // read but not yet decoded (or a partial frame)
  std::deque<std::string> out_;
  std::size_t queued_bytes_ = 0;
  State state_ = State::kAwaitingStart;
  bool reading_ = false;
  bool writing_ = false;
  bool busy_ = false;  // a manager call is in flight: no reading, no decoding
  bool last_is_progress_ = false;
  bool close_queued_ = false;
  bool close_written_ = false;
  bool peer_closed_ = false;
  bool ping_outstanding_ = false;
  std::uint16_t close_code_ = 0;
  std::size_t linger_bytes_ = 0;

  std::string upload_id_;
  std::uint64_t lease_ = 0;  // from create or claim; appends with it
  std::uint64_t total_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t last_progress_bytes_ = 0;
  Clock::time_point last_progress_at_;
  Clock::time_point opened_at_;
  Clock::time_point last_rx_;
  Clock::time_point ping_sent_at_;
  Clock::time_point close_deadline_;
};

}  // namespace

void start_upload_session(Worker& worker, asio::ip::tcp::socket socket, auth::Principal principal,
                          std::string upgrade_response, std::string leftover) {
  auto session = std::make_shared<UploadSession>(worker, std::move(socket), std::move(principal),
                                                 std::move(leftover));
  session->start(std::move(upgrade_response));
}

}  // namespace sg::server
