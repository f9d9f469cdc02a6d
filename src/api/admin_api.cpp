// Operators' routes: Prometheus text, the admin page and the JSON it polls, and the node metrics
// they read that no module registers itself.
#include "api/admin_page.hpp"
#include "api/api.hpp"
#include "api/cluster_api.hpp"
#include "auth/auth.hpp"
#include "chat/chat.hpp"
#include "config/config.hpp"
#include "core/core.hpp"
#include "metrics/metrics.hpp"
#include "node/context.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>

namespace sg::api {

namespace json = boost::json;

namespace {

// The admin page lists this many orgs, the busiest: its size stays the same with 10 orgs or
// 100,000.
constexpr std::size_t kTopOrgs = 10;

// Read when the process starts, for the page's uptime.
const std::chrono::steady_clock::time_point kStarted = std::chrono::steady_clock::now();

// An API key as Bearer, or as the password of Basic (the user name is ignored): a browser
// asks for Basic credentials itself when the page answers 401 with a Basic challenge, and
// then sends them with the page's own requests, so the key never goes into a URL.
bool admin_authorized(const Context& ctx, const HttpRequest& req) {
  const auto& keys = ctx.settings.api_keys;
  if (auth::api_key_matches(auth::bearer_token(req.authorization), keys)) return true;
  constexpr std::string_view kBasic = "basic ";
  const std::string_view value = core::trim(req.authorization);
  if (value.size() <= kBasic.size() || !core::iequals(value.substr(0, kBasic.size()), kBasic)) {
    return false;
  }
  std::string decoded;
  if (!core::base64_decode(core::trim(value.substr(kBasic.size())), decoded)) return false;
  const auto colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  return auth::api_key_matches(std::string_view(decoded).substr(colon + 1), keys);
}

HttpResponse admin_unauthorized(Context& ctx) {
  ctx.metrics->count_auth_failure("invalid_api_key");
  auto r = json_error(401, "invalid_api_key",
                      "send an API key as Authorization: Bearer, or as the password of Basic");
  r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"streamgate admin\", charset=\"UTF-8\"");
  return r;
}

json::value org_id(std::string_view org) {
  std::string text;
  append_org_id(text, org);
  return json::parse(text);
}

std::uint64_t number_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() > 0) return static_cast<std::uint64_t>(v->get_int64());
  return 0;
}

// One node of the cluster view, from the snapshot it shares through the broker.
json::object node_row(const json::object& snapshot) {
  json::object row;
  const json::value* name = snapshot.if_contains("node");
  const json::value* state = snapshot.if_contains("state");
  row["node"] = name != nullptr && name->is_string() ? *name : json::value("?");
  // A node of an older version shares no state; that it shares a snapshot means it is up.
  row["state"] = state != nullptr && state->is_string() ? *state : json::value("up");
  row["connections"] = number_at(snapshot, "activeConnections");
  row["eventsDelivered"] = number_at(snapshot, "eventsDelivered");
  if (const json::value* pool = snapshot.if_contains("connectionPoolStats");
      pool != nullptr && pool->is_object()) {
    row["orgs"] = number_at(pool->get_object(), "totalOrgs");
    row["subscriptions"] = number_at(pool->get_object(), "totalSubscriptions");
  }
  return row;
}

json::array node_rows(const std::vector<std::string>& snapshots) {
  std::vector<json::object> rows;
  for (const std::string& text : snapshots) {
    boost::system::error_code ec;
    json::value parsed = json::parse(text, ec);
    if (ec || !parsed.is_object()) continue;
    rows.push_back(node_row(parsed.get_object()));
  }
  std::sort(rows.begin(), rows.end(), [](const json::object& a, const json::object& b) {
    return a.at("node").as_string() < b.at("node").as_string();
  });
  json::array out;
  for (auto& row : rows) out.push_back(std::move(row));
  return out;
}

// This node's numbers. Counters are totals since start: the page derives rates from two polls.
json::object node_stats(Context& ctx) {
  const hub::PoolStats pool = ctx.hub->stats();
  std::vector<std::pair<std::string, std::uint64_t>> by_org(pool.connections_by_org.begin(),
                                                            pool.connections_by_org.end());
  const std::size_t top = std::min(kTopOrgs, by_org.size());
  std::partial_sort(by_org.begin(), by_org.begin() + static_cast<std::ptrdiff_t>(top), by_org.end(),
                    [](const auto& a, const auto& b) {
                      return a.second != b.second ? a.second > b.second : a.first < b.first;
                    });
  json::array top_orgs;
  for (std::size_t i = 0; i < top; ++i) {
    top_orgs.push_back({{"orgId", org_id(by_org[i].first)}, {"connections", by_org[i].second}});
  }
  const bool redis = ctx.settings.broker.rfind("redis", 0) == 0;
  return json::object{
      {"node", ctx.node_name},
      {"version", config::version()},
      {"commit", config::commit()},
      {"state", node_state(ctx)},
      {"uptimeSeconds",
       std::chrono::duration<double>(std::chrono::steady_clock::now() - kStarted).count()},
      {"connections", pool.total_connections},
      {"orgs", pool.total_orgs},
      {"subscriptions", pool.total_subscriptions},
      {"eventsPublished", ctx.metrics->events_published.value()},
      {"eventsDelivered", ctx.hub->events_delivered()},
      {"slowConsumerCloses", ctx.metrics->slow_consumer_closes.value()},
      {"uploadsInProgress", ctx.uploads != nullptr ? ctx.uploads->unfinished() : 0},
      {"rooms", ctx.chat != nullptr ? ctx.chat->rooms() : 0},
      {"broker", {{"kind", redis ? "redis" : "memory"}, {"up", ctx.broker.stats().healthy}}},
      {"topOrgs", std::move(top_orgs)},
  };
}

