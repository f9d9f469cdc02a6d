// broker: where events live between a producer's publish and the hub's fan-out. Assigns each
// channel's offsets, keeps a bounded history for resume, and notifies subscribers. `Broker` is
// the interface; make_memory_broker() is the embedded one, make_redis_broker() the one that
// lets many nodes share channels through Redis. Every method is safe from any thread; callbacks
// may run on any thread, inline or later.
#pragma once

#include "core/core.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sg::broker {

enum class BrokerError {
  kUnavailable = 1,  // backend unreachable → publish answers 503
  kBadChannel,       // empty org or topic
  kShuttingDown,
  kBadUrl,  // a --broker URL that doesn't parse
  kBadTls,  // rediss:// settings that don't load (CA file, client certificate or key)
};
std::string_view to_string(BrokerError e);
constexpr const char* error_domain(BrokerError) {
  return "broker";
}
SG_DECLARE_ERROR_ENUM(BrokerError)

// A stream of events: (org, topic). Topic is a service name for events ("finance"); other
// kinds of channel prefix it ("room:general"). `key` is the unique text form "org/topic".
struct Channel {
  std::string org;
  std::string topic;
  std::string key() const { return org + "/" + topic; }
  friend bool operator==(const Channel&, const Channel&) = default;
};

// One published event, immutable once built and shared by history and every recipient.
struct Event {
  std::uint64_t offset = 0;
  std::string id;    // "<epoch>-<offset>", as protocol::format_event_id
  std::string user;  // deliver only to this user's connections; empty = everyone subscribed
  std::string body;  // protocol::serialize_event_body(...): the frame after the seq prefix
  std::chrono::system_clock::time_point published_at;
};
using EventPtr = std::shared_ptr<const Event>;

struct PublishInput {
  std::string event;  // event type
  std::string data;   // serialized JSON
  std::string user;   // optional target user
  // Optional idempotency key: a repeat returns the first id and is not delivered again.
  std::string event_key;
};

struct PublishResult {
  std::string id;
  bool duplicate = false;  // event_key was seen before; nothing new was published
};

// A read of history after a position.
struct History {
  // The channel's current epoch. It changes when the channel's history is lost: a new broker
  // process, or (memory) a channel idle long enough to be dropped and started afresh.
  std::string epoch;
  std::uint64_t last_offset = 0;  // newest offset when read (0: channel empty)
  // Events with offset > the requested one, oldest first, all of this epoch.
  std::vector<EventPtr> events;
  // False when events after the requested position were already dropped (count or TTL), or
  // the requested epoch isn't the current one: the reader missed something.
  bool complete = true;
};

struct Position {
  std::string epoch;
  std::uint64_t offset = 0;
};

// Called for each event of a subscribed channel, in offset order, never concurrently for one
// subscription. Must be quick: the hub only posts to workers from here. It may run while the
// broker holds the channel's lock, so it must not call back into the broker nor destroy its own
// Subscription.
using Sink = std::function<void(const EventPtr&)>;

// Held by whoever subscribed; destroying it unsubscribes. After the destructor returns the sink
// is not called again.
class Subscription {
 public:
  virtual ~Subscription() = default;
};

// One user present in a presence scope (an org's stream, a chat room), as every node sees it.
struct PresenceEntry {
  std::string user;
  std::chrono::system_clock::time_point since;  // the earliest connection still present
  std::uint32_t connections = 0;                // summed over the nodes
};

// A producer's revocation (POST /v2/realtime/revoke): tokens of (org, user) issued before
// `issued_before` (unix seconds) are refused until `expires`, when none of them can be valid.
struct Revocation {
  std::string org;
  std::string user;
  std::int64_t issued_before = 0;
  std::chrono::system_clock::time_point expires;
};

// What other nodes send through the control channel (a disconnect, a revocation, a question).
// `answer` is null for a broadcast; for a question (ask_nodes) call it exactly once, from any
// thread, with this node's answer.
// Where a broadcast went: nowhere else (a broker of one node), or to the other nodes.
enum class ControlReach { kThisNode, kCluster };

using ControlHandler =
    std::function<void(std::string_view message, std::function<void(std::string)> answer)>;

// ---- shared store: small state every node must agree on, kept beside the channels ----
// Only a broker that spans nodes has one (Redis); Broker::shared_store() is null for the
// memory broker, whose node keeps such state itself. Every call is safe from any thread; `done`
// runs on the broker's thread (kUnavailable when Redis did not answer, kShuttingDown after
// quiesce()).

