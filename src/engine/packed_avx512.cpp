// The packed product on AVX-512 VNNI (layout and contract in packed.h). A tile is R row
// groups by T tokens: per 32-element block, each weight vector is loaded once and
// multiplied into T int32 sums (the token's four bytes broadcast from memory), so the
// weights are read once per T tokens and the activations once per R groups; the sums
// are then scaled into R x T float accumulators. The row-group loop is outside the
// token loop, so a tile's weights stay in L2 while every token passes over them.
#include <algorithm>
#include <cassert>
#include <cstring>

#include "clusterd/engine/packed.h"
#include "packed_layout.h"
#include "row_tiles.h"

#if defined(__x86_64__)
#include "avx512_intrinsics.h"

namespace clusterd {
namespace {

using namespace packed_layout;

CLUSTERD_AVX512 inline __m512i load512(const uint8_t* p) { return _mm512_loadu_si512(p); }

// Non-temporal (weights are read once per token, so they need not displace the caches'
// other lines): decode ran at 86-87% of the bound for Q4_K against 81-84% with T0, at
// 2 threads Q8_0 95-97% against 89-91% and Q4_0 97-99% against 89-94%; Q6_K the same.
// An address past the matrix is harmless (prefetches do not fault).
inline void prefetch(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_NTA); }

// Four activation bytes in every lane (VPBROADCASTD, shared by the tile's groups).
CLUSTERD_AVX512 inline __m512i broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

template <int R, int T>
CLUSTERD_AVX512 inline void zero_tile(__m512 (&acc)[R][T]) {
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  }
}

// The tile's results: rows row0.. of groups r, tokens t0.. (rows past n_out, and a
// pair's second group past them, are padding).
template <int R, int T>
CLUSTERD_AVX512 inline void store_tile(const __m512 (&acc)[R][T], float* y, int64_t n_out, int64_t row0, int t0) {
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const int64_t first = row0 + r * kPackedRows;
    const int64_t valid = std::min<int64_t>(kPackedRows, n_out - first);
    if (valid <= 0) break;
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * n_out + first, mask, acc[r][t]);
  }
}

// One pair of row groups (R = 2) by T tokens, block by block (packed_layout.h).
template <bool kQ4, int T>
CLUSTERD_AVX512 void tile(const uint8_t* pair, int nb, const PackedActivations& a, int t0, float* y, int64_t n_out,
                          int64_t row0) {
  constexpr int R = 2;
  constexpr size_t kPairBlock = pair_block_bytes(kQ4);
  constexpr int kOffset = kQ4 ? 8 : 128;
  // One token: every line is prefetched about 4.5 KB (4 q8_0 or 8 q4_0 pair blocks)
  // ahead. q8_0 decode went from 81-83% to 93-99% of the bandwidth bound at 1 thread
  // and from 82-89% to 88-94% at 2; q4_0 gained 1-2 points. (2.2 KB was slower for
  // both, 6.5-8.7 KB no better.)
  constexpr bool kPrefetch = T == 1;
  constexpr size_t kAhead = (kQ4 ? 8 : 4) * kPairBlock;
  const __m512i low_nibbles = _mm512_set1_epi8(0x0f);
  __m512 acc[R][T];
  zero_tile(acc);
  for (int b = 0; b < nb; ++b) {
    // Two chains of sums per tile entry (even and odd vectors), added at the end: the
    // int32 total is the same, and with few entries (one token) the second chain halves
    // the wait on VPDPBUSD's latency.
    __m512i sum[R][T], odd[R][T];
    const uint8_t* yq[T];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      yq[t] = q8_0_quants(a, t0 + t, b);
      const __m512i bias = _mm512_set1_epi32(-kOffset * a.sum[(t0 + t) * nb + b]);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) sum[r][t] = bias, odd[r][t] = _mm512_setzero_si512();
    }
    const uint8_t* block = pair + static_cast<size_t>(b) * kPairBlock;
    if constexpr (kPrefetch) {
#pragma GCC unroll 17
      for (size_t at = 0; at < kPairBlock; at += 64) prefetch(block + kAhead + at);
    }
    if constexpr (kQ4) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const __m512i v = load512(block + block_quants(kQ4, r) + 64 * j);
          const __m512i low = _mm512_and_si512(v, low_nibbles);
          const __m512i high = _mm512_and_si512(_mm512_srli_epi16(v, 4), low_nibbles);
