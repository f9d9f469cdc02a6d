#include "server/upload_api.hpp"

#include "core/core.hpp"
#include "log/log.hpp"
#include "server/context.hpp"
#include "server/upgrade.hpp"
#include "server/upload_events.hpp"

namespace sg::server {

void handle_upload_status(Context& ctx, const HttpRequest& req, Reply reply) {
  if (!ctx.uploads) return reply(json_error(404, "not_found", "no such endpoint"));
  if (req.method != "GET" && req.method != "HEAD") {
    auto r = json_error(405, "method_not_allowed", "use GET");
    r.headers.emplace_back("Allow", "GET");
    return reply(std::move(r));
  }
  std::string token = query_token(req.query);
  if (token.empty()) token = std::string(auth::bearer_token(req.authorization));
  if (token.empty()) {
    ctx.metrics->count_auth_failure("missing_token");
    auto r = json_error(401, "missing_token",
                        "send the uploader's token as an Authorization: Bearer header or the "
                        "access_token query parameter");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return reply(std::move(r));
  }
  auto principal = ctx.verifier->verify(token, core::WallClock::now());
  if (!principal) {
    const std::string reason = core::reason(principal.error());
    ctx.metrics->count_auth_failure(reason);
    log::info("auth", "request rejected", {{"reason", reason}, {"path", "/v2/realtime/uploads"}});
    auto r = json_error(401, reason, "the access token was rejected: " + reason);
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return reply(std::move(r));
  }
  if (!ctx.origins.allows(req.has_origin ? std::optional(req.origin) : std::nullopt)) {
    ctx.metrics->count_auth_failure("origin_not_allowed");
    return reply(json_error(403, "origin_not_allowed", "this Origin may not use the API"));
  }
  const std::string_view id = req.path.substr(kUploadsPath.size());
  // Ids are 32 hex characters; anything else can't name an upload.
  if (id.empty() || id.size() > 64 || id.find('/') != std::string_view::npos) {
    return reply(json_error(404, "not_found", "no such upload"));
  }
  ctx.uploads->find(upload::Owner{principal->org, principal->user}, std::string(id),
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

}  // namespace sg::server
