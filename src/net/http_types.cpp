#include "net/http_types.hpp"

#include "core/core.hpp"

#include <boost/beast/http/status.hpp>

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

HttpResponse json_field_error(std::string_view code, std::string_view message,
                              std::string_view field) {
  HttpResponse r = json_error(400, code, message);
  if (field.empty()) return r;
  r.body.pop_back();
  r.body += ",\"field\":";
  core::append_json_string(r.body, field);
  r.body += '}';
  return r;
}

HttpResponse json_ok(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  return r;
}

bool append_plain_response(const HttpResponse& r, Persistence persistence, std::string& out) {
  if (!r.reason.empty() || !r.headers.empty() || r.status < 200 || r.status > 599 ||
      r.status == 204 || r.content_type.find_first_of("\r\n") != std::string::npos) {
    return false;
  }
  namespace http = boost::beast::http;
  const auto reason = http::obsolete_reason(static_cast<http::status>(r.status));
  out.reserve(out.size() + 128 + r.content_type.size() + r.body.size());
  out += "HTTP/1.1 ";
  core::append_decimal(out, r.status);
  out += ' ';
  out.append(reason.data(), reason.size());
  out += "\r\nServer: streamgate\r\nContent-Type: ";
  out += r.content_type;
  out += "\r\nCache-Control: no-store\r\n";
  if (persistence == Persistence::kClose) out += "Connection: close\r\n";
  if (persistence == Persistence::kKeepAlive) out += "Connection: keep-alive\r\n";
  out += "Content-Length: ";
  core::append_decimal(out, r.body.size());
  out += "\r\n\r\n";
  out += r.body;
  return true;
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
