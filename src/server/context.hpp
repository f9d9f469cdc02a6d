// The process-wide state every connection reads: settings, verifiers, hub, broker, metrics.
// Built once by the Server before workers start; immutable afterwards except where members
// are themselves thread-safe (hub, broker, metrics, `shutting_down`).
#pragma once

#include "auth/auth.hpp"
#include "broker/broker.hpp"
#include "config/config.hpp"
#include "hub/hub.hpp"
#include "metrics/metrics.hpp"
#include "upload/upload.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <string>

namespace sg::chat {
class Registry;
}

namespace sg::server {

struct ServerMetrics {
  metrics::Counter& connections_total;
  metrics::Counter& events_published;
  metrics::Counter& publish_requests;
  metrics::Counter& publish_errors;
  metrics::Counter& slow_consumer_closes;
  metrics::Counter& http_requests;
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
  chat::Registry* chat = nullptr;  // set with the hub
  // Document uploads; null = disabled. Thread-safe; callbacks run on its own thread.
  upload::Manager* uploads = nullptr;
  bool any_service = true;  // --services is "*"
  std::atomic<bool> shutting_down{false};
  std::atomic<std::size_t> upload_sessions{0};  // open upload WebSockets, for the shutdown drain
  std::string node_name = {};  // host:port, how this node names itself in the cluster view

  // True for valid names in --services (any, with "*"), and for kUploadsService whenever
  // uploads are enabled: it only ever carries events targeted at their uploader.
  bool service_allowed(std::string_view service) const;
};

std::unique_ptr<ServerMetrics> make_server_metrics(metrics::Registry& registry);

}  // namespace sg::server
