#include "hub/hub.hpp"

#include "log/log.hpp"
#include "metrics/metrics.hpp"
#include "protocol/protocol.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>

namespace sg::hub {
namespace {

// Each "worker" is a FIFO of functions the test drains by hand: deterministic interleavings.
struct Loop {
  std::deque<std::function<void()>> queue;
  Post post() {
    return [this](std::function<void()> f) { queue.push_back(std::move(f)); };
  }
  void drain() {
    while (!queue.empty()) {
      auto f = std::move(queue.front());
      queue.pop_front();
      f();
    }
  }
};

struct Recorder : Member {
  std::string user;  // the shard keeps a view of it, as of a session's principal
  std::vector<std::uint64_t> offsets;
  int overflows = 0;
  void deliver(const broker::EventPtr& event) override { offsets.push_back(event->offset); }
  void hold_overflowed() override { ++overflows; }
};

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t o = first; o <= last; ++o) out.push_back(o);
  return out;
}

class HubTest : public ::testing::Test {
 protected:
  explicit HubTest(std::size_t workers = 2) : loops_(workers) {
    log::set_level(log::Level::kWarn);
    broker_ = broker::make_memory_broker({});
    std::vector<Post> posts;
    for (auto& l : loops_) posts.push_back(l.post());
    hub_ = std::make_unique<Hub>(*broker_, std::move(posts), HubOptions{2, 0}, registry_);
  }
  ~HubTest() override { drain(); }

  void drain() {
    for (int round = 0; round < 10; ++round) {
      for (auto& l : loops_) l.drain();
    }
  }

  std::string publish(const std::string& org, const std::string& topic,
                      const std::string& user = {}) {
    std::string id;
    broker_->publish(broker::Channel{org, topic}, broker::PublishInput{"e", "{}", user, {}},
                     [&](Result<broker::PublishResult> r) { id = r->id; });
    return id;
  }

  // Publishes `count` events to ("1", "finance"); returns the channel's epoch.
  std::string publish_finance(int count) {
    std::string epoch;
    for (int i = 0; i < count; ++i) {
      epoch = protocol::parse_event_id(publish("1", "finance"))->epoch;
    }
    return epoch;
  }

  // Starts a resume read `page` events at a time, as a session paced by its socket does, for
  // member "u"; returns what the attach answered once the loops ran.
  std::optional<AttachResult> attach_paged(std::size_t worker, Recorder& m,
                                           const broker::Channel& ch, broker::Position from,
                                           std::size_t page) {
    std::optional<AttachResult> got;
    m.user = "u";
    hub_->shard(worker).attach(
        m, m.user, ch, std::move(from), [&](AttachResult r) { got = std::move(r); }, page);
    drain();
    return got;
  }

  // Attaches and goes live as a session would; returns the attach result.
  AttachResult join(std::size_t worker, Recorder& m, const std::string& user,
                    const broker::Channel& ch, std::optional<broker::Position> resume = {}) {
    std::optional<AttachResult> got;
    m.user = user;
    hub_->shard(worker).attach(m, m.user, ch, resume, [&](AttachResult r) { got = std::move(r); });
    drain();
    EXPECT_TRUE(got.has_value());
    for (const auto& e : got->replay) m.deliver(e);
    hub_->shard(worker).go_live(m, ch);
    return *got;
  }

  metrics::Registry registry_;
  std::vector<Loop> loops_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<Hub> hub_;
};

TEST_F(HubTest, OneBrokerSubscriptionPerChannelWhateverTheMembers) {
  std::vector<Recorder> members(1000);
  for (std::size_t i = 0; i < members.size(); ++i) {
    // Appended, not "u" + std::to_string(i): GCC 12 at -O3 reports a false -Wrestrict there.
    members[i].user = "u";
    members[i].user += std::to_string(i);
    for (int s = 0; s < 10; ++s) {
      hub_->shard(i % 2).attach(members[i], members[i].user,
                                broker::Channel{"456", "svc" + std::to_string(s)}, std::nullopt,
                                [](AttachResult) {});
    }
  }
  drain();
  EXPECT_EQ(hub_->stats().total_subscriptions, 10u);
  EXPECT_EQ(broker_->stats().subscriptions, 10u);
  for (std::size_t i = 0; i < members.size(); ++i) hub_->shard(i % 2).detach_all(members[i]);
  EXPECT_EQ(hub_->stats().total_subscriptions, 0u);
  EXPECT_EQ(broker_->stats().subscriptions, 0u);
}

