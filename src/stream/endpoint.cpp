#include "stream/endpoint.hpp"

#include "hub/hub.hpp"
#include "node/context.hpp"
#include "node/quota.hpp"
#include "node/upgrade.hpp"
#include "stream/sse_connection.hpp"
#include "stream/stream_session.hpp"

#include <variant>

namespace sg::stream {

namespace {
// A channel frees up when the org's last connection on it leaves, which nobody can predict: a
// few seconds keeps a reconnecting EventSource from hammering the node.
constexpr std::int64_t kChannelQuotaRetryAfterSeconds = 5;
}  // namespace

void add_routes(net::HttpRoutes& routes, node::Context& ctx) {
  routes.add(net::path_is(std::string(kStreamPath))).upgrade = node::upgrade_route(
      ctx, [&ctx](net::Worker& worker, boost::asio::ip::tcp::socket socket,
                  auth::Principal principal, std::string response, std::string leftover) {
        auto session =
            std::make_shared<StreamSession>(worker, std::move(socket), ctx.websocket, ctx,
                                            std::move(principal), std::move(leftover));
        session->begin(std::move(response));
      });

  routes.add(net::path_is(std::string(kSsePath))).upgrade = [&ctx, options = sse_options(ctx)](
                                                                const net::HttpRequest& req) {
    SseRequest parsed;
    node::UpgradeDecision decision = node::decide_connection(
        ctx, req,
        [&](const net::HttpRequest& r,
            const auth::Principal& principal) -> std::optional<net::HttpResponse> {
          auto read = parse_sse_request(ctx, r, principal);
          if (auto* refused = std::get_if<net::HttpResponse>(&read)) {
            return std::move(*refused);
          }
          parsed = std::move(std::get<SseRequest>(read));
          // The org's channel quota, as a stream's subscribe checks it (with Redis, the
          // channels its connections on other nodes hold count too).
          const std::uint64_t max = ctx.quotas->limit(principal.org, tenancy::Quota::kMaxChannels);
          const auto budget = ctx.quotas->channel_budget(principal.org, parsed.services, max);
          if (budget.refused ||
              !ctx.hub->channels_within_quota(principal.org, budget.topics, budget.max)) {
            return node::quota_exceeded(ctx, tenancy::Quota::kMaxChannels,
                                        kChannelQuotaRetryAfterSeconds);
          }
          return std::nullopt;
        });
    net::Upgrade upgrade;
    if (decision.reject) {
      upgrade.reject = std::move(decision.reject);
      return upgrade;
    }
    upgrade.accept = [&ctx, options, principal = std::move(decision.principal),
                      parsed = std::move(parsed),
                      origin = req.has_origin ? std::string(req.origin) : std::string()](
                         net::Worker& worker, boost::asio::ip::tcp::socket socket,
                         std::string /*leftover*/) mutable {
      auto connection = std::make_shared<SseConnection>(worker, std::move(socket), options, ctx,
                                                        std::move(principal), std::move(parsed));
      connection->begin(origin);
    };
    return upgrade;
  };
}

}  // namespace sg::stream
