#include "broker/redis_sentinel.hpp"

#include "log/log.hpp"

#include <array>
#include <charconv>

namespace sg::broker::redis {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Moves to another Sentinel happen at most every few hundred ms; the cancelled operations of a
// stopped connection complete within one turn of the I/O loop.
constexpr std::size_t kMaxRetired = 8;

bool parse_port(std::string_view text, std::uint16_t& port) {
  std::uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

std::string address(const std::string& host, std::uint16_t port) {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  out.push_back(':');
  core::append_decimal(out, port);
  return out;
}

}  // namespace

SentinelResolver::SentinelResolver(boost::asio::io_context& io, ConnectionOptions base,
                                   std::string master_name,
                                   std::vector<std::pair<std::string, std::uint16_t>> sentinels,
                                   Handlers handlers)
    : io_(io),
      base_(std::move(base)),
      master_name_(std::move(master_name)),
      sentinels_(std::move(sentinels)),
      handlers_(std::move(handlers)),
      timer_(io) {}

SentinelResolver::~SentinelResolver() = default;

void SentinelResolver::start() {
  if (!stopped_ || sentinels_.empty()) return;
  stopped_ = false;
  verified_ = false;
  unverified_since_ = SteadyClock::now();
  connect();
  schedule(kSearchInterval);
}

void SentinelResolver::stop() {
  if (stopped_) return;
  stopped_ = true;
  ++gen_;
  timer_.cancel();
  if (ask_) ask_->stop();
  if (watch_) watch_->stop();
}

void SentinelResolver::connect() {
  since_ = SteadyClock::now();
  asking_ = false;
  const std::uint64_t gen = ++gen_;
  ConnectionOptions options = base_;
  options.url.host = sentinels_[current_].first;
  options.url.port = sentinels_[current_].second;
  options.url.db = 0;  // a Sentinel has no databases
  options.require_primary = false;
  options.auth_optional = true;
  options.pubsub = false;
  options.name = base_.name + "-ask";
  auto lost = [this, gen](const ErrorCode&) {
    if (gen == gen_) move_on("connection lost");
  };
  ask_ = std::make_unique<Connection>(io_, options,
                                      Connection::Handlers{[this, gen] {
                                                             if (gen == gen_) ask();
                                                           },
                                                           lost, nullptr});
  options.pubsub = true;
  options.name = base_.name + "-watch";
  watch_ = std::make_unique<Connection>(
      io_, options,
      Connection::Handlers{[this, gen] { on_watch_up(gen); }, lost,
                           [this, gen](std::string_view channel, std::string_view payload) {
                             if (gen == gen_ && channel == "+switch-master") on_switch(payload);
                           }});
  ask_->start();
  watch_->start();
}

void SentinelResolver::move_on(std::string_view why) {
  if (stopped_ || !leave_reason_.empty()) return;
  leave_reason_ = std::string(why);
  // Through the timer, so a Sentinel that answers badly at once is not hammered in a loop.
  schedule(kSearchInterval);
}

void SentinelResolver::next_sentinel() {
  if (stopped_) return;
  ++gen_;  // before the stops below, whose on_down must not move again
  const std::pair<std::string, std::uint16_t>& left = sentinels_[current_];
  current_ = (current_ + 1) % sentinels_.size();
  // One line per Sentinel while none answers well, not one per move.
  if (moves_ < sentinels_.size()) {
    log::warn("broker", "leaving a redis sentinel",
              {{"sentinel", address(left.first, left.second)},
               {"reason", leave_reason_},
               {"next", address(sentinels_[current_].first, sentinels_[current_].second)}});
  }
  ++moves_;
  leave_reason_.clear();
  retire(std::move(ask_));
  retire(std::move(watch_));
  connect();
}

void SentinelResolver::retire(std::unique_ptr<Connection> connection) {
  if (!connection) return;
  connection->stop();
  retired_.push_back(std::move(connection));
  if (retired_.size() > kMaxRetired) retired_.pop_front();
}

void SentinelResolver::ask() {
  if (stopped_ || asking_ || !ask_ || !ask_->up()) return;
  asking_ = true;
  ++asks_;
  const std::uint64_t gen = gen_;
  ask_->send(
      {"SENTINEL", "get-master-addr-by-name", master_name_},
      [this, gen](const ErrorCode& ec, const redisReply* reply) { on_answer(gen, ec, reply); });
}

void SentinelResolver::on_answer(std::uint64_t gen, const ErrorCode& ec, const redisReply* reply) {
  if (gen != gen_) return;
  asking_ = false;
  if (ec) return;  // the connection was lost; its on_down moves on
  // Asked before a +switch-master that arrived first (the two come on different
  // connections): the answer may name the old primary, which is still a master for a while.
  if (asks_ <= stale_asks_) return;
  std::uint16_t port = 0;
  if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
      reply->element[0]->type == REDIS_REPLY_STRING && reply->element[0]->len > 0 &&
      reply->element[1]->type == REDIS_REPLY_STRING &&
      parse_port(reply_text(*reply->element[1]), port)) {
    const std::string host(reply_text(*reply->element[0]));
    if (host != last_host_ || port != last_port_) {
      log::info("broker", "redis sentinel names the primary",
                {{"sentinel", address(sentinels_[current_].first, sentinels_[current_].second)},
                 {"master", master_name_},
                 {"redis", address(host, port)}});
      last_host_ = host;
      last_port_ = port;
    }
    moves_ = 0;
    if (handlers_.on_primary) handlers_.on_primary(host, port);
    return;
  }
  // A nil answer: this Sentinel doesn't watch a master of that name (yet); an error: it
  // refused the command. Either way another Sentinel may know better.
  move_on(is_error(reply) ? std::string_view(reply_text(*reply))
                          : std::string_view("does not know the master name"));
}

