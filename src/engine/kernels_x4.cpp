// One weight row times four activation rows. Each function is its one-row kernel
// (kernels_avx512.cpp, kernels_avx2.cpp) with the loop over tokens moved inside the
// loop over blocks: what depends on the weight only (loads, nibble and scale
// unpacking, |x| and its sign) is done once per block, the rest once per token,
// keeping per token the one-row kernel's accumulators and float operations in order.
// The integer block sums may be formed differently (q4_0 as |q - 8| times y with the
// sign moved, instead of q . y - 8 sum(y)), but every int32 lane holds the same value.
#include "clusterd/engine/kernels_x4.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include "avx512_intrinsics.h"

#define CLUSTERD_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace clusterd {
namespace {

constexpr int kTokens = 4;
// The loops over tokens (and over a block's pieces) are unrolled so that the per-token
// accumulators live in registers rather than in arrays on the stack.

CLUSTERD_AVX2 inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

CLUSTERD_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

CLUSTERD_AVX2 inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
CLUSTERD_AVX2 inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

CLUSTERD_AVX2 inline __m256i join128(__m128i low, __m128i high) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(low), high, 1);
}

// The eight 6-bit scales and mins of a Q4_K block, one byte each in sub-block order.
struct KScalesMins {
  uint64_t sc;
  uint64_t m;
};
inline KScalesMins k_quant_unpack(const uint8_t* scales) {
  uint32_t w[3];
  std::memcpy(w, scales, sizeof w);
  const uint32_t sc_low = w[0] & 0x3f3f3f3fu;
  const uint32_t m_low = w[1] & 0x3f3f3f3fu;
  const uint32_t sc_high = (w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u);
  const uint32_t m_high = ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u);
  return {sc_low | uint64_t{sc_high} << 32, m_low | uint64_t{m_high} << 32};
}

// ---------------------------------------------------------------------------------
// AVX-512 VNNI

CLUSTERD_AVX512 inline __m512i join256(__m256i low, __m256i high) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
}

// VPERMD index: lane l picks element first + l / 8 (halves) or first + l / 4 (quarters).
CLUSTERD_AVX512 inline __m512i halves_index(int first) {
  return _mm512_add_epi32(_mm512_set1_epi32(first), _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0));
}
CLUSTERD_AVX512 inline __m512i quarters_index(int first) {
  return _mm512_add_epi32(_mm512_set1_epi32(first), _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0));
}

// d_x * d_y for blocks b and b+1 of each token's activations: element 2t + k of the
// result is d_x[k] * d_y[t][k] (the same float products as the one-row kernel's).
// Both weight block types start with the fp16 d.
template <typename Block>
CLUSTERD_AVX512 inline __m256 pair_scales_x4(const Block* x, const block_q8_0* const y[kTokens], int b) {
  const __m256 dy =
      _mm256_cvtph_ps(_mm_setr_epi16(short(y[0][b].d), short(y[0][b + 1].d), short(y[1][b].d), short(y[1][b + 1].d),
                                     short(y[2][b].d), short(y[2][b + 1].d), short(y[3][b].d), short(y[3][b + 1].d)));
  const __m128i xh = _mm_set1_epi32(int(uint32_t{x[0].d} | uint32_t{x[1].d} << 16));
  return _mm256_mul_ps(_mm256_cvtph_ps(xh), dy);
}

// Token t's scales from pair_scales_x4 spread as the one-row kernel has them: block b in
// lanes 0-7, block b+1 in lanes 8-15.
CLUSTERD_AVX512 inline __m512 token_scales(__m256 scales, int t) {
  return _mm512_permutexvar_ps(halves_index(2 * t), _mm512_castps256_ps512(scales));
}

