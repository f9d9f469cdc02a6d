#include "api/org_limits_api.hpp"

#include "auth/auth.hpp"
#include "broker/broker.hpp"
#include "core/core.hpp"
#include "hub/hub.hpp"
#include "log/log.hpp"
#include "node/context.hpp"
#include "node/quota.hpp"
#include "node/request_auth.hpp"
#include "tenancy/tenancy.hpp"

#include <boost/container/small_vector.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <memory>
#include <mutex>
#include <unordered_map>
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
  return net::json_field_error(p.error, p.message, p.field);
}

HttpResponse store_unavailable() {
  return json_error(503, "broker_unavailable",
                    "the overrides are kept in the broker, which did not answer; retry");
}

HttpResponse too_many_overrides(Context& ctx, const std::string& org) {
  log::warn("quota", "override refused: too many overrides",
            {{"org", org}, {"limit", ctx.settings.org_max_overrides}});
  return json_error(409, "too_many_overrides",
                    "as many orgs as --org-max-overrides already have overrides; delete "
                    "one first");
}

// With a shared store (Redis) the override is stored there first, so the bound holds for the
// cluster and every node loads it (refresh_org_limits); this node applies it at once too.
void handle(Context& ctx, const HttpRequest& req, Reply reply) {
  if (auto refused = node::check_api_key(ctx, req)) return reply(std::move(*refused));
  auto org_id = org_of(req.path);
  if (!org_id) return reply(json_error(404, "not_found", "the path does not name a valid org id"));
  std::string org = std::move(*org_id);
  tenancy::Quotas& quotas = *ctx.quotas;
  broker::SharedStore* store = ctx.broker.shared_store();
  if (req.method == "GET" || req.method == "HEAD") {
    if (store == nullptr) {
      return reply(json_ok(
          tenancy::serialize_override(quotas.override_of(org).value_or(tenancy::Override{}))));
    }
    return store->org_limits(
        org, [reply = std::move(reply)](Result<std::optional<std::string>> stored) {
          if (!stored) return reply(store_unavailable());
          tenancy::Override o;
          if (*stored) o = tenancy::parse_override(**stored).value.value_or(tenancy::Override{});
          reply(json_ok(tenancy::serialize_override(o)));
        });
  }
  if (req.method == "DELETE") {
    auto removed = [&ctx, org](Reply answer) {
      if (ctx.quotas->remove_override(org)) log::info("quota", "override removed", {{"org", org}});
      HttpResponse r;
      r.status = 204;
      answer(std::move(r));
    };
    if (store == nullptr) return removed(std::move(reply));
    return store->remove_org_limits(org,
                                    [removed, reply = std::move(reply)](Result<bool> done) mutable {
                                      if (!done) return reply(store_unavailable());
                                      removed(std::move(reply));
                                    });
  }
  if (req.method == "PUT") {
    const tenancy::ParsedOverride parsed = tenancy::parse_override(req.body);
    if (!parsed.value) return reply(refused_body(parsed));
    std::string body = tenancy::serialize_override(*parsed.value);
    const tenancy::Override value = *parsed.value;
    auto set = [&ctx, org, value, body](Reply answer) {
      if (ctx.quotas->set_override(org, value) == tenancy::Quotas::SetResult::kTooManyOverrides &&
          ctx.broker.shared_store() == nullptr) {
        return answer(too_many_overrides(ctx, org));
      }
      log::info("quota", "override set", {{"org", org}, {"limits", body}});
      answer(json_ok(body));
    };
    if (store == nullptr) return set(std::move(reply));
    if (value.empty()) {
      // {} clears the override, as it does on one node.
      return store->remove_org_limits(org,
                                      [set, reply = std::move(reply)](Result<bool> done) mutable {
                                        if (!done) return reply(store_unavailable());
                                        set(std::move(reply));
                                      });
    }
    return store->put_org_limits(
        org, body, ctx.settings.org_max_overrides,
        [&ctx, org, set, reply = std::move(reply)](Result<bool> stored) mutable {
          if (!stored) return reply(store_unavailable());
          if (!*stored) return reply(too_many_overrides(ctx, org));
          set(std::move(reply));
        });
  }
  auto r = json_error(405, "method_not_allowed", "use GET, PUT or DELETE");
  r.headers.emplace_back("Allow", "GET, PUT, DELETE");
  reply(std::move(r));
}

}  // namespace

void add_org_limits_routes(net::HttpRoutes& routes, Context& ctx) {
  routes.add(is_org_limits_path).handle = [&ctx](const HttpRequest& req, Reply reply) {
    handle(ctx, req, std::move(reply));
  };
}

std::optional<HttpResponse> refuse_over_publish_rate(Context& ctx,
                                                     const protocol::PublishBody& body) {
  // In place for the usual one org: this ran once per publish request.
  boost::container::small_vector<tenancy::Quotas::PublishTake, 1> takes;
  for (const auto& item : body.items) {
    auto it =
        std::find_if(takes.begin(), takes.end(), [&](const auto& t) { return t.org == item.org; });
    if (it == takes.end()) {
      takes.push_back({item.org, 1});
    } else {
      ++it->events;
    }
  }
  const tenancy::Decision d = ctx.quotas->take_publish(std::span(takes.data(), takes.size()),
                                                       tenancy::Quotas::Clock::now());
  if (d.allowed) return std::nullopt;
  return node::quota_exceeded(ctx, tenancy::Quota::kPublishRate, d.retry_after_seconds);
}

