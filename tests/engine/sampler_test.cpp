#include "clusterd/engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace clusterd {
namespace {

std::vector<float> random_logits(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 3);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<int32_t> ids(const CandidateList& l) {
  std::vector<int32_t> out;
  for (const auto& c : l.top) out.push_back(c.id);
  return out;
}

TEST(Candidates, TopKAreTheHighestLogitsInOrderWithTheWholeSlicesLogSumExp) {
  std::vector<float> logits = {0.5f, 3.0f, -1.0f, 2.0f, 2.5f};
  CandidateList l = top_candidates(logits.data(), logits.size(), 100, 3);
  EXPECT_EQ(ids(l), (std::vector<int32_t>{101, 104, 103}));
  double sum = 0;
  for (float x : logits) sum += std::exp(x);
  EXPECT_NEAR(l.log_sum_exp, std::log(sum), 1e-5);
}

TEST(Candidates, MergingSlicesEqualsTheListOfTheWholeVocabulary) {
  auto logits = random_logits(1000, 1);
  CandidateList whole = top_candidates(logits.data(), 1000, 0, 64);
  std::vector<CandidateList> parts = {top_candidates(logits.data(), 300, 0, 64),
                                      top_candidates(logits.data() + 300, 500, 300, 64),
                                      top_candidates(logits.data() + 800, 200, 800, 64)};
  CandidateList merged = merge_candidates(parts, 64);
  EXPECT_EQ(ids(merged), ids(whole));
  EXPECT_NEAR(merged.log_sum_exp, whole.log_sum_exp, 1e-4);
}

TEST(Sampler, ZeroTemperatureIsGreedy) {
  auto logits = random_logits(500, 2);
  Sampler s({.temperature = 0});
  int32_t best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  EXPECT_EQ(s.sample(top_candidates(logits.data(), 500, 0, 64), {}), best);
}

TEST(Sampler, TheSameSeedGivesTheSameTokensAndAnotherSeedDiffers) {
  auto logits = random_logits(500, 3);
  auto run = [&](uint64_t seed) {
    Sampler s({.temperature = 1.5f, .top_k = 0, .seed = seed});
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.sample(top_candidates(logits.data(), 500, 0, 64), {}));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(Sampler, TopKKeepsExactlyTheKBest) {
  CandidateList l = top_candidates(random_logits(100, 4).data(), 100, 0, 64);
  std::vector<int32_t> all = ids(l);
  std::vector<int32_t> expected(all.begin(), all.begin() + 5);
  Sampler::keep_top_k(l, 5);
  EXPECT_EQ(ids(l), expected);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
  // Probabilities 0.5, 0.25, 0.125, 0.125 from these logits.
  CandidateList l;
  l.top = {{7, std::log(4.0f)}, {3, std::log(2.0f)}, {9, 0.0f}, {1, 0.0f}};
  CandidateList a = l;
  Sampler::keep_top_p(a, 0.7f);
  EXPECT_EQ(ids(a), (std::vector<int32_t>{7, 3}));
  CandidateList b = l;
  Sampler::keep_top_p(b, 0.5f);
  EXPECT_EQ(ids(b), (std::vector<int32_t>{7}));
  CandidateList c = l;
  Sampler::keep_top_p(c, 0.8f);
  EXPECT_EQ(ids(c), (std::vector<int32_t>{7, 3, 9}));
}

TEST(Sampler, MinPKeepsTokensAtLeastThatFractionAsLikelyAsTheBest) {
  CandidateList l;
  l.top = {{1, std::log(10.0f)}, {2, std::log(5.0f)}, {3, std::log(1.0f)}, {4, std::log(0.5f)}};
  Sampler::keep_min_p(l, 0.1f);  // threshold: 1.0
  EXPECT_EQ(ids(l), (std::vector<int32_t>{1, 2, 3}));
}

TEST(Sampler, PenaltiesLowerRecentTokensAndReorder) {
  CandidateList l;
  l.top = {{1, 2.0f}, {2, 1.9f}, {3, -1.0f}};
  Sampler s({.repeat_penalty = 2.0f, .frequency_penalty = 0.1f, .presence_penalty = 0.05f});
  std::vector<int32_t> history = {1, 1, 3};
  s.apply_penalties(l, history);
  EXPECT_EQ(ids(l), (std::vector<int32_t>{2, 1, 3}));
  EXPECT_NEAR(l.top[1].logit, 2.0f / 2 - 0.2f - 0.05f, 1e-6);
  EXPECT_NEAR(l.top[2].logit, -1.0f * 2 - 0.1f - 0.05f, 1e-6);
}

TEST(Sampler, SamplesFollowTheDistribution) {
  CandidateList l;
  l.top = {{1, std::log(3.0f)}, {2, std::log(1.0f)}};
  Sampler s({.temperature = 1.0f, .top_k = 0, .seed = 7});
  int ones = 0;
  for (int i = 0; i < 4000; ++i) ones += s.sample(l, {}) == 1;
  EXPECT_NEAR(ones / 4000.0, 0.75, 0.03);
}

}  // namespace
}  // namespace clusterd
