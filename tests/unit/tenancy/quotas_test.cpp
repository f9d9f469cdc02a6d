#include "tenancy/tenancy.hpp"

#include <gtest/gtest.h>

namespace sg::tenancy {
namespace {

using namespace std::chrono_literals;

QuotaOptions options(std::uint64_t rate, std::uint64_t burst, std::size_t max_overrides = 10) {
  QuotaOptions o;
  o.defaults[Quota::kPublishRate] = rate;
  o.defaults[Quota::kPublishBurst] = burst;
  o.max_overrides = max_overrides;
  return o;
}

TEST(Quotas, NamesRoundTrip) {
  for (std::size_t i = 0; i < kQuotaCount; ++i) {
    const auto q = static_cast<Quota>(i);
    EXPECT_EQ(quota_from_name(quota_name(q)), q);
  }
  EXPECT_EQ(quota_from_name("maxconnections"), std::nullopt);
}

TEST(Quotas, PublishBucketTakesBatchesWholeAndRefills) {
  metrics::Registry registry;
  Quotas q(options(10, 5), registry);
  const auto t0 = Quotas::Clock::time_point{} + 1h;
  EXPECT_TRUE(q.take_publish("a", 3, t0).allowed);
  // Two tokens left: a batch of 3 takes none of them.
  const auto refused = q.take_publish("a", 3, t0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, 1);
  EXPECT_TRUE(q.take_publish("a", 2, t0).allowed);
  EXPECT_FALSE(q.take_publish("a", 1, t0).allowed);
  // Another org has its own bucket.
  EXPECT_TRUE(q.take_publish("b", 5, t0).allowed);
  // 10/s: 100 ms gives one token back.
  EXPECT_TRUE(q.take_publish("a", 1, t0 + 100ms).allowed);
  EXPECT_FALSE(q.take_publish("a", 1, t0 + 100ms).allowed);
  // Never more than the burst.
  EXPECT_TRUE(q.take_publish("a", 5, t0 + 1h).allowed);
  EXPECT_FALSE(q.take_publish("a", 1, t0 + 1h).allowed);
}

TEST(Quotas, BurstZeroMeansOneSecondOfRate) {
  metrics::Registry registry;
  Quotas q(options(4, 0), registry);
  const auto t0 = Quotas::Clock::time_point{} + 1h;
  EXPECT_TRUE(q.take_publish("a", 4, t0).allowed);
  EXPECT_FALSE(q.take_publish("a", 1, t0).allowed);
}

TEST(Quotas, EachNodeHoldsAnEqualShareOfThePublishBucket) {
  metrics::Registry registry;
  Quotas q(options(10, 8), registry);
  q.set_cluster_view(2, {{"a", 3}});
  EXPECT_EQ(q.remote_connections("a"), 3u);
  EXPECT_EQ(q.remote_connections("b"), 0u);
  const auto t0 = Quotas::Clock::time_point{} + 1h;
  EXPECT_TRUE(q.take_publish("a", 4, t0).allowed);
  EXPECT_FALSE(q.take_publish("a", 1, t0).allowed);
  // 5/s on this node: 200 ms gives one token back.
  EXPECT_TRUE(q.take_publish("a", 1, t0 + 200ms).allowed);
  EXPECT_FALSE(q.take_publish("a", 1, t0 + 200ms).allowed);
}

TEST(Quotas, UnlimitedByDefault) {
  metrics::Registry registry;
  Quotas q(QuotaOptions{}, registry);
  const auto t0 = Quotas::Clock::time_point{} + 1h;
  EXPECT_TRUE(q.take_publish("a", 1000000, t0).allowed);
  EXPECT_TRUE(q.take_upload_bytes("a", 1ull << 40, Quotas::WallClock::now()).allowed);
  EXPECT_EQ(q.tracked_orgs(), 0u);
}

TEST(Quotas, OverrideReplacesOnlyTheQuotasItNames) {
  metrics::Registry registry;
  QuotaOptions o = options(10, 0);
  o.defaults[Quota::kMaxConnections] = 7;
  Quotas q(o, registry);
  Override ov;
  ov.values[static_cast<std::size_t>(Quota::kPublishRate)] = 0;  // unlimited for this org
  ASSERT_EQ(q.set_override("a", ov), Quotas::SetResult::kSet);
  EXPECT_EQ(q.limit("a", Quota::kPublishRate), 0u);
  EXPECT_EQ(q.limit("a", Quota::kMaxConnections), 7u);
  EXPECT_EQ(q.limit("b", Quota::kPublishRate), 10u);
  EXPECT_EQ(q.override_of("a"), ov);
  EXPECT_TRUE(q.remove_override("a"));
  EXPECT_FALSE(q.remove_override("a"));
  EXPECT_EQ(q.limit("a", Quota::kPublishRate), 10u);
  EXPECT_EQ(q.tracked_orgs(), 0u);
}

TEST(Quotas, OverridesAreCapped) {
  metrics::Registry registry;
  Quotas q(options(0, 0, 2), registry);
  Override ov;
  ov.values[0] = 1;
  EXPECT_EQ(q.set_override("a", ov), Quotas::SetResult::kSet);
  EXPECT_EQ(q.set_override("b", ov), Quotas::SetResult::kSet);
  EXPECT_EQ(q.set_override("c", ov), Quotas::SetResult::kTooManyOverrides);
  EXPECT_EQ(q.set_override("a", ov), Quotas::SetResult::kSet);  // replacing is not adding
  EXPECT_EQ(q.overrides(), 2u);
  EXPECT_EQ(q.set_override("a", Override{}), Quotas::SetResult::kSet);  // empty removes
  EXPECT_EQ(q.overrides(), 1u);
  EXPECT_EQ(q.set_override("c", ov), Quotas::SetResult::kSet);
}

TEST(Quotas, ReplacingOverridesMakesTheStoredSetTheOnlyOne) {
  metrics::Registry registry;
  Quotas q(options(0, 0, 2), registry);
  Override one;
  one.values[0] = 1;
  Override two;
  two.values[0] = 2;
  ASSERT_EQ(q.set_override("a", one), Quotas::SetResult::kSet);
  EXPECT_EQ(q.overrides_version(), "");
  q.replace_overrides({{"b", two}, {"c", one}, {"d", one}}, "7");
  EXPECT_EQ(q.overrides_version(), "7");
  EXPECT_FALSE(q.override_of("a"));  // not in the store: gone
  EXPECT_EQ(q.overrides(), 2u);      // --org-max-overrides still bounds the node
  q.replace_overrides({{"b", one}}, "8");
  EXPECT_EQ(q.override_of("b"), one);
  EXPECT_EQ(q.limit("b", Quota::kMaxConnections), 1u);
  EXPECT_EQ(q.overrides(), 1u);
  q.replace_overrides({}, "9");
  EXPECT_EQ(q.overrides(), 0u);
  EXPECT_EQ(q.tracked_orgs(), 0u);
}

TEST(Quotas, IdleOrgsAreForgotten) {
  metrics::Registry registry;
  Quotas q(options(1000, 1), registry);
  const auto t0 = Quotas::Clock::now();
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(q.take_publish("org" + std::to_string(i), 1, t0).allowed);
  }
  EXPECT_EQ(q.tracked_orgs(), 100u);
  // Every bucket refilled long ago: the next call's sweep forgets them all but the caller.
  EXPECT_TRUE(q.take_publish("x", 1, t0 + 10s).allowed);
  EXPECT_EQ(q.tracked_orgs(), 1u);
}

TEST(Quotas, UploadBytesPerDayResetsAtMidnightUtc) {
  metrics::Registry registry;
  QuotaOptions o;
  o.defaults[Quota::kUploadBytesPerDay] = 100;
  Quotas q(o, registry);
  const auto day = Quotas::WallClock::time_point{} + std::chrono::hours(24 * 20000);
  const auto noon = day + 12h;
  EXPECT_TRUE(q.take_upload_bytes("a", 60, noon).allowed);
  const auto refused = q.take_upload_bytes("a", 41, noon);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, 12 * 3600);
  EXPECT_TRUE(q.take_upload_bytes("a", 40, noon).allowed);
  EXPECT_FALSE(q.take_upload_bytes("a", 1, noon).allowed);
  EXPECT_TRUE(q.take_upload_bytes("a", 100, day + 25h).allowed);
  EXPECT_FALSE(q.take_upload_bytes("b", 101, noon).allowed);
}