void SentinelResolver::on_watch_up(std::uint64_t gen) {
  if (gen != gen_) return;
  watch_->send({"SUBSCRIBE", "+switch-master"},
               [this, gen](const ErrorCode& ec, const redisReply* reply) {
                 if (gen != gen_ || ec || is_error(reply)) return;
                 // A switch before the subscription took effect went unheard: ask now.
                 ask();
               });
}

void SentinelResolver::on_switch(std::string_view payload) {
  // "<master name> <old ip> <old port> <new ip> <new port>"; the name is matched whole.
  std::array<std::string_view, 4> tail;  // new port, new ip, old port, old ip
  for (auto& part : tail) {
    const std::size_t space = payload.rfind(' ');
    if (space == std::string_view::npos) return;
    part = payload.substr(space + 1);
    payload = payload.substr(0, space);
  }
  std::uint16_t port = 0;
  if (payload != master_name_ || tail[1].empty() || !parse_port(tail[0], port)) return;
  const std::string host(tail[1]);
  stale_asks_ = asks_;
  log::info("broker", "redis sentinel announced a failover",
            {{"master", master_name_}, {"redis", address(host, port)}});
  last_host_ = host;
  last_port_ = port;
  if (handlers_.on_primary) handlers_.on_primary(host, port);
}

void SentinelResolver::set_verified(bool verified) {
  if (stopped_ || verified == verified_) return;
  verified_ = verified;
  if (!verified) {
    unverified_since_ = SteadyClock::now();
    ask();
  }
  schedule(verified ? kCheckInterval : kSearchInterval);
}

void SentinelResolver::schedule(std::chrono::milliseconds after) {
  timer_.expires_after(after);
  timer_.async_wait([this](const ErrorCode& ec) {
    if (ec || stopped_) return;
    const auto now = SteadyClock::now();
    // A Sentinel that never came up in a connect timeout is as good as gone.
    if (leave_reason_.empty() && (!ask_ || !ask_->up()) && now - since_ > base_.connect_timeout) {
      leave_reason_ = "unreachable";
    }
    // One whose answer doesn't verify for as long may be cut off from the others, which
    // have moved on: ask another (at most once per connect timeout).
    if (leave_reason_.empty() && !verified_ && now - unverified_since_ > base_.connect_timeout &&
        now - since_ > base_.connect_timeout) {
      leave_reason_ = "the primary it names does not verify";
      unverified_since_ = now;
    }
    if (!leave_reason_.empty()) {
      next_sentinel();
    } else {
      ask();
    }
    schedule(verified_ ? kCheckInterval : kSearchInterval);
  });
}

}  // namespace sg::broker::redis