// Every org quota override at one version of the store (docs/scaling.md#org-quotas).
struct OrgLimitsSnapshot {
  std::string version;                                       // changes with every stored change
  std::vector<std::pair<std::string, std::string>> entries;  // org → override JSON
};

// One flush of one node's usage counters for one (org, hour) (docs/scaling.md#usage-metering):
// `increments` are added to the hour's figures, `peak` raises this node's peak for the hour.
struct UsageDelta {
  std::string org;
  std::int64_t hour = 0;  // unix seconds of the hour's start
  std::uint64_t peak = 0;
  std::vector<std::pair<std::string, std::uint64_t>> increments;  // field → amount
};

class SharedStore {
 public:
  virtual ~SharedStore() = default;
  // Stores org's override (JSON text); false when `max` other orgs already have one.
  virtual void put_org_limits(const std::string& org, const std::string& value, std::size_t max,
                              std::function<void(Result<bool>)> done) = 0;
  // False when org had none.
  virtual void remove_org_limits(const std::string& org,
                                 std::function<void(Result<bool>)> done) = 0;
  virtual void org_limits(const std::string& org,
                          std::function<void(Result<std::optional<std::string>>)> done) = 0;
  // Every override (at most `max`), or nullopt when the store's version is still `known`.
  virtual void load_org_limits(
      const std::string& known, std::size_t max,
      std::function<void(Result<std::optional<OrgLimitsSnapshot>>)> done) = 0;
  // Adds the deltas under `node`'s name; each (org, hour) expires `retention` after its last
  // write.
  virtual void add_usage(std::vector<UsageDelta> deltas, const std::string& node,
                         std::chrono::seconds retention,
                         std::function<void(Result<void>)> done) = 0;
  // The stored fields of org for each of `hours` (same order; empty for an hour with none).
  // Peaks come as one field "peak:<node>" per node.
  using UsageHours = std::vector<std::vector<std::pair<std::string, std::uint64_t>>>;
  virtual void read_usage(const std::string& org, std::vector<std::int64_t> hours,
                          std::function<void(Result<UsageHours>)> done) = 0;
  // Adds `bytes` to org's upload bytes of UTC day `day` (days since the epoch) unless the
  // cluster's total would pass `quota`: true when added, false (nothing added) when refused.
  virtual void add_upload_bytes(const std::string& org, std::int64_t day, std::uint64_t bytes,
                                std::uint64_t quota, std::function<void(Result<bool>)> done) = 0;
  // Gives back bytes add_upload_bytes added to that day (never below zero); best effort.
  virtual void return_upload_bytes(const std::string& org, std::int64_t day,
                                   std::uint64_t bytes) = 0;
};

// What made this node move a channel to a new epoch after its counter went back
// (docs/scaling.md): its own publish, a live message, a catch-up read, a read from a position
// (a resume). Indexes BrokerStats::epoch_moves; the names are the metric's `reason` label.
enum class EpochMove { kPublish, kLive, kCatchUp, kResume };
inline constexpr std::array<std::string_view, 4> kEpochMoveNames{"publish", "live", "catch_up",
                                                                 "resume"};

struct BrokerStats {
  std::uint64_t channels = 0;       // channels with unexpired history or subscribers
  std::uint64_t subscriptions = 0;  // live Subscription objects
  bool healthy = true;
  // Channels this node moved to a new epoch since start, by EpochMove (always 0 in memory).
  std::array<std::uint64_t, kEpochMoveNames.size()> epoch_moves{};
};

class Broker {
 public:
  virtual ~Broker() = default;

  // Assigns the next offset, builds the body once (protocol::serialize_event_body with the
  // channel topic as service and the publish time), stores it in history, then notifies
  // subscribers. `done` gets the id, or kUnavailable when the event could not be stored.
  virtual void publish(const Channel& channel, PublishInput input,
                       std::function<void(Result<PublishResult>)> done) = 0;

  // Starts delivering the channel's new events to `sink`. `on_ready` runs once the
  // subscription is in place: every event published after that reaches the sink, none from
  // before. An empty org or topic gets nullptr and no on_ready.
  virtual std::unique_ptr<Subscription> subscribe(const Channel& channel, Sink sink,
                                                  std::function<void()> on_ready) = 0;