TEST(Quotas, RefusalsAreCountedByQuota) {
  metrics::Registry registry;
  Quotas q(QuotaOptions{}, registry);
  q.count_refusal(Quota::kPublishRate);
  q.count_refusal(Quota::kPublishRate);
  const std::string text = registry.prometheus_text();
  EXPECT_NE(text.find("streamgate_quota_refusals_total{quota=\"publishRate\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("streamgate_quota_refusals_total{quota=\"maxConnections\"} 0"),
            std::string::npos);
}

TEST(Quotas, EgressIsUnlimitedWithoutTheQuota) {
  metrics::Registry registry;
  Quotas q(options(0, 0), registry);
  const auto t0 = Quotas::Clock::time_point{} + 1h;
  EXPECT_EQ(q.egress_allowance("a", 1u << 30, t0), 1u << 30);
  q.spend_egress("a", 1u << 30, t0);
  EXPECT_EQ(q.egress_allowance("a", 1u << 30, t0), 1u << 30);
  EXPECT_EQ(q.tracked_orgs(), 0u);
}

TEST(Quotas, AnEgressOverrideFromTheStoreLimitsAndItsRemovalLifts) {
  metrics::Registry registry;
  Quotas q(options(0, 0), registry);
  const auto t0 = Quotas::Clock::time_point{} + 1h;
  Override egress;
  egress.values[static_cast<std::size_t>(Quota::kEgressBytes)] = 1000;
  q.replace_overrides({{"a", egress}}, "1");
  EXPECT_EQ(q.egress_allowance("a", 5000, t0), 1000u);
  EXPECT_EQ(q.egress_allowance("b", 5000, t0), 5000u);
  q.replace_overrides({}, "2");
  EXPECT_EQ(q.egress_allowance("a", 5000, t0), 5000u);
}

TEST(Quotas, EgressBucketHoldsOneSecondAndRefills) {
  metrics::Registry registry;
  QuotaOptions o = options(0, 0);
  o.defaults[Quota::kEgressBytes] = 1000;
  Quotas q(o, registry);
  const auto t0 = Quotas::Clock::time_point{} + 1h;
  // A full bucket: all of a small queue, a second's worth of a large one.
  EXPECT_EQ(q.egress_allowance("a", 300, t0), 300u);
  EXPECT_EQ(q.egress_allowance("a", 5000, t0), 1000u);
  q.spend_egress("a", 1000, t0);
  EXPECT_EQ(q.egress_allowance("a", 5000, t0), 0u);
  // Another org has its own bucket.
  EXPECT_EQ(q.egress_allowance("b", 5000, t0), 1000u);
  // Refilled at 1000 B/s; a chunk (50 ms of the rate) before anything is let out.
  EXPECT_EQ(q.egress_allowance("a", 5000, t0 + 20ms), 0u);
  EXPECT_EQ(q.egress_allowance("a", 5000, t0 + 100ms), 100u);
  // Writes on several workers may overdraw it; the overdraft is waited out too.
  q.spend_egress("a", 600, t0 + 100ms);
  EXPECT_EQ(q.egress_allowance("a", 5000, t0 + 500ms), 0u);
  EXPECT_EQ(q.egress_allowance("a", 5000, t0 + 1s), 400u);
}

TEST(Quotas, EachNodeHoldsAnEqualShareOfTheEgressBucket) {
  metrics::Registry registry;
  QuotaOptions o = options(0, 0);
  o.defaults[Quota::kEgressBytes] = 1000;
  Quotas q(o, registry);
  q.set_cluster_view(2, {});
  const auto t0 = Quotas::Clock::time_point{} + 1h;
  // Half the quota on each of two nodes: a second's worth of 500 B/s.
  EXPECT_EQ(q.egress_allowance("a", 5000, t0), 500u);
  q.spend_egress("a", 500, t0);
  EXPECT_EQ(q.egress_allowance("a", 5000, t0 + 100ms), 50u);
  // The other node left: the share grows back to the whole quota.
  q.set_cluster_view(1, {});
  EXPECT_EQ(q.egress_allowance("b", 5000, t0), 1000u);
  // Four nodes: a quarter, and never below one byte a second however many there are.
  q.set_cluster_view(4, {});
  EXPECT_EQ(q.egress_allowance("c", 5000, t0), 250u);
  q.set_cluster_view(5000, {});
  EXPECT_EQ(q.egress_allowance("d", 5000, t0), 1u);
}

TEST(Quotas, ChannelBudgetCountsTheOtherNodesChannels) {
  metrics::Registry registry;
  QuotaOptions o = options(0, 0);
  o.defaults[Quota::kMaxChannels] = 2;
  Quotas q(o, registry);
  // Alone: the hub's local check as it was.
  auto b = q.channel_budget("a", {"hr"}, 2);
  EXPECT_EQ(b.topics, std::vector<std::string>{"hr"});
  EXPECT_EQ(b.max, 2u);
  EXPECT_FALSE(b.refused);
  // This node holds finance, another holds ops: one channel left here, and only for new ones.
  q.set_local_channels({{"a", {"finance"}}});
  q.set_remote_channels({{"a", {"ops"}}});
  b = q.channel_budget("a", {"hr", "ops"}, 2);
  EXPECT_EQ(b.topics, std::vector<std::string>{"hr"});
  EXPECT_EQ(b.max, 1u);
  EXPECT_FALSE(b.refused);
  // Channels the others hold cost nothing more.
  b = q.channel_budget("a", {"ops"}, 2);
  EXPECT_TRUE(b.topics.empty());
  EXPECT_FALSE(b.refused);
  // The others hold the whole quota: a new channel is refused, one this node has is not.
  q.set_remote_channels({{"a", {"legal", "ops"}}});
  EXPECT_TRUE(q.channel_budget("a", {"hr"}, 2).refused);
  EXPECT_FALSE(q.channel_budget("a", {"finance"}, 2).refused);
  // Another org, and no quota.
  EXPECT_EQ(q.channel_budget("b", {"hr"}, 2).max, 2u);
  EXPECT_EQ(q.channel_budget("a", {"hr"}, 0).max, 0u);
  // The snapshot carries at most the quota's number of channels per org.
  q.set_local_channels({{"a", {"c", "b", "a"}}, {"b", {}}});
  const auto snap = q.local_channels_for_snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap.at("a"), (std::vector<std::string>{"a", "b"}));
}

