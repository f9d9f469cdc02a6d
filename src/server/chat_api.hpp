// The chat rooms' HTTP endpoints, GET /v2/realtime/rooms/{room}/online and .../stats: user
// token (as for the stream), the caller's org only. Answers through `reply`, possibly from the
// broker's thread.
#pragma once

#include "server/api.hpp"
#include "server/http_types.hpp"

#include <string_view>

namespace sg::server {

struct Context;

bool is_chat_api_path(std::string_view path);
void handle_chat_api(Context& ctx, const HttpRequest& req, Reply reply);

}  // namespace sg::server
