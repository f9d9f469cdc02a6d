#include "api/cluster_api.hpp"
#include "auth/auth.hpp"
#include "log/log.hpp"
#include "node/context.hpp"
#include "node/request_auth.hpp"
#include "node/upgrade.hpp"
#include "tenancy/tenancy.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <map>

namespace sg::api {

namespace json = boost::json;

namespace {

// Org ids that are integers go out as JSON numbers, as the seed's metrics show them.
json::value org_value(std::string_view org) {
  std::uint64_t n = 0;
  const auto [ptr, ec] = std::from_chars(org.data(), org.data() + org.size(), n);
  if (ec == std::errc() && ptr == org.data() + org.size() && !org.empty() &&
      (org.size() == 1 || org[0] != '0')) {
    return n;
  }
  return json::string(org);
}

json::object node_metrics(Context& ctx) {
  const hub::PoolStats stats = ctx.hub->stats();
  json::array by_org;
  for (const auto& [org, count] : stats.connections_by_org) {
    by_org.push_back({{"orgId", org_value(org)}, {"connections", count}});
  }
  return json::object{
      {"activeConnections", stats.total_connections},
      {"eventsDelivered", ctx.hub->events_delivered()},
      {"connectionPoolStats",
       {{"totalConnections", stats.total_connections},
        {"totalOrgs", stats.total_orgs},
        {"totalSubscriptions", stats.total_subscriptions},
        {"connectionsByOrg", std::move(by_org)}}},
  };
}

std::uint64_t number_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() > 0) return static_cast<std::uint64_t>(v->get_int64());
  return 0;
}

// Sums what every node shared. A snapshot that doesn't parse (another version's) is left out
// and counted, rather than failing the whole view.
json::object cluster_metrics(const std::vector<std::string>& snapshots) {
  std::uint64_t active = 0, delivered = 0, connections = 0, subscriptions = 0, unreadable = 0;
  std::map<std::string, std::pair<json::value, std::uint64_t>> by_org;  // key: org as text
  json::array nodes;
  for (const auto& text : snapshots) {
    boost::system::error_code ec;
    json::value parsed = json::parse(text, ec);
    if (ec || !parsed.is_object()) {
      ++unreadable;
      continue;
    }
    parsed.get_object().erase("quotaChannels");  // the nodes' quota bookkeeping, not metrics
    const json::object& node = parsed.get_object();
    active += number_at(node, "activeConnections");
    delivered += number_at(node, "eventsDelivered");
    if (const json::value* pool = node.if_contains("connectionPoolStats");
        pool != nullptr && pool->is_object()) {
      const json::object& p = pool->get_object();
      connections += number_at(p, "totalConnections");
      subscriptions += number_at(p, "totalSubscriptions");
      if (const json::value* orgs = p.if_contains("connectionsByOrg");
          orgs != nullptr && orgs->is_array()) {
        for (const json::value& entry : orgs->get_array()) {
          if (!entry.is_object()) continue;
          const json::value* id = entry.get_object().if_contains("orgId");
          if (id == nullptr) continue;
          auto& slot = by_org[json::serialize(*id)];
          slot.first = *id;
          slot.second += number_at(entry.get_object(), "connections");
        }
      }
    }
    nodes.push_back(std::move(parsed));
  }
  json::array orgs;
  for (auto& [key, entry] : by_org) {
    orgs.push_back({{"orgId", std::move(entry.first)}, {"connections", entry.second}});
  }
  json::object out{
      {"scope", "cluster"},
      {"activeConnections", active},
      {"eventsDelivered", delivered},
      {"connectionPoolStats",
       {{"totalConnections", connections},
        {"totalOrgs", orgs.size()},
        {"totalSubscriptions", subscriptions},
        {"connectionsByOrg", std::move(orgs)}}},
      {"nodes", std::move(nodes)},
  };
  if (unreadable > 0) out["unreadableNodes"] = unreadable;
  return out;
}

HttpResponse json_body(const json::object& body) {
  HttpResponse r;
  r.body = json::serialize(body);
  return r;
}

}  // namespace

void append_org_id(std::string& out, std::string_view org) {
  out += json::serialize(org_value(org));
}

std::string_view node_state(const Context& ctx) {
  if (ctx.shutting_down.load()) return "stopping";
  if (ctx.draining.load()) return "draining";
  if (!ctx.broker.stats().healthy) return "broker_unavailable";
  if (ctx.jwk_set && !ctx.jwk_set->loaded()) return "jwks_unavailable";
  return "ready";
}

std::string node_metrics_json(Context& ctx) {
  json::object body = node_metrics(ctx);
  body["state"] = node_state(ctx);
  body["node"] = ctx.node_name;
  // The org channel quota's share of the snapshot (docs/scaling.md#org-quotas); read by the
  // other nodes' cluster view, left out of the cluster metrics answer.
  json::array quota_channels;
  if (ctx.quotas == nullptr) return json::serialize(body);
  for (auto& [org, topics] : ctx.quotas->local_channels_for_snapshot()) {
    json::array services;
    for (auto& t : topics) services.emplace_back(json::string(t));
    quota_channels.push_back({{"orgId", org_value(org)}, {"services", std::move(services)}});
  }
  if (!quota_channels.empty()) body["quotaChannels"] = std::move(quota_channels);
  return json::serialize(body);
}

void handle_metrics(Context& ctx, const HttpRequest& req, Reply reply) {
  if (auto refused = node::check_api_key(ctx, req)) return reply(std::move(*refused));
  const std::string scope = net::query_param(req.query, "scope");
  if (scope.empty() || scope == "node") return reply(json_body(node_metrics(ctx)));
  if (scope != "cluster") {
    return reply(json_error(400, "bad_scope", "scope is node (the default) or cluster"));
  }
  ctx.broker.node_stats([reply = std::move(reply)](Result<std::vector<std::string>> snapshots) {
    if (!snapshots) {
      return reply(json_error(503, "broker_unavailable",
                              "the cluster view needs the broker, which is not reachable"));
    }
    reply(json_body(cluster_metrics(*snapshots)));
  });
}

}  // namespace sg::api
