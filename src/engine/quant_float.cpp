// fp16 and bf16 rows, and the plain-float reference dot products.
#include <cstdint>

#include "clusterd/engine/quant.h"

namespace clusterd {

void fp16_to_fp32_row(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}

void fp32_to_fp16_row(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}

void bf16_to_fp32_row(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(src[i]);
}

void fp32_to_bf16_row(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_bf16(src[i]);
}

void dequantize_row_f16(const void* blocks, float* out, int64_t n) {
  fp16_to_fp32_row(static_cast<const uint16_t*>(blocks), out, n);
}

void dequantize_row_bf16(const void* blocks, float* out, int64_t n) {
  bf16_to_fp32_row(static_cast<const uint16_t*>(blocks), out, n);
}

void quantize_row_f16(const float* in, void* blocks, int64_t n) {
  fp32_to_fp16_row(in, static_cast<uint16_t*>(blocks), n);
}

void quantize_row_bf16(const float* in, void* blocks, int64_t n) {
  fp32_to_bf16_row(in, static_cast<uint16_t*>(blocks), n);
}

float vec_dot_f32(int n, const float* x, const float* y) {
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += double{x[i]} * double{y[i]};
  return static_cast<float>(sum);
}

float vec_dot_f16_f32(int n, const uint16_t* x, const float* y) {
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += double{fp16_to_fp32(x[i])} * double{y[i]};
  return static_cast<float>(sum);
}

float vec_dot_bf16_f32(int n, const uint16_t* x, const float* y) {
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += double{bf16_to_fp32(x[i])} * double{y[i]};
  return static_cast<float>(sum);
}

}  // namespace clusterd
