// NEON dot products (see kernels_neon.h). The integer parts are exact as in the scalar
// references; the float parts add in a different order (q8_0, q4_0, f16) or the same
// order (the K-quants, which spend 256 elements per float step anyway).
#include "clusterd/engine/kernels_neon.h"

#include <algorithm>

#include "row_tiles.h"

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace clusterd {

// The operating system's answer where there is one; else the build's assumption.
bool cpu_has_arm_dotprod() {
#if defined(__aarch64__) && defined(__linux__) && defined(HWCAP_ASIMDDP)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__aarch64__) && defined(__APPLE__)
  int value = 0;
  size_t size = sizeof(value);
  return sysctlbyname("hw.optional.arm.FEAT_DotProd", &value, &size, nullptr, 0) == 0 && value != 0;
#elif defined(__ARM_FEATURE_DOTPROD)
  return true;
#else
  return false;
#endif
}

}  // namespace clusterd

#if defined(CLUSTERD_HAVE_NEON_KERNELS)
#include <arm_neon.h>

#include <bit>
#include <cstdint>
#include <cstring>

static_assert(std::endian::native == std::endian::little, "the block layouts are read as little-endian words");

namespace clusterd {
namespace {

inline float half_to_float(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

inline int8x16_t as_s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }

// acc plus the 16 products of the signed bytes of x and y. SDOT sums them four to a
// lane; without it they are widened to 16 bits (|product| <= 2^14) and added in pairs.
// Only the total over the lanes is meaningful.
inline int32x4_t dot_i8(int32x4_t acc, int8x16_t x, int8x16_t y) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, x, y);
#else
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x), vget_low_s8(y)));
  return vpadalq_s16(acc, vmull_high_s8(x, y));
#endif
}

// The 32 products of a q8_0 block pair, spread over four lanes (each below 2^24, so
// converting a lane to float is exact).
inline int32x4_t block_dot(const block_q8_0& x, const block_q8_0& y) {
  const int32x4_t acc = dot_i8(vdupq_n_s32(0), vld1q_s8(x.qs), vld1q_s8(y.qs));
  return dot_i8(acc, vld1q_s8(x.qs + 16), vld1q_s8(y.qs + 16));
}

inline int32x4_t block_dot(const block_q4_0& x, const block_q8_0& y) {
  // Elements 0..15 are the low nibbles, 16..31 the high ones; both are offset by 8.
  const uint8x16_t packed = vld1q_u8(x.qs);
  const int8x16_t eight = vdupq_n_s8(8);
  const int8x16_t low = vsubq_s8(as_s8(vandq_u8(packed, vdupq_n_u8(0x0f))), eight);
  const int8x16_t high = vsubq_s8(as_s8(vshrq_n_u8(packed, 4)), eight);
  const int32x4_t acc = dot_i8(vdupq_n_s32(0), low, vld1q_s8(y.qs));
  return dot_i8(acc, high, vld1q_s8(y.qs + 16));
}

// Sum over blocks of d_x * d_y * (x . y) for 32-element blocks, two blocks a step so
// that two chains of float adds run side by side.
template <typename BlockX>
float dot_blocks_q8_0(int nb, const BlockX* x, const block_q8_0* y) {
  float32x4_t acc0 = vdupq_n_f32(0.0f);
  float32x4_t acc1 = vdupq_n_f32(0.0f);
  int i = 0;
  for (; i + 1 < nb; i += 2) {
    const float d0 = half_to_float(x[i].d) * half_to_float(y[i].d);
    const float d1 = half_to_float(x[i + 1].d) * half_to_float(y[i + 1].d);
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(block_dot(x[i], y[i])), d0);
    acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(block_dot(x[i + 1], y[i + 1])), d1);
  }
  if (i < nb) {
    const float d = half_to_float(x[i].d) * half_to_float(y[i].d);
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(block_dot(x[i], y[i])), d);
  }
  return vaddvq_f32(vaddq_f32(acc0, acc1));
}

// The 6-bit scales and mins of a Q4_K/Q5_K block, unpacked as k_quant_scale_min does
// it, four at a time in 32-bit words: sc[4+i] takes its top two bits from bits 6-7 of
// byte i, which a shift by 2 moves to bits 4-5 of the same byte.
struct KScaleMin {
  uint8_t sc[8];
  uint8_t m[8];
};

