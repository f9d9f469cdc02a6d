#include "net/http_session.hpp"

#include "metrics/metrics.hpp"
#include "net/body_sink.hpp"
#include "net/http_framing.hpp"
#include "net/http_routes.hpp"
#include "net/request_parser.hpp"
#include "net/worker.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <optional>
#include <utility>

namespace sg::net {

namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;

// A streamed body is read in pieces of up to this size: big enough that per-piece overhead
// (a hop to the upload thread, one write) vanishes against the bytes, small enough to keep a
// connection's memory flat.
constexpr std::size_t kPieceBytes = 256 * 1024;
// A request head is read in pieces of up to this size, as Beast's own header read does.
constexpr std::size_t kHeadReadBytes = 64 * 1024;
// Lingering close (RFC 9112 §9.6): after an answer that closes a connection whose request was
// not read to the end, the server stops sending and reads and discards what the client is
// still sending. Closing with unread input makes the kernel send a reset, and a client that
// gets the reset while it is still writing loses the answer it hasn't read yet.
// The time bound is what a client needs to see the answer and stop (as Apache's 2 s). The byte
// bound must be above what a client pushes before it first reads: most clients write the whole
// body and read afterwards, and on a fast link the kernel takes it all in one write (measured
// on loopback: a client writing 8 MiB had sent all of it before it read the 413, so a 1 MiB
// bound lost the answer). 64 MiB covers such bodies up to the size where the 2 s bound takes
// over on an ordinary link, and only costs the discarding (one small buffer, no memory growth).
constexpr auto kLingerTimeout = std::chrono::seconds(2);
constexpr std::size_t kLingerBytes = 64 * 1024 * 1024;
// An answer's bytes are kept for the connection's next one up to this size.
constexpr std::size_t kKeptResponseBytes = 1024;
// The buffer the discarded bytes are read into.
constexpr std::size_t kLingerReadBytes = 16 * 1024;

// Counts one request in HttpRoutes::in_flight until its answer is written or the session is
// gone, so that the shutdown can wait for answers still owed (a publish waiting on Redis).
class InFlight {
 public:
  explicit InFlight(std::atomic<std::size_t>& count) : count_(count) { count_.fetch_add(1); }
  ~InFlight() { count_.fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<std::size_t>& count_;
};

class HttpSession : public std::enable_shared_from_this<HttpSession> {
  using Clock = std::chrono::steady_clock;

 public:
  HttpSession(Worker& worker, boost::asio::ip::tcp::socket socket, const HttpRoutes& routes)
      : worker_(worker),
        routes_(routes),
        socket_(std::move(socket)),
        deadline_timer_(socket_.get_executor()) {}

  void start() { do_read(); }

 private:
  // The header is read on its own first: the route decides how the body is read (as one
  // string with a small limit, or streamed piece by piece into a sink). The raw head is
  // collected before Beast parses it, because Beast unfolds, merges and tolerates framing
  // that RFC 9112 says to refuse (http_framing.hpp).
  void do_read() {
    parser_.emplace(head_buffer_);
    parser_->header_limit(static_cast<std::uint32_t>(routes_.max_header_bytes));
    parser_->body_limit(boost::none);
    request_done_ = false;
    head_ = false;
    head_searched_ = 0;
    route_ = nullptr;
    expire_after(routes_.idle_timeout);
    read_head();
  }

  void read_head() {
    const std::string_view bytes = buffered();
    const std::optional<std::size_t> end = find_head_end(bytes, head_searched_);
    head_searched_ = bytes.size();
    const std::size_t limit = routes_.max_header_bytes;
    if (end && *end <= limit) return parse_head(*end);
    if (end || bytes.size() >= limit) return parse_head(std::nullopt);
    watch_deadline();
    socket_.async_read_some(buffer_.prepare(beast::read_size(buffer_, kHeadReadBytes)),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->buffer_.commit(n);
                              if (ec == boost::asio::error::eof) {
                                // As Beast reports it: a clean close between requests, or a head
                                // cut short.
                                ec = self->buffer_.size() == 0 ? http::error::end_of_stream
                                                               : http::error::partial_message;
                              }
                              if (ec) return self->on_read_error(ec);
                              self->read_head();
                            });
  }

