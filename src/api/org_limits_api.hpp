// Org quotas in the HTTP API: PUT/GET/DELETE /v2/realtime/orgs/{orgId}/limits (API key), and
// the publish rate check the publish handler makes before storing a request's events.
#pragma once

#include "api/api.hpp"
#include "protocol/protocol.hpp"

#include <optional>

namespace sg::api {

void add_org_limits_routes(net::HttpRoutes& routes, Context& ctx);

// Draws a publish request's events from its orgs' publish buckets (a batch of N events takes
// N, all or nothing); the 429 to answer when one org is over its publishRate.
std::optional<HttpResponse> refuse_over_publish_rate(Context& ctx,
                                                     const protocol::PublishBody& body);

// Reads every live node's metrics snapshot from the broker and gives the quotas the cluster
// view (live nodes, each org's connections on the other nodes). The server calls it every
// second; the answer arrives on the broker's thread. With the memory broker the cluster is this
// node and the view stays empty.
//
// With a shared store (Redis) it also loads the overrides when their version changed
// (refresh_org_limits), so a change made on any node applies on this one within a second and a
// node that starts has them all.
void refresh_quota_cluster_view(Context& ctx);
void refresh_org_limits(Context& ctx);

}  // namespace sg::api
