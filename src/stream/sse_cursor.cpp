// The cursor codec on its own, so that the fuzz target compiles this file alone instead of the
// request parser's dependencies (the node context, the net helpers).
#include "stream/sse_request.hpp"

#include "core/core.hpp"
#include "protocol/protocol.hpp"

#include <algorithm>

namespace sg::stream {

namespace {

constexpr std::string_view kCursorVersion = "1";
// " " + service + "=" + epoch (at most 32) + "-" + offset (at most 20 digits).
constexpr std::size_t kMaxEntryBytes = 1 + protocol::kMaxNameBytes + 1 + 32 + 1 + 20;

}  // namespace

std::string encode_cursor(const std::vector<CursorEntry>& entries) {
  std::string text(kCursorVersion);
  for (const auto& e : entries) {
    text.push_back(' ');
    text.append(e.service);
    text.push_back('=');
    text.append(protocol::format_event_id(e.position.epoch, e.position.offset));
  }
  return core::base64url_encode(text);
}

std::optional<std::vector<CursorEntry>> decode_cursor(std::string_view text,
                                                      std::size_t max_entries) {
  std::string plain;
  if (!core::base64url_decode(text, plain)) return std::nullopt;
  std::string_view rest = plain;
  if (!rest.starts_with(kCursorVersion)) return std::nullopt;
  rest.remove_prefix(kCursorVersion.size());
  std::vector<CursorEntry> entries;
  while (!rest.empty()) {
    if (rest.front() != ' ' || entries.size() == max_entries) return std::nullopt;
    rest.remove_prefix(1);
    const std::string_view entry = rest.substr(0, rest.find(' '));
    rest.remove_prefix(entry.size());
    const std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view service = entry.substr(0, eq);
    if (!protocol::is_valid_name(service)) return std::nullopt;
    auto id = protocol::parse_event_id(entry.substr(eq + 1));
    if (!id) return std::nullopt;
    if (std::any_of(entries.begin(), entries.end(),
                    [&](const CursorEntry& e) { return e.service == service; })) {
      return std::nullopt;
    }
    entries.push_back({std::string(service), {std::move(id->epoch), id->offset}});
  }
  return entries;
}

std::size_t max_cursor_bytes(std::size_t max_services) {
  const std::size_t plain = kCursorVersion.size() + max_services * kMaxEntryBytes;
  return (plain * 4 + 2) / 3;  // base64url without padding
}

}  // namespace sg::stream
