// The decision on a WebSocket upgrade request: who is asking (token), from where (Origin),
// whether it is a valid RFC 6455 handshake, and whether this user may open another
// connection. Pure apart from counting the admitted connection in the hub.
#pragma once

#include "auth/auth.hpp"
#include "server/http_types.hpp"

#include <optional>
#include <string>

namespace sg::server {

struct Context;

struct UpgradeDecision {
  std::optional<HttpResponse> reject;  // set: answer this and don't upgrade
  auth::Principal principal;           // else: who connected (admitted in the hub)
  std::string response;                // else: the raw "101 Switching Protocols" response
};

UpgradeDecision decide_upgrade(Context& ctx, const HttpRequest& req);

// The access_token query parameter, percent-decoded; empty when absent or undecodable.
std::string query_token(std::string_view query);
// Any query parameter, the same way; the first one named `name` wins.
std::string query_param(std::string_view query, std::string_view name);

}  // namespace sg::server
