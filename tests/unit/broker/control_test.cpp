// The brokers' control channel (producer requests that reach every node) and stored
// revocations: the memory broker answers questions with its own handler and has nobody to
// broadcast to; Redis brokers sharing a key prefix hear each other's broadcasts (never their
// own), answer every question, and hand stored revocations to a node that starts later.
#include "broker/broker.hpp"

#include "core/core.hpp"
#include "support/broker_calls.hpp"
#include "support/redis_broker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <mutex>
#include <thread>

namespace sg::broker {
namespace {

using namespace std::chrono_literals;

// Collects what a node's control handler was sent; answers questions with `name`.
struct Listener {
  std::mutex mu;
  std::vector<std::string> heard;

  ControlHandler handler(std::string name) {
    return [this, name](std::string_view message, std::function<void(std::string)> answer) {
      {
        std::lock_guard lock(mu);
        heard.emplace_back(message);
      }
      if (answer) answer(name + ":" + std::string(message));
    };
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mu);
    return heard;
  }
};

template <class F>
bool eventually(F condition, std::chrono::milliseconds timeout = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

Result<std::vector<std::string>> ask(Broker& broker, std::string question,
                                     std::chrono::milliseconds timeout = 2s) {
  std::promise<Result<std::vector<std::string>>> promise;
  auto future = promise.get_future();
  broker.ask_nodes(std::move(question), timeout,
                   [&promise](Result<std::vector<std::string>> r) { promise.set_value(r); });
  EXPECT_EQ(future.wait_for(kWait), std::future_status::ready);
  return future.get();
}

Result<ControlReach> broadcast(Broker& broker, std::string message) {
  std::promise<Result<ControlReach>> promise;
  auto future = promise.get_future();
  broker.broadcast_control(std::move(message),
                           [&promise](Result<ControlReach> r) { promise.set_value(r); });
  EXPECT_EQ(future.wait_for(kWait), std::future_status::ready);
  return future.get();
}

// Brokers that share a control channel and revocations only with each other.
RedisBrokerOptions isolated(const std::string& prefix) {
  RedisBrokerOptions options;
  options.key_prefix = prefix;
  options.presence_ttl = 1500ms;
  return options;
}

TEST(MemoryBrokerControl, AsksItsOwnHandlerAndBroadcastsToNobody) {
  auto broker = make_memory_broker({});
  Listener listener;
  broker->set_control_handler(listener.handler("here"));
  const auto answers = ask(*broker, "q1");
  ASSERT_TRUE(answers);
  EXPECT_EQ(*answers, std::vector<std::string>{"here:q1"});
  const auto reach = broadcast(*broker, "b1");
  ASSERT_TRUE(reach);
  EXPECT_EQ(*reach, ControlReach::kThisNode);
  EXPECT_EQ(listener.snapshot(), std::vector<std::string>{"q1"});
  broker->set_control_handler(nullptr);
  EXPECT_FALSE(ask(*broker, "q2"));
}

TEST(RedisBrokerControl, BroadcastReachesEveryOtherNodeButNotTheSender) {
  const std::string prefix = "ctl" + core::random_hex(4) + ":";
  auto a = make_test_redis_broker(isolated(prefix));
  auto b = make_test_redis_broker(isolated(prefix));
  auto c = make_test_redis_broker(isolated(prefix));
  auto elsewhere = make_test_redis_broker(isolated("other" + prefix));
  Listener at_a, at_b, at_c, at_elsewhere;
  a->set_control_handler(at_a.handler("a"));
  b->set_control_handler(at_b.handler("b"));
  c->set_control_handler(at_c.handler("c"));
  elsewhere->set_control_handler(at_elsewhere.handler("x"));
  // The control subscription is made when the Pub/Sub connection comes up: retry until heard.
  ASSERT_TRUE(eventually([&] {
    const auto reach = broadcast(*a, "ping");
    EXPECT_TRUE(reach && *reach == ControlReach::kCluster);
    return !at_b.snapshot().empty() && !at_c.snapshot().empty();
  }));
  const auto reach = broadcast(*a, "disconnect alice");
  ASSERT_TRUE(reach);
  EXPECT_TRUE(eventually([&] {
    return at_b.snapshot().back() == "disconnect alice" &&
           at_c.snapshot().back() == "disconnect alice";
  }));
  EXPECT_TRUE(at_a.snapshot().empty());
  EXPECT_TRUE(at_elsewhere.snapshot().empty());
}

TEST(RedisBrokerControl, QuestionIsAnsweredByEveryLiveNodeTheAskerIncluded) {
  const std::string prefix = "ctl" + core::random_hex(4) + ":";
  auto a = make_test_redis_broker(isolated(prefix));
  auto b = make_test_redis_broker(isolated(prefix));
  auto c = make_test_redis_broker(isolated(prefix));
  Listener at_a, at_b, at_c;
  a->set_control_handler(at_a.handler("a"));
  b->set_control_handler(at_b.handler("b"));
  c->set_control_handler(at_c.handler("c"));
  for (auto* node : {a.get(), b.get(), c.get()}) {
    node->set_node_stats_source([] { return std::string("{}"); });
  }
  std::vector<std::string> got;
  ASSERT_TRUE(eventually([&] {
    auto answers = ask(*b, "channels?");
    if (!answers) return false;
    got = *answers;
    return got.size() == 3;
  }));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"a:channels?", "b:channels?", "c:channels?"}));
  for (auto* node : {a.get(), b.get(), c.get()}) node->set_node_stats_source(nullptr);
}

