#include "metrics/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/core.hpp"

namespace sg::metrics {
namespace {

// Misuse of the registry is a bug in our code, found at start-up. Checked in release builds
// too: a bad name would otherwise break every scrape silently.
void require(bool ok, std::string_view what, std::string_view name) {
  if (ok) return;
  std::fprintf(stderr, "metrics: %.*s: \"%.*s\"\n", static_cast<int>(what.size()), what.data(),
               static_cast<int>(name.size()), name.data());
  std::abort();
}

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  // Names starting with "__" are reserved for Prometheus itself.
  return !name.starts_with("__");
}

// Sorted by name, so the same labels in another order name the same series.
Labels normalize(Labels labels, std::string_view metric, bool histogram) {
  std::sort(labels.begin(), labels.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 0; i < labels.size(); ++i) {
    require(valid_label_name(labels[i].first), "invalid label name", labels[i].first);
    require(i == 0 || labels[i].first != labels[i - 1].first, "duplicate label", labels[i].first);
    require(!(histogram && labels[i].first == "le"), "histograms reserve the label le", metric);
  }
  return labels;
}

std::size_t this_thread_slot() noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t slot = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return slot;
}

void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out.append("NaN");
  } else if (std::isinf(v)) {
    out.append(v > 0 ? "+Inf" : "-Inf");
  } else {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

void append_signed(std::string& out, std::int64_t v) {
  if (v < 0) {
    out.push_back('-');
    core::append_decimal(out, 0 - static_cast<std::uint64_t>(v));
  } else {
    core::append_decimal(out, static_cast<std::uint64_t>(v));
  }
}

// HELP text escapes backslash and newline; label values also escape the double quote.
void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '"' && quote) {
      out.append("\\\"");
    } else {
      out.push_back(c);
    }
  }
}

// `{a="x",b="y"}`, plus an `le` label last for buckets; nothing when there are no labels.
void append_labels(std::string& out, const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) return;
  out.push_back('{');
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out.push_back(',');
    first = false;
    out.append(key);
    out.append("=\"");
    append_escaped(out, value, true);
    out.push_back('"');
  }
  if (le != nullptr) {
    if (!first) out.push_back(',');
    out.append("le=\"");
    out.append(*le);
    out.push_back('"');
  }
  out.push_back('}');
}

void append_sample_line(std::string& out, std::string_view name, std::string_view suffix,
                        const Labels& labels, const std::string& value,
                        const std::string* le = nullptr) {
  out.append(name);
  out.append(suffix);
  append_labels(out, labels, le);
  out.push_back(' ');
  out.append(value);
  out.push_back('\n');
}

}  // namespace

// --- Counter ---

void Counter::inc(std::uint64_t n) noexcept {
  slots_[this_thread_slot()].v.fetch_add(n, std::memory_order_relaxed);
}

std::uint64_t Counter::value() const noexcept {
  std::uint64_t total = 0;
  for (const Slot& slot : slots_) total += slot.v.load(std::memory_order_relaxed);
  return total;
}

// --- Histogram ---

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    require(std::isfinite(bounds_[i]), "histogram bounds must be finite", "");
    require(i == 0 || bounds_[i - 1] < bounds_[i], "histogram bounds must ascend strictly", "");
  }
}

void Histogram::observe(double v) noexcept {
  // NaN fits no bucket and would poison the sum for good.
  if (std::isnan(v)) return;
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  const auto index = static_cast<std::size_t>(it - bounds_.begin());
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  double expected = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(expected, expected + v, std::memory_order_relaxed)) {
  }
}

void Histogram::add(std::span<const std::uint64_t> buckets, double sum) noexcept {
  require(buckets.size() == bounds_.size() + 1, "histogram add needs one count per bucket", "");
  if (std::isnan(sum)) return;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (buckets[i] != 0) buckets_[i].fetch_add(buckets[i], std::memory_order_relaxed);
  }
  double expected = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(expected, expected + sum, std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snap;
  snap.bounds = bounds_;
  snap.cumulative.resize(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snap.cumulative[i] = running;
  }
  snap.count = running;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

std::vector<double> exponential_bounds(double start, double factor, std::size_t count) {
  require(start > 0 && factor > 1 && count >= 1,
          "exponential_bounds needs start > 0, factor > 1, count >= 1", "");
  std::vector<double> out;
  out.reserve(count);
  double v = start;
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(v);
    v *= factor;
  }
  return out;
}

// --- Registry ---

struct Registry::Family {
  std::string name;
  std::string help;
  std::string type;  // "counter" | "gauge" | "histogram"

  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  std::deque<Series> series;
  std::vector<std::function<void(std::vector<Sample>&)>> callbacks;

