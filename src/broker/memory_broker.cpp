// The embedded broker. A map of channel states behind a shared_mutex that is only held to find
// or create a state; everything about one channel (offsets, history, idempotency keys, sinks)
// sits behind that channel's own mutex, so publishers to different channels never wait on
// each other. Sinks run while the channel mutex is held, which is what orders them by offset
// and makes "subscribed before publish" mean "delivered".
#include "broker/broker.hpp"
#include "broker/presence_table.hpp"

#include "protocol/protocol.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace sg::broker {
namespace {

using Clock = std::chrono::system_clock;

// How often ordinary traffic pays for a scan that drops expired history and idle channels.
// Channels nobody touches again are only reclaimed by such a scan.
constexpr std::chrono::steady_clock::duration kSweepInterval = std::chrono::seconds(1);

// An event's "timestamp": core::format_rfc3339's text, which (gmtime_r and snprintf) cost a
// publish about 3,000 instructions. The date and time up to the second are reused while the
// second lasts; only the milliseconds are written per event. Per thread, so publishers on
// different workers share no lock.
std::string_view timestamp_text(Clock::time_point now) {
  thread_local std::int64_t cached_second = -1;
  thread_local std::string text;
  const std::int64_t ms = core::unix_millis(now);
  if (ms < 0) {
    text = core::format_rfc3339(now);
    cached_second = -1;
    return text;
  }
  if (ms / 1000 != cached_second) {
    text = core::format_rfc3339(now);  // ends in ".mmmZ"
    cached_second = ms / 1000;
    return text;
  }
  auto millis = static_cast<unsigned>(ms % 1000);
  char* digits = text.data() + text.size() - 4;
  digits[2] = static_cast<char>('0' + millis % 10);
  millis /= 10;
  digits[1] = static_cast<char>('0' + millis % 10);
  digits[0] = static_cast<char>('0' + millis / 10);
  return text;
}

bool valid(const Channel& channel) {
  return !channel.org.empty() && !channel.topic.empty();
}

// Length-prefixed rather than Channel::key(): org "a/b" + topic "c" must not meet org "a" +
// topic "b/c" (orgs come from producers as arbitrary strings).
std::string map_key(const Channel& channel) {
  std::string key;
  key.reserve(channel.org.size() + channel.topic.size() + 8);
  core::append_decimal(key, channel.org.size());
  key.push_back(':');
  key += channel.org;
  key += channel.topic;
  return key;
}

std::string base36(std::uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string out;
  do {
    out.push_back(kDigits[v % 36]);
    v /= 36;
  } while (v != 0);
  std::reverse(out.begin(), out.end());
  return out;
}

struct ChannelState {
  ChannelState(std::string map_key, std::string channel_epoch)
      : key(std::move(map_key)), epoch(std::move(channel_epoch)) {}

  const std::string key;
  const std::string epoch;

  std::mutex mutex;
  // Everything below is guarded by mutex.
  bool removed = false;  // erased from the map; whoever holds it must look the channel up again
  std::uint64_t last_offset = 0;
  std::deque<EventPtr> events;  // contiguous offsets ending at last_offset, oldest first
  std::vector<std::pair<std::uint64_t, Sink>> sinks;
  std::uint64_t next_sink_id = 1;
  std::unordered_map<std::string, std::string> keys;  // idempotency key → first id
  struct KeyAge {
    // Points at the key inside `keys`; node-based, so it stays valid until that entry is erased.
    const std::string* key;
    Clock::time_point at;
  };
  std::deque<KeyAge> key_order;  // insertion order, so also age order
};

using StatePtr = std::shared_ptr<ChannelState>;

// Every callback of this broker runs inside one of its calls, on the caller's thread, so
// quiesce() closes the gate and waits for the calls already inside to leave: after that no
// sink, on_ready, done or stats source can be running or start.
class CallGate {
 public:
  // Holds the gate open for one call; false when the broker is quiesced.
  class Pass {
   public:
    explicit Pass(CallGate& gate) : gate_(gate), open_(gate.enter()) {}
    ~Pass() {
      if (open_) gate_.leave();
    }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    explicit operator bool() const { return open_; }

   private:
    CallGate& gate_;
    const bool open_;
  };

  // Idempotent. Deadlocks if called from inside a call (a callback): documented on quiesce().
  void close() {
    closed_.store(true);
    std::unique_lock lock(mutex_);
    drained_.wait(lock, [this] { return calls_.load() == 0; });
  }

