// The packed product on AArch64 with SDOT, over the layout of the x86 kernels
// (packed.h): each 64-byte vector of 16 rows is four 128-bit quarters of 4 rows, so a
// tile is Q quarter-groups by T tokens. SDOT multiplies signed bytes four to a lane,
// and every stored quant is a signed byte here: q8_0's w + 128 comes back as w by
// flipping its top bit, the other types' quants are 0-63. The int32 totals are the
// exact ones the scalar reference makes, and the float steps are its steps in its
// order, so results equal it bit for bit. Checked under qemu only: no ARM CPU has timed
// this code.
//
// The file is compiled for SDOT whatever the build targets (a generic armv8-a build
// too), and packed_neon_kernels_available() asks the CPU at run time, as the x86
// families do. Compilers whose arm_neon.h declares SDOT only for a build that targets
// it (clang before 16) get the kernels only in such a build.
#include <algorithm>
#include <cstring>

#include "clusterd/engine/kernels_neon.h"
#include "clusterd/engine/packed.h"
#include "packed_layout.h"
#include "row_tiles.h"

#if defined(CLUSTERD_HAVE_NEON_KERNELS) && \
    (defined(__ARM_FEATURE_DOTPROD) || !defined(__clang__) || __clang_major__ >= 16)
#include <arm_neon.h>

// The tiles, which multiply by SDOT, are compiled for it. (A target pragma over the
// file would not reach GCC's template instantiations, made at the end of the file.)
// GCC 12's arm_neon.h declares SDOT for arch=armv8.2-a+dotprod, and a function may
// inline it only with that whole arch, so the tiles are built for armv8.2-a+dotprod
// in place of the command line's -march (every CPU with SDOT implements v8.2;
// "+dotprod" alone fails to inline there). Older GCCs have not been tried.
#if defined(__ARM_FEATURE_DOTPROD)
#define CLUSTERD_SDOT
#elif defined(__clang__)
#define CLUSTERD_SDOT __attribute__((target("dotprod")))
#else
#define CLUSTERD_SDOT __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

namespace clusterd {
namespace {

using namespace packed_layout;

constexpr int kQuarterRows = 4;     // rows per 128-bit quarter of a group
constexpr int kMaxTokens = 2;       // T of the widest batch tile
constexpr int kDecodeQuarters = 8;  // Q of a one-token tile: a whole pair, one stream
constexpr int kBatchQuarters = 4;   // Q of a batch tile: one group

// Four activation bytes in every lane.
inline int8x16_t broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// Four fp16 values as floats.
inline float32x4_t halves4(const uint8_t* p) {
  uint16_t h[4];
  std::memcpy(h, p, sizeof h);
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

// Four unsigned (signed) bytes widened to int32 lanes.
inline int32x4_t widen_u8(const uint8_t* p) {
  uint8_t b[8] = {};
  std::memcpy(b, p, 4);
  return vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(vld1_u8(b)))));
}
inline int32x4_t widen_s8(const uint8_t* p) {
  int8_t b[8] = {};
  std::memcpy(b, p, 4);
  return vmovl_s16(vget_low_s16(vmovl_s8(vld1_s8(b))));
}

inline void prefetch(const uint8_t* p) { __builtin_prefetch(p); }

// Every vector of a tile's accumulators set to zero.
template <int Q, int T>
inline void zero(float32x4_t (&v)[Q][T]) {
  for (int i = 0; i < Q; ++i) {
    for (int t = 0; t < T; ++t) v[i][t] = vdupq_n_f32(0.0f);
  }
}
template <int Q, int T>
inline void zero(int32x4_t (&v)[Q][T]) {
  for (int i = 0; i < Q; ++i) {
    for (int t = 0; t < T; ++t) v[i][t] = vdupq_n_s32(0);
  }
}

