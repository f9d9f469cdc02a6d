#include "node/quota.hpp"

#include "core/core.hpp"
#include "node/context.hpp"

namespace sg::node {

namespace {

std::string message_for(tenancy::Quota quota) {
  std::string text = "this org is over its ";
  text += tenancy::quota_name(quota);
  text += " quota (docs/protocol.md#org-quotas)";
  return text;
}

void append_quota(std::string& out, tenancy::Quota quota) {
  out += ",\"quota\":";
  core::append_json_string(out, tenancy::quota_name(quota));
  out += ",\"message\":";
  core::append_json_string(out, message_for(quota));
  out += '}';
}

}  // namespace

net::HttpResponse quota_exceeded(Context& ctx, tenancy::Quota quota,
                                 std::int64_t retry_after_seconds) {
  ctx.quotas->count_refusal(quota);
  net::HttpResponse r;
  r.status = 429;
  r.body = "{\"error\":\"quota_exceeded\"";
  append_quota(r.body, quota);
  r.headers.emplace_back("Retry-After",
                         std::to_string(std::max<std::int64_t>(1, retry_after_seconds)));
  return r;
}

std::string quota_exceeded_frame(Context& ctx, tenancy::Quota quota) {
  ctx.quotas->count_refusal(quota);
  std::string out = "{\"type\":\"error\",\"code\":\"quota_exceeded\"";
  append_quota(out, quota);
  return out;
}

}  // namespace sg::node
