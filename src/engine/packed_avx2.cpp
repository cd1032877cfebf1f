// The packed product on AVX2 CPUs without AVX-512 VNNI, over the same layout as the
// AVX-512 kernels (packed.h): each 64-byte vector of 16 rows is two 256-bit halves of
// 8 rows, so a tile is H half-groups by T tokens. AVX2 has no VPDPBUSD; VPMADDUBSW
// multiplies unsigned by signed bytes into int16 pairs, which saturate, so each type
// keeps its int16 sums below 2^15 (the bounds are given where the sums are made) and
// widens them with VPMADDWD. CPUs with AVX-VNNI (Intel since Alder Lake, AMD since Zen
// 5) have VPDPBUSD on 256-bit vectors: packed_avx_vnni.cpp compiles this file again
// with CLUSTERD_PACKED_AVX_VNNI set, and the tiles then add four products into each
// int32 lane as the AVX-512 kernels do. Either way the int32 totals are the exact ones
// the scalar reference makes, and the float steps are its steps in its order: results
// equal it bit for bit.
#include <algorithm>
#include <cstring>

#include "clusterd/engine/packed.h"
#include "clusterd/engine/quant.h"
#include "packed_layout.h"
#include "row_tiles.h"

#if !defined(CLUSTERD_PACKED_AVX_VNNI)
#define CLUSTERD_PACKED_AVX_VNNI 0
#endif
#if CLUSTERD_PACKED_AVX_VNNI
#define CLUSTERD_PACKED_AVX2_ENTRY packed_product_avx_vnni
#else
#define CLUSTERD_PACKED_AVX2_ENTRY packed_product_avx2
#endif

#if defined(__x86_64__)
#include <immintrin.h>

#if CLUSTERD_PACKED_AVX_VNNI
#define CLUSTERD_AVX2 __attribute__((target("avx2,fma,f16c,avxvnni")))
#else
#define CLUSTERD_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace clusterd {
namespace {

using namespace packed_layout;

constexpr bool kVnni = CLUSTERD_PACKED_AVX_VNNI;

constexpr int kHalfRows = 8;      // rows per 256-bit half of a group
constexpr int kMaxTokens = 2;     // T of the widest batch tile (wider ones spill)
constexpr int kDecodeHalves = 4;  // H of a one-token tile: a whole pair, one stream
constexpr int kBatchHalves = 2;   // H of a batch tile: one group

CLUSTERD_AVX2 inline __m256i load256(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Non-temporal, as on AVX-512 (capped at AVX2, decode gained 0-5 points of the bound).
inline void prefetch(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_NTA); }

// Four activation bytes in every lane.
CLUSTERD_AVX2 inline __m256i broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

// acc plus, per int32 lane, the four products of u's unsigned and s's signed bytes
// (VPDPBUSD; only the AVX-VNNI build calls it).
CLUSTERD_AVX2 inline __m256i dot4(__m256i acc, __m256i u, __m256i s) {
#if CLUSTERD_PACKED_AVX_VNNI
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
  (void)acc, (void)u, (void)s;
  __builtin_trap();
#endif
}

// Every vector of a tile's accumulators set to zero.
template <int H, int T>
CLUSTERD_AVX2 inline void zero(__m256 (&v)[H][T]) {
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) v[i][t] = _mm256_setzero_ps();
  }
}
template <int H, int T>
CLUSTERD_AVX2 inline void zero(__m256i (&v)[H][T]) {
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) v[i][t] = _mm256_setzero_si256();
  }
}

