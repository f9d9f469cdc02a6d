// The upload WebSocket (/v2/realtime/upload): one browser's upload on a net::WsConnection. A
// JSON "start" or "resume" message names the upload, binary messages carry its bytes, which go
// to the upload manager one message at a time (no read while a write to disk is pending:
// backpressure to the client through TCP). Sends ready, progress, complete and error messages
// (docs/protocol.md). Worker thread only.
#pragma once

#include "auth/auth.hpp"
#include "uploads/endpoint.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <string>

namespace sg::net {
class Worker;
}

namespace sg::uploads {

// Takes over `socket` after the upgrade decision admitted it: sends the 101 response and runs
// the session.
void start_upload_session(net::Worker& worker, boost::asio::ip::tcp::socket socket, Context& ctx,
                          auth::Principal principal, std::string upgrade_response,
                          std::string leftover);

}  // namespace sg::uploads
