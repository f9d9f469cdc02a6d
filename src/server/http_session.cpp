#include "server/http_session.hpp"

#include "log/log.hpp"
#include "server/api.hpp"
#include "server/context.hpp"
#include "server/upgrade.hpp"
#include "server/upload_session.hpp"
#include "server/worker.hpp"
#include "server/ws_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <optional>

namespace sg::server {

namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;

// An idle keep-alive connection is closed after this long.
constexpr auto kIdleTimeout = std::chrono::seconds(30);

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(Worker& worker, boost::asio::ip::tcp::socket socket)
      : worker_(worker), ctx_(worker.context()), stream_(std::move(socket)) {}

  void start() { do_read(); }

 private:
  void do_read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(ctx_.settings.max_http_header_bytes));
    parser_->body_limit(ctx_.settings.max_publish_bytes);
    stream_.expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == boost::asio::error::operation_aborted) {
      return shutdown();
    }
    if (ec == http::error::body_limit) {
      return send(json_error(413, "payload_too_large",
                             "the body is over --max-publish-bytes (" +
                                 std::to_string(ctx_.settings.max_publish_bytes) + " bytes)"),
                  true);
    }
    if (ec == http::error::header_limit) {
      return send(json_error(431, "headers_too_large", "request headers are too large"), true);
    }
    if (ec) {
      if (ec.category() == make_error_code(http::error::bad_target).category()) {
        return send(json_error(400, "bad_request", "malformed HTTP request"), true);
      }
      return shutdown();
    }
    const auto& msg = parser_->get();
    HttpRequest req;
    req.method = msg.method_string();
    req.target = msg.target();
    const auto q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string_view::npos) req.query = req.target.substr(q + 1);
    req.body = msg.body();
    req.authorization = msg[http::field::authorization];
    if (auto it = msg.find(http::field::origin); it != msg.end()) {
      req.origin = it->value();
      req.has_origin = true;
    }
    req.upgrade = msg[http::field::upgrade];
    req.connection = msg[http::field::connection];
    req.ws_key = msg[http::field::sec_websocket_key];
    req.ws_version = msg[http::field::sec_websocket_version];
    keep_alive_ = msg.keep_alive();
    head_ = msg.method() == http::verb::head;

    if (req.path == "/v2/realtime/stream") {
      if (ctx_.shutting_down.load()) {
        return send(json_error(503, "shutting_down", "this node is draining"), true);
      }
      UpgradeDecision decision = decide_upgrade(ctx_, req);
      if (decision.reject) return send(std::move(*decision.reject), false);
      return upgrade(std::move(decision));
    }
    if (req.path == "/v2/realtime/upload" && ctx_.uploads) {
      if (ctx_.shutting_down.load()) {
        return send(json_error(503, "shutting_down", "this node is draining"), true);
      }
      UpgradeDecision decision = decide_upgrade(ctx_, req);
      if (decision.reject) return send(std::move(*decision.reject), false);
      return upgrade(std::move(decision), true);
    }
    handle_http(ctx_, req, [self = shared_from_this()](HttpResponse r) {
      // A broker may answer from its own thread.
      boost::asio::post(self->stream_.get_executor(),
                        [self, r = std::move(r)]() mutable { self->send(std::move(r), false); });
    });
  }

  void upgrade(UpgradeDecision decision, bool upload = false) {
    // Bytes the client sent after the request (a first frame) belong to the WebSocket.
    std::string leftover(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    stream_.expires_never();
    if (upload) {
      return start_upload_session(worker_, stream_.release_socket(), std::move(decision.principal),
                                  std::move(decision.response), std::move(leftover));
    }
    auto session = std::make_shared<WsSession>(worker_, stream_.release_socket(),
                                               std::move(decision.principal), std::move(leftover));
    session->start(std::move(decision.response));
  }

  void send(HttpResponse r, bool close) {
    response_.emplace();
    auto& res = *response_;
    res.version(11);
    res.result(r.status);
    res.set(http::field::server, "streamgate");
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-store");
    for (auto& [name, value] : r.headers) res.set(name, value);
    close = close || r.close || !keep_alive_;
    res.keep_alive(!close);
    const std::size_t size = r.body.size();
    res.body() = head_ ? std::string() : std::move(r.body);
    res.prepare_payload();
    if (head_) res.content_length(size);
    close_after_write_ = close;
    http::async_write(stream_, res, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_write(ec);
    });
  }

  void on_write(beast::error_code ec) {
    response_.reset();
    if (ec || close_after_write_) return shutdown();
    do_read();
  }

  void shutdown() {
    beast::error_code ec;
    stream_.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  Worker& worker_;
  Context& ctx_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  bool keep_alive_ = true;
  bool head_ = false;
  bool close_after_write_ = false;
};

}  // namespace

void serve_http(Worker& worker, boost::asio::ip::tcp::socket socket) {
  std::make_shared<HttpSession>(worker, std::move(socket))->start();
}

}  // namespace sg::server
