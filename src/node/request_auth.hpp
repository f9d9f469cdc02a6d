// Who is asking, for HTTP endpoints that users call with their own token (presence, and what
// later modules add): the JWT from `Authorization: Bearer` or the access_token query parameter
// (request_token, which the stream's upgrade uses too), checked by the same verifier as the
// stream. Failures are the stream's 401 JSON answers.
#pragma once

#include "auth/auth.hpp"
#include "net/http_types.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace sg::node {

struct Context;

struct UserAuth {
  std::optional<net::HttpResponse> reject;  // set: answer this
  auth::Principal principal;                // else: the caller
};

UserAuth authenticate_user(Context& ctx, const net::HttpRequest& req);

// The one gate every user token passes, wherever it arrives (stream and upload upgrades, REST,
// in-band refresh): the verifier, then the producers' revocations (auth::AuthError::kRevoked).
// Any thread.
Result<auth::Principal> accept_token(Context& ctx, std::string_view token,
                                     std::chrono::system_clock::time_point now);

// The user's token, with one precedence for every endpoint (stream and upload upgrades, REST):
// the `Authorization: Bearer` header when it carries a token, else the access_token query
// parameter. A header that is not Bearer is no token. Empty when neither has one.
std::string request_token(const net::HttpRequest& req);

}  // namespace sg::node
