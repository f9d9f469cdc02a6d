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

// The API: publish, the metrics JSON, presence, rooms.
void add_routes(net::HttpRoutes& routes, Context& ctx);
// The probes /healthz and /readyz: on the public port always, and on the admin listener.
void add_health_routes(net::HttpRoutes& routes, Context& ctx);
// Operators' pages (admin_api.cpp): /metrics (Prometheus text), /admin (the admin page) and
// /admin/stats (its JSON). `api_key`: on the public port, /admin and /admin/stats ask for an
// API key (Bearer, or Basic with the key as password, which a browser prompts for); the admin
// listener asks for none. /metrics never asks, as before.
void add_operator_routes(net::HttpRoutes& routes, Context& ctx, bool api_key);
// Registers what the operators' routes and the dashboards read besides the modules' own
// metrics: build info, process_*, broker state, uploads in progress, chat rooms. Once.
void register_node_metrics(Context& ctx);

// Adds a route answering `method` (GET also answers HEAD); any other gets 405 with Allow.
void add_route(net::HttpRoutes& routes, std::function<bool(std::string_view)> matches,
               std::string_view method, std::function<void(const HttpRequest&, Reply)> handler);

}  // namespace sg::api
