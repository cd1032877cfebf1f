// The AVX-512 VNNI dot products equal their scalar references: exactly where every
// partial sum is an integer below 2^24 (so float rounding cannot hide an integer
// error), and to 1e-5 of the summed term magnitudes on random blocks, quantized rows
// and extreme quants.
#include "clusterd/engine/kernels_avx512.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "clusterd/engine/quant.h"

namespace clusterd {
namespace {

constexpr uint16_t kHalfOne = 0x3c00;

template <typename Block, typename Act>
using DotFn = float (*)(int, const Block*, const Act*);

// Sum of |terms| the kernel adds: |w_j * a_j| from the dequantized rows, with the scale
// and min parts of Q4_K/Q5_K counted separately (they are summed apart, then subtracted).
template <typename Block, typename Act>
double term_magnitude(TensorType type, std::vector<Block> x, TensorType act, const std::vector<Act>& y) {
  const int n = static_cast<int>(x.size()) * quant_block_size(type);
  std::vector<float> a(n), w(n);
  dequantize_row(act, y.data(), a.data(), n);
  auto sum_abs = [&](const std::vector<Block>& blocks) {
    dequantize_row(type, blocks.data(), w.data(), n);
    double s = 0;
    for (int j = 0; j < n; ++j) s += std::fabs(double{w[j]} * a[j]);
    return s;
  };
  if constexpr (requires(Block b) { b.dmin; }) {
    std::vector<Block> mins = x;
    for (auto& b : x) b.dmin = 0;
    for (auto& b : mins) b.d = 0;
    return sum_abs(x) + sum_abs(mins);
  } else {
    return sum_abs(x);
  }
}

// The kernel agrees with the reference to 1e-5 of the term magnitude (plus a tiny floor
// for rows whose terms are all zero).
template <typename Block, typename Act>
void expect_matches(DotFn<Block, Act> kernel, DotFn<Block, Act> reference, TensorType type, TensorType act,
                    const std::vector<Block>& x, const std::vector<Act>& y, const std::string& what) {
  const int n = static_cast<int>(x.size()) * quant_block_size(type);
  const double magnitude = term_magnitude(type, x, act, y);
  EXPECT_NEAR(kernel(n, x.data(), y.data()), reference(n, x.data(), y.data()), 1e-5 * magnitude + 1e-30)
      << what << ", " << x.size() << " blocks";
}

// The kernel equals the reference bit for bit: with unit scales every partial sum is
// an integer, and below 2^24 no float addition rounds.
template <typename Block, typename Act>
void expect_exact(DotFn<Block, Act> kernel, DotFn<Block, Act> reference, TensorType type, TensorType act,
                  const std::vector<Block>& x, const std::vector<Act>& y, const std::string& what) {
  const int n = static_cast<int>(x.size()) * quant_block_size(type);
  ASSERT_LT(term_magnitude(type, x, act, y), 1 << 24) << what << ": the case must stay exact in float";
  EXPECT_EQ(kernel(n, x.data(), y.data()), reference(n, x.data(), y.data())) << what << ", " << x.size() << " blocks";
}

class KernelsAvx512 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_avx512_vnni()) GTEST_SKIP() << "this CPU has no AVX-512 F/BW/VL/VNNI";
  }
  std::mt19937 rng_{20240612};

  uint8_t byte() { return static_cast<uint8_t>(rng_()); }
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  // A finite fp16 scale of either sign, magnitude below 2^-4.
  uint16_t scale16() { return fp32_to_fp16(std::ldexp(std::uniform_real_distribution<float>(-1, 1)(rng_), -4)); }

  // Weights: any byte pattern their type allows (q8_0 the full int8 range, -128 too).
  std::vector<block_q8_0> weights_q8_0(int nb) {
    std::vector<block_q8_0> v(nb);
    for (auto& b : v) {
      b.d = scale16();
      for (int8_t& q : b.qs) q = static_cast<int8_t>(byte());
    }
    return v;
  }
  std::vector<block_q4_0> weights_q4_0(int nb) {
    std::vector<block_q4_0> v(nb);
    for (auto& b : v) {
      b.d = scale16();
      for (uint8_t& q : b.qs) q = byte();
    }
    return v;
  }
  template <typename KBlock>
  std::vector<KBlock> weights_k(int nb) {
    std::vector<KBlock> v(nb);
    for (auto& b : v) {
      uint8_t* bytes = reinterpret_cast<uint8_t*>(&b);
      for (size_t j = 0; j < sizeof b; ++j) bytes[j] = byte();
      b.d = scale16();
      if constexpr (requires { b.dmin; }) b.dmin = scale16();
    }
    return v;
  }

  // Activations: quants in [-limit, limit], limit <= 127 as the quantizers guarantee.
  std::vector<block_q8_0> activations_q8_0(int nb, int limit = 127) {
    std::vector<block_q8_0> v(nb);
    for (auto& b : v) {
      b.d = scale16();
      for (int8_t& q : b.qs) q = static_cast<int8_t>(uniform(-limit, limit));
    }
    return v;
  }
  std::vector<block_q8_K> activations_q8_K(int nb, int limit = 127) {
    std::vector<block_q8_K> v(nb);
    for (auto& b : v) {
      b.d = std::uniform_real_distribution<float>(-0.1f, 0.1f)(rng_);
      for (int8_t& q : b.qs) q = static_cast<int8_t>(uniform(-limit, limit));
      set_bsums(b);
    }
    return v;
  }
  static void set_bsums(block_q8_K& b) {
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += b.qs[16 * g + j];
      b.bsums[g] = static_cast<int16_t>(sum);
    }
  }

  std::vector<float> gaussian(int n, float sigma) {
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng_);
    return v;
  }
  template <typename Block>
  std::vector<Block> quantized(TensorType type, int n, float sigma) {
    std::vector<Block> v(n / quant_block_size(type));
    EXPECT_TRUE(quantize_row(type, gaussian(n, sigma).data(), v.data(), n).is_ok());
    return v;
  }
};

