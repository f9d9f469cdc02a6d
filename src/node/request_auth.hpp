// Who is asking. For HTTP endpoints that users call with their own token (presence, and what
// later modules add): the JWT from `Authorization: Bearer` or the access_token query parameter
// (request_token, which the stream's upgrade uses too), checked by the same verifier as the
// stream; failures are the stream's 401 JSON answers. For the producer and operator API: the
// API key (check_api_key), one refusal for all of it.
#pragma once

#include "auth/auth.hpp"
#include "net/http_types.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sg::node {

struct Context;

struct UserAuth {
  std::optional<net::HttpResponse> reject;  // set: answer this
  auth::Principal principal;                // else: the caller
};

UserAuth authenticate_user(Context& ctx, const net::HttpRequest& req);

// The gate of the producer and operator API: an API key (--api-key) as `Authorization: Bearer`.
// Nothing when it matches; else the answer to give, 401 invalid_api_key with
// `WWW-Authenticate: Bearer`, the refusal counted. Any thread.
std::optional<net::HttpResponse> check_api_key(Context& ctx, const net::HttpRequest& req);

// The one acceptance check of a user's token, wherever it is presented: the stream and upload
// upgrades, REST endpoints (authenticate_user) and in-band refresh on an open socket. A check
// added here applies to all of them: the verifier, then the producers' revocations
// (auth::AuthError::kRevoked, from a node-local table). The error is auth's (core::reason gives
// its name). Never throws; any thread.
Result<auth::Principal> accept_token(Context& ctx, std::string_view token);

// In-band refresh on an open socket ({"type":"refresh","token":…}; docs/protocol.md): the new
// token goes through accept_token and must name the connection's user and org. Logs and counts
// a refusal (never with the token). The socket applies the verdict: kAccepted takes `principal`
// (new expiry and claims), kRejected keeps the old token and answers an error frame named
// `reason`, kMismatch closes with 4001 refresh_mismatch.
struct RefreshVerdict {
  enum class Kind { kAccepted, kRejected, kMismatch };
  Kind kind = Kind::kRejected;
  auth::Principal principal;  // kAccepted: the new token's
  std::string reason;         // kRejected: the auth error's name ("bad_signature", …)
};
RefreshVerdict check_refresh(Context& ctx, const auth::Principal& current, std::string_view token,
                             std::string_view connection_id);

// True when the `expiring` notice for `principal`'s token is due at `now`:
// --token-refresh-notice seconds before exp, whatever --jwt-leeway (0 = never).
bool expiry_notice_due(const Context& ctx, const auth::Principal& principal,
                       std::chrono::system_clock::time_point now);

// The user's token, with one precedence for every endpoint (stream and upload upgrades, REST):
// the `Authorization: Bearer` header when it carries a token, else the access_token query
// parameter. A header that is not Bearer is no token. Empty when neither has one.
std::string request_token(const net::HttpRequest& req);

}  // namespace sg::node
