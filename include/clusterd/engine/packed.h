// Q8_0 and Q4_0 weights repacked at load time for a register-tiled product (GEMM) on
// AVX-512 VNNI CPUs.
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
// A row group (16 rows; the last one padded with zero rows) of a matrix with nb blocks
// per row is: nb block slices of quants, then nb x 16 fp16 scales (the file's `d`):
//   q8_0: block b, vector j (0-7): row r's bytes 4r..4r+3 are its quants 4j..4j+3 + 128.
//   q4_0: block b, vector j (0-3): row r's bytes are its stored qs[4j..4j+3], so the low
//         nibbles are quants 4j..4j+3 and the high nibbles quants 16+4j..16+4j+3.
// Groups are 64-byte aligned; the bytes per row are those of the file.
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

constexpr int kPackedRows = 16;  // rows per group: one int32 lane each in a 512-bit vector

// True when weights of `type` are repacked on this CPU (Q8_0 and Q4_0 where the CPU
// has AVX-512 VNNI).
bool packing_supported(TensorType type);

// Bytes of one row group of a packed matrix, and of the whole matrix.
size_t packed_group_bytes(TensorType type, int64_t n_in);
size_t packed_matrix_bytes(TensorType type, int64_t n_in, int64_t n_out);

// Writes `w` (Q8_0 or Q4_0, contiguous or strided rows) in the packed layout into `out`
// (packed_matrix_bytes, 64-byte aligned).
void pack_matrix(const WeightMatrix& w, uint8_t* out);

// Q8_0 activations of `n_tokens` tokens (block_q8_0 rows of `row_bytes`) with each
// block's scale as float and the sum of its quants, as the packed product reads them.
struct PackedActivations {
  const uint8_t* rows = nullptr;
  size_t row_bytes = 0;
  const float* d = nullptr;      // [t * nb + b]
  const int32_t* sum = nullptr;  // [t * nb + b]
  int nb = 0;                    // blocks per row
};

// Fills d and sum (n_tokens * nb each) from the rows.
void packed_activation_sums(const uint8_t* rows, size_t row_bytes, int n_tokens, int nb, float* d, int32_t* sum);

// y[t * n_out + o] for every token t and the rows o of groups [group_begin, group_end)
// (rows past n_out are not written). `packed` is the whole matrix.
void packed_product(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out, const PackedActivations& a,
                    int n_tokens, float* y, int64_t group_begin, int64_t group_end);

// The same results computed one scalar operation at a time (for tests).
void packed_product_reference(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                              const PackedActivations& a, int n_tokens, float* y, int64_t group_begin,
                              int64_t group_end);

}  // namespace clusterd
