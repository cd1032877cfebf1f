// Element-wise steps of the forward pass (src/engine/activations.cpp).
#pragma once

#include <cstdint>

namespace clusterd {

// out = x / rms(x) * weight, for one row of n elements (out may be x).
void rms_norm(const float* x, const float* weight, float* out, int n, float eps);

// gate[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + e^-g), for i in [0, n).
void silu_mul(float* gate, const float* up, int64_t n);

}  // namespace clusterd
