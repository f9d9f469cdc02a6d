// The decision on a request that opens a long-lived connection (a WebSocket upgrade, an event
// stream): who is asking (token), from where (Origin), whether the transport's own checks pass
// (for a WebSocket, the RFC 6455 handshake), and whether this user may open another
// connection. Pure apart from counting the admitted connection in the hub.
#pragma once

#include "auth/auth.hpp"
#include "net/http_routes.hpp"
#include "net/http_types.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <functional>

#include <optional>
#include <string>

namespace sg::node {

struct Context;

struct UpgradeDecision {
  std::optional<net::HttpResponse> reject;  // set: answer this and don't upgrade
  auth::Principal principal;                // else: who connected (admitted in the hub)
  std::string response;                     // else: the raw "101 Switching Protocols" response
};

// A transport's own checks on a request whose token and Origin passed, before it is admitted:
// a response refuses it.
using TransportCheck = std::function<std::optional<net::HttpResponse>(
    const net::HttpRequest& req, const auth::Principal& principal)>;

// In order: not draining (503), token (401), Origin (403), `check`, the connection limits (429,
// 503). Admitted: `principal` is counted in the hub and `response` is empty.
UpgradeDecision decide_connection(Context& ctx, const net::HttpRequest& req,
                                  const TransportCheck& check);
// decide_connection with the RFC 6455 handshake as the check; `response` is the 101.
UpgradeDecision decide_upgrade(Context& ctx, const net::HttpRequest& req);

// Starts a WebSocket endpoint's connection on `worker` for an admitted `principal`: `response`
// is the 101 to send first, `leftover` what the client sent after its request.
using OpenConnection =
    std::function<void(net::Worker& worker, boost::asio::ip::tcp::socket socket,
                       auth::Principal principal, std::string response, std::string leftover)>;
// A WebSocket route's handler: decide_upgrade, then `open` takes the connection over.
std::function<net::Upgrade(const net::HttpRequest&)> upgrade_route(Context& ctx,
                                                                   OpenConnection open);

}  // namespace sg::node
