// The AVX2 dot products equal their scalar references (tests/engine/quant_test.cpp pins
// those to the block layouts) on quantized rows and on blocks of random bytes.
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

class KernelsAvx2 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2/FMA/F16C";
  }
  std::mt19937 rng_{20240611};

  uint8_t byte() { return static_cast<uint8_t>(rng_()); }
  int8_t quant8() { return static_cast<int8_t>(std::uniform_int_distribution<int>(-127, 127)(rng_)); }
  // A finite fp16 scale of either sign, magnitude 2^-10 .. 2^2.
  uint16_t scale16() { return fp32_to_fp16(std::ldexp(std::uniform_real_distribution<float>(-1, 1)(rng_), -4)); }

  std::vector<float> gaussian(int n, float sigma) {
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng_);
    return v;
  }

  std::vector<block_q8_0> random_q8_0(int nb) {
    std::vector<block_q8_0> v(nb);
    for (auto& b : v) {
      b.d = scale16();
      for (int8_t& q : b.qs) q = quant8();
    }
    return v;
  }

  std::vector<block_q8_K> random_q8_K(int nb) {
    std::vector<block_q8_K> v(nb);
    for (auto& b : v) {
      b.d = std::uniform_real_distribution<float>(-0.1f, 0.1f)(rng_);
      for (int8_t& q : b.qs) q = quant8();
      for (int g = 0; g < 16; ++g) {
        int sum = 0;
        for (int j = 0; j < 16; ++j) sum += b.qs[16 * g + j];
        b.bsums[g] = static_cast<int16_t>(sum);
      }
    }
    return v;
  }
};

// |a - b| within `rel` of the sum of the magnitudes that went into b.
void expect_close(float got, float want, double magnitude, const char* what) {
  EXPECT_NEAR(got, want, 1e-5 * magnitude + 1e-30) << what;
}

TEST_F(KernelsAvx2, Q8_0MatchesTheReference) {
  for (int nb : {1, 2, 7, 64}) {
    const int n = 32 * nb;
    auto x = random_q8_0(nb), y = random_q8_0(nb);
    const float want = vec_dot_q8_0_q8_0(n, x.data(), y.data());
    double magnitude = 0;
    for (int i = 0; i < nb; ++i)
      for (int j = 0; j < 32; ++j)
        magnitude += std::fabs(fp16_to_fp32(x[i].d) * x[i].qs[j] * fp16_to_fp32(y[i].d) * y[i].qs[j]);
    expect_close(vec_dot_q8_0_q8_0_avx2(n, x.data(), y.data()), want, magnitude, "random bytes");

    const auto w = gaussian(n, 0.08f), a = gaussian(n, 1.0f);
    std::vector<block_q8_0> wq(nb), aq(nb);
    quantize_row_q8_0(w.data(), wq.data(), n);
    quantize_row_q8_0(a.data(), aq.data(), n);
    const float want2 = vec_dot_q8_0_q8_0(n, wq.data(), aq.data());
    expect_close(vec_dot_q8_0_q8_0_avx2(n, wq.data(), aq.data()), want2, 0.08 * n * 2, "quantized rows");
  }
}

TEST_F(KernelsAvx2, Q4_0MatchesTheReference) {
  for (int nb : {1, 3, 64}) {
    const int n = 32 * nb;
    std::vector<block_q4_0> x(nb);
    for (auto& b : x) {
      b.d = scale16();
      for (uint8_t& q : b.qs) q = byte();
    }
    auto y = random_q8_0(nb);
    double magnitude = 0;
    for (int i = 0; i < nb; ++i)
      for (int j = 0; j < 32; ++j) magnitude += std::fabs(fp16_to_fp32(x[i].d) * 8 * fp16_to_fp32(y[i].d) * y[i].qs[j]);
    expect_close(vec_dot_q4_0_q8_0_avx2(n, x.data(), y.data()), vec_dot_q4_0_q8_0(n, x.data(), y.data()), magnitude,
                 "random bytes");

    const auto w = gaussian(n, 0.08f), a = gaussian(n, 1.0f);
    std::vector<block_q4_0> wq(nb);
    std::vector<block_q8_0> aq(nb);
    quantize_row_q4_0(w.data(), wq.data(), n);
    quantize_row_q8_0(a.data(), aq.data(), n);
    expect_close(vec_dot_q4_0_q8_0_avx2(n, wq.data(), aq.data()), vec_dot_q4_0_q8_0(n, wq.data(), aq.data()),
                 0.08 * n * 2, "quantized rows");
  }
}

