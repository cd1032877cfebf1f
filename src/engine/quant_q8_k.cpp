// Q8_K: the 8-bit activations the K-quant dot products multiply against.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "clusterd/engine/quant.h"

namespace clusterd {

void quantize_row_q8_K(const float* in, void* blocks, int64_t n) {
  auto* y = static_cast<block_q8_K*>(blocks);
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = in + i * kQK_K;
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    // ggml's rule: the extreme maps to -127 (never -128, which SIMD sign tricks
    // cannot negate), rounding to nearest even.
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const long q = std::lrint(iscale * x[j]);
      y[i].qs[j] = static_cast<int8_t>(q < 127 ? q : 127);
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += y[i].qs[16 * g + j];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}

void dequantize_row_q8_K(const void* blocks, float* out, int64_t n) {
  const auto* x = static_cast<const block_q8_K*>(blocks);
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    for (int j = 0; j < kQK_K; ++j) out[i * kQK_K + j] = x[i].d * x[i].qs[j];
  }
}

}  // namespace clusterd
