// Q8_0, Q4_0, Q4_K, Q5_K and Q6_K weights repacked at load time for a register-tiled product
// (GEMM) on AVX-512 VNNI, AVX2 and AArch64 (SDOT) CPUs.
//
// The file layout (ggml's) stores one row's blocks one after another, so a product
// reads one row at a time and spends most of its instructions on per-row work: making
// the weight side unsigned, spreading scales, reducing lanes. The packed layout puts 16
// rows side by side instead, in the order VPDPBUSD consumes them: one 64-byte vector
// holds four consecutive quants of each of the 16 rows, so one instruction adds four
// products into each row's int32 lane, with the activations' four bytes broadcast.
// The weight quants are stored unsigned (q8_0 as q + 128, q4_0 as its stored nibble
// q = w + 8), and the offset comes back as -offset * sum(y) per activation block, which
// seeds the block's integer sum.
//
// Row groups (16 rows; the last ones padded with zero rows) go by pairs, and a pair's
// two groups are interleaved block by block, scales next to their quants: a product
// over a pair then reads one sequential stream. (On the 2-core Zen 5 machine, one
// stream of Q4_0 read at 36-37 GB/s against 29-30 for the same work over four
// streams: with 5-7 vector operations per 64 bytes, the core cannot keep as many
// lines in flight across several streams as its hardware prefetcher needs.) A matrix
// with nb blocks per row is, per pair and block b:
//   q8_0: 512 bytes of group 0's quants, 512 of group 1's, then 16 fp16 scales (the
//         file's `d`) of each: vector j (0-7) of a group's quants holds, at bytes
//         4r..4r+3, row r's quants 4j..4j+3 + 128;
//   q4_0: the same with 256 bytes of quants per group: vector j (0-3) holds row r's
//         stored qs[4j..4j+3], so the low nibbles are quants 4j..4j+3 and the high
//         nibbles quants 16+4j..16+4j+3.
// Pairs are 64-byte aligned; a product is given a range of whole pairs.
//
// q4_K (activations Q8_K) goes by 256-element superblocks, one 4,736-byte record per
// pair and superblock (what the file holds for 32 rows, plus the mins' bytes), in the
// order the kernels read it: four chunks of 64 elements, then a tail.
//   chunk c  1,088 bytes: a scales line, group 0's 32 bytes then group 1's, each the
//            6-bit scales of sub-blocks 2c and 2c + 1, [sub-block][row], one byte
//            each; then the quants, one vector of each group in turn (one stream):
//            for vector p (0-7), group 0's vector then group 1's, where row r's bytes
//            are its qs[32c + 4p .. +3]: low nibbles are quants 64c + 4p.. of
//            sub-block 2c, high nibbles the same offsets of sub-block 2c + 1;
//   tail     384 bytes: the mins, 128 bytes per group, [sub-block pair][row][2]: the
//            6-bit mins, widened to int16 pairs when read, for VPDPWSSD against the
//            activations' pair of sub-block sums; then both groups' d, then both
//            groups' dmin, 32 bytes (16 fp16) per group each.
// (Against each group's quants in one block, 2,368 bytes apart, 2-thread decode went
// from 74-80% of the bandwidth bound to 82-86%. With all scales, mins, d and dmin in a
// 640-byte header before the chunks, one core's decode kernel streamed at 91-92% of a
// plain read, against 96-98% with each chunk's scales at its head.)
//
// q5_K is laid out as q4_K with, after each chunk's scales line, two 64-byte vectors of
// fifth bits per group (group 0's, then group 1's; 1,344-byte chunks, a 5,760-byte
// record per pair): byte 4r + i of vector h (0: low nibbles, 1: high ones) holds at bit
// p the fifth bit of the quant in byte 4r + i of the chunk's vector p. Its quants are
// 0-31 (no x16).
// Per superblock the integer sums sum_s sc_s * (q . y)_s and sum_s m_s * sum(y)_s are
// exact, then acc = fma(total, d * d_y, acc) and acc = fma(-mins, dmin * d_y, acc).
//
// q6_K (activations Q8_K) also goes by superblocks, one 6,720-byte record per pair
// (what the file holds for 32 rows):
//   scales  256 bytes per group (group 0's, then group 1's), [sub-block][row]: int8;
//   d       32 bytes per group: 16 fp16;
//   quants  per 16-element sub-block s, group 0's 192 bytes then group 1's (one
//           stream): three vectors, row r at bytes 4r..4r+3 of each. Quarter k (0-3)
//           of the sub-block is elements 16s + 4k..+3: their low 4 bits are the low
//           (k = 0, 2) or high (k = 1, 3) nibbles of vector k / 2, their high 2 bits
//           bits 2k..2k+1 of vector 2.
// Per superblock sum_s sc_s * ((q . y)_s - 32 * sum(y)_s) is exact, then
// acc = fma(total, d * d_y, acc).
//
// Every (row, token) result is computed by the same operations in the same order
// whatever the tile it falls in: per block an exact int32 sum, converted to float and
// added as fma(sum, d_w * d_y, acc) in block order. So a sequence's logits do not
// depend on which other sequences share its batch, and the scalar reference below
// gives the SIMD kernel's results bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "clusterd/model/tensor_type.h"

