#include "clusterd/engine/matmul.h"

#include <cstdlib>

#include "clusterd/engine/quant.h"

namespace clusterd {

WeightMatrix WeightMatrix::rows(int64_t first, int64_t count) const {
  WeightMatrix m = *this;
  m.data = data + first * row_stride;
  m.n_out = count;
  return m;
}

WeightMatrix WeightMatrix::columns(int64_t first, int64_t count) const {
  WeightMatrix m = *this;
  m.data = data + tensor_row_bytes(type, first);
  m.n_in = count;
  return m;
}

TensorType activation_type_for(TensorType weight) {
  switch (weight) {
    case TensorType::kQ4_0:
    case TensorType::kQ8_0: return TensorType::kQ8_0;
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
    case TensorType::kQ6_K: return TensorType::kQ8_K;
    default: return TensorType::kF32;
  }
}

float dot_row(TensorType type, const void* w, const void* a, int64_t n) {
  static const bool avx2 = cpu_has_avx2();  // constant for the process
  const int k = static_cast<int>(n);
  switch (type) {
    case TensorType::kF32: return vec_dot_f32(k, static_cast<const float*>(w), static_cast<const float*>(a));
    case TensorType::kF16: return vec_dot_f16_f32(k, static_cast<const uint16_t*>(w), static_cast<const float*>(a));
    case TensorType::kBF16: return vec_dot_bf16_f32(k, static_cast<const uint16_t*>(w), static_cast<const float*>(a));
    case TensorType::kQ8_0: {
      auto x = static_cast<const block_q8_0*>(w);
      auto y = static_cast<const block_q8_0*>(a);
      return avx2 ? vec_dot_q8_0_q8_0_avx2(k, x, y) : vec_dot_q8_0_q8_0(k, x, y);
    }
    case TensorType::kQ4_0: {
      auto x = static_cast<const block_q4_0*>(w);
      auto y = static_cast<const block_q8_0*>(a);
      return avx2 ? vec_dot_q4_0_q8_0_avx2(k, x, y) : vec_dot_q4_0_q8_0(k, x, y);
    }
    case TensorType::kQ4_K: {
      auto x = static_cast<const block_q4_K*>(w);
      auto y = static_cast<const block_q8_K*>(a);
      return avx2 ? vec_dot_q4_K_q8_K_avx2(k, x, y) : vec_dot_q4_K_q8_K(k, x, y);
    }
    case TensorType::kQ5_K:
      return vec_dot_q5_K_q8_K(k, static_cast<const block_q5_K*>(w), static_cast<const block_q8_K*>(a));
    case TensorType::kQ6_K: {
      auto x = static_cast<const block_q6_K*>(w);
      auto y = static_cast<const block_q8_K*>(a);
      return avx2 ? vec_dot_q6_K_q8_K_avx2(k, x, y) : vec_dot_q6_K_q8_K(k, x, y);
    }
    default:
      std::abort();  // the loader refuses other types
  }
}

void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, ThreadPool& pool, MatmulScratch& scratch) {
  const TensorType act = activation_type_for(w.type);
  const void* activations = x;
  size_t act_row_bytes = static_cast<size_t>(w.n_in) * sizeof(float);
  if (act != TensorType::kF32) {
    act_row_bytes = tensor_row_bytes(act, w.n_in);
    scratch.quantized.resize(act_row_bytes * n_tokens);
    for (int t = 0; t < n_tokens; ++t) {
      (void)quantize_row(act, x + static_cast<size_t>(t) * w.n_in, scratch.quantized.data() + t * act_row_bytes, w.n_in);
    }
    activations = scratch.quantized.data();
  }
  const auto* a = static_cast<const uint8_t*>(activations);
  // Each thread takes a range of output rows and runs every token through them, so a
  // weight row is read from memory once per call.
  pool.parallel_for(w.n_out, 16, [&](int, int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const uint8_t* row = w.data + o * w.row_stride;
      for (int t = 0; t < n_tokens; ++t) {
        y[static_cast<size_t>(t) * w.n_out + o] = dot_row(w.type, row, a + t * act_row_bytes, w.n_in);
      }
    }
  });
}

}  // namespace clusterd
