// Redis brokers for tests: on the shared private redis-server of the test binary
// (RedisServer::shared(), tests keep apart by using a fresh org each), or on any URL.
#pragma once

#include "broker/broker.hpp"
#include "log/log.hpp"
#include "support/redis_server.hpp"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

namespace sg::broker {

// "redis connected" per broker is noise in a test's output; losses and refusals still show.
inline void quiet_broker_logs() {
  sg::log::set_level(sg::log::Level::kWarn);
}

// A Redis broker for `options` as given (e.g. a private RedisServer's URL). Throws when the
// options are refused: gtest reports the message as the test's failure.
inline std::unique_ptr<Broker> make_redis_broker_or_throw(const RedisBrokerOptions& options) {
  quiet_broker_logs();
  auto broker = make_redis_broker(options);
  if (!broker) throw std::runtime_error("make_redis_broker: " + broker.error().message());
  return std::move(*broker);
}

// A Redis broker on the test binary's shared redis-server. Throws when redis-server can't be
// started.
inline std::unique_ptr<Broker> make_test_redis_broker(RedisBrokerOptions options) {
  options.url = sg::test::RedisServer::shared().url();
  return make_redis_broker_or_throw(options);
}

inline std::unique_ptr<Broker> make_test_redis_broker(std::size_t history,
                                                      std::chrono::seconds history_ttl) {
  RedisBrokerOptions options;
  options.history = history;
  options.history_ttl = history_ttl;
  return make_test_redis_broker(options);
}

}  // namespace sg::broker
