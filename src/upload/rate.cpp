#include "upload/rate.hpp"

namespace sg::upload {

void RateMeter::add(Clock::time_point now, std::uint64_t received) {
  if (samples_.size() >= 2 && now - samples_[samples_.size() - 2].at < kSpacing) {
    samples_.back() = {now, received};
  } else {
    samples_.push_back({now, received});
  }
  while (samples_.size() > 2 && now - samples_[1].at > kWindow) samples_.pop_front();
}

double RateMeter::rate(Clock::time_point now) const {
  if (samples_.size() < 2) return 0;
  const auto& first = samples_.front();
  const auto& last = samples_.back();
  if (now - last.at > kWindow || last.received <= first.received) return 0;
  const double secs = std::chrono::duration<double>(last.at - first.at).count();
  if (secs <= 0) return 0;
  return static_cast<double>(last.received - first.received) / secs;
}

}  // namespace sg::upload