// The tile's results: rows of half-groups h0.., tokens t0.. (padding rows not stored).
template <int H, int T>
CLUSTERD_AVX2 inline void store_tile(const __m256 (&acc)[H][T], float* y, int64_t n_out, int64_t h0, int t0) {
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) {
    const int64_t first = (h0 + i) * kHalfRows;
    const int64_t valid = std::min<int64_t>(kHalfRows, n_out - first);
    if (valid <= 0) break;
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      float* out = y + (t0 + t) * n_out + first;
      if (valid == kHalfRows) {
        _mm256_storeu_ps(out, acc[i][t]);
      } else {
        alignas(32) float lanes[kHalfRows];
        _mm256_store_ps(lanes, acc[i][t]);
        std::memcpy(out, lanes, valid * sizeof(float));
      }
    }
  }
}

// q8_0 / q4_0: half-groups h0.. by T tokens, block by block.
//   q8_0 stores w + 128: XOR 0x80 gives w, and VPMADDUBSW(|w|, x * sign(w)) takes each
//   pair of products whole (|w| <= 128 and |x| <= 127 give at most 32,512), so every
//   vector is widened at once.
//   q4_0's nibbles (0-15) give pairs of at most 3,810, so a block's eight products add
//   up in int16 (at most 30,480) and widen once; the offset comes back as -8 * sum(x).
template <bool kQ4, int H, int T>
CLUSTERD_AVX2 void tile(const uint8_t* packed, size_t pair_bytes, int64_t h0, int nb, const PackedActivations& a,
                        int t0, float* y, int64_t n_out) {
  constexpr size_t kPairBlock = pair_block_bytes(kQ4);
  // One token (a whole pair): every line prefetched about 4.5 KB ahead, as on AVX-512.
  constexpr bool kPrefetch = T == 1 && H == kDecodeHalves;
  constexpr size_t kAhead = (kQ4 ? 8 : 4) * kPairBlock;
  const __m256i ones = _mm256_set1_epi16(1), low_nibbles = _mm256_set1_epi8(0x0f);
  const __m256i sign_bit = _mm256_set1_epi8(static_cast<char>(0x80));
  GroupSlice halves[H];
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) halves[i] = slice_at<2>(packed, pair_bytes, h0 + i);
  __m256 acc[H][T];
  zero(acc);
  for (int b = 0; b < nb; ++b) {
    const size_t block = static_cast<size_t>(b) * kPairBlock;
    if constexpr (kPrefetch) {
#pragma GCC unroll 17
      for (size_t at = 0; at < kPairBlock; at += 64) prefetch(halves[0].pair + block + kAhead + at);
    }
    const uint8_t* yq[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) yq[t] = q8_0_quants(a, t0 + t, b);
    __m256i sum[H][T];
    if constexpr (kVnni) {  // stored quants (q4_0's nibbles, q8_0's w + 128) times x, less the offset
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m256i bias = _mm256_set1_epi32(-(kQ4 ? 8 : 128) * a.sum[(t0 + t) * nb + b]);
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) sum[i][t] = bias;
      }
#pragma GCC unroll 8
      for (int j = 0; j < (kQ4 ? 4 : 8); ++j) {
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) {
          const GroupSlice& h = halves[i];
          const __m256i v = load256(h.pair + block + block_quants(kQ4, h.group) + 64 * j + 32 * h.slice);
#pragma GCC unroll 8
          for (int t = 0; t < T; ++t) {
            if constexpr (kQ4) {
              sum[i][t] = dot4(sum[i][t], _mm256_and_si256(v, low_nibbles), broadcast4(yq[t] + 4 * j));
              sum[i][t] = dot4(sum[i][t], _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibbles),
                               broadcast4(yq[t] + 16 + 4 * j));
            } else {
              sum[i][t] = dot4(sum[i][t], v, broadcast4(yq[t] + 4 * j));
            }
          }
        }
      }
    } else if constexpr (kQ4) {
      __m256i pairs[H][T];
      zero(pairs);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) {
          const GroupSlice& h = halves[i];
          const __m256i v = load256(h.pair + block + block_quants(kQ4, h.group) + 64 * j + 32 * h.slice);
          const __m256i low = _mm256_and_si256(v, low_nibbles);
          const __m256i high = _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibbles);
