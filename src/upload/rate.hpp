// upload internals: the recent transfer rate of one upload, from samples of (time, received)
// taken as bytes arrive. Reports the rate over about the last five seconds; 0 once the upload
// has been idle that long, so an ETA is never computed from stale traffic.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

namespace sg::upload {

class RateMeter {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kSpacing{250};
  static constexpr std::chrono::seconds kWindow{5};

  // Records that `received` bytes had arrived at `now`. Samples closer than kSpacing replace
  // the newest one, so at most kWindow / kSpacing + 2 are kept.
  void add(Clock::time_point now, std::uint64_t received);
  // Bytes per second between the oldest sample in the window and the newest; 0 without two
  // samples or when the newest is older than kWindow.
  double rate(Clock::time_point now) const;
  std::size_t samples() const { return samples_.size(); }

 private:
  struct Sample {
    Clock::time_point at;
    std::uint64_t received;
  };
  std::deque<Sample> samples_;
};

}  // namespace sg::upload
