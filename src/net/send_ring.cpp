#include "net/send_ring.hpp"

#include <liburing.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace sg::net {

struct SendRing::Impl {
  io_uring ring{};
  // Per entry: the msghdr and buffers a sendmsg points at, or the bytes of a copied send; both
  // must outlive the submission.
  std::array<msghdr, kEntries> msgs{};
  std::array<iovec, kIovPool> iovs{};
  std::array<std::array<char, kCopyBytes>, kEntries> copies{};

  bool ready = false;  // ring set up: only then is there anything to tear down

  ~Impl() {
    if (ready) io_uring_queue_exit(&ring);
  }
};

std::unique_ptr<SendRing> SendRing::open(std::string& error) {
  auto impl = std::make_unique<Impl>();
  // SUBMIT_ALL: one failing entry must not leave the rest unsubmitted (Linux 5.18).
  // SINGLE_ISSUER + DEFER_TASKRUN: only this thread submits, so the kernel can skip the
  // cross-thread bookkeeping (Linux 6.1). Older kernels get the plainer setups.
  constexpr std::array<unsigned, 3> kSetups = {
      IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_SUBMIT_ALL, 0};
  int rc = -ENOSYS;
  for (const unsigned flags : kSetups) {
    rc = io_uring_queue_init(kEntries, &impl->ring, flags);
    if (rc == 0) break;
    if (rc != -EINVAL) break;  // unsupported flags give EINVAL; anything else won't get better
  }
  if (rc != 0) {
    error = std::strerror(-rc);
    return nullptr;
  }
  impl->ready = true;
  // A ring opens on kernels older than its send operations (5.1 to 5.5), and every send would
  // then fail: ask first.
  io_uring_probe* probe = io_uring_get_probe_ring(&impl->ring);
  const bool sends = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_SEND) &&
                     io_uring_opcode_supported(probe, IORING_OP_SENDMSG);
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!sends) {
    error = "the kernel's io_uring has no send operation";
    return nullptr;
  }
  return std::unique_ptr<SendRing>(new SendRing(std::move(impl)));
}

SendRing::SendRing(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  done_.reserve(kEntries);
}

SendRing::~SendRing() = default;

std::size_t SendRing::iov_room() const {
  if (full()) return 0;
  return std::min(kMaxIov, kIovPool - iov_used_);
}

bool SendRing::add(int fd, std::span<const iovec> iov, std::uint32_t tag) {
  if (iov.size() > iov_room()) return false;
  const std::size_t slot = queued_;
  io_uring_sqe* sqe = io_uring_get_sqe(&impl_->ring);
  if (sqe == nullptr) return false;
  std::size_t total = 0;
  for (const iovec& v : iov) total += v.iov_len;
  constexpr int kFlags = MSG_NOSIGNAL | MSG_DONTWAIT;
  if (total <= kCopyBytes) {
    char* out = impl_->copies[slot].data();
    for (const iovec& v : iov) {
      std::memcpy(out, v.iov_base, v.iov_len);
      out += v.iov_len;
    }
    io_uring_prep_send(sqe, fd, impl_->copies[slot].data(), total, kFlags);
  } else {
    iovec* stored = impl_->iovs.data() + iov_used_;
    std::copy(iov.begin(), iov.end(), stored);
    iov_used_ += iov.size();
    msghdr& msg = impl_->msgs[slot];
    msg = {};
    msg.msg_iov = stored;
    msg.msg_iovlen = iov.size();
    io_uring_prep_sendmsg(sqe, fd, &msg, kFlags);
  }
  io_uring_sqe_set_data64(sqe, slot);
  tags_[slot] = tag;
  ++queued_;
  return true;
}

std::span<const SendRing::Completion> SendRing::submit() {
  done_.clear();
  if (queued_ == 0) return {};
  completed_.fill(false);
  int submitted;
  do {
    submitted = io_uring_submit(&impl_->ring);
  } while (submitted == -EINTR);
  if (submitted != static_cast<int>(queued_)) return fail_rest();
  // Sends on non-blocking sockets with MSG_DONTWAIT complete during the submit: each either
  // wrote or reports EAGAIN. The wait is there for correctness, not expected to sleep.
  while (done_.size() < queued_) {
    io_uring_cqe* cqe = nullptr;
    const int rc = io_uring_wait_cqe(&impl_->ring, &cqe);
    if (rc == -EINTR) continue;
    if (rc < 0) return fail_rest();
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&impl_->ring, head, cqe) {
      const auto slot = static_cast<std::size_t>(io_uring_cqe_get_data64(cqe));
      if (slot < queued_ && !completed_[slot]) {
        completed_[slot] = true;
        done_.push_back({tags_[slot], cqe->res});
      }
      ++seen;
    }
    io_uring_cq_advance(&impl_->ring, seen);
  }
  queued_ = 0;
  iov_used_ = 0;
  return done_;
}

std::span<const SendRing::Completion> SendRing::fail_rest() {
  // Whether a send that reached the kernel wrote is unknown now, and writing its bytes again
  // could corrupt the stream; so each connection still waiting fails (its client reconnects and
  // resumes where it was) and the worker goes back to sendmsg for good.
  for (std::size_t slot = 0; slot < queued_; ++slot) {
    if (!completed_[slot]) done_.push_back({tags_[slot], -EIO});
  }
  queued_ = 0;
  iov_used_ = 0;
  broken_ = true;
  return done_;
}

}  // namespace sg::net
