// One connection to Redis, driven by Asio on the broker's I/O thread: hiredis parses the
// replies (its redisReader), Asio owns the socket, the timers and the redial loop. Commands are
// pipelined; replies are matched to them in order. A Pub/Sub connection also takes "message"
// pushes, which go to on_message instead. Internal to the broker module; every member must be
// called on the io_context's thread.
#pragma once

#include "broker/broker.hpp"
#include "broker/redis_url.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <hiredis/hiredis.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>

namespace sg::broker::redis {

struct ReplyDeleter {
  void operator()(redisReply* reply) const noexcept { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// A command's outcome: `reply` is the parsed reply (possibly a Redis error reply), or null
// with `ec` set when the connection was down or was lost before the reply came
// (kUnavailable), or is being shut down (kShuttingDown). The reply lives until return.
using ReplyHandler = std::function<void(const ErrorCode& ec, const redisReply* reply)>;

// For rediss://: the Redis server's certificate is verified against `ca_file` (empty: the
// system's CAs) and the URL's host; a client certificate is sent when Redis asks for one
// (tls-auth-clients) and cert_file/key_file are set.
struct TlsOptions {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

// Where the broker sends commands: one Connection, or the cluster router that picks a
// primary's Connection by each command's key. I/O thread only.
class Commands {
 public:
  virtual ~Commands() = default;
  virtual void start() = 0;
  // Closes for good; every command still waiting gets kShuttingDown.
  virtual void stop() = 0;
  virtual bool up() const = 0;
  // As Connection::send: the handler always runs later, never inside send().
  virtual void send(std::span<const std::string_view> args, ReplyHandler handler) = 0;
  void send(std::initializer_list<std::string_view> args, ReplyHandler handler) {
    send(std::span<const std::string_view>(args.begin(), args.size()), std::move(handler));
  }
  // A command without a key (WAIT) that must reach the node serving `key`.
  virtual void send_beside(std::string_view key, std::span<const std::string_view> args,
                           ReplyHandler handler) {
    (void)key;
    send(args, std::move(handler));
  }
};

struct ConnectionOptions : RedisLinkOptions {
  RedisUrl url;         // an empty host: nothing is dialled until redirect() names one
  TlsOptions tls;       // used when url.tls
  std::string name;     // CLIENT SETNAME and the "connection" field of logs
  bool pubsub = false;  // take "message" pushes
  // Sentinel: the handshake ends with ROLE and goes up only on a primary; a -READONLY or
  // -LOADING reply later (the node was demoted or restarted) drops the connection, after its
  // handler saw the error.
  bool require_primary = false;
  // Sentinel: Sentinels are often run without a password while the data nodes have one, and
  // get the same URL's credentials: a refused AUTH doesn't end the handshake (a Sentinel that
  // does require credentials refuses the commands after it).
  bool auth_optional = false;
};

class Connection final : public Commands {
 public:
  struct Handlers {
    std::function<void()> on_up;                    // connected, authenticated, db selected
    std::function<void(const ErrorCode&)> on_down;  // an up connection was lost
    // "message" and sharded Pub/Sub's "smessage" pushes.
    std::function<void(std::string_view channel, std::string_view payload)> on_message;
  };

  Connection(boost::asio::io_context& io, ConnectionOptions options, Handlers handlers);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Dials, and redials with backoff whenever the connection is lost, until stop().
  void start() override;
  // Closes for good; every command still waiting gets kShuttingDown.
  void stop() override;

  bool up() const override { return state_ == State::kUp; }

  // For rediss://: whether the TLS settings load (CA, client certificate and key). Checked
  // once at start-up, so a typo is a start-up error rather than an endless redial.
  static Result<void> check_tls(const TlsOptions& tls);

  // Queues a command. The handler always runs later, never inside send(): with the reply, or
  // with kUnavailable when the connection is not up, too many commands are waiting, or the
  // connection is lost first.
  void send(std::span<const std::string_view> args, ReplyHandler handler) override;
  using Commands::send;
  // Sharded Pub/Sub: once set (before start()), every "sunsubscribe" is taken as a push —
  // Redis sends one unasked when the channel's slot leaves the node — so SUNSUBSCRIBE must be
  // sent with send_unanswered.
  void set_on_sunsubscribe(std::function<void(std::string_view channel)> handler) {
    on_sunsubscribe_ = std::move(handler);
  }
  // A command whose answer arrives as a push (SUNSUBSCRIBE with on_sunsubscribe set), so no
  // reply is waited for. Dropped when the connection is not up.
  void send_unanswered(std::span<const std::string_view> args);

  // Sentinel: dial host:port from now on. Connected or dialling elsewhere, the connection is
  // dropped (on_down if it was up) and host:port dialled at once, as it is when the connection
  // was waiting to redial; the same address changes nothing.
  void redirect(const std::string& host, std::uint16_t port);

 private:
  enum class State { kDown, kConnecting, kHandshake, kUp, kStopped };

  void dial();
  void on_resolve(std::uint64_t gen, const ErrorCode& ec,
                  const boost::asio::ip::tcp::resolver::results_type& results);
  void on_connect(std::uint64_t gen, const ErrorCode& ec);
  void on_transport_ready(std::uint64_t gen);
  void handshake();
  void on_handshake_done();
  void do_read();
  void on_read(std::uint64_t gen, const ErrorCode& ec, std::size_t bytes);
  void dispatch(ReplyPtr reply);
  void do_write();
  void on_write(std::uint64_t gen, const ErrorCode& ec);
  void enqueue(std::span<const std::string_view> args, ReplyHandler handler);
  void fail_later(ReplyHandler handler, const ErrorCode& ec);
  void start_watchdog();
  void on_watchdog();
  // Drops the connection: fails what waits, tells on_down if it was up, schedules a redial.
  void drop(std::string_view why, const ErrorCode& ec);
  void close_socket();
  void schedule_redial();

  boost::asio::io_context& io_;
  const ConnectionOptions options_;
  RedisUrl target_;  // options_.url, with host and port as redirect() last set them
  const Handlers handlers_;
  std::function<void(std::string_view)> on_sunsubscribe_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::ip::tcp::socket socket_;
  struct Tls;                 // the TLS layer over socket_, for rediss:// only
  std::unique_ptr<Tls> tls_;  // made anew for each connection
  boost::asio::steady_timer connect_timer_;
  boost::asio::steady_timer redial_timer_;
  boost::asio::steady_timer watchdog_;

  State state_ = State::kDown;
  bool started_ = false;
  // Bumped whenever the socket is closed, so completions of an older socket are ignored.
  std::uint64_t gen_ = 0;
  std::unique_ptr<redisReader, void (*)(redisReader*)> reader_;
  std::array<char, 16384> read_buffer_{};
  std::string out_;      // commands formatted and not yet handed to a write
  std::string writing_;  // the bytes of the write in flight
  bool write_in_flight_ = false;
  std::deque<ReplyHandler> waiting_;  // one per command sent, oldest first
  std::chrono::steady_clock::time_point last_progress_{};
  std::chrono::steady_clock::time_point last_activity_{};
  std::chrono::milliseconds backoff_{0};
  std::uint32_t failed_dials_ = 0;  // since the last time it was up
  bool ever_up_ = false;
  std::minstd_rand jitter_;
};

// RESP encoding of one command (an array of bulk strings), appended to `out`.
void append_command(std::string& out, std::span<const std::string_view> args);

// The SHA-1 of a script in hex, as EVALSHA names it.
std::string sha1_hex(std::string_view text);

// Helpers over replies.
inline std::string_view reply_text(const redisReply& r) {
  return std::string_view(r.str, r.len);
}
inline bool is_error(const redisReply* r) {
  return r != nullptr && r->type == REDIS_REPLY_ERROR;
}

}  // namespace sg::broker::redis
