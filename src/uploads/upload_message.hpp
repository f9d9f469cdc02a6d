// The client's text messages on the upload WebSocket ({"type":"start"|"resume"|"ping"|"refresh",…};
// docs/protocol.md) → a typed value, or the error code and message the session sends back.
// Pure: no I/O, unit tested and fuzzed on byte strings.
#pragma once

#include "upload/upload.hpp"

#include <string>
#include <string_view>

namespace sg::uploads {

struct UploadMessage {
  enum class Kind { kStart, kResume, kPing, kRefresh, kInvalid };
  Kind kind = Kind::kInvalid;
  upload::CreateRequest start;  // kStart: size, filename, contentType, sha256
  std::string upload_id;        // kResume: 1 to 64 bytes
  std::string token;            // kRefresh: non-empty, as the stream's refresh
  // kInvalid: "malformed_json" (not a JSON object), "unknown_message" or "bad_request", and a
  // sentence for people.
  std::string error;
  std::string message;
};

UploadMessage parse_upload_message(std::string_view text);

}  // namespace sg::uploads