TEST(Quotas, EgressOverrideAppliesAndZeroLiftsIt) {
  metrics::Registry registry;
  Quotas q(options(0, 0), registry);
  const auto t0 = Quotas::Clock::time_point{} + 1h;
  Override o;
  o.values[static_cast<std::size_t>(Quota::kEgressBytes)] = 100;
  ASSERT_EQ(q.set_override("a", o), Quotas::SetResult::kSet);
  EXPECT_EQ(q.egress_allowance("a", 500, t0), 100u);
  EXPECT_EQ(q.egress_allowance("b", 500, t0), 500u);
  o.values[static_cast<std::size_t>(Quota::kEgressBytes)] = 0;
  ASSERT_EQ(q.set_override("a", o), Quotas::SetResult::kSet);
  EXPECT_EQ(q.egress_allowance("a", 500, t0), 500u);
  o.values[static_cast<std::size_t>(Quota::kEgressBytes)] = 100;
  ASSERT_EQ(q.set_override("a", o), Quotas::SetResult::kSet);
  EXPECT_TRUE(q.remove_override("a"));
  EXPECT_EQ(q.egress_allowance("a", 500, t0), 500u);
}

TEST(Quotas, ChatBucketIsPerOrgAndRefills) {
  metrics::Registry registry;
  QuotaOptions o = options(0, 0);
  o.defaults[Quota::kChatRate] = 2;
  o.defaults[Quota::kChatBurst] = 3;
  Quotas q(o, registry);
  const auto t0 = Quotas::Clock::time_point{} + 1h;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(q.take_chat("a", t0).allowed);
  const Decision refused = q.take_chat("a", t0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, 1);
  EXPECT_TRUE(q.take_chat("b", t0).allowed);
  // 2/s: half a second gives one message back.
  EXPECT_TRUE(q.take_chat("a", t0 + 500ms).allowed);
  EXPECT_FALSE(q.take_chat("a", t0 + 500ms).allowed);
  // An override of 0 lifts it for that org.
  Override unlimited;
  unlimited.values[static_cast<std::size_t>(Quota::kChatRate)] = 0;
  ASSERT_EQ(q.set_override("a", unlimited), Quotas::SetResult::kSet);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(q.take_chat("a", t0 + 500ms).allowed);
}