#pragma GCC unroll 8
          for (int t = 0; t < T; ++t) {
            const __m256i products = _mm256_add_epi16(_mm256_maddubs_epi16(low, broadcast4(yq[t] + 4 * j)),
                                                      _mm256_maddubs_epi16(high, broadcast4(yq[t] + 16 + 4 * j)));
            pairs[i][t] = _mm256_add_epi16(pairs[i][t], products);
          }
        }
      }
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m256i bias = _mm256_set1_epi32(-8 * a.sum[(t0 + t) * nb + b]);
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) sum[i][t] = _mm256_add_epi32(bias, _mm256_madd_epi16(pairs[i][t], ones));
      }
    } else {
      zero(sum);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) {
          const GroupSlice& h = halves[i];
          const __m256i w =
              _mm256_xor_si256(load256(h.pair + block + block_quants(kQ4, h.group) + 64 * j + 32 * h.slice), sign_bit);
          const __m256i magnitude = _mm256_abs_epi8(w);
#pragma GCC unroll 8
          for (int t = 0; t < T; ++t) {
            const __m256i products = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(broadcast4(yq[t] + 4 * j), w));
            sum[i][t] = _mm256_add_epi32(sum[i][t], _mm256_madd_epi16(products, ones));
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < H; ++i) {
      const GroupSlice& h = halves[i];
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(
          reinterpret_cast<const __m128i*>(h.pair + block + block_scales(kQ4, h.group) + 16 * h.slice)));
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(a.d[(t0 + t) * nb + b]));
        acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[i][t]), scale, acc[i][t]);
      }
    }
  }
  store_tile<H, T>(acc, y, n_out, h0, t0);
}

// q4_K / q5_K: half-groups h0.. by T tokens, superblock by superblock. Per chunk of 64
// elements, the low and high nibbles (q5_K: with the fifth bit at bit 4) give the sums
// of sub-blocks 2c and 2c + 1, which take their 6-bit scales by VPMULLD; the mins meet
// the activations' sub-block sums by VPMADDWD. Pairs of products are at most 3,810
// (q4_K, quants 0-15) or 7,874 (q5_K, 0-31), so eight (q4_K) or four (q5_K) of them add
// up in int16 before they widen.

// Bit p of every byte of v, moved to bit 4 (other bits unspecified).
CLUSTERD_AVX2 inline __m256i bit_to_4(__m256i v, int p) {
  return p <= 4 ? _mm256_slli_epi16(v, 4 - p) : _mm256_srli_epi16(v, p - 4);
}

CLUSTERD_AVX2 inline __m256i scales_u8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

