#include "protocol/json_fields.hpp"
#include "protocol/protocol.hpp"
#include "protocol/publish_paths.hpp"
#include "protocol/raw_json.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>

namespace sg::protocol {

namespace {

namespace json = boost::json;
using detail::has_control_chars;
using detail::present;
using detail::view;

constexpr std::size_t kMaxEventBytes = 128;
constexpr std::size_t kMaxEventKeyBytes = 128;
// Deeper than client messages: "data" is the producer's own document.
constexpr std::size_t kMaxDepth = 64;

// Room left after "data" for the rest of its event's body, so that
// serialize_event_body_in_place reserves nothing more: what that form reserves (64, the service and
// event type as sent) for an id of up to 53 bytes (a 32-byte epoch, '-', 20 digits) and a 24-byte
// timestamp.
std::size_t body_headroom(const PublishRequest& r) {
  return 64 + 53 + 24 + r.service.size() + r.event.size();
}

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

std::string user_id_of(std::int64_t n) {
  std::string out;
  if (n < 0) {
    out.push_back('-');
    // Two's complement negation in unsigned arithmetic also covers INT64_MIN.
    core::append_decimal(out, ~static_cast<std::uint64_t>(n) + 1);
  } else {
    core::append_decimal(out, static_cast<std::uint64_t>(n));
  }
  return out;
}

bool valid_event_type(std::string_view s) {
  return !s.empty() && s.size() <= kMaxEventBytes && !has_control_chars(s);
}

bool valid_event_key(std::string_view s) {
  return !s.empty() && s.size() <= kMaxEventKeyBytes;
}

// A user id sent as a string or as an integer (negative ones too), normalized to text.
// Integers become their decimal form so that 17 and "17" name the same user.
Result<std::string> user_id(const json::value& v) {
  std::string out;
  if (const json::string* s = v.if_string()) {
    if (!core::user_id_text_ok(view(*s))) return ProtocolError::kBadField;
    out.assign(view(*s));
  } else if (v.is_uint64()) {
    core::append_decimal(out, v.get_uint64());
  } else if (v.is_int64()) {
    out = user_id_of(v.get_int64());
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
  if (event_type == nullptr || !valid_event_type(view(*event_type))) {
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
    request.data = detail::minify_json(*raw, body_headroom(request));
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
    if (text == nullptr || !valid_event_key(view(*text))) {
      return fail(ProtocolError::kBadField, "eventId");
    }
    request.event_key.assign(view(*text));
  }
  return request;
}

// ---- the fast path: Boost.JSON's SAX parser on the common shape ----

// Which of kFields a name is; kFields.size() for none.
std::size_t field_index(std::string_view name) {
  return static_cast<std::size_t>(std::find(kFields.begin(), kFields.end(), name) -
                                  kFields.begin());
}

constexpr std::size_t kOrgId = 0, kService = 1, kEvent = 2, kData = 3, kUserId = 4, kEventId = 5;
constexpr std::size_t kNoField = kFields.size();

// Reads one object's top-level fields as the DOM path would, and gives up (an error code that
// stops the parser) on anything it would not accept or would need the DOM to judge: there the
// DOM path decides, with its errors and details.
class FastHandler {
  using error_code = boost::system::error_code;

 public:
  static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();

  explicit FastHandler(std::string_view body) : body_(body) {}

  PublishRequest request;
  bool has_data = false;  // "data" was sent and is not null
  unsigned seen = 0;      // bit i: kFields[i] was named

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_array_begin(error_code& ec) { return open(ec); }
  bool on_array_end(std::size_t, error_code&) { return close(); }
  bool on_object_begin(error_code& ec) {
    // The root object is the item; a batch (array root) is left to the DOM path.
    if (depth_ == 0) {
      depth_ = 1;
      return true;
    }
    return open(ec);
  }
  bool on_object_end(std::size_t, error_code&) {
    // The root's last member ends before its closing brace.
    if (depth_ == 1 && field_ == kData) data_to_ = value_end(last_brace());
    return close();
  }

  // "data" as the producer wrote it, when has_data.
  std::string_view data() const { return body_.substr(data_from_, data_to_ - data_from_); }

  bool on_key_part(json::string_view, std::size_t, error_code& ec) {
    if (depth_ > 1) return true;
    // A name in pieces had escapes: the DOM path compares unescaped names.
    return give_up(ec);
  }
  bool on_key(json::string_view s, std::size_t, error_code& ec) {
    if (depth_ > 1) return true;
    // A name that points into the body was written without escapes (an escaped one comes
    // from the parser's own buffer), so its position there is where it was written: the span
    // of "data" is found from those positions. Escaped names go the DOM way.
    if (!std::less_equal<const char*>()(body_.data(), s.data()) ||
        !std::less_equal<const char*>()(s.data() + s.size(), body_.data() + body_.size())) {
      return give_up(ec);
    }
    // The member before this one ends before its comma.
    if (field_ == kData)
      data_to_ = value_end(static_cast<std::size_t>(s.data() - body_.data()) - 1);
    field_ = field_index(std::string_view(s.data(), s.size()));
    const unsigned bit = 1u << field_;
    if (field_ == kNoField || (seen & bit) != 0) return give_up(ec);
    seen |= bit;
    if (field_ == kData) {
      // The value starts after the name's closing quote, the colon and the spaces around it.
      std::size_t at = static_cast<std::size_t>(s.data() - body_.data()) + s.size() + 1;
      while (at < body_.size() && (is_space(body_[at]) || body_[at] == ':')) ++at;
      data_from_ = at;
    }
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t, error_code&) {
    if (depth_ == 1) text_.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t, error_code& ec) {
    if (depth_ > 1) return true;
    if (text_.empty()) return on_text(std::string_view(s.data(), s.size()), ec);
    text_.append(s.data(), s.size());
    const bool ok = on_text(text_, ec);
    text_.clear();
    return ok;
  }

  bool on_number_part(json::string_view, error_code&) { return true; }
  bool on_int64(std::int64_t n, json::string_view, error_code& ec) {
    if (depth_ > 1) return true;
    switch (field_) {
      case kOrgId: {
        auto org = core::org_id_from_integer(n);
        if (!org) return give_up(ec);
        request.org = std::move(*org);
        return true;
      }
      case kUserId:
        request.user = user_id_of(n);
        return true;
      default:
        return scalar(ec);
    }
  }
  bool on_uint64(std::uint64_t n, json::string_view, error_code& ec) {
    if (depth_ > 1) return true;
    switch (field_) {
      case kOrgId:
        request.org = core::org_id_from_integer(n);
        return true;
      case kUserId:
        request.user.clear();
        core::append_decimal(request.user, n);
        return true;
      default:
        return scalar(ec);
    }
  }
  bool on_double(double, json::string_view, error_code& ec) { return depth_ > 1 || scalar(ec); }
  bool on_bool(bool, error_code& ec) { return depth_ > 1 || scalar(ec); }
  bool on_null(error_code& ec) {
    if (depth_ > 1) return true;
    // Null optional fields are absent; null required ones are missing, which the DOM reports.
    if (field_ == kOrgId || field_ == kService || field_ == kEvent) return give_up(ec);
    return true;
  }
  bool on_comment_part(json::string_view, error_code&) { return true; }
  bool on_comment(json::string_view, error_code&) { return true; }

 private:
  static bool give_up(error_code& ec) {
    ec = make_error_code(boost::system::errc::operation_canceled);
    return false;
  }

  // An object or array: at the root a batch, as a field's value only "data" takes one.
  bool open(error_code& ec) {
    if (depth_ == 0) return give_up(ec);
    if (depth_ == 1) {
      if (field_ != kData) return give_up(ec);
      has_data = true;
    }
    ++depth_;
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }

  // A number or boolean at the top level: only "data" takes one.
  bool scalar(error_code& ec) {
    if (field_ != kData) return give_up(ec);
    has_data = true;
    return true;
  }

  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

  // Where a value ends that is followed by `after` (its comma or the object's brace), with
  // only whitespace between them.
  std::size_t value_end(std::size_t after) const {
    std::size_t end = after;
    while (end > 0 && is_space(body_[end - 1])) --end;
    if (end > 0 && body_[end - 1] == ',') --end;
    while (end > 0 && is_space(body_[end - 1])) --end;
    return end;
  }

  // The root object's closing brace: the last byte before the trailing whitespace.
  std::size_t last_brace() const {
    std::size_t end = body_.size();
    while (end > 0 && is_space(body_[end - 1])) --end;
    return end > 0 ? end - 1 : 0;
  }

  bool on_text(std::string_view s, error_code& ec) {
    switch (field_) {
      case kOrgId: {
        auto org = core::org_id_from_text(s);
        if (!org) return give_up(ec);
        request.org = std::move(*org);
        return true;
      }
      case kService:
        if (!is_valid_name(s)) return give_up(ec);
        request.service.assign(s);
        return true;
      case kEvent:
        if (!valid_event_type(s)) return give_up(ec);
        request.event.assign(s);
        return true;
      case kData:
        has_data = true;
        return true;
      case kUserId:
        if (!core::user_id_text_ok(s)) return give_up(ec);
        request.user.assign(s);
        return true;
      case kEventId:
        if (!valid_event_key(s)) return give_up(ec);
        request.event_key.assign(s);
        return true;
      default:
        return give_up(ec);
    }
  }

  std::string_view body_;
  std::string text_;  // a top-level string value that came in pieces (it had escapes)
  std::size_t depth_ = 0;
  std::size_t field_ = kNoField;
  std::size_t data_from_ = 0, data_to_ = 0;  // "data"'s value in body_
};

}  // namespace

namespace detail {

std::optional<PublishBody> parse_publish_fast(std::string_view body) {
  json::parse_options options;
  options.max_depth = kMaxDepth;
  json::basic_parser<FastHandler> parser(options, body);
  boost::system::error_code ec;
  // The parser stops after one value: what follows it (other than whitespace) is left unread,
  // and json::parse calls that extra_data.
  const std::size_t read = parser.write_some(false, body.data(), body.size(), ec);
  if (ec || !parser.done() || read != body.size()) return std::nullopt;
  FastHandler& h = parser.handler();
  constexpr unsigned kRequired = (1u << kOrgId) | (1u << kService) | (1u << kEvent);
  if ((h.seen & kRequired) != kRequired) return std::nullopt;
  if (h.has_data) {
    // Its span was taken from the names around it (written without escapes), so no second
    // scan of the body (raw_member) is needed.
    const std::string_view raw = h.data();
    if (raw.empty()) return std::nullopt;
    h.request.data = minify_json(raw, body_headroom(h.request));
  } else {
    h.request.data = "null";
  }
  PublishBody out;
  out.items.push_back(std::move(h.request));
  return out;
}

Result<PublishBody> parse_publish_dom(std::string_view body, std::size_t max_batch,
                                      PublishErrorDetail& where) {
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

}  // namespace detail

Result<PublishBody> parse_publish(std::string_view body, std::size_t max_batch,
                                  PublishErrorDetail* detail) {
  PublishErrorDetail ignored;
  PublishErrorDetail& where = detail != nullptr ? *detail : ignored;
  where = {};
  // Most producers send one event in the same few fields: read that without building a DOM
  // (about half of the request's parse), and leave every other body, and every error, to the
  // DOM path, the one place the rules and their error details are written down.
  if (auto fast = detail::parse_publish_fast(body)) return std::move(*fast);
  return detail::parse_publish_dom(body, max_batch, where);
}

}  // namespace sg::protocol
