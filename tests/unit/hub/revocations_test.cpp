// The node's revocation table (POST /v2/realtime/revoke): which tokens it refuses, for how
// long, and its bound, which refuses new entries rather than forget one.
#include "hub/hub.hpp"

#include <gtest/gtest.h>

namespace sg::hub {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

const Clock::time_point kNow = Clock::time_point(1'800'000'000s);

broker::Revocation revoke(std::string org, std::string user, std::int64_t issued_before,
                          Clock::duration lives = 3600s) {
  return broker::Revocation{std::move(org), std::move(user), issued_before, kNow + lives};
}

TEST(Revocations, RefusesTokensIssuedBeforeAndThoseWithoutIat) {
  Revocations table(10);
  EXPECT_FALSE(table.revoked("o", "u", std::nullopt, kNow));  // empty: nothing refused
  ASSERT_EQ(table.add(revoke("o", "u", 1000), kNow), Revocations::Add::kAdded);
  EXPECT_TRUE(table.revoked("o", "u", 999, kNow));
  EXPECT_TRUE(table.revoked("o", "u", std::nullopt, kNow));
  EXPECT_FALSE(table.revoked("o", "u", 1000, kNow));
  EXPECT_FALSE(table.revoked("o", "v", 999, kNow));
  EXPECT_FALSE(table.revoked("p", "u", 999, kNow));
}

TEST(Revocations, OrgAndUserStayApart) {
  Revocations table(10);
  table.add(revoke("a", "bc", 1000), kNow);
  EXPECT_FALSE(table.revoked("ab", "c", 1, kNow));
}

TEST(Revocations, EndsAtItsExpiry) {
  Revocations table(10);
  table.add(revoke("o", "u", 1000, 60s), kNow);
  EXPECT_TRUE(table.revoked("o", "u", 1, kNow + 59s));
  EXPECT_FALSE(table.revoked("o", "u", 1, kNow + 60s));
}

TEST(Revocations, ASecondRevokeOfTheSameUserKeepsTheLaterBoundAndExpiry) {
  Revocations table(10);
  table.add(revoke("o", "u", 2000, 60s), kNow);
  table.add(revoke("o", "u", 1000, 120s), kNow);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_TRUE(table.revoked("o", "u", 1500, kNow + 90s));
}

TEST(Revocations, FullTableRefusesNewUsersButTakesRepeatsAndReusesExpiredRoom) {
  Revocations table(2);
  EXPECT_EQ(table.add(revoke("o", "a", 10, 60s), kNow), Revocations::Add::kAdded);
  EXPECT_EQ(table.add(revoke("o", "b", 10, 3600s), kNow), Revocations::Add::kAdded);
  EXPECT_EQ(table.add(revoke("o", "c", 10), kNow), Revocations::Add::kFull);
  EXPECT_FALSE(table.revoked("o", "c", 1, kNow));
  EXPECT_EQ(table.add(revoke("o", "a", 20, 60s), kNow), Revocations::Add::kAdded);
  // Once a's entry expired, its room goes to a new user; b is never forgotten.
  EXPECT_EQ(table.add(revoke("o", "c", 10), kNow + 61s), Revocations::Add::kAdded);
  EXPECT_EQ(table.size(), 2u);
  EXPECT_TRUE(table.revoked("o", "b", 1, kNow + 61s));
  EXPECT_TRUE(table.revoked("o", "c", 1, kNow + 61s));
}

}  // namespace
}  // namespace sg::hub
