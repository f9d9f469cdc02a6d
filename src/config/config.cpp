#include "config/config.hpp"

#include <sched.h>
#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <thread>
#include <tuple>

#include "core/core.hpp"

// CMake passes the project version and, in a git checkout, the commit; the fallbacks keep the
// module buildable on its own.
#ifndef STREAMGATE_VERSION
#define STREAMGATE_VERSION "0.2.0"
#endif
#ifndef STREAMGATE_COMMIT
#define STREAMGATE_COMMIT ""
#endif

namespace sg::config {
namespace {

constexpr std::string_view kProgram = "streamgate";
constexpr std::string_view kEnvPrefix = "STREAMGATE_";
constexpr std::size_t kMinSecretBytes = 32;
// A public key is a few hundred bytes; anything this big is the wrong file.
constexpr std::size_t kMaxPemFileBytes = 64 * 1024;
constexpr std::size_t kMaxServiceNameBytes = 64;
constexpr std::size_t kMaxClaimNameBytes = 128;
// A key set of a few dozen keys is a few tens of KiB.
constexpr std::size_t kMaxJwksFileBytes = 1024 * 1024;
// A secret or a key list is a line or two; anything this big is the wrong file.
constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;
// Every key with a long comment is a few KiB; a bound keeps a wrong path (a log) from being
// read whole.
constexpr std::size_t kMaxConfigFileBytes = 1024 * 1024;
// What --print-config shows instead of a secret. Given back as a value, it is refused by name,
// so a printed configuration cannot start a server with a broken key by accident.
constexpr std::string_view kRedacted = "<redacted>";

// "max-publish-bytes" → "STREAMGATE_MAX_PUBLISH_BYTES".
std::string env_name(std::string_view flag) {
  std::string out(kEnvPrefix);
  for (char c : flag) {
    if (c == '-') {
      out.push_back('_');
    } else if (c >= 'a' && c <= 'z') {
      out.push_back(static_cast<char>(c - 'a' + 'A'));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string failure(std::string_view text) {
  std::string out(kProgram);
  out.append(": ");
  out.append(text);
  return out;
}

// A non-negative integer flag. Bound as text so that a bad value gets our message rather than
// CLI11's, and so one table drives parsing, range checks and the help text.
struct NumericSpec {
  std::string_view flag;
  std::string_view type_name;  // what the help shows after the flag: N, BYTES, MS, SECONDS
  std::uint64_t min;
  std::uint64_t max;
  std::string_view why_min;  // reason shown when the value is below min
  std::string_view meaning;  // help text
  std::function<std::uint64_t(const Settings&)> get;
  std::function<void(Settings&, std::uint64_t)> set;
};

// Upper bound for durations: keeps deadline arithmetic far from overflow and catches a value
// typed in the wrong unit (a day in ms is 86400000).
constexpr std::uint64_t kMaxDurationMs = 24ull * 3600 * 1000;
constexpr std::uint64_t kMaxSize = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t kMaxUploadBytes = 1ull << 50;  // 1 PiB: far beyond any document
constexpr std::uint64_t kMaxQuota = (1ull << 53) - 1;

template <class T>
std::function<std::uint64_t(const Settings&)> getter(T Settings::*field) {
  return [field](const Settings& s) { return static_cast<std::uint64_t>(s.*field); };
}
template <class T>
std::function<void(Settings&, std::uint64_t)> setter(T Settings::*field) {
  return [field](Settings& s, std::uint64_t v) { s.*field = static_cast<T>(v); };
}

#define SG_NUMERIC_FIELD(field) getter(&Settings::field), setter(&Settings::field)

const std::vector<NumericSpec>& numeric_specs() {
  static const std::vector<NumericSpec> specs = {
      {"workers", "N", 0, 256, "",
       "I/O threads; 0 = one per CPU this process may use (CPU affinity, cgroup cpu.max). At "
       "most 256.",
       SG_NUMERIC_FIELD(workers)},
      {"jwt-leeway", "SECONDS", 0, 3600, "",
       "Clock skew tolerated on a token's exp and nbf. At most 3600.",
       SG_NUMERIC_FIELD(jwt_leeway_seconds)},
      {"jwks-refresh", "SECONDS", 1, 86400, "",
       "--jwks-url: seconds between fetches of the JWK Set (after a failed one, sooner, with "
       "backoff). At most 86400.",
       SG_NUMERIC_FIELD(jwks_refresh_seconds)},
      {"jwks-min-refresh", "SECONDS", 1, 86400, "",
       "--jwks-url: a token with an unknown kid fetches the set again at most once per this "
       "many seconds. At most 86400.",
       SG_NUMERIC_FIELD(jwks_min_refresh_seconds)},
      {"jwks-max-bytes", "BYTES", 1024, 64ull << 20, "no JWK Set fits in less",
       "--jwks-url: the largest JWK Set response body accepted. At most 64 MiB.",
       SG_NUMERIC_FIELD(jwks_max_bytes)},
      {"jwks-timeout", "SECONDS", 1, 300, "",
       "--jwks-url: the longest one fetch may take, from connecting to the last byte. At most "
       "300.",
       SG_NUMERIC_FIELD(jwks_timeout_seconds)},
      {"token-refresh-notice", "SECONDS", 0, 86400, "",
       "Seconds before a token's exp that its open socket is sent an expiring message, so the "
       "client can refresh in band before the 4001 close; 0 = no notice. At most 86400.",
       SG_NUMERIC_FIELD(token_refresh_notice_seconds)},
      {"history", "N", 1, kMaxSize, "a resuming client needs at least one kept event",
       "Events kept per channel so a reconnecting client can resume without a gap.",
       SG_NUMERIC_FIELD(history)},
      {"history-ttl", "SECONDS", 0, 10ull * 365 * 86400, "",
       "Age after which kept events are dropped; 0 = no age limit.",
       SG_NUMERIC_FIELD(history_ttl_seconds)},
      {"presence-ttl", "MS", 300, kMaxDurationMs, "shorter than a few Redis round trips",
       "Redis broker: how long a node that stopped (or died) still counts in presence and in "
       "the cluster metrics; live nodes refresh every third of it, in milliseconds.",
       SG_NUMERIC_FIELD(presence_ttl_ms)},
      // Redis replication (issue 16).
      {"redis-wait-replicas", "N", 0, 16, "",
       "Redis broker: a publish is acknowledged only once WAIT says this many replicas of the "
       "channel's primary have it (503 after 1.5 s without); 0 = don't wait. At most 16.",
       SG_NUMERIC_FIELD(redis_wait_replicas)},
      {"max-publish-bytes", "BYTES", 256, kMaxSize,
       "a publish body smaller than that cannot hold a useful event",
       "Largest publish request body; larger gets HTTP 413.", SG_NUMERIC_FIELD(max_publish_bytes)},
      {"max-batch", "N", 1, 1000000, "a batch holds at least one event",
       "Events accepted in one batch publish.", SG_NUMERIC_FIELD(max_batch)},
      {"max-message-bytes", "BYTES", 128, kMaxSize,
       "a subscribe message with a resume position needs that much",
       "Largest inbound WebSocket message; larger closes the connection with 1009.",
       SG_NUMERIC_FIELD(max_message_bytes)},
      {"outbox-bytes", "BYTES", 4096, kMaxSize,
       "smaller would cut off healthy clients on a single event",
       "Outbound bytes queued per connection before it is closed as a slow consumer (4008).",
       SG_NUMERIC_FIELD(outbox_bytes)},
      {"slow-consumer-grace", "MS", 0, kMaxDurationMs, "",
       "Time a connection's queue may stay over --outbox-bytes with replies to its own requests "
       "(reading from it stops meanwhile) before it is closed as a slow consumer (4008), in "
       "milliseconds; 0 = at the next check (every 100 ms).",
       SG_NUMERIC_FIELD(slow_consumer_grace_ms)},
      {"max-services", "N", 1, 10000, "a connection subscribes to at least one service",
       "Services one connection may subscribe to.", SG_NUMERIC_FIELD(max_services)},
      {"max-connections-per-user", "N", 0, kMaxSize, "",
       "Open connections per user (all tabs, all devices); 0 = unlimited.",
       SG_NUMERIC_FIELD(max_connections_per_user)},
      {"max-connections", "N", 0, kMaxSize, "", "Open connections on this node; 0 = unlimited.",
       SG_NUMERIC_FIELD(max_connections)},
      {"max-http-header-bytes", "BYTES", 1024, 1024 * 1024,
       "browsers send more than that in ordinary requests",
       "Largest HTTP request header block, the token in the URL included.",
       SG_NUMERIC_FIELD(max_http_header_bytes)},
      {"handshake-timeout", "MS", 100, kMaxDurationMs, "shorter fails on any real network",
       "Time from TCP accept to the client's subscribe message, in milliseconds.",
       SG_NUMERIC_FIELD(handshake_timeout_ms)},
      {"http-idle-timeout", "MS", 100, kMaxDurationMs, "shorter fails on any real network",
       "Time an HTTP connection has to send a request and read its answer, and that a keep-alive "
       "connection may wait idle for its next one, in milliseconds.",
       SG_NUMERIC_FIELD(http_idle_timeout_ms)},
      {"ping-interval", "MS", 100, kMaxDurationMs, "shorter floods idle connections with pings",
       "Idle time after which the server pings a connection, in milliseconds.",
       SG_NUMERIC_FIELD(ping_interval_ms)},
      {"pong-timeout", "MS", 100, kMaxDurationMs, "shorter fails on any real network",
       "Silence after a ping before the connection is closed, in milliseconds.",
       SG_NUMERIC_FIELD(pong_timeout_ms)},
      {"sse-heartbeat", "MS", 100, kMaxDurationMs, "shorter floods idle streams with comments",
       "Silence on a Server-Sent Events stream after which the server writes a \": ping\" "
       "comment, in milliseconds; keeps proxies from timing the stream out.",
       SG_NUMERIC_FIELD(sse_heartbeat_ms)},
      {"sse-retry", "MS", 100, kMaxDurationMs,
       "shorter makes every client hammer a restarting node",
       "Reconnection delay a Server-Sent Events stream asks of its client (retry:), in "
       "milliseconds.",
       SG_NUMERIC_FIELD(sse_retry_ms)},
      {"shutdown-grace", "MS", 0, kMaxDurationMs, "",
       "After the drain period, time given to open connections to close (1001) and to requests "
       "already read to be answered before exit, in milliseconds; 0 = exit at once.",
       SG_NUMERIC_FIELD(shutdown_grace_ms)},
      {"drain-period", "SECONDS", 0, 3600, "",
       "On SIGTERM, seconds during which the node keeps serving HTTP, answers /readyz and new "
       "WebSocket upgrades with 503, and closes its WebSockets (1001) a few at a time, spread "
       "evenly; then --shutdown-grace applies. 0 = close them all at once. At most 3600.",
       SG_NUMERIC_FIELD(drain_period_seconds)},
      {"chat-max-bytes", "BYTES", 1, 1024 * 1024, "a chat message holds at least one byte",
       "Largest chat message text in UTF-8 bytes; longer gets an error frame.",
       SG_NUMERIC_FIELD(chat_max_bytes)},
      {"chat-history", "N", 0, 10000, "",
       "Chat messages sent to a connection joining a room, and the largest history page.",
       SG_NUMERIC_FIELD(chat_history)},
      {"chat-messages-per-minute", "N", 1, 1000000, "a user must be able to send something",
       "Chat messages one user may send per minute on a node, sustained.",
       SG_NUMERIC_FIELD(chat_messages_per_minute)},
      {"chat-burst", "N", 1, 1000000, "a user must be able to send one message",
       "Chat messages one user may send at once before the per-minute rate applies.",
       SG_NUMERIC_FIELD(chat_burst)},
      {"chat-max-rooms", "N", 1, 10000, "a chat connection is in at least one room",
       "Chat rooms one connection may be in at once.", SG_NUMERIC_FIELD(chat_max_rooms)},
      {"chat-max-members", "N", 1, kMaxSize, "a room needs room for its first member",
       "Distinct users in one chat room, over all nodes.", SG_NUMERIC_FIELD(chat_max_members)},
      {"chat-typing-interval", "MS", 0, kMaxDurationMs, "",
       "Least time between two typing notices relayed for one connection and room, in "
       "milliseconds.",
       SG_NUMERIC_FIELD(chat_typing_interval_ms)},
      {"upload-expiry", "SECONDS", 1, 365ull * 86400, "an upload needs time to arrive",
       "Seconds after which an unfinished upload nobody touched is removed, with its partial "
       "data.",
       SG_NUMERIC_FIELD(upload_expiry_seconds)},
      {"upload-max-bytes", "BYTES", 1, kMaxUploadBytes, "an upload holds at least one byte",
       "Largest declared upload size; larger is refused (too_large).",
       SG_NUMERIC_FIELD(upload_max_bytes)},
      {"upload-max-per-user", "N", 0, kMaxSize, "",
       "Unfinished uploads one user may have at once; 0 = unlimited.",
       SG_NUMERIC_FIELD(upload_max_per_user)},
      {"upload-max-org-bytes", "BYTES", 0, kMaxUploadBytes, "",
       "Declared bytes of one org's unfinished uploads together; 0 = unlimited.",
       SG_NUMERIC_FIELD(upload_max_org_bytes)},
      {"max-revocations", "N", 1, kMaxSize, "revoke needs room for one entry",
       "Revocations (POST /v2/realtime/revoke) a node holds at once; another is refused with "
       "503 revocations_full until one expires.",
       SG_NUMERIC_FIELD(max_revocations)},
      {"revocation-ttl", "SECONDS", 1, 10ull * 365 * 86400, "a revocation must outlive its call",
       "How long a revocation is kept, in seconds; set it to at least the longest lifetime of "
       "the tokens you issue.",
       SG_NUMERIC_FIELD(revocation_ttl_seconds)},
      {"api-list-max", "N", 1, 100000, "a list holds at least one item",
       "Items in one answer of the producer API's history, channels and connections.",
       SG_NUMERIC_FIELD(api_list_max)},
      {"cluster-query-timeout", "MS", 10, kMaxDurationMs, "shorter than a Redis round trip",
       "How long GET channels and connections wait for every node's answer, in milliseconds.",
       SG_NUMERIC_FIELD(cluster_query_timeout_ms)},
      // Org quotas: 2^53 - 1 at most, the largest number every JSON client reads exactly.
      {"org-max-connections", "N", 0, kMaxQuota, "",
       "Open connections (stream and upload sockets, SSE streams) of one org; with Redis, on all "
       "nodes together. 0 = "
       "unlimited.",
       SG_NUMERIC_FIELD(org_max_connections)},
      {"org-max-channels", "N", 0, kMaxQuota, "",
       "Distinct services one org's connections may subscribe to (with Redis, on all nodes "
       "together); 0 = unlimited.",
       SG_NUMERIC_FIELD(org_max_channels)},
      {"org-publish-rate", "N", 0, kMaxQuota, "",
       "Events per second one org may publish, sustained (token bucket; with Redis, shared "
       "equally among the live nodes); 0 = unlimited.",
       SG_NUMERIC_FIELD(org_publish_rate)},
      {"org-publish-burst", "N", 0, kMaxQuota, "",
       "Events one org may publish at once before --org-publish-rate applies; 0 = one "
       "second's worth of the rate.",
       SG_NUMERIC_FIELD(org_publish_burst)},
      {"org-upload-bytes-per-day", "BYTES", 0, kMaxQuota, "",
       "Declared bytes of the uploads one org may start per UTC day (with Redis, on all nodes "
       "together); 0 = unlimited.",
       SG_NUMERIC_FIELD(org_upload_bytes_per_day)},
      {"org-egress-bytes", "BYTES", 0, kMaxQuota, "",
       "Bytes per second one org's connections may be written together (with Redis, shared "
       "equally by the live nodes); over it their deliveries wait in their queues (never "
       "dropped). 0 = unlimited.",
       SG_NUMERIC_FIELD(org_egress_bytes)},
      {"org-chat-rate", "N", 0, kMaxQuota, "",
       "Chat messages per second one org's users may send, sustained (token bucket; with Redis, "
       "shared equally among the live nodes); 0 = unlimited.",
       SG_NUMERIC_FIELD(org_chat_rate)},
      {"org-chat-burst", "N", 0, kMaxQuota, "",
       "Chat messages one org's users may send at once before --org-chat-rate applies; 0 = one "
       "second's worth of the rate.",
       SG_NUMERIC_FIELD(org_chat_burst)},
      {"org-max-overrides", "N", 1, kMaxSize, "the limits API must be able to hold one override",
       "Orgs that may have quota overrides at once; another gets 409.",
       SG_NUMERIC_FIELD(org_max_overrides)},
      // Usage metering.
      {"usage-flush", "SECONDS", 1, 10, "counters reach the store at least every 10 s",
       "Seconds between flushes of the usage counters to the store (Redis, or this node's "
       "table); a node killed loses at most this much.",
       SG_NUMERIC_FIELD(usage_flush_seconds)},
      {"usage-retention", "SECONDS", 3600, 10ull * 365 * 86400, "an hour must outlive itself",
       "Seconds each org's hour of usage is kept after its last write (the Redis key's TTL).",
       SG_NUMERIC_FIELD(usage_retention_seconds)},
      {"usage-max-org-hours", "N", 1, kMaxSize, "the current hour needs room",
       "Org-hours of usage a node keeps with the memory broker; the oldest hours go first.",
       SG_NUMERIC_FIELD(usage_max_org_hours)},
  };
  return specs;
}

#undef SG_NUMERIC_FIELD

// How a setting is written in a --config file. The flag and the environment always take text.
enum class KeyType { kString, kInteger, kList, kBool };

// One setting as the config file and --print-config see it: the key is the long flag name, and
// the target is the Raw field CLI11 fills for the flag.
struct Binding {
  std::string key;
  KeyType type = KeyType::kString;
  std::string_view group;
  CLI::Option* option = nullptr;
  std::string* text = nullptr;               // kString, kInteger
  std::vector<std::string>* list = nullptr;  // kList
  bool* flag = nullptr;                      // kBool
};

// The CLI11 app plus the bindings its options were registered with, so that the file layer and
// --print-config cover every flag added through add_text/add_list without a second table.
struct Cli : CLI::App {
  std::vector<Binding> bindings;
};

// Everything CLI11 fills in, as text; turned into Settings after parsing. Bindings point into
// it, so it stays where it was built.
struct Raw {
  Raw() = default;
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  std::string config;
  bool print_config = false;
  std::string listen;
  std::string admin_listen;
  std::string jwt_secret;
  std::string jwt_secret_file;
  std::string jwt_public_key;
  std::string jwt_audience;
  std::string jwt_issuer;
  std::string org_claim;
  std::string user_claim;
  std::string jwks_file;
  std::string jwks_url;
  std::string jwks_ca_file;
  std::vector<std::string> api_keys;
  std::vector<std::string> api_key_files;
  std::vector<std::string> services;
  std::string broker;
  std::string redis_tls_ca;
  std::string redis_tls_cert;
  std::string redis_tls_key;
  std::vector<std::string> allowed_origins;
  std::string log_level;
  std::string io_uring;
  std::string upload_dir;
  std::string usage_export;
  bool dev = false;
  std::vector<std::string> numbers;  // parallel to numeric_specs()
  std::vector<CLI::Option*> list_options;
  // Keys whose value came from the --config file → "FILE:LINE: key", for messages.
  std::map<std::string, std::string, std::less<>> file_sources;
};

constexpr std::size_t kHelpColumn = 36;
constexpr std::size_t kHelpTextWidth = 62;

// Greedy word wrap; CLI11 indents every line after a '\n' to the description column.
std::string wrap(std::string_view text) {
  std::string out;
  std::size_t line = 0;
  while (!text.empty()) {
    const std::size_t space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    if (line > 0 && line + 1 + word.size() > kHelpTextWidth) {
      out.push_back('\n');
      line = 0;
    } else if (line > 0) {
      out.push_back(' ');
      ++line;
    }
    out.append(word);
    line += word.size();
    text.remove_prefix(space == std::string_view::npos ? text.size() : space + 1);
  }
  return out;
}

std::string describe(std::string_view meaning, std::string_view flag, std::string_view def) {
  std::string out = wrap(meaning);
  out.append("\n");
  if (!def.empty()) {
    out.append("default: ");
    out.append(def);
    out.append("  ");
  }
  out.append("env: ");
  out.append(env_name(flag));
  return out;
}

CLI::Option* add_text(Cli& app, std::string& target, std::string_view flag,
                      std::string_view type_name, std::string_view def, std::string_view meaning,
                      std::string_view group, KeyType type = KeyType::kString) {
  CLI::Option* option =
      app.add_option("--" + std::string(flag), target, describe(meaning, flag, def))
          ->envname(env_name(flag))
          ->option_text(std::string(type_name))
          ->group(std::string(group));
  app.bindings.push_back({std::string(flag), type, group, option, &target, nullptr, nullptr});
  return option;
}

CLI::Option* add_list(Cli& app, std::vector<std::string>& target, std::string_view flag,
                      std::string_view type_name, std::string_view def, std::string_view meaning,
                      std::string_view group) {
  // One value per occurrence, occurrences accumulate: "--api-key a --api-key b" works as well
  // as "--api-key a,b".
  CLI::Option* option =
      app.add_option("--" + std::string(flag), target, describe(meaning, flag, def))
          ->envname(env_name(flag))
          ->option_text(std::string(type_name))
          ->group(std::string(group))
          ->expected(1)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.bindings.push_back(
      {std::string(flag), KeyType::kList, group, option, nullptr, &target, nullptr});
  return option;
}

constexpr std::string_view kGroupServer = "Server";
constexpr std::string_view kGroupAuth = "Authentication";
constexpr std::string_view kGroupBroker = "Broker";
constexpr std::string_view kGroupLimits = "Limits";
constexpr std::string_view kGroupTimeouts = "Timeouts";
constexpr std::string_view kGroupChat = "Chat";
constexpr std::string_view kGroupUploads = "Uploads";
constexpr std::string_view kGroupOrgQuotas = "Org quotas";
constexpr std::string_view kGroupUsage = "Usage metering";

std::string_view group_of(std::string_view flag) {
  if (flag == "workers") return kGroupServer;
  if (flag == "jwt-leeway" || flag == "token-refresh-notice" || flag.starts_with("jwks-")) {
    return kGroupAuth;
  }
  if (flag == "history" || flag == "history-ttl" || flag == "presence-ttl" ||
      flag == "redis-wait-replicas") {
    return kGroupBroker;
  }
  if (flag.starts_with("chat-")) return kGroupChat;
  if (flag.starts_with("upload-")) return kGroupUploads;
  if (flag.starts_with("org-")) return kGroupOrgQuotas;
  if (flag.starts_with("usage-")) return kGroupUsage;
  if (flag.ends_with("-timeout") || flag == "ping-interval" || flag == "shutdown-grace" ||
      flag == "drain-period" || flag.starts_with("sse-")) {
    return kGroupTimeouts;
  }
  return kGroupLimits;
}

void build_app(Cli& app, Raw& raw) {
  const Settings defaults;
  app.name(std::string(kProgram));
  app.description(
      "streamgate: real-time event gateway. Every flag can also be set through the environment "
      "variable shown, and in the --config file under its own name (services = [\"a\", \"b\"]); "
      "a flag wins over the environment, the environment over the file.");
  app.set_version_flag("--version",
                       std::string(kProgram) + " " + STREAMGATE_VERSION +
                           (sizeof STREAMGATE_COMMIT > 1 ? " (commit " STREAMGATE_COMMIT ")" : ""),
                       "Print the version and exit.");
  app.set_help_flag("-h,--help", "Print this help and exit.");
  app.get_formatter()->column_width(kHelpColumn);
  app.add_option("--config", raw.config,
                 describe("TOML file of settings; each key is a long flag name "
                          "(docs/streamgate.example.toml lists them all).",
                          "config", ""))
      ->envname(env_name("config"))
      ->option_text("PATH");
  app.add_flag("--print-config", raw.print_config,
               wrap("Print the effective settings (flags, environment, --config file, "
                    "defaults) as TOML with secrets redacted, and exit."));

  add_text(app, raw.listen, "listen", "HOST:PORT", defaults.listen,
           "Address to listen on; [::1]:4000 for IPv6, port 0 for any free port. Loopback by "
           "default: exposing the gateway is a deliberate act.",
           kGroupServer);
  add_text(app, raw.admin_listen, "admin-listen", "HOST:PORT", "",
           "A second, plain HTTP listener for operators: /metrics, /healthz, /readyz and the "
           "admin page /admin. When set, /metrics and /admin leave the public port. Off by "
           "default; bind it to loopback or a private network, it asks for no key.",
           kGroupServer);
  add_text(app, raw.log_level, "log-level", "LEVEL", defaults.log_level,
           "Lowest level logged: debug, info, warn or error.", kGroupServer);
  add_text(app, raw.io_uring, "io-uring", "MODE", "auto",
           "auto: each worker hands a loop turn's writes to the kernel in one io_uring "
           "submission where the kernel allows it, else writes with sendmsg; off: always sendmsg.",
           kGroupServer);
  app.add_flag("--dev", raw.dev,
               describe("Try-it-out mode: generates a JWT secret and an API key when none are "
                        "set, so no API key or token key is required, and waits 5 minutes for a "
                        "handshake unless --handshake-timeout is set. Never in production.",
                        "dev", "off"))
      ->envname(env_name("dev"))
      ->option_text(" ")  // the env var is in the description, as for every other flag
      ->group(std::string(kGroupServer));
  app.bindings.push_back(
      {"dev", KeyType::kBool, kGroupServer, app.get_option("--dev"), nullptr, nullptr, &raw.dev});

  add_text(app, raw.jwt_secret, "jwt-secret", "SECRET", "",
           "HS256 shared secret for client tokens; at least 32 bytes.", kGroupAuth);
  add_text(app, raw.jwt_secret_file, "jwt-secret-file", "PATH", "",
           "File holding --jwt-secret (a mounted container secret); its content, trailing "
           "newline stripped.",
           kGroupAuth);
  add_text(app, raw.jwt_public_key, "jwt-public-key", "PEM|PATH", "",
           "RS256/ES256 public key for client tokens: the PEM text itself, or the path of a PEM "
           "file.",
           kGroupAuth);
  add_text(app, raw.jwt_audience, "jwt-audience", "AUD", "",
           "When set, a token's aud claim (a string, or an array of them) must name this "
           "audience; empty = aud not checked.",
           kGroupAuth);
  add_text(app, raw.jwt_issuer, "jwt-issuer", "ISS", "",
           "When set, a token's iss claim must equal this issuer; empty = iss not checked.",
           kGroupAuth);
  add_text(app, raw.org_claim, "org-claim", "NAME", defaults.org_claim,
           "The token claim that names the user's org (a tenant claim, say).", kGroupAuth);
  add_text(app, raw.user_claim, "user-claim", "NAME", defaults.user_claim,
           "The token claim that names the user.", kGroupAuth);
  add_text(app, raw.jwks_file, "jwks-file", "PATH", "",
           "JWK Set file (an identity provider's jwks.json) whose RS256/ES256 keys verify tokens "
           "by their kid; read at start-up.",
           kGroupAuth);
  add_text(app, raw.jwks_url, "jwks-url", "URL", "",
           "JWK Set URL (http:// or https://) whose RS256/ES256 keys verify tokens by their kid; "
           "fetched at start, every --jwks-refresh seconds and on an unknown kid. Not with "
           "--jwks-file.",
           kGroupAuth);
  add_text(app, raw.jwks_ca_file, "jwks-ca-file", "PATH", "",
           "PEM CA certificates that an https --jwks-url server must chain to; empty = the "
           "system trust store.",
           kGroupAuth);
  raw.list_options.push_back(
      add_list(app, raw.api_keys, "api-key", "KEYS", "",
               "Comma-separated API keys producers present (Bearer) to publish and to read "
               "metrics.",
               kGroupAuth));
  raw.list_options.push_back(
      add_list(app, raw.api_key_files, "api-key-file", "PATHS", "",
               "Comma-separated files holding --api-key values, one key per line (or "
               "comma-separated); several keys allow rotation.",
               kGroupAuth));
  raw.list_options.push_back(add_list(app, raw.allowed_origins, "allowed-origins", "ORIGINS", "",
                                      "Comma-separated browser Origins allowed to connect, exact "
                                      "(https://app.example.com) or with a leading wildcard "
                                      "(https://*.example.com); empty = any Origin.",
                                      kGroupAuth));
  raw.list_options.push_back(add_list(
      app, raw.services, "services", "NAMES", "*",
      "Comma-separated services clients may subscribe to; * = any valid name.", kGroupAuth));

  add_text(
      app, raw.broker, "broker", "URL", defaults.broker,
      "Where events live: memory (one node), or redis://host:port[/db] (rediss:// for TLS) "
      "to share them between nodes; redis-cluster://host:port[,host:port...] (rediss-cluster:// "
      "for TLS) for a Redis Cluster; redis-sentinel://host:port[,host:port...]/MASTER "
      "(rediss-sentinel:// for TLS) for a primary found through Redis Sentinel.",
      kGroupBroker);
  add_text(app, raw.redis_tls_ca, "redis-tls-ca", "PATH", "",
           "rediss://: PEM file of the CAs that may sign Redis's certificate; empty = the "
           "system's CAs.",
           kGroupBroker);
  add_text(app, raw.redis_tls_cert, "redis-tls-cert", "PATH", "",
           "rediss://: client certificate (PEM chain), for a Redis that requires one.",
           kGroupBroker);
  add_text(app, raw.redis_tls_key, "redis-tls-key", "PATH", "",
           "rediss://: the client certificate's private key (PEM).", kGroupBroker);

  add_text(app, raw.upload_dir, "upload-dir", "PATH", "",
           "Directory for uploaded documents (partial uploads in PATH/.partial); created at "
           "start. Empty = <system temp dir>/streamgate-uploads.",
           kGroupUploads);
  add_text(app, raw.usage_export, "usage-export", "FILE", "",
           "File each closed hour's usage is appended to, one JSON line per org and node; "
           "empty = none.",
           kGroupUsage);
  const auto& specs = numeric_specs();
  raw.numbers.resize(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const NumericSpec& spec = specs[i];
    std::string def;
    core::append_decimal(def, spec.get(defaults));
    raw.numbers[i] = def;
    add_text(app, raw.numbers[i], spec.flag, spec.type_name, def, spec.meaning, group_of(spec.flag),
             KeyType::kInteger);
  }
}

bool on_command_line(std::string_view flag, int argc, const char* const* argv) {
  const std::string dashed = "--" + std::string(flag);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == dashed ||
        (arg.starts_with(dashed) && arg.size() > dashed.size() && arg[dashed.size()] == '=')) {
      return true;
    }
  }
  return false;
}

// Which source supplied a value, for messages: the flag if it is on the command line, else the
// environment variable (CLI11 consults it only when the flag is absent).
std::string source_of(std::string_view flag, int argc, const char* const* argv) {
  const std::string dashed = "--" + std::string(flag);
  if (on_command_line(flag, argc, argv)) return dashed;
  return std::getenv(env_name(flag).c_str()) != nullptr ? env_name(flag) : dashed;
}

// What trim removes from values: a flag, a variable or a key file may end in a line break.
constexpr std::string_view kBlanks = " \t\n\r";

// Each occurrence may itself be comma-separated; blanks around items and empty items vanish.
std::vector<std::string> split_list(const std::vector<std::string>& occurrences) {
  std::vector<std::string> out;
  for (const std::string& occurrence : occurrences) {
    std::string_view rest = occurrence;
    while (true) {
      const std::size_t comma = rest.find(',');
      const std::string_view item = core::trim(rest.substr(0, comma), kBlanks);
      if (!item.empty()) out.emplace_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

bool parse_u64(std::string_view text, std::uint64_t& out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  const auto r = std::from_chars(text.data(), end, out);
  return r.ec == std::errc() && r.ptr == end;
}

bool valid_service_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxServiceNameBytes) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
  });
}

bool valid_hostname_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool valid_ipv6_char(char c) {
  return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
         c == '.';
}

// Returns an error message, or nullopt when `listen` is a usable host:port (then in host, port).
std::optional<std::string> parse_host_port(std::string_view listen, std::string_view source,
                                           std::string& host_out, std::uint16_t& port_out) {
  const std::string prefix = std::string(source) + " must be host:port";
  std::string_view host;
  std::string_view port;
  if (listen.starts_with('[')) {
    const std::size_t close = listen.find(']');
    if (close == std::string_view::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return failure(prefix + ", with an IPv6 address in brackets as in [::1]:4000");
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
    if (host.empty() || !std::all_of(host.begin(), host.end(), valid_ipv6_char)) {
      return failure(prefix + ": \"" + std::string(host) + "\" is not an IPv6 address");
    }
  } else {
    const std::size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos) {
      return failure(prefix + " (for example 127.0.0.1:4000), got \"" + std::string(listen) + "\"");
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return failure(prefix + ", with an IPv6 address in brackets as in [::1]:4000");
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(), valid_hostname_char)) {
      return failure(prefix + ": \"" + std::string(host) + "\" is not a host name or address");
    }
  }
  std::uint64_t port_value = 0;
  if (!parse_u64(port, port_value) || port_value > 65535) {
    return failure(prefix + ": port \"" + std::string(port) + "\" is not a number from 0 to 65535");
  }
  host_out = std::string(host);
  port_out = static_cast<std::uint16_t>(port_value);
  return std::nullopt;
}

std::optional<std::string> parse_listen(std::string_view listen, std::string_view source,
                                        Settings& s) {
  if (auto err = parse_host_port(listen, source, s.listen_host, s.listen_port)) return err;
  s.listen = std::string(listen);
  return std::nullopt;
}

// --admin-listen: empty = off; else a host:port other than --listen's.
std::optional<std::string> parse_admin_listen(std::string_view admin, std::string_view source,
                                              Settings& s) {
  if (admin.empty()) return std::nullopt;
  if (auto err = parse_host_port(admin, source, s.admin_listen_host, s.admin_listen_port)) {
    return err;
  }
  if (s.admin_listen_port != 0 && s.admin_listen_port == s.listen_port &&
      s.admin_listen_host == s.listen_host) {
    return failure(std::string(source) + " must differ from --listen (" + s.listen + ")");
  }
  s.admin_listen = std::string(admin);
  return std::nullopt;
}

// "https://app.example.com" or "https://*.example.com": what a browser sends in Origin, so no
// path and no trailing slash (an entry with one would never match).
std::optional<std::string> check_origin(std::string_view origin, std::string_view source) {
  if (origin == "*") return std::nullopt;
  std::string_view rest = origin;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    return failure(std::string(source) + ": \"" + std::string(origin) +
                   "\" is not an origin; write it as a browser sends it, e.g. "
                   "https://app.example.com");
  }
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  const bool ok = !rest.empty() && std::all_of(rest.begin(), rest.end(), [](char c) {
    return valid_hostname_char(c) || c == ':' || c == '[' || c == ']';
  });
  if (!ok) {
    return failure(std::string(source) + ": \"" + std::string(origin) +
                   "\" is not an origin (scheme://host[:port], no path or trailing slash)");
  }
  return std::nullopt;
}