#pragma GCC unroll 16
          for (int t = 0; t < T; ++t) {
            sum[r][t] = _mm512_dpbusd_epi32(sum[r][t], low, broadcast4(yq[t] + 4 * j));
            odd[r][t] = _mm512_dpbusd_epi32(odd[r][t], high, broadcast4(yq[t] + 16 + 4 * j));
          }
        }
      }
    } else {
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const __m512i v = load512(block + block_quants(kQ4, r) + 64 * j);
#pragma GCC unroll 16
          for (int t = 0; t < T; ++t) {
            __m512i& into = j % 2 ? odd[r][t] : sum[r][t];
            into = _mm512_dpbusd_epi32(into, v, broadcast4(yq[t] + 4 * j));
          }
        }
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 dw =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + block_scales(kQ4, r))));
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(a.d[(t0 + t) * nb + b]));
        const __m512i total = _mm512_add_epi32(sum[r][t], odd[r][t]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), scale, acc[r][t]);
      }
    }
  }
  store_tile<R, T>(acc, y, n_out, row0, t0);
}

constexpr int kMaxTokens = 4;  // T of the widest tile

// One pair (two groups, one stream of weights) by up to four tokens per tile.
template <bool kQ4>
void run(const uint8_t* packed, int64_t n_in, int64_t n_out, const PackedActivations& a, int n_tokens, float* y,
         int64_t begin, int64_t end) {
  const int nb = static_cast<int>(n_in / 32);
  const size_t pair_bytes = packed_pair_bytes(kQ4 ? TensorType::kQ4_0 : TensorType::kQ8_0, n_in);
  for (int64_t p = begin; p < end; ++p) {
    for (int t0 = 0; t0 < n_tokens; t0 += kMaxTokens) {
      const int tokens = std::min(kMaxTokens, n_tokens - t0);
      with_count<kMaxTokens>(
          tokens, [&](auto T) { tile<kQ4, T()>(packed + p * pair_bytes, nb, a, t0, y, n_out, p * kPackedPairRows); });
    }
  }
}

// q4_K: per superblock and chunk of 64 elements, the low and high nibbles go into
// separate sums (sub-blocks 2c and 2c + 1), which take their 6-bit scales by VPMULLD
// into the superblock's exact total; the mins meet the activations' sub-block sums
// by VPDPWSSD.
// q5_K goes the same way, its fifth bits merged into the nibbles (at bit 4) by
// VPTERNLOGD before the products.
constexpr int kSelect = 0xe4;  // VPTERNLOGD: c ? a : b, bit by bit

// Bit p of every byte of v, moved to bit 4 (other bits unspecified; p is a constant
// once the caller's loop is unrolled).
CLUSTERD_AVX512 inline __m512i bit_to_4(__m512i v, int p) {
  return p <= 4 ? _mm512_slli_epi16(v, 4 - p) : _mm512_srli_epi16(v, p - 4);
}

// A tile is one group (R = 1) or a whole pair (R = 2, g0 even), so all its groups are
// in one pair: superblock sb's parts are in the pair record at pair + sb *
// kPairRecords, at the offsets for group(r). (With the groups known at compile time
// the decode tile keeps its addresses in registers; computed from g0 at run time they
// spilled, and a one-thread decode kernel streamed 8-10 points slower.)
template <bool kQ5, int R, int T>
CLUSTERD_AVX512 void tile_q4_K(const uint8_t* packed, size_t pair_bytes, int64_t g0, int nsb,
                               const PackedActivations& a, int t0, float* y, int64_t n_out) {
  static_assert(R == 1 || R == 2);
  assert(R == 1 || g0 % 2 == 0);
  const int64_t row0 = g0 * kPackedRows;
  const uint8_t* pair = packed + g0 / 2 * pair_bytes;
  auto group = [&](int r) { return R == 2 ? r : static_cast<int>(g0 % 2); };
  const __m512i low_nibbles = _mm512_set1_epi8(0x0f), high_nibbles = _mm512_set1_epi8(static_cast<char>(0xf0));
  const __m512i bit4 = _mm512_set1_epi8(0x10);
  constexpr size_t kPairRecords = q4_K_pair_record(kQ5);
  __m512 acc[R][T];
  zero_tile(acc);
  for (int sb = 0; sb < nsb; ++sb) {
    const uint8_t* yq[T];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) yq[t] = q8_K_quants(a, t0 + t, sb);
    const size_t record = static_cast<size_t>(sb) * kPairRecords;
    // One token: each line of the record is prefetched one superblock (one pair record)
    // ahead, in the order the lines are stored. Without it, decode ran at 47-65% of the
    // bandwidth bound, with it at 82-89%. (Two superblocks ahead, or into L2 only, was
    // slower.)
    constexpr bool kPrefetch = T == 1 && R == 2;  // a decode tile: the whole pair's stream
    __m512i total[R][T];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) total[r][t] = _mm512_setzero_si512();
    }
