// Redis brokers for the broker tests, on one private redis-server per test binary
// (tests/support). Tests keep apart by using a fresh org each.
#pragma once

#include "broker/broker.hpp"
#include "log/log.hpp"
#include "support/redis_server.hpp"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

namespace sg::broker {

// Throws when redis-server can't be started or the URL is refused: gtest reports the message
// as the test's failure.
// "redis connected" per broker is noise in a test's output; losses and refusals still show.
inline void quiet_broker_logs() {
  sg::log::set_level(sg::log::Level::kWarn);
}

inline std::unique_ptr<Broker> make_test_redis_broker(RedisBrokerOptions options) {
  quiet_broker_logs();
  options.url = sg::test::RedisServer::shared().url();
  auto broker = make_redis_broker(options);
  if (!broker) throw std::runtime_error("make_redis_broker: " + broker.error().message());
  return std::move(*broker);
}

inline std::unique_ptr<Broker> make_test_redis_broker(std::size_t history,
                                                      std::chrono::seconds history_ttl) {
  RedisBrokerOptions options;
  options.history = history;
  options.history_ttl = history_ttl;
  return make_test_redis_broker(options);
}

}  // namespace sg::broker
