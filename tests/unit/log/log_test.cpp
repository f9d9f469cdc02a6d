#include "log/log.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace sg::log {
namespace {

// Sends log lines to a temporary file for one test, then back to stderr.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) {
    set_output(file_);
    set_level(Level::kInfo);
  }
  ~Capture() {
    set_output(nullptr);
    set_level(Level::kInfo);
    std::fclose(file_);
  }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  std::string text() const {
    std::fflush(file_);
    std::rewind(file_);
    std::string out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) out.append(buf, n);
    return out;
  }

  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    const std::string all = text();
    std::size_t start = 0;
    while (start < all.size()) {
      const std::size_t nl = all.find('\n', start);
      out.push_back(all.substr(start, nl - start));
      start = nl + 1;
    }
    return out;
  }

 private:
  std::FILE* file_;
};

// A line without its time, which the test can't predict: checks the time's shape
// ({"time":"2026-11-27T10:43:50.123Z",) and returns what follows it.
std::string after_time(const std::string& line) {
  static const std::string kHead = "{\"time\":\"";
  static const std::string kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  const std::size_t tail = kHead.size() + kShape.size();
  if (line.size() < tail + 2 || line.compare(0, kHead.size(), kHead) != 0 ||
      line.compare(tail, 2, "\",") != 0) {
    return "no time prefix in: " + line;
  }
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    const char c = line[kHead.size() + i];
    const bool ok = kShape[i] == 'd' ? (c >= '0' && c <= '9') : c == kShape[i];
    if (!ok) return "bad time in: " + line;
  }
  return line.substr(tail + 2);
}

constexpr const char* kJwt =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSIsIm9yZ19pZCI6NDU2fQ.c2lnbmF0dXJlX2J5dGVzX2hlcmU";

TEST(Log, WritesOneJsonObjectPerLine) {
  Capture cap;
  info(
      "server", "connection opened",
      {{"conn", std::uint64_t{17}}, {"org", "456"}, {"delta", -3}, {"ratio", 0.5}, {"tls", false}});
  const auto lines = cap.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(after_time(lines[0]),
            R"("level":"info","component":"server","message":"connection opened","conn":17,)"
            R"("org":"456","delta":-3,"ratio":0.5,"tls":false})");
  EXPECT_EQ(cap.text().back(), '\n');
}

TEST(Log, NamesEachLevel) {
  Capture cap;
  set_level(Level::kDebug);
  debug("c", "d");
  info("c", "i");
  warn("c", "w");
  error("c", "e");
  const auto lines = cap.lines();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(after_time(lines[0]), R"("level":"debug","component":"c","message":"d"})");
  EXPECT_EQ(after_time(lines[1]), R"("level":"info","component":"c","message":"i"})");
  EXPECT_EQ(after_time(lines[2]), R"("level":"warn","component":"c","message":"w"})");
  EXPECT_EQ(after_time(lines[3]), R"("level":"error","component":"c","message":"e"})");
}

TEST(Log, DropsLinesBelowTheLevel) {
  Capture cap;
  set_level(Level::kWarn);
  EXPECT_FALSE(enabled(Level::kDebug));
  EXPECT_FALSE(enabled(Level::kInfo));
  EXPECT_TRUE(enabled(Level::kWarn));
  EXPECT_TRUE(enabled(Level::kError));
  debug("c", "no");
  info("c", "no");
  warn("c", "yes");
  error("c", "yes");
  EXPECT_EQ(cap.lines().size(), 2u);
}

TEST(Log, ParsesLevelNames) {
  Level l = Level::kInfo;
  EXPECT_TRUE(parse_level("debug", l));
  EXPECT_EQ(l, Level::kDebug);
  EXPECT_TRUE(parse_level("warn", l));
  EXPECT_EQ(l, Level::kWarn);
  EXPECT_TRUE(parse_level("error", l));
  EXPECT_EQ(l, Level::kError);
  EXPECT_TRUE(parse_level("info", l));
  EXPECT_EQ(l, Level::kInfo);
  EXPECT_FALSE(parse_level("INFO", l));
  EXPECT_FALSE(parse_level("warning", l));
  EXPECT_FALSE(parse_level("", l));
  EXPECT_EQ(l, Level::kInfo);
}

