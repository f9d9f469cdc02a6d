#include "hub/hub.hpp"

#include "log/log.hpp"
#include "metrics/metrics.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <chrono>
#include <deque>
#include <map>

namespace sg::hub {

namespace {
// One bit per worker in an entry's mask lets the broker's sink find the workers to post to
// without taking a lock per event.
[[maybe_unused]] constexpr std::size_t kMaxWorkers = 64;  // read by an assert only
// Live events held for one member while its history is read, before it goes live.
constexpr std::size_t kMaxHeldEvents = 10000;
// Deliveries an event gets in the handler it arrives in when none of its org's fan-out is waiting
// (about 50 us): an event to up to this many members goes out at once; a larger one continues in
// fan-out turns, round robin by org, each turn yielding the worker after kFanoutSlice.
constexpr std::size_t kFanoutNow = 256;
constexpr auto kFanoutSlice = std::chrono::microseconds(50);
// An org's share of a turn per visit of the round robin: an event to a few members waits for at
// most one such share of each other org's, not for all of a burst to thousands.
constexpr std::size_t kFanoutShare = 64;

bool wants(const broker::Event& event, std::string_view user) {
  return event.user.empty() || event.user == user;
}

// "<epoch>-<offset>" → "<epoch>".
std::string_view epoch_of(std::string_view id) {
  const auto dash = id.rfind('-');
  return dash == std::string_view::npos ? std::string_view() : id.substr(0, dash);
}
}  // namespace

// A channel this node subscribes to: the broker subscription and the workers that need it.
struct ChannelEntry {
  broker::Channel channel;
  std::string key;
  std::atomic<std::uint64_t> mask{0};
  // Guarded by Hub::registry_mu_.
  std::unique_ptr<broker::Subscription> subscription;
  bool ready = false;
  bool released = false;
  // local[w] is read and written only by worker w. Sized to the workers, not kMaxWorkers: an
  // entry per channel, and 64 slots were ~500 bytes of each.
  std::unique_ptr<LocalChannel*[]> local;
};

struct Slot {
  Member* member = nullptr;
  std::string_view user;        // the member's user; outlives the membership
  std::uint64_t delivered = 0;  // highest offset the member has, or was told it can't have
  std::uint64_t attach_id = 0;  // while not live: key into Shard::Attaches
  bool live = false;
};

struct LocalChannel {
  broker::Channel channel;
  std::string key;
  std::shared_ptr<ChannelEntry> entry;
  bool ready = false;
  std::uint64_t last_offset = 0;  // newest offset seen live on this worker
  std::string epoch;              // of the newest event seen live
  std::vector<Slot> slots;
  // While an event's fan-out spans turns (fanning): slots below `cursor` have been offered it.
  std::uint32_t cursor = 0;
  bool fanning = false;
  std::vector<std::uint64_t> waiting;  // attaches queued until the subscription is ready
  // Members whose `delivered` was taken from their resume position before this worker knew the
  // channel's epoch (the broker could not be read): it holds only if the epoch is theirs.
  std::vector<std::pair<Member*, std::string>> pins;
};

// A member joining a channel, from attach() until go_live().
struct PendingAttach {
  LocalChannel* channel = nullptr;
  std::uint32_t slot = 0;
  std::optional<broker::Position> resume;
  AttachDone done;
  std::vector<broker::EventPtr> held;
  std::size_t page_events = 0;  // 0: one read for the whole replay
  // The replay's position: every event up to it was handed out, or is known to be gone.
  std::uint64_t covered = 0;
  bool overflowed = false;  // more live events arrived than could be held: some were missed
  bool answered = false;    // `done` has run (or is posted) with the first page
  bool reread = false;      // the first page was read again (finish_attach says why)
  PageDone page_done;       // waiting for the page being read
};

struct Shard::Attaches {
  std::unordered_map<std::uint64_t, PendingAttach> by_id;
};

// An event whose fan-out on this worker has not finished; its progress is its channel's
// `cursor` (a channel belongs to one org, whose events are served in order, so one at a time).
struct Shard::FanoutTask {
  std::shared_ptr<ChannelEntry> entry;
  broker::EventPtr event;
};

// An org's waiting fan-out, oldest first.
struct Shard::OrgFanout {
  std::string org;
  std::deque<FanoutTask> tasks;
};

struct Hub::Counters {
  metrics::Counter& delivered;
  metrics::Counter& subscriptions_created;
  metrics::Histogram& latency;
};

// ---- Shard ----

Shard::Shard(Hub& hub, std::size_t index)
    : hub_(hub), index_(index), attaches_(std::make_unique<Attaches>()) {}

Shard::~Shard() = default;

Member::Membership* Shard::find_membership(Member& member, const std::string& key) {
  for (auto& m : member.memberships()) {
    if (m.channel->key == key) return &m;
  }
  return nullptr;
}

void Shard::attach(Member& member, std::string_view user, const broker::Channel& channel,
                   std::optional<broker::Position> resume, AttachDone done,
                   std::size_t page_events) {
  const std::string key = channel.key();
  const std::uint64_t id = next_attach_id_++;
  if (find_membership(member, key) != nullptr) {
    hub_.posts_[index_]([done = std::move(done)] { done(AttachResult{}); });
    return;
  }
  auto& local_ptr = channels_[key];
  if (!local_ptr) {
    local_ptr = std::make_unique<LocalChannel>();
    local_ptr->channel = channel;
    local_ptr->key = key;
    bool ready = false;
    local_ptr->entry = hub_.acquire(channel, index_, ready);
    local_ptr->entry->local[index_] = local_ptr.get();
    local_ptr->ready = ready;
  }
  LocalChannel& local = *local_ptr;
  const auto slot = static_cast<std::uint32_t>(local.slots.size());
  local.slots.push_back(Slot{&member, user, 0, id, false});
  member.memberships().push_back({&local, slot});
  PendingAttach pending;
  pending.channel = &local;
  pending.slot = slot;
  pending.covered = resume ? resume->offset : 0;
  pending.resume = std::move(resume);
  pending.done = std::move(done);
  pending.page_events = page_events;
  attaches_->by_id.emplace(id, std::move(pending));
  if (local.ready) {
    start_attach(id);
  } else {
    local.waiting.push_back(id);
  }
}

void Shard::start_attach(std::uint64_t attach_id) {
  auto it = attaches_->by_id.find(attach_id);
  if (it == attaches_->by_id.end()) return;
  PendingAttach& pending = it->second;
  LocalChannel& local = *pending.channel;
  if (!pending.resume) {
    // A plain join: everything from the subscription's start on this worker.
    local.slots[pending.slot].delivered = local.last_offset;
    pending.answered = true;
    complete(attach_id, AttachResult{});
    return;
  }
  read_page(attach_id);
}

void Shard::read_page(std::uint64_t attach_id) {
  PendingAttach& pending = attaches_->by_id.find(attach_id)->second;
  Post post = hub_.posts_[index_];
  hub_.broker_.history_page(
      pending.channel->channel, broker::Position{pending.resume->epoch, pending.covered},
      pending.page_events, [this, post, attach_id](Result<broker::History> history) {
        post([this, attach_id, history = std::move(history)] { on_page(attach_id, history); });
      });
}

void Shard::next_page(Member& member, const broker::Channel& channel, PageDone done) {
  Member::Membership* membership = find_membership(member, channel.key());
  if (membership == nullptr) return;
  const Slot& slot = membership->channel->slots[membership->slot];
  if (slot.live) return;
  auto it = attaches_->by_id.find(slot.attach_id);
  if (it == attaches_->by_id.end() || !it->second.answered || it->second.page_done) return;
  it->second.page_done = std::move(done);
  read_page(slot.attach_id);
}

void Shard::on_page(std::uint64_t attach_id, const Result<broker::History>& history) {
  auto it = attaches_->by_id.find(attach_id);
  if (it == attaches_->by_id.end()) return;  // the member left meanwhile
  PendingAttach& pending = it->second;
  if (!pending.answered) {
    finish_attach(attach_id, history);
    return;
  }
  ReplayPage page;
  if (!history) {
    page.failure = "unavailable";
  } else if (history->epoch != pending.resume->epoch || !history->complete) {
    // Events after the position were dropped (or the channel started over) while the member
    // was catching up: it can't have them any more, and it was told it would.
    page.failure = "interrupted";
  } else {
    page.more = !take_page(attach_id, *history, page.events);
  }
  PageDone done = std::move(pending.page_done);
  pending.page_done = nullptr;
  if (done) done(std::move(page));
}

// Hands the page's events the member wants to `out` and moves the replay's position past them.
// True once the replay has caught up: everything after the position is held or still to come.
bool Shard::take_page(std::uint64_t attach_id, const broker::History& history,
                      std::vector<broker::EventPtr>& out) {
  PendingAttach& pending = attaches_->by_id.find(attach_id)->second;
  Slot& slot = pending.channel->slots[pending.slot];
  for (const auto& event : history.events) {
    if (event->offset > pending.covered && wants(*event, slot.user)) out.push_back(event);
  }
  // An empty page reached the newest event, or what lay between was dropped (`complete` tells).
  const std::uint64_t reached =
      history.events.empty() ? history.last_offset : history.events.back()->offset;
  pending.covered = std::max(pending.covered, reached);
  slot.delivered = std::max(slot.delivered, pending.covered);
  // Held events the page already gave would be duplicates; dropping them keeps the hold small.
  std::erase_if(pending.held,
                [&](const broker::EventPtr& e) { return e->offset <= pending.covered; });
  return pending.covered >= history.last_offset;
}

void Shard::finish_attach(std::uint64_t attach_id, const Result<broker::History>& history) {
  PendingAttach& pending = attaches_->by_id.find(attach_id)->second;
  LocalChannel& local = *pending.channel;
  if (history && !local.epoch.empty() && history->epoch != local.epoch && !pending.reread) {
    // The broker's history and this worker's live events disagree on the channel's epoch. Either
    // the read was answered before the channel moved to the epoch already seen live (it is stale,
    // and its offsets would hold back that epoch's events), or the channel has moved on and its
    // first events are still on their way here. A read made now can only be the second case.
    pending.reread = true;
    read_page(attach_id);
    return;
  }
  pending.answered = true;
  Slot& slot = local.slots[pending.slot];
  const broker::Position& from = *pending.resume;
  AttachResult result;
  if (!history) {
    result.recovered = false;
    result.reason = "unavailable";
    // The client has everything up to its position, and whatever the subscription catches up on
    // once the broker is back must not give it any of that again. The offset counts only in the
    // client's epoch: when this worker hasn't seen the channel's yet, the first live event tells.
    slot.delivered = local.last_offset;
    if (local.epoch == from.epoch) {
      slot.delivered = std::max(slot.delivered, from.offset);
    } else if (local.epoch.empty()) {
      slot.delivered = from.offset;
      local.pins.emplace_back(slot.member, from.epoch);
    }
    complete(attach_id, std::move(result));
    return;
  }
  const broker::History& h = *history;
  if (h.epoch != from.epoch) {
    result.recovered = false;
    result.reason = "epoch_changed";
    slot.delivered = std::max(slot.delivered, h.last_offset);
  } else {
    if (!h.complete) {
      result.recovered = false;
      result.reason = from.offset > h.last_offset ? "unknown_id" : "too_old";
    }
    // An id ahead of the channel in the channel's own epoch. A counter that went back below what
    // this node handed out was moved to a new epoch by the broker before it answered (the branch
    // above); here no node that knows has acted yet, or the id is forged. The client may hold
    // events under every offset up to its id, so none of those is sent to it: a forged id costs
    // only its own client events, a real one never brings a second event under an id. The
    // replay's position stays at the id; it counts only while the channel keeps this epoch.
    if (from.offset > h.last_offset && local.epoch.empty()) {
      local.pins.emplace_back(slot.member, from.epoch);
    }
    result.more = !take_page(attach_id, h, result.replay);
    if (pending.page_events == 0) result.more = false;
  }
  // The position now counts in the broker's epoch, which this worker has not seen live yet: it
  // must survive the switch to it (begin_event).
  if (!local.epoch.empty() && h.epoch != local.epoch) local.pins.emplace_back(slot.member, h.epoch);
  complete(attach_id, std::move(result));
}

void Shard::complete(std::uint64_t attach_id, AttachResult result) {
  // Always asynchronous, so a caller attaching several channels never sees its callback run
  // inside attach().
  hub_.posts_[index_]([this, attach_id, result = std::move(result)]() mutable {
    auto it = attaches_->by_id.find(attach_id);
    if (it == attaches_->by_id.end()) return;
    AttachDone done = it->second.done;
    done(std::move(result));
  });
}

bool Shard::go_live(Member& member, const broker::Channel& channel) {
  Member::Membership* membership = find_membership(member, channel.key());
  if (membership == nullptr) return true;
  LocalChannel& local = *membership->channel;
  Slot& slot = local.slots[membership->slot];
  if (slot.live) return true;
  auto it = attaches_->by_id.find(slot.attach_id);
  bool ok = true;
  if (it != attaches_->by_id.end()) {
    ok = !it->second.overflowed;
    for (const auto& event : it->second.held) {
      if (event->offset <= slot.delivered) continue;
      slot.delivered = event->offset;
      member.deliver(event);
    }
    attaches_->by_id.erase(it);
  }
  slot.live = true;
  return ok;
}

void Shard::on_event(const std::shared_ptr<ChannelEntry>& entry, const broker::EventPtr& event) {
  LocalChannel* local = entry->local[index_];
  if (local == nullptr) return;
  if (event->offset == 0) return deliver_ephemeral(*local, event);
  FanoutTask task{entry, event};
  if (!fanout_by_org_.contains(entry->channel.org)) {
    // Nothing of this org waiting (so nothing of this channel, whose events go in order): the
    // start of its fan-out now, all of it if it is small, whatever other orgs have waiting.
    std::size_t budget = kFanoutNow;
    if (fan_out(task, budget)) return;
  }
  enqueue_fanout(std::move(task));
}

bool Shard::begin_event(LocalChannel& local, const broker::Event& event) {
  const std::string_view epoch = epoch_of(event.id);
  if (epoch != local.epoch) {
    // The broker lost the channel's history (a Redis without its data) and counts from 1 again:
    // offsets of the old epoch say nothing about the new one, except for members whose position
    // was read in the new one (pinned to it).
    std::vector<std::pair<std::uint32_t, std::uint64_t>> kept;
    for (const auto& [member, pinned] : local.pins) {
      Member::Membership* m = find_membership(*member, local.key);
      if (m == nullptr) continue;
      if (pinned == epoch) kept.emplace_back(m->slot, local.slots[m->slot].delivered);
      local.slots[m->slot].delivered = 0;
    }
    if (!local.epoch.empty()) {
      local.last_offset = 0;
      for (Slot& slot : local.slots) slot.delivered = 0;
    }
    for (const auto& [slot, delivered] : kept) local.slots[slot].delivered = delivered;
    local.pins.clear();
    local.epoch.assign(epoch);
  }
  if (event.offset <= local.last_offset) return false;
  local.last_offset = event.offset;
  return true;
}

bool Shard::fan_out(FanoutTask& task, std::size_t& budget) {
  LocalChannel* local = task.entry->local[index_];
  if (local == nullptr) return true;  // its last member here left
  const broker::EventPtr& event = task.event;
  if (!local->fanning) {
    if (!begin_event(*local, *event)) return true;
    local->fanning = true;
    local->cursor = 0;
  }
  std::uint64_t delivered = 0;
  while (local->cursor < local->slots.size() && budget > 0) {
    Slot& slot = local->slots[local->cursor++];
    --budget;
    if (event->offset <= slot.delivered || !wants(*event, slot.user)) continue;
    if (!slot.live) {
      auto it = attaches_->by_id.find(slot.attach_id);
      if (it == attaches_->by_id.end()) continue;
      PendingAttach& pending = it->second;
      if (pending.held.size() < kMaxHeldEvents) {
        pending.held.push_back(event);
      } else if (!pending.overflowed) {
        // A replay's hold only keeps what came after its last page, so this is a member that
        // stopped reading (or reads slower than the channel publishes): told now, not at go_live.
        pending.overflowed = true;
        slot.member->hold_overflowed();
      }
      continue;
    }
    slot.delivered = event->offset;
    slot.member->deliver(event);
    ++delivered;
  }
  if (delivered > 0) hub_.counters_->delivered.inc(delivered);
  if (delivered > 0 && hub_.options_.on_delivered) {
    hub_.options_.on_delivered(index_, local->channel.org, delivered,
                               delivered * event->body.size());
  }
  if (local->cursor < local->slots.size()) return false;
  local->fanning = false;
  const auto age = std::chrono::system_clock::now() - event->published_at;
  hub_.counters_->latency.observe(std::chrono::duration<double>(age).count());
  return true;
}

void Shard::enqueue_fanout(FanoutTask task) {
  const std::string& org = task.entry->channel.org;
  OrgFanout*& queue = fanout_by_org_[org];
  if (queue == nullptr) {
    fanout_.push_back(std::make_unique<OrgFanout>());
    queue = fanout_.back().get();
    queue->org = org;
  }
  queue->tasks.push_back(std::move(task));
  if (!fanout_scheduled_) {
    fanout_scheduled_ = true;
    hub_.posts_[index_]([this] { fan_turn(); });
  }
}

void Shard::fan_turn() {
  fanout_scheduled_ = false;
  // Round robin over the orgs with fan-out waiting, a share each, until the turn's time is
  // spent; what is left waits behind the input that arrived meanwhile.
  const auto deadline = std::chrono::steady_clock::now() + kFanoutSlice;
  while (!fanout_.empty() && std::chrono::steady_clock::now() < deadline) {
    if (fanout_next_ >= fanout_.size()) fanout_next_ = 0;
    OrgFanout& queue = *fanout_[fanout_next_];
    std::size_t share = kFanoutShare;
    while (share > 0 && !queue.tasks.empty()) {
      if (!fan_out(queue.tasks.front(), share)) break;
      queue.tasks.pop_front();
    }
    if (!queue.tasks.empty()) {
      ++fanout_next_;
      continue;
    }
    fanout_by_org_.erase(queue.org);
    if (fanout_next_ + 1 != fanout_.size()) fanout_[fanout_next_] = std::move(fanout_.back());
    fanout_.pop_back();
  }
  if (!fanout_.empty() && !fanout_scheduled_) {
    fanout_scheduled_ = true;
    hub_.posts_[index_]([this] { fan_turn(); });
  }
}

// An ephemeral event has no offset to order or resume by: live members get it now, members
// still replaying history never do (it would be stale by the time they go live).
void Shard::deliver_ephemeral(LocalChannel& local, const broker::EventPtr& event) {
  std::uint64_t delivered = 0;
  for (Slot& slot : local.slots) {
    if (!slot.live || slot.member == nullptr || !wants(*event, slot.user)) continue;
    slot.member->deliver(event);
    ++delivered;
  }
  if (delivered > 0) hub_.counters_->delivered.inc(delivered);
}

void Shard::on_ready(const std::shared_ptr<ChannelEntry>& entry) {
  LocalChannel* local = entry->local[index_];
  if (local == nullptr || local->ready) return;
  local->ready = true;
  auto waiting = std::move(local->waiting);
  local->waiting.clear();
  for (std::uint64_t id : waiting) start_attach(id);
}

void Shard::detach(Member& member, const broker::Channel& channel) {
  const std::string key = channel.key();
  auto& memberships = member.memberships();
  for (std::size_t i = 0; i < memberships.size(); ++i) {
    if (memberships[i].channel->key != key) continue;
    LocalChannel& local = *memberships[i].channel;
    const std::uint32_t slot = memberships[i].slot;
    memberships[i] = memberships.back();
    memberships.pop_back();
    remove_slot(local, slot);
    return;
  }
}

void Shard::detach_all(Member& member) {
  auto& memberships = member.memberships();
  while (!memberships.empty()) {
    const auto m = memberships.back();
    memberships.pop_back();
    remove_slot(*m.channel, m.slot);
  }
}

void Shard::move_slot(LocalChannel& local, std::uint32_t from, std::uint32_t to) {
  local.slots[to] = local.slots[from];
  // The moved member's membership must follow its slot.
  Member& moved = *local.slots[to].member;
  for (auto& m : moved.memberships()) {
    if (m.channel == &local) m.slot = to;
  }
  auto it = attaches_->by_id.find(local.slots[to].attach_id);
  if (it != attaches_->by_id.end()) it->second.slot = to;
}

void Shard::remove_slot(LocalChannel& local, std::uint32_t slot) {
  attaches_->by_id.erase(local.slots[slot].attach_id);
  std::erase_if(local.pins, [&](const auto& pin) { return pin.first == local.slots[slot].member; });
  if (local.fanning && slot < local.cursor) {
    // A fan-out is under way: the hole is filled from the last slot already offered the event,
    // so the one that fills that hole below (not yet offered it) keeps its turn.
    const std::uint32_t offered = local.cursor - 1;
    if (slot != offered) move_slot(local, offered, slot);
    slot = offered;
    --local.cursor;
  }
  const auto last = static_cast<std::uint32_t>(local.slots.size() - 1);
  if (slot != last) move_slot(local, last, slot);
  local.slots.pop_back();
  if (!local.slots.empty()) return;
  local.entry->local[index_] = nullptr;
  hub_.release_channel(local.entry, index_);
  for (std::uint64_t id : local.waiting) attaches_->by_id.erase(id);
  channels_.erase(local.key);  // destroys `local`
}

// ---- the producer API's index ----

namespace {
std::string org_user_key(const std::string& org, const std::string& user) {
  std::string key = org;
  key.push_back('\0');
  key += user;
  return key;
}
}  // namespace

void Shard::enroll(Member& member, const std::string& org, const std::string& user) {
  by_user_[org_user_key(org, user)].push_back(&member);
}

void Shard::leave(Member& member, const std::string& org, const std::string& user) {
  auto it = by_user_.find(org_user_key(org, user));
  if (it == by_user_.end()) return;
  std::erase(it->second, &member);
  if (it->second.empty()) by_user_.erase(it);
}

std::size_t Shard::cut_off(const Cutoff& cut) {
  // Copied first: a member that closes leaves the index while it is walked.
  std::vector<Member*> targets;
  if (!cut.user.empty()) {
    if (auto it = by_user_.find(org_user_key(cut.org, cut.user)); it != by_user_.end()) {
      targets = it->second;
    }
  } else {
    const std::string prefix = org_user_key(cut.org, {});
    for (const auto& [key, members] : by_user_) {
      if (key.starts_with(prefix)) targets.insert(targets.end(), members.begin(), members.end());
    }
  }
  std::size_t closed = 0;
  for (Member* member : targets) {
    if (member->cut_off(cut)) ++closed;
  }
  return closed;
}

void Shard::describe_user(const std::string& org, const std::string& user, std::size_t max,
                          std::vector<std::string>& out) const {
  auto it = by_user_.find(org_user_key(org, user));
  if (it == by_user_.end()) return;
  for (const Member* member : it->second) {
    if (out.size() >= max) return;
    std::string text;
    member->describe(text);
    if (!text.empty()) out.push_back(std::move(text));
  }
}

void Shard::channel_counts(const std::string& org,
                           std::vector<std::pair<std::string, std::uint64_t>>& out) const {
  for (const auto& [key, local] : channels_) {
    if (local->channel.org == org) out.emplace_back(local->channel.topic, local->slots.size());
  }
}

// ---- Revocations ----

Revocations::Add Revocations::add(const broker::Revocation& r,
                                  std::chrono::system_clock::time_point now) {
  std::lock_guard lock(mu_);
  const std::string key = org_user_key(r.org, r.user);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= max_) purge(now);
    if (entries_.size() >= max_) return Add::kFull;
    it = entries_.emplace(key, Entry{r.issued_before, r.expires}).first;
  } else {
    it->second.issued_before = std::max(it->second.issued_before, r.issued_before);
    it->second.expires = std::max(it->second.expires, r.expires);
  }
  count_.store(entries_.size(), std::memory_order_relaxed);
  return Add::kAdded;
}

