// attend_head against softmax attention computed in double precision.
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
  for (int hd : {8, 24, 64, 128}) {
    for (int n : {1, 15, 16, 17, 64, 65, 200, 1000}) {
      const int stride = (n + 15) / 16 * 16 + 16;  // wider than needed: the result must not care
      std::vector<float> q(hd), keys(static_cast<size_t>(hd) * stride), values(static_cast<size_t>(n) * hd);
      for (float& x : q) x = normal(rng);
      // Keys spread so that the softmax has both near-ties and tiny weights (scores
      // down to about -100 below the best, where e^x underflows).
      for (float& x : keys) x = 3.0f * normal(rng);
      for (float& x : values) x = normal(rng);
      const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      std::vector<float> scores(stride), out(hd);
      attend_head(q.data(), keys.data(), stride, values.data(), n, hd, scale, scores.data(), out.data());

      std::vector<double> s(n);
      double best = -INFINITY, sum = 0;
      for (int j = 0; j < n; ++j) {
        s[j] = 0;
        for (int i = 0; i < hd; ++i) s[j] += static_cast<double>(q[i]) * keys[static_cast<size_t>(i) * stride + j];
        s[j] *= scale;
        best = std::max(best, s[j]);
      }
      for (int j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - best));
      for (int i = 0; i < hd; ++i) {
        double expected = 0;
        for (int j = 0; j < n; ++j) expected += s[j] / sum * values[static_cast<size_t>(j) * hd + i];
        ASSERT_NEAR(out[i], expected, 2e-5 * (1 + std::fabs(expected)))
            << "hd " << hd << " n " << n << " element " << i;
      }
    }
  }
}

TEST(Attention, OneTokenCopiesItsValue) {
  const int hd = 64;
  std::vector<float> q(hd, 0.5f), keys(16 * hd, 1.0f), values(hd), scores(16), out(hd);
  for (int i = 0; i < hd; ++i) values[i] = static_cast<float>(i) - 20.25f;
  attend_head(q.data(), keys.data(), 16, values.data(), 1, hd, 0.125f, scores.data(), out.data());
  for (int i = 0; i < hd; ++i) EXPECT_EQ(out[i], values[i]);
}

}  // namespace
}  // namespace clusterd
