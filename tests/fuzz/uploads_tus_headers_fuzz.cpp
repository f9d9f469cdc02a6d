// Feeds arbitrary bytes to the tus header parsers (Upload-Metadata, Upload-Checksum, sizes,
// base64). Accepted metadata must survive re-encoding unchanged; decoded base64 must encode back
// to the input; nothing may crash or read out of bounds.
#include "uploads/tus_headers.hpp"

#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

std::string encode(std::string_view s) {
  return sg::core::base64_encode(
      std::span(reinterpret_cast<const unsigned char*>(s.data()), s.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sg::uploads::tus;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (std::string decoded; sg::core::base64_decode(text, decoded)) require(encode(decoded) == text);

  if (auto n = parse_size(text)) require(std::to_string(*n).size() <= text.size());

  (void)parse_checksum(text);
  (void)version_supported(text);

  if (auto m = parse_metadata(text)) {
    std::string again;
    for (const auto& [key, value] : *m) {
      require(!key.empty());
      if (!again.empty()) again += ',';
      again += key;
      if (!value.empty()) again += ' ' + encode(value);
    }
    auto reparsed = parse_metadata(again);
    require(reparsed && *reparsed == *m);
  }
  return 0;
}