// Reads a PEM file named by --jwt-public-key. Error text names the path, never the content.
std::optional<std::string> read_pem_file(const std::string& path, std::string_view source,
                                         std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return failure("cannot read " + std::string(source) + " file \"" + path +
                   "\": " + (err != 0 ? std::strerror(err) : "cannot open"));
  }
  std::string content;
  std::array<char, 4096> buf;
  while (in.read(buf.data(), buf.size()) || in.gcount() > 0) {
    content.append(buf.data(), static_cast<std::size_t>(in.gcount()));
    if (content.size() > kMaxPemFileBytes) {
      return failure(std::string(source) + " file \"" + path +
                     "\" is larger than 64 KiB; it is not a public key");
    }
  }
  if (in.bad()) {
    return failure("cannot read " + std::string(source) + " file \"" + path + "\"");
  }
  if (content.find("-----BEGIN") == std::string::npos) {
    return failure(std::string(source) + " file \"" + path +
                   "\" holds no PEM block (-----BEGIN PUBLIC KEY-----)");
  }
  out = std::move(content);
  return std::nullopt;
}

// Reads all of `path` into `out` when it has at most `cap` bytes; otherwise says why not.
std::optional<std::string> read_capped(const std::string& path, std::size_t cap, std::string& out) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return std::string(err != 0 ? std::strerror(err) : "cannot open");
  }
  std::string content;
  std::array<char, 4096> buf;
  while (in.read(buf.data(), buf.size()) || in.gcount() > 0) {
    content.append(buf.data(), static_cast<std::size_t>(in.gcount()));
    if (content.size() > cap) {
      std::string why = "larger than ";
      core::append_decimal(why, cap / 1024);
      why += " KiB";
      return why;
    }
  }
  if (in.bad()) {
    const int err = errno;
    return std::string(err != 0 ? std::strerror(err) : "read error");
  }
  out = std::move(content);
  return std::nullopt;
}

