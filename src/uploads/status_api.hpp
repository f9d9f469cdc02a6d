// The upload progress API: GET /v2/realtime/uploads/{id} with the uploader's token (Bearer or
// access_token) → the upload's status as JSON. Any other user, in the same org or not, gets the
// same 404 as for an unknown id.
#pragma once

#include "uploads/endpoint.hpp"

namespace sg::uploads {

inline constexpr std::string_view kUploadsPath = "/v2/realtime/uploads/";

// `req.path` starts with kUploadsPath; the route's CORS wrapper (node/browser_cors.hpp) has
// already applied the Origin policy. `reply` may run on the upload manager's thread.
void handle_upload_status(Context& ctx, const HttpRequest& req, Reply reply);

}  // namespace sg::uploads
