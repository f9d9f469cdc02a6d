// The chat rooms' HTTP endpoints, GET /v2/realtime/rooms/{room}/online and .../stats: user
// token (as for the stream), the caller's org only. Answers through `reply`, possibly from the
// broker's thread.
#pragma once

#include "api/api.hpp"
#include "net/http_types.hpp"

#include <string_view>

namespace sg::api {

bool is_chat_api_path(std::string_view path);
void handle_chat_api(Context& ctx, const HttpRequest& req, Reply reply);

}  // namespace sg::api
