// Feeds arbitrary bytes to the publish body parser and, for every accepted item, builds the
// event frame the hub would send and checks that it is one JSON object whose fields are what
// was published.
#include "protocol/protocol.hpp"

#include <boost/json.hpp>

#include <cstdlib>
#include <string>

namespace {

using namespace sg::protocol;

void require(bool condition) {
  if (!condition) std::abort();
}

boost::json::string_view jv(const std::string& s) {
  return {s.data(), s.size()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  constexpr std::size_t kMaxBatch = 16;
  auto parsed = parse_publish(body, kMaxBatch);
  if (!parsed) {
    require(parsed.error().category() == sg::core::enum_category<ProtocolError>());
    return 0;
  }
  require(!parsed->items.empty() && parsed->items.size() <= kMaxBatch);
  require(parsed->batch || parsed->items.size() == 1);
  for (const PublishRequest& item : parsed->items) {
    require(!item.org.empty() && item.org.size() <= 128);
    require(is_valid_name(item.service));
    require(!item.event.empty() && item.event.size() <= 128);
    require(item.user.size() <= 256 && item.event_key.size() <= 128);

    std::string frame;
    append_event_frame_prefix(frame, 42);
    frame += serialize_event_body(item.service, format_event_id("e0", 1), item.event, item.data,
                                  "2026-01-01T00:00:00.000Z");
    boost::system::error_code ec;
    boost::json::parse_options options;
    options.max_depth = 128;
    const boost::json::value v = boost::json::parse(frame, ec, {}, options);
    require(!ec && v.is_object());
    const boost::json::object& o = v.get_object();
    require(o.size() == 7);
    require(o.at("seq").as_int64() == 42);
    require(o.at("service").as_string() == jv(item.service));
    require(o.at("event").as_string() == jv(item.event));
    // Compared as values: Boost.JSON's default double parsing is not correctly rounded, so
    // re-serializing a parsed double need not give back the same text.
    require(o.at("data") == boost::json::parse(item.data, ec, {}, options) && !ec);
  }
  return 0;
}
