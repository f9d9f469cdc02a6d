// hub: the connection pool. Holds exactly one broker subscription per channel per node,
// refcounted by the workers that have local members on it, and on each worker a Shard that
// maps channel → local members and fans each event out to them. The shared event body is
// referenced, never copied. Hub methods are thread-safe; a Shard is used only from its worker.
#pragma once

#include "broker/broker.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sg::metrics {
class Registry;
}

namespace sg::hub {

class Hub;
class Shard;
struct LocalChannel;
struct ChannelEntry;

// Runs a function on one worker's thread (asio::post in production). Must be FIFO.
using Post = std::function<void(std::function<void()>)>;

// What a producer asked of connections (POST /v2/realtime/disconnect and /revoke): which ones,
// and how they close. Matched by each member itself (Member::cut_off).
struct Cutoff {
  std::string org;
  std::string user;           // empty: every user of the org
  std::string connection_id;  // set: only that connection
  // Set (a revocation): only connections whose token was issued before it (unix seconds), or
  // carries no iat.
  std::optional<std::int64_t> issued_before;
  std::uint16_t code = 0;    // WebSocket close code
  std::string close_reason;  // the close frame's reason
  std::string error;         // the error frame's code, sent before the close
  std::string message;       // and its message
};

// A subscriber on one worker, implemented by the server's session. Its channel memberships live
// in it (per-connection state stays with the connection) but are managed by the Shard.
class Member {
 public:
  // Appends one event (live, after go_live) to the member's outbox. Called on the member's worker;
  // must not attach/detach from inside (close later instead).
  virtual void deliver(const broker::EventPtr& event) = 0;
  // More live events arrived before go_live than the shard holds: the member missed some and
  // should close (slow consumer); go_live will say so too. Same rules as deliver.
  virtual void hold_overflowed() {}
  // Closes the connection if `cut` names it (see Cutoff); true if it did. On the member's
  // worker, outside any fan-out; the member may detach from inside.
  virtual bool cut_off(const Cutoff& /*cut*/) { return false; }
  // Appends the connection as a JSON object for the producer API (never its token).
  virtual void describe(std::string& /*out*/) const {}

  struct Membership {
    LocalChannel* channel = nullptr;
    std::uint32_t slot = 0;
  };
  std::vector<Membership>& memberships() { return memberships_; }

 protected:
  ~Member() = default;

 private:
  std::vector<Membership> memberships_;
};

// What an attach found when it resumed (or simply joined) a channel.
struct AttachResult {
  bool recovered = true;  // false: events after the client's position are gone
  std::string reason;     // "epoch_changed" | "too_old" | "unavailable" when not recovered
  // Events to send before live ones, oldest first: the replay's first page.
  std::vector<broker::EventPtr> replay;
  // The replay goes on: next_page() until a page says no more, then go_live().
  bool more = false;
};
using AttachDone = std::function<void(AttachResult)>;

// The next page of a paged replay.
struct ReplayPage {
  std::vector<broker::EventPtr> events;  // oldest first, after the previous page's
  bool more = false;                     // another page follows; without it, go_live() next
  // Set when the replay can't go on and the member missed events it was promised: "unavailable"
  // (the broker could not be read) or "interrupted" (history after the replay's position was
  // dropped meanwhile, or the channel's epoch changed). The member should close.
  std::string failure;
};
using PageDone = std::function<void(ReplayPage)>;

class Shard {
 public:
  Shard(Hub& hub, std::size_t index);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Joins `member` (whose connection belongs to `user`) to `channel`. `resume`: the client's
  // last position, to replay after. `done` runs on this worker once the channel's broker
  // subscription is ready and history is read; until go_live() the member's live events are
  // held back (bounded by `max_pending`, beyond which done reports and the member should close).
  // Joining a channel the member already has is a no-op that reports recovered with no replay.
  // `page_events`: read history that many events at a time, the member asking for each page
  // after the first with next_page() (0: the whole replay in the attach's answer). Live events
  // held meanwhile are only those after the last page read, so the bound on them catches a
  // member that stopped reading, not one catching up.
  void attach(Member& member, std::string_view user, const broker::Channel& channel,
              std::optional<broker::Position> resume, AttachDone done, std::size_t page_events = 0);
  // Reads the replay's next page, after the previous one. `done` runs on this worker, unless
  // the member leaves the channel first. One page at a time.
  void next_page(Member& member, const broker::Channel& channel, PageDone done);
  // Delivers what arrived during the replay, then live events directly. False when more
  // arrived than could be held: the member missed events and should be closed (slow consumer).
  bool go_live(Member& member, const broker::Channel& channel);
  void detach(Member& member, const broker::Channel& channel);
  void detach_all(Member& member);

