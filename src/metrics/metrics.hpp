// metrics: counters, gauges and histograms for traffic, exposed as Prometheus text on
// GET /metrics. Updates are lock-free and cheap enough for the per-delivery path (counters
// are sharded per thread). Registration happens at start-up; reads from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sg::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::size_t kShards = 16;

// Monotonic. inc() touches a per-thread cache line, so workers never contend.
class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept;
  std::uint64_t value() const noexcept;

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> v{0};
  };
  std::array<Slot, kShards> slots_;
};

class Gauge {
 public:
  void set(std::int64_t v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t d) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }
  std::int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

// Fixed upper bounds (ascending, in the metric's unit, e.g. seconds); +Inf is implicit.
// observe() is lock-free; a snapshot taken while others observe is consistent per bucket, and
// its count always equals its +Inf bucket.
class Histogram {
 public:
  // Bounds must be finite and strictly ascending (a programming error otherwise: aborts).
  explicit Histogram(std::vector<double> bounds);
  // A value equal to a bound counts in that bound's bucket (Prometheus "le"). NaN is ignored.
  void observe(double v) noexcept;
  // Adds observations tallied elsewhere against the same bounds: `buckets` holds a count per
  // bound then +Inf (not cumulative), `sum` their total. For a hot path that tallies locally
  // and publishes now and then. A size other than bounds + 1 is a programming error (aborts).
  void add(std::span<const std::uint64_t> buckets, double sum) noexcept;

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // per bound, then +Inf
    std::uint64_t count = 0;
    double sum = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  // Per bucket, not cumulative: observe() touches one. bounds_.size() + 1 of them (+Inf last).
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

// Exponential bounds: start, start*factor, … (count of them). start > 0, factor > 1, count ≥ 1.
std::vector<double> exponential_bounds(double start, double factor, std::size_t count);

// Owns every metric; references it returns stay valid for its lifetime. Asking twice for the
// same name and labels (in any order) returns the same metric. Names must match
// [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, and a name keeps one type;
// breaking that is a programming error and aborts with a message (at start-up, where
// registration happens). Label values are free text. All members are thread-safe.
class Registry {
 public:
  Registry();
  ~Registry();  // out of line: Family is complete only in metrics.cpp
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                       Labels labels = {});

  // Computed at scrape time (e.g. connections by org). The callback appends samples; it runs
  // on the scraping thread with the registry locked, so it must not call into the registry.
  // Several callbacks (and plain gauges) may share a name.
  struct Sample {
    Labels labels;
    double value = 0;
  };
  void gauge_callback(std::string_view name, std::string_view help,
                      std::function<void(std::vector<Sample>&)> collect);
  // The same for a counter kept elsewhere (e.g. CPU seconds, which the kernel counts).
  void counter_callback(std::string_view name, std::string_view help,
                        std::function<void(std::vector<Sample>&)> collect);

  // Prometheus text exposition format 0.0.4, families sorted by name.
  std::string prometheus_text() const;

 private:
  struct Family;
  Family& family(std::string_view name, std::string_view help, std::string_view type);
  void add_callback(std::string_view name, std::string_view help, std::string_view type,
                    std::function<void(std::vector<Sample>&)> collect);
  mutable std::mutex mu_;
  std::deque<std::unique_ptr<Family>> families_;
};

// The standard process_* metrics every Prometheus client library exports (CPU seconds, resident
// memory, open and max file descriptors, start time), read from /proc/self at scrape time as
// those libraries do; on a system without /proc they are left out of the scrape.
void register_process_metrics(Registry& registry);

// The parts of /proc/self/stat and /proc/stat the process metrics use, parsed purely (tests).
struct ProcStat {
  std::uint64_t utime_ticks = 0;
  std::uint64_t stime_ticks = 0;
  std::uint64_t start_ticks = 0;  // since boot
  std::uint64_t rss_pages = 0;
};
// /proc/self/stat → its fields; nullopt for text that is not one. The command name (field 2)
// may hold spaces and parentheses, so fields are counted from its last ')'.
std::optional<ProcStat> parse_proc_stat(std::string_view text);
// /proc/stat → the boot time ("btime"), in seconds since the epoch; nullopt without one.
std::optional<std::uint64_t> parse_boot_time(std::string_view text);
// /proc/self/limits → the soft limit of "Max open files"; nullopt without one or "unlimited".
std::optional<std::uint64_t> parse_max_open_files(std::string_view text);

}  // namespace sg::metrics