bool Revocations::revoked(const std::string& org, const std::string& user,
                          std::optional<std::int64_t> issued_at,
                          std::chrono::system_clock::time_point now) const {
  if (count_.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard lock(mu_);
  auto it = entries_.find(org_user_key(org, user));
  if (it == entries_.end() || it->second.expires <= now) return false;
  return !issued_at || *issued_at < it->second.issued_before;
}

void Revocations::purge(std::chrono::system_clock::time_point now) {
  std::erase_if(entries_, [now](const auto& e) { return e.second.expires <= now; });
  count_.store(entries_.size(), std::memory_order_relaxed);
}

// ---- Hub ----

Hub::Hub(broker::Broker& broker, std::vector<Post> workers, HubOptions options,
         metrics::Registry& metrics)
    : broker_(broker),
      posts_(std::move(workers)),
      options_(options),
      revocations_(options.max_revocations) {
  assert(!posts_.empty() && posts_.size() <= kMaxWorkers);
  for (std::size_t i = 0; i < posts_.size(); ++i) {
    shards_.push_back(std::make_unique<Shard>(*this, i));
  }
  counters_ = std::make_unique<Counters>(Counters{
      metrics.counter("streamgate_events_delivered_total",
                      "Events handed to connections (one per recipient)"),
      metrics.counter("streamgate_subscriptions_created_total",
                      "Broker subscriptions this node created"),
      metrics.histogram("streamgate_delivery_latency_seconds",
                        "Time from publish to fan-out on a worker, per event and worker",
                        metrics::exponential_bounds(0.0001, 2, 18)),
  });
  metrics.gauge_callback("streamgate_subscriptions",
                         "Broker subscriptions held by this node, one per (org, channel)",
                         [this](std::vector<metrics::Registry::Sample>& out) {
                           std::lock_guard lock(registry_mu_);
                           out.push_back({{}, static_cast<double>(registry_.size())});
                         });
  metrics.gauge_callback("streamgate_connections_active", "Open WebSocket connections",
                         [this](std::vector<metrics::Registry::Sample>& out) {
                           std::lock_guard lock(conn_mu_);
                           out.push_back({{}, static_cast<double>(total_connections_)});
                         });
}

Hub::~Hub() {
  // Unsubscribe outside the lock, as release_channel does: a broker may be calling on_ready,
  // which takes it, from its own thread.
  std::vector<std::unique_ptr<broker::Subscription>> subscriptions;
  {
    std::lock_guard lock(registry_mu_);
    for (auto& [key, entry] : registry_) {
      entry->released = true;
      subscriptions.push_back(std::move(entry->subscription));
    }
    registry_.clear();
  }
  subscriptions.clear();
}

std::shared_ptr<ChannelEntry> Hub::acquire(const broker::Channel& channel, std::size_t worker,
                                           bool& ready) {
  const std::string key = channel.key();
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard lock(registry_mu_);
    auto& slot = registry_[key];
    if (slot) {
      slot->mask.fetch_or(std::uint64_t{1} << worker, std::memory_order_acq_rel);
      ready = slot->ready;
      return slot;
    }
    slot = std::make_shared<Entry>();
    if (counts_for_quota(channel)) ++channels_by_org_[channel.org];
    slot->local = std::make_unique<LocalChannel*[]>(shards_.size());
    slot->channel = channel;
    slot->key = key;
    slot->mask.store(std::uint64_t{1} << worker, std::memory_order_release);
    entry = slot;
  }
  // Subscribe outside the lock: a broker may call on_ready (which takes the lock) inline.
  std::weak_ptr<Entry> weak = entry;
  auto sink = [this, weak](const broker::EventPtr& event) {
    auto e = weak.lock();
    if (!e) return;
    std::uint64_t mask = e->mask.load(std::memory_order_acquire);
    while (mask != 0) {
      const int w = std::countr_zero(mask);
      mask &= mask - 1;
      Shard* shard = shards_[static_cast<std::size_t>(w)].get();
      posts_[static_cast<std::size_t>(w)]([shard, e, event] { shard->on_event(e, event); });
    }
  };
  auto on_ready = [this, weak] {
    auto e = weak.lock();
    if (!e) return;
    std::uint64_t mask;
    {
      std::lock_guard lock(registry_mu_);
      e->ready = true;
      mask = e->mask.load(std::memory_order_acquire);
    }
    while (mask != 0) {
      const int w = std::countr_zero(mask);
      mask &= mask - 1;
      Shard* shard = shards_[static_cast<std::size_t>(w)].get();
      posts_[static_cast<std::size_t>(w)]([shard, e] { shard->on_ready(e); });
    }
  };
  auto subscription = broker_.subscribe(channel, std::move(sink), std::move(on_ready));
  counters_->subscriptions_created.inc();
  log::info("hub", "subscription created", {{"org", channel.org}, {"service", channel.topic}});
  {
    std::lock_guard lock(registry_mu_);
    if (!entry->released) {
      entry->subscription = std::move(subscription);
      ready = entry->ready;
      return entry;
    }
  }
  // Released by every worker while subscribing (cannot happen for the caller's own worker,
  // which still holds it, but keeps the invariant obvious).
  ready = false;
  return entry;
}

