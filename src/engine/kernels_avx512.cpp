// AVX-512 VNNI dot products, chosen at run time like the AVX2 ones. VPDPBUSD multiplies
// unsigned bytes by signed bytes and adds each four products into an int32 lane without
// saturating, so a block's integer dot product is exact once the weight side is made
// unsigned: by taking |x| and moving x's sign onto y (q8_0), or by keeping the stored
// unsigned quant and subtracting its offset times the sum of y (q4_0, q6_K).
#include "clusterd/engine/kernels_avx512.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "row_tiles.h"

#if defined(__x86_64__)
#include "avx512_intrinsics.h"

#define CLUSTERD_AVX512_VBMI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,fma,f16c")))

namespace clusterd {
namespace {

CLUSTERD_AVX512 inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

CLUSTERD_AVX512 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

CLUSTERD_AVX512 inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
CLUSTERD_AVX512 inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// Lanes 0-7 hold `low`, lanes 8-15 `high`: the 512-bit form of two 32-element blocks.
CLUSTERD_AVX512 inline __m512i join256(__m256i low, __m256i high) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
}
// d_x * d_y of two consecutive blocks, in lanes 0-7 and 8-15: one F16C conversion for
// the four halves instead of four scalar ones.
CLUSTERD_AVX512 inline __m512 pair_scales(uint16_t x0, uint16_t x1, uint16_t y0, uint16_t y1) {
  const __m128 f = _mm_cvtph_ps(_mm_setr_epi16(short(x0), short(x1), short(y0), short(y1), 0, 0, 0, 0));
  const __m128 d = _mm_mul_ps(f, _mm_movehl_ps(f, f));  // d_x0 * d_y0, d_x1 * d_y1
  const __m512i halves = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(d));
}

// Sums of four products of signed bytes x and y, for y != -128: |x| (unsigned, so
// x = -128 gives 128) times y carrying x's sign.
CLUSTERD_AVX512 inline __m512i dot_i8(__m512i x, __m512i y) {
  const __m512i y_signed = _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(x), _mm512_setzero_si512(), y);
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(x), y_signed);
}
CLUSTERD_AVX512 inline __m256i dot_i8(__m256i x, __m256i y) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(x), _mm256_sign_epi8(y, x));
}

// The 32 quants of a q4_0 block in element order (low nibbles, then high), unsigned.
CLUSTERD_AVX512 inline __m256i q4_0_nibbles(const uint8_t* qs) {
  const __m128i packed = load128(qs);
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}
CLUSTERD_AVX512 inline __m512i q4_0_nibbles(const uint8_t* qs_a, const uint8_t* qs_b) {
  const __m256i packed = _mm256_inserti128_si256(_mm256_castsi128_si256(load128(qs_a)), load128(qs_b), 1);
  const __m512i wide = _mm512_castsi256_si512(packed);
  const __m512i spread = _mm512_shuffle_i64x2(wide, wide, 0x50);  // 128-bit lanes: a, a, b, b
  // Odd 128-bit lanes (16-bit elements 8-15 and 24-31) take the high nibbles.
  return _mm512_and_si512(_mm512_mask_srli_epi16(spread, 0xff00ff00u, spread, 4), _mm512_set1_epi8(0x0f));
}

// The eight 6-bit scales and mins of a Q4_K/Q5_K block, one byte each in sub-block
// order; the same unpacking as k_quant_scale_min, four bytes at a time.
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

// Index vectors for VPERMD: lane l picks element first + l / 8 (halves) or first + l / 4
// (quarters).
CLUSTERD_AVX512 inline __m512i halves_index(int first) {
  return _mm512_add_epi32(_mm512_set1_epi32(first), _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0));
}
CLUSTERD_AVX512 inline __m512i quarters_index(int first) {
  return _mm512_add_epi32(_mm512_set1_epi32(first), _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0));
}

