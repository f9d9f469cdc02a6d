// The producer control API (docs/protocol.md#producer-api): cutting users off (disconnect,
// revoke) and reading what the cluster holds (history, channels, connections). Requests that
// concern every node go through the broker's control channel as small JSON messages, which
// each node's control handler (installed by start_control) applies to its own hub.
#include "api/control_api.hpp"

#include "auth/auth.hpp"
#include "chat/chat.hpp"
#include "core/core.hpp"
#include "hub/hub.hpp"
#include "log/log.hpp"
#include "node/context.hpp"
#include "node/request_auth.hpp"
#include "protocol/protocol.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <map>

namespace sg::api {

namespace {

namespace json = boost::json;

// The close reason is at most 123 bytes; a producer's reason travels in the error frame.
constexpr std::size_t kMaxReasonBytes = 256;
constexpr std::size_t kMaxIdBytes = 256;
constexpr std::size_t kDefaultHistoryLimit = 100;

std::string_view view(const json::string& s) {
  return {s.data(), s.size()};
}

bool has_control_chars(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

HttpResponse missing(std::string_view field) {
  return net::json_field_error("missing_field", "missing field \"" + std::string(field) + "\"",
                               field);
}

HttpResponse bad(std::string_view field, std::string_view why) {
  return net::json_field_error(
      "bad_field", "bad value for \"" + std::string(field) + "\": " + std::string(why), field);
}

std::optional<std::string> org_of(const json::value& v) {
  if (v.is_uint64()) return core::org_id_from_integer(v.get_uint64());
  if (v.is_int64()) return core::org_id_from_integer(v.get_int64());
  if (const json::string* s = v.if_string()) return core::org_id_from_text(view(*s));
  return std::nullopt;
}

// As publish's userId: a string, or an integer written in decimal, so 17 and "17" are one user.
std::optional<std::string> id_of(const json::value& v) {
  std::string out;
  if (const json::string* s = v.if_string()) {
    if (s->empty() || s->size() > kMaxIdBytes || has_control_chars(view(*s))) return std::nullopt;
    out.assign(view(*s));
  } else if (v.is_uint64()) {
    core::append_decimal(out, v.get_uint64());
  } else if (v.is_int64() && v.get_int64() >= 0) {
    core::append_decimal(out, static_cast<std::uint64_t>(v.get_int64()));
  } else if (v.is_int64()) {
    out.push_back('-');
    core::append_decimal(out, ~static_cast<std::uint64_t>(v.get_int64()) + 1);
  } else {
    return std::nullopt;
  }
  return out;
}

// The request body as an object whose fields are all among `allowed`; else the answer.
std::optional<HttpResponse> parse_body(std::string_view body,
                                       std::initializer_list<std::string_view> allowed,
                                       json::object& out) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return net::json_field_error("malformed_json", "the body is not valid JSON", {});
  json::object* object = v.if_object();
  if (object == nullptr)
    return net::json_field_error("not_an_object", "the body must be a JSON object", {});
  for (const auto& member : *object) {
    const std::string_view key(member.key().data(), member.key().size());
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return net::json_field_error("unknown_field", "unknown field \"" + std::string(key) + "\"",
                                   key);
    }
  }
  out = std::move(*object);
  return std::nullopt;
}

const json::value* present(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return (v == nullptr || v->is_null()) ? nullptr : v;
}

std::string org_json(std::string_view org) {
  std::string out;
  protocol::append_json_string(out, org);
  return out;
}

// ---- what every node does with a control message ----

hub::Cutoff disconnect_cut(std::string org, std::string user, std::string connection_id,
                           std::string reason, bool reconnect) {
  hub::Cutoff cut;
  cut.org = std::move(org);
  cut.user = std::move(user);
  cut.connection_id = std::move(connection_id);
  cut.code = protocol::close_code::kDisconnected;
  cut.close_reason = reconnect ? "disconnected; reconnect" : "disconnected";
  cut.error = "disconnected";
  cut.message = reason.empty() ? std::string("disconnected by the server") : std::move(reason);
  return cut;
}

hub::Cutoff revoke_cut(std::string org, std::string user, std::int64_t issued_before) {
  hub::Cutoff cut;
  cut.org = std::move(org);
  cut.user = std::move(user);
  cut.issued_before = issued_before;
  cut.code = protocol::close_code::kTokenExpired;
  cut.close_reason = "token_revoked";
  cut.error = "token_revoked";
  cut.message = "the access token was revoked; reconnect with a new one";
  return cut;
}

std::string string_field(const json::object& o, std::string_view key) {
  const json::string* s = o.contains(key) ? o.at(key).if_string() : nullptr;
  return s == nullptr ? std::string() : std::string(view(*s));
}

std::int64_t int_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->get_int64() : 0;
}

