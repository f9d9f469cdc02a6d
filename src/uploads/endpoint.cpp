#include "uploads/endpoint.hpp"

#include "node/browser_cors.hpp"
#include "node/context.hpp"
#include "node/upgrade.hpp"
#include "uploads/status_api.hpp"
#include "uploads/tus.hpp"
#include "uploads/upload_session.hpp"

namespace sg::uploads {

void add_routes(net::HttpRoutes& routes, Context& ctx) {
  routes.add(net::path_is(std::string(kUploadSocketPath))).upgrade = node::upgrade_route(
      ctx, [&ctx](net::Worker& worker, boost::asio::ip::tcp::socket socket,
                  auth::Principal principal, std::string response, std::string leftover) {
        start_upload_session(worker, std::move(socket), ctx, std::move(principal),
                             std::move(response), std::move(leftover));
      });
  // Upload progress is read by pages on other origins too (docs/protocol.md, CORS).
  routes.add(net::path_under(std::string(kUploadsPath))).handle =
      node::with_browser_cors(ctx, [&ctx](const HttpRequest& req, Reply reply) {
        handle_upload_status(ctx, req, std::move(reply));
      });
  auto& tus_route = routes.add(tus::is_tus_path);
  tus_route.handle = [&ctx](const HttpRequest& req, Reply reply) {
    tus::handle(ctx, req, std::move(reply));
  };
  tus_route.streams_body = tus::streams_body;
  tus_route.begin_body = [&ctx](const HttpRequest& req, net::Decide decide) {
    tus::begin_patch(ctx, req, std::move(decide));
  };
}

}  // namespace sg::uploads