TEST_F(KernelsAvx2, Q4_KMatchesTheReference) {
  for (int nb : {1, 2, 16}) {
    const int n = 256 * nb;
    std::vector<block_q4_K> x(nb);
    for (auto& b : x) {
      b.d = scale16();
      b.dmin = scale16();
      for (uint8_t& s : b.scales) s = byte();
      for (uint8_t& q : b.qs) q = byte();
    }
    auto y = random_q8_K(nb);
    double magnitude = 0;
    for (int i = 0; i < nb; ++i) {
      const double scale = (std::fabs(fp16_to_fp32(x[i].d)) * 63 * 15 + std::fabs(fp16_to_fp32(x[i].dmin)) * 63);
      for (int j = 0; j < 256; ++j) magnitude += scale * std::fabs(y[i].d * y[i].qs[j]);
    }
    expect_close(vec_dot_q4_K_q8_K_avx2(n, x.data(), y.data()), vec_dot_q4_K_q8_K(n, x.data(), y.data()), magnitude,
                 "random bytes");

    const auto w = gaussian(n, 0.08f), a = gaussian(n, 1.0f);
    std::vector<block_q4_K> wq(nb);
    std::vector<block_q8_K> aq(nb);
    quantize_row_q4_K(w.data(), wq.data(), n);
    quantize_row_q8_K(a.data(), aq.data(), n);
    expect_close(vec_dot_q4_K_q8_K_avx2(n, wq.data(), aq.data()), vec_dot_q4_K_q8_K(n, wq.data(), aq.data()),
                 0.08 * n * 2, "quantized rows");
  }
}

TEST_F(KernelsAvx2, Q5_KMatchesTheReference) {
  for (int nb : {1, 2, 3, 16}) {
    const int n = 256 * nb;
    std::vector<block_q5_K> x(nb);
    for (auto& b : x) {
      b.d = scale16();
      b.dmin = scale16();
      for (uint8_t& s : b.scales) s = byte();
      for (uint8_t& q : b.qh) q = byte();
      for (uint8_t& q : b.qs) q = byte();
    }
    auto y = random_q8_K(nb);
    double magnitude = 0;
    for (int i = 0; i < nb; ++i) {
      const double scale = (std::fabs(fp16_to_fp32(x[i].d)) * 63 * 31 + std::fabs(fp16_to_fp32(x[i].dmin)) * 63);
      for (int j = 0; j < 256; ++j) magnitude += scale * std::fabs(y[i].d * y[i].qs[j]);
    }
    expect_close(vec_dot_q5_K_q8_K_avx2(n, x.data(), y.data()), vec_dot_q5_K_q8_K(n, x.data(), y.data()), magnitude,
                 "random bytes");

    const auto w = gaussian(n, 0.08f), a = gaussian(n, 1.0f);
    std::vector<block_q5_K> wq(nb);
    std::vector<block_q8_K> aq(nb);
    quantize_row_q5_K(w.data(), wq.data(), n);
    quantize_row_q8_K(a.data(), aq.data(), n);
    expect_close(vec_dot_q5_K_q8_K_avx2(n, wq.data(), aq.data()), vec_dot_q5_K_q8_K(n, wq.data(), aq.data()),
                 0.08 * n * 2, "quantized rows");
  }
}

TEST_F(KernelsAvx2, Q5_KIntegerPartIsExact) {
  // Unit scales and activations in [-31, 31]: every partial sum is an integer below
  // 256*63*31*31 < 2^24, so float addition cannot round and the results must be equal.
  for (int trial = 0; trial < 8; ++trial) {
    block_q5_K x;
    x.d = x.dmin = 0x3c00;
    for (uint8_t& s : x.scales) s = byte();
    for (uint8_t& q : x.qh) q = byte();
    for (uint8_t& q : x.qs) q = byte();
    block_q8_K y = random_q8_K(1)[0];
    y.d = 1.0f;
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += y.qs[16 * g + j] /= 4;  // [-127, 127] -> [-31, 31]
      y.bsums[g] = static_cast<int16_t>(sum);
    }
    EXPECT_EQ(vec_dot_q5_K_q8_K_avx2(256, &x, &y), vec_dot_q5_K_q8_K(256, &x, &y)) << "trial " << trial;
  }
}