void answer_channels(Context& ctx, const std::string& org,
                     const std::function<void(std::string)>& answer) {
  ctx.hub->channel_counts(
      org, [&ctx, answer](std::vector<std::pair<std::string, std::uint64_t>> counts) {
        std::string out = "{\"node\":";
        protocol::append_json_string(out, ctx.node_name);
        out += ",\"channels\":[";
        bool first = true;
        std::size_t n = 0;
        for (const auto& [topic, members] : counts) {
          if (chat::is_room_topic(topic)) continue;
          if (++n > ctx.settings.api_list_max + 1) break;  // one more says "more"
          if (!first) out += ',';
          first = false;
          out += '[';
          protocol::append_json_string(out, topic);
          out += ',';
          core::append_decimal(out, members);
          out += ']';
        }
        out += "]}";
        answer(std::move(out));
      });
}

void answer_connections(Context& ctx, const std::string& org, const std::string& user,
                        const std::function<void(std::string)>& answer) {
  ctx.hub->describe_user(org, user, ctx.settings.api_list_max + 1,
                         [answer](std::vector<std::string> described) {
                           std::string out = "[";
                           for (std::size_t i = 0; i < described.size(); ++i) {
                             if (i > 0) out += ',';
                             out += described[i];
                           }
                           out += ']';
                           answer(std::move(out));
                         });
}

void apply_revocation(Context& ctx, const broker::Revocation& r, bool cut) {
  if (ctx.hub->revocations().add(r, core::WallClock::now()) == hub::Revocations::Add::kFull) {
    log::warn("api", "revocation dropped: --max-revocations reached",
              {{"org", r.org}, {"user", r.user}});
  }
  if (cut) ctx.hub->cut_off(revoke_cut(r.org, r.user, r.issued_before), nullptr);
}

void on_control(Context& ctx, std::string_view message,
                const std::function<void(std::string)>& answer) {
  boost::system::error_code ec;
  json::value v = json::parse(message, ec);
  const json::object* o = ec ? nullptr : v.if_object();
  if (o == nullptr) {
    if (answer) answer("null");
    return;
  }
  const std::string op = string_field(*o, "op");
  const std::string org = string_field(*o, "orgId");
  const std::string user = string_field(*o, "userId");
  if (op == "disconnect") {
    const json::value* reconnect = o->if_contains("reconnect");
    ctx.hub->cut_off(
        disconnect_cut(org, user, string_field(*o, "connectionId"), string_field(*o, "reason"),
                       reconnect != nullptr && reconnect->is_bool() && reconnect->get_bool()),
        nullptr);
  } else if (op == "revoke") {
    broker::Revocation r{
        org, user, int_field(*o, "issuedBefore"),
        core::WallClock::time_point(std::chrono::milliseconds(int_field(*o, "expiresMs")))};
    apply_revocation(ctx, r, true);
  } else if (op == "channels" && answer) {
    return answer_channels(ctx, org, answer);
  } else if (op == "connections" && answer) {
    return answer_connections(ctx, org, user, answer);
  }
  if (answer) answer("null");
}

// ---- handlers ----

