#include "metrics/metrics.hpp"

#include <dirent.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <iterator>
#include <string>

namespace sg::metrics {

namespace {

std::optional<std::uint64_t> to_u64(std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

// The whole of a small /proc file; empty when it can't be read. /proc files report a size of
// 0, so they are read to their end rather than by their size.
std::string read_proc(const char* path) {
  std::ifstream in(path);
  if (!in) return {};
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Open descriptors, not counting the one this count itself holds on /proc/self/fd.
std::optional<std::uint64_t> open_fds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  const std::string own = std::to_string(dirfd(dir));
  std::uint64_t n = 0;
  while (const dirent* entry = readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name == "." || name == ".." || name == own) continue;
    ++n;
  }
  closedir(dir);
  return n;
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  const auto close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  text.remove_prefix(close + 1);
  // Fields from the third (state) on, separated by single spaces.
  std::vector<std::string_view> fields;
  while (!text.empty() && fields.size() < 22) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\n')) text.remove_prefix(1);
    const auto end = text.find_first_of(" \n");
    const std::string_view field = text.substr(0, end);
    if (!field.empty()) fields.push_back(field);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end);
  }
  if (fields.size() < 22) return std::nullopt;
  // proc(5) numbers fields from 1: utime 14, stime 15, starttime 22, rss 24.
  const auto utime = to_u64(fields[14 - 3]);
  const auto stime = to_u64(fields[15 - 3]);
  const auto start = to_u64(fields[22 - 3]);
  const auto rss = to_u64(fields[24 - 3]);
  if (!utime || !stime || !start || !rss) return std::nullopt;
  return ProcStat{*utime, *stime, *start, *rss};
}

std::optional<std::uint64_t> parse_boot_time(std::string_view text) {
  while (!text.empty()) {
    const auto eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    if (line.starts_with("btime ")) return to_u64(line.substr(6));
    if (eol == std::string_view::npos) break;
    text.remove_prefix(eol + 1);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_max_open_files(std::string_view text) {
  constexpr std::string_view kLabel = "Max open files";
  const auto at = text.find(kLabel);
  if (at == std::string_view::npos) return std::nullopt;
  text.remove_prefix(at + kLabel.size());
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  return to_u64(text.substr(0, text.find(' ')));
}

void register_process_metrics(Registry& registry) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // The start time doesn't change: read once, so a scrape reads two files, not three.
  std::optional<double> start_time;
  if (const auto stat = parse_proc_stat(read_proc("/proc/self/stat"))) {
    if (const auto boot = parse_boot_time(read_proc("/proc/stat")); boot && ticks > 0) {
      start_time = static_cast<double>(*boot) + static_cast<double>(stat->start_ticks) / ticks;
    }
  }
  registry.counter_callback(
      "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
      [ticks](std::vector<Registry::Sample>& out) {
        const auto stat = parse_proc_stat(read_proc("/proc/self/stat"));
        if (!stat || ticks <= 0) return;
        out.push_back({{}, static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks});
      });
  registry.gauge_callback("process_resident_memory_bytes", "Resident memory size in bytes.",
                          [page](std::vector<Registry::Sample>& out) {
                            const auto stat = parse_proc_stat(read_proc("/proc/self/stat"));
                            if (!stat) return;
                            out.push_back({{}, static_cast<double>(stat->rss_pages) * page});
                          });
  registry.gauge_callback("process_open_fds", "Number of open file descriptors.",
                          [](std::vector<Registry::Sample>& out) {
                            if (const auto n = open_fds()) {
                              out.push_back({{}, static_cast<double>(*n)});
                            }
                          });
  registry.gauge_callback(
      "process_max_fds", "Maximum number of open file descriptors.",
      [](std::vector<Registry::Sample>& out) {
        if (const auto n = parse_max_open_files(read_proc("/proc/self/limits"))) {
          out.push_back({{}, static_cast<double>(*n)});
        }
      });
  registry.gauge_callback("process_start_time_seconds",
                          "Start time of the process since unix epoch in seconds.",
                          [start_time](std::vector<Registry::Sample>& out) {
                            if (start_time) out.push_back({{}, *start_time});
                          });
}

}  // namespace sg::metrics
