#include "uploads/tus.hpp"

#include "auth/auth.hpp"
#include "core/core.hpp"
#include "log/log.hpp"
#include "node/context.hpp"
#include "node/quota.hpp"
#include "node/request_auth.hpp"
#include "upload/upload.hpp"
#include "uploads/tus_headers.hpp"
#include "uploads/upload_quota.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace sg::uploads::tus {

namespace {

constexpr std::string_view kCollection = "/v2/uploads";
constexpr std::string_view kExposedHeaders =
    "Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Tus-Resumable, "
    "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm";
constexpr std::string_view kAllowedHeaders =
    "Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Metadata, Upload-Offset, "
    "Upload-Checksum, X-Requested-With";
constexpr std::string_view kMethods = "POST, HEAD, PATCH, DELETE, OPTIONS";
// Upload ids are 32 hex characters; anything else can't name an upload and is 404 at once.
constexpr std::size_t kMaxIdLength = 64;

std::string_view header(const HttpRequest& req, std::string_view name) {
  return req.header ? req.header(name) : std::string_view();
}

// The upload id of /v2/uploads/<id>; empty for the collection itself.
std::string_view upload_id(std::string_view path) {
  path.remove_prefix(kCollection.size());
  if (!path.empty()) path.remove_prefix(1);
  return path;
}

bool plausible_id(std::string_view id) {
  return !id.empty() && id.size() <= kMaxIdLength && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

// What every tus response carries, plus CORS for an allowed browser Origin.
struct ResponseHeaders {
  std::string origin;  // empty: not a browser request, or an Origin not allowed
};

HttpResponse& decorate(HttpResponse& r, const ResponseHeaders& h) {
  r.headers.emplace_back("Tus-Resumable", std::string(kVersion));
  if (!h.origin.empty()) {
    r.headers.emplace_back("Access-Control-Allow-Origin", h.origin);
    r.headers.emplace_back("Vary", "Origin");
    r.headers.emplace_back("Access-Control-Expose-Headers", std::string(kExposedHeaders));
  }
  return r;
}

HttpResponse error(const ResponseHeaders& h, unsigned status, std::string_view code,
                   std::string_view message) {
  auto r = json_error(status, code, message);
  // tus's own status for a checksum that does not match; HTTP names no phrase for it.
  if (status == 460) r.reason = "Checksum Mismatch";
  return std::move(decorate(r, h));
}

HttpResponse no_content(const ResponseHeaders& h) {
  HttpResponse r;
  r.status = 204;
  return std::move(decorate(r, h));
}

std::uint64_t max_size(const Context& ctx) {
  return ctx.settings.upload_max_bytes;
}

// The answer for a Manager error: its words are upload::describe's, the WebSocket path's.
// `uploading`: the request was sending the upload's bytes (a PATCH).
HttpResponse upload_error(const ResponseHeaders& h, const ErrorCode& ec, const Context& ctx,
                          bool uploading) {
  if (ec.category() != make_error_code(upload::UploadError::kNotFound).category()) {
    return error(h, 500, "internal_error", "the upload could not be processed");
  }
  const auto e = static_cast<upload::UploadError>(ec.value());
  const auto& s = ctx.settings;
  const std::string message = upload::describe(e,
                                               {.max_bytes = s.upload_max_bytes,
                                                .max_per_user = s.upload_max_per_user,
                                                .max_org_bytes = s.upload_max_org_bytes},
                                               uploading);
  unsigned status = 0;
  switch (e) {
    case upload::UploadError::kNotFound:
    case upload::UploadError::kExpired:
      // tus's expiration extension: an expired upload is one that no longer exists.
      return error(h, 404, "not_found", message);
    case upload::UploadError::kTooLarge:
      status = 413;
      break;
    case upload::UploadError::kOffsetMismatch:
    case upload::UploadError::kAlreadyComplete:
      status = 409;
      break;
    case upload::UploadError::kChecksumMismatch:
      status = 460;
      break;
    case upload::UploadError::kStorage:
      status = 500;
      break;
    case upload::UploadError::kTooManyUploads:
    case upload::UploadError::kOrgQuota:
      status = 429;
      break;
    case upload::UploadError::kFailed:
      status = 410;
      break;
    case upload::UploadError::kBadRequest:
      status = 400;
      break;
    case upload::UploadError::kShuttingDown:
      status = 503;
      break;
  }
  if (status == 0) return error(h, 500, "internal_error", "the upload could not be processed");
  return error(h, status, core::reason(ec), message);
}

// Who is asking, or the answer that refuses them: 403 for a browser Origin the policy refuses
// (as the stream does), 401 JSON for a missing or bad token (authenticate_user, as every user
// endpoint).
struct Caller {
  ResponseHeaders headers;
  std::optional<HttpResponse> reject;
  upload::Owner owner;
};

Caller identify(Context& ctx, const HttpRequest& req) {
  Caller c;
  if (req.has_origin) {
    if (!ctx.origins.allows(req.origin)) {
      ctx.metrics->count_auth_failure("origin_not_allowed");
      log::info("auth", "origin rejected", {{"origin", req.origin}, {"path", req.path}});
      c.reject = error(c.headers, 403, "origin_not_allowed", "this Origin may not upload");
      return c;
    }
    c.headers.origin = std::string(req.origin);
  }
  auto user = node::authenticate_user(ctx, req);
  if (user.reject) {
    c.reject = std::move(*user.reject);
    decorate(*c.reject, c.headers);
    return c;
  }
  c.owner = upload::Owner{std::move(user.principal.org), std::move(user.principal.user)};
  return c;
}

// Tus-Resumable must be 1.0.0 on every request but OPTIONS; 412 names the version served.
std::optional<HttpResponse> check_version(const HttpRequest& req, const ResponseHeaders& h) {
  if (version_supported(header(req, "Tus-Resumable"))) return std::nullopt;
  auto r = error(h, 412, "unsupported_tus_version", "send Tus-Resumable: 1.0.0");
  r.headers.emplace_back("Tus-Version", std::string(kVersion));
  return r;
}

// A failed upload: 460 when its whole-file SHA-256 didn't match, 500 when the disk refused
// it, else 410 (it can't continue; a tus client then starts a new one).
HttpResponse failed(const ResponseHeaders& h, const upload::UploadInfo& info) {
  const std::string message = "the upload failed: " + info.error_message;
  if (info.error == "checksum_mismatch") return error(h, 460, info.error, message);
  if (info.error == "storage_error") return error(h, 500, info.error, message);
  return error(h, 410, info.error.empty() ? "upload_failed" : info.error, message);
}

// An upload that failed earlier: it can't continue, and a tus client starts a new one on 410.
HttpResponse gone(const ResponseHeaders& h, const upload::UploadInfo& info) {
  return error(h, 410, info.error.empty() ? "upload_failed" : info.error,
               "the upload failed earlier and can't continue: " + info.error_message);
}

void add_expiry(HttpResponse& r, const upload::UploadInfo& info) {
  if (info.status == upload::Status::kUploading) {
    r.headers.emplace_back("Upload-Expires", format_http_date(info.expires_at));
  }
}

std::string encode_metadata(const upload::UploadInfo& info) {
  std::string out;
  for (const auto& [key, value] : info.metadata) {
    if (!out.empty()) out += ',';
    out += key;
    if (!value.empty()) {
      out += ' ';
      out += core::base64_encode(
          std::span(reinterpret_cast<const unsigned char*>(value.data()), value.size()));
    }
  }
  return out;
}

std::string_view first_of(const Metadata& m, std::initializer_list<std::string_view> keys) {
  for (auto key : keys) {
    for (const auto& [k, v] : m) {
      if (k == key && !v.empty()) return v;
    }
  }
  return {};
}

HttpResponse options(Context& ctx, const HttpRequest& req) {
  ResponseHeaders h;
  const bool preflight = !header(req, "Access-Control-Request-Method").empty();
  if (req.has_origin) {
    if (!ctx.origins.allows(req.origin)) {
      return error(h, 403, "origin_not_allowed", "this Origin may not upload");
    }
    h.origin = std::string(req.origin);
  }
  HttpResponse r = no_content(h);
  r.headers.emplace_back("Tus-Version", std::string(kVersion));
  r.headers.emplace_back("Tus-Extension", std::string(kExtensions));
  r.headers.emplace_back("Tus-Max-Size", std::to_string(max_size(ctx)));
  r.headers.emplace_back("Tus-Checksum-Algorithm", std::string(kChecksumAlgorithms));
  if (preflight && !h.origin.empty()) {
    r.headers.emplace_back("Access-Control-Allow-Methods", std::string(kMethods));
    r.headers.emplace_back("Access-Control-Allow-Headers", std::string(kAllowedHeaders));
    r.headers.emplace_back("Access-Control-Max-Age", "86400");
  }
  return r;
}

// Creates the upload whose bytes the quota reserved; gives them back if it is not created.
void create_reserved(Context& ctx, const ResponseHeaders& h, upload::Owner owner,
                     upload::CreateRequest request, std::uint64_t size,
                     UploadReservation reservation, Reply reply) {
  ctx.uploads->create(owner, std::move(request),
                      [&ctx, h, org = owner.org, size, reservation,
                       reply = std::move(reply)](Result<upload::UploadInfo> info) {
                        if (!info) {
                          return_upload_bytes(ctx, org, size, reservation);
                          return reply(upload_error(h, info.error(), ctx, false));
                        }
                        HttpResponse r;
                        r.status = 201;
                        decorate(r, h);
                        r.headers.emplace_back("Location",
                                               std::string(kCollection) + "/" + info->id);
                        r.headers.emplace_back("Upload-Offset", std::to_string(info->received));
                        add_expiry(r, *info);
                        reply(std::move(r));
                      });
}

void create(Context& ctx, const HttpRequest& req, Caller caller, Reply reply) {
  const auto& h = caller.headers;
  if (!header(req, "Upload-Defer-Length").empty()) {
    return reply(error(h, 400, "defer_length_unsupported",
                       "Upload-Defer-Length is not supported; send Upload-Length"));
  }
  const std::string_view length_text = header(req, "Upload-Length");
  if (length_text.empty()) {
    return reply(error(h, 400, "missing_upload_length", "send Upload-Length"));
  }
  auto length = parse_size(length_text);
  if (!length) {
    return reply(error(h, 400, "bad_upload_length", "Upload-Length must be a decimal size"));
  }
  if (*length > max_size(ctx)) {
    return reply(error(h, 413, "too_large",
                       "Upload-Length is over the maximum of " + std::to_string(max_size(ctx)) +
                           " bytes (Tus-Max-Size)"));
  }
  auto metadata = parse_metadata(header(req, "Upload-Metadata"));
  if (!metadata) {
    return reply(error(h, 400, "bad_metadata",
                       "Upload-Metadata must be comma-separated 'key base64value' pairs with "
                       "unique keys"));
  }
  upload::CreateRequest request;
  request.size = *length;
  request.filename = std::string(first_of(*metadata, {"filename", "name"}));
  // tus clients need not name the file; the Manager wants a name to show back.
  if (request.filename.empty()) request.filename = "upload";
  request.content_type = std::string(first_of(*metadata, {"filetype", "type", "contentType"}));
  request.metadata = std::move(*metadata);
  // The quota's answer may come from the broker's thread; the Manager takes calls from any.
  reserve_upload_bytes(
      ctx, caller.owner.org, *length,
      [&ctx, h, owner = caller.owner, size = *length, request = std::move(request),
       reply = std::move(reply)](tenancy::Decision quota, UploadReservation reservation) mutable {
        if (!quota.allowed) {
          auto r = node::quota_exceeded(ctx, tenancy::Quota::kUploadBytesPerDay,
                                        quota.retry_after_seconds);
          return reply(std::move(decorate(r, h)));
        }
        create_reserved(ctx, h, std::move(owner), std::move(request), size, reservation,
                        std::move(reply));
      });
}

void head(Context& ctx, Caller caller, std::string id, Reply reply) {
  ctx.uploads->find(
      caller.owner, std::move(id),
      [&ctx, h = caller.headers, reply = std::move(reply)](Result<upload::UploadInfo> info) {
        if (!info) return reply(upload_error(h, info.error(), ctx, false));
        if (info->status == upload::Status::kFailed) return reply(gone(h, *info));
        HttpResponse r;
        decorate(r, h);
        r.headers.emplace_back("Upload-Offset", std::to_string(info->received));
        r.headers.emplace_back("Upload-Length", std::to_string(info->size));
        if (!info->metadata.empty()) {
          r.headers.emplace_back("Upload-Metadata", encode_metadata(*info));
        }
        add_expiry(r, *info);
        reply(std::move(r));
      });
}

void terminate(Context& ctx, Caller caller, std::string id, Reply reply) {
  ctx.uploads->remove(caller.owner, id,
                      [&ctx, h = caller.headers, owner = caller.owner, id,
                       reply = std::move(reply)](Result<void> done) {
                        if (!done) return reply(upload_error(h, done.error(), ctx, false));
                        log::info("tus", "upload terminated",
                                  {{"upload_id", id}, {"org", owner.org}, {"user", owner.user}});
                        reply(no_content(h));
                      });
}

// Appends one PATCH body to an upload. Its methods run one at a time, alternating between the
// session's worker (on_data, on_end, on_abort) and the Manager's thread (its callbacks), each
// step handing over to the next; so the state needs no lock.
//
// With Upload-Checksum the bytes that would complete the upload are held back until the body
// has ended and its digest matched: the Manager commits an upload as soon as it is complete,
// and a committed upload can no longer be truncated back to where the PATCH began.
class PatchSink final : public net::BodySink, public std::enable_shared_from_this<PatchSink> {
 public:
  PatchSink(Context& ctx, Caller caller, std::string id, std::uint64_t offset, std::uint64_t size,
            std::optional<Checksum> checksum)
      : ctx_(ctx),
        headers_(std::move(caller.headers)),
        owner_(std::move(caller.owner)),
        id_(std::move(id)),
        start_(offset),
        offset_(offset),
        size_(size),
        checksum_(std::move(checksum)) {
    if (checksum_) hasher_.emplace(checksum_->algorithm);
  }

  void on_data(std::string_view piece, net::BodySink::Next next) override {
    if (hasher_) {
      hasher_->update(piece);
      if (offset_ + held_.size() + piece.size() >= size_) {
        held_.append(piece);
        // Over the declared size nothing can be held back: let the Manager refuse it.
        if (offset_ + held_.size() <= size_) return next(std::nullopt);
        return append(std::exchange(held_, std::string()), std::move(next));
      }
    }
    append(std::string(piece), std::move(next));
  }

  void on_end(Reply reply) override {
    if (!hasher_) return acknowledge(std::move(reply));
    if (hasher_->finish() != checksum_->digest) return roll_back(std::move(reply));
    if (held_.empty()) return acknowledge(std::move(reply));
    append(std::exchange(held_, std::string()),
           [self = shared_from_this(), reply = std::move(reply)](std::optional<HttpResponse> stop) {
             if (stop) return reply(std::move(*stop));
             self->acknowledge(std::move(reply));
           });
  }

  void on_abort() override {
    if (offset_ == start_) return;
    // Bytes whose checksum never arrived can't be trusted: the PATCH is undone (tus §checksum).
    if (hasher_) return roll_back(nullptr);
    // tus keeps what arrived of a cut PATCH; recorded now, it also survives a restart.
    acknowledge(nullptr);
  }

 private:
  void append(std::string bytes, net::BodySink::Next next) {
    const std::uint64_t at = offset_;
    ctx_.uploads->append(
        owner_, id_, at, std::move(bytes),
        [self = shared_from_this(), next = std::move(next)](Result<upload::UploadInfo> info) {
          if (!info) {
            return next(upload_error(self->headers_, info.error(), self->ctx_, true));
          }
          self->offset_ = info->received;
          self->info_ = std::move(*info);
          if (self->info_->status == upload::Status::kFailed) {
            return next(failed(self->headers_, *self->info_));
          }
          next(std::nullopt);
        });
  }

  // Answers 204 only once the new offset is durable (Manager::checkpoint): an acknowledged
  // PATCH survives a crash. `reply` may be empty (a cut PATCH: nobody to answer).
  void acknowledge(Reply reply) {
    ctx_.uploads->checkpoint(
        owner_, id_,
        [self = shared_from_this(), reply = std::move(reply)](Result<upload::UploadInfo> info) {
          if (!reply) return;
          if (!info) return reply(upload_error(self->headers_, info.error(), self->ctx_, true));
          if (info->status == upload::Status::kFailed) {
            return reply(failed(self->headers_, *info));
          }
          self->info_ = std::move(*info);
          reply(self->done_response());
        });
  }

  HttpResponse done_response() {
    HttpResponse r = no_content(headers_);
    r.headers.emplace_back("Upload-Offset", std::to_string(offset_));
    if (info_) add_expiry(r, *info_);
    return r;
  }

  // Undoes this PATCH: answers 460 through `reply`, or nobody when the body was cut short.
  void roll_back(Reply reply) {
    log::info(
        "tus",
        reply ? "checksum mismatch; PATCH rolled back" : "checksummed PATCH cut short; rolled back",
        {{"upload_id", id_}, {"org", owner_.org}, {"offset", start_}});
    auto answer = [self = shared_from_this(), reply = std::move(reply)](bool ok) {
      if (!reply) return;
      if (!ok) {
        return reply(error(self->headers_, 500, "storage_error",
                           "the checksum did not match and the PATCH could not be undone"));
      }
      auto r = error(self->headers_, 460, "checksum_mismatch",
                     "Upload-Checksum does not match the body; the PATCH was discarded");
      r.headers.emplace_back("Upload-Offset", std::to_string(self->start_));
      reply(std::move(r));
    };
    held_.clear();
    if (offset_ == start_) return answer(true);
    ctx_.uploads->truncate(owner_, id_, start_,
                           [answer = std::move(answer)](Result<upload::UploadInfo> info) {
                             answer(static_cast<bool>(info));
                           });
  }

  Context& ctx_;
  ResponseHeaders headers_;
  upload::Owner owner_;
  std::string id_;
  std::uint64_t start_;   // Upload-Offset of the PATCH
  std::uint64_t offset_;  // what the Manager has stored
  std::uint64_t size_;    // Upload-Length
  std::optional<Checksum> checksum_;
  std::optional<core::Digest> hasher_;  // the Upload-Checksum digest of the body so far
  std::string held_;  // with a checksum: the completing bytes, until the digest is known
  std::optional<upload::UploadInfo> info_;
};

bool uploads_available(Context& ctx, const ResponseHeaders& h, const Reply& reply) {
  if (ctx.uploads) return true;
  reply(error(h, 503, "uploads_disabled", "uploads are not enabled on this server"));
  return false;
}

}  // namespace

bool is_tus_path(std::string_view path) {
  if (!path.starts_with(kCollection)) return false;
  return path.size() == kCollection.size() || path[kCollection.size()] == '/';
}

bool streams_body(const HttpRequest& req) {
  return req.method == "PATCH" && is_tus_path(req.path) && !upload_id(req.path).empty();
}

void handle(Context& ctx, const HttpRequest& req, Reply reply) {
  const std::string_view id = upload_id(req.path);
  if (req.method == "OPTIONS") return reply(options(ctx, req));
  Caller caller = identify(ctx, req);
  if (caller.reject) return reply(std::move(*caller.reject));
  const auto& h = caller.headers;
  if (auto r = check_version(req, h)) return reply(std::move(*r));
  if (!uploads_available(ctx, h, reply)) return;

  if (id.empty()) {
    if (req.method == "POST") return create(ctx, req, std::move(caller), std::move(reply));
  } else if (req.method == "HEAD" || req.method == "DELETE") {
    if (!plausible_id(id)) return reply(error(h, 404, "not_found", "no such upload"));
    if (req.method == "HEAD")
      return head(ctx, std::move(caller), std::string(id), std::move(reply));
    return terminate(ctx, std::move(caller), std::string(id), std::move(reply));
  }
  auto r = error(h, 405, "method_not_allowed",
                 id.empty() ? "use POST to create an upload" : "use HEAD, PATCH or DELETE");
  r.headers.emplace_back("Allow", id.empty() ? "POST, OPTIONS" : "HEAD, PATCH, DELETE, OPTIONS");
  reply(std::move(r));
}

void begin_patch(Context& ctx, const HttpRequest& req, net::Decide decide) {
  auto answer = [&decide](HttpResponse r) { decide(net::BodyDecision{std::move(r), nullptr}); };
  Caller caller = identify(ctx, req);
  if (caller.reject) return answer(std::move(*caller.reject));
  const auto& h = caller.headers;
  if (auto r = check_version(req, h)) return answer(std::move(*r));
  if (!uploads_available(ctx, h, answer)) return;
  const std::string id(upload_id(req.path));
  if (!plausible_id(id)) return answer(error(h, 404, "not_found", "no such upload"));
  // Media type parameters are allowed; the type itself must be tus's.
  std::string_view type = header(req, "Content-Type");
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  if (!core::iequals(type, kOffsetContentType)) {
    return answer(error(h, 415, "unsupported_media_type",
                        "PATCH bodies must be Content-Type: application/offset+octet-stream"));
  }
  auto offset = parse_size(header(req, "Upload-Offset"));
  if (!offset) {
    return answer(error(h, 400, "bad_upload_offset", "send Upload-Offset as a decimal offset"));
  }
  std::optional<Checksum> checksum;
  if (const auto text = header(req, "Upload-Checksum"); !text.empty()) {
    auto parsed = parse_checksum(text);
    if (!parsed) {
      return answer(error(h, 400, core::reason(parsed.error()),
                          "Upload-Checksum must be '<sha1|md5|sha256> <base64 digest>'"));
    }
    checksum = *parsed;
  }
  const std::optional<std::uint64_t> length = req.content_length;

  ctx.uploads->find(
      caller.owner, id,
      [&ctx, caller, id, offset = *offset, checksum, length,
       decide = std::move(decide)](Result<upload::UploadInfo> info) mutable {
        const auto& hd = caller.headers;
        auto reject = [&decide](HttpResponse r) {
          decide(net::BodyDecision{std::move(r), nullptr});
        };
        if (!info) return reject(upload_error(hd, info.error(), ctx, false));
        if (info->status == upload::Status::kFailed) return reject(gone(hd, *info));
        if (offset != info->received) {
          auto r = error(hd, 409, "offset_mismatch",
                         "Upload-Offset is " + std::to_string(offset) + " but the upload is at " +
                             std::to_string(info->received));
          r.headers.emplace_back("Upload-Offset", std::to_string(info->received));
          return reject(std::move(r));
        }
        if (length && *length > info->size - info->received) {
          // Refused before any byte is read, so the upload itself stays intact.
          return reject(
              error(hd, 413, "too_large", "the body would take the upload past its Upload-Length"));
        }
        if (info->status == upload::Status::kComplete) {
          if (length && *length == 0) {
            HttpResponse r = no_content(hd);
            r.headers.emplace_back("Upload-Offset", std::to_string(info->received));
            return reject(std::move(r));
          }
          return reject(error(hd, 409, "already_complete", "the upload is already complete"));
        }
        decide(net::BodyDecision{
            std::nullopt, std::make_shared<PatchSink>(ctx, std::move(caller), std::move(id), offset,
                                                      info->size, checksum)});
      });
}

}  // namespace sg::uploads::tus