CLUSTERD_AVX2 inline __m256 halves_fp16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <bool kQ5, int H, int T>
CLUSTERD_AVX2 void tile_q4_K(const uint8_t* packed, size_t pair_bytes, int64_t h0, int nsb, const PackedActivations& a,
                             int t0, float* y, int64_t n_out) {
  constexpr size_t kPairRecords = q4_K_pair_record(kQ5);
  constexpr bool kPrefetch = T == 1 && H == kDecodeHalves;  // one record ahead, as on AVX-512
  constexpr int kWiden = kQ5 ? 4 : 8;                       // vectors per int16 sum
  const __m256i ones = _mm256_set1_epi16(1), low_nibbles = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
  GroupSlice halves[H];
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) halves[i] = slice_at<2>(packed, pair_bytes, h0 + i);
  __m256 acc[H][T];
  zero(acc);
  for (int sb = 0; sb < nsb; ++sb) {
    const size_t record = static_cast<size_t>(sb) * kPairRecords;
    const uint8_t* yq[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) yq[t] = q8_K_quants(a, t0 + t, sb);
    __m256i total[H][T];
    zero(total);
#pragma GCC unroll 1
    for (int c = 0; c < 4; ++c) {
      if constexpr (kPrefetch) prefetch(halves[0].pair + record + kPairRecords + q4_K_chunk(kQ5, c));  // scales line
      __m256i fifth[H][2];  // q5_K: the chunk's fifth bits, of the low and the high nibbles
      if constexpr (kQ5) {
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) {
          const GroupSlice& h = halves[i];
          const uint8_t* bits = h.pair + record + q5_K_fifth_bits(h.group, c, 0);
          if (kPrefetch && h.slice == 0) prefetch(bits + kPairRecords), prefetch(bits + 64 + kPairRecords);
          fifth[i][0] = load256(bits + 32 * h.slice);
          fifth[i][1] = load256(bits + 64 + 32 * h.slice);
        }
      }
      __m256i low[H][T], high[H][T];      // int32 sums of sub-blocks 2c and 2c + 1
      __m256i low16[H][T], high16[H][T];  // int16 pairs of products, not yet widened
      zero(low), zero(high), zero(low16), zero(high16);
#pragma GCC unroll 8
      for (int p = 0; p < 8; ++p) {
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) {
          const GroupSlice& h = halves[i];
          const uint8_t* line = h.pair + record + q4_K_quants(kQ5, h.group, c, p);
          if (kPrefetch && h.slice == 0) prefetch(line + kPairRecords);
          const __m256i v = load256(line + 32 * h.slice);
          __m256i lo = _mm256_and_si256(v, low_nibbles);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibbles);
          if constexpr (kQ5) {
            lo = _mm256_or_si256(lo, _mm256_and_si256(bit_to_4(fifth[i][0], p), bit4));
            hi = _mm256_or_si256(hi, _mm256_and_si256(bit_to_4(fifth[i][1], p), bit4));
          }
#pragma GCC unroll 8
          for (int t = 0; t < T; ++t) {
            if constexpr (kVnni) {
              low[i][t] = dot4(low[i][t], lo, broadcast4(yq[t] + 64 * c + 4 * p));
              high[i][t] = dot4(high[i][t], hi, broadcast4(yq[t] + 64 * c + 32 + 4 * p));
            } else {
              low16[i][t] = _mm256_add_epi16(low16[i][t], _mm256_maddubs_epi16(lo, broadcast4(yq[t] + 64 * c + 4 * p)));
              high16[i][t] =
                  _mm256_add_epi16(high16[i][t], _mm256_maddubs_epi16(hi, broadcast4(yq[t] + 64 * c + 32 + 4 * p)));
              if (p % kWiden == kWiden - 1) {
                low[i][t] = _mm256_add_epi32(low[i][t], _mm256_madd_epi16(low16[i][t], ones));
                high[i][t] = _mm256_add_epi32(high[i][t], _mm256_madd_epi16(high16[i][t], ones));
                low16[i][t] = high16[i][t] = _mm256_setzero_si256();
              }
            }
          }
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < H; ++i) {
        const GroupSlice& h = halves[i];
        const uint8_t* scales = h.pair + record + q4_K_scales(kQ5, h.group, c) + 8 * h.slice;
        const __m256i sc_low = scales_u8(scales), sc_high = scales_u8(scales + 16);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          total[i][t] = _mm256_add_epi32(total[i][t], _mm256_mullo_epi32(low[i][t], sc_low));
          total[i][t] = _mm256_add_epi32(total[i][t], _mm256_mullo_epi32(high[i][t], sc_high));
        }
      }
    }
    if constexpr (kPrefetch) {
#pragma GCC unroll 6
      for (size_t at = 0; at < kQ4KTailBytes; at += 64)
        prefetch(halves[0].pair + record + kPairRecords + q4_K_tail(kQ5) + at);
    }