  // `head_size`: the whole head is buffered and within --max-http-header-bytes; nullopt: it
  // is over that limit, and Beast is handed what there is to answer header_limit (431).
  void parse_head(std::optional<std::size_t> head_size) {
    if (head_size) {
      if (const auto refused = check_framing(buffered().substr(0, *head_size))) {
        return send(json_error(400, to_string(*refused), describe(*refused)), true);
      }
    }
    beast::error_code ec;
    buffer_.consume(parser_->put(buffer_.data(), ec));
    if (!ec && !parser_->is_header_done()) ec = http::error::header_limit;
    if (ec == http::error::need_more) ec = http::error::header_limit;
    on_header(ec);
  }

  std::string_view buffered() const {
    return {static_cast<const char*>(buffer_.data().data()), buffer_.size()};
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    keep_alive_ = parser_->message_keep_alive();
    http10_ = parser_->version() < 11;
    head_ = parser_->method() == http::verb::head;
    {
      HttpRequest req = request_of(*parser_);
      const HttpRoute* route = routes_.find(req.path);
      route_ = route;
      if (route && route->streams_body && route->streams_body(req)) {
        return begin_stream(*route, req);
      }
    }
    if (const auto length = parser_->content_length(); length && *length > routes_.max_body_bytes) {
      return on_read_error(http::error::body_limit);
    }
    parser_->read_body_to_string();
    parser_->body_limit(routes_.max_body_bytes);
    if (!parser_->is_done() && buffer_.size() > 0) {
      // The body usually arrives with the head: parsed here, it skips the composed read's post,
      // which costs more than handling the request. Errors are the read's own.
      parser_->eager(true);
      beast::error_code ec2;
      buffer_.consume(parser_->put(buffer_.data(), ec2));
      if (ec2 && ec2 != http::error::need_more) return on_read(ec2);
    }
    if (parser_->is_done()) return on_read({});
    if (buffer_.size() == 0 && expects_continue()) {
      return write_continue([](const std::shared_ptr<HttpSession>& self) { self->read_body(); });
    }
    read_body();
  }