TEST_F(KernelsAvx2, Q6_KMatchesTheReference) {
  for (int nb : {1, 2, 16}) {
    const int n = 256 * nb;
    std::vector<block_q6_K> x(nb);
    for (auto& b : x) {
      b.d = scale16();
      for (int8_t& s : b.scales) s = static_cast<int8_t>(byte());
      for (uint8_t& q : b.ql) q = byte();
      for (uint8_t& q : b.qh) q = byte();
    }
    auto y = random_q8_K(nb);
    double magnitude = 0;
    for (int i = 0; i < nb; ++i) {
      const double scale = std::fabs(fp16_to_fp32(x[i].d)) * 128 * 32;
      for (int j = 0; j < 256; ++j) magnitude += scale * std::fabs(y[i].d * y[i].qs[j]);
    }
    expect_close(vec_dot_q6_K_q8_K_avx2(n, x.data(), y.data()), vec_dot_q6_K_q8_K(n, x.data(), y.data()), magnitude,
                 "random bytes");

    const auto w = gaussian(n, 0.08f), a = gaussian(n, 1.0f);
    std::vector<block_q6_K> wq(nb);
    std::vector<block_q8_K> aq(nb);
    quantize_row_q6_K(w.data(), wq.data(), n);
    quantize_row_q8_K(a.data(), aq.data(), n);
    expect_close(vec_dot_q6_K_q8_K_avx2(n, wq.data(), aq.data()), vec_dot_q6_K_q8_K(n, wq.data(), aq.data()),
                 0.08 * n * 2, "quantized rows");
  }
}

TEST_F(KernelsAvx2, ExtremeQuantsDoNotSaturate) {
  // Largest magnitudes the quantizers produce: q8 +-127, q4_K nibbles 15 with scale 63.
  block_q8_0 x8{}, y8{};
  x8.d = y8.d = 0x3c00;
  for (int j = 0; j < 32; ++j) {
    x8.qs[j] = -127;
    y8.qs[j] = (j % 2) ? -127 : 127;
  }
  x8.qs[0] = 127;
  EXPECT_EQ(vec_dot_q8_0_q8_0_avx2(32, &x8, &y8), vec_dot_q8_0_q8_0(32, &x8, &y8));
  block_q4_K x4{};
  x4.d = x4.dmin = 0x3c00;
  for (uint8_t& s : x4.scales) s = 0xff;  // every scale and min 63
  for (uint8_t& q : x4.qs) q = 0xff;
  block_q8_K y4{};
  y4.d = 1.0f;
  for (int8_t& q : y4.qs) q = 127;
  for (int16_t& s : y4.bsums) s = 16 * 127;
  EXPECT_EQ(vec_dot_q4_K_q8_K_avx2(256, &x4, &y4), vec_dot_q4_K_q8_K(256, &x4, &y4));
  block_q6_K x6{};
  x6.d = 0x3c00;
  for (int8_t& s : x6.scales) s = -128;
  for (uint8_t& q : x6.ql) q = 0xff;
  for (uint8_t& q : x6.qh) q = 0xff;  // every q = 63
  EXPECT_EQ(vec_dot_q6_K_q8_K_avx2(256, &x6, &y4), vec_dot_q6_K_q8_K(256, &x6, &y4));
  block_q5_K x5{};
  x5.d = x5.dmin = 0x3c00;
  for (uint8_t& s : x5.scales) s = 0xff;
  for (uint8_t& q : x5.qh) q = 0xff;  // every q = 31
  for (uint8_t& q : x5.qs) q = 0xff;
  for (int sign : {1, -1}) {
    for (int8_t& q : y4.qs) q = static_cast<int8_t>(127 * sign);
    for (int16_t& s : y4.bsums) s = static_cast<int16_t>(16 * 127 * sign);
    const double magnitude = 256.0 * (63 * 31 + 63) * 127;
    expect_close(vec_dot_q5_K_q8_K_avx2(256, &x5, &y4), vec_dot_q5_K_q8_K(256, &x5, &y4), magnitude, "q5_K");
  }
}