  std::size_t index() const { return index_; }
  std::size_t local_channels() const { return channels_.size(); }

  // The index of this worker's connections by (org, user), for the producer API: a member
  // enrolls once its principal is known and leaves before it is destroyed.
  void enroll(Member& member, const std::string& org, const std::string& user);
  void leave(Member& member, const std::string& org, const std::string& user);
  // Offers `cut` to each enrolled member it may concern; how many closed.
  std::size_t cut_off(const Cutoff& cut);
  // Up to `max` descriptions (Member::describe) of the user's connections here.
  void describe_user(const std::string& org, const std::string& user, std::size_t max,
                     std::vector<std::string>& out) const;
  // (topic, members here) of each channel of `org` with members on this worker.
  void channel_counts(const std::string& org,
                      std::vector<std::pair<std::string, std::uint64_t>>& out) const;

 private:
  friend class Hub;
  struct FanoutTask;
  struct OrgFanout;
  void on_event(const std::shared_ptr<ChannelEntry>& entry, const broker::EventPtr& event);
  // The channel's epoch and order checks before an event's fan-out; false: already delivered.
  bool begin_event(LocalChannel& local, const broker::Event& event);
  // Offers the task's event to at most `budget` more members, taking what it used from the
  // budget; true once every member was offered it (or none is left).
  bool fan_out(FanoutTask& task, std::size_t& budget);
  void enqueue_fanout(FanoutTask task);
  // One turn of the waiting fan-out, round robin by org; posts the next turn if work is left.
  void fan_turn();
  void move_slot(LocalChannel& local, std::uint32_t from, std::uint32_t to);
  void deliver_ephemeral(LocalChannel& local, const broker::EventPtr& event);
  void on_ready(const std::shared_ptr<ChannelEntry>& entry);
  void start_attach(std::uint64_t attach_id);
  void read_page(std::uint64_t attach_id);
  void on_page(std::uint64_t attach_id, const Result<broker::History>& history);
  void finish_attach(std::uint64_t attach_id, const Result<broker::History>& history);
  bool take_page(std::uint64_t attach_id, const broker::History& history,
                 std::vector<broker::EventPtr>& out);
  void complete(std::uint64_t attach_id, AttachResult result);
  void remove_slot(LocalChannel& local, std::uint32_t slot);
  Member::Membership* find_membership(Member& member, const std::string& key);

  Hub& hub_;
  std::size_t index_;
  std::uint64_t next_attach_id_ = 1;
  std::unordered_map<std::string, std::unique_ptr<LocalChannel>> channels_;
  struct Attaches;
  std::unique_ptr<Attaches> attaches_;
  // org + '\0' + user → the user's members on this worker.
  std::unordered_map<std::string, std::vector<Member*>> by_user_;
  // Fan-out that did not fit the turn its event arrived in, per org, served round robin from
  // fanout_next_: one org's burst to many members cannot hold back another org's event.
  std::vector<std::unique_ptr<OrgFanout>> fanout_;
  std::unordered_map<std::string, OrgFanout*> fanout_by_org_;
  std::size_t fanout_next_ = 0;
  bool fanout_scheduled_ = false;
};

struct PoolStats {
  std::uint64_t total_connections = 0;
  std::uint64_t total_orgs = 0;
  std::uint64_t total_subscriptions = 0;  // broker subscriptions held by this node
  std::vector<std::pair<std::string, std::uint64_t>> connections_by_org;  // sorted by org
};

struct HubOptions {
  std::size_t max_connections_per_user = 10000;  // 0 = unlimited (--max-connections-per-user)
  std::size_t max_connections = 0;               // per node; 0 = unlimited
  // Topics that don't count against an org's channel quota (chat rooms, which have their own
  // limits); null = every topic counts.
  std::function<bool(std::string_view topic)> quota_exempt = nullptr;
  std::size_t max_revocations = 100000;  // --max-revocations
  // Usage metering hooks, null = none. An org's connection admitted (true) or released (false),
  // under the admission lock; and worker `worker`'s live deliveries of one event to `count`
  // members, `bytes` their shared bodies' size (once per event and worker, never per member).
  std::function<void(const std::string& org, bool opened)> on_connection = nullptr;
  std::function<void(std::size_t worker, const std::string& org, std::uint64_t count,
                     std::uint64_t bytes)>
      on_delivered = nullptr;
};

// The revocations this node enforces (POST /v2/realtime/revoke, from this node, the control
// channel, or loaded from the broker at start). Bounded: an add beyond `max` unexpired entries
// is refused rather than evicting one, which would let revoked tokens back in. Thread-safe;
// a check when there are none takes no lock.
class Revocations {
 public:
  explicit Revocations(std::size_t max) : max_(max) {}
  enum class Add { kAdded, kFull };
  // One entry per (org, user): a second keeps the later issued_before and expiry.
  Add add(const broker::Revocation& revocation, std::chrono::system_clock::time_point now);
  // True when a token of (org, user) issued at `issued_at` (unix seconds; nullopt: the token
  // has no iat, so it can't show it is newer) falls under an unexpired revocation.
  bool revoked(const std::string& org, const std::string& user,
               std::optional<std::int64_t> issued_at,
               std::chrono::system_clock::time_point now) const;
  std::size_t size() const { return count_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    std::int64_t issued_before = 0;
    std::chrono::system_clock::time_point expires;
  };
  void purge(std::chrono::system_clock::time_point now);