// The min term of a Q4_K/Q5_K block, m[s] * (bsums[2s] + bsums[2s+1]) in lane s.
CLUSTERD_AVX512 inline __m256i k_quant_min_terms(uint64_t mins, const int16_t* bsums) {
  const __m128i m8 = _mm_cvtsi64_si128(static_cast<int64_t>(mins));
  const __m256i m_pairs = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m0 m0 m1 m1 ...
  return _mm256_madd_epi16(load256(bsums), m_pairs);
}

// Sub-block scales as int32 lanes 0..7; each lane is also the int16 pair (sc, 0) that
// VPDPWSSD multiplies a dot product lane by (the dot fits in 16 bits, its high half
// being sign bits that meet the 0).
CLUSTERD_AVX512 inline __m512i k_quant_scale_lanes(uint64_t scales) {
  return _mm512_castsi256_si512(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(scales))));
}

// q8_0 x q8_0 for blocks 0 and 1 of x and y, scaled, added to the two halves of acc.
CLUSTERD_AVX512 inline __m512 q8_0_pair(__m512 acc, const block_q8_0* x, const block_q8_0* y) {
  const __m512i qx = join256(load256(x[0].qs), load256(x[1].qs));
  const __m512i qy = join256(load256(y[0].qs), load256(y[1].qs));
  const __m512 d = pair_scales(x[0].d, x[1].d, y[0].d, y[1].d);
  return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot_i8(qx, qy)), acc);
}

// As q8_0_pair; (q - 8) . y = q . y - 8 * sum(y), both exact with q unsigned.
CLUSTERD_AVX512 inline __m512 q4_0_pair(__m512 acc, const block_q4_0* x, const block_q8_0* y) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i q = q4_0_nibbles(x[0].qs, x[1].qs);
  const __m512i qy = join256(load256(y[0].qs), load256(y[1].qs));
  const __m512i dot =
      _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, q, qy), _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(8), qy));
  const __m512 d = pair_scales(x[0].d, x[1].d, y[0].d, y[1].d);
  return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc);
}

// q4_0 x q8_0 for blocks 0-3, into acc0 (blocks 0, 1) and acc1 (blocks 2, 3); the same
// int32 lanes and scale products as two q4_0_pair calls, gathered with byte and word
// permutes from whole-vector loads instead of scalar inserts. Reads only the 72 bytes of
// x[0..3] and the 136 of y[0..3].
CLUSTERD_AVX512_VBMI inline void q4_0_quad(__m512& acc0, __m512& acc1, const block_q4_0* x, const block_q8_0* y) {
  static_assert(sizeof(block_q4_0) == 18 && sizeof(block_q8_0) == 34);
  const auto* xb = reinterpret_cast<const uint8_t*>(x);
  const auto* yb = reinterpret_cast<const uint8_t*>(y);
  const __m512i x_head = _mm512_loadu_si512(xb);      // bytes 0-63: d0-d3, qs of blocks 0-2
  const __m512i x_tail = _mm512_loadu_si512(xb + 8);  // bytes 8-71: qs of blocks 2-3
  // Byte l of the result: qs[l % 16] of block l / 32, each 16 bytes twice (low, then
  // high nibbles), as q4_0_nibbles lays them out.
  const __m512i pick01 = _mm512_set_epi8(35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,  //
                                         35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,  //
                                         17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2,          //
                                         17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2);
  const __m512i pick23 = _mm512_add_epi8(pick01, _mm512_set1_epi8(36 - 8));  // blocks 2-3 in x_tail
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  const __m512i p01 = _mm512_permutexvar_epi8(pick01, x_head);
  const __m512i p23 = _mm512_permutexvar_epi8(pick23, x_tail);
  const __m512i q01 = _mm512_and_si512(_mm512_mask_srli_epi16(p01, 0xff00ff00u, p01, 4), nibble);
  const __m512i q23 = _mm512_and_si512(_mm512_mask_srli_epi16(p23, 0xff00ff00u, p23, 4), nibble);
  // Scales: x's d at words 0, 9, 18, 27; y's at words 0, 17 of y[0] and of y[2].
  const __m512i x_d = _mm512_permutexvar_epi16(_mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //
                                                                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27, 18, 9, 0),
                                               x_head);
  const __m512i y_d = _mm512_permutex2var_epi16(_mm512_loadu_si512(yb),
                                                _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //
                                                                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 49, 32, 17, 0),
                                                _mm512_loadu_si512(yb + 68));
  const __m128 d = _mm_mul_ps(_mm_cvtph_ps(_mm512_castsi512_si128(x_d)), _mm_cvtph_ps(_mm512_castsi512_si128(y_d)));
  const __m512 d01 = _mm512_permutexvar_ps(halves_index(0), _mm512_castps128_ps512(d));
  const __m512 d23 = _mm512_permutexvar_ps(halves_index(2), _mm512_castps128_ps512(d));
  const __m512i zero = _mm512_setzero_si512();
  const __m512i eight = _mm512_set1_epi8(8);
  const __m512i qy01 = join256(load256(y[0].qs), load256(y[1].qs));
  const __m512i qy23 = join256(load256(y[2].qs), load256(y[3].qs));
  const __m512i dot01 = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, q01, qy01), _mm512_dpbusd_epi32(zero, eight, qy01));
  const __m512i dot23 = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, q23, qy23), _mm512_dpbusd_epi32(zero, eight, qy23));
  acc0 = _mm512_fmadd_ps(d01, _mm512_cvtepi32_ps(dot01), acc0);
  acc1 = _mm512_fmadd_ps(d23, _mm512_cvtepi32_ps(dot23), acc1);
}

}  // namespace

