// Q8_0: 32 int8 quants sharing one fp16 scale.
#include <cmath>
#include <cstdint>

#include "clusterd/engine/quant.h"

namespace clusterd {

void quantize_row_q8_0(const float* in, void* blocks, int64_t n) {
  auto* y = static_cast<block_q8_0*>(blocks);
  const int64_t nb = n / kQK8_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = in + i * kQK8_0;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    // ggml's rule: the largest magnitude maps to +-127, ties round away from zero.
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

void dequantize_row_q8_0(const void* blocks, float* out, int64_t n) {
  const auto* x = static_cast<const block_q8_0*>(blocks);
  const int64_t nb = n / kQK8_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK8_0; ++j) out[i * kQK8_0 + j] = x[i].qs[j] * d;
  }
}

float vec_dot_q8_0_q8_0(int n, const block_q8_0* x, const block_q8_0* y) {
  const int nb = n / kQK8_0;
  float sum = 0.0f;
  for (int i = 0; i < nb; ++i) {
    int32_t sumi = 0;
    for (int j = 0; j < kQK8_0; ++j) sumi += int32_t{x[i].qs[j]} * int32_t{y[i].qs[j]};
    sum += static_cast<float>(sumi) * fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
  }
  return sum;
}

}  // namespace clusterd