inline KScaleMin unpack_scale_min(const uint8_t* scales) {
  uint32_t w[3];
  std::memcpy(w, scales, sizeof w);
  constexpr uint32_t kSix = 0x3f3f3f3fu;
  constexpr uint32_t kFour = 0x0f0f0f0fu;
  constexpr uint32_t kTop = 0x30303030u;
  const uint32_t sc[2] = {w[0] & kSix, (w[2] & kFour) | ((w[0] >> 2) & kTop)};
  const uint32_t m[2] = {w[1] & kSix, ((w[2] >> 4) & kFour) | ((w[1] >> 2) & kTop)};
  KScaleMin out;
  std::memcpy(out.sc, sc, sizeof out.sc);
  std::memcpy(out.m, m, sizeof out.m);
  return out;
}

// sum_s m[s] * (bsums[2s] + bsums[2s+1]): a bsum is a sum of 16 int8, so a pair fits
// in 16 bits.
inline int32_t min_dot(const uint8_t m[8], const int16_t* bsums) {
  const int16x8_t pairs = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));
  const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
  const int32x4_t products = vmull_s16(vget_low_s16(pairs), vget_low_s16(mins));
  return vaddvq_s32(vmlal_high_s16(products, pairs, mins));
}

// acc + sc_low * (q_low . y[0..31]) + sc_high * (q_high . y[32..63]) for one 64-element
// chunk of a Q4_K/Q5_K block: sub-blocks 2c and 2c+1, 16 quants per register.
inline int32x4_t chunk_dot(int32x4_t acc, const int8x16_t q_low[2], const int8x16_t q_high[2], const int8_t* y,
                           int sc_low, int sc_high) {
  const int32x4_t zero = vdupq_n_s32(0);
  const int32x4_t low = dot_i8(dot_i8(zero, q_low[0], vld1q_s8(y)), q_low[1], vld1q_s8(y + 16));
  const int32x4_t high = dot_i8(dot_i8(zero, q_high[0], vld1q_s8(y + 32)), q_high[1], vld1q_s8(y + 48));
  return vmlaq_n_s32(vmlaq_n_s32(acc, low, sc_low), high, sc_high);
}

// Q6_K quants of 16 elements: low 4 bits `nibbles`, top 2 bits in bits 0-1 of `top`,
// minus the offset 32.
inline int8x16_t six_bit(uint8x16_t nibbles, uint8x16_t top) {
  const uint8x16_t q = vorrq_u8(nibbles, vshlq_n_u8(vandq_u8(top, vdupq_n_u8(3)), 4));
  return vsubq_s8(as_s8(q), vdupq_n_s8(32));
}

}  // namespace

float vec_dot_q8_0_q8_0_neon(int n, const block_q8_0* x, const block_q8_0* y) {
  return dot_blocks_q8_0(n / kQK8_0, x, y);
}

float vec_dot_q4_0_q8_0_neon(int n, const block_q4_0* x, const block_q8_0* y) {
  return dot_blocks_q8_0(n / kQK4_0, x, y);
}

float vec_dot_q4_K_q8_K_neon(int n, const block_q4_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  const uint8x16_t low_nibble = vdupq_n_u8(0x0f);
  float sum = 0.0f;
  for (int i = 0; i < nb; ++i) {
    const KScaleMin k = unpack_scale_min(x[i].scales);
    int32x4_t sum_q = vdupq_n_s32(0);
    for (int c = 0; c < 4; ++c) {  // sub-block 2c in the low nibbles, 2c+1 in the high
      const uint8x16_t packed[2] = {vld1q_u8(x[i].qs + 32 * c), vld1q_u8(x[i].qs + 32 * c + 16)};
      const int8x16_t q_low[2] = {as_s8(vandq_u8(packed[0], low_nibble)), as_s8(vandq_u8(packed[1], low_nibble))};
      const int8x16_t q_high[2] = {as_s8(vshrq_n_u8(packed[0], 4)), as_s8(vshrq_n_u8(packed[1], 4))};
      sum_q = chunk_dot(sum_q, q_low, q_high, y[i].qs + 64 * c, k.sc[2 * c], k.sc[2 * c + 1]);
    }
    const int32_t sum_m = min_dot(k.m, y[i].bsums);
    const float d = half_to_float(x[i].d) * y[i].d;
    const float dmin = half_to_float(x[i].dmin) * y[i].d;
    sum += d * static_cast<float>(vaddvq_s32(sum_q)) - dmin * static_cast<float>(sum_m);
  }
  return sum;
}

