#include "tenancy/tenancy.hpp"

#include <algorithm>
#include <cmath>

namespace sg::tenancy {

namespace {

constexpr std::array<std::string_view, kQuotaCount> kNames = {
    "maxConnections",    "maxChannels", "publishRate", "publishBurst",
    "uploadBytesPerDay", "egressBytes", "chatRate",    "chatBurst",
};

// A paced connection asks again on its worker's next tick (100 ms); it is let write once the
// bucket holds this share of a second's worth (or all it wants), half a tick's refill, so it
// writes in chunks rather than a few bytes at a time and a late tick does not skip a turn.
constexpr double kEgressChunk = 0.05;

// A sweep walks every org under the lock; once a second keeps it off the publish path's cost.
constexpr auto kSweepEvery = std::chrono::seconds(1);

std::int64_t utc_day(Quotas::WallClock::time_point now) {
  const auto secs =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  return secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
}

}  // namespace

std::string_view quota_name(Quota q) {
  return kNames[static_cast<std::size_t>(q)];
}

std::optional<Quota> quota_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kQuotaCount; ++i) {
    if (kNames[i] == name) return static_cast<Quota>(i);
  }
  return std::nullopt;
}

bool Override::empty() const {
  return std::none_of(values.begin(), values.end(), [](const auto& v) { return v.has_value(); });
}

// A bucket's size and how fast it refills (tokens per second); 0 refill = no limit.
struct Quotas::BucketRate {
  double capacity = 0;
  double refill = 0;
};

// A token bucket. One nobody drew from is full, so `tokens` (as of `refilled`) means something
// only while `used`; a new limit starts it full again by clearing `used`.
struct Quotas::Bucket {
  bool used = false;
  double tokens = 0;
  Clock::time_point refilled{};

  // Brings the bucket to `now`.
  void refill_to(Clock::time_point now, BucketRate rate) {
    if (!used) {
      used = true;
      tokens = rate.capacity;
      refilled = now;
    } else if (now > refilled) {
      const double elapsed = std::chrono::duration<double>(now - refilled).count();
      tokens = std::min(rate.capacity, tokens + elapsed * rate.refill);
      refilled = now;
    }
    tokens = std::min(tokens, rate.capacity);  // an override may have shrunk the bucket
  }

  // Whether it is full at `now`: forgetting one that is not would hand the org a fresh burst.
  bool full_at(Clock::time_point now, BucketRate rate) const {
    if (!used || rate.refill == 0) return true;
    const double elapsed = std::chrono::duration<double>(now - refilled).count();
    return tokens + elapsed * rate.refill >= rate.capacity;
  }
};

struct Quotas::OrgState {
  std::optional<Override> override_;
  Bucket publish;
  Bucket chat;
  Bucket egress;  // a second's worth of this node's share of egressBytes
  std::int64_t upload_day = 0;
  std::uint64_t upload_bytes = 0;

  // An override set or changed: its limits start with full buckets.
  void refill_buckets() {
    publish.used = false;
    chat.used = false;
    egress.used = false;
  }
};

Quotas::Quotas(QuotaOptions options, metrics::Registry& metrics) : options_(options) {
  update_egress_limited_locked();
  for (std::size_t i = 0; i < kQuotaCount; ++i) {
    refusals_[i] = &metrics.counter("streamgate_quota_refusals_total",
                                    "Requests refused because an org was over a quota, by quota",
                                    {{"quota", std::string(kNames[i])}});
  }
  metrics.gauge_callback("streamgate_quota_orgs",
                         "Orgs with quota state on this node (overrides, publish buckets, "
                         "today's upload bytes)",
                         [this](std::vector<metrics::Registry::Sample>& out) {
                           out.push_back({{}, static_cast<double>(tracked_orgs())});
                         });
  metrics.gauge_callback("streamgate_quota_cluster_nodes",
                         "Live nodes the org quotas are shared among (1 with the memory broker)",
                         [this](std::vector<metrics::Registry::Sample>& out) {
                           std::lock_guard lock(mu_);
                           out.push_back({{}, static_cast<double>(nodes_)});
                         });
}

Quotas::~Quotas() = default;

