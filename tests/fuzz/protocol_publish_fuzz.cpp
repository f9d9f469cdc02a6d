// Feeds arbitrary bytes to the publish body parser and, for every accepted item, checks that
// its data is the body's "data" value (as Boost.JSON reads both), minified, and that the event
// frame the hub would send is one JSON object whose fields are what was published.
#include "protocol/protocol.hpp"
#include "protocol/publish_paths.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace sg::protocol;

void require(bool condition) {
  if (!condition) std::abort();
}

boost::json::string_view jv(std::string_view s) {
  return {s.data(), s.size()};
}

// Value equality, with two allowances for the reference parser, Boost.JSON 1.81, which both
// sides go through while parse_publish passes the number's text on untouched:
// - NaN equals NaN: it reads valid numbers like 0e400 as NaN.
// - Doubles may differ in the last bits: it reads a number with more significant digits than a
//   double holds approximately, and the result depends on the bytes after the number
//   (10.222222222222222222222225 reads as 10.222222222222221433 before "}" and as
//   10.222222222222223209 before ,"timestamp":…).
bool same_double(double a, double b) {
  if (a == b || (std::isnan(a) && std::isnan(b))) return true;
  return std::fabs(a - b) <= 1e-14 * std::max(std::fabs(a), std::fabs(b));
}

bool same_value(const boost::json::value& a, const boost::json::value& b) {
  if (a.is_double() && b.is_double()) return same_double(a.get_double(), b.get_double());
  if (a.is_array() && b.is_array()) {
    const boost::json::array& x = a.get_array();
    const boost::json::array& y = b.get_array();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (!same_value(x[i], y[i])) return false;
    }
    return true;
  }
  if (a.is_object() && b.is_object()) {
    const boost::json::object& x = a.get_object();
    const boost::json::object& y = b.get_object();
    if (x.size() != y.size()) return false;
    for (const auto& entry : x) {
      const boost::json::value* other = y.if_contains(entry.key());
      if (other == nullptr || !same_value(entry.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

// True when `text` has no whitespace outside its strings.
bool is_minified(std::string_view text) {
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      return false;
    } else {
      in_string = c == '"';
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  constexpr std::size_t kMaxBatch = 16;
  auto parsed = parse_publish(body, kMaxBatch);

  // The SAX fast path accepts only what the DOM path accepts, and reads it the same way.
  if (const auto fast = detail::parse_publish_fast(body)) {
    PublishErrorDetail where;
    const auto dom = detail::parse_publish_dom(body, kMaxBatch, where);
    require(dom && !dom->batch && dom->items.size() == 1 && fast->items.size() == 1);
    const PublishRequest& a = fast->items[0];
    const PublishRequest& b = dom->items[0];
    require(a.org == b.org && a.service == b.service && a.event == b.event && a.data == b.data &&
            a.user == b.user && a.event_key == b.event_key);
  }

  // The body as the DOM sees it, with parse_publish's own limits: malformed exactly when
  // Boost.JSON says so (the raw data scanner must never refuse what Boost.JSON accepted), and
  // otherwise what each item's data must equal. Compared as values, not text: Boost.JSON
  // writes 1.5 as 1.5E0.
  boost::system::error_code ec;
  boost::json::parse_options options;
  options.max_depth = 64;
  const boost::json::value root = boost::json::parse(jv(body), ec, {}, options);
  if (!parsed) {
    require(parsed.error().category() == sg::core::enum_category<ProtocolError>());
    require((parsed.error() == ProtocolError::kMalformedJson) == bool(ec));
    return 0;
  }
  require(!ec);
  require(!parsed->items.empty() && parsed->items.size() <= kMaxBatch);
  require(parsed->batch || parsed->items.size() == 1);
  require(parsed->batch == root.is_array());
  require(!parsed->batch || root.get_array().size() == parsed->items.size());

  options.max_depth = 128;
  for (std::size_t i = 0; i < parsed->items.size(); ++i) {
    const PublishRequest& item = parsed->items[i];
    require(!item.org.empty() && item.org.size() <= 128);
    require(is_valid_name(item.service));
    require(!item.event.empty() && item.event.size() <= 128);
    require(item.user.size() <= 256 && item.event_key.size() <= 128);

    const boost::json::object& source =
        parsed->batch ? root.get_array()[i].as_object() : root.as_object();
    const boost::json::value* sent = source.if_contains("data");
    const boost::json::value delivered = boost::json::parse(item.data, ec, {}, options);
    require(!ec);
    require(sent == nullptr ? delivered.is_null() : same_value(delivered, *sent));
    require(is_minified(item.data) && item.data.size() <= body.size());

    std::string frame;
    append_event_frame_prefix(frame, 42);
    frame += serialize_event_body(item.service, format_event_id("e0", 1), item.event, item.data,
                                  "2026-01-01T00:00:00.000Z");
    const boost::json::value v = boost::json::parse(frame, ec, {}, options);
    require(!ec && v.is_object());
    const boost::json::object& o = v.get_object();
    require(o.size() == 7);
    require(o.at("seq").as_int64() == 42);
    require(o.at("service").as_string() == jv(item.service));
    require(o.at("event").as_string() == jv(item.event));
    require(same_value(o.at("data"), delivered));
  }
  return 0;
}
