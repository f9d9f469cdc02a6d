#include "net/send_ring.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <memory>
#include <string>
#include <vector>

namespace sg::net {
namespace {

// A connected pair of non-blocking stream sockets, as the server's are.
struct Pair {
  int writer = -1;
  int reader = -1;
  Pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) return;
    writer = fds[0];
    reader = fds[1];
  }
  ~Pair() {
    if (writer >= 0) ::close(writer);
    if (reader >= 0) ::close(reader);
  }
  std::string drain() const {
    std::string out;
    std::array<char, 65536> buf;
    for (;;) {
      const ssize_t n = ::recv(reader, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n <= 0) return out;
      out.append(buf.data(), static_cast<std::size_t>(n));
    }
  }
};

iovec view(const std::string& s) {
  return {const_cast<char*>(s.data()), s.size()};
}

// Where the kernel refuses io_uring (seccomp, sysctl kernel.io_uring_disabled) the server falls
// back to sendmsg, and these tests have nothing to test.
#define OPEN_RING_OR_SKIP(ring)             \
  std::string ring##_error;                 \
  auto ring = SendRing::open(ring##_error); \
  if (!ring) GTEST_SKIP() << "io_uring unavailable here: " << ring##_error

TEST(SendRing, SendsSmallPiecesAsOneCopyAndLargeOnesAsAGather) {
  OPEN_RING_OR_SKIP(ring);
  Pair small, large;
  const std::string head = "HEAD", body = "small body";
  const std::string big_head(10, 'h'), big_body(3 * SendRing::kCopyBytes, 'b');
  const std::array<iovec, 2> a = {view(head), view(body)};
  const std::array<iovec, 2> b = {view(big_head), view(big_body)};
  ASSERT_TRUE(ring->add(small.writer, a, 7));
  ASSERT_TRUE(ring->add(large.writer, b, 9));
  const auto done = ring->submit();
  ASSERT_EQ(done.size(), 2u);
  for (const auto& c : done) {
    if (c.tag == 7)
      EXPECT_EQ(c.result, static_cast<int>(head.size() + body.size()));
    else if (c.tag == 9)
      EXPECT_EQ(c.result, static_cast<int>(big_head.size() + big_body.size()));
    else
      ADD_FAILURE() << "unexpected tag " << c.tag;
  }
  EXPECT_EQ(small.drain(), head + body);
  EXPECT_EQ(large.drain(), big_head + big_body);
  EXPECT_TRUE(ring->empty());
  EXPECT_FALSE(ring->broken());
}

TEST(SendRing, AFullSocketReportsEagainAndWritesNothing) {
  OPEN_RING_OR_SKIP(ring);
  Pair p;
  const std::string chunk(4096, 'x');
  while (::send(p.writer, chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);
  const std::string frame = "frame";
  const std::array<iovec, 1> one = {view(frame)};
  ASSERT_TRUE(ring->add(p.writer, one, 1));
  const auto done = ring->submit();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].result, -EAGAIN);
  const std::string got = p.drain();
  EXPECT_EQ(got.find("frame"), std::string::npos);
}

TEST(SendRing, OneFailingSendLeavesTheOthersDone) {
  OPEN_RING_OR_SKIP(ring);
  Pair before, after;
  const std::string text = "ok";
  const std::array<iovec, 1> one = {view(text)};
  ASSERT_TRUE(ring->add(before.writer, one, 0));
  ASSERT_TRUE(ring->add(-1, one, 1));  // not a descriptor
  ASSERT_TRUE(ring->add(after.writer, one, 2));
  const auto done = ring->submit();
  ASSERT_EQ(done.size(), 3u);
  for (const auto& c : done) EXPECT_EQ(c.result, c.tag == 1 ? -EBADF : 2) << "tag " << c.tag;
  EXPECT_EQ(before.drain(), "ok");
  EXPECT_EQ(after.drain(), "ok");
}

TEST(SendRing, RefusesWhenFullOrGivenTooManyBuffers) {
  OPEN_RING_OR_SKIP(ring);
  Pair p;
  const std::string text = "x";
  std::vector<iovec> many(SendRing::kMaxIov + 1, view(text));
  EXPECT_FALSE(ring->add(p.writer, many, 0));
  const std::array<iovec, 1> one = {view(text)};
  for (std::size_t i = 0; i < SendRing::kEntries; ++i) {
    ASSERT_TRUE(ring->add(p.writer, one, static_cast<std::uint32_t>(i)));
  }
  EXPECT_TRUE(ring->full());
  EXPECT_FALSE(ring->add(p.writer, one, 999));
  EXPECT_EQ(ring->submit().size(), SendRing::kEntries);
  EXPECT_EQ(p.drain(), std::string(SendRing::kEntries, 'x'));
  // Emptied by submit: usable again.
  EXPECT_TRUE(ring->add(p.writer, one, 0));
  EXPECT_EQ(ring->submit().size(), 1u);
}

TEST(SendRing, ManyFramesOfOneConnectionGoInOneEntry) {
  OPEN_RING_OR_SKIP(ring);
  Pair p;
  // A connection that fell behind: 100 frames (head + body each) in one send.
  std::vector<std::string> parts;
  for (int i = 0; i < 200; ++i) parts.push_back(std::to_string(i) + (i % 2 ? "body;" : ":"));
  std::vector<iovec> iov;
  std::string expected;
  for (const auto& part : parts) {
    iov.push_back(view(part));
    expected += part;
  }
  ASSERT_LE(iov.size(), ring->iov_room());
  ASSERT_TRUE(ring->add(p.writer, iov, 5));
  const auto done = ring->submit();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].result, static_cast<int>(expected.size()));
  EXPECT_EQ(p.drain(), expected);
}

TEST(SendRing, EntriesShareTheBufferPoolOfASubmission) {
  OPEN_RING_OR_SKIP(ring);
  const std::string text(SendRing::kCopyBytes, 'y');  // two of them are too big to copy
  const std::vector<iovec> full(SendRing::kMaxIov, view(text));
  std::vector<std::unique_ptr<Pair>> pairs;
  std::size_t added = 0;
  while (ring->iov_room() == SendRing::kMaxIov) {
    pairs.push_back(std::make_unique<Pair>());
    ASSERT_TRUE(ring->add(pairs.back()->writer, full, static_cast<std::uint32_t>(added)));
    ++added;
  }
  EXPECT_EQ(added, SendRing::kIovPool / SendRing::kMaxIov);
  EXPECT_EQ(ring->iov_room(), 0u);
  EXPECT_FALSE(ring->full());
  EXPECT_FALSE(ring->add(pairs.front()->writer, full, 999));
  EXPECT_EQ(ring->submit().size(), added);
  // The pool is free again after the submission.
  EXPECT_EQ(ring->iov_room(), SendRing::kMaxIov);
}

TEST(SendRing, SubmitWithNothingQueuedIsANoOp) {
  OPEN_RING_OR_SKIP(ring);
  EXPECT_TRUE(ring->submit().empty());
}

}  // namespace
}  // namespace sg::net
