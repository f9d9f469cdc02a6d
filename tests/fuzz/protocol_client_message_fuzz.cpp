// Feeds arbitrary bytes to the client message parser (both before and after the handshake)
// and to the event id parser, and checks what a caller relies on when they succeed. Also
// checks that append_json_string always yields one JSON string that reads back as the input
// when the input was valid UTF-8.
#include "protocol/protocol.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <variant>

namespace {

using namespace sg::protocol;

void require(bool condition) {
  if (!condition) std::abort();
}

void check_services(const std::vector<std::string>& services, const ParseLimits& limits) {
  require(services.size() <= limits.max_services);
  for (std::size_t i = 0; i < services.size(); ++i) {
    require(is_valid_name(services[i]));
    require(std::find(services.begin(), services.begin() + static_cast<std::ptrdiff_t>(i),
                      services[i]) == services.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void check_resume(const ResumeMap& resume, const ParseLimits& limits) {
  require(resume.size() <= limits.max_services);
  for (const auto& [service, id] : resume) {
    require(is_valid_name(service));
    require(!id.empty() && id.size() <= 128);
  }
}

void check_message(std::string_view text, bool expect_handshake) {
  const ParseLimits limits{.max_services = 8};
  auto message = parse_client_message(text, expect_handshake, limits);
  if (!message) {
    require(message.error().category() == sg::core::enum_category<ProtocolError>());
    return;
  }
  if (const auto* h = std::get_if<Handshake>(&*message)) {
    require(expect_handshake);
    require(h->version == kProtocolVersion);
    check_services(h->services, limits);
    check_resume(h->resume, limits);
  } else {
    require(!expect_handshake);
    if (const auto* s = std::get_if<Subscribe>(&*message)) {
      check_services(s->services, limits);
      check_resume(s->resume, limits);
    } else if (const auto* u = std::get_if<Unsubscribe>(&*message)) {
      check_services(u->services, limits);
    }
  }
}

void check_event_id(std::string_view text) {
  auto id = parse_event_id(text);
  // Ids have one spelling, so a parsed id formats back to exactly the input.
  if (id) require(format_event_id(id->epoch, id->offset) == text);
}

void check_json_string(std::string_view text) {
  std::string literal;
  append_json_string(literal, text);
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(literal, ec);
  require(!ec && v.is_string());
  // Cheap proxy for "text is valid UTF-8": a JSON string of it parses iff it is.
  std::string wrapped = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || c == '"' || c == '\\') return;
  }
  wrapped.append(text);
  wrapped.push_back('"');
  boost::json::parse(wrapped, ec);
  if (!ec) require(v.get_string() == boost::json::string_view(text.data(), text.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_message(text, true);
  check_message(text, false);
  check_event_id(text);
  check_json_string(text);
  return 0;
}
