// attend_heads against softmax attention computed in double precision.
#include "clusterd/engine/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace clusterd {
namespace {

TEST(Attention, MatchesDoublePrecisionReference) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int heads : {1, 2, 4, 7}) {  // GQA groups are passed 4 heads at a time
    for (int hd : {8, 24, 64, 128}) {
      for (int n : {1, 15, 16, 17, 64, 65, 200, 1000}) {
        const int stride = (n + 15) / 16 * 16 + 16;  // wider than needed: the result must not care
        std::vector<float> q(static_cast<size_t>(heads) * hd), keys(static_cast<size_t>(hd) * stride),
            values(static_cast<size_t>(n) * hd);
        for (float& x : q) x = normal(rng);
        // Keys spread so that the softmax has both near-ties and tiny weights (scores
        // down to about -100 below the best, where e^x underflows).
        for (float& x : keys) x = 3.0f * normal(rng);
        for (float& x : values) x = normal(rng);
        const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
        std::vector<float> scores(static_cast<size_t>(heads) * stride), out(q.size());
        attend_heads(q.data(), heads, hd, keys.data(), stride, values.data(), n, scale, scores.data(), out.data());

        for (int h = 0; h < heads; ++h) {
          std::vector<double> s(n);
          double best = -INFINITY, sum = 0;
          for (int j = 0; j < n; ++j) {
            s[j] = 0;
            for (int i = 0; i < hd; ++i) {
              s[j] += static_cast<double>(q[h * hd + i]) * keys[static_cast<size_t>(i) * stride + j];
            }
            s[j] *= scale;
            best = std::max(best, s[j]);
          }
          for (int j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - best));
          for (int i = 0; i < hd; ++i) {
            double expected = 0;
            for (int j = 0; j < n; ++j) expected += s[j] / sum * values[static_cast<size_t>(j) * hd + i];
            ASSERT_NEAR(out[h * hd + i], expected, 2e-5 * (1 + std::fabs(expected)))
                << heads << " heads, hd " << hd << ", n " << n << ": head " << h << " element " << i;
          }
        }
      }
    }
  }
}

// A head's result is the same alone as in a group (bit for bit), so that grouping
// never makes a token's output depend on its neighbours.
TEST(Attention, HeadAloneEqualsHeadInGroup) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int heads = 6, hd = 64, n = 300, stride = 304;
  std::vector<float> q(heads * hd), keys(hd * stride), values(n * hd);
  for (auto* v : {&q, &keys, &values}) {
    for (float& x : *v) x = normal(rng);
  }
  std::vector<float> scores(heads * stride), grouped(heads * hd), alone(hd);
  attend_heads(q.data(), heads, hd, keys.data(), stride, values.data(), n, 0.125f, scores.data(), grouped.data());
  for (int h = 0; h < heads; ++h) {
    attend_heads(&q[h * hd], 1, hd, keys.data(), stride, values.data(), n, 0.125f, scores.data(), alone.data());
    for (int i = 0; i < hd; ++i) ASSERT_EQ(alone[i], grouped[h * hd + i]) << "head " << h << " element " << i;
  }
}

TEST(Attention, OnePositionCopiesItsValue) {
  const int hd = 64;
  std::vector<float> q(2 * hd, 0.5f), keys(16 * hd, 1.0f), values(hd), scores(2 * 16), out(2 * hd);
  for (int i = 0; i < hd; ++i) values[i] = static_cast<float>(i) - 20.25f;
  attend_heads(q.data(), 2, hd, keys.data(), 16, values.data(), 1, 0.125f, scores.data(), out.data());
  for (int i = 0; i < 2 * hd; ++i) EXPECT_EQ(out[i], values[i % hd]);
}

}  // namespace
}  // namespace clusterd