  void read_body() {
    watch_deadline();
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code e, std::size_t) { self->on_read(e); });
  }

  // RFC 9110 10.1.1: an HTTP/1.1 client that sent `Expect: 100-continue` may wait for an
  // interim 100 before it sends the body (curl waits a second, then sends it anyway); an
  // HTTP/1.0 one's expectation is ignored.
  bool expects_continue() const {
    return parser_->version() >= 11 &&
           beast::iequals(parser_->field(http::field::expect), "100-continue");
  }

  template <class Then>
  void write_continue(Then then) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    watch_deadline();
    boost::asio::async_write(socket_, boost::asio::buffer(kContinue.data(), kContinue.size()),
                             [self = shared_from_this(), then](beast::error_code ec, std::size_t) {
                               if (ec) return self->on_continue_error(ec);
                               then(self);
                             });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == boost::asio::error::operation_aborted) {
      return shutdown();
    }
    if (ec == http::error::body_limit) {
      return send(json_error(413, "payload_too_large",
                             "the body is over --max-publish-bytes (" +
                                 std::to_string(routes_.max_body_bytes) + " bytes)"),
                  true);
    }
    if (ec == http::error::header_limit) {
      return send(json_error(431, "headers_too_large", "request headers are too large"), true);
    }
    if (ec.category() == make_error_code(http::error::bad_target).category()) {
      return send(json_error(400, "bad_request", "malformed HTTP request"), true);
    }
    shutdown();
  }

  static HttpRequest request_of(const RequestParser& p) {
    HttpRequest req;
    req.method = p.method_string();
    req.target = p.target();
    const auto q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string_view::npos) req.query = req.target.substr(q + 1);
    // One pass over the fields rather than a lookup per header; the first of repeated fields
    // counts, as Beast's msg[field] had it.
    bool seen_authorization = false, seen_upgrade = false, seen_connection = false;
    bool seen_ws_key = false, seen_ws_version = false, seen_length = false;
    std::string_view length;
    auto first = [](bool& seen, std::string_view& to, std::string_view value) {
      if (seen) return;
      seen = true;
      to = value;
    };
    p.for_each_field([&](http::field id, std::string_view f) {
      switch (id) {
        case http::field::authorization:
          first(seen_authorization, req.authorization, f);
          break;
        case http::field::origin:
          first(req.has_origin, req.origin, f);
          break;
        case http::field::upgrade:
          first(seen_upgrade, req.upgrade, f);
          break;
        case http::field::connection:
          first(seen_connection, req.connection, f);
          break;
        case http::field::sec_websocket_key:
          first(seen_ws_key, req.ws_key, f);
          break;
        case http::field::sec_websocket_version:
          first(seen_ws_version, req.ws_version, f);
          break;
        case http::field::content_length:
          first(seen_length, length, f);
          break;
        default:
          break;
      }
    });
    req.header = [&p](std::string_view name) { return p.field(name); };
    if (seen_length && !p.chunked()) {
      std::uint64_t n = 0;
      const auto [end, err] = std::from_chars(length.data(), length.data() + length.size(), n);
      if (err == std::errc() && end == length.data() + length.size()) req.content_length = n;
    }
    return req;
  }

  void on_read(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    request_done_ = true;
    HttpRequest req = request_of(*parser_);
    req.body = parser_->body();

    const HttpRoute* route = routes_.find(req.path);
    route_ = route;
    if (route && route->upgrade) {
      Upgrade decision = route->upgrade(req);
      if (decision.reject) return send(std::move(*decision.reject), false);
      return upgrade(std::move(decision));
    }
    count_request();
    auto reply = [self = shared_from_this()](HttpResponse r) {
      // An answer given on this worker (the memory broker's, every refusal) is written at once;
      // one from another thread (a Redis broker's) is posted back to it. Not asio::dispatch:
      // through the type-erased executor that still wraps the handler in an allocation.
      if (self->on_own_thread()) return self->send(std::move(r), false);
      boost::asio::post(self->socket_.get_executor(),
                        [self, r = std::move(r)]() mutable { self->send(std::move(r), false); });
    };
    if (route) return route->handle(req, std::move(reply));
    routes_.not_found(req, std::move(reply));
  }

  bool on_own_thread() {
    // target() points into the executor, so that must outlive the check.
    const auto executor = socket_.get_executor();
    const auto* io = executor.target<boost::asio::io_context::executor_type>();
    return io != nullptr && io->running_in_this_thread();
  }

  void count_request() {
    if (routes_.in_flight) in_flight_.emplace(*routes_.in_flight);
  }

  void count_answer(unsigned status) {
    if (status < 200 || status > 599) return;
    const auto& answers = route_ ? route_->answers : routes_.unrouted_answers;
    if (metrics::Counter* c = answers[status / 100 - 2]) c->inc();
  }

  // A body streamed into a sink: one piece buffer per connection, and the next piece is read
  // only once the sink has taken the previous one, so memory doesn't grow with the body.
  void begin_stream(const HttpRoute& route, const HttpRequest& req) {
    count_request();
    route.begin_body(req, [self = shared_from_this()](BodyDecision d) {
      boost::asio::post(self->socket_.get_executor(),
                        [self, d = std::move(d)]() mutable { self->on_decision(std::move(d)); });
    });
  }

  void on_decision(BodyDecision d) {
    if (d.response) {
      // An unread body means the connection can't carry another request.
      request_done_ = parser_->is_done();
      return send(std::move(*d.response), !request_done_);
    }
    sink_ = std::move(d.sink);
    piece_ = std::make_unique<char[]>(kPieceBytes);
    if (parser_->is_done()) return finish_stream();
    if (buffer_.size() > 0 || !expects_continue()) return read_piece();
    write_continue([](const std::shared_ptr<HttpSession>& self) { self->read_piece(); });
  }

  void read_piece() {
    parser_->read_body_to(piece_.get(), kPieceBytes);
    expire_after(routes_.idle_timeout);
    watch_deadline();
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_piece(ec); });
  }

  void on_piece(beast::error_code ec) {
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t n = kPieceBytes - parser_->piece_left();
    if (ec) {
      // What arrived before the peer went away is still handed over: a resumable upload keeps it.
      if (n == 0) return abort_stream(ec);
      return sink_->on_data(std::string_view(piece_.get(), n), [self = shared_from_this(),
                                                                ec](std::optional<HttpResponse>) {
        boost::asio::post(self->socket_.get_executor(), [self, ec] { self->abort_stream(ec); });
      });
    }
    if (n == 0) return on_piece_taken(std::nullopt);
    sink_->on_data(std::string_view(piece_.get(), n), [self = shared_from_this()](
                                                          std::optional<HttpResponse> stop) {
      boost::asio::post(self->socket_.get_executor(), [self, stop = std::move(stop)]() mutable {
        self->on_piece_taken(std::move(stop));
      });
    });
  }

  // The interim 100 could not be written: the peer is gone.
  void on_continue_error(beast::error_code ec) {
    if (sink_) return abort_stream(ec);
    shutdown();
  }

  void abort_stream(beast::error_code ec) {
    piece_.reset();
    std::exchange(sink_, nullptr)->on_abort();
    // A body cut short by the peer is a disconnect, not a malformed request.
    if (ec == http::error::partial_message) return shutdown();
    on_read_error(ec);
  }

  void on_piece_taken(std::optional<HttpResponse> stop) {
    if (stop) {
      piece_.reset();
      sink_.reset();
      return send(std::move(*stop), true);
    }
    if (parser_->is_done()) return finish_stream();
    read_piece();
  }

  void finish_stream() {
    request_done_ = true;
    piece_.reset();
    std::exchange(sink_, nullptr)->on_end([self = shared_from_this()](HttpResponse r) {
      boost::asio::post(self->socket_.get_executor(),
                        [self, r = std::move(r)]() mutable { self->send(std::move(r), false); });
    });
  }

  void upgrade(Upgrade decision) {
    // Bytes the client sent after the request (a first frame) belong to the WebSocket.
    std::string leftover(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    deadline_ = Clock::time_point::max();
    decision.accept(worker_, std::move(socket_), std::move(leftover));
  }

  void send(HttpResponse r, bool close) {
    count_answer(r.status);
    // A draining node sends keep-alive clients (and balancers) to open a new connection, which
    // the balancer no longer routes here.
    close = close || r.close || !keep_alive_ || (routes_.draining && routes_.draining->load());
    close_after_write_ = close;
    // Input still unread (a body, the rest of a refused head, a pipelined request) would make
    // the close a reset that can destroy this answer: linger instead.
    linger_after_write_ = close && (!request_done_ || buffer_.size() > 0);
    // The time the answer took to be made (a publish waiting on Redis) is not the client's.
    expire_after(routes_.idle_timeout);
    const Persistence persistence = close     ? Persistence::kClose
                                    : http10_ ? Persistence::kKeepAlive
                                              : Persistence::kDefault;
    if (!head_) {
      plain_response_.clear();
      if (append_plain_response(r, persistence, plain_response_)) {
        watch_deadline();
        boost::asio::async_write(
            socket_, boost::asio::buffer(plain_response_),
            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
        return;
      }
    }
    response_.emplace();
    auto& res = *response_;
    res.version(11);
    res.result(r.status);
    if (!r.reason.empty()) res.reason(r.reason);
    res.set(http::field::server, "streamgate");
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-store");
    for (auto& [name, value] : r.headers) res.set(name, value);
    res.keep_alive(!close);
    if (persistence == Persistence::kKeepAlive) res.set(http::field::connection, "keep-alive");
    const std::size_t size = r.body.size();
    res.body() = head_ ? std::string() : std::move(r.body);
    res.prepare_payload();
    if (head_) res.content_length(size);
    // RFC 9110 §8.6: no Content-Length on a 204, which Beast would set to 0.
    if (r.status == 204) res.content_length(boost::none);
    watch_deadline();
    http::async_write(socket_, res, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_write(ec);
    });
  }

  void on_write(beast::error_code ec) {
    response_.reset();
    // Kept for the next answer on this connection unless it was a big one (/metrics).
    if (plain_response_.capacity() > kKeptResponseBytes) plain_response_ = std::string();
    in_flight_.reset();
    if (!ec && linger_after_write_) return linger();
    if (ec || close_after_write_) return shutdown();
    do_read();
  }

  // Lingering close: FIN after the answer, then read and discard until the client closes too,
  // kLingerTimeout passes or kLingerBytes have been thrown away, whichever is first.
  void linger() {
    linger_after_write_ = false;
    beast::error_code ec;
    socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
    buffer_.consume(buffer_.size());
    buffer_.shrink_to_fit();
    piece_ = std::make_unique<char[]>(kLingerReadBytes);
    lingered_bytes_ = 0;
    expire_after(kLingerTimeout);
    do_linger();
  }

  void do_linger() {
    watch_deadline();
    socket_.async_read_some(boost::asio::buffer(piece_.get(), kLingerReadBytes),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->on_linger(ec, n);
                            });
  }

  void on_linger(beast::error_code ec, std::size_t n) {
    lingered_bytes_ += n;
    if (!ec && lingered_bytes_ < kLingerBytes) return do_linger();
    piece_.reset();
    close();
  }

  void shutdown() {
    beast::error_code ec;
    socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
    close();
  }

  void close() {
    beast::error_code ec;
    socket_.close(ec);
    deadline_ = Clock::time_point::max();
    deadline_timer_.cancel();
  }

  // The connection's one deadline: --http-idle-timeout to read a request (or one piece of a
  // streamed body), as long again to write its answer, kLingerTimeout while lingering. A read or
  // write pending when it passes is cancelled, and the session closes. Moving the deadline is a
  // clock read; the one timer waits at most once at a time and, when it finds the deadline moved
  // on, waits again for it; only a deadline moved earlier (the linger's) re-arms it at once.
  // Beast's tcp_stream armed and cancelled a timer around every read and write, two timer
  // operations and two extra handlers per request (docs/benchmarks.md, the publish path, round
  // 4). The timer holds the session weakly, so a closed session is freed at once.
  void expire_after(Clock::duration timeout) { deadline_ = Clock::now() + timeout; }

  // Before every read and write.
  void watch_deadline() {
    if (deadline_ == Clock::time_point::max() || timer_expiry_ <= deadline_) return;
    // No wait, or one for a later time, which this replaces (it ends as operation_aborted).
    timer_expiry_ = deadline_;
    deadline_timer_.expires_at(deadline_);
    deadline_timer_.async_wait([weak = weak_from_this(), at = deadline_](beast::error_code ec) {
      const auto self = weak.lock();
      if (!self || ec || self->timer_expiry_ != at) return;
      self->timer_expiry_ = Clock::time_point::max();
      self->on_deadline();
    });
  }

  void on_deadline() {
    if (deadline_ == Clock::time_point::max()) return;
    if (Clock::now() < deadline_) return watch_deadline();
    // The pending operation ends with operation_aborted, which every completion treats as the
    // end of the connection.
    beast::error_code ec;
    socket_.cancel(ec);
  }

  Worker& worker_;
  const HttpRoutes& routes_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer deadline_timer_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point timer_expiry_ = Clock::time_point::max();  // of the wait under way, if any
  beast::flat_buffer buffer_;
  RequestHeadBuffer head_buffer_;        // the current request's head and body, kept between them
  std::optional<RequestParser> parser_;  // the current request's, on head_buffer_
  std::shared_ptr<BodySink> sink_;       // while a streamed body is read
  std::unique_ptr<char[]> piece_;        // while a streamed body is read, or while lingering
  std::optional<http::response<http::string_body>> response_;
  std::string plain_response_;  // an answer written without Beast (append_plain_response)
  bool keep_alive_ = true;
  bool http10_ = false;  // the request is HTTP/1.0: a kept connection is said so
  bool head_ = false;
  bool close_after_write_ = false;
  bool linger_after_write_ = false;
  bool request_done_ = false;          // the current request has been read to its end
  std::size_t head_searched_ = 0;      // bytes of buffer_ already searched for the head's end
  std::size_t lingered_bytes_ = 0;     // discarded while lingering
  std::optional<InFlight> in_flight_;  // from reading a request to writing its answer
  const HttpRoute* route_ = nullptr;   // the current request's, once its path is known
};

}  // namespace

void serve_http(Worker& worker, boost::asio::ip::tcp::socket socket, const HttpRoutes& routes) {
  std::make_shared<HttpSession>(worker, std::move(socket), routes)->start();
}

}  // namespace sg::net