TEST(Log, EscapesFieldValuesAsJson) {
  Capture cap;
  info("c", "say \"hi\"\n", {{"v", "q\" b\\ n\n r\r t\t \x01 \x1f \x7f"}});
  const auto lines = cap.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(after_time(lines[0]), R"("level":"info","component":"c","message":"say \"hi\"\n",)"
                                  R"("v":"q\" b\\ n\n r\r t\t \u0001 \u001f \u007f"})");
}

TEST(Log, KeepsValidUtf8AndReplacesInvalidBytes) {
  Capture cap;
  info("c", "m",
       {{"ok", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"bad",
         "a\xff"
         "b\xc3"
         "c\xed\xa0\x80"
         "d\xc0\xaf"}});
  const auto lines = cap.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(after_time(lines[0]),
            "\"level\":\"info\",\"component\":\"c\",\"message\":\"m\","
            "\"ok\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
            "\"bad\":\"a\\ufffdb\\ufffdc\\ufffd\\ufffd\\ufffdd\\ufffd\\ufffd\"}");
}

TEST(Log, WritesExtremeNumbers) {
  Capture cap;
  info("c", "m",
       {{"min", std::numeric_limits<std::int64_t>::min()},
        {"max", std::numeric_limits<std::uint64_t>::max()},
        {"nan", std::numeric_limits<double>::quiet_NaN()},
        {"inf", std::numeric_limits<double>::infinity()},
        {"small", 1e-7}});
  const auto lines = cap.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(after_time(lines[0]),
            R"("level":"info","component":"c","message":"m","min":-9223372036854775808,)"
            R"("max":18446744073709551615,"nan":null,"inf":null,"small":1e-07})");
}

TEST(Log, PathFieldWithATokenLogsNoToken) {
  Capture cap;
  const std::string path = std::string("/v2/realtime/stream?access_token=") + kJwt;
  const std::string auth = std::string("Bearer ") + kJwt;
  warn("server", "auth rejected", {{"path", path}, {"authorization", auth}, {"org", "456"}});
  const std::string text = cap.text();
  EXPECT_EQ(text.find(kJwt), std::string::npos) << text;
  EXPECT_EQ(text.find("eyJ"), std::string::npos) << text;
  const auto lines = cap.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(after_time(lines[0]),
            R"("level":"warn","component":"server","message":"auth rejected",)"
            R"("path":"/v2/realtime/stream?[redacted]",)"
            R"("authorization":"Bearer [redacted]","org":"456"})");
}

TEST(Log, RedactsTheMessageToo) {
  Capture cap;
  info("c", std::string("got ") + kJwt);
  const auto lines = cap.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(after_time(lines[0]),
            R"("level":"info","component":"c","message":"got [redacted-jwt]"})");
}

TEST(Log, LinesFromManyThreadsNeverInterleave) {
  Capture cap;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      const std::string payload(200, static_cast<char>('a' + t));
      for (int i = 0; i < kPerThread; ++i) info("t", payload, {{"i", i}});
    });
  }
  for (auto& th : threads) th.join();
  const auto lines = cap.lines();
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::vector<int> seen(kThreads * kPerThread, 0);
  for (const std::string& line : lines) {
    const std::string rest = after_time(line);
    const std::string head = R"("level":"info","component":"t","message":")";
    ASSERT_EQ(rest.compare(0, head.size(), head), 0) << line;
    const char letter = rest[head.size()];
    ASSERT_TRUE(letter >= 'a' && letter < 'a' + kThreads) << line;
    const std::string expected_tail = std::string(200, letter) + R"(","i":)";
    ASSERT_EQ(rest.compare(head.size(), expected_tail.size(), expected_tail), 0) << line;
    const std::string number = rest.substr(head.size() + expected_tail.size());
    ASSERT_EQ(number.back(), '}') << line;
    const int i = std::stoi(number);
    ASSERT_TRUE(i >= 0 && i < kPerThread) << line;
    ++seen[static_cast<std::size_t>((letter - 'a') * kPerThread + i)];
  }
  for (int count : seen) EXPECT_EQ(count, 1);
}

