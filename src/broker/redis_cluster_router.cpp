#include "broker/redis_cluster_router.hpp"

#include "log/log.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <array>

namespace sg::broker::redis {
namespace {

namespace asio = boost::asio;

// A command is redirected at most this often: MOVED then ASK is what a migration in progress
// can give; more means the map is churning and the caller had better hear kUnavailable.
constexpr int kMaxRedirects = 3;
constexpr auto kRefreshInterval = std::chrono::seconds(5);
// While a slot has no reachable primary (a failover under way), the map is asked this often.
constexpr auto kRefreshWhileDown = std::chrono::milliseconds(250);
// After a MOVED or a lost connection: soon, but once for a burst of them.
constexpr auto kRefreshSoon = std::chrono::milliseconds(20);
// -TRYAGAIN: a script's keys are half-way through a migration (some moved, some not, or a key
// the script creates). Redis asks the client to come back; this often, for about 3 s at most.
constexpr int kMaxTryAgain = 150;
constexpr auto kTryAgainDelay = std::chrono::milliseconds(20);
// Retired nodes kept (stopped) before they are destroyed; by then any cancelled operation of
// theirs has long completed.
constexpr std::size_t kMaxRetired = 16;

void fail_later(asio::io_context& io, ReplyHandler handler) {
  asio::post(io, [handler = std::move(handler)] {
    handler(make_error_code(BrokerError::kUnavailable), nullptr);
  });
}

}  // namespace

ClusterRouter::ClusterRouter(asio::io_context& io, ConnectionOptions base,
                             std::vector<NodeAddress> seeds, Handlers handlers)
    : io_(io),
      base_(std::move(base)),
      seeds_(std::move(seeds)),
      handlers_(std::move(handlers)),
      refresh_timer_(io),
      slots_(kSlotCount, kNoOwner) {}

ClusterRouter::~ClusterRouter() = default;

void ClusterRouter::start() {
  for (const auto& seed : seeds_) ensure_node(seed, false);
  schedule_refresh(kRefreshWhileDown);
}

void ClusterRouter::stop() {
  if (stopped_) return;
  stopped_ = true;
  refresh_timer_.cancel();
  // Stopped, not destroyed: their cancelled operations still complete through them.
  for (auto& [address, node] : nodes_) {
    node->cmd->stop();
    if (node->sub) node->sub->stop();
  }
}

bool ClusterRouter::up() const {
  if (owners_.empty()) return false;
  for (const auto owner : slots_) {
    if (owner == kNoOwner) return false;
  }
  for (const auto& address : owners_) {
    auto it = nodes_.find(address);
    if (it == nodes_.end() || !it->second->cmd->up()) return false;
  }
  return true;
}

bool ClusterRouter::pubsub_up() const {
  if (!up()) return false;
  for (const auto& address : owners_) {
    const auto& node = nodes_.at(address);
    if (!node->sub || !node->sub->up()) return false;
  }
  return true;
}

ClusterRouter::Node& ClusterRouter::ensure_node(const NodeAddress& address, bool primary) {
  const std::string key = address.text();
  auto& slot = nodes_[key];
  if (!slot) {
    slot = std::make_unique<Node>();
    slot->address = address;
    ConnectionOptions o = base_;
    o.url.host = address.host;
    o.url.port = address.port;
    o.pubsub = false;
    slot->cmd = std::make_unique<Connection>(io_, o,
                                             Connection::Handlers{[this] { on_node_change(); },
                                                                  [this](const ErrorCode&) {
                                                                    on_node_change();
                                                                    schedule_refresh(kRefreshSoon);
                                                                  },
                                                                  nullptr});
    slot->cmd->start();
  }
  if (primary && !slot->sub) {
    ConnectionOptions o = base_;
    o.url.host = address.host;
    o.url.port = address.port;
    o.pubsub = true;
    o.name += "-sub";
    slot->sub = std::make_unique<Connection>(
        io_, o,
        Connection::Handlers{[this, key] { on_sub_up(key); },
                             [this, key](const ErrorCode&) { on_sub_down(key); },
                             [this](std::string_view channel, std::string_view payload) {
                               if (handlers_.on_message) handlers_.on_message(channel, payload);
                             }});
    slot->sub->set_on_sunsubscribe(
        [this, key](std::string_view channel) { on_sunsubscribe(key, channel); });
    slot->sub->start();
  }
  return *slot;
}

ClusterRouter::Node* ClusterRouter::owner(std::uint16_t slot) {
  const std::uint16_t index = slots_[slot];
  if (index == kNoOwner) return nullptr;
  auto it = nodes_.find(owners_[index]);
  return it == nodes_.end() ? nullptr : it->second.get();
}

void ClusterRouter::send(std::span<const std::string_view> args, ReplyHandler handler) {
  if (stopped_) {
    asio::post(io_, [handler = std::move(handler)] {
      handler(make_error_code(BrokerError::kShuttingDown), nullptr);
    });
    return;
  }
  Node* node = nullptr;
  if (const auto key = routing_key(args)) {
    node = owner(key_slot(*key));
  } else {
    for (const auto& address : owners_) {
      auto it = nodes_.find(address);
      if (it != nodes_.end() && it->second->cmd->up()) {
        node = it->second.get();
        break;
      }
    }
  }
  if (node == nullptr) {
    schedule_refresh(kRefreshSoon);
    fail_later(io_, std::move(handler));
    return;
  }
  // Owned, since a redirect sends the command again after the caller's views are gone.
  auto owned = std::make_shared<std::vector<std::string>>(args.begin(), args.end());
  route(std::move(owned), *node, false, 0, std::move(handler));
}

void ClusterRouter::send_beside(std::string_view key, std::span<const std::string_view> args,
                                ReplyHandler handler) {
  Node* node = stopped_ ? nullptr : owner(key_slot(key));
  if (node == nullptr) {
    fail_later(io_, std::move(handler));
    return;
  }
  node->cmd->send(args, std::move(handler));
}

void ClusterRouter::try_again(Args args, int tries, ReplyHandler handler) {
  auto timer = std::make_shared<asio::steady_timer>(io_, kTryAgainDelay);
  timer->async_wait([this, timer, args = std::move(args), tries,
                     handler = std::move(handler)](const ErrorCode& ec) mutable {
    if (ec || stopped_) {
      handler(make_error_code(BrokerError::kShuttingDown), nullptr);
      return;
    }
    std::vector<std::string_view> views(args->begin(), args->end());
    const auto key = routing_key(views);
    Node* node = key ? owner(key_slot(*key)) : nullptr;
    if (node == nullptr) {
      handler(make_error_code(BrokerError::kUnavailable), nullptr);
      return;
    }
    route(std::move(args), *node, false, 0, std::move(handler), tries);
  });
}

void ClusterRouter::route(Args args, Node& node, bool asking, int redirects, ReplyHandler handler,
                          int tries) {
  std::vector<std::string_view> views(args->begin(), args->end());
  if (asking) node.cmd->send({"ASKING"}, [](const ErrorCode&, const redisReply*) {});
  node.cmd->send(std::span<const std::string_view>(views),
                 [this, args, redirects, tries, from = node.address, handler = std::move(handler)](
                     const ErrorCode& ec, const redisReply* reply) mutable {
                   if (ec) {
                     // A connection retired by a new map fails its commands as shutting down; to
                     // the caller that is Redis being unavailable, unless the broker itself is
                     // stopping.
                     handler(stopped_ ? ec : make_error_code(BrokerError::kUnavailable), nullptr);
                     return;
                   }
                   if (is_error(reply) && redirects < kMaxRedirects && !stopped_) {
                     if (auto redirect = parse_redirect(reply_text(*reply), from)) {
                       if (!redirect->ask) {
                         // The slot lives elsewhere now: note it at once, and learn the rest of the
                         // map.
                         const std::string to = redirect->to.text();
                         auto it = std::find(owners_.begin(), owners_.end(), to);
                         if (it == owners_.end()) it = owners_.insert(owners_.end(), to);
                         slots_[redirect->slot] = static_cast<std::uint16_t>(it - owners_.begin());
                         schedule_refresh(kRefreshSoon);
                       }
                       Node& next = ensure_node(redirect->to, !redirect->ask);
                       route(std::move(args), next, redirect->ask, redirects + 1,
                             std::move(handler), tries);
                       return;
                     }
                   }
                   if (is_error(reply) && tries < kMaxTryAgain && !stopped_ &&
                       reply_text(*reply).starts_with("TRYAGAIN")) {
                     try_again(std::move(args), tries + 1, std::move(handler));
                     return;
                   }
                   handler(ec, reply);
                 });
}

void ClusterRouter::schedule_refresh(std::chrono::milliseconds after) {
  if (stopped_ || refreshing_) return;
  const auto at = std::chrono::steady_clock::now() + after;
  // Only ever brought forward: a later request doesn't postpone an earlier one.
  if (refresh_timer_.expiry() > std::chrono::steady_clock::now() && refresh_timer_.expiry() <= at) {
    return;
  }
  refresh_timer_.expires_at(at);
  refresh_timer_.async_wait([this](const ErrorCode& ec) {
    if (ec || stopped_) return;
    refresh();
  });
}

void ClusterRouter::refresh() {
  // Ask the nodes in turn, primaries first: a node that just lost its slots still answers,
  // and a dead one is skipped.
  std::vector<Node*> candidates;
  for (const auto& address : owners_) {
    auto it = nodes_.find(address);
    if (it != nodes_.end() && it->second->cmd->up()) candidates.push_back(it->second.get());
  }
  for (auto& [address, node] : nodes_) {
    if (node->cmd->up() &&
        std::find(candidates.begin(), candidates.end(), node.get()) == candidates.end()) {
      candidates.push_back(node.get());
    }
  }
  if (candidates.empty()) {
    // Nothing reachable: the seeds again (a whole new set of primaries may have replaced
    // the ones known), and another try soon.
    for (const auto& seed : seeds_) ensure_node(seed, false);
    schedule_refresh(kRefreshWhileDown);
    return;
  }
  Node& node = *candidates[next_asked_++ % candidates.size()];
  refreshing_ = true;
  node.cmd->send({"CLUSTER", "SHARDS"},
                 [this, from = node.address](const ErrorCode& ec, const redisReply* reply) {
                   if (ec) {
                     refreshing_ = false;
                     schedule_refresh(kRefreshWhileDown);
                     return;
                   }
                   on_map(from, reply, true);
                 });
}

void ClusterRouter::on_map(const NodeAddress& from, const redisReply* reply, bool shards) {
  if (stopped_) return;
  if (shards && is_error(reply)) {
    // Before Redis 7: CLUSTER SLOTS.
    auto it = nodes_.find(from.text());
    if (it != nodes_.end() && it->second->cmd->up()) {
      it->second->cmd->send({"CLUSTER", "SLOTS"},
                            [this, from](const ErrorCode& ec, const redisReply* slots_reply) {
                              if (ec) {
                                refreshing_ = false;
                                schedule_refresh(kRefreshWhileDown);
                                return;
                              }
                              on_map(from, slots_reply, false);
                            });
      return;
    }
  }
  refreshing_ = false;
  Result<std::vector<SlotRange>> ranges =
      is_error(reply) ? Result<std::vector<SlotRange>>(make_error_code(BrokerError::kUnavailable))
      : shards        ? parse_cluster_shards(*reply, base_.url.tls, from)
                      : parse_cluster_slots(*reply, from);
  if (!ranges) {
    log::warn("broker", "redis cluster slot map unreadable",
              {{"redis", from.text()},
               {"reply", is_error(reply) ? reply_text(*reply) : std::string_view()}});
  } else {
    apply(*ranges);
  }
  schedule_refresh(up() && pubsub_up() ? std::chrono::milliseconds(kRefreshInterval)
                                       : std::chrono::milliseconds(kRefreshWhileDown));
}

void ClusterRouter::apply(const std::vector<SlotRange>& ranges) {
  std::vector<std::uint16_t> slots(kSlotCount, kNoOwner);
  std::vector<std::string> owners;
  for (const auto& range : ranges) {
    const std::string address = range.primary.text();
    auto it = std::find(owners.begin(), owners.end(), address);
    if (it == owners.end()) {
      it = owners.insert(owners.end(), address);
      ensure_node(range.primary, true);
    }
    const auto index = static_cast<std::uint16_t>(it - owners.begin());
    for (std::size_t s = range.first; s <= range.last; ++s) slots[s] = index;
  }
  const bool changed = slots != slots_ || owners != owners_;
  slots_ = std::move(slots);
  owners_ = std::move(owners);
  if (changed) {
    log::info("broker", "redis cluster slot map", {{"primaries", owners_.size()}});
  }
  // Subscriptions whose slot now lives elsewhere follow it.
  std::vector<std::string> moved;
  for (auto& [channel, wanted] : wanted_) {
    Node* node = owner(key_slot(channel));
    const std::string now = node != nullptr ? node->address.text() : std::string();
    if (wanted.at != now) moved.push_back(channel);
  }
  for (const auto& channel : moved) {
    auto it = wanted_.find(channel);
    if (it == wanted_.end()) continue;
    Wanted& wanted = it->second;
    if (!wanted.at.empty()) {
      auto old = nodes_.find(wanted.at);
      if (old != nodes_.end() && old->second->sub && old->second->sub->up()) {
        const std::array<std::string_view, 2> args{"SUNSUBSCRIBE", channel};
        old->second->sub->send_unanswered(args);
      }
      lose(channel, wanted);
    }
    try_subscribe(channel);
  }
  // Nodes that are no longer primaries (a failed-over primary, a seed that is a replica).
  if (!owners_.empty()) {
    std::vector<std::string> gone;
    for (const auto& [address, node] : nodes_) {
      if (std::find(owners_.begin(), owners_.end(), address) == owners_.end()) {
        gone.push_back(address);
      }
    }
    for (const auto& address : gone) retire(address);
  }
  if (changed) on_node_change();
}

void ClusterRouter::retire(const std::string& address) {
  auto it = nodes_.find(address);
  if (it == nodes_.end()) return;
  std::unique_ptr<Node> node = std::move(it->second);
  nodes_.erase(it);
  // Stopped now (their waiting commands fail), destroyed much later: this may run inside one
  // of their own reply handlers, and a cancelled resolve or connect still completes through
  // them. A handful of retired nodes is all a failover or a resharding leaves.
  node->cmd->stop();
  if (node->sub) node->sub->stop();
  retired_.push_back(std::move(node));
  if (retired_.size() > kMaxRetired) retired_.pop_front();
}

void ClusterRouter::on_node_change() {
  if (stopped_) return;
  const bool now = up();
  if (now && !reported_up_ && handlers_.on_up) {
    reported_up_ = true;
    handlers_.on_up();
  }
  reported_up_ = now;
  if (handlers_.on_change) handlers_.on_change();
}

void ClusterRouter::subscribe(const std::string& channel) {
  auto [it, fresh] = wanted_.try_emplace(channel);
  if (fresh) try_subscribe(channel);
}

void ClusterRouter::unsubscribe(const std::string& channel) {
  auto it = wanted_.find(channel);
  if (it == wanted_.end()) return;
  if (!it->second.at.empty()) {
    auto node = nodes_.find(it->second.at);
    if (node != nodes_.end() && node->second->sub && node->second->sub->up()) {
      const std::array<std::string_view, 2> args{"SUNSUBSCRIBE", channel};
      node->second->sub->send_unanswered(args);
    }
  }
  wanted_.erase(it);
}

void ClusterRouter::try_subscribe(const std::string& channel) {
  auto it = wanted_.find(channel);
  if (it == wanted_.end() || !it->second.at.empty()) return;
  Node* node = owner(key_slot(channel));
  // Not now: on_sub_up or the next map subscribes it.
  if (node == nullptr || !node->sub || !node->sub->up()) return;
  Wanted& wanted = it->second;
  wanted.at = node->address.text();
  wanted.confirmed = false;
  wanted.serial = ++serials_;
  node->sub->send({"SSUBSCRIBE", channel}, [this, channel, serial = wanted.serial,
                                            from = node->address](const ErrorCode& ec,
                                                                  const redisReply* reply) {
    auto found = wanted_.find(channel);
    if (found == wanted_.end() || found->second.serial != serial) return;
    Wanted& w = found->second;
    if (ec) {
      w.at.clear();  // the connection is gone; on_sub_up or the next map tries again
      return;
    }
    if (is_error(reply)) {
      w.at.clear();
      if (auto redirect = parse_redirect(reply_text(*reply), from); redirect && !redirect->ask) {
        const std::string to = redirect->to.text();
        auto o = std::find(owners_.begin(), owners_.end(), to);
        if (o == owners_.end()) o = owners_.insert(owners_.end(), to);
        slots_[redirect->slot] = static_cast<std::uint16_t>(o - owners_.begin());
        ensure_node(redirect->to, true);
        try_subscribe(channel);
      } else {
        log::warn("broker", "redis refused a sharded subscription",
                  {{"redis", from.text()}, {"reply", reply_text(*reply)}});
      }
      schedule_refresh(kRefreshSoon);
      return;
    }
    w.confirmed = true;
    if (handlers_.on_subscribed) handlers_.on_subscribed(channel);
  });
}

void ClusterRouter::lose(const std::string& channel, Wanted& wanted) {
  const bool was = wanted.confirmed;
  wanted.at.clear();
  wanted.confirmed = false;
  wanted.serial = ++serials_;  // a confirmation still in flight is stale
  if (was && handlers_.on_lost) handlers_.on_lost(channel);
}

void ClusterRouter::on_sub_up(const std::string& address) {
  std::vector<std::string> due;
  for (const auto& [channel, wanted] : wanted_) {
    if (!wanted.at.empty()) continue;
    Node* node = owner(key_slot(channel));
    if (node != nullptr && node->address.text() == address) due.push_back(channel);
  }
  for (const auto& channel : due) try_subscribe(channel);
  on_node_change();
}

void ClusterRouter::on_sub_down(const std::string& address) {
  std::vector<std::string> lost;
  for (const auto& [channel, wanted] : wanted_) {
    if (wanted.at == address) lost.push_back(channel);
  }
  for (const auto& channel : lost) {
    auto it = wanted_.find(channel);
    if (it != wanted_.end()) lose(channel, it->second);
  }
  on_node_change();
  schedule_refresh(kRefreshSoon);
}

void ClusterRouter::on_sunsubscribe(const std::string& address, std::string_view name) {
  const std::string channel(name);
  auto it = wanted_.find(channel);
  // Our own SUNSUBSCRIBE, or one for a subscription already replaced: nothing to follow.
  if (it == wanted_.end() || it->second.at != address || !it->second.confirmed) return;
  // Redis dropped it: the slot left that node. Subscribe where the map (or a MOVED) says.
  lose(channel, it->second);
  try_subscribe(channel);
  schedule_refresh(kRefreshSoon);
}

}  // namespace sg::broker::redis
