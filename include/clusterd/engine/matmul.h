// Matrix products of a weight matrix (any supported tensor type) with f32 activations.
// Weights follow ggml's layout: row o (an output) holds n_in contiguous elements.
// Activations are quantized to 8 bits where the weight type calls for it (Q8_0 for
// Q4_0/Q8_0, Q8_K for the K-quants) and the products use integer dot products.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "clusterd/engine/thread_pool.h"
#include "clusterd/model/tensor_type.h"

namespace clusterd {

// A view of a 2-D weight, possibly a slice: rows [row0, row0 + n_out) and columns
// [col0, col0 + n_in) of a larger matrix, with `row_stride` bytes between rows.
struct WeightMatrix {
  TensorType type = TensorType::kF32;
  int64_t n_in = 0;               // elements per row used (ne[0] of the slice)
  int64_t n_out = 0;              // rows (ne[1] of the slice)
  const uint8_t* data = nullptr;  // first element of the first row
  size_t row_stride = 0;          // bytes from one row to the next
  // The same rows in the packed layout (packed.h), or null. Set by load_weights where
  // packing_supported(type); views taken with rows() or columns() are not packed.
  const uint8_t* packed = nullptr;

  // The sub-matrix of rows [first, first + count).
  WeightMatrix rows(int64_t first, int64_t count) const;
  // The sub-matrix of columns [first, first + count); `first` and `count` must be
  // multiples of the type's block size.
  WeightMatrix columns(int64_t first, int64_t count) const;
};

// Scratch memory reused between calls, so the hot path does not allocate.
struct MatmulScratch {
  std::vector<uint8_t> quantized;      // activations in Q8_0 (for Q4_0 and Q8_0 weights)
  std::vector<uint8_t> quantized_k;    // activations in Q8_K (for the K-quants)
  std::vector<float> block_scales;     // per Q8_0 activation block: d as float (packed products)
  std::vector<int32_t> block_sums;     // and the sum of its quants
  std::vector<int16_t> subblock_sums;  // per Q8_K sub-block of 32: the sum of its quants
};

// y[t * n_out + o] = sum_i W[o, i] * x[t * n_in + i], for t in [0, n_tokens).
void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, ThreadPool& pool, MatmulScratch& scratch);

// Several products of the same input (q, k and v; gate and up) as one: the input is
// quantized once per activation type and the threads split the rows of all of them,
// so they meet once instead of once per matrix. Same results, bit for bit.
struct MatmulOutput {
  const WeightMatrix* w;  // all with the same n_in
  float* y;
};
void matmul(std::span<const MatmulOutput> outputs, const float* x, int n_tokens, ThreadPool& pool,
            MatmulScratch& scratch);

// The type activations are quantized to for a weight type (F32 for float weights).
TensorType activation_type_for(TensorType weight);

// Dot product of one weight row (in its type) with activations already converted to
// activation_type_for(type). Dispatches to the best kernel this CPU has.
float dot_row(TensorType type, const void* weight_row, const void* activations, int64_t n);

}  // namespace clusterd
