// rms_norm and silu_mul against double-precision references, tails and extremes included.
#include "clusterd/engine/activations.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace clusterd {
namespace {

TEST(Activations, RmsNormMatchesReference) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int n : {1, 15, 16, 17, 64, 100, 2048}) {
    std::vector<float> x(n), w(n), out(n);
    for (int i = 0; i < n; ++i) x[i] = normal(rng), w[i] = normal(rng);
    rms_norm(x.data(), w.data(), out.data(), n, 1e-5f);
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; ++i) {
      const double expected = x[i] * scale * w[i];
      ASSERT_NEAR(out[i], expected, 1e-5 * (1 + std::fabs(expected))) << "n " << n << " element " << i;
    }
    rms_norm(x.data(), w.data(), x.data(), n, 1e-5f);  // in place
    EXPECT_EQ(x, out) << "n " << n;
  }
}

TEST(Activations, SiluMulMatchesReference) {
  std::vector<float> gate, up;
  for (float g = -120.0f; g <= 120.0f; g += 0.37f) gate.push_back(g);  // past both ends of exp's range
  for (float g : {-1e-6f, 0.0f, 1e-6f, 1e30f, -1e30f}) gate.push_back(g);
  for (size_t i = 0; i < gate.size(); ++i) up.push_back(0.5f + static_cast<float>(i % 7));
  for (size_t n : {gate.size(), gate.size() - 3, size_t{5}}) {  // with and without a tail
    std::vector<float> out(gate.begin(), gate.begin() + n);
    silu_mul(out.data(), up.data(), static_cast<int64_t>(n));
    for (size_t i = 0; i < n; ++i) {
      const double g = gate[i];
      const double expected = g / (1 + std::exp(-g)) * up[i];
      ASSERT_NEAR(out[i], expected, 1e-6 * (1 + std::fabs(expected))) << "gate " << g;
    }
  }
}

}  // namespace
}  // namespace clusterd
