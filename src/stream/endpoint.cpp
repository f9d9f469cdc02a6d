#include "stream/endpoint.hpp"

#include "node/context.hpp"
#include "node/upgrade.hpp"
#include "stream/stream_session.hpp"

namespace sg::stream {

void add_routes(net::HttpRoutes& routes, node::Context& ctx) {
  routes.add(net::path_is(std::string(kStreamPath))).upgrade = [&ctx](const net::HttpRequest& req) {
    node::UpgradeDecision decision = node::decide_upgrade(ctx, req);
    net::Upgrade upgrade;
    if (decision.reject) {
      upgrade.reject = std::move(decision.reject);
      return upgrade;
    }
    upgrade.accept = [&ctx, principal = std::move(decision.principal),
                      response = std::move(decision.response)](net::Worker& worker,
                                                               boost::asio::ip::tcp::socket socket,
                                                               std::string leftover) mutable {
      auto session = std::make_shared<StreamSession>(worker, std::move(socket), ctx.websocket, ctx,
                                                     std::move(principal), std::move(leftover));
      session->begin(std::move(response));
    };
    return upgrade;
  };
}

}  // namespace sg::stream
