// decide_upgrade on a real Context, built as the server builds it: a TokenVerifier with an HS256
// secret, the Origin policy, the memory broker and a hub. Each test sends one upgrade request
// and checks the whole answer (status, error code, headers) and what it did to the hub.
#include "node/upgrade.hpp"

#include "auth/auth.hpp"
#include "broker/broker.hpp"
#include "config/config.hpp"
#include "hub/hub.hpp"
#include "log/log.hpp"
#include "metrics/metrics.hpp"
#include "node/context.hpp"
#include "tenancy/tenancy.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sg::node {
namespace {

constexpr std::string_view kSecret = "upgrade-test-secret-0123456789abcdefghijklmnop";
constexpr std::string_view kOrigin = "https://app.example.com";
// RFC 6455 §1.3's sample handshake: this key is answered with this accept value.
constexpr std::string_view kSampleKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kSampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(core::WallClock::now().time_since_epoch())
      .count();
}

std::string token(std::string_view user = "user-1", std::int64_t exp_from_now = 3600,
                  std::string_view secret = kSecret) {
  const std::string claims = R"({"sub":")" + std::string(user) + R"(","org_id":456,"exp":)" +
                             std::to_string(now_seconds() + exp_from_now) + "}";
  return auth::mint_hs256(claims, secret);
}

struct Limits {
  std::size_t per_user = 2;
  std::size_t per_node = 0;
};

// The parts of a server that decide_upgrade reads, wired as Server::Impl wires them.
class Node {
 public:
  explicit Node(Limits limits = {})
      : broker_(broker::make_memory_broker({})),
        context_{settings(limits),
                 verifier(),
                 auth::OriginPolicy({std::string(kOrigin)}),
                 *broker_,
                 registry_,
                 nullptr,
                 make_server_metrics(registry_)} {
    std::vector<hub::Post> posts{[](std::function<void()> f) { f(); }};
    hub_ = std::make_unique<hub::Hub>(*broker_, std::move(posts),
                                      hub::HubOptions{limits.per_user, limits.per_node}, registry_);
    context_.hub = hub_.get();
    context_.quotas = &quotas_;
  }

  Context& context() { return context_; }
  hub::Hub& hub() { return *hub_; }

  std::uint64_t auth_failures(std::string_view reason) const {
    return context_.metrics->auth_failures.find(reason)->second->value();
  }

  // The org's online presence as "user:connections", as the broker has it.
  std::vector<std::string> online(const std::string& org) {
    std::vector<std::string> out;
    broker_->presence(hub::online_scope(org),
                      [&](Result<std::vector<broker::PresenceEntry>> entries) {
                        ASSERT_TRUE(entries);
                        for (const auto& e : *entries) {
                          out.push_back(e.user + ":" + std::to_string(e.connections));
                        }
                      });
    return out;
  }

 private:
  static config::Settings settings(const Limits& limits) {
    config::Settings s;
    s.jwt_secret = std::string(kSecret);
    s.allowed_origins = {std::string(kOrigin)};
    s.max_connections_per_user = limits.per_user;
    s.max_connections = limits.per_node;
    return s;
  }

  static std::shared_ptr<const auth::TokenVerifier> verifier() {
    auto v = auth::TokenVerifier::create({std::string(kSecret), {}, std::chrono::seconds(30)});
    if (!v) throw std::runtime_error("TokenVerifier::create: " + v.error().message());
    return *v;
  }

  metrics::Registry registry_;
  tenancy::Quotas quotas_{tenancy::QuotaOptions{}, registry_};  // unlimited, the default
  std::unique_ptr<broker::Broker> broker_;
  Context context_;
  std::unique_ptr<hub::Hub> hub_;
};