bool cpu_has_avx512_vnni() {
  // AVX2 too: the 256-bit block tails use it (every AVX-512 CPU has it).
  return max_cpu_isa() >= CpuIsa::kAvx512 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

bool cpu_has_avx512_vbmi() { return cpu_has_avx512_vnni() && __builtin_cpu_supports("avx512vbmi"); }

// Two blocks per 512-bit step, two steps per iteration so that the add chains overlap.
CLUSTERD_AVX512 float vec_dot_q8_0_q8_0_avx512(int n, const block_q8_0* x, const block_q8_0* y) {
  const int nb = n / kQK8_0;
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 4 <= nb; i += 4) {
    acc0 = q8_0_pair(acc0, x + i, y + i);
    acc1 = q8_0_pair(acc1, x + i + 2, y + i + 2);
  }
  if (i + 2 <= nb) {
    acc0 = q8_0_pair(acc0, x + i, y + i);
    i += 2;
  }
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  if (i < nb) {
    const __m256i dot = dot_i8(load256(x[i].qs), load256(y[i].qs));
    sum += half_to_float(x[i].d) * half_to_float(y[i].d) * hsum(_mm256_cvtepi32_ps(dot));
  }
  return sum;
}

CLUSTERD_AVX512 float vec_dot_q4_0_q8_0_avx512(int n, const block_q4_0* x, const block_q8_0* y) {
  const int nb = n / kQK4_0;
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 4 <= nb; i += 4) {
    acc0 = q4_0_pair(acc0, x + i, y + i);
    acc1 = q4_0_pair(acc1, x + i + 2, y + i + 2);
  }
  if (i + 2 <= nb) {
    acc0 = q4_0_pair(acc0, x + i, y + i);
    i += 2;
  }
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  if (i < nb) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i qy = load256(y[i].qs);
    const __m256i dot = _mm256_sub_epi32(_mm256_dpbusd_epi32(zero, q4_0_nibbles(x[i].qs), qy),
                                         _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(8), qy));
    sum += half_to_float(x[i].d) * half_to_float(y[i].d) * hsum(_mm256_cvtepi32_ps(dot));
  }
  return sum;
}

