// AVX2 dot products, chosen at run time: the build targets generic x86-64, so each
// function carries its own target attribute and callers check cpu_has_avx2() first.
// Integer parts are exact as in the scalar references (for quants in [-127, 127], all
// that the quantizers produce); float parts add in a different order.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "clusterd/engine/quant.h"
#include "row_tiles.h"

namespace clusterd {

CpuIsa max_cpu_isa() {
  static const CpuIsa cap = [] {
    const char* value = std::getenv("CLUSTERD_MAX_ISA");
    if (!value || !*value || std::strcmp(value, "avx512") == 0) return CpuIsa::kAvx512;
    if (std::strcmp(value, "avx2") == 0) return CpuIsa::kAvx2;
    if (std::strcmp(value, "avxvnni") == 0) return CpuIsa::kAvxVnni;
    if (std::strcmp(value, "scalar") == 0) return CpuIsa::kScalar;
    std::fprintf(stderr, "clusterd: ignoring CLUSTERD_MAX_ISA=%s (expected scalar, avx2, avxvnni or avx512)\n", value);
    return CpuIsa::kAvx512;
  }();
  return cap;
}

}  // namespace clusterd

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

#define CLUSTERD_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace clusterd {
namespace {

CLUSTERD_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

CLUSTERD_AVX2 inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// Eight int32 sums of products of signed bytes x and y, four products each. maddubs
// wants its first operand unsigned, so x's sign moves onto y: |x| * (y * sign(x)).
CLUSTERD_AVX2 inline __m256i dot_i8(__m256i x, __m256i y) {
  const __m256i products = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
  return _mm256_madd_epi16(products, _mm256_set1_epi16(1));
}

// The same lane as `low` and `high` in the two halves of a 256-bit register.
CLUSTERD_AVX2 inline __m256i join(__m128i low, __m128i high) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(low), high, 1);
}

// Eight halves, widened exactly by F16C.
CLUSTERD_AVX2 inline __m256 load_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// bf16 is the top half of a float: widen to 32 bits and shift into place.
CLUSTERD_AVX2 inline __m256 load_bf16(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

}  // namespace

bool cpu_has_avx2() {
  return max_cpu_isa() >= CpuIsa::kAvx2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}

// CPUID leaf 7, subleaf 1, EAX bit 4 (asked directly: clang before 18 does not know
// __builtin_cpu_supports("avxvnni")); cpu_has_avx2() has checked that the OS saves
// the 256-bit registers.
bool cpu_has_avx_vnni() {
  if (max_cpu_isa() < CpuIsa::kAvxVnni || !cpu_has_avx2()) return false;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4)) != 0;
}

CLUSTERD_AVX2 float vec_dot_q8_0_q8_0_avx2(int n, const block_q8_0* x, const block_q8_0* y) {
  const int nb = n / kQK8_0;
  __m256 acc = _mm256_setzero_ps();
  for (int i = 0; i < nb; ++i) {
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256 d = _mm256_set1_ps(half_to_float(x[i].d) * half_to_float(y[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(qx, qy)), acc);
  }
  return hsum(acc);
}

CLUSTERD_AVX2 float vec_dot_q4_0_q8_0_avx2(int n, const block_q4_0* x, const block_q8_0* y) {
  const int nb = n / kQK4_0;
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const __m256i eight = _mm256_set1_epi8(8);
  __m256 acc = _mm256_setzero_ps();
  for (int i = 0; i < nb; ++i) {
    // Elements 0..15 are the low nibbles, 16..31 the high ones.
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].qs));
    const __m256i nibbles = _mm256_and_si256(join(packed, _mm_srli_epi16(packed, 4)), low_nibble);
    const __m256i qx = _mm256_sub_epi8(nibbles, eight);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256 d = _mm256_set1_ps(half_to_float(x[i].d) * half_to_float(y[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(qx, qy)), acc);
  }
  return hsum(acc);
}

CLUSTERD_AVX2 float vec_dot_q4_K_q8_K_avx2(int n, const block_q4_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  float min_total = 0.0f;
  for (int i = 0; i < nb; ++i) {
    int sc[8], m[8];
    int32_t sum_m = 0;
    for (int s = 0; s < 8; ++s) {
      k_quant_scale_min(s, x[i].scales, &sc[s], &m[s]);
      sum_m += m[s] * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
    }
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {  // 64 elements: sub-blocks 2c (low nibbles) and 2c+1 (high)
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs + 32 * c));
      const __m256i q_low = _mm256_and_si256(packed, low_nibble);
      const __m256i q_high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibble);
      const __m256i y_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 64 * c));
      const __m256i y_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 64 * c + 32));
      // q is unsigned (0..15), as maddubs wants; 16-bit pair sums stay below 2*15*128.
      const __m256i p_low =
          _mm256_madd_epi16(_mm256_maddubs_epi16(q_low, y_low), _mm256_set1_epi16(int16_t(sc[2 * c])));
      const __m256i p_high =
          _mm256_madd_epi16(_mm256_maddubs_epi16(q_high, y_high), _mm256_set1_epi16(int16_t(sc[2 * c + 1])));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_low, p_high));
    }
    const float d = half_to_float(x[i].d) * y[i].d;
    const float dmin = half_to_float(x[i].dmin) * y[i].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    min_total += dmin * static_cast<float>(sum_m);
  }
  return hsum(acc) - min_total;
}

