#include "stream/sse_request.hpp"

#include "core/core.hpp"
#include "node/context.hpp"
#include "protocol/protocol.hpp"

#include <algorithm>

namespace sg::stream {

namespace {

// A refusal that names its service in a field, as the stream's error frame does, so a client
// drops that one service without reading the message.
net::HttpResponse service_error(unsigned status, std::string_view code, std::string_view message,
                                std::string_view service) {
  net::HttpResponse r = net::json_error(status, code, message);
  r.body.pop_back();
  r.body += ",\"service\":";
  core::append_json_string(r.body, service);
  r.body += '}';
  return r;
}

}  // namespace

std::variant<SseRequest, net::HttpResponse> parse_sse_request(const node::Context& ctx,
                                                              const net::HttpRequest& req,
                                                              const auth::Principal& principal) {
  using net::json_error;
  if (req.method != "GET") {
    auto refused = json_error(405, "method_not_allowed", "an event stream is opened with GET");
    refused.headers.emplace_back("Allow", "GET");
    return refused;
  }
  const std::size_t max_services = ctx.settings.max_services;
  SseRequest out;
  const std::string list = net::query_param(req.query, "services");
  std::string_view rest = list;
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    const std::string_view service = core::trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (service.empty()) continue;
    if (!ctx.service_allowed(service)) {
      return service_error(400, "unknown_service", std::string("no such service: ").append(service),
                           service);
    }
    const bool own_uploads = ctx.uploads && service == node::kUploadsService;
    if (principal.services && !own_uploads &&
        std::find(principal.services->begin(), principal.services->end(), service) ==
            principal.services->end()) {
      return service_error(403, "forbidden_service",
                           std::string("the token does not allow service ").append(service),
                           service);
    }
    if (std::find(out.services.begin(), out.services.end(), service) != out.services.end()) {
      continue;
    }
    if (out.services.size() == max_services) {
      return json_error(400, "too_many_services",
                        std::string("a connection may subscribe to at most ")
                            .append(std::to_string(max_services))
                            .append(" services"));
    }
    out.services.emplace_back(service);
  }
  if (out.services.empty()) {
    return json_error(400, "missing_services",
                      "name the services to stream: ?services=finance,hr (comma-separated)");
  }
  out.resume.resize(out.services.size());

  // EventSource sends the header on its own reconnects; the parameter is for clients that can't
  // set headers, so the header wins when both are there.
  std::string cursor(req.header ? req.header("Last-Event-ID") : std::string_view{});
  if (cursor.empty()) cursor = net::query_param(req.query, "lastEventId");
  if (cursor.empty()) return out;
  const std::size_t limit = max_cursor_bytes(max_services);
  if (cursor.size() > limit) {
    return json_error(400, "bad_last_event_id",
                      std::string("Last-Event-ID is longer than any cursor this node issues (")
                          .append(std::to_string(limit))
                          .append(" bytes); reconnect without it"));
  }
  auto entries = decode_cursor(cursor, max_services);
  if (!entries) {
    return json_error(400, "bad_last_event_id",
                      "Last-Event-ID is not a cursor this server issued; reconnect without it");
  }
  for (auto& entry : *entries) {
    auto it = std::find(out.services.begin(), out.services.end(), entry.service);
    // A service the client no longer asks for is simply left.
    if (it == out.services.end()) continue;
    out.resume[static_cast<std::size_t>(it - out.services.begin())] = std::move(entry.position);
  }
  return out;
}

}  // namespace sg::stream
