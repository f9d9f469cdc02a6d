#include "core/core.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sg::core {
namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// --- trim and iequals ------------------------------------------------------------------------

TEST(Trim, RemovesHttpWhitespaceAtBothEnds) {
  EXPECT_EQ(trim("  a b \t"), "a b");
  EXPECT_EQ(trim("\ta"), "a");
  EXPECT_EQ(trim("a"), "a");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim(" \t "), "");
}

TEST(Trim, LeavesLineBreaksUnlessTold) {
  EXPECT_EQ(trim(" a\r\n"), "a\r\n");
  EXPECT_EQ(trim("\n a \r\n", " \t\r\n"), "a");
  EXPECT_EQ(trim("\r\n", " \t\r\n"), "");
}

TEST(IEquals, IgnoresAsciiCaseOnly) {
  EXPECT_TRUE(iequals("Bearer", "bEARER"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_TRUE(iequals("application/offset+octet-stream", "Application/Offset+Octet-Stream"));
  EXPECT_FALSE(iequals("bearer", "bearer "));
  EXPECT_FALSE(iequals("a", "b"));
  // Bytes outside ASCII compare exactly: no locale folds them.
  EXPECT_FALSE(iequals("\xc3\xa9", "\xc3\x89"));
  EXPECT_TRUE(iequals("\xc3\xa9", "\xc3\xa9"));
  // '@' and '`' sit just outside the letters.
  EXPECT_FALSE(iequals("@", "`"));
}

// --- base64 ----------------------------------------------------------------------------------

std::optional<std::string> standard(std::string_view text) {
  std::string out;
  if (!base64_decode(text, out)) return std::nullopt;
  return out;
}

TEST(Base64Decode, DecodesStandardAlphabetWithPadding) {
  EXPECT_EQ(standard("").value(), "");
  EXPECT_EQ(standard("Zg==").value(), "f");
  EXPECT_EQ(standard("Zm8=").value(), "fo");
  EXPECT_EQ(standard("Zm9v").value(), "foo");
  EXPECT_EQ(standard("+/8=").value(), std::string("\xfb\xff", 2));
  // A Sec-WebSocket-Key: 16 bytes in 24 characters.
  EXPECT_EQ(standard("dGhlIHNhbXBsZSBub25jZQ==").value(), "the sample nonce");
}

TEST(Base64Decode, RejectsUrlAlphabetBadLengthPaddingAndStrayBits) {
  EXPECT_FALSE(standard("Zg"));
  EXPECT_FALSE(standard("dGhlIHNhbXBsZSBub25jZQ"));  // the padding is required
  EXPECT_FALSE(standard("-_8="));
  EXPECT_FALSE(standard("Z==="));
  EXPECT_FALSE(standard("===="));
  EXPECT_FALSE(standard("Zg==Zm9v"));
  EXPECT_FALSE(standard("Z=g="));
  EXPECT_FALSE(standard("Zh=="));  // non-zero bits past the last byte
  EXPECT_FALSE(standard("Zm9="));
  EXPECT_FALSE(standard("Zm9v\n"));
}

TEST(Base64Decode, RoundTripsEveryLengthAndByte) {
  std::string in;
  for (int i = 0; i < 256; ++i) {
    in.push_back(static_cast<char>(i));
    std::string out;
    const auto text =
        base64_encode(std::span(reinterpret_cast<const unsigned char*>(in.data()), in.size()));
    ASSERT_TRUE(base64_decode(text, out)) << text;
    EXPECT_EQ(out, in);
  }
}

// --- UTF-8 validation ---------------------------------------------------------------------

TEST(IsValidUtf8, AcceptsWellFormedText) {
  for (std::string_view s : {
           std::string_view(""), std::string_view("plain ascii"),
           std::string_view("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"),  // κόσμε
           std::string_view("\x00", 1),
           std::string_view("\x7F"),              // U+007F
           std::string_view("\xC2\x80"),          // U+0080
           std::string_view("\xDF\xBF"),          // U+07FF
           std::string_view("\xE0\xA0\x80"),      // U+0800
           std::string_view("\xED\x9F\xBF"),      // U+D7FF
           std::string_view("\xEE\x80\x80"),      // U+E000
           std::string_view("\xEF\xBF\xBD"),      // U+FFFD
           std::string_view("\xEF\xBF\xBF"),      // U+FFFF
           std::string_view("\xF0\x90\x80\x80"),  // U+10000
           std::string_view("\xF4\x8F\xBF\xBF"),  // U+10FFFF
       }) {
    EXPECT_TRUE(is_valid_utf8(s)) << testing::PrintToString(s);
  }
}

TEST(IsValidUtf8, RejectsMalformedText) {
  for (std::string_view s : {
           std::string_view("\x80"),                      // lone continuation
           std::string_view("\xBF"),                      //
           std::string_view("\x80\xBF\x80"),              // run of continuations
           std::string_view("\xC0\xAF"),                  // overlong '/' in 2 bytes
           std::string_view("\xE0\x80\xAF"),              // overlong '/' in 3 bytes
           std::string_view("\xF0\x80\x80\xAF"),          // overlong '/' in 4 bytes
           std::string_view("\xC1\xBF"),                  // largest 2-byte overlong
           std::string_view("\xE0\x9F\xBF"),              // largest 3-byte overlong
           std::string_view("\xF0\x8F\xBF\xBF"),          // largest 4-byte overlong
           std::string_view("\xC0\x80"),                  // overlong NUL
           std::string_view("\xED\xA0\x80"),              // U+D800
           std::string_view("\xED\xAD\xBF"),              // U+DB7F
           std::string_view("\xED\xBF\xBF"),              // U+DFFF
           std::string_view("\xED\xA0\x80\xED\xB0\x80"),  // surrogate pair
           std::string_view("\xF4\x90\x80\x80"),          // U+110000
           std::string_view("\xF7\xBF\xBF\xBF"),          // U+1FFFFF
           std::string_view("\xF8\x88\x80\x80\x80"),      // 5-byte form
           std::string_view("\xFC\x84\x80\x80\x80\x80"),  // 6-byte form
           std::string_view("\xFE"),                      //
           std::string_view("\xFF"),                      //
           std::string_view("\xC2"),                      // truncated 2-byte
           std::string_view("\xE0\xA0"),                  // truncated 3-byte
           std::string_view("\xF0\x90\x80"),              // truncated 4-byte
           std::string_view("\xC2\x41"),                  // lead then ASCII
           std::string_view("\xE2\x82\x41"),              //
           std::string_view("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80"
                            "edited"),
       }) {
    EXPECT_FALSE(is_valid_utf8(s)) << testing::PrintToString(s);
  }
}

TEST(IsValidUtf8, FindsABadByteAtEveryPositionAroundTheAsciiFastPath) {
  for (std::size_t len : {7u, 8u, 9u, 16u, 33u}) {
    for (std::size_t at = 0; at < len; ++at) {
      std::string s(len, 'a');
      s[at] = '\x80';
      EXPECT_FALSE(is_valid_utf8(s)) << len << " " << at;
      s[at] = '\x7F';
      EXPECT_TRUE(is_valid_utf8(s)) << len << " " << at;
    }
  }
  // A truncated sequence right after eight ASCII bytes.
  EXPECT_FALSE(is_valid_utf8("abcdefgh\xE2\x82"));
  EXPECT_TRUE(
      is_valid_utf8("abcdefgh\xE2\x82\xAC"
                    "abcdefgh"));
}

TEST(IsValidUtf8, AgreesWithADecodeOfEveryTwoAndThreeByteSequence) {
  // Every lead C0..EF with every continuation: valid exactly when it decodes to a code point
  // that needs that many bytes and is not a surrogate.
  for (int a = 0xC0; a <= 0xDF; ++a) {
    for (int b = 0; b <= 0xFF; ++b) {
      const bool want = a >= 0xC2 && (b & 0xC0) == 0x80;
      EXPECT_EQ(is_valid_utf8(bytes({a, b})), want) << a << " " << b;
    }
  }
  for (int a = 0xE0; a <= 0xEF; ++a) {
    for (int b = 0x80; b <= 0xBF; ++b) {
      const int cp = ((a & 0x0F) << 12) | ((b & 0x3F) << 6);
      const bool want = cp >= 0x800 && !(cp >= 0xD800 && cp <= 0xDFFF);
      EXPECT_EQ(is_valid_utf8(bytes({a, b, 0x80})), want) << a << " " << b;
    }
  }
}

// --- incremental UTF-8 -----------------------------------------------------------------------

TEST(Utf8Validator, AcceptsACharacterSplitAcrossPieces) {
  const std::string text = "caf\xC3\xA9 \xF0\x9F\x98\x80!";
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    Utf8Validator v;
    EXPECT_TRUE(v.feed(std::string_view(text).substr(0, cut))) << cut;
    EXPECT_TRUE(v.feed(std::string_view(text).substr(cut))) << cut;
    EXPECT_TRUE(v.complete()) << cut;
  }
}

TEST(Utf8Validator, IsIncompleteInsideACharacter) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("ab\xE2\x82"));
  EXPECT_FALSE(v.failed());
  EXPECT_FALSE(v.complete());
  EXPECT_TRUE(v.feed("\xAC"));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8Validator, StaysFailed) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("\xED"));
  EXPECT_FALSE(v.feed("\xA0\x80"));  // a surrogate, refused at its second byte
  EXPECT_TRUE(v.failed());
  EXPECT_FALSE(v.feed("plain"));
  EXPECT_FALSE(v.complete());
}

// --- JSON string literals (the compact style is tested byte for byte in protocol) ------------

std::string terminal(std::string_view text) {
  std::string out;
  append_json_string(out, text, JsonStyle::kTerminal);
  return out;
}

TEST(JsonString, TerminalStyleEscapesDelAndSpellsTheReplacementAsAnEscape) {
  EXPECT_EQ(terminal("a\x7f\x01\"\\\n"), R"("a\u007f\u0001\"\\\n")");
  EXPECT_EQ(terminal("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(terminal("a\xff"), R"("a\ufffd")");
  // One replacement per maximal subpart, as in the compact style.
  EXPECT_EQ(terminal("\xe2\x98x"), R"("\ufffdx")");
  EXPECT_EQ(terminal("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");
}

TEST(JsonString, CompactStyleKeepsDelAndWritesTheReplacementCharacter) {
  std::string out = "x";
  append_json_string(out, "\x7f\xff");
  EXPECT_EQ(out, "x\"\x7f\xef\xbf\xbd\"");
}

}  // namespace
}  // namespace sg::core
