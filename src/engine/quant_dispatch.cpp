// Row conversion by tensor type: the one switch from a GGUF type id to the per-type code.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "clusterd/engine/quant.h"

namespace clusterd {
namespace {

// The block geometry this file relies on, independent of model/'s traits table.
static_assert(sizeof(float) == 4);
static_assert(sizeof(block_q4_0) == 2 + kQK4_0 / 2);
static_assert(sizeof(block_q8_0) == 2 + kQK8_0);
static_assert(sizeof(block_q4_K) == 4 + kKScaleSize + kQK_K / 2);
static_assert(sizeof(block_q5_K) == 4 + kKScaleSize + kQK_K / 8 + kQK_K / 2);
static_assert(sizeof(block_q6_K) == kQK_K / 2 + kQK_K / 4 + kQK_K / 16 + 2);
static_assert(sizeof(block_q8_K) == 4 + kQK_K + 2 * (kQK_K / 16));

using DequantizeFn = void (*)(const void*, float*, int64_t);
using QuantizeFn = void (*)(const float*, void*, int64_t);

struct RowCodec {
  const char* name;  // as ggml spells it
  int block_size;    // elements per block
  int type_size;     // bytes per block
  DequantizeFn dequantize;
  QuantizeFn quantize;
};

void copy_f32_out(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }
void copy_f32_in(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }

// The codec of a supported type; block_size 0 and no functions for the others.
RowCodec row_codec(TensorType type) {
  switch (type) {
    case TensorType::kF32: return {"f32", 1, 4, copy_f32_out, copy_f32_in};
    case TensorType::kF16: return {"f16", 1, 2, dequantize_row_f16, quantize_row_f16};
    case TensorType::kBF16: return {"bf16", 1, 2, dequantize_row_bf16, quantize_row_bf16};
    case TensorType::kQ8_0: return {"q8_0", kQK8_0, sizeof(block_q8_0), dequantize_row_q8_0, quantize_row_q8_0};
    case TensorType::kQ4_0: return {"q4_0", kQK4_0, sizeof(block_q4_0), dequantize_row_q4_0, quantize_row_q4_0};
    case TensorType::kQ4_K: return {"q4_K", kQK_K, sizeof(block_q4_K), dequantize_row_q4_K, quantize_row_q4_K};
    case TensorType::kQ5_K: return {"q5_K", kQK_K, sizeof(block_q5_K), dequantize_row_q5_K, quantize_row_q5_K};
    case TensorType::kQ6_K: return {"q6_K", kQK_K, sizeof(block_q6_K), dequantize_row_q6_K, quantize_row_q6_K};
    case TensorType::kQ8_K: return {"q8_K", kQK_K, sizeof(block_q8_K), dequantize_row_q8_K, quantize_row_q8_K};
    default: return {"", 0, 0, nullptr, nullptr};
  }
}

}  // namespace

bool quant_type_supported(TensorType type) { return row_codec(type).block_size != 0; }
int quant_block_size(TensorType type) { return row_codec(type).block_size; }
int quant_type_size(TensorType type) { return row_codec(type).type_size; }

void dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
  const RowCodec codec = row_codec(type);
  if (codec.block_size == 0 || n < 0 || n % codec.block_size != 0) {
    std::fprintf(stderr,
                 "clusterd: dequantize_row: type id %u with %lld elements is not a whole row of a "
                 "supported type; the loader must reject such tensors\n",
                 static_cast<unsigned>(type), static_cast<long long>(n));
    std::abort();
  }
  codec.dequantize(src, dst, n);
}

Status quantize_row(TensorType type, const float* src, void* dst, int64_t n) {
  const RowCodec codec = row_codec(type);
  if (codec.block_size == 0) {
    return invalid_argument("quantize_row: tensor type id " + std::to_string(static_cast<uint32_t>(type)) +
                            " is not supported; use f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K or q8_K");
  }
  if (n < 0 || n % codec.block_size != 0) {
    return invalid_argument("quantize_row: a row of " + std::to_string(n) + " elements does not split into " +
                            std::to_string(codec.block_size) + "-element blocks of " + codec.name +
                            "; pad the row or choose another type");
  }
  codec.quantize(src, dst, n);
  return Status::ok();
}

}  // namespace clusterd
