// fp16 and bf16 conversion: exact where a value is representable, round to nearest
// even otherwise, and infinities and NaNs kept for what they are.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "clusterd/engine/quant.h"

namespace clusterd {
namespace {

float float_from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

bool is_fp16_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0; }
bool is_bf16_nan(uint16_t b) { return (b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0; }

TEST(Fp16, DecodesKnownValues) {
  EXPECT_EQ(fp16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x3555), 0.25f * (1.0f + 0x155 / 1024.0f));  // 0.333251953125
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);                          // largest finite
  EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));             // smallest normal
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));             // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x03ff), std::ldexp(1023.0f, -24));          // largest subnormal
  EXPECT_EQ(fp16_to_fp32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(fp16_to_fp32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7e00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7c01)));  // a signalling NaN is still a NaN
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0x8000)));
  EXPECT_EQ(fp16_to_fp32(0x8000), 0.0f);
}

TEST(Fp16, EveryHalfSurvivesARoundTrip) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t half = static_cast<uint16_t>(h);
    const uint16_t back = fp32_to_fp16(fp16_to_fp32(half));
    if (is_fp16_nan(half)) {
      EXPECT_TRUE(is_fp16_nan(back)) << std::hex << h;
      EXPECT_EQ(back & 0x8000, half & 0x8000) << std::hex << h;
    } else {
      ASSERT_EQ(back, half) << std::hex << h;
    }
  }
}

TEST(Fp16, RoundsTiesToEven) {
  const float ulp_at_one = std::ldexp(1.0f, -10);
  EXPECT_EQ(fp32_to_fp16(1.0f + ulp_at_one / 2), 0x3c00);      // tie, 0x3c00 is even
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * ulp_at_one / 2), 0x3c02);  // tie, 0x3c01 is odd
  EXPECT_EQ(fp32_to_fp16(std::nextafter(1.0f + ulp_at_one / 2, 2.0f)), 0x3c01);
  EXPECT_EQ(fp32_to_fp16(std::nextafter(1.0f + ulp_at_one / 2, 0.0f)), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-(1.0f + ulp_at_one / 2)), 0xbc00);
  // The carry out of the mantissa lands in the exponent: just below 2 rounds to 2.
  EXPECT_EQ(fp32_to_fp16(std::nextafter(2.0f, 0.0f)), 0x4000);
}

TEST(Fp16, OverflowsToInfinityOnlyPastTheLastHalfStep) {
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);  // tie between 0x7bff (odd) and 2^16
  EXPECT_EQ(fp32_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-1e10f), 0xfc00);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::max()), 0x7c00);
}

TEST(Fp16, RoundsIntoAndOutOfSubnormals) {
  const float unit = std::ldexp(1.0f, -24);  // one subnormal step
  EXPECT_EQ(fp32_to_fp16(unit), 0x0001);
  EXPECT_EQ(fp32_to_fp16(unit / 2), 0x0000);                        // tie to even zero
  EXPECT_EQ(fp32_to_fp16(std::nextafter(unit / 2, 1.0f)), 0x0001);  // just past the tie
  EXPECT_EQ(fp32_to_fp16(3 * unit / 2), 0x0002);                    // tie, 1 is odd
  EXPECT_EQ(fp32_to_fp16(5 * unit / 2), 0x0002);                    // tie, 2 is even
  EXPECT_EQ(fp32_to_fp16(1023.5f * unit), 0x0400);                  // rounds up to the smallest normal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-std::ldexp(1.0f, -30)), 0x8000);  // keeps its sign
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
}

TEST(Fp16, KeepsNaNsNaN) {
  EXPECT_TRUE(is_fp16_nan(fp32_to_fp16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(is_fp16_nan(fp32_to_fp16(float_from_bits(0x7f800001))));  // payload only in low bits
  EXPECT_TRUE(is_fp16_nan(fp32_to_fp16(float_from_bits(0xff800001))));
  EXPECT_EQ(fp32_to_fp16(float_from_bits(0xff800001)) & 0x8000, 0x8000);
}

#if defined(__FLT16_MAX__)
// The compiler's own _Float16 conversion is an independent implementation of the rule.
TEST(Fp16, MatchesTheCompilersConversionAcrossAllExponents) {
  uint32_t bits = 0;
  for (int i = 0; i < 2'000'000; ++i, bits += 2147u) {  // strides every exponent, both signs
    const float f = float_from_bits(bits);
    if (std::isnan(f)) continue;
    const _Float16 expected = static_cast<_Float16>(f);
    uint16_t expected_bits;
    std::memcpy(&expected_bits, &expected, sizeof expected_bits);
    ASSERT_EQ(fp32_to_fp16(f), expected_bits) << std::hex << bits;
  }
}
#endif

TEST(Bf16, DecodesByWidening) {
  EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0xc0a0), -5.0f);
  EXPECT_EQ(bf16_to_fp32(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(bf16_to_fp32(0x7fc0)));
  EXPECT_EQ(bf16_to_fp32(0x0001), float_from_bits(0x00010000));  // subnormals too
}

TEST(Bf16, EveryBf16SurvivesARoundTrip) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const uint16_t v = static_cast<uint16_t>(b);
    if (is_bf16_nan(v)) {
      EXPECT_TRUE(is_bf16_nan(fp32_to_bf16(bf16_to_fp32(v)))) << std::hex << b;
    } else {
      ASSERT_EQ(fp32_to_bf16(bf16_to_fp32(v)), v) << std::hex << b;
    }
  }
}