CLUSTERD_AVX2 float vec_dot_q5_K_q8_K_avx2(int n, const block_q5_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const __m256i fifth_bit = _mm256_set1_epi8(0x10);
  __m256 acc = _mm256_setzero_ps();
  float min_total = 0.0f;
  for (int i = 0; i < nb; ++i) {
    int sc[8], m[8];
    int32_t sum_m = 0;
    for (int s = 0; s < 8; ++s) {
      k_quant_scale_min(s, x[i].scales, &sc[s], &m[s]);
      sum_m += m[s] * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
    }
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh));
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {  // 64 elements: sub-blocks 2c (low nibbles, qh bit 2c) and 2c+1
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs + 32 * c));
      // Bit 2c (2c+1) of qh moved to bit 4; the masks drop what 16-bit shifts carry in.
      const __m256i h_low = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c), 4), fifth_bit);
      const __m256i h_high = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c + 1), 4), fifth_bit);
      const __m256i q_low = _mm256_or_si256(_mm256_and_si256(packed, low_nibble), h_low);
      const __m256i q_high = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibble), h_high);
      const __m256i y_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 64 * c));
      const __m256i y_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 64 * c + 32));
      // q is unsigned (0..31); 16-bit pair sums stay below 2*31*128 < 2^15.
      const __m256i p_low =
          _mm256_madd_epi16(_mm256_maddubs_epi16(q_low, y_low), _mm256_set1_epi16(int16_t(sc[2 * c])));
      const __m256i p_high =
          _mm256_madd_epi16(_mm256_maddubs_epi16(q_high, y_high), _mm256_set1_epi16(int16_t(sc[2 * c + 1])));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_low, p_high));
    }
    const float d = half_to_float(x[i].d) * y[i].d;
    const float dmin = half_to_float(x[i].dmin) * y[i].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    min_total += dmin * static_cast<float>(sum_m);
  }
  return hsum(acc) - min_total;
}

CLUSTERD_AVX2 float vec_dot_q6_K_q8_K_avx2(int n, const block_q6_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const __m256i two_bits = _mm256_set1_epi8(0x03);
  __m256 acc = _mm256_setzero_ps();
  float offset_total = 0.0f;
  for (int i = 0; i < nb; ++i) {
    // q - 32 is signed; maddubs needs one unsigned operand, so the dot uses q (0..63)
    // and the offset comes back as 32 * sum_s scale[s] * bsums[s].
    int32_t offset = 0;
    for (int s = 0; s < 16; ++s) offset += x[i].scales[s] * y[i].bsums[s];
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = x[i].ql + 64 * h;
      const __m256i ql_a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i ql_b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh + 32 * h));
      // Quarter k: low 4 bits from ql_a/ql_b (low nibbles for k < 2), top 2 bits from
      // bits 2k..2k+1 of qh. The masks keep 16-bit shifts from leaking across bytes.
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql_a, low_nibble), _mm256_slli_epi16(_mm256_and_si256(qh, two_bits), 4)),
          _mm256_or_si256(_mm256_and_si256(ql_b, low_nibble),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), two_bits), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql_a, 4), low_nibble),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), two_bits), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql_b, 4), low_nibble),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), two_bits), 4)),
      };
      for (int k = 0; k < 4; ++k) {
        const int s = 8 * h + 2 * k;  // elements 0..15 of the quarter, then 16..31 (s + 1)
        const __m256i yq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs + 128 * h + 32 * k));
        const __m256i scales = join(_mm_set1_epi16(x[i].scales[s]), _mm_set1_epi16(x[i].scales[s + 1]));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yq), scales));
      }
    }
    const float d = half_to_float(x[i].d) * y[i].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    offset_total += d * static_cast<float>(32 * offset);
  }
  return hsum(acc) - offset_total;
}

// Float rows: four independent accumulators hide the FMA latency; a scalar tail
// takes the last n % 8 elements.
CLUSTERD_AVX2 float vec_dot_f32_avx2(int n, const float* x, const float* y) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    }
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
  float tail = 0.0f;
  for (; i < n; ++i) tail += x[i] * y[i];
  return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))) + tail;
}

CLUSTERD_AVX2 float vec_dot_f16_f32_avx2(int n, const uint16_t* x, const float* y) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(load_f16(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    }
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_f16(x + i), _mm256_loadu_ps(y + i), acc[0]);
  float tail = 0.0f;
  for (; i < n; ++i) tail += half_to_float(x[i]) * y[i];
  return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))) + tail;
}

CLUSTERD_AVX2 float vec_dot_bf16_f32_avx2(int n, const uint16_t* x, const float* y) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(load_bf16(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    }
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_bf16(x + i), _mm256_loadu_ps(y + i), acc[0]);
  float tail = 0.0f;
  for (; i < n; ++i) tail += bf16_to_fp32(x[i]) * y[i];
  return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))) + tail;
}

