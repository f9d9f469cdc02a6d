#include "server/outbox.hpp"

namespace sg::server {

Outbox::Push Outbox::push(OutFrame&& frame, bool force) {
  if (!force && bytes_ + frame.size() > limit_bytes_) return Push::kOverLimit;
  bytes_ += frame.size();
  frames_.push_back(std::move(frame));
  return Push::kQueued;
}

void Outbox::pop(std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    bytes_ -= frames_[head_].size();
    frames_[head_] = OutFrame{};
    ++head_;
  }
  if (head_ == frames_.size()) {
    // Capacity stays for the next burst; release_memory() frees it once the connection idles.
    head_ = 0;
    frames_.clear();
  } else if (head_ > 64 && head_ * 2 > frames_.size()) {
    frames_.erase(frames_.begin(), frames_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

void Outbox::release_memory() {
  if (empty() && frames_.capacity() != 0) {
    frames_ = {};
    head_ = 0;
  }
}

void Outbox::truncate(std::size_t keep) {
  while (frames() > keep) {
    bytes_ -= frames_.back().size();
    frames_.pop_back();
  }
}

}  // namespace sg::server
