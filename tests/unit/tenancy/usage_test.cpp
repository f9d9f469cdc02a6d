#include "tenancy/usage.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace sg::tenancy {
namespace {

using namespace std::chrono_literals;

// 2026-12-05T10:00:00Z
constexpr std::int64_t kHour = 1796464800;
const UsageClock::time_point kAt = UsageClock::time_point(std::chrono::seconds(kHour));

const UsageRecord* find(const std::vector<UsageRecord>& records, std::string_view org,
                        std::int64_t hour) {
  for (const auto& r : records) {
    if (r.org == org && r.hour == hour) return &r;
  }
  return nullptr;
}

TEST(Usage, ParsesRfc3339TimesAndRefusesOthers) {
  EXPECT_EQ(parse_usage_time("2026-12-05T10:00:00Z"), kAt);
  EXPECT_EQ(parse_usage_time("2026-12-05t11:30:00+01:30"), kAt);
  EXPECT_EQ(parse_usage_time("2026-12-05T10:00:00.250Z"), kAt + 250ms);
  EXPECT_EQ(parse_usage_time("1970-01-01T00:00:00Z"), UsageClock::time_point{});
  for (const char* bad : {"", "2026-12-05", "2026-12-05T10:00:00", "2026-13-01T00:00:00Z",
                          "2026-02-29T00:00:00Z", "2026-12-05T24:00:00Z", "2026-12-05T10:00:00.Z",
                          "2026-12-05T10:00:00Zjunk", "2026-12-05 10:00:00Z", "yesterday"}) {
    EXPECT_FALSE(parse_usage_time(bad)) << bad;
  }
  EXPECT_TRUE(parse_usage_time("2028-02-29T00:00:00Z"));
}

TEST(Usage, HourIsTheStartOfTheUtcHour) {
  EXPECT_EQ(usage_hour(kAt + 59min + 59s), kHour);
  EXPECT_EQ(usage_hour(kAt - 1s), kHour - 3600);
}

TEST(Usage, CountsEveryFigureAndDrainsOnce) {
  Usage usage(2);
  usage.connection_opened("7", kAt + 1min);
  usage.connection_opened("7", kAt + 1min);
  usage.connection_closed("7", kAt + 2min);
  usage.add("7", UsageField::kEventsPublished, 3, kAt + 2min);
  usage.add("7", UsageField::kChatMessages, 1, kAt + 2min);
  usage.add("7", UsageField::kUploadBytes, 1000, kAt + 2min);
  usage.delivered(0, "7", 4, 400, kAt + 2min);
  usage.delivered(1, "7", 2, 200, kAt + 2min);
  const auto drained = usage.drain(kAt + 3min);
  const UsageRecord* r = find(drained.deltas, "7", kHour);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->figures.peak_connections, 2u);
  // Two connections for a minute, then one for another minute.
  EXPECT_EQ(r->figures[UsageField::kConnectionMs], 180000u);
  EXPECT_EQ(r->figures[UsageField::kEventsPublished], 3u);
  EXPECT_EQ(r->figures[UsageField::kDeliveries], 6u);
  EXPECT_EQ(r->figures[UsageField::kBytesDelivered], 600u);
  EXPECT_EQ(r->figures[UsageField::kChatMessages], 1u);
  EXPECT_EQ(r->figures[UsageField::kUploadBytes], 1000u);
  EXPECT_TRUE(drained.closed.empty());
  // The next drain gives only what happened since: the open connection's time and its peak.
  const auto next = usage.drain(kAt + 4min);
  r = find(next.deltas, "7", kHour);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->figures[UsageField::kConnectionMs], 60000u);
  EXPECT_EQ(r->figures[UsageField::kEventsPublished], 0u);
  EXPECT_EQ(r->figures.peak_connections, 1u);
}

TEST(Usage, SplitsConnectionTimeAtTheHourAndClosesTheHourOnce) {
  Usage usage(1);
  usage.connection_opened("o", kAt + 59min);
  usage.add("o", UsageField::kEventsPublished, 1, kAt + 59min);
  usage.drain(kAt + 59min + 30s);
  const auto after = usage.drain(kAt + 61min);
  const UsageRecord* before_hour = find(after.deltas, "o", kHour);
  const UsageRecord* next_hour = find(after.deltas, "o", kHour + 3600);
  ASSERT_NE(before_hour, nullptr);
  ASSERT_NE(next_hour, nullptr);
  EXPECT_EQ(before_hour->figures[UsageField::kConnectionMs], 30000u);
  EXPECT_EQ(next_hour->figures[UsageField::kConnectionMs], 60000u);
  EXPECT_EQ(next_hour->figures.peak_connections, 1u);
  // The closed hour holds this node's totals over every drain of it.
  ASSERT_EQ(after.closed.size(), 1u);
  EXPECT_EQ(after.closed[0].hour, kHour);
  EXPECT_EQ(after.closed[0].figures[UsageField::kConnectionMs], 60000u);
  EXPECT_EQ(after.closed[0].figures[UsageField::kEventsPublished], 1u);
  EXPECT_TRUE(usage.drain(kAt + 62min).closed.empty());
}