void Hub::release_channel(const std::shared_ptr<ChannelEntry>& entry, std::size_t worker) {
  std::unique_ptr<broker::Subscription> subscription;
  {
    std::lock_guard lock(registry_mu_);
    const std::uint64_t left =
        entry->mask.fetch_and(~(std::uint64_t{1} << worker), std::memory_order_acq_rel) &
        ~(std::uint64_t{1} << worker);
    if (left != 0) return;
    entry->released = true;
    subscription = std::move(entry->subscription);
    auto it = registry_.find(entry->key);
    if (it != registry_.end() && it->second == entry) {
      registry_.erase(it);
      if (counts_for_quota(entry->channel)) {
        auto org = channels_by_org_.find(entry->channel.org);
        if (org != channels_by_org_.end() && --org->second == 0) channels_by_org_.erase(org);
      }
    }
  }
  subscription.reset();  // unsubscribes; the sink is not called after this returns
  log::info("hub", "subscription removed",
            {{"org", entry->channel.org}, {"service", entry->channel.topic}});
}

bool Hub::counts_for_quota(const broker::Channel& channel) const {
  return !options_.quota_exempt || !options_.quota_exempt(channel.topic);
}

bool Hub::channels_within_quota(const std::string& org, const std::vector<std::string>& topics,
                                std::uint64_t max) const {
  if (max == 0) return true;
  std::lock_guard lock(registry_mu_);
  const auto it = channels_by_org_.find(org);
  std::uint64_t held = it == channels_by_org_.end() ? 0 : it->second;
  for (std::size_t i = 0; i < topics.size(); ++i) {
    const broker::Channel channel{org, topics[i]};
    if (!counts_for_quota(channel) || registry_.contains(channel.key())) continue;
    if (std::find(topics.begin(), topics.begin() + static_cast<std::ptrdiff_t>(i), topics[i]) !=
        topics.begin() + static_cast<std::ptrdiff_t>(i)) {
      continue;  // named twice
    }
    if (++held > max) return false;
  }
  return true;
}

