// The producer control API (docs/protocol.md#producer-api), all with the API key: cut users
// off on every node (disconnect, revoke) and read what the cluster holds (a channel's history,
// an org's channels, a user's connections). Called from the router in api.cpp; answers may
// come from the broker's thread or a worker's.
#pragma once

#include "api/api.hpp"

#include <string_view>

namespace sg::api {

inline constexpr std::string_view kDisconnectPath = "/v2/realtime/disconnect";
inline constexpr std::string_view kRevokePath = "/v2/realtime/revoke";
inline constexpr std::string_view kHistoryPath = "/v2/realtime/history";
inline constexpr std::string_view kChannelsPath = "/v2/realtime/channels";
inline constexpr std::string_view kConnectionsPath = "/v2/realtime/connections";

// Installs this node's control handler and revocation sink on the broker: what other nodes'
// disconnects, revocations and questions do here. Once, after ctx.hub is set; the server
// clears both before it goes away.
void start_control(Context& ctx);

// Any of the five paths above (API key first, then the path's own checks).
void handle_control_api(Context& ctx, std::string_view path, const HttpRequest& req, Reply reply);

}  // namespace sg::api
