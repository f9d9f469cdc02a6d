#include "uploads/upload_session.hpp"

#include "core/core.hpp"
#include "log/log.hpp"
#include "net/worker.hpp"
#include "net/ws_connection.hpp"
#include "node/context.hpp"
#include "node/quota.hpp"
#include "node/request_auth.hpp"
#include "protocol/protocol.hpp"
#include "upload/upload.hpp"
#include "uploads/upload_events.hpp"
#include "uploads/upload_message.hpp"
#include "uploads/upload_quota.hpp"

#include <boost/asio/post.hpp>

namespace sg::uploads {

namespace {

namespace asio = boost::asio;
namespace cc = net::ws::close_code;
namespace sgc = protocol::close_code;
using Clock = std::chrono::steady_clock;

// Progress cadence on the socket: at least every this many bytes or kProgressEvery, whichever
// first.
constexpr auto kProgressEvery = std::chrono::milliseconds(250);
constexpr std::uint64_t kProgressBytes = 1 << 20;
// One refresh a second, as on the stream socket (stream_session.cpp says why). In ticks.
constexpr std::uint8_t kRefreshIntervalTicks = 10;

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

// One browser's upload socket: the upload protocol on a net::WsConnection. A JSON "start" or
// "resume" message names the upload, binary messages carry its bytes, which go to the manager
// one message at a time: reading pauses while a call is in flight, which is backpressure to
// the client through TCP.
class UploadSession final : public net::WsConnection, public hub::Member {
 public:
  UploadSession(net::Worker& worker, asio::ip::tcp::socket socket, Context& ctx,
                auth::Principal principal, std::string leftover)
      : WsConnection(worker, std::move(socket), std::move(leftover), ctx.websocket),
        ctx_(ctx),
        manager_(*ctx.uploads),
        owner_{principal.org, principal.user},
        principal_(std::move(principal)),
        id_(core::random_hex(8)) {}

  void begin(std::string upgrade_response) {
    ctx_.metrics->connections_total.inc();
    log::info("upload", "upload connection opened",
              {{"conn", id_}, {"org", owner_.org}, {"user", owner_.user}});
    start(std::move(upgrade_response));
    // Enrolled so that a producer's disconnect or revoke reaches this socket too.
    ctx_.hub->shard(worker().index()).enroll(*this, owner_.org, owner_.user);
  }

  // hub::Member: uploads join no channel; a producer's disconnect or revoke may close them.
  void deliver(const broker::EventPtr&) override {}
  bool cut_off(const hub::Cutoff& cut) override {
    if (closing()) return false;
    if (!cut.connection_id.empty() && cut.connection_id != id_) return false;
    if (cut.issued_before && principal_.issued_at && *principal_.issued_at >= *cut.issued_before) {
      return false;
    }
    send_text(protocol::serialize_error(cut.error, cut.message));
    close(cut.code, cut.close_reason);
    log::info("upload", "upload connection cut off",
              {{"conn", id_}, {"org", owner_.org}, {"user", owner_.user}, {"code", cut.code}});
    return true;
  }

  // An upload socket is not closed by the drain period (its upload resumes anywhere, but it
  // may be near its end): only the final shutdown closes it, saying why.
  bool leaves_on_drain() const override { return false; }
  void shut_down(std::uint16_t code) override {
    fail_with("shutting_down", "the server is shutting down; resume on reconnect", code);
  }

 private:
  enum class Phase { kAwaitingStart, kUploading, kIdle };

  void on_message(net::ws::Opcode opcode, std::string_view payload) override {
    if (opcode == net::ws::Opcode::kBinary) {
      on_bytes(std::string(payload));
    } else {
      on_text(payload);
    }
  }

  void on_protocol_error(std::string_view error) override {
    log::info("upload", "protocol error", {{"conn", id_}, {"org", owner_.org}, {"error", error}});
  }

  void on_slow_consumer(std::string_view cause) override {
    ctx_.metrics->slow_consumer_closes.inc();
    log::warn("upload", "slow consumer closed",
              {{"conn", id_}, {"org", owner_.org}, {"cause", cause}});
  }

  void on_closing() override {
    ctx_.hub->shard(worker().index()).leave(*this, owner_.org, owner_.user);
  }

  void on_closed(std::uint16_t code) override {
    ctx_.hub->release(owner_.org, owner_.user);
    ctx_.metrics->count_close(code);
    log::info("upload", "upload connection closed",
              {{"conn", id_},
               {"org", owner_.org},
               {"user", owner_.user},
               {"upload_id", upload_id_},
               {"received", received_},
               {"code", code}});
  }

