#include "broker/redis_connection.hpp"

#include "log/log.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <optional>
#include <utility>

namespace sg::broker::redis {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

void append_command(std::string& out, std::span<const std::string_view> args) {
  out.push_back('*');
  core::append_decimal(out, args.size());
  out += "\r\n";
  for (const std::string_view arg : args) {
    out.push_back('$');
    core::append_decimal(out, arg.size());
    out += "\r\n";
    out += arg;
    out += "\r\n";
  }
}

namespace {

Result<std::shared_ptr<asio::ssl::context>> make_tls_context(const TlsOptions& tls) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ErrorCode ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1,
                   ec);
  if (!ec) {
    if (tls.ca_file.empty()) {
      ctx->set_default_verify_paths(ec);
    } else {
      ctx->load_verify_file(tls.ca_file, ec);
    }
  }
  if (!ec && !tls.cert_file.empty()) ctx->use_certificate_chain_file(tls.cert_file, ec);
  if (!ec && !tls.key_file.empty()) {
    ctx->use_private_key_file(tls.key_file, asio::ssl::context::pem, ec);
  }
  if (!ec) ctx->set_verify_mode(asio::ssl::verify_peer, ec);
  if (ec) return make_error_code(BrokerError::kBadTls);
  return ctx;
}

}  // namespace

struct Connection::Tls {
  std::shared_ptr<asio::ssl::context> context;
  std::optional<asio::ssl::stream<tcp::socket&>> stream;
};

Result<void> Connection::check_tls(const TlsOptions& tls) {
  auto ctx = make_tls_context(tls);
  if (!ctx) return ctx.error();
  return Result<void>();
}

Connection::Connection(asio::io_context& io, ConnectionOptions options, Handlers handlers)
    : io_(io),
      options_(std::move(options)),
      target_(options_.url),
      handlers_(std::move(handlers)),
      resolver_(io),
      socket_(io),
      connect_timer_(io),
      redial_timer_(io),
      watchdog_(io),
      reader_(nullptr, &redisReaderFree),
      backoff_(options_.reconnect_min),
      jitter_(std::random_device{}()) {
  if (options_.url.tls) {
    tls_ = std::make_unique<Tls>();
    // check_tls ran at start-up; a context that fails now leaves tls_ without one and every
    // dial fails loudly instead of falling back to plain text.
    if (auto ctx = make_tls_context(options_.tls)) tls_->context = std::move(*ctx);
  }
}

Connection::~Connection() = default;

void Connection::start() {
  if (state_ != State::kDown || started_) return;
  started_ = true;
  start_watchdog();
  if (!target_.host.empty()) dial();
}

void Connection::redirect(const std::string& host, std::uint16_t port) {
  if (state_ == State::kStopped || (host == target_.host && port == target_.port)) return;
  // Before the address changes, so the log names the node that was left.
  if (started_) drop("primary moved", make_error_code(BrokerError::kUnavailable));
  if (state_ != State::kDown) return;  // on_down stopped us
  target_.host = host;
  target_.port = port;
  if (!started_) return;
  // A new address owes nothing to the old one's failures: no backoff, and its own log line.
  redial_timer_.cancel();
  backoff_ = options_.reconnect_min;
  failed_dials_ = 0;
  dial();
}

void Connection::stop() {
  if (state_ == State::kStopped) return;
  const bool was_up = state_ == State::kUp;
  state_ = State::kStopped;
  ++gen_;
  resolver_.cancel();
  connect_timer_.cancel();
  redial_timer_.cancel();
  watchdog_.cancel();
  close_socket();
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& handler : waiting) handler(make_error_code(BrokerError::kShuttingDown), nullptr);
  if (was_up && handlers_.on_down) handlers_.on_down(make_error_code(BrokerError::kShuttingDown));
}

void Connection::dial() {
  state_ = State::kConnecting;
  const std::uint64_t gen = ++gen_;
  connect_timer_.expires_after(options_.connect_timeout);
  connect_timer_.async_wait([this, gen](const ErrorCode& ec) {
    if (ec || gen != gen_) return;
    drop("connect timed out", make_error_code(boost::system::errc::timed_out));
  });
  resolver_.async_resolve(
      target_.host, std::to_string(target_.port),
      [this, gen](const ErrorCode& ec, const tcp::resolver::results_type& results) {
        on_resolve(gen, ec, results);
      });
}

