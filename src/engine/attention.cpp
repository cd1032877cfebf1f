// Written with GCC vector extensions (16 floats per vector, which the compiler lowers
// to whatever registers the target has) and, on x86-64 Linux, compiled again for AVX2
// and AVX-512 machines, the best copy being picked at load time (function
// multi-versioning). Scores are computed for 64 positions at a time, so that the four
// vectors of sums stay in registers while the query's elements pass (one load per
// multiply-add; summing into memory took three).
#include "clusterd/engine/attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "clusterd/common/target_clones.h"
#include "vector_math.h"

namespace clusterd {
namespace {

using namespace vector_math;

// Scores of positions [j, j + B * 16) for G heads: each key vector loaded once serves
// every head (the heads of a GQA group share their keys).
template <int G, int B>
[[gnu::always_inline]] inline void score_block(const float* q, int hd, const float* keys, int stride, int j,
                                               float scale, float* scores) {
  Floats s[G][B] = {};
  for (int i = 0; i < hd; ++i) {
    const float* k = keys + static_cast<size_t>(i) * stride + j;
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) {
      const Floats key = load(k + b * kLanes);
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) s[g][b] += splat(q[g * hd + i]) * key;
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) {
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) store(scores + static_cast<size_t>(g) * stride + j + b * kLanes, s[g][b] * scale);
  }
}

// Output elements [c, c + B * 16) for G heads: the weighted sum of the values over
// positions [0, n), each value vector loaded once for every head.
template <int G, int B>
[[gnu::always_inline]] inline void value_block(const float* weights, int stride, const float* values, int n, int hd,
                                               int c, const float* inv_sum, float* out) {
  Floats o[G][B] = {};
  for (int j = 0; j < n; ++j) {
    const float* v = values + static_cast<size_t>(j) * hd + c;
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) {
      const Floats value = load(v + b * kLanes);
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) o[g][b] += splat(weights[static_cast<size_t>(g) * stride + j]) * value;
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) {
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) store(out + g * hd + c + b * kLanes, o[g][b] * inv_sum[g]);
  }
}

// Turns one head's scores [0, padded) into unnormalized softmax weights (padding
// first set to -inf, so its weights are 0) and returns 1 / their sum.
[[gnu::always_inline]] inline float softmax_weights(float* scores, int n, int padded) {
  for (int j = n; j < padded; ++j) scores[j] = -INFINITY;
  Floats top = splat(-INFINITY);
  for (int j = 0; j < padded; j += kLanes) {
    const Floats s = load(scores + j);
    top = s > top ? s : top;
  }
  float max_score = top[0];
  for (int l = 1; l < kLanes; ++l) max_score = std::fmax(max_score, top[l]);
  Floats sums{};
  for (int j = 0; j < padded; j += kLanes) {
    const Floats e = exp_floats(load(scores + j) - max_score);
    sums += e;
    store(scores + j, e);
  }
  return 1.0f / sum_lanes(sums);
}

template <int G>
[[gnu::always_inline]] inline void attend_group(const float* q, int hd, const float* keys, int stride,
                                                const float* values, int n, float scale, float* scores, float* out) {
  const int padded = (n + kLanes - 1) / kLanes * kLanes;
  // 64 then 16 positions at a time; a block may run past n into the padding.
  int j = 0;
  for (; j + 4 * kLanes <= padded; j += 4 * kLanes) score_block<G, 4>(q, hd, keys, stride, j, scale, scores);
  for (; j < padded; j += kLanes) score_block<G, 1>(q, hd, keys, stride, j, scale, scores);
  float inv_sum[G];
  for (int g = 0; g < G; ++g) inv_sum[g] = softmax_weights(scores + static_cast<size_t>(g) * stride, n, padded);
  int c = 0;
  for (; c + 4 * kLanes <= hd; c += 4 * kLanes) value_block<G, 4>(scores, stride, values, n, hd, c, inv_sum, out);
  for (; c + kLanes <= hd; c += kLanes) value_block<G, 1>(scores, stride, values, n, hd, c, inv_sum, out);
  for (; c < hd; ++c) {  // head sizes that are not a multiple of 16
    for (int g = 0; g < G; ++g) {
      float o = 0;
      for (j = 0; j < n; ++j)
        o += scores[static_cast<size_t>(g) * stride + j] * values[static_cast<size_t>(j) * hd + c];
      out[g * hd + c] = o * inv_sum[g];
    }
  }
}

}  // namespace

CLUSTERD_TARGET_CLONES void attend_heads(const float* q, int n_heads, int hd, const float* keys, int stride,
                                         const float* values, int n, float scale, float* scores, float* out) {
  // Up to four heads per pass over the keys and values (4 heads x 4 vectors of sums
  // fill 16 registers; AVX-512 has 32).
  for (int h = 0; h < n_heads; h += 4) {
    const float* hq = q + static_cast<size_t>(h) * hd;
    float* hs = scores + static_cast<size_t>(h) * stride;
    float* ho = out + static_cast<size_t>(h) * hd;
    switch (std::min(4, n_heads - h)) {
      case 4: attend_group<4>(hq, hd, keys, stride, values, n, scale, hs, ho); break;
      case 3: attend_group<3>(hq, hd, keys, stride, values, n, scale, hs, ho); break;
      case 2: attend_group<2>(hq, hd, keys, stride, values, n, scale, hs, ho); break;
      default: attend_group<1>(hq, hd, keys, stride, values, n, scale, hs, ho); break;
    }
  }
}

}  // namespace clusterd
