// Who is asking, for HTTP endpoints that users call with their own token (presence, and what
// later modules add): the JWT from `Authorization: Bearer` or the access_token query parameter,
// checked by the same verifier as the stream. Failures are the stream's 401 JSON answers.
#pragma once

#include "auth/auth.hpp"
#include "server/http_types.hpp"

#include <optional>

namespace sg::server {

struct Context;

struct UserAuth {
  std::optional<HttpResponse> reject;  // set: answer this
  auth::Principal principal;           // else: the caller
};

UserAuth authenticate_user(Context& ctx, const HttpRequest& req);

}  // namespace sg::server