// Reads a secret mounted as a file (Docker and Kubernetes secrets): the whole content minus
// trailing line breaks, which `echo` and editors add and which are never part of a secret.
// Error text names the source and the path, never the content.
std::optional<std::string> read_secret_file(const std::string& path, std::string_view source,
                                            std::string& out) {
  std::string content;
  if (auto why = read_capped(path, kMaxSecretFileBytes, content)) {
    return failure(std::string(source) + ": cannot read \"" + path + "\": " + *why);
  }
  while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) {
    content.pop_back();
  }
  if (content.empty()) return failure(std::string(source) + ": \"" + path + "\" is empty");
  out = std::move(content);
  return std::nullopt;
}

std::string_view type_phrase(toml::node_type type) {
  switch (type) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string at_line(const std::string& path, const toml::source_region& where) {
  std::string out = path + ":";
  core::append_decimal(out, where.begin.line);
  return out;
}

// Fills every setting the --config file names that neither a flag nor the environment gave,
// and remembers "FILE:LINE: key" as its source for messages. Every key is checked (known,
// right type) even when a flag overrides it, so a broken file fails where it is written rather
// than on the day the flag is dropped.
std::optional<std::string> apply_file(Cli& app, Raw& raw, std::string_view source) {
  const std::string& path = raw.config;
  std::string text;
  if (auto why = read_capped(path, kMaxConfigFileBytes, text)) {
    return failure(std::string(source) + ": cannot read \"" + path + "\": " + *why);
  }
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    std::string where = at_line(path, e.source()) + ":";
    core::append_decimal(where, e.source().begin.column);
    return failure(where + ": not valid TOML: " + std::string(e.description()));
  }
  for (auto&& entry : table) {
    // Not a structured binding: clang (the fuzz build) refuses to capture one in a lambda.
    const auto& key = entry.first;
    auto& node = entry.second;
    const std::string name(key.str());
    const std::string where = at_line(path, key.source()) + ": " + name;
    const auto binding = std::find_if(app.bindings.begin(), app.bindings.end(),
                                      [&](const Binding& b) { return b.key == name; });
    if (binding == app.bindings.end()) {
      if (name == "config" || name == "print-config") {
        return failure(where + " is a command-line flag, not a setting of the file");
      }
      std::string dashed = name;
      std::replace(dashed.begin(), dashed.end(), '_', '-');
      const bool near = std::any_of(app.bindings.begin(), app.bindings.end(),
                                    [&](const Binding& b) { return b.key == dashed; });
      return failure(where + ": unknown key" +
                     (near && dashed != name ? "; did you mean " + dashed + "?"
                                             : std::string(" (keys are the long flag names "
                                                           "of --help, without the dashes)")));
    }
    auto wrong = [&](std::string_view expected) {
      return failure(where + " must be " + std::string(expected) + ", got " +
                     std::string(type_phrase(node.type())));
    };
    std::string value;
    std::vector<std::string> items;
    bool flag = false;
    switch (binding->type) {
      case KeyType::kString:
        if (!node.is_string()) return wrong("a string");
        value = node.as_string()->get();
        break;
      case KeyType::kInteger:
        if (!node.is_integer()) return wrong("an integer");
        value = std::to_string(node.as_integer()->get());
        break;
      case KeyType::kList:
        if (node.is_string()) {
          items.push_back(node.as_string()->get());
        } else if (const toml::array* array = node.as_array()) {
          for (const toml::node& item : *array) {
            if (!item.is_string()) {
              return failure(at_line(path, item.source()) + ": " + name +
                             " must be an array of strings, got " +
                             std::string(type_phrase(item.type())) + " in it");
            }
            items.push_back(item.as_string()->get());
          }
        } else {
          return wrong("an array of strings or one comma-separated string");
        }
        break;
      case KeyType::kBool:
        if (!node.is_boolean()) return wrong("true or false");
        flag = node.as_boolean()->get();
        break;
    }
    if (binding->option->count() > 0) continue;  // a flag or the environment wins
    if (binding->text != nullptr) *binding->text = std::move(value);
    if (binding->list != nullptr) *binding->list = std::move(items);
    if (binding->flag != nullptr) *binding->flag = flag;
    raw.file_sources[name] = where;
  }
  return std::nullopt;
}

