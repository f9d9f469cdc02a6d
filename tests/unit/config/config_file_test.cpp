#include "config/config.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

// The --config file layer, --print-config and the secret files.
namespace sg::config {
namespace {

using Kind = ParseOutcome::Kind;

constexpr const char* kSecret = "0123456789abcdef0123456789abcdef";  // exactly 32 bytes
constexpr const char* kOtherSecret = "fedcba9876543210fedcba9876543210-other";

ParseOutcome run(const std::vector<std::string>& args) {
  std::vector<const char*> argv{"streamgate"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  return parse(static_cast<int>(argv.size()), argv.data());
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

// A file with the given content for the length of a test.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char path[] = "/tmp/sg_config_file_test_XXXXXX";
    const int fd = ::mkstemp(path);
    EXPECT_GE(fd, 0);
    if (fd >= 0) ::close(fd);
    path_ = path;
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void expect_error(const ParseOutcome& o, const std::string& message) {
  EXPECT_EQ(o.kind, Kind::kExit);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.message, message);
}

std::string source_dir() {
  std::string dir = STREAMGATE_SOURCE_DIR;
  if (!dir.empty()) return dir;
  const std::string file = __FILE__;
  const std::string tail = "tests/unit/config/config_file_test.cpp";
  return file.ends_with(tail) ? file.substr(0, file.size() - tail.size()) : ".";
}

// The long flag names of --help that are settings, without the dashes: every flag but the
// actions and --config itself.
std::set<std::string> setting_flags() {
  const std::string help = help_text();
  std::set<std::string> out;
  std::size_t at = 0;
  while ((at = help.find("--", at)) != std::string::npos) {
    std::size_t end = at + 2;
    while (end < help.size() && ((help[end] >= 'a' && help[end] <= 'z') ||
                                 (help[end] >= '0' && help[end] <= '9') || help[end] == '-')) {
      ++end;
    }
    while (end > at + 2 && help[end - 1] == '-') --end;
    const std::string name = help.substr(at + 2, end - at - 2);
    if (!name.empty() && (at == 0 || help[at - 1] != '-')) out.insert(name);
    at = end;
  }
  for (const char* action : {"help", "version", "config", "print-config"}) out.erase(action);
  return out;
}

TEST(ConfigFile, ReadsEveryKindOfValue) {
  const TempFile file(
      "# comment\n"
      "listen = \"127.0.0.1:4100\"\n"
      "jwt-secret = \"" +
      std::string(kSecret) +
      "\"\n"
      "api-key = [\"k1\", \"k2\"]\n"
      "services = [\"finance\", \"payroll\"]\n"
      "allowed-origins = \"https://a.example, https://b.example\"\n"
      "history = 5\n"
      "dev = true\n"
      "log-level = \"warn\"\n");
  const ParseOutcome o = run({"--config", file.path()});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  const Settings& s = o.settings;
  EXPECT_EQ(s.config_file, file.path());
  EXPECT_EQ(s.listen_port, 4100);
  EXPECT_EQ(s.jwt_secret, kSecret);
  EXPECT_EQ(s.api_keys, (std::vector<std::string>{"k1", "k2"}));
  EXPECT_EQ(s.services, (std::vector<std::string>{"finance", "payroll"}));
  EXPECT_EQ(s.allowed_origins,
            (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_EQ(s.history, 5u);
  EXPECT_TRUE(s.dev);
  EXPECT_EQ(s.log_level, "warn");
}

TEST(ConfigFile, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  const TempFile file(
      "history = 7\nservices = [\"from-file\"]\nmax-batch = 3\napi-key = \"file-key\"\n");
  const std::vector<std::string> base{"--config", file.path(), "--jwt-secret", kSecret};
  {
    const ParseOutcome o = run(base);
    ASSERT_EQ(o.kind, Kind::kRun) << o.message;
    EXPECT_EQ(o.settings.history, 7u);
    EXPECT_EQ(o.settings.services, std::vector<std::string>{"from-file"});
    EXPECT_EQ(o.settings.api_keys, std::vector<std::string>{"file-key"});
    EXPECT_EQ(o.settings.max_services, 64u);  // not in the file: the default
  }
  const ScopedEnv history("STREAMGATE_HISTORY", "8");
  const ScopedEnv services("STREAMGATE_SERVICES", "from-env");
  {
    const ParseOutcome o = run(base);
    ASSERT_EQ(o.kind, Kind::kRun) << o.message;
    EXPECT_EQ(o.settings.history, 8u);
    EXPECT_EQ(o.settings.services, std::vector<std::string>{"from-env"});
    EXPECT_EQ(o.settings.max_batch, 3u);
  }
  std::vector<std::string> with_flags = base;
  with_flags.insert(with_flags.end(), {"--history", "9", "--api-key", "flag-key"});
  const ParseOutcome o = run(with_flags);
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.history, 9u);
  EXPECT_EQ(o.settings.services, std::vector<std::string>{"from-env"});
  // A list given on the command line replaces the file's; it doesn't add to it.
  EXPECT_EQ(o.settings.api_keys, std::vector<std::string>{"flag-key"});
}

TEST(ConfigFile, PathComesFromTheEnvironmentToo) {
  const TempFile file("history = 11\n");
  const ScopedEnv config("STREAMGATE_CONFIG", file.path());
  const ParseOutcome o = run({"--jwt-secret", kSecret, "--api-key", "k"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.history, 11u);
}

TEST(ConfigFile, BadValuesNameFileLineAndKey) {
  const TempFile file("# settings\nlisten = \"127.0.0.1:4000\"\n\nhistory = 0\n");
  expect_error(run({"--config", file.path(), "--dev"}),
               "streamgate: " + file.path() +
                   ":4: history must be at least 1, got 0: a resuming client needs at least one "
                   "kept event");
  const TempFile listen("listen = \"nowhere\"\n");
  expect_error(run({"--config", listen.path(), "--dev"}),
               "streamgate: " + listen.path() +
                   ":1: listen must be host:port (for example 127.0.0.1:4000), got \"nowhere\"");
  const TempFile negative("\n\nping-interval = -5\n");
  expect_error(run({"--config", negative.path(), "--dev"}),
               "streamgate: " + negative.path() +
                   ":3: ping-interval must be a whole number of milliseconds, got \"-5\"");
}

TEST(ConfigFile, WrongTypesNameFileLineAndKey) {
  const TempFile text("\nlisten = 4000\n");
  expect_error(run({"--config", text.path(), "--dev"}),
               "streamgate: " + text.path() + ":2: listen must be a string, got an integer");
  const TempFile number("history = \"1000\"\n");
  expect_error(run({"--config", number.path(), "--dev"}),
               "streamgate: " + number.path() + ":1: history must be an integer, got a string");
  const TempFile flag("dev = \"yes\"\n");
  expect_error(run({"--config", flag.path()}),
               "streamgate: " + flag.path() + ":1: dev must be true or false, got a string");
  const TempFile list("services = 3\n");
  expect_error(run({"--config", list.path(), "--dev"}),
               "streamgate: " + list.path() +
                   ":1: services must be an array of strings or one comma-separated string, got "
                   "an integer");
  // An array item is named at its own line.
  const TempFile item("services = [\n  \"finance\",\n  7,\n]\n");
  expect_error(run({"--config", item.path(), "--dev"}),
               "streamgate: " + item.path() +
                   ":3: services must be an array of strings, got an integer in it");
}

TEST(ConfigFile, UnknownKeysStopStartUp) {
  const TempFile unknown("history = 5\nno-such-key = 1\n");
  expect_error(run({"--config", unknown.path(), "--dev"}),
               "streamgate: " + unknown.path() +
                   ":2: no-such-key: unknown key (keys are the long flag names of --help, "
                   "without the dashes)");
  const TempFile underscore("max_batch = 5\n");
  expect_error(
      run({"--config", underscore.path(), "--dev"}),
      "streamgate: " + underscore.path() + ":1: max_batch: unknown key; did you mean max-batch?");
  // Settings are top-level keys; a table is not one of them.
  const TempFile table("[server]\nlisten = \"127.0.0.1:1\"\n");
  const ParseOutcome t = run({"--config", table.path(), "--dev"});
  EXPECT_EQ(t.exit_code, 2);
  EXPECT_EQ(t.message.rfind("streamgate: " + table.path() + ":1: server: unknown key", 0), 0u)
      << t.message;
  const TempFile nested("config = \"/etc/other.toml\"\n");
  expect_error(run({"--config", nested.path(), "--dev"}),
               "streamgate: " + nested.path() +
                   ":1: config is a command-line flag, not a setting of the file");
}

TEST(ConfigFile, KeysAreCheckedEvenWhenAFlagOverridesThem) {
  const TempFile file("history = \"5\"\n");
  const ParseOutcome o = run({"--config", file.path(), "--dev", "--history", "6"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.message.find(":1: history must be an integer"), std::string::npos) << o.message;
}

TEST(ConfigFile, InvalidTomlAndUnreadableFilesStopStartUp) {
  const TempFile file("history = 5\nlisten = \"unterminated\n");
  const ParseOutcome o = run({"--config", file.path(), "--dev"});
  EXPECT_EQ(o.kind, Kind::kExit);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.message.rfind("streamgate: " + file.path() + ":2:", 0), 0u) << o.message;
  EXPECT_NE(o.message.find("not valid TOML"), std::string::npos) << o.message;
  EXPECT_EQ(o.message.find('\n'), std::string::npos) << o.message;
  expect_error(run({"--config", "/nonexistent/streamgate.toml", "--dev"}),
               "streamgate: --config: cannot read \"/nonexistent/streamgate.toml\": No such file "
               "or directory");
  const ScopedEnv env("STREAMGATE_CONFIG", "/nonexistent/env.toml");
  expect_error(run({"--dev"}),
               "streamgate: STREAMGATE_CONFIG: cannot read \"/nonexistent/env.toml\": No such "
               "file or directory");
}

TEST(ConfigFile, ErrorsNeverEchoASecretFromTheFile) {
  const TempFile file("jwt-secret = \"hunter2-short\"\napi-key = \"k\"\n");
  const ParseOutcome o = run({"--config", file.path()});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.message, "streamgate: " + file.path() +
                           ":1: jwt-secret is 13 bytes; HS256 secrets must be at least 32 bytes, "
                           "or they can be guessed offline from any token");
}

TEST(SecretFiles, JwtSecretFromAFileWithoutItsTrailingNewline) {
  const TempFile secret(std::string(kOtherSecret) + "\n");
  const ParseOutcome o = run({"--jwt-secret-file", secret.path(), "--api-key", "k"});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.jwt_secret, kOtherSecret);
  EXPECT_EQ(o.settings.jwt_secret_file, secret.path());
  {
    const ScopedEnv env("STREAMGATE_JWT_SECRET_FILE", secret.path());
    EXPECT_EQ(run({"--api-key", "k"}).settings.jwt_secret, kOtherSecret);
  }
  const TempFile config("jwt-secret-file = \"" + secret.path() + "\"\napi-key = \"k\"\n");
  EXPECT_EQ(run({"--config", config.path()}).settings.jwt_secret, kOtherSecret);
  // CRLF, as a file written on Windows has it.
  const TempFile crlf(std::string(kOtherSecret) + "\r\n");
  EXPECT_EQ(run({"--jwt-secret-file", crlf.path(), "--api-key", "k"}).settings.jwt_secret,
            kOtherSecret);
}

TEST(SecretFiles, EmptyMissingOrShortSecretFilesStopStartUp) {
  const TempFile empty("\n");
  expect_error(run({"--jwt-secret-file", empty.path(), "--api-key", "k"}),
               "streamgate: --jwt-secret-file: \"" + empty.path() + "\" is empty");
  expect_error(run({"--jwt-secret-file", "/nonexistent/jwt", "--api-key", "k"}),
               "streamgate: --jwt-secret-file: cannot read \"/nonexistent/jwt\": No such file or "
               "directory");
  const TempFile short_secret("hunter2\n");
  expect_error(run({"--jwt-secret-file", short_secret.path(), "--api-key", "k"}),
               "streamgate: --jwt-secret-file \"" + short_secret.path() +
                   "\" is 7 bytes; HS256 secrets must be at least 32 bytes, or they can be "
                   "guessed offline from any token");
  // A big file is the wrong one (a log, a disk image), not a secret.
  const TempFile big(std::string(70 * 1024, 'k'));
  expect_error(
      run({"--jwt-secret-file", big.path(), "--api-key", "k"}),
      "streamgate: --jwt-secret-file: cannot read \"" + big.path() + "\": larger than 64 KiB");
  const TempFile config("\napi-key-file = \"/nonexistent/keys\"\n");
  expect_error(run({"--config", config.path(), "--jwt-secret", kSecret}),
               "streamgate: " + config.path() +
                   ":2: api-key-file: cannot read \"/nonexistent/keys\": No such file or "
                   "directory");
}

TEST(SecretFiles, ValueAndFileFromTheSameSourceAreAnError) {
  const TempFile secret(kOtherSecret);
  expect_error(run({"--jwt-secret", kSecret, "--jwt-secret-file", secret.path(), "--dev"}),
               "streamgate: --jwt-secret and --jwt-secret-file are both given; give the secret "
               "or the file holding it, not both");
  const TempFile keys("k2\n");
  const TempFile config("api-key = \"k1\"\napi-key-file = \"" + keys.path() + "\"\n");
  expect_error(run({"--config", config.path(), "--jwt-secret", kSecret}),
               "streamgate: " + config.path() + ":1: api-key and " + config.path() +
                   ":2: api-key-file are both given; give the secret or the file holding it, not "
                   "both");
}

TEST(SecretFiles, AHigherSourceWinsOverTheOtherForm) {
  const TempFile secret(kOtherSecret);
  const TempFile config("jwt-secret-file = \"" + secret.path() + "\"\napi-key = \"file-key\"\n");
  // A flag's value beats the file's jwt-secret-file.
  const ParseOutcome o = run({"--config", config.path(), "--jwt-secret", kSecret});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.jwt_secret, kSecret);
  EXPECT_EQ(o.settings.jwt_secret_file, "");
  // The environment's key file beats the file's keys.
  const TempFile keys("env-key\n");
  const ScopedEnv env("STREAMGATE_API_KEY_FILE", keys.path());
  const ParseOutcome e = run({"--config", config.path()});
  ASSERT_EQ(e.kind, Kind::kRun) << e.message;
  EXPECT_EQ(e.settings.jwt_secret, kOtherSecret);
  EXPECT_EQ(e.settings.api_keys, std::vector<std::string>{"env-key"});
}

TEST(SecretFiles, ApiKeyFilesHoldOneKeyPerLineForRotation) {
  const TempFile old_and_new("old-key\nnew-key\n");
  const TempFile third(" a, b \n");
  const ParseOutcome o =
      run({"--jwt-secret", kSecret, "--api-key-file", old_and_new.path() + "," + third.path()});
  ASSERT_EQ(o.kind, Kind::kRun) << o.message;
  EXPECT_EQ(o.settings.api_keys, (std::vector<std::string>{"old-key", "new-key", "a", "b"}));
  EXPECT_EQ(o.settings.api_key_files, (std::vector<std::string>{old_and_new.path(), third.path()}));
  const TempFile separators(",\n,\n");
  expect_error(
      run({"--jwt-secret", kSecret, "--api-key-file", separators.path()}),
      "streamgate: --api-key-file: \"" + separators.path() + "\" holds no key, only separators");
}

TEST(PrintConfig, PrintsEveryKeyWithSecretsRedactedAndExitsZero) {
  const ParseOutcome o =
      run({"--print-config", "--jwt-secret", kSecret, "--api-key", "hunter2-a,hunter2-b",
           "--broker", "redis://user:hunter2-pw@redis.internal:6379/2", "--history", "12"});
  ASSERT_EQ(o.kind, Kind::kExit);
  EXPECT_EQ(o.exit_code, 0) << o.message;
  EXPECT_EQ(o.message.find(kSecret), std::string::npos) << o.message;
  EXPECT_EQ(o.message.find("hunter2"), std::string::npos) << o.message;
  toml::table printed;
  ASSERT_NO_THROW(printed = toml::parse(o.message));
  EXPECT_EQ(printed["jwt-secret"].value_or(std::string()), "<redacted>");
  ASSERT_NE(printed["api-key"].as_array(), nullptr);
  EXPECT_EQ(printed["api-key"].as_array()->size(), 2u);
  EXPECT_EQ(printed["api-key"][0].value_or(std::string()), "<redacted>");
  EXPECT_EQ(printed["broker"].value_or(std::string()),
            "redis://user:<redacted>@redis.internal:6379/2");
  EXPECT_EQ(printed["history"].value_or(0), 12);
  std::set<std::string> keys;
  for (auto&& [key, value] : printed) keys.insert(std::string(key.str()));
  EXPECT_EQ(keys, setting_flags());
}

TEST(PrintConfig, NeedsNoTokenKeyButChecksEveryValue) {
  const ParseOutcome o = run({"--print-config"});
  EXPECT_EQ(o.exit_code, 0) << o.message;
  EXPECT_NE(o.message.find("\njwt-secret = \"\"\n"), std::string::npos) << o.message;
  expect_error(run({"--print-config", "--history", "0"}),
               "streamgate: --history must be at least 1, got 0: a resuming client needs at "
               "least one kept event");
}

TEST(PrintConfig, ASecretReadFromAFilePrintsAsItsPath) {
  const TempFile secret(kOtherSecret);
  const ParseOutcome o =
      run({"--print-config", "--jwt-secret-file", secret.path(), "--api-key", "k"});
  EXPECT_EQ(o.exit_code, 0) << o.message;
  EXPECT_EQ(o.message.find(kOtherSecret), std::string::npos) << o.message;
  EXPECT_NE(o.message.find("\njwt-secret = \"\"\n"), std::string::npos) << o.message;
  EXPECT_NE(o.message.find("\njwt-secret-file = \"" + secret.path() + "\"\n"), std::string::npos)
      << o.message;
}

TEST(PrintConfig, TheRedactedPlaceholderIsRefusedAsASecret) {
  const std::string text =
      run({"--print-config", "--jwt-secret", kSecret, "--api-key", "k"}).message;
  const std::size_t at = text.find("\njwt-secret = ");
  ASSERT_NE(at, std::string::npos) << text;
  const std::string line = std::to_string(std::count(text.begin(), text.begin() + at, '\n') + 2);
  const TempFile printed(text);
  expect_error(run({"--config", printed.path()}),
               "streamgate: " + printed.path() + ":" + line +
                   ": jwt-secret holds \"<redacted>\", which --print-config shows in place of a "
                   "secret; give the real value");
}

TEST(PrintConfig, OutputParsesBackToTheSameSettings) {
  const TempFile secret(std::string(kOtherSecret) + "\n");
  const std::vector<std::string> flags{"--listen",
                                       "0.0.0.0:8080",
                                       "--jwt-secret-file",
                                       secret.path(),
                                       "--api-key",
                                       "k1,k2",
                                       "--services",
                                       "finance,payroll",
                                       "--allowed-origins",
                                       "https://app.example.com",
                                       "--broker",
                                       "redis://localhost:6379/2",
                                       "--history",
                                       "50",
                                       "--workers",
                                       "3",
                                       "--log-level",
                                       "debug",
                                       "--io-uring",
                                       "off",
                                       "--max-batch",
                                       "7",
                                       "--handshake-timeout",
                                       "1500",
                                       "--chat-burst",
                                       "2",
                                       "--upload-dir",
                                       "/srv/docs",
                                       "--upload-max-bytes",
                                       "20000000000",
                                       "--jwt-public-key",
                                       "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC "
                                       "KEY-----\n"};
  const ParseOutcome direct = run(flags);
  ASSERT_EQ(direct.kind, Kind::kRun) << direct.message;
  std::vector<std::string> print = flags;
  print.push_back("--print-config");
  const ParseOutcome printed = run(print);
  ASSERT_EQ(printed.exit_code, 0) << printed.message;
  const TempFile file(printed.message);
  // The API keys are redacted, so they come back from the command line.
  ParseOutcome back = run({"--config", file.path(), "--api-key", "k1,k2"});
  ASSERT_EQ(back.kind, Kind::kRun) << back.message << "\n" << printed.message;
  EXPECT_EQ(back.settings.config_file, file.path());
  back.settings.config_file.clear();
  EXPECT_EQ(back.settings, direct.settings) << printed.message;
  // And printing that again gives the same text, bar the line naming the file.
  const ParseOutcome again = run({"--config", file.path(), "--api-key", "k1,k2", "--print-config"});
  const std::string header = "# --config file: " + file.path() + "\n";
  std::string text = again.message;
  ASSERT_NE(text.find(header), std::string::npos);
  text.erase(text.find(header), header.size());
  EXPECT_EQ(text, printed.message);
}

TEST(ExampleFile, ParsesAndListsEveryKeyOfHelpWithItsDefault) {
  const std::string path = source_dir() + "/docs/streamgate.example.toml";
  toml::table example;
  ASSERT_NO_THROW(example = toml::parse_file(path)) << path;
  std::set<std::string> keys;
  for (auto&& [key, value] : example) keys.insert(std::string(key.str()));
  EXPECT_EQ(keys, setting_flags());
  // Every value is the default: reading the file changes nothing.
  const ParseOutcome defaults = run({"--jwt-secret", kSecret, "--api-key", "k"});
  ParseOutcome with_file = run({"--config", path, "--jwt-secret", kSecret, "--api-key", "k"});
  ASSERT_EQ(with_file.kind, Kind::kRun) << with_file.message;
  with_file.settings.config_file.clear();
  EXPECT_EQ(with_file.settings, defaults.settings);
}

}  // namespace
}  // namespace sg::config
