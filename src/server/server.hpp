// server: the network edge. Accepts TCP on the configured address, serves the HTTP API
// (publish, metrics, health) and upgrades /v2/realtime/stream to WebSocket sessions that live
// on one worker thread each. Owns the workers; main constructs one Server, calls run() from the
// main thread, and stop() (from any thread) on SIGTERM.
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
  // Stops accepting, closes every WebSocket with 1001, and lets run() return once they are
  // closed or shutdown_grace has passed. Safe from any thread, idempotent.
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sg::server
