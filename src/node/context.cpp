#include "node/context.hpp"

#include "chat/chat.hpp"
#include "protocol/protocol.hpp"

#include <algorithm>

namespace sg::node {

namespace {
constexpr std::string_view kAuthReasons[] = {
    "missing_token",      "malformed_token",     "unsupported_algorithm", "bad_signature",
    "token_expired",      "token_not_yet_valid", "missing_claim",         "bad_claim",
    "origin_not_allowed", "invalid_api_key",     "too_many_connections",  "bad_audience",
    "bad_issuer",         "refresh_mismatch",    "unknown_key",           "token_revoked",
};
constexpr std::uint16_t kCloseCodes[] = {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008,
                                         1009, 1011, 4001, 4002, 4003, 4004, 4008};
}  // namespace

std::unique_ptr<ServerMetrics> make_server_metrics(metrics::Registry& r) {
  auto m = std::unique_ptr<ServerMetrics>(new ServerMetrics{
      r.counter("streamgate_connections_total", "WebSocket connections accepted"),
      r.counter("streamgate_events_published_total", "Events accepted by the publish API"),
      r.counter("streamgate_publish_requests_total", "Publish API requests"),
      r.counter("streamgate_publish_errors_total", "Publish API requests answered with an error"),
      r.counter("streamgate_slow_consumer_closes_total",
                "Connections closed because their outbound queue passed --outbox-bytes"),
      {},
      {},
      r.counter("streamgate_closes_total", "WebSocket connections closed, by close code",
                {{"code", "other"}}),
  });
  for (auto reason : kAuthReasons) {
    m->auth_failures.emplace(std::string(reason),
                             &r.counter("streamgate_auth_failures_total",
                                        "Rejected connection or API requests, by reason",
                                        {{"reason", std::string(reason)}}));
  }
  for (auto code : kCloseCodes) {
    m->closes.emplace(
        code, &r.counter("streamgate_closes_total", "WebSocket connections closed, by close code",
                         {{"code", std::to_string(code)}}));
  }
  return m;
}

void ServerMetrics::count_auth_failure(std::string_view reason) {
  if (auto it = auth_failures.find(reason); it != auth_failures.end()) it->second->inc();
}

void ServerMetrics::count_close(std::uint16_t code) {
  if (auto it = closes.find(code); it != closes.end()) {
    it->second->inc();
  } else {
    closes_other.inc();
  }
}

bool Context::service_allowed(std::string_view service) const {
  if (!protocol::is_valid_name(service)) return false;
  // Room channels are reached only through join, which checks the rooms claim and presence.
  if (chat::is_room_topic(service)) return false;
  if (any_service) return true;
  if (uploads && service == kUploadsService) return true;
  return std::find(settings.services.begin(), settings.services.end(), service) !=
         settings.services.end();
}

}  // namespace sg::node
