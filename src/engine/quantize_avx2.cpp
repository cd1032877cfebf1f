// Activation quantizers and fp16 widening in AVX2 (F16C), the AVX-512 ones' steps on
// 256-bit vectors: the scalar ones (std::round, std::fmax per element) cost several
// percent of a token on a CPU without AVX-512.
#include "clusterd/engine/quantize_avx2.h"

#include <cstring>

#include "clusterd/engine/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define CLUSTERD_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace clusterd {
namespace {

CLUSTERD_AVX2 inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

CLUSTERD_AVX2 inline float max_lane(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

CLUSTERD_AVX2 inline int32_t sum_lanes(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// std::round: truncate, then step away from zero where the dropped part is >= 1/2
// (v - trunc(v) is exact for every float).
CLUSTERD_AVX2 inline __m256 round_half_away(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 up = _mm256_cmp_ps(abs_ps(_mm256_sub_ps(v, t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one_signed = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
  return _mm256_add_ps(t, _mm256_and_ps(up, one_signed));
}

// 32 int32 (four vectors, each within [-128, 127]) as 32 bytes in order.
CLUSTERD_AVX2 inline void store_bytes(int8_t* out, __m256i a, __m256i b, __m256i c, __m256i d) {
  // The packs work per 128-bit lane; the permute puts the lanes' groups of four back in order.
  const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                      _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

}  // namespace

CLUSTERD_AVX2 void quantize_row_q8_0_avx2(const float* in, void* blocks, int64_t n) {
  auto* y = static_cast<block_q8_0*>(blocks);
  const int64_t nb = n / kQK8_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = in + i * kQK8_0;
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
    const float amax =
        max_lane(_mm256_max_ps(_mm256_max_ps(abs_ps(v[0]), abs_ps(v[1])), _mm256_max_ps(abs_ps(v[2]), abs_ps(v[3]))));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    const __m256 scale = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v[k], scale)));
    store_bytes(y[i].qs, q[0], q[1], q[2], q[3]);
  }
}

CLUSTERD_AVX2 void quantize_row_q8_K_avx2(const float* in, void* blocks, int64_t n) {
  auto* y = static_cast<block_q8_K*>(blocks);
  const int64_t nb = n / kQK_K;
  constexpr int kVectors = kQK_K / 8;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = in + i * kQK_K;
    __m256 m = _mm256_setzero_ps();
    for (int v = 0; v < kVectors; ++v) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + 8 * v)));
    const float amax = max_lane(m);
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    // The reference keeps the first element of largest magnitude, sign included.
    float max = 0.0f;
    for (int v = 0; v < kVectors; ++v) {
      const int hit =
          _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + 8 * v)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
      if (hit != 0) {
        max = x[8 * v + __builtin_ctz(static_cast<unsigned>(hit))];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m256 scale = _mm256_set1_ps(iscale);
    const __m256i limit = _mm256_set1_epi32(127);
    for (int v = 0; v < kVectors; v += 4) {
      // cvtps rounds to nearest even, as lrint does in the default rounding mode.
      __m256i q[4];
      for (int k = 0; k < 4; ++k) {
        q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(scale, _mm256_loadu_ps(x + 8 * (v + k)))), limit);
      }
      store_bytes(y[i].qs + 8 * v, q[0], q[1], q[2], q[3]);
      y[i].bsums[v / 2] = static_cast<int16_t>(sum_lanes(_mm256_add_epi32(q[0], q[1])));
      y[i].bsums[v / 2 + 1] = static_cast<int16_t>(sum_lanes(_mm256_add_epi32(q[2], q[3])));
    }
    y[i].d = 1.0f / iscale;
  }
}

CLUSTERD_AVX2 void fp16_to_fp32_row_avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  if (i < n) {  // the tail through a vector-sized buffer (no masked 16-bit loads in AVX2)
    alignas(32) uint16_t in[8] = {};
    alignas(32) float out[8];
    std::memcpy(in, src + i, (n - i) * sizeof(uint16_t));
    _mm256_store_ps(out, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(in))));
    std::memcpy(dst + i, out, (n - i) * sizeof(float));
  }
}

}  // namespace clusterd

#else  // not x86-64: the scalar references, so that callers link everywhere.

namespace clusterd {

void quantize_row_q8_0_avx2(const float* in, void* blocks, int64_t n) { quantize_row_q8_0(in, blocks, n); }
void quantize_row_q8_K_avx2(const float* in, void* blocks, int64_t n) { quantize_row_q8_K(in, blocks, n); }
void fp16_to_fp32_row_avx2(const uint16_t* src, float* dst, int64_t n) { fp16_to_fp32_row(src, dst, n); }

}  // namespace clusterd

#endif
