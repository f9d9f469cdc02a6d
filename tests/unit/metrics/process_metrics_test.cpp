#include "metrics/metrics.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <string>

namespace sg::metrics {
namespace {

// A real line from proc(5)'s layout, with a command name holding a space and a parenthesis.
constexpr std::string_view kStat =
    "4242 (stream gate) (x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 75 0 0 20 0 9 0 "
    "123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 3 0 0 0 0 0\n";

TEST(ProcStat, ReadsCpuTicksStartTimeAndRssCountingFieldsAfterTheLastParenthesis) {
  const auto stat = parse_proc_stat(kStat);
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->utime_ticks, 250u);
  EXPECT_EQ(stat->stime_ticks, 75u);
  EXPECT_EQ(stat->start_ticks, 123456u);
  EXPECT_EQ(stat->rss_pages, 2048u);
}

TEST(ProcStat, RefusesTextThatIsNotAStatLine) {
  EXPECT_FALSE(parse_proc_stat("").has_value());
  EXPECT_FALSE(parse_proc_stat("4242 (x) S 1 2 3").has_value());
  EXPECT_FALSE(parse_proc_stat("no parenthesis at all").has_value());
}

TEST(ProcStat, BootTimeComesFromTheBtimeLine) {
  EXPECT_EQ(parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1764900000\nprocesses 9\n"), 1764900000u);
  EXPECT_FALSE(parse_boot_time("cpu 1 2 3\n").has_value());
}

TEST(ProcStat, MaxOpenFilesIsTheSoftLimit) {
  constexpr std::string_view kLimits =
      "Limit                     Soft Limit           Hard Limit           Units     \n"
      "Max processes             63480                63480                processes \n"
      "Max open files            1024                 1048576              files     \n";
  EXPECT_EQ(parse_max_open_files(kLimits), 1024u);
  EXPECT_FALSE(parse_max_open_files("Max open files            unlimited  unlimited files\n"));
}

TEST(ProcessMetrics, ThisProcessExportsTheFiveStandardMetrics) {
  Registry r;
  register_process_metrics(r);
  const std::string text = r.prometheus_text();
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "),
            std::string::npos)
      << text;
  for (const char* gauge : {"process_resident_memory_bytes", "process_open_fds", "process_max_fds",
                            "process_start_time_seconds"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + gauge + " gauge\n" + gauge + " "),
              std::string::npos)
        << gauge << "\n"
        << text;
  }
  // Opening a descriptor shows in the next scrape.
  auto open_fds = [&r] {
    const std::string t = r.prometheus_text();
    const auto at = t.find("\nprocess_open_fds ");
    return std::stod(t.substr(at + 18));
  };
  const double before = open_fds();
  const int fd = dup(0);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(open_fds(), before + 1);
  close(fd);
}

}  // namespace
}  // namespace sg::metrics
