#include "protocol/protocol.hpp"

namespace sg::protocol {

std::string serialize_joined(std::string_view room, std::string_view timestamp) {
  std::string out;
  out.append("{\"type\":\"joined\",\"room\":");
  append_json_string(out, room);
  out.append(",\"timestamp\":");
  append_json_string(out, timestamp);
  out.push_back('}');
  return out;
}

std::string serialize_left(std::string_view room) {
  std::string out;
  out.append("{\"type\":\"left\",\"room\":");
  append_json_string(out, room);
  out.push_back('}');
  return out;
}

std::string serialize_sent(std::string_view room, std::string_view client_message_id,
                           std::string_view id, bool duplicate) {
  std::string out;
  out.reserve(80 + room.size() + client_message_id.size() + id.size());
  out.append("{\"type\":\"sent\",\"room\":");
  append_json_string(out, room);
  out.append(",\"clientMessageId\":");
  append_json_string(out, client_message_id);
  out.append(",\"id\":");
  append_json_string(out, id);
  out.append(duplicate ? ",\"duplicate\":true}" : ",\"duplicate\":false}");
  return out;
}

std::string serialize_history_page(std::string_view room,
                                   const std::vector<std::string_view>& bodies, bool more) {
  std::size_t size = 64 + room.size();
  for (const auto& body : bodies) size += body.size() + 2;
  std::string out;
  out.reserve(size);
  out.append("{\"type\":\"history\",\"room\":");
  append_json_string(out, room);
  out.append(",\"events\":[");
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    if (i > 0) out.push_back(',');
    // A body is an event frame's tail, `"service":…}`: with an opening brace it is the object.
    out.push_back('{');
    out.append(bodies[i]);
  }
  out.append(more ? "],\"more\":true}" : "],\"more\":false}");
  return out;
}

std::string serialize_chat_error(std::string_view code, std::string_view message,
                                 std::string_view room, std::string_view client_message_id) {
  std::string out;
  out.reserve(64 + code.size() + message.size() + room.size() + client_message_id.size());
  out.append("{\"type\":\"error\",\"code\":");
  append_json_string(out, code);
  out.append(",\"message\":");
  append_json_string(out, message);
  out.append(",\"room\":");
  append_json_string(out, room);
  if (!client_message_id.empty()) {
    out.append(",\"clientMessageId\":");
    append_json_string(out, client_message_id);
  }
  out.push_back('}');
  return out;
}

}  // namespace sg::protocol
