#include "tenancy/usage.hpp"

#include "core/core.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace sg::tenancy {

namespace {

constexpr std::array<std::string_view, kUsageFieldCount> kStoreFields = {"cms", "ev", "dl",
                                                                         "by",  "ch", "up"};
constexpr std::int64_t kHourSeconds = 3600;

std::int64_t unix_ms(UsageClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

void field(std::string& out, std::string_view name, std::uint64_t value) {
  out += ",\"";
  out += name;
  out += "\":";
  core::append_decimal(out, value);
}

// ms → minutes with up to three decimals, trailing zeros dropped.
void append_minutes(std::string& out, std::uint64_t ms) {
  core::append_decimal(out, ms / 60000);
  const std::uint64_t thousandths = (ms % 60000) / 60;
  if (thousandths == 0) return;
  char digits[3] = {static_cast<char>('0' + thousandths / 100),
                    static_cast<char>('0' + thousandths / 10 % 10),
                    static_cast<char>('0' + thousandths % 10)};
  std::size_t n = 3;
  while (n > 0 && digits[n - 1] == '0') --n;
  out += '.';
  out.append(digits, n);
}

}  // namespace

std::string_view usage_store_field(UsageField f) {
  return kStoreFields[static_cast<std::size_t>(f)];
}

void UsageFigures::merge(const UsageFigures& other) {
  peak_connections = std::max(peak_connections, other.peak_connections);
  for (std::size_t i = 0; i < kUsageFieldCount; ++i) counts[i] += other.counts[i];
}

std::int64_t usage_hour(UsageClock::time_point t) {
  const std::int64_t secs =
      std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  const std::int64_t floor =
      secs >= 0 ? secs / kHourSeconds : (secs - kHourSeconds + 1) / kHourSeconds;
  return floor * kHourSeconds;
}

namespace {

bool digits(std::string_view text, std::size_t at, std::size_t n, int& out) {
  if (at + n > text.size()) return false;
  out = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    out = out * 10 + (text[i] - '0');
  }
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

}  // namespace

std::optional<UsageClock::time_point> parse_usage_time(std::string_view t) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(t, 0, 4, year) || t.size() < 20 || t[4] != '-' || !digits(t, 5, 2, month) ||
      t[7] != '-' || !digits(t, 8, 2, day) || (t[10] != 'T' && t[10] != 't') ||
      !digits(t, 11, 2, hour) || t[13] != ':' || !digits(t, 14, 2, minute) || t[16] != ':' ||
      !digits(t, 17, 2, second)) {
    return std::nullopt;
  }
  constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month < 1 || month > 12 || day < 1 || day > kDays[month - 1] + (month == 2 && leap ? 1 : 0) ||
      hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::size_t at = 19;
  std::int64_t nanos = 0;
  if (at < t.size() && t[at] == '.') {
    ++at;
    std::size_t n = 0;
    while (at < t.size() && t[at] >= '0' && t[at] <= '9') {
      if (n < 9) nanos = nanos * 10 + (t[at] - '0');
      ++n;
      ++at;
    }
    if (n == 0) return std::nullopt;
    for (std::size_t i = n; i < 9; ++i) nanos *= 10;
  }
  std::int64_t offset = 0;
  if (at < t.size() && (t[at] == 'Z' || t[at] == 'z')) {
    ++at;
  } else if (at < t.size() && (t[at] == '+' || t[at] == '-')) {
    int oh = 0, om = 0;
    if (!digits(t, at + 1, 2, oh) || at + 3 >= t.size() || t[at + 3] != ':' ||
        !digits(t, at + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (oh * 60 + om) * 60 * (t[at] == '-' ? -1 : 1);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != t.size()) return std::nullopt;
  const std::int64_t secs =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
      hour * 3600 + minute * 60 + second - offset;
  return UsageClock::time_point(std::chrono::duration_cast<UsageClock::duration>(
      std::chrono::seconds(secs) + std::chrono::nanoseconds(nanos)));
}

// ---- Usage ----

struct Usage::OrgState {
  std::uint64_t open = 0;
  std::int64_t integrated_ms = 0;  // connection time is counted up to here
  // Counts since the last drain, per hour (at most the hours since then: one or two).
  std::vector<std::pair<std::int64_t, UsageFigures>> pending;
  // Deltas the store did not take, to send again.
  std::vector<std::pair<std::int64_t, UsageFigures>> unsent;
  // This node's totals of hours not yet closed.
  std::vector<std::pair<std::int64_t, UsageFigures>> totals;

  UsageFigures& bucket(std::int64_t hour) {
    for (auto& [h, f] : pending) {
      if (h == hour) return f;
    }
    pending.emplace_back(hour, UsageFigures{});
    // An hour's peak is at least what is open when it is first counted.
    pending.back().second.peak_connections = open;
    return pending.back().second;
  }
};

struct Usage::Shard {
  struct Count {
    std::int64_t hour = 0;
    std::uint64_t deliveries = 0;
    std::uint64_t bytes = 0;
  };
  std::mutex mu;
  std::unordered_map<std::string, std::vector<Count>> orgs;
};

Usage::Usage(std::size_t workers) {
  shards_.resize(std::max<std::size_t>(1, workers));
  for (auto& s : shards_) s = std::make_unique<Shard>();
}

Usage::~Usage() = default;

Usage::OrgState& Usage::org_locked(std::string_view org, UsageClock::time_point now) {
  auto& slot = orgs_[std::string(org)];
  if (!slot) {
    slot = std::make_unique<OrgState>();
    slot->integrated_ms = unix_ms(now);
  }
  return *slot;
}

// Adds open × elapsed to the connection time of each hour it spans.
void Usage::integrate_locked(OrgState& s, UsageClock::time_point now) {
  const std::int64_t to = unix_ms(now);
  if (to <= s.integrated_ms) return;
  if (s.open == 0) {
    s.integrated_ms = to;
    return;
  }
  std::int64_t from = s.integrated_ms;
  while (from < to) {
    const std::int64_t hour = usage_hour(UsageClock::time_point(std::chrono::milliseconds(from)));
    const std::int64_t end = std::min(to, (hour + kHourSeconds) * 1000);
    s.bucket(hour)[UsageField::kConnectionMs] += s.open * static_cast<std::uint64_t>(end - from);
    from = end;
  }
  s.integrated_ms = to;
}

void Usage::connection_opened(std::string_view org, UsageClock::time_point now) {
  std::lock_guard lock(mu_);
  OrgState& s = org_locked(org, now);
  integrate_locked(s, now);
  ++s.open;
  UsageFigures& f = s.bucket(usage_hour(now));
  f.peak_connections = std::max(f.peak_connections, s.open);
}

void Usage::connection_closed(std::string_view org, UsageClock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = orgs_.find(std::string(org));
  if (it == orgs_.end() || it->second->open == 0) return;
  integrate_locked(*it->second, now);
  --it->second->open;
}

void Usage::add(std::string_view org, UsageField field, std::uint64_t amount,
                UsageClock::time_point now) {
  if (amount == 0) return;
  std::lock_guard lock(mu_);
  org_locked(org, now).bucket(usage_hour(now))[field] += amount;
}

void Usage::delivered(std::size_t worker, std::string_view org, std::uint64_t deliveries,
                      std::uint64_t bytes, UsageClock::time_point now) {
  Shard& shard = *shards_[worker % shards_.size()];
  const std::int64_t hour = usage_hour(now);
  std::lock_guard lock(shard.mu);
  auto& counts = shard.orgs[std::string(org)];
  if (counts.empty() || counts.back().hour != hour) counts.push_back({hour, 0, 0});
  counts.back().deliveries += deliveries;
  counts.back().bytes += bytes;
}

Usage::Drained Usage::drain(UsageClock::time_point now) {
  std::vector<std::unordered_map<std::string, std::vector<Shard::Count>>> taken;
  taken.reserve(shards_.size());
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mu);
    taken.push_back(std::move(shard->orgs));
    shard->orgs.clear();
  }
  const std::int64_t current = usage_hour(now);
  Drained out;
  std::lock_guard lock(mu_);
  for (auto& orgs : taken) {
    for (auto& [org, counts] : orgs) {
      OrgState& s = org_locked(org, now);
      for (const Shard::Count& c : counts) {
        UsageFigures& f = s.bucket(c.hour);
        f[UsageField::kDeliveries] += c.deliveries;
        f[UsageField::kBytesDelivered] += c.bytes;
      }
    }
  }
  for (auto it = orgs_.begin(); it != orgs_.end();) {
    OrgState& s = *it->second;
    integrate_locked(s, now);
    for (const auto& entry : s.pending) {
      const std::int64_t hour = entry.first;
      out.deltas.push_back({it->first, hour, entry.second});
      auto total = std::find_if(s.totals.begin(), s.totals.end(),
                                [hour](const auto& t) { return t.first == hour; });
      if (total == s.totals.end()) {
        s.totals.push_back(entry);
      } else {
        total->second.merge(entry.second);
      }
    }
    s.pending.clear();
    for (const auto& entry : s.unsent) out.deltas.push_back({it->first, entry.first, entry.second});
    s.unsent.clear();
    for (auto t = s.totals.begin(); t != s.totals.end();) {
      if (t->first < current) {
        out.closed.push_back({it->first, t->first, t->second});
        t = s.totals.erase(t);
      } else {
        ++t;
      }
    }
    it = (s.open == 0 && s.totals.empty() && s.unsent.empty()) ? orgs_.erase(it) : std::next(it);
  }
  return out;
}