// A valid browser handshake; the views point into the strings it owns, so it stays put.
struct Handshake {
  std::string authorization;
  std::string query;
  std::string origin = std::string(kOrigin);
  bool has_origin = true;
  std::string method = "GET";
  std::string upgrade = "websocket";
  std::string connection = "Upgrade";
  std::string version = "13";
  std::string key = std::string(kSampleKey);

  static Handshake bearer(const std::string& t) {
    Handshake h;
    h.authorization = "Bearer " + t;
    return h;
  }

  HttpRequest request() const {
    HttpRequest req;
    req.method = method;
    req.path = "/v2/realtime/stream";
    req.target = req.path;
    req.query = query;
    req.authorization = authorization;
    req.origin = origin;
    req.has_origin = has_origin;
    req.upgrade = upgrade;
    req.connection = connection;
    req.ws_version = version;
    req.ws_key = key;
    req.header = [](std::string_view) { return std::string_view(); };
    return req;
  }
};

std::string error_code_of(const HttpResponse& r) {
  const auto body = boost::json::parse(r.body).as_object();
  EXPECT_TRUE(body.contains("message")) << r.body;
  return std::string(body.at("error").as_string());
}

std::vector<std::pair<std::string, std::string>> headers(
    std::initializer_list<std::pair<std::string, std::string>> list) {
  return list;
}

// Checks a refusal: status, the JSON error code, the headers it adds, and that nothing was
// admitted.
void expect_refused(Node& node, const UpgradeDecision& d, unsigned status, std::string_view code,
                    const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  ASSERT_TRUE(d.reject.has_value()) << "admitted, expected " << status << " " << code;
  EXPECT_EQ(d.reject->status, status) << d.reject->body;
  EXPECT_EQ(error_code_of(*d.reject), code);
  EXPECT_EQ(d.reject->content_type, "application/json");
  auto sent = d.reject->headers;
  // A 401 from the upgrade carries no WWW-Authenticate today while the REST endpoints' 401s do
  // (RFC 7235 asks for it); which way that goes is not this test's to pin.
  if (status == 401) {
    std::erase_if(sent, [](const auto& h) { return h.first == "WWW-Authenticate"; });
  }
  EXPECT_EQ(sent, extra);
  EXPECT_TRUE(d.response.empty());
  EXPECT_EQ(node.hub().stats().total_connections, 0u);
}

class DecideUpgrade : public ::testing::Test {
 protected:
  DecideUpgrade() { log::set_level(log::Level::kError); }
};

TEST_F(DecideUpgrade, AdmitsAValidHandshakeAnsweringTheRfc6455SampleKey) {
  Node node;
  const auto d = decide_upgrade(node.context(), Handshake::bearer(token()).request());
  ASSERT_FALSE(d.reject.has_value()) << d.reject->status << " " << d.reject->body;
  EXPECT_EQ(d.principal.org, "456");
  EXPECT_EQ(d.principal.user, "user-1");
  EXPECT_EQ(d.response,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: " +
                std::string(kSampleAccept) + "\r\n\r\n");
}

TEST_F(DecideUpgrade, CountsTheAdmittedConnectionInTheHubAndThePresence) {
  Node node;
  const std::string t = token();
  ASSERT_FALSE(decide_upgrade(node.context(), Handshake::bearer(t).request()).reject);
  auto stats = node.hub().stats();
  EXPECT_EQ(stats.total_connections, 1u);
  EXPECT_EQ(stats.connections_by_org,
            (std::vector<std::pair<std::string, std::uint64_t>>{{"456", 1}}));
  EXPECT_EQ(node.online("456"), std::vector<std::string>{"user-1:1"});

  ASSERT_FALSE(decide_upgrade(node.context(), Handshake::bearer(t).request()).reject);
  EXPECT_EQ(node.hub().stats().total_connections, 2u);
  EXPECT_EQ(node.online("456"), std::vector<std::string>{"user-1:2"});
}

