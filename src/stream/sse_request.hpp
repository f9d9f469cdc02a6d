// What a Server-Sent Events request (GET /v2/realtime/sse) asks for, and the cursor its events
// carry as `id:`: the connection's position in every one of its services, which the client
// sends back as Last-Event-ID when it reconnects. Pure: no I/O, any thread.
#pragma once

#include "auth/auth.hpp"
#include "broker/broker.hpp"
#include "net/http_types.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sg::node {
struct Context;
}

namespace sg::stream {

// One service's position: the newest offset of `epoch` the connection has (0: the channel was
// empty in that epoch when the connection joined it, so everything in it is new).
struct CursorEntry {
  std::string service;
  broker::Position position;
  friend bool operator==(const CursorEntry& a, const CursorEntry& b) {
    return a.service == b.service && a.position.epoch == b.position.epoch &&
           a.position.offset == b.position.offset;
  }
};

// base64url (no padding) of "1" followed by " <service>=<epoch>-<offset>" per entry. Opaque to
// clients; the version digit lets the format change without misreading old cursors.
std::string encode_cursor(const std::vector<CursorEntry>& entries);
// The entries of a cursor encode_cursor made, at most `max_entries` of them, each service once;
// nullopt for anything else (bad base64url, another version, a bad name, epoch or offset).
std::optional<std::vector<CursorEntry>> decode_cursor(std::string_view text,
                                                      std::size_t max_entries);
// The longest cursor a connection with `max_services` services can carry (max names, epochs
// and offsets): a longer Last-Event-ID is refused before it is decoded.
std::size_t max_cursor_bytes(std::size_t max_services);

struct SseRequest {
  std::vector<std::string> services;  // in the order asked, each once
  // Per service, where the client's Last-Event-ID left it; nullopt: joins at the newest event.
  std::vector<std::optional<broker::Position>> resume;
};

// Reads the request of an authenticated `principal`: GET, `services` (comma-separated, each
// allowed by --services and by the token), and the cursor from the Last-Event-ID header or else
// the lastEventId query parameter. A refusal is the HTTP answer to send (JSON error).
std::variant<SseRequest, net::HttpResponse> parse_sse_request(const node::Context& ctx,
                                                              const net::HttpRequest& req,
                                                              const auth::Principal& principal);

}  // namespace sg::stream
