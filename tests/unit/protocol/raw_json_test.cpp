#include "protocol/raw_json.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace sg::protocol::detail {
namespace {

std::vector<std::string> elements(std::string_view text) {
  auto found = raw_array_elements(text);
  EXPECT_TRUE(found) << text;
  if (!found) return {};
  return {found->begin(), found->end()};
}

std::string member(std::string_view text, std::string_view key = "data") {
  auto found = raw_member(text, key);
  EXPECT_TRUE(found) << text;
  return found ? std::string(*found) : "<error>";
}

TEST(RawJson, SplitsAnArrayIntoItsElementsWithoutSurroundingWhitespace) {
  EXPECT_EQ(elements(R"( [ 1 , "a,]" ,{"k":[1,{"x":"}"}]}, [ [] ] ,null,-2.5e+3 ] )"),
            (std::vector<std::string>{"1", R"("a,]")", R"({"k":[1,{"x":"}"}]})", "[ [] ]", "null",
                                      "-2.5e+3"}));
  EXPECT_EQ(elements("[]"), std::vector<std::string>{});
  EXPECT_EQ(elements(" [ \n ] "), std::vector<std::string>{});
  EXPECT_EQ(elements(R"(["\\",  "\""])"), (std::vector<std::string>{R"("\\")", R"("\"")"}));
}

TEST(RawJson, FindsATopLevelMemberValue) {
  EXPECT_EQ(member(R"({"data":{"a":[1,2]}})"), R"({"a":[1,2]})");
  EXPECT_EQ(member(R"( { "x" : 1 , "data" :	"v" } )"), R"("v")");
  EXPECT_EQ(member(R"({"data":1.50})"), "1.50");
  EXPECT_EQ(member(R"({"data":true,"z":0})"), "true");
  EXPECT_EQ(member(R"({"data":null})"), "null");
}

TEST(RawJson, GivesAnEmptyViewWhenTheMemberIsAbsent) {
  EXPECT_EQ(member("{}"), "");
  EXPECT_EQ(member(R"({"Data":1,"dat":2,"datas":3})"), "");
}

TEST(RawJson, IgnoresKeysNestedInOtherMembersOrInsideStrings) {
  EXPECT_EQ(member(R"({"a":{"data":1},"b":[{"data":2}],"c":"\"data\":3"})"), "");
  EXPECT_EQ(member(R"({"a":{"data":1},"data":[{"data":2}],"c":"{\"data\":3}"})"),
            R"([{"data":2}])");
}

// A quote ends a string unless an odd run of backslashes precedes it.
TEST(RawJson, EndsStringsOnlyAtUnescapedQuotes) {
  EXPECT_EQ(member(R"({"a":"q\"data\":5","data":6})"), "6");
  EXPECT_EQ(member(R"({"a":"x\\","data":7})"), "7");
  EXPECT_EQ(member(R"({"a":"x\\\"data\":1","data":8})"), "8");
  EXPECT_EQ(member(R"({"\\":"\\\\","data":["\"",{"k":"\\"}]})"), R"(["\"",{"k":"\\"}])");
  EXPECT_FALSE(raw_member(R"({"a":"x\","data":1})", "data"));
}

TEST(RawJson, ComparesKeysByTheirUnescapedValue) {
  EXPECT_EQ(member(R"({"d\u0061ta":7})"), "7");
  EXPECT_EQ(member(R"({"\u0064\u0061\u0074\u0061":8})"), "8");
  EXPECT_EQ(member(R"({"dat\u0061\u0000":9})"), "");
  EXPECT_EQ(member(R"({"a\/b":1})", "a/b"), "1");
  EXPECT_EQ(member(R"({"caf\u00e9":1})", "café"), "1");
}

TEST(RawJson, TakesTheLastOfDuplicateKeys) {
  EXPECT_EQ(member(R"({"data":1,"data":2})"), "2");
  EXPECT_EQ(member(R"({"data":1,"d\u0061ta":[3],"x":0})"), "[3]");
}

