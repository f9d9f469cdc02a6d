// --jwks-url: keeps an auth::JwkSet filled from an identity provider's JWK Set URL (http or
// https). Fetches on its own thread — at start (retrying with backoff until a set loads), every
// --jwks-refresh seconds, and when a token names an unknown kid (at most once per
// --jwks-min-refresh) — so no worker ever waits on the network. A fetch that fails, times out,
// is over --jwks-max-bytes or holds no usable key keeps the last good set; it is logged and
// counted (streamgate_jwks_refresh_failures_total). Built and owned by the Server.
#pragma once

#include "auth/auth.hpp"
#include "metrics/metrics.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace boost::asio {
class io_context;
}

namespace sg::node {

struct JwksFetcherOptions {
  std::string url;                    // http://host[:port]/path or https://…
  std::chrono::seconds refresh{300};  // --jwks-refresh
  std::chrono::seconds min_refresh{
      30};                            // --jwks-min-refresh: unknown-kid fetches at most this often
  std::uint64_t max_bytes = 1 << 20;  // --jwks-max-bytes: the response body's bound
  std::chrono::seconds timeout{10};   // --jwks-timeout: one fetch, connect to last byte
  std::string ca_file;                // --jwks-ca-file; empty: the system trust store
};

// A JWK Set URL taken apart; nullopt when it is not http(s)://host[:port][/path] (no user
// info, no fragment).
struct JwksUrl {
  bool tls = false;
  std::string host;  // without the brackets of an IPv6 literal
  std::string port;  // "80" / "443" when the URL names none
  std::string target;
};
std::optional<JwksUrl> parse_jwks_url(std::string_view url);

// The delay before the next attempt after `failures` failed ones in a row (1 s, doubling,
// at most 60 s and never more than `refresh`).
std::chrono::seconds jwks_backoff(std::uint32_t failures, std::chrono::seconds refresh);

class JwksFetcher {
 public:
  // Throws std::runtime_error (start-up) for a URL parse_jwks_url refuses or a CA file that
  // doesn't load. The first fetch starts at once; `set->on_unknown_kid` is wired to
  // request_refresh.
  JwksFetcher(JwksFetcherOptions options, std::shared_ptr<auth::JwkSet> set,
              metrics::Registry& registry);
  ~JwksFetcher();  // stops the thread (an open fetch is abandoned) and joins it
  JwksFetcher(const JwksFetcher&) = delete;
  JwksFetcher& operator=(const JwksFetcher&) = delete;

  // A token named a kid the set lacks: fetch again, at most once per min_refresh (misses while
  // one is pending or running are folded into it). Any thread; cheap.
  void request_refresh();

 private:
  struct Tls;
  void run();
  // One GET; the body, or why not (for the log).
  std::optional<std::string> fetch(std::string& why);

  JwksFetcherOptions options_;
  JwksUrl url_;
  std::shared_ptr<auth::JwkSet> set_;
  std::unique_ptr<Tls> tls_;
  metrics::Counter& fetches_;
  metrics::Counter& failures_;

  // Set by request_refresh, cleared when a fetch ends: the misses it answered.
  std::atomic<bool> miss_{false};
  // Set by the destructor before it stops the open fetch's io_context: each step of a fetch
  // checks it after restarting that io_context, so a stop between two steps is not lost.
  std::atomic<bool> quit_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;                          // under mu_
  boost::asio::io_context* current_io_ = nullptr;  // under mu_: the open fetch's, for stopping
  std::thread thread_;
};

}  // namespace sg::node
