// Q4_K and Q5_K: super-blocks of 256 in 8 sub-blocks of 32, each with a 6-bit scale and
// a 6-bit min (value = d*sc*q - dmin*m), q of 4 or 5 bits.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "clusterd/engine/quant.h"

namespace clusterd {
namespace {

constexpr int kSubBlock = 32;
constexpr int kSubBlocks = kQK_K / kSubBlock;  // 8

int round_clamped(float v, int lo, int hi) {
  const long r = std::lrint(v);  // nearest, ties to even
  return static_cast<int>(std::clamp<long>(r, lo, hi));
}

// Fits x[i] ~ scale * L[i] - neg_min with L in [0, nmax], scale >= 0 and neg_min >= 0
// (an offset only ever lowers the values, as the format stores it), for the least
// squared error. Candidate grids map [min(x, 0), max(x)] onto nmax-1 .. nmax+1 steps;
// for each grid the pair (scale, offset) is the least-squares solution for its L.
float fit_scale_min(const float* x, int nmax, uint8_t* L, float* neg_min) {
  float lo = 0.0f;
  float hi = x[0];
  for (int i = 0; i < kSubBlock; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (hi <= lo) {  // every element equals lo <= 0: the offset alone is exact
    std::memset(L, 0, kSubBlock);
    *neg_min = -lo;
    return 0.0f;
  }
  float best_scale = (hi - lo) / nmax;
  float best_min = lo;
  float best_err = INFINITY;
  uint8_t trial[kSubBlock];
  for (int step = -10; step <= 10; ++step) {
    const float iscale = (nmax + 0.1f * step) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_x = 0, sum_lx = 0;
    for (int i = 0; i < kSubBlock; ++i) {
      const int l = round_clamped((x[i] - lo) * iscale, 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      sum_l += l;
      sum_l2 += float(l * l);
      sum_x += x[i];
      sum_lx += l * x[i];
    }
    const float det = kSubBlock * sum_l2 - sum_l * sum_l;
    float scale = 0.0f;
    float min = 1.0f;
    if (det > 0.0f) {
      scale = (kSubBlock * sum_lx - sum_l * sum_x) / det;
      min = (sum_l2 * sum_x - sum_l * sum_lx) / det;
    }
    // All L equal (no slope to fit), or a positive offset the format cannot store:
    // fit the slope through zero instead.
    if (min > 0.0f) {
      min = 0.0f;
      scale = sum_l2 > 0.0f ? sum_lx / sum_l2 : 0.0f;
    }
    if (!(scale > 0.0f)) continue;
    float err = 0.0f;
    for (int i = 0; i < kSubBlock; ++i) {
      const float diff = scale * trial[i] + min - x[i];
      err += diff * diff;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
      best_min = min;
      std::memcpy(L, trial, kSubBlock);
    }
  }
  if (best_err == INFINITY) {  // no grid gave a usable fit: the plain min/max grid
    for (int i = 0; i < kSubBlock; ++i) L[i] = static_cast<uint8_t>(round_clamped((x[i] - lo) / best_scale, 0, nmax));
  }
  *neg_min = -best_min;
  return best_scale;
}

// Shared by Q4_K and Q5_K: sub-block fits, their 6-bit encoding into d/dmin/scales,
// then the final quants against the encoded (rounded) scales and mins.
void quantize_k_super_block(const float* x, int nmax, uint16_t* d_out, uint16_t* dmin_out,
                            uint8_t scales_out[kKScaleSize], uint8_t L[kQK_K]) {
  float scale[kSubBlocks];
  float min[kSubBlocks];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int s = 0; s < kSubBlocks; ++s) {
    scale[s] = fit_scale_min(x + s * kSubBlock, nmax, L + s * kSubBlock, &min[s]);
    max_scale = std::max(max_scale, scale[s]);
    max_min = std::max(max_min, min[s]);
  }
  *d_out = fp32_to_fp16(max_scale / 63.0f);
  *dmin_out = fp32_to_fp16(max_min / 63.0f);
  // The 6-bit codes are taken against d and dmin as stored, so that the fp16 rounding
  // of those (coarse when they are subnormal) is not compounded.
  const float d = fp16_to_fp32(*d_out);
  const float dmin = fp16_to_fp32(*dmin_out);
  const float inv_d = d > 0.0f ? 1.0f / d : 0.0f;
  const float inv_dmin = dmin > 0.0f ? 1.0f / dmin : 0.0f;
  uint8_t sc[kSubBlocks];
  uint8_t m[kSubBlocks];
  for (int s = 0; s < kSubBlocks; ++s) {
    sc[s] = static_cast<uint8_t>(round_clamped(inv_d * scale[s], 0, 63));
    m[s] = static_cast<uint8_t>(round_clamped(inv_dmin * min[s], 0, 63));
  }
  k_quant_pack_scale_min(sc, m, scales_out);

  for (int s = 0; s < kSubBlocks; ++s) {
    const float ds = d * sc[s];
    const float ms = dmin * m[s];
    for (int i = 0; i < kSubBlock; ++i) {
      const int j = s * kSubBlock + i;
      L[j] = ds != 0.0f ? static_cast<uint8_t>(round_clamped((x[j] + ms) / ds, 0, nmax)) : 0;
    }
  }
}

// Quant q (4 or 5 bits) of element 32*s + l, for sub-block s and l < 32.
int q4_K_quant(const block_q4_K& b, int s, int l) {
  const uint8_t byte = b.qs[32 * (s / 2) + l];
  return (s & 1) ? byte >> 4 : byte & 0x0f;
}

int q5_K_quant(const block_q5_K& b, int s, int l) {
  const uint8_t byte = b.qs[32 * (s / 2) + l];
  const int low = (s & 1) ? byte >> 4 : byte & 0x0f;
  return low | (((b.qh[l] >> s) & 1) << 4);  // sub-block s owns bit s of qh[l]
}

}  // namespace

void k_quant_pack_scale_min(const uint8_t sc[8], const uint8_t m[8], uint8_t scales[kKScaleSize]) {
  for (int s = 0; s < 4; ++s) {
    scales[s] = static_cast<uint8_t>((sc[s] & 63) | ((sc[s + 4] >> 4) << 6));
    scales[s + 4] = static_cast<uint8_t>((m[s] & 63) | ((m[s + 4] >> 4) << 6));
    scales[s + 8] = static_cast<uint8_t>((sc[s + 4] & 0x0f) | ((m[s + 4] & 0x0f) << 4));
  }
}

void quantize_row_q4_K(const float* in, void* blocks, int64_t n) {
  auto* y = static_cast<block_q4_K*>(blocks);
  const int64_t nb = n / kQK_K;
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i) {
    quantize_k_super_block(in + i * kQK_K, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        y[i].qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
      }
    }
  }
}

