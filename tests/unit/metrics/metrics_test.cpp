#include "metrics/metrics.hpp"

#include <gtest/gtest.h>

#include <array>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace sg::metrics {
namespace {

TEST(Counter, StartsAtZeroAndAdds) {
  Counter c;
  EXPECT_EQ(c.value(), 0u);
  c.inc();
  c.inc(41);
  EXPECT_EQ(c.value(), 42u);
}

TEST(Counter, FourThreadsOfAHundredThousandIncrementsCountFourHundredThousand) {
  Counter c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < 100000; ++i) c.inc();
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(c.value(), 400000u);
}

TEST(Counter, MoreThreadsThanShardsStillCountExactly) {
  Counter c;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kShards * 2 + 3; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < 1000; ++i) c.inc(2);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(c.value(), (kShards * 2 + 3) * 2000);
}

TEST(Gauge, SetsAndAdds) {
  Gauge g;
  g.set(10);
  g.add(-15);
  EXPECT_EQ(g.value(), -5);
}

TEST(Histogram, CountsEachValueInTheFirstBucketItFits) {
  Histogram h({1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 2.0, 4.9, 5.0, 5.1, 100.0, -3.0}) h.observe(v);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.bounds, (std::vector<double>{1, 2, 5}));
  // le=1: 0.5, 1.0, -3 · le=2: +1.5, 2.0 · le=5: +4.9, 5.0 · +Inf: +5.1, 100
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{3, 5, 7, 9}));
  EXPECT_EQ(s.count, 9u);
  EXPECT_DOUBLE_EQ(s.sum, 0.5 + 1.0 + 1.5 + 2.0 + 4.9 + 5.0 + 5.1 + 100.0 - 3.0);
}

TEST(Histogram, AddsCountsTalliedElsewhere) {
  Histogram h({1, 2, 5});
  h.observe(1.5);
  const std::array<std::uint64_t, 4> tally = {3, 0, 2, 1};  // per bucket, +Inf last
  h.add(tally, 3 * 1.0 + 2 * 4.0 + 9.0);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{3, 4, 6, 7}));
  EXPECT_EQ(s.count, 7u);
  EXPECT_DOUBLE_EQ(s.sum, 1.5 + 20.0);
}

TEST(HistogramDeathTest, RejectsATallyOfTheWrongSize) {
  Histogram h({1, 2});
  const std::array<std::uint64_t, 2> tally = {1, 1};
  EXPECT_DEATH(h.add(tally, 2.0), "one count per bucket");
}

TEST(Histogram, IgnoresNaN) {
  Histogram h({1});
  h.observe(std::numeric_limits<double>::quiet_NaN());
  h.observe(std::numeric_limits<double>::infinity());
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{0, 1}));
  EXPECT_EQ(s.count, 1u);
  EXPECT_TRUE(std::isinf(s.sum));
}

TEST(Histogram, ConcurrentObservationsKeepCountAndSumExact) {
  Histogram h({0.5, 1.5});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 50000; ++i) h.observe(1.0);
    });
  }
  for (auto& th : threads) th.join();
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{0, 200000, 200000}));
  EXPECT_EQ(s.count, 200000u);
  EXPECT_EQ(s.sum, 200000.0);  // integers below 2^53 add exactly
}

TEST(Histogram, WithoutBoundsHasOnlyInf) {
  Histogram h({});
  h.observe(3);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, std::vector<std::uint64_t>{1});
}

TEST(HistogramDeathTest, RejectsBoundsThatDoNotAscend) {
  EXPECT_DEATH(Histogram({1, 1}), "histogram bounds must ascend strictly");
  EXPECT_DEATH(Histogram({2, 1}), "histogram bounds must ascend strictly");
}

TEST(ExponentialBounds, MultipliesFromStart) {
  EXPECT_EQ(exponential_bounds(0.001, 2, 4), (std::vector<double>{0.001, 0.002, 0.004, 0.008}));
  EXPECT_EQ(exponential_bounds(1, 10, 1), std::vector<double>{1});
}

