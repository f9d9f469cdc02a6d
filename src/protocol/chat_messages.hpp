// Internal to protocol: parsing of the chat room client messages (join, leave, message,
// typing, history), kept apart from the event stream's handshake and subscribe parsing.
#pragma once

#include "protocol/protocol.hpp"

#include <boost/json.hpp>

#include <optional>
#include <string_view>

namespace sg::protocol::detail {

// nullopt when `type` is not a chat message type; otherwise the parsed message or its error.
std::optional<Result<ClientMessage>> parse_chat_message(std::string_view type,
                                                        const boost::json::object& message);

}  // namespace sg::protocol::detail