void refresh_org_limits(Context& ctx) {
  broker::SharedStore* store = ctx.broker.shared_store();
  if (store == nullptr) return;
  store->load_org_limits(ctx.quotas->overrides_version(), ctx.settings.org_max_overrides,
                         [&ctx](Result<std::optional<broker::OrgLimitsSnapshot>> loaded) {
                           // Unchanged, or the broker is away: keep what this node has.
                           if (!loaded || !*loaded) return;
                           std::unordered_map<std::string, tenancy::Override> all;
                           for (const auto& [org, text] : (*loaded)->entries) {
                             auto parsed = tenancy::parse_override(text);
                             if (parsed.value) all.emplace(org, *parsed.value);
                           }
                           ctx.quotas->replace_overrides(all, (*loaded)->version);
                         });
}

// This node's channels of each connected org with a channel quota, for its snapshot: one
// gather over the workers per such org, once a second.
void refresh_local_channels(Context& ctx) {
  if (ctx.broker.shared_store() == nullptr) return;
  using ByOrg = std::unordered_map<std::string, std::vector<std::string>>;
  struct Gather {
    std::mutex mu;
    ByOrg by_org;
    std::size_t waiting = 0;
  };
  auto gather = std::make_shared<Gather>();
  std::vector<std::string> orgs;
  for (const auto& [org, count] : ctx.hub->stats().connections_by_org) {
    if (ctx.quotas->limit(org, tenancy::Quota::kMaxChannels) != 0) orgs.push_back(org);
  }
  if (orgs.empty()) return ctx.quotas->set_local_channels({});
  gather->waiting = orgs.size();
  for (const std::string& org : orgs) {
    ctx.hub->channel_counts(
        org, [&ctx, gather, org](std::vector<std::pair<std::string, std::uint64_t>> counts) {
          std::lock_guard lock(gather->mu);
          auto& topics = gather->by_org[org];
          for (auto& [topic, members] : counts) {
            if (members > 0) topics.push_back(std::move(topic));
          }
          if (--gather->waiting == 0) ctx.quotas->set_local_channels(std::move(gather->by_org));
        });
  }
}

void refresh_quota_cluster_view(Context& ctx) {
  refresh_org_limits(ctx);
  refresh_local_channels(ctx);
  ctx.broker.node_stats([&ctx](Result<std::vector<std::string>> snapshots) {
    // Keep the last view while the broker is away: dropping it would lift the quotas then.
    if (!snapshots) return;
    std::size_t nodes = 1;  // this one, whether or not its own snapshot is there yet
    std::unordered_map<std::string, std::uint64_t> remote;
    std::unordered_map<std::string, std::vector<std::string>> remote_channels;
    for (const std::string& text : *snapshots) {
      boost::system::error_code ec;
      const boost::json::value parsed = boost::json::parse(text, ec);
      const auto* node = ec ? nullptr : parsed.if_object();
      if (node == nullptr) continue;
      const auto* name = node->if_contains("node");
      if (name != nullptr && name->is_string() && name->get_string() == ctx.node_name) continue;
      ++nodes;
      if (const auto* quota_channels = node->if_contains("quotaChannels");
          quota_channels != nullptr && quota_channels->is_array()) {
        for (const auto& entry : quota_channels->get_array()) {
          const auto* e = entry.if_object();
          const auto* id = e ? e->if_contains("orgId") : nullptr;
          const auto* services = e ? e->if_contains("services") : nullptr;
          if (id == nullptr || services == nullptr || !services->is_array()) continue;
          std::optional<std::string> org;
          if (id->is_string()) org = core::org_id_from_text(std::string_view(id->get_string()));
          if (id->is_int64()) org = core::org_id_from_integer(id->get_int64());
          if (id->is_uint64()) org = core::org_id_from_integer(id->get_uint64());
          if (!org) continue;
          auto& topics = remote_channels[*org];
          for (const auto& s : services->get_array()) {
            if (s.is_string()) topics.emplace_back(s.get_string());
          }
        }
      }
      const auto* pool = node->if_contains("connectionPoolStats");
      const auto* orgs =
          pool && pool->is_object() ? pool->get_object().if_contains("connectionsByOrg") : nullptr;
      if (orgs == nullptr || !orgs->is_array()) continue;
      for (const auto& entry : orgs->get_array()) {
        const auto* e = entry.if_object();
        if (e == nullptr) continue;
        const auto* id = e->if_contains("orgId");
        const auto* count = e->if_contains("connections");
        if (id == nullptr || count == nullptr || !count->is_number()) continue;
        // The snapshot writes an integer org as a JSON number (api::append_org_id).
        std::optional<std::string> org;
        if (id->is_string()) org = core::org_id_from_text(std::string_view(id->get_string()));
        if (id->is_int64()) org = core::org_id_from_integer(id->get_int64());
        if (id->is_uint64()) org = core::org_id_from_integer(id->get_uint64());
        if (!org) continue;
        boost::system::error_code number_ec;
        const auto n = count->to_number<std::uint64_t>(number_ec);
        if (!number_ec) remote[*org] += n;
      }
    }
    ctx.quotas->set_cluster_view(nodes, std::move(remote));
    ctx.quotas->set_remote_channels(std::move(remote_channels));
  });
}

}  // namespace sg::api
