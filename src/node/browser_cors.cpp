#include "node/browser_cors.hpp"

#include "node/context.hpp"

#include <optional>
#include <string>
#include <utility>

namespace sg::node {

namespace {

// A day: browsers cap it lower (Chromium at 2 hours), so this only says "as long as you keep it".
constexpr std::string_view kPreflightMaxAge = "86400";

void allow_origin(net::HttpResponse& r, std::string_view origin) {
  r.headers.emplace_back("Access-Control-Allow-Origin", std::string(origin));
  r.headers.emplace_back("Vary", "Origin");
  // A 429 or 503 says when to come back; without this a page could not read it.
  r.headers.emplace_back("Access-Control-Expose-Headers", "Retry-After");
}

net::HttpResponse preflight(std::string_view origin) {
  net::HttpResponse r;
  r.status = 204;
  allow_origin(r, origin);
  r.headers.emplace_back("Access-Control-Allow-Methods", "GET, HEAD");
  r.headers.emplace_back("Access-Control-Allow-Headers", "Authorization");
  r.headers.emplace_back("Access-Control-Max-Age", std::string(kPreflightMaxAge));
  return r;
}

}  // namespace

Handler with_browser_cors(Context& ctx, Handler handler) {
  return [&ctx, handler = std::move(handler)](const net::HttpRequest& req, net::Reply reply) {
    if (!req.has_origin) {
      if (req.method == "OPTIONS") {
        net::HttpResponse r;
        r.status = 204;
        r.headers.emplace_back("Allow", "GET, HEAD, OPTIONS");
        return reply(std::move(r));
      }
      return handler(req, std::move(reply));
    }
    if (!ctx.origins.allows(std::optional(req.origin))) {
      ctx.metrics->count_auth_failure("origin_not_allowed");
      return reply(net::json_error(403, "origin_not_allowed", "this Origin may not use the API"));
    }
    if (req.method == "OPTIONS") return reply(preflight(req.origin));
    handler(req, [origin = std::string(req.origin),
                  reply = std::move(reply)](net::HttpResponse r) mutable {
      allow_origin(r, origin);
      reply(std::move(r));
    });
  };
}

}  // namespace sg::node
