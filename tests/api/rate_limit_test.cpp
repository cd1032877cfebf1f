// Per-token rate limits on a test clock: a minute's allowance, continuous refill,
// Retry-After in whole seconds, token debts.
#include "clusterd/api/rate_limit.h"

#include <gtest/gtest.h>

#include "clusterd/api/auth.h"

namespace clusterd {
namespace {

TEST(RateLimiter, RequestsPerMinuteAllowsABurstThenRefillsContinuously) {
  double now = 100;
  RateLimiter limiter({{"team", {6, 0}}}, [&] { return now; });
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(limiter.admit("team").allowed) << i;
  auto refused = limiter.admit("team");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_s, 10);  // one request per 10 s
  EXPECT_NE(refused.message.find("6 requests per minute"), std::string::npos) << refused.message;
  now += 9.5;
  EXPECT_FALSE(limiter.admit("team").allowed);
  EXPECT_EQ(limiter.admit("team").retry_after_s, 1);
  now += 0.5;
  EXPECT_TRUE(limiter.admit("team").allowed);
  EXPECT_FALSE(limiter.admit("team").allowed);
}

TEST(RateLimiter, TokensPerMinuteLeavesADebtThatLaterRequestsWaitOut) {
  double now = 0;
  RateLimiter limiter({{"team", {0, 600}}}, [&] { return now; });
  EXPECT_TRUE(limiter.admit("team").allowed);
  limiter.charge("team", 900);  // 300 tokens over: 30 s of refill, plus one token
  auto refused = limiter.admit("team");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_s, 31);
  EXPECT_NE(refused.message.find("600 tokens per minute"), std::string::npos);
  now += 31;
  EXPECT_TRUE(limiter.admit("team").allowed);
}

TEST(RateLimiter, TokensWithoutLimitsAndUnknownNamesAreNeverRefused) {
  RateLimiter limiter({{"ops", {0, 0}}, {"team", {1, 0}}}, [] { return 0.0; });
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(limiter.admit("ops").allowed);
    ASSERT_TRUE(limiter.admit("anonymous").allowed);
  }
  EXPECT_TRUE(limiter.admit("team").allowed);
  EXPECT_FALSE(limiter.admit("team").allowed);
}

TEST(RateLimiter, TheAllowanceNeverGrowsBeyondOneMinute) {
  double now = 0;
  RateLimiter limiter({{"team", {2, 0}}}, [&] { return now; });
  now += 3600;  // an idle hour still allows only a minute's burst
  EXPECT_TRUE(limiter.admit("team").allowed);
  EXPECT_TRUE(limiter.admit("team").allowed);
  EXPECT_FALSE(limiter.admit("team").allowed);
}

TEST(TokenFile, RateLimitKeysAreReadAndCheckedWithTheTokenNamed) {
  auto store = parse_token_text(
      "[[tokens]]\nname = \"team\"\ntoken = \"0123456789abcdef\"\nscopes = [\"inference\"]\n"
      "requests_per_minute = 30\ntokens_per_minute = 5000\n",
      "t.toml");
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  EXPECT_EQ(store->tokens()[0].requests_per_minute, 30);
  EXPECT_EQ(store->tokens()[0].tokens_per_minute, 5000);
  auto bad = parse_token_text(
      "[[tokens]]\nname = \"team\"\ntoken = \"0123456789abcdef\"\nscopes = [\"inference\"]\n"
      "tokens_per_minute = \"lots\"\n",
      "t.toml");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("'tokens_per_minute'"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("team"), std::string::npos);
}

}  // namespace
}  // namespace clusterd