void Connection::on_resolve(std::uint64_t gen, const ErrorCode& ec,
                            const tcp::resolver::results_type& results) {
  if (gen != gen_) return;
  if (ec) {
    drop("resolve failed", ec);
    return;
  }
  asio::async_connect(socket_, results,
                      [this, gen](const ErrorCode& connect_ec, const tcp::endpoint&) {
                        on_connect(gen, connect_ec);
                      });
}

void Connection::on_connect(std::uint64_t gen, const ErrorCode& ec) {
  if (gen != gen_) return;
  if (ec) {
    drop("connect failed", ec);
    return;
  }
  ErrorCode ignored;
  socket_.set_option(tcp::no_delay(true), ignored);
  socket_.set_option(asio::socket_base::keep_alive(true), ignored);
  if (!tls_) {
    on_transport_ready(gen);
    return;
  }
  if (!tls_->context) {
    drop("tls settings", make_error_code(BrokerError::kBadTls));
    return;
  }
  auto& stream = tls_->stream.emplace(socket_, *tls_->context);
  const std::string& host = target_.host;
  // SNI for names (not addresses), and the certificate must name the host we dialled.
  ErrorCode ip_ec;
  asio::ip::make_address(host, ip_ec);
  if (ip_ec) {
    // SSL_set_tlsext_host_name, without the C-style cast its macro carries.
    SSL_ctrl(stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
  }
  stream.set_verify_callback(asio::ssl::host_name_verification(host), ignored);
  stream.async_handshake(asio::ssl::stream_base::client, [this, gen](const ErrorCode& hs_ec) {
    if (gen != gen_) return;
    if (hs_ec) {
      drop("tls handshake failed", hs_ec);
      return;
    }
    on_transport_ready(gen);
  });
}

void Connection::on_transport_ready(std::uint64_t gen) {
  if (gen != gen_) return;
  reader_.reset(redisReaderCreate());
  state_ = State::kHandshake;
  last_progress_ = last_activity_ = SteadyClock::now();
  do_read();
  handshake();
}

void Connection::handshake() {
  const std::uint64_t gen = gen_;
  // Any error reply in the handshake (wrong password, no such db, still LOADING its data)
  // drops the connection; the redial loop tries again later.
  auto step = [this, gen](std::string_view what) {
    return [this, gen, what](const ErrorCode& ec, const redisReply* reply) {
      if (gen != gen_ || ec) return;
      if (reply == nullptr || is_error(reply)) {
        // The URL's credentials are the primary's; a Sentinel without them refuses AUTH but
        // serves anyway, and one that does need credentials answers the next command NOAUTH.
        if (options_.auth_optional && what == std::string_view("auth")) return;
        const std::string detail = reply != nullptr ? std::string(reply_text(*reply)) : "";
        // Once per streak of failed dials, like "redis connect failed": a wrong password
        // would otherwise log at every redial.
        if (failed_dials_ == 0) {
          log::warn("broker", "redis refused the connection setup",
                    {{"connection", options_.name},
                     {"step", what},
                     {"redis", target_.display()},
                     {"reply", detail}});
        }
        drop("setup refused", make_error_code(BrokerError::kUnavailable));
      }
    };
  };
  const RedisUrl& url = options_.url;
  if (!url.password.empty()) {
    if (url.username.empty()) {
      enqueue(std::array<std::string_view, 2>{"AUTH", url.password}, step("auth"));
    } else {
      enqueue(std::array<std::string_view, 3>{"AUTH", url.username, url.password}, step("auth"));
    }
  }
  const std::string db = std::to_string(url.db);
  if (url.db != 0) enqueue(std::array<std::string_view, 2>{"SELECT", db}, step("select"));
  enqueue(std::array<std::string_view, 3>{"CLIENT", "SETNAME", options_.name},
          step("client setname"));
  // PING last: Redis refuses it while loading its data set, so "up" means "serving".
  enqueue(std::array<std::string_view, 1>{"PING"},
          [this, gen, inner = step("ping")](const ErrorCode& ec, const redisReply* reply) {
            if (gen != gen_ || ec) return;
            if (reply == nullptr || is_error(reply)) {
              inner(ec, reply);
              return;
            }
            if (!options_.require_primary) on_handshake_done();
          });
  if (!options_.require_primary) return;
  // After PING, which a loading node refuses; ROLE is answered while loading.
  enqueue(std::array<std::string_view, 1>{"ROLE"}, [this, gen](const ErrorCode& ec,
                                                               const redisReply* reply) {
    if (gen != gen_ || ec) return;
    if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply_text(*reply->element[0]) == "master") {
      on_handshake_done();
      return;
    }
    if (failed_dials_ == 0) {
      std::string role = "unreadable";
      if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
          reply->element[0]->type == REDIS_REPLY_STRING) {
        role = std::string(reply_text(*reply->element[0]));
      } else if (is_error(reply)) {
        role = std::string(reply_text(*reply));
      }
      log::warn("broker", "redis is not a primary",
                {{"connection", options_.name}, {"redis", target_.display()}, {"role", role}});
    }
    drop("not a primary", make_error_code(BrokerError::kUnavailable));
  });
}