std::uint64_t Quotas::limit_locked(const OrgState* s, Quota q) const {
  if (s && s->override_) {
    if (const auto& v = s->override_->values[static_cast<std::size_t>(q)]) return *v;
  }
  return options_.defaults[q];
}

std::uint64_t Quotas::limit(std::string_view org, Quota q) const {
  std::lock_guard lock(mu_);
  const auto it = orgs_.find(std::string(org));
  return limit_locked(it == orgs_.end() ? nullptr : it->second.get(), q);
}

Quotas::OrgState& Quotas::state_locked(std::string_view org) {
  auto& slot = orgs_[std::string(org)];
  if (!slot) slot = std::make_unique<OrgState>();
  return *slot;
}

Quotas::SetResult Quotas::set_override(const std::string& org, const Override& o) {
  if (o.empty()) {
    remove_override(org);
    return SetResult::kSet;
  }
  std::lock_guard lock(mu_);
  auto it = orgs_.find(org);
  const bool had = it != orgs_.end() && it->second->override_;
  if (!had && overrides_ >= options_.max_overrides) return SetResult::kTooManyOverrides;
  OrgState& s = state_locked(org);
  if (had && s.override_->values[static_cast<std::size_t>(Quota::kEgressBytes)].value_or(0) != 0) {
    --egress_overrides_;
  }
  s.override_ = o;
  if (o.values[static_cast<std::size_t>(Quota::kEgressBytes)].value_or(0) != 0) {
    ++egress_overrides_;
  }
  // New limits start with a full bucket of the new size, so an operator who raises a quota
  // sees it apply at once rather than after the old bucket refills.
  s.refill_buckets();
  if (!had) ++overrides_;
  update_egress_limited_locked();
  return SetResult::kSet;
}

std::optional<Override> Quotas::override_of(std::string_view org) const {
  std::lock_guard lock(mu_);
  const auto it = orgs_.find(std::string(org));
  if (it == orgs_.end()) return std::nullopt;
  return it->second->override_;
}

bool Quotas::remove_override(std::string_view org) {
  std::lock_guard lock(mu_);
  const auto it = orgs_.find(std::string(org));
  if (it == orgs_.end() || !it->second->override_) return false;
  if (it->second->override_->values[static_cast<std::size_t>(Quota::kEgressBytes)].value_or(0) !=
      0) {
    --egress_overrides_;
  }
  it->second->override_.reset();
  it->second->egress.used = false;
  --overrides_;
  update_egress_limited_locked();
  forget_if_idle_locked(org, Clock::now(), utc_day(WallClock::now()));
  return true;
}

void Quotas::replace_overrides(const std::unordered_map<std::string, Override>& all,
                               const std::string& version) {
  std::lock_guard lock(mu_);
  overrides_version_ = version;
  const auto now = Clock::now();
  const auto day = utc_day(WallClock::now());
  // egress_overrides_ counts the overrides that set egressBytes: egress_allowance skips its lock
  // while there are none and no flag sets it.
  const auto limits_egress = [](const Override& o) {
    return o.values[static_cast<std::size_t>(Quota::kEgressBytes)].value_or(0) != 0;
  };
  std::vector<std::string> dropped;
  for (auto& [org, state] : orgs_) {
    if (state->override_ && !all.contains(org)) {
      if (limits_egress(*state->override_)) --egress_overrides_;
      state->override_.reset();
      state->egress.used = false;
      --overrides_;
      dropped.push_back(org);
    }
  }
  for (const std::string& org : dropped) forget_if_idle_locked(org, now, day);
  for (const auto& [org, o] : all) {
    if (o.empty()) continue;
    auto it = orgs_.find(org);
    const bool had = it != orgs_.end() && it->second->override_;
    if (had && *it->second->override_ == o) continue;
    if (!had && overrides_ >= options_.max_overrides) continue;
    OrgState& s = state_locked(org);
    if (had && limits_egress(*s.override_)) --egress_overrides_;
    s.override_ = o;
    if (limits_egress(o)) ++egress_overrides_;
    s.refill_buckets();
    if (!had) ++overrides_;
  }
  update_egress_limited_locked();
}

std::string Quotas::overrides_version() const {
  std::lock_guard lock(mu_);
  return overrides_version_;
}