#pragma GCC unroll 1
    for (int c = 0; c < 4; ++c) {
      __m512i low[R][T], high[R][T];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) low[r][t] = high[r][t] = _mm512_setzero_si512();
      }
      if constexpr (kPrefetch) prefetch(pair + record + kPairRecords + q4_K_chunk(kQ5, c));  // its scales line
      __m512i fifth[R][2];  // q5_K: the chunk's fifth bits, of the low and the high nibbles
      if constexpr (kQ5) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const uint8_t* bits = pair + record + q5_K_fifth_bits(group(r), c, 0);
          if constexpr (kPrefetch) prefetch(bits + kPairRecords), prefetch(bits + 64 + kPairRecords);
          fifth[r][0] = load512(bits);
          fifth[r][1] = load512(bits + 64);
        }
      }
#pragma GCC unroll 8
      for (int p = 0; p < 8; ++p) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const uint8_t* line = pair + record + q4_K_quants(kQ5, group(r), c, p);
          if constexpr (kPrefetch) prefetch(line + kPairRecords);
          const __m512i v = load512(line);
          __m512i lo, hi;
          if constexpr (kQ5) {  // bits 0-3 the nibble, bit 4 the fifth bit
            lo = _mm512_ternarylogic_epi32(v, _mm512_and_si512(bit_to_4(fifth[r][0], p), bit4), low_nibbles, kSelect);
            hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), _mm512_and_si512(bit_to_4(fifth[r][1], p), bit4),
                                           low_nibbles, kSelect);
          } else {
            lo = _mm512_and_si512(v, low_nibbles);
            hi = _mm512_and_si512(v, high_nibbles);  // 16 x the high nibble
          }
#pragma GCC unroll 16
          for (int t = 0; t < T; ++t) {
            low[r][t] = _mm512_dpbusd_epi32(low[r][t], lo, broadcast4(yq[t] + 64 * c + 4 * p));
            high[r][t] = _mm512_dpbusd_epi32(high[r][t], hi, broadcast4(yq[t] + 64 * c + 32 + 4 * p));
          }
        }
      }
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const uint8_t* scales = pair + record + q4_K_scales(kQ5, group(r), c);
        const __m512i sc_low = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales)));
        const __m512i sc_high = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 16)));
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) {
          total[r][t] = _mm512_add_epi32(total[r][t], _mm512_mullo_epi32(low[r][t], sc_low));
          // q4_K's high sums are 16 x their value (nibbles kept in place), so exact >> 4.
          const __m512i high_sum = kQ5 ? high[r][t] : _mm512_srai_epi32(high[r][t], 4);
          total[r][t] = _mm512_add_epi32(total[r][t], _mm512_mullo_epi32(high_sum, sc_high));
        }
      }
    }
    if constexpr (kPrefetch) {
#pragma GCC unroll 6
      for (size_t at = 0; at < kQ4KTailBytes; at += 64) prefetch(pair + record + kPairRecords + q4_K_tail(kQ5) + at);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const uint8_t* rec = pair + record;
      __m512i mins[4];
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        mins[q] = _mm512_cvtepu8_epi16(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + q4_K_mins(kQ5, group(r)) + 32 * q)));
      }
      const __m512 d =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + q4_K_d(kQ5, group(r)))));
      const __m512 dmin =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + q4_K_dmin(kQ5, group(r)))));
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const int16_t* sums = a.sums32 + (static_cast<size_t>(t0 + t) * nsb + sb) * 8;
        __m512i min_total = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
          min_total =
              _mm512_dpwssd_epi32(min_total, mins[q], broadcast4(reinterpret_cast<const uint8_t*>(sums + 2 * q)));
        }
        const float dy = q8_K_block(a, t0 + t, sb).d;
        const __m512 dy_v = _mm512_set1_ps(dy);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total[r][t]), _mm512_mul_ps(d, dy_v), acc[r][t]);
        acc[r][t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(min_total), _mm512_mul_ps(dmin, dy_v), acc[r][t]);
      }
    }
  }
  store_tile<R, T>(acc, y, n_out, row0, t0);
}

