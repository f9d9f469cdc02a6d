// Calling a Broker from a test: each asynchronous call made synchronous with a bounded wait,
// and a Collector for what a subscription delivers. For any implementation, whose callbacks
// may run inline or on another thread. Header-only: only tests that link sg_broker use it.
#pragma once

#include "broker/broker.hpp"
#include "core/core.hpp"
#include "protocol/protocol.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace sg::broker {

// How long any one broker call or delivery may take before the test fails: long enough for
// a Redis broker under ASan on a loaded machine.
inline constexpr std::chrono::seconds kWait{15};

// A fresh org per call, so a broker with state outside the process starts every test empty.
inline Channel fresh_channel(std::string topic = "finance") {
  return Channel{"org" + core::random_hex(6), std::move(topic)};
}

inline PublishInput input(std::string event, std::string data = "{}") {
  PublishInput in;
  in.event = std::move(event);
  in.data = std::move(data);
  return in;
}

// The callback's result, or a failure of the test (and kUnavailable) when it never comes.
template <class T>
Result<T> wait_result(const std::shared_ptr<std::promise<Result<T>>>& promise) {
  auto future = promise->get_future();
  if (future.wait_for(kWait) != std::future_status::ready) {
    ADD_FAILURE() << "callback never ran";
    return make_error_code(BrokerError::kUnavailable);
  }
  return future.get();
}

inline Result<PublishResult> publish(Broker& broker, const Channel& channel, PublishInput in) {
  auto promise = std::make_shared<std::promise<Result<PublishResult>>>();
  broker.publish(channel, std::move(in),
                 [promise](Result<PublishResult> r) { promise->set_value(std::move(r)); });
  return wait_result(promise);
}

// Publishes an event that is not a duplicate and returns its id, failing the test when the
// publish fails.
inline std::string publish_id(Broker& broker, const Channel& channel, PublishInput in) {
  const auto result = publish(broker, channel, std::move(in));
  if (!result) {
    ADD_FAILURE() << "publish failed: " << result.error().message();
    return {};
  }
  EXPECT_FALSE(result->duplicate);
  return result->id;
}

inline Result<History> history(Broker& broker, const Channel& channel,
                               std::optional<Position> after) {
  auto promise = std::make_shared<std::promise<Result<History>>>();
  broker.history(channel, std::move(after),
                 [promise](Result<History> r) { promise->set_value(std::move(r)); });
  return wait_result(promise);
}

inline Result<std::vector<PresenceEntry>> presence(Broker& broker, const Channel& scope) {
  auto promise = std::make_shared<std::promise<Result<std::vector<PresenceEntry>>>>();
  broker.presence(
      scope, [promise](Result<std::vector<PresenceEntry>> r) { promise->set_value(std::move(r)); });
  return wait_result(promise);
}

inline std::uint64_t offset_of(const std::string& id) {
  const auto parsed = protocol::parse_event_id(id);
  return parsed ? parsed->offset : 0;
}

inline std::string epoch_of(const std::string& id) {
  const auto parsed = protocol::parse_event_id(id);
  return parsed ? parsed->epoch : std::string();
}

inline std::vector<std::uint64_t> offsets(const std::vector<EventPtr>& events) {
  std::vector<std::uint64_t> out;
  for (const auto& e : events) out.push_back(e->offset);
  return out;
}

inline std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> out;
  for (auto i = first; i <= last; ++i) out.push_back(i);
  return out;
}

// Records what a sink receives and notices if it is ever entered twice at once.
class Collector {
 public:
  Sink sink() {
    return [this](const EventPtr& event) {
      if (inside_.exchange(true)) overlapped_ = true;
      {
        std::lock_guard lock(mutex_);
        events_.push_back(event);
      }
      inside_ = false;
      cv_.notify_all();
    };
  }

  bool wait_for(std::size_t count, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return events_.size() >= count; });
  }

  std::vector<EventPtr> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<std::uint64_t> offsets() const { return broker::offsets(events()); }
  bool overlapped() const { return overlapped_; }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<EventPtr> events_;
  std::atomic<bool> inside_{false};
  std::atomic<bool> overlapped_{false};
};

// Subscribes and waits for on_ready, so everything published afterwards must arrive.
inline std::unique_ptr<Subscription> subscribe(Broker& broker, const Channel& channel,
                                               Collector& collector) {
  auto ready = std::make_shared<std::promise<void>>();
  auto subscription = broker.subscribe(channel, collector.sink(), [ready] { ready->set_value(); });
  EXPECT_NE(subscription, nullptr);
  EXPECT_EQ(ready->get_future().wait_for(kWait), std::future_status::ready);
  return subscription;
}

}  // namespace sg::broker