 private:
  // Sequentially consistent on both sides: either close() sees the call counted, or the
  // call sees the gate closed.
  bool enter() {
    calls_.fetch_add(1);
    if (!closed_.load()) return true;
    leave();
    return false;
  }
  void leave() {
    if (calls_.fetch_sub(1) == 1 && closed_.load()) {
      std::lock_guard lock(mutex_);
      drained_.notify_all();
    }
  }

  std::atomic<bool> closed_{false};
  std::atomic<std::uint64_t> calls_{0};
  std::mutex mutex_;
  std::condition_variable drained_;
};

// A call that found the gate closed: answered with kShuttingDown on the caller's thread.
template <class Done>
bool refused(const CallGate::Pass& pass, Done& done) {
  if (pass) return false;
  if (done) done(make_error_code(BrokerError::kShuttingDown));
  return true;
}

// The start of every call on a channel: refused once quiesced, kBadChannel for an invalid
// channel; false when `done` has been answered already.
template <class Done>
bool admitted(const CallGate::Pass& pass, const Channel& channel, Done& done) {
  if (refused(pass, done)) return false;
  if (valid(channel)) return true;
  if (done) done(make_error_code(BrokerError::kBadChannel));
  return false;
}

// Shared by the broker and every Subscription, so a Subscription may outlive its broker.
class Core {
 public:
  explicit Core(const MemoryBrokerOptions& options)
      : options_(options),
        epoch_base_(core::random_hex(6)),
        next_sweep_(std::chrono::steady_clock::now() + kSweepInterval) {}

  const MemoryBrokerOptions& options() const { return options_; }
  const std::string& epoch_base() const { return epoch_base_; }
  std::atomic<std::uint64_t>& subscriptions() { return subscriptions_; }

  StatePtr find(const std::string& key) const {
    std::shared_lock lock(map_mutex_);
    const auto it = channels_.find(key);
    return it == channels_.end() ? nullptr : it->second;
  }

  StatePtr find_or_create(const std::string& key) {
    if (auto state = find(key)) return state;
    std::unique_lock lock(map_mutex_);
    auto& slot = channels_[key];
    // A channel's state can be dropped and later made again; its offsets then restart at 1,
    // so each incarnation gets its own epoch and an id from the old one can't pass as new.
    if (!slot) slot = std::make_shared<ChannelState>(key, epoch_base_ + base36(++incarnations_));
    return slot;
  }

  // Drops events and idempotency keys past their age. Caller holds state.mutex.
  void trim(ChannelState& state, Clock::time_point now) const {
    if (options_.history_ttl.count() > 0) {
      const auto cutoff = now - options_.history_ttl;
      while (!state.events.empty() && state.events.front()->published_at <= cutoff) {
        state.events.pop_front();
      }
    }
    if (options_.idempotency_ttl.count() > 0) {
      const auto cutoff = now - options_.idempotency_ttl;
      while (!state.key_order.empty() && state.key_order.front().at <= cutoff) {
        forget_oldest_key(state);
      }
    }
  }

  // Caller holds state.mutex.
  void remember_key(ChannelState& state, std::string key, const std::string& id,
                    Clock::time_point now) const {
    const auto [it, inserted] = state.keys.try_emplace(std::move(key), id);
    if (!inserted) return;
    state.key_order.push_back({&it->first, now});
    while (state.keys.size() > options_.idempotency_keys) forget_oldest_key(state);
  }

  // Nothing left that a later call could observe. Caller holds state.mutex.
  static bool idle(const ChannelState& state) {
    return state.sinks.empty() && state.events.empty() && state.keys.empty();
  }

  // Erases the given states that are still idle. Takes the map lock, then each channel's.
  void remove_if_idle(const std::vector<StatePtr>& states) {
    std::unique_lock lock(map_mutex_);
    for (const auto& state : states) {
      std::lock_guard state_lock(state->mutex);
      if (state->removed || !idle(*state)) continue;
      const auto it = channels_.find(state->key);
      if (it != channels_.end() && it->second == state) channels_.erase(it);
      state->removed = true;
    }
  }

  // Called from the hot paths; at most one caller per interval does the scan.
  void maybe_sweep() {
    const auto now = std::chrono::steady_clock::now();
    auto next = next_sweep_.load(std::memory_order_relaxed);
    if (now < next) return;
    if (!next_sweep_.compare_exchange_strong(next, now + kSweepInterval)) return;
    sweep();
  }