// A TOML basic string.
std::string toml_quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out += '"';
  return out;
}

// redis://user:password@host → redis://user:<redacted>@host; the rest of the URL stays, so
// the printed configuration still says which Redis.
std::string redact_url(std::string_view url) {
  const std::size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const std::size_t start = scheme + 3;
  const std::size_t slash = url.find('/', start);
  const std::size_t at = url.substr(0, slash).rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(url);
  const std::size_t colon = url.find(':', start);
  std::string out(url.substr(0, colon < at ? colon + 1 : start));
  out += kRedacted;
  out += url.substr(at);
  return out;
}

// The effective settings as TOML: every key, in the order of --help's groups, with what the
// file, the environment and the flags left in Raw after validation. Secrets are replaced by
// kRedacted; a secret read from a file prints as the path, so the output parses back.
std::string print_config(const std::vector<Binding>& bindings, const Raw& raw) {
  std::string out =
      "# streamgate --print-config: the effective settings (flags > STREAMGATE_* environment >\n"
      "# --config file > defaults). Secrets show as \"<redacted>\".\n";
  if (!raw.config.empty()) out += "# --config file: " + raw.config + "\n";
  std::vector<std::string_view> groups = {kGroupServer,   kGroupAuth, kGroupBroker, kGroupLimits,
                                          kGroupTimeouts, kGroupChat, kGroupUploads};
  for (const Binding& b : bindings) {
    if (std::find(groups.begin(), groups.end(), b.group) == groups.end()) {
      groups.push_back(b.group);
    }
  }
  for (const std::string_view group : groups) {
    bool heading = false;
    for (const Binding& b : bindings) {
      if (b.group != group) continue;
      if (!heading) {
        out += "\n# ";
        out += group;
        out += "\n";
        heading = true;
      }
      const bool secret = b.key == "jwt-secret" || b.key == "api-key";
      out += b.key;
      out += " = ";
      switch (b.type) {
        case KeyType::kString:
          if (secret && !b.text->empty()) {
            out += toml_quote(kRedacted);
          } else if (b.key == "broker") {
            out += toml_quote(redact_url(*b.text));
          } else {
            out += toml_quote(*b.text);
          }
          break;
        case KeyType::kInteger:
          out += core::trim(*b.text, kBlanks);
          break;
        case KeyType::kList: {
          out += "[";
          const std::vector<std::string> items = split_list(*b.list);
          for (std::size_t i = 0; i < items.size(); ++i) {
            if (i > 0) out += ", ";
            out += toml_quote(secret ? kRedacted : std::string_view(items[i]));
          }
          out += "]";
          break;
        }
        case KeyType::kBool:
          out += *b.flag ? "true" : "false";
          break;
      }
      out += "\n";
    }
  }
  return out;
}

