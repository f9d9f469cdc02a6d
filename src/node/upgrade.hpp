// The decision on a WebSocket upgrade request: who is asking (token), from where (Origin),
// whether it is a valid RFC 6455 handshake, and whether this user may open another
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
