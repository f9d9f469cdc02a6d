#include "net/exact_allocator.hpp"

#include <gtest/gtest.h>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>

#include <type_traits>

namespace sg::net {
namespace {

using Handler = void (*)(const boost::system::error_code&);

// Asio sends handlers whose allocator is std::allocator through its per-thread recycling cache
// (which gave idle sessions' waits ~560-byte blocks); ExactAllocator must not be taken for it.
static_assert(
    std::is_same_v<boost::asio::detail::get_hook_allocator<Handler, ExactAllocator<void>>::type,
                   ExactAllocator<void>>);
static_assert(
    !std::is_same_v<boost::asio::detail::get_hook_allocator<Handler, std::allocator<void>>::type,
                    std::allocator<void>>);

TEST(ExactAllocator, AllocatesAndFreesExactlyWhatIsAskedFor) {
  ExactAllocator<std::uint64_t> a;
  std::uint64_t* p = a.allocate(3);
  p[0] = 1;
  p[2] = 3;
  EXPECT_EQ(p[0] + p[2], 4u);
  a.deallocate(p, 3);
  EXPECT_TRUE(a == ExactAllocator<char>());
}

TEST(ExactAllocator, CarriesAnAsioWaitToCompletion) {
  boost::asio::io_context io;
  boost::asio::local::stream_protocol::socket a(io);
  boost::asio::local::stream_protocol::socket b(io);
  boost::asio::local::connect_pair(a, b);
  int calls = 0;
  boost::system::error_code result = boost::asio::error::would_block;
  a.async_wait(
      boost::asio::socket_base::wait_read,
      boost::asio::bind_allocator(ExactAllocator<void>(), [&](const boost::system::error_code& ec) {
        ++calls;
        result = ec;
      }));
  io.poll();
  EXPECT_EQ(calls, 0);  // nothing to read yet
  boost::asio::write(b, boost::asio::buffer("x", 1));
  io.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(result);
}

}  // namespace
}  // namespace sg::net