void send_disconnect(Context& ctx, const HttpRequest& req, Reply reply) {
  json::object body;
  if (auto error =
          parse_body(req.body, {"orgId", "userId", "connectionId", "reason", "reconnect"}, body)) {
    return reply(std::move(*error));
  }
  const json::value* org_v = present(body, "orgId");
  if (org_v == nullptr) return reply(missing("orgId"));
  auto org = org_of(*org_v);
  if (!org) return reply(bad("orgId", "not an org id the server accepts"));
  std::string user, connection, reason;
  if (const json::value* v = present(body, "userId")) {
    auto id = id_of(*v);
    if (!id) return reply(bad("userId", "a non-empty string or an integer"));
    user = std::move(*id);
  }
  if (const json::value* v = present(body, "connectionId")) {
    const json::string* s = v->if_string();
    if (s == nullptr || s->empty() || s->size() > kMaxIdBytes) {
      return reply(bad("connectionId", "the connectionId of an ack frame"));
    }
    connection.assign(view(*s));
  }
  if (const json::value* v = present(body, "reason")) {
    const json::string* s = v->if_string();
    if (s == nullptr || s->size() > kMaxReasonBytes || !core::is_valid_utf8(view(*s))) {
      return reply(bad("reason", "a string of at most 256 bytes"));
    }
    reason.assign(view(*s));
  }
  bool reconnect = false;
  if (const json::value* v = present(body, "reconnect")) {
    if (!v->is_bool()) return reply(bad("reconnect", "true or false"));
    reconnect = v->get_bool();
  }
  std::string message = "{\"op\":\"disconnect\",\"orgId\":" + org_json(*org) + ",\"userId\":";
  protocol::append_json_string(message, user);
  message += ",\"connectionId\":";
  protocol::append_json_string(message, connection);
  message += ",\"reason\":";
  protocol::append_json_string(message, reason);
  message += reconnect ? ",\"reconnect\":true}" : ",\"reconnect\":false}";
  log::info("api", "disconnect requested",
            {{"org", *org}, {"user", user}, {"conn", connection}, {"reconnect", reconnect}});
  ctx.hub->cut_off(
      disconnect_cut(*org, user, connection, reason, reconnect),
      [&ctx, message = std::move(message), reply = std::move(reply)](std::size_t closed) mutable {
        ctx.broker.broadcast_control(std::move(message), [closed, reply = std::move(reply)](
                                                             Result<broker::ControlReach> sent) {
          if (!sent) {
            return reply(json_error(503, "broker_unavailable",
                                    "closed here, but the other nodes could not be told; retry"));
          }
          std::string out = "{\"closed\":";
          core::append_decimal(out, closed);
          out += *sent == broker::ControlReach::kCluster ? ",\"cluster\":true}"
                                                         : ",\"cluster\":false}";
          reply(json_ok(std::move(out)));
        });
      });
}

void send_revoke(Context& ctx, const HttpRequest& req, Reply reply) {
  json::object body;
  if (auto error = parse_body(req.body, {"orgId", "userId", "issuedBefore"}, body)) {
    return reply(std::move(*error));
  }
  const json::value* org_v = present(body, "orgId");
  if (org_v == nullptr) return reply(missing("orgId"));
  auto org = org_of(*org_v);
  if (!org) return reply(bad("orgId", "not an org id the server accepts"));
  const json::value* user_v = present(body, "userId");
  if (user_v == nullptr) return reply(missing("userId"));
  auto user = id_of(*user_v);
  if (!user) return reply(bad("userId", "a non-empty string or an integer"));
  const json::value* issued_v = present(body, "issuedBefore");
  if (issued_v == nullptr) return reply(missing("issuedBefore"));
  const auto now = core::WallClock::now();
  const std::int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::int64_t ttl = ctx.settings.revocation_ttl_seconds;
  // Later than now + ttl would refuse tokens not issued yet past the revocation's own end.
  if (!issued_v->is_int64() || issued_v->get_int64() <= 0 || issued_v->get_int64() > now_s + ttl) {
    return reply(bad("issuedBefore", "unix seconds, positive, at most --revocation-ttl ahead"));
  }
  broker::Revocation r{*org, *user, issued_v->get_int64(), now + std::chrono::seconds(ttl)};
  // Here first: a refusal then changes nothing anywhere, and this node refuses the tokens
  // from now on whatever the broker says.
  if (ctx.hub->revocations().add(r, now) == hub::Revocations::Add::kFull) {
    return reply(json_error(503, "revocations_full",
                            "this node holds --max-revocations revocations; retry later"));
  }
  log::info("api", "revocation requested",
            {{"org", r.org}, {"user", r.user}, {"issued_before", r.issued_before}});
  // This node's sockets first, then stored before the others are told: once the answer is
  // 200, a node that starts later or missed the broadcast loads it.
  ctx.hub->cut_off(revoke_cut(r.org, r.user, r.issued_before), [&ctx, r, reply = std::move(reply)](
                                                                   std::size_t closed) mutable {
    ctx.broker.store_revocation(
        r, [&ctx, r, closed, reply = std::move(reply)](Result<void> stored) {
          if (!stored) {
            return reply(json_error(503, "broker_unavailable",
                                    "the revocation holds on this node only: the broker could not "
                                    "store it; retry"));
          }
          std::string message = "{\"op\":\"revoke\",\"orgId\":" + org_json(r.org) + ",\"userId\":";
          protocol::append_json_string(message, r.user);
          message += ",\"issuedBefore\":";
          core::append_decimal(message, static_cast<std::uint64_t>(r.issued_before));
          message += ",\"expiresMs\":";
          core::append_decimal(message, static_cast<std::uint64_t>(core::unix_millis(r.expires)));
          message += '}';
          ctx.broker.broadcast_control(
              std::move(message), [closed, r, reply](Result<broker::ControlReach> sent) {
                if (!sent) {
                  return reply(json_error(503, "broker_unavailable",
                                          "stored, but the other nodes could not be told; retry"));
                }
                std::string out = "{\"closed\":";
                core::append_decimal(out, closed);
                out += *sent == broker::ControlReach::kCluster ? ",\"cluster\":true"
                                                               : ",\"cluster\":false";
                out += ",\"expiresAt\":";
                protocol::append_json_string(out, core::format_rfc3339(r.expires));
                out += '}';
                reply(json_ok(std::move(out)));
              });
        });
  });
}