void quantize_row_q5_K(const float* in, void* blocks, int64_t n) {
  auto* y = static_cast<block_q5_K*>(blocks);
  const int64_t nb = n / kQK_K;
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i) {
    quantize_k_super_block(in + i * kQK_K, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int q_lo = L[64 * c + l];       // sub-block 2c
        const int q_hi = L[64 * c + 32 + l];  // sub-block 2c+1
        y[i].qs[32 * c + l] = static_cast<uint8_t>((q_lo & 0x0f) | ((q_hi & 0x0f) << 4));
        y[i].qh[l] |= static_cast<uint8_t>(((q_lo >> 4) << (2 * c)) | ((q_hi >> 4) << (2 * c + 1)));
      }
    }
  }
}

void dequantize_row_q4_K(const void* blocks, float* out, int64_t n) {
  const auto* x = static_cast<const block_q4_K*>(blocks);
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    float* y = out + i * kQK_K;
    for (int s = 0; s < kSubBlocks; ++s) {
      int sc, m;
      k_quant_scale_min(s, x[i].scales, &sc, &m);
      const float ds = d * sc;
      const float ms = dmin * m;
      for (int l = 0; l < kSubBlock; ++l) y[kSubBlock * s + l] = ds * q4_K_quant(x[i], s, l) - ms;
    }
  }
}

void dequantize_row_q5_K(const void* blocks, float* out, int64_t n) {
  const auto* x = static_cast<const block_q5_K*>(blocks);
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    float* y = out + i * kQK_K;
    for (int s = 0; s < kSubBlocks; ++s) {
      int sc, m;
      k_quant_scale_min(s, x[i].scales, &sc, &m);
      const float ds = d * sc;
      const float ms = dmin * m;
      for (int l = 0; l < kSubBlock; ++l) y[kSubBlock * s + l] = ds * q5_K_quant(x[i], s, l) - ms;
    }
  }
}

// Per super-block: d*yd * sum_s sc[s] * (q . y)_s  -  dmin*yd * sum_s m[s] * (sum of y)_s,
// the second sum read from the two bsums that cover sub-block s.
float vec_dot_q4_K_q8_K(int n, const block_q4_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  float sum = 0.0f;
  for (int i = 0; i < nb; ++i) {
    int32_t sum_q = 0;
    int32_t sum_m = 0;
    for (int s = 0; s < kSubBlocks; ++s) {
      int sc, m;
      k_quant_scale_min(s, x[i].scales, &sc, &m);
      int32_t dot = 0;
      for (int l = 0; l < kSubBlock; ++l) dot += q4_K_quant(x[i], s, l) * y[i].qs[kSubBlock * s + l];
      sum_q += sc * dot;
      sum_m += m * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
    }
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    const float dmin = fp16_to_fp32(x[i].dmin) * y[i].d;
    sum += d * static_cast<float>(sum_q) - dmin * static_cast<float>(sum_m);
  }
  return sum;
}

float vec_dot_q5_K_q8_K(int n, const block_q5_K* x, const block_q8_K* y) {
  const int nb = n / kQK_K;
  float sum = 0.0f;
  for (int i = 0; i < nb; ++i) {
    int32_t sum_q = 0;
    int32_t sum_m = 0;
    for (int s = 0; s < kSubBlocks; ++s) {
      int sc, m;
      k_quant_scale_min(s, x[i].scales, &sc, &m);
      int32_t dot = 0;
      for (int l = 0; l < kSubBlock; ++l) dot += q5_K_quant(x[i], s, l) * y[i].qs[kSubBlock * s + l];
      sum_q += sc * dot;
      sum_m += m * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
    }
    const float d = fp16_to_fp32(x[i].d) * y[i].d;
    const float dmin = fp16_to_fp32(x[i].dmin) * y[i].d;
    sum += d * static_cast<float>(sum_q) - dmin * static_cast<float>(sum_m);
  }
  return sum;
}

}  // namespace clusterd