std::size_t Quotas::overrides() const {
  std::lock_guard lock(mu_);
  return overrides_;
}

Quotas::OrgState* Quotas::bucket_locked(std::string_view org, Clock::time_point now,
                                        double& capacity, std::uint64_t& rate) {
  const auto it = orgs_.find(std::string(org));
  const OrgState* existing = it == orgs_.end() ? nullptr : it->second.get();
  rate = limit_locked(existing, Quota::kPublishRate);
  if (rate == 0) return nullptr;
  const BucketRate shape = shared_rate_locked(existing, Quota::kPublishRate, Quota::kPublishBurst);
  capacity = shape.capacity;
  OrgState& s = state_locked(org);
  s.publish.refill_to(now, shape);
  return &s;
}

Quotas::BucketRate Quotas::shared_rate_locked(const OrgState* s, Quota rate_quota,
                                              Quota burst_quota) const {
  const std::uint64_t rate = limit_locked(s, rate_quota);
  if (rate == 0) return {};
  const std::uint64_t burst = limit_locked(s, burst_quota);
  // This node's share of the org's quota: each live node holds an equal lease of it.
  const double share = 1.0 / static_cast<double>(nodes_);
  return {std::max(1.0, static_cast<double>(burst != 0 ? burst : rate) * share),
          static_cast<double>(rate) * share};
}

Quotas::BucketRate Quotas::egress_rate_locked(const OrgState* s) const {
  const std::uint64_t rate = limit_locked(s, Quota::kEgressBytes);
  if (rate == 0) return {};
  // The same equal lease as the publish bucket: a second's worth of this node's share, so the
  // org's connections on all N nodes together write at most egressBytes per second.
  const double share = static_cast<double>(rate) / static_cast<double>(nodes_);
  return {std::max(1.0, share), share};
}

Decision Quotas::take_publish(std::string_view org, std::uint64_t events, Clock::time_point now) {
  const PublishTake take{org, events};
  return take_publish(std::span(&take, 1), now);
}

Decision Quotas::take_publish(std::span<const PublishTake> takes, Clock::time_point now,
                              std::string* refused_org) {
  std::lock_guard lock(mu_);
  sweep_locked(now, utc_day(WallClock::now()));
  // Check every org first (a batch names few orgs, usually one), then draw from each.
  for (std::size_t i = 0; i < takes.size(); ++i) {
    double capacity = 0;
    std::uint64_t rate = 0;
    OrgState* s = bucket_locked(takes[i].org, now, capacity, rate);
    if (s == nullptr) continue;
    std::uint64_t wanted_events = 0;
    for (const auto& t : takes) {
      if (t.org == takes[i].org) wanted_events += t.events;
    }
    const double wanted = static_cast<double>(wanted_events);
    if (wanted <= s->publish.tokens) continue;
    if (refused_org) *refused_org = std::string(takes[i].org);
    // A batch larger than the bucket never fits; the hint is then the time to a full bucket.
    const double missing = std::min(wanted, capacity) - s->publish.tokens;
    const double refill = static_cast<double>(rate) / static_cast<double>(nodes_);
    const auto wait = static_cast<std::int64_t>(std::ceil(missing / refill));
    return {false, std::max<std::int64_t>(1, wait)};
  }
  for (const auto& t : takes) {
    double capacity = 0;
    std::uint64_t rate = 0;
    if (OrgState* s = bucket_locked(t.org, now, capacity, rate)) {
      s->publish.tokens -= static_cast<double>(t.events);
    }
  }
  return {};
}

Decision Quotas::take_upload_bytes(std::string_view org, std::uint64_t bytes,
                                   WallClock::time_point now) {
  std::lock_guard lock(mu_);
  const std::int64_t day = utc_day(now);
  sweep_locked(Clock::now(), day);
  const auto it = orgs_.find(std::string(org));
  const OrgState* existing = it == orgs_.end() ? nullptr : it->second.get();
  const std::uint64_t quota = limit_locked(existing, Quota::kUploadBytesPerDay);
  if (quota == 0) return {};
  OrgState& s = state_locked(org);
  if (s.upload_day != day) {
    s.upload_day = day;
    s.upload_bytes = 0;
  }
  if (bytes > quota || s.upload_bytes > quota - bytes) {
    const auto secs =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    forget_if_idle_locked(org, Clock::now(), day);
    return {false, std::max<std::int64_t>(1, (day + 1) * 86400 - secs)};
  }
  s.upload_bytes += bytes;
  return {};
}