  // Events after `after` (nullopt: none, only epoch/last_offset are filled).
  virtual void history(const Channel& channel, std::optional<Position> after,
                       std::function<void(Result<History>)> done) = 0;

  // history() cut to the oldest `limit` events after `after` (0: no limit), for paging forward
  // through a long resume without reading it all at once. epoch, last_offset and `complete`
  // are as history() would give them; the events are a prefix of its. The page reached the
  // newest event when it is empty or its last offset is last_offset; otherwise read on after
  // its last one. The default reads everything and cuts; the brokers read only the page.
  virtual void history_page(const Channel& channel, Position after, std::size_t limit,
                            std::function<void(Result<History>)> done);

  // Up to `limit` events with offset < `before` (0: from the newest), oldest first: paging
  // back through history. epoch and last_offset are filled as for history(); `complete` is
  // false when older events than those returned were dropped (count or TTL).
  virtual void history_before(const Channel& channel, std::uint64_t before, std::size_t limit,
                              std::function<void(Result<History>)> done) = 0;

  // Delivers to the channel's current subscribers only, never stored: the event has offset 0
  // and an empty id (its body has no "id"). For what is stale a moment later (typing).
  virtual void signal(const Channel& channel, PublishInput input,
                      std::function<void(Result<void>)> done) = 0;

  // This node now has `connections` connections of `user` in `scope` (0: none left here). Kept
  // visible to every node sharing the broker: the Redis broker refreshes it on a heartbeat, so
  // a node that dies stops counting within its presence TTL.
  virtual void set_presence(const Channel& scope, const std::string& user,
                            std::uint32_t connections) = 0;
  // Every user present in `scope` on any live node, once each, sorted by user.
  virtual void presence(const Channel& scope,
                        std::function<void(Result<std::vector<PresenceEntry>>)> done) = 0;

  // Cluster view of the nodes' own metrics: `source` (called on any thread, must be quick and
  // thread-safe) gives this node's JSON object; node_stats() gives one JSON object per live
  // node sharing the broker, this one included. Once set_node_stats_source(nullptr) returns,
  // the old source is never called again.
  virtual void set_node_stats_source(std::function<std::string()> source) = 0;
  virtual void node_stats(std::function<void(Result<std::vector<std::string>>)> done) = 0;

  // ---- control: producer requests that reach every node, not channels (docs/scaling.md) ----
  // The handler for control messages from other nodes and for this node's share of ask_nodes;
  // called on any thread. Once set_control_handler(nullptr) returns, the old one is not called.
  // The default keeps none (a broker of one node with nothing to receive).
  virtual void set_control_handler(ControlHandler handler);
  // Sends `message` to every other node sharing the broker (not back to this one): kCluster
  // when it went out, kThisNode when this broker has no other nodes (the default), or
  // kUnavailable when it could not be sent.
  virtual void broadcast_control(std::string message,
                                 std::function<void(Result<ControlReach>)> done);
  // Asks every live node, this one included, through their control handlers; `done` gets the
  // answers that arrived within `timeout` (as many as nodes when none was late). The default
  // has no handler to ask and fails with kUnavailable.
  virtual void ask_nodes(std::string question, std::chrono::milliseconds timeout,
                         std::function<void(Result<std::vector<std::string>>)> done);
  // Keeps `revocation` for every node until it expires (Redis: one hash with a TTL); the
  // default keeps nothing and succeeds, since a node's own table is all there is.
  virtual void store_revocation(const Revocation& revocation,
                                std::function<void(Result<void>)> done);
  // Called with every stored, unexpired revocation (at most `max`) now if the broker can read
  // them, and again each time it reconnects to its store, so a node that starts, or lost
  // Redis meanwhile, catches up. The default stores none and never calls it.
  virtual void set_revocation_sink(std::size_t max,
                                   std::function<void(std::vector<Revocation>)> sink);

  // The store every node shares, or null when this broker is one node's own (memory).
  virtual SharedStore* shared_store() { return nullptr; }

  virtual BrokerStats stats() const = 0;

