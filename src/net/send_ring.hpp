// SendRing: a worker's io_uring for its end-of-turn flush. Every connection with frames queued
// gets one send, and the whole turn reaches the kernel in one io_uring_enter instead of one
// sendmsg per connection: on a loopback fan-out that is about a sixth of the cost of a write.
// open() fails where io_uring is unavailable (old kernel, seccomp, sysctl); the worker then
// writes with sendmsg as before. Worker thread only.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace sg::net {

class SendRing {
 public:
  static constexpr std::size_t kEntries = 128;
  // Buffers per send (two per frame): when a worker falls behind, a connection's queue holds
  // every event fanned out since its last write, and all of it should go in one entry.
  static constexpr std::size_t kMaxIov = 256;
  // Buffers of one submission, shared by its entries: a turn of one-frame sends uses a few, a
  // turn of long queues many (64 KiB per worker rather than kEntries * kMaxIov of them).
  static constexpr std::size_t kIovPool = 4096;
  // A send of at most this many bytes is copied into one buffer and sent as one piece: the
  // kernel's plain send path is cheaper than sendmsg's for the one-event case.
  static constexpr std::size_t kCopyBytes = 512;

  struct Completion {
    std::uint32_t tag;
    int result;  // bytes written, or -errno
  };

  // On the thread that will use the ring. Null with the reason in `error` when unavailable.
  static std::unique_ptr<SendRing> open(std::string& error);
  ~SendRing();
  SendRing(const SendRing&) = delete;
  SendRing& operator=(const SendRing&) = delete;

  bool full() const { return queued_ == kEntries; }
  bool empty() const { return queued_ == 0; }
  // Buffers the next add() may take: kMaxIov, or fewer once the submission's pool runs low
  // (0 when full).
  std::size_t iov_room() const;
  // Queues a send of `iov` on `fd` (MSG_DONTWAIT); the buffers must stay valid until submit()
  // returns. False, queuing nothing, when full or given more than iov_room() buffers.
  bool add(int fd, std::span<const iovec> iov, std::uint32_t tag);
  // Submits what is queued and waits for every completion. If the ring itself fails (not
  // expected once open), sends whose outcome is unknown complete with -EIO, and broken() turns
  // true: the caller then drops the ring.
  std::span<const Completion> submit();
  bool broken() const { return broken_; }

 private:
  struct Impl;
  explicit SendRing(std::unique_ptr<Impl> impl);
  std::span<const Completion> fail_rest();

  std::unique_ptr<Impl> impl_;
  std::size_t queued_ = 0;
  std::size_t iov_used_ = 0;  // of Impl's pool, by this submission's gathered sends
  std::array<std::uint32_t, kEntries> tags_{};
  std::array<bool, kEntries> completed_{};
  std::vector<Completion> done_;
  bool broken_ = false;
};

}  // namespace sg::net
