// config: every setting streamgate has, from flags, STREAMGATE_<NAME> environment variables and
// a TOML file (--config) whose keys are the long flag names; a flag wins over the environment,
// the environment over the file. Validated at start-up with clear messages. Called once by main
// before anything starts; Settings is a plain value afterwards.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sg::config {

// Each field: default, and why. docs/configuration.md lists them all; a test keeps it equal
// to --help.
struct Settings {
  // --listen host:port. Loopback by default: exposing the gateway is a deliberate act.
  std::string listen = "127.0.0.1:4000";
  std::string listen_host = "127.0.0.1";  // derived from listen
  std::uint16_t listen_port = 4000;       // derived from listen; 0 = any free port

  // --admin-listen host:port: a second listener for /metrics, /healthz, /readyz and /admin,
  // so operators keep them off the public port. Empty (default) = off: they stay on --listen.
  std::string admin_listen;
  std::string admin_listen_host;        // derived from admin_listen
  std::uint16_t admin_listen_port = 0;  // derived from admin_listen; 0 = any free port

  std::string config_file;  // --config: the TOML file read at start-up; empty = none

  std::string jwt_secret;  // --jwt-secret: HS256 shared secret
  // --jwt-secret-file: where jwt_secret was read from (a mounted container secret); empty when
  // it was given as a value.
  std::string jwt_secret_file;
  // --jwt-public-key: given as PEM text or as a path to a PEM file; after parse() always the
  // PEM text.
  std::string jwt_public_key;
  std::int64_t jwt_leeway_seconds = 30;  // --jwt-leeway: clock skew tolerated on exp/nbf
  // Tokens from other issuers and in-band refresh (issue 17).
  // --jwt-audience / --jwt-issuer: when set, a token's aud (string or array) must contain it and
  // its iss must equal it; empty = not checked.
  std::string jwt_audience;
  std::string jwt_issuer;
  std::string org_claim = "org_id";  // --org-claim: the claim naming the user's org
  std::string user_claim = "sub";    // --user-claim: the claim naming the user
  // --jwks-file: a JWK Set of RS256/ES256 keys chosen by kid; after parse() jwks holds its JSON.
  std::string jwks_file;
  std::string jwks;
  // --jwks-url (exclusive with --jwks-file): the JWK Set fetched over http(s) at start, every
  // jwks_refresh_seconds, and on an unknown kid at most every jwks_min_refresh_seconds; a
  // response over jwks_max_bytes or slower than jwks_timeout_seconds fails. https verifies the
  // server against jwks_ca_file, or the system trust store when empty.
  std::string jwks_url;
  std::string jwks_ca_file;
  std::int64_t jwks_refresh_seconds = 300;
  std::int64_t jwks_min_refresh_seconds = 30;
  std::uint64_t jwks_max_bytes = 1024 * 1024;
  std::int64_t jwks_timeout_seconds = 10;
  // --token-refresh-notice: seconds before exp that an open socket is sent "expiring", so the
  // client refreshes in band before the 4001 close; 0 = no notice.
  std::int64_t token_refresh_notice_seconds = 60;
  std::vector<std::string> api_keys;  // --api-key: comma-separated producer keys
  // --api-key-file: files api_keys were read from (one key per line or comma-separated, so a
  // second key can be added for rotation); empty when they were given as values.
  std::vector<std::string> api_key_files;
  // --services: services clients may subscribe to; ["*"] (default) = any valid name.
  std::vector<std::string> services{"*"};
  std::string broker = "memory";  // --broker: memory | redis://host:port[/db]
  std::string redis_tls_ca;       // --redis-tls-ca: PEM CA file for rediss://; empty = system CAs
  std::string redis_tls_cert;     // --redis-tls-cert: client certificate for rediss://
  std::string redis_tls_key;      // --redis-tls-key: its private key
  std::size_t history = 1000;     // --history: events kept per channel for resume
  std::int64_t history_ttl_seconds = 86400;  // --history-ttl: 0 = no age limit
  // --presence-ttl: a dead node's presence entries and metrics snapshot expire after this
  std::int64_t presence_ttl_ms = 15000;
  // --redis-wait-replicas: replicas WAIT must confirm before a publish is acknowledged
  std::uint32_t redis_wait_replicas = 0;
  std::vector<std::string> allowed_origins;  // --allowed-origins: empty = any Origin

