// Quantized blocks: ggml's byte layouts (checked on hand-built blocks, independently of
// the quantizers), round-trip error bounds of the reference quantizers, the reference
// dot products, and the by-type dispatcher.
#include "clusterd/engine/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace clusterd {
namespace {

constexpr uint16_t kHalfOne = 0x3c00;      // 1.0
constexpr uint16_t kHalfHalf = 0x3800;     // 0.5
constexpr uint16_t kHalfQuarter = 0x3400;  // 0.25
constexpr uint16_t kHalfTwo = 0x4000;      // 2.0

TEST(QuantBlocks, HaveGgmlSizes) {
  EXPECT_EQ(sizeof(block_q4_0), 18u);
  EXPECT_EQ(sizeof(block_q8_0), 34u);
  EXPECT_EQ(sizeof(block_q4_K), 144u);
  EXPECT_EQ(sizeof(block_q5_K), 176u);
  EXPECT_EQ(sizeof(block_q6_K), 210u);
  EXPECT_EQ(sizeof(block_q8_K), 292u);
  EXPECT_EQ(offsetof(block_q4_K, scales), 4u);
  EXPECT_EQ(offsetof(block_q4_K, qs), 16u);
  EXPECT_EQ(offsetof(block_q5_K, qh), 16u);
  EXPECT_EQ(offsetof(block_q5_K, qs), 48u);
  EXPECT_EQ(offsetof(block_q6_K, qh), 128u);
  EXPECT_EQ(offsetof(block_q6_K, scales), 192u);
  EXPECT_EQ(offsetof(block_q6_K, d), 208u);
  EXPECT_EQ(offsetof(block_q8_K, bsums), 260u);
}

// ---------------------------------------------------------------------------------
// Hand-built blocks: bytes set by hand, values worked out from the layout description.

TEST(QuantLayout, Q4_0LowNibblesAreTheFirstHalf) {
  block_q4_0 b{};
  b.d = kHalfHalf;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float out[32];
  dequantize_row_q4_0(&b, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], (j - 8) * 0.5f) << j;
    EXPECT_EQ(out[j + 16], (7 - j) * 0.5f) << j + 16;
  }
  EXPECT_EQ(out[0], -4.0f);
  EXPECT_EQ(out[16], 3.5f);
}

TEST(QuantLayout, Q8_0IsScaleTimesQuant) {
  block_q8_0 b{};
  b.d = kHalfTwo;
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j - 16);
  b.qs[0] = -128;
  b.qs[31] = 127;
  float out[32];
  dequantize_row_q8_0(&b, out, 32);
  EXPECT_EQ(out[0], -256.0f);
  EXPECT_EQ(out[31], 254.0f);
  for (int j = 1; j < 31; ++j) EXPECT_EQ(out[j], 2.0f * (j - 16)) << j;
}

// Scales {1, 2, 3, 63, 17, 34, 48, 63} and mins {0, 5, 10, 62, 33, 20, 63, 1}, packed by
// hand: bytes 0-3 = sc[0..3] | top two bits of sc[4..7] << 6, bytes 4-7 = m[0..3] | top
// two bits of m[4..7] << 6, bytes 8-11 = low nibble of sc[4..7] | low nibble of m[4..7] << 4.
constexpr int kScales[8] = {1, 2, 3, 63, 17, 34, 48, 63};
constexpr int kMins[8] = {0, 5, 10, 62, 33, 20, 63, 1};
constexpr uint8_t kPackedScales[12] = {
    1 | (1 << 6), 2 | (2 << 6), 3 | (3 << 6),  63 | (3 << 6),  // 17=01'0001 34=10'0010 48=11'0000 63=11'1111
    0 | (2 << 6), 5 | (1 << 6), 10 | (3 << 6), 62 | (0 << 6),  // 33=10'0001 20=01'0100 63=11'1111 1=00'0001
    1 | (1 << 4), 2 | (4 << 4), 0 | (15 << 4), 15 | (1 << 4),
};