float vec_dot_q5_K_q8_K_neon(int n, const block_q5_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  const uint8x16_t low_nibble = vdupq_n_u8(0x0f);
  const uint8x16_t bit0 = vdupq_n_u8(0x01);
  const uint8x16_t bit1 = vdupq_n_u8(0x02);
  float sum = 0.0f;
  for (int i = 0; i < nb; ++i) {
    const KScaleMin k = unpack_scale_min(x[i].scales);
    // Bit s of qh[l] is the fifth bit of element l of sub-block s; after chunk c the
    // bits move down by two, so the current pair always sits in bits 0 and 1.
    uint8x16_t qh[2] = {vld1q_u8(x[i].qh), vld1q_u8(x[i].qh + 16)};
    int32x4_t sum_q = vdupq_n_s32(0);
    for (int c = 0; c < 4; ++c) {
      const uint8x16_t packed[2] = {vld1q_u8(x[i].qs + 32 * c), vld1q_u8(x[i].qs + 32 * c + 16)};
      int8x16_t q_low[2];
      int8x16_t q_high[2];
      for (int h = 0; h < 2; ++h) {
        q_low[h] = as_s8(vorrq_u8(vandq_u8(packed[h], low_nibble), vshlq_n_u8(vandq_u8(qh[h], bit0), 4)));
        q_high[h] = as_s8(vorrq_u8(vshrq_n_u8(packed[h], 4), vshlq_n_u8(vandq_u8(qh[h], bit1), 3)));
        qh[h] = vshrq_n_u8(qh[h], 2);
      }
      sum_q = chunk_dot(sum_q, q_low, q_high, y[i].qs + 64 * c, k.sc[2 * c], k.sc[2 * c + 1]);
    }
    const int32_t sum_m = min_dot(k.m, y[i].bsums);
    const float d = half_to_float(x[i].d) * y[i].d;
    const float dmin = half_to_float(x[i].dmin) * y[i].d;
    sum += d * static_cast<float>(vaddvq_s32(sum_q)) - dmin * static_cast<float>(sum_m);
  }
  return sum;
}

float vec_dot_q6_K_q8_K_neon(int n, const block_q6_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  const uint8x16_t low_nibble = vdupq_n_u8(0x0f);
  const int32x4_t zero = vdupq_n_s32(0);
  float sum = 0.0f;
  for (int i = 0; i < nb; ++i) {
    int32x4_t sum_q = vdupq_n_s32(0);
    for (int h = 0; h < 2; ++h) {  // elements 128h..128h+127, sub-blocks 8h..8h+7
      const uint8_t* ql = x[i].ql + 64 * h;
      const int8_t* q8 = y[i].qs + 128 * h;
      const int8_t* scale = x[i].scales + 8 * h;
      for (int j = 0; j < 2; ++j) {                       // l in 16j..16j+15 of each quarter k: sub-block 8h+2k+j
        const uint8x16_t a = vld1q_u8(ql + 16 * j);       // quarter 0 low, 2 high nibbles
        const uint8x16_t b = vld1q_u8(ql + 32 + 16 * j);  // quarter 1 low, 3 high nibbles
        const uint8x16_t top = vld1q_u8(x[i].qh + 32 * h + 16 * j);  // bits 2k..2k+1: quarter k
        const int8x16_t q0 = six_bit(vandq_u8(a, low_nibble), top);
        const int8x16_t q1 = six_bit(vandq_u8(b, low_nibble), vshrq_n_u8(top, 2));
        const int8x16_t q2 = six_bit(vshrq_n_u8(a, 4), vshrq_n_u8(top, 4));
        const int8x16_t q3 = six_bit(vshrq_n_u8(b, 4), vshrq_n_u8(top, 6));
        sum_q = vmlaq_n_s32(sum_q, dot_i8(zero, q0, vld1q_s8(q8 + 16 * j)), scale[j]);
        sum_q = vmlaq_n_s32(sum_q, dot_i8(zero, q1, vld1q_s8(q8 + 32 + 16 * j)), scale[2 + j]);
        sum_q = vmlaq_n_s32(sum_q, dot_i8(zero, q2, vld1q_s8(q8 + 64 + 16 * j)), scale[4 + j]);
        sum_q = vmlaq_n_s32(sum_q, dot_i8(zero, q3, vld1q_s8(q8 + 96 + 16 * j)), scale[6 + j]);
      }
    }
    sum += half_to_float(x[i].d) * y[i].d * static_cast<float>(vaddvq_s32(sum_q));
  }
  return sum;
}