  // Ends the broker's callbacks, for its owner to call before whatever they reach goes away
  // (the server's hub, workers and sessions). Before it returns, every completion still
  // pending has run, with kShuttingDown if it had no answer yet; once it returns no sink,
  // on_ready, done or stats source of the broker runs any more and none is running, and the
  // Redis broker's I/O thread is joined. Later calls stay harmless: publish, history,
  // history_before, signal, presence and node_stats fail at once with kShuttingDown (on the
  // caller's thread), subscribe gives a Subscription that never delivers, set_presence does
  // nothing, destroying a Subscription is fine. Idempotent and safe from any thread, but not
  // from inside one of the broker's own callbacks. The destructor quiesces too.
  virtual void quiesce() = 0;
};

struct MemoryBrokerOptions {
  std::size_t history = 1000;  // events kept per channel (--history)
  // Events older than this are dropped (--history-ttl); 0 = kept until pushed out by count.
  std::chrono::seconds history_ttl{86400};
  std::size_t idempotency_keys = 10000;  // eventIds remembered per channel for dedup; 0 = no dedup
  std::chrono::seconds idempotency_ttl{86400};  // 0 = forgotten only by count
};

// The embedded broker: everything in process memory, lost on restart (a new random epoch
// tells resuming clients so). Callbacks (done, on_ready, sinks) run inline on the caller's
// thread. A channel with no subscribers, no unexpired history and no live idempotency keys is
// dropped; if it is used again it starts over at offset 1 under a new epoch.
std::unique_ptr<Broker> make_memory_broker(const MemoryBrokerOptions& options);

// How each connection of a Redis broker times its work and bounds what it has in flight.
struct RedisLinkOptions {
  // Resolve + connect + AUTH/SELECT; also how long make_redis_broker waits for the first
  // connection before returning a broker that is not yet healthy.
  std::chrono::milliseconds connect_timeout{2000};
  // A connection with a command outstanding and nothing read for this long is dropped and
  // redialled; an idle one is PINGed every ping_interval, so a hung Redis shows within
  // ping_interval + command_timeout.
  std::chrono::milliseconds command_timeout{2000};
  std::chrono::milliseconds ping_interval{500};
  // Redial delay, doubling from min to max with ±20% jitter.
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  // Commands in flight on a connection; beyond it publish and history fail with kUnavailable
  // instead of queueing without bound.
  std::size_t max_pending = 200000;
};

struct RedisBrokerOptions : RedisLinkOptions {
  // redis://[[user]:password@]host[:port][/db]; port 6379 and db 0 by default. rediss:// is
  // the same over TLS (1.2 or newer): the server's certificate must chain to tls_ca_file (empty:
  // the system's CAs) and name the URL's host.
  std::string url = "redis://127.0.0.1:6379";
  std::string tls_ca_file;
  // A client certificate (PEM chain) and its key, for a Redis with tls-auth-clients yes.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::size_t history = 1000;  // events kept per channel (--history); read exactly, trimmed ~
  // Events older than this are not returned and are trimmed on the next publish
  // (--history-ttl); a stream idle this long is deleted. 0 = kept until pushed out by count.
  std::chrono::seconds history_ttl{86400};
  // How long an eventId is remembered for dedup, across every node; 0 turns dedup off (Redis
  // has no per-channel count bound to fall back on).
  std::chrono::seconds idempotency_ttl{86400};
  // Prepended to every key and Pub/Sub channel, so several deployments can share one Redis.
  std::string key_prefix = "sg:";
  // A node's presence entries and metrics snapshot expire this long after its last heartbeat
  // (sent every third of it), so a node that dies stops counting within it.
  std::chrono::milliseconds presence_ttl{15000};
  // A publish is acknowledged only after WAIT confirms this many replicas of the channel's
  // primary have it (kUnavailable after wait_timeout); 0 = acknowledged once the primary has it.
  std::uint32_t wait_replicas = 0;
  std::chrono::milliseconds wait_timeout{1500};
};

// Channels live in Redis (a Stream per channel for history, one Pub/Sub channel per channel
// for live delivery, offset and epoch keys that survive node restarts), so every node pointed
// at the same Redis shares them. Each broker runs its own I/O thread with two connections: one
// for commands, one shared by all its subscriptions. Callbacks run on that thread. Fails only
// on a bad URL (kBadUrl); an unreachable Redis gives a broker that keeps redialling and reports
// healthy = false meanwhile (publish and history fail with kUnavailable). rediss:// settings
// that don't load are kBadTls.
Result<std::unique_ptr<Broker>> make_redis_broker(const RedisBrokerOptions& options);

}  // namespace sg::broker

template <>
struct boost::system::is_error_code_enum<sg::broker::BrokerError> : std::true_type {};
