#include "api/org_limits_api.hpp"

#include "auth/auth.hpp"
#include "core/core.hpp"
#include "log/log.hpp"
#include "node/context.hpp"
#include "node/quota.hpp"
#include "tenancy/tenancy.hpp"

#include <algorithm>
#include <vector>

namespace sg::api {

namespace {

constexpr std::string_view kOrgsPrefix = "/v2/realtime/orgs/";
constexpr std::string_view kLimitsSuffix = "/limits";

bool is_org_limits_path(std::string_view path) {
  return path.starts_with(kOrgsPrefix) && path.ends_with(kLimitsSuffix) &&
         path.size() > kOrgsPrefix.size() + kLimitsSuffix.size();
}

// "/v2/realtime/orgs/<orgId>/limits" → the org, by the same rule as a token's org_id and a
// publish's orgId; nothing when the segment is not an org id.
std::optional<std::string> org_of(std::string_view path) {
  const std::string_view raw =
      path.substr(kOrgsPrefix.size(), path.size() - kOrgsPrefix.size() - kLimitsSuffix.size());
  std::string decoded;
  if (raw.find('/') != std::string_view::npos || !core::percent_decode(raw, decoded, false)) {
    return std::nullopt;
  }
  return core::org_id_from_text(decoded);
}

HttpResponse refused_body(const tenancy::ParsedOverride& p) {
  HttpResponse r;
  r.status = 400;
  r.body = "{\"error\":";
  core::append_json_string(r.body, p.error);
  r.body += ",\"message\":";
  core::append_json_string(r.body, p.message);
  if (!p.field.empty()) {
    r.body += ",\"field\":";
    core::append_json_string(r.body, p.field);
  }
  r.body += '}';
  return r;
}

HttpResponse handle(Context& ctx, const HttpRequest& req) {
  if (!auth::api_key_matches(auth::bearer_token(req.authorization), ctx.settings.api_keys)) {
    ctx.metrics->count_auth_failure("invalid_api_key");
    auto r = json_error(401, "invalid_api_key", "send a valid API key as Authorization: Bearer");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  const auto org = org_of(req.path);
  if (!org) return json_error(404, "not_found", "the path does not name a valid org id");
  tenancy::Quotas& quotas = *ctx.quotas;
  if (req.method == "GET" || req.method == "HEAD") {
    return json_ok(
        tenancy::serialize_override(quotas.override_of(*org).value_or(tenancy::Override{})));
  }
  if (req.method == "DELETE") {
    if (quotas.remove_override(*org)) log::info("quota", "override removed", {{"org", *org}});
    HttpResponse r;
    r.status = 204;
    return r;
  }
  if (req.method == "PUT") {
    const tenancy::ParsedOverride parsed = tenancy::parse_override(req.body);
    if (!parsed.value) return refused_body(parsed);
    if (quotas.set_override(*org, *parsed.value) == tenancy::Quotas::SetResult::kTooManyOverrides) {
      log::warn("quota", "override refused: too many overrides",
                {{"org", *org}, {"limit", ctx.settings.org_max_overrides}});
      return json_error(409, "too_many_overrides",
                        "as many orgs as --org-max-overrides already have overrides; delete "
                        "one first");
    }
    const std::string body = tenancy::serialize_override(*parsed.value);
    log::info("quota", "override set", {{"org", *org}, {"limits", body}});
    return json_ok(body);
  }
  auto r = json_error(405, "method_not_allowed", "use GET, PUT or DELETE");
  r.headers.emplace_back("Allow", "GET, PUT, DELETE");
  return r;
}

}  // namespace

void add_org_limits_routes(net::HttpRoutes& routes, Context& ctx) {
  routes.add(is_org_limits_path).handle = [&ctx](const HttpRequest& req, Reply reply) {
    reply(handle(ctx, req));
  };
}

std::optional<HttpResponse> refuse_over_publish_rate(Context& ctx,
                                                     const protocol::PublishBody& body) {
  std::vector<tenancy::Quotas::PublishTake> takes;
  for (const auto& item : body.items) {
    auto it =
        std::find_if(takes.begin(), takes.end(), [&](const auto& t) { return t.org == item.org; });
    if (it == takes.end()) {
      takes.push_back({item.org, 1});
    } else {
      ++it->events;
    }
  }
  const tenancy::Decision d = ctx.quotas->take_publish(takes, tenancy::Quotas::Clock::now());
  if (d.allowed) return std::nullopt;
  return node::quota_exceeded(ctx, tenancy::Quota::kPublishRate, d.retry_after_seconds);
}

}  // namespace sg::api
