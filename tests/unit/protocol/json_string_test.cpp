#include "protocol/protocol.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <string>

namespace sg::protocol {
namespace {

std::string json_literal(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

// What a JSON parser reads back from the literal.
std::string read_back(const std::string& literal) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(literal, ec);
  EXPECT_FALSE(ec) << literal;
  if (ec || !v.is_string()) return "<not a string>";
  return std::string(v.get_string().data(), v.get_string().size());
}

TEST(JsonString, QuotesPlainText) {
  EXPECT_EQ(json_literal(""), R"("")");
  EXPECT_EQ(json_literal("finance"), R"("finance")");
}

TEST(JsonString, AppendsToWhatIsThere) {
  std::string out = "[";
  append_json_string(out, "a");
  out.push_back(',');
  append_json_string(out, "b");
  EXPECT_EQ(out, R"(["a","b")");
}

TEST(JsonString, EscapesQuoteAndBackslash) {
  EXPECT_EQ(json_literal(R"(a"b\c)"), R"("a\"b\\c")");
  EXPECT_EQ(json_literal("/"), R"("/")");
}

TEST(JsonString, UsesShortFormsForCommonControlCharacters) {
  EXPECT_EQ(json_literal("\b\f\n\r\t"), R"("\b\f\n\r\t")");
}

TEST(JsonString, EscapesOtherControlCharactersAsUnicode) {
  EXPECT_EQ(json_literal(std::string("\0\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(json_literal("\x7f"), "\"\x7f\"");
}

TEST(JsonString, PassesValidUtf8Through) {
  const std::string text = "café ☃ 😀 日本語 \xef\xbf\xbf \xf4\x8f\xbf\xbf";
  EXPECT_EQ(json_literal(text), "\"" + text + "\"");
  EXPECT_EQ(read_back(json_literal(text)), text);
}

TEST(JsonString, ReplacesInvalidUtf8WithReplacementCharacter) {
  const std::string r = "\xef\xbf\xbd";
  EXPECT_EQ(json_literal("a\xff"
                         "b"),
            "\"a" + r + "b\"");
  EXPECT_EQ(json_literal("\x80"), "\"" + r + "\"");                  // lone continuation byte
  EXPECT_EQ(json_literal("\xc3"), "\"" + r + "\"");                  // truncated at the end
  EXPECT_EQ(json_literal("\xc3x"), "\"" + r + "x\"");                // truncated before ASCII
  EXPECT_EQ(json_literal("\xc0\xaf"), "\"" + r + r + "\"");          // overlong '/'
  EXPECT_EQ(json_literal("\xe0\x80\xaf"), "\"" + r + r + r + "\"");  // overlong, 3 bytes
  EXPECT_EQ(json_literal("\xed\xa0\x80"), "\"" + r + r + r + "\"");  // UTF-16 surrogate
  EXPECT_EQ(json_literal("\xf4\x90\x80\x80"), "\"" + r + r + r + r + "\"");  // above U+10FFFF
  EXPECT_EQ(json_literal("\xf5"), "\"" + r + "\"");
  // A truncated sequence is replaced once as a whole (its maximal subpart).
  EXPECT_EQ(json_literal("\xe2\x98"), "\"" + r + "\"");
  EXPECT_EQ(json_literal("\xf0\x9f\x98"
                         "\""),
            "\"" + r + "\\\"\"");
}

TEST(JsonString, AlwaysProducesAStringJsonReadsBack) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  const std::string literal = json_literal(all);
  const std::string back = read_back(literal);
  // ASCII survives exactly; the 128 high bytes, none of which starts a valid sequence on its
  // own here, each become one U+FFFD.
  EXPECT_EQ(back.substr(0, 128), all.substr(0, 128));
  std::string replacements;
  for (int i = 0; i < 128; ++i) replacements += "\xef\xbf\xbd";
  EXPECT_EQ(back.substr(128), replacements);
}

}  // namespace
}  // namespace sg::protocol