void Connection::on_handshake_done() {
  connect_timer_.cancel();
  state_ = State::kUp;
  log::info("broker", ever_up_ ? "redis connection regained" : "redis connected",
            {{"connection", options_.name}, {"redis", target_.display()}});
  ever_up_ = true;
  failed_dials_ = 0;
  backoff_ = options_.reconnect_min;
  if (handlers_.on_up) handlers_.on_up();
}

void Connection::send(std::span<const std::string_view> args, ReplyHandler handler) {
  if (state_ != State::kUp) {
    fail_later(std::move(handler),
               make_error_code(state_ == State::kStopped ? BrokerError::kShuttingDown
                                                         : BrokerError::kUnavailable));
    return;
  }
  if (waiting_.size() >= options_.max_pending) {
    fail_later(std::move(handler), make_error_code(BrokerError::kUnavailable));
    return;
  }
  enqueue(args, std::move(handler));
}

void Connection::send_unanswered(std::span<const std::string_view> args) {
  if (state_ != State::kUp) return;
  append_command(out_, args);
  if (!write_in_flight_) do_write();
}

void Connection::enqueue(std::span<const std::string_view> args, ReplyHandler handler) {
  if (waiting_.empty()) last_progress_ = SteadyClock::now();
  append_command(out_, args);
  waiting_.push_back(std::move(handler));
  if (!write_in_flight_) do_write();
}

void Connection::fail_later(ReplyHandler handler, const ErrorCode& ec) {
  asio::post(io_, [handler = std::move(handler), ec] { handler(ec, nullptr); });
}

void Connection::do_write() {
  writing_.clear();
  std::swap(writing_, out_);
  write_in_flight_ = true;
  last_activity_ = SteadyClock::now();
  const std::uint64_t gen = gen_;
  auto done = [this, gen](const ErrorCode& ec, std::size_t) { on_write(gen, ec); };
  if (tls_) {
    asio::async_write(*tls_->stream, asio::buffer(writing_), std::move(done));
  } else {
    asio::async_write(socket_, asio::buffer(writing_), std::move(done));
  }
}

void Connection::on_write(std::uint64_t gen, const ErrorCode& ec) {
  if (gen != gen_) return;
  write_in_flight_ = false;
  if (ec) {
    drop("write failed", ec);
    return;
  }
  if (!out_.empty()) do_write();
}

void Connection::do_read() {
  const std::uint64_t gen = gen_;
  auto done = [this, gen](const ErrorCode& ec, std::size_t bytes) { on_read(gen, ec, bytes); };
  if (tls_) {
    tls_->stream->async_read_some(asio::buffer(read_buffer_), std::move(done));
  } else {
    socket_.async_read_some(asio::buffer(read_buffer_), std::move(done));
  }
}

void Connection::on_read(std::uint64_t gen, const ErrorCode& ec, std::size_t bytes) {
  if (gen != gen_) return;
  if (ec) {
    drop(ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ? "closed by redis"
                                                                            : "read failed",
         ec);
    return;
  }
  last_progress_ = last_activity_ = SteadyClock::now();
  if (redisReaderFeed(reader_.get(), read_buffer_.data(), bytes) != REDIS_OK) {
    drop("reply buffer", make_error_code(BrokerError::kUnavailable));
    return;
  }
  for (;;) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
      log::warn("broker", "redis protocol error",
                {{"connection", options_.name}, {"error", reader_->errstr}});
      drop("protocol error", make_error_code(BrokerError::kUnavailable));
      return;
    }
    if (raw == nullptr) break;
    dispatch(ReplyPtr(static_cast<redisReply*>(raw)));
    // A handler may have dropped or stopped the connection, which frees the reader.
    if (gen != gen_) return;
  }
  do_read();
}