TEST_F(HubTest, FansOutToEveryMemberOnEveryWorkerInOrder) {
  Recorder a, b, c;
  const broker::Channel ch{"1", "finance"};
  join(0, a, "ua", ch);
  join(1, b, "ub", ch);
  join(1, c, "uc", ch);
  for (int i = 0; i < 5; ++i) publish("1", "finance");
  drain();
  const std::vector<std::uint64_t> want{1, 2, 3, 4, 5};
  EXPECT_EQ(a.offsets, want);
  EXPECT_EQ(b.offsets, want);
  EXPECT_EQ(c.offsets, want);
  EXPECT_EQ(hub_->events_delivered(), 15u);
  hub_->shard(0).detach_all(a);
  hub_->shard(1).detach_all(b);
  hub_->shard(1).detach_all(c);
}

TEST_F(HubTest, NeverDeliversAcrossOrgs) {
  Recorder a, b;
  join(0, a, "u", broker::Channel{"A", "finance"});
  join(0, b, "u", broker::Channel{"B", "finance"});
  publish("A", "finance");
  publish("A", "finance");
  publish("B", "finance");
  drain();
  EXPECT_EQ(a.offsets.size(), 2u);
  EXPECT_EQ(b.offsets, std::vector<std::uint64_t>{1});
  hub_->shard(0).detach_all(a);
  hub_->shard(0).detach_all(b);
}

TEST_F(HubTest, TargetedEventsReachOnlyTheirUser) {
  Recorder alice, bob;
  const broker::Channel ch{"1", "finance"};
  join(0, alice, "alice", ch);
  join(1, bob, "bob", ch);
  publish("1", "finance", "alice");
  publish("1", "finance");
  drain();
  EXPECT_EQ(alice.offsets, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(bob.offsets, std::vector<std::uint64_t>{2});
  hub_->shard(0).detach_all(alice);
  hub_->shard(1).detach_all(bob);
}

TEST_F(HubTest, ResumeReplaysTheGapThenLiveWithoutDuplicates) {
  const broker::Channel ch{"1", "finance"};
  Recorder keeper;  // keeps the channel subscribed on worker 0
  join(0, keeper, "k", ch);
  const std::string epoch = publish_finance(10);
  drain();
  // A resuming member attaches while more events are published before its history is read.
  Recorder m;
  std::optional<AttachResult> got;
  hub_->shard(0).attach(m, "u", ch, broker::Position{epoch, 4},
                        [&](AttachResult r) { got = std::move(r); });
  publish("1", "finance");  // 11: raced with the attach
  drain();
  publish("1", "finance");  // 12: arrives while the member is not yet live
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->recovered);
  for (const auto& e : got->replay) m.deliver(e);
  loops_[0].drain();
  EXPECT_TRUE(hub_->shard(0).go_live(m, ch));
  publish("1", "finance");  // 13
  drain();
  EXPECT_EQ(m.offsets, range(5, 13));
  hub_->shard(0).detach_all(keeper);
  hub_->shard(0).detach_all(m);
}