// Blocks b and b+1 of a q8_0/q4_0 weight row as signed bytes: |x| and x's sign mask;
// each token's y takes the sign, as dot_i8 in kernels_avx512.cpp.
CLUSTERD_AVX512 inline void pair_x4(__m512 acc[kTokens], __m512i qx, __m256 scales, const block_q8_0* const y[kTokens],
                                    int b) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i abs_x = _mm512_abs_epi8(qx);
  const __mmask64 negative = _mm512_movepi8_mask(qx);
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    const __m512i qy = join256(load256(y[t][b].qs), load256(y[t][b + 1].qs));
    const __m512i y_signed = _mm512_mask_sub_epi8(qy, negative, zero, qy);
    const __m512i dot = _mm512_dpbusd_epi32(zero, abs_x, y_signed);
    acc[t] = _mm512_fmadd_ps(token_scales(scales, t), _mm512_cvtepi32_ps(dot), acc[t]);
  }
}

CLUSTERD_AVX512 inline __m512i pair_quants(const block_q8_0* x) { return join256(load256(x[0].qs), load256(x[1].qs)); }

// Blocks b, b+1 of q4_0 as signed q - 8 in element order (low nibbles, then high).
CLUSTERD_AVX512 inline __m512i pair_quants(const block_q4_0* x) {
  const __m256i packed = join128(load128(x[0].qs), load128(x[1].qs));
  const __m512i wide = _mm512_castsi256_si512(packed);
  const __m512i spread = _mm512_shuffle_i64x2(wide, wide, 0x50);  // 128-bit lanes: a, a, b, b
  const __m512i q = _mm512_and_si512(_mm512_mask_srli_epi16(spread, 0xff00ff00u, spread, 4), _mm512_set1_epi8(0x0f));
  return _mm512_sub_epi8(q, _mm512_set1_epi8(8));
}

CLUSTERD_AVX512 inline __m256i block_quants(const block_q8_0& x) { return load256(x.qs); }
CLUSTERD_AVX512 inline __m256i block_quants(const block_q4_0& x) {
  const __m128i packed = load128(x.qs);
  const __m256i both = join128(packed, _mm_srli_epi16(packed, 4));
  return _mm256_sub_epi8(_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

// The shared body of q8_0 and q4_0: pairs of blocks into two accumulators per token,
// as the one-row kernels, then the reduction and the last odd block.
template <typename Block>
CLUSTERD_AVX512 inline void q8_0_like_x4(int nb, const Block* x, const block_q8_0* const y[kTokens],
                                         float out[kTokens]) {
  __m512 acc0[kTokens], acc1[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
  int i = 0;
  for (; i + 4 <= nb; i += 4) {
    pair_x4(acc0, pair_quants(x + i), pair_scales_x4(x + i, y, i), y, i);
    pair_x4(acc1, pair_quants(x + i + 2), pair_scales_x4(x + i + 2, y, i + 2), y, i + 2);
  }
  if (i + 2 <= nb) {
    pair_x4(acc0, pair_quants(x + i), pair_scales_x4(x + i, y, i), y, i);
    i += 2;
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t]));
    if (i < nb) {
      const __m256i qx = block_quants(x[i]);
      const __m256i dot =
          _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(qx), _mm256_sign_epi8(load256(y[t][i].qs), qx));
      sum += half_to_float(x[i].d) * half_to_float(y[t][i].d) * hsum(_mm256_cvtepi32_ps(dot));
    }
    out[t] = sum;
  }
}

}  // namespace

CLUSTERD_AVX512 void vec_dot_q8_0_q8_0_x4_avx512(int n, const block_q8_0* x, const block_q8_0* const y[4],
                                                 float out[4]) {
  q8_0_like_x4(n / kQK8_0, x, y, out);
}

CLUSTERD_AVX512 void vec_dot_q4_0_q8_0_x4_avx512(int n, const block_q4_0* x, const block_q8_0* const y[4],
                                                 float out[4]) {
  q8_0_like_x4(n / kQK4_0, x, y, out);
}

CLUSTERD_AVX512 void vec_dot_q4_K_q8_K_x4_avx512(int n, const block_q4_K* x, const block_q8_K* const y[4],
                                                 float out[4]) {
  const int nb = n / kQK_K;
  const __m512i low_nibble = _mm512_set1_epi8(0x0f);
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc[kTokens];
  __m256 acc_min[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    acc[t] = _mm512_setzero_ps();
    acc_min[t] = _mm256_setzero_ps();
  }
  for (int i = 0; i < nb; ++i) {
    const KScalesMins sm = k_quant_unpack(x[i].scales);
    const __m512i scales = _mm512_castsi256_si512(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(sm.sc))));
    const __m128i m8 = _mm_cvtsi64_si128(static_cast<int64_t>(sm.m));
    const __m256i m_pairs = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m0 m0 m1 m1 ...
    __m512i q[4], sc[4];
