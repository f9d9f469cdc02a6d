// The stream's place in the route table: GET /v2/realtime/stream upgrades, after the node's
// upgrade decision (token, Origin, RFC 6455 handshake, connection limits), to a StreamSession
// on the worker that accepted the connection. Called once by the server while it builds the
// table; `ctx` outlives the table.
#pragma once

#include "net/http_routes.hpp"

namespace sg::node {
struct Context;
}

namespace sg::stream {

inline constexpr std::string_view kStreamPath = "/v2/realtime/stream";

void add_routes(net::HttpRoutes& routes, node::Context& ctx);

}  // namespace sg::stream
