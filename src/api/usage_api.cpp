#include "api/usage_api.hpp"

#include "auth/auth.hpp"
#include "broker/broker.hpp"
#include "core/core.hpp"
#include "log/log.hpp"
#include "node/context.hpp"
#include "node/request_auth.hpp"
#include "tenancy/tenancy.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace sg::api {

namespace {

// A month of hours and a day to spare: one bill's worth, and one Redis script of 768 keys.
constexpr std::int64_t kMaxRangeSeconds = 31 * 86400;
constexpr std::int64_t kHourSeconds = 3600;

std::int64_t unix_seconds(tenancy::UsageClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// The figures of one hour from the store's fields: the counts, and the hour's peak as the sum
// of each node's peak (an upper bound of the cluster's: the nodes' peaks need not coincide).
tenancy::UsageFigures from_store(const std::vector<std::pair<std::string, std::uint64_t>>& fields) {
  tenancy::UsageFigures f;
  for (const auto& entry : fields) {
    if (entry.first.starts_with("peak:")) {
      f.peak_connections += entry.second;
      continue;
    }
    for (std::size_t i = 0; i < tenancy::kUsageFieldCount; ++i) {
      const auto field = static_cast<tenancy::UsageField>(i);
      if (entry.first == tenancy::usage_store_field(field)) f[field] += entry.second;
    }
  }
  return f;
}

std::string usage_body(std::string_view org, std::string_view from, std::string_view to,
                       const std::vector<std::pair<std::int64_t, tenancy::UsageFigures>>& hours) {
  std::string out = "{\"orgId\":";
  tenancy::append_usage_org(out, org);
  out += ",\"from\":";
  core::append_json_string(out, from);
  out += ",\"to\":";
  core::append_json_string(out, to);
  out += ",\"hours\":[";
  for (std::size_t i = 0; i < hours.size(); ++i) {
    if (i > 0) out += ',';
    tenancy::append_usage_hour(out, hours[i].first, hours[i].second);
  }
  out += "]}";
  return out;
}

void get_usage(Context& ctx, const HttpRequest& req, Reply reply) {
  if (auto refused = node::check_api_key(ctx, req)) return reply(std::move(*refused));
  const std::string named = net::query_param(req.query, "orgId");
  if (named.empty())
    return reply(net::json_field_error("missing_field", "name the org as ?orgId=", "orgId"));
  auto org = core::org_id_from_text(named);
  if (!org) {
    return reply(
        net::json_field_error("bad_field", "orgId is not an org id the server accepts", "orgId"));
  }
  const std::string from_text = net::query_param(req.query, "from");
  const std::string to_text = net::query_param(req.query, "to");
  for (const auto& [name, text] : {std::pair{"from", &from_text}, std::pair{"to", &to_text}}) {
    if (text->empty()) {
      return reply(net::json_field_error(
          "missing_field", std::string("give ?") + name + "= as an RFC 3339 time", name));
    }
  }
  const auto from = tenancy::parse_usage_time(from_text);
  if (!from) {
    return reply(net::json_field_error(
        "bad_time", "from must be an RFC 3339 time such as 2026-01-31T00:00:00Z", "from"));
  }
  const auto to = tenancy::parse_usage_time(to_text);
  if (!to) {
    return reply(net::json_field_error(
        "bad_time", "to must be an RFC 3339 time such as 2026-02-01T00:00:00Z", "to"));
  }
  if (*to <= *from)
    return reply(net::json_field_error("bad_range", "to must be later than from", "to"));
  if (*to - *from > std::chrono::seconds(kMaxRangeSeconds)) {
    return reply(
        net::json_field_error("range_too_large", "from and to may be at most 31 days apart", "to"));
  }
  // Every hour that starts in [from, to), and the one from falls in.
  std::vector<std::int64_t> hours;
  const std::int64_t end = unix_seconds(*to);
  for (std::int64_t h = tenancy::usage_hour(*from); h < end; h += kHourSeconds) hours.push_back(h);
  const std::string from_out = core::format_rfc3339(*from);
  const std::string to_out = core::format_rfc3339(*to);
  broker::SharedStore* store = ctx.broker.shared_store();
  if (store == nullptr) {
    const auto found = ctx.usage_table == nullptr
                           ? std::vector<std::pair<std::int64_t, tenancy::UsageFigures>>{}
                           : ctx.usage_table->read(*org, hours.front(), end);
    return reply(json_ok(usage_body(*org, from_out, to_out, found)));
  }
  store->read_usage(
      *org, hours,
      [org = *org, hours, from_out, to_out,
       reply = std::move(reply)](Result<broker::SharedStore::UsageHours> read) {
        if (!read) {
          return reply(json_error(503, "broker_unavailable",
                                  "usage is kept in the broker, which did not answer; retry"));
        }
        std::vector<std::pair<std::int64_t, tenancy::UsageFigures>> found;
        for (std::size_t i = 0; i < hours.size() && i < read->size(); ++i) {
          if ((*read)[i].empty()) continue;
          found.emplace_back(hours[i], from_store((*read)[i]));
        }
        reply(json_ok(usage_body(org, from_out, to_out, found)));
      });
}

}  // namespace

void add_usage_routes(net::HttpRoutes& routes, Context& ctx) {
  add_route(routes, net::path_is("/v2/realtime/usage"), "GET",
            [&ctx](const HttpRequest& req, Reply reply) { get_usage(ctx, req, std::move(reply)); });
}

void flush_usage(Context& ctx, std::function<void()> done) {
  if (ctx.usage == nullptr) {
    if (done) done();
    return;
  }
  const auto now = tenancy::UsageClock::now();
  tenancy::Usage::Drained drained = ctx.usage->drain(now);
  if (!drained.closed.empty() && !ctx.settings.usage_export.empty()) {
    std::string error;
    if (!tenancy::append_to_file(ctx.settings.usage_export,
                                 tenancy::usage_export_lines(drained.closed, ctx.node_name),
                                 error)) {
      log::warn("usage", "usage export failed",
                {{"file", ctx.settings.usage_export},
                 {"error", error},
                 {"lines", drained.closed.size()}});
    }
  }
  broker::SharedStore* store = ctx.broker.shared_store();
  if (store == nullptr) {
    if (ctx.usage_table != nullptr) ctx.usage_table->add(drained.deltas, now);
    if (done) done();
    return;
  }
  std::vector<broker::UsageDelta> deltas;
  deltas.reserve(drained.deltas.size());
  for (const tenancy::UsageRecord& r : drained.deltas) {
    broker::UsageDelta d;
    d.org = r.org;
    d.hour = r.hour;
    d.peak = r.figures.peak_connections;
    for (std::size_t i = 0; i < tenancy::kUsageFieldCount; ++i) {
      d.increments.emplace_back(
          std::string(tenancy::usage_store_field(static_cast<tenancy::UsageField>(i))),
          r.figures.counts[i]);
    }
    deltas.push_back(std::move(d));
  }
  store->add_usage(std::move(deltas), ctx.node_name,
                   std::chrono::seconds(ctx.settings.usage_retention_seconds),
                   [&ctx, records = std::move(drained.deltas),
                    done = std::move(done)](Result<void> added) mutable {
                     if (!added) {
                       // Kept for the next flush: a reply lost after Redis applied a delta
                       // counts it twice, which the docs say.
                       log::warn("usage", "usage flush failed; kept for the next one",
                                 {{"records", records.size()}});
                       ctx.usage->restore(std::move(records));
                     }
                     if (done) done();
                   });
}

}  // namespace sg::api