#pragma GCC unroll 16
    for (int c = 0; c < 4; ++c) {
      const __m512i packed = _mm512_broadcast_i64x4(load256(x[i].qs + 32 * c));
      q[c] = _mm512_and_si512(_mm512_mask_srli_epi16(packed, 0xffff0000u, packed, 4), low_nibble);
      sc[c] = _mm512_permutexvar_epi32(halves_index(2 * c), scales);
    }
    const float dx = half_to_float(x[i].d);
    const float dmin_x = half_to_float(x[i].dmin);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      const block_q8_K& yb = y[t][i];
      __m512i sumi = zero;
#pragma GCC unroll 16
      for (int c = 0; c < 4; ++c) {
        const __m512i dot = _mm512_dpbusd_epi32(zero, q[c], _mm512_loadu_si512(yb.qs + 64 * c));  // |lane| < 2^15
        sumi = _mm512_dpwssd_epi32(sumi, dot, sc[c]);
      }
      const float d = dx * yb.d;
      const float dmin = dmin_x * yb.d;
      acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc[t]);
      const __m256i min_terms = _mm256_madd_epi16(load256(yb.bsums), m_pairs);
      acc_min[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(min_terms), acc_min[t]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) out[t] = _mm512_reduce_add_ps(acc[t]) - hsum(acc_min[t]);
}

CLUSTERD_AVX512 void vec_dot_q6_K_q8_K_x4_avx512(int n, const block_q6_K* x, const block_q8_K* const y[4],
                                                 float out[4]) {
  const int nb = n / kQK_K;
  const __m512i low_nibble = _mm512_set1_epi8(0x0f);
  const __m512i top_bits = _mm512_set1_epi8(0x30);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i shift_01 = _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16(4), _mm512_set1_epi16(2));
  const __m512i shift_23 = _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16(0), _mm512_set1_epi16(2));
  __m512 acc[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) acc[t] = _mm512_setzero_ps();
  for (int i = 0; i < nb; ++i) {
    const __m256i scales16 = _mm256_cvtepi8_epi16(load128(x[i].scales));
    const __m512i scales = _mm512_cvtepu16_epi32(scales16);  // int16 pairs (scale, 0)
    __m512i q[4], sc[4];  // quarters 0-1 and 2-3 of each half, with their scale lanes
#pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(x[i].ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(load256(x[i].qh + 32 * h));
      q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low_nibble),
                                 _mm512_and_si512(_mm512_sllv_epi16(qh, shift_01), top_bits));
      q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low_nibble),
                                     _mm512_and_si512(_mm512_srlv_epi16(qh, shift_23), top_bits));
      sc[2 * h] = _mm512_permutexvar_epi32(quarters_index(8 * h), scales);
      sc[2 * h + 1] = _mm512_permutexvar_epi32(quarters_index(8 * h + 4), scales);
    }
    const float dx = half_to_float(x[i].d);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      const block_q8_K& yb = y[t][i];
      const __m256i offset = _mm256_madd_epi16(scales16, load256(yb.bsums));
      __m512i sumi = zero;
#pragma GCC unroll 16
      for (int k = 0; k < 4; ++k) {
        const __m512i dot = _mm512_dpbusd_epi32(zero, q[k], _mm512_loadu_si512(yb.qs + 64 * k));
        sumi = _mm512_dpwssd_epi32(sumi, dot, sc[k]);
      }
      sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32(offset, 5)));
      const float d = dx * yb.d;
      acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc[t]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) out[t] = _mm512_reduce_add_ps(acc[t]);
}

// ---------------------------------------------------------------------------------
// AVX2

