// The Redis broker's SharedStore: org quota overrides and usage counters in Redis, sent over
// the broker's command connection (or the cluster router) through `run`.
#pragma once

#include "broker/broker.hpp"
#include "broker/redis_connection.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sg::broker::redis {

// Sends one command from any thread; the handler runs on the broker's thread (or at once with
// kShuttingDown after quiesce). Every key of a command is in the same hash slot.
using RunCommand = std::function<void(std::vector<std::string> args, ReplyHandler done)>;

std::unique_ptr<SharedStore> make_redis_store(std::string key_prefix, RunCommand run);

}  // namespace sg::broker::redis
