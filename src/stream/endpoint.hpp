// stream: the event stream a client keeps open — GET /v2/realtime/stream upgrades, after the
// node's upgrade decision (token, Origin, RFC 6455 handshake, connection limits), to a
// StreamSession (stream_session.hpp: subscriptions, events, resume, and chat through
// chat_conn.hpp) on the worker that accepted the connection, where it lives until it closes.
// GET /v2/realtime/sse serves the same events to clients that can't open a WebSocket, as
// Server-Sent Events (sse_connection.hpp), after the same checks minus the RFC 6455 handshake.
// add_routes() is called once by the server while it builds the route table; `ctx` outlives
// the table.
#pragma once

#include "net/http_routes.hpp"

namespace sg::node {
struct Context;
}

namespace sg::stream {

inline constexpr std::string_view kStreamPath = "/v2/realtime/stream";
inline constexpr std::string_view kSsePath = "/v2/realtime/sse";

void add_routes(net::HttpRoutes& routes, node::Context& ctx);

}  // namespace sg::stream