template <int Q, int T>
inline void store_tile(const float32x4_t (&acc)[Q][T], float* y, int64_t n_out, int64_t q0, int t0) {
  for (int i = 0; i < Q; ++i) {
    const int64_t first = (q0 + i) * kQuarterRows;
    const int64_t valid = std::min<int64_t>(kQuarterRows, n_out - first);
    if (valid <= 0) break;
    for (int t = 0; t < T; ++t) {
      float* out = y + (t0 + t) * n_out + first;
      if (valid == kQuarterRows) {
        vst1q_f32(out, acc[i][t]);
      } else {
        float lanes[kQuarterRows];
        vst1q_f32(lanes, acc[i][t]);
        std::memcpy(out, lanes, valid * sizeof(float));
      }
    }
  }
}

// q8_0 / q4_0: quarter-groups q0.. by T tokens, block by block; q4_0's offset comes
// back as -8 * sum(x).
template <bool kQ4, int Q, int T>
CLUSTERD_SDOT void tile(const uint8_t* packed, size_t pair_bytes, int64_t q0, int nb, const PackedActivations& a,
                        int t0, float* y, int64_t n_out) {
  constexpr size_t kPairBlock = pair_block_bytes(kQ4);
  constexpr bool kPrefetch = T == 1 && Q == kDecodeQuarters;
  constexpr size_t kAhead = (kQ4 ? 8 : 4) * kPairBlock;
  const uint8x16_t low_nibbles = vdupq_n_u8(0x0f), sign_bit = vdupq_n_u8(0x80);
  GroupSlice quarters[Q];
  for (int i = 0; i < Q; ++i) quarters[i] = slice_at<4>(packed, pair_bytes, q0 + i);
  float32x4_t acc[Q][T];
  zero(acc);
  for (int b = 0; b < nb; ++b) {
    const size_t block = static_cast<size_t>(b) * kPairBlock;
    if constexpr (kPrefetch) {
      for (size_t at = 0; at < kPairBlock; at += 64) prefetch(quarters[0].pair + block + kAhead + at);
    }
    const uint8_t* yq[T];
    int32x4_t sum[Q][T];
    for (int t = 0; t < T; ++t) {
      yq[t] = q8_0_quants(a, t0 + t, b);
      const int32x4_t bias = vdupq_n_s32(kQ4 ? -8 * a.sum[(t0 + t) * nb + b] : 0);
      for (int i = 0; i < Q; ++i) sum[i][t] = bias;
    }
    if constexpr (kQ4) {
      for (int j = 0; j < 4; ++j) {
        for (int i = 0; i < Q; ++i) {
          const GroupSlice& h = quarters[i];
          const uint8x16_t v = vld1q_u8(h.pair + block + block_quants(kQ4, h.group) + 64 * j + 16 * h.slice);
          const int8x16_t low = vreinterpretq_s8_u8(vandq_u8(v, low_nibbles));
          const int8x16_t high = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
          for (int t = 0; t < T; ++t) {
            sum[i][t] = vdotq_s32(sum[i][t], low, broadcast4(yq[t] + 4 * j));
            sum[i][t] = vdotq_s32(sum[i][t], high, broadcast4(yq[t] + 16 + 4 * j));
          }
        }
      }
    } else {
      for (int j = 0; j < 8; ++j) {
        for (int i = 0; i < Q; ++i) {
          const GroupSlice& h = quarters[i];
          const int8x16_t w = vreinterpretq_s8_u8(
              veorq_u8(vld1q_u8(h.pair + block + block_quants(kQ4, h.group) + 64 * j + 16 * h.slice), sign_bit));
          for (int t = 0; t < T; ++t) sum[i][t] = vdotq_s32(sum[i][t], w, broadcast4(yq[t] + 4 * j));
        }
      }
    }
    for (int i = 0; i < Q; ++i) {
      const GroupSlice& h = quarters[i];
      const float32x4_t dw = halves4(h.pair + block + block_scales(kQ4, h.group) + 8 * h.slice);
      for (int t = 0; t < T; ++t) {
        const float32x4_t scale = vmulq_f32(dw, vdupq_n_f32(a.d[(t0 + t) * nb + b]));
        acc[i][t] = vfmaq_f32(acc[i][t], vcvtq_f32_s32(sum[i][t]), scale);
      }
    }
  }
  store_tile<Q, T>(acc, y, n_out, q0, t0);
}