broker::Channel online_scope(const std::string& org) {
  return broker::Channel{org, "online"};
}

Hub::Admission Hub::admit(const std::string& org, const std::string& user, std::uint64_t org_max) {
  std::lock_guard lock(conn_mu_);
  if (options_.max_connections != 0 && total_connections_ >= options_.max_connections) {
    return Admission::kNodeLimit;
  }
  if (org_max != 0) {
    const auto it = conns_by_org_.find(org);
    if (it != conns_by_org_.end() && it->second >= org_max) return Admission::kOrgLimit;
  }
  std::string user_key = org;
  user_key.push_back('\0');
  user_key += user;
  auto& per_user = conns_by_user_[user_key];
  if (options_.max_connections_per_user != 0 && per_user >= options_.max_connections_per_user) {
    if (per_user == 0) conns_by_user_.erase(user_key);
    return Admission::kUserLimit;
  }
  ++per_user;
  ++conns_by_org_[org];
  ++total_connections_;
  if (options_.on_connection) options_.on_connection(org, true);
  // Under the lock, so the broker sees one user's counts in the order they happened.
  broker_.set_presence(online_scope(org), user, static_cast<std::uint32_t>(per_user));
  return Admission::kAdmitted;
}

void Hub::release(const std::string& org, const std::string& user) {
  std::lock_guard lock(conn_mu_);
  std::string user_key = org;
  user_key.push_back('\0');
  user_key += user;
  if (auto it = conns_by_user_.find(user_key); it != conns_by_user_.end()) {
    const std::uint64_t left = --it->second;
    if (left == 0) conns_by_user_.erase(it);
    broker_.set_presence(online_scope(org), user, static_cast<std::uint32_t>(left));
  }
  if (auto it = conns_by_org_.find(org); it != conns_by_org_.end()) {
    if (options_.on_connection) options_.on_connection(org, false);
    if (--it->second == 0) conns_by_org_.erase(it);
  }
  if (total_connections_ > 0) --total_connections_;
}

