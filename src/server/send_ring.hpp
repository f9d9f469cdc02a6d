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

namespace sg::server {

class SendRing {
 public:
  static constexpr std::size_t kEntries = 128;
  // Buffers per send; a connection with more queued writes through sendmsg, where one syscall
  // is spread over many frames anyway.
  static constexpr std::size_t kMaxIov = 16;
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
  // Queues a send of `iov` on `fd` (MSG_DONTWAIT); the buffers must stay valid until submit()
  // returns. False, queuing nothing, when full or given more than kMaxIov buffers.
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
  std::array<std::uint32_t, kEntries> tags_{};
  std::array<bool, kEntries> completed_{};
  std::vector<Completion> done_;
  bool broken_ = false;
};

}  // namespace sg::server