  unsigned workers = 0;            // --workers: I/O threads; 0 = default_workers()
  std::string log_level = "info";  // --log-level: debug|info|warn|error
  bool io_uring = true;            // --io-uring: auto (true) | off

  // Limits.
  std::size_t max_publish_bytes = 1 << 20;  // --max-publish-bytes: publish body (413 above)
  std::size_t max_batch = 1000;             // --max-batch: events in one batch publish
  // --max-message-bytes: inbound WS message (1009 above)
  std::size_t max_message_bytes = 64 * 1024;
  // --outbox-bytes: queued outbound bytes before slow-consumer close
  std::size_t outbox_bytes = 4 << 20;
  // --slow-consumer-grace: how long replies may keep a queue over --outbox-bytes before 4008
  std::int64_t slow_consumer_grace_ms = 5000;
  std::size_t max_services = 64;                 // --max-services: services per connection
  std::size_t max_connections_per_user = 10000;  // --max-connections-per-user: 0 = unlimited
  std::size_t max_connections = 0;               // --max-connections: per node; 0 = unlimited
  std::int64_t handshake_timeout_ms = 10000;     // --handshake-timeout: upgrade + first message
  // --http-idle-timeout: an HTTP request read and answered, or a keep-alive connection idle
  std::int64_t http_idle_timeout_ms = 30000;
  std::int64_t ping_interval_ms = 25000;  // --ping-interval: server pings when idle
  std::int64_t pong_timeout_ms = 20000;   // --pong-timeout: no traffic after a ping → close
  // Server-Sent Events (/v2/realtime/sse). --sse-heartbeat: a comment line after this much
  // silence, under the 30-60 s idle timeouts of common proxies (nginx's proxy_read_timeout is
  // 60 s). --sse-retry: the `retry:` a client waits before reconnecting; a little above what
  // EventSource guesses by itself (about 3 s in browsers), so a node restarting is back.
  std::int64_t sse_heartbeat_ms = 15000;
  std::int64_t sse_retry_ms = 3000;
  std::int64_t shutdown_grace_ms = 4000;  // --shutdown-grace: SIGTERM drain before exit
  // --drain-period: on SIGTERM, seconds over which WebSockets are closed a few at a time while
  // the node keeps serving HTTP and /readyz says "draining", so a balancer can move traffic
  // away and clients reconnect elsewhere at a steady rate instead of all at once; 0 = close
  // everything at once (the --shutdown-grace part only).
  std::int64_t drain_period_seconds = 10;
  std::size_t max_http_header_bytes = 8192;  // --max-http-header-bytes

  // Chat rooms (docs/protocol.md#chat-rooms).
  std::size_t chat_max_bytes = 4096;  // --chat-max-bytes: message text; longer gets an error frame
  std::size_t chat_history = 50;      // --chat-history: messages sent on join; largest page
  // --chat-messages-per-minute and --chat-burst: each user's token bucket on a node
  std::size_t chat_messages_per_minute = 60;
  std::size_t chat_burst = 10;
  std::size_t chat_max_rooms = 32;              // --chat-max-rooms: rooms per connection
  std::size_t chat_max_members = 1000;          // --chat-max-members: distinct users per room
  std::int64_t chat_typing_interval_ms = 2000;  // --chat-typing-interval: per connection and room

  // Uploads (the upload module).
  // --upload-dir: where complete uploads are stored (partial ones in <dir>/.partial). Empty
  // (default) = <system temp dir>/streamgate-uploads, so a first run works anywhere; set it to
  // durable storage in production.
  std::string upload_dir;
  std::int64_t upload_expiry_seconds = 86400;    // --upload-expiry: untouched unfinished uploads
  std::uint64_t upload_max_bytes = 10ull << 30;  // --upload-max-bytes: "up to several GiB"
  std::size_t upload_max_per_user = 16;          // --upload-max-per-user: 0 = unlimited
  // --upload-max-org-bytes: declared bytes of an org's unfinished uploads; 0 = unlimited
  std::uint64_t upload_max_org_bytes = 50ull << 30;

