// Byte offsets of the packed layout (described in include/clusterd/engine/packed.h),
// shared by the packer and scalar reference (packed.cpp) and the kernels
// (packed_avx512.cpp, packed_avx2.cpp and its AVX-VNNI build, packed_neon.cpp), and how the kernels find
// their activations and slices. `g` is a group's place in its pair (0 or 1).
#pragma once

#include <cstddef>
#include <cstdint>

#include "clusterd/engine/packed.h"
#include "clusterd/engine/quant.h"

namespace clusterd::packed_layout {

// q8_0 / q4_0: per 32-element block of a pair, group 0's quants, group 1's, then
// both groups' 16 fp16 scales.
constexpr size_t block_quant_bytes(bool q4) { return q4 ? 256 : 512; }
constexpr size_t pair_block_bytes(bool q4) { return 2 * block_quant_bytes(q4) + 64; }
constexpr size_t block_quants(bool q4, int g) { return g * block_quant_bytes(q4); }
constexpr size_t block_scales(bool q4, int g) { return 2 * block_quant_bytes(q4) + 32 * g; }

// q4_K / q5_K: per superblock of a pair, four 64-element chunks, each its scales line
// (both groups' scales of sub-blocks 2c and 2c + 1), q5_K's two fifth-bit vectors per
// group, then vector p of group 0 and of group 1 in turn; then a tail of both groups'
// mins, d and dmin.
constexpr size_t q4_K_pair_record(bool q5) { return q5 ? 5760 : 4736; }
constexpr size_t q4_K_chunk_bytes(bool q5) { return q5 ? 1344 : 1088; }
constexpr size_t q4_K_chunk(bool q5, int c) { return c * q4_K_chunk_bytes(q5); }
constexpr size_t q4_K_scales(bool q5, int g, int c) { return q4_K_chunk(q5, c) + g * 32; }
constexpr size_t q5_K_fifth_bits(int g, int c, int half) { return q4_K_chunk(true, c) + 64 + g * 128 + half * 64; }
constexpr size_t q4_K_quants(bool q5, int g, int c, int p) {
  return q4_K_chunk(q5, c) + (q5 ? 320 : 64) + p * 128 + g * 64;
}
constexpr size_t q4_K_tail(bool q5) { return q4_K_chunk(q5, 4); }
constexpr size_t kQ4KTailBytes = 384;
constexpr size_t q4_K_mins(bool q5, int g) { return q4_K_tail(q5) + g * 128; }
constexpr size_t q4_K_d(bool q5, int g) { return q4_K_tail(q5) + 256 + g * 32; }
constexpr size_t q4_K_dmin(bool q5, int g) { return q4_K_tail(q5) + 320 + g * 32; }
static_assert(q4_K_chunk_bytes(false) % 64 == 0 && q4_K_chunk_bytes(true) % 64 == 0);  // lines
static_assert(q4_K_tail(false) + kQ4KTailBytes == q4_K_pair_record(false));
static_assert(q4_K_tail(true) + kQ4KTailBytes == q4_K_pair_record(true));

// q6_K: per superblock of a pair, both groups' int8 scales, both groups' fp16 d, then
// per 16-element sub-block group 0's three vectors and group 1's.
constexpr size_t kQ6KHeader = 576;  // scales and d of both groups
constexpr size_t kQ6KPairRecord = 6720;
constexpr size_t q6_K_scales(int g) { return g * 256; }
constexpr size_t q6_K_d(int g) { return 512 + g * 32; }
constexpr size_t q6_K_sub_block(int g, int s) { return kQ6KHeader + (2 * s + g) * 192; }

// Token t's activations as the kernels read them: the quants of its Q8_0 block b (for
// q8_0 and q4_0 weights), or its Q8_K superblock sb (for the K-quants).
inline const uint8_t* q8_0_quants(const PackedActivations& a, int t, int b) {
  return reinterpret_cast<const uint8_t*>(reinterpret_cast<const block_q8_0*>(a.rows + t * a.row_bytes)[b].qs);
}
inline const block_q8_K& q8_K_block(const PackedActivations& a, int t, int sb) {
  return reinterpret_cast<const block_q8_K*>(a.rows + t * a.row_bytes)[sb];
}
inline const uint8_t* q8_K_quants(const PackedActivations& a, int t, int sb) {
  return reinterpret_cast<const uint8_t*>(q8_K_block(a, t, sb).qs);
}

// Kernels whose vectors are narrower than 64 bytes read a group's vectors in kSlices
// slices of 16 / kSlices rows (AVX2: 2 halves, NEON: 4 quarters). Slice u of the
// matrix: its pair, its group in the pair, and its place among the group's slices.
struct GroupSlice {
  const uint8_t* pair;
  int group;
  int slice;
};
template <int kSlices>
inline GroupSlice slice_at(const uint8_t* packed, size_t pair_bytes, int64_t u) {
  const int64_t g = u / kSlices;
  return {packed + g / 2 * pair_bytes, static_cast<int>(g % 2), static_cast<int>(u % kSlices)};
}

}  // namespace clusterd::packed_layout
