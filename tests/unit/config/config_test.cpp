#include "config/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace sg::config {
namespace {

using Kind = ParseOutcome::Kind;

constexpr const char* kSecret = "0123456789abcdef0123456789abcdef";  // exactly 32 bytes
constexpr const char* kPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEexampleexampleexampleexampleexample\n"
    "-----END PUBLIC KEY-----\n";

ParseOutcome run_args(const std::vector<std::string>& args) {
  std::vector<const char*> argv{"streamgate"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  return parse(static_cast<int>(argv.size()), argv.data());
}

ParseOutcome run(std::initializer_list<std::string> args) {
  return run_args(args);
}

// The minimum a server needs, plus whatever the test adds.
ParseOutcome run_valid(std::initializer_list<std::string> extra) {
  std::vector<std::string> args{"--jwt-secret", kSecret, "--api-key", "k1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_args(args);
}

// Sets an environment variable for one test and removes it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

std::string source_dir() {
  std::string dir = STREAMGATE_SOURCE_DIR;
  if (!dir.empty()) return dir;
  std::string file = __FILE__;
  const std::string tail = "tests/unit/config/config_test.cpp";
  if (file.size() >= tail.size() && file.ends_with(tail)) {
    return file.substr(0, file.size() - tail.size());
  }
  return ".";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every "--flag" in the text. (Not std::regex: GCC 12 warns inside it under ASan.)
std::set<std::string> flags_in(const std::string& text) {
  auto flag_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  };
  std::set<std::string> out;
  std::size_t at = 0;
  while ((at = text.find("--", at)) != std::string::npos) {
    const bool starts_word = at == 0 || text[at - 1] != '-';
    std::size_t end = at + 2;
    if (starts_word && end < text.size() && text[end] >= 'a' && text[end] <= 'z') {
      while (end < text.size() && flag_char(text[end])) ++end;
      while (text[end - 1] == '-') --end;
      out.insert(text.substr(at, end - at));
    }
    at = end;
  }
  return out;
}

void expect_error(const ParseOutcome& o, const std::string& message) {
  EXPECT_EQ(o.kind, Kind::kExit);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.message, message);
}

TEST(Config, DefaultsMatchTheSettingsStruct) {
  const ParseOutcome o = run_valid({});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  const Settings& s = o.settings;
  EXPECT_EQ(s.listen, "127.0.0.1:4000");
  EXPECT_EQ(s.listen_host, "127.0.0.1");
  EXPECT_EQ(s.listen_port, 4000);
  EXPECT_EQ(s.jwt_secret, kSecret);
  EXPECT_EQ(s.jwt_public_key, "");
  EXPECT_EQ(s.jwt_leeway_seconds, 30);
  EXPECT_EQ(s.api_keys, std::vector<std::string>{"k1"});
  EXPECT_EQ(s.services, std::vector<std::string>{"*"});
  EXPECT_EQ(s.broker, "memory");
  EXPECT_EQ(s.history, 1000u);
  EXPECT_EQ(s.history_ttl_seconds, 86400);
  EXPECT_TRUE(s.allowed_origins.empty());
  EXPECT_EQ(s.workers, 0u);
  EXPECT_EQ(s.log_level, "info");
  EXPECT_TRUE(s.io_uring);
  EXPECT_EQ(s.max_publish_bytes, 1u << 20);
  EXPECT_EQ(s.max_batch, 1000u);
  EXPECT_EQ(s.max_message_bytes, 64u * 1024);
  EXPECT_EQ(s.outbox_bytes, 4u << 20);
  EXPECT_EQ(s.slow_consumer_grace_ms, 5000);
  EXPECT_EQ(s.max_services, 64u);
  EXPECT_EQ(s.max_connections_per_user, 10000u);
  EXPECT_EQ(s.max_connections, 0u);
  EXPECT_EQ(s.handshake_timeout_ms, 10000);
  EXPECT_EQ(s.ping_interval_ms, 25000);
  EXPECT_EQ(s.pong_timeout_ms, 20000);
  EXPECT_EQ(s.shutdown_grace_ms, 4000);
  EXPECT_EQ(s.max_http_header_bytes, 8192u);
  EXPECT_FALSE(s.dev);
}

TEST(Config, EveryFlagSetsItsField) {
  const ParseOutcome o = run_valid({"--listen",
                                    "0.0.0.0:8080",
                                    "--jwt-leeway",
                                    "5",
                                    "--services",
                                    "finance,chat",
                                    "--broker",
                                    "redis://localhost:6379/2",
                                    "--history",
                                    "50",
                                    "--history-ttl",
                                    "0",
                                    "--allowed-origins",
                                    "https://app.example.com",
                                    "--workers",
                                    "3",
                                    "--log-level",
                                    "debug",
                                    "--max-publish-bytes",
                                    "2048",
                                    "--max-batch",
                                    "7",
                                    "--max-message-bytes",
                                    "4096",
                                    "--outbox-bytes",
                                    "8192",
                                    "--max-services",
                                    "9",
                                    "--max-connections-per-user",
                                    "0",
                                    "--max-connections",
                                    "100",
                                    "--handshake-timeout",
                                    "1500",
                                    "--ping-interval",
                                    "2500",
                                    "--pong-timeout",
                                    "3500",
                                    "--shutdown-grace",
                                    "0",
                                    "--max-http-header-bytes",
                                    "16384",
                                    "--jwt-public-key",
                                    kPem,
                                    "--dev"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  const Settings& s = o.settings;
  EXPECT_EQ(s.listen, "0.0.0.0:8080");
  EXPECT_EQ(s.listen_host, "0.0.0.0");
  EXPECT_EQ(s.listen_port, 8080);
  EXPECT_EQ(s.jwt_leeway_seconds, 5);
  EXPECT_EQ(s.services, (std::vector<std::string>{"finance", "chat"}));
  EXPECT_EQ(s.broker, "redis://localhost:6379/2");
  EXPECT_EQ(s.history, 50u);
  EXPECT_EQ(s.history_ttl_seconds, 0);
  EXPECT_EQ(s.allowed_origins, std::vector<std::string>{"https://app.example.com"});
  EXPECT_EQ(s.workers, 3u);
  EXPECT_EQ(s.log_level, "debug");
  EXPECT_EQ(s.max_publish_bytes, 2048u);
  EXPECT_EQ(s.max_batch, 7u);
  EXPECT_EQ(s.max_message_bytes, 4096u);
  EXPECT_EQ(s.outbox_bytes, 8192u);
  EXPECT_EQ(s.max_services, 9u);
  EXPECT_EQ(s.max_connections_per_user, 0u);
  EXPECT_EQ(s.max_connections, 100u);
  EXPECT_EQ(s.handshake_timeout_ms, 1500);
  EXPECT_EQ(s.ping_interval_ms, 2500);
  EXPECT_EQ(s.pong_timeout_ms, 3500);
  EXPECT_EQ(s.shutdown_grace_ms, 0);
  EXPECT_EQ(s.max_http_header_bytes, 16384u);
  EXPECT_EQ(s.jwt_public_key, kPem);
  EXPECT_TRUE(s.dev);
  // Given keys are kept as they are even in dev mode.
  EXPECT_EQ(s.jwt_secret, kSecret);
  EXPECT_EQ(s.api_keys, std::vector<std::string>{"k1"});
}

TEST(Config, AcceptsFlagEqualsValueForm) {
  const ParseOutcome o = run_valid({"--history=12", "--listen=localhost:0"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.history, 12u);
  EXPECT_EQ(o.settings.listen_host, "localhost");
  EXPECT_EQ(o.settings.listen_port, 0);
}

TEST(Config, ReadsEveryKindOfValueFromTheEnvironment) {
  ScopedEnv secret("STREAMGATE_JWT_SECRET", kSecret);
  ScopedEnv key("STREAMGATE_API_KEY", "a, b ,,c");
  ScopedEnv listen("STREAMGATE_LISTEN", "[::1]:4100");
  ScopedEnv bytes("STREAMGATE_MAX_PUBLISH_BYTES", "4096");
  ScopedEnv ping("STREAMGATE_PING_INTERVAL", "1000");
  ScopedEnv origins("STREAMGATE_ALLOWED_ORIGINS", "https://a.example,https://*.b.example:8443");
  ScopedEnv level("STREAMGATE_LOG_LEVEL", "warn");
  const ParseOutcome o = run({});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  const Settings& s = o.settings;
  EXPECT_EQ(s.jwt_secret, kSecret);
  EXPECT_EQ(s.api_keys, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(s.listen, "[::1]:4100");
  EXPECT_EQ(s.listen_host, "::1");
  EXPECT_EQ(s.listen_port, 4100);
  EXPECT_EQ(s.max_publish_bytes, 4096u);
  EXPECT_EQ(s.ping_interval_ms, 1000);
  EXPECT_EQ(s.allowed_origins,
            (std::vector<std::string>{"https://a.example", "https://*.b.example:8443"}));
  EXPECT_EQ(s.log_level, "warn");
}

TEST(Config, DevFlagFromTheEnvironment) {
  ScopedEnv dev("STREAMGATE_DEV", "1");
  const ParseOutcome o = run({});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_TRUE(o.settings.dev);
}

TEST(Config, EmptyEnvironmentVariableCountsAsUnset) {
  ScopedEnv history("STREAMGATE_HISTORY", "");
  const ParseOutcome o = run_valid({});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.history, 1000u);
}

TEST(Config, FlagBeatsEnvironment) {
  ScopedEnv history("STREAMGATE_HISTORY", "5");
  ScopedEnv services("STREAMGATE_SERVICES", "from-env");
  ScopedEnv key("STREAMGATE_API_KEY", "env-key");
  const ParseOutcome o = run_valid({"--history", "6", "--services", "from-flag"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.history, 6u);
  EXPECT_EQ(o.settings.services, std::vector<std::string>{"from-flag"});
  EXPECT_EQ(o.settings.api_keys, std::vector<std::string>{"k1"});
}

TEST(Config, ListsSplitOnCommasAndAccumulateOverRepeats) {
  const ParseOutcome o =
      run_valid({"--api-key", " k2 , k3,", "--services", "a.b:c-d_e", "--services", "x,,y "});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.api_keys, (std::vector<std::string>{"k1", "k2", "k3"}));
  EXPECT_EQ(o.settings.services, (std::vector<std::string>{"a.b:c-d_e", "x", "y"}));
}

TEST(Config, HelpExitsZeroAndListsEveryFlagWithDefaultAndEnv) {
  const ParseOutcome o = run({"--help"});
  EXPECT_EQ(o.kind, Kind::kExit);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.message, help_text());
  const std::string help = help_text();
  EXPECT_NE(help.find("default: 127.0.0.1:4000  env: STREAMGATE_LISTEN"), std::string::npos);
  EXPECT_NE(help.find("default: 1048576  env: STREAMGATE_MAX_PUBLISH_BYTES"), std::string::npos);
  EXPECT_NE(help.find("default: 10000  env: STREAMGATE_HANDSHAKE_TIMEOUT"), std::string::npos);
  EXPECT_NE(help.find("env: STREAMGATE_JWT_SECRET"), std::string::npos);
  // Every flag but --help, --version and --print-config names its environment variable.
  for (const std::string& flag : flags_in(help)) {
    if (flag == "--help" || flag == "--version" || flag == "--print-config") continue;
    std::string env = "STREAMGATE_";
    for (char c : flag.substr(2))
      env.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
    EXPECT_NE(help.find("env: " + env + "\n"), std::string::npos) << flag;
  }
  // 79 settings (listen_host and listen_port derive from --listen; jwks holds --jwks-file's
  // content) + --config + --help + --version + --print-config.
  EXPECT_EQ(flags_in(help).size(), 84u);
  // The shutdown's two durations sit together, under Timeouts, as in docs/configuration.md.
  const std::size_t timeouts = help.find("\nTimeouts:\n");
  const std::size_t next_group = help.find(":\n", timeouts + 11);
  ASSERT_NE(timeouts, std::string::npos);
  for (const char* flag : {"--shutdown-grace ", "--drain-period "}) {
    const std::size_t at = help.find(flag);
    EXPECT_TRUE(at > timeouts && at < next_group) << flag;
  }
}

TEST(Config, AdminListenIsOffByDefaultAndTakesHostPortFromFlagOrEnv) {
  const ParseOutcome off = run_valid({});
  ASSERT_EQ(off.kind, Kind::kRun) << off.message;
  EXPECT_EQ(off.settings.admin_listen, "");
  const ParseOutcome on = run_valid({"--admin-listen", "127.0.0.1:9090"});
  ASSERT_EQ(on.kind, Kind::kRun) << on.message;
  EXPECT_EQ(on.settings.admin_listen, "127.0.0.1:9090");
  EXPECT_EQ(on.settings.admin_listen_host, "127.0.0.1");
  EXPECT_EQ(on.settings.admin_listen_port, 9090);
  {
    const ScopedEnv env("STREAMGATE_ADMIN_LISTEN", "[::1]:0");
    const ParseOutcome e = run_valid({});
    ASSERT_EQ(e.kind, Kind::kRun) << e.message;
    EXPECT_EQ(e.settings.admin_listen_host, "::1");
    EXPECT_EQ(e.settings.admin_listen_port, 0);
  }
  const ParseOutcome bad = run_valid({"--admin-listen", "9090"});
  EXPECT_EQ(bad.kind, Kind::kExit);
  EXPECT_NE(bad.message.find("--admin-listen must be host:port"), std::string::npos) << bad.message;
  const ParseOutcome same =
      run_valid({"--listen", "127.0.0.1:4000", "--admin-listen", "127.0.0.1:4000"});
  EXPECT_EQ(same.kind, Kind::kExit);
  EXPECT_NE(same.message.find("--admin-listen must differ from --listen"), std::string::npos)
      << same.message;
}

TEST(Config, ChatLimitsHaveDefaultsFlagsAndEnv) {
  const ParseOutcome d = run({"--dev"});
  ASSERT_EQ(d.kind, Kind::kRun) << d.message;
  EXPECT_EQ(d.settings.chat_max_bytes, 4096u);
  EXPECT_EQ(d.settings.chat_history, 50u);
  EXPECT_EQ(d.settings.chat_messages_per_minute, 60u);
  EXPECT_EQ(d.settings.chat_burst, 10u);
  EXPECT_EQ(d.settings.chat_max_rooms, 32u);
  EXPECT_EQ(d.settings.chat_max_members, 1000u);
  EXPECT_EQ(d.settings.chat_typing_interval_ms, 2000);
  const ParseOutcome o =
      run({"--dev", "--chat-max-bytes", "10", "--chat-history", "0", "--chat-burst", "2",
           "--chat-messages-per-minute", "1", "--chat-max-rooms", "3", "--chat-max-members", "4",
           "--chat-typing-interval", "0"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.chat_max_bytes, 10u);
  EXPECT_EQ(o.settings.chat_history, 0u);
  EXPECT_EQ(o.settings.chat_burst, 2u);
  EXPECT_EQ(o.settings.chat_messages_per_minute, 1u);
  EXPECT_EQ(o.settings.chat_max_rooms, 3u);
  EXPECT_EQ(o.settings.chat_max_members, 4u);
  EXPECT_EQ(o.settings.chat_typing_interval_ms, 0);
  const ParseOutcome zero = run({"--dev", "--chat-max-rooms", "0"});
  EXPECT_EQ(zero.kind, Kind::kExit);
  EXPECT_EQ(zero.exit_code, 2);
  EXPECT_NE(zero.message.find("--chat-max-rooms"), std::string::npos) << zero.message;
  const ScopedEnv env("STREAMGATE_CHAT_MAX_MEMBERS", "7");
  EXPECT_EQ(run({"--dev"}).settings.chat_max_members, 7u);
}

TEST(Config, OrgQuotaFlagsDefaultToUnlimited) {
  const ParseOutcome d = run({"--dev"});
  ASSERT_EQ(d.kind, Kind::kRun) << d.message;
  EXPECT_EQ(d.settings.org_max_connections, 0u);
  EXPECT_EQ(d.settings.org_max_channels, 0u);
  EXPECT_EQ(d.settings.org_publish_rate, 0u);
  EXPECT_EQ(d.settings.org_publish_burst, 0u);
  EXPECT_EQ(d.settings.org_upload_bytes_per_day, 0u);
  EXPECT_EQ(d.settings.org_max_overrides, 10000u);
  const ScopedEnv env("STREAMGATE_ORG_PUBLISH_RATE", "100");
  const ParseOutcome o = run({"--dev", "--org-max-connections", "3", "--org-publish-burst", "20",
                              "--org-upload-bytes-per-day", "9007199254740991"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.org_max_connections, 3u);
  EXPECT_EQ(o.settings.org_publish_rate, 100u);
  EXPECT_EQ(o.settings.org_publish_burst, 20u);
  EXPECT_EQ(o.settings.org_upload_bytes_per_day, 9007199254740991u);
  EXPECT_EQ(run({"--dev", "--org-max-overrides", "0"}).kind, Kind::kExit);
  EXPECT_EQ(run({"--dev", "--org-max-channels", "9007199254740992"}).kind, Kind::kExit);
}

TEST(Config, UploadFlagsHaveDefaultsAndAreValidated) {
  const ParseOutcome d = run({"--dev"});
  ASSERT_EQ(d.kind, Kind::kRun) << d.message;
  EXPECT_EQ(d.settings.upload_dir, "");
  EXPECT_EQ(d.settings.upload_expiry_seconds, 86400);
  EXPECT_EQ(d.settings.upload_max_bytes, 10ull << 30);
  EXPECT_EQ(d.settings.upload_max_per_user, 16u);
  EXPECT_EQ(d.settings.upload_max_org_bytes, 50ull << 30);
  const ParseOutcome o =
      run({"--dev", "--upload-dir", "/srv/docs", "--upload-expiry", "60", "--upload-max-bytes",
           "20000000000", "--upload-max-per-user", "0", "--upload-max-org-bytes", "0"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.upload_dir, "/srv/docs");
  EXPECT_EQ(o.settings.upload_expiry_seconds, 60);
  EXPECT_EQ(o.settings.upload_max_bytes, 20000000000ull);
  EXPECT_EQ(o.settings.upload_max_per_user, 0u);
  EXPECT_EQ(o.settings.upload_max_org_bytes, 0u);
  const ParseOutcome zero = run({"--dev", "--upload-expiry", "0"});
  EXPECT_EQ(zero.kind, Kind::kExit);
  EXPECT_NE(zero.message.find("--upload-expiry must be at least 1"), std::string::npos)
      << zero.message;
  const ParseOutcome bad = run({"--dev", "--upload-max-bytes", "1GiB"});
  EXPECT_EQ(bad.kind, Kind::kExit);
  EXPECT_NE(bad.message.find("--upload-max-bytes must be a whole number of bytes"),
            std::string::npos)
      << bad.message;
}

TEST(Config, VersionExitsZero) {
  const ParseOutcome o = run({"--version"});
  EXPECT_EQ(o.kind, Kind::kExit);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.message.rfind("streamgate ", 0), 0u) << o.message;
}

TEST(Config, DocsListExactlyTheFlagsOfHelp) {
  const std::string path = source_dir() + "/docs/configuration.md";
  const std::string doc = read_file(path);
  ASSERT_FALSE(doc.empty()) << "cannot read " << path;
  const std::set<std::string> in_help = flags_in(help_text());
  const std::set<std::string> in_doc = flags_in(doc);
  for (const std::string& flag : in_help) {
    EXPECT_TRUE(in_doc.count(flag)) << flag << " is in --help but not in docs/configuration.md";
    // and has a table row of its own
    EXPECT_NE(doc.find("`" + flag + "` |"), std::string::npos) << flag << " has no table row";
  }
  for (const std::string& flag : in_doc) {
    EXPECT_TRUE(in_help.count(flag)) << flag << " is in docs/configuration.md but not in --help";
  }
}

TEST(Config, DevGeneratesSecretAndApiKey) {
  const ParseOutcome o = run({"--dev"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_TRUE(o.settings.dev);
  EXPECT_EQ(o.settings.jwt_secret.size(), 64u);
  EXPECT_EQ(o.settings.jwt_secret.find_first_not_of("0123456789abcdef"), std::string::npos);
  ASSERT_EQ(o.settings.api_keys.size(), 1u);
  EXPECT_EQ(o.settings.api_keys[0].size(), 64u);
  EXPECT_NE(o.settings.api_keys[0], o.settings.jwt_secret);
  const ParseOutcome again = run({"--dev"});
  EXPECT_NE(again.settings.jwt_secret, o.settings.jwt_secret);
}

TEST(Config, DevWaitsFiveMinutesForAHandshakeUnlessSet) {
  const ParseOutcome o = run({"--dev"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.handshake_timeout_ms, 300000);
  const ParseOutcome set = run({"--dev", "--handshake-timeout", "2000"});
  ASSERT_EQ(set.kind, Kind::kRun) << set.message;
  EXPECT_EQ(set.settings.handshake_timeout_ms, 2000);
}

TEST(Config, DevWithPublicKeyStillGetsASecretForSampleTokens) {
  const ParseOutcome o = run({"--dev", "--jwt-public-key", kPem});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.jwt_public_key, kPem);
  EXPECT_EQ(o.settings.jwt_secret.size(), 64u);
}

TEST(Config, PublicKeyOnlyIsEnough) {
  const ParseOutcome o = run({"--jwt-public-key", kPem, "--api-key", "k"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.jwt_secret, "");
  EXPECT_EQ(o.settings.jwt_public_key, kPem);
}

TEST(Config, ReadsPublicKeyFromAPath) {
  char path[] = "/tmp/sg_config_test_XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, kPem, std::char_traits<char>::length(kPem)),
            static_cast<ssize_t>(std::char_traits<char>::length(kPem)));
  ::close(fd);
  const ParseOutcome o = run({"--jwt-public-key", path, "--api-key", "k"});
  ::unlink(path);
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.jwt_public_key, kPem);
}

TEST(Config, RefusesAPublicKeyFileWithoutPem) {
  char path[] = "/tmp/sg_config_test_XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "hello\n", 6), 6);
  ::close(fd);
  const ParseOutcome o = run({"--jwt-public-key", path, "--api-key", "k"});
  ::unlink(path);
  expect_error(o, std::string("streamgate: --jwt-public-key file \"") + path +
                      "\" holds no PEM block (-----BEGIN PUBLIC KEY-----)");
}

TEST(Config, RefusesAMissingPublicKeyFile) {
  expect_error(run({"--jwt-public-key", "/nonexistent/key.pem", "--api-key", "k"}),
               "streamgate: cannot read --jwt-public-key file \"/nonexistent/key.pem\": No such "
               "file or directory");
}

TEST(Config, RefusesToStartWithoutATokenKey) {
  expect_error(run({"--api-key", "k"}),
               "streamgate: no token key configured: set --jwt-secret (HS256), "
               "--jwt-public-key or --jwks-file (RS256/ES256), or use --dev to try it out");
}

TEST(Config, RefusesToStartWithoutAnApiKey) {
  expect_error(run({"--jwt-secret", kSecret}),
               "streamgate: no API key configured: set --api-key (producers need one to "
               "publish), or use --dev to try it out");
  expect_error(run({"--jwt-secret", kSecret, "--api-key", " , "}),
               "streamgate: no API key configured: set --api-key (producers need one to "
               "publish), or use --dev to try it out");
}

TEST(Config, RefusesAShortSecretAndSaysWhy) {
  expect_error(run({"--jwt-secret", "0123456789abcdef0123456789abcde", "--api-key", "k"}),
               "streamgate: --jwt-secret is 31 bytes; HS256 secrets must be at least 32 bytes, "
               "or they can be guessed offline from any token");
  // Even in dev mode: a given secret is used, so it must be good.
  expect_error(run({"--jwt-secret", "short", "--dev"}),
               "streamgate: --jwt-secret is 5 bytes; HS256 secrets must be at least 32 bytes, "
               "or they can be guessed offline from any token");
}

TEST(Config, NamesTheEnvironmentVariableWhenTheValueCameFromThere) {
  ScopedEnv secret("STREAMGATE_JWT_SECRET", "short");
  expect_error(run({"--api-key", "k"}),
               "streamgate: STREAMGATE_JWT_SECRET is 5 bytes; HS256 secrets must be at least 32 "
               "bytes, or they can be guessed offline from any token");
}

TEST(Config, RefusesBadListenAddresses) {
  expect_error(run_valid({"--listen", "4000"}),
               "streamgate: --listen must be host:port (for example 127.0.0.1:4000), got \"4000\"");
  expect_error(run_valid({"--listen", "localhost:65536"}),
               "streamgate: --listen must be host:port: port \"65536\" is not a number from 0 to "
               "65535");
  expect_error(run_valid({"--listen", "localhost:"}),
               "streamgate: --listen must be host:port: port \"\" is not a number from 0 to 65535");
  expect_error(run_valid({"--listen", "localhost:-1"}),
               "streamgate: --listen must be host:port: port \"-1\" is not a number from 0 to "
               "65535");
  expect_error(run_valid({"--listen", ":4000"}),
               "streamgate: --listen must be host:port: \"\" is not a host name or address");
  expect_error(run_valid({"--listen", "::1:4000"}),
               "streamgate: --listen must be host:port, with an IPv6 address in brackets as in "
               "[::1]:4000");
  expect_error(run_valid({"--listen", "[::1]4000"}),
               "streamgate: --listen must be host:port, with an IPv6 address in brackets as in "
               "[::1]:4000");
  expect_error(run_valid({"--listen", "[zz]:4000"}),
               "streamgate: --listen must be host:port: \"zz\" is not an IPv6 address");
}

TEST(Config, AcceptsPortBounds) {
  EXPECT_EQ(run_valid({"--listen", "127.0.0.1:0"}).settings.listen_port, 0);
  EXPECT_EQ(run_valid({"--listen", "127.0.0.1:65535"}).settings.listen_port, 65535);
}

TEST(Config, RefusesUnknownBrokers) {
  const std::string expected_tail =
      " must be memory, redis://host:port, rediss://host:port, "
      "redis-cluster://host:port[,host:port...] or "
      "redis-sentinel://host:port[,host:port...]/MASTER, got \"";
  expect_error(run_valid({"--broker", "kafka://x"}),
               "streamgate: --broker" + expected_tail + "kafka://x\"");
  expect_error(run_valid({"--broker", "redis://"}),
               "streamgate: --broker" + expected_tail + "redis://\"");
  EXPECT_EQ(run_valid({"--broker", "rediss://cache:6380"}).settings.broker, "rediss://cache:6380");
  EXPECT_EQ(run_valid({"--broker", "redis-cluster://a:7000,b:7001"}).settings.broker,
            "redis-cluster://a:7000,b:7001");
  EXPECT_EQ(run_valid({"--broker", "rediss-cluster://a:7000", "--redis-tls-ca", "/ca.pem"})
                .settings.redis_tls_ca,
            "/ca.pem");
  EXPECT_EQ(run_valid({"--broker", "redis-sentinel://a:26379,b/mymaster"}).settings.broker,
            "redis-sentinel://a:26379,b/mymaster");
  EXPECT_EQ(run_valid({"--broker", "rediss-sentinel://a/m", "--redis-tls-ca", "/ca.pem"})
                .settings.redis_tls_ca,
            "/ca.pem");
}

TEST(Config, RedisWaitReplicasNeedsARedisBrokerAndAtMost16) {
  expect_error(run_valid({"--redis-wait-replicas", "1"}),
               "streamgate: --redis-wait-replicas needs a Redis --broker");
  EXPECT_EQ(run_valid({"--broker", "redis://r:6379", "--redis-wait-replicas", "2"})
                .settings.redis_wait_replicas,
            2u);
  EXPECT_EQ(run_valid({"--broker", "redis://r:6379", "--redis-wait-replicas", "17"}).exit_code, 2);
}

TEST(Config, RedisTlsFlagsNeedARedissBrokerAndComeAsCertKeyPairs) {
  expect_error(run_valid({"--redis-tls-ca", "/ca.pem"}),
               "streamgate: --redis-tls-ca is for TLS to Redis; use it with a rediss:// --broker");
  expect_error(run_valid({"--broker", "rediss://cache:6380", "--redis-tls-cert", "/c.pem"}),
               "streamgate: --redis-tls-cert needs its pair: give both --redis-tls-cert and "
               "--redis-tls-key");
  const ParseOutcome o = run_valid({"--broker", "rediss://cache:6380", "--redis-tls-ca", "/ca.pem",
                                    "--redis-tls-cert", "/c.pem", "--redis-tls-key", "/k.pem"});
  ASSERT_EQ(o.kind, Kind::kRun);
  EXPECT_EQ(o.settings.redis_tls_ca, "/ca.pem");
  EXPECT_EQ(o.settings.redis_tls_cert, "/c.pem");
  EXPECT_EQ(o.settings.redis_tls_key, "/k.pem");
}

TEST(Config, RefusesNonNumbers) {
  expect_error(run_valid({"--history", "ten"}),
               "streamgate: --history must be a whole number, got \"ten\"");
  expect_error(run_valid({"--handshake-timeout", "10s"}),
               "streamgate: --handshake-timeout must be a whole number of milliseconds, got "
               "\"10s\"");
  expect_error(run_valid({"--jwt-leeway", "-1"}),
               "streamgate: --jwt-leeway must be a whole number of seconds, got \"-1\"");
  expect_error(run_valid({"--outbox-bytes", "99999999999999999999999"}),
               "streamgate: --outbox-bytes must be a whole number of bytes, got "
               "\"99999999999999999999999\"");
}

TEST(Config, RefusesLimitsBelowTheirMinimum) {
  expect_error(run_valid({"--history", "0"}),
               "streamgate: --history must be at least 1, got 0: a resuming client needs at "
               "least one kept event");
  expect_error(run_valid({"--max-message-bytes", "127"}),
               "streamgate: --max-message-bytes must be at least 128, got 127: a subscribe "
               "message with a resume position needs that much");
  expect_error(run_valid({"--outbox-bytes", "4095"}),
               "streamgate: --outbox-bytes must be at least 4096, got 4095: smaller would cut off "
               "healthy clients on a single event");
  expect_error(run_valid({"--max-publish-bytes", "255"}),
               "streamgate: --max-publish-bytes must be at least 256, got 255: a publish body "
               "smaller than that cannot hold a useful event");
  expect_error(run_valid({"--handshake-timeout", "99"}),
               "streamgate: --handshake-timeout must be at least 100, got 99: shorter fails on "
               "any real network");
  expect_error(run_valid({"--ping-interval", "0"}),
               "streamgate: --ping-interval must be at least 100, got 0: shorter floods idle "
               "connections with pings");
  expect_error(run_valid({"--pong-timeout", "50"}),
               "streamgate: --pong-timeout must be at least 100, got 50: shorter fails on any "
               "real network");
  expect_error(run_valid({"--max-batch", "0"}),
               "streamgate: --max-batch must be at least 1, got 0: a batch holds at least one "
               "event");
  expect_error(run_valid({"--max-services", "0"}),
               "streamgate: --max-services must be at least 1, got 0: a connection subscribes to "
               "at least one service");
  expect_error(run_valid({"--max-http-header-bytes", "1023"}),
               "streamgate: --max-http-header-bytes must be at least 1024, got 1023: browsers "
               "send more than that in ordinary requests");
}

TEST(Config, RefusesLimitsAboveTheirMaximum) {
  expect_error(run_valid({"--workers", "257"}),
               "streamgate: --workers must be at most 256, got 257");
  expect_error(run_valid({"--shutdown-grace", "86400001"}),
               "streamgate: --shutdown-grace must be at most 86400000, got 86400001");
  expect_error(run_valid({"--jwt-leeway", "3601"}),
               "streamgate: --jwt-leeway must be at most 3600, got 3601");
  EXPECT_EQ(run_valid({"--workers", "256"}).settings.workers, 256u);
}

TEST(Config, RefusesUnknownLogLevels) {
  expect_error(run_valid({"--log-level", "verbose"}),
               "streamgate: --log-level must be debug, info, warn or error, got \"verbose\"");
}

TEST(Config, IoUringIsAutoOrOff) {
  EXPECT_TRUE(run_valid({"--io-uring", "auto"}).settings.io_uring);
  EXPECT_FALSE(run_valid({"--io-uring", "off"}).settings.io_uring);
  expect_error(run_valid({"--io-uring", "on"}),
               "streamgate: --io-uring must be auto or off, got \"on\"");
}

TEST(Config, RefusesInvalidServiceNames) {
  expect_error(run_valid({"--services", "ok,bad name"}),
               "streamgate: --services: \"bad name\" is not a service name (1 to 64 of A-Z a-z "
               "0-9 _ . : -)");
  expect_error(run_valid({"--services", std::string(65, 'a')}),
               "streamgate: --services: \"" + std::string(65, 'a') +
                   "\" is not a service name (1 to 64 of A-Z a-z 0-9 _ . : -)");
  expect_error(run_valid({"--services", ","}),
               "streamgate: --services is empty; list service names, or * for any service");
  EXPECT_EQ(run_valid({"--services", std::string(64, 'a')}).settings.services[0].size(), 64u);
}

TEST(Config, RefusesOriginsThatNoBrowserSends) {
  expect_error(run_valid({"--allowed-origins", "app.example.com"}),
               "streamgate: --allowed-origins: \"app.example.com\" is not an origin; write it as "
               "a browser sends it, e.g. https://app.example.com");
  expect_error(run_valid({"--allowed-origins", "https://app.example.com/"}),
               "streamgate: --allowed-origins: \"https://app.example.com/\" is not an origin "
               "(scheme://host[:port], no path or trailing slash)");
}

TEST(Config, RefusesUnknownFlagsWithExitTwo) {
  const ParseOutcome o = run_valid({"--no-such-flag"});
  EXPECT_EQ(o.kind, Kind::kExit);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.message.rfind("streamgate: ", 0), 0u) << o.message;
  EXPECT_NE(o.message.find("--no-such-flag"), std::string::npos) << o.message;
  EXPECT_EQ(o.message.find('\n'), std::string::npos) << o.message;
}

TEST(Config, RefusesAFlagWithoutItsValue) {
  const ParseOutcome o = run_valid({"--history"});
  EXPECT_EQ(o.kind, Kind::kExit);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.message.rfind("streamgate: --history", 0), 0u) << o.message;
}

TEST(Config, ErrorMessagesNeverEchoTheSecret) {
  const ParseOutcome o = run({"--jwt-secret", "hunter2-secret", "--api-key", "k"});
  EXPECT_EQ(o.kind, Kind::kExit);
  EXPECT_EQ(o.message.find("hunter2"), std::string::npos) << o.message;
}

TEST(CpuMax, ReadsAQuotaAsCpus) {
  EXPECT_DOUBLE_EQ(*parse_cpu_max("100000 100000\n"), 1.0);
  EXPECT_DOUBLE_EQ(*parse_cpu_max("150000 100000"), 1.5);
  EXPECT_DOUBLE_EQ(*parse_cpu_max("50000 100000\n"), 0.5);
}

TEST(CpuMax, NoLimitOrGarbageIsNoQuota) {
  EXPECT_FALSE(parse_cpu_max("max 100000\n"));
  EXPECT_FALSE(parse_cpu_max(""));
  EXPECT_FALSE(parse_cpu_max("100000"));
  EXPECT_FALSE(parse_cpu_max("abc 100000"));
  EXPECT_FALSE(parse_cpu_max("100000 0"));
  EXPECT_FALSE(parse_cpu_max("0 100000"));
  EXPECT_FALSE(parse_cpu_max("-5 100000"));
  EXPECT_FALSE(parse_cpu_max("100000 100000 7"));
}

TEST(CpuMax, FindsTheCgroupV2PathAmongV1Lines) {
  EXPECT_EQ(*cgroup_v2_path("0::/system.slice/app.service\n"), "/system.slice/app.service");
  EXPECT_EQ(*cgroup_v2_path("12:cpu,cpuacct:/x\n1:name=systemd:/\n0::/\n"), "/");
  EXPECT_FALSE(cgroup_v2_path("4:memory:/a\n1:cpu:/\n"));
  EXPECT_FALSE(cgroup_v2_path(""));
}

TEST(CpuMax, WorkersAreTheAffinityOrTheWholeQuotaIfLower) {
  EXPECT_EQ(workers_for(8, std::nullopt), 8u);
  EXPECT_EQ(workers_for(1, std::nullopt), 1u);  // taskset -c 0 on a bigger machine
  EXPECT_EQ(workers_for(8, 2.0), 2u);
  EXPECT_EQ(workers_for(8, 2.5), 2u);
  EXPECT_EQ(workers_for(8, 0.5), 1u);
  EXPECT_EQ(workers_for(2, 6.0), 2u);
  EXPECT_EQ(workers_for(0, 3.0), 3u);
  EXPECT_EQ(workers_for(0, std::nullopt), 1u);
  EXPECT_EQ(workers_for(1000, std::nullopt), 256u);
}

TEST(CpuMax, TheDefaultIsAtLeastOneAndSaysWhy) {
  const WorkerDefault d = default_workers();
  EXPECT_GE(d.count, 1u);
  EXPECT_FALSE(d.reason.empty());
}

TEST(Config, DrainPeriodDefaultsToTenSecondsAndComesFromFlagOrEnvironment) {
  EXPECT_EQ(run({"--dev"}).settings.drain_period_seconds, 10);
  EXPECT_EQ(run({"--dev", "--drain-period", "0"}).settings.drain_period_seconds, 0);
  {
    const ScopedEnv env("STREAMGATE_DRAIN_PERIOD", "6");
    EXPECT_EQ(run({"--dev"}).settings.drain_period_seconds, 6);
    // A flag wins over the environment.
    EXPECT_EQ(run({"--dev", "--drain-period", "2"}).settings.drain_period_seconds, 2);
  }
  expect_error(run_valid({"--drain-period", "3601"}),
               "streamgate: --drain-period must be at most 3600, got 3601");
}

}  // namespace
// Issue 17's token flags: other issuers' claims and the expiry notice.
TEST(Config, TokenFlagsHaveDefaultsFlagsAndEnv) {
  const ParseOutcome d = run({"--dev"});
  ASSERT_EQ(d.kind, Kind::kRun) << d.message;
  EXPECT_EQ(d.settings.jwt_audience, "");
  EXPECT_EQ(d.settings.jwt_issuer, "");
  EXPECT_EQ(d.settings.org_claim, "org_id");
  EXPECT_EQ(d.settings.user_claim, "sub");
  EXPECT_EQ(d.settings.token_refresh_notice_seconds, 60);
  const ParseOutcome o =
      run({"--dev", "--jwt-audience", "streamgate", "--jwt-issuer", "idp", "--org-claim", "tenant",
           "--user-claim", "uid", "--token-refresh-notice", "0"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.jwt_audience, "streamgate");
  EXPECT_EQ(o.settings.jwt_issuer, "idp");
  EXPECT_EQ(o.settings.org_claim, "tenant");
  EXPECT_EQ(o.settings.user_claim, "uid");
  EXPECT_EQ(o.settings.token_refresh_notice_seconds, 0);
  const ScopedEnv env("STREAMGATE_TOKEN_REFRESH_NOTICE", "5");
  EXPECT_EQ(run({"--dev"}).settings.token_refresh_notice_seconds, 5);
}

TEST(Config, JwksFileIsReadAtStart) {
  const std::string path = ::testing::TempDir() + "streamgate-jwks-test.json";
  {
    std::ofstream out(path);
    out << R"({"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]})";
  }
  const ParseOutcome o = run({"--api-key", "k", "--jwks-file", path});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.jwks_file, path);
  EXPECT_NE(o.settings.jwks.find("\"keys\""), std::string::npos);
  {
    std::ofstream out(path);
    out << R"({"kty":"RSA"})";
  }
  const ParseOutcome not_a_set = run({"--api-key", "k", "--jwks-file", path});
  EXPECT_EQ(not_a_set.kind, Kind::kExit);
  EXPECT_NE(not_a_set.message.find("not a JWK Set"), std::string::npos) << not_a_set.message;
  std::remove(path.c_str());
  const ParseOutcome missing = run({"--api-key", "k", "--jwks-file", path});
  EXPECT_EQ(missing.kind, Kind::kExit);
  EXPECT_NE(missing.message.find("--jwks-file: cannot read"), std::string::npos) << missing.message;
}

TEST(Config, JwksUrlIsAKeySourceWithItsBounds) {
  const ParseOutcome o = run({"--api-key", "k", "--jwks-url", "https://idp.example/jwks.json",
                              "--jwks-ca-file", "/etc/ca.pem", "--jwks-min-refresh", "5"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.jwks_url, "https://idp.example/jwks.json");
  EXPECT_EQ(o.settings.jwks_ca_file, "/etc/ca.pem");
  EXPECT_EQ(o.settings.jwks_refresh_seconds, 300);
  EXPECT_EQ(o.settings.jwks_min_refresh_seconds, 5);
  EXPECT_EQ(o.settings.jwks_max_bytes, 1024u * 1024u);
  EXPECT_EQ(o.settings.jwks_timeout_seconds, 10);
  for (const auto& [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--api-key", "k", "--jwks-url", "ftp://h/j"}, "must be an http:// or https:// URL"},
           {{"--api-key", "k", "--jwks-url", "http://h/j", "--jwks-file", "/j.json"},
            "are exclusive"},
           {{"--api-key", "k", "--jwks-url", "http://h/j", "--jwks-ca-file", "/ca.pem"},
            "needs an https://"},
           {{"--api-key", "k", "--jwks-url", "http://h/j", "--jwks-min-refresh", "0"},
            "--jwks-min-refresh"},
           {{"--api-key", "k", "--jwks-url", "http://h/j", "--jwks-max-bytes", "100"},
            "--jwks-max-bytes"},
           {{"--api-key", "k", "--jwks-url", "http://h/j", "--jwks-timeout", "301"},
            "--jwks-timeout"}}) {
    const ParseOutcome bad = run_args(args);
    EXPECT_EQ(bad.kind, Kind::kExit) << says;
    EXPECT_NE(bad.message.find(says), std::string::npos) << bad.message;
  }
}

TEST(Config, TokenClaimFlagsAreValidated) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--dev", "--org-claim", " "},
        std::vector<std::string>{"--dev", "--user-claim", ""},
        std::vector<std::string>{"--dev", "--org-claim", "sub"},
        std::vector<std::string>{"--dev", "--user-claim", std::string(129, 'c')},
        std::vector<std::string>{"--dev", "--token-refresh-notice", "86401"}}) {
    const ParseOutcome o = run_args(args);
    EXPECT_EQ(o.kind, Kind::kExit) << args[1];
    EXPECT_EQ(o.exit_code, 2) << args[1];
    EXPECT_NE(o.message.find(args[1]), std::string::npos) << o.message;
  }
}

}  // namespace sg::config
