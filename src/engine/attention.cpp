// Plain C++ loops that the compiler vectorizes: this file is built with -O3 (its
// vectorizer versions loops for unknown trip counts, which -O2's does not) and, as the
// build targets baseline x86-64, compiled again for AVX2 and AVX-512 machines on Linux,
// the best copy being picked at load time (function multi-versioning).
#include "clusterd/engine/attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "clusterd/common/target_clones.h"

namespace clusterd {

CLUSTERD_TARGET_CLONES void attend_head(const float* q, const float* keys, int stride, const float* values, int n,
                                        int hd, float scale, float* scores, float* out) {
  float* __restrict s = scores;
  float* __restrict o = out;
  for (int j = 0; j < n; ++j) s[j] = 0.0f;
  // The positions are independent, so the loop over them vectorizes.
  for (int i = 0; i < hd; ++i) {
    const float qi = q[i];
    const float* __restrict ki = keys + static_cast<size_t>(i) * stride;
    for (int j = 0; j < n; ++j) s[j] += qi * ki[j];
  }
  float max_score = -INFINITY;
  for (int j = 0; j < n; ++j) {
    s[j] *= scale;
    max_score = std::max(max_score, s[j]);
  }
  float sum = 0;
  for (int j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - max_score));
  for (int i = 0; i < hd; ++i) o[i] = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float w = s[j] / sum;
    const float* __restrict vj = values + static_cast<size_t>(j) * hd;
    for (int i = 0; i < hd; ++i) o[i] += w * vj[i];
  }
}

}  // namespace clusterd