TEST(QuantLayout, KQuantScalesAndMinsUnpackFromTwelveBytes) {
  for (int s = 0; s < 8; ++s) {
    int sc = -1, m = -1;
    k_quant_scale_min(s, kPackedScales, &sc, &m);
    EXPECT_EQ(sc, kScales[s]) << s;
    EXPECT_EQ(m, kMins[s]) << s;
  }
  uint8_t sc[8], m[8], packed[12];
  for (int s = 0; s < 8; ++s) {
    sc[s] = static_cast<uint8_t>(kScales[s]);
    m[s] = static_cast<uint8_t>(kMins[s]);
  }
  k_quant_pack_scale_min(sc, m, packed);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(packed[i], kPackedScales[i]) << i;
}

TEST(QuantLayout, Q4_KSingleBytePlacesTwoElements) {
  block_q4_K b{};
  b.d = kHalfOne;
  b.dmin = kHalfHalf;
  std::memcpy(b.scales, kPackedScales, 12);
  b.qs[32 + 3] = 0xa5;  // chunk 1: element 64+3 gets 5 (sub-block 2), element 96+3 gets 10 (sub-block 3)
  float out[256];
  dequantize_row_q4_K(&b, out, 256);
  EXPECT_EQ(out[67], 1.0f * 3 * 5 - 0.5f * 10);    // 10
  EXPECT_EQ(out[99], 1.0f * 63 * 10 - 0.5f * 62);  // 599
  for (int j = 0; j < 256; ++j) {
    if (j == 67 || j == 99) continue;
    EXPECT_EQ(out[j], -0.5f * kMins[j / 32]) << j;  // q = 0: only the min
  }
}

TEST(QuantLayout, Q4_KFullPattern) {
  block_q4_K b{};
  b.d = kHalfQuarter;
  b.dmin = kHalfTwo;
  std::memcpy(b.scales, kPackedScales, 12);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = static_cast<uint8_t>((l & 15) | (((l + c) & 15) << 4));
  }
  float out[256];
  dequantize_row_q4_K(&b, out, 256);
  for (int j = 0; j < 256; ++j) {
    const int s = j / 32, c = j / 64, l = j % 32;
    const int q = (s % 2 == 0) ? (l & 15) : ((l + c) & 15);
    EXPECT_EQ(out[j], 0.25f * kScales[s] * q - 2.0f * kMins[s]) << j;
  }
}

TEST(QuantLayout, Q5_KFifthBitComesFromQh) {
  block_q5_K b{};
  b.d = kHalfOne;
  b.dmin = kHalfHalf;
  std::memcpy(b.scales, kPackedScales, 12);
  b.qs[32 + 3] = 0xa5;  // element 67 low bits 5, element 99 low bits 10
  b.qh[3] = 0x14;       // bits 2 and 4: +16 for element 64+3 (sub-block 2) and 128+3 (sub-block 4)
  float out[256];
  dequantize_row_q5_K(&b, out, 256);
  EXPECT_EQ(out[67], 1.0f * 3 * 21 - 0.5f * 10);
  EXPECT_EQ(out[99], 1.0f * 63 * 10 - 0.5f * 62);
  EXPECT_EQ(out[131], 1.0f * 17 * 16 - 0.5f * 33);
  for (int j = 0; j < 256; ++j) {
    if (j == 67 || j == 99 || j == 131) continue;
    EXPECT_EQ(out[j], -0.5f * kMins[j / 32]) << j;
  }
}

TEST(QuantLayout, Q5_KFullPattern) {
  block_q5_K b{};
  b.d = kHalfQuarter;
  b.dmin = kHalfTwo;
  std::memcpy(b.scales, kPackedScales, 12);
  for (int l = 0; l < 32; ++l) b.qh[l] = static_cast<uint8_t>(l * 37 + 11);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = static_cast<uint8_t>((l & 15) | (((l + c) & 15) << 4));
  }
  float out[256];
  dequantize_row_q5_K(&b, out, 256);
  for (int j = 0; j < 256; ++j) {
    const int s = j / 32, c = j / 64, l = j % 32;
    const int low = (s % 2 == 0) ? (l & 15) : ((l + c) & 15);
    const int bit = (s % 2 == 0) ? (b.qh[l] >> (2 * c)) & 1 : (b.qh[l] >> (2 * c + 1)) & 1;
    EXPECT_EQ(out[j], 0.25f * kScales[s] * (low + 16 * bit) - 2.0f * kMins[s]) << j;
  }
}

