#include "protocol/json_fields.hpp"
#include "protocol/protocol.hpp"
#include "protocol/raw_json.hpp"

#include <algorithm>
#include <array>
#include <optional>

namespace sg::protocol {

namespace {

namespace json = boost::json;
using detail::has_control_chars;
using detail::present;
using detail::view;

constexpr std::size_t kMaxEventBytes = 128;
constexpr std::size_t kMaxUserBytes = 256;
constexpr std::size_t kMaxEventKeyBytes = 128;
// Deeper than client messages: "data" is the producer's own document.
constexpr std::size_t kMaxDepth = 64;

// Every field an item may have. Anything else is refused rather than ignored: a misspelt
// optional field ("user_id") would otherwise be dropped and widen who receives the event.
constexpr std::array<std::string_view, 6> kFields = {"orgId", "service", "event",
                                                     "data",  "userId",  "eventId"};

// A field's name folded for a "did you mean": lowercase, without '_' and '-'.
std::string folded(std::string_view name) {
  std::string out;
  for (const char c : name) {
    if (c == '_' || c == '-') continue;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

std::string_view suggestion_for(std::string_view unknown) {
  const std::string key = folded(unknown);
  for (const std::string_view field : kFields) {
    if (folded(field) == key) return field;
  }
  return {};
}

// The org id rule is core's, shared with the token's org_id claim.
Result<std::string> org_id(const json::value& v) {
  std::optional<std::string> org;
  if (v.is_uint64()) {
    org = core::org_id_from_integer(v.get_uint64());
  } else if (v.is_int64()) {
    org = core::org_id_from_integer(v.get_int64());
  } else if (const json::string* s = v.if_string()) {
    org = core::org_id_from_text(view(*s));
  }
  if (!org) return ProtocolError::kBadField;
  return std::move(*org);
}

// A user id sent as a string or as an integer (negative ones too), normalized to text.
// Integers become their decimal form so that 17 and "17" name the same user.
Result<std::string> user_id(const json::value& v) {
  std::string out;
  if (const json::string* s = v.if_string()) {
    if (s->empty() || s->size() > kMaxUserBytes || has_control_chars(view(*s))) {
      return ProtocolError::kBadField;
    }
    out.assign(view(*s));
  } else if (v.is_uint64()) {
    core::append_decimal(out, v.get_uint64());
  } else if (v.is_int64()) {
    const std::int64_t n = v.get_int64();
    if (n < 0) {
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
// On failure `where` gets the field at fault (empty when the item is not an object).
Result<PublishRequest> parse_item(const json::value& item, std::string_view raw_item,
                                  PublishErrorDetail& where) {
  const json::object* object = item.if_object();
  if (object == nullptr) return ProtocolError::kNotAnObject;
  auto fail = [&where](ProtocolError code, std::string_view field) {
    where.field.assign(field);
    return code;
  };

  // Unknown fields first: when a producer misspells a required field, naming the misspelling
  // helps more than saying the real one is missing.
  for (const auto& member : *object) {
    const std::string_view key(member.key().data(), member.key().size());
    if (std::find(kFields.begin(), kFields.end(), key) == kFields.end()) {
      where.suggestion = suggestion_for(key);
      return fail(ProtocolError::kUnknownField, key);
    }
  }

  PublishRequest request;
  const json::value* org = present(*object, "orgId");
  if (org == nullptr) return fail(ProtocolError::kMissingField, "orgId");
  auto org_text = org_id(*org);
  if (!org_text) return fail(ProtocolError::kBadField, "orgId");
  request.org = std::move(*org_text);

  const json::value* service = present(*object, "service");
  if (service == nullptr) return fail(ProtocolError::kMissingField, "service");
  if (!service->is_string() || !is_valid_name(view(service->get_string()))) {
    return fail(ProtocolError::kBadField, "service");
  }
  request.service.assign(view(service->get_string()));

  const json::value* event = present(*object, "event");
  if (event == nullptr) return fail(ProtocolError::kMissingField, "event");
  const json::string* event_type = event->if_string();
  if (event_type == nullptr || event_type->empty() || event_type->size() > kMaxEventBytes ||
      has_control_chars(view(*event_type))) {
    return fail(ProtocolError::kBadField, "event");
  }
  request.event.assign(view(*event_type));

  if (present(*object, "data") != nullptr) {
    // Not json::serialize(*data): that rewrites numbers (1.5 as 1.5E0, big integers rounded to
    // doubles), and subscribers must get back what the producer sent. This also lets numbers
    // out of a double's range (1e400) through: as text they are valid JSON; only writing
    // them back from a double gave the non-JSON `Infinity`.
    auto raw = detail::raw_member(raw_item, "data");
    if (!raw) return fail(ProtocolError::kMalformedJson, "data");
    // Unreachable: the DOM found "data" in the same validated text.
    if (raw->empty()) return fail(ProtocolError::kMalformedJson, "data");
    request.data = detail::minify_json(*raw);
  } else {
    request.data = "null";
  }

  if (const json::value* user = present(*object, "userId")) {
    // An empty userId is refused rather than read as "no user": a producer that meant to
    // target one user must not broadcast to the whole org by accident.
    auto user_text = user_id(*user);
    if (!user_text) return fail(ProtocolError::kBadField, "userId");
    request.user = std::move(*user_text);
  }

  if (const json::value* key = present(*object, "eventId")) {
    const json::string* text = key->if_string();
    if (text == nullptr || text->empty() || text->size() > kMaxEventKeyBytes) {
      return fail(ProtocolError::kBadField, "eventId");
    }
    request.event_key.assign(view(*text));
  }
  return request;
}

}  // namespace

Result<PublishBody> parse_publish(std::string_view body, std::size_t max_batch,
                                  PublishErrorDetail* detail) {
  PublishErrorDetail ignored;
  PublishErrorDetail& where = detail != nullptr ? *detail : ignored;
  where = {};
  // A single event's DOM fits here, so parsing it allocates nothing; bigger bodies (batches)
  // spill to the heap.
  unsigned char buffer[4096];
  json::monotonic_resource resource(buffer, sizeof buffer);
  json::parse_options options;
  options.max_depth = kMaxDepth;
  boost::system::error_code ec;
  const json::value root = json::parse(json::string_view(body.data(), body.size()), ec,
                                       json::storage_ptr(&resource), options);
  if (ec) return ProtocolError::kMalformedJson;

  PublishBody out;
  if (const json::array* items = root.if_array()) {
    if (items->empty()) return ProtocolError::kEmptyBatch;
    if (items->size() > max_batch) return ProtocolError::kTooManyItems;
    // Unreachable failures: Boost.JSON already accepted the text the scanner reads.
    auto raw_items = detail::raw_array_elements(body);
    if (!raw_items || raw_items->size() != items->size()) return ProtocolError::kMalformedJson;
    out.batch = true;
    out.items.reserve(items->size());
    for (std::size_t i = 0; i < items->size(); ++i) {
      auto request = parse_item((*items)[i], (*raw_items)[i], where);
      if (!request) {
        where.index = i;
        return request.error();
      }
      out.items.push_back(std::move(*request));
    }
    return out;
  }
  if (!root.is_object()) return ProtocolError::kNotAnObject;
  auto request = parse_item(root, body, where);
  if (!request) return request.error();
  out.items.push_back(std::move(*request));
  return out;
}

}  // namespace sg::protocol