namespace clusterd {

struct WeightMatrix;

constexpr int kPackedRows = 16;                   // rows per group: one int32 lane each in a 512-bit vector
constexpr int kPackedPairRows = 2 * kPackedRows;  // rows per pair of groups, the unit a product range is given in

// Pairs of a packed matrix of n_out rows.
inline int64_t packed_pairs(int64_t n_out) { return (n_out + kPackedPairRows - 1) / kPackedPairRows; }

// True when weights of `type` are repacked on this CPU: Q8_0, Q4_0, Q4_K, Q5_K and Q6_K
// where the CPU has AVX-512 VNNI or AVX2 (cpu_has_* in quant.h and kernels_avx512.h,
// which CLUSTERD_MAX_ISA caps), or the NEON kernels and SDOT.
bool packing_supported(TensorType type);
// True on AArch64 when this build has the NEON packed kernels and the CPU has SDOT
// (cpu_has_arm_dotprod), which they use. They are built for SDOT whatever the build
// targets (GCC, clang 16 or later, or a build that targets SDOT already).
bool packed_neon_kernels_available();

// Bytes of one pair of row groups of a packed matrix, and of the whole matrix.
size_t packed_pair_bytes(TensorType type, int64_t n_in);
size_t packed_matrix_bytes(TensorType type, int64_t n_in, int64_t n_out);

// Writes `w` (a type packing_supported names, contiguous or strided rows) in the packed layout into
// `out` (packed_matrix_bytes, 64-byte aligned).
void pack_matrix(const WeightMatrix& w, uint8_t* out);

// Activations of `n_tokens` tokens as the packed product reads them: Q8_0 rows
// (block_q8_0, for Q8_0 and Q4_0 weights) with each block's scale as float and the sum
// of its quants; or Q8_K rows (block_q8_K, for K-quant weights) with the sum of
// each 32-element sub-block (q6_K reads the rows' own 16-element sums instead).
struct PackedActivations {
  const uint8_t* rows = nullptr;
  size_t row_bytes = 0;
  const float* d = nullptr;         // Q8_0: [t * nb + b]
  const int32_t* sum = nullptr;     // Q8_0: [t * nb + b]
  int nb = 0;                       // Q8_0: blocks per row
  const int16_t* sums32 = nullptr;  // Q8_K: [(t * nsb + superblock) * 8 + sub-block]
};

// Fills d and sum (n_tokens * nb each) from Q8_0 rows.
void packed_activation_sums(const uint8_t* rows, size_t row_bytes, int n_tokens, int nb, float* d, int32_t* sum);
// Fills sums32 (n_tokens * nsb * 8) from Q8_K rows of nsb superblocks.
void packed_activation_sums_k(const uint8_t* rows, size_t row_bytes, int n_tokens, int nsb, int16_t* sums32);

// y[t * n_out + o] for every token t and the rows o of pairs [pair_begin, pair_end)
// (rows past n_out are not written). `packed` is the whole matrix. Runs the widest
// kernels the CPU has.
void packed_product(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out, const PackedActivations& a,
                    int n_tokens, float* y, int64_t pair_begin, int64_t pair_end);

// The same through one family of kernels (src/engine/packed_avx512.cpp, packed_avx2.cpp,
// packed_avx_vnni.cpp and packed_neon.cpp); the caller checks that the CPU has it (for NEON,
// packed_neon_kernels_available()) and that packing_supported names the type. Each gives
// the reference's results bit for bit.
void packed_product_avx512(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                           const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end);
void packed_product_avx2(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                         const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end);
void packed_product_avx_vnni(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                             const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end);
void packed_product_neon(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                         const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end);

// The same results computed one scalar operation at a time (for tests).
void packed_product_reference(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                              const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin, int64_t pair_end);

}  // namespace clusterd