PoolStats Hub::stats() const {
  PoolStats stats;
  {
    std::lock_guard lock(conn_mu_);
    stats.total_connections = total_connections_;
    stats.total_orgs = conns_by_org_.size();
    stats.connections_by_org.assign(conns_by_org_.begin(), conns_by_org_.end());
  }
  std::sort(stats.connections_by_org.begin(), stats.connections_by_org.end());
  {
    std::lock_guard lock(registry_mu_);
    stats.total_subscriptions = registry_.size();
  }
  return stats;
}

std::uint64_t Hub::events_delivered() const {
  return counters_->delivered.value();
}

namespace {
// Runs `each` on every worker and hands the results, in worker order, to `done` on the thread
// of the last worker to finish.
template <class T>
void gather(const std::vector<Post>& posts, std::vector<std::unique_ptr<Shard>>& shards,
            std::function<T(Shard&)> each, std::function<void(std::vector<T>)> done) {
  struct State {
    std::mutex mu;
    std::vector<T> results;
    std::size_t waiting = 0;
    std::function<T(Shard&)> each;
    std::function<void(std::vector<T>)> done;
  };
  auto state = std::make_shared<State>();
  state->results.resize(posts.size());
  state->waiting = posts.size();
  state->each = std::move(each);
  state->done = std::move(done);
  for (std::size_t i = 0; i < posts.size(); ++i) {
    posts[i]([state, i, shard = shards[i].get()] {
      T result = state->each(*shard);
      bool last = false;
      {
        std::lock_guard lock(state->mu);
        state->results[i] = std::move(result);
        last = --state->waiting == 0;
      }
      if (last) state->done(std::move(state->results));
    });
  }
}
}  // namespace