ParseOutcome exit_with(int code, std::string message) {
  ParseOutcome outcome;
  outcome.kind = ParseOutcome::Kind::kExit;
  outcome.exit_code = code;
  outcome.message = std::move(message);
  return outcome;
}

ParseOutcome usage_error(std::string message) {
  return exit_with(2, std::move(message));
}

std::string placeholder(const std::string& source) {
  return failure(source + " holds \"" + std::string(kRedacted) +
                 "\", which --print-config shows in place of a secret; give the real value");
}

std::string both_given(const std::string& value_source, const std::string& file_source) {
  return failure(value_source + " and " + file_source +
                 " are both given; give the secret or the file holding it, not both");
}

// Turns the parsed text into Settings; the first problem found ends it. Resolving a secret
// against its file clears the unused one in `raw`, for --print-config.
ParseOutcome validate(Raw& raw, const std::vector<Binding>& bindings, int argc,
                      const char* const* argv) {
  ParseOutcome outcome;
  Settings& s = outcome.settings;
  auto src = [&](std::string_view flag) {
    const auto file = raw.file_sources.find(flag);
    return file != raw.file_sources.end() ? file->second : source_of(flag, argc, argv);
  };
  // Where a value came from, by precedence: flag 3, environment 2, config file 1, default 0.
  auto rank = [&](std::string_view flag) {
    if (on_command_line(flag, argc, argv)) return 3;
    const char* env = std::getenv(env_name(flag).c_str());
    if (env != nullptr && *env != '\0') return 2;
    return raw.file_sources.contains(flag) ? 1 : 0;
  };
  s.config_file = raw.config;

  if (auto err = parse_listen(raw.listen, src("listen"), s)) return usage_error(*err);
  if (auto err = parse_admin_listen(raw.admin_listen, src("admin-listen"), s)) {
    return usage_error(*err);
  }

  const auto& specs = numeric_specs();
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const NumericSpec& spec = specs[i];
    const std::string& text = raw.numbers[i];
    const std::string name = src(spec.flag);
    std::uint64_t v = 0;
    if (!parse_u64(core::trim(text, kBlanks), v)) {
      return usage_error(failure(name + " must be a whole number" +
                                 (spec.type_name == "MS"        ? std::string(" of milliseconds")
                                  : spec.type_name == "SECONDS" ? std::string(" of seconds")
                                  : spec.type_name == "BYTES"   ? std::string(" of bytes")
                                                                : std::string()) +
                                 ", got \"" + text + "\""));
    }
    if (v < spec.min) {
      std::string msg = name + " must be at least ";
      core::append_decimal(msg, spec.min);
      msg += ", got ";
      core::append_decimal(msg, v);
      if (!spec.why_min.empty()) {
        msg += ": ";
        msg += spec.why_min;
      }
      return usage_error(failure(msg));
    }
    if (v > spec.max) {
      std::string msg = name + " must be at most ";
      core::append_decimal(msg, spec.max);
      msg += ", got ";
      core::append_decimal(msg, v);
      return usage_error(failure(msg));
    }
    spec.set(s, v);
  }

  if (raw.log_level != "debug" && raw.log_level != "info" && raw.log_level != "warn" &&
      raw.log_level != "error") {
    return usage_error(failure(src("log-level") + " must be debug, info, warn or error, got \"" +
                               raw.log_level + "\""));
  }
  s.log_level = raw.log_level;

  if (raw.io_uring != "auto" && raw.io_uring != "off") {
    return usage_error(
        failure(src("io-uring") + " must be auto or off, got \"" + raw.io_uring + "\""));
  }
  s.io_uring = raw.io_uring == "auto";

  const bool redis =
      raw.broker.starts_with("redis://") || raw.broker.starts_with("rediss://") ||
      raw.broker.starts_with("redis-cluster://") || raw.broker.starts_with("rediss-cluster://") ||
      raw.broker.starts_with("redis-sentinel://") || raw.broker.starts_with("rediss-sentinel://");
  const bool redis_tls = raw.broker.starts_with("rediss://") ||
                         raw.broker.starts_with("rediss-cluster://") ||
                         raw.broker.starts_with("rediss-sentinel://");
  const std::size_t scheme_end = raw.broker.find("://");
  if (!(raw.broker == "memory" || (redis && scheme_end + 3 < raw.broker.size()))) {
    return usage_error(failure(src("broker") +
                               " must be memory, redis://host:port, rediss://host:port, "
                               "redis-cluster://host:port[,host:port...] or "
                               "redis-sentinel://host:port[,host:port...]/MASTER, got "
                               "\"" +
                               raw.broker + "\""));
  }
  if (raw.broker.find(kRedacted) != std::string::npos)
    return usage_error(placeholder(src("broker")));
  s.broker = raw.broker;
  for (const auto& [flag, value] : {std::pair{"redis-tls-ca", &raw.redis_tls_ca},
                                    std::pair{"redis-tls-cert", &raw.redis_tls_cert},
                                    std::pair{"redis-tls-key", &raw.redis_tls_key}}) {
    if (!value->empty() && !redis_tls) {
      return usage_error(
          failure(src(flag) + " is for TLS to Redis; use it with a rediss:// --broker"));
    }
  }
  if (raw.redis_tls_cert.empty() != raw.redis_tls_key.empty()) {
    return usage_error(
        failure(src(raw.redis_tls_cert.empty() ? "redis-tls-key" : "redis-tls-cert") +
                " needs its pair: give both --redis-tls-cert and --redis-tls-key"));
  }
  s.redis_tls_ca = raw.redis_tls_ca;
  s.redis_tls_cert = raw.redis_tls_cert;
  s.redis_tls_key = raw.redis_tls_key;
  if (s.redis_wait_replicas > 0 && !redis) {
    return usage_error(failure(src("redis-wait-replicas") + " needs a Redis --broker"));
  }

  s.services = split_list(raw.services);
  if (s.services.empty()) {
    return usage_error(
        failure(src("services") + " is empty; list service names, or * for any service"));
  }
  for (const std::string& name : s.services) {
    if (name != "*" && !valid_service_name(name)) {
      return usage_error(failure(src("services") + ": \"" + name +
                                 "\" is not a service name (1 to 64 of A-Z a-z 0-9 _ . : -)"));
    }
  }

  s.allowed_origins = split_list(raw.allowed_origins);
  for (const std::string& origin : s.allowed_origins) {
    if (auto err = check_origin(origin, src("allowed-origins"))) return usage_error(*err);
  }

  s.dev = raw.dev;
  // A secret and the file holding it are one setting: the higher source wins (a flag over the
  // config file's jwt-secret-file), and both from the same source is ambiguous.
  const std::string secret_path(core::trim(raw.jwt_secret_file, kBlanks));
  const int secret_rank = raw.jwt_secret.empty() ? 0 : rank("jwt-secret");
  const int secret_file_rank = secret_path.empty() ? 0 : rank("jwt-secret-file");
  if (secret_rank != 0 && secret_rank == secret_file_rank) {
    return usage_error(both_given(src("jwt-secret"), src("jwt-secret-file")));
  }
  std::string secret_source = src("jwt-secret");
  if (secret_file_rank > secret_rank) {
    secret_source = src("jwt-secret-file") + " \"" + secret_path + "\"";
    if (auto err = read_secret_file(secret_path, src("jwt-secret-file"), s.jwt_secret)) {
      return usage_error(*err);
    }
    s.jwt_secret_file = secret_path;
    raw.jwt_secret.clear();
  } else {
    s.jwt_secret = raw.jwt_secret;
    raw.jwt_secret_file.clear();
  }
  if (s.jwt_secret == kRedacted) return usage_error(placeholder(secret_source));
  if (!s.jwt_secret.empty() && s.jwt_secret.size() < kMinSecretBytes) {
    std::string msg = secret_source + " is ";
    core::append_decimal(msg, s.jwt_secret.size());
    msg +=
        " bytes; HS256 secrets must be at least 32 bytes, or they can be guessed offline from "
        "any token";
    return usage_error(failure(msg));
  }

  if (!raw.jwt_public_key.empty()) {
    if (core::trim(raw.jwt_public_key, kBlanks).starts_with("-----BEGIN")) {
      s.jwt_public_key = raw.jwt_public_key;
    } else if (auto err =
                   read_pem_file(raw.jwt_public_key, src("jwt-public-key"), s.jwt_public_key)) {
      return usage_error(*err);
    }
  }

  s.jwt_audience = std::string(core::trim(raw.jwt_audience, kBlanks));
  s.jwt_issuer = std::string(core::trim(raw.jwt_issuer, kBlanks));
  for (const auto& [flag, value, target] :
       {std::tuple{"org-claim", &raw.org_claim, &s.org_claim},
        std::tuple{"user-claim", &raw.user_claim, &s.user_claim}}) {
    const std::string_view name = core::trim(*value, kBlanks);
    if (name.empty() || name.size() > kMaxClaimNameBytes) {
      return usage_error(failure(src(flag) + " must name a claim (1 to 128 bytes)"));
    }
    *target = std::string(name);
  }
  s.jwks_file = std::string(core::trim(raw.jwks_file, kBlanks));
  s.jwks_url = std::string(core::trim(raw.jwks_url, kBlanks));
  s.jwks_ca_file = std::string(core::trim(raw.jwks_ca_file, kBlanks));
  if (!s.jwks_url.empty()) {
    if (!s.jwks_file.empty()) {
      return usage_error(failure(src("jwks-url") + " and " + src("jwks-file") +
                                 " are exclusive: the keys come from one JWK Set"));
    }
    if (!s.jwks_url.starts_with("http://") && !s.jwks_url.starts_with("https://")) {
      return usage_error(
          failure(src("jwks-url") + " must be an http:// or https:// URL: " + s.jwks_url));
    }
  }
  if (!s.jwks_ca_file.empty() && !s.jwks_url.starts_with("https://")) {
    return usage_error(failure(src("jwks-ca-file") + " needs an https:// " + src("jwks-url")));
  }
  if (!s.jwks_file.empty()) {
    if (auto why = read_capped(s.jwks_file, kMaxJwksFileBytes, s.jwks)) {
      return usage_error(
          failure(src("jwks-file") + ": cannot read \"" + s.jwks_file + "\": " + *why));
    }
    if (s.jwks.find("\"keys\"") == std::string::npos) {
      return usage_error(failure(src("jwks-file") + ": \"" + s.jwks_file +
                                 "\" is not a JWK Set (no \"keys\" member)"));
    }
  }
  if (s.org_claim == s.user_claim) {
    return usage_error(failure(src("org-claim") + " and " + src("user-claim") +
                               " name the same claim \"" + s.org_claim +
                               "\"; a user and an org are different things"));
  }

  s.api_keys = split_list(raw.api_keys);
  const std::vector<std::string> key_files = split_list(raw.api_key_files);
  const int keys_rank = s.api_keys.empty() ? 0 : rank("api-key");
  const int key_files_rank = key_files.empty() ? 0 : rank("api-key-file");
  if (keys_rank != 0 && keys_rank == key_files_rank) {
    return usage_error(both_given(src("api-key"), src("api-key-file")));
  }
  if (key_files_rank > keys_rank) {
    s.api_keys.clear();
    for (const std::string& path : key_files) {
      std::string content;
      if (auto err = read_secret_file(path, src("api-key-file"), content)) return usage_error(*err);
      // One key per line, or comma-separated as --api-key takes them; a second line is how a
      // new key is added next to the old one during rotation.
      std::vector<std::string> lines;
      for (std::size_t start = 0; start <= content.size();) {
        const std::size_t eol = std::min(content.find('\n', start), content.size());
        lines.push_back(content.substr(start, eol - start));
        start = eol + 1;
      }
      const std::vector<std::string> keys = split_list(lines);
      if (keys.empty()) {
        return usage_error(
            failure(src("api-key-file") + ": \"" + path + "\" holds no key, only separators"));
      }
      s.api_keys.insert(s.api_keys.end(), keys.begin(), keys.end());
    }
    s.api_key_files = key_files;
    raw.api_keys.clear();
  } else {
    raw.api_key_files.clear();
  }
  for (const std::string& key : s.api_keys) {
    if (key == kRedacted) {
      return usage_error(
          placeholder(key_files_rank > keys_rank ? src("api-key-file") : src("api-key")));
    }
  }
  s.upload_dir = std::string(core::trim(raw.upload_dir, kBlanks));
  s.usage_export = std::string(core::trim(raw.usage_export, kBlanks));

  if (raw.print_config) return exit_with(0, print_config(bindings, raw));

  if (s.dev) {
    // core::random_hex is the kernel's CSPRNG, as a secret needs.
    if (s.jwt_secret.empty()) s.jwt_secret = core::random_hex(kMinSecretBytes);
    if (s.api_keys.empty()) s.api_keys.push_back(core::random_hex(kMinSecretBytes));
    // A person pasting a handshake into wscat needs longer than a program's 10 s; unless a
    // flag, the environment or the file set it.
    if (rank("handshake-timeout") == 0) s.handshake_timeout_ms = 300000;
  }

  if (s.jwt_secret.empty() && s.jwt_public_key.empty() && s.jwks.empty() && s.jwks_url.empty()) {
    return usage_error(
        failure("no token key configured: set --jwt-secret (HS256), --jwt-public-key or "
                "--jwks-file (RS256/ES256), or use --dev to try it out"));
  }
  if (s.api_keys.empty()) {
    return usage_error(
        failure("no API key configured: set --api-key (producers need one to publish), or use "
                "--dev to try it out"));
  }
  return outcome;
}

}  // namespace