TEST(Usage, ForgetsOrgsWithNothingLeftAndSendsRestoredDeltasAgain) {
  Usage usage(1);
  usage.add("a", UsageField::kEventsPublished, 2, kAt);
  auto first = usage.drain(kAt + 1s);
  EXPECT_EQ(usage.tracked_orgs(), 1u);  // its hour is not closed yet
  usage.restore(first.deltas);
  const auto again = usage.drain(kAt + 2s);
  const UsageRecord* r = find(again.deltas, "a", kHour);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->figures[UsageField::kEventsPublished], 2u);
  const auto closed = usage.drain(kAt + 1h);
  ASSERT_EQ(closed.closed.size(), 1u);
  EXPECT_EQ(closed.closed[0].figures[UsageField::kEventsPublished], 2u);  // not counted twice
  EXPECT_EQ(usage.tracked_orgs(), 0u);
}

TEST(UsageTable, SumsCountsKeepsPeaksAndBoundsItsSize) {
  UsageTable table(24h, 3);
  UsageFigures f;
  f.peak_connections = 2;
  f[UsageField::kDeliveries] = 5;
  table.add({{"o", kHour, f}, {"o", kHour, f}}, kAt);
  auto read = table.read("o", kHour, kHour + 3600);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].second.peak_connections, 2u);
  EXPECT_EQ(read[0].second[UsageField::kDeliveries], 10u);
  EXPECT_TRUE(table.read("other", kHour, kHour + 3600).empty());
  table.add({{"o", kHour + 3600, f}, {"p", kHour + 3600, f}, {"q", kHour + 3600, f}}, kAt);
  EXPECT_EQ(table.size(), 3u);
  EXPECT_TRUE(table.read("o", kHour, kHour + 3600).empty());  // the oldest went first
  // An hour older than the retention is dropped.
  table.add({}, kAt + 26h);
  EXPECT_EQ(table.size(), 0u);
}

TEST(UsageExport, WritesOneJsonLinePerOrgAndAppends) {
  UsageFigures f;
  f.peak_connections = 3;
  f[UsageField::kConnectionMs] = 90000;
  f[UsageField::kBytesDelivered] = 12;
  const std::string text = usage_export_lines({{"456", kHour, f}, {"acme", kHour, f}}, "n1:4000");
  const auto path = std::filesystem::temp_directory_path() /
                    ("usage_export_test_" + std::to_string(::getpid()) + ".jsonl");
  std::filesystem::remove(path);
  std::string error;
  ASSERT_TRUE(append_to_file(path.string(), text, error)) << error;
  ASSERT_TRUE(append_to_file(path.string(), text, error)) << error;
  std::ifstream in(path);
  std::string line;
  std::vector<boost::json::value> lines;
  while (std::getline(in, line)) lines.push_back(boost::json::parse(line));
  std::filesystem::remove(path);
  ASSERT_EQ(lines.size(), 4u);
  const auto& first = lines[0].as_object();
  EXPECT_EQ(first.at("orgId").as_int64(), 456);
  EXPECT_EQ(lines[1].as_object().at("orgId").as_string(), "acme");
  EXPECT_EQ(first.at("node").as_string(), "n1:4000");
  EXPECT_EQ(std::string(first.at("hour").as_string()).substr(0, 19), "2026-12-05T10:00:00");
  EXPECT_EQ(first.at("peakConnections").as_int64(), 3);
  EXPECT_EQ(first.at("connectionMinutes").as_double(), 1.5);
  EXPECT_EQ(first.at("bytesDelivered").as_int64(), 12);
  EXPECT_EQ(first.at("uploadBytes").as_int64(), 0);
  EXPECT_FALSE(append_to_file("/nonexistent-dir/x.jsonl", text, error));
  EXPECT_FALSE(error.empty());
}

}  // namespace
}  // namespace sg::tenancy
