// The packed product on AVX2 CPUs without AVX-512 VNNI, over the same layout as the
// AVX-512 kernels (packed.h): each 64-byte vector of 16 rows is two 256-bit halves of
// 8 rows, so a tile is H half-groups by T tokens. AVX2 has no VPDPBUSD; VPMADDUBSW
// multiplies unsigned by signed bytes into int16 pairs, which saturate, so each type
// keeps its int16 sums below 2^15 (the bounds are given where the sums are made) and
// widens them with VPMADDWD. The int32 totals are the exact ones the scalar reference
// makes, and the float steps are its steps in its order: results equal it bit for bit.
#include <algorithm>
#include <cstring>

#include "clusterd/engine/packed.h"
#include "clusterd/engine/quant.h"
#include "packed_layout.h"
#include "row_tiles.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define CLUSTERD_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace clusterd {
namespace {

using namespace packed_layout;

constexpr int kHalfRows = 8;      // rows per 256-bit half of a group
constexpr int kYQuants = 2;       // offset of qs in block_q8_0 (after the fp16 d)
constexpr int kYBlock = 34;       // sizeof(block_q8_0)
constexpr int kMaxTokens = 2;     // T of the widest batch tile (wider ones spill)
constexpr int kDecodeHalves = 4;  // H of a one-token tile: a whole pair, one stream

CLUSTERD_AVX2 inline __m256i load256(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

inline void prefetch(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }

// Four activation bytes in every lane.
CLUSTERD_AVX2 inline __m256i broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

// Where half-group h (of the whole matrix) lives: its pair, its group in the pair, and
// its half of that group's vectors.
struct Half {
  const uint8_t* pair;
  int group;
  int half;
};

inline Half half_at(const uint8_t* packed, size_t pair_bytes, int64_t h) {
  const int64_t g = h / 2;
  return {packed + g / 2 * pair_bytes, static_cast<int>(g % 2), static_cast<int>(h % 2)};
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
  Half halves[H];
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) halves[i] = half_at(packed, pair_bytes, h0 + i);
  __m256 acc[H][T];
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps();
  }
  for (int b = 0; b < nb; ++b) {
    const size_t block = static_cast<size_t>(b) * kPairBlock;
    if constexpr (kPrefetch) {
#pragma GCC unroll 17
      for (size_t at = 0; at < kPairBlock; at += 64) prefetch(halves[0].pair + block + kAhead + at);
    }
    const uint8_t* yq[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) yq[t] = a.rows + (t0 + t) * a.row_bytes + static_cast<size_t>(b) * kYBlock + kYQuants;
    __m256i sum[H][T];
    if constexpr (kQ4) {
      __m256i pairs[H][T];
#pragma GCC unroll 8
      for (int i = 0; i < H; ++i) {
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) pairs[i][t] = _mm256_setzero_si256();
      }
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) {
          const Half& h = halves[i];
          const __m256i v = load256(h.pair + block + block_quants(kQ4, h.group) + 64 * j + 32 * h.half);
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
#pragma GCC unroll 8
      for (int i = 0; i < H; ++i) {
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) sum[i][t] = _mm256_setzero_si256();
      }
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) {
          const Half& h = halves[i];
          const __m256i w =
              _mm256_xor_si256(load256(h.pair + block + block_quants(kQ4, h.group) + 64 * j + 32 * h.half), sign_bit);
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
      const Half& h = halves[i];
      const __m256 dw = _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(h.pair + block + block_scales(kQ4, h.group) + 16 * h.half)));
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(a.d[(t0 + t) * nb + b]));
        acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[i][t]), scale, acc[i][t]);
      }
    }
  }
  store_tile<H, T>(acc, y, n_out, h0, t0);
}

// One token: a whole pair per tile (one stream); more tokens: one group (two halves)
// by up to two tokens.
template <bool kQ4>
void run(const uint8_t* packed, int64_t n_in, int64_t n_out, const PackedActivations& a, int n_tokens, float* y,
         int64_t begin, int64_t end) {
  const int nb = static_cast<int>(n_in / 32);
  const size_t pair_bytes = packed_pair_bytes(kQ4 ? TensorType::kQ4_0 : TensorType::kQ8_0, n_in);
  for (int64_t p = begin; p < end; ++p) {
    if (n_tokens == 1) {
      tile<kQ4, kDecodeHalves, 1>(packed, pair_bytes, 4 * p, nb, a, 0, y, n_out);
      continue;
    }
    for (int64_t h = 4 * p; h < 4 * p + 4; h += 2) {
      for (int t0 = 0; t0 < n_tokens; t0 += kMaxTokens) {
        with_count<kMaxTokens>(std::min(kMaxTokens, n_tokens - t0),
                               [&](auto T) { tile<kQ4, 2, T()>(packed, pair_bytes, h, nb, a, t0, y, n_out); });
      }
    }
  }
}

}  // namespace

bool packing_supported_avx2(TensorType type) { return type == TensorType::kQ8_0 || type == TensorType::kQ4_0; }

void packed_product_avx2(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                         const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end) {
  if (type == TensorType::kQ4_0) {
    run<true>(packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
  } else if (type == TensorType::kQ8_0) {
    run<false>(packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
  } else {
    packed_product_reference(type, packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
  }
}

}  // namespace clusterd

#else  // not x86-64: no AVX2 (packed_product never calls this there)

namespace clusterd {

bool packing_supported_avx2(TensorType) { return false; }

void packed_product_avx2(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                         const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end) {
  packed_product_reference(type, packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
}

}  // namespace clusterd

#endif