TEST_F(KernelsAvx512, Q8_0MatchesTheReference) {
  for (int nb : {1, 2, 3, 4, 5, 7, 64, 128}) {
    expect_matches(vec_dot_q8_0_q8_0_avx512, vec_dot_q8_0_q8_0, TensorType::kQ8_0, TensorType::kQ8_0, weights_q8_0(nb),
                   activations_q8_0(nb), "random blocks");
    const int n = 32 * nb;
    expect_matches(vec_dot_q8_0_q8_0_avx512, vec_dot_q8_0_q8_0, TensorType::kQ8_0, TensorType::kQ8_0,
                   quantized<block_q8_0>(TensorType::kQ8_0, n, 0.08f),
                   quantized<block_q8_0>(TensorType::kQ8_0, n, 1.0f), "quantized rows");
  }
}

TEST_F(KernelsAvx512, Q4_0MatchesTheReference) {
  for (int nb : {1, 2, 3, 4, 5, 7, 64, 128}) {
    expect_matches(vec_dot_q4_0_q8_0_avx512, vec_dot_q4_0_q8_0, TensorType::kQ4_0, TensorType::kQ8_0, weights_q4_0(nb),
                   activations_q8_0(nb), "random blocks");
    const int n = 32 * nb;
    expect_matches(vec_dot_q4_0_q8_0_avx512, vec_dot_q4_0_q8_0, TensorType::kQ4_0, TensorType::kQ8_0,
                   quantized<block_q4_0>(TensorType::kQ4_0, n, 0.08f),
                   quantized<block_q8_0>(TensorType::kQ8_0, n, 1.0f), "quantized rows");
  }
}

TEST_F(KernelsAvx512, Q4_KMatchesTheReference) {
  for (int nb : {1, 2, 3, 16}) {
    expect_matches(vec_dot_q4_K_q8_K_avx512, vec_dot_q4_K_q8_K, TensorType::kQ4_K, TensorType::kQ8_K,
                   weights_k<block_q4_K>(nb), activations_q8_K(nb), "random blocks");
    const int n = 256 * nb;
    expect_matches(vec_dot_q4_K_q8_K_avx512, vec_dot_q4_K_q8_K, TensorType::kQ4_K, TensorType::kQ8_K,
                   quantized<block_q4_K>(TensorType::kQ4_K, n, 0.08f),
                   quantized<block_q8_K>(TensorType::kQ8_K, n, 1.0f), "quantized rows");
  }
}

