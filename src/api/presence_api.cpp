#include "api/cluster_api.hpp"
#include "auth/auth.hpp"
#include "core/core.hpp"
#include "hub/hub.hpp"
#include "node/context.hpp"
#include "node/request_auth.hpp"
#include "node/upgrade.hpp"
#include "protocol/protocol.hpp"

namespace sg::api {

void handle_presence(Context& ctx, const HttpRequest& req, Reply reply) {
  std::string org;
  // An API key names the org; a user token only ever shows the user's own org.
  const std::string_view bearer = auth::bearer_token(req.authorization);
  if (!bearer.empty() && auth::api_key_matches(bearer, ctx.settings.api_keys)) {
    const std::string named = net::query_param(req.query, "orgId");
    if (named.empty()) {
      return reply(json_error(400, "missing_org", "with an API key, name the org as ?orgId="));
    }
    auto checked = core::org_id_from_text(named);
    if (!checked) {
      return reply(json_error(400, "bad_org", "orgId is not an org id the server accepts"));
    }
    org = std::move(*checked);
  } else {
    node::UserAuth who = node::authenticate_user(ctx, req);
    if (who.reject) return reply(std::move(*who.reject));
    org = std::move(who.principal.org);
  }
  ctx.broker.presence(
      hub::online_scope(org),
      [org, reply = std::move(reply)](Result<std::vector<broker::PresenceEntry>> entries) {
        if (!entries) {
          return reply(json_error(503, "broker_unavailable",
                                  "presence is kept in the broker, "
                                  "which is not reachable"));
        }
        std::string body = "{\"orgId\":";
        append_org_id(body, org);
        body += ",\"online\":";
        core::append_decimal(body, entries->size());
        body += ",\"users\":[";
        bool first = true;
        for (const auto& entry : *entries) {
          if (!first) body += ',';
          first = false;
          body += "{\"userId\":";
          protocol::append_json_string(body, entry.user);
          body += ",\"connections\":";
          core::append_decimal(body, entry.connections);
          body += ",\"since\":";
          protocol::append_json_string(body, core::format_rfc3339(entry.since));
          body += '}';
        }
        body += "]}";
        HttpResponse r;
        r.body = std::move(body);
        reply(std::move(r));
      });
}

}  // namespace sg::api