  // Trims every channel and drops the idle ones. Returns how many channels have history or
  // subscribers. The scan holds the map lock shared, so publishes go on meanwhile.
  std::uint64_t sweep() {
    std::vector<StatePtr> idle_states;
    std::uint64_t active = 0;
    {
      std::shared_lock lock(map_mutex_);
      const auto now = Clock::now();
      for (const auto& [key, state] : channels_) {
        std::lock_guard state_lock(state->mutex);
        trim(*state, now);
        if (idle(*state)) idle_states.push_back(state);
        if (!state->sinks.empty() || !state->events.empty()) ++active;
      }
    }
    if (!idle_states.empty()) remove_if_idle(idle_states);
    return active;
  }

 private:
  static void forget_oldest_key(ChannelState& state) {
    // Erase by iterator: erase(key) with a reference into the node being erased is a trap.
    state.keys.erase(state.keys.find(*state.key_order.front().key));
    state.key_order.pop_front();
  }

  const MemoryBrokerOptions options_;
  const std::string epoch_base_;
  std::atomic<std::uint64_t> subscriptions_{0};
  std::atomic<std::uint64_t> incarnations_{0};
  std::atomic<std::chrono::steady_clock::time_point> next_sweep_;
  mutable std::shared_mutex map_mutex_;
  std::unordered_map<std::string, StatePtr> channels_;
};

// `limit`: at most that many events, the oldest (0: all).
History read_history(const std::string& epoch, std::uint64_t last_offset,
                     const std::deque<EventPtr>& events, const std::optional<Position>& after,
                     std::size_t limit = 0) {
  History history;
  history.epoch = epoch;
  history.last_offset = last_offset;
  if (!after) return history;
  if (after->epoch != epoch || after->offset > last_offset) {
    history.complete = false;
    return history;
  }
  if (after->offset == last_offset) return history;
  if (events.empty()) {
    history.complete = false;
    return history;
  }
  const std::uint64_t first = events.front()->offset;
  history.complete = first <= after->offset + 1;
  const std::uint64_t skip = after->offset >= first ? after->offset + 1 - first : 0;
  const auto begin = events.begin() + static_cast<std::ptrdiff_t>(skip);
  const auto available = static_cast<std::size_t>(events.end() - begin);
  const std::size_t take = limit == 0 ? available : std::min(limit, available);
  history.events.assign(begin, begin + static_cast<std::ptrdiff_t>(take));
  return history;
}

History read_before(const std::string& epoch, std::uint64_t last_offset,
                    const std::deque<EventPtr>& events, std::uint64_t before, std::size_t limit) {
  History history;
  history.epoch = epoch;
  history.last_offset = last_offset;
  auto end = events.end();
  if (before > 0) {
    end = std::lower_bound(
        events.begin(), events.end(), before,
        [](const EventPtr& e, std::uint64_t offset) { return e->offset < offset; });
  }
  const auto available = static_cast<std::size_t>(end - events.begin());
  const auto begin = end - static_cast<std::ptrdiff_t>(std::min(limit, available));
  history.events.assign(begin, end);
  // Older events exist but were dropped only when nothing older is left here.
  const std::uint64_t oldest_wanted =
      history.events.empty() ? std::min(before > 0 ? before : last_offset + 1, last_offset + 1)
                             : history.events.front()->offset;
  history.complete = begin != events.begin() || oldest_wanted <= 1;
  return history;
}

class MemorySubscription final : public Subscription {
 public:
  MemorySubscription(std::shared_ptr<Core> core, StatePtr state, std::uint64_t id)
      : core_(std::move(core)), state_(std::move(state)), id_(id) {}

  ~MemorySubscription() override {
    bool idle = false;
    {
      std::lock_guard lock(state_->mutex);
      std::erase_if(state_->sinks, [this](const auto& entry) { return entry.first == id_; });
      idle = Core::idle(*state_);
    }
    core_->subscriptions().fetch_sub(1, std::memory_order_relaxed);
    if (idle) core_->remove_if_idle({state_});
  }

  MemorySubscription(const MemorySubscription&) = delete;
  MemorySubscription& operator=(const MemorySubscription&) = delete;

 private:
  std::shared_ptr<Core> core_;
  StatePtr state_;
  std::uint64_t id_;
};

class MemoryBroker final : public Broker {
 public:
  explicit MemoryBroker(const MemoryBrokerOptions& options)
      : core_(std::make_shared<Core>(options)) {}