TEST(RedisBrokerControl, QuestionNobodyAnswersEndsAtTheTimeoutWithWhatCame) {
  const std::string prefix = "ctl" + core::random_hex(4) + ":";
  auto a = make_test_redis_broker(isolated(prefix));
  // No handler: nobody answers, the ask still ends.
  const auto started = std::chrono::steady_clock::now();
  const auto answers = ask(*a, "anyone?", 200ms);
  ASSERT_TRUE(answers);
  EXPECT_TRUE(answers->empty());
  EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms);
}

TEST(RedisBrokerControl, StoredRevocationsAreLoadedByANodeThatStartsLater) {
  const std::string prefix = "ctl" + core::random_hex(4) + ":";
  auto a = make_test_redis_broker(isolated(prefix));
  const auto now = std::chrono::system_clock::now();
  for (const auto& [org, user, seconds] :
       {std::tuple{"o/1", "al/ice", 60}, std::tuple{"o", "1/al/ice", 60},
        std::tuple{"o", "gone", -1}}) {
    std::promise<Result<void>> stored;
    a->store_revocation(Revocation{org, user, 1234, now + std::chrono::seconds(seconds)},
                        [&stored](Result<void> r) { stored.set_value(r); });
    EXPECT_TRUE(stored.get_future().get());
  }
  auto late = make_test_redis_broker(isolated(prefix));
  std::promise<std::vector<Revocation>> loaded;
  std::once_flag once;
  late->set_revocation_sink(10, [&](std::vector<Revocation> list) {
    std::call_once(once, [&] { loaded.set_value(std::move(list)); });
  });
  auto future = loaded.get_future();
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  auto list = future.get();
  std::sort(list.begin(), list.end(),
            [](const Revocation& x, const Revocation& y) { return x.org < y.org; });
  // The expired one is left out; org and user stay apart whatever '/' they hold.
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].org, "o");
  EXPECT_EQ(list[0].user, "1/al/ice");
  EXPECT_EQ(list[1].org, "o/1");
  EXPECT_EQ(list[1].user, "al/ice");
  EXPECT_EQ(list[1].issued_before, 1234);
  late->set_revocation_sink(0, nullptr);
}

}  // namespace
}  // namespace sg::broker
