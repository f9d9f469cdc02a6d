#include "server/server.hpp"

#include "api/api.hpp"
#include "api/cluster_api.hpp"
#include "api/org_limits_api.hpp"
#include "api/usage_api.hpp"
#include "auth/auth.hpp"
#include "broker/broker.hpp"
#include "chat/chat.hpp"
#include "hub/hub.hpp"
#include "log/log.hpp"
#include "metrics/metrics.hpp"
#include "net/http_session.hpp"
#include "net/worker.hpp"
#include "net/ws_codec.hpp"
#include "node/context.hpp"
#include "node/jwks_fetcher.hpp"
#include "protocol/protocol.hpp"
#include "server/routes.hpp"
#include "tenancy/tenancy.hpp"
#include "uploads/upload_events.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <unistd.h>

#include <filesystem>
#include <future>
#include <stdexcept>
#include <thread>

namespace sg::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using net::Worker;
using node::Context;

namespace {
// "redis://:secret@host:6379/0" → "redis://[redacted]@host:6379/0", for logs.
std::string without_credentials(std::string_view url) {
  const auto scheme = url.find("://");
  const auto at = url.rfind('@');
  if (scheme == std::string_view::npos || at == std::string_view::npos || at < scheme) {
    return std::string(url);
  }
  return std::string(url.substr(0, scheme + 3)) + "[redacted]" + std::string(url.substr(at));
}

chat::ChatOptions chat_options(const config::Settings& s) {
  chat::ChatOptions o;
  o.max_bytes = s.chat_max_bytes;
  o.history = s.chat_history;
  o.messages_per_minute = static_cast<std::uint32_t>(s.chat_messages_per_minute);
  o.burst = static_cast<std::uint32_t>(s.chat_burst);
  o.max_rooms = s.chat_max_rooms;
  o.max_members = s.chat_max_members;
  o.typing_interval = std::chrono::milliseconds(s.chat_typing_interval_ms);
  return o;
}

tenancy::QuotaOptions quota_options(const config::Settings& s) {
  tenancy::QuotaOptions o;
  o.defaults[tenancy::Quota::kMaxConnections] = s.org_max_connections;
  o.defaults[tenancy::Quota::kMaxChannels] = s.org_max_channels;
  o.defaults[tenancy::Quota::kPublishRate] = s.org_publish_rate;
  o.defaults[tenancy::Quota::kPublishBurst] = s.org_publish_burst;
  o.defaults[tenancy::Quota::kUploadBytesPerDay] = s.org_upload_bytes_per_day;
  o.defaults[tenancy::Quota::kEgressBytes] = s.org_egress_bytes;
  o.defaults[tenancy::Quota::kChatRate] = s.org_chat_rate;
  o.defaults[tenancy::Quota::kChatBurst] = s.org_chat_burst;
  o.max_overrides = s.org_max_overrides;
  return o;
}

net::WsOptions websocket_options(const config::Settings& s) {
  net::WsOptions o;
  o.max_message_bytes = s.max_message_bytes;
  o.outbox_bytes = s.outbox_bytes;
  o.ping_interval = std::chrono::milliseconds(s.ping_interval_ms);
  o.pong_timeout = std::chrono::milliseconds(s.pong_timeout_ms);
  o.slow_consumer_grace = std::chrono::milliseconds(s.slow_consumer_grace_ms);
  o.ping_timeout_code = protocol::close_code::kPingTimeout;
  o.slow_consumer_code = protocol::close_code::kSlowConsumer;
  return o;
}

node::JwksFetcherOptions jwks_options(const config::Settings& s) {
  node::JwksFetcherOptions o;
  o.url = s.jwks_url;
  o.refresh = std::chrono::seconds(s.jwks_refresh_seconds);
  o.min_refresh = std::chrono::seconds(s.jwks_min_refresh_seconds);
  o.max_bytes = s.jwks_max_bytes;
  o.timeout = std::chrono::seconds(s.jwks_timeout_seconds);
  o.ca_file = s.jwks_ca_file;
  return o;
}

std::string node_name(std::uint16_t port) {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(host[0] != '\0' ? host : "streamgate") + ":" + std::to_string(port);
}

}  // namespace

