// Plain HTTP request/response values, so routing and the API handlers don't depend on Beast.
// The HTTP session fills a Request from what it parsed and writes back a Response; handlers
// answer through a Reply, from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sg::net {

struct HttpRequest {
  std::string_view method;
  std::string_view target;  // path and query as sent
  std::string_view path;
  std::string_view query;  // after '?', undecoded
  std::string_view body;
  // The headers streamgate reads; empty when absent.
  std::string_view authorization;
  std::string_view origin;
  bool has_origin = false;
  std::string_view upgrade;
  std::string_view connection;
  std::string_view ws_key;
  std::string_view ws_version;
  // Any other header by name (case-insensitive); empty when absent. Valid while the request is.
  std::function<std::string_view(std::string_view)> header;
  std::optional<std::uint64_t> content_length;  // nullopt: none sent (or chunked)
};

struct HttpResponse {
  unsigned status = 200;
  std::string reason;  // the reason phrase, for a status HTTP does not name (tus's 460)
  std::string body;
  // A literal (or other text that outlives the response): the default is the answer of almost
  // every request, and as a std::string it took an allocation per answer (16 bytes, one over
  // libstdc++'s inline capacity).
  std::string_view content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // close the connection after this response
};

// Takes a request's answer. May be called from any thread (a broker answers from its own); the
// HTTP session moves the answer back onto its worker.
using Reply = std::function<void(HttpResponse)>;

// Appends `r` as HTTP/1.1 bytes, byte for byte what Beast's serializer writes for it (Server,
// Content-Type, Cache-Control: no-store, Connection: close when `close`, Content-Length), and
// returns true; for a response that needs Beast's field rules (extra headers, a reason phrase,
// a status outside 200-599 or 204, a content type with a line break) returns false and leaves
// `out` alone. The common answer skips Beast's field list and serializer, most of the CPU of
// answering a publish.
bool append_plain_response(const HttpResponse& r, bool close, std::string& out);

// {"error":code,"message":message} with the given status.
HttpResponse json_error(unsigned status, std::string_view code, std::string_view message);
// A 200 with `body` as its JSON.
HttpResponse json_ok(std::string body);

// A query parameter, percent-decoded; empty when absent or undecodable. The first one named
// `name` wins.
std::string query_param(std::string_view query, std::string_view name);

}  // namespace sg::net
