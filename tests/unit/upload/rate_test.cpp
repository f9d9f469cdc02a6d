#include "upload/rate.hpp"

#include <gtest/gtest.h>

namespace sg::upload {
namespace {

using namespace std::chrono_literals;

TEST(RateMeter, IsZeroWithoutTwoSamples) {
  RateMeter m;
  const auto t0 = RateMeter::Clock::now();
  EXPECT_EQ(m.rate(t0), 0);
  m.add(t0, 0);
  EXPECT_EQ(m.rate(t0), 0);
}

TEST(RateMeter, MeasuresBytesOverTheWindow) {
  RateMeter m;
  const auto t0 = RateMeter::Clock::now();
  for (int i = 0; i <= 8; ++i) m.add(t0 + i * 500ms, static_cast<std::uint64_t>(i) * 500);
  EXPECT_NEAR(m.rate(t0 + 4s), 1000.0, 1e-6);
}

TEST(RateMeter, ForgetsOldTrafficAndGoesToZeroWhenIdle) {
  RateMeter m;
  const auto t0 = RateMeter::Clock::now();
  m.add(t0, 0);
  m.add(t0 + 1s, 1'000'000);                                                    // a fast start…
  for (int i = 2; i <= 20; ++i) m.add(t0 + i * 1s, 1'000'000 + (i - 1) * 10u);  // …then slow
  EXPECT_NEAR(m.rate(t0 + 20s), 10.0, 1.0);
  EXPECT_EQ(m.rate(t0 + 30s), 0);
}

TEST(RateMeter, KeepsABoundedNumberOfSamples) {
  RateMeter m;
  const auto t0 = RateMeter::Clock::now();
  for (int i = 0; i < 100000; ++i) m.add(t0 + i * 1ms, static_cast<std::uint64_t>(i));
  // 100 s of samples every millisecond: still the rate of the last few seconds.
  EXPECT_NEAR(m.rate(t0 + 99999ms), 1000.0, 10.0);
  EXPECT_LE(m.samples(), RateMeter::kWindow / RateMeter::kSpacing + 3);
}

}  // namespace
}  // namespace sg::upload