#pragma GCC unroll 8
    for (int i = 0; i < H; ++i) {
      const GroupSlice& h = halves[i];
      const uint8_t* rec = h.pair + record;
      const __m256 d = halves_fp16(rec + q4_K_d(kQ5, h.group) + 16 * h.slice);
      const __m256 dmin = halves_fp16(rec + q4_K_dmin(kQ5, h.group) + 16 * h.slice);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const int16_t* sums = a.sums32 + (static_cast<size_t>(t0 + t) * nsb + sb) * 8;
        __m256i min_total = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
          // Row r's mins of sub-blocks 2q and 2q + 1 against their activation sums.
          const __m256i mins = _mm256_cvtepu8_epi16(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + q4_K_mins(kQ5, h.group) + 32 * q + 16 * h.slice)));
          min_total = _mm256_add_epi32(
              min_total, _mm256_madd_epi16(mins, broadcast4(reinterpret_cast<const uint8_t*>(sums + 2 * q))));
        }
        const float dy = q8_K_block(a, t0 + t, sb).d;
        const __m256 dy_v = _mm256_set1_ps(dy);
        acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total[i][t]), _mm256_mul_ps(d, dy_v), acc[i][t]);
        acc[i][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(min_total), _mm256_mul_ps(dmin, dy_v), acc[i][t]);
      }
    }
  }
  store_tile<H, T>(acc, y, n_out, h0, t0);
}

// q6_K: per superblock and 16-element sub-block, a group's three vectors give its four
// quarters' 6-bit quants (0-63: pairs of products at most 16,002, so two quarters add
// up in int16), whose sums, less 32 * the activations' sub-block sum, take the
// sub-block's int8 scale by VPMULLD.
template <int H, int T>
CLUSTERD_AVX2 void tile_q6_K(const uint8_t* packed, size_t pair_bytes, int64_t h0, int nsb, const PackedActivations& a,
                             int t0, float* y, int64_t n_out) {
  constexpr bool kPrefetch = T == 1 && H == kDecodeHalves;
  const __m256i ones = _mm256_set1_epi16(1), low_nibble = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
  GroupSlice halves[H];
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) halves[i] = slice_at<2>(packed, pair_bytes, h0 + i);
  __m256 acc[H][T];
  zero(acc);
  for (int sb = 0; sb < nsb; ++sb) {
    const size_t record = static_cast<size_t>(sb) * kQ6KPairRecord;
    const uint8_t* yq[T];
    const int16_t* bsums[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      yq[t] = q8_K_quants(a, t0 + t, sb);
      bsums[t] = q8_K_block(a, t0 + t, sb).bsums;
    }
    if constexpr (kPrefetch) {
#pragma GCC unroll 9
      for (size_t at = 0; at < kQ6KHeader; at += 64) prefetch(halves[0].pair + record + kQ6KPairRecord + at);
    }
    __m256i total[H][T];
    zero(total);
#pragma GCC unroll 2
    for (int s = 0; s < 16; ++s) {
#pragma GCC unroll 8
      for (int i = 0; i < H; ++i) {
        const GroupSlice& h = halves[i];
        const uint8_t* v = h.pair + record + q6_K_sub_block(h.group, s);
        if (kPrefetch && h.slice == 0) {
#pragma GCC unroll 3
          for (int line = 0; line < 3; ++line) prefetch(v + kQ6KPairRecord + 64 * line);
        }
        const __m256i low01 = load256(v + 32 * h.slice), low23 = load256(v + 64 + 32 * h.slice);
        const __m256i high = load256(v + 128 + 32 * h.slice);
        const __m256i q0 =
            _mm256_or_si256(_mm256_and_si256(low01, low_nibble), _mm256_and_si256(_mm256_slli_epi16(high, 4), bits45));
        const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(low01, 4), low_nibble),
                                           _mm256_and_si256(_mm256_slli_epi16(high, 2), bits45));
        const __m256i q2 = _mm256_or_si256(_mm256_and_si256(low23, low_nibble), _mm256_and_si256(high, bits45));
        const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(low23, 4), low_nibble),
                                           _mm256_and_si256(_mm256_srli_epi16(high, 2), bits45));
        const __m256i scale = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(
            h.pair + record + q6_K_scales(h.group) + s * kPackedRows + kHalfRows * h.slice)));
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          const uint8_t* x = yq[t] + 16 * s;
          if constexpr (kVnni) {
            __m256i dot = _mm256_set1_epi32(-32 * bsums[t][s]);
            dot = dot4(dot, q0, broadcast4(x));
            dot = dot4(dot, q1, broadcast4(x + 4));
            dot = dot4(dot, q2, broadcast4(x + 8));
            dot = dot4(dot, q3, broadcast4(x + 12));
            total[i][t] = _mm256_add_epi32(total[i][t], _mm256_mullo_epi32(dot, scale));
          } else {
            const __m256i first =
                _mm256_add_epi16(_mm256_maddubs_epi16(q0, broadcast4(x)), _mm256_maddubs_epi16(q1, broadcast4(x + 4)));
            const __m256i second = _mm256_add_epi16(_mm256_maddubs_epi16(q2, broadcast4(x + 8)),
                                                    _mm256_maddubs_epi16(q3, broadcast4(x + 12)));
            __m256i dot = _mm256_add_epi32(_mm256_set1_epi32(-32 * bsums[t][s]), _mm256_madd_epi16(first, ones));
            dot = _mm256_add_epi32(dot, _mm256_madd_epi16(second, ones));
            total[i][t] = _mm256_add_epi32(total[i][t], _mm256_mullo_epi32(dot, scale));
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < H; ++i) {
      const GroupSlice& h = halves[i];
      const __m256 d = halves_fp16(h.pair + record + q6_K_d(h.group) + 16 * h.slice);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const float dy = q8_K_block(a, t0 + t, sb).d;
        acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total[i][t]), _mm256_mul_ps(d, _mm256_set1_ps(dy)), acc[i][t]);
      }
    }
  }
  store_tile<H, T>(acc, y, n_out, h0, t0);
}

}  // namespace