// Float rows of every length class: empty, shorter than a vector, the 32-wide main loop,
// the 8-wide loop and the scalar tail.
TEST_F(KernelsAvx2, FloatRowsMatchTheReference) {
  for (int n : {0, 1, 7, 8, 9, 31, 32, 33, 47, 100, 4096, 4099}) {
    const auto x = gaussian(n, 1.0f), y = gaussian(n, 1.0f);
    std::vector<uint16_t> h(n), b(n);
    fp32_to_fp16_row(x.data(), h.data(), n);
    fp32_to_bf16_row(x.data(), b.data(), n);
    double mag_f32 = 0, mag_f16 = 0, mag_bf16 = 0;
    for (int i = 0; i < n; ++i) {
      mag_f32 += std::fabs(double{x[i]} * y[i]);
      mag_f16 += std::fabs(double{fp16_to_fp32(h[i])} * y[i]);
      mag_bf16 += std::fabs(double{bf16_to_fp32(b[i])} * y[i]);
    }
    const std::string what = "n = " + std::to_string(n);
    expect_close(vec_dot_f32_avx2(n, x.data(), y.data()), vec_dot_f32(n, x.data(), y.data()), mag_f32, what.c_str());
    expect_close(vec_dot_f16_f32_avx2(n, h.data(), y.data()), vec_dot_f16_f32(n, h.data(), y.data()), mag_f16,
                 what.c_str());
    expect_close(vec_dot_bf16_f32_avx2(n, b.data(), y.data()), vec_dot_bf16_f32(n, b.data(), y.data()), mag_bf16,
                 what.c_str());
  }
}

// Conversions at the edges of the formats are exact: with a one-hot y each product is
// a single weight, so any widening error shows in full.
TEST_F(KernelsAvx2, HalfAndBf16WidenExactly) {
  const uint16_t halves[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0xfbff, 0x3555, 0xc000};
  const uint16_t bf16s[] = {0x0000, 0x8000, 0x0001, 0x007f, 0x0080, 0x3f80, 0x7f7f, 0xff7f, 0x3eab, 0xc040, 0x1234};
  for (int n : {11, 40}) {  // the scalar tail and the vector loops
    for (int k = 0; k < 11; ++k) {
      std::vector<uint16_t> h(n), b(n);
      std::vector<float> y(n, 0.0f);
      for (int i = 0; i < n; ++i) {
        h[i] = halves[i % 11];
        b[i] = bf16s[i % 11];
      }
      const int at = n - 1 - k;  // the position holding the one
      y[at] = 1.0f;
      EXPECT_EQ(vec_dot_f16_f32_avx2(n, h.data(), y.data()), fp16_to_fp32(h[at])) << "half 0x" << std::hex << h[at];
      EXPECT_EQ(vec_dot_bf16_f32_avx2(n, b.data(), y.data()), bf16_to_fp32(b[at])) << "bf16 0x" << std::hex << b[at];
    }
  }
}

// Tiles of F16/BF16 rows by tokens give each (row, token) exactly what the row kernel
// gives it alone, whatever the number of tokens and the row length's tail.
TEST_F(KernelsAvx2, HalfRowTilesEqualTheRowKernel) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (TensorType type : {TensorType::kF16, TensorType::kBF16}) {
    for (int n : {8, 45, 96, 1000}) {
      const int rows = 5, tokens = 7;
      const size_t w_stride = n + 5;
      std::vector<uint16_t> w(rows * w_stride);
      for (uint16_t& h : w) h = type == TensorType::kBF16 ? fp32_to_bf16(normal(rng_)) : fp32_to_fp16(normal(rng_));
      std::vector<float> x(static_cast<size_t>(tokens) * n), y(static_cast<size_t>(tokens) * rows);
      for (float& f : x) f = normal(rng_);
      dot_half_rows_avx2(type, w.data(), w_stride, rows, x.data(), n, tokens, n, y.data(), rows);
      for (int r = 0; r < rows; ++r) {
        for (int t = 0; t < tokens; ++t) {
          const float alone = type == TensorType::kBF16 ? vec_dot_bf16_f32_avx2(n, &w[r * w_stride], &x[t * n])
                                                        : vec_dot_f16_f32_avx2(n, &w[r * w_stride], &x[t * n]);
          ASSERT_EQ(std::memcmp(&alone, &y[t * rows + r], sizeof alone), 0)
              << tensor_type_name(type) << " n " << n << " row " << r << " token " << t;
        }
      }
    }
  }
}

}  // namespace
}  // namespace clusterd