TEST(ParseOverride, AcceptsKnownQuotasAsWholeNumbers) {
  const auto p = parse_override(R"({"maxConnections":3,"publishRate":100,"uploadBytesPerDay":0})");
  ASSERT_TRUE(p.value) << p.message;
  EXPECT_EQ(serialize_override(*p.value),
            R"({"maxConnections":3,"publishRate":100,"uploadBytesPerDay":0})");
  EXPECT_EQ(serialize_override(*parse_override("{}").value), "{}");
  EXPECT_TRUE(parse_override(R"({"maxChannels":5.0})").value);
}

TEST(ParseOverride, NamesWhatItRefuses) {
  auto p = parse_override(R"({"maxConnections":3,"maxConnection":1})");
  EXPECT_FALSE(p.value);
  EXPECT_EQ(p.error, "unknown_field");
  EXPECT_EQ(p.field, "maxConnection");
  for (const char* bad : {R"({"publishRate":-1})", R"({"publishRate":1.5})",
                          R"({"publishRate":"10"})", R"({"publishRate":null})",
                          R"({"publishRate":9007199254740992})", R"({"publishRate":1e300})"}) {
    p = parse_override(bad);
    EXPECT_FALSE(p.value) << bad;
    EXPECT_EQ(p.error, "bad_value") << bad;
    EXPECT_EQ(p.field, "publishRate") << bad;
  }
  EXPECT_EQ(parse_override("[1]").error, "bad_body");
  EXPECT_EQ(parse_override("{").error, "malformed_json");
}

}  // namespace
}  // namespace sg::tenancy