// One token: one pair at a time, one stream of weights (with the prefetch, 1, 2 and 3
// pairs per tile read at about 29, 25 and 24 GB/s); more tokens: one group by up to
// four tokens (a q4_K tile entry holds four vectors, so wider tiles would spill).
constexpr int kDecodeGroups = 2;
template <bool kQ5>
void run_q4_K(const uint8_t* packed, int64_t n_in, int64_t n_out, const PackedActivations& a, int n_tokens, float* y,
              int64_t begin, int64_t end) {
  const int nsb = static_cast<int>(n_in / 256);
  const size_t pair_bytes = packed_pair_bytes(kQ5 ? TensorType::kQ5_K : TensorType::kQ4_K, n_in);
  int64_t g = 2 * begin;
  if (n_tokens == 1) {
    for (; g + kDecodeGroups <= 2 * end; g += kDecodeGroups)
      tile_q4_K<kQ5, kDecodeGroups, 1>(packed, pair_bytes, g, nsb, a, 0, y, n_out);
  }
  for (; g < 2 * end; ++g) {
    for (int t0 = 0; t0 < n_tokens; t0 += kMaxTokens) {
      const int tokens = std::min(kMaxTokens, n_tokens - t0);
      with_count<kMaxTokens>(tokens,
                             [&](auto T) { tile_q4_K<kQ5, 1, T()>(packed, pair_bytes, g, nsb, a, t0, y, n_out); });
    }
  }
}

// q6_K: per superblock and 16-element sub-block, a group's three vectors give its
// four quarters' 6-bit quants (low nibble, and the two high bits moved to bits 4-5 and
// merged by VPTERNLOGD), whose VPDPBUSD sums, seeded with -32 * the activations'
// sub-block sum, take the sub-block's int8 scale by VPMULLD into the superblock's
// exact total.

// Groups g0.. (R = 2: a whole pair) by T tokens.
template <int R, int T>
CLUSTERD_AVX512 void tile_q6_K(const uint8_t* packed, size_t pair_bytes, int64_t g0, int nsb,
                               const PackedActivations& a, int t0, float* y, int64_t n_out) {
  const uint8_t* pair = packed + g0 / 2 * pair_bytes;
  const __m512i low_nibble = _mm512_set1_epi8(0x0f), bits45 = _mm512_set1_epi8(0x30);
  __m512 acc[R][T];
  zero_tile(acc);
  for (int sb = 0; sb < nsb; ++sb) {
    const uint8_t* record = pair + static_cast<size_t>(sb) * kQ6KPairRecord;
    const uint8_t* yq[T];
    const int16_t* bsums[T];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      yq[t] = q8_K_quants(a, t0 + t, sb);
      bsums[t] = q8_K_block(a, t0 + t, sb).bsums;
    }
    __m512i total[R][T];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) total[r][t] = _mm512_setzero_si512();
    }
    // One token: every line of the next superblock's record is prefetched, as for q4_K.
    constexpr bool kPrefetch = T == 1;
    if constexpr (kPrefetch) {
#pragma GCC unroll 9
      for (size_t at = 0; at < kQ6KHeader; at += 64) prefetch(record + kQ6KPairRecord + at);
    }