// A resume read a page at a time, as a session paced by its socket does it: every missed event
// once, in order, the live ones that arrived meanwhile merged at the seam, then live.
TEST_F(HubTest, PagedResumeReplaysPageByPageThenGoesLive) {
  const broker::Channel ch{"1", "finance"};
  Recorder keeper;
  join(0, keeper, "k", ch);
  const std::string epoch = publish_finance(10);
  drain();
  Recorder m;
  const auto got = attach_paged(0, m, ch, broker::Position{epoch, 2}, 3);
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->recovered);
  EXPECT_TRUE(got->more);
  for (const auto& e : got->replay) m.deliver(e);
  EXPECT_EQ(m.offsets, range(3, 5));
  bool more = true;
  int pages = 0;
  while (more && pages < 20) {
    ++pages;
    publish("1", "finance");  // live while catching up: held, then given by a later page
    drain();
    std::optional<ReplayPage> page;
    hub_->shard(0).next_page(m, ch, [&](ReplayPage p) { page = std::move(p); });
    drain();
    ASSERT_TRUE(page.has_value());
    EXPECT_TRUE(page->failure.empty());
    EXPECT_LE(page->events.size(), 3u);
    for (const auto& e : page->events) m.deliver(e);
    more = page->more;
  }
  EXPECT_FALSE(more);
  publish("1", "finance");  // after the last page, before go_live: held
  drain();
  EXPECT_TRUE(hub_->shard(0).go_live(m, ch));
  publish("1", "finance");
  drain();
  const std::uint64_t last = 10 + static_cast<std::uint64_t>(pages) + 2;
  EXPECT_EQ(m.offsets, range(3, last));
  EXPECT_EQ(m.overflows, 0);
  hub_->shard(0).detach_all(keeper);
  hub_->shard(0).detach_all(m);
}

TEST_F(HubTest, PagedResumeThatStopsReadingOverflowsItsHold) {
  const broker::Channel ch{"1", "finance"};
  Recorder keeper;
  join(0, keeper, "k", ch);
  const std::string epoch = publish_finance(10);
  drain();
  Recorder m;
  const auto got = attach_paged(0, m, ch, broker::Position{epoch, 0}, 3);
  ASSERT_TRUE(got.has_value() && got->more);
  // The member asks for no further page: live events pile up in its hold until the bound.
  for (int i = 0; i < 10001; ++i) publish("1", "finance");
  drain();
  EXPECT_EQ(m.overflows, 1);
  EXPECT_FALSE(hub_->shard(0).go_live(m, ch));
  hub_->shard(0).detach_all(keeper);
  hub_->shard(0).detach_all(m);
}

TEST_F(HubTest, PagedResumeLeavingMidReplayDropsThePage) {
  const broker::Channel ch{"1", "finance"};
  const std::string epoch = publish_finance(10);
  Recorder m;
  const auto got = attach_paged(1, m, ch, broker::Position{epoch, 0}, 3);
  ASSERT_TRUE(got.has_value() && got->more);
  bool called = false;
  hub_->shard(1).next_page(m, ch, [&](ReplayPage) { called = true; });
  hub_->shard(1).detach_all(m);
  drain();
  EXPECT_FALSE(called);
  EXPECT_EQ(hub_->stats().total_subscriptions, 0u);
}

TEST_F(HubTest, ResumeFromAnotherEpochIsNotRecovered) {
  const broker::Channel ch{"1", "finance"};
  publish("1", "finance");
  Recorder m;
  auto r = join(1, m, "u", ch, broker::Position{"zzzz", 1});
  EXPECT_FALSE(r.recovered);
  EXPECT_EQ(r.reason, "epoch_changed");
  EXPECT_TRUE(r.replay.empty());
  publish("1", "finance");
  drain();
  EXPECT_EQ(m.offsets, std::vector<std::uint64_t>{2});
  hub_->shard(1).detach_all(m);
}

TEST_F(HubTest, DetachInTheMiddleKeepsOtherMembersSlots) {
  const broker::Channel ch{"1", "finance"};
  std::vector<Recorder> ms(5);
  for (auto& m : ms) join(0, m, "u", ch);
  hub_->shard(0).detach_all(ms[1]);
  hub_->shard(0).detach_all(ms[3]);
  publish("1", "finance");
  drain();
  for (int i : {0, 2, 4}) EXPECT_EQ(ms[i].offsets.size(), 1u) << i;
  for (int i : {1, 3}) EXPECT_TRUE(ms[i].offsets.empty()) << i;
  for (int i : {0, 2, 4}) hub_->shard(0).detach_all(ms[i]);
  EXPECT_EQ(hub_->stats().total_subscriptions, 0u);
}