void Hub::cut_off(Cutoff cut, std::function<void(std::size_t)> done) {
  gather<std::size_t>(
      posts_, shards_, [cut = std::move(cut)](Shard& shard) { return shard.cut_off(cut); },
      [done = std::move(done)](std::vector<std::size_t> counts) {
        std::size_t total = 0;
        for (std::size_t n : counts) total += n;
        if (done) done(total);
      });
}

void Hub::describe_user(std::string org, std::string user, std::size_t max,
                        std::function<void(std::vector<std::string>)> done) {
  gather<std::vector<std::string>>(
      posts_, shards_,
      [org = std::move(org), user = std::move(user), max](Shard& shard) {
        std::vector<std::string> out;
        shard.describe_user(org, user, max, out);
        return out;
      },
      [max, done = std::move(done)](std::vector<std::vector<std::string>> parts) {
        std::vector<std::string> all;
        for (auto& part : parts) {
          for (auto& text : part) {
            if (all.size() < max) all.push_back(std::move(text));
          }
        }
        if (done) done(std::move(all));
      });
}

void Hub::channel_counts(
    std::string org, std::function<void(std::vector<std::pair<std::string, std::uint64_t>>)> done) {
  using Counts = std::vector<std::pair<std::string, std::uint64_t>>;
  gather<Counts>(
      posts_, shards_,
      [org = std::move(org)](Shard& shard) {
        Counts out;
        shard.channel_counts(org, out);
        return out;
      },
      [done = std::move(done)](std::vector<Counts> parts) {
        std::map<std::string, std::uint64_t> sums;
        for (const auto& part : parts) {
          for (const auto& [topic, n] : part) sums[topic] += n;
        }
        if (done) done(Counts(sums.begin(), sums.end()));
      });
}

}  // namespace sg::hub
