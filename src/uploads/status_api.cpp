#include "uploads/status_api.hpp"

#include "core/core.hpp"
#include "node/context.hpp"
#include "node/request_auth.hpp"
#include "uploads/upload_events.hpp"

namespace sg::uploads {

void handle_upload_status(Context& ctx, const HttpRequest& req, Reply reply) {
  if (!ctx.uploads) return reply(json_error(404, "not_found", "no such endpoint"));
  if (req.method != "GET" && req.method != "HEAD") {
    auto r = json_error(405, "method_not_allowed", "use GET");
    r.headers.emplace_back("Allow", "GET");
    return reply(std::move(r));
  }
  node::UserAuth who = node::authenticate_user(ctx, req);
  if (who.reject) return reply(std::move(*who.reject));
  const auth::Principal& principal = who.principal;
  const std::string_view id = req.path.substr(kUploadsPath.size());
  // Ids are 32 hex characters; anything else can't name an upload.
  if (id.empty() || id.size() > 64 || id.find('/') != std::string_view::npos) {
    return reply(json_error(404, "not_found", "no such upload"));
  }
  ctx.uploads->find(upload::Owner{principal.org, principal.user}, std::string(id),
                    [reply = std::move(reply)](Result<upload::UploadInfo> r) {
                      if (!r) {
                        if (r.error() == upload::UploadError::kShuttingDown) {
                          return reply(json_error(503, "shutting_down", "this node is draining"));
                        }
                        return reply(json_error(404, "not_found", "no such upload"));
                      }
                      HttpResponse ok;
                      ok.body = upload_status_json(*r);
                      reply(std::move(ok));
                    });
}

}  // namespace sg::uploads
