#include "uploads/upload_events.hpp"

#include "broker/broker.hpp"
#include "log/log.hpp"
#include "metrics/metrics.hpp"
#include "node/context.hpp"
#include "protocol/protocol.hpp"

#include <cmath>
#include <cstdio>
#include <map>

namespace sg::uploads {

void append_percent(std::string& out, std::uint64_t received, std::uint64_t total, bool complete) {
  if (total == 0 || received >= total) {
    out += complete || (total != 0 && received >= total) ? "100" : "0";
    return;
  }
  // Hundredths, rounded down so an unfinished upload never shows 100.
  auto hundredths = static_cast<std::uint64_t>(static_cast<double>(received) * 10000.0 /
                                               static_cast<double>(total));
  if (hundredths > 9999) hundredths = 9999;
  core::append_decimal(out, hundredths / 100);
  const auto frac = hundredths % 100;
  if (frac != 0) {
    out.push_back('.');
    out.push_back(static_cast<char>('0' + frac / 10));
    if (frac % 10 != 0) out.push_back(static_cast<char>('0' + frac % 10));
  }
}

namespace {

void append_number(std::string& out, double v) {
  if (!std::isfinite(v) || v < 0) v = 0;
  char buf[32];
  const int n = std::snprintf(buf, sizeof buf, "%.1f", v);
  out.append(buf, static_cast<std::size_t>(n));
  // "12.0" → "12": integers stay integers on the wire.
  if (out.ends_with(".0")) out.resize(out.size() - 2);
}

void field(std::string& out, std::string_view key, std::string_view value) {
  out += ",\"";
  out += key;
  out += "\":";
  protocol::append_json_string(out, value);
}

}  // namespace

std::string upload_status_json(const upload::UploadInfo& info) {
  const bool complete = info.status == upload::Status::kComplete;
  std::string out = "{\"uploadId\":";
  protocol::append_json_string(out, info.id);
  field(out, "status", upload::to_string(info.status));
  field(out, "filename", info.filename);
  field(out, "contentType", info.content_type);
  out += ",\"received\":";
  core::append_decimal(out, info.received);
  out += ",\"total\":";
  core::append_decimal(out, info.size);
  out += ",\"percent\":";
  append_percent(out, info.received, info.size, complete);
  out += ",\"bytesPerSecond\":";
  append_number(out, info.bytes_per_second);
  out += ",\"etaSeconds\":";
  if (info.eta_seconds) {
    append_number(out, *info.eta_seconds);
  } else {
    out += "null";
  }
  if (complete) field(out, "sha256", info.sha256);
  if (info.status == upload::Status::kFailed) {
    field(out, "error", info.error);
    field(out, "message", info.error_message);
  }
  field(out, "createdAt", core::format_rfc3339(info.created_at));
  field(out, "updatedAt", core::format_rfc3339(info.updated_at));
  field(out, "expiresAt", core::format_rfc3339(info.expires_at));
  out += "}";
  return out;
}

upload::Observer make_upload_publisher(broker::Broker& broker, metrics::Registry& registry,
                                       tenancy::Usage* usage) {
  auto& completed =
      registry.counter("streamgate_uploads_completed_total", "Uploads stored and verified");
  auto& bytes = registry.counter("streamgate_upload_bytes_total", "Bytes of completed uploads");
  // Label values are fixed at start-up: one counter per failure reason.
  std::map<std::string, metrics::Counter*, std::less<>> failed;
  for (auto e : {upload::UploadError::kTooLarge, upload::UploadError::kChecksumMismatch,
                 upload::UploadError::kStorage, upload::UploadError::kExpired}) {
    const std::string reason(upload::to_string(e));
    failed.emplace(reason,
                   &registry.counter("streamgate_uploads_failed_total",
                                     "Uploads that failed, by reason", {{"reason", reason}}));
  }
  return [&broker, &completed, &bytes, failed, usage](const upload::UploadInfo& info) {
    if (info.status == upload::Status::kComplete) {
      completed.inc();
      bytes.inc(info.size);
      if (usage != nullptr) {
        usage->add(info.owner.org, tenancy::UsageField::kUploadBytes, info.size,
                   tenancy::UsageClock::now());
      }
    } else if (info.status == upload::Status::kFailed) {
      if (auto it = failed.find(info.error); it != failed.end()) it->second->inc();
    }
    const char* type = info.status == upload::Status::kComplete ? "upload.completed"
                       : info.status == upload::Status::kFailed ? "upload.failed"
                                                                : "upload.progress";
    broker::PublishInput input{type, upload_status_json(info), info.owner.user, {}};
    broker.publish(broker::Channel{info.owner.org, std::string(node::kUploadsService)},
                   std::move(input), [id = info.id](Result<broker::PublishResult> r) {
                     // Progress is advisory: a lost event is superseded by the next one.
                     if (!r) {
                       log::debug("upload", "progress event not published", {{"upload_id", id}});
                     }
                   });
  };
}

}  // namespace sg::uploads
