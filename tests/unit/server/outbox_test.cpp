#include "server/outbox.hpp"

#include <gtest/gtest.h>

namespace sg::server {
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

TEST(Outbox, ForcedFramesPassTheLimit) {
  Outbox box(10);
  EXPECT_EQ(box.push(frame_of(20), true), Outbox::Push::kQueued);
  EXPECT_EQ(box.bytes(), 24u);
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
}  // namespace sg::server
