#include "stream/sse_request.hpp"

#include "core/core.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sg::stream {
namespace {

std::vector<CursorEntry> two_services() {
  return {{"finance", {"k3x9a1", 42}}, {"hr.payroll", {"k3x9a1", 0}}};
}

TEST(SseCursor, RoundTripsEveryEntryInOrder) {
  const auto entries = two_services();
  const std::string cursor = encode_cursor(entries);
  auto decoded = decode_cursor(cursor, 64);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, entries);
}

TEST(SseCursor, IsOneSseLineOfBase64url) {
  const std::string cursor = encode_cursor(two_services());
  for (const char c : cursor) {
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << cursor;
  }
}

TEST(SseCursor, WithoutEntriesIsStillACursor) {
  auto decoded = decode_cursor(encode_cursor({}), 4);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_TRUE(decoded->empty());
}

TEST(SseCursor, RefusesWhatItDidNotMake) {
  const auto bad = [](std::string_view plain) {
    return decode_cursor(core::base64url_encode(plain), 64).has_value();
  };
  EXPECT_FALSE(decode_cursor("not base64url!", 64).has_value());
  EXPECT_FALSE(decode_cursor("", 64).has_value());
  EXPECT_FALSE(bad("2 finance=ab-1"));                     // another version
  EXPECT_FALSE(bad("1finance=ab-1"));                      // no separator
  EXPECT_FALSE(bad("1 finance"));                          // no position
  EXPECT_FALSE(bad("1 fin ance=ab-1"));                    // not a service name
  EXPECT_FALSE(bad("1 =ab-1"));                            // empty name
  EXPECT_FALSE(bad("1 finance=AB-1"));                     // epoch is lower-case
  EXPECT_FALSE(bad("1 finance=ab-01"));                    // offsets have one spelling
  EXPECT_FALSE(bad("1 finance=ab-99999999999999999999"));  // past 64 bits
  EXPECT_FALSE(bad("1 finance=ab-1 finance=ab-2"));        // a service twice
  EXPECT_FALSE(bad("1 finance=ab-1 "));                    // trailing separator
  EXPECT_TRUE(bad("1 finance=ab-1"));
}

TEST(SseCursor, RefusesMoreEntriesThanServices) {
  const std::string cursor = encode_cursor(two_services());
  EXPECT_TRUE(decode_cursor(cursor, 2).has_value());
  EXPECT_FALSE(decode_cursor(cursor, 1).has_value());
}

TEST(SseCursor, TheLongestCursorFitsTheBound) {
  std::vector<CursorEntry> entries;
  for (int i = 0; i < 8; ++i) {
    std::string name(64, 'a');
    name.back() = static_cast<char>('a' + i);
    entries.push_back({name, {std::string(32, 'z'), ~std::uint64_t{0}}});
  }
  EXPECT_LE(encode_cursor(entries).size(), max_cursor_bytes(8));
  EXPECT_GT(encode_cursor(entries).size(), max_cursor_bytes(7));
}

}  // namespace
}  // namespace sg::stream