TEST_F(KernelsAvx512, Q5_KMatchesTheReference) {
  for (int nb : {1, 2, 3, 16}) {
    expect_matches(vec_dot_q5_K_q8_K_avx512, vec_dot_q5_K_q8_K, TensorType::kQ5_K, TensorType::kQ8_K,
                   weights_k<block_q5_K>(nb), activations_q8_K(nb), "random blocks");
    const int n = 256 * nb;
    expect_matches(vec_dot_q5_K_q8_K_avx512, vec_dot_q5_K_q8_K, TensorType::kQ5_K, TensorType::kQ8_K,
                   quantized<block_q5_K>(TensorType::kQ5_K, n, 0.08f),
                   quantized<block_q8_K>(TensorType::kQ8_K, n, 1.0f), "quantized rows");
  }
}

TEST_F(KernelsAvx512, Q6_KMatchesTheReference) {
  for (int nb : {1, 2, 3, 16}) {
    expect_matches(vec_dot_q6_K_q8_K_avx512, vec_dot_q6_K_q8_K, TensorType::kQ6_K, TensorType::kQ8_K,
                   weights_k<block_q6_K>(nb), activations_q8_K(nb), "random blocks");
    const int n = 256 * nb;
    expect_matches(vec_dot_q6_K_q8_K_avx512, vec_dot_q6_K_q8_K, TensorType::kQ6_K, TensorType::kQ8_K,
                   quantized<block_q6_K>(TensorType::kQ6_K, n, 0.08f),
                   quantized<block_q8_K>(TensorType::kQ8_K, n, 1.0f), "quantized rows");
  }
}

// Unit scales make every term an integer; the activation ranges keep the worst case of
// each type's sums below 2^24 (Q4_K: 256*63*15*63, Q5_K: 256*63*31*31, Q6_K: 256*128*63*7).
TEST_F(KernelsAvx512, IntegerPartsEqualTheReferenceExactly) {
  for (int nb : {1, 2, 3, 5, 8}) {
    auto x8 = weights_q8_0(nb);
    auto x4 = weights_q4_0(nb);
    auto y = activations_q8_0(nb);
    for (auto& b : x8) b.d = kHalfOne;
    for (auto& b : x4) b.d = kHalfOne;
    for (auto& b : y) b.d = kHalfOne;
    expect_exact(vec_dot_q8_0_q8_0_avx512, vec_dot_q8_0_q8_0, TensorType::kQ8_0, TensorType::kQ8_0, x8, y, "q8_0");
    expect_exact(vec_dot_q4_0_q8_0_avx512, vec_dot_q4_0_q8_0, TensorType::kQ4_0, TensorType::kQ8_0, x4, y, "q4_0");
  }
  auto unit_k = [](auto blocks) {
    for (auto& b : blocks) {
      b.d = kHalfOne;
      if constexpr (requires { b.dmin; }) b.dmin = kHalfOne;
    }
    return blocks;
  };
  auto unit_y = [](std::vector<block_q8_K> y) {
    for (auto& b : y) b.d = 1.0f;
    return y;
  };
  for (int trial = 0; trial < 8; ++trial) {
    expect_exact(vec_dot_q4_K_q8_K_avx512, vec_dot_q4_K_q8_K, TensorType::kQ4_K, TensorType::kQ8_K,
                 unit_k(weights_k<block_q4_K>(1)), unit_y(activations_q8_K(1, 63)), "q4_K");
    expect_exact(vec_dot_q5_K_q8_K_avx512, vec_dot_q5_K_q8_K, TensorType::kQ5_K, TensorType::kQ8_K,
                 unit_k(weights_k<block_q5_K>(1)), unit_y(activations_q8_K(1, 31)), "q5_K");
    expect_exact(vec_dot_q6_K_q8_K_avx512, vec_dot_q6_K_q8_K, TensorType::kQ6_K, TensorType::kQ8_K,
                 unit_k(weights_k<block_q6_K>(1)), unit_y(activations_q8_K(1, 7)), "q6_K");
  }
}