TEST_F(HubTest, AdmitsUpToTheUserLimitAndCountsByOrg) {
  EXPECT_EQ(hub_->admit("1", "u"), Hub::Admission::kAdmitted);
  EXPECT_EQ(hub_->admit("1", "u"), Hub::Admission::kAdmitted);
  EXPECT_EQ(hub_->admit("1", "u"), Hub::Admission::kUserLimit);
  EXPECT_EQ(hub_->admit("2", "u"), Hub::Admission::kAdmitted);
  auto stats = hub_->stats();
  EXPECT_EQ(stats.total_connections, 3u);
  EXPECT_EQ(stats.total_orgs, 2u);
  ASSERT_EQ(stats.connections_by_org.size(), 2u);
  EXPECT_EQ(stats.connections_by_org[0], (std::pair<std::string, std::uint64_t>{"1", 2}));
  hub_->release("1", "u");
  EXPECT_EQ(hub_->admit("1", "u"), Hub::Admission::kAdmitted);
  hub_->release("1", "u");
  hub_->release("1", "u");
  hub_->release("2", "u");
  EXPECT_EQ(hub_->stats().total_connections, 0u);
  EXPECT_EQ(hub_->stats().total_orgs, 0u);
}

TEST_F(HubTest, RefusesAnOrgAtItsConnectionQuota) {
  EXPECT_EQ(hub_->admit("1", "a", 2), Hub::Admission::kAdmitted);
  EXPECT_EQ(hub_->admit("1", "b", 2), Hub::Admission::kAdmitted);
  EXPECT_EQ(hub_->admit("1", "c", 2), Hub::Admission::kOrgLimit);
  EXPECT_EQ(hub_->admit("2", "c", 2), Hub::Admission::kAdmitted);
  EXPECT_EQ(hub_->admit("1", "c", 0), Hub::Admission::kAdmitted);  // 0 = no quota
  hub_->release("1", "a");
  hub_->release("1", "c");
  EXPECT_EQ(hub_->admit("1", "c", 2), Hub::Admission::kAdmitted);
  EXPECT_EQ(hub_->stats().total_connections, 3u);
  for (const char* u : {"b", "c"}) hub_->release("1", u);
  hub_->release("2", "c");
}

TEST_F(HubTest, CountsAnOrgsDistinctChannelsForItsQuota) {
  Recorder a, b;
  join(0, a, "u", {"1", "finance"});
  join(1, b, "v", {"1", "ops"});
  join(1, b, "v", {"1", "finance"});  // the same channel on another worker: still one
  const std::vector<std::string> held = {"finance", "ops"};
  const std::vector<std::string> one_more = {"finance", "hr", "hr"};
  EXPECT_TRUE(hub_->channels_within_quota("1", held, 2));
  EXPECT_FALSE(hub_->channels_within_quota("1", one_more, 2));
  EXPECT_TRUE(hub_->channels_within_quota("1", one_more, 3));
  EXPECT_TRUE(hub_->channels_within_quota("1", one_more, 0));
  EXPECT_TRUE(hub_->channels_within_quota("2", one_more, 2));  // "hr" counts once
  EXPECT_FALSE(hub_->channels_within_quota("2", one_more, 1));
  hub_->shard(0).detach_all(a);
  hub_->shard(1).detach_all(b);
  drain();
  EXPECT_TRUE(hub_->channels_within_quota("1", {"a", "b"}, 2));
}

// A broker whose events the test writes by hand, for what the real ones only do after a fault
// (the memory broker never changes a live channel's epoch; Redis does after losing its data).
class ScriptedBroker : public broker::Broker {
 public:
  void publish(const broker::Channel&, broker::PublishInput,
               std::function<void(Result<broker::PublishResult>)>) override {}
  std::unique_ptr<broker::Subscription> subscribe(const broker::Channel&, broker::Sink s,
                                                  std::function<void()> on_ready) override {
    sink = std::move(s);
    on_ready();
    return std::make_unique<broker::Subscription>();
  }
  void history(const broker::Channel&, std::optional<broker::Position>,
               std::function<void(Result<broker::History>)> done) override {
    if (unavailable) {
      done(make_error_code(broker::BrokerError::kUnavailable));
      return;
    }
    if (histories.empty()) {
      done(broker::History{});
      return;
    }
    broker::History next = std::move(histories.front());
    histories.pop_front();
    done(std::move(next));
  }
  void history_before(const broker::Channel&, std::uint64_t, std::size_t,
                      std::function<void(Result<broker::History>)> done) override {
    done(broker::History{});
  }
  void signal(const broker::Channel&, broker::PublishInput,
              std::function<void(Result<void>)>) override {}
  void set_presence(const broker::Channel&, const std::string&, std::uint32_t) override {}
  void presence(const broker::Channel&,
                std::function<void(Result<std::vector<broker::PresenceEntry>>)> done) override {
    done(std::vector<broker::PresenceEntry>{});
  }
  void set_node_stats_source(std::function<std::string()>) override {}
  void node_stats(std::function<void(Result<std::vector<std::string>>)> done) override {
    done(std::vector<std::string>{});
  }
  broker::BrokerStats stats() const override { return {}; }
  void quiesce() override {}