// vec_dot_q4_0_q8_0_avx512 with each four blocks' loads and scale products gathered
// by VPERMB/VPERMW (q4_0_quad); the same float operations in the same order.
CLUSTERD_AVX512_VBMI float vec_dot_q4_0_q8_0_avx512_vbmi(int n, const block_q4_0* x, const block_q8_0* y) {
  const int nb = n / kQK4_0;
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 4 <= nb; i += 4) q4_0_quad(acc0, acc1, x + i, y + i);
  if (i + 2 <= nb) {
    acc0 = q4_0_pair(acc0, x + i, y + i);
    i += 2;
  }
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  if (i < nb) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i qy = load256(y[i].qs);
    const __m256i dot = _mm256_sub_epi32(_mm256_dpbusd_epi32(zero, q4_0_nibbles(x[i].qs), qy),
                                         _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(8), qy));
    sum += half_to_float(x[i].d) * half_to_float(y[i].d) * hsum(_mm256_cvtepi32_ps(dot));
  }
  return sum;
}

// Per 64 elements (sub-blocks 2c and 2c+1, the low and high nibbles of the same 32
// bytes): one VPDPBUSD gives the q . y partial sums, one VPDPWSSD weights them by the
// sub-block scales into the block's int32 total.
CLUSTERD_AVX512 float vec_dot_q4_K_q8_K_avx512(int n, const block_q4_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  const __m512i low_nibble = _mm512_set1_epi8(0x0f);
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_min = _mm256_setzero_ps();
  for (int i = 0; i < nb; ++i) {
    const KScalesMins sm = k_quant_unpack(x[i].scales);
    const __m512i scales = k_quant_scale_lanes(sm.sc);
    __m512i sumi = zero;
    for (int c = 0; c < 4; ++c) {
      const __m512i packed = _mm512_broadcast_i64x4(load256(x[i].qs + 32 * c));
      const __m512i q = _mm512_and_si512(_mm512_mask_srli_epi16(packed, 0xffff0000u, packed, 4), low_nibble);
      const __m512i dot = _mm512_dpbusd_epi32(zero, q, _mm512_loadu_si512(y[i].qs + 64 * c));  // |lane| < 2^15
      sumi = _mm512_dpwssd_epi32(sumi, dot, _mm512_permutexvar_epi32(halves_index(2 * c), scales));
    }
    const float d = half_to_float(x[i].d) * y[i].d;
    const float dmin = half_to_float(x[i].dmin) * y[i].d;
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    acc_min = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(k_quant_min_terms(sm.m, y[i].bsums)), acc_min);
  }
  return _mm512_reduce_add_ps(acc) - hsum(acc_min);
}

// As Q4_K, with the fifth bit added to the quants: sub-block 2c takes bit 2c of qh[l],
// 2c+1 bit 2c+1; shifting the upper copy of qh right by one puts both at bit 2c.
CLUSTERD_AVX512 float vec_dot_q5_K_q8_K_avx512(int n, const block_q5_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  const __m512i low_nibble = _mm512_set1_epi8(0x0f);
  const __m512i sixteen = _mm512_set1_epi8(16);
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_min = _mm256_setzero_ps();
  for (int i = 0; i < nb; ++i) {
    const KScalesMins sm = k_quant_unpack(x[i].scales);
    const __m512i scales = k_quant_scale_lanes(sm.sc);
    const __m512i qh_both = _mm512_broadcast_i64x4(load256(x[i].qh));
    const __m512i qh = _mm512_mask_srli_epi16(qh_both, 0xffff0000u, qh_both, 1);
    __m512i sumi = zero;
    for (int c = 0; c < 4; ++c) {
      const __m512i packed = _mm512_broadcast_i64x4(load256(x[i].qs + 32 * c));
      const __m512i low4 = _mm512_and_si512(_mm512_mask_srli_epi16(packed, 0xffff0000u, packed, 4), low_nibble);
      const __mmask64 fifth = _mm512_test_epi8_mask(qh, _mm512_set1_epi8(static_cast<char>(1 << (2 * c))));
      const __m512i q = _mm512_mask_add_epi8(low4, fifth, low4, sixteen);
      const __m512i dot = _mm512_dpbusd_epi32(zero, q, _mm512_loadu_si512(y[i].qs + 64 * c));  // |lane| < 2^15
      sumi = _mm512_dpwssd_epi32(sumi, dot, _mm512_permutexvar_epi32(halves_index(2 * c), scales));
    }
    const float d = half_to_float(x[i].d) * y[i].d;
    const float dmin = half_to_float(x[i].dmin) * y[i].d;
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    acc_min = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(k_quant_min_terms(sm.m, y[i].bsums)), acc_min);
  }
  return _mm512_reduce_add_ps(acc) - hsum(acc_min);
}