void Connection::dispatch(ReplyPtr reply) {
  if (options_.pubsub && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
      reply->element[0]->type == REDIS_REPLY_STRING &&
      (reply_text(*reply->element[0]) == "message" ||
       reply_text(*reply->element[0]) == "smessage") &&
      reply->element[1]->type == REDIS_REPLY_STRING &&
      reply->element[2]->type == REDIS_REPLY_STRING) {
    if (handlers_.on_message) {
      handlers_.on_message(reply_text(*reply->element[1]), reply_text(*reply->element[2]));
    }
    return;
  }
  if (options_.pubsub && on_sunsubscribe_ && reply->type == REDIS_REPLY_ARRAY &&
      reply->elements == 3 && reply->element[0]->type == REDIS_REPLY_STRING &&
      reply_text(*reply->element[0]) == "sunsubscribe" &&
      reply->element[1]->type == REDIS_REPLY_STRING) {
    on_sunsubscribe_(reply_text(*reply->element[1]));
    return;
  }
  if (waiting_.empty()) {
    // A reply nobody asked for: the stream is out of step and nothing after it can be trusted.
    drop("unexpected reply", make_error_code(BrokerError::kUnavailable));
    return;
  }
  ReplyHandler handler = std::move(waiting_.front());
  waiting_.pop_front();
  // The node was demoted to a replica, or restarted and is loading its data: it is no longer
  // the primary this connection verified, so the caller (the Sentinel resolver) must look again.
  const bool demoted =
      options_.require_primary && state_ == State::kUp && reply->type == REDIS_REPLY_ERROR &&
      (reply_text(*reply).starts_with("READONLY") || reply_text(*reply).starts_with("LOADING"));
  const std::uint64_t gen = gen_;
  handler(ErrorCode(), reply.get());
  if (demoted && gen == gen_) {
    drop("no longer a primary", make_error_code(BrokerError::kUnavailable));
  }
}

void Connection::start_watchdog() {
  const auto tick = std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(100),
      std::max<std::chrono::milliseconds>(std::chrono::milliseconds(10), options_.ping_interval));
  watchdog_.expires_after(tick);
  watchdog_.async_wait([this](const ErrorCode& ec) {
    if (ec || state_ == State::kStopped) return;
    on_watchdog();
    start_watchdog();
  });
}

void Connection::on_watchdog() {
  if (state_ != State::kUp) return;
  const auto now = SteadyClock::now();
  if (!waiting_.empty()) {
    ErrorCode ec;
    // Unread bytes mean this thread, not Redis, is behind.
    const std::size_t unread = socket_.available(ec);
    if (!ec && unread == 0 && now - last_progress_ > options_.command_timeout) {
      drop("redis stopped answering", make_error_code(boost::system::errc::timed_out));
    }
    return;
  }
  if (now - last_activity_ >= options_.ping_interval) {
    send({"PING"}, [](const ErrorCode&, const redisReply*) {});
  }
}

void Connection::drop(std::string_view why, const ErrorCode& ec) {
  if (state_ == State::kStopped || state_ == State::kDown) return;
  const bool was_up = state_ == State::kUp;
  state_ = State::kDown;
  ++gen_;
  resolver_.cancel();
  connect_timer_.cancel();
  close_socket();
  if (was_up) {
    log::warn("broker", "redis connection lost",
              {{"connection", options_.name},
               {"redis", target_.display()},
               {"reason", why},
               {"error", ec.message()}});
  } else if (failed_dials_ == 0) {
    log::warn("broker", "redis connect failed",
              {{"connection", options_.name},
               {"redis", target_.display()},
               {"reason", why},
               {"error", ec.message()}});
  }
  ++failed_dials_;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& handler : waiting) handler(make_error_code(BrokerError::kUnavailable), nullptr);
  if (was_up && handlers_.on_down) handlers_.on_down(ec);
  // on_down may have stopped us.
  if (state_ == State::kDown) schedule_redial();
}

void Connection::close_socket() {
  ErrorCode ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  // No TLS close_notify: the socket is gone either way. The TLS stream stays until the next
  // connect replaces it, since operations aborted by the close still complete through it.
  reader_.reset();
  out_.clear();
  writing_.clear();
  write_in_flight_ = false;
}

void Connection::schedule_redial() {
  // ±20% jitter, so nodes that lost Redis together don't all dial it in the same millisecond.
  std::uniform_int_distribution<int> spread(80, 120);
  const auto delay = backoff_ * spread(jitter_) / 100;
  backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
  const std::uint64_t gen = gen_;
  redial_timer_.expires_after(delay);
  redial_timer_.async_wait([this, gen](const ErrorCode& ec) {
    if (ec || gen != gen_ || state_ != State::kDown) return;
    dial();
  });
}

}  // namespace sg::broker::redis