// The largest products the formats allow, where a 16-bit intermediate or a lost sign
// would show: q8 weights -128 and 127 against activations +-127, q4 nibbles 0 and 15,
// K-quant scales and mins 63, q5 all 31, q6 0 and 63 with scales -128 and 127.
TEST_F(KernelsAvx512, ExtremeQuantsMatchTheReference) {
  for (int nb : {1, 2, 3}) {
    std::vector<block_q8_0> x8(nb), y8(nb);
    std::vector<block_q4_0> x4(nb);
    for (int i = 0; i < nb; ++i) {
      x8[i].d = y8[i].d = x4[i].d = kHalfOne;
      for (int j = 0; j < 32; ++j) {
        x8[i].qs[j] = (j + i) % 3 ? -128 : 127;
        y8[i].qs[j] = (j / 2) % 2 ? -127 : 127;
      }
      for (int j = 0; j < 16; ++j) x4[i].qs[j] = (j + i) % 2 ? 0xff : 0x00;
    }
    expect_exact(vec_dot_q8_0_q8_0_avx512, vec_dot_q8_0_q8_0, TensorType::kQ8_0, TensorType::kQ8_0, x8, y8, "q8_0");
    expect_exact(vec_dot_q4_0_q8_0_avx512, vec_dot_q4_0_q8_0, TensorType::kQ4_0, TensorType::kQ8_0, x4, y8, "q4_0");
  }

  for (int sign : {1, -1}) {
    std::vector<block_q8_K> y(2);
    for (int i = 0; i < 2; ++i) {
      y[i].d = 1.0f;
      for (int j = 0; j < 256; ++j) y[i].qs[j] = static_cast<int8_t>(i == 0 ? 127 * sign : (j % 2 ? 127 : -127));
      KernelsAvx512::set_bsums(y[i]);
    }
    std::vector<block_q4_K> x4(2);
    std::vector<block_q5_K> x5(2);
    std::vector<block_q6_K> x6(2);
    for (int i = 0; i < 2; ++i) {
      x4[i].d = x4[i].dmin = x5[i].d = x5[i].dmin = x6[i].d = kHalfOne;
      std::memset(x4[i].scales, 0xff, sizeof x4[i].scales);  // every scale and min 63
      std::memset(x4[i].qs, 0xff, sizeof x4[i].qs);
      std::memset(x5[i].scales, 0xff, sizeof x5[i].scales);
      std::memset(x5[i].qs, 0xff, sizeof x5[i].qs);
      std::memset(x5[i].qh, 0xff, sizeof x5[i].qh);
      for (int s = 0; s < 16; ++s) x6[i].scales[s] = static_cast<int8_t>(s % 2 ? 127 : -128);
      std::memset(x6[i].ql, i == 0 ? 0xff : 0x00, sizeof x6[i].ql);  // q = 63, then q = 0
      std::memset(x6[i].qh, i == 0 ? 0xff : 0x00, sizeof x6[i].qh);
    }
    expect_matches(vec_dot_q4_K_q8_K_avx512, vec_dot_q4_K_q8_K, TensorType::kQ4_K, TensorType::kQ8_K, x4, y, "q4_K");
    expect_matches(vec_dot_q5_K_q8_K_avx512, vec_dot_q5_K_q8_K, TensorType::kQ5_K, TensorType::kQ8_K, x5, y, "q5_K");
    expect_matches(vec_dot_q6_K_q8_K_avx512, vec_dot_q6_K_q8_K, TensorType::kQ6_K, TensorType::kQ8_K, x6, y, "q6_K");
  }
}