namespace {

// dot_i8 of kernels_avx2.cpp split in two: |x| once per block, the rest per token.
CLUSTERD_AVX2 inline __m256i dot_abs_i8(__m256i abs_x, __m256i x, __m256i y) {
  const __m256i products = _mm256_maddubs_epi16(abs_x, _mm256_sign_epi8(y, x));
  return _mm256_madd_epi16(products, _mm256_set1_epi16(1));
}

// A block's 32 quants as signed bytes in element order.
CLUSTERD_AVX2 inline __m256i signed_quants(const block_q8_0& b) { return load256(b.qs); }
CLUSTERD_AVX2 inline __m256i signed_quants(const block_q4_0& b) {
  const __m128i packed = load128(b.qs);
  const __m256i nibbles = _mm256_and_si256(join128(packed, _mm_srli_epi16(packed, 4)), _mm256_set1_epi8(0x0f));
  return _mm256_sub_epi8(nibbles, _mm256_set1_epi8(8));
}

template <typename Block>
CLUSTERD_AVX2 inline void q8_0_like_x4_avx2(int nb, const Block* x, const block_q8_0* const y[kTokens],
                                            float out[kTokens]) {
  __m256 acc[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) acc[t] = _mm256_setzero_ps();
  for (int i = 0; i < nb; ++i) {
    const __m256i qx = signed_quants(x[i]);
    const __m256i abs_x = _mm256_sign_epi8(qx, qx);
    const float dx = half_to_float(x[i].d);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      const __m256 d = _mm256_set1_ps(dx * half_to_float(y[t][i].d));
      acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_abs_i8(abs_x, qx, load256(y[t][i].qs))), acc[t]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) out[t] = hsum(acc[t]);
}

}  // namespace

CLUSTERD_AVX2 void vec_dot_q8_0_q8_0_x4_avx2(int n, const block_q8_0* x, const block_q8_0* const y[4], float out[4]) {
  q8_0_like_x4_avx2(n / kQK8_0, x, y, out);
}

CLUSTERD_AVX2 void vec_dot_q4_0_q8_0_x4_avx2(int n, const block_q4_0* x, const block_q8_0* const y[4], float out[4]) {
  q8_0_like_x4_avx2(n / kQK4_0, x, y, out);
}

CLUSTERD_AVX2 void vec_dot_q4_K_q8_K_x4_avx2(int n, const block_q4_K* x, const block_q8_K* const y[4], float out[4]) {
  const int nb = n / kQK_K;
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  __m256 acc[kTokens];
  float min_total[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    acc[t] = _mm256_setzero_ps();
    min_total[t] = 0.0f;
  }
  for (int i = 0; i < nb; ++i) {
    int sc[8], m[8];
#pragma GCC unroll 16
    for (int s = 0; s < 8; ++s) k_quant_scale_min(s, x[i].scales, &sc[s], &m[s]);
    __m256i q_low[4], q_high[4], sc_low[4], sc_high[4];
#pragma GCC unroll 16
    for (int c = 0; c < 4; ++c) {
      const __m256i packed = load256(x[i].qs + 32 * c);
      q_low[c] = _mm256_and_si256(packed, low_nibble);
      q_high[c] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibble);
      sc_low[c] = _mm256_set1_epi16(int16_t(sc[2 * c]));
      sc_high[c] = _mm256_set1_epi16(int16_t(sc[2 * c + 1]));
    }
    const float dx = half_to_float(x[i].d);
    const float dmin_x = half_to_float(x[i].dmin);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      const block_q8_K& yb = y[t][i];
      int32_t sum_m = 0;
#pragma GCC unroll 16
      for (int s = 0; s < 8; ++s) sum_m += m[s] * (yb.bsums[2 * s] + yb.bsums[2 * s + 1]);
      __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 16
      for (int c = 0; c < 4; ++c) {
        const __m256i p_low = _mm256_madd_epi16(_mm256_maddubs_epi16(q_low[c], load256(yb.qs + 64 * c)), sc_low[c]);
        const __m256i p_high =
            _mm256_madd_epi16(_mm256_maddubs_epi16(q_high[c], load256(yb.qs + 64 * c + 32)), sc_high[c]);
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_low, p_high));
      }
      const float d = dx * yb.d;
      const float dmin = dmin_x * yb.d;
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[t]);
      min_total[t] += dmin * static_cast<float>(sum_m);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) out[t] = hsum(acc[t]) - min_total[t];
}

