// The node's route table: every endpoint module adds its routes, in the order they are tried
// (the publish API first: it is the hot path), and what no route matches gets a JSON 404. Also
// the limits and node state the HTTP sessions apply to every request. Built once by the Server
// before the workers start.
#pragma once

#include "net/http_routes.hpp"

namespace sg::node {
struct Context;
}

namespace sg::server {

net::HttpRoutes build_routes(node::Context& ctx);

}  // namespace sg::server
