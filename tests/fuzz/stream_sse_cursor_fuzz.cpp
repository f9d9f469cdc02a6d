// Feeds arbitrary bytes to the SSE cursor decoder (a client's Last-Event-ID). An accepted cursor
// must encode back to the same text (one spelling per position, so a resumed stream's ids compare
// equal), hold at most the entries asked for, and fit the bound the server checks first; nothing
// may crash or read out of bounds.
#include "stream/sse_request.hpp"

#include <cstdlib>
#include <string_view>

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr std::size_t kMaxEntries = 8;
  if (auto entries = sg::stream::decode_cursor(text, kMaxEntries)) {
    require(entries->size() <= kMaxEntries);
    require(sg::stream::encode_cursor(*entries) == text);
    require(text.size() <= sg::stream::max_cursor_bytes(entries->size()));
  }
  return 0;
}
