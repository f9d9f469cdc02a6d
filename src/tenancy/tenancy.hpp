// tenancy: per-org quotas and usage metering (usage.hpp). The limits (defaults from the --org-*
// flags, per-org overrides set through PUT /v2/realtime/orgs/{orgId}/limits), the publish token
// buckets, the daily upload bytes, and the refusal counters. One Quotas per node, built by the
// server before the workers start; every member is thread-safe (one mutex, held for a lookup and a
// little arithmetic), called from workers, the upload thread and broker threads.
#pragma once

#include "metrics/metrics.hpp"
#include "tenancy/usage.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sg::tenancy {

enum class Quota : std::uint8_t {
  kMaxConnections,
  kMaxChannels,
  kPublishRate,
  kPublishBurst,
  kUploadBytesPerDay,
  kEgressBytes,
  kChatRate,
  kChatBurst,
};
inline constexpr std::size_t kQuotaCount = 8;

// The camelCase name the API, the refusals and the metrics use ("maxConnections").
std::string_view quota_name(Quota q);
std::optional<Quota> quota_from_name(std::string_view name);

// Largest value a quota takes: JSON numbers above 2^53 are not exact in every client.
inline constexpr std::uint64_t kMaxQuotaValue = (std::uint64_t{1} << 53) - 1;

// One value per quota; 0 = unlimited.
struct Limits {
  std::array<std::uint64_t, kQuotaCount> values{};
  std::uint64_t operator[](Quota q) const { return values[static_cast<std::size_t>(q)]; }
  std::uint64_t& operator[](Quota q) { return values[static_cast<std::size_t>(q)]; }
};

// An org's override: the quotas it names replace the defaults (0 included: unlimited for that
// org); the others follow the flags.
struct Override {
  std::array<std::optional<std::uint64_t>, kQuotaCount> values{};
  bool empty() const;
  bool operator==(const Override&) const = default;
};

// A PUT body → an Override, or the reason it is refused: `error` is "malformed_json",
// "bad_body" (not an object), "unknown_field" or "bad_value", `field` the key at fault.
struct ParsedOverride {
  std::optional<Override> value;
  std::string error;
  std::string field;
  std::string message;
};
ParsedOverride parse_override(std::string_view json);
// A flat JSON object of the quotas the override names, in enum order.
std::string serialize_override(const Override& o);

// A refusal tells the caller when trying again can succeed.
struct Decision {
  bool allowed = true;
  std::int64_t retry_after_seconds = 0;  // ≥ 1 when refused
};

struct QuotaOptions {
  Limits defaults;                    // the --org-* flags
  std::size_t max_overrides = 10000;  // --org-max-overrides
};

class Quotas {
 public:
  using Clock = std::chrono::steady_clock;
  using WallClock = std::chrono::system_clock;

  // Registers streamgate_quota_refusals_total{quota} (one counter per quota, no org label) and
  // streamgate_quota_orgs (orgs with state on this node) and streamgate_quota_cluster_nodes in
  // `metrics`, which must outlive this.
  Quotas(QuotaOptions options, metrics::Registry& metrics);
  ~Quotas();
  Quotas(const Quotas&) = delete;
  Quotas& operator=(const Quotas&) = delete;

  // The limit of `org` for `q`: its override if it names q, else the default. 0 = unlimited.
  std::uint64_t limit(std::string_view org, Quota q) const;

  enum class SetResult { kSet, kTooManyOverrides };
  // Replaces org's override (its publish bucket starts full under the new limits); an empty
  // one removes it. kTooManyOverrides when `org` has none and
  // --org-max-overrides orgs already do (nothing changes then).
  SetResult set_override(const std::string& org, const Override& o);
  std::optional<Override> override_of(std::string_view org) const;
  bool remove_override(std::string_view org);  // false when there was none
  std::size_t overrides() const;
  // Makes `all` the overrides, as loaded from the cluster's store: orgs not in it lose theirs,
  // an org whose override changed gets a full bucket, the others keep theirs. At most
  // --org-max-overrides are taken (the store holds no more).
  // `version` is the store's, kept for overrides_version() (empty until the first load).
  void replace_overrides(const std::unordered_map<std::string, Override>& all,
                         const std::string& version);
  std::string overrides_version() const;

  // Takes `events` tokens from org's publish bucket (publishBurst tokens, refilled at
  // publishRate per second; a burst of 0 means one second's worth). All or nothing: a batch
  // that does not fit takes none. Unlimited when publishRate is 0.
  Decision take_publish(std::string_view org, std::uint64_t events, Clock::time_point now);
  // The same for a batch spanning several orgs: every org's bucket must hold its events, or
  // none is drawn from. The refusal names the first org that did not fit (`refused_org`).
  struct PublishTake {
    std::string_view org;
    std::uint64_t events = 0;
  };
  Decision take_publish(std::span<const PublishTake> takes, Clock::time_point now,
                        std::string* refused_org = nullptr);

  // Counts `bytes` (an upload's declared size) against org's uploadBytesPerDay for the UTC day
  // of `now`; refused (taking nothing) when it would pass the quota, retry at midnight UTC.
  Decision take_upload_bytes(std::string_view org, std::uint64_t bytes, WallClock::time_point now);

  // Gives back what take_upload_bytes took for an upload that was then not created (same
  // org, bytes and UTC day; nothing after midnight, when the count started over).
  void return_upload_bytes(std::string_view org, std::uint64_t bytes, WallClock::time_point now);