  ~MemoryBroker() override { quiesce(); }
  MemoryBroker(const MemoryBroker&) = delete;
  MemoryBroker& operator=(const MemoryBroker&) = delete;

  void publish(const Channel& channel, PublishInput input,
               std::function<void(Result<PublishResult>)> done) override {
    const CallGate::Pass pass(gate_);
    if (!admitted(pass, channel, done)) return;
    core_->maybe_sweep();
    const auto& options = core_->options();
    const bool keyed = !input.event_key.empty() && options.idempotency_keys > 0;
    const std::string key = map_key(channel);
    PublishResult result;
    for (;;) {
      StatePtr state = core_->find_or_create(key);
      std::unique_lock lock(state->mutex);
      if (state->removed) continue;
      const auto now = Clock::now();
      core_->trim(*state, now);
      if (keyed) {
        if (const auto it = state->keys.find(input.event_key); it != state->keys.end()) {
          result = {it->second, true};
          break;
        }
      }
      auto event = std::make_shared<Event>();
      event->offset = state->last_offset + 1;
      // The result keeps the formatted id, which has room to spare (format_event_id reserves
      // for 20 digits): the publish API writes its answer around it in place. History gets a
      // copy.
      std::string id = protocol::format_event_id(state->epoch, event->offset);
      event->id = id;
      event->user = std::move(input.user);
      event->published_at = now;
      event->body = protocol::serialize_event_body_in_place(
          channel.topic, event->id, input.event, std::move(input.data), timestamp_text(now));
      const EventPtr shared = std::move(event);
      state->last_offset = shared->offset;
      if (options.history > 0) {
        state->events.push_back(shared);
        if (state->events.size() > options.history) state->events.pop_front();
      }
      if (keyed) core_->remember_key(*state, std::move(input.event_key), shared->id, now);
      for (const auto& entry : state->sinks) entry.second(shared);
      result = {std::move(id), false};
      const bool idle = Core::idle(*state);
      lock.unlock();
      // With history 0 and nobody listening, nothing about this channel needs keeping.
      if (idle) core_->remove_if_idle({state});
      break;
    }
    if (done) done(std::move(result));
  }

  std::unique_ptr<Subscription> subscribe(const Channel& channel, Sink sink,
                                          std::function<void()> on_ready) override {
    if (!valid(channel) || !sink) return nullptr;
    const CallGate::Pass pass(gate_);
    // Quiesced: a subscription that never delivers, so callers need no special case.
    if (!pass) return std::make_unique<Subscription>();
    core_->maybe_sweep();
    const std::string key = map_key(channel);
    std::unique_ptr<Subscription> subscription;
    for (;;) {
      StatePtr state = core_->find_or_create(key);
      std::lock_guard lock(state->mutex);
      if (state->removed) continue;
      const std::uint64_t id = state->next_sink_id++;
      state->sinks.emplace_back(id, std::move(sink));
      subscription = std::make_unique<MemorySubscription>(core_, state, id);
      break;
    }
    core_->subscriptions().fetch_add(1, std::memory_order_relaxed);
    if (on_ready) on_ready();
    return subscription;
  }

  void history(const Channel& channel, std::optional<Position> after,
               std::function<void(Result<History>)> done) override {
    read_after(channel, std::move(after), 0, std::move(done));
  }

  void history_page(const Channel& channel, Position after, std::size_t limit,
                    std::function<void(Result<History>)> done) override {
    read_after(channel, std::move(after), limit, std::move(done));
  }

  void read_after(const Channel& channel, std::optional<Position> after, std::size_t limit,
                  std::function<void(Result<History>)> done) {
    const CallGate::Pass pass(gate_);
    if (!admitted(pass, channel, done)) return;
    core_->maybe_sweep();
    std::optional<History> result;
    StatePtr state = core_->find(map_key(channel));
    bool idle = false;
    if (state) {
      std::lock_guard lock(state->mutex);
      // A removed state is as good as none: this read happened after the removal.
      if (!state->removed) {
        core_->trim(*state, Clock::now());
        result = read_history(state->epoch, state->last_offset, state->events, after, limit);
        idle = Core::idle(*state);
      }
    }
    if (idle) core_->remove_if_idle({state});
    // No state: nothing was published, or all of it is gone. No incarnation uses the bare
    // base as its epoch, so a position from any earlier one reads as incomplete.
    if (!result) result = read_history(core_->epoch_base(), 0, {}, after);
    if (done) done(std::move(*result));
  }

