// uploads: everything a client uses to upload a document. The upload WebSocket
// (/v2/realtime/upload, UploadSession on net::WsConnection), the tus 1.0 endpoint (/v2/uploads/,
// tus.hpp), the status endpoint (GET /v2/realtime/uploads/{id}) and the progress events on the
// uploader's `uploads` service (upload_events.hpp); all of them over the one upload::Manager.
// add_routes() is called once by the server while it builds the route table, only when uploads
// are enabled; `ctx` outlives the table.
#pragma once

#include "net/http_routes.hpp"
#include "net/http_types.hpp"

namespace sg::node {
struct Context;
}

namespace sg::uploads {

using net::HttpRequest;
using net::HttpResponse;
using net::json_error;
using net::Reply;
using node::Context;

inline constexpr std::string_view kUploadSocketPath = "/v2/realtime/upload";

void add_routes(net::HttpRoutes& routes, Context& ctx);

}  // namespace sg::uploads
