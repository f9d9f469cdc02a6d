// The decision on a WebSocket upgrade request: who is asking (token), from where (Origin),
// whether it is a valid RFC 6455 handshake, and whether this user may open another
// connection. Pure apart from counting the admitted connection in the hub.
#pragma once

#include "auth/auth.hpp"
#include "net/http_types.hpp"

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

}  // namespace sg::node
