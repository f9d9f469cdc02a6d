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

Result<auth::Principal> accept_token(Context& ctx, std::string_view token) {
  const auto now = core::WallClock::now();
  auto principal = ctx.verifier->verify(token, now);
  if (!principal) return principal;
  // A node-local table (fed by the control channel), so a connect costs no broker round trip.
  if (ctx.hub != nullptr &&
      ctx.hub->revocations().revoked(principal->org, principal->user, principal->issued_at, now)) {
    return make_error_code(auth::AuthError::kRevoked);
  }
  return principal;
}

RefreshVerdict check_refresh(Context& ctx, const auth::Principal& current, std::string_view token,
                             std::string_view connection_id) {
  RefreshVerdict verdict;
  auto principal = accept_token(ctx, token);
  if (!principal) {
    verdict.reason = core::reason(principal.error());
    ctx.metrics->count_auth_failure(verdict.reason);
    log::info("auth", "refresh rejected",
              {{"conn", connection_id}, {"org", current.org}, {"reason", verdict.reason}});
    return verdict;
  }
  // A connection belongs to one user of one org for its whole life: its hub admission, presence
  // and channels are theirs. Another user's token is a client bug or an attack, not a refresh.
  if (principal->org != current.org || principal->user != current.user) {
    verdict.kind = RefreshVerdict::Kind::kMismatch;
    ctx.metrics->count_auth_failure("refresh_mismatch");
    log::warn("auth", "refresh names another user or org",
              {{"conn", connection_id}, {"org", current.org}, {"user", current.user}});
    return verdict;
  }
  verdict.kind = RefreshVerdict::Kind::kAccepted;
  verdict.principal = std::move(*principal);
  return verdict;
}

bool expiry_notice_due(const Context& ctx, const auth::Principal& principal,
                       std::chrono::system_clock::time_point now) {
  const std::chrono::seconds notice(ctx.settings.token_refresh_notice_seconds);
  return notice.count() > 0 && now >= principal.expiry - notice;
}

std::optional<net::HttpResponse> check_api_key(Context& ctx, const net::HttpRequest& req) {
  if (auth::api_key_matches(auth::bearer_token(req.authorization), ctx.settings.api_keys)) {
    return std::nullopt;
  }
  ctx.metrics->count_auth_failure("invalid_api_key");
  auto r = net::json_error(401, "invalid_api_key", "send a valid API key as Authorization: Bearer");
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
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
  auto principal = accept_token(ctx, token);
  if (!principal) {
    const std::string reason = core::reason(principal.error());
    log::info("auth", "request rejected", {{"reason", reason}, {"path", req.path}});
    return fail(reason, "the access token was rejected: " + reason);
  }
  result.principal = std::move(*principal);
  return result;
}

}  // namespace sg::node
