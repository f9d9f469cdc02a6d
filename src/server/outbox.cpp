#include "server/outbox.hpp"

namespace sg::server {

Outbox::Push Outbox::push(OutFrame&& frame) {
  if (bytes_ + frame.size() > limit_bytes_) return Push::kOverLimit;
  bytes_ += frame.size();
  frames_.push_back(std::move(frame));
  return Push::kQueued;
}

Outbox::Push Outbox::push_reply(OutFrame&& frame) {
  bytes_ += frame.size();
  frames_.push_back(std::move(frame));
  return over_limit() ? Push::kOverLimit : Push::kQueued;
}

Outbox::Push Outbox::push_pong(OutFrame&& frame, bool front_started) {
  if (pong_ != kNoPong && pong_ >= head_ + (front_started ? 1 : 0)) {
    bytes_ -= frames_[pong_].size();
    bytes_ += frame.size();
    frames_[pong_] = std::move(frame);
    return over_limit() ? Push::kOverLimit : Push::kQueued;
  }
  pong_ = frames_.size();
  return push_reply(std::move(frame));
}

void Outbox::pop(std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    bytes_ -= frames_[head_].size();
    frames_[head_] = OutFrame{};
    ++head_;
  }
  if (pong_ != kNoPong && pong_ < head_) pong_ = kNoPong;
  if (head_ == frames_.size()) {
    // Capacity stays for the next burst; release_memory() frees it once the connection idles.
    head_ = 0;
    frames_.clear();
  } else if (head_ > 64 && head_ * 2 > frames_.size()) {
    frames_.erase(frames_.begin(), frames_.begin() + static_cast<std::ptrdiff_t>(head_));
    if (pong_ != kNoPong) pong_ -= head_;
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
  if (pong_ != kNoPong && pong_ >= frames_.size()) pong_ = kNoPong;
}

}  // namespace sg::server
