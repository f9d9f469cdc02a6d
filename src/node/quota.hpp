// The answers every endpoint gives when an org is over one of its quotas (tenancy), so the
// stream, upload and publish refusals read the same and are counted the same way.
#pragma once

#include "net/http_types.hpp"
#include "tenancy/tenancy.hpp"

#include <cstdint>
#include <string>

namespace sg::node {

struct Context;

// HTTP 429 with Retry-After and {"error":"quota_exceeded","quota":<name>,"message":…}; counts
// the refusal in streamgate_quota_refusals_total.
net::HttpResponse quota_exceeded(Context& ctx, tenancy::Quota quota,
                                 std::int64_t retry_after_seconds);

// The same refusal as a WebSocket error frame ({"type":"error","code":"quota_exceeded",
// "quota":<name>,"message":…}); counts it too.
std::string quota_exceeded_frame(Context& ctx, tenancy::Quota quota);

}  // namespace sg::node