ParseOutcome parse(int argc, const char* const* argv) {
  Raw raw;
  const Settings defaults;
  raw.listen = defaults.listen;
  raw.broker = defaults.broker;
  raw.log_level = defaults.log_level;
  raw.io_uring = defaults.io_uring ? "auto" : "off";
  raw.org_claim = defaults.org_claim;
  raw.user_claim = defaults.user_claim;
  raw.services = defaults.services;
  try {
    Cli app;
    build_app(app, raw);
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      return exit_with(0, app.help());
    } catch (const CLI::CallForVersion& e) {
      return exit_with(0, e.what());
    } catch (const CLI::ParseError& e) {
      return usage_error(failure(std::string(e.what()) + " (see --help)"));
    }
    if (!raw.config.empty()) {
      if (auto err = apply_file(app, raw, source_of("config", argc, argv))) {
        return usage_error(*err);
      }
    }
    return validate(raw, app.bindings, argc, argv);
  } catch (const std::exception& e) {
    // CLI11 reports misuse of its own API by throwing; keep the promise of never throwing.
    return usage_error(failure(e.what()));
  }
}

std::string help_text() {
  try {
    Raw raw;
    Cli app;
    build_app(app, raw);
    return app.help();
  } catch (const std::exception& e) {
    return failure(e.what());
  }
}

