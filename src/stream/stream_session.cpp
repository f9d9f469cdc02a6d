#include "stream/stream_session.hpp"

#include "chat/chat.hpp"
#include "core/core.hpp"
#include "log/log.hpp"
#include "net/worker.hpp"
#include "node/context.hpp"
#include "node/quota.hpp"
#include "node/request_auth.hpp"

#include <algorithm>
#include <cstring>

namespace sg::stream {

namespace {
namespace cc = net::ws::close_code;
namespace sgc = protocol::close_code;

// Events a resume reads from history at a time. A page is what a replay holds beyond the
// outbox (shared with the memory broker's history, copies with Redis's), so it stays small.
constexpr std::size_t kReplayPageEvents = 64;
// A refresh costs a signature check (an RSA or ECDSA verify with a public key): one a second
// per connection is plenty for tokens that live minutes and keeps a client from spending the
// worker's CPU on them. In worker ticks (100 ms).
constexpr std::uint8_t kRefreshIntervalTicks = 10;
}  // namespace

StreamSession::StreamSession(net::Worker& worker, boost::asio::ip::tcp::socket socket,
                             const net::WsOptions& options, node::Context& ctx,
                             auth::Principal principal, std::string leftover)
    : WsConnection(worker, std::move(socket), std::move(leftover), options),
      ctx_(ctx),
      principal_(std::move(principal)) {
  const std::string hex = core::random_hex(id_.hex.size() / 2);
  std::copy_n(hex.begin(), id_.hex.size(), id_.hex.begin());
}

StreamSession::~StreamSession() = default;

void StreamSession::begin(std::string upgrade_response) {
  ctx_.metrics->connections_total.inc();
  log::info("stream", "connection opened",
            {{"conn", id_},
             {"org", principal_.org},
             {"user", principal_.user},
             {"worker", worker().index()}});
  shard().enroll(*this, principal_.org, principal_.user);
  start(std::move(upgrade_response));
}

std::shared_ptr<StreamSession> StreamSession::self() {
  return std::static_pointer_cast<StreamSession>(shared_from_this());
}

hub::Shard& StreamSession::shard() {
  return ctx_.hub->shard(worker().index());
}

boost::asio::io_context& StreamSession::io() {
  return worker().io();
}

// ---- messages ----

void StreamSession::on_message(net::ws::Opcode opcode, std::string_view payload) {
  if (opcode == net::ws::Opcode::kBinary) {
    reject("binary_not_supported", "this endpoint speaks JSON text messages only",
           cc::kUnsupportedData);
    return;
  }
  handle_text(payload);
}

void StreamSession::reject(std::string_view code, std::string_view message,
                           std::uint16_t close_code, std::string_view service) {
  if (closing()) return;
  send_text(protocol::serialize_error(code, message, service));
  close(close_code, code);
}

void StreamSession::handle_text(std::string_view text) {
  auto parsed = protocol::parse_client_message(text, !active_,
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
    send_text(protocol::serialize_pong(core::format_rfc3339(core::WallClock::now())));
  } else if (auto* refresh_message = std::get_if<protocol::Refresh>(&message)) {
    refresh(refresh_message->token);
  } else {
    if (!chat_) chat_ = std::make_unique<ChatConn>(static_cast<ChatHost&>(*this), ctx_);
    chat_->handle(message);
  }
}

void StreamSession::start_subscribe(std::vector<std::string> services,
                                    const protocol::ResumeMap& resume, bool is_handshake) {
  for (const auto& service : services) {
    if (!ctx_.service_allowed(service)) {
      reject("unknown_service", "no such service: " + service, cc::kPolicyViolation, service);
      return;
    }
    if (!token_allows(service)) {
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
  // With Redis the quota counts the channels the org's connections on other nodes hold too.
  const auto budget = ctx_.quotas->channel_budget(
      principal_.org, services, ctx_.quotas->limit(principal_.org, tenancy::Quota::kMaxChannels));
  if (budget.refused ||
      !ctx_.hub->channels_within_quota(principal_.org, budget.topics, budget.max)) {
    send_text(node::quota_exceeded_frame(ctx_, tenancy::Quota::kMaxChannels));
    return;  // nothing subscribed; the connection stays open for a smaller request
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

  if (is_handshake) active_ = true;
  auto request = std::make_unique<Request>();
  request->services = services;
  request->is_handshake = is_handshake;
  request->waiting = services.size();
  const std::size_t request_id = ++request_id_;
  request_ = std::move(request);
  pause_reading();  // later messages wait until this one is answered
  for (std::size_t i = 0; i < services.size(); ++i) {
    if (std::find(services_.begin(), services_.end(), services[i]) == services_.end()) {
      services_.push_back(services[i]);
    }
    if (positions[i]) request_->resume.push_back({services[i], true, {}});
    shard().attach(
        *this, principal_.user, broker::Channel{principal_.org, services[i]}, positions[i],
        [self = self(), request_id, service = services[i]](hub::AttachResult r) {
          self->on_attached(request_id, service, std::move(r));
        },
        kReplayPageEvents);
  }
  if (services.empty()) on_attached(request_id, {}, {});
}

bool StreamSession::token_allows(std::string_view service) const {
  // A user's own upload progress is theirs to see, whatever else the token restricts.
  if (ctx_.uploads && service == node::kUploadsService) return true;
  return !principal_.services || std::find(principal_.services->begin(), principal_.services->end(),
                                           service) != principal_.services->end();
}

void StreamSession::on_attached(std::size_t request_id, std::string service,
                                hub::AttachResult result) {
  if (!active() || !request_ || request_id != request_id_) return;
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
    send_text(protocol::serialize_ack(ack));
  } else {
    send_text(protocol::serialize_subscribed(request.services, request.resume, now));
  }
  auto done = std::move(request_);
  // Right behind the ack, before any event: a token already near its end hears it at once.
  if (done->is_handshake) notice_expiry(core::WallClock::now());
  for (auto& [svc, res] : done->results) {
    const auto& name = svc;
    // Subscribing again to a service still replaying attached nothing: its replay goes on.
    if (replay_.has(name)) continue;
    if (res.replay.empty() && !res.more) {
      if (!shard().go_live(*this, broker::Channel{principal_.org, svc})) mark_slow();
      continue;
    }
    replay_.add(svc, res.replay, res.more);
  }
  pump_replay();
  resume_reading();
}

struct StreamSession::ReplayOwner final : PacedReplay::Owner {
  explicit ReplayOwner(StreamSession& session) : session_(session) {}
  bool replay_open() const override { return session_.active() && !session_.lost(); }
  std::size_t replay_queued_bytes() const override { return session_.queued_bytes(); }
  std::size_t replay_frame_bytes(const broker::Event& event) const override {
    return net::OutFrame::kHeadBytes + event.body.size();
  }
  void replay_deliver(const broker::EventPtr& event) override { session_.deliver(event); }
  void replay_read_page(const std::string& service) override {
    session_.shard().next_page(session_, broker::Channel{session_.principal_.org, service},
                               [self = session_.self(), service](hub::ReplayPage page) {
                                 self->on_replay_page(service, std::move(page));
                               });
  }
  void replay_done(const std::string& service) override {
    if (!session_.shard().go_live(session_, broker::Channel{session_.principal_.org, service})) {
      session_.mark_slow();
    }
  }
  StreamSession& session_;
};

void StreamSession::pump_replay() {
  ReplayOwner owner(*this);
  replay_.pump(owner, ctx_.settings.outbox_bytes);
}

void StreamSession::on_replay_page(const std::string& service, hub::ReplayPage page) {
  if (!active()) return;
  switch (replay_.on_page(service, page)) {
    case PacedReplay::Page::kStale:
      return;
    case PacedReplay::Page::kFailed:
      log::warn(
          "stream", "replay interrupted",
          {{"conn", id_}, {"org", principal_.org}, {"service", service}, {"reason", page.failure}});
      // What was sent stays good: the client resumes from the last event it got.
      reject("replay_interrupted",
             "the replay of " + service + " could not go on; resume from the last event received",
             cc::kInternalError, service);
      return;
    case PacedReplay::Page::kQueued:
      pump_replay();
      return;
  }
}

void StreamSession::unsubscribe(const std::vector<std::string>& services) {
  for (const auto& service : services) {
    if (chat::is_room_topic(service)) continue;  // rooms are left with "leave"
    shard().detach(*this, broker::Channel{principal_.org, service});
    services_.erase(std::remove(services_.begin(), services_.end(), service), services_.end());
    replay_.drop(service);
  }
  send_text(protocol::serialize_unsubscribed(services));
}

void StreamSession::refresh(std::string_view token) {
  if (refresh_wait_ticks_ > 0) {
    send_text(protocol::serialize_error(
        "rate_limited", "at most one refresh per second; the connection keeps its current token"));
    return;
  }
  refresh_wait_ticks_ = kRefreshIntervalTicks;
  node::RefreshVerdict verdict = node::check_refresh(ctx_, principal_, token, id_);
  switch (verdict.kind) {
    case node::RefreshVerdict::Kind::kRejected:
      // The old token stays: it is still valid until its own exp, and a client whose token
      // source hiccupped should not lose a working socket for it. It is told, and closed at exp.
      send_text(protocol::serialize_error(
          verdict.reason, "the refresh token was rejected (" + verdict.reason +
                              "); the connection keeps its current token until it expires"));
      return;
    case node::RefreshVerdict::Kind::kMismatch:
      reject("refresh_mismatch", "the refresh token names another user or org", sgc::kTokenExpired);
      return;
    case node::RefreshVerdict::Kind::kAccepted:
      break;
  }
  principal_.expiry = verdict.principal.expiry;
  principal_.services = std::move(verdict.principal.services);
  principal_.rooms = std::move(verdict.principal.rooms);
  expiring_sent_ = false;
  send_text(protocol::serialize_refreshed(core::format_rfc3339(principal_.expiry)));

  std::vector<std::string> dropped;
  for (const auto& service : services_) {
    if (!token_allows(service)) dropped.push_back(service);
  }
  if (!dropped.empty()) {
    unsubscribe(dropped);
    for (const auto& service : dropped) {
      send_text(protocol::serialize_error(
          "forbidden_service", "the refreshed token does not allow service " + service, service));
    }
  }
  if (chat_) chat_->leave_forbidden_rooms();
  notice_expiry(core::WallClock::now());
}

void StreamSession::notice_expiry(std::chrono::system_clock::time_point now) {
  // Not before the ack: the client learns the protocol has begun from it.
  if (expiring_sent_ || !active_ || closing() || (request_ && request_->is_handshake)) return;
  if (!node::expiry_notice_due(ctx_, principal_, now)) return;
  expiring_sent_ = true;
  send_text(protocol::serialize_expiring(core::format_rfc3339(principal_.expiry)));
}

// ---- events ----

void StreamSession::deliver(const broker::EventPtr& event) {
  if (!active() || lost()) return;
  net::OutFrame frame;
  // Payload = per-recipient prefix + shared body; the WebSocket header precedes both, and its
  // length depends on the prefix's, so the prefix is written first, behind the longest header.
  char prefix[protocol::kMaxEventFramePrefix];
  const std::size_t prefix_len = protocol::write_event_frame_prefix(prefix, ++seq_);
  std::array<char, 10> header;
  const std::size_t n =
      net::ws::frame_header(net::ws::Opcode::kText, prefix_len + event->body.size(), header);
  std::memcpy(frame.head.data(), header.data(), n);
  std::memcpy(frame.head.data() + n, prefix, prefix_len);
  frame.head_len = static_cast<std::uint8_t>(n + prefix_len);
  frame.body = event->body;
  frame.keep = event;
  send_event(std::move(frame));
}

void StreamSession::hold_overflowed() {
  if (active()) mark_slow();
}

void StreamSession::on_written() {
  if (replay_.active()) pump_replay();  // a replay refills the outbox as it drains
}

// ---- closing ----

void StreamSession::on_slow_consumer(std::string_view cause) {
  ctx_.metrics->slow_consumer_closes.inc();
  log::warn("stream", "slow consumer closed",
            {{"conn", id_},
             {"org", principal_.org},
             {"user", principal_.user},
             {"cause", cause},
             {"queued_bytes", queued_bytes()},
             {"limit_bytes", options().outbox_bytes}});
}

void StreamSession::on_throttled(bool throttled) {
  if (throttled) {
    log::debug("stream", "reading paused: replies over the outbox limit",
               {{"conn", id_}, {"queued_bytes", queued_bytes()}});
  } else {
    log::debug("stream", "reading resumed", {{"conn", id_}});
  }
}

void StreamSession::on_protocol_error(std::string_view error) {
  log::info("stream", "protocol error", {{"conn", id_}, {"org", principal_.org}, {"error", error}});
}

void StreamSession::on_closing() {
  shard().leave(*this, principal_.org, principal_.user);
  shard().detach_all(*this);
  if (chat_) chat_->on_close();
  request_.reset();
}

void StreamSession::on_closed(std::uint16_t code) {
  ctx_.hub->release(principal_.org, principal_.user);
  ctx_.metrics->count_close(code);
  const auto duration =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - opened_at());
  log::info("stream", "connection closed",
            {{"conn", id_},
             {"org", principal_.org},
             {"user", principal_.user},
             {"code", code},
             {"duration_ms", duration.count()}});
}

// ---- the producer API ----

bool StreamSession::cut_off(const hub::Cutoff& cut) {
  if (closing()) return false;
  if (!cut.connection_id.empty() && cut.connection_id != std::string_view(id_)) return false;
  if (cut.issued_before && principal_.issued_at && *principal_.issued_at >= *cut.issued_before) {
    return false;
  }
  send_text(protocol::serialize_error(cut.error, cut.message));
  close(cut.code, cut.close_reason);
  log::info(
      "stream", "connection cut off",
      {{"conn", id_}, {"org", principal_.org}, {"user", principal_.user}, {"code", cut.code}});
  return true;
}

void StreamSession::describe(std::string& out) const {
  const auto since = core::WallClock::now() - std::chrono::duration_cast<core::WallClock::duration>(
                                                  Clock::now() - opened_at());
  out += "{\"connectionId\":";
  protocol::append_json_string(out, std::string_view(id_));
  out += ",\"node\":";
  protocol::append_json_string(out, ctx_.node_name);
  out += ",\"since\":";
  protocol::append_json_string(out, core::format_rfc3339(since));
  out += ",\"services\":[";
  for (std::size_t i = 0; i < services_.size(); ++i) {
    if (i > 0) out += ',';
    protocol::append_json_string(out, services_[i]);
  }
  out += "]}";
}

void StreamSession::on_tick(Clock::time_point now, std::chrono::system_clock::time_point wall) {
  const auto& s = ctx_.settings;
  if (!active_ && now - opened_at() >= std::chrono::milliseconds(s.handshake_timeout_ms)) {
    reject("handshake_timeout", "no handshake message in time", sgc::kHandshakeTimeout);
    return;
  }
  if (refresh_wait_ticks_ > 0) --refresh_wait_ticks_;
  if (wall >= principal_.expiry + std::chrono::seconds(s.jwt_leeway_seconds)) {
    reject("token_expired", "the access token expired; reconnect with a fresh one",
           sgc::kTokenExpired);
    return;
  }
  notice_expiry(wall);
}

// The org's egressBytes quota paces every byte its connections on this node write.
std::size_t StreamSession::egress_allowance(std::size_t wanted, Clock::time_point now) {
  return ctx_.quotas ? ctx_.quotas->egress_allowance(principal_.org, wanted, now) : wanted;
}

void StreamSession::egress_spent(std::size_t bytes, Clock::time_point now) {
  if (ctx_.quotas) ctx_.quotas->spend_egress(principal_.org, bytes, now);
}

// The worker's flush takes turns by org: one org's burst can't hold back another's writes.
std::uint64_t StreamSession::flush_group() const {
  return std::hash<std::string>{}(principal_.org);
}

}  // namespace sg::stream
