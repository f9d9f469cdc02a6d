#include "protocol/chat_messages.hpp"
#include "protocol/json_fields.hpp"
#include "protocol/protocol.hpp"

#include <algorithm>
#include <array>

namespace sg::protocol {

namespace {

namespace json = boost::json;
using detail::present;
using detail::view;

constexpr std::size_t kMaxResumeIdBytes = 128;

// Services are checked against the raw array length, before duplicates are dropped, so the
// work done for one message is bounded by the limit whatever the client sends. The linear
// duplicate search is fine for the same reason.
Result<std::vector<std::string>> parse_services(const json::object& message,
                                                const ParseLimits& limits) {
  const json::value* field = present(message, "services");
  if (field == nullptr) return ProtocolError::kMissingField;
  const json::array* array = field->if_array();
  if (array == nullptr) return ProtocolError::kBadField;
  if (array->size() > limits.max_services) return ProtocolError::kTooManyItems;
  std::vector<std::string> services;
  services.reserve(array->size());
  for (const json::value& item : *array) {
    const json::string* name = item.if_string();
    if (name == nullptr || !is_valid_name(view(*name))) return ProtocolError::kBadField;
    if (std::find(services.begin(), services.end(), view(*name)) == services.end()) {
      services.emplace_back(view(*name));
    }
  }
  return services;
}

// The ids are kept raw: only the caller knows whether a bad id for a service it won't
// subscribe to matters, so it runs parse_event_id on the ones it uses.
Result<ResumeMap> parse_resume(const json::object& message, const ParseLimits& limits) {
  ResumeMap resume;
  const json::value* field = present(message, "resume");
  if (field == nullptr) return resume;
  const json::object* object = field->if_object();
  if (object == nullptr) return ProtocolError::kBadField;
  if (object->size() > limits.max_services) return ProtocolError::kTooManyItems;
  resume.reserve(object->size());
  for (const auto& entry : *object) {
    const std::string_view service(entry.key().data(), entry.key().size());
    const json::string* id = entry.value().if_string();
    if (!is_valid_name(service) || id == nullptr || id->empty() || id->size() > kMaxResumeIdBytes) {
      return ProtocolError::kBadField;
    }
    resume.emplace_back(std::string(service), std::string(view(*id)));
  }
  return resume;
}

// Only the integer 1 (or 1.0, which some encoders emit) is the version we speak.
Result<int> parse_version(const json::object& message) {
  const json::value* field = present(message, "version");
  if (field == nullptr) return ProtocolError::kMissingField;
  if (!field->is_number()) return ProtocolError::kBadField;
  const bool is_one = (field->is_int64() && field->get_int64() == kProtocolVersion) ||
                      (field->is_uint64() && field->get_uint64() == kProtocolVersion) ||
                      (field->is_double() && field->get_double() == kProtocolVersion);
  if (!is_one) return ProtocolError::kBadVersion;
  return kProtocolVersion;
}

Result<ClientMessage> parse_handshake(const json::object& message, const ParseLimits& limits) {
  auto services = parse_services(message, limits);
  if (!services) return services.error();
  auto version = parse_version(message);
  if (!version) return version.error();
  auto resume = parse_resume(message, limits);
  if (!resume) return resume.error();
  return Handshake{std::move(*services), *version, std::move(*resume)};
}

Result<ClientMessage> parse_subscribe(const json::object& message, const ParseLimits& limits) {
  auto services = parse_services(message, limits);
  if (!services) return services.error();
  auto resume = parse_resume(message, limits);
  if (!resume) return resume.error();
  return Subscribe{std::move(*services), std::move(*resume)};
}

Result<ClientMessage> parse_unsubscribe(const json::object& message, const ParseLimits& limits) {
  auto services = parse_services(message, limits);
  if (!services) return services.error();
  return Unsubscribe{std::move(*services)};
}

// The token is bounded by the message size limit; auth refuses one over its own cap.
Result<ClientMessage> parse_refresh(const json::object& message) {
  const json::value* field = present(message, "token");
  if (field == nullptr) return ProtocolError::kMissingField;
  const json::string* token = field->if_string();
  if (token == nullptr || token->empty()) return ProtocolError::kBadField;
  return Refresh{std::string(view(*token))};
}

}  // namespace

Result<ClientMessage> parse_client_message(std::string_view text, bool expect_handshake,
                                           const ParseLimits& limits) {
  // Client messages are small; a stack arena makes the parse allocation-free for them and
  // falls back to the heap for larger ones.
  std::array<unsigned char, 2048> arena;
  json::monotonic_resource resource(arena.data(), arena.size());
  boost::system::error_code ec;
  const json::value root =
      json::parse(json::string_view(text.data(), text.size()), ec, json::storage_ptr(&resource));
  if (ec) return ProtocolError::kMalformedJson;
  const json::object* message = root.if_object();
  if (message == nullptr) return ProtocolError::kNotAnObject;

  const json::value* type_field = present(*message, "type");
  if (type_field != nullptr && !type_field->is_string()) return ProtocolError::kBadField;
  const std::string_view type =
      type_field == nullptr ? std::string_view() : view(type_field->get_string());

  if (expect_handshake) {
    if (type_field != nullptr && type != "handshake") return ProtocolError::kUnknownType;
    return parse_handshake(*message, limits);
  }
  if (type == "subscribe") return parse_subscribe(*message, limits);
  if (type == "unsubscribe") return parse_unsubscribe(*message, limits);
  if (type == "ping") return Ping{};
  if (type == "refresh") return parse_refresh(*message);
  if (auto chat = detail::parse_chat_message(type, *message)) return std::move(*chat);
  // Includes a missing type and a second handshake: both mean the client lost track of the
  // connection's state.
  return ProtocolError::kUnknownType;
}

}  // namespace sg::protocol
