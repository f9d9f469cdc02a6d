#include "uploads/upload_message.hpp"

#include <boost/json.hpp>

namespace sg::uploads {

namespace {

UploadMessage invalid(std::string_view error, std::string message) {
  UploadMessage m;
  m.error = std::string(error);
  m.message = std::move(message);
  return m;
}

}  // namespace

UploadMessage parse_upload_message(std::string_view text) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(text, ec);
  const boost::json::object* obj = ec ? nullptr : v.if_object();
  if (!obj) return invalid("malformed_json", "message is not a JSON object");
  const auto* type = obj->if_contains("type");
  const std::string_view t =
      type && type->is_string() ? std::string_view(type->get_string()) : std::string_view();
  UploadMessage m;
  if (t == "ping") {
    m.kind = UploadMessage::Kind::kPing;
    return m;
  }
  if (t == "refresh") {
    const auto* token = obj->if_contains("token");
    if (!token || !token->is_string() || token->get_string().empty()) {
      return invalid("bad_request", "refresh needs a token string");
    }
    m.kind = UploadMessage::Kind::kRefresh;
    m.token = std::string(token->get_string());
    return m;
  }
  if (t == "resume") {
    const auto* id = obj->if_contains("uploadId");
    if (!id || !id->is_string() || id->get_string().empty() || id->get_string().size() > 64) {
      return invalid("bad_request", "resume needs an uploadId string");
    }
    m.kind = UploadMessage::Kind::kResume;
    m.upload_id = std::string(id->get_string());
    return m;
  }
  if (t != "start")
    return invalid("unknown_message", "expected a start, resume, refresh or ping message");

  const auto* size = obj->if_contains("size");
  if (!size || !(size->is_uint64() || (size->is_int64() && size->get_int64() >= 0))) {
    return invalid("bad_request", "start needs size, a whole number of bytes");
  }
  m.start.size =
      size->is_uint64() ? size->get_uint64() : static_cast<std::uint64_t>(size->get_int64());
  for (auto [key, target] : {std::pair{"filename", &m.start.filename},
                             std::pair{"contentType", &m.start.content_type}}) {
    const auto* f = obj->if_contains(key);
    if (!f || f->is_null()) continue;
    if (!f->is_string()) return invalid("bad_request", std::string(key) + " must be a string");
    *target = std::string(f->get_string());
  }
  if (const auto* sha = obj->if_contains("sha256"); sha && !sha->is_null()) {
    m.start.sha256 = sha->is_string() ? upload::parse_sha256_hex(sha->get_string()) : std::nullopt;
    if (!m.start.sha256) return invalid("bad_request", "sha256 must be 64 hex digits");
  }
  m.kind = UploadMessage::Kind::kStart;
  return m;
}

}  // namespace sg::uploads