TEST_F(DecideUpgrade, AcceptsTheTokenFromTheQueryWhenThereIsNoBearerHeader) {
  Node node;
  Handshake h;
  h.query = "x=1&access_token=" + token();
  const auto d = decide_upgrade(node.context(), h.request());
  ASSERT_FALSE(d.reject.has_value()) << d.reject->body;
  EXPECT_EQ(d.principal.user, "user-1");

  // A header that is not Bearer carries no token: the query's is used.
  h.authorization = "Basic dXNlcjpwYXNz";
  EXPECT_FALSE(decide_upgrade(node.context(), h.request()).reject.has_value());
}

TEST_F(DecideUpgrade, TheBearerHeaderWinsOverTheQuery) {
  Node node;
  Handshake good_header = Handshake::bearer(token("from-header"));
  good_header.query = "access_token=not.a.token";
  const auto d = decide_upgrade(node.context(), good_header.request());
  ASSERT_FALSE(d.reject.has_value()) << d.reject->body;
  EXPECT_EQ(d.principal.user, "from-header");

  Node other;
  Handshake bad_header = Handshake::bearer(token("from-header", 3600, "another-secret"));
  bad_header.query = "access_token=" + token("from-query");
  expect_refused(other, decide_upgrade(other.context(), bad_header.request()), 401,
                 "bad_signature");
}

TEST_F(DecideUpgrade, MissingTokenIs401AndCounted) {
  Node node;
  expect_refused(node, decide_upgrade(node.context(), Handshake().request()), 401, "missing_token");
  Handshake not_bearer;
  not_bearer.authorization = "Basic dXNlcjpwYXNz";
  not_bearer.query = "token=" + token();  // not the parameter's name
  expect_refused(node, decide_upgrade(node.context(), not_bearer.request()), 401, "missing_token");
  EXPECT_EQ(node.auth_failures("missing_token"), 2u);
}

TEST_F(DecideUpgrade, RejectedTokensAre401WithTheirReason) {
  Node node;
  expect_refused(node, decide_upgrade(node.context(), Handshake::bearer("abc").request()), 401,
                 "malformed_token");
  expect_refused(
      node,
      decide_upgrade(node.context(),
                     Handshake::bearer(token("user-1", 3600, "another-secret")).request()),
      401, "bad_signature");
  // An hour past exp, far beyond the 30 s leeway.
  expect_refused(
      node, decide_upgrade(node.context(), Handshake::bearer(token("user-1", -3600)).request()),
      401, "token_expired");
  EXPECT_EQ(node.auth_failures("malformed_token"), 1u);
  EXPECT_EQ(node.auth_failures("bad_signature"), 1u);
  EXPECT_EQ(node.auth_failures("token_expired"), 1u);
}

TEST_F(DecideUpgrade, OriginOutsideThePolicyIs403) {
  Node node;
  Handshake h = Handshake::bearer(token());
  h.origin = "https://evil.example.net";
  expect_refused(node, decide_upgrade(node.context(), h.request()), 403, "origin_not_allowed");
  EXPECT_EQ(node.auth_failures("origin_not_allowed"), 1u);
  // A bad token is reported as such before the Origin is looked at.
  h.authorization = "Bearer abc";
  expect_refused(node, decide_upgrade(node.context(), h.request()), 401, "malformed_token");
}

TEST_F(DecideUpgrade, NoOriginHeaderIsNotABrowserAndIsAllowed) {
  Node node;
  Handshake h = Handshake::bearer(token());
  h.origin.clear();
  h.has_origin = false;
  EXPECT_FALSE(decide_upgrade(node.context(), h.request()).reject.has_value());
}