TEST_F(KernelsAvx512, ZeroScalesGiveZero) {
  auto x8 = weights_q8_0(3);
  auto x4 = weights_q4_0(3);
  auto y8 = activations_q8_0(3);
  for (auto& b : x8) b.d = 0;
  for (auto& b : x4) b.d = 0;
  EXPECT_EQ(vec_dot_q8_0_q8_0_avx512(96, x8.data(), y8.data()), 0.0f);
  EXPECT_EQ(vec_dot_q4_0_q8_0_avx512(96, x4.data(), y8.data()), 0.0f);

  auto yk = activations_q8_K(2);
  auto x4k = weights_k<block_q4_K>(2);
  auto x5k = weights_k<block_q5_K>(2);
  auto x6k = weights_k<block_q6_K>(2);
  for (int i = 0; i < 2; ++i) x4k[i].d = x4k[i].dmin = x5k[i].d = x5k[i].dmin = x6k[i].d = 0;
  EXPECT_EQ(vec_dot_q4_K_q8_K_avx512(512, x4k.data(), yk.data()), 0.0f);
  EXPECT_EQ(vec_dot_q5_K_q8_K_avx512(512, x5k.data(), yk.data()), 0.0f);
  EXPECT_EQ(vec_dot_q6_K_q8_K_avx512(512, x6k.data(), yk.data()), 0.0f);

  // Zero sub-block scales and mins under non-zero block scales: still zero.
  for (auto& b : x4k) {
    b.d = b.dmin = kHalfOne;
    std::memset(b.scales, 0, sizeof b.scales);
  }
  for (auto& b : x6k) {
    b.d = kHalfOne;
    std::memset(b.scales, 0, sizeof b.scales);
  }
  EXPECT_EQ(vec_dot_q4_K_q8_K_avx512(512, x4k.data(), yk.data()), 0.0f);
  EXPECT_EQ(vec_dot_q6_K_q8_K_avx512(512, x6k.data(), yk.data()), 0.0f);
}

// F16 and BF16 rows by float activations: every (row, token) within float rounding of
// the double-precision sum, and bit for bit the same alone as in any tile.
class HalfRowsAvx512 : public ::testing::TestWithParam<TensorType> {};

TEST_P(HalfRowsAvx512, MatchesReferenceAndIsTheSameAloneAsBatched) {
  if (!cpu_has_avx512_vnni()) GTEST_SKIP() << "this CPU has no AVX-512 F/BW/VL/VNNI";
  const TensorType type = GetParam();
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int n : {16, 70, 128, 1000}) {
    const int rows = 7, tokens = 8;
    const size_t w_stride = n + 3;  // rows of a wider matrix (a column slice)
    std::vector<uint16_t> w(rows * w_stride);
    for (uint16_t& h : w) h = type == TensorType::kBF16 ? fp32_to_bf16(normal(rng)) : fp32_to_fp16(normal(rng));
    std::vector<float> x(static_cast<size_t>(tokens) * n);
    for (float& f : x) f = normal(rng);
    std::vector<float> y(static_cast<size_t>(tokens) * rows);
    dot_half_rows_avx512(type, w.data(), w_stride, rows, x.data(), n, tokens, n, y.data(), rows);
    for (int r = 0; r < rows; ++r) {
      for (int t = 0; t < tokens; ++t) {
        double expected = 0, magnitude = 0;
        for (int i = 0; i < n; ++i) {
          const double wi =
              type == TensorType::kBF16 ? bf16_to_fp32(w[r * w_stride + i]) : fp16_to_fp32(w[r * w_stride + i]);
          expected += wi * x[t * n + i];
          magnitude += std::fabs(wi * x[t * n + i]);
        }
        ASSERT_NEAR(y[t * rows + r], expected, 1e-5 * magnitude) << "n " << n << " row " << r << " token " << t;
        float alone;
        dot_half_rows_avx512(type, &w[r * w_stride], w_stride, 1, &x[t * n], n, 1, n, &alone, 1);
        ASSERT_EQ(std::memcmp(&alone, &y[t * rows + r], sizeof alone), 0)
            << "n " << n << " row " << r << " token " << t << ": " << alone << " alone, " << y[t * rows + r]
            << " in the tile";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, HalfRowsAvx512, ::testing::Values(TensorType::kF16, TensorType::kBF16),
                         [](const ::testing::TestParamInfo<TensorType>& info) {
                           return std::string(info.param == TensorType::kBF16 ? "BF16" : "F16");
                         });

}  // namespace
}  // namespace clusterd
