#include "auth/auth.hpp"

#include <gtest/gtest.h>

namespace sg::auth {
namespace {

TEST(ApiKey, MatchesAnyConfiguredKey) {
  const std::vector<std::string> keys{"key-one", "key-two"};
  EXPECT_TRUE(api_key_matches("key-one", keys));
  EXPECT_TRUE(api_key_matches("key-two", keys));
}

TEST(ApiKey, RejectsUnknownPrefixAndExtendedKeys) {
  const std::vector<std::string> keys{"key-one"};
  EXPECT_FALSE(api_key_matches("key-two", keys));
  EXPECT_FALSE(api_key_matches("key-on", keys));
  EXPECT_FALSE(api_key_matches("key-one ", keys));
  EXPECT_FALSE(api_key_matches("KEY-ONE", keys));
}

TEST(ApiKey, NeverMatchesAnEmptyPresentedKey) {
  EXPECT_FALSE(api_key_matches("", {"", "key"}));
  EXPECT_FALSE(api_key_matches("", {}));
}

TEST(ApiKey, MatchesNothingWhenNoKeysAreConfigured) {
  EXPECT_FALSE(api_key_matches("key", {}));
}

TEST(BearerToken, ExtractsTheToken) {
  EXPECT_EQ(bearer_token("Bearer abc.def.ghi"), "abc.def.ghi");
}

TEST(BearerToken, AcceptsTheSchemeInAnyCase) {
  EXPECT_EQ(bearer_token("bearer t1"), "t1");
  EXPECT_EQ(bearer_token("BEARER t2"), "t2");
  EXPECT_EQ(bearer_token("BeArEr t3"), "t3");
}

TEST(BearerToken, ToleratesExtraSpaces) {
  EXPECT_EQ(bearer_token("  Bearer    tok  "), "tok");
  EXPECT_EQ(bearer_token("Bearer\ttok"), "tok");
}

TEST(BearerToken, ReturnsEmptyForOtherSchemesOrShapes) {
  EXPECT_EQ(bearer_token(""), "");
  EXPECT_EQ(bearer_token("Bearer"), "");
  EXPECT_EQ(bearer_token("Bearer   "), "");
  EXPECT_EQ(bearer_token("Bearertok"), "");
  EXPECT_EQ(bearer_token("Basic dXNlcjpwYXNz"), "");
  EXPECT_EQ(bearer_token("Bearer two tokens"), "");
  EXPECT_EQ(bearer_token("tok"), "");
}

TEST(BearerToken, ReturnsAViewIntoTheHeader) {
  const std::string header = "Bearer xyz";
  const std::string_view token = bearer_token(header);
  EXPECT_EQ(token.data(), header.data() + 7);
}

}  // namespace
}  // namespace sg::auth