TEST(QuantLayout, Q6_KProbeBytesLandWhereTheSpecSays) {
  block_q6_K b{};
  b.d = kHalfOne;
  for (int s = 0; s < 16; ++s) b.scales[s] = 1;
  // Second half (elements 128..255), l = 5: ql[64+32+5] = 0x31 holds the low bits of
  // quarter 1 (low nibble, 1) and quarter 3 (high nibble, 3); quarters 0 and 2 read
  // ql[64+5] = 0. qh[32+5] = 0b10'01'00'11 gives the top bits: q0 3, q1 0, q2 1, q3 2.
  b.ql[64 + 32 + 5] = 0x31;
  b.qh[32 + 5] = 0x93;
  float out[256];
  dequantize_row_q6_K(&b, out, 256);
  EXPECT_EQ(out[128 + 5], 48 - 32);       // 0 | 3 << 4
  EXPECT_EQ(out[128 + 32 + 5], 1 - 32);   // 1 | 0 << 4
  EXPECT_EQ(out[128 + 64 + 5], 16 - 32);  // 0 | 1 << 4
  EXPECT_EQ(out[128 + 96 + 5], 35 - 32);  // 3 | 2 << 4
  for (int j = 0; j < 256; ++j) {
    if (j % 32 == 5 && j >= 128) continue;
    EXPECT_EQ(out[j], -32.0f) << j;
  }
}

TEST(QuantLayout, Q6_KSignedScalesPerSixteen) {
  block_q6_K b{};
  b.d = kHalfQuarter;
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(s - 8);
  b.scales[15] = -128;
  // Every element q = 32 + 1 (value = scale/4): low nibble 1 in both nibbles, top bits 2.
  for (int i = 0; i < 128; ++i) b.ql[i] = 0x11;
  for (int i = 0; i < 64; ++i) b.qh[i] = 0xaa;
  float out[256];
  dequantize_row_q6_K(&b, out, 256);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(out[j], 0.25f * b.scales[j / 16] * 1) << j;
  EXPECT_EQ(out[255], -32.0f);
}

TEST(QuantLayout, Q8_KIsScaleTimesQuant) {
  block_q8_K b{};
  b.d = 0.125f;
  for (int j = 0; j < 256; ++j) b.qs[j] = static_cast<int8_t>(j - 128);
  float out[256];
  dequantize_row_q8_K(&b, out, 256);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(out[j], 0.125f * (j - 128)) << j;
}

// ---------------------------------------------------------------------------------
// Round trips.

std::vector<float> gaussian_row(int n, float sigma, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> round_trip(TensorType type, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> blocks(n / quant_block_size(type) * quant_type_size(type));
  EXPECT_TRUE(quantize_row(type, x.data(), blocks.data(), n).is_ok());
  std::vector<float> y(x.size());
  dequantize_row(type, blocks.data(), y.data(), n);
  return y;
}

// RMS of (y - x) over RMS of x.
double relative_rms_error(const std::vector<float>& x, const std::vector<float>& y) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (double{y[i]} - x[i]) * (double{y[i]} - x[i]);
    ref += double{x[i]} * x[i];
  }
  return std::sqrt(err / ref);
}

struct ErrorBound {
  TensorType type;
  const char* name;
  double bound;  // relative RMS error on Gaussian rows
};

// Measured worst case over 4096-element Gaussian rows, sigma 1e-3 .. 1e3, 8 seeds each:
// f16 0.021%, bf16 0.17%, q8_0 0.55%, q8_K 0.71%, q4_0 8.8%, q4_K 7.2%, q5_K 3.7%, q6_K 1.8%.
// The bounds leave a margin of about a quarter.
constexpr ErrorBound kBounds[] = {
    {TensorType::kF16, "f16", 0.0003},  {TensorType::kBF16, "bf16", 0.0022}, {TensorType::kQ8_0, "q8_0", 0.007},
    {TensorType::kQ8_K, "q8_K", 0.009}, {TensorType::kQ4_0, "q4_0", 0.11},   {TensorType::kQ4_K, "q4_K", 0.09},
    {TensorType::kQ5_K, "q5_K", 0.047}, {TensorType::kQ6_K, "q6_K", 0.023},
};