TEST_F(DecideUpgrade, RequestThatIsNotAWebSocketHandshakeIs426) {
  Node node;
  const std::string t = token();
  const auto upgrade_websocket = headers({{"Upgrade", "websocket"}});
  Handshake post = Handshake::bearer(t);
  post.method = "POST";
  expect_refused(node, decide_upgrade(node.context(), post.request()), 426, "upgrade_required",
                 upgrade_websocket);
  Handshake no_upgrade = Handshake::bearer(t);
  no_upgrade.upgrade.clear();
  expect_refused(node, decide_upgrade(node.context(), no_upgrade.request()), 426,
                 "upgrade_required", upgrade_websocket);
  Handshake other_protocol = Handshake::bearer(t);
  other_protocol.upgrade = "h2c";
  expect_refused(node, decide_upgrade(node.context(), other_protocol.request()), 426,
                 "upgrade_required", upgrade_websocket);
  Handshake keep_alive = Handshake::bearer(t);
  keep_alive.connection = "keep-alive";
  expect_refused(node, decide_upgrade(node.context(), keep_alive.request()), 426,
                 "upgrade_required", upgrade_websocket);
  // Not an authentication failure.
  EXPECT_EQ(node.auth_failures("missing_token"), 0u);
}

TEST_F(DecideUpgrade, HeaderTokensAreMatchedAsCaseInsensitiveLists) {
  Node node;
  Handshake h = Handshake::bearer(token());
  h.upgrade = "WebSocket";
  h.connection = "keep-alive, Upgrade";
  EXPECT_FALSE(decide_upgrade(node.context(), h.request()).reject.has_value());
  h.connection = "UPGRADE";
  EXPECT_FALSE(decide_upgrade(node.context(), h.request()).reject.has_value());
}

TEST_F(DecideUpgrade, WebSocketVersionOtherThan13Is426NamingVersion13) {
  Node node;
  const auto version_13 = headers({{"Sec-WebSocket-Version", "13"}});
  for (const char* version : {"8", "", "13, 8"}) {
    Handshake h = Handshake::bearer(token());
    h.version = version;
    expect_refused(node, decide_upgrade(node.context(), h.request()), 426,
                   "unsupported_websocket_version", version_13);
  }
}

TEST_F(DecideUpgrade, KeyThatIsNot16Base64BytesIs400) {
  Node node;
  // Missing, 15 bytes, 17 bytes, not base64.
  for (const char* key :
       {"", "AAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA=", "not a key at all!!!!!!=="}) {
    Handshake h = Handshake::bearer(token());
    h.key = key;
    expect_refused(node, decide_upgrade(node.context(), h.request()), 400, "bad_websocket_key");
  }
  // Any 16 bytes will do, in the standard alphabet.
  Handshake h = Handshake::bearer(token());
  h.key = "+/+/+/+/+/+/+/+/+/+/+w==";
  EXPECT_FALSE(decide_upgrade(node.context(), h.request()).reject.has_value());
}

TEST_F(DecideUpgrade, ConnectionOverThePerUserLimitIs429UntilOneIsReleased) {
  Node node(Limits{.per_user = 2});
  const std::string alice = token("alice");
  for (int i = 0; i < 2; ++i) {
    ASSERT_FALSE(decide_upgrade(node.context(), Handshake::bearer(alice).request()).reject);
  }
  const auto d = decide_upgrade(node.context(), Handshake::bearer(alice).request());
  ASSERT_TRUE(d.reject.has_value());
  EXPECT_EQ(d.reject->status, 429u);
  EXPECT_EQ(error_code_of(*d.reject), "too_many_connections");
  EXPECT_TRUE(d.reject->headers.empty());
  EXPECT_EQ(node.auth_failures("too_many_connections"), 1u);
  EXPECT_EQ(node.hub().stats().total_connections, 2u);
  EXPECT_EQ(node.online("456"), std::vector<std::string>{"alice:2"});

  // Another user of the same org is not held back by alice's limit.
  EXPECT_FALSE(decide_upgrade(node.context(), Handshake::bearer(token("bob")).request()).reject);
  // When one of alice's connections ends, she may open one again.
  node.hub().release("456", "alice");
  EXPECT_FALSE(decide_upgrade(node.context(), Handshake::bearer(alice).request()).reject);
  EXPECT_EQ(node.hub().stats().total_connections, 3u);
}

