// UploadSession: one browser's upload WebSocket (/v2/realtime/upload) on one worker. Speaks
// RFC 6455 through ws_codec; a JSON "start" or "resume" message names the upload, binary
// messages carry its bytes, which go to the upload manager one message at a time (no read while
// a write to disk is pending: backpressure to the client through TCP). Sends ready, progress,
// complete and error messages (docs/protocol.md). Worker thread only.
#pragma once

#include "auth/auth.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <string>

namespace sg::server {

class Worker;

// Takes over `socket` after decide_upgrade admitted it: sends the 101 response and runs the
// session. `leftover` holds bytes the client sent after the upgrade request.
void start_upload_session(Worker& worker, boost::asio::ip::tcp::socket socket,
                          auth::Principal principal, std::string upgrade_response,
                          std::string leftover);

}  // namespace sg::server
