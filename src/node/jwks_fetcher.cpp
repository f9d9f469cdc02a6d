#include "node/jwks_fetcher.hpp"

#include "log/log.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <stdexcept>

namespace sg::node {

namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

constexpr seconds kMaxBackoff{60};
constexpr std::uint32_t kHeaderLimit = 16 * 1024;

// One fetch's io_context, deadline and stop flag.
struct Steps {
  asio::io_context& io;
  const std::atomic<bool>& quit;  // set (before io.stop()) when the fetcher is destroyed
  Clock::time_point deadline;

  // Runs the asynchronous operation `start` begins until it completes, the deadline passes or
  // the fetcher stops; its error, or timed_out. After a timed_out the operation is still
  // pending: the caller must give up on `io` (its handler refers to this frame and is only
  // ever destroyed, never run).
  template <class Start>
  boost::system::error_code run(Start start) {
    boost::system::error_code result = asio::error::timed_out;
    bool done = false;
    start([&result, &done](boost::system::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    // restart() undoes a stop() made before it, but `quit` was set before that stop().
    io.restart();
    while (!done && !quit.load() && !io.stopped() && Clock::now() < deadline) {
      io.run_one_until(deadline);
    }
    return done ? result : boost::system::error_code(asio::error::timed_out);
  }
};

// GET over a connected (and, for https, handshaken) stream; the 200 response's body.
template <class Stream>
std::optional<std::string> exchange(Steps& steps, Stream& stream, const JwksUrl& url,
                                    std::uint64_t max_bytes, std::string& why) {
  http::request<http::empty_body> req{http::verb::get, url.target, 11};
  std::string host = url.host.find(':') != std::string::npos
                         ? std::string("[").append(url.host).append("]")
                         : url.host;
  if (url.port != (url.tls ? "443" : "80")) host.append(":").append(url.port);
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "streamgate");
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  if (auto ec =
          steps.run([&](auto handler) { http::async_write(stream, req, std::move(handler)); })) {
    why = std::string("request: ") + ec.message();
    return std::nullopt;
  }
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(max_bytes);
  if (auto ec = steps.run(
          [&](auto handler) { http::async_read(stream, buffer, parser, std::move(handler)); })) {
    why = ec == http::error::body_limit ? std::string("response over --jwks-max-bytes")
                                        : std::string("response: ") + ec.message();
    return std::nullopt;
  }
  const unsigned status = parser.get().result_int();
  if (status != 200) {
    why = std::string("HTTP status ") + std::to_string(status);
    return std::nullopt;
  }
  return std::move(parser.get().body());
}

bool connect(Steps& steps, tcp::socket& socket, const tcp::resolver::results_type& endpoints,
             std::string& why) {
  const boost::system::error_code ec = steps.run([&](auto handler) {
    asio::async_connect(
        socket, endpoints,
        [handler = std::move(handler)](boost::system::error_code e, const tcp::endpoint&) mutable {
          handler(e);
        });
  });
  if (ec) why = std::string("connect: ") + ec.message();
  return !ec;
}

// What the logs say the URL is: its query left out, which may carry a credential.
std::string url_for_log(const JwksUrl& url) {
  std::string out(url.tls ? "https://" : "http://");
  out.append(url.host.find(':') != std::string::npos ? std::string("[").append(url.host).append("]")
                                                     : url.host);
  out.append(":").append(url.port);
  out.append(url.target.substr(0, url.target.find('?')));
  return out;
}

}  // namespace

std::optional<JwksUrl> parse_jwks_url(std::string_view url) {
  JwksUrl out;
  if (url.starts_with("https://")) {
    out.tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  if (url.find('#') != std::string_view::npos) return std::nullopt;
  const std::size_t slash = std::min(url.find('/'), url.find('?'));
  std::string_view authority = url.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (out.target.front() == '?') out.target.insert(0, "/");
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  std::string_view port;
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
    }
  } else {
    const std::size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return std::nullopt;
  for (const char c : out.target) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return std::nullopt;
  }
  if (port.empty()) {
    out.port = out.tls ? "443" : "80";
  } else {
    if (port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    const int n = std::stoi(std::string(port));
    if (n < 1 || n > 65535) return std::nullopt;
    out.port = std::string(port);
  }
  return out;
}

seconds jwks_backoff(std::uint32_t failures, seconds refresh) {
  const std::uint32_t doublings = std::min<std::uint32_t>(failures == 0 ? 0 : failures - 1, 6);
  return std::max(seconds{1}, std::min({seconds{1} * (1u << doublings), kMaxBackoff, refresh}));
}

struct JwksFetcher::Tls {
  ssl::context context{ssl::context::tls_client};
};

JwksFetcher::JwksFetcher(JwksFetcherOptions options, std::shared_ptr<auth::JwkSet> set,
                         metrics::Registry& registry)
    : options_(std::move(options)),
      set_(std::move(set)),
      fetches_(registry.counter("streamgate_jwks_fetches_total",
                                "Fetches of the --jwks-url JWK Set, good or not.")),
      failures_(registry.counter("streamgate_jwks_refresh_failures_total",
                                 "Fetches of the --jwks-url JWK Set that failed (network, "
                                 "status, size, timeout, no usable key); the last good set "
                                 "stays in use.")) {
  const std::optional<JwksUrl> url = parse_jwks_url(options_.url);
  if (!url) {
    throw std::runtime_error(std::string("--jwks-url: not an http:// or https:// URL: ") +
                             options_.url);
  }
  url_ = *url;
  if (url_.tls) {
    tls_ = std::make_unique<Tls>();
    SSL_CTX_set_min_proto_version(tls_->context.native_handle(), TLS1_2_VERSION);
    tls_->context.set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (options_.ca_file.empty()) {
      tls_->context.set_default_verify_paths(ec);
    } else {
      tls_->context.load_verify_file(options_.ca_file, ec);
    }
    if (ec) {
      throw std::runtime_error(std::string("--jwks-ca-file: cannot load \"") + options_.ca_file +
                               "\": " + ec.message());
    }
  }
  set_->on_unknown_kid([this] { request_refresh(); });
  thread_ = std::thread([this] { run(); });
}

JwksFetcher::~JwksFetcher() {
  quit_.store(true);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (current_io_ != nullptr) current_io_->stop();
  }
  wake_.notify_all();
  thread_.join();
}

