// Publishes upload progress on the uploader's stream: events "upload.progress",
// "upload.completed" and "upload.failed" on channel (org, "uploads"), targeted at the uploader,
// so every tab of that user subscribed to the `uploads` service sees them. Also the JSON shapes
// the upload endpoints share (status body, percent).
#pragma once

#include "upload/upload.hpp"

#include <string>

namespace sg::broker {
class Broker;
}
namespace sg::metrics {
class Registry;
}
namespace sg::tenancy {
class Usage;
}

namespace sg::uploads {

// The manager's observer. Runs on the manager's thread; the broker and registry must outlive the
// manager. Also counts uploads completed and failed (by reason) and bytes stored, for /metrics,
// and a completed upload's bytes in `usage` (null: not metered), which must outlive it too.
upload::Observer make_upload_publisher(broker::Broker& broker, metrics::Registry& registry,
                                       tenancy::Usage* usage);

// received/total as a percentage with at most two decimals ("40.52", "100"); floor, so 100 only
// once every byte is there.
void append_percent(std::string& out, std::uint64_t received, std::uint64_t total, bool complete);

// The JSON object GET /v2/realtime/uploads/{id} answers and upload events carry as data:
// {"uploadId","status","filename","contentType","received","total","percent","bytesPerSecond",
//  "etaSeconds","sha256"?,"error"?,"message"?,"createdAt","updatedAt","expiresAt"}.
std::string upload_status_json(const upload::UploadInfo& info);

}  // namespace sg::uploads