TEST(QuantRoundTrip, GaussianRowsStayWithinTheErrorBound) {
  for (const ErrorBound& b : kBounds) {
    double worst = 0;
    for (float sigma : {1e-3f, 0.08f, 1.0f, 1e3f}) {
      for (uint32_t seed = 1; seed <= 8; ++seed) {
        const std::vector<float> x = gaussian_row(4096, sigma, seed);
        const double err = relative_rms_error(x, round_trip(b.type, x));
        worst = std::max(worst, err);
        if (std::getenv("QUANT_VERBOSE")) std::printf("%s sigma %g seed %u: %.4f%%\n", b.name, sigma, seed, 100 * err);
        EXPECT_LT(err, b.bound) << b.name << " sigma " << sigma << " seed " << seed;
      }
    }
    std::printf("[ measured ] %-5s worst relative RMS error %.4f%% (bound %.2f%%)\n", b.name, 100 * worst,
                100 * b.bound);
  }
}

TEST(QuantRoundTrip, UniformRowsStayWithinTheErrorBound) {
  // A flatter distribution than the Gaussian: more weight at the edges of each block.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(4096);
  for (float& v : x) v = dist(rng);
  for (const ErrorBound& b : kBounds) EXPECT_LT(relative_rms_error(x, round_trip(b.type, x)), b.bound) << b.name;
}

TEST(QuantRoundTrip, AllZeroRowsStayExactlyZero) {
  const std::vector<float> x(512, 0.0f);
  for (const ErrorBound& b : kBounds) {
    const std::vector<float> y = round_trip(b.type, x);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], 0.0f) << b.name << " element " << i;
  }
}

TEST(QuantRoundTrip, ConstantRowsComeBackToTheScalesPrecision) {
  // Every block format stores a constant through one fp16 (bf16: the value itself).
  // Not much smaller: q6_K's d = c/32/128 would be an fp16 subnormal, with fewer bits.
  for (float c : {0.5f, -0.5f, 3.0f, -1234.5f, 0.3f, -0.3f}) {
    const std::vector<float> x(512, c);
    for (const ErrorBound& b : kBounds) {
      const double tolerance = (b.type == TensorType::kBF16 ? 4e-3 : 1e-3) * std::fabs(c);
      const std::vector<float> y = round_trip(b.type, x);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_NEAR(y[i], c, tolerance) << b.name << " constant " << c << " element " << i;
      }
    }
  }
}

TEST(QuantRoundTrip, MixedSignsAndAnOutlierKeepEverySign) {
  // A block whose extreme is positive (Q4_0/Q6_K map the extreme to the -8/-32 end).
  std::vector<float> x = gaussian_row(512, 1.0f, 99);
  x[5] = 40.0f;
  x[300] = -40.0f;
  for (const ErrorBound& b : kBounds) {
    const std::vector<float> y = round_trip(b.type, x);
    EXPECT_NEAR(y[5], 40.0f, 0.02 * 40) << b.name;
    EXPECT_NEAR(y[300], -40.0f, 0.02 * 40) << b.name;
  }
}

TEST(QuantRoundTrip, QuantizersAreDeterministic) {
  const std::vector<float> x = gaussian_row(1024, 1.0f, 5);
  for (const ErrorBound& b : kBounds) {
    const size_t bytes = 1024 / quant_block_size(b.type) * quant_type_size(b.type);
    std::vector<uint8_t> first(bytes), second(bytes);
    ASSERT_TRUE(quantize_row(b.type, x.data(), first.data(), 1024).is_ok());
    ASSERT_TRUE(quantize_row(b.type, x.data(), second.data(), 1024).is_ok());
    EXPECT_EQ(first, second) << b.name;
  }
}

TEST(QuantRoundTrip, Q8_0AndQ4_0FollowGgmlsRounding) {
  // Q8_0: d = amax/127, q = round half away from zero of x/d.
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 15) * 0.5f;  // amax 8 at j = 31
  x[31] = 12.7f;
  block_q8_0 q8;
  quantize_row_q8_0(x, &q8, 32);
  EXPECT_EQ(q8.d, fp32_to_fp16(0.1f));
  EXPECT_EQ(q8.qs[31], 127);
  EXPECT_EQ(q8.qs[0], -75);  // -7.5 / 0.1
  // Q4_0: the extreme maps to -8, so a positive extreme makes d negative.
  float y[32] = {};
  y[0] = 8.0f;
  y[16] = -3.0f;
  block_q4_0 q4;
  quantize_row_q4_0(y, &q4, 32);
  EXPECT_EQ(fp16_to_fp32(q4.d), -1.0f);
  EXPECT_EQ(q4.qs[0] & 15, 0);   // 8 / -1 + 8 = 0
  EXPECT_EQ(q4.qs[0] >> 4, 11);  // -3 / -1 + 8 = 11
  EXPECT_EQ(q4.qs[1], 0x88);     // zeros sit at 8
}

