// server: the wiring. Builds the node's Context (verifier, hub, chat registry, upload manager)
// and its route table (routes.hpp: the api, stream and uploads modules each add theirs), owns
// the workers (net::Worker), accepts TCP on the configured address and hands each connection
// to a worker's HTTP session, and runs the drain and the shutdown. main constructs one Server,
// calls run() from the main thread, and drain() (from any thread) on SIGTERM, stop() on a
// second signal.
#pragma once

#include "config/config.hpp"

#include <cstdint>
#include <memory>

namespace sg::broker {
class Broker;
}

namespace sg::server {

class Server {
 public:
  // Binds the listening socket (throws std::runtime_error with a clear message when it can't:
  // start-up failures end the process). Does not accept until run(). `broker` must outlive the
  // server and be quiesced (Broker::quiesce) after run() returns and before the server is
  // destroyed: its callbacks post to the workers and reach the hub.
  Server(const config::Settings& settings, broker::Broker& broker);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const;

  // Starts the workers and blocks until stop() has drained them.
  void run();
  // Begins the drain period (--drain-period): /readyz and new WebSocket upgrades answer 503,
  // HTTP is still served, open WebSockets are closed with 1001 spread evenly over the period;
  // at its end, stop(). With a period of 0, stop() at once. Safe from any thread, idempotent.
  void drain();
  // Ends a drain at once, or shuts down without one: stops accepting, closes every WebSocket
  // with 1001, and lets run() return once they are closed and every HTTP request read has been
  // answered, or shutdown_grace has passed. Safe from any thread, idempotent.
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sg::server