TEST(Redact, ReplacesQueryStrings) {
  EXPECT_EQ(redact("GET /v2/realtime/stream?access_token=abc&x=1 HTTP/1.1"),
            "GET /v2/realtime/stream?[redacted] HTTP/1.1");
  EXPECT_EQ(redact("https://h.example/p?q=1"), "https://h.example/p?[redacted]");
  EXPECT_EQ(redact("url=\"/a?b=c\" next"), "url=\"/a?[redacted]\" next");
  // A question mark that ends a word or the text is prose, not a query.
  EXPECT_EQ(redact("why? because"), "why? because");
  EXPECT_EQ(redact("really?"), "really?");
}

TEST(Redact, ReplacesBearerTokensInAnyCase) {
  EXPECT_EQ(redact("Bearer abc.def"), "Bearer [redacted]");
  EXPECT_EQ(redact("Authorization: bearer xyz rest"), "Authorization: bearer [redacted] rest");
  EXPECT_EQ(redact("BEARER\tk-123"), "BEARER\t[redacted]");
  // Not the word bearer: left alone.
  EXPECT_EQ(redact("forbearer of news"), "forbearer of news");
  EXPECT_EQ(redact("Bearer"), "Bearer");
}

TEST(Redact, ReplacesJwtShapedText) {
  EXPECT_EQ(redact(kJwt), "[redacted-jwt]");
  EXPECT_EQ(redact(std::string("token in path /x/") + kJwt + "/y"),
            "token in path /x/[redacted-jwt]/y");
  EXPECT_EQ(redact(std::string("(") + kJwt + ")"), "([redacted-jwt])");
  // Too short to be a token, or not a JSON header: left alone.
  EXPECT_EQ(redact("eyJabcd.abcdefgh.abcdefgh"), "eyJabcd.abcdefgh.abcdefgh");
  EXPECT_EQ(redact("eyJabcdefgh.abcdefgh.abcdefg"), "eyJabcdefgh.abcdefgh.abcdefg");
  EXPECT_EQ(redact("abcdefgh.abcdefgh.abcdefgh"), "abcdefgh.abcdefgh.abcdefgh");
  EXPECT_EQ(redact("eyJabcdefgh.abcdefgh"), "eyJabcdefgh.abcdefgh");
  EXPECT_EQ(redact("eyJabcdefgh.abcdefgh.abcdefgh"), "[redacted-jwt]");
}

TEST(Redact, ReplacesAccessTokenAssignmentsAnywhere) {
  EXPECT_EQ(redact("body access_token=s3cr3t&x=1"), "body access_token=[redacted]&x=1");
  EXPECT_EQ(redact("cookie: ACCESS_TOKEN=abc; other=1"),
            "cookie: ACCESS_TOKEN=[redacted]; other=1");
  EXPECT_EQ(redact("#access_token=abc"), "#access_token=[redacted]");
  EXPECT_EQ(redact("password=hunter2 user=bob"), "password=[redacted] user=bob");
  EXPECT_EQ(redact("access_token= next"), "access_token= next");
}

TEST(Redact, LeavesOrdinaryTextAlone) {
  EXPECT_EQ(redact(""), "");
  EXPECT_EQ(redact("connection closed: slow consumer (4008)"),
            "connection closed: slow consumer (4008)");
  EXPECT_EQ(redact("org=456 service=finance"), "org=456 service=finance");
}

}  // namespace
}  // namespace sg::log