class Server::Impl {
 public:
  Impl(const config::Settings& settings, broker::Broker& broker)
      : jwk_set_(settings.jwks_url.empty() ? nullptr : std::make_shared<auth::JwkSet>()),
        context_{settings,
                 make_verifier(settings, jwk_set_),
                 auth::OriginPolicy(settings.allowed_origins),
                 broker,
                 registry_,
                 nullptr,
                 node::make_server_metrics(registry_)},
        acceptor_(io_),
        retry_(io_),
        admin_acceptor_(io_),
        admin_retry_(io_),
        period_(io_),
        drain_(io_) {
    context_.any_service = settings.services.empty() ||
                           (settings.services.size() == 1 && settings.services.front() == "*");
    context_.websocket = websocket_options(settings);
    if (jwk_set_) {
      // Fetching starts now, so the first set is likely in before the listener opens.
      context_.jwk_set = jwk_set_;
      jwks_fetcher_ =
          std::make_unique<node::JwksFetcher>(jwks_options(settings), jwk_set_, registry_);
    }
    unsigned n = settings.workers;
    if (n == 0) {
      const auto d = config::default_workers();
      n = d.count;
      log::info("server", "workers", {{"workers", n}, {"reason", d.reason}});
    } else {
      log::info("server", "workers", {{"workers", n}, {"reason", "configured"}});
    }
    usage_ = std::make_unique<tenancy::Usage>(n);
    context_.usage = usage_.get();
    if (broker.shared_store() == nullptr) {
      usage_table_ = std::make_unique<tenancy::UsageTable>(
          std::chrono::seconds(settings.usage_retention_seconds), settings.usage_max_org_hours);
      context_.usage_table = usage_table_.get();
    }
    uploads_ = make_uploads(settings, broker, registry_, usage_.get());
    context_.uploads = uploads_.get();
    for (unsigned i = 0; i < n; ++i)
      workers_.push_back(std::make_unique<Worker>(i, settings.io_uring, registry_));
    std::vector<hub::Post> posts;
    for (auto& w : workers_) {
      posts.push_back(
          [worker = w.get()](std::function<void()> f) { worker->post_input(std::move(f)); });
    }
    hub_ = std::make_unique<hub::Hub>(
        broker, std::move(posts),
        hub::HubOptions{settings.max_connections_per_user, settings.max_connections,
                        [](std::string_view topic) { return chat::is_room_topic(topic); },
                        settings.max_revocations,
                        [usage = usage_.get()](const std::string& org, bool opened) {
                          const auto now = tenancy::UsageClock::now();
                          opened ? usage->connection_opened(org, now)
                                 : usage->connection_closed(org, now);
                        },
                        [usage = usage_.get()](std::size_t worker, const std::string& org,
                                               std::uint64_t count, std::uint64_t bytes) {
                          usage->delivered(worker, org, count, bytes, tenancy::UsageClock::now());
                        }},
        registry_);
    context_.hub = hub_.get();
    quotas_ = std::make_unique<tenancy::Quotas>(quota_options(settings), registry_);
    context_.quotas = quotas_.get();
    chat_ = std::make_unique<chat::Registry>(broker, chat_options(settings), registry_);
    context_.chat = chat_.get();
    api::register_node_metrics(context_);
    bind(settings);
    context_.node_name = node_name(port());
    routes_ = build_routes(context_);
    if (!settings.admin_listen.empty()) {
      listen_on(admin_acceptor_, settings.admin_listen_host, settings.admin_listen_port,
                "--admin-listen", settings.admin_listen);
      admin_routes_ = build_admin_routes(context_);
    }
    broker.set_node_stats_source([this] { return api::node_metrics_json(context_); });
  }