TEST(QuantRoundTrip, Q8_KBsumsAreTheSixteenElementSums) {
  const std::vector<float> x = gaussian_row(512, 2.0f, 3);
  block_q8_K q[2];
  quantize_row_q8_K(x.data(), q, 512);
  for (const block_q8_K& b : q) {
    int amax = 0;
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) {
        sum += b.qs[16 * g + j];
        amax = std::max(amax, std::abs(int{b.qs[16 * g + j]}));
      }
      EXPECT_EQ(b.bsums[g], sum) << g;
    }
    EXPECT_EQ(amax, 127);  // the extreme uses the full range, never -128
  }
}

// ---------------------------------------------------------------------------------
// Dot products: the integer-inside-blocks references equal the float dot product of
// the dequantized operands, up to float rounding.

template <typename Weight, typename Act>
void expect_dot_matches_dequantized(TensorType wtype, TensorType atype, float (*dot)(int, const Weight*, const Act*),
                                    int n, uint32_t seed) {
  const std::vector<float> w = gaussian_row(n, 0.08f, seed);
  const std::vector<float> a = gaussian_row(n, 1.5f, seed + 1000);
  std::vector<Weight> wq(n / quant_block_size(wtype));
  std::vector<Act> aq(n / quant_block_size(atype));
  ASSERT_TRUE(quantize_row(wtype, w.data(), wq.data(), n).is_ok());
  ASSERT_TRUE(quantize_row(atype, a.data(), aq.data(), n).is_ok());
  std::vector<float> wd(n), ad(n);
  dequantize_row(wtype, wq.data(), wd.data(), n);
  dequantize_row(atype, aq.data(), ad.data(), n);
  double expected = 0, magnitude = 0;
  for (int i = 0; i < n; ++i) {
    expected += double{wd[i]} * ad[i];
    magnitude += std::fabs(double{wd[i]} * ad[i]);
  }
  const float got = dot(n, wq.data(), aq.data());
  EXPECT_NEAR(got, expected, 2e-6 * magnitude) << "n " << n << " seed " << seed;
  // And close to the unquantized dot product: a sanity check of the whole chain.
  double exact = 0;
  for (int i = 0; i < n; ++i) exact += double{w[i]} * a[i];
  EXPECT_NEAR(got, exact, 0.15 * magnitude) << "n " << n << " seed " << seed;
}

TEST(QuantDot, Q4_0TimesQ8_0) {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    expect_dot_matches_dequantized(TensorType::kQ4_0, TensorType::kQ8_0, vec_dot_q4_0_q8_0, 32, seed);
    expect_dot_matches_dequantized(TensorType::kQ4_0, TensorType::kQ8_0, vec_dot_q4_0_q8_0, 4096, seed);
  }
}

TEST(QuantDot, Q8_0TimesQ8_0) {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    expect_dot_matches_dequantized(TensorType::kQ8_0, TensorType::kQ8_0, vec_dot_q8_0_q8_0, 32, seed);
    expect_dot_matches_dequantized(TensorType::kQ8_0, TensorType::kQ8_0, vec_dot_q8_0_q8_0, 4096, seed);
  }
}

TEST(QuantDot, Q4_KTimesQ8_K) {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    expect_dot_matches_dequantized(TensorType::kQ4_K, TensorType::kQ8_K, vec_dot_q4_K_q8_K, 256, seed);
    expect_dot_matches_dequantized(TensorType::kQ4_K, TensorType::kQ8_K, vec_dot_q4_K_q8_K, 4096, seed);
  }
}

TEST(QuantDot, Q5_KTimesQ8_K) {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    expect_dot_matches_dequantized(TensorType::kQ5_K, TensorType::kQ8_K, vec_dot_q5_K_q8_K, 256, seed);
    expect_dot_matches_dequantized(TensorType::kQ5_K, TensorType::kQ8_K, vec_dot_q5_K_q8_K, 4096, seed);
  }
}

