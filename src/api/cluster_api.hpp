// The views that span nodes: metrics for this node or, with ?scope=cluster, summed over every
// live node sharing the broker; and which users of an org are online anywhere. Called from the
// router in api.cpp; answers may come from the broker's thread.
#pragma once

#include "api/api.hpp"

#include <string>

namespace sg::api {

// GET /v2/realtime/metrics[?scope=node|cluster] (API key).
void handle_metrics(Context& ctx, const HttpRequest& req, Reply reply);
// GET /v2/realtime/presence: a user's own org (JWT), or ?orgId= with an API key.
void handle_presence(Context& ctx, const HttpRequest& req, Reply reply);

// This node's metrics object, as GET /v2/realtime/metrics answers it plus "state" and "node";
// what the broker shares with the other nodes for the cluster view.
std::string node_metrics_json(Context& ctx);
// What /readyz would say, as a word: ready, draining, stopping or broker_unavailable.
std::string_view node_state(const Context& ctx);

// An org id as the metrics write it: a JSON number when it is a plain integer, else a string.
void append_org_id(std::string& out, std::string_view org);

}  // namespace sg::api