// q4_K / q5_K: per chunk of 64 elements, the low and high nibbles (q5_K: with the
// fifth bit at bit 4) give the sums of sub-blocks 2c and 2c + 1, which take their 6-bit
// scales; the mins meet the activations' sub-block sums in widening multiplies.
template <bool kQ5, int Q, int T>
CLUSTERD_SDOT void tile_q4_K(const uint8_t* packed, size_t pair_bytes, int64_t q0, int nsb, const PackedActivations& a,
                             int t0, float* y, int64_t n_out) {
  constexpr size_t kPairRecords = q4_K_pair_record(kQ5);
  constexpr bool kPrefetch = T == 1 && Q == kDecodeQuarters;
  const uint8x16_t low_nibbles = vdupq_n_u8(0x0f), bit4 = vdupq_n_u8(0x10);
  GroupSlice quarters[Q];
  for (int i = 0; i < Q; ++i) quarters[i] = slice_at<4>(packed, pair_bytes, q0 + i);
  float32x4_t acc[Q][T];
  zero(acc);
  for (int sb = 0; sb < nsb; ++sb) {
    const size_t record = static_cast<size_t>(sb) * kPairRecords;
    const uint8_t* yq[T];
    for (int t = 0; t < T; ++t) yq[t] = q8_K_quants(a, t0 + t, sb);
    int32x4_t total[Q][T];
    zero(total);
    for (int c = 0; c < 4; ++c) {
      if constexpr (kPrefetch) prefetch(quarters[0].pair + record + kPairRecords + q4_K_chunk(kQ5, c));  // scales line
      uint8x16_t fifth[Q][2];  // q5_K: the chunk's fifth bits, of the low and the high nibbles
      if constexpr (kQ5) {
        for (int i = 0; i < Q; ++i) {
          const GroupSlice& h = quarters[i];
          const uint8_t* bits = h.pair + record + q5_K_fifth_bits(h.group, c, 0);
          if (kPrefetch && h.slice == 0) prefetch(bits + kPairRecords), prefetch(bits + 64 + kPairRecords);
          fifth[i][0] = vld1q_u8(bits + 16 * h.slice);
          fifth[i][1] = vld1q_u8(bits + 64 + 16 * h.slice);
        }
      }
      int32x4_t low[Q][T], high[Q][T];
      zero(low), zero(high);
      for (int p = 0; p < 8; ++p) {
        const int8x16_t to_bit4 = vdupq_n_s8(static_cast<int8_t>(4 - p));  // bit p to bit 4 (negative: right)
        for (int i = 0; i < Q; ++i) {
          const GroupSlice& h = quarters[i];
          const uint8_t* line = h.pair + record + q4_K_quants(kQ5, h.group, c, p);
          if (kPrefetch && h.slice == 0) prefetch(line + kPairRecords);
          const uint8x16_t v = vld1q_u8(line + 16 * h.slice);
          uint8x16_t lo = vandq_u8(v, low_nibbles), hi = vshrq_n_u8(v, 4);
          if constexpr (kQ5) {
            lo = vorrq_u8(lo, vandq_u8(vshlq_u8(fifth[i][0], to_bit4), bit4));
            hi = vorrq_u8(hi, vandq_u8(vshlq_u8(fifth[i][1], to_bit4), bit4));
          }
          for (int t = 0; t < T; ++t) {
            low[i][t] = vdotq_s32(low[i][t], vreinterpretq_s8_u8(lo), broadcast4(yq[t] + 64 * c + 4 * p));
            high[i][t] = vdotq_s32(high[i][t], vreinterpretq_s8_u8(hi), broadcast4(yq[t] + 64 * c + 32 + 4 * p));
          }
        }
      }
      for (int i = 0; i < Q; ++i) {
        const GroupSlice& h = quarters[i];
        const uint8_t* scales = h.pair + record + q4_K_scales(kQ5, h.group, c) + 4 * h.slice;
        const int32x4_t sc_low = widen_u8(scales), sc_high = widen_u8(scales + 16);
        for (int t = 0; t < T; ++t) {
          total[i][t] = vmlaq_s32(total[i][t], low[i][t], sc_low);
          total[i][t] = vmlaq_s32(total[i][t], high[i][t], sc_high);
        }
      }
    }
    if constexpr (kPrefetch) {
      for (size_t at = 0; at < kQ4KTailBytes; at += 64)
        prefetch(quarters[0].pair + record + kPairRecords + q4_K_tail(kQ5) + at);
    }
    for (int i = 0; i < Q; ++i) {
      const GroupSlice& h = quarters[i];
      const uint8_t* rec = h.pair + record;
      const float32x4_t d = halves4(rec + q4_K_d(kQ5, h.group) + 8 * h.slice);
      const float32x4_t dmin = halves4(rec + q4_K_dmin(kQ5, h.group) + 8 * h.slice);
      for (int t = 0; t < T; ++t) {
        const int16_t* sums = a.sums32 + (static_cast<size_t>(t0 + t) * nsb + sb) * 8;
        int32x4_t min_total = vdupq_n_s32(0);
        for (int q = 0; q < 4; ++q) {
          // Rows 4k..4k+3, each its mins of sub-blocks 2q and 2q + 1, against their sums.
          const int16x8_t mins =
              vreinterpretq_s16_u16(vmovl_u8(vld1_u8(rec + q4_K_mins(kQ5, h.group) + 32 * q + 8 * h.slice)));
          const int16_t pair_sums[4] = {sums[2 * q], sums[2 * q + 1], sums[2 * q], sums[2 * q + 1]};
          const int16x4_t s = vld1_s16(pair_sums);
          min_total =
              vaddq_s32(min_total, vpaddq_s32(vmull_s16(vget_low_s16(mins), s), vmull_s16(vget_high_s16(mins), s)));
        }
        const float dy = q8_K_block(a, t0 + t, sb).d;
        const float32x4_t dy_v = vdupq_n_f32(dy);
        acc[i][t] = vfmaq_f32(acc[i][t], vcvtq_f32_s32(total[i][t]), vmulq_f32(d, dy_v));
        acc[i][t] = vfmsq_f32(acc[i][t], vcvtq_f32_s32(min_total), vmulq_f32(dmin, dy_v));
      }
    }
  }
  store_tile<Q, T>(acc, y, n_out, q0, t0);
}

