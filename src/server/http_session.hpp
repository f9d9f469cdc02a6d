// HttpSession: one accepted TCP connection while it speaks HTTP/1.1 (keep-alive, several
// requests). Hands the socket to a WsSession when /v2/realtime/stream upgrades. Worker thread only.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <memory>

namespace sg::server {

class Worker;

// Starts serving `socket` (already on `worker`'s io_context). Lifetime is managed internally.
void serve_http(Worker& worker, boost::asio::ip::tcp::socket socket);

}  // namespace sg::server
