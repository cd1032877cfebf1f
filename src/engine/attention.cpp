// Written with GCC vector extensions (16 floats per vector, which the compiler lowers
// to whatever registers the target has) and, on x86-64 Linux, compiled again for AVX2
// and AVX-512 machines, the best copy being picked at load time (function
// multi-versioning). Scores are computed for 64 positions at a time, so that the four
// vectors of sums stay in registers while the query's elements pass (one load per
// multiply-add; summing into memory took three).
#include "clusterd/engine/attention.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "clusterd/common/target_clones.h"

// The helpers below take and return vectors by value; they are inlined into each
// clone, so no call ever crosses the baseline ABI that GCC warns about.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace clusterd {
namespace {

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

// e^x for x <= 0, within about 2 ulp (inputs below -87.3 give e^-87.3, which no softmax
// weight of 1 in the same sum notices): x = k ln2 + r with |r| <= ln2 / 2 (ln2 in two
// parts, so that k ln2 is exact enough), e^r by its Taylor series to r^7, and 2^k put
// into the exponent bits.
[[gnu::always_inline]] inline Floats exp_nonpositive(const Floats& in) {
  const Floats x = in < splat(-87.3f) ? splat(-87.3f) : in;
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

}  // namespace

CLUSTERD_TARGET_CLONES void attend_head(const float* q, const float* keys, int stride, const float* values, int n,
                                        int hd, float scale, float* scores, float* out) {
  const int padded = (n + kLanes - 1) / kLanes * kLanes;
  // Scores, 64 then 16 positions at a time; a block may run past n into the padding,
  // whose scores are then set to -inf.
  int j = 0;
  for (; j + 4 * kLanes <= padded; j += 4 * kLanes) {
    Floats s0{}, s1{}, s2{}, s3{};
    for (int i = 0; i < hd; ++i) {
      const float* k = keys + static_cast<size_t>(i) * stride + j;
      const Floats qi = splat(q[i]);
      s0 += qi * load(k);
      s1 += qi * load(k + kLanes);
      s2 += qi * load(k + 2 * kLanes);
      s3 += qi * load(k + 3 * kLanes);
    }
    store(scores + j, s0 * scale);
    store(scores + j + kLanes, s1 * scale);
    store(scores + j + 2 * kLanes, s2 * scale);
    store(scores + j + 3 * kLanes, s3 * scale);
  }
  for (; j < padded; j += kLanes) {
    Floats s{};
    for (int i = 0; i < hd; ++i) s += splat(q[i]) * load(keys + static_cast<size_t>(i) * stride + j);
    store(scores + j, s * scale);
  }
  for (j = n; j < padded; ++j) scores[j] = -INFINITY;

  // Softmax weights.
  Floats top = splat(-INFINITY);
  for (j = 0; j < padded; j += kLanes) {
    const Floats s = load(scores + j);
    top = s > top ? s : top;
  }
  float max_score = top[0];
  for (int l = 1; l < kLanes; ++l) max_score = std::fmax(max_score, top[l]);
  Floats sums{};
  for (j = 0; j < padded; j += kLanes) {
    const Floats e = exp_nonpositive(load(scores + j) - max_score);
    sums += e;
    store(scores + j, e);
  }
  const float inv_sum = 1.0f / sum_lanes(sums);

  // The weighted sum of the values, 64 elements of the output at a time.
  int c = 0;
  for (; c + 4 * kLanes <= hd; c += 4 * kLanes) {
    Floats o0{}, o1{}, o2{}, o3{};
    for (j = 0; j < n; ++j) {
      const float* v = values + static_cast<size_t>(j) * hd + c;
      const Floats w = splat(scores[j]);
      o0 += w * load(v);
      o1 += w * load(v + kLanes);
      o2 += w * load(v + 2 * kLanes);
      o3 += w * load(v + 3 * kLanes);
    }
    store(out + c, o0 * inv_sum);
    store(out + c + kLanes, o1 * inv_sum);
    store(out + c + 2 * kLanes, o2 * inv_sum);
    store(out + c + 3 * kLanes, o3 * inv_sum);
  }
  for (; c + kLanes <= hd; c += kLanes) {
    Floats o{};
    for (j = 0; j < n; ++j) o += splat(scores[j]) * load(values + static_cast<size_t>(j) * hd + c);
    store(out + c, o * inv_sum);
  }
  for (; c < hd; ++c) {
    float o = 0;
    for (j = 0; j < n; ++j) o += scores[j] * values[static_cast<size_t>(j) * hd + c];
    out[c] = o * inv_sum;
  }
}

}  // namespace clusterd