void Usage::restore(std::vector<UsageRecord> deltas) {
  std::lock_guard lock(mu_);
  for (UsageRecord& r : deltas) {
    auto& slot = orgs_[r.org];
    if (!slot) slot = std::make_unique<OrgState>();
    const std::int64_t hour = r.hour;
    auto it = std::find_if(slot->unsent.begin(), slot->unsent.end(),
                           [hour](const auto& u) { return u.first == hour; });
    if (it == slot->unsent.end()) {
      slot->unsent.emplace_back(hour, r.figures);
    } else {
      it->second.merge(r.figures);
    }
  }
}

std::size_t Usage::tracked_orgs() const {
  std::lock_guard lock(mu_);
  return orgs_.size();
}

// ---- UsageTable ----

UsageTable::UsageTable(std::chrono::seconds retention, std::size_t max_org_hours)
    : retention_(retention), max_(max_org_hours) {}

void UsageTable::add(const std::vector<UsageRecord>& deltas, UsageClock::time_point now) {
  std::lock_guard lock(mu_);
  for (const UsageRecord& r : deltas) {
    hours_[{r.hour, r.org}].merge(r.figures);
  }
  // An hour is kept for the retention after it ended, as the store's TTL keeps it.
  const std::int64_t oldest = usage_hour(now) - retention_.count();
  while (!hours_.empty() &&
         (hours_.size() > max_ || hours_.begin()->first.first + kHourSeconds <= oldest)) {
    hours_.erase(hours_.begin());
  }
}