float vec_dot_f16_f32_neon(int n, const uint16_t* x, const float* y) {
  // Runs of 64: each float lane adds only four products before the run is widened, so
  // the float rounding stays near that of the reference's double sum.
  constexpr int kRun = 64;
  float64x2_t total = vdupq_n_f64(0.0);
  int i = 0;
  for (; i + kRun <= n; i += kRun) {
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    for (int j = i; j < i + kRun; j += 16) {
      const float16x8_t h0 = vreinterpretq_f16_u16(vld1q_u16(x + j));
      const float16x8_t h1 = vreinterpretq_f16_u16(vld1q_u16(x + j + 8));
      acc[0] = vfmaq_f32(acc[0], vcvt_f32_f16(vget_low_f16(h0)), vld1q_f32(y + j));
      acc[1] = vfmaq_f32(acc[1], vcvt_high_f32_f16(h0), vld1q_f32(y + j + 4));
      acc[2] = vfmaq_f32(acc[2], vcvt_f32_f16(vget_low_f16(h1)), vld1q_f32(y + j + 8));
      acc[3] = vfmaq_f32(acc[3], vcvt_high_f32_f16(h1), vld1q_f32(y + j + 12));
    }
    const float32x4_t run = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    total = vaddq_f64(total, vcvt_f64_f32(vget_low_f32(run)));
    total = vaddq_f64(total, vcvt_high_f64_f32(run));
  }
  double sum = vaddvq_f64(total);
  for (; i < n; ++i) sum += double{half_to_float(x[i])} * double{y[i]};
  return static_cast<float>(sum);
}

namespace {

// One row by T tokens, each token's sum computed exactly as vec_dot_f16_f32_neon
// computes it (runs of 64 in float, the runs and the tail in double), each widened
// weight vector serving the T tokens.
template <int T>
void f16_tile(const uint16_t* w, const float* x, size_t x_stride, int n, float* y, size_t y_stride) {
  constexpr int kRun = 64;
  float64x2_t total[T];
  for (int t = 0; t < T; ++t) total[t] = vdupq_n_f64(0.0);
  int i = 0;
  for (; i + kRun <= n; i += kRun) {
    float32x4_t acc[T][4];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = vdupq_n_f32(0.0f);
    for (int j = i; j < i + kRun; j += 16) {
      const float16x8_t h0 = vreinterpretq_f16_u16(vld1q_u16(w + j));
      const float16x8_t h1 = vreinterpretq_f16_u16(vld1q_u16(w + j + 8));
      const float32x4_t w0 = vcvt_f32_f16(vget_low_f16(h0)), w1 = vcvt_high_f32_f16(h0);
      const float32x4_t w2 = vcvt_f32_f16(vget_low_f16(h1)), w3 = vcvt_high_f32_f16(h1);
      for (int t = 0; t < T; ++t) {
        const float* xt = x + t * x_stride + j;
        acc[t][0] = vfmaq_f32(acc[t][0], w0, vld1q_f32(xt));
        acc[t][1] = vfmaq_f32(acc[t][1], w1, vld1q_f32(xt + 4));
        acc[t][2] = vfmaq_f32(acc[t][2], w2, vld1q_f32(xt + 8));
        acc[t][3] = vfmaq_f32(acc[t][3], w3, vld1q_f32(xt + 12));
      }
    }
    for (int t = 0; t < T; ++t) {
      const float32x4_t run = vaddq_f32(vaddq_f32(acc[t][0], acc[t][1]), vaddq_f32(acc[t][2], acc[t][3]));
      total[t] = vaddq_f64(total[t], vcvt_f64_f32(vget_low_f32(run)));
      total[t] = vaddq_f64(total[t], vcvt_high_f64_f32(run));
    }
  }
  for (int t = 0; t < T; ++t) {
    double sum = vaddvq_f64(total[t]);
    for (int j = i; j < n; ++j) sum += double{half_to_float(w[j])} * double{x[t * x_stride + j]};
    y[t * y_stride] = static_cast<float>(sum);
  }
}

}  // namespace

void dot_f16_rows_neon(const uint16_t* w, size_t w_stride, int rows, const float* x, size_t x_stride, int tokens, int n,
                       float* y, size_t y_stride) {
  for_each_row_tile(w, w_stride, rows, x, x_stride, tokens, y, y_stride, 1, 3,
                    [&](const uint16_t* wr, const float* xt, float* yt, int, int nt) {
                      with_count<3>(nt, [&](auto T) { f16_tile<T()>(wr, xt, x_stride, n, yt, y_stride); });
                    });
}

}  // namespace clusterd

#endif  // CLUSTERD_HAVE_NEON_KERNELS
