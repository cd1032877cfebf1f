// Activation quantizers in AVX-512. They run once per activation row and matmul, but
// the scalar ones (std::round, std::fmax per element) cost a few percent of a token.
#include "clusterd/engine/quantize_avx512.h"

#include <cstring>

#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/quant.h"

#if defined(__x86_64__)
#include "avx512_intrinsics.h"

namespace clusterd {
namespace {

// std::round: truncate, then step away from zero where the dropped part is >= 1/2
// (v - trunc(v) is exact for every float).
CLUSTERD_AVX512 inline __m512 round_half_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one_signed =
      _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)),
                                          _mm512_castps_si512(_mm512_set1_ps(1.0f))));
  return _mm512_mask_add_ps(t, up, t, one_signed);
}

}  // namespace

CLUSTERD_AVX512 void quantize_row_q8_0_avx512(const float* in, void* blocks, int64_t n) {
  auto* y = static_cast<block_q8_0*>(blocks);
  const int64_t nb = n / kQK8_0;
  for (int64_t i = 0; i < nb; ++i) {
    const __m512 lo = _mm512_loadu_ps(in + i * kQK8_0);
    const __m512 hi = _mm512_loadu_ps(in + i * kQK8_0 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    const __m512 scale = _mm512_set1_ps(id);
    const __m512i q_lo = _mm512_cvtps_epi32(round_half_away(_mm512_mul_ps(lo, scale)));
    const __m512i q_hi = _mm512_cvtps_epi32(round_half_away(_mm512_mul_ps(hi, scale)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs), _mm512_cvtepi32_epi8(q_lo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16), _mm512_cvtepi32_epi8(q_hi));
  }
}

CLUSTERD_AVX512 void quantize_row_q8_K_avx512(const float* in, void* blocks, int64_t n) {
  auto* y = static_cast<block_q8_K*>(blocks);
  const int64_t nb = n / kQK_K;
  constexpr int kVectors = kQK_K / 16;  // one vector per 16-element bsums group
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = in + i * kQK_K;
    __m512 m = _mm512_setzero_ps();
    for (int v = 0; v < kVectors; ++v) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * v)));
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    // The reference keeps the first element of largest magnitude, sign included.
    float max = 0.0f;
    for (int v = 0; v < kVectors; ++v) {
      const __mmask16 hit =
          _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * v)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (hit != 0) {
        max = x[16 * v + __builtin_ctz(hit)];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m512 scale = _mm512_set1_ps(iscale);
    for (int v = 0; v < kVectors; ++v) {
      // cvtps rounds to nearest even, as lrint does in the default rounding mode.
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(scale, _mm512_loadu_ps(x + 16 * v)));
      q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * v), _mm512_cvtepi32_epi8(q));
      y[i].bsums[v] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
    y[i].d = 1.0f / iscale;
  }
}

CLUSTERD_AVX512 void fp16_to_fp32_row_avx512(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  }
  if (i < n) {  // the tail under a mask (a scalar tail cost more than the rest in short rows)
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, mask, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, src + i)));
  }
}

}  // namespace clusterd

#else  // not x86-64: the scalar references, so that callers link everywhere.

namespace clusterd {

void quantize_row_q8_0_avx512(const float* in, void* blocks, int64_t n) { quantize_row_q8_0(in, blocks, n); }
void quantize_row_q8_K_avx512(const float* in, void* blocks, int64_t n) { quantize_row_q8_K(in, blocks, n); }
void fp16_to_fp32_row_avx512(const uint16_t* src, float* dst, int64_t n) { fp16_to_fp32_row(src, dst, n); }

}  // namespace clusterd

#endif