#pragma GCC unroll 2
    for (int s = 0; s < 16; ++s) {
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const int g = static_cast<int>((g0 + r) % 2);
        const uint8_t* v = record + q6_K_sub_block(g, s);
        if constexpr (kPrefetch) {
#pragma GCC unroll 3
          for (int line = 0; line < 3; ++line) prefetch(v + kQ6KPairRecord + 64 * line);
        }
        const __m512i low01 = load512(v), low23 = load512(v + 64), high = load512(v + 128);
        const __m512i q0 =
            _mm512_ternarylogic_epi32(low01, _mm512_and_si512(_mm512_slli_epi16(high, 4), bits45), low_nibble, kSelect);
        const __m512i q1 = _mm512_ternarylogic_epi32(
            _mm512_srli_epi16(low01, 4), _mm512_and_si512(_mm512_slli_epi16(high, 2), bits45), low_nibble, kSelect);
        const __m512i q2 = _mm512_ternarylogic_epi32(low23, _mm512_and_si512(high, bits45), low_nibble, kSelect);
        const __m512i q3 = _mm512_ternarylogic_epi32(
            _mm512_srli_epi16(low23, 4), _mm512_and_si512(_mm512_srli_epi16(high, 2), bits45), low_nibble, kSelect);
        const __m512i scale = _mm512_cvtepi8_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(record + q6_K_scales(g) + s * kPackedRows)));
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) {
          __m512i dot = _mm512_set1_epi32(-32 * bsums[t][s]);
          dot = _mm512_dpbusd_epi32(dot, q0, broadcast4(yq[t] + 16 * s));
          dot = _mm512_dpbusd_epi32(dot, q1, broadcast4(yq[t] + 16 * s + 4));
          dot = _mm512_dpbusd_epi32(dot, q2, broadcast4(yq[t] + 16 * s + 8));
          dot = _mm512_dpbusd_epi32(dot, q3, broadcast4(yq[t] + 16 * s + 12));
          total[r][t] = _mm512_add_epi32(total[r][t], _mm512_mullo_epi32(dot, scale));
        }
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const int g = static_cast<int>((g0 + r) % 2);
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(record + q6_K_d(g))));
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const float dy = q8_K_block(a, t0 + t, sb).d;
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total[r][t]), _mm512_mul_ps(d, _mm512_set1_ps(dy)), acc[r][t]);
      }
    }
  }
  store_tile<R, T>(acc, y, n_out, g0 * kPackedRows, t0);
}

// As q4_K: one token, a pair per tile; more tokens, one group by up to four.
void run_q6_K(const uint8_t* packed, int64_t n_in, int64_t n_out, const PackedActivations& a, int n_tokens, float* y,
              int64_t begin, int64_t end) {
  const int nsb = static_cast<int>(n_in / 256);
  const size_t pair_bytes = packed_pair_bytes(TensorType::kQ6_K, n_in);
  if (n_tokens == 1) {
    for (int64_t p = begin; p < end; ++p) tile_q6_K<2, 1>(packed, pair_bytes, 2 * p, nsb, a, 0, y, n_out);
    return;
  }
  for (int64_t g = 2 * begin; g < 2 * end; ++g) {
    for (int t0 = 0; t0 < n_tokens; t0 += kMaxTokens) {
      const int tokens = std::min(kMaxTokens, n_tokens - t0);
      with_count<kMaxTokens>(tokens, [&](auto T) { tile_q6_K<1, T()>(packed, pair_bytes, g, nsb, a, t0, y, n_out); });
    }
  }
}

}  // namespace

void packed_product_avx512(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                           const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end) {
  if (type == TensorType::kQ4_K) {
    run_q4_K<false>(packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
  } else if (type == TensorType::kQ5_K) {
    run_q4_K<true>(packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
  } else if (type == TensorType::kQ6_K) {
    run_q6_K(packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
  } else if (type == TensorType::kQ4_0) {
    run<true>(packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
  } else {
    run<false>(packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
  }
}

}  // namespace clusterd

#else  // not x86-64: no AVX-512 (packed_product never calls this there)

namespace clusterd {

void packed_product_avx512(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                           const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end) {
  packed_product_reference(type, packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
}

}  // namespace clusterd

#endif