  const std::size_t max_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // org + '\0' + user; guarded by mu_
  std::atomic<std::size_t> count_{0};
};

// The broker presence scope that lists an org's connected users (every connection the hub
// admitted, on any node sharing the broker).
broker::Channel online_scope(const std::string& org);

class Hub {
 public:
  // One Post per worker; shard(i) belongs to worker i.
  Hub(broker::Broker& broker, std::vector<Post> workers, HubOptions options,
      metrics::Registry& metrics);
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  Shard& shard(std::size_t worker) { return *shards_[worker]; }
  std::size_t workers() const { return shards_.size(); }
  broker::Broker& broker() { return broker_; }

  enum class Admission { kAdmitted, kUserLimit, kNodeLimit, kOrgLimit };
  // Counts a new connection of (org, user) unless a limit is reached: the node's, the user's,
  // or `org_max` (the org's connection quota; 0 = none), checked under the same lock so
  // concurrent upgrades never pass it. Each kAdmitted needs one release() when the connection
  // ends.
  Admission admit(const std::string& org, const std::string& user, std::uint64_t org_max = 0);
  void release(const std::string& org, const std::string& user);

  // The org's channel quota: true when the org's counted channels on this node plus those of
  // `topics` it does not hold yet stay within `max` (0 = no quota). A check, not a
  // reservation: subscribes racing on two workers may both take the last one.
  bool channels_within_quota(const std::string& org, const std::vector<std::string>& topics,
                             std::uint64_t max) const;

  PoolStats stats() const;
  std::uint64_t events_delivered() const;

  // The producer API's view of every worker: each runs on the workers' threads (posted), and
  // `done` runs once, on the thread of the last worker to answer.
  void cut_off(Cutoff cut, std::function<void(std::size_t closed)> done);
  void describe_user(std::string org, std::string user, std::size_t max,
                     std::function<void(std::vector<std::string>)> done);
  // Members per topic of `org` on this node, summed over the workers, sorted by topic.
  void channel_counts(std::string org,
                      std::function<void(std::vector<std::pair<std::string, std::uint64_t>>)> done);

  Revocations& revocations() { return revocations_; }

 private:
  friend class Shard;
  using Entry = ChannelEntry;
  // Called by shard `worker` when its first member joins / last member leaves `channel`.
  // Returns the entry; `ready` tells whether the broker subscription is already in place.
  std::shared_ptr<Entry> acquire(const broker::Channel& channel, std::size_t worker, bool& ready);
  void release_channel(const std::shared_ptr<Entry>& entry, std::size_t worker);
  bool counts_for_quota(const broker::Channel& channel) const;

  broker::Broker& broker_;
  std::vector<Post> posts_;
  std::vector<std::unique_ptr<Shard>> shards_;
  HubOptions options_;

  mutable std::mutex registry_mu_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> registry_;
  std::unordered_map<std::string, std::uint64_t> channels_by_org_;  // counted entries per org

  mutable std::mutex conn_mu_;
  std::unordered_map<std::string, std::uint64_t> conns_by_org_;
  std::unordered_map<std::string, std::uint64_t> conns_by_user_;  // key org + '\0' + user
  std::uint64_t total_connections_ = 0;

  struct Counters;
  std::unique_ptr<Counters> counters_;
  Revocations revocations_;
};

}  // namespace sg::hub
