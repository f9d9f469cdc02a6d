// The Redis broker's way into a Redis Cluster: it learns the slot map from any node it can
// reach (the seeds first, CLUSTER SHARDS or CLUSTER SLOTS), keeps one command Connection and
// one sharded Pub/Sub Connection per primary, and sends each command to the primary owning
// its key's slot. It follows -MOVED (the map is refreshed and the command sent once more to
// the node named) and -ASK (ASKING, then the command, on that node, that once), and refreshes
// the map every few seconds, and within a quarter second while a primary is unreachable. A
// -TRYAGAIN (a script's keys split by a migration in progress) is retried every 20 ms, ~3 s.
// Channels subscribed through it (SSUBSCRIBE) follow their slot: when it moves, or its node's
// connection is lost, on_lost tells the broker, which catches up from the stream once
// on_subscribed says the channel is subscribed again. Internal to the broker module; I/O thread
// only.
#pragma once

#include "broker/redis_connection.hpp"
#include "broker/redis_slots.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace sg::broker::redis {

class ClusterRouter final : public Commands {
 public:
  struct Handlers {
    std::function<void()> on_up;      // every primary's command connection is up (again)
    std::function<void()> on_change;  // any connection came up or went down; the map changed
    std::function<void(std::string_view channel, std::string_view payload)> on_message;
    std::function<void(const std::string& channel)> on_subscribed;  // SSUBSCRIBE confirmed
    std::function<void(const std::string& channel)> on_lost;        // no longer subscribed
  };

  // `base` gives credentials, TLS and timings; its host and port are replaced per node.
  ClusterRouter(boost::asio::io_context& io, ConnectionOptions base, std::vector<NodeAddress> seeds,
                Handlers handlers);
  ~ClusterRouter() override;
  ClusterRouter(const ClusterRouter&) = delete;
  ClusterRouter& operator=(const ClusterRouter&) = delete;

  void start() override;
  void stop() override;

  // The slot map covers every slot and each primary's command connection is up.
  bool up() const override;
  // up(), and each primary's Pub/Sub connection too.
  bool pubsub_up() const;

  // Routed by routing_key(args); no key: any primary that is up. kUnavailable when the slot's
  // primary is unknown or unreachable.
  void send(std::span<const std::string_view> args, ReplyHandler handler) override;
  using Commands::send;
  void send_beside(std::string_view key, std::span<const std::string_view> args,
                   ReplyHandler handler) override;

  // Keeps `channel` subscribed (SSUBSCRIBE on its slot's primary) until unsubscribe().
  void subscribe(const std::string& channel);
  void unsubscribe(const std::string& channel);

 private:
  struct Node {
    NodeAddress address;
    std::unique_ptr<Connection> cmd;
    std::unique_ptr<Connection> sub;  // primaries only
  };
  struct Wanted {
    std::string at;  // the node it is subscribed (or subscribing) at; empty: neither
    bool confirmed = false;
    std::uint64_t serial = 0;
  };
  using Args = std::shared_ptr<std::vector<std::string>>;

  Node& ensure_node(const NodeAddress& address, bool primary);
  Node* owner(std::uint16_t slot);
  void route(Args args, Node& node, bool asking, int redirects, ReplyHandler handler,
             int tries = 0);
  void try_again(Args args, int tries, ReplyHandler handler);
  void refresh();
  void on_map(const NodeAddress& from, const redisReply* reply, bool shards);
  void apply(const std::vector<SlotRange>& ranges);
  void schedule_refresh(std::chrono::milliseconds after);
  void on_node_change();
  void try_subscribe(const std::string& channel);
  void lose(const std::string& channel, Wanted& wanted);
  void on_sub_up(const std::string& address);
  void on_sub_down(const std::string& address);
  void on_sunsubscribe(const std::string& address, std::string_view channel);
  void retire(const std::string& address);

  boost::asio::io_context& io_;
  const ConnectionOptions base_;
  const std::vector<NodeAddress> seeds_;
  const Handlers handlers_;
  boost::asio::steady_timer refresh_timer_;
  bool stopped_ = false;
  bool refreshing_ = false;
  bool reported_up_ = false;
  std::size_t next_asked_ = 0;  // rotates which node the map is asked of
  std::uint64_t serials_ = 0;

  std::unordered_map<std::string, std::unique_ptr<Node>> nodes_;  // by NodeAddress::text()
  std::deque<std::unique_ptr<Node>> retired_;                     // oldest first
  // Slot → index into owners_; kNoOwner until a map covers it.
  static constexpr std::uint16_t kNoOwner = 0xffff;
  std::vector<std::uint16_t> slots_;
  std::vector<std::string> owners_;
  std::unordered_map<std::string, Wanted> wanted_;
};

}  // namespace sg::broker::redis
