// HttpSession: one accepted TCP connection while it speaks HTTP/1.1 (keep-alive, several
// requests): strict framing (http_framing), bounded heads and bodies, a deadline for each
// request and answer (HttpRoutes::idle_timeout), lingering close. Each request goes where the
// route table says; a WebSocket route takes the socket over. Worker thread only.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <memory>

namespace sg::net {

class Worker;
struct HttpRoutes;

// Starts serving `socket` (already on `worker`'s io_context). Lifetime is managed internally;
// `routes` outlives every session.
void serve_http(Worker& worker, boost::asio::ip::tcp::socket socket, const HttpRoutes& routes);

}  // namespace sg::net