  void on_tick(Clock::time_point now, std::chrono::system_clock::time_point wall) override {
    const auto& s = ctx_.settings;
    if (refresh_wait_ticks_ > 0) --refresh_wait_ticks_;
    if (wall >= principal_.expiry + std::chrono::seconds(s.jwt_leeway_seconds)) {
      return fail_with("token_expired", "the access token expired; reconnect and resume",
                       sgc::kTokenExpired);
    }
    notice_expiry(wall);
    if (phase_ == Phase::kAwaitingStart && !busy_ &&
        now - opened_at() >= std::chrono::milliseconds(s.handshake_timeout_ms)) {
      return fail_with("handshake_timeout", "no start or resume message in time",
                       sgc::kHandshakeTimeout);
    }
    if (busy_) return;
    if (phase_ == Phase::kUploading && received_ > last_progress_bytes_ &&
        now - last_progress_at_ >= kProgressEvery) {
      checkpoint();
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
        return send_text(protocol::serialize_pong(core::format_rfc3339(core::WallClock::now())));
      case UploadMessage::Kind::kRefresh:
        return refresh(m.token);
      case UploadMessage::Kind::kStart:
      case UploadMessage::Kind::kResume:
        break;
    }
    if (phase_ == Phase::kUploading) {
      return fail_with("upload_in_progress",
                       "this connection is already uploading; open another for a second upload",
                       cc::kPolicyViolation);
    }
    wait_for_manager();
    if (m.kind == UploadMessage::Kind::kResume) {
      // Claimed, not just found: bytes of a dropped connection still in flight can't append
      // behind this one's back and invalidate the offset it is about to be given.
      manager_.claim(owner_, std::move(m.upload_id),
                     post_back([](UploadSession& s, Result<upload::UploadInfo> r) {
                       s.on_resumed(std::move(r));
                     }));
      return;
    }
    // The quota may ask the broker: its answer comes back on this worker, reading still paused.
    const std::uint64_t size = m.start.size;
    auto self = std::static_pointer_cast<UploadSession>(shared_from_this());
    reserve_upload_bytes(ctx_, owner_.org, size,
                         [self, start = std::move(m.start)](tenancy::Decision quota,
                                                            UploadReservation reservation) mutable {
                           auto& io = self->worker().io();
                           asio::post(io, [self = std::move(self), start = std::move(start), quota,
                                           reservation]() mutable {
                             self->on_reserved(quota, reservation, std::move(start));
                           });
                         });
  }

  // The quota's answer to a start, on this session's worker (as post_back's handlers).
  void on_reserved(tenancy::Decision quota, UploadReservation reservation,
                   upload::CreateRequest start) {
    const std::uint64_t size = start.size;
    busy_ = false;
    if (closed() || closing()) {
      if (quota.allowed) return_upload_bytes(ctx_, owner_.org, size, reservation);
      // Closing: the client's close frame still has to be read.
      if (!closed()) resume_reading();
      return;
    }
    if (!quota.allowed) {
      send_text(node::quota_exceeded_frame(ctx_, tenancy::Quota::kUploadBytesPerDay));
      close(cc::kPolicyViolation, "quota_exceeded");
      return resume_reading();
    }
    wait_for_manager();
    manager_.create(owner_, std::move(start),
                    post_back([size, reservation](UploadSession& s, Result<upload::UploadInfo> r) {
                      if (!r) return_upload_bytes(s.ctx_, s.owner_.org, size, reservation);
                      s.on_created(std::move(r));
                    }));
  }

  // The stream socket's refresh (docs/protocol.md#token-refresh), in any phase: the claims
  // that matter here are the user and org, which must not change, and the expiry.
  void refresh(std::string_view token) {
    if (refresh_wait_ticks_ > 0) {
      return send_text(protocol::serialize_error(
          "rate_limited",
          "at most one refresh per second; the connection keeps its current token"));
    }
    refresh_wait_ticks_ = kRefreshIntervalTicks;
    node::RefreshVerdict verdict = node::check_refresh(ctx_, principal_, token, id_);
    switch (verdict.kind) {
      case node::RefreshVerdict::Kind::kRejected:
        return send_text(protocol::serialize_error(
            verdict.reason, "the refresh token was rejected (" + verdict.reason +
                                "); the connection keeps its current token until it expires"));
      case node::RefreshVerdict::Kind::kMismatch:
        return fail_with("refresh_mismatch", "the refresh token names another user or org",
                         sgc::kTokenExpired);
      case node::RefreshVerdict::Kind::kAccepted:
        break;
    }
    principal_ = std::move(verdict.principal);
    expiring_sent_ = false;
    send_text(protocol::serialize_refreshed(core::format_rfc3339(principal_.expiry)));
    notice_expiry(core::WallClock::now());
  }

  // `expiring` once per token when its notice is due, after the upload is named (the socket's
  // `ready` is its ack).
  void notice_expiry(std::chrono::system_clock::time_point now) {
    if (expiring_sent_ || phase_ == Phase::kAwaitingStart || closing()) return;
    if (!node::expiry_notice_due(ctx_, principal_, now)) return;
    expiring_sent_ = true;
    send_text(protocol::serialize_expiring(core::format_rfc3339(principal_.expiry)));
  }