// q6_K: per superblock and 16-element sub-block, a group's three vectors give its four
// quarters' 6-bit quants, whose sums, less 32 * the activations' sub-block sum, take
// the sub-block's int8 scale.
template <int Q, int T>
CLUSTERD_SDOT void tile_q6_K(const uint8_t* packed, size_t pair_bytes, int64_t q0, int nsb, const PackedActivations& a,
                             int t0, float* y, int64_t n_out) {
  constexpr bool kPrefetch = T == 1 && Q == kDecodeQuarters;
  const uint8x16_t low_nibble = vdupq_n_u8(0x0f), bits45 = vdupq_n_u8(0x30);
  GroupSlice quarters[Q];
  for (int i = 0; i < Q; ++i) quarters[i] = slice_at<4>(packed, pair_bytes, q0 + i);
  float32x4_t acc[Q][T];
  zero(acc);
  for (int sb = 0; sb < nsb; ++sb) {
    const size_t record = static_cast<size_t>(sb) * kQ6KPairRecord;
    const uint8_t* yq[T];
    const int16_t* bsums[T];
    for (int t = 0; t < T; ++t) {
      yq[t] = q8_K_quants(a, t0 + t, sb);
      bsums[t] = q8_K_block(a, t0 + t, sb).bsums;
    }
    if constexpr (kPrefetch) {
      for (size_t at = 0; at < kQ6KHeader; at += 64) prefetch(quarters[0].pair + record + kQ6KPairRecord + at);
    }
    int32x4_t total[Q][T];
    zero(total);
    for (int s = 0; s < 16; ++s) {
      for (int i = 0; i < Q; ++i) {
        const GroupSlice& h = quarters[i];
        const uint8_t* v = h.pair + record + q6_K_sub_block(h.group, s);
        if (kPrefetch && h.slice == 0) {
          for (int line = 0; line < 3; ++line) prefetch(v + kQ6KPairRecord + 64 * line);
        }
        const uint8x16_t low01 = vld1q_u8(v + 16 * h.slice), low23 = vld1q_u8(v + 64 + 16 * h.slice);
        const uint8x16_t high = vld1q_u8(v + 128 + 16 * h.slice);
        const int8x16_t q[4] = {
            vreinterpretq_s8_u8(vorrq_u8(vandq_u8(low01, low_nibble), vandq_u8(vshlq_n_u8(high, 4), bits45))),
            vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(low01, 4), vandq_u8(vshlq_n_u8(high, 2), bits45))),
            vreinterpretq_s8_u8(vorrq_u8(vandq_u8(low23, low_nibble), vandq_u8(high, bits45))),
            vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(low23, 4), vandq_u8(vshrq_n_u8(high, 2), bits45)))};
        const int32x4_t scale = widen_s8(h.pair + record + q6_K_scales(h.group) + s * kPackedRows + 4 * h.slice);
        for (int t = 0; t < T; ++t) {
          const uint8_t* x = yq[t] + 16 * s;
          int32x4_t dot = vdupq_n_s32(-32 * bsums[t][s]);
          for (int k = 0; k < 4; ++k) dot = vdotq_s32(dot, q[k], broadcast4(x + 4 * k));
          total[i][t] = vmlaq_s32(total[i][t], dot, scale);
        }
      }
    }
    for (int i = 0; i < Q; ++i) {
      const GroupSlice& h = quarters[i];
      const float32x4_t d = halves4(h.pair + record + q6_K_d(h.group) + 8 * h.slice);
      for (int t = 0; t < T; ++t) {
        const float dy = q8_K_block(a, t0 + t, sb).d;
        acc[i][t] = vfmaq_f32(acc[i][t], vcvtq_f32_s32(total[i][t]), vmulq_f32(d, vdupq_n_f32(dy)));
      }
    }
  }
  store_tile<Q, T>(acc, y, n_out, q0, t0);
}

}  // namespace

