// tus: the tus 1.0 resumable-upload endpoint at /v2/uploads/ (core protocol plus creation,
// termination, expiration and checksum), for standard clients such as tus-js-client. Every
// upload goes through the shared upload::Manager, so tus and the WebSocket path share storage,
// limits, progress and `uploads` events. Called on a worker thread; answers from any thread.
#pragma once

#include "net/body_sink.hpp"
#include "net/http_types.hpp"
#include "uploads/endpoint.hpp"

#include <string_view>

namespace sg::uploads {

namespace tus {

// True for /v2/uploads, /v2/uploads/ and /v2/uploads/<anything>.
bool is_tus_path(std::string_view path);

// True for the one request whose body is streamed rather than read whole: PATCH on an upload.
bool streams_body(const HttpRequest& req);

// OPTIONS (discovery and CORS preflight; no token), POST (creation), HEAD (offset), DELETE
// (termination); 405 for other methods. PATCH never comes here.
void handle(Context& ctx, const HttpRequest& req, Reply reply);

// PATCH: checks token, Tus-Resumable, Content-Type, Upload-Offset and Upload-Checksum against
// the upload before any body byte is read; then either answers or hands over a sink that
// appends the body through the Manager. Reads everything it needs from `req` before returning.
void begin_patch(Context& ctx, const HttpRequest& req, net::Decide decide);

}  // namespace tus
}  // namespace sg::uploads
