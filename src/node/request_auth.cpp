#include "node/request_auth.hpp"

#include "log/log.hpp"
#include "node/context.hpp"

namespace sg::node {

std::string request_token(const HttpRequest& req) {
  // The header wins: a client that can set it chose it on purpose (browsers can't set headers
  // on a WebSocket, the only reason for the query form), and a token left in a URL is the one
  // more likely stale.
  const std::string_view bearer = auth::bearer_token(req.authorization);
  if (!bearer.empty()) return std::string(bearer);
  return net::query_param(req.query, "access_token");
}

Result<auth::Principal> accept_token(Context& ctx, std::string_view token,
                                     std::chrono::system_clock::time_point now) {
  auto principal = ctx.verifier->verify(token, now);
  if (!principal) return principal;
  // A node-local table (fed by the control channel), so a connect costs no broker round trip.
  if (ctx.hub != nullptr &&
      ctx.hub->revocations().revoked(principal->org, principal->user, principal->issued_at, now)) {
    return make_error_code(auth::AuthError::kRevoked);
  }
  return principal;
}

UserAuth authenticate_user(Context& ctx, const HttpRequest& req) {
  UserAuth result;
  auto fail = [&](std::string_view code, std::string message) {
    ctx.metrics->count_auth_failure(code);
    result.reject = json_error(401, code, message);
    result.reject->headers.emplace_back("WWW-Authenticate", "Bearer");
    return result;
  };
  const std::string token = request_token(req);
  if (token.empty()) {
    return fail("missing_token",
                "send the token as an Authorization: Bearer header or the access_token query "
                "parameter");
  }
  auto principal = accept_token(ctx, token, core::WallClock::now());
  if (!principal) {
    const std::string reason = core::reason(principal.error());
    log::info("auth", "request rejected", {{"reason", reason}, {"path", req.path}});
    return fail(reason, "the access token was rejected: " + reason);
  }
  result.principal = std::move(*principal);
  return result;
}

}  // namespace sg::node
