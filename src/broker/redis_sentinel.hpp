// The Redis broker's way to its primary through Redis Sentinel: it asks the Sentinels, in the
// URL's order, SENTINEL get-master-addr-by-name and hands the answer to the broker, whose
// connections verify it with ROLE; it listens for +switch-master on one Sentinel to hear of a
// failover at once, and asks again whenever the broker says it has no verified primary. A
// Sentinel that can't be reached, doesn't answer, doesn't know the master name, or whose
// answer doesn't verify for a connect timeout is left for the next one. Internal to the broker
// module; I/O thread only.
#pragma once

#include "broker/redis_connection.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sg::broker::redis {

class SentinelResolver {
 public:
  struct Handlers {
    // Where the primary is, as a Sentinel says: after each answer (often the same address
    // again) and on +switch-master.
    std::function<void(const std::string& host, std::uint16_t port)> on_primary;
  };

  // `base`: credentials, TLS, timings and the name prefix of the Sentinel connections (its
  // host and port are replaced per Sentinel, its db is not used).
  SentinelResolver(boost::asio::io_context& io, ConnectionOptions base, std::string master_name,
                   std::vector<std::pair<std::string, std::uint16_t>> sentinels, Handlers handlers);
  ~SentinelResolver();
  SentinelResolver(const SentinelResolver&) = delete;
  SentinelResolver& operator=(const SentinelResolver&) = delete;

  void start();
  void stop();

  // The broker's view of its primary. Unverified (the state after start()), the Sentinels
  // are asked at once and then every kSearchInterval until it is verified again; verified,
  // every kCheckInterval, in case a +switch-master was missed.
  void set_verified(bool verified);

  static constexpr std::chrono::milliseconds kSearchInterval{250};
  static constexpr std::chrono::milliseconds kCheckInterval{5000};

 private:
  void connect();
  // Leaves the current Sentinel for the next on the timer's next turn.
  void move_on(std::string_view why);
  void next_sentinel();
  void ask();
  void on_answer(std::uint64_t gen, const ErrorCode& ec, const redisReply* reply);
  void on_watch_up(std::uint64_t gen);
  void on_switch(std::string_view payload);
  void schedule(std::chrono::milliseconds after);
  void retire(std::unique_ptr<Connection> connection);

  boost::asio::io_context& io_;
  const ConnectionOptions base_;
  const std::string master_name_;
  const std::vector<std::pair<std::string, std::uint16_t>> sentinels_;
  const Handlers handlers_;
  boost::asio::steady_timer timer_;

  std::size_t current_ = 0;  // the Sentinel asked and watched
  // Bumped with each move to another Sentinel, so the old one's answers are ignored.
  std::uint64_t gen_ = 0;
  std::unique_ptr<Connection> ask_;    // SENTINEL commands
  std::unique_ptr<Connection> watch_;  // SUBSCRIBE +switch-master
  // Stopped connections whose cancelled operations may still complete: kept until they
  // certainly have (a few moves later).
  std::deque<std::unique_ptr<Connection>> retired_;
  std::chrono::steady_clock::time_point since_{};  // when the current Sentinel was chosen
  std::chrono::steady_clock::time_point unverified_since_{};
  std::string leave_reason_;  // set: the current Sentinel is to be left, for this reason
  std::size_t moves_ = 0;     // moves since a Sentinel last named the primary
  bool asking_ = false;
  std::uint64_t asks_ = 0;        // questions asked; the one in flight, if asking_
  std::uint64_t stale_asks_ = 0;  // answers to questions up to this one came too late
  bool verified_ = false;
  bool stopped_ = true;
  std::string last_host_;  // the last address handed to on_primary, for the log
  std::uint16_t last_port_ = 0;
};

}  // namespace sg::broker::redis
