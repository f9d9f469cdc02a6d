// CORS for the HTTP endpoints a page calls with its user's token (presence, the room lists,
// upload progress): the stream's Origin policy (--allowed-origins) applied to them, the
// Access-Control-Allow-Origin that lets a page on another origin read an answer, and the
// preflight a browser sends first because the request carries Authorization. A wrapper is built
// once per route before the workers start and holds no state; the handler it wraps keeps
// answering from any thread.
#pragma once

#include "net/http_types.hpp"

#include <functional>

namespace sg::node {

struct Context;

using Handler = std::function<void(const net::HttpRequest&, net::Reply)>;

// `handler` with CORS around it. A request whose Origin the policy refuses gets 403
// origin_not_allowed and never reaches `handler`; an OPTIONS preflight is answered here (204);
// every other answer to a request with an allowed Origin carries Access-Control-Allow-Origin
// and Vary: Origin. Requests without an Origin (not browsers) pass through untouched.
Handler with_browser_cors(Context& ctx, Handler handler);

}  // namespace sg::node
