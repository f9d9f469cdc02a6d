#include "protocol/protocol.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sg::protocol {
namespace {

TEST(ProtocolError, HasStableSnakeCaseReasons) {
  EXPECT_EQ(to_string(ProtocolError::kMalformedJson), "malformed_json");
  EXPECT_EQ(to_string(ProtocolError::kNotAnObject), "not_an_object");
  EXPECT_EQ(to_string(ProtocolError::kUnknownType), "unknown_type");
  EXPECT_EQ(to_string(ProtocolError::kMissingField), "missing_field");
  EXPECT_EQ(to_string(ProtocolError::kBadField), "bad_field");
  EXPECT_EQ(to_string(ProtocolError::kBadVersion), "bad_version");
  EXPECT_EQ(to_string(ProtocolError::kTooManyItems), "too_many_items");
  EXPECT_EQ(to_string(ProtocolError::kBadEventId), "bad_event_id");
}

TEST(ProtocolError, ConvertsToAnErrorCodeInTheProtocolDomain) {
  const ErrorCode ec = ProtocolError::kBadVersion;
  EXPECT_STREQ(ec.category().name(), "protocol");
  EXPECT_EQ(core::reason(ec), "bad_version");
  EXPECT_TRUE(ec == ProtocolError::kBadVersion);
}

TEST(IsValidName, AcceptsTheNameAlphabet) {
  EXPECT_TRUE(is_valid_name("finance"));
  EXPECT_TRUE(is_valid_name("a"));
  EXPECT_TRUE(is_valid_name("Room_1.general:main-2"));
  EXPECT_TRUE(is_valid_name(std::string(64, 'x')));
}

TEST(IsValidName, RejectsEmptyTooLongAndOtherCharacters) {
  EXPECT_FALSE(is_valid_name(""));
  EXPECT_FALSE(is_valid_name(std::string(65, 'x')));
  EXPECT_FALSE(is_valid_name("fin ance"));
  EXPECT_FALSE(is_valid_name("finance/"));
  EXPECT_FALSE(is_valid_name("a\nb"));
  EXPECT_FALSE(is_valid_name(std::string("a\0b", 3)));
  EXPECT_FALSE(is_valid_name("caf\xc3\xa9"));
}

TEST(EventId, FormatsEpochDashOffset) {
  EXPECT_EQ(format_event_id("k3x9", 42), "k3x9-42");
  EXPECT_EQ(format_event_id("a", 18446744073709551615ull), "a-18446744073709551615");
}

TEST(EventId, ParsesWhatFormatWrites) {
  for (const std::uint64_t offset :
       {0ull, 1ull, 9ull, 10ull, 1234567ull, 18446744073709551615ull}) {
    const std::string text = format_event_id("0z9a", offset);
    auto id = parse_event_id(text);
    ASSERT_TRUE(id) << text;
    EXPECT_EQ(*id, (EventId{"0z9a", offset}));
    EXPECT_EQ(format_event_id(id->epoch, id->offset), text);
  }
}

TEST(EventId, AcceptsAThirtyTwoCharacterEpoch) {
  const std::string epoch(32, 'f');
  auto id = parse_event_id(epoch + "-7");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->epoch, epoch);
  EXPECT_EQ(id->offset, 7u);
}

TEST(EventId, RejectsMalformedIds) {
  const char* bad[] = {
      "",                           // empty
      "abc",                        // no dash
      "-5",                         // empty epoch
      "abc-",                       // empty offset
      "ABC-5",                      // upper case epoch
      "ab_c-5",                     // epoch outside [0-9a-z]
      "abc-+5",                     // sign
      "abc--5",                     // negative
      "abc- 5",                     // space
      "abc-5 ",                     // trailing space
      " abc-5",                     // leading space
      "abc-5-6",                    // second dash
      "abc-05",                     // leading zero
      "abc-1e3",                    // not decimal
      "abc-0x10",                   // hex
      "abc-18446744073709551616",   // uint64 max + 1
      "abc-99999999999999999999",   // 20 digits, too big
      "abc-100000000000000000000",  // 21 digits
  };
  for (const char* text : bad) {
    auto id = parse_event_id(text);
    ASSERT_FALSE(id) << text;
    EXPECT_EQ(id.error(), ProtocolError::kBadEventId) << text;
  }
  EXPECT_FALSE(parse_event_id(std::string(33, 'a') + "-1"));
  EXPECT_FALSE(parse_event_id(std::string("ab\0c-1", 6)));
}

}  // namespace
}  // namespace sg::protocol
