// Q6_K: super-blocks of 256 in 16 sub-blocks of 16, each with a signed 8-bit scale;
// value = d * scale * (q - 32), q of 6 bits.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "clusterd/engine/quant.h"

namespace clusterd {
namespace {

constexpr int kSubBlock = 16;
constexpr int kSubBlocks = kQK_K / kSubBlock;  // 16

int round_clamped(float v, int lo, int hi) {
  const long r = std::lrint(v);  // nearest, ties to even
  return static_cast<int>(std::clamp<long>(r, lo, hi));
}

// Fits x[i] ~ scale * L[i] with L in [-32, 31] for the least squared error. The scale
// is signed: the element of largest magnitude goes to the -32 end, which has one step
// more than the positive end. Candidate grids put it at -33 .. -31 steps; for each the
// scale is the least-squares slope of its L.
float fit_scale(const float* x, int8_t* L) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < kSubBlock; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax == 0.0f) {
    for (int i = 0; i < kSubBlock; ++i) L[i] = 0;
    return 0.0f;
  }
  float best_scale = 0.0f;
  float best_err = INFINITY;
  int8_t trial[kSubBlock];
  for (int step = 10; step >= -10; --step) {  // on a tie in error, the finer grid wins
    const float iscale = -(32.0f + 0.1f * step) / max;
    float sum_l2 = 0, sum_lx = 0;
    for (int i = 0; i < kSubBlock; ++i) {
      const int l = round_clamped(iscale * x[i], -32, 31);
      trial[i] = static_cast<int8_t>(l);
      sum_l2 += float(l * l);
      sum_lx += l * x[i];
    }
    if (sum_l2 == 0.0f) continue;
    const float scale = sum_lx / sum_l2;
    float err = 0.0f;
    for (int i = 0; i < kSubBlock; ++i) {
      const float diff = scale * trial[i] - x[i];
      err += diff * diff;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
      for (int i = 0; i < kSubBlock; ++i) L[i] = trial[i];
    }
  }
  return best_scale;
}

// Quant q (0..63) of element 128*h + 32*k + l, for half h, quarter k and l < 32.
int q6_K_quant(const block_q6_K& b, int h, int k, int l) {
  const uint8_t low_byte = b.ql[64 * h + 32 * (k & 1) + l];
  const int low = k < 2 ? low_byte & 0x0f : low_byte >> 4;
  const int high = (b.qh[32 * h + l] >> (2 * k)) & 3;
  return low | (high << 4);
}

}  // namespace

int q6_K_quant_at(const block_q6_K& b, int j) { return q6_K_quant(b, j / 128, j % 128 / 32, j % 32); }

void quantize_row_q6_K(const float* in, void* blocks, int64_t n) {
  auto* y = static_cast<block_q6_K*>(blocks);
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = in + i * kQK_K;
    int8_t L[kQK_K];
    float scale[kSubBlocks];
    float max_scale = 0.0f;  // the signed scale of largest magnitude
    for (int s = 0; s < kSubBlocks; ++s) {
      scale[s] = fit_scale(x + s * kSubBlock, L + s * kSubBlock);
      if (std::fabs(scale[s]) > std::fabs(max_scale)) max_scale = scale[s];
    }
    if (max_scale == 0.0f) {
      for (int s = 0; s < kSubBlocks; ++s) y[i].scales[s] = 0;
      y[i].d = fp32_to_fp16(0.0f);
    } else {
      // The largest scale maps to -128, again the end with one more step. The 8-bit
      // codes are taken against d as stored, not compounding its fp16 rounding.
      y[i].d = fp32_to_fp16(max_scale / -128.0f);
      const float d = fp16_to_fp32(y[i].d);
      const float inv_d = d != 0.0f ? 1.0f / d : 0.0f;
      for (int s = 0; s < kSubBlocks; ++s) {
        y[i].scales[s] = static_cast<int8_t>(round_clamped(inv_d * scale[s], -128, 127));
      }
    }
    // Final quants against the encoded (rounded) scales; stored with the +32 offset.
    const float d = fp16_to_fp32(y[i].d);
    uint8_t q[kQK_K];
    for (int s = 0; s < kSubBlocks; ++s) {
      const float ds = d * y[i].scales[s];
      for (int l = 0; l < kSubBlock; ++l) {
        const int j = s * kSubBlock + l;
        q[j] = static_cast<uint8_t>(ds != 0.0f ? round_clamped(x[j] / ds, -32, 31) + 32 : 32);
      }
    }
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; ++l) {
        const int q0 = q[128 * h + l];
        const int q1 = q[128 * h + 32 + l];
        const int q2 = q[128 * h + 64 + l];
        const int q3 = q[128 * h + 96 + l];
        y[i].ql[64 * h + l] = static_cast<uint8_t>((q0 & 0x0f) | ((q2 & 0x0f) << 4));
        y[i].ql[64 * h + 32 + l] = static_cast<uint8_t>((q1 & 0x0f) | ((q3 & 0x0f) << 4));
        y[i].qh[32 * h + l] = static_cast<uint8_t>((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
      }
    }
  }
}

void dequantize_row_q6_K(const void* blocks, float* out, int64_t n) {
  const auto* x = static_cast<const block_q6_K*>(blocks);
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    float* y = out + i * kQK_K;
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        for (int l = 0; l < 32; ++l) {
          const int j = 128 * h + 32 * k + l;
          y[j] = d * x[i].scales[j / kSubBlock] * (q6_K_quant(x[i], h, k, l) - 32);
        }
      }
    }
  }
}

// Per super-block: d*yd * sum_s scale[s] * ((q - 32) . y)_s, all of it integer but the
// final multiply.
float vec_dot_q6_K_q8_K(int n, const block_q6_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  float sum = 0.0f;
  for (int i = 0; i < nb; ++i) {
    int32_t dot[kSubBlocks] = {};
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        for (int l = 0; l < 32; ++l) {
          const int j = 128 * h + 32 * k + l;
          dot[j / kSubBlock] += (q6_K_quant(x[i], h, k, l) - 32) * y[i].qs[j];
        }
      }
    }
    int32_t sum_q = 0;
    for (int s = 0; s < kSubBlocks; ++s) sum_q += x[i].scales[s] * dot[s];
    sum += fp16_to_fp32(x[i].d) * y[i].d * static_cast<float>(sum_q);
  }
  return sum;
}

}  // namespace clusterd
