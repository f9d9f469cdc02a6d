// tus_headers: the pure part of tus 1.0 (https://tus.io/protocols/resumable-upload) — parsing
// and formatting the Tus-Resumable, Upload-Offset/Length, Upload-Metadata and Upload-Checksum
// headers and the Upload-Expires date. No I/O; unit tested and safe from any thread.
#pragma once

#include "core/core.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sg::uploads::tus {

inline constexpr std::string_view kVersion = "1.0.0";
inline constexpr std::string_view kExtensions = "creation,termination,expiration,checksum";
inline constexpr std::string_view kChecksumAlgorithms = "sha1,md5,sha256";
inline constexpr std::string_view kOffsetContentType = "application/offset+octet-stream";

enum class TusError {
  kBadNumber = 1,        // Upload-Offset / Upload-Length not a plain decimal that fits 64 bits
  kBadMetadata,          // Upload-Metadata: empty or duplicate key, bad base64
  kBadChecksum,          // Upload-Checksum: not "<algorithm> <base64>", or the wrong length
  kUnsupportedChecksum,  // an algorithm other than sha1, md5 and sha256
};
std::string_view to_string(TusError e);  // "bad_number", …
constexpr const char* error_domain(TusError) {
  return "tus";
}
SG_DECLARE_ERROR_ENUM(TusError)

// True for the one version served, "1.0.0" (surrounding whitespace tolerated).
bool version_supported(std::string_view tus_resumable);

// A non-negative decimal (Upload-Offset, Upload-Length): digits only, no sign, at most
// 2^63 - 1 so that offset arithmetic can't overflow.
Result<std::uint64_t> parse_size(std::string_view text);

// Upload-Metadata: "key base64value,key2,key3 base64value" → decoded pairs in order. A key
// without a value maps to "". Keys are non-empty, unique, without spaces or commas.
using Metadata = std::vector<std::pair<std::string, std::string>>;
Result<Metadata> parse_metadata(std::string_view header);

// Upload-Checksum: "<algorithm> <base64 of the digest>" for the algorithms of
// kChecksumAlgorithms (tus requires sha1; md5 and sha256 are offered too). The algorithm name is
// case-insensitive; any other algorithm is kUnsupportedChecksum (the caller answers 400), a
// digest of the wrong length kBadChecksum.
using ChecksumAlgorithm = core::DigestAlgorithm;
struct Checksum {
  ChecksumAlgorithm algorithm = ChecksumAlgorithm::kSha256;
  std::string digest;  // raw bytes: 20 (sha1), 16 (md5) or 32 (sha256)
  friend bool operator==(const Checksum&, const Checksum&) = default;
};
Result<Checksum> parse_checksum(std::string_view header);

// RFC 7231 IMF-fixdate, as Upload-Expires uses: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string format_http_date(core::WallClock::time_point t);

}  // namespace sg::uploads::tus

template <>
struct boost::system::is_error_code_enum<sg::uploads::tus::TusError> : std::true_type {};