void Quotas::return_upload_bytes(std::string_view org, std::uint64_t bytes,
                                 WallClock::time_point now) {
  std::lock_guard lock(mu_);
  const auto it = orgs_.find(std::string(org));
  if (it == orgs_.end() || it->second->upload_day != utc_day(now)) return;
  it->second->upload_bytes -= std::min(bytes, it->second->upload_bytes);
}

Decision Quotas::take_chat(std::string_view org, Clock::time_point now) {
  std::lock_guard lock(mu_);
  sweep_locked(now, utc_day(WallClock::now()));
  const auto it = orgs_.find(std::string(org));
  const OrgState* existing = it == orgs_.end() ? nullptr : it->second.get();
  const BucketRate shape = shared_rate_locked(existing, Quota::kChatRate, Quota::kChatBurst);
  if (shape.refill == 0) return {};
  OrgState& s = existing ? *it->second : state_locked(org);
  s.chat.refill_to(now, shape);
  if (s.chat.tokens < 1.0) {
    const auto wait = static_cast<std::int64_t>(std::ceil((1.0 - s.chat.tokens) / shape.refill));
    return {false, std::max<std::int64_t>(1, wait)};
  }
  s.chat.tokens -= 1.0;
  return {};
}

void Quotas::update_egress_limited_locked() {
  egress_limited_.store(options_.defaults[Quota::kEgressBytes] != 0 || egress_overrides_ != 0,
                        std::memory_order_relaxed);
}

Quotas::OrgState* Quotas::egress_bucket_locked(std::string_view org, Clock::time_point now,
                                               double& rate) {
  const auto it = orgs_.find(std::string(org));
  const OrgState* existing = it == orgs_.end() ? nullptr : it->second.get();
  const BucketRate shape = egress_rate_locked(existing);
  rate = shape.refill;
  if (rate == 0) return nullptr;
  OrgState& s = existing ? *it->second : state_locked(org);
  s.egress.refill_to(now, shape);
  return &s;
}

std::size_t Quotas::egress_allowance(std::string_view org, std::size_t wanted,
                                     Clock::time_point now) {
  // Every connection's flush asks: nothing but this load while no org has an egress limit.
  if (!egress_limited_.load(std::memory_order_relaxed) || wanted == 0) return wanted;
  std::lock_guard lock(mu_);
  sweep_locked(now, utc_day(WallClock::now()));
  double rate = 0;
  OrgState* s = egress_bucket_locked(org, now, rate);
  if (s == nullptr) return wanted;
  const double chunk = std::max(1.0, std::min(static_cast<double>(wanted), rate * kEgressChunk));
  if (s->egress.tokens < chunk) {
    refusals_[static_cast<std::size_t>(Quota::kEgressBytes)]->inc();
    return 0;
  }
  return static_cast<std::size_t>(
      std::min(static_cast<double>(wanted), std::floor(s->egress.tokens)));
}

void Quotas::spend_egress(std::string_view org, std::size_t bytes, Clock::time_point now) {
  if (!egress_limited_.load(std::memory_order_relaxed) || bytes == 0) return;
  std::lock_guard lock(mu_);
  double rate = 0;
  if (OrgState* s = egress_bucket_locked(org, now, rate)) {
    s->egress.tokens -= static_cast<double>(bytes);
  }
}

void Quotas::set_cluster_view(std::size_t nodes,
                              std::unordered_map<std::string, std::uint64_t> remote_connections) {
  std::lock_guard lock(mu_);
  nodes_ = std::max<std::size_t>(1, nodes);
  remote_connections_ = std::move(remote_connections);
}

std::uint64_t Quotas::remote_connections(std::string_view org) const {
  std::lock_guard lock(mu_);
  const auto it = remote_connections_.find(std::string(org));
  return it == remote_connections_.end() ? 0 : it->second;
}