std::optional<double> parse_cpu_max(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  const auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view max = text.substr(0, space);
  const std::string_view period = text.substr(space + 1);
  std::uint64_t p = 0;
  auto [pend, perr] = std::from_chars(period.data(), period.data() + period.size(), p);
  if (perr != std::errc{} || pend != period.data() + period.size() || p == 0) return std::nullopt;
  if (max == "max") return std::nullopt;
  std::uint64_t m = 0;
  auto [mend, merr] = std::from_chars(max.data(), max.data() + max.size(), m);
  if (merr != std::errc{} || mend != max.data() + max.size() || m == 0) return std::nullopt;
  return static_cast<double>(m) / static_cast<double>(p);
}

std::optional<std::string> cgroup_v2_path(std::string_view proc_self_cgroup) {
  while (!proc_self_cgroup.empty()) {
    const auto eol = proc_self_cgroup.find('\n');
    const std::string_view line = proc_self_cgroup.substr(0, eol);
    if (line.starts_with("0::/")) return std::string(line.substr(3));
    if (eol == std::string_view::npos) break;
    proc_self_cgroup.remove_prefix(eol + 1);
  }
  return std::nullopt;
}

unsigned workers_for(unsigned cpus, std::optional<double> quota) {
  unsigned n = cpus;
  if (quota) {
    const double whole = std::max(1.0, std::floor(*quota));
    if (n == 0 || whole < n) n = static_cast<unsigned>(std::min(whole, 256.0));
  }
  return std::clamp(n, 1u, 256u);
}