  void on_bytes(std::string bytes) {
    if (phase_ == Phase::kAwaitingStart) {
      return fail_with("not_started", "send a start or resume message before the bytes",
                       cc::kPolicyViolation);
    }
    wait_for_manager();
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
        phase_ = Phase::kIdle;
        send_text(reply_json("ready", *r));
        send_text(reply_json("complete", *r));
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
    phase_ = info.status == upload::Status::kComplete ? Phase::kIdle : Phase::kUploading;
    send_text(reply_json("ready", info));
    if (info.status == upload::Status::kComplete) send_text(reply_json("complete", info));
    notice_expiry(core::WallClock::now());
  }

  void on_appended(Result<upload::UploadInfo> r) {
    if (!r) return fail_upload(r.error(), "");
    received_ = r->received;
    const auto now = Clock::now();
    if (r->status == upload::Status::kComplete) {
      send_progress(now);
      send_text(reply_json("complete", *r));
      phase_ = Phase::kIdle;
      return;
    }
    if (received_ - last_progress_bytes_ >= kProgressBytes ||
        now - last_progress_at_ >= kProgressEvery) {
      checkpoint();
    }
  }

  // A progress message acknowledges bytes: it goes out only once they would survive a crash.
  void checkpoint() {
    wait_for_manager();
    manager_.checkpoint(owner_, upload_id_,
                        post_back([](UploadSession& s, Result<upload::UploadInfo> r) {
                          s.on_checkpointed(std::move(r));
                        }));
  }

  void on_checkpointed(Result<upload::UploadInfo> r) {
    if (!r) return fail_upload(r.error(), "");
    if (phase_ != Phase::kUploading) return;
    send_progress(Clock::now());
  }

  void fail_upload(const ErrorCode& ec, std::string detail) {
    const auto e = static_cast<upload::UploadError>(ec.value());
    const auto& s = ctx_.settings;
    std::string message = upload::describe(e,
                                           {.max_bytes = s.upload_max_bytes,
                                            .max_per_user = s.upload_max_per_user,
                                            .max_org_bytes = s.upload_max_org_bytes},
                                           phase_ == Phase::kUploading);
    if (!detail.empty()) message += ": " + detail;
    fail_with(core::reason(ec), message, close_code_for(e));
  }

  // ---- output ----

  // "ready" (where to go on from) and "complete" (the stored file's digest).
  static std::string reply_json(std::string_view type, const upload::UploadInfo& info) {
    std::string out = "{\"type\":\"";
    out += type;
    out += "\",\"uploadId\":";
    protocol::append_json_string(out, info.id);
    if (type == "ready") {
      out += ",\"offset\":";
      core::append_decimal(out, info.received);
    }
    out += ",\"size\":";
    core::append_decimal(out, info.size);
    if (type == "complete") {
      out += ",\"sha256\":";
      protocol::append_json_string(out, info.sha256);
    }
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
    send_latest_text(std::move(out), net::Outbox::Latest::kStatus);
  }

  void fail_with(std::string_view code, std::string_view message, std::uint16_t close_code) {
    if (closing()) return;
    send_text(protocol::serialize_error(code, message));
    close(close_code, code);
  }

  // No reading until the manager answers.
  void wait_for_manager() {
    busy_ = true;
    pause_reading();
  }

  // Wraps a handler so it runs on this session's worker, with the session kept alive.
  template <class F>
  upload::Callback<upload::UploadInfo> post_back(F f) {
    auto self = std::static_pointer_cast<UploadSession>(shared_from_this());
    return [self = std::move(self), f](Result<upload::UploadInfo> r) mutable {
      auto& io = self->worker().io();
      asio::post(io, [self = std::move(self), f, r = std::move(r)]() mutable {
        self->busy_ = false;
        if (self->closed()) return;
        // Closing: the answer no longer matters, but the client's close frame still does.
        if (!self->closing()) f(*self, std::move(r));
        if (!self->busy_) self->resume_reading();
      });
    };
  }

  Context& ctx_;
  upload::Manager& manager_;
  upload::Owner owner_;
  auth::Principal principal_;
  std::string id_;
  Phase phase_ = Phase::kAwaitingStart;
  bool busy_ = false;                    // a manager call is in flight: no reading, no decoding
  bool expiring_sent_ = false;           // the current token's `expiring` went out
  std::uint8_t refresh_wait_ticks_ = 0;  // ticks before the next refresh is served

  std::string upload_id_;
  std::uint64_t lease_ = 0;  // from create or claim; appends with it
  std::uint64_t total_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t last_progress_bytes_ = 0;
  Clock::time_point last_progress_at_;
};

}  // namespace

void start_upload_session(net::Worker& worker, asio::ip::tcp::socket socket, Context& ctx,
                          auth::Principal principal, std::string upgrade_response,
                          std::string leftover) {
  auto session = std::make_shared<UploadSession>(worker, std::move(socket), ctx,
                                                 std::move(principal), std::move(leftover));
  session->begin(std::move(upgrade_response));
}

}  // namespace sg::uploads