TEST(Bf16, RoundsTiesToEven) {
  EXPECT_EQ(fp32_to_bf16(float_from_bits(0x3f808000)), 0x3f80);  // tie, 0x3f80 is even
  EXPECT_EQ(fp32_to_bf16(float_from_bits(0x3f818000)), 0x3f82);  // tie, 0x3f81 is odd
  EXPECT_EQ(fp32_to_bf16(float_from_bits(0x3f808001)), 0x3f81);
  EXPECT_EQ(fp32_to_bf16(float_from_bits(0x3f807fff)), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(float_from_bits(0xbf808001)), 0xbf81);
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to inf
  EXPECT_EQ(fp32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
}

TEST(Bf16, KeepsNaNsNaNEvenWithPayloadBelowTheCut) {
  // Truncating 0x7f800001 would give 0x7f80, an infinity.
  EXPECT_TRUE(is_bf16_nan(fp32_to_bf16(float_from_bits(0x7f800001))));
  EXPECT_TRUE(is_bf16_nan(fp32_to_bf16(float_from_bits(0x7fffffff))));  // must not carry into the sign
  EXPECT_EQ(fp32_to_bf16(float_from_bits(0x7fffffff)) & 0x8000, 0);
  EXPECT_EQ(fp32_to_bf16(float_from_bits(0xffc00000)), 0xffc0);
}

TEST(FloatRows, ConvertEveryElement) {
  const std::vector<float> in = {0.0f, 1.0f, -2.5f, 65504.0f, 1e-7f, 3.14159f};
  std::vector<uint16_t> half(in.size());
  std::vector<float> out(in.size());
  fp32_to_fp16_row(in.data(), half.data(), static_cast<int64_t>(in.size()));
  fp16_to_fp32_row(half.data(), out.data(), static_cast<int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(half[i], fp32_to_fp16(in[i]));
    EXPECT_EQ(out[i], fp16_to_fp32(half[i]));
  }
  fp32_to_bf16_row(in.data(), half.data(), static_cast<int64_t>(in.size()));
  bf16_to_fp32_row(half.data(), out.data(), static_cast<int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(half[i], fp32_to_bf16(in[i]));
    EXPECT_EQ(out[i], bf16_to_fp32(half[i]));
  }
}

TEST(FloatDots, AgreeWithTheConvertedOperands) {
  std::vector<float> x(1000), y(1000);
  for (int i = 0; i < 1000; ++i) {
    x[i] = std::sin(0.37f * i);
    y[i] = std::cos(0.11f * i) * 3.0f;
  }
  std::vector<uint16_t> xh(1000), xb(1000);
  fp32_to_fp16_row(x.data(), xh.data(), 1000);
  fp32_to_bf16_row(x.data(), xb.data(), 1000);
  double exact = 0, exact_h = 0, exact_b = 0, scale = 0;
  for (int i = 0; i < 1000; ++i) {
    exact += double{x[i]} * y[i];
    exact_h += double{fp16_to_fp32(xh[i])} * y[i];
    exact_b += double{bf16_to_fp32(xb[i])} * y[i];
    scale += std::fabs(double{x[i]} * y[i]);
  }
  EXPECT_NEAR(vec_dot_f32(1000, x.data(), y.data()), exact, 1e-6 * scale);
  EXPECT_NEAR(vec_dot_f16_f32(1000, xh.data(), y.data()), exact_h, 1e-6 * scale);
  EXPECT_NEAR(vec_dot_bf16_f32(1000, xb.data(), y.data()), exact_b, 1e-6 * scale);
  EXPECT_EQ(vec_dot_f32(0, x.data(), y.data()), 0.0f);
}

}  // namespace
}  // namespace clusterd
