#include "protocol/protocol.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace sg::protocol {

namespace {

void append_services(std::string& out, const std::vector<std::string>& services) {
  out.append(",\"services\":[");
  for (std::size_t i = 0; i < services.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_json_string(out, services[i]);
  }
  out.push_back(']');
}

// Omitted entirely when no service asked to resume, so a plain handshake gets a plain ack.
void append_resume(std::string& out, const std::vector<ResumeStatus>& resume) {
  if (resume.empty()) return;
  out.append(",\"resume\":{");
  for (std::size_t i = 0; i < resume.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_json_string(out, resume[i].service);
    if (resume[i].recovered) {
      out.append(":{\"recovered\":true}");
    } else if (resume[i].reason.empty()) {
      out.append(":{\"recovered\":false}");
    } else {
      out.append(":{\"recovered\":false,\"reason\":");
      append_json_string(out, resume[i].reason);
      out.push_back('}');
    }
  }
  out.push_back('}');
}

std::string expiry_frame(std::string_view type, std::string_view expires_at) {
  std::string out;
  out.append("{\"type\":\"");
  out.append(type);
  out.append("\",\"expiresAt\":");
  append_json_string(out, expires_at);
  out.push_back('}');
  return out;
}

// An event body's fields before the data, up to `"data":`.
void append_event_head(std::string& out, std::string_view service, std::string_view id,
                       std::string_view event) {
  out.append("\"service\":");
  append_json_string(out, service);
  // An ephemeral event (Broker::signal) has no position, so no id to resume from.
  if (!id.empty()) {
    out.append(",\"id\":");
    append_json_string(out, id);
  }
  out.append(",\"event\":");
  append_json_string(out, event);
  out.append(",\"data\":");
}

}  // namespace

std::string serialize_ack(const Ack& ack) {
  std::string out;
  out.reserve(128 + 24 * ack.services.size() + 48 * ack.resume.size());
  out.append("{\"type\":\"ack\",\"seq\":0,\"timestamp\":");
  append_json_string(out, ack.timestamp);
  out.append(",\"connectionId\":");
  append_json_string(out, ack.connection_id);
  append_services(out, ack.services);
  append_resume(out, ack.resume);
  out.push_back('}');
  return out;
}

std::string serialize_subscribed(const std::vector<std::string>& services,
                                 const std::vector<ResumeStatus>& resume,
                                 std::string_view timestamp) {
  std::string out;
  out.reserve(96 + 24 * services.size() + 48 * resume.size());
  out.append("{\"type\":\"subscribed\"");
  append_services(out, services);
  append_resume(out, resume);
  out.append(",\"timestamp\":");
  append_json_string(out, timestamp);
  out.push_back('}');
  return out;
}

std::string serialize_unsubscribed(const std::vector<std::string>& services) {
  std::string out;
  out.reserve(48 + 24 * services.size());
  out.append("{\"type\":\"unsubscribed\"");
  append_services(out, services);
  out.push_back('}');
  return out;
}

std::string serialize_refreshed(std::string_view expires_at) {
  return expiry_frame("refreshed", expires_at);
}

std::string serialize_expiring(std::string_view expires_at) {
  return expiry_frame("expiring", expires_at);
}

std::string serialize_pong(std::string_view timestamp) {
  std::string out;
  out.append("{\"type\":\"pong\",\"timestamp\":");
  append_json_string(out, timestamp);
  out.push_back('}');
  return out;
}

std::string serialize_error(std::string_view code, std::string_view message,
                            std::string_view service) {
  std::string out;
  out.reserve(52 + code.size() + message.size() + service.size());
  out.append("{\"type\":\"error\",\"code\":");
  append_json_string(out, code);
  out.append(",\"message\":");
  append_json_string(out, message);
  if (!service.empty()) {
    out.append(",\"service\":");
    append_json_string(out, service);
  }
  out.push_back('}');
  return out;
}

std::string serialize_event_body(std::string_view service, std::string_view id,
                                 std::string_view event, std::string_view data,
                                 std::string_view timestamp) {
  std::string out;
  out.reserve(64 + service.size() + id.size() + event.size() + data.size() + timestamp.size());
  append_event_head(out, service, id, event);
  // An empty `data` would make every recipient's frame unparseable; null is what a publish
  // without data means anyway.
  out.append(data.empty() ? std::string_view("null") : data);
  out.append(",\"timestamp\":");
  append_json_string(out, timestamp);
  out.push_back('}');
  return out;
}

std::string serialize_event_body_in_place(std::string_view service, std::string_view id,
                                          std::string_view event, std::string&& data,
                                          std::string_view timestamp) {
  if (data.empty()) return serialize_event_body(service, id, event, std::string_view(), timestamp);
  std::string out = std::move(data);
  const std::size_t data_size = out.size();
  // The copying form's reserve, so a buffer without the room grows once, not per append.
  out.reserve(64 + service.size() + id.size() + event.size() + data_size + timestamp.size());
  // The head is written after the data, then swapped in front of it.
  append_event_head(out, service, id, event);
  const std::size_t head_size = out.size() - data_size;
  char* text = out.data();
  constexpr std::size_t kStackHead = 512;
  if (head_size <= kStackHead) {
    char head[kStackHead];
    std::memcpy(head, text + data_size, head_size);
    std::memmove(text + head_size, text, data_size);
    std::memcpy(text, head, head_size);
  } else {
    std::rotate(text, text + data_size, text + data_size + head_size);
  }
  out.append(",\"timestamp\":");
  append_json_string(out, timestamp);
  out.push_back('}');
  return out;
}

std::size_t write_event_frame_prefix(char* out, std::uint64_t seq) {
  constexpr std::string_view kHead = "{\"type\":\"event\",\"seq\":";
  std::memcpy(out, kHead.data(), kHead.size());
  char* end = std::to_chars(out + kHead.size(), out + kMaxEventFramePrefix - 1, seq).ptr;
  *end++ = ',';
  return static_cast<std::size_t>(end - out);
}

void append_event_frame_prefix(std::string& out, std::uint64_t seq) {
  out.append("{\"type\":\"event\",\"seq\":");
  core::append_decimal(out, seq);
  out.push_back(',');
}

}  // namespace sg::protocol