  // The producer control API (docs/protocol.md#producer-api).
  // --max-revocations: revocations a node holds; more are refused rather than one forgotten
  std::size_t max_revocations = 100000;
  // --revocation-ttl: how long a revocation is kept; at least the longest token lifetime
  std::int64_t revocation_ttl_seconds = 86400;
  std::size_t api_list_max =
      1000;  // --api-list-max: items in one history/channels/connections answer
  // --cluster-query-timeout: how long channels/connections wait for the other nodes' answers
  std::int64_t cluster_query_timeout_ms = 1000;
  // Org quotas (docs/configuration.md#org-quotas): defaults for every org, each overridable
  // per org through PUT /v2/realtime/orgs/{orgId}/limits. 0 = unlimited, the default, so a
  // single-tenant deployment sees no change.
  std::uint64_t org_max_connections = 0;       // --org-max-connections: WebSockets per org
  std::uint64_t org_max_channels = 0;          // --org-max-channels: distinct services per org
  std::uint64_t org_publish_rate = 0;          // --org-publish-rate: events/s per org
  std::uint64_t org_publish_burst = 0;         // --org-publish-burst: 0 = one second's rate
  std::uint64_t org_upload_bytes_per_day = 0;  // --org-upload-bytes-per-day: UTC day
  std::uint64_t org_egress_bytes = 0;          // --org-egress-bytes: bytes/s per org, per node
  std::uint64_t org_chat_rate = 0;             // --org-chat-rate: chat messages/s per org
  std::uint64_t org_chat_burst = 0;            // --org-chat-burst: 0 = one second's rate
  // --org-max-overrides: orgs with an override at once; bounds the node's per-org state.
  std::size_t org_max_overrides = 10000;
  // Usage metering (docs/configuration.md#usage-metering).
  // --usage-flush: seconds between flushes of the counters to the store; a node killed loses
  // at most this much.
  std::int64_t usage_flush_seconds = 10;
  // --usage-retention: seconds an (org, hour) is kept after its last write: 35 days covers a
  // monthly bill and its corrections.
  std::int64_t usage_retention_seconds = 35 * 86400;
  // --usage-max-org-hours: (org, hour) entries a memory-broker node keeps; oldest go first.
  std::size_t usage_max_org_hours = 100000;
  std::string usage_export;  // --usage-export: file closed hours are appended to; empty = none

  // --dev: parse() fills an empty jwt_secret and empty api_keys with random values (64 hex
  // characters each); main prints a sample token.
  bool dev = false;

  bool operator==(const Settings&) const = default;
};

struct ParseOutcome {
  enum class Kind { kRun, kExit };
  Kind kind = Kind::kRun;
  // for kExit: 0 after --help/--version/--print-config, 2 after a usage error
  int exit_code = 0;
  std::string message;  // what to print (help text, TOML, or the error) for kExit
  Settings settings;    // for kRun: validated
};

// Reads argv, the environment (getenv) and the --config file, validates, and reads
// --jwt-public-key, --jwt-secret-file and --api-key-file from disk. Never exits, prints or
// throws; main does that with the outcome. Errors are one line starting "streamgate: " and
// name the flag, the environment variable, or the file, line and key the value came from;
// secrets are never echoed. --print-config ends in kExit with the effective settings as TOML,
// secrets redacted.
ParseOutcome parse(int argc, const char* const* argv);

// The --help text (for the docs test and for main).
std::string help_text();

// --workers 0: one worker per CPU this process may run on, which under taskset or a container
// is not the machine's core count. Reads sched_getaffinity and the cgroup v2 cpu.max of this
// process's cgroup and its ancestors; `reason` says which bound decided, for the start-up log.
struct WorkerDefault {
  unsigned count = 1;
  std::string reason;
};
WorkerDefault default_workers();

// The pure parts of default_workers(), for tests.
// cpu.max ("$MAX $PERIOD", or "max $PERIOD" for no limit) → CPUs of quota; nullopt for no limit
// or text that is not a cpu.max.
std::optional<double> parse_cpu_max(std::string_view text);
// /proc/self/cgroup → this process's cgroup v2 path ("0::/a/b" → "/a/b"); nullopt without one.
std::optional<std::string> cgroup_v2_path(std::string_view proc_self_cgroup);
// Workers for `cpus` usable CPUs (0 = unknown) under a quota of `quota` CPUs: whole CPUs of
// quota (a worker per fraction would be throttled for part of every period), at least 1.
unsigned workers_for(unsigned cpus, std::optional<double> quota);

// What --version prints: the release, and the git commit the binary was built from (empty when
// it was not built from a checkout).
std::string_view version();
std::string_view commit();

}  // namespace sg::config
