// The node's route table: every endpoint module adds its routes, in the order they are tried
// (the publish API first: it is the hot path), and what no route matches gets a JSON 404. Also
// the limits and node state the HTTP sessions apply to every request, and the counters of
// answers by route and status class. Built once by the Server before the workers start.
#pragma once

#include "net/http_routes.hpp"

namespace sg::node {
struct Context;
}

namespace sg::server {

net::HttpRoutes build_routes(node::Context& ctx);
// The --admin-listen listener's table: /metrics, /admin, /admin/stats and the probes, with the
// same limits and node state, and no API key asked (the listener is the operators' own).
net::HttpRoutes build_admin_routes(node::Context& ctx);

}  // namespace sg::server