void JwksFetcher::request_refresh() {
  // Only the first miss of a pending fetch takes the lock: a flood of unknown kids costs one
  // atomic exchange each.
  if (miss_.exchange(true)) return;
  { std::lock_guard lock(mu_); }
  wake_.notify_one();
}

void JwksFetcher::run() {
  std::uint32_t failures = 0;
  Clock::time_point next = Clock::now();  // the periodic fetch, or the retry after a failure
  std::optional<Clock::time_point> last_start;
  log::info("auth", "fetching the JWK Set", {{"url", url_for_log(url_)}});
  for (;;) {
    {
      std::unique_lock lock(mu_);
      for (;;) {
        if (stopping_) return;
        Clock::time_point due = next;
        if (miss_.load()) {
          due = std::min(due, last_start ? *last_start + options_.min_refresh : Clock::now());
        }
        if (Clock::now() >= due) break;
        wake_.wait_until(lock, due);
      }
    }
    last_start = Clock::now();
    fetches_.inc();
    std::string why;
    std::optional<std::string> body = fetch(why);
    std::optional<std::size_t> keys;
    if (body) {
      if (Result<std::size_t> r = set_->replace(*body)) {
        keys = *r;
      } else {
        why = "not a JWK Set with a usable RS256/ES256 key";
      }
    }
    // The misses so far were for keys this fetch would have brought.
    miss_.store(false);
    const auto now = Clock::now();
    if (keys) {
      failures = 0;
      next = now + options_.refresh;
      log::info("auth", "JWK Set loaded", {{"url", url_for_log(url_)}, {"keys", *keys}});
      continue;
    }
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    failures_.inc();
    ++failures;
    seconds wait = jwks_backoff(failures, options_.refresh);
    const bool loaded = set_->loaded();
    // With a good set there is no hurry: the provider is not hammered while it is down.
    if (loaded) wait = std::min(std::max(wait, options_.min_refresh), options_.refresh);
    next = now + wait;
    log::warn("auth",
              loaded ? "JWK Set refresh failed; the last good set stays in use"
                     : "JWK Set fetch failed; tokens signed with its keys are refused "
                       "and /readyz answers 503 until one succeeds",
              {{"url", url_for_log(url_)},
               {"error", why},
               {"failures", failures},
               {"retry_in_s", wait.count()}});
  }
}

std::optional<std::string> JwksFetcher::fetch(std::string& why) {
  // The io_context is declared first so it outlives the sockets: a timed-out operation's
  // handler is destroyed with it, never run.
  asio::io_context io;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return std::nullopt;
    current_io_ = &io;
  }
  struct Forget {
    JwksFetcher& self;
    ~Forget() {
      std::lock_guard lock(self.mu_);
      self.current_io_ = nullptr;
    }
  } forget{*this};

  Steps steps{io, quit_, Clock::now() + options_.timeout};
  tcp::resolver resolver(io);
  tcp::resolver::results_type endpoints;
  boost::system::error_code ec = steps.run([&](auto handler) {
    resolver.async_resolve(url_.host, url_.port,
                           [&endpoints, handler = std::move(handler)](
                               boost::system::error_code e, tcp::resolver::results_type r) mutable {
                             endpoints = std::move(r);
                             handler(e);
                           });
  });
  if (ec) {
    why = std::string("resolve ") + url_.host + ": " + ec.message();
    return std::nullopt;
  }
  if (!url_.tls) {
    tcp::socket socket(io);
    if (!connect(steps, socket, endpoints, why)) return std::nullopt;
    return exchange(steps, socket, url_, options_.max_bytes, why);
  }
  ssl::stream<tcp::socket> stream(io, tls_->context);
  if (!connect(steps, stream.next_layer(), endpoints, why)) return std::nullopt;
  boost::system::error_code ip_ec;
  asio::ip::make_address(url_.host, ip_ec);
  // SNI names a host, never an address (RFC 6066 §3).
  // SSL_set_tlsext_host_name, without the C-style cast its macro carries.
  if (ip_ec && SSL_ctrl(stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                        TLSEXT_NAMETYPE_host_name, const_cast<char*>(url_.host.c_str())) != 1) {
    why = "TLS: cannot set the server name";
    return std::nullopt;
  }
  stream.set_verify_callback(ssl::host_name_verification(url_.host));
  ec = steps.run(
      [&](auto handler) { stream.async_handshake(ssl::stream_base::client, std::move(handler)); });
  if (ec) {
    why = std::string("TLS handshake: ") + ec.message();
    return std::nullopt;
  }
  return exchange(steps, stream, url_, options_.max_bytes, why);
}

}  // namespace sg::node
