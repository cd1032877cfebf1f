// Helpers for code written with GCC vector extensions: 16 floats per vector, which the
// compiler lowers to whatever registers the target has (one AVX-512 register, two AVX2
// ones, four SSE or NEON ones). Include only from files whose functions are compiled
// per target (CLUSTERD_TARGET_CLONES) with -O3 and -ffp-contract=fast (see
// CMakeLists.txt): the helpers are inlined into each copy.
#pragma once

#include <cstdint>
#include <cstring>

// The helpers take and return vectors by value; they are always inlined, so no call
// ever crosses the baseline ABI that GCC warns about.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace clusterd {
namespace vector_math {

constexpr int kLanes = 16;
typedef float Floats __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t Ints __attribute__((vector_size(kLanes * sizeof(int32_t))));

[[gnu::always_inline]] inline Floats load(const float* p) {
  Floats v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

[[gnu::always_inline]] inline void store(float* p, const Floats& v) { std::memcpy(p, &v, sizeof v); }

[[gnu::always_inline]] inline Floats splat(float x) { return Floats{} + x; }

// e^x within about 2 ulp for x in [-87.3, 88]; below, e^-87.3 (negligible next to any
// term near 1, as in a softmax or 1 + e^x); above, e^88. x = k ln2 + r with
// |r| <= ln2 / 2 (ln2 in two parts, so that k ln2 is exact enough), e^r by its Taylor
// series to r^7, and 2^k put into the exponent bits.
[[gnu::always_inline]] inline Floats exp_floats(const Floats& in) {
  Floats x = in < splat(-87.3f) ? splat(-87.3f) : in;
  x = x > splat(88.0f) ? splat(88.0f) : x;
  const Floats k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest
  const Floats r = (x - k * 0.693145752f) - k * 1.42860677e-6f;
  Floats p = splat(1.0f / 5040);
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const Ints bits = (__builtin_convertvector(k, Ints) + 127) << 23;
  Floats scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

[[gnu::always_inline]] inline float sum_lanes(const Floats& v) {
  float total = 0;
  for (int l = 0; l < kLanes; ++l) total += v[l];
  return total;
}

}  // namespace vector_math
}  // namespace clusterd