namespace {

template <bool kBF16>
CLUSTERD_AVX2 inline __m256 widen_half(const uint16_t* p) {
  return kBF16 ? load_bf16(p) : load_f16(p);
}

// One row by T tokens, each (row, token) summed exactly as vec_dot_f16_f32_avx2 /
// vec_dot_bf16_f32_avx2 sum it (four accumulators over 32-element steps, then 8, then
// a scalar tail), so a tile gives each token what the row kernel gives it alone.
template <bool kBF16, int T>
CLUSTERD_AVX2 void half_tile_avx2(const uint16_t* w, const float* x, size_t x_stride, int n, float* y,
                                  size_t y_stride) {
  __m256 acc[T][4];
  for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = _mm256_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      const __m256 ws = widen_half<kBF16>(w + i + 8 * k);
      for (int t = 0; t < T; ++t) {
        acc[t][k] = _mm256_fmadd_ps(ws, _mm256_loadu_ps(x + t * x_stride + i + 8 * k), acc[t][k]);
      }
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 ws = widen_half<kBF16>(w + i);
    for (int t = 0; t < T; ++t) acc[t][0] = _mm256_fmadd_ps(ws, _mm256_loadu_ps(x + t * x_stride + i), acc[t][0]);
  }
  for (int t = 0; t < T; ++t) {
    float tail = 0.0f;
    for (int j = i; j < n; ++j) tail += (kBF16 ? bf16_to_fp32(w[j]) : half_to_float(w[j])) * x[t * x_stride + j];
    y[t * y_stride] =
        hsum(_mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][1]), _mm256_add_ps(acc[t][2], acc[t][3]))) + tail;
  }
}

// One row by up to three tokens per tile (12 accumulators: AVX2 has 16 registers).
template <bool kBF16>
void half_rows_avx2(const uint16_t* w, size_t w_stride, int rows, const float* x, size_t x_stride, int tokens, int n,
                    float* y, size_t y_stride) {
  for_each_row_tile(w, w_stride, rows, x, x_stride, tokens, y, y_stride, 1, 3,
                    [&](const uint16_t* wr, const float* xt, float* yt, int, int nt) {
                      with_count<3>(nt, [&](auto T) { half_tile_avx2<kBF16, T()>(wr, xt, x_stride, n, yt, y_stride); });
                    });
}

}  // namespace

void dot_half_rows_avx2(TensorType type, const uint16_t* w, size_t w_stride, int rows, const float* x, size_t x_stride,
                        int tokens, int n, float* y, size_t y_stride) {
  if (type == TensorType::kBF16) {
    half_rows_avx2<true>(w, w_stride, rows, x, x_stride, tokens, n, y, y_stride);
  } else {
    half_rows_avx2<false>(w, w_stride, rows, x, x_stride, tokens, n, y, y_stride);
  }
}

}  // namespace clusterd

#else  // not x86: no AVX2; the entry points exist so that callers link everywhere.

namespace clusterd {

bool cpu_has_avx2() { return false; }
bool cpu_has_avx_vnni() { return false; }
float vec_dot_q8_0_q8_0_avx2(int n, const block_q8_0* x, const block_q8_0* y) { return vec_dot_q8_0_q8_0(n, x, y); }
float vec_dot_q4_0_q8_0_avx2(int n, const block_q4_0* x, const block_q8_0* y) { return vec_dot_q4_0_q8_0(n, x, y); }
float vec_dot_q4_K_q8_K_avx2(int n, const block_q4_K* x, const block_q8_K* y) { return vec_dot_q4_K_q8_K(n, x, y); }
float vec_dot_q5_K_q8_K_avx2(int n, const block_q5_K* x, const block_q8_K* y) { return vec_dot_q5_K_q8_K(n, x, y); }
float vec_dot_q6_K_q8_K_avx2(int n, const block_q6_K* x, const block_q8_K* y) { return vec_dot_q6_K_q8_K(n, x, y); }
float vec_dot_f32_avx2(int n, const float* x, const float* y) { return vec_dot_f32(n, x, y); }
float vec_dot_f16_f32_avx2(int n, const uint16_t* x, const float* y) { return vec_dot_f16_f32(n, x, y); }
float vec_dot_bf16_f32_avx2(int n, const uint16_t* x, const float* y) { return vec_dot_bf16_f32(n, x, y); }
void dot_half_rows_avx2(TensorType type, const uint16_t* w, size_t w_stride, int rows, const float* x, size_t x_stride,
                        int tokens, int n, float* y, size_t y_stride) {
  for (int r = 0; r < rows; ++r) {
    for (int t = 0; t < tokens; ++t) {
      y[t * y_stride + r] = type == TensorType::kBF16 ? vec_dot_bf16_f32(n, w + r * w_stride, x + t * x_stride)
                                                      : vec_dot_f16_f32(n, w + r * w_stride, x + t * x_stride);
    }
  }
}

}  // namespace clusterd

#endif