  void emit(std::string epoch, std::uint64_t offset) {
    auto e = std::make_shared<broker::Event>();
    e->offset = offset;
    if (offset > 0) e->id = protocol::format_event_id(epoch, offset);
    sink(e);
  }
  broker::Sink sink;
  bool unavailable = false;               // history reads fail, as with Redis down
  std::deque<broker::History> histories;  // the next reads' answers, then empty ones
};

// One worker's hub over the scripted broker, with a member (`live`) live on ("1", "finance").
class ScriptedHubTest : public ::testing::Test {
 protected:
  ScriptedHubTest() {
    log::set_level(log::Level::kWarn);
    live.user = "u";
    hub.shard(0).attach(live, live.user, ch, std::nullopt, [](AttachResult) {});
    loop.drain();
    hub.shard(0).go_live(live, ch);
  }
  ~ScriptedHubTest() override { hub.shard(0).detach_all(live); }

  // Attaches `m` resuming after `from`; the attach's answer.
  AttachResult resume(Recorder& m, broker::Position from) {
    std::optional<AttachResult> got;
    hub.shard(0).attach(m, m.user, ch, std::move(from),
                        [&](AttachResult r) { got = std::move(r); });
    loop.drain();
    EXPECT_TRUE(got.has_value());
    return got.value_or(AttachResult{});
  }

  metrics::Registry registry;
  Loop loop;
  ScriptedBroker broker;
  Hub hub{broker, {loop.post()}, HubOptions{}, registry};
  Recorder live;
  const broker::Channel ch{"1", "finance"};
};

TEST_F(ScriptedHubTest, ANewEpochRestartsOffsetsForLiveMembers) {
  broker.emit("aaa", 7);
  broker.emit("aaa", 7);  // the same event twice: delivered once
  broker.emit("bbb", 1);  // history lost: the new epoch counts from 1 again
  broker.emit("bbb", 2);
  loop.drain();
  EXPECT_EQ(live.offsets, (std::vector<std::uint64_t>{7, 1, 2}));
}