TEST(QuantDot, Q6_KTimesQ8_K) {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    expect_dot_matches_dequantized(TensorType::kQ6_K, TensorType::kQ8_K, vec_dot_q6_K_q8_K, 256, seed);
    expect_dot_matches_dequantized(TensorType::kQ6_K, TensorType::kQ8_K, vec_dot_q6_K_q8_K, 4096, seed);
  }
}

TEST(QuantDot, HandBuiltQ4_KBlockUsesBsumsForTheMins) {
  // Every weight q = 1 with scale 1 and min 1 (value d*1*1 - dmin*1 = 1 - 0.5); every
  // activation 2 (d 1, q 2): the dot is 256 * 0.5 * 2.
  block_q4_K w{};
  w.d = kHalfOne;
  w.dmin = kHalfHalf;
  const uint8_t ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  k_quant_pack_scale_min(ones, ones, w.scales);
  std::memset(w.qs, 0x11, sizeof w.qs);
  block_q8_K a{};
  a.d = 1.0f;
  std::memset(a.qs, 2, sizeof a.qs);
  for (int16_t& s : a.bsums) s = 32;
  EXPECT_EQ(vec_dot_q4_K_q8_K(256, &w, &a), 256.0f);
}

// ---------------------------------------------------------------------------------
// The dispatcher.

TEST(QuantDispatch, F32IsACopy) {
  const std::vector<float> x = {1.5f, -2.0f, 3.25f};
  std::vector<float> stored(3), back(3);
  ASSERT_TRUE(quantize_row(TensorType::kF32, x.data(), stored.data(), 3).is_ok());
  dequantize_row(TensorType::kF32, stored.data(), back.data(), 3);
  EXPECT_EQ(back, x);
}

TEST(QuantDispatch, KnowsTheBlockGeometry) {
  EXPECT_EQ(quant_block_size(TensorType::kQ4_0), 32);
  EXPECT_EQ(quant_type_size(TensorType::kQ4_0), 18);
  EXPECT_EQ(quant_block_size(TensorType::kQ6_K), 256);
  EXPECT_EQ(quant_type_size(TensorType::kQ6_K), 210);
  EXPECT_EQ(quant_type_size(TensorType::kBF16), 2);
  EXPECT_TRUE(quant_type_supported(TensorType::kQ5_K));
  EXPECT_FALSE(quant_type_supported(TensorType::kQ2_K));
  EXPECT_EQ(quant_block_size(TensorType::kQ4_1), 0);
}

TEST(QuantDispatch, AgreesWithTheModelsTypeTable) {
  // model/ reads files by tensor_type_traits; engine/ must handle exactly what it
  // marks supported, with the same block geometry.
  for (uint32_t id = 0; id < 64; ++id) {
    const auto type = static_cast<TensorType>(id);
    const auto traits = tensor_type_traits(id);
    const bool model_supports = traits && traits->supported;
    EXPECT_EQ(quant_type_supported(type), model_supports) << "type id " << id;
    if (model_supports) {
      EXPECT_EQ(quant_block_size(type), static_cast<int>(traits->block_size)) << traits->name;
      EXPECT_EQ(quant_type_size(type), static_cast<int>(traits->type_size)) << traits->name;
    }
  }
}

TEST(QuantDispatch, RefusesUnsupportedTypesAndPartialBlocksWithAClearMessage) {
  std::vector<float> x(256, 1.0f);
  std::vector<uint8_t> out(1024);
  Status s = quantize_row(TensorType::kQ3_K, x.data(), out.data(), 256);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not supported"), std::string::npos) << s.message();
  s = quantize_row(TensorType::kQ4_K, x.data(), out.data(), 100);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("q4_K"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("100"), std::string::npos) << s.message();
}

TEST(QuantDispatchDeathTest, DequantizingAnUnsupportedTypeAbortsLoudly) {
  std::vector<uint8_t> in(64);
  std::vector<float> out(32);
  EXPECT_DEATH(dequantize_row(TensorType::kQ4_1, in.data(), out.data(), 32), "dequantize_row");
}

}  // namespace
}  // namespace clusterd