// Per 64 elements (quarters k and k+1 of a half): q = 0..63 unsigned into VPDPBUSD,
// lanes weighted by their 16-element sub-block's signed scale with VPDPWSSD; the -32
// comes back as 32 * sum_s scale[s] * bsums[s], subtracted in int32 before the float
// conversion, so the block's integer total is the reference's.
CLUSTERD_AVX512 float vec_dot_q6_K_q8_K_avx512(int n, const block_q6_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  const __m512i low_nibble = _mm512_set1_epi8(0x0f);
  const __m512i top_bits = _mm512_set1_epi8(0x30);
  const __m512i zero = _mm512_setzero_si512();
  // qh bits 0-1 (lower copy) and 2-3 (upper copy) to bits 4-5; then bits 4-5 and 6-7.
  const __m512i shift_01 = _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16(4), _mm512_set1_epi16(2));
  const __m512i shift_23 = _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16(0), _mm512_set1_epi16(2));
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < nb; ++i) {
    const __m256i scales16 = _mm256_cvtepi8_epi16(load128(x[i].scales));
    const __m512i scales = _mm512_cvtepu16_epi32(scales16);  // int16 pairs (scale, 0)
    const __m256i offset = _mm256_madd_epi16(scales16, load256(y[i].bsums));
    __m512i sumi = zero;
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(x[i].ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(load256(x[i].qh + 32 * h));
      const __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, low_nibble),
                                          _mm512_and_si512(_mm512_sllv_epi16(qh, shift_01), top_bits));
      const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low_nibble),
                                          _mm512_and_si512(_mm512_srlv_epi16(qh, shift_23), top_bits));
      // Lanes 4t..4t+3 of each dot cover sub-block 8h + 4j + t (j = 0 for q01, 1 for q23).
      const __m512i dot01 = _mm512_dpbusd_epi32(zero, q01, _mm512_loadu_si512(y[i].qs + 128 * h));
      const __m512i dot23 = _mm512_dpbusd_epi32(zero, q23, _mm512_loadu_si512(y[i].qs + 128 * h + 64));
      sumi = _mm512_dpwssd_epi32(sumi, dot01, _mm512_permutexvar_epi32(quarters_index(8 * h), scales));
      sumi = _mm512_dpwssd_epi32(sumi, dot23, _mm512_permutexvar_epi32(quarters_index(8 * h + 4), scales));
    }
    sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32(offset, 5)));
    const float d = half_to_float(x[i].d) * y[i].d;
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

namespace {

// 16 weights of a row as floats (f16 widened by VCVTPH2PS; bf16 is the high half of
// an f32), the lanes past `count` zero.
template <bool kBF16>
CLUSTERD_AVX512 inline __m512 load_half16(const uint16_t* p, __mmask16 mask) {
  const __m256i h = _mm256_maskz_loadu_epi16(mask, p);
  if constexpr (kBF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

// R rows by T tokens: four accumulators per (row, token) (64 elements a step, so that
// four multiply-add chains overlap and a lone token still reads one stream at full
// speed), then 16 and the masked rest into the first; summed and reduced the same way
// for every R and T.
template <bool kBF16, int R, int T>
CLUSTERD_AVX512 void half_tile(const uint16_t* w, size_t w_stride, const float* x, size_t x_stride, int n, float* y,
                               size_t y_stride) {
  __m512 acc[R][T][4];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[r][t][0] = acc[r][t][1] = acc[r][t][2] = acc[r][t][3] = _mm512_setzero_ps();
  }
  const __mmask16 all = 0xffff;
  int i = 0;
  for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      __m512 ws[R];
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) ws[r] = load_half16<kBF16>(w + r * w_stride + i + 16 * k, all);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m512 xs = _mm512_loadu_ps(x + t * x_stride + i + 16 * k);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) acc[r][t][k] = _mm512_fmadd_ps(ws[r], xs, acc[r][t][k]);
      }
    }
  }
  for (; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? all : static_cast<__mmask16>((1u << (n - i)) - 1);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 ws = load_half16<kBF16>(w + r * w_stride + i, mask);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        acc[r][t][0] = _mm512_fmadd_ps(ws, _mm512_maskz_loadu_ps(mask, x + t * x_stride + i), acc[r][t][0]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const __m512 sum =
          _mm512_add_ps(_mm512_add_ps(acc[r][t][0], acc[r][t][1]), _mm512_add_ps(acc[r][t][2], acc[r][t][3]));
      y[t * y_stride + r] = _mm512_reduce_add_ps(sum);
    }
  }
}

