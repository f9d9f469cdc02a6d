// api: the HTTP API besides the WebSockets and uploads — publish (producers, API key), metrics
// and presence across the cluster (cluster_api.hpp), chat rooms' online and stats endpoints
// (chat_api.hpp), Prometheus text and the health probes. Handlers take plain requests and
// answer through `reply`, which may run on another thread (a broker answers from its own).
// add_routes() is called once by the server while it builds the route table; `ctx` outlives it.
#pragma once

#include "net/http_routes.hpp"
#include "net/http_types.hpp"

namespace sg::node {
struct Context;
}

namespace sg::api {

using net::HttpRequest;
using net::HttpResponse;
using net::json_error;
using net::json_ok;
using net::Reply;
using node::Context;

void add_routes(net::HttpRoutes& routes, Context& ctx);

}  // namespace sg::api
