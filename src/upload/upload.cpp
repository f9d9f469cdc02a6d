#include "upload/upload.hpp"

namespace sg::upload {

std::string_view to_string(UploadError e) {
  switch (e) {
    case UploadError::kNotFound:
      return "not_found";
    case UploadError::kTooLarge:
      return "too_large";
    case UploadError::kOffsetMismatch:
      return "offset_mismatch";
    case UploadError::kChecksumMismatch:
      return "checksum_mismatch";
    case UploadError::kStorage:
      return "storage_error";
    case UploadError::kTooManyUploads:
      return "too_many_uploads";
    case UploadError::kOrgQuota:
      return "org_quota_exceeded";
    case UploadError::kAlreadyComplete:
      return "already_complete";
    case UploadError::kFailed:
      return "upload_failed";
    case UploadError::kExpired:
      return "expired";
    case UploadError::kBadRequest:
      return "bad_request";
    case UploadError::kShuttingDown:
      return "shutting_down";
  }
  return "unknown";
}

std::string describe(UploadError e, const ManagerOptions& limits, bool uploading) {
  switch (e) {
    case UploadError::kNotFound:
      return "no such upload";
    case UploadError::kTooLarge:
      return uploading
                 ? "more bytes than the declared size; the upload was discarded"
                 : "size is over --upload-max-bytes (" + std::to_string(limits.max_bytes) + ")";
    case UploadError::kOffsetMismatch:
      return "the upload moved on elsewhere; resume it to learn its offset";
    case UploadError::kChecksumMismatch:
      return "the file's SHA-256 differs from the declared one; the upload was discarded";
    case UploadError::kStorage:
      return "the server could not store the upload; it was discarded";
    case UploadError::kTooManyUploads:
      return "this user has --upload-max-per-user (" + std::to_string(limits.max_per_user) +
             ") unfinished uploads";
    case UploadError::kOrgQuota:
      return "the org's unfinished uploads would pass --upload-max-org-bytes (" +
             std::to_string(limits.max_org_bytes) + ")";
    case UploadError::kAlreadyComplete:
      return "the upload is already complete";
    case UploadError::kFailed:
      return "the upload failed earlier; start a new one";
    case UploadError::kExpired:
      return "the upload expired (--upload-expiry); start a new one";
    case UploadError::kBadRequest:
      return "the start message was refused (filename or contentType too long)";
    case UploadError::kShuttingDown:
      return "the server is shutting down";
  }
  return "the upload could not be processed";
}

std::string_view to_string(Status s) {
  switch (s) {
    case Status::kUploading:
      return "uploading";
    case Status::kComplete:
      return "complete";
    case Status::kFailed:
      return "failed";
  }
  return "unknown";
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<Sha256> parse_sha256_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  Sha256 out{};
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return out;
}

std::string to_hex(const Sha256& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (unsigned char b : digest) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

double UploadInfo::percent() const {
  if (size == 0) return status == Status::kComplete ? 100.0 : 0.0;
  return 100.0 * static_cast<double>(received) / static_cast<double>(size);
}

}  // namespace sg::upload
