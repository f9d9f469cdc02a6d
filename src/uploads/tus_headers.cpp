#include "uploads/tus_headers.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <limits>

namespace sg::uploads::tus {

namespace {

using core::trim;

}  // namespace

std::string_view to_string(TusError e) {
  switch (e) {
    case TusError::kBadNumber:
      return "bad_number";
    case TusError::kBadMetadata:
      return "bad_metadata";
    case TusError::kBadChecksum:
      return "bad_checksum";
    case TusError::kUnsupportedChecksum:
      return "unsupported_checksum_algorithm";
  }
  return "unknown";
}

bool version_supported(std::string_view tus_resumable) {
  return trim(tus_resumable) == kVersion;
}

Result<std::uint64_t> parse_size(std::string_view text) {
  text = trim(text);
  if (text.empty() || text.size() > 19) return TusError::kBadNumber;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return TusError::kBadNumber;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  // 19 digits fit in 64 bits unsigned; the signed bound keeps offset + length safe.
  if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return TusError::kBadNumber;
  }
  return v;
}

Result<Metadata> parse_metadata(std::string_view header) {
  Metadata out;
  header = trim(header);
  if (header.empty()) return out;
  while (true) {
    const auto comma = header.find(',');
    const std::string_view pair = trim(header.substr(0, comma));
    const auto space = pair.find(' ');
    const std::string_view key = pair.substr(0, space);
    if (key.empty()) return TusError::kBadMetadata;
    for (char c : key) {
      if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7E) {
        return TusError::kBadMetadata;
      }
    }
    if (std::any_of(out.begin(), out.end(), [&](const auto& kv) { return kv.first == key; })) {
      return TusError::kBadMetadata;
    }
    std::string value;
    if (space != std::string_view::npos) {
      if (!core::base64_decode(trim(pair.substr(space + 1)), value)) return TusError::kBadMetadata;
    }
    out.emplace_back(std::string(key), std::move(value));
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return out;
}

Result<Checksum> parse_checksum(std::string_view header) {
  header = trim(header);
  const auto space = header.find(' ');
  if (space == std::string_view::npos || space == 0) return TusError::kBadChecksum;
  const std::string_view name = header.substr(0, space);
  Checksum out;
  if (core::iequals(name, "sha1")) {
    out.algorithm = ChecksumAlgorithm::kSha1;
  } else if (core::iequals(name, "md5")) {
    out.algorithm = ChecksumAlgorithm::kMd5;
  } else if (core::iequals(name, "sha256")) {
    out.algorithm = ChecksumAlgorithm::kSha256;
  } else {
    return TusError::kUnsupportedChecksum;
  }
  if (!core::base64_decode(trim(header.substr(space + 1)), out.digest) ||
      out.digest.size() != core::digest_size(out.algorithm)) {
    return TusError::kBadChecksum;
  }
  return out;
}

std::string format_http_date(core::WallClock::time_point t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t secs = core::WallClock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  // Names spelled out here rather than by strftime, whose %a/%b follow the process locale.
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                              kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900,
                              tm.tm_hour, tm.tm_min, tm.tm_sec);
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

}  // namespace sg::uploads::tus
