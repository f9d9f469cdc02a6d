// Usage metering per org and UTC hour (docs/scaling.md#usage-metering). `Usage` counts where the
// events happen — connections opened and closed (workers, under one mutex, as admission is),
// publishes, chat messages and upload bytes (any thread), deliveries (each worker in its own
// shard, once per event, never per recipient) — and the server's periodic flush drains it into
// the cluster's store (Redis) or this node's `UsageTable` (memory broker). Holds only orgs with
// open connections or counts not yet drained or an hour not yet closed.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sg::tenancy {

using UsageClock = std::chrono::system_clock;

enum class UsageField : std::uint8_t {
  kConnectionMs,
  kEventsPublished,
  kDeliveries,
  kBytesDelivered,
  kChatMessages,
  kUploadBytes,
};
inline constexpr std::size_t kUsageFieldCount = 6;

// The field's name in the shared store ("cms", "ev", …); nullopt-free: every field has one.
std::string_view usage_store_field(UsageField f);

struct UsageFigures {
  std::uint64_t peak_connections = 0;
  std::array<std::uint64_t, kUsageFieldCount> counts{};
  std::uint64_t operator[](UsageField f) const { return counts[static_cast<std::size_t>(f)]; }
  std::uint64_t& operator[](UsageField f) { return counts[static_cast<std::size_t>(f)]; }
  // Sums the counts and keeps the larger peak.
  void merge(const UsageFigures& other);
  bool operator==(const UsageFigures&) const = default;
};

struct UsageRecord {
  std::string org;
  std::int64_t hour = 0;  // unix seconds of the hour's start (UTC)
  UsageFigures figures;
};

// The start of the UTC hour holding `t`, in unix seconds.
std::int64_t usage_hour(UsageClock::time_point t);

// An RFC 3339 date-time ("2026-12-05T04:00:00Z", fractions and offsets allowed); nullopt for
// anything else, an impossible date included.
std::optional<UsageClock::time_point> parse_usage_time(std::string_view text);

class Usage {
 public:
  // `workers`: how many delivery shards (one per worker index passed to delivered()).
  explicit Usage(std::size_t workers);
  ~Usage();
  Usage(const Usage&) = delete;
  Usage& operator=(const Usage&) = delete;

  void connection_opened(std::string_view org, UsageClock::time_point now);
  void connection_closed(std::string_view org, UsageClock::time_point now);
  // Publishes, chat messages, upload bytes: any thread.
  void add(std::string_view org, UsageField field, std::uint64_t amount,
           UsageClock::time_point now);
  // From worker `worker` only: that worker's shard, whose lock no other thread takes except the
  // flush.
  void delivered(std::size_t worker, std::string_view org, std::uint64_t deliveries,
                 std::uint64_t bytes, UsageClock::time_point now);

  struct Drained {
    // What was counted since the last drain, per (org, hour); the peak is the hour's peak so
    // far since the last drain (the store keeps the max). Connection time is counted up to now.
    std::vector<UsageRecord> deltas;
    // This node's totals of hours that ended before now's hour, each given once.
    std::vector<UsageRecord> closed;
  };
  Drained drain(UsageClock::time_point now);
  // Deltas a drain gave that the store did not take: the next drain gives them again (they
  // already count in the closed hours' totals).
  void restore(std::vector<UsageRecord> deltas);

  // Orgs held (open connections, undrained counts, hours not yet closed).
  std::size_t tracked_orgs() const;

 private:
  struct OrgState;
  struct Shard;
  OrgState& org_locked(std::string_view org, UsageClock::time_point now);
  void integrate_locked(OrgState& s, UsageClock::time_point now);

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<OrgState>> orgs_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

// The hours this node keeps when there is no shared store (memory broker): each (org, hour)
// for `retention` after its hour ended, and at most `max_org_hours` of them (the oldest hours
// go first). Thread-safe.
class UsageTable {
 public:
  UsageTable(std::chrono::seconds retention, std::size_t max_org_hours);
  void add(const std::vector<UsageRecord>& deltas, UsageClock::time_point now);
  // Org's figures for each hour in [from_hour, to_hour) that has any, oldest first.
  std::vector<std::pair<std::int64_t, UsageFigures>> read(const std::string& org,
                                                          std::int64_t from_hour,
                                                          std::int64_t to_hour) const;
  std::size_t size() const;

 private:
  std::chrono::seconds retention_;
  std::size_t max_;
  mutable std::mutex mu_;
  std::map<std::pair<std::int64_t, std::string>, UsageFigures> hours_;  // (hour, org)
};

// {"hour":"<RFC 3339>","peakConnections":…,"connectionMinutes":…,"eventsPublished":…,
// "deliveries":…,"bytesDelivered":…,"chatMessages":…,"uploadBytes":…} appended to `out`.
// connectionMinutes has up to three decimals.
void append_usage_hour(std::string& out, std::int64_t hour, const UsageFigures& figures);

// The org as JSON: a number when it is a canonical unsigned integer, else a string (as the
// metrics API writes orgId).
void append_usage_org(std::string& out, std::string_view org);

// One line of --usage-export per record: {"orgId":…,"node":…,"hour":…, the figures}\n.
std::string usage_export_lines(const std::vector<UsageRecord>& closed, std::string_view node);

// Appends `text` to the file at `path` (created if missing, mode 0644) in one write; false
// with `error` set when it could not.
bool append_to_file(const std::string& path, std::string_view text, std::string& error);

}  // namespace sg::tenancy
