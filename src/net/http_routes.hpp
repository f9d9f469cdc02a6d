// HttpRoutes: what the node's endpoints are to an HTTP connection. The server fills the table
// (each endpoint module adds its own routes); an HttpSession looks a request's path up once
// its head is read and hands the request to what it finds: a handler that answers it, a
// streamed-body handler (tus PATCH), or a long-lived endpoint (a WebSocket, an event stream)
// that takes over the socket. The table is built before the workers start and read-only
// afterwards, so every worker reads it without locks.
#pragma once

#include "net/body_sink.hpp"
#include "net/http_types.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sg::metrics {
class Counter;
}

namespace sg::net {

class Worker;

// A long-lived endpoint's answer to the request that opens it.
struct Upgrade {
  std::optional<HttpResponse> reject;  // set: answer this and don't take the socket
  // Else: takes over the connection on `worker` (the socket, and what the client sent after the
  // request), starting with the response the endpoint prepared (a WebSocket's "101 Switching
  // Protocols", an event stream's "200" head).
  std::function<void(Worker& worker, boost::asio::ip::tcp::socket socket, std::string leftover)>
      accept;
};

struct HttpRoute {
  // Whether this route serves `path` (routes are tried in the order they were added).
  std::function<bool(std::string_view path)> matches;
  // Exactly one of `handle` and `upgrade` is set.
  std::function<void(const HttpRequest&, Reply)> handle;
  std::function<Upgrade(const HttpRequest&)> upgrade;
  // Optional, with `handle`: requests whose body is streamed into a sink instead of read whole
  // (decided from the head alone), and the handler that decides on them.
  std::function<bool(const HttpRequest&)> streams_body;
  std::function<void(const HttpRequest&, Decide)> begin_body;
  // Answers given on this route, by status class 2xx..5xx (index 0..3); null = not counted.
  std::array<metrics::Counter*, 4> answers{};
};

struct HttpRoutes {
  std::vector<HttpRoute> routes;
  // Answers a request no route matches.
  std::function<void(const HttpRequest&, Reply)> not_found;
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 64 * 1024;  // for bodies read whole
  // A request's time to be read (a streamed body's: each piece's), an answer's to be written,
  // and a keep-alive connection's to stay idle.
  std::chrono::milliseconds idle_timeout{30000};
  // Node state the sessions read and count (owned by the server, which outlives the sessions).
  const std::atomic<bool>* draining = nullptr;  // set: answers close their connection
  // Requests read but not yet answered: a shutdown waits for their answers.
  std::atomic<std::size_t>* in_flight = nullptr;
  // Answers to requests no route took (unknown paths, heads refused before their path was
  // known), by status class as HttpRoute::answers.
  std::array<metrics::Counter*, 4> unrouted_answers{};

  // Adds a route; fill it in before adding the next (the reference is to the table's storage).
  HttpRoute& add(std::function<bool(std::string_view path)> matches);
  const HttpRoute* find(std::string_view path) const;
};

// Matchers: the path itself; every path that starts with `prefix`.
std::function<bool(std::string_view)> path_is(std::string path);
std::function<bool(std::string_view)> path_under(std::string prefix);

}  // namespace sg::net
