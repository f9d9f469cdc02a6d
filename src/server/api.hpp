// The HTTP API besides the stream: publish (producers, API key), metrics (operators, API key),
// Prometheus text and health probes. Handlers take plain requests and answer through `reply`,
// which may run on another thread (a broker answers from its own); the caller re-posts.
#pragma once

#include "server/http_types.hpp"

#include <functional>

namespace sg::server {

struct Context;

using Reply = std::function<void(HttpResponse)>;

// Routes every request that is not a WebSocket upgrade. Unknown paths get 404, known paths
// with the wrong method 405.
void handle_http(Context& ctx, const HttpRequest& req, Reply reply);

}  // namespace sg::server
