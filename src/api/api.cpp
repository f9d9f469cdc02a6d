#include "api/api.hpp"

#include "api/chat_api.hpp"
#include "api/cluster_api.hpp"
#include "api/control_api.hpp"
#include "api/org_limits_api.hpp"
#include "api/usage_api.hpp"
#include "auth/auth.hpp"
#include "chat/chat.hpp"
#include "core/core.hpp"
#include "log/log.hpp"
#include "node/browser_cors.hpp"
#include "node/context.hpp"
#include "node/request_auth.hpp"
#include "protocol/protocol.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>

namespace sg::api {

namespace {

// Services only the server writes to: upload progress (targeted at the uploader, so a forged
// upload.completed could fool any user of the org) and chat rooms (written through join and
// message, which check the rooms claim). Refused whatever --services lists.
bool reserved_service(std::string_view service) {
  return service == node::kUploadsService || chat::is_room_topic(service);
}

// Not a std::optional: GCC 12 at -O2 wrongly finds one "maybe uninitialized" through here.
constexpr std::size_t kNoIndex = static_cast<std::size_t>(-1);

// A refused publish: {"error","message"} plus, when the failure is about one item, "field"
// (the item's own field name) and, in a batch, "index" (the item's 0-based position).
HttpResponse publish_rejected(std::string_view code, std::string_view message,
                              std::string_view field, std::size_t index) {
  std::string text(message);
  if (index != kNoIndex) {
    text += " (item ";
    core::append_decimal(text, index);
    text += ')';
  }
  HttpResponse r = net::json_field_error(code, text, field);
  if (index != kNoIndex) {
    r.body.pop_back();
    r.body += ",\"index\":";
    core::append_decimal(r.body, index);
    r.body += '}';
  }
  return r;
}

HttpResponse bad_publish_body(const ErrorCode& error, const protocol::PublishErrorDetail& where) {
  const std::string reason = core::reason(error);
  std::string message;
  if (error == protocol::ProtocolError::kUnknownField) {
    message = "unknown field ";
    protocol::append_json_string(message, where.field);
    if (!where.suggestion.empty()) {
      message += " (did you mean ";
      protocol::append_json_string(message, where.suggestion);
      message += "?)";
    }
  } else if (error == protocol::ProtocolError::kMissingField) {
    message = "missing field ";
    protocol::append_json_string(message, where.field);
  } else if (error == protocol::ProtocolError::kBadField) {
    message = "bad value for ";
    protocol::append_json_string(message, where.field);
    message += " (see docs/protocol.md#publishing)";
  } else if (error == protocol::ProtocolError::kEmptyBatch) {
    message = "a batch needs at least one event";
  } else if (error == protocol::ProtocolError::kTooManyItems) {
    message = "a batch holds at most --max-batch events";
  } else {
    message = "the publish body was rejected: " + reason;
  }
  return publish_rejected(reason, message, where.field, where.index.value_or(kNoIndex));
}

// The answer when the broker could not store a request's events.
HttpResponse broker_rejected(Context& ctx, std::string_view org, std::string_view service,
                             std::size_t events) {
  ctx.metrics->publish_errors.inc();
  log::warn("publish", "broker rejected a publish",
            {{"org", org}, {"service", service}, {"events", events}});
  return json_error(503, "broker_unavailable",
                    "the broker could not store the event; retry with the same eventId");
}

// {"id":…}, the answer to one event. Written around the id in its own buffer when the id needs
// no escaping (always, for ids streamgate makes): the memory broker's has the room, so the
// answer takes no allocation of its own.
std::string id_answer(std::string id) {
  const bool plain = std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
  });
  if (!plain) {
    std::string body = "{\"id\":";
    protocol::append_json_string(body, id);
    body += '}';
    return body;
  }
  id.insert(0, "{\"id\":\"");
  id += "\"}";
  return id;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Collects the answers of one publish request's events; the last one replies.
struct PublishBatch {
  std::vector<std::string> ids;
  std::atomic<std::size_t> waiting{0};
  std::atomic<bool> failed{false};
  std::atomic<std::uint64_t> fresh{0};
  bool batch = false;
  std::string org, service;  // of the first item, for the error log
  Reply reply;
  Context* ctx = nullptr;
  metrics::Histogram* latency = nullptr;
  std::chrono::steady_clock::time_point received;