void handle_stats(Context& ctx, Reply reply) {
  json::object body = node_stats(ctx);
  ctx.broker.node_stats([body = std::move(body), reply = std::move(reply)](
                            Result<std::vector<std::string>> snapshots) mutable {
    if (snapshots) {
      body["nodes"] = node_rows(*snapshots);
    } else {
      // This node's numbers are still worth showing while the cluster view is unreachable.
      body["nodes"] = json::array();
      body["clusterError"] = "broker_unavailable";
    }
    HttpResponse r;
    r.body = json::serialize(body);
    reply(std::move(r));
  });
}

}  // namespace

void add_operator_routes(net::HttpRoutes& routes, Context& ctx, bool api_key) {
  add_route(routes, net::path_is("/metrics"), "GET", [&ctx](const HttpRequest&, Reply reply) {
    HttpResponse r;
    r.body = ctx.registry.prometheus_text();
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    reply(std::move(r));
  });
  add_route(routes, net::path_is("/admin"), "GET",
            [&ctx, api_key](const HttpRequest& req, Reply reply) {
              if (api_key && !admin_authorized(ctx, req)) return reply(admin_unauthorized(ctx));
              HttpResponse r;
              r.body = std::string(admin_page());
              r.content_type = "text/html; charset=utf-8";
              // What makes "no external resources" hold even if the page ever asked for one.
              r.headers.emplace_back(
                  "Content-Security-Policy",
                  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                  "connect-src 'self'; img-src data:; frame-ancestors 'none'");
              r.headers.emplace_back("X-Content-Type-Options", "nosniff");
              reply(std::move(r));
            });
  add_route(routes, net::path_is("/admin/stats"), "GET",
            [&ctx, api_key](const HttpRequest& req, Reply reply) {
              if (api_key && !admin_authorized(ctx, req)) return reply(admin_unauthorized(ctx));
              handle_stats(ctx, std::move(reply));
            });
}

void register_node_metrics(Context& ctx) {
  metrics::Registry& r = ctx.registry;
  const std::string_view commit = config::commit();
  r.gauge("streamgate_build_info", "Always 1; the labels name the version and the git commit",
          {{"version", std::string(config::version())},
           {"commit", commit.empty() ? std::string("unknown") : std::string(commit)}})
      .set(1);
  metrics::register_process_metrics(r);
  r.gauge_callback("streamgate_broker_up",
                   "1 while the broker is reachable (always, for the memory broker), else 0",
                   [&ctx](std::vector<metrics::Registry::Sample>& out) {
                     out.push_back({{}, ctx.broker.stats().healthy ? 1.0 : 0.0});
                   });
  r.counter_callback("streamgate_broker_epoch_moves_total",
                     "Channels this node moved to a new epoch because Redis's counter went back",
                     [&ctx](std::vector<metrics::Registry::Sample>& out) {
                       const auto moves = ctx.broker.stats().epoch_moves;
                       for (std::size_t i = 0; i < moves.size(); ++i) {
                         out.push_back({{{"reason", std::string(broker::kEpochMoveNames[i])}},
                                        static_cast<double>(moves[i])});
                       }
                     });
  r.gauge_callback("streamgate_uploads_in_progress",
                   "Unfinished uploads this node holds (created, not yet complete or failed)",
                   [&ctx](std::vector<metrics::Registry::Sample>& out) {
                     const std::size_t n = ctx.uploads != nullptr ? ctx.uploads->unfinished() : 0;
                     out.push_back({{}, static_cast<double>(n)});
                   });
  r.gauge_callback("streamgate_chat_rooms", "Chat rooms with a connection on this node",
                   [&ctx](std::vector<metrics::Registry::Sample>& out) {
                     const std::size_t n = ctx.chat != nullptr ? ctx.chat->rooms() : 0;
                     out.push_back({{}, static_cast<double>(n)});
                   });
}

}  // namespace sg::api
