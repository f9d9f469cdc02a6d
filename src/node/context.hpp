// node: what one streamgate node shares with every endpoint (stream, uploads, the HTTP API),
// and the checks each of them makes on who is asking (request_auth, upgrade). Context is the
// process-wide state every connection reads: settings, verifier, hub, broker, metrics. Built
// once by the Server before workers start; immutable afterwards except where members are
// themselves thread-safe (hub, broker, metrics, the drain flags). Its own module, below the
// endpoints, because all three read it and none may include another's or the server's.
#pragma once

#include "auth/auth.hpp"
#include "broker/broker.hpp"
#include "config/config.hpp"
#include "hub/hub.hpp"
#include "metrics/metrics.hpp"
#include "net/http_types.hpp"
#include "net/ws_connection.hpp"
#include "tenancy/tenancy.hpp"
#include "upload/upload.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <string>

namespace sg::chat {
class Registry;
}

namespace sg::node {

// The HTTP types every endpoint handler speaks, by their short names.
using net::HttpRequest;
using net::HttpResponse;
using net::json_error;
using net::json_ok;
using net::Reply;

struct ServerMetrics {
  metrics::Counter& connections_total;
  metrics::Counter& events_published;
  metrics::Counter& publish_requests;
  metrics::Counter& publish_errors;
  metrics::Counter& slow_consumer_closes;
  // Prometheus label values are fixed at start-up, so each reason/code has its own counter.
  std::map<std::string, metrics::Counter*, std::less<>> auth_failures;  // by reason
  std::map<std::uint16_t, metrics::Counter*> closes;                    // by close code
  metrics::Counter& closes_other;

  void count_auth_failure(std::string_view reason);
  void count_close(std::uint16_t code);
};

// The service on which a user's upload progress is published (events targeted at the uploader).
inline constexpr std::string_view kUploadsService = "uploads";

struct Context {
  config::Settings settings;
  std::shared_ptr<const auth::TokenVerifier> verifier;
  auth::OriginPolicy origins;
  broker::Broker& broker;
  metrics::Registry& registry;
  hub::Hub* hub = nullptr;  // set once workers exist
  std::unique_ptr<ServerMetrics> metrics;
  chat::Registry* chat = nullptr;     // set with the hub
  tenancy::Quotas* quotas = nullptr;  // per-org quotas; set with the hub, thread-safe
  tenancy::Usage* usage = nullptr;    // usage metering; set before the uploads, thread-safe
  // The node's own usage hours when the broker has no shared store (memory); else null.
  tenancy::UsageTable* usage_table = nullptr;
  // Document uploads; null = disabled. Thread-safe; callbacks run on its own thread.
  upload::Manager* uploads = nullptr;
  bool any_service = true;  // --services is "*"
  // The bounds of every WebSocket (stream and upload), from the settings.
  net::WsOptions websocket{};
  // Set on SIGTERM: /readyz and new WebSocket upgrades answer 503 while the drain period closes
  // the open WebSockets a few at a time; other HTTP is still served.
  std::atomic<bool> draining{false};
  // Set when the drain period ends (or at once with --drain-period 0, or on a second signal):
  // the listener closes and whatever is still open is closed now.
  std::atomic<bool> shutting_down{false};
  // HTTP requests read but not yet answered (a publish waiting on Redis, say): the shutdown
  // waits for them, within --shutdown-grace, so they get their answer before the workers stop.
  std::atomic<std::size_t> http_in_flight{0};
  std::string node_name = {};  // host:port, how this node names itself in the cluster view
  // --jwks-url's key set (null without it): /readyz answers 503 until it has loaded once.
  std::shared_ptr<const auth::JwkSet> jwk_set = nullptr;

  // True for valid names in --services (any, with "*"), and for kUploadsService whenever
  // uploads are enabled: it only ever carries events targeted at their uploader.
  bool service_allowed(std::string_view service) const;
};

std::unique_ptr<ServerMetrics> make_server_metrics(metrics::Registry& registry);

}  // namespace sg::node
