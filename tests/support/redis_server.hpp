// A private redis-server for tests: a free loopback port, its own temporary data directory,
// `appendonly yes`, never a system service. Can be stopped, killed, paused and restarted on
// the same port and data, for fault tests. Not thread-safe: drive it from the test's thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

namespace sg::test {

class RedisServer {
 public:
  // Starts redis-server ($STREAMGATE_TEST_REDIS_SERVER, else from PATH) and waits until it
  // answers PING. Throws std::runtime_error (with its log) when it can't.
  static std::unique_ptr<RedisServer> start();

  // One server per test binary, started on first use and stopped at exit. Tests that share
  // it must keep apart by key (e.g. a random org per test).
  static RedisServer& shared();

  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const;  // redis://127.0.0.1:<port>
  const std::string& dir() const { return dir_; }
  bool running() const { return pid_ > 0; }

  // SIGTERM and wait: Redis flushes its append-only file first, so a restart keeps the data.
  void stop();
  // SIGKILL and wait.
  void kill();
  // Starts again on the same port and data directory; waits for PING like start().
  void restart();
  // SIGSTOP / SIGCONT: the process keeps its sockets but answers nothing.
  void pause();
  void resume();

  // Sends one command on a fresh connection and returns its whole reply as RESP text
  // (":3\r\n", "+OK\r\n", "*2\r\n$1\r\na\r\n:1\r\n"). Throws std::runtime_error if
  // Redis can't be reached or doesn't answer within 2 s.
  std::string command(std::initializer_list<std::string_view> args) const;

 private:
  RedisServer(std::string binary, std::string dir, std::uint16_t port);
  void launch();
  void wait_ready() const;
  std::string log_tail() const;

  std::string binary_;
  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace sg::test
