// Usage metering in the HTTP API: GET /v2/realtime/usage?orgId=&from=&to= (API key), and the
// periodic flush of the node's counters (tenancy::Usage) into the cluster's store (Redis) or the
// node's own table (memory broker), which also writes --usage-export's lines for closed hours.
#pragma once

#include "api/api.hpp"

#include <functional>

namespace sg::api {

void add_usage_routes(net::HttpRoutes& routes, Context& ctx);

// Drains ctx.usage and adds it to the store; `done` (may be null) runs once the store answered,
// on the broker's thread or inline. What the store refused is kept and sent with the next
// flush. From the server's I/O thread every --usage-flush seconds, and once at shutdown.
void flush_usage(Context& ctx, std::function<void()> done);

}  // namespace sg::api
