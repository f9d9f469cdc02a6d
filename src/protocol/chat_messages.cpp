#include "protocol/chat_messages.hpp"

#include "protocol/json_fields.hpp"

namespace sg::protocol::detail {

namespace {

namespace json = boost::json;

constexpr std::size_t kMaxClientMessageIdBytes = 128;

Result<std::string> parse_room(const json::object& message) {
  const json::value* field = present(message, "room");
  if (field == nullptr) return ProtocolError::kMissingField;
  const json::string* room = field->if_string();
  if (room == nullptr || !is_valid_name(view(*room))) return ProtocolError::kBadField;
  return std::string(view(*room));
}

// A non-negative integer count (1.0 from encoders that only have doubles is accepted).
Result<std::optional<std::uint64_t>> parse_count(const json::object& message,
                                                 std::string_view key) {
  const json::value* field = present(message, key);
  if (field == nullptr) return std::optional<std::uint64_t>();
  if (field->is_uint64()) return std::optional<std::uint64_t>(field->get_uint64());
  if (field->is_int64() && field->get_int64() >= 0) {
    return std::optional<std::uint64_t>(static_cast<std::uint64_t>(field->get_int64()));
  }
  if (field->is_double()) {
    const double d = field->get_double();
    // 2^53: beyond it a double no longer names one integer.
    if (d >= 0 && d <= 9007199254740992.0 &&
        d == static_cast<double>(static_cast<std::uint64_t>(d))) {
      return std::optional<std::uint64_t>(static_cast<std::uint64_t>(d));
    }
  }
  return ProtocolError::kBadField;
}

Result<ClientMessage> parse_join(const json::object& message) {
  auto room = parse_room(message);
  if (!room) return room.error();
  auto history = parse_count(message, "history");
  if (!history) return history.error();
  return Join{std::move(*room), *history};
}

Result<ClientMessage> parse_leave(const json::object& message) {
  auto room = parse_room(message);
  if (!room) return room.error();
  return Leave{std::move(*room)};
}

Result<ClientMessage> parse_send(const json::object& message) {
  auto room = parse_room(message);
  if (!room) return room.error();
  const json::value* text = present(message, "text");
  if (text == nullptr) return ProtocolError::kMissingField;
  if (!text->is_string() || text->get_string().empty()) return ProtocolError::kBadField;
  const json::value* id = present(message, "clientMessageId");
  if (id == nullptr) return ProtocolError::kMissingField;
  const json::string* id_text = id->if_string();
  if (id_text == nullptr || id_text->empty() || id_text->size() > kMaxClientMessageIdBytes ||
      has_control_chars(view(*id_text))) {
    return ProtocolError::kBadField;
  }
  return ChatSend{std::move(*room), std::string(view(text->get_string())),
                  std::string(view(*id_text))};
}

Result<ClientMessage> parse_typing(const json::object& message) {
  auto room = parse_room(message);
  if (!room) return room.error();
  return Typing{std::move(*room)};
}

Result<ClientMessage> parse_history(const json::object& message) {
  auto room = parse_room(message);
  if (!room) return room.error();
  HistoryRequest request{std::move(*room), std::nullopt, std::nullopt};
  if (const json::value* before = present(message, "before")) {
    const json::string* text = before->if_string();
    if (text == nullptr) return ProtocolError::kBadField;
    auto id = parse_event_id(view(*text));
    if (!id) return id.error();
    request.before = std::move(*id);
  }
  auto limit = parse_count(message, "limit");
  if (!limit) return limit.error();
  if (*limit && **limit == 0) return ProtocolError::kBadField;
  request.limit = *limit;
  return request;
}

}  // namespace

std::optional<Result<ClientMessage>> parse_chat_message(std::string_view type,
                                                        const json::object& message) {
  if (type == "join") return parse_join(message);
  if (type == "leave") return parse_leave(message);
  if (type == "message") return parse_send(message);
  if (type == "typing") return parse_typing(message);
  if (type == "history") return parse_history(message);
  return std::nullopt;
}

}  // namespace sg::protocol::detail