// Tiles of two rows by three tokens (24 accumulators; each widened weight vector
// serves three tokens, each activation vector two rows); one row by one token alone.
template <bool kBF16>
void half_rows(const uint16_t* w, size_t w_stride, int rows, const float* x, size_t x_stride, int tokens, int n,
               float* y, size_t y_stride) {
  for_each_row_tile(
      w, w_stride, rows, x, x_stride, tokens, y, y_stride, tokens > 1 ? 2 : 1, 3,
      [&](const uint16_t* wr, const float* xt, float* yt, int nr, int nt) {
        with_count<2>(nr, [&](auto R) {
          with_count<3>(nt, [&](auto T) { half_tile<kBF16, R(), T()>(wr, w_stride, xt, x_stride, n, yt, y_stride); });
        });
      });
}

}  // namespace

void dot_half_rows_avx512(TensorType type, const uint16_t* w, size_t w_stride, int rows, const float* x,
                          size_t x_stride, int tokens, int n, float* y, size_t y_stride) {
  if (type == TensorType::kBF16) {
    half_rows<true>(w, w_stride, rows, x, x_stride, tokens, n, y, y_stride);
  } else {
    half_rows<false>(w, w_stride, rows, x, x_stride, tokens, n, y, y_stride);
  }
}

}  // namespace clusterd

#else  // not x86-64: no AVX-512; the entry points exist so that callers link everywhere.

namespace clusterd {

bool cpu_has_avx512_vnni() { return false; }
bool cpu_has_avx512_vbmi() { return false; }
float vec_dot_q4_0_q8_0_avx512_vbmi(int n, const block_q4_0* x, const block_q8_0* y) {
  return vec_dot_q4_0_q8_0(n, x, y);
}
float vec_dot_q8_0_q8_0_avx512(int n, const block_q8_0* x, const block_q8_0* y) { return vec_dot_q8_0_q8_0(n, x, y); }
float vec_dot_q4_0_q8_0_avx512(int n, const block_q4_0* x, const block_q8_0* y) { return vec_dot_q4_0_q8_0(n, x, y); }
float vec_dot_q4_K_q8_K_avx512(int n, const block_q4_K* x, const block_q8_K* y) { return vec_dot_q4_K_q8_K(n, x, y); }
float vec_dot_q5_K_q8_K_avx512(int n, const block_q5_K* x, const block_q8_K* y) { return vec_dot_q5_K_q8_K(n, x, y); }
float vec_dot_q6_K_q8_K_avx512(int n, const block_q6_K* x, const block_q8_K* y) { return vec_dot_q6_K_q8_K(n, x, y); }
void dot_half_rows_avx512(TensorType type, const uint16_t* w, size_t w_stride, int rows, const float* x,
                          size_t x_stride, int tokens, int n, float* y, size_t y_stride) {
  for (int r = 0; r < rows; ++r) {
    for (int t = 0; t < tokens; ++t) {
      y[t * y_stride + r] = type == TensorType::kBF16 ? vec_dot_bf16_f32(n, w + r * w_stride, x + t * x_stride)
                                                      : vec_dot_f16_f32(n, w + r * w_stride, x + t * x_stride);
    }
  }
}

}  // namespace clusterd

#endif
