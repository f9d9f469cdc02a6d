#include "stream/sse_connection.hpp"

#include "core/core.hpp"
#include "log/log.hpp"
#include "net/worker.hpp"
#include "node/context.hpp"
#include "protocol/protocol.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstdio>

namespace sg::stream {

namespace {
namespace sgc = protocol::close_code;

// As StreamSession's: a page is what a replay holds beyond the outbox.
constexpr std::size_t kReplayPageEvents = 64;
// The end of a chunked body (RFC 9112 §7.1): a proxy or client tells a stream the server ended
// from one cut off.
constexpr std::string_view kStreamEnd = "0\r\n\r\n";
// A chunk's size line and CRLFs; per message, beside the cursor and the event.
constexpr std::size_t kChunkOverhead = 16 + 2 + 2;

// `"service":"<name>"` opens every event body (protocol::serialize_event_body), and names have
// no characters JSON escapes.
std::string_view service_of(std::string_view body) {
  constexpr std::string_view kKey = "\"service\":\"";
  if (!body.starts_with(kKey)) return {};
  body.remove_prefix(kKey.size());
  return body.substr(0, body.find('"'));
}

// The event type, unescaped, from its body. The first `,"event":"` is the key: the service and
// id before it hold no quotes. Publish refuses control characters in event types, so the JSON
// escapes left are \" and \\, and the value never breaks an SSE line.
std::string event_type_of(std::string_view body) {
  constexpr std::string_view kKey = ",\"event\":\"";
  const std::size_t at = body.find(kKey);
  std::string out;
  if (at == std::string_view::npos) return out;
  for (std::size_t i = at + kKey.size(); i < body.size() && body[i] != '"'; ++i) {
    if (body[i] == '\\' && i + 1 < body.size()) ++i;
    if (body[i] == '\r' || body[i] == '\n') break;
    out.push_back(body[i]);
  }
  return out;
}

std::string_view epoch_of(std::string_view id) {
  return id.substr(0, id.find('-'));
}

// `text` as one chunk of the chunked response body.
std::string chunk(std::string_view text) {
  char size[20];
  const int n = std::snprintf(size, sizeof(size), "%zx\r\n", text.size());
  std::string out;
  out.reserve(static_cast<std::size_t>(n) + text.size() + 2);
  out.append(size, static_cast<std::size_t>(n)).append(text).append("\r\n");
  return out;
}

}  // namespace

std::shared_ptr<const net::WsOptions> sse_options(const node::Context& ctx) {
  auto options = std::make_shared<net::WsOptions>(ctx.websocket);
  options->byte_stream = true;
  options->stream_end = std::string(kStreamEnd);
  return options;
}

SseConnection::SseConnection(net::Worker& worker, boost::asio::ip::tcp::socket socket,
                             std::shared_ptr<const net::WsOptions> options, node::Context& ctx,
                             auth::Principal principal, SseRequest request)
    : WsConnection(worker, std::move(socket), std::string(), *options),
      ctx_(ctx),
      options_(std::move(options)),
      principal_(std::move(principal)),
      services_(std::move(request.services)),
      asked_(std::move(request.resume)),
      positions_(services_.size()),
      attached_(services_.size()) {
  const std::string hex = core::random_hex(id_.size() / 2);
  std::copy_n(hex.begin(), id_.size(), id_.begin());
}

SseConnection::~SseConnection() = default;

std::shared_ptr<SseConnection> SseConnection::self() {
  return std::static_pointer_cast<SseConnection>(shared_from_this());
}

void SseConnection::begin(std::string_view origin) {
  ctx_.metrics->connections_total.inc();
  log::info("stream", "connection opened",
            {{"conn", id()},
             {"org", principal_.org},
             {"user", principal_.user},
             {"transport", "sse"},
             {"worker", worker().index()}});
  // X-Accel-Buffering: nginx (and proxies that copy it) pass each chunk on at once, even where
  // proxy_buffering is left on.
  std::string head =
      "HTTP/1.1 200 OK\r\nServer: streamgate\r\nContent-Type: text/event-stream\r\n"
      "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n";
  if (!origin.empty()) {
    // EventSource from another origin needs this; the Origin policy already let it in.
    head.append("Access-Control-Allow-Origin: ").append(origin).append("\r\nVary: Origin\r\n");
  }
  head.append("\r\n");
  // First, how long the client waits before it reconnects.
  head.append(chunk(
      std::string("retry: ").append(std::to_string(ctx_.settings.sse_retry_ms)).append("\n\n")));
  last_sent_ = Clock::now();
  start(std::move(head));
  shard().enroll(*this, principal_.org, principal_.user);
  waiting_ = services_.size();
  for (std::size_t i = 0; i < services_.size(); ++i) {
    if (asked_[i] && asked_[i]->offset > 0) {
      positions_[i] = asked_[i];
      join(i, asked_[i]);
    } else {
      read_head(i);
    }
  }
}

// ---- joining ----

// A service the cursor has no event of: where its channel is now, so the cursor can name a
// position before any event comes (a reconnect then misses nothing published meanwhile).
void SseConnection::read_head(std::size_t index) {
  ctx_.broker.history(broker::Channel{principal_.org, services_[index]}, std::nullopt,
                      [self = self(), index](Result<broker::History> head) {
                        auto& io = self->worker().io();
                        boost::asio::post(io, [self, index, head = std::move(head)] {
                          self->on_head(index, head);
                        });
                      });
}

void SseConnection::on_head(std::size_t index, const Result<broker::History>& head) {
  if (closing()) return;
  if (!head) {
    // The broker can't say: join live, with no position until an event gives one.
    join(index, std::nullopt);
    return;
  }
  // A cursor at 0 was made when the channel was empty: all it holds now is new to the client,
  // whatever its epoch (a memory channel gets its epoch with its first event).
  const bool from_start = asked_[index].has_value();
  if (head->last_offset == 0) {
    positions_[index] = broker::Position{head->epoch, 0};
    join(index, std::nullopt);
    return;
  }
  broker::Position from{head->epoch, from_start ? 0 : head->last_offset};
  positions_[index] = from;
  join(index, std::move(from));
}

void SseConnection::join(std::size_t index, std::optional<broker::Position> from) {
  shard().attach(
      *this, principal_.user, broker::Channel{principal_.org, services_[index]}, std::move(from),
      [self = self(), index](hub::AttachResult r) { self->on_attached(index, std::move(r)); },
      kReplayPageEvents);
}

hub::Shard& SseConnection::shard() {
  return ctx_.hub->shard(worker().index());
}

void SseConnection::on_attached(std::size_t index, hub::AttachResult result) {
  if (closing() || index >= attached_.size() || attached_[index]) return;
  attached_[index] = std::move(result);
  if (--waiting_ > 0) return;

  // The ack says, as the WebSocket's does, how each service the client resumed came back.
  protocol::Ack ack;
  ack.connection_id = id();
  ack.services = services_;
  ack.timestamp = core::format_rfc3339(core::WallClock::now());
  std::string failed;
  for (std::size_t i = 0; i < services_.size(); ++i) {
    const hub::AttachResult& r = *attached_[i];
    // A cursor entry at offset 0 counts too: history may have dropped some of what came since.
    if (!asked_[i]) continue;
    ack.resume.push_back({services_[i], r.recovered, r.reason});
    if (r.recovered) continue;
    failed.append(failed.empty() ? "" : ",");
    core::append_json_string(failed, services_[i]);
    failed.push_back(':');
    failed.append("{\"recovered\":false,\"reason\":");
    core::append_json_string(failed, r.reason);
    failed.push_back('}');
    // The hub moved on to the channel's newest event of an epoch the cursor does not know:
    // the service joins afresh on the next reconnect.
    if (r.reason == "epoch_changed" || r.reason == "unknown_id") positions_[i].reset();
  }
  send_message("ack", protocol::serialize_ack(ack), true);
  if (!failed.empty()) {
    std::string data = "{\"type\":\"resume_failed\",\"services\":{";
    data.append(failed).append("}}");
    send_message("resume_failed", data, true);
  }
  active_ = true;
  for (std::size_t i = 0; i < services_.size(); ++i) {
    hub::AttachResult& r = *attached_[i];
    if (r.replay.empty() && !r.more) {
      if (!shard().go_live(*this, broker::Channel{principal_.org, services_[i]})) mark_slow();
      continue;
    }
    replay_.add(services_[i], r.replay, r.more);
  }
  attached_.clear();
  attached_.shrink_to_fit();
  pump_replay();
}

struct SseConnection::ReplayOwner final : PacedReplay::Owner {
  explicit ReplayOwner(SseConnection& connection)
      : connection_(connection),
        per_event_(kChunkOverhead + 64 + max_cursor_bytes(connection.services_.size())) {}
  bool replay_open() const override {
    return connection_.active_ && !connection_.closing() && !connection_.lost();
  }
  std::size_t replay_queued_bytes() const override { return connection_.queued_bytes(); }
  std::size_t replay_frame_bytes(const broker::Event& event) const override {
    return per_event_ + event.body.size();
  }
  void replay_deliver(const broker::EventPtr& event) override { connection_.deliver(event); }
  void replay_read_page(const std::string& service) override {
    connection_.shard().next_page(connection_, broker::Channel{connection_.principal_.org, service},
                                  [self = connection_.self(), service](hub::ReplayPage page) {
                                    self->on_replay_page(service, std::move(page));
                                  });
  }
  void replay_done(const std::string& service) override {
    if (!connection_.shard().go_live(connection_,
                                     broker::Channel{connection_.principal_.org, service})) {
      connection_.mark_slow();
    }
  }
  SseConnection& connection_;
  const std::size_t per_event_;
};

void SseConnection::pump_replay() {
  ReplayOwner owner(*this);
  replay_.pump(owner, options_->outbox_bytes);
}

void SseConnection::on_replay_page(const std::string& service, hub::ReplayPage page) {
  if (!active_ || closing()) return;
  switch (replay_.on_page(service, page)) {
    case PacedReplay::Page::kStale:
      return;
    case PacedReplay::Page::kFailed:
      log::warn("stream", "replay interrupted",
                {{"conn", id()},
                 {"org", principal_.org},
                 {"service", service},
                 {"reason", page.failure}});
      // What was sent stays good: the client reconnects with the cursor of its last event.
      send_message("error",
                   protocol::serialize_error(
                       "replay_interrupted",
                       std::string("the replay of ")
                           .append(service)
                           .append(" could not go on; the stream resumes from the last event"),
                       service),
                   false);
      close(net::ws::close_code::kInternalError, "replay_interrupted");
      return;
    case PacedReplay::Page::kQueued:
      pump_replay();
      return;
  }
}

// ---- events ----

std::string SseConnection::message(std::string_view event, std::string_view prefix,
                                   std::string_view data, bool with_id) const {
  std::string text;
  if (with_id) {
    std::vector<CursorEntry> entries;
    for (std::size_t i = 0; i < services_.size(); ++i) {
      if (positions_[i]) entries.push_back({services_[i], *positions_[i]});
    }
    text.append("id: ").append(encode_cursor(entries)).push_back('\n');
  }
  if (!event.empty()) text.append("event: ").append(event).push_back('\n');
  if (!prefix.empty() || !data.empty()) {
    text.append("data: ").append(prefix);
    // Serialized JSON has line breaks only as whitespace, which a space replaces without
    // changing it; one would end the data line.
    const std::size_t from = text.size();
    text.append(data);
    std::replace_if(
        text.begin() + static_cast<std::ptrdiff_t>(from), text.end(),
        [](char c) { return c == '\n' || c == '\r'; }, ' ');
    text.push_back('\n');
  }
  text.push_back('\n');
  return chunk(text);
}

void SseConnection::send_message(std::string_view event, std::string_view data, bool with_id) {
  send_bytes(message(event, {}, data, with_id));
  sent_ = true;
}

void SseConnection::deliver(const broker::EventPtr& event) {
  if (!active_ || lost()) return;
  const std::string_view service = service_of(event->body);
  const auto it = std::find(services_.begin(), services_.end(), service);
  if (it == services_.end()) return;
  // A signal (offset 0) has no position: it goes out without an id, and the client keeps the
  // cursor it had.
  const bool positioned = event->offset > 0;
  if (positioned) {
    positions_[static_cast<std::size_t>(it - services_.begin())] =
        broker::Position{std::string(epoch_of(event->id)), event->offset};
  }
  char prefix[protocol::kMaxEventFramePrefix];
  const std::size_t prefix_len = protocol::write_event_frame_prefix(prefix, ++seq_);
  std::string text = message(event_type_of(event->body), std::string_view(prefix, prefix_len),
                             event->body, positioned);
  auto kept = std::make_shared<const std::string>(std::move(text));
  net::OutFrame frame;
  frame.body = *kept;
  frame.keep = std::move(kept);
  send_event(std::move(frame));
  sent_ = true;
}

void SseConnection::hold_overflowed() {
  if (active_) mark_slow();
}

void SseConnection::on_written() {
  if (replay_.active()) pump_replay();
}

// ---- deadlines and closing ----

void SseConnection::on_tick(Clock::time_point now, std::chrono::system_clock::time_point wall) {
  if (wall >= principal_.expiry + std::chrono::seconds(ctx_.settings.jwt_leeway_seconds)) {
    // EventSource reconnects with the same URL and gets 401 for the old token: the error tells
    // the page to come back with a fresh one.
    send_message("error",
                 protocol::serialize_error("token_expired",
                                           "the access token expired; reconnect with a fresh one"),
                 false);
    close(sgc::kTokenExpired, "token_expired");
    return;
  }
  if (sent_) {
    sent_ = false;
    last_sent_ = now;
  } else if (now - last_sent_ >= std::chrono::milliseconds(ctx_.settings.sse_heartbeat_ms)) {
    // A comment: EventSource ignores it. Only the newest one waits in a queue that is not
    // being read.
    send_latest_bytes(chunk(": ping\n\n"), net::Outbox::Latest::kPong);
    last_sent_ = now;
  }
}

void SseConnection::on_slow_consumer(std::string_view cause) {
  ctx_.metrics->slow_consumer_closes.inc();
  log::warn("stream", "slow consumer closed",
            {{"conn", id()},
             {"org", principal_.org},
             {"user", principal_.user},
             {"transport", "sse"},
             {"cause", cause},
             {"queued_bytes", queued_bytes()},
             {"limit_bytes", options_->outbox_bytes}});
}

void SseConnection::on_closing() {
  shard().leave(*this, principal_.org, principal_.user);
  shard().detach_all(*this);
  replay_.clear();
}

bool SseConnection::cut_off(const hub::Cutoff& cut) {
  if (closing()) return false;
  if (!cut.connection_id.empty() && cut.connection_id != id()) return false;
  if (cut.issued_before && principal_.issued_at && *principal_.issued_at >= *cut.issued_before) {
    return false;
  }
  send_message("error", protocol::serialize_error(cut.error, cut.message), false);
  close(cut.code, cut.close_reason);
  log::info("stream", "connection cut off",
            {{"conn", id()},
             {"org", principal_.org},
             {"user", principal_.user},
             {"transport", "sse"},
             {"code", cut.code}});
  return true;
}

void SseConnection::on_closed(std::uint16_t code) {
  ctx_.hub->release(principal_.org, principal_.user);
  ctx_.metrics->count_close(code);
  const auto duration =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - opened_at());
  log::info("stream", "connection closed",
            {{"conn", id()},
             {"org", principal_.org},
             {"user", principal_.user},
             {"transport", "sse"},
             {"code", code},
             {"duration_ms", duration.count()}});
}

// The org's egressBytes quota paces every byte its connections on this node write.
std::size_t SseConnection::egress_allowance(std::size_t wanted, Clock::time_point now) {
  return ctx_.quotas ? ctx_.quotas->egress_allowance(principal_.org, wanted, now) : wanted;
}

void SseConnection::egress_spent(std::size_t bytes, Clock::time_point now) {
  if (ctx_.quotas) ctx_.quotas->spend_egress(principal_.org, bytes, now);
}

// The worker's flush takes turns by org: one org's burst can't hold back another's writes.
std::uint64_t SseConnection::flush_group() const {
  return std::hash<std::string>{}(principal_.org);
}

}  // namespace sg::stream