void packed_product_neon(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                         const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end) {
  const size_t pair_bytes = packed_pair_bytes(type, n_in);
  const int nb = static_cast<int>(n_in / 32), nsb = static_cast<int>(n_in / 256);
  auto run = [&](auto tile) {
    for_each_pair_tile<kDecodeQuarters, kBatchQuarters, kMaxTokens>(pair_begin, pair_end, n_tokens, tile);
  };
  switch (type) {
    case TensorType::kQ8_0:
      return run([&](auto Q, auto T, int64_t q, int t0) {
        tile<false, Q(), T()>(packed, pair_bytes, q, nb, a, t0, y, n_out);
      });
    case TensorType::kQ4_0:
      return run(
          [&](auto Q, auto T, int64_t q, int t0) { tile<true, Q(), T()>(packed, pair_bytes, q, nb, a, t0, y, n_out); });
    case TensorType::kQ4_K:
      return run([&](auto Q, auto T, int64_t q, int t0) {
        tile_q4_K<false, Q(), T()>(packed, pair_bytes, q, nsb, a, t0, y, n_out);
      });
    case TensorType::kQ5_K:
      return run([&](auto Q, auto T, int64_t q, int t0) {
        tile_q4_K<true, Q(), T()>(packed, pair_bytes, q, nsb, a, t0, y, n_out);
      });
    default:  // Q6_K (packing_supported names no other type)
      return run(
          [&](auto Q, auto T, int64_t q, int t0) { tile_q6_K<Q(), T()>(packed, pair_bytes, q, nsb, a, t0, y, n_out); });
  }
}

bool packed_neon_kernels_available() {
  static const bool available = cpu_has_arm_dotprod();
  return available;
}

}  // namespace clusterd

#else  // no NEON kernels: packing_supported() is false there, and packed_product never calls this

namespace clusterd {

bool packed_neon_kernels_available() { return false; }

void packed_product_neon(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                         const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end) {
  packed_product_reference(type, packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
}

}  // namespace clusterd

#endif