std::vector<std::pair<std::int64_t, UsageFigures>> UsageTable::read(const std::string& org,
                                                                    std::int64_t from_hour,
                                                                    std::int64_t to_hour) const {
  std::vector<std::pair<std::int64_t, UsageFigures>> out;
  std::lock_guard lock(mu_);
  for (std::int64_t h = from_hour; h < to_hour; h += kHourSeconds) {
    auto it = hours_.find({h, org});
    if (it != hours_.end()) out.emplace_back(h, it->second);
  }
  return out;
}

std::size_t UsageTable::size() const {
  std::lock_guard lock(mu_);
  return hours_.size();
}

// ---- JSON ----

void append_usage_hour(std::string& out, std::int64_t hour, const UsageFigures& f) {
  out += "{\"hour\":";
  core::append_json_string(
      out, core::format_rfc3339(UsageClock::time_point(std::chrono::seconds(hour))));
  field(out, "peakConnections", f.peak_connections);
  out += ",\"connectionMinutes\":";
  append_minutes(out, f[UsageField::kConnectionMs]);
  field(out, "eventsPublished", f[UsageField::kEventsPublished]);
  field(out, "deliveries", f[UsageField::kDeliveries]);
  field(out, "bytesDelivered", f[UsageField::kBytesDelivered]);
  field(out, "chatMessages", f[UsageField::kChatMessages]);
  field(out, "uploadBytes", f[UsageField::kUploadBytes]);
  out += '}';
}

void append_usage_org(std::string& out, std::string_view org) {
  std::uint64_t n = 0;
  const auto [ptr, ec] = std::from_chars(org.data(), org.data() + org.size(), n);
  if (ec == std::errc() && ptr == org.data() + org.size() && !org.empty() &&
      (org.size() == 1 || org[0] != '0')) {
    core::append_decimal(out, n);
    return;
  }
  core::append_json_string(out, org);
}

std::string usage_export_lines(const std::vector<UsageRecord>& closed, std::string_view node) {
  std::string out;
  for (const UsageRecord& r : closed) {
    std::string hour;
    append_usage_hour(hour, r.hour, r.figures);
    out += "{\"orgId\":";
    append_usage_org(out, r.org);
    out += ",\"node\":";
    core::append_json_string(out, node);
    out += ',';
    out.append(hour, 1);  // the hour object without its opening brace
    out += '\n';
  }
  return out;
}

bool append_to_file(const std::string& path, std::string_view text, std::string& error) {
  if (text.empty()) return true;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = std::strerror(errno);
    return false;
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = std::strerror(errno);
      ::close(fd);
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return true;
}

}  // namespace sg::tenancy