std::optional<std::string> query_org(const HttpRequest& req, Reply& reply) {
  const std::string named = net::query_param(req.query, "orgId");
  if (named.empty()) {
    reply(net::json_field_error("missing_field", "name the org as ?orgId=", "orgId"));
    return std::nullopt;
  }
  auto org = core::org_id_from_text(named);
  if (!org)
    reply(net::json_field_error("bad_field", "orgId is not an org id the server accepts", "orgId"));
  return org;
}

void get_history(Context& ctx, const HttpRequest& req, Reply reply) {
  auto org = query_org(req, reply);
  if (!org) return;
  const std::string service = net::query_param(req.query, "service");
  if (service.empty())
    return reply(net::json_field_error("missing_field", "name ?service=", "service"));
  if (!ctx.service_allowed(service)) {
    return reply(
        net::json_field_error("unknown_service", "no such service: " + service, "service"));
  }
  std::size_t limit = std::min(kDefaultHistoryLimit, ctx.settings.api_list_max);
  const std::string limit_text = net::query_param(req.query, "limit");
  if (!limit_text.empty()) {
    std::uint64_t n = 0;
    const auto [end, ec] =
        std::from_chars(limit_text.data(), limit_text.data() + limit_text.size(), n);
    if (ec != std::errc() || end != limit_text.data() + limit_text.size() || n == 0) {
      return reply(net::json_field_error("bad_field", "limit is a positive integer", "limit"));
    }
    limit = static_cast<std::size_t>(std::min<std::uint64_t>(n, ctx.settings.api_list_max));
  }
  const std::string after = net::query_param(req.query, "after");
  std::optional<broker::Position> position;
  if (!after.empty()) {
    auto id = protocol::parse_event_id(after);
    if (!id) return reply(net::json_field_error("bad_field", "after is not an event id", "after"));
    position = broker::Position{id->epoch, id->offset};
  }
  auto answer = [reply = std::move(reply)](Result<broker::History> read, bool paging) {
    if (!read) return reply(json_error(503, "broker_unavailable", "history could not be read"));
    std::string out = "{\"events\":[";
    for (std::size_t i = 0; i < read->events.size(); ++i) {
      if (i > 0) out += ',';
      // The shared body is the event frame after its {"type","seq" prefix.
      out += '{';
      out += read->events[i]->body;
    }
    const bool more =
        paging && !read->events.empty() && read->events.back()->offset < read->last_offset;
    out += more ? "],\"more\":true" : "],\"more\":false";
    out += read->complete ? ",\"complete\":true}" : ",\"complete\":false}";
    reply(json_ok(std::move(out)));
  };
  const broker::Channel channel{*org, service};
  if (!position) {
    ctx.broker.history_before(channel, 0, limit,
                              [answer = std::move(answer)](Result<broker::History> read) {
                                answer(std::move(read), false);
                              });
    return;
  }
  ctx.broker.history_page(channel, std::move(*position), limit,
                          [answer = std::move(answer)](Result<broker::History> read) {
                            answer(std::move(read), true);
                          });
}

// Asks every node (ask_nodes) and hands the parsed answers on; 503 when the broker can't ask.
void ask_cluster(Context& ctx, std::string question, Reply reply,
                 std::function<void(std::vector<json::value>, Reply)> merge) {
  ctx.broker.ask_nodes(
      std::move(question), std::chrono::milliseconds(ctx.settings.cluster_query_timeout_ms),
      [reply = std::move(reply),
       merge = std::move(merge)](Result<std::vector<std::string>> answers) mutable {
        if (!answers) {
          return reply(json_error(503, "broker_unavailable", "the nodes could not be asked"));
        }
        std::vector<json::value> parsed;
        for (const auto& text : *answers) {
          boost::system::error_code ec;
          json::value v = json::parse(text, ec);
          if (!ec && !v.is_null()) parsed.push_back(std::move(v));
        }
        merge(std::move(parsed), std::move(reply));
      });
}

