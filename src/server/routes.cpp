#include "server/routes.hpp"

#include "api/api.hpp"
#include "metrics/metrics.hpp"
#include "node/context.hpp"
#include "stream/endpoint.hpp"
#include "uploads/endpoint.hpp"

#include <array>
#include <string_view>

namespace sg::server {

namespace {

// The route label of streamgate_http_requests_total: a fixed set, so the series are bounded and
// all exist from the start. A route takes the name of the first path here that it serves; a
// route serving none of them, and a request no route takes, count as "other".
struct RouteName {
  std::string_view name;
  std::string_view path;
};
constexpr RouteName kRouteNames[] = {
    {"publish", "/v2/realtime/publish"},
    {"stream", "/v2/realtime/stream"},
    {"sse", "/v2/realtime/sse"},
    {"metrics_api", "/v2/realtime/metrics"},
    {"presence", "/v2/realtime/presence"},
    {"rooms", "/v2/realtime/rooms/r/online"},
    {"upload_socket", "/v2/realtime/upload"},
    {"upload_status", "/v2/realtime/uploads/u"},
    {"tus", "/v2/uploads"},
    {"disconnect", "/v2/realtime/disconnect"},
    {"revoke", "/v2/realtime/revoke"},
    {"history", "/v2/realtime/history"},
    {"channels", "/v2/realtime/channels"},
    {"connections", "/v2/realtime/connections"},
    {"org_limits", "/v2/realtime/orgs/o/limits"},
    {"usage", "/v2/realtime/usage"},
    {"metrics", "/metrics"},
    {"healthz", "/healthz"},
    {"readyz", "/readyz"},
    {"admin", "/admin"},
    {"admin_stats", "/admin/stats"},
};

std::array<metrics::Counter*, 4> answer_counters(metrics::Registry& registry,
                                                 std::string_view route) {
  constexpr std::string_view kClasses[] = {"2xx", "3xx", "4xx", "5xx"};
  std::array<metrics::Counter*, 4> out{};
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = &registry.counter("streamgate_http_requests_total",
                               "HTTP requests answered, by route and status class",
                               {{"route", std::string(route)}, {"code", std::string(kClasses[i])}});
  }
  return out;
}

void count_answers(net::HttpRoutes& routes, metrics::Registry& registry) {
  for (net::HttpRoute& route : routes.routes) {
    std::string_view name = "other";
    for (const RouteName& candidate : kRouteNames) {
      if (route.matches(candidate.path)) {
        name = candidate.name;
        break;
      }
    }
    route.answers = answer_counters(registry, name);
  }
  routes.unrouted_answers = answer_counters(registry, "other");
}

net::HttpRoutes base_routes(node::Context& ctx) {
  net::HttpRoutes routes;
  routes.max_header_bytes = ctx.settings.max_http_header_bytes;
  routes.max_body_bytes = ctx.settings.max_publish_bytes;
  routes.idle_timeout = std::chrono::milliseconds(ctx.settings.http_idle_timeout_ms);
  routes.draining = &ctx.draining;
  routes.in_flight = &ctx.http_in_flight;
  routes.not_found = [](const net::HttpRequest&, net::Reply reply) {
    reply(net::json_error(404, "not_found", "no such endpoint"));
  };
  return routes;
}

}  // namespace

net::HttpRoutes build_routes(node::Context& ctx) {
  net::HttpRoutes routes = base_routes(ctx);
  api::add_routes(routes, ctx);
  stream::add_routes(routes, ctx);
  uploads::add_routes(routes, ctx);
  api::add_health_routes(routes, ctx);
  // With an admin listener, the operators' pages live there only.
  if (ctx.settings.admin_listen.empty()) api::add_operator_routes(routes, ctx, true);
  count_answers(routes, ctx.registry);
  return routes;
}

net::HttpRoutes build_admin_routes(node::Context& ctx) {
  net::HttpRoutes routes = base_routes(ctx);
  api::add_operator_routes(routes, ctx, false);
  api::add_health_routes(routes, ctx);
  count_answers(routes, ctx.registry);
  return routes;
}

}  // namespace sg::server
