#include "net/http_types.hpp"

#include "core/core.hpp"

namespace sg::net {

HttpResponse json_error(unsigned status, std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = "{\"error\":";
  core::append_json_string(r.body, code);
  r.body += ",\"message\":";
  core::append_json_string(r.body, message);
  r.body += "}";
  return r;
}

HttpResponse json_ok(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  return r;
}

std::string query_param(std::string_view query, std::string_view name) {
  // Boost.URL 1.81's compiled parse_query reads past the given view (it strlen()s it), so the
  // query is split here.
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.size() <= name.size() || !pair.starts_with(name) || pair[name.size()] != '=') continue;
    std::string value;
    // A malformed escape reads as absent, so a mangled token is reported as a missing one.
    if (!core::percent_decode(pair.substr(name.size() + 1), value)) return {};
    return value;
  }
  return {};
}

}  // namespace sg::net
