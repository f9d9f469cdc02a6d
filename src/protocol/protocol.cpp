#include "protocol/protocol.hpp"

#include <limits>

namespace sg::protocol {

std::string_view to_string(ProtocolError e) {
  switch (e) {
    case ProtocolError::kMalformedJson:
      return "malformed_json";
    case ProtocolError::kNotAnObject:
      return "not_an_object";
    case ProtocolError::kUnknownType:
      return "unknown_type";
    case ProtocolError::kMissingField:
      return "missing_field";
    case ProtocolError::kBadField:
      return "bad_field";
    case ProtocolError::kBadVersion:
      return "bad_version";
    case ProtocolError::kTooManyItems:
      return "too_many_items";
    case ProtocolError::kBadEventId:
      return "bad_event_id";
    case ProtocolError::kUnknownField:
      return "unknown_field";
    case ProtocolError::kEmptyBatch:
      return "empty_batch";
  }
  return "unknown_protocol_error";
}

bool is_valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {

constexpr std::size_t kMaxEpochBytes = 32;
constexpr std::size_t kMaxOffsetDigits = 20;

}  // namespace

std::string format_event_id(std::string_view epoch, std::uint64_t offset) {
  std::string out;
  out.reserve(epoch.size() + 1 + kMaxOffsetDigits);
  out.append(epoch);
  out.push_back('-');
  core::append_decimal(out, offset);
  return out;
}

Result<EventId> parse_event_id(std::string_view text) {
  const std::size_t dash = text.find('-');
  if (dash == std::string_view::npos) return ProtocolError::kBadEventId;
  const std::string_view epoch = text.substr(0, dash);
  const std::string_view digits = text.substr(dash + 1);
  if (epoch.empty() || epoch.size() > kMaxEpochBytes) return ProtocolError::kBadEventId;
  for (const char c : epoch) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return ProtocolError::kBadEventId;
  }
  if (digits.empty() || digits.size() > kMaxOffsetDigits) return ProtocolError::kBadEventId;
  // Leading zeros are refused so that an id has exactly one spelling: clients compare ids as
  // strings when they drop duplicates.
  if (digits.size() > 1 && digits.front() == '0') return ProtocolError::kBadEventId;
  std::uint64_t offset = 0;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  for (const char c : digits) {
    if (c < '0' || c > '9') return ProtocolError::kBadEventId;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (offset > (kMax - digit) / 10) return ProtocolError::kBadEventId;
    offset = offset * 10 + digit;
  }
  return EventId{std::string(epoch), offset};
}

}  // namespace sg::protocol