TEST_F(DecideUpgrade, ConnectionOverTheNodeLimitIs503) {
  Node node(Limits{.per_user = 0, .per_node = 1});
  ASSERT_FALSE(decide_upgrade(node.context(), Handshake::bearer(token("a")).request()).reject);
  const auto d = decide_upgrade(node.context(), Handshake::bearer(token("b")).request());
  ASSERT_TRUE(d.reject.has_value());
  EXPECT_EQ(d.reject->status, 503u);
  EXPECT_EQ(error_code_of(*d.reject), "server_full");
  EXPECT_FALSE(d.reject->close);
  EXPECT_EQ(node.hub().stats().total_connections, 1u);
}

TEST_F(DecideUpgrade, DrainingNodeAnswers503WithRetryAfterAndCloses) {
  Node node;
  node.context().draining = true;
  const auto retry_after = headers({{"Retry-After", "1"}});
  const auto d = decide_upgrade(node.context(), Handshake::bearer(token()).request());
  expect_refused(node, d, 503, "shutting_down", retry_after);
  EXPECT_TRUE(d.reject->close);
  // Whoever asks: the token is not even looked at, and nothing counts as an auth failure.
  const auto anonymous = decide_upgrade(node.context(), Handshake().request());
  expect_refused(node, anonymous, 503, "shutting_down", retry_after);
  EXPECT_EQ(node.auth_failures("missing_token"), 0u);
}

TEST_F(DecideUpgrade, RefusalsOtherThanDrainingKeepTheConnectionOpen) {
  Node node;
  for (const auto& d : {decide_upgrade(node.context(), Handshake().request()),
                        decide_upgrade(node.context(), Handshake::bearer("abc").request())}) {
    ASSERT_TRUE(d.reject.has_value());
    EXPECT_FALSE(d.reject->close);
  }
}

// decide_connection: what another transport (Server-Sent Events) reuses.
TEST_F(DecideUpgrade, ATransportCheckRunsAfterTokenAndOriginAndBeforeAdmission) {
  Node node;
  std::vector<std::string> checked;
  const TransportCheck refuse = [&](const HttpRequest&, const auth::Principal& p) {
    checked.push_back(p.user);
    return std::optional<HttpResponse>(json_error(400, "missing_services", "name them"));
  };
  // Not asked without a token, nor for an Origin outside the policy.
  expect_refused(node, decide_connection(node.context(), Handshake().request(), refuse), 401,
                 "missing_token");
  Handshake foreign = Handshake::bearer(token());
  foreign.origin = "https://evil.example";
  expect_refused(node, decide_connection(node.context(), foreign.request(), refuse), 403,
                 "origin_not_allowed");
  EXPECT_TRUE(checked.empty());
  // Its refusal is the answer, and nothing is admitted.
  expect_refused(node,
                 decide_connection(node.context(), Handshake::bearer(token()).request(), refuse),
                 400, "missing_services");
  EXPECT_EQ(checked, std::vector<std::string>{"user-1"});
}

TEST_F(DecideUpgrade, APassingTransportCheckIsAdmittedWithoutA101) {
  Node node;
  Handshake plain = Handshake::bearer(token());
  plain.upgrade.clear();  // not a WebSocket: only the transport's check decides
  plain.connection.clear();
  const TransportCheck pass = [](const HttpRequest&, const auth::Principal&) {
    return std::optional<HttpResponse>();
  };
  const auto d = decide_connection(node.context(), plain.request(), pass);
  ASSERT_FALSE(d.reject.has_value()) << d.reject->body;
  EXPECT_EQ(d.principal.user, "user-1");
  EXPECT_TRUE(d.response.empty());
  EXPECT_EQ(node.hub().stats().total_connections, 1u);
}

}  // namespace
}  // namespace sg::node
