// streamgate's entry point: read settings, wire broker and server, run until SIGTERM/SIGINT.
#include "auth/auth.hpp"
#include "broker/broker.hpp"
#include "config/config.hpp"
#include "core/core.hpp"
#include "log/log.hpp"
#include "server/server.hpp"

#include <pthread.h>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>

namespace {

// Printed in --dev mode so a newcomer can connect at once. Goes to stdout, not the log.
void print_dev_hints(const sg::config::Settings& s, std::uint16_t port) {
  const auto exp = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch() + std::chrono::hours(24))
                       .count();
  const std::string token = sg::auth::mint_hs256(
      "{\"sub\":\"dev-user\",\"org_id\":456,\"exp\":" + std::to_string(exp) + "}", s.jwt_secret);
  // Shell lines to paste as they are: the README's commands use $TOKEN and $API_KEY, and npx
  // fetches wscat where it is not installed.
  std::printf(
      "\nstreamgate --dev: a throwaway secret and API key were generated for this run; the token "
      "is for org 456, user dev-user, valid 24 h. In another terminal:\n\n"
      "  export TOKEN='%s' API_KEY='%s'\n"
      "  npx --yes wscat -c \"ws://127.0.0.1:%u/v2/realtime/stream?access_token=$TOKEN\"\n"
      "  # then type {\"services\":[\"finance\"],\"version\":1} at wscat's > prompt\n\n"
      "and publish from a third (after the same export line):\n\n"
      "  curl -s -H \"Authorization: Bearer $API_KEY\" -d "
      "'{\"orgId\":456,\"service\":\"finance\",\"event\":\"invoice.paid\",\"data\":{\"amount\":42}}"
      "' http://127.0.0.1:%u/v2/realtime/publish\n\n",
      token.c_str(), s.api_keys.front().c_str(), port, port);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  auto outcome = sg::config::parse(argc, argv);
  if (outcome.kind == sg::config::ParseOutcome::Kind::kExit) {
    std::fputs(outcome.message.c_str(), outcome.exit_code == 0 ? stdout : stderr);
    if (!outcome.message.empty() && outcome.message.back() != '\n') {
      std::fputc('\n', outcome.exit_code == 0 ? stdout : stderr);
    }
    return outcome.exit_code;
  }
  const sg::config::Settings& settings = outcome.settings;
  sg::log::Level level = sg::log::Level::kInfo;
  sg::log::parse_level(settings.log_level, level);
  sg::log::set_level(level);
  if (!settings.config_file.empty()) {
    sg::log::info("app", "config loaded", {{"file", settings.config_file}});
  }

  // Signals are taken by one thread with sigwait; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  try {
    std::unique_ptr<sg::broker::Broker> broker;
    if (settings.broker == "memory") {
      broker = sg::broker::make_memory_broker(
          {settings.history, std::chrono::seconds(settings.history_ttl_seconds)});
    } else {
      sg::broker::RedisBrokerOptions options;
      options.url = settings.broker;
      options.history = settings.history;
      options.history_ttl = std::chrono::seconds(settings.history_ttl_seconds);
      options.presence_ttl = std::chrono::milliseconds(settings.presence_ttl_ms);
      options.wait_replicas = settings.redis_wait_replicas;
      options.tls_ca_file = settings.redis_tls_ca;
      options.tls_cert_file = settings.redis_tls_cert;
      options.tls_key_file = settings.redis_tls_key;
      auto redis = sg::broker::make_redis_broker(options);
      // The URL itself stays out of the message: it may carry a password.
      if (!redis && redis.error() == sg::broker::BrokerError::kBadTls) {
        throw std::runtime_error(
            "--redis-tls-ca/--redis-tls-cert/--redis-tls-key: cannot load the TLS settings for "
            "rediss:// (a missing or unreadable file, not PEM, or a key that doesn't match the "
            "certificate)");
      }
      if (!redis) {
        throw std::runtime_error(
            "--broker: not a usable URL; expected redis://[[user]:password@]host[:port][/db] "
            "or rediss://… for TLS, redis-cluster://[[user]:password@]host[:port][,…], or "
            "redis-sentinel://[[user]:password@]host[:port][,…]/<master-name>[/db]");
      }
      broker = std::move(*redis);
    }
    sg::server::Server server(settings, *broker);
    if (settings.dev) print_dev_hints(settings, server.port());

    // The first signal starts the drain (--drain-period); another one, say an impatient
    // operator's second Ctrl-C, ends it at once.
    std::atomic<bool> finished{false};
    std::thread signal_thread([&server, &finished, signals] {
      for (bool first = true;; first = false) {
        int sig = 0;
        sigwait(&signals, &sig);
        if (finished.load()) return;
        sg::log::info("app", "signal received",
                      {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
                       {"action", first ? "drain" : "stop now"}});
        if (first) {
          server.drain();
        } else {
          server.stop();
        }
      }
    });
    server.run();
    // run() returned: the server is drained. Wake the signal thread, which waits for a next
    // signal either way.
    finished.store(true);
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
    // The broker outlives the server (declared first), but its callbacks post to the server's
    // workers and reach its hub: a Redis reply still in flight would land in freed memory
    // while the server is destroyed. Quiescing runs or fails every pending callback now, while
    // the server is whole, and joins the broker's thread; the server's destructor then only
    // makes harmless calls (unsubscribe, clear the stats source).
    broker->quiesce();
  } catch (const std::exception& e) {
    sg::log::error("app", "fatal", {{"error", e.what()}});
    std::fprintf(stderr, "streamgate: %s\n", e.what());
    return 1;
  }
  return 0;
}