void CLUSTERD_PACKED_AVX2_ENTRY(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                                const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin,
                                int64_t pair_end) {
  const size_t pair_bytes = packed_pair_bytes(type, n_in);
  const int nb = static_cast<int>(n_in / 32), nsb = static_cast<int>(n_in / 256);
  auto run = [&](auto tile) {
    for_each_pair_tile<kDecodeHalves, kBatchHalves, kMaxTokens>(pair_begin, pair_end, n_tokens, tile);
  };
  switch (type) {
    case TensorType::kQ8_0:
      return run([&](auto H, auto T, int64_t h, int t0) {
        tile<false, H(), T()>(packed, pair_bytes, h, nb, a, t0, y, n_out);
      });
    case TensorType::kQ4_0:
      return run(
          [&](auto H, auto T, int64_t h, int t0) { tile<true, H(), T()>(packed, pair_bytes, h, nb, a, t0, y, n_out); });
    case TensorType::kQ4_K:
      return run([&](auto H, auto T, int64_t h, int t0) {
        tile_q4_K<false, H(), T()>(packed, pair_bytes, h, nsb, a, t0, y, n_out);
      });
    case TensorType::kQ5_K:
      return run([&](auto H, auto T, int64_t h, int t0) {
        tile_q4_K<true, H(), T()>(packed, pair_bytes, h, nsb, a, t0, y, n_out);
      });
    default:  // Q6_K (packing_supported names no other type)
      return run(
          [&](auto H, auto T, int64_t h, int t0) { tile_q6_K<H(), T()>(packed, pair_bytes, h, nsb, a, t0, y, n_out); });
  }
}

}  // namespace clusterd

#else  // not x86-64: no AVX2 (packed_product never calls this there)

namespace clusterd {

void CLUSTERD_PACKED_AVX2_ENTRY(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                                const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin,
                                int64_t pair_end) {
  packed_product_reference(type, packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
}

}  // namespace clusterd

#endif
