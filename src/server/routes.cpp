#include "server/routes.hpp"

#include "api/api.hpp"
#include "node/context.hpp"
#include "stream/endpoint.hpp"
#include "uploads/endpoint.hpp"

namespace sg::server {

net::HttpRoutes build_routes(node::Context& ctx) {
  net::HttpRoutes routes;
  routes.max_header_bytes = ctx.settings.max_http_header_bytes;
  routes.max_body_bytes = ctx.settings.max_publish_bytes;
  routes.draining = &ctx.draining;
  routes.in_flight = &ctx.http_in_flight;
  routes.requests = &ctx.metrics->http_requests;
  api::add_routes(routes, ctx);
  stream::add_routes(routes, ctx);
  uploads::add_routes(routes, ctx);
  routes.not_found = [](const net::HttpRequest&, net::Reply reply) {
    reply(net::json_error(404, "not_found", "no such endpoint"));
  };
  return routes;
}

}  // namespace sg::server
