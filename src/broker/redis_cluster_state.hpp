// What the nodes sharing one Redis tell each other besides events: who is present where
// (presence scopes), and each node's metrics snapshot for the cluster view. This node's part
// lives in a PresenceTable; changes are written to Redis in batches (those queued on the I/O
// thread together, so a burst of connects is a few script calls, not one per connection) and
// everything again on a heartbeat every third of the TTL; entries carry an expiry score, so a node
// that dies stops counting within the TTL and readers drop its leftovers. Internal to the broker
// module; I/O thread only.
#pragma once

#include "broker/broker.hpp"
#include "broker/presence_table.hpp"
#include "broker/redis_connection.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace sg::broker::redis {

// A channel's (or presence scope's) name in Redis keys: `prefix` + "{<org length>:<org>/<topic>}".
// Length-prefixed, so org "a/b" + topic "c" and org "a" + topic "b/c" stay apart; in braces, so
// every key of one channel shares one Redis Cluster hash slot (a '}' inside the org moves the
// tag, but moves it for all of them alike).
std::string hash_tagged(std::string_view prefix, const Channel& channel);

class ClusterState {
 public:
  ClusterState(boost::asio::io_context& io, Commands& cmd, std::string key_prefix,
               std::string node_id, std::chrono::milliseconds ttl);

  // The command connection is (again) up: rewrite everything this node holds, since a
  // restarted Redis may have lost it, and start the heartbeat.
  void on_up();
  void stop();

  void set_presence(const Channel& scope, const std::string& user, std::uint32_t connections);
  void presence(const Channel& scope, std::function<void(Result<std::vector<PresenceEntry>>)> done);

  // Thread-safe: the source is read by the heartbeat.
  void set_stats_source(std::function<std::string()> source);
  void node_stats(std::function<void(Result<std::vector<std::string>>)> done);

 private:
  struct Script {
    std::string_view text;
    std::string sha;
  };
  void eval(const Script& script, std::vector<std::string> args, ReplyHandler handler,
            bool by_sha = true);
  void heartbeat();
  void schedule_flush();
  void flush();
  void schedule_heartbeat();
  void write_scope(const PresenceTable::Scope& scope);
  void write_members(const Channel& scope, const std::vector<PresenceEntry>& entries);
  void write_node_stats();
  std::string presence_key(const Channel& scope) const;

  boost::asio::io_context& io_;
  Commands& cmd_;
  const std::string prefix_;
  const std::string node_;
  const std::chrono::milliseconds ttl_;
  const std::string ttl_text_;
  boost::asio::steady_timer timer_;
  bool running_ = false;
  bool stopped_ = false;
  PresenceTable table_;
  // Changes not yet written, by scope key: the latest entry per user (connections 0: removed).
  struct Pending {
    Channel scope;
    std::unordered_map<std::string, PresenceEntry> users;
  };
  std::unordered_map<std::string, Pending> pending_;
  bool flush_scheduled_ = false;

  std::mutex source_mutex_;
  std::function<std::string()> source_;  // guarded by source_mutex_
};

}  // namespace sg::broker::redis
