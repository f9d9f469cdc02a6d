#include "protocol/json_fields.hpp"
#include "protocol/protocol.hpp"
#include "protocol/raw_json.hpp"

namespace sg::protocol {

namespace {

namespace json = boost::json;
using detail::has_control_chars;
using detail::present;
using detail::view;

constexpr std::size_t kMaxOrgBytes = 128;
constexpr std::size_t kMaxEventBytes = 128;
constexpr std::size_t kMaxUserBytes = 256;
constexpr std::size_t kMaxEventKeyBytes = 128;
// Deeper than client messages: "data" is the producer's own document.
constexpr std::size_t kMaxDepth = 64;

// An identifier sent as a string or as an integer, normalized to text. Integers become their
// decimal form so that 456 and "456" name the same org.
Result<std::string> identifier(const json::value& v, std::size_t max_bytes, bool allow_negative) {
  std::string out;
  if (const json::string* s = v.if_string()) {
    if (s->empty() || s->size() > max_bytes || has_control_chars(view(*s))) {
      return ProtocolError::kBadField;
    }
    out.assign(view(*s));
  } else if (v.is_uint64()) {
    core::append_decimal(out, v.get_uint64());
  } else if (v.is_int64()) {
    const std::int64_t n = v.get_int64();
    if (n < 0) {
      if (!allow_negative) return ProtocolError::kBadField;
      out.push_back('-');
      // Two's complement negation in unsigned arithmetic also covers INT64_MIN.
      core::append_decimal(out, ~static_cast<std::uint64_t>(n) + 1);
    } else {
      core::append_decimal(out, static_cast<std::uint64_t>(n));
    }
  } else {
    return ProtocolError::kBadField;
  }
  return out;
}

// `raw_item` is the source text of `item`, from which "data" is taken as the producer wrote it.
Result<PublishRequest> parse_item(const json::value& item, std::string_view raw_item) {
  const json::object* object = item.if_object();
  if (object == nullptr) return ProtocolError::kNotAnObject;
  PublishRequest request;

  const json::value* org = present(*object, "orgId");
  if (org == nullptr) return ProtocolError::kMissingField;
  auto org_text = identifier(*org, kMaxOrgBytes, /*allow_negative=*/false);
  if (!org_text) return org_text.error();
  request.org = std::move(*org_text);

  const json::value* service = present(*object, "service");
  if (service == nullptr) return ProtocolError::kMissingField;
  if (!service->is_string() || !is_valid_name(view(service->get_string()))) {
    return ProtocolError::kBadField;
  }
  request.service.assign(view(service->get_string()));

  const json::value* event = present(*object, "event");
  if (event == nullptr) return ProtocolError::kMissingField;
  const json::string* event_type = event->if_string();
  if (event_type == nullptr || event_type->empty() || event_type->size() > kMaxEventBytes ||
      has_control_chars(view(*event_type))) {
    return ProtocolError::kBadField;
  }
  request.event.assign(view(*event_type));

  if (present(*object, "data") != nullptr) {
    // Not json::serialize(*data): that rewrites numbers (1.5 as 1.5E0, big integers rounded to
    // doubles), and subscribers must get back what the producer sent. This also lets numbers
    // out of a double's range (1e400) through: as text they are valid JSON; only writing
    // them back from a double gave the non-JSON `Infinity`.
    auto raw = detail::raw_member(raw_item, "data");
    if (!raw) return raw.error();
    // Unreachable: the DOM found "data" in the same validated text.
    if (raw->empty()) return ProtocolError::kMalformedJson;
    request.data = detail::minify_json(*raw);
  } else {
    request.data = "null";
  }

  if (const json::value* user = present(*object, "userId")) {
    // An empty userId is refused rather than read as "no user": a producer that meant to
    // target one user must not broadcast to the whole org by accident.
    auto user_text = identifier(*user, kMaxUserBytes, /*allow_negative=*/true);
    if (!user_text) return user_text.error();
    request.user = std::move(*user_text);
  }

  if (const json::value* key = present(*object, "eventId")) {
    const json::string* text = key->if_string();
    if (text == nullptr || text->empty() || text->size() > kMaxEventKeyBytes) {
      return ProtocolError::kBadField;
    }
    request.event_key.assign(view(*text));
  }
  return request;
}

}  // namespace

Result<PublishBody> parse_publish(std::string_view body, std::size_t max_batch) {
  json::monotonic_resource resource;
  json::parse_options options;
  options.max_depth = kMaxDepth;
  boost::system::error_code ec;
  const json::value root = json::parse(json::string_view(body.data(), body.size()), ec,
                                       json::storage_ptr(&resource), options);
  if (ec) return ProtocolError::kMalformedJson;

  PublishBody out;
  if (const json::array* items = root.if_array()) {
    if (items->empty() || items->size() > max_batch) return ProtocolError::kTooManyItems;
    // Unreachable failures: Boost.JSON already accepted the text the scanner reads.
    auto raw_items = detail::raw_array_elements(body);
    if (!raw_items || raw_items->size() != items->size()) return ProtocolError::kMalformedJson;
    out.batch = true;
    out.items.reserve(items->size());
    for (std::size_t i = 0; i < items->size(); ++i) {
      auto request = parse_item((*items)[i], (*raw_items)[i]);
      if (!request) return request.error();
      out.items.push_back(std::move(*request));
    }
    return out;
  }
  if (!root.is_object()) return ProtocolError::kNotAnObject;
  auto request = parse_item(root, body);
  if (!request) return request.error();
  out.items.push_back(std::move(*request));
  return out;
}

}  // namespace sg::protocol