namespace {
std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text(4096, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}
}  // namespace

WorkerDefault default_workers() {
  unsigned cpus = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = static_cast<unsigned>(CPU_COUNT(&set));
  std::string reason = cpus != 0 ? std::to_string(cpus) + (cpus == 1 ? " CPU" : " CPUs") +
                                       " in this process's affinity mask"
                                 : "CPU affinity unknown";
  // Limits nest: the lowest quota on the way from this cgroup up to the root applies.
  std::optional<double> quota;
  std::string quota_at;
  if (const auto self = read_small_file("/proc/self/cgroup")) {
    if (auto path = cgroup_v2_path(*self)) {
      for (;;) {
        const std::string dir = "/sys/fs/cgroup" + (*path == "/" ? std::string() : *path);
        if (const auto text = read_small_file(dir + "/cpu.max")) {
          const auto q = parse_cpu_max(*text);
          if (q && (!quota || *q < *quota)) {
            quota = q;
            quota_at = dir + "/cpu.max";
          }
        }
        if (*path == "/" || path->empty()) break;
        const auto slash = path->rfind('/');
        path->resize(slash == 0 ? 1 : slash);
      }
    }
  }
  if (cpus == 0 && !quota) {
    cpus = std::thread::hardware_concurrency();
    reason = std::to_string(cpus) + " CPUs on this machine (affinity unknown)";
  }
  const unsigned count = workers_for(cpus, quota);
  if (quota && count < std::max(cpus, 1u)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", *quota);
    reason =
        "cgroup CPU quota of " + std::string(buf) + " CPUs (" + quota_at + "), below " + reason;
  }
  return {count, reason};
}

std::string_view version() {
  return STREAMGATE_VERSION;
}

std::string_view commit() {
  return STREAMGATE_COMMIT;
}

}  // namespace sg::config
