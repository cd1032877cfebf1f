// Written in vector types (vector_math.h) and compiled per target like attention.cpp:
// on 2 cores these ran serially between the parallel products, and as scalar loops
// took about 0.3 ms of a 12 ms decode step (Q4_0 1B).
#include "clusterd/engine/activations.h"

#include <cmath>

#include "clusterd/common/target_clones.h"
#include "vector_math.h"

namespace clusterd {

using namespace vector_math;

CLUSTERD_TARGET_CLONES void rms_norm(const float* x, const float* weight, float* out, int n, float eps) {
  // The squares summed in 16 float lanes, the lanes in double.
  Floats lanes{};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const Floats v = load(x + i);
    lanes += v * v;
  }
  double ss = 0;
  for (int l = 0; l < kLanes; ++l) ss += lanes[l];
  for (; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(static_cast<float>(ss / n) + eps);
  for (i = 0; i + kLanes <= n; i += kLanes) store(out + i, load(x + i) * scale * load(weight + i));
  for (; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

CLUSTERD_TARGET_CLONES void silu_mul(float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const Floats g = load(gate + i);
    store(gate + i, g / (1.0f + exp_floats(-g)) * load(up + i));
  }
  if (i < n) {  // the tail through the same vector code, so that every element is computed alike
    float g[kLanes] = {}, u[kLanes] = {};
    for (int64_t j = i; j < n; ++j) g[j - i] = gate[j], u[j - i] = up[j];
    const Floats v = load(g);
    store(g, v / (1.0f + exp_floats(-v)) * load(u));
    for (int64_t j = i; j < n; ++j) gate[j] = g[j - i];
  }
}

}  // namespace clusterd
