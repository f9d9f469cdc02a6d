#include "net/outbox.hpp"

namespace sg::net {

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

Outbox::Push Outbox::push_latest(OutFrame&& frame, Latest kind, bool front_started) {
  std::size_t& slot = latest_[static_cast<std::size_t>(kind)];
  if (slot != kNone && slot >= head_ + (front_started ? 1 : 0)) {
    bytes_ -= frames_[slot].size();
    bytes_ += frame.size();
    frames_[slot] = std::move(frame);
    return over_limit() ? Push::kOverLimit : Push::kQueued;
  }
  slot = frames_.size();
  return push_reply(std::move(frame));
}

void Outbox::pop(std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    OutFrame& sent = frames_[head_];
    bytes_ -= sent.size();
    // Only the reference needs dropping now (it may hold the last copy of an event); the slot
    // itself is outside [head_, size) from here on and is reused or cleared with the rest.
    sent.keep.reset();
    sent.body = {};
    ++head_;
  }
  for (auto& slot : latest_) {
    if (slot != kNone && slot < head_) slot = kNone;
  }
  if (head_ == frames_.size()) {
    // Capacity stays for the next burst; release_memory() frees it once the connection idles.
    head_ = 0;
    frames_.clear();
  } else if (head_ > 64 && head_ * 2 > frames_.size()) {
    frames_.erase(frames_.begin(), frames_.begin() + static_cast<std::ptrdiff_t>(head_));
    for (auto& slot : latest_) {
      if (slot != kNone) slot -= head_;
    }
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
  for (auto& slot : latest_) {
    if (slot != kNone && slot >= frames_.size()) slot = kNone;
  }
}

}  // namespace sg::net