TEST(RawJson, FailsInsteadOfOverrunningTextItWasWronglyGiven) {
  EXPECT_FALSE(raw_array_elements(""));
  EXPECT_FALSE(raw_array_elements("{}"));
  EXPECT_FALSE(raw_array_elements("[1"));
  EXPECT_FALSE(raw_array_elements("[1,"));
  EXPECT_FALSE(raw_array_elements(R"(["abc)"));
  EXPECT_FALSE(raw_array_elements(R"(["ab\)"));
  EXPECT_FALSE(raw_array_elements("[[[1]"));
  EXPECT_FALSE(raw_member("", "data"));
  EXPECT_FALSE(raw_member("[]", "data"));
  EXPECT_FALSE(raw_member(R"({"data")", "data"));
  EXPECT_FALSE(raw_member(R"({"data":)", "data"));
  EXPECT_FALSE(raw_member(R"({"data":{"a":1})", "data"));
  EXPECT_FALSE(raw_member(R"({data:1})", "data"));
  EXPECT_FALSE(raw_member(R"({"data":1 "x":2})", "data"));
}

TEST(RawJson, MinifiesOutsideStringsOnly) {
  EXPECT_EQ(minify_json(" {\n\t\"a b\" : [ 1 ,\r\n 2.50 ] , \"c\" : \" x  y \" } "),
            R"({"a b":[1,2.50],"c":" x  y "})");
  EXPECT_EQ(minify_json(R"([ "q\" z" , "e\\" , "\u00e9 \n" ])"), R"(["q\" z","e\\","\u00e9 \n"])");
  EXPECT_EQ(minify_json("12345678901234567890123"), "12345678901234567890123");
  EXPECT_EQ(minify_json(""), "");
  // Already compact: the same bytes, spaces inside strings kept.
  EXPECT_EQ(minify_json(R"({"a":"b c","d":[1,{"e":"\" "}]})"),
            R"({"a":"b c","d":[1,{"e":"\" "}]})");
  // Cut short (the caller checked it is JSON; these only must not read past the end).
  EXPECT_EQ(minify_json(R"([ "ab\)"), R"(["ab\)");
  EXPECT_EQ(minify_json("[ \"a  b"), "[\"a  b");
  EXPECT_EQ(minify_json("1 \t\r\n"), "1");
  // Room asked for after the value is there without a reallocation.
  const std::string roomy = minify_json("[1, 2]", 100);
  EXPECT_EQ(roomy, "[1,2]");
  EXPECT_GE(roomy.capacity(), 5u + 100u);
}

// The byte-at-a-time definition: outside strings whitespace goes; a string runs to the first
// quote not taken by a backslash before it, which takes the byte after it whatever it is.
std::string minify_reference(std::string_view v) {
  std::string out;
  for (std::size_t i = 0; i < v.size();) {
    if (v[i] == '"') {
      std::size_t end = i + 1;
      while (end < v.size() && v[end] != '"') end += v[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, v.size());
      out.append(v.substr(i, end - i));
      i = end;
    } else {
      if (v[i] != ' ' && v[i] != '\t' && v[i] != '\n' && v[i] != '\r') out.push_back(v[i]);
      ++i;
    }
  }
  return out;
}

TEST(RawJson, MinifyAgreesWithTheByteAtATimeDefinition) {
  // Runs of backslashes before quotes, whitespace in and out of strings, values cut short.
  constexpr std::string_view kAlphabet = "\"\\ \n[a,";
  std::mt19937 random(20261205);
  for (int round = 0; round < 20000; ++round) {
    std::string text(random() % 24, ' ');
    for (char& c : text) c = kAlphabet[random() % kAlphabet.size()];
    ASSERT_EQ(minify_json(text), minify_reference(text)) << text;
  }
}

}  // namespace
}  // namespace sg::protocol::detail