void get_channels(Context& ctx, const HttpRequest& req, Reply reply) {
  auto org = query_org(req, reply);
  if (!org) return;
  const std::size_t max = ctx.settings.api_list_max;
  ask_cluster(ctx, "{\"op\":\"channels\",\"orgId\":" + org_json(*org) + "}", std::move(reply),
              [max](std::vector<json::value> answers, Reply done) {
                std::map<std::string, std::uint64_t> sums;
                bool more = false;
                for (const auto& answer : answers) {
                  const json::object* o = answer.if_object();
                  const json::array* list = o != nullptr && o->contains("channels")
                                                ? o->at("channels").if_array()
                                                : nullptr;
                  if (list == nullptr) continue;
                  more = more || list->size() > max;
                  for (const auto& item : *list) {
                    const json::array* pair = item.if_array();
                    if (pair == nullptr || pair->size() != 2 || !pair->at(0).is_string()) continue;
                    // Another node's text: a count that isn't one is skipped, never thrown on.
                    boost::system::error_code ec;
                    const auto n = pair->at(1).to_number<std::uint64_t>(ec);
                    if (!ec) sums[std::string(view(pair->at(0).get_string()))] += n;
                  }
                }
                std::string out = "{\"channels\":[";
                std::size_t n = 0;
                for (const auto& [service, subscribers] : sums) {
                  if (n == max) {
                    more = true;
                    break;
                  }
                  if (n++ > 0) out += ',';
                  out += "{\"service\":";
                  protocol::append_json_string(out, service);
                  out += ",\"subscribers\":";
                  core::append_decimal(out, subscribers);
                  out += '}';
                }
                out += "],\"nodes\":";
                core::append_decimal(out, answers.size());
                out += more ? ",\"more\":true}" : ",\"more\":false}";
                done(json_ok(std::move(out)));
              });
}

void get_connections(Context& ctx, const HttpRequest& req, Reply reply) {
  auto org = query_org(req, reply);
  if (!org) return;
  const std::string user = net::query_param(req.query, "userId");
  if (user.empty()) return reply(net::json_field_error("missing_field", "name ?userId=", "userId"));
  if (user.size() > kMaxIdBytes || has_control_chars(user)) {
    return reply(net::json_field_error("bad_field", "userId is not a user id", "userId"));
  }
  std::string question = "{\"op\":\"connections\",\"orgId\":" + org_json(*org) + ",\"userId\":";
  protocol::append_json_string(question, user);
  question += '}';
  const std::size_t max = ctx.settings.api_list_max;
  ask_cluster(ctx, std::move(question), std::move(reply),
              [max](std::vector<json::value> answers, Reply done) {
                std::vector<std::string> all;
                bool more = false;
                for (const auto& answer : answers) {
                  const json::array* list = answer.if_array();
                  if (list == nullptr) continue;
                  for (const auto& item : *list) {
                    if (all.size() == max) {
                      more = true;
                      break;
                    }
                    all.push_back(json::serialize(item));
                  }
                }
                std::sort(all.begin(), all.end());
                std::string out = "{\"connections\":[";
                for (std::size_t i = 0; i < all.size(); ++i) {
                  if (i > 0) out += ',';
                  out += all[i];
                }
                out += "],\"nodes\":";
                core::append_decimal(out, answers.size());
                out += more ? ",\"more\":true}" : ",\"more\":false}";
                done(json_ok(std::move(out)));
              });
}

}  // namespace

void start_control(Context& ctx) {
  ctx.broker.set_control_handler(
      [&ctx](std::string_view message, std::function<void(std::string)> answer) {
        on_control(ctx, message, answer);
      });
  ctx.broker.set_revocation_sink(
      ctx.settings.max_revocations, [&ctx](std::vector<broker::Revocation> loaded) {
        for (const auto& r : loaded) apply_revocation(ctx, r, false);
        if (!loaded.empty()) {
          log::info("api", "revocations loaded", {{"count", loaded.size()}});
        }
      });
}

void handle_control_api(Context& ctx, std::string_view path, const HttpRequest& req, Reply reply) {
  if (auto refused = node::check_api_key(ctx, req)) return reply(std::move(*refused));
  if (path == kDisconnectPath) return send_disconnect(ctx, req, std::move(reply));
  if (path == kRevokePath) return send_revoke(ctx, req, std::move(reply));
  if (path == kHistoryPath) return get_history(ctx, req, std::move(reply));
  if (path == kChannelsPath) return get_channels(ctx, req, std::move(reply));
  if (path == kConnectionsPath) return get_connections(ctx, req, std::move(reply));
  reply(json_error(404, "not_found", "no such endpoint"));
}

}  // namespace sg::api