// A worker that already saw the channel's new epoch live gets a history read answered before the
// switch (the reply was on its way): the stale epoch must not pass for the client's.
TEST_F(ScriptedHubTest, AStaleHistoryReadIsReadAgain) {
  broker.emit("bbb", 1);  // the channel's history was lost; this worker has seen it
  loop.drain();
  Recorder resumed;
  resumed.user = "v";
  broker.histories.push_back(broker::History{"aaa", 5, {}, true});  // read before the switch
  broker.histories.push_back(broker::History{"bbb", 1, {}, true});
  const AttachResult got = resume(resumed, broker::Position{"aaa", 5});
  EXPECT_FALSE(got.recovered);
  EXPECT_EQ(got.reason, "epoch_changed");
  EXPECT_TRUE(broker.histories.empty());
  EXPECT_TRUE(hub.shard(0).go_live(resumed, ch));
  broker.emit("bbb", 2);
  broker.emit("bbb", 3);
  loop.drain();
  EXPECT_EQ(resumed.offsets, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(live.offsets, (std::vector<std::uint64_t>{1, 2, 3}));
  hub.shard(0).detach_all(resumed);
}

// The broker moved the channel to a new epoch and a client resumed in it before this worker saw
// any of its events live: when they arrive, the client's position holds in that epoch.
TEST_F(ScriptedHubTest, AResumeInTheNextEpochSurvivesTheSwitch) {
  broker.emit("aaa", 5);
  loop.drain();
  Recorder resumed;
  resumed.user = "v";
  broker.histories.push_back(broker::History{"bbb", 3, {}, true});
  broker.histories.push_back(broker::History{"bbb", 3, {}, true});
  EXPECT_TRUE(resume(resumed, broker::Position{"bbb", 3}).recovered);
  EXPECT_TRUE(hub.shard(0).go_live(resumed, ch));
  for (std::uint64_t o = 1; o <= 4; ++o) broker.emit("bbb", o);  // the new epoch's events arrive
  loop.drain();
  EXPECT_EQ(resumed.offsets, (std::vector<std::uint64_t>{4}));
  EXPECT_EQ(live.offsets, (std::vector<std::uint64_t>{5, 1, 2, 3, 4}));
  hub.shard(0).detach_all(resumed);
}

// A resume answered "unavailable" goes live at once; when the broker is back, its subscription
// may catch up on events this worker never saw, the client's own last one among them. None at or
// below the client's position may reach it.
TEST(HubUnavailableResume, NeverRedeliversTheClientsPosition) {
  log::set_level(log::Level::kWarn);
  metrics::Registry registry;
  Loop loop;
  ScriptedBroker broker;
  broker.unavailable = true;
  Hub hub(broker, {loop.post()}, HubOptions{}, registry);
  Recorder m;
  m.user = "u";
  const broker::Channel ch{"1", "finance"};
  std::optional<AttachResult> got;
  hub.shard(0).attach(m, m.user, ch, broker::Position{"aaa", 5},
                      [&](AttachResult r) { got = std::move(r); });
  loop.drain();
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(got->recovered);
  EXPECT_EQ(got->reason, "unavailable");
  EXPECT_TRUE(hub.shard(0).go_live(m, ch));
  for (std::uint64_t o = 3; o <= 7; ++o) broker.emit("aaa", o);  // the broker's catch-up
  loop.drain();
  EXPECT_EQ(m.offsets, (std::vector<std::uint64_t>{6, 7}));
  hub.shard(0).detach_all(m);
}

TEST(HubUnavailableResume, APositionInAnotherEpochHoldsBackNothing) {
  log::set_level(log::Level::kWarn);
  metrics::Registry registry;
  Loop loop;
  ScriptedBroker broker;
  broker.unavailable = true;
  Hub hub(broker, {loop.post()}, HubOptions{}, registry);
  Recorder m;
  m.user = "u";
  Recorder other;  // resumed in the channel's own epoch
  other.user = "v";
  const broker::Channel ch{"1", "finance"};
  hub.shard(0).attach(m, m.user, ch, broker::Position{"aaa", 5}, [](AttachResult) {});
  hub.shard(0).attach(other, other.user, ch, broker::Position{"bbb", 1}, [](AttachResult) {});
  loop.drain();
  hub.shard(0).go_live(m, ch);
  hub.shard(0).go_live(other, ch);
  broker.emit("bbb", 1);  // history was lost: the channel counts from 1 in a new epoch
  broker.emit("bbb", 2);
  loop.drain();
  EXPECT_EQ(m.offsets, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(other.offsets, (std::vector<std::uint64_t>{2}));
  hub.shard(0).detach_all(m);
  hub.shard(0).detach_all(other);
}

TEST(HubSignals, ReachLiveMembersOnlyAndLeaveOffsetsAlone) {
  log::set_level(log::Level::kWarn);
  metrics::Registry registry;
  Loop loop;
  ScriptedBroker broker;
  Hub hub(broker, {loop.post()}, HubOptions{}, registry);
  Recorder live;
  live.user = "u";
  Recorder joining;
  joining.user = "v";
  const broker::Channel ch{"1", "room:general"};
  hub.shard(0).attach(live, live.user, ch, std::nullopt, [](AttachResult) {});
  hub.shard(0).attach(joining, joining.user, ch, std::nullopt, [](AttachResult) {});
  loop.drain();
  hub.shard(0).go_live(live, ch);
  broker.emit("aaa", 7);
  broker.emit("", 0);  // a signal: no offset, no id
  broker.emit("aaa", 8);
  loop.drain();
  EXPECT_EQ(live.offsets, (std::vector<std::uint64_t>{7, 0, 8}));
  hub.shard(0).go_live(joining, ch);
  loop.drain();
  // Held events are replayed on go_live; the signal is not among them.
  EXPECT_EQ(joining.offsets, (std::vector<std::uint64_t>{7, 8}));
  hub.shard(0).detach_all(live);
  hub.shard(0).detach_all(joining);
}

// A member that notes when each delivery came, in one count shared by all the members.
struct Sequenced : Member {
  std::string user;
  std::uint64_t* clock = nullptr;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> got;  // (offset, when)
  void deliver(const broker::EventPtr& event) override {
    got.emplace_back(event->offset, ++*clock);
  }
};

// Attaches `members` to `ch` on worker 0 and makes them live.
void join_all(Hub& hub, std::vector<Sequenced>& members, const broker::Channel& ch,
              const std::function<void()>& drain) {
  for (std::size_t i = 0; i < members.size(); ++i) {
    members[i].user = "u";
    members[i].user += std::to_string(i);
    hub.shard(0).attach(members[i], members[i].user, ch, std::nullopt, [](AttachResult) {});
  }
  drain();
  for (auto& m : members) hub.shard(0).go_live(m, ch);
}

TEST_F(HubTest, FanOutServesAnotherOrgBetweenSharesOfABurst) {
  std::uint64_t clock = 0;
  std::vector<Sequenced> big(10000);
  for (auto& m : big) m.clock = &clock;
  std::vector<Sequenced> small(1);
  small[0].clock = &clock;
  const broker::Channel a{"A", "finance"};
  const broker::Channel b{"B", "finance"};
  join_all(*hub_, big, a, [this] { drain(); });
  join_all(*hub_, small, b, [this] { drain(); });
  // Three events to 10,000 members, then one to org B's member, all waiting on the worker.
  for (int i = 0; i < 3; ++i) publish("A", "finance");
  publish("B", "finance");
  drain();
  // Org B's event went out after a share of org A's work, not after all 30,000 deliveries.
  ASSERT_EQ(small[0].got.size(), 1u);
  EXPECT_LT(small[0].got[0].second, 10000u);
  for (const auto& m : big) {
    ASSERT_EQ(m.got.size(), 3u);
    EXPECT_EQ(m.got[0].first, 1u);
    EXPECT_EQ(m.got[1].first, 2u);
    EXPECT_EQ(m.got[2].first, 3u);
  }
  for (auto& m : big) hub_->shard(0).detach_all(m);
  hub_->shard(0).detach_all(small[0]);
}

TEST_F(HubTest, LeavingDuringASpreadFanOutMakesNobodyMissTheEvent) {
  std::uint64_t clock = 0;
  std::vector<Sequenced> members(6000);
  for (auto& m : members) m.clock = &clock;
  const broker::Channel a{"A", "finance"};
  join_all(*hub_, members, a, [this] { drain(); });
  publish("A", "finance");
  // Only the event's first turn: part of the members have it, the rest wait for the next turn.
  auto& queue = loops_[0].queue;
  ASSERT_FALSE(queue.empty());
  auto first = std::move(queue.front());
  queue.pop_front();
  first();
  std::size_t offered = 0;
  for (const auto& m : members) offered += m.got.size();
  ASSERT_GT(offered, 0u);
  ASSERT_LT(offered, members.size());
  // Members leave on both sides of where the fan-out stopped.
  const std::vector<std::size_t> leaving = {10, 20, offered - 1, offered + 5, members.size() - 1};
  for (std::size_t i : leaving) hub_->shard(0).detach_all(members[i]);
  drain();
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (std::find(leaving.begin(), leaving.end(), i) != leaving.end()) continue;
    ASSERT_EQ(members[i].got.size(), 1u) << "member " << i;
  }
  for (auto& m : members) hub_->shard(0).detach_all(m);
}

}  // namespace
}  // namespace sg::hub