  ~Impl() {
    // The broker may outlive this server; it must not call back into it.
    context_.broker.set_node_stats_source(nullptr);
    context_.broker.set_control_handler(nullptr);
    context_.broker.set_revocation_sink(0, nullptr);
    for (auto& w : workers_) w->stop();
    for (auto& w : workers_) w->join();
    // After the workers: sessions may still have calls queued on the manager.
    uploads_->stop();
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  void run() {
    for (auto& w : workers_) w->start();
    // Logged before "listening", which tells scripts (and tests) that both listeners are up.
    if (admin_acceptor_.is_open()) {
      log::info("server", "admin listening",
                {{"address", admin_acceptor_.local_endpoint().address().to_string()},
                 {"port", admin_acceptor_.local_endpoint().port()}});
      do_accept(admin_acceptor_, admin_retry_, admin_routes_);
    }
    log::info("server", "listening",
              {{"address", acceptor_.local_endpoint().address().to_string()},
               {"port", port()},
               {"workers", workers_.size()},
               {"broker", without_credentials(context_.settings.broker)}});
    do_accept(acceptor_, retry_, routes_);
    refresh_quota_view();
    schedule_usage_flush();
    io_.run();
    for (auto& w : workers_) w->stop();
    for (auto& w : workers_) w->join();
    uploads_->stop();
    final_usage_flush();
    log::info("server", "stopped");
  }

  void drain() {
    asio::post(io_, [this] {
      if (context_.draining.load() || context_.shutting_down.load()) return;
      const std::chrono::seconds period(context_.settings.drain_period_seconds);
      if (period.count() == 0) return shut_down();
      context_.draining.store(true);
      log::info("server", "draining",
                {{"drain_period_s", period.count()}, {"open_connections", open_connections()}});
      const auto deadline = std::chrono::steady_clock::now() + period;
      for (auto& w : workers_) {
        asio::post(w->io(), [w = w.get(), deadline] { w->drain_until(deadline); });
      }
      period_.expires_at(deadline);
      period_.async_wait([this](boost::system::error_code ec) {
        if (!ec) shut_down();
      });
    });
  }

  void stop() {
    asio::post(io_, [this] { shut_down(); });
  }

 private:
  static std::shared_ptr<const auth::TokenVerifier> make_verifier(
      const config::Settings& s, std::shared_ptr<auth::JwkSet> jwk_set) {
    auto verifier =
        auth::TokenVerifier::create({.hs256_secret = s.jwt_secret,
                                     .public_key_pem = s.jwt_public_key,
                                     .leeway = std::chrono::seconds(s.jwt_leeway_seconds),
                                     .audience = s.jwt_audience,
                                     .issuer = s.jwt_issuer,
                                     .org_claim = s.org_claim,
                                     .user_claim = s.user_claim,
                                     .jwks = s.jwks,
                                     .jwk_set = std::move(jwk_set)});
    if (!verifier) {
      throw std::runtime_error("cannot use the configured token key: " +
                               verifier.error().message());
    }
    return *verifier;
  }

  static std::unique_ptr<upload::Manager> make_uploads(const config::Settings& s,
                                                       broker::Broker& broker,
                                                       metrics::Registry& registry,
                                                       tenancy::Usage* usage) {
    std::string dir = s.upload_dir;
    if (dir.empty()) {
      std::error_code ec;
      dir = (std::filesystem::temp_directory_path(ec) / "streamgate-uploads").string();
    }
    const std::chrono::seconds expiry(s.upload_expiry_seconds);
    auto storage = upload::make_local_storage(dir);
    if (!storage) {
      throw std::runtime_error("--upload-dir: cannot use \"" + dir +
                               "\": " + storage.error().message());
    }
    upload::ManagerOptions options;
    options.max_bytes = s.upload_max_bytes;
    options.max_per_user = s.upload_max_per_user;
    options.max_org_bytes = s.upload_max_org_bytes;
    options.expiry = expiry;
    log::info("upload", "upload storage ready", {{"dir", dir}});
    return upload::make_manager(options, std::move(*storage),
                                uploads::make_upload_publisher(broker, registry, usage));
  }

  void bind(const config::Settings& s) {
    listen_on(acceptor_, s.listen_host, s.listen_port, "--listen", s.listen);
  }

  static void listen_on(tcp::acceptor& acceptor, const std::string& host, std::uint16_t port,
                        const std::string& flag, const std::string& text) {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) throw std::runtime_error(flag + ": not an IP address: " + host);
    const tcp::endpoint endpoint(address, port);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      throw std::runtime_error("cannot listen on " + text + ": " + ec.message());
    }
  }

  // Accepts on `acceptor` (the public or the admin listener), handing each connection to the
  // next worker's HTTP session with that listener's route table.
  void do_accept(tcp::acceptor& acceptor, asio::steady_timer& retry,
                 const net::HttpRoutes& routes) {
    Worker& worker = *workers_[next_worker_++ % workers_.size()];
    acceptor.async_accept(worker.io(), [this, &worker, &acceptor, &retry, &routes](
                                           boost::system::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || context_.shutting_down.load()) return;
      if (ec) {
        // Out of file descriptors, most likely: back off instead of spinning.
        log::warn("server", "accept failed", {{"error", ec.message()}});
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([this, &acceptor, &retry, &routes](boost::system::error_code e) {
          if (!e) do_accept(acceptor, retry, routes);
        });
        return;
      }
      asio::post(worker.io(), [&worker, &routes, s = std::move(socket)]() mutable {
        boost::system::error_code e;
        s.set_option(tcp::no_delay(true), e);
        net::serve_http(worker, std::move(s), routes);
      });
      do_accept(acceptor, retry, routes);
    });
  }

  // On io_: the org quotas' view of the other nodes, every second (docs/scaling.md#org-quotas).
  void refresh_quota_view() {
    api::refresh_quota_cluster_view(context_);
    quota_view_.expires_after(std::chrono::seconds(1));
    quota_view_.async_wait([this](boost::system::error_code ec) {
      if (!ec && !context_.shutting_down.load()) refresh_quota_view();
    });
  }

  // On io_: usage counters to the store every --usage-flush (docs/scaling.md#usage-metering).
  void schedule_usage_flush() {
    usage_flush_.expires_after(std::chrono::seconds(context_.settings.usage_flush_seconds));
    usage_flush_.async_wait([this](boost::system::error_code ec) {
      if (ec || context_.shutting_down.load()) return;
      api::flush_usage(context_, nullptr);
      schedule_usage_flush();
    });
  }

  // After the workers stopped, so every connection's time is counted: one last flush, waited
  // for (up to 2 s) while the broker is still up.
  void final_usage_flush() {
    auto flushed = std::make_shared<std::promise<void>>();
    auto done = flushed->get_future();
    api::flush_usage(context_, [flushed] { flushed->set_value(); });
    if (done.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
      log::warn("usage", "the last usage flush did not finish", {});
    }
  }

  // On io_.
  void shut_down() {
    if (context_.shutting_down.exchange(true)) return;
    context_.draining.store(true);
    period_.cancel();
    log::info("server", "shutting down",
              {{"grace_ms", context_.settings.shutdown_grace_ms},
               {"open_connections", open_connections()}});
    boost::system::error_code ec;
    acceptor_.close(ec);
    retry_.cancel();
    admin_acceptor_.close(ec);
    admin_retry_.cancel();
    quota_view_.cancel();
    usage_flush_.cancel();
    for (auto& w : workers_) {
      asio::post(w->io(), [w = w.get()] { w->close_all(net::ws::close_code::kGoingAway); });
    }
    drain_deadline_ = std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(context_.settings.shutdown_grace_ms);
    wait_drained();
  }

  std::size_t open_connections() const {
    std::size_t open = 0;
    for (const auto& w : workers_) open += w->connections();
    return open;
  }

  void wait_drained() {
    const std::size_t open = open_connections();
    const std::size_t unanswered = context_.http_in_flight.load();
    if ((open == 0 && unanswered == 0) || std::chrono::steady_clock::now() >= drain_deadline_) {
      if (open != 0 || unanswered != 0) {
        log::warn("server", "drain timed out",
                  {{"open_connections", open}, {"unanswered_requests", unanswered}});
      }
      io_.stop();
      return;
    }
    drain_.expires_after(std::chrono::milliseconds(20));
    drain_.async_wait([this](boost::system::error_code ec) {
      if (!ec) wait_drained();
    });
  }

  metrics::Registry registry_;
  std::shared_ptr<auth::JwkSet> jwk_set_;  // --jwks-url's; null without it
  Context context_;
  // Read by every HTTP session; outlives them (the workers are declared, so destroyed, later).
  net::HttpRoutes routes_;
  net::HttpRoutes admin_routes_;  // --admin-listen's; empty without it
  // Usage metering: outlives the uploads, the hub and the workers, which count into it.
  std::unique_ptr<tenancy::Usage> usage_;
  std::unique_ptr<tenancy::UsageTable> usage_table_;  // memory broker only
  // Outlives the workers (declared before them): their sessions call into it.
  std::unique_ptr<upload::Manager> uploads_;
  // Outlives the workers too (declared before them); registers a scrape callback in registry_.
  std::unique_ptr<tenancy::Quotas> quotas_;
  // Outlives the workers (declared before them): their verifications call request_refresh.
  std::unique_ptr<node::JwksFetcher> jwks_fetcher_;
  // Workers outlive the acceptor's io_context: a pending accept holds a socket bound to a
  // worker's io_context and is destroyed with io_.
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<hub::Hub> hub_;
  std::unique_ptr<chat::Registry> chat_;
  asio::io_context io_{1};
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
  tcp::acceptor admin_acceptor_;  // open only with --admin-listen
  asio::steady_timer admin_retry_;
  asio::steady_timer period_;  // the end of --drain-period
  asio::steady_timer drain_;
  asio::steady_timer quota_view_{io_};
  asio::steady_timer usage_flush_{io_};
  std::chrono::steady_clock::time_point drain_deadline_;
  std::size_t next_worker_ = 0;
};

Server::Server(const config::Settings& settings, broker::Broker& broker)
    : impl_(std::make_unique<Impl>(settings, broker)) {}

Server::~Server() = default;

std::uint16_t Server::port() const {
  return impl_->port();
}

void Server::run() {
  impl_->run();
}

void Server::drain() {
  impl_->drain();
}

void Server::stop() {
  impl_->stop();
}

}  // namespace sg::server