  void history_before(const Channel& channel, std::uint64_t before, std::size_t limit,
                      std::function<void(Result<History>)> done) override {
    const CallGate::Pass pass(gate_);
    if (!admitted(pass, channel, done)) return;
    History history;
    history.epoch = core_->epoch_base();
    if (StatePtr state = core_->find(map_key(channel))) {
      std::lock_guard lock(state->mutex);
      if (!state->removed) {
        core_->trim(*state, Clock::now());
        history = read_before(state->epoch, state->last_offset, state->events, before, limit);
      }
    }
    if (done) done(std::move(history));
  }

  void signal(const Channel& channel, PublishInput input,
              std::function<void(Result<void>)> done) override {
    const CallGate::Pass pass(gate_);
    if (!admitted(pass, channel, done)) return;
    // Nobody subscribed: nothing to do, and no channel state is made for it.
    if (StatePtr state = core_->find(map_key(channel))) {
      const auto now = Clock::now();
      auto event = std::make_shared<Event>();
      event->user = std::move(input.user);
      event->published_at = now;
      event->body = protocol::serialize_event_body(channel.topic, {}, input.event, input.data,
                                                   timestamp_text(now));
      const EventPtr shared = std::move(event);
      std::lock_guard lock(state->mutex);
      if (!state->removed) {
        for (const auto& entry : state->sinks) entry.second(shared);
      }
    }
    if (done) done(Result<void>());
  }

  void set_presence(const Channel& scope, const std::string& user,
                    std::uint32_t connections) override {
    const CallGate::Pass pass(gate_);
    if (!pass) return;
    std::lock_guard lock(presence_mutex_);
    presence_.set(scope, user, connections, Clock::now());
  }

  void presence(const Channel& scope,
                std::function<void(Result<std::vector<PresenceEntry>>)> done) override {
    const CallGate::Pass pass(gate_);
    if (refused(pass, done)) return;
    std::vector<PresenceEntry> list;
    {
      std::lock_guard lock(presence_mutex_);
      list = presence_.list(scope);
    }
    if (done) done(std::move(list));
  }

  void set_node_stats_source(std::function<std::string()> source) override {
    std::lock_guard lock(source_mutex_);
    stats_source_ = std::move(source);
  }

  void node_stats(std::function<void(Result<std::vector<std::string>>)> done) override {
    const CallGate::Pass pass(gate_);
    if (refused(pass, done)) return;
    std::vector<std::string> nodes;
    {
      // Called under the lock, so once set_node_stats_source(nullptr) returns it is never
      // called again (its owner may be gone).
      std::lock_guard lock(source_mutex_);
      if (stats_source_) nodes.push_back(stats_source_());
    }
    if (done) done(std::move(nodes));
  }

  void set_control_handler(ControlHandler handler) override {
    std::lock_guard lock(control_mutex_);
    control_ = std::move(handler);
  }

  // One node: the question goes to this node's handler alone, so its answer is all of them.
  void ask_nodes(std::string question, std::chrono::milliseconds,
                 std::function<void(Result<std::vector<std::string>>)> done) override {
    const CallGate::Pass pass(gate_);
    if (refused(pass, done)) return;
    std::lock_guard lock(control_mutex_);
    if (!control_) {
      if (done) done(make_error_code(BrokerError::kUnavailable));
      return;
    }
    control_(question, [done = std::move(done)](std::string answer) {
      if (done) done(std::vector<std::string>{std::move(answer)});
    });
  }

  BrokerStats stats() const override {
    BrokerStats stats;
    stats.channels = core_->sweep();
    stats.subscriptions = core_->subscriptions().load(std::memory_order_relaxed);
    stats.healthy = true;
    return stats;
  }

  void quiesce() override { gate_.close(); }

 private:
  std::shared_ptr<Core> core_;
  CallGate gate_;
  std::mutex presence_mutex_;
  PresenceTable presence_;  // guarded by presence_mutex_
  // Its own mutex: the source takes the hub's locks, and the hub calls set_presence with them.
  std::mutex source_mutex_;
  std::function<std::string()> stats_source_;  // guarded by source_mutex_
  std::mutex control_mutex_;
  ControlHandler control_;  // guarded by control_mutex_
};

}  // namespace

std::unique_ptr<Broker> make_memory_broker(const MemoryBrokerOptions& options) {
  return std::make_unique<MemoryBroker>(options);
}

}  // namespace sg::broker