namespace {

std::vector<std::string> sorted_unique(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

bool holds(const std::vector<std::string>* sorted, const std::string& topic) {
  return sorted != nullptr && std::binary_search(sorted->begin(), sorted->end(), topic);
}

}  // namespace

void Quotas::set_local_channels(std::unordered_map<std::string, std::vector<std::string>> by_org) {
  for (auto& [org, topics] : by_org) topics = sorted_unique(std::move(topics));
  std::lock_guard lock(mu_);
  local_channels_ = std::move(by_org);
}

std::unordered_map<std::string, std::vector<std::string>> Quotas::local_channels_for_snapshot()
    const {
  std::lock_guard lock(mu_);
  std::unordered_map<std::string, std::vector<std::string>> out;
  for (const auto& [org, topics] : local_channels_) {
    const auto it = orgs_.find(org);
    const std::uint64_t max =
        limit_locked(it == orgs_.end() ? nullptr : it->second.get(), Quota::kMaxChannels);
    if (max == 0 || topics.empty()) continue;
    // Bounded by the quota: more than it only in a race, and more adds nothing to a refusal.
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(max, topics.size()));
    out.emplace(org, std::vector<std::string>(topics.begin(),
                                              topics.begin() + static_cast<std::ptrdiff_t>(n)));
  }
  return out;
}

void Quotas::set_remote_channels(std::unordered_map<std::string, std::vector<std::string>> by_org) {
  for (auto& [org, topics] : by_org) topics = sorted_unique(std::move(topics));
  std::lock_guard lock(mu_);
  remote_channels_ = std::move(by_org);
}

Quotas::ChannelBudget Quotas::channel_budget(std::string_view org,
                                             const std::vector<std::string>& topics,
                                             std::uint64_t max) const {
  if (max == 0) return {topics, 0, false};
  std::lock_guard lock(mu_);
  const std::string key(org);
  const auto r = remote_channels_.find(key);
  if (r == remote_channels_.end()) return {topics, max, false};
  const auto l = local_channels_.find(key);
  const std::vector<std::string>* local = l == local_channels_.end() ? nullptr : &l->second;
  std::uint64_t elsewhere = 0;  // held by another node, not by this one
  for (const std::string& t : r->second) {
    if (!holds(local, t)) ++elsewhere;
  }
  ChannelBudget out;
  for (const std::string& t : topics) {
    if (!holds(&r->second, t)) out.topics.push_back(t);
  }
  if (out.topics.empty()) return out;  // nothing new to the cluster: max 0 lets it through
  if (elsewhere < max) {
    out.max = max - elsewhere;
    return out;
  }
  // The others hold the whole quota: only channels this node already has may be added to.
  out.refused = std::any_of(out.topics.begin(), out.topics.end(),
                            [&](const std::string& t) { return !holds(local, t); });
  out.topics.clear();
  return out;
}

void Quotas::count_refusal(Quota q) {
  refusals_[static_cast<std::size_t>(q)]->inc();
}

std::size_t Quotas::tracked_orgs() {
  std::lock_guard lock(mu_);
  sweep_locked(Clock::now(), utc_day(WallClock::now()));
  return orgs_.size();
}

bool Quotas::idle_locked(const OrgState& s, Clock::time_point now, std::int64_t day) const {
  if (s.override_) return false;
  if (s.upload_day == day && s.upload_bytes > 0) return false;
  return s.publish.full_at(now,
                           shared_rate_locked(&s, Quota::kPublishRate, Quota::kPublishBurst)) &&
         s.chat.full_at(now, shared_rate_locked(&s, Quota::kChatRate, Quota::kChatBurst)) &&
         s.egress.full_at(now, egress_rate_locked(&s));
}

void Quotas::forget_if_idle_locked(std::string_view org, Clock::time_point now, std::int64_t day) {
  const auto it = orgs_.find(std::string(org));
  if (it != orgs_.end() && idle_locked(*it->second, now, day)) orgs_.erase(it);
}

void Quotas::sweep_locked(Clock::time_point now, std::int64_t day) {
  if (now - last_sweep_ < kSweepEvery) return;
  last_sweep_ = now;
  for (auto it = orgs_.begin(); it != orgs_.end();) {
    it = idle_locked(*it->second, now, day) ? orgs_.erase(it) : std::next(it);
  }
}

}  // namespace sg::tenancy
