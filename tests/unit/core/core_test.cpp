#include "core/core.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sg::core {
namespace {

TEST(Base64, EncodesWithPadding) {
  const std::string in = "hello";
  EXPECT_EQ(base64_encode(std::span(reinterpret_cast<const unsigned char*>(in.data()), in.size())),
            "aGVsbG8=");
}

TEST(Base64Url, RoundTripsEveryLength) {
  std::string in;
  for (int i = 0; i < 40; ++i) {
    in.push_back(static_cast<char>(i * 37));
    std::string out;
    ASSERT_TRUE(base64url_decode(base64url_encode(in), out));
    EXPECT_EQ(out, in);
  }
}

TEST(Base64Url, RejectsCharactersOutsideTheAlphabet) {
  std::string out;
  EXPECT_FALSE(base64url_decode("ab+c", out));
  EXPECT_FALSE(base64url_decode("ab=c", out));
  EXPECT_FALSE(base64url_decode("a", out));
}

TEST(Base64Url, RejectsNonZeroTrailingBits) {
  std::string out;
  EXPECT_TRUE(base64url_decode("QQ", out));
  EXPECT_FALSE(base64url_decode("QR", out));
}

TEST(Rfc3339, FormatsUtcWithMilliseconds) {
  const auto t = WallClock::time_point(std::chrono::milliseconds(1'700'000'000'123));
  EXPECT_EQ(format_rfc3339(t), "2023-11-14T22:13:20.123Z");
}

TEST(RandomHex, IsLowercaseHexOfTheRequestedLength) {
  for (const std::size_t bytes : {0u, 1u, 4u, 8u, 16u, 63u, 64u, 65u, 200u}) {
    const std::string id = random_hex(bytes);
    EXPECT_EQ(id.size(), 2 * bytes);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  }
}

TEST(RandomHex, IdsDifferAcrossCallsAndThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::vector<std::vector<std::string>> made(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&made, t] {
      for (int i = 0; i < kPerThread; ++i) made[t].push_back(random_hex(8));
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<std::string> all;
  for (const auto& ids : made) all.insert(ids.begin(), ids.end());
  EXPECT_EQ(all.size(), std::size_t{kThreads * kPerThread});
}

TEST(RandomBytes, FillsLargeBuffersEvenly) {
  // Over getrandom's 256-byte single-call size, and every byte value about equally often: a
  // source that filled only part of the buffer, or repeated a short block, fails this.
  std::vector<unsigned char> buf(1 << 20);
  random_bytes(buf);
  std::array<std::size_t, 256> counts{};
  for (const unsigned char b : buf) ++counts[b];
  for (std::size_t v = 0; v < counts.size(); ++v) {
    // Expected 4096 each, standard deviation 64: the bounds are over 15 deviations away.
    EXPECT_GT(counts[v], 3000u) << v;
    EXPECT_LT(counts[v], 5200u) << v;
  }
  std::vector<unsigned char> other(buf.size());
  random_bytes(other);
  EXPECT_NE(buf, other);
}

TEST(RandomHex, AForkedChildDoesNotRepeatItsParentsNextIds) {
  (void)random_hex(8);  // leaves bytes fetched ahead in this thread's buffer
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string id = random_hex(8);
    const bool ok = write(fds[1], id.data(), id.size()) == static_cast<ssize_t>(id.size());
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  const std::string parent_id = random_hex(8);
  std::string child_id(16, '\0');
  std::size_t got = 0;
  while (got < child_id.size()) {
    const ssize_t n = read(fds[0], child_id.data() + got, child_id.size() - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_EQ(got, child_id.size());
  EXPECT_NE(child_id, parent_id);
}

// Regression: connection and upload ids came from a per-thread mt19937_64, whose state a client
// recovered from 156 upload ids and then predicted another org's next upload id. Every id now
// comes from random_bytes; no seeded engine may come back.
TEST(RandomBytes, NoSeededEngineIsLeftInTheSources) {
  namespace fs = std::filesystem;
  const fs::path src = fs::path(STREAMGATE_SOURCE_DIR) / "src";
  ASSERT_TRUE(fs::is_directory(src)) << src;
  std::size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(src)) {
    const auto ext = entry.path().extension();
    if (ext != ".cpp" && ext != ".hpp") continue;
    ++files;
    std::ifstream in(entry.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const std::string_view banned :
         {"mt19937", "default_random_engine", "std::rand(", "random_shuffle"}) {
      EXPECT_EQ(text.find(banned), std::string::npos) << entry.path() << " uses " << banned;
    }
  }
  EXPECT_GT(files, 10u);
}

TEST(OrgId, AcceptsNonNegativeIntegersAsTheirDecimalText) {
  EXPECT_EQ(org_id_from_integer(std::int64_t{0}), "0");
  EXPECT_EQ(org_id_from_integer(std::int64_t{456}), "456");
  EXPECT_EQ(org_id_from_integer(std::int64_t{INT64_MAX}), "9223372036854775807");
  EXPECT_EQ(org_id_from_integer(std::uint64_t{UINT64_MAX}), "18446744073709551615");
  // The same org as its string form.
  EXPECT_EQ(org_id_from_integer(std::int64_t{456}), org_id_from_text("456"));
}

TEST(OrgId, RefusesNegativeIntegers) {
  EXPECT_EQ(org_id_from_integer(std::int64_t{-1}), std::nullopt);
  EXPECT_EQ(org_id_from_integer(std::int64_t{INT64_MIN}), std::nullopt);
}

TEST(OrgId, AcceptsStringsOfOneTo128BytesWithoutControlCharacters) {
  EXPECT_EQ(org_id_from_text("acme-eu"), "acme-eu");
  EXPECT_EQ(org_id_from_text("Caf\xc3\xa9 \xe2\x98\x83"), "Caf\xc3\xa9 \xe2\x98\x83");
  EXPECT_EQ(org_id_from_text(std::string(kMaxOrgIdBytes, 'o')), std::string(kMaxOrgIdBytes, 'o'));
  EXPECT_EQ(org_id_from_text(""), std::nullopt);
  EXPECT_EQ(org_id_from_text(std::string(kMaxOrgIdBytes + 1, 'o')), std::nullopt);
  for (const char c : {'\0', '\t', '\n', '\r', '\x1b', '\x1f', '\x7f'}) {
    EXPECT_EQ(org_id_from_text(std::string("a") + c + "b"), std::nullopt) << int(c);
  }
}

TEST(UserId, AcceptsTextOfOneTo256BytesWithoutControlCharacters) {
  EXPECT_TRUE(user_id_text_ok("u-1@example.com"));
  EXPECT_TRUE(user_id_text_ok(std::string(kMaxUserIdBytes, 'u')));
  EXPECT_FALSE(user_id_text_ok(""));
  EXPECT_FALSE(user_id_text_ok(std::string(kMaxUserIdBytes + 1, 'u')));
  for (const char c : {'\0', '\t', '\n', '\x1b', '\x7f'}) {
    EXPECT_FALSE(user_id_text_ok(std::string("a") + c + "b")) << int(c);
  }
}

TEST(PercentDecode, DecodesEscapesAndPlusAsSpace) {
  std::string out;
  EXPECT_TRUE(core::percent_decode("a%2Bb+c%3d%7E", out));
  EXPECT_EQ(out, "a+b c=~");
  EXPECT_TRUE(core::percent_decode("", out));
  EXPECT_EQ(out, "");
  // URL userinfo (a Redis password) keeps '+' as it is.
  EXPECT_TRUE(core::percent_decode("p+w%40", out, false));
  EXPECT_EQ(out, "p+w@");
}

TEST(PercentDecode, RejectsTruncatedOrNonHexEscapes) {
  std::string out;
  EXPECT_FALSE(core::percent_decode("abc%2", out));
  EXPECT_FALSE(core::percent_decode("abc%", out));
  EXPECT_FALSE(core::percent_decode("%zz", out));
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

}  // namespace
}  // namespace sg::core
