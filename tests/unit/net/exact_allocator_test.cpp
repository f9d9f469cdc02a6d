#include "net/exact_allocator.hpp"

#include <gtest/gtest.h>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <vector>

// This binary's global operator new and delete, so the tests can see the size of every heap
// allocation a call makes. They only record while a test has armed them on its own thread;
// otherwise they are malloc and free.
namespace {

constexpr std::size_t kMaxRecorded = 16;

struct Recording {
  bool armed = false;
  std::size_t count = 0;  // may exceed kMaxRecorded; only the first sizes are kept
  std::array<std::size_t, kMaxRecorded> sizes{};
  std::array<void*, kMaxRecorded> pointers{};
  std::size_t frees = 0;
  void* last_freed = nullptr;
};

thread_local Recording recording;

void* counted_new(std::size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (recording.armed) {
    if (recording.count < kMaxRecorded) {
      recording.sizes[recording.count] = size;
      recording.pointers[recording.count] = p;
    }
    ++recording.count;
  }
  return p;
}

void counted_delete(void* p) noexcept {
  if (p != nullptr && recording.armed) {
    ++recording.frees;
    recording.last_freed = p;
  }
  std::free(p);
}

}  // namespace

void* operator new(std::size_t size) {
  if (void* p = counted_new(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = counted_new(size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return counted_new(size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return counted_new(size);
}
void operator delete(void* p) noexcept {
  counted_delete(p);
}
void operator delete[](void* p) noexcept {
  counted_delete(p);
}
void operator delete(void* p, std::size_t) noexcept {
  counted_delete(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  counted_delete(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  counted_delete(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  counted_delete(p);
}

namespace sg::net {
namespace {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;

// What the allocations of one stretch of code on this thread were.
struct Allocations {
  std::vector<std::size_t> sizes;
  std::vector<void*> pointers;
  std::size_t frees = 0;
  void* last_freed = nullptr;
};

template <class F>
Allocations record(F&& code) {
  recording = Recording{};
  recording.armed = true;
  code();
  recording.armed = false;
  EXPECT_LE(recording.count, kMaxRecorded);
  Allocations out;
  for (std::size_t i = 0; i < std::min(recording.count, kMaxRecorded); ++i) {
    out.sizes.push_back(recording.sizes[i]);
    out.pointers.push_back(recording.pointers[i]);
  }
  out.frees = recording.frees;
  out.last_freed = recording.last_freed;
  return out;
}

// A wait's handler as WsConnection::do_read binds it, named so the test can name Asio's operation.
struct OnReadable {
  int* calls;
  void operator()(const boost::system::error_code&) const { ++*calls; }
};
using ExactHandler = asio::allocator_binder<OnReadable, ExactAllocator<void>>;
// The operation Asio allocates for that wait on a socket of this io_context (the epoll reactor).
using ExactWaitOp = asio::detail::reactive_wait_op<ExactHandler, Socket::executor_type>;

using Handler = void (*)(const boost::system::error_code&);

// Asio sends handlers whose allocator is std::allocator through its per-thread recycling cache
// (which gave idle sessions' waits ~560-byte blocks); ExactAllocator must not be taken for it.
static_assert(std::is_same_v<asio::detail::get_hook_allocator<Handler, ExactAllocator<void>>::type,
                             ExactAllocator<void>>);
static_assert(!std::is_same_v<asio::detail::get_hook_allocator<Handler, std::allocator<void>>::type,
                              std::allocator<void>>);

TEST(ExactAllocator, AllocatesExactlyTheBytesAskedForAndFreesThem) {
  ExactAllocator<std::uint64_t> a;
  std::uint64_t* p = nullptr;
  const auto allocated = record([&] { p = a.allocate(3); });
  EXPECT_EQ(allocated.sizes, std::vector<std::size_t>{3 * sizeof(std::uint64_t)});
  ASSERT_EQ(allocated.pointers.size(), 1u);
  EXPECT_EQ(allocated.pointers[0], p);
  p[0] = 1;
  p[2] = 3;
  EXPECT_EQ(p[0] + p[2], 4u);

  const auto freed = record([&] { a.deallocate(p, 3); });
  EXPECT_TRUE(freed.sizes.empty());
  EXPECT_EQ(freed.frees, 1u);
  EXPECT_EQ(freed.last_freed, p);

  // Rebound copies are interchangeable: one may free what another allocated.
  EXPECT_TRUE(a == ExactAllocator<char>());
  ExactAllocator<char> bytes(a);
  const auto one = record([&] { bytes.deallocate(bytes.allocate(1), 1); });
  EXPECT_EQ(one.sizes, std::vector<std::size_t>{1});
  EXPECT_EQ(one.frees, 1u);
}

// The case WsConnection::do_read is about: a wait started from a handler, on a thread whose
// Asio cache holds a larger block freed a moment before. With std::allocator the wait takes
// that block (nothing new is allocated); with ExactAllocator it allocates exactly its
// operation's size, and gives it back when the wait completes.
TEST(ExactAllocator, AsioWaitBoundToItAllocatesExactlyItsOperation) {
  asio::io_context io;
  Socket a(io);
  Socket b(io);
  asio::local::connect_pair(a, b);
  Socket c(io);
  Socket d(io);
  asio::local::connect_pair(c, d);

  int big_calls = 0;
  int exact_calls = 0;
  int recycled_calls = 0;
  Allocations exact;
  Allocations recycled;
  Allocations completed;
  // A wait whose handler is large, as the HTTP upgrade's was; its operation goes back to this
  // thread's cache before the handler runs.
  std::array<char, 512> ballast{};
  a.async_wait(Socket::wait_read, [&, ballast](const boost::system::error_code& ec) {
    ASSERT_FALSE(ec);
    ++big_calls;
    EXPECT_EQ(ballast.size(), 512u);
    char byte = 0;
    a.read_some(asio::buffer(&byte, 1));  // so the next wait waits
    exact = record([&] {
      a.async_wait(Socket::wait_read,
                   asio::bind_allocator(ExactAllocator<void>(), OnReadable{&exact_calls}));
    });
    // The control: the same wait with Asio's default allocator reuses the cached block.
    recycled = record([&] { c.async_wait(Socket::wait_read, OnReadable{&recycled_calls}); });
  });
  asio::write(b, asio::buffer("x", 1));
  io.run_one();
  ASSERT_EQ(big_calls, 1);

  EXPECT_EQ(exact.sizes, std::vector<std::size_t>{sizeof(ExactWaitOp)});
  EXPECT_LT(sizeof(ExactWaitOp), sizeof(ballast));
  EXPECT_TRUE(recycled.sizes.empty()) << "the control wait did not find a block in the cache";

  // The exact wait's operation is freed, not cached, when it completes.
  asio::write(b, asio::buffer("y", 1));
  completed = record([&] { io.run_one(); });
  EXPECT_EQ(exact_calls, 1);
  EXPECT_EQ(completed.frees, 1u);
  ASSERT_EQ(exact.pointers.size(), 1u);
  EXPECT_EQ(completed.last_freed, exact.pointers[0]);

  asio::write(d, asio::buffer("x", 1));
  io.run_one();
  EXPECT_EQ(recycled_calls, 1);
}

}  // namespace
}  // namespace sg::net