TEST(Registry, ReturnsTheSameMetricForTheSameNameAndLabels) {
  Registry r;
  Counter& a = r.counter("sg_events_total", "Events.", {{"service", "finance"}, {"org", "1"}});
  Counter& b = r.counter("sg_events_total", "Events.", {{"org", "1"}, {"service", "finance"}});
  Counter& c = r.counter("sg_events_total", "Events.", {{"org", "2"}, {"service", "finance"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  Gauge& g1 = r.gauge("sg_connections", "Connections.");
  Gauge& g2 = r.gauge("sg_connections", "Connections.");
  EXPECT_EQ(&g1, &g2);
  Histogram& h1 = r.histogram("sg_latency_seconds", "Latency.", {0.1, 1});
  Histogram& h2 = r.histogram("sg_latency_seconds", "Latency.", {0.1, 1});
  EXPECT_EQ(&h1, &h2);
}

TEST(Registry, ReferencesStayValidAsMoreMetricsAreAdded) {
  Registry r;
  Counter& first = r.counter("sg_first_total", "First.");
  first.inc(7);
  for (int i = 0; i < 1000; ++i) {
    r.counter("sg_many_total", "Many.", {{"i", std::to_string(i)}}).inc();
    r.gauge("sg_gauge_" + std::to_string(i), "G.").set(i);
  }
  first.inc();
  EXPECT_EQ(first.value(), 8u);
  EXPECT_EQ(&first, &r.counter("sg_first_total", "First."));
}

TEST(Registry, WritesExactPrometheusText) {
  Registry r;
  // Registered out of order: the text sorts families by name.
  r.gauge("sg_connections", "Open WebSocket connections.").set(3);
  Histogram& h = r.histogram("sg_delivery_seconds", "Publish to write.", {0.005, 0.1, 1});
  // Binary fractions, so the sum is exact whatever the order of additions.
  h.observe(0.00390625);
  h.observe(0.0625);
  h.observe(0.0625);
  h.observe(2.5);
  Counter& by_service = r.counter("sg_events_delivered_total", "Events written to sockets.",
                                  {{"service", "finance"}});
  by_service.inc(5);
  r.counter("sg_events_delivered_total", "Events written to sockets.", {{"service", "chat"}}).inc();
  r.counter("sg_accepted_total", "Accepted connections.").inc(2);
  r.gauge("sg_temperature", "Negative values work.").set(-4);

  EXPECT_EQ(r.prometheus_text(),
            "# HELP sg_accepted_total Accepted connections.\n"
            "# TYPE sg_accepted_total counter\n"
            "sg_accepted_total 2\n"
            "# HELP sg_connections Open WebSocket connections.\n"
            "# TYPE sg_connections gauge\n"
            "sg_connections 3\n"
            "# HELP sg_delivery_seconds Publish to write.\n"
            "# TYPE sg_delivery_seconds histogram\n"
            "sg_delivery_seconds_bucket{le=\"0.005\"} 1\n"
            "sg_delivery_seconds_bucket{le=\"0.1\"} 3\n"
            "sg_delivery_seconds_bucket{le=\"1\"} 3\n"
            "sg_delivery_seconds_bucket{le=\"+Inf\"} 4\n"
            "sg_delivery_seconds_sum 2.62890625\n"
            "sg_delivery_seconds_count 4\n"
            "# HELP sg_events_delivered_total Events written to sockets.\n"
            "# TYPE sg_events_delivered_total counter\n"
            "sg_events_delivered_total{service=\"finance\"} 5\n"
            "sg_events_delivered_total{service=\"chat\"} 1\n"
            "# HELP sg_temperature Negative values work.\n"
            "# TYPE sg_temperature gauge\n"
            "sg_temperature -4\n");
}

TEST(Registry, HistogramLabelsComeBeforeLe) {
  Registry r;
  r.histogram("sg_frame_bytes", "Frame sizes.", {100}, {{"kind", "event"}}).observe(50);
  EXPECT_EQ(r.prometheus_text(),
            "# HELP sg_frame_bytes Frame sizes.\n"
            "# TYPE sg_frame_bytes histogram\n"
            "sg_frame_bytes_bucket{kind=\"event\",le=\"100\"} 1\n"
            "sg_frame_bytes_bucket{kind=\"event\",le=\"+Inf\"} 1\n"
            "sg_frame_bytes_sum{kind=\"event\"} 50\n"
            "sg_frame_bytes_count{kind=\"event\"} 1\n");
}

TEST(Registry, EscapesLabelValuesAndHelp) {
  Registry r;
  r.counter("sg_odd_total", "Help with \\ and\nnewline and \"quotes\".",
            {{"v", "back\\slash \"quoted\"\nnext line"}})
      .inc();
  EXPECT_EQ(r.prometheus_text(),
            "# HELP sg_odd_total Help with \\\\ and\\nnewline and \"quotes\".\n"
            "# TYPE sg_odd_total counter\n"
            "sg_odd_total{v=\"back\\\\slash \\\"quoted\\\"\\nnext line\"} 1\n");
}

TEST(Registry, SortsLabelsByName) {
  Registry r;
  r.gauge("sg_g", "G.", {{"zone", "b"}, {"app", "a"}}).set(1);
  EXPECT_EQ(r.prometheus_text(),
            "# HELP sg_g G.\n"
            "# TYPE sg_g gauge\n"
            "sg_g{app=\"a\",zone=\"b\"} 1\n");
}

TEST(Registry, CollectsCallbackGaugesAtScrapeTime) {
  Registry r;
  int connections_org_1 = 2;
  r.gauge_callback("sg_connections_by_org", "Open connections per org.",
                   [&connections_org_1](std::vector<Registry::Sample>& out) {
                     out.push_back({{{"org", "1"}}, static_cast<double>(connections_org_1)});
                     out.push_back({{{"org", "2\"x"}}, 0.5});
                   });
  r.gauge_callback("sg_uptime_ratio", "Unlabelled callback.",
                   [](std::vector<Registry::Sample>& out) {
                     out.push_back({{}, 1});
                   });
  const std::string expected_head =
      "# HELP sg_connections_by_org Open connections per org.\n"
      "# TYPE sg_connections_by_org gauge\n";
  const std::string expected_tail =
      "sg_connections_by_org{org=\"2\\\"x\"} 0.5\n"
      "# HELP sg_uptime_ratio Unlabelled callback.\n"
      "# TYPE sg_uptime_ratio gauge\n"
      "sg_uptime_ratio 1\n";
  EXPECT_EQ(r.prometheus_text(),
            expected_head + "sg_connections_by_org{org=\"1\"} 2\n" + expected_tail);
  connections_org_1 = 7;
  EXPECT_EQ(r.prometheus_text(),
            expected_head + "sg_connections_by_org{org=\"1\"} 7\n" + expected_tail);
}

TEST(Registry, CallbackAndPlainGaugesShareAFamily) {
  Registry r;
  r.gauge("sg_mixed", "Mixed.", {{"k", "plain"}}).set(1);
  r.gauge_callback("sg_mixed", "Mixed.", [](std::vector<Registry::Sample>& out) {
    out.push_back({{{"k", "cb"}}, std::numeric_limits<double>::infinity()});
  });
  EXPECT_EQ(r.prometheus_text(),
            "# HELP sg_mixed Mixed.\n"
            "# TYPE sg_mixed gauge\n"
            "sg_mixed{k=\"plain\"} 1\n"
            "sg_mixed{k=\"cb\"} +Inf\n");
}

TEST(Registry, EmptyRegistryWritesNothing) {
  Registry r;
  EXPECT_EQ(r.prometheus_text(), "");
}

TEST(Registry, CountsFromManyThreadsThroughTheRegistry) {
  Registry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&r] {
      Counter& c = r.counter("sg_parallel_total", "Parallel.");
      for (int i = 0; i < 100000; ++i) c.inc();
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(r.prometheus_text(),
            "# HELP sg_parallel_total Parallel.\n"
            "# TYPE sg_parallel_total counter\n"
            "sg_parallel_total 400000\n");
}

TEST(RegistryDeathTest, AbortsOnAnInvalidMetricName) {
  Registry r;
  EXPECT_DEATH(r.counter("9starts_with_digit", "x"), "invalid metric name");
  EXPECT_DEATH(r.gauge("has-dash", "x"), "invalid metric name");
  EXPECT_DEATH(r.gauge("", "x"), "invalid metric name");
  EXPECT_DEATH(r.counter("ok_total", "x", {{"bad-label", "v"}}), "invalid label name");
  EXPECT_DEATH(r.counter("ok_total", "x", {{"__reserved", "v"}}), "invalid label name");
  EXPECT_DEATH(r.histogram("ok_seconds", "x", {1}, {{"le", "1"}}), "reserve the label le");
}

TEST(RegistryDeathTest, AbortsWhenANameChangesType) {
  Registry r;
  r.counter("sg_thing", "x");
  EXPECT_DEATH(r.gauge("sg_thing", "x"), "another type");
}

TEST(Registry, AcceptsColonsAndUnderscoresInNames) {
  Registry r;
  r.counter("_sg:rule:total", "Recording-rule style.").inc();
  EXPECT_EQ(r.prometheus_text(),
            "# HELP _sg:rule:total Recording-rule style.\n"
            "# TYPE _sg:rule:total counter\n"
            "_sg:rule:total 1\n");
}

}  // namespace
}  // namespace sg::metrics
