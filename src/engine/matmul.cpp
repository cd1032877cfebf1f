#include "clusterd/engine/matmul.h"

#include <algorithm>
#include <cstdlib>

#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/kernels_neon.h"
#include "clusterd/engine/kernels_x4.h"
#include "clusterd/engine/packed.h"
#include "clusterd/engine/quant.h"
#include "clusterd/engine/quantize_avx2.h"
#include "clusterd/engine/quantize_avx512.h"

namespace clusterd {

WeightMatrix WeightMatrix::rows(int64_t first, int64_t count) const {
  WeightMatrix m = *this;
  m.data = data + first * row_stride;
  m.n_out = count;
  m.packed = nullptr;
  return m;
}

WeightMatrix WeightMatrix::columns(int64_t first, int64_t count) const {
  WeightMatrix m = *this;
  m.data = data + tensor_row_bytes(type, first);
  m.n_in = count;
  m.packed = nullptr;
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

namespace {

using DotFn = float (*)(int n, const void* weights, const void* activations);
using QuantizeFn = void (*)(const float* in, void* blocks, int64_t n);
// One weight row with four activation rows (kernels_x4.h); out[t] equals the DotFn
// of the same table for activations[t], bit for bit.
using DotX4Fn = void (*)(int n, const void* weights, const void* const activations[4], float out[4]);
// F16/BF16 rows by float activation rows, in tiles of rows by tokens (the rows
// kernels of kernels_avx512.h, quant.h and kernels_neon.h).
using HalfRowsFn = void (*)(const uint16_t* w, size_t w_stride, int rows, const float* x, size_t x_stride, int tokens,
                            int n, float* y, size_t y_stride);

// Adapts a typed kernel to the untyped table entry.
template <typename W, typename A, float (*F)(int, const W*, const A*)>
float call(int n, const void* w, const void* a) {
  return F(n, static_cast<const W*>(w), static_cast<const A*>(a));
}

// Adapts a rows kernel that takes the weight type to one table entry per type.
template <TensorType kType,
          void (*F)(TensorType, const uint16_t*, size_t, int, const float*, size_t, int, int, float*, size_t)>
void call_rows(const uint16_t* w, size_t w_stride, int rows, const float* x, size_t x_stride, int tokens, int n,
               float* y, size_t y_stride) {
  F(kType, w, w_stride, rows, x, x_stride, tokens, n, y, y_stride);
}

template <typename W, typename A, void (*F)(int, const W*, const A* const[4], float[4])>
void call_x4(int n, const void* w, const void* const a[4], float out[4]) {
  const A* const typed[4] = {static_cast<const A*>(a[0]), static_cast<const A*>(a[1]), static_cast<const A*>(a[2]),
                             static_cast<const A*>(a[3])};
  F(n, static_cast<const W*>(w), typed, out);
}

// The best kernel per weight type for this CPU, chosen once: NEON on AArch64; on x86
// AVX-512 VNNI, then AVX2 (with FMA/F16C), then the scalar references.
struct DotTable {
  DotFn f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K;
  // Four-token kernels matching the one-row kernels above; null where there is none.
  DotX4Fn q8_0_x4 = nullptr, q4_0_x4 = nullptr, q4_K_x4 = nullptr, q6_K_x4 = nullptr;
  // Tiled F16/BF16 products; null where there is none (their results may differ from
  // the one-row kernels above by float rounding, but not between tiles).
  HalfRowsFn f16_rows = nullptr, bf16_rows = nullptr;
  // Activation quantizers; the SIMD ones write the same bytes as the references.
  QuantizeFn quantize_q8_0 = quantize_row_q8_0, quantize_q8_K = quantize_row_q8_K;
  DotTable() {
    f32 = call<float, float, vec_dot_f32>;
    f16 = call<uint16_t, float, vec_dot_f16_f32>;
    bf16 = call<uint16_t, float, vec_dot_bf16_f32>;
    q8_0 = call<block_q8_0, block_q8_0, vec_dot_q8_0_q8_0>;
    q4_0 = call<block_q4_0, block_q8_0, vec_dot_q4_0_q8_0>;
    q4_K = call<block_q4_K, block_q8_K, vec_dot_q4_K_q8_K>;
    q5_K = call<block_q5_K, block_q8_K, vec_dot_q5_K_q8_K>;
    q6_K = call<block_q6_K, block_q8_K, vec_dot_q6_K_q8_K>;
#if defined(CLUSTERD_HAVE_NEON_KERNELS)  // every AArch64 CPU has NEON
    f16 = call<uint16_t, float, vec_dot_f16_f32_neon>;
    q8_0 = call<block_q8_0, block_q8_0, vec_dot_q8_0_q8_0_neon>;
    q4_0 = call<block_q4_0, block_q8_0, vec_dot_q4_0_q8_0_neon>;
    q4_K = call<block_q4_K, block_q8_K, vec_dot_q4_K_q8_K_neon>;
    q5_K = call<block_q5_K, block_q8_K, vec_dot_q5_K_q8_K_neon>;
    q6_K = call<block_q6_K, block_q8_K, vec_dot_q6_K_q8_K_neon>;
    f16_rows = dot_f16_rows_neon;
#endif
    if (cpu_has_avx2()) {
      f32 = call<float, float, vec_dot_f32_avx2>;
      f16 = call<uint16_t, float, vec_dot_f16_f32_avx2>;
      bf16 = call<uint16_t, float, vec_dot_bf16_f32_avx2>;
      q8_0 = call<block_q8_0, block_q8_0, vec_dot_q8_0_q8_0_avx2>;
      q4_0 = call<block_q4_0, block_q8_0, vec_dot_q4_0_q8_0_avx2>;
      q4_K = call<block_q4_K, block_q8_K, vec_dot_q4_K_q8_K_avx2>;
      q5_K = call<block_q5_K, block_q8_K, vec_dot_q5_K_q8_K_avx2>;
      q6_K = call<block_q6_K, block_q8_K, vec_dot_q6_K_q8_K_avx2>;
      q8_0_x4 = call_x4<block_q8_0, block_q8_0, vec_dot_q8_0_q8_0_x4_avx2>;
      q4_0_x4 = call_x4<block_q4_0, block_q8_0, vec_dot_q4_0_q8_0_x4_avx2>;
      q4_K_x4 = call_x4<block_q4_K, block_q8_K, vec_dot_q4_K_q8_K_x4_avx2>;
      q6_K_x4 = call_x4<block_q6_K, block_q8_K, vec_dot_q6_K_q8_K_x4_avx2>;
      f16_rows = call_rows<TensorType::kF16, dot_half_rows_avx2>;
      bf16_rows = call_rows<TensorType::kBF16, dot_half_rows_avx2>;
      quantize_q8_0 = quantize_row_q8_0_avx2;
      quantize_q8_K = quantize_row_q8_K_avx2;
    }
    if (cpu_has_avx512_vnni()) {
      q8_0 = call<block_q8_0, block_q8_0, vec_dot_q8_0_q8_0_avx512>;
      q4_0 = call<block_q4_0, block_q8_0, vec_dot_q4_0_q8_0_avx512>;
      q4_K = call<block_q4_K, block_q8_K, vec_dot_q4_K_q8_K_avx512>;
      q5_K = call<block_q5_K, block_q8_K, vec_dot_q5_K_q8_K_avx512>;
      q6_K = call<block_q6_K, block_q8_K, vec_dot_q6_K_q8_K_avx512>;
      q8_0_x4 = call_x4<block_q8_0, block_q8_0, vec_dot_q8_0_q8_0_x4_avx512>;
      q4_0_x4 = call_x4<block_q4_0, block_q8_0, vec_dot_q4_0_q8_0_x4_avx512>;
      q4_K_x4 = call_x4<block_q4_K, block_q8_K, vec_dot_q4_K_q8_K_x4_avx512>;
      q6_K_x4 = call_x4<block_q6_K, block_q8_K, vec_dot_q6_K_q8_K_x4_avx512>;
      f16_rows = call_rows<TensorType::kF16, dot_half_rows_avx512>;
      bf16_rows = call_rows<TensorType::kBF16, dot_half_rows_avx512>;
      quantize_q8_0 = quantize_row_q8_0_avx512;
      quantize_q8_K = quantize_row_q8_K_avx512;
    }
    if (cpu_has_avx512_vbmi()) q4_0 = call<block_q4_0, block_q8_0, vec_dot_q4_0_q8_0_avx512_vbmi>;
  }

  DotX4Fn x4_for(TensorType type) const {
    switch (type) {
      case TensorType::kQ8_0: return q8_0_x4;
      case TensorType::kQ4_0: return q4_0_x4;
      case TensorType::kQ4_K: return q4_K_x4;
      case TensorType::kQ6_K: return q6_K_x4;
      default: return nullptr;
    }
  }
  HalfRowsFn rows_for(TensorType type) const {
    return type == TensorType::kF16 ? f16_rows : type == TensorType::kBF16 ? bf16_rows : nullptr;
  }
};

const DotTable& dot_table() {
  static const DotTable table;  // immutable once built: the CPU does not change
  return table;
}

// Rows per tile of the x4 path: a tile's weight rows stay in L2 while every group of
// four tokens passes over them, and a group's activations stay in L1 across the tile.
constexpr int64_t kRowTile = 16;

}  // namespace

float dot_row(TensorType type, const void* w, const void* a, int64_t n) {
  const DotTable& table = dot_table();
  const int k = static_cast<int>(n);
  switch (type) {
    case TensorType::kF32: return table.f32(k, w, a);
    case TensorType::kF16: return table.f16(k, w, a);
    case TensorType::kBF16: return table.bf16(k, w, a);
    case TensorType::kQ8_0: return table.q8_0(k, w, a);
    case TensorType::kQ4_0: return table.q4_0(k, w, a);
    case TensorType::kQ4_K: return table.q4_K(k, w, a);
    case TensorType::kQ5_K: return table.q5_K(k, w, a);
    case TensorType::kQ6_K: return table.q6_K(k, w, a);
    default: std::abort();  // the loader refuses other types
  }
}

namespace {

// Quantizes every token's activations to `act` into `out` (rows of act_row_bytes).
void quantize_activations(TensorType act, const float* x, int64_t n_in, int n_tokens, std::vector<uint8_t>& out,
                          size_t act_row_bytes) {
  out.resize(act_row_bytes * n_tokens);
  const DotTable& table = dot_table();
  for (int t = 0; t < n_tokens; ++t) {
    const float* in = x + static_cast<size_t>(t) * n_in;
    uint8_t* row = out.data() + t * act_row_bytes;
    if (act == TensorType::kQ8_0) {
      table.quantize_q8_0(in, row, n_in);
    } else if (act == TensorType::kQ8_K) {
      table.quantize_q8_K(in, row, n_in);
    } else {
      (void)quantize_row(act, in, row, n_in);
    }
  }
}

// Output rows [begin, end) of y = W·x for every token: F16/BF16 through the table's
// tiles where it has them; otherwise with more than four tokens in groups of four
// through the x4 kernel (each weight block unpacked once per group, rows in tiles that
// stay in L2), the rest one token at a time.
void product_rows(const WeightMatrix& w, const uint8_t* a, size_t act_row_bytes, int n_tokens, float* y, int64_t begin,
                  int64_t end) {
  // F16 and BF16: tiles of rows by tokens where the CPU has them.
  if (const HalfRowsFn rows = dot_table().rows_for(w.type); rows && w.row_stride % 2 == 0) {
    rows(reinterpret_cast<const uint16_t*>(w.data + begin * w.row_stride), w.row_stride / 2,
         static_cast<int>(end - begin), reinterpret_cast<const float*>(a), act_row_bytes / sizeof(float), n_tokens,
         static_cast<int>(w.n_in), y + begin, static_cast<size_t>(w.n_out));
    return;
  }
  const DotX4Fn x4 = n_tokens >= 4 ? dot_table().x4_for(w.type) : nullptr;
  const int n_groups = x4 ? n_tokens / 4 : 0;
  const int k = static_cast<int>(w.n_in);
  for (int64_t tile = begin; tile < end; tile += kRowTile) {
    const int64_t tile_end = std::min(end, tile + kRowTile);
    for (int g = 0; g < n_groups; ++g) {
      const void* const group[4] = {a + (4 * g) * act_row_bytes, a + (4 * g + 1) * act_row_bytes,
                                    a + (4 * g + 2) * act_row_bytes, a + (4 * g + 3) * act_row_bytes};
      for (int64_t o = tile; o < tile_end; ++o) {
        float out[4];
        x4(k, w.data + o * w.row_stride, group, out);
        for (int t = 0; t < 4; ++t) y[static_cast<size_t>(4 * g + t) * w.n_out + o] = out[t];
      }
    }
    for (int64_t o = tile; o < tile_end; ++o) {
      const uint8_t* row = w.data + o * w.row_stride;
      for (int t = 4 * n_groups; t < n_tokens; ++t) {
        y[static_cast<size_t>(t) * w.n_out + o] = dot_row(w.type, row, a + t * act_row_bytes, w.n_in);
      }
    }
  }
}

}  // namespace

void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, ThreadPool& pool, MatmulScratch& scratch) {
  const MatmulOutput one[] = {{&w, y}};
  matmul(one, x, n_tokens, pool, scratch);
}

void matmul(std::span<const MatmulOutput> outputs, const float* x, int n_tokens, ThreadPool& pool,
            MatmulScratch& scratch) {
  if (outputs.empty()) return;
  const int64_t n_in = outputs[0].w->n_in;
  // Activations once per activation type (float weights read x itself).
  struct Input {
    TensorType type;
    const uint8_t* data;
    size_t row_bytes;
  };
  Input inputs[3];  // at most F32, Q8_0 and Q8_K
  int n_inputs = 0;
  std::vector<const Input*> input_of(outputs.size());
  std::vector<int64_t> first_row(outputs.size() + 1, 0);
  for (size_t i = 0; i < outputs.size(); ++i) {
    const TensorType act = activation_type_for(outputs[i].w->type);
    int found = -1;
    for (int j = 0; j < n_inputs; ++j) {
      if (inputs[j].type == act) found = j;
    }
    if (found < 0) {
      found = n_inputs++;
      if (act == TensorType::kF32) {
        inputs[found] = {act, reinterpret_cast<const uint8_t*>(x), static_cast<size_t>(n_in) * sizeof(float)};
      } else {
        std::vector<uint8_t>& buffer = act == TensorType::kQ8_K ? scratch.quantized_k : scratch.quantized;
        const size_t row_bytes = tensor_row_bytes(act, n_in);
        quantize_activations(act, x, n_in, n_tokens, buffer, row_bytes);
        inputs[found] = {act, buffer.data(), row_bytes};
      }
    }
    input_of[i] = &inputs[found];
  }
  // Packed products read per activation block its scale and quant sum (Q8_0), or the
  // sums of its 32-element sub-blocks (Q8_K), once per call.
  PackedActivations packed_q8_0, packed_q8_K;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (!outputs[i].w->packed) continue;
    const Input& in = *input_of[i];
    if (in.type == TensorType::kQ8_0 && !packed_q8_0.rows) {
      const int nb = static_cast<int>(n_in / 32);
      scratch.block_scales.resize(static_cast<size_t>(n_tokens) * nb);
      scratch.block_sums.resize(static_cast<size_t>(n_tokens) * nb);
      packed_activation_sums(in.data, in.row_bytes, n_tokens, nb, scratch.block_scales.data(),
                             scratch.block_sums.data());
      packed_q8_0 = {in.data, in.row_bytes, scratch.block_scales.data(), scratch.block_sums.data(), nb, nullptr};
    } else if (in.type == TensorType::kQ8_K && !packed_q8_K.rows) {
      const int nsb = static_cast<int>(n_in / 256);
      scratch.subblock_sums.resize(static_cast<size_t>(n_tokens) * nsb * 8);
      packed_activation_sums_k(in.data, in.row_bytes, n_tokens, nsb, scratch.subblock_sums.data());
      packed_q8_K = {in.data, in.row_bytes, nullptr, nullptr, 0, scratch.subblock_sums.data()};
    }
  }
  // One split over the rows of every output: each thread takes a range of rows (which
  // may cross from one matrix into the next) and runs every token through them. Each
  // matrix's range is rounded up to whole pairs of row groups, so that a packed matrix
  // splits on pair boundaries.
  for (size_t i = 0; i < outputs.size(); ++i) {
    first_row[i + 1] = first_row[i] + packed_pairs(outputs[i].w->n_out) * kPackedPairRows;
  }
  pool.parallel_for(first_row.back(), kPackedPairRows, [&](int, int64_t begin, int64_t end) {
    for (size_t i = 0; i < outputs.size(); ++i) {
      const WeightMatrix& w = *outputs[i].w;
      const int64_t lo = std::max(begin, first_row[i]) - first_row[i];
      const int64_t hi = std::min(end, first_row[i + 1]) - first_row[i];
      if (lo >= hi) continue;
      if (w.packed) {
        const PackedActivations& acts = input_of[i]->type == TensorType::kQ8_K ? packed_q8_K : packed_q8_0;
        packed_product(w.type, w.packed, w.n_in, w.n_out, acts, n_tokens, outputs[i].y, lo / kPackedPairRows,
                       hi / kPackedPairRows);
      } else {
        product_rows(w, input_of[i]->data, input_of[i]->row_bytes, n_tokens, outputs[i].y, lo, std::min(hi, w.n_out));
      }
    }
  });
}

}  // namespace clusterd
