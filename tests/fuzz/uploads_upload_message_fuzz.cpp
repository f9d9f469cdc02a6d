// Feeds arbitrary bytes to the upload WebSocket's message parser and checks what the session
// relies on: a verdict for every input, an error code from the documented set, and bounded ids.
#include "uploads/upload_message.hpp"

#include <cstdlib>
#include <string_view>

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto m = sg::uploads::parse_upload_message(text);
  using Kind = sg::uploads::UploadMessage::Kind;
  switch (m.kind) {
    case Kind::kInvalid:
      require(m.error == "malformed_json" || m.error == "unknown_message" ||
              m.error == "bad_request");
      require(!m.message.empty());
      break;
    case Kind::kResume:
      require(!m.upload_id.empty() && m.upload_id.size() <= 64);
      break;
    case Kind::kRefresh:
      require(!m.token.empty() && m.error.empty());
      break;
    case Kind::kStart:
    case Kind::kPing:
      require(m.error.empty());
      break;
  }
  return 0;
}
