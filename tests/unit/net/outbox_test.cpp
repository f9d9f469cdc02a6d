#include "net/outbox.hpp"

#include <gtest/gtest.h>

namespace sg::net {
namespace {

OutFrame frame_of(std::size_t body_bytes, std::uint8_t head = 4) {
  auto body = std::make_shared<const std::string>(body_bytes, 'x');
  OutFrame f;
  f.head_len = head;
  f.body = *body;
  f.keep = body;
  return f;
}

TEST(Outbox, QueuesUntilTheByteLimitThenRefuses) {
  Outbox box(100);
  EXPECT_EQ(box.push(frame_of(46)), Outbox::Push::kQueued);  // 50 bytes
  EXPECT_EQ(box.push(frame_of(46)), Outbox::Push::kQueued);  // 100 bytes: exactly the limit
  EXPECT_EQ(box.push(frame_of(0, 1)), Outbox::Push::kOverLimit);
  EXPECT_EQ(box.bytes(), 100u);
  EXPECT_EQ(box.frames(), 2u);
}

TEST(Outbox, RepliesCountAgainstTheLimitAndReportCrossingIt) {
  Outbox box(100);
  EXPECT_EQ(box.push_reply(frame_of(46)), Outbox::Push::kQueued);  // 50
  EXPECT_EQ(box.push_reply(frame_of(46)), Outbox::Push::kQueued);  // 100: at the limit, not over
  EXPECT_FALSE(box.over_limit());
  // The reply that crosses the limit is queued all the same; the caller stops reading.
  EXPECT_EQ(box.push_reply(frame_of(6)), Outbox::Push::kOverLimit);
  EXPECT_TRUE(box.over_limit());
  EXPECT_EQ(box.bytes(), 110u);
  EXPECT_EQ(box.frames(), 3u);
}

TEST(Outbox, EventsAreRefusedOnceRepliesFillTheQueue) {
  Outbox box(100);
  box.push_reply(frame_of(90));                             // 94 bytes of replies
  EXPECT_EQ(box.push(frame_of(2)), Outbox::Push::kQueued);  // 100: fits exactly
  EXPECT_EQ(box.push(frame_of(0, 1)), Outbox::Push::kOverLimit);
  box.push_reply(frame_of(1));  // 105: over
  EXPECT_EQ(box.push(frame_of(0, 1)), Outbox::Push::kOverLimit);
  EXPECT_EQ(box.bytes(), 105u);
  EXPECT_EQ(box.frames(), 3u);
}

TEST(Outbox, DrainingBelowTheLimitEndsOverLimit) {
  Outbox box(100);
  box.push_reply(frame_of(60));
  box.push_reply(frame_of(60));
  EXPECT_TRUE(box.over_limit());
  box.pop(1);
  EXPECT_FALSE(box.over_limit());
  EXPECT_EQ(box.bytes(), 64u);
}

TEST(Outbox, ALaterPongReplacesOneNotYetStarted) {
  Outbox box(1000);
  box.push(frame_of(10));  // an event
  EXPECT_EQ(box.push_latest(frame_of(3, 2), Outbox::Latest::kPong, false), Outbox::Push::kQueued);
  box.push(frame_of(20));  // another event after the pong
  EXPECT_EQ(box.push_latest(frame_of(7, 2), Outbox::Latest::kPong, false), Outbox::Push::kQueued);
  EXPECT_EQ(box.push_latest(frame_of(5, 2), Outbox::Latest::kPong, false), Outbox::Push::kQueued);
  // Still three frames: the pong kept its place and carries the latest payload.
  ASSERT_EQ(box.frames(), 3u);
  EXPECT_EQ(box.at(1).body.size(), 5u);
  EXPECT_EQ(box.bytes(), 14u + 7u + 24u);
}

TEST(Outbox, EachLatestKindKeepsItsOwnSlot) {
  Outbox box(1000);
  box.push_latest(frame_of(3, 2), Outbox::Latest::kPong, false);
  box.push_latest(frame_of(20), Outbox::Latest::kStatus, false);
  box.push_latest(frame_of(4, 2), Outbox::Latest::kPong, false);
  box.push_latest(frame_of(30), Outbox::Latest::kStatus, false);
  // One frame of each kind, each in the place its first one took, with the newest payload.
  ASSERT_EQ(box.frames(), 2u);
  EXPECT_EQ(box.at(0).body.size(), 4u);
  EXPECT_EQ(box.at(1).body.size(), 30u);
  EXPECT_EQ(box.bytes(), 6u + 34u);
}

TEST(Outbox, APongBeingWrittenIsNotReplaced) {
  Outbox box(1000);
  box.push_latest(frame_of(3, 2), Outbox::Latest::kPong, false);
  // The front frame (the pong) is partly written: the next pong queues behind it.
  box.push_latest(frame_of(4, 2), Outbox::Latest::kPong, true);
  ASSERT_EQ(box.frames(), 2u);
  EXPECT_EQ(box.at(0).body.size(), 3u);
  EXPECT_EQ(box.at(1).body.size(), 4u);
  // And that second one is the one later pongs replace.
  box.push_latest(frame_of(9, 2), Outbox::Latest::kPong, true);
  ASSERT_EQ(box.frames(), 2u);
  EXPECT_EQ(box.at(1).body.size(), 9u);
  EXPECT_EQ(box.bytes(), 5u + 11u);
}

TEST(Outbox, APongAlreadyWrittenIsForgotten) {
  Outbox box(1000);
  box.push_latest(frame_of(3, 2), Outbox::Latest::kPong, false);
  box.push(frame_of(10));
  box.pop(1);  // the pong went out
  box.push_latest(frame_of(4, 2), Outbox::Latest::kPong, false);
  ASSERT_EQ(box.frames(), 2u);
  EXPECT_EQ(box.at(0).body.size(), 10u);
  EXPECT_EQ(box.at(1).body.size(), 4u);
}

TEST(Outbox, PongSlotFollowsCompactionAndTruncation) {
  Outbox box(1 << 20);
  for (int i = 0; i < 100; ++i) box.push(frame_of(1));
  box.push_latest(frame_of(3, 2), Outbox::Latest::kPong, false);  // index 100
  box.push(frame_of(1));
  box.pop(90);  // compacts: the pong moves to the front part of the storage
  box.push_latest(frame_of(6, 2), Outbox::Latest::kPong, false);
  ASSERT_EQ(box.frames(), 12u);
  EXPECT_EQ(box.at(10).body.size(), 6u);
  box.truncate(5);  // drops the pong
  box.push_latest(frame_of(7, 2), Outbox::Latest::kPong, false);
  ASSERT_EQ(box.frames(), 6u);
  EXPECT_EQ(box.at(5).body.size(), 7u);
}

TEST(Outbox, APongFloodCostsOneFrame) {
  Outbox box(1000);
  for (int i = 0; i < 10000; ++i) {
    EXPECT_EQ(box.push_latest(frame_of(125, 2), Outbox::Latest::kPong, i > 0),
              Outbox::Push::kQueued);
  }
  // The first pong is being written; every later one replaced the second.
  EXPECT_EQ(box.frames(), 2u);
  EXPECT_EQ(box.bytes(), 254u);
}

TEST(Outbox, PopReleasesBytesInOrder) {
  Outbox box(1000);
  box.push(frame_of(10));
  box.push(frame_of(20));
  box.push(frame_of(30));
  box.pop(1);
  EXPECT_EQ(box.frames(), 2u);
  EXPECT_EQ(box.at(0).body.size(), 20u);
  EXPECT_EQ(box.bytes(), 24u + 34u);
  box.pop(2);
  EXPECT_TRUE(box.empty());
  EXPECT_EQ(box.bytes(), 0u);
}

TEST(Outbox, TruncateKeepsTheFrontFrames) {
  Outbox box(1000);
  for (int i = 0; i < 5; ++i) box.push(frame_of(10));
  box.truncate(1);
  EXPECT_EQ(box.frames(), 1u);
  EXPECT_EQ(box.bytes(), 14u);
}

TEST(Outbox, StaysCorrectAcrossManyPushesAndPops) {
  Outbox box(1 << 20);
  std::size_t expected_bytes = 0;
  for (int round = 0; round < 1000; ++round) {
    box.push(frame_of(static_cast<std::size_t>(round % 7)));
    expected_bytes += 4 + static_cast<std::size_t>(round % 7);
    if (round % 3 == 0) {
      expected_bytes -= box.at(0).size();
      box.pop(1);
    }
  }
  EXPECT_EQ(box.bytes(), expected_bytes);
}

TEST(Outbox, ReleasesMemoryOnlyWhenEmpty) {
  Outbox box(1000);
  box.push(frame_of(10));
  box.release_memory();
  EXPECT_EQ(box.frames(), 1u);  // not empty: nothing released
  box.pop(1);
  box.release_memory();
  EXPECT_TRUE(box.empty());
  EXPECT_EQ(box.push(frame_of(10)), Outbox::Push::kQueued);  // usable after release
  EXPECT_EQ(box.bytes(), 14u);
}

}  // namespace
}  // namespace sg::net