  void finish() {
    if (failed.load()) return reply(broker_rejected(*ctx, org, service, ids.size()));
    latency->observe(seconds_since(received));
    ctx->metrics->events_published.inc(fresh.load());
    std::string body;
    if (batch) {
      body = "{\"ids\":[";
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i > 0) body += ',';
        protocol::append_json_string(body, ids[i]);
      }
      body += "]}";
    } else {
      body = "{\"id\":";
      protocol::append_json_string(body, ids.front());
      body += "}";
    }
    reply(json_ok(std::move(body)));
  }
};

// Publish latency: from the handler receiving the request (its body read) to the broker
// accepting every event of it. Prometheus' default buckets, extended below 5 ms for the memory
// broker, which accepts within microseconds.
metrics::Histogram& publish_latency(Context& ctx) {
  return ctx.registry.histogram(
      "streamgate_publish_latency_seconds",
      "Time from a publish request received to its events accepted by the broker",
      {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
       10});
}

void publish(Context& ctx, metrics::Histogram& latency, const HttpRequest& req, Reply reply) {
  const auto received = std::chrono::steady_clock::now();
  ctx.metrics->publish_requests.inc();
  if (auto refused = node::check_api_key(ctx, req)) {
    ctx.metrics->publish_errors.inc();
    reply(std::move(*refused));
    return;
  }
  protocol::PublishErrorDetail where;
  auto parsed = protocol::parse_publish(req.body, ctx.settings.max_batch, &where);
  if (!parsed) {
    ctx.metrics->publish_errors.inc();
    reply(bad_publish_body(parsed.error(), where));
    return;
  }
  for (std::size_t i = 0; i < parsed->items.size(); ++i) {
    const std::string& service = parsed->items[i].service;
    const std::size_t index = parsed->batch ? i : kNoIndex;
    // Reserved first: whether --services lists the name must not matter.
    const bool reserved = reserved_service(service);
    if (reserved || !ctx.service_allowed(service)) {
      ctx.metrics->publish_errors.inc();
      reply(reserved ? publish_rejected("reserved_service",
                                        "only the server publishes to " + service, "service", index)
                     : publish_rejected("unknown_service", "no such service: " + service, "service",
                                        index));
      return;
    }
  }
  if (auto refused = refuse_over_publish_rate(ctx, *parsed)) {
    ctx.metrics->publish_errors.inc();
    reply(std::move(*refused));
    return;
  }
  if (!parsed->batch) {
    // One event, the usual request: its answer needs no shared state to collect it in.
    auto& item = parsed->items.front();
    broker::PublishInput input{std::move(item.event), std::move(item.data), std::move(item.user),
                               std::move(item.event_key)};
    broker::Channel channel{std::move(item.org), std::move(item.service)};
    ctx.broker.publish(channel, std::move(input),
                       [&ctx, &latency, received, reply = std::move(reply), org = channel.org,
                        service = channel.topic](Result<broker::PublishResult> result) {
                         if (!result) return reply(broker_rejected(ctx, org, service, 1));
                         latency.observe(seconds_since(received));
                         ctx.metrics->events_published.inc(result->duplicate ? 0 : 1);
                         if (ctx.usage != nullptr && !result->duplicate) {
                           ctx.usage->add(org, tenancy::UsageField::kEventsPublished, 1,
                                          tenancy::UsageClock::now());
                         }
                         reply(json_ok(id_answer(std::move(result->id))));
                       });
    return;
  }
  auto batch = std::make_shared<PublishBatch>();
  batch->ids.resize(parsed->items.size());
  batch->waiting = parsed->items.size();
  batch->batch = parsed->batch;
  batch->org = parsed->items.front().org;
  batch->service = parsed->items.front().service;
  batch->reply = std::move(reply);
  batch->ctx = &ctx;
  batch->latency = &latency;
  batch->received = received;
  for (std::size_t i = 0; i < parsed->items.size(); ++i) {
    auto& item = parsed->items[i];
    broker::PublishInput input{std::move(item.event), std::move(item.data), std::move(item.user),
                               std::move(item.event_key)};
    std::string org = item.org;
    ctx.broker.publish(broker::Channel{std::move(item.org), std::move(item.service)},
                       std::move(input),
                       [batch, i, org = std::move(org)](Result<broker::PublishResult> result) {
                         if (result) {
                           batch->ids[i] = result->id;
                           if (!result->duplicate) batch->fresh.fetch_add(1);
                           if (!result->duplicate && batch->ctx->usage != nullptr) {
                             batch->ctx->usage->add(org, tenancy::UsageField::kEventsPublished, 1,
                                                    tenancy::UsageClock::now());
                           }
                         } else {
                           batch->failed = true;
                         }
                         if (batch->waiting.fetch_sub(1) == 1) batch->finish();
                       });
  }
}

}  // namespace

