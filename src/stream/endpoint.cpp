#include "stream/endpoint.hpp"

#include "node/context.hpp"
#include "node/upgrade.hpp"
#include "stream/stream_session.hpp"

namespace sg::stream {

void add_routes(net::HttpRoutes& routes, node::Context& ctx) {
  routes.add(net::path_is(std::string(kStreamPath))).upgrade = node::upgrade_route(
      ctx, [&ctx](net::Worker& worker, boost::asio::ip::tcp::socket socket,
                  auth::Principal principal, std::string response, std::string leftover) {
        auto session =
            std::make_shared<StreamSession>(worker, std::move(socket), ctx.websocket, ctx,
                                            std::move(principal), std::move(leftover));
        session->begin(std::move(response));
      });
}

}  // namespace sg::stream
