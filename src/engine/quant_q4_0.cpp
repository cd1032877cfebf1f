// Q4_0: 32 four-bit quants (offset by 8) sharing one fp16 scale.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "clusterd/engine/quant.h"

namespace clusterd {

void quantize_row_q4_0(const float* in, void* blocks, int64_t n) {
  auto* y = static_cast<block_q4_0*>(blocks);
  const int64_t nb = n / kQK4_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = in + i * kQK4_0;
    // ggml's rule: the element of largest magnitude maps to -8, the end of the range
    // that has no positive twin, so the other side keeps 7 full steps.
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      // x*id + 8.5 lies in [0.5, 16.5]: truncation is rounding half up of x*id + 8.
      const int lo = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      const int hi = std::min(15, static_cast<int>(x[j + kQK4_0 / 2] * id + 8.5f));
      y[i].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void dequantize_row_q4_0(const void* blocks, float* out, int64_t n) {
  const auto* x = static_cast<const block_q4_0*>(blocks);
  const int64_t nb = n / kQK4_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    float* y = out + i * kQK4_0;
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      y[j] = ((x[i].qs[j] & 0x0f) - 8) * d;
      y[j + kQK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

float vec_dot_q4_0_q8_0(int n, const block_q4_0* x, const block_q8_0* y) {
  const int nb = n / kQK4_0;
  float sum = 0.0f;
  for (int i = 0; i < nb; ++i) {
    int32_t sumi = 0;
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int lo = (x[i].qs[j] & 0x0f) - 8;
      const int hi = (x[i].qs[j] >> 4) - 8;
      sumi += lo * y[i].qs[j] + hi * y[i].qs[j + kQK4_0 / 2];
    }
    sum += static_cast<float>(sumi) * fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
  }
  return sum;
}

}  // namespace clusterd