void add_route(net::HttpRoutes& routes, std::function<bool(std::string_view)> matches,
               std::string_view method, std::function<void(const HttpRequest&, Reply)> handler) {
  routes.add(std::move(matches)).handle = [method, handler = std::move(handler)](
                                              const HttpRequest& req, Reply reply) {
    if (req.method == method || (method == "GET" && req.method == "HEAD")) {
      return handler(req, std::move(reply));
    }
    auto r = json_error(405, "method_not_allowed", "use " + std::string(method));
    r.headers.emplace_back("Allow", std::string(method));
    reply(std::move(r));
  };
}

void add_routes(net::HttpRoutes& routes, Context& ctx) {
  // Each path answers one method (GET also answers HEAD); any other gets 405 with Allow.
  auto add = [&routes](std::function<bool(std::string_view)> matches, std::string_view method,
                       std::function<void(const HttpRequest&, Reply)> handler) {
    add_route(routes, std::move(matches), method, std::move(handler));
  };
  add(net::path_is("/v2/realtime/publish"), "POST",
      [&ctx, &latency = publish_latency(ctx)](const HttpRequest& req, Reply reply) {
        publish(ctx, latency, req, std::move(reply));
      });
  add(net::path_is("/v2/realtime/metrics"), "GET",
      [&ctx](const HttpRequest& req, Reply reply) { handle_metrics(ctx, req, std::move(reply)); });
  // What pages call with their user's token: CORS around the method check, so that a
  // preflight (OPTIONS) is answered rather than refused with 405.
  auto add_for_browsers = [&](std::function<bool(std::string_view)> matches,
                              std::function<void(const HttpRequest&, Reply)> handler) {
    add(std::move(matches), "GET", std::move(handler));
    net::HttpRoute& route = routes.routes.back();
    route.handle = node::with_browser_cors(ctx, std::move(route.handle));
  };
  add_for_browsers(
      net::path_is("/v2/realtime/presence"),
      [&ctx](const HttpRequest& req, Reply reply) { handle_presence(ctx, req, std::move(reply)); });
  add_for_browsers(is_chat_api_path, [&ctx](const HttpRequest& req, Reply reply) {
    handle_chat_api(ctx, req, std::move(reply));
  });
  for (auto [path, method] : {std::pair{kDisconnectPath, "POST"}, std::pair{kRevokePath, "POST"},
                              std::pair{kHistoryPath, "GET"}, std::pair{kChannelsPath, "GET"},
                              std::pair{kConnectionsPath, "GET"}}) {
    add(net::path_is(std::string(path)), method, [&ctx, path](const HttpRequest& req, Reply reply) {
      handle_control_api(ctx, path, req, std::move(reply));
    });
  }
  add_org_limits_routes(routes, ctx);
  add_usage_routes(routes, ctx);
  if (ctx.hub != nullptr) start_control(ctx);
}

void add_health_routes(net::HttpRoutes& routes, Context& ctx) {
  add_route(routes, net::path_is("/healthz"), "GET",
            [](const HttpRequest&, Reply reply) { reply(json_ok("{\"status\":\"ok\"}")); });
  add_route(routes, net::path_is("/readyz"), "GET", [&ctx](const HttpRequest&, Reply reply) {
    if (ctx.draining.load()) {
      HttpResponse r = json_ok("{\"status\":\"draining\"}");
      r.status = 503;
      reply(std::move(r));
    } else if (!ctx.broker.stats().healthy) {
      reply(json_error(503, "broker_unavailable", "the broker is not reachable"));
    } else if (ctx.jwk_set && !ctx.jwk_set->loaded()) {
      reply(json_error(503, "jwks_unavailable", "the --jwks-url JWK Set has not been fetched yet"));
    } else {
      reply(json_ok("{\"status\":\"ready\"}"));
    }
  });
}

}  // namespace sg::api