  // Takes one token from org's chat bucket (chatBurst messages, refilled at chatRate per
  // second; a burst of 0 means one second's worth; with Redis each live node holds an equal
  // share, as for publishing). Unlimited when chatRate is 0. Refused: nothing taken.
  Decision take_chat(std::string_view org, Clock::time_point now);

  // Bytes `org`'s connections on this node may write now, at most `wanted`: what its
  // egressBytes bucket holds (one second's worth of this node's share, refilled at
  // egressBytes / nodes per second: with Redis each live node holds an equal lease, as for
  // publishing). `wanted` when the org is unlimited, without a lock while no org has
  // the quota. 0 (counted as a refusal): nothing until the bucket has refilled a little; the
  // caller keeps what it queued and asks again later. Any thread (the workers' flushes).
  std::size_t egress_allowance(std::string_view org, std::size_t wanted, Clock::time_point now);
  // Takes `bytes` the org's connection wrote from its bucket. Writes on several workers may
  // take it below zero; later allowances wait for that too, so the rate holds over time.
  void spend_egress(std::string_view org, std::size_t bytes, Clock::time_point now);

  // What the other nodes sharing the broker report (their metrics snapshots): how many nodes
  // are live, this one included, and each org's connections on the others. The connection
  // quota is checked against local + remote; the publish, chat and egress buckets of each node
  // are the org's rate and burst divided by `nodes` (a lease of an equal share). Replaces the
  // last view.
  void set_cluster_view(std::size_t nodes,
                        std::unordered_map<std::string, std::uint64_t> remote_connections);
  std::uint64_t remote_connections(std::string_view org) const;

  // The channel quota across the nodes. This node's channels of each org with a maxChannels
  // quota (from the hub, refreshed with the cluster view; orgs not in `by_org` are dropped),
  // which its metrics snapshot carries to the others, at most maxChannels of each org.
  void set_local_channels(std::unordered_map<std::string, std::vector<std::string>> by_org);
  std::unordered_map<std::string, std::vector<std::string>> local_channels_for_snapshot() const;
  // The union of the other nodes' channels of each org (their snapshots). Replaces the last.
  void set_remote_channels(std::unordered_map<std::string, std::vector<std::string>> by_org);
  // What the hub's local check (Hub::channels_within_quota) is to be asked, so that it counts
  // the cluster: `topics` without those another node holds (they add nothing), and the quota
  // less the channels other nodes hold that this one does not. `refused` when the others
  // already hold the whole quota and a topic is new to the cluster. `max` 0 = unlimited.
  struct ChannelBudget {
    std::vector<std::string> topics;
    std::uint64_t max = 0;
    bool refused = false;
  };
  ChannelBudget channel_budget(std::string_view org, const std::vector<std::string>& topics,
                               std::uint64_t max) const;

  // Counts a refusal in streamgate_quota_refusals_total{quota=<name>}.
  void count_refusal(Quota q);

  // Orgs this node holds state for (an override, a bucket not yet refilled, upload bytes of
  // today). An org with none of those is forgotten (swept at most once a second, by this or a
  // take), so this stays bounded by the active orgs.
  std::size_t tracked_orgs();

 private:
  struct BucketRate;
  struct Bucket;
  struct OrgState;
  OrgState& state_locked(std::string_view org);
  bool idle_locked(const OrgState& s, Clock::time_point now, std::int64_t day) const;
  void forget_if_idle_locked(std::string_view org, Clock::time_point now, std::int64_t day);
  void sweep_locked(Clock::time_point now, std::int64_t day);
  std::uint64_t limit_locked(const OrgState* s, Quota q) const;
  // The publish or chat bucket's shape for an org: its burst (the rate when unset) and rate,
  // each this node's equal share of the org's quota.
  BucketRate shared_rate_locked(const OrgState* s, Quota rate_quota, Quota burst_quota) const;
  // Refills org's publish bucket to `now` and returns it with its capacity; null when unlimited.
  OrgState* bucket_locked(std::string_view org, Clock::time_point now, double& capacity,
                          std::uint64_t& rate);
  // The egress bucket's shape for an org: this node's share of egressBytes, a second's worth.
  BucketRate egress_rate_locked(const OrgState* s) const;
  // Refills org's egress bucket to `now` and returns it with its rate; null when unlimited.
  OrgState* egress_bucket_locked(std::string_view org, Clock::time_point now, double& rate);
  // Whether some org may have an egress limit (the default, or an override naming one).
  void update_egress_limited_locked();

  QuotaOptions options_;
  std::array<metrics::Counter*, kQuotaCount> refusals_{};
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<OrgState>> orgs_;
  std::size_t overrides_ = 0;
  std::size_t egress_overrides_ = 0;  // overrides with a nonzero egressBytes
  // False while no org can have an egress limit: egress_allowance answers without the lock.
  std::atomic<bool> egress_limited_{false};
  std::string overrides_version_;
  Clock::time_point last_sweep_{};
  std::size_t nodes_ = 1;
  std::unordered_map<std::string, std::uint64_t> remote_connections_;
  std::unordered_map<std::string, std::vector<std::string>> local_channels_;   // sorted
  std::unordered_map<std::string, std::vector<std::string>> remote_channels_;  // sorted
};

}  // namespace sg::tenancy