CLUSTERD_AVX2 void vec_dot_q6_K_q8_K_x4_avx2(int n, const block_q6_K* x, const block_q8_K* const y[4], float out[4]) {
  const int nb = n / kQK_K;
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const __m256i two_bits = _mm256_set1_epi8(0x03);
  __m256 acc[kTokens];
  float offset_total[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    acc[t] = _mm256_setzero_ps();
    offset_total[t] = 0.0f;
  }
  for (int i = 0; i < nb; ++i) {
    __m256i q[8], scales[8];  // quarter k of half h at 4h + k
#pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = x[i].ql + 64 * h;
      const __m256i ql_a = load256(ql);
      const __m256i ql_b = load256(ql + 32);
      const __m256i qh = load256(x[i].qh + 32 * h);
      q[4 * h + 0] =
          _mm256_or_si256(_mm256_and_si256(ql_a, low_nibble), _mm256_slli_epi16(_mm256_and_si256(qh, two_bits), 4));
      q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(ql_b, low_nibble),
                                     _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), two_bits), 4));
      q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql_a, 4), low_nibble),
                                     _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), two_bits), 4));
      q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql_b, 4), low_nibble),
                                     _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), two_bits), 4));
#pragma GCC unroll 16
      for (int k = 0; k < 4; ++k) {
        const int s = 8 * h + 2 * k;
        scales[4 * h + k] = join128(_mm_set1_epi16(x[i].scales[s]), _mm_set1_epi16(x[i].scales[s + 1]));
      }
    }
    const float dx = half_to_float(x[i].d);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      const block_q8_K& yb = y[t][i];
      int32_t offset = 0;
#pragma GCC unroll 16
      for (int s = 0; s < 16; ++s) offset += x[i].scales[s] * yb.bsums[s];
      __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 16
      for (int k = 0; k < 8; ++k) {
        const __m256i yq = load256(yb.qs + 32 * k);  // 128h + 32k' = 32 (4h + k')
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yq), scales[k]));
      }
      const float d = dx * yb.d;
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[t]);
      offset_total[t] += d * static_cast<float>(32 * offset);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) out[t] = hsum(acc[t]) - offset_total[t];
}

}  // namespace clusterd

#else  // not x86-64: four calls of the scalar references, so that callers link everywhere.

namespace clusterd {

#define CLUSTERD_X4_FALLBACK(name, reference, W, A)                 \
  void name(int n, const W* x, const A* const y[4], float out[4]) { \
    for (int t = 0; t < 4; ++t) out[t] = reference(n, x, y[t]);     \
  }
CLUSTERD_X4_FALLBACK(vec_dot_q8_0_q8_0_x4_avx512, vec_dot_q8_0_q8_0, block_q8_0, block_q8_0)
CLUSTERD_X4_FALLBACK(vec_dot_q4_0_q8_0_x4_avx512, vec_dot_q4_0_q8_0, block_q4_0, block_q8_0)
CLUSTERD_X4_FALLBACK(vec_dot_q4_K_q8_K_x4_avx512, vec_dot_q4_K_q8_K, block_q4_K, block_q8_K)
CLUSTERD_X4_FALLBACK(vec_dot_q6_K_q8_K_x4_avx512, vec_dot_q6_K_q8_K, block_q6_K, block_q8_K)
CLUSTERD_X4_FALLBACK(vec_dot_q8_0_q8_0_x4_avx2, vec_dot_q8_0_q8_0, block_q8_0, block_q8_0)
CLUSTERD_X4_FALLBACK(vec_dot_q4_0_q8_0_x4_avx2, vec_dot_q4_0_q8_0, block_q4_0, block_q8_0)
CLUSTERD_X4_FALLBACK(vec_dot_q4_K_q8_K_x4_avx2, vec_dot_q4_K_q8_K, block_q4_K, block_q8_K)
CLUSTERD_X4_FALLBACK(vec_dot_q6_K_q8_K_x4_avx2, vec_dot_q6_K_q8_K, block_q6_K, block_q8_K)
#undef CLUSTERD_X4_FALLBACK

}  // namespace clusterd

#endif
