// The process-wide state every connection reads: settings, verifiers, hub, broker, metrics.
// Built once by the Server before workers start; immutable afterwards except where members
// are themselves thread-safe (hub, broker, metrics, `shutting_down`).
#pragma once

#include "auth/auth.hpp"
#include "broker/broker.hpp"
#include "config/config.hpp"
#include "hub/hub.hpp"
#include "metrics/metrics.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <string>

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

struct Context {
  config::Settings settings;
  std::shared_ptr<const auth::TokenVerifier> verifier;
  auth::OriginPolicy origins;
  broker::Broker& broker;
  metrics::Registry& registry;
  hub::Hub* hub = nullptr;  // set once workers exist
  std::unique_ptr<ServerMetrics> metrics;
  bool any_service = true;  // --services is "*"
  std::atomic<bool> shutting_down{false};
  std::string node_name = {};  // host:port, how this node names itself in the cluster view

  bool service_allowed(std::string_view service) const;
};

std::unique_ptr<ServerMetrics> make_server_metrics(metrics::Registry& registry);

}  // namespace sg::server