  Series* find(const Labels& labels) {
    for (Series& s : series) {
      if (s.labels == labels) return &s;
    }
    return nullptr;
  }
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::family(std::string_view name, std::string_view help,
                                   std::string_view type) {
  require(valid_metric_name(name), "invalid metric name", name);
  for (const auto& f : families_) {
    if (f->name == name) {
      require(f->type == type, "metric registered again with another type", name);
      return *f;
    }
  }
  auto f = std::make_unique<Family>();
  f->name = std::string(name);
  f->help = std::string(help);
  f->type = std::string(type);
  families_.push_back(std::move(f));
  return *families_.back();
}

Counter& Registry::counter(std::string_view name, std::string_view help, Labels labels) {
  labels = normalize(std::move(labels), name, false);
  std::lock_guard lock(mu_);
  Family& f = family(name, help, "counter");
  if (Family::Series* s = f.find(labels)) return *s->counter;
  f.series.push_back({std::move(labels), std::make_unique<Counter>(), nullptr, nullptr});
  return *f.series.back().counter;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, Labels labels) {
  labels = normalize(std::move(labels), name, false);
  std::lock_guard lock(mu_);
  Family& f = family(name, help, "gauge");
  if (Family::Series* s = f.find(labels)) return *s->gauge;
  f.series.push_back({std::move(labels), nullptr, std::make_unique<Gauge>(), nullptr});
  return *f.series.back().gauge;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               std::vector<double> bounds, Labels labels) {
  labels = normalize(std::move(labels), name, true);
  std::lock_guard lock(mu_);
  Family& f = family(name, help, "histogram");
  if (Family::Series* s = f.find(labels)) {
    require(s->histogram->snapshot().bounds == bounds,
            "histogram registered again with other bounds", name);
    return *s->histogram;
  }
  f.series.push_back(
      {std::move(labels), nullptr, nullptr, std::make_unique<Histogram>(std::move(bounds))});
  return *f.series.back().histogram;
}

void Registry::gauge_callback(std::string_view name, std::string_view help,
                              std::function<void(std::vector<Sample>&)> collect) {
  add_callback(name, help, "gauge", std::move(collect));
}

void Registry::counter_callback(std::string_view name, std::string_view help,
                                std::function<void(std::vector<Sample>&)> collect) {
  add_callback(name, help, "counter", std::move(collect));
}

void Registry::add_callback(std::string_view name, std::string_view help, std::string_view type,
                            std::function<void(std::vector<Sample>&)> collect) {
  std::lock_guard lock(mu_);
  Family& f = family(name, help, type);
  f.callbacks.push_back(std::move(collect));
}

std::string Registry::prometheus_text() const {
  std::lock_guard lock(mu_);
  std::vector<const Family*> sorted;
  sorted.reserve(families_.size());
  for (const auto& f : families_) sorted.push_back(f.get());
  std::sort(sorted.begin(), sorted.end(),
            [](const Family* a, const Family* b) { return a->name < b->name; });

  std::string out;
  std::string value;
  std::vector<Sample> samples;
  for (const Family* f : sorted) {
    out.append("# HELP ");
    out.append(f->name);
    out.push_back(' ');
    append_escaped(out, f->help, false);
    out.append("\n# TYPE ");
    out.append(f->name);
    out.push_back(' ');
    out.append(f->type);
    out.push_back('\n');

    for (const Family::Series& s : f->series) {
      value.clear();
      if (s.counter) {
        core::append_decimal(value, s.counter->value());
        append_sample_line(out, f->name, "", s.labels, value);
      } else if (s.gauge) {
        append_signed(value, s.gauge->value());
        append_sample_line(out, f->name, "", s.labels, value);
      } else if (s.histogram) {
        const Histogram::Snapshot snap = s.histogram->snapshot();
        std::string le;
        for (std::size_t i = 0; i <= snap.bounds.size(); ++i) {
          le.clear();
          if (i < snap.bounds.size()) {
            append_double(le, snap.bounds[i]);
          } else {
            le = "+Inf";
          }
          value.clear();
          core::append_decimal(value, snap.cumulative[i]);
          append_sample_line(out, f->name, "_bucket", s.labels, value, &le);
        }
        value.clear();
        append_double(value, snap.sum);
        append_sample_line(out, f->name, "_sum", s.labels, value);
        value.clear();
        core::append_decimal(value, snap.count);
        append_sample_line(out, f->name, "_count", s.labels, value);
      }
    }
    for (const auto& collect : f->callbacks) {
      samples.clear();
      collect(samples);
      for (Sample& sample : samples) {
        const Labels labels = normalize(std::move(sample.labels), f->name, false);
        value.clear();
        append_double(value, sample.value);
        append_sample_line(out, f->name, "", labels, value);
      }
    }
  }
  return out;
}

}  // namespace sg::metrics
