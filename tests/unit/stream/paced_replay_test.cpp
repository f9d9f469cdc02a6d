// PacedReplay against an owner that records what it is asked to do: events go to the outbox only
// while it is below half its bound, a used-up page asks for the next, a service whose history is
// through goes live, and pages for dropped services or failed reads are told apart.
#include "stream/paced_replay.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sg::stream {
namespace {

broker::EventPtr event(std::uint64_t offset, std::size_t bytes) {
  auto e = std::make_shared<broker::Event>();
  e->offset = offset;
  e->body.assign(bytes, 'x');
  return e;
}

std::vector<broker::EventPtr> events(std::uint64_t first, std::size_t count, std::size_t bytes) {
  std::vector<broker::EventPtr> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back(event(first + i, bytes));
  return out;
}

struct RecordingOwner final : PacedReplay::Owner {
  bool replay_open() const override { return open; }
  std::size_t replay_queued_bytes() const override { return queued; }
  std::size_t replay_frame_bytes(const broker::Event& e) const override {
    return 10 + e.body.size();
  }
  void replay_deliver(const broker::EventPtr& e) override {
    delivered.push_back(e->offset);
    queued += replay_frame_bytes(*e);
  }
  void replay_read_page(const std::string& service) override { pages_asked.push_back(service); }
  void replay_done(const std::string& service) override { live.push_back(service); }

  bool open = true;
  std::size_t queued = 0;
  std::vector<std::uint64_t> delivered;
  std::vector<std::string> pages_asked;
  std::vector<std::string> live;
};

TEST(PacedReplay, FillsTheOutboxToHalfItsBoundAndGoesOnAsItDrains) {
  PacedReplay replay;
  RecordingOwner owner;
  replay.add("finance", events(1, 10, 90), false);  // 100 bytes each in the outbox
  replay.pump(owner, 1000);
  // The first goes into an empty outbox; then up to 500 (half of 1000).
  EXPECT_EQ(owner.delivered, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(owner.live.empty());
  owner.queued = 0;  // the socket took it all
  replay.pump(owner, 1000);
  EXPECT_EQ(owner.delivered.size(), 10u);
  EXPECT_EQ(owner.live, std::vector<std::string>{"finance"});
  EXPECT_FALSE(replay.active());
}

TEST(PacedReplay, AnEventLargerThanTheOutboxStillGoesIntoAnEmptyOne) {
  PacedReplay replay;
  RecordingOwner owner;
  replay.add("finance", events(1, 2, 5000), false);
  replay.pump(owner, 1000);
  EXPECT_EQ(owner.delivered, std::vector<std::uint64_t>{1});
}

TEST(PacedReplay, AUsedUpPageAsksForTheNextOnceAndQueuesWhatComes) {
  PacedReplay replay;
  RecordingOwner owner;
  replay.add("finance", events(1, 2, 10), true);
  replay.pump(owner, 1000);
  EXPECT_EQ(owner.pages_asked, std::vector<std::string>{"finance"});
  replay.pump(owner, 1000);  // a page is being read: not asked twice
  EXPECT_EQ(owner.pages_asked.size(), 1u);

  hub::ReplayPage page;
  page.events = events(3, 2, 10);
  page.more = false;
  EXPECT_EQ(replay.on_page("finance", page), PacedReplay::Page::kQueued);
  replay.pump(owner, 1000);
  EXPECT_EQ(owner.delivered, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(owner.live, std::vector<std::string>{"finance"});
}

TEST(PacedReplay, PagesForDroppedServicesAreStaleAndFailuresAreReported) {
  PacedReplay replay;
  RecordingOwner owner;
  replay.add("finance", {}, true);
  replay.add("payroll", {}, true);
  replay.pump(owner, 1000);
  EXPECT_EQ(owner.pages_asked, (std::vector<std::string>{"finance", "payroll"}));
  EXPECT_TRUE(replay.has("payroll"));
  replay.drop("payroll");
  EXPECT_FALSE(replay.has("payroll"));

  hub::ReplayPage late;
  late.events = events(1, 1, 10);
  EXPECT_EQ(replay.on_page("payroll", late), PacedReplay::Page::kStale);
  EXPECT_EQ(replay.on_page("unknown", late), PacedReplay::Page::kStale);
  hub::ReplayPage failed;
  failed.failure = "unavailable";
  EXPECT_EQ(replay.on_page("finance", failed), PacedReplay::Page::kFailed);
  EXPECT_TRUE(owner.delivered.empty());
}

TEST(PacedReplay, StopsWhenTheOwnerCloses) {
  PacedReplay replay;
  RecordingOwner owner;
  owner.open = false;
  replay.add("finance", events(1, 3, 10), false);
  replay.pump(owner, 1000);
  EXPECT_TRUE(owner.delivered.empty());
  EXPECT_TRUE(owner.live.empty());
  replay.clear();
  EXPECT_FALSE(replay.active());
}

}  // namespace
}  // namespace sg::stream
