#include "node/upgrade.hpp"

#include "core/core.hpp"
#include "log/log.hpp"
#include "net/ws_codec.hpp"
#include "node/context.hpp"
#include "node/quota.hpp"
#include "node/request_auth.hpp"

namespace sg::node {

namespace {

// What a refused upgrade on a draining node tells the client to wait: long enough for the
// balancer to have seen /readyz turn 503, short enough that the client is back before long.
constexpr int kDrainingRetryAfterSeconds = 1;
// A connection quota frees up when one of the org's connections closes, which nobody can
// predict; a few seconds keeps a reconnecting client's retries from hammering the node.
constexpr std::int64_t kQuotaRetryAfterSeconds = 5;

// True when the comma-separated header value lists `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    if (core::iequals(core::trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

UpgradeDecision decide_connection(Context& ctx, const HttpRequest& req,
                                  const TransportCheck& check) {
  UpgradeDecision d;
  auto fail = [&](unsigned status, std::string_view code, std::string_view message) {
    ctx.metrics->count_auth_failure(code);
    d.reject = json_error(status, code, message);
    // RFC 9110 §15.5.2: a 401 names the scheme that would be accepted.
    if (status == 401) d.reject->headers.emplace_back("WWW-Authenticate", "Bearer");
    return d;
  };

  if (ctx.draining.load()) {
    // Checked before the token: a draining node has nothing to offer, whoever asks. The
    // connection closes after the answer so the client's retry goes through the balancer.
    d.reject = json_error(503, "shutting_down", "this node is draining; connect to another node");
    d.reject->headers.emplace_back("Retry-After", std::to_string(kDrainingRetryAfterSeconds));
    d.reject->close = true;
    return d;
  }

  const std::string token = request_token(req);
  if (token.empty()) {
    return fail(401, "missing_token",
                "send the token as an Authorization: Bearer header or the access_token query "
                "parameter");
  }
  auto principal = accept_token(ctx, token);
  if (!principal) {
    const std::string reason = core::reason(principal.error());
    log::info("auth", "connection rejected", {{"reason", reason}, {"path", req.path}});
    return fail(401, reason, "the access token was rejected: " + reason);
  }
  if (!ctx.origins.allows(req.has_origin ? std::optional(req.origin) : std::nullopt)) {
    log::info("auth", "origin rejected", {{"origin", req.origin}, {"org", principal->org}});
    return fail(403, "origin_not_allowed", "this Origin may not connect");
  }

  if (auto refused = check(req, *principal)) {
    d.reject = std::move(refused);
    return d;
  }

  const std::uint64_t org_max = ctx.quotas->limit(principal->org, tenancy::Quota::kMaxConnections);
  // With Redis the quota spans the cluster: what the other nodes hold leaves this one the rest.
  const std::uint64_t remote = org_max == 0 ? 0 : ctx.quotas->remote_connections(principal->org);
  const auto admission =
      org_max != 0 && remote >= org_max
          ? hub::Hub::Admission::kOrgLimit
          : ctx.hub->admit(principal->org, principal->user, org_max == 0 ? 0 : org_max - remote);
  switch (admission) {
    case hub::Hub::Admission::kAdmitted:
      break;
    case hub::Hub::Admission::kOrgLimit:
      log::warn("stream", "org connection quota hit",
                {{"org", principal->org}, {"limit", org_max}});
      d.reject = quota_exceeded(ctx, tenancy::Quota::kMaxConnections, kQuotaRetryAfterSeconds);
      return d;
    case hub::Hub::Admission::kUserLimit:
      log::warn("stream", "connection limit hit",
                {{"org", principal->org},
                 {"user", principal->user},
                 {"limit", ctx.settings.max_connections_per_user}});
      return fail(429, "too_many_connections",
                  "this user has too many open connections (--max-connections-per-user)");
    case hub::Hub::Admission::kNodeLimit:
      log::warn("stream", "node connection limit hit", {{"limit", ctx.settings.max_connections}});
      d.reject = json_error(503, "server_full", "this node is at --max-connections");
      return d;
  }

  d.principal = std::move(*principal);
  return d;
}

UpgradeDecision decide_upgrade(Context& ctx, const HttpRequest& req) {
  UpgradeDecision d = decide_connection(
      ctx, req, [](const HttpRequest& r, const auth::Principal&) -> std::optional<HttpResponse> {
        if (!has_token(r.upgrade, "websocket") || !has_token(r.connection, "upgrade") ||
            r.method != "GET") {
          auto refused = json_error(426, "upgrade_required", "this endpoint is a WebSocket");
          refused.headers.emplace_back("Upgrade", "websocket");
          return refused;
        }
        if (r.ws_version != "13") {
          auto refused =
              json_error(426, "unsupported_websocket_version", "use WebSocket version 13");
          refused.headers.emplace_back("Sec-WebSocket-Version", "13");
          return refused;
        }
        // The key must be 16 random bytes in standard base64 (RFC 6455 §4.1): 24 characters.
        if (std::string key; !core::base64_decode(r.ws_key, key) || key.size() != 16) {
          return json_error(400, "bad_websocket_key", "Sec-WebSocket-Key must be 16 bytes base64");
        }
        return std::nullopt;
      });
  if (d.reject) return d;
  d.response =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      net::ws::accept_key(req.ws_key) + "\r\n\r\n";
  return d;
}

std::function<net::Upgrade(const net::HttpRequest&)> upgrade_route(Context& ctx,
                                                                   OpenConnection open) {
  return [&ctx, open = std::move(open)](const net::HttpRequest& req) {
    UpgradeDecision decision = decide_upgrade(ctx, req);
    net::Upgrade upgrade;
    if (decision.reject) {
      upgrade.reject = std::move(decision.reject);
      return upgrade;
    }
    upgrade.accept = [open, principal = std::move(decision.principal),
                      response = std::move(decision.response)](net::Worker& worker,
                                                               boost::asio::ip::tcp::socket socket,
                                                               std::string leftover) mutable {
      open(worker, std::move(socket), std::move(principal), std::move(response),
           std::move(leftover));
    };
    return upgrade;
  };
}

}  // namespace sg::node
