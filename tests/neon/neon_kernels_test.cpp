// The NEON dot products equal their scalar references in quant.h: on rows made by the
// quantizers, on blocks of random bytes, and on the extreme quants, where blocks with
// unit scales make every sum an integer that float holds exactly, so any difference is
// an error in the integer arithmetic. Built for AArch64 and run under qemu-user on x86
// (tests/neon/CMakeLists.txt), once with SDOT and once without. With SDOT, the packed
// products (packed.h) equal their scalar reference bit for bit. There is no GoogleTest
// for AArch64 here: each check prints one line, the last line counts them, and the
// exit status is non-zero when any failed.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "clusterd/engine/kernels_neon.h"
#include "clusterd/engine/matmul.h"
#include "clusterd/engine/packed.h"
#include "clusterd/engine/quant.h"

#if !defined(CLUSTERD_HAVE_NEON_KERNELS)
#error "neon_kernels_test is built for AArch64 only (see tests/neon/CMakeLists.txt)"
#endif

namespace clusterd {
namespace {

constexpr uint16_t kHalfOne = 0x3c00;  // 1.0 as fp16

class Checks {
 public:
  // Relative error below 1e-5, measured against max(|want|, 1% of `magnitude`), the sum
  // of |x_j * y_j|: that floor keeps a sum that cancels to nearly zero from asking more
  // of float additions in another order than they can give.
  void close(const std::string& what, float want, float got, double magnitude) {
    const double scale = std::fmax(std::fabs(double{want}), 0.01 * magnitude);
    const double err = std::fabs(double{got} - double{want}) / (scale > 0 ? scale : 1.0);
    char detail[64];
    std::snprintf(detail, sizeof detail, "rel err %.1e", err);
    report(err < 1e-5, what, want, got, detail);
  }

  void exact(const std::string& what, float want, float got) { report(want == got, what, want, got, "exact"); }

  // Prints the closing count; returns the exit status.
  int finish() const {
    std::printf("neon: %d passed, %d failed\n", passed_, failed_);
    return failed_ == 0 ? 0 : 1;
  }

 private:
  void report(bool ok, const std::string& what, float want, float got, const char* detail) {
    ++(ok ? passed_ : failed_);
    std::printf("%-4s %s: want %.9g got %.9g (%s)\n", ok ? "ok" : "FAIL", what.c_str(), want, got, detail);
  }

  int passed_ = 0;
  int failed_ = 0;
};

class Random {
 public:
  uint8_t byte() { return static_cast<uint8_t>(rng_()); }
  // NEON has no sign trick to protect, so the full int8 range, -128 included.
  int8_t quant8() { return static_cast<int8_t>(byte()); }
  // A finite fp16 scale, magnitude up to 2^-4, of either sign unless `positive`.
  uint16_t scale16(bool positive = false) {
    const float lo = positive ? 0.0f : -1.0f;
    return fp32_to_fp16(std::ldexp(std::uniform_real_distribution<float>(lo, 1.0f)(rng_), -4));
  }
  std::vector<float> gaussian(int n, float sigma, float mean = 0.0f) {
    std::normal_distribution<float> dist(mean, sigma);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng_);
    return v;
  }

 private:
  std::mt19937 rng_{20250611};
};

template <typename Block>
std::vector<Block> quantized(void (*quantize)(const float*, void*, int64_t), const std::vector<float>& row,
                             int block_size) {
  std::vector<Block> blocks(row.size() / block_size);
  quantize(row.data(), blocks.data(), static_cast<int64_t>(row.size()));
  return blocks;
}

// Sum of |x_j * y_j| over the dequantized rows: the size of the terms a dot product adds.
double magnitude(TensorType tx, const void* x, TensorType ty, const void* y, int n) {
  std::vector<float> a(n), b(n);
  dequantize_row(tx, x, a.data(), n);
  dequantize_row(ty, y, b.data(), n);
  double sum = 0.0;
  for (int j = 0; j < n; ++j) sum += std::fabs(double{a[j]} * double{b[j]});
  return sum;
}

template <typename X, typename Y>
using DotFn = float (*)(int, const X*, const Y*);

// One kernel and its reference, and the tensor types that dequantize their operands.
template <typename X, typename Y>
struct Kernel {
  const char* name;
  TensorType x_type;
  TensorType y_type;
  DotFn<X, Y> reference;
  DotFn<X, Y> neon;

  void close(Checks& checks, const std::string& what, const std::vector<X>& x, const std::vector<Y>& y, int n) const {
    checks.close(std::string(name) + " " + what + " n=" + std::to_string(n), reference(n, x.data(), y.data()),
                 neon(n, x.data(), y.data()), magnitude(x_type, x.data(), y_type, y.data(), n));
  }
  void exact(Checks& checks, const std::string& what, const std::vector<X>& x, const std::vector<Y>& y, int n) const {
    checks.exact(std::string(name) + " " + what + " n=" + std::to_string(n), reference(n, x.data(), y.data()),
                 neon(n, x.data(), y.data()));
  }
};

// q8_K activations with the given quants, unit scale and their block sums.
std::vector<block_q8_K> q8_K_blocks(int nb, int8_t (*quant)(int j)) {
  std::vector<block_q8_K> v(nb);
  for (auto& b : v) {
    b.d = 1.0f;
    for (int j = 0; j < kQK_K; ++j) b.qs[j] = quant(j);
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += b.qs[16 * g + j];
      b.bsums[g] = static_cast<int16_t>(sum);
    }
  }
  return v;
}

std::vector<block_q8_K> random_q8_K(Random& rnd, int nb) {
  auto v = q8_K_blocks(nb, [](int) -> int8_t { return 0; });
  for (auto& b : v) {
    b.d = fp16_to_fp32(rnd.scale16());
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) {
        b.qs[16 * g + j] = rnd.quant8();
        sum += b.qs[16 * g + j];
      }
      b.bsums[g] = static_cast<int16_t>(sum);
    }
  }
  return v;
}

// Activations of the extreme-value checks: all +127, all -127, and +127, +127, -127
// repeated (a pattern that does not cancel against uniform weights).
struct Extreme {
  const char* name;
  int8_t (*quant)(int j);
};
constexpr Extreme kExtremes[] = {
    {"y=+127", [](int) -> int8_t { return 127; }},
    {"y=-127", [](int) -> int8_t { return -127; }},
    {"y=(+127,+127,-127)", [](int j) -> int8_t { return j % 3 == 2 ? -127 : 127; }},
};

std::vector<block_q8_0> q8_0_blocks(int nb, int8_t (*quant)(int j)) {
  std::vector<block_q8_0> v(nb);
  for (auto& b : v) {
    b.d = kHalfOne;
    for (int j = 0; j < kQK8_0; ++j) b.qs[j] = quant(j);
  }
  return v;
}

void test_q8_0(Checks& checks, Random& rnd) {
  const Kernel<block_q8_0, block_q8_0> k{"q8_0", TensorType::kQ8_0, TensorType::kQ8_0, vec_dot_q8_0_q8_0,
                                         vec_dot_q8_0_q8_0_neon};
  for (int nb : {1, 2, 3, 16, 128}) {
    const int n = kQK8_0 * nb;
    k.close(checks, "quantized", quantized<block_q8_0>(quantize_row_q8_0, rnd.gaussian(n, 0.08f), kQK8_0),
            quantized<block_q8_0>(quantize_row_q8_0, rnd.gaussian(n, 1.0f), kQK8_0), n);
  }
  for (int nb : {1, 3, 64}) {
    std::vector<block_q8_0> x(nb), y(nb);
    for (int i = 0; i < nb; ++i) {
      x[i].d = rnd.scale16();
      y[i].d = rnd.scale16();
      for (int j = 0; j < kQK8_0; ++j) {
        x[i].qs[j] = rnd.quant8();
        y[i].qs[j] = rnd.quant8();
      }
    }
    k.close(checks, "random bytes", x, y, kQK8_0 * nb);
  }
  // Three blocks: the two-block step and the odd one after it.
  const auto plus = q8_0_blocks(3, [](int) -> int8_t { return 127; });
  for (const Extreme& e : kExtremes)
    k.exact(checks, std::string("x=+127 ") + e.name, plus, q8_0_blocks(3, e.quant), 96);
  const auto minus = q8_0_blocks(3, [](int) -> int8_t { return -128; });
  k.exact(checks, "x=-128 y=-128", minus, minus, 96);
}

void test_q4_0(Checks& checks, Random& rnd) {
  const Kernel<block_q4_0, block_q8_0> k{"q4_0", TensorType::kQ4_0, TensorType::kQ8_0, vec_dot_q4_0_q8_0,
                                         vec_dot_q4_0_q8_0_neon};
  for (int nb : {1, 2, 3, 16, 128}) {
    const int n = kQK4_0 * nb;
    k.close(checks, "quantized", quantized<block_q4_0>(quantize_row_q4_0, rnd.gaussian(n, 0.08f), kQK4_0),
            quantized<block_q8_0>(quantize_row_q8_0, rnd.gaussian(n, 1.0f), kQK8_0), n);
  }
  for (int nb : {1, 3, 64}) {
    std::vector<block_q4_0> x(nb);
    std::vector<block_q8_0> y(nb);
    for (int i = 0; i < nb; ++i) {
      x[i].d = rnd.scale16();
      y[i].d = rnd.scale16();
      for (uint8_t& q : x[i].qs) q = rnd.byte();
      for (int8_t& q : y[i].qs) q = rnd.quant8();
    }
    k.close(checks, "random bytes", x, y, kQK4_0 * nb);
  }
  // Nibbles 15 (+7), 0 (-8), and 15 low / 0 high.
  for (uint8_t packed : {uint8_t{0xff}, uint8_t{0x00}, uint8_t{0x0f}}) {
    std::vector<block_q4_0> x(3);
    for (auto& b : x) {
      b.d = kHalfOne;
      for (uint8_t& q : b.qs) q = packed;
    }
    char what[32];
    std::snprintf(what, sizeof what, "qs=0x%02x ", packed);
    for (const Extreme& e : kExtremes) k.exact(checks, what + std::string(e.name), x, q8_0_blocks(3, e.quant), 96);
  }
}

// Q4_K and Q5_K share their scales and tests; `fill` sets the quant bytes of a block
// (qs, and qh for Q5_K) to one value.
template <typename Block>
void test_k_quant_4_5(Checks& checks, Random& rnd, const Kernel<Block, block_q8_K>& k,
                      void (*quantize)(const float*, void*, int64_t), void (*fill)(Block&, uint8_t)) {
  for (int nb : {1, 2, 3, 16}) {
    const int n = kQK_K * nb;
    // A mean away from zero makes the mins matter.
    k.close(checks, "quantized", quantized<Block>(quantize, rnd.gaussian(n, 0.05f, 0.02f), kQK_K),
            quantized<block_q8_K>(quantize_row_q8_K, rnd.gaussian(n, 1.0f), kQK_K), n);
  }
  for (int nb : {1, 3, 16}) {
    std::vector<Block> x(nb);
    for (auto& b : x) {
      auto* bytes = reinterpret_cast<uint8_t*>(&b);
      for (size_t j = 0; j < sizeof b; ++j) bytes[j] = rnd.byte();
      b.d = rnd.scale16(true);
      b.dmin = rnd.scale16(true);
    }
    k.close(checks, "random bytes", x, random_q8_K(rnd, nb), kQK_K * nb);
  }
  // Unit scales: the integer sums, scales and mins of every sub-block, must be exact.
  for (uint8_t value : {uint8_t{0xff}, uint8_t{0x00}, uint8_t{0xa5}}) {
    std::vector<Block> x(2);
    for (auto& b : x) {
      b.d = kHalfOne;
      b.dmin = kHalfOne;
      for (uint8_t& s : b.scales) s = 0xff;  // every scale and min 63
      fill(b, value);
    }
    char what[48];
    std::snprintf(what, sizeof what, "quant bytes 0x%02x sc=m=63 ", value);
    for (const Extreme& e : kExtremes) k.exact(checks, what + std::string(e.name), x, q8_K_blocks(2, e.quant), 512);
  }
  // Each sub-block its own scale and min, top bits included, to pin the unpacking.
  std::vector<Block> x(1);
  x[0].d = kHalfOne;
  x[0].dmin = kHalfOne;
  const uint8_t sc[8] = {1, 62, 17, 33, 63, 16, 48, 5};
  const uint8_t m[8] = {60, 3, 47, 21, 31, 63, 0, 40};
  k_quant_pack_scale_min(sc, m, x[0].scales);
  fill(x[0], 0xff);
  for (const Extreme& e : kExtremes)
    k.exact(checks, std::string("distinct scales ") + e.name, x, q8_K_blocks(1, e.quant), 256);
}

void test_q4_K(Checks& checks, Random& rnd) {
  const Kernel<block_q4_K, block_q8_K> k{"q4_K", TensorType::kQ4_K, TensorType::kQ8_K, vec_dot_q4_K_q8_K,
                                         vec_dot_q4_K_q8_K_neon};
  test_k_quant_4_5<block_q4_K>(checks, rnd, k, quantize_row_q4_K,
                               [](block_q4_K& b, uint8_t v) { std::fill(std::begin(b.qs), std::end(b.qs), v); });
}

void test_q5_K(Checks& checks, Random& rnd) {
  const Kernel<block_q5_K, block_q8_K> k{"q5_K", TensorType::kQ5_K, TensorType::kQ8_K, vec_dot_q5_K_q8_K,
                                         vec_dot_q5_K_q8_K_neon};
  test_k_quant_4_5<block_q5_K>(checks, rnd, k, quantize_row_q5_K, [](block_q5_K& b, uint8_t v) {
    std::fill(std::begin(b.qs), std::end(b.qs), v);
    std::fill(std::begin(b.qh), std::end(b.qh), v);
  });
}

void test_q6_K(Checks& checks, Random& rnd) {
  const Kernel<block_q6_K, block_q8_K> k{"q6_K", TensorType::kQ6_K, TensorType::kQ8_K, vec_dot_q6_K_q8_K,
                                         vec_dot_q6_K_q8_K_neon};
  for (int nb : {1, 2, 3, 16}) {
    const int n = kQK_K * nb;
    k.close(checks, "quantized", quantized<block_q6_K>(quantize_row_q6_K, rnd.gaussian(n, 0.05f), kQK_K),
            quantized<block_q8_K>(quantize_row_q8_K, rnd.gaussian(n, 1.0f), kQK_K), n);
  }
  for (int nb : {1, 3, 16}) {
    std::vector<block_q6_K> x(nb);
    for (auto& b : x) {
      auto* bytes = reinterpret_cast<uint8_t*>(&b);
      for (size_t j = 0; j < sizeof b; ++j) bytes[j] = rnd.byte();
      b.d = rnd.scale16();
    }
    k.close(checks, "random bytes", x, random_q8_K(rnd, nb), kQK_K * nb);
  }
  // q = 63 (+31) and q = 0 (-32) under the extreme scales, and a mix of all 6-bit codes.
  struct Case {
    const char* name;
    uint8_t ql, qh;
    int8_t scale;
  };
  for (const Case& c : {Case{"q=63 scale=127", 0xff, 0xff, 127}, Case{"q=0 scale=-128", 0x00, 0x00, -128},
                        Case{"q mixed scale=-127", 0x5a, 0xc6, -127}}) {
    std::vector<block_q6_K> x(2);
    for (auto& b : x) {
      b.d = kHalfOne;
      std::fill(std::begin(b.ql), std::end(b.ql), c.ql);
      std::fill(std::begin(b.qh), std::end(b.qh), c.qh);
      std::fill(std::begin(b.scales), std::end(b.scales), c.scale);
    }
    for (const Extreme& e : kExtremes)
      k.exact(checks, std::string(c.name) + " " + e.name, x, q8_K_blocks(2, e.quant), 512);
  }
  // Each sub-block its own scale, to pin which scale meets which quants.
  std::vector<block_q6_K> x(1);
  x[0].d = kHalfOne;
  for (int j = 0; j < kQK_K / 2; ++j) x[0].ql[j] = static_cast<uint8_t>(j * 37);
  for (int j = 0; j < kQK_K / 4; ++j) x[0].qh[j] = static_cast<uint8_t>(j * 91 + 7);
  for (int s = 0; s < kQK_K / 16; ++s) x[0].scales[s] = static_cast<int8_t>((s % 2 ? -1 : 1) * (1 << (s % 7)));
  for (const Extreme& e : kExtremes)
    k.exact(checks, std::string("distinct scales ") + e.name, x, q8_K_blocks(1, e.quant), 256);
}

void test_f16(Checks& checks, Random& rnd) {
  auto check = [&](const std::string& what, const std::vector<uint16_t>& x, const std::vector<float>& y) {
    const int n = static_cast<int>(x.size());
    double magnitude = 0.0;
    for (int j = 0; j < n; ++j) magnitude += std::fabs(double{fp16_to_fp32(x[j])} * double{y[j]});
    checks.close("f16 " + what + " n=" + std::to_string(n), vec_dot_f16_f32(n, x.data(), y.data()),
                 vec_dot_f16_f32_neon(n, x.data(), y.data()), magnitude);
  };
  // Lengths around the 16-wide steps and 64-element runs, and the scalar tail.
  for (int n : {1, 7, 15, 16, 63, 64, 65, 127, 1000, 4096}) {
    const auto w = rnd.gaussian(n, 0.1f);
    std::vector<uint16_t> x(n);
    fp32_to_fp16_row(w.data(), x.data(), n);
    check("gaussian", x, rnd.gaussian(n, 1.0f));
  }
  const int n = 200;
  std::vector<float> one(n, 1.0f), sign(n);
  std::vector<uint16_t> largest(n, 0x7bff), alternating(n), tiny(n, 0x0001);
  for (int j = 0; j < n; ++j) {
    sign[j] = j % 2 ? -1.0f : 1.0f;
    alternating[j] = j % 2 ? 0xfbff : 0x7bff;  // -+65504
  }
  check("x=65504 y=1", largest, one);
  check("x=+-65504 y=+-1", alternating, sign);
  check("x=2^-24 (subnormal) y=1", tiny, one);

  // Tiles of rows by tokens give each (row, token) exactly the row kernel's result.
  for (int len : {7, 64, 100, 1000}) {
    const int rows = 4, tokens = 5;
    const size_t stride = len + 3;
    std::vector<uint16_t> w(rows * stride);
    const auto values = rnd.gaussian(static_cast<int>(w.size()), 0.1f);
    fp32_to_fp16_row(values.data(), w.data(), static_cast<int64_t>(w.size()));
    const auto x = rnd.gaussian(tokens * len, 1.0f);
    std::vector<float> y(tokens * rows);
    dot_f16_rows_neon(w.data(), stride, rows, x.data(), len, tokens, len, y.data(), rows);
    for (int r = 0; r < rows; ++r) {
      for (int t = 0; t < tokens; ++t) {
        checks.exact("f16 tile n=" + std::to_string(len) + " row " + std::to_string(r) + " token " + std::to_string(t),
                     vec_dot_f16_f32_neon(len, &w[r * stride], &x[t * len]), y[t * rows + r]);
      }
    }
  }
}

// A matrix of `type` in the file layout (rows of varying scale), with the extreme
// quants the packed sums must hold without overflow in row 1's second block: -128 in
// q8_0; every quant 31 with the largest scales and mins in q5_K (q4_K: 15); every quant
// 63 with scales at both int8 ends in q6_K.
std::vector<uint8_t> packed_test_matrix(Random& rnd, TensorType type, int n_in, int n_out) {
  const size_t row = tensor_row_bytes(type, n_in);
  std::vector<uint8_t> data(row * n_out);
  for (int o = 0; o < n_out; ++o) {
    const auto values = rnd.gaussian(n_in, 0.01f + 0.1f * static_cast<float>(o % 7));
    if (!quantize_row(type, values.data(), data.data() + o * row, n_in).is_ok()) std::abort();
  }
  if (n_out < 2 || n_in < 2 * quant_block_size(type)) return data;
  uint8_t* second = data.data() + row;
  const uint8_t sc[8] = {63, 63, 63, 63, 63, 63, 63, 63}, m[8] = {63, 0, 63, 0, 63, 0, 63, 0};
  if (type == TensorType::kQ8_0) reinterpret_cast<block_q8_0*>(second)[1].qs[5] = -128;
  if (type == TensorType::kQ4_K) {
    block_q4_K& b = reinterpret_cast<block_q4_K*>(second)[1];
    k_quant_pack_scale_min(sc, m, b.scales);
    std::memset(b.qs, 0xff, sizeof b.qs);
  }
  if (type == TensorType::kQ5_K) {
    block_q5_K& b = reinterpret_cast<block_q5_K*>(second)[1];
    k_quant_pack_scale_min(sc, m, b.scales);
    std::memset(b.qs, 0xff, sizeof b.qs);
    std::memset(b.qh, 0xff, sizeof b.qh);
  }
  if (type == TensorType::kQ6_K) {
    block_q6_K& b = reinterpret_cast<block_q6_K*>(second)[1];
    std::memset(b.ql, 0xff, sizeof b.ql);
    std::memset(b.qh, 0xff, sizeof b.qh);
    for (int i = 0; i < 16; ++i) b.scales[i] = static_cast<int8_t>(i % 2 ? 127 : -128);
  }
  return data;
}

// The packed kernels run where the CPU has SDOT, whatever the build targets; elsewhere
// every type stays in the file layout.
void test_packed(Checks& checks, Random& rnd) {
  const TensorType types[] = {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ5_K,
                              TensorType::kQ6_K};
  if (!packed_neon_kernels_available()) {
    for (TensorType type : types) {
      checks.exact("no SDOT: " + std::string(tensor_type_name(type)) + " stays in the file layout", 0.0f,
                   packing_supported(type) ? 1.0f : 0.0f);
    }
    return;
  }
  for (TensorType type : types) {
    const bool k_quant = type == TensorType::kQ4_K || type == TensorType::kQ5_K || type == TensorType::kQ6_K;
    const int unit = k_quant ? 256 : 32;
    for (int n_in : {unit, 3 * unit, 2048}) {
      for (int n_out : {1, 37, 100}) {
        const std::vector<uint8_t> data = packed_test_matrix(rnd, type, n_in, n_out);
        const WeightMatrix w{type, n_in, n_out, data.data(), tensor_row_bytes(type, n_in)};
        std::vector<uint8_t> storage(packed_matrix_bytes(type, n_in, n_out) + 64);
        uint8_t* packed = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
        pack_matrix(w, packed);
        for (int n_tokens : {1, 2, 3, 5}) {
          // Activations as matmul makes them, with the sums the packed product reads.
          const TensorType act = k_quant ? TensorType::kQ8_K : TensorType::kQ8_0;
          const size_t row = tensor_row_bytes(act, n_in);
          std::vector<uint8_t> rows(row * n_tokens);
          for (int t = 0; t < n_tokens; ++t) {
            if (!quantize_row(act, rnd.gaussian(n_in, 1.0f).data(), rows.data() + t * row, n_in).is_ok()) std::abort();
          }
          const int nb = n_in / 32, nsb = n_in / 256;
          std::vector<float> d(static_cast<size_t>(nb) * n_tokens);
          std::vector<int32_t> sum(d.size());
          std::vector<int16_t> sums32(static_cast<size_t>(nsb) * 8 * n_tokens);
          PackedActivations a{rows.data(), row, nullptr, nullptr, 0, nullptr};
          if (k_quant) {
            packed_activation_sums_k(rows.data(), row, n_tokens, nsb, sums32.data());
            a.sums32 = sums32.data();
          } else {
            packed_activation_sums(rows.data(), row, n_tokens, nb, d.data(), sum.data());
            a = {rows.data(), row, d.data(), sum.data(), nb, nullptr};
          }
          std::vector<float> want(static_cast<size_t>(n_tokens) * n_out), got(want.size(), NAN);
          const int64_t pairs = packed_pairs(n_out);
          packed_product_reference(type, packed, n_in, n_out, a, n_tokens, want.data(), 0, pairs);
          // Two ranges of pairs, as two threads take them.
          packed_product_neon(type, packed, n_in, n_out, a, n_tokens, got.data(), 0, pairs / 2);
          packed_product_neon(type, packed, n_in, n_out, a, n_tokens, got.data(), pairs / 2, pairs);
          int differ = 0;
          for (size_t i = 0; i < want.size(); ++i)
            differ += std::bit_cast<uint32_t>(want[i]) != std::bit_cast<uint32_t>(got[i]);
          checks.exact("packed " + std::string(tensor_type_name(type)) + " " + std::to_string(n_out) + "x" +
                           std::to_string(n_in) + " tokens " + std::to_string(n_tokens) +
                           ": results that differ from the reference's bits",
                       0.0f, static_cast<float>(differ));
        }
      }
    }
  }
}

}  // namespace
}  // namespace clusterd

// Optional argument: "sdot" or "no-sdot", what the CPU it runs on (qemu's -cpu) has;
// the run detection must agree.
int main(int argc, char** argv) {
  using namespace clusterd;
  std::printf("# int8 row products: %s; packed kernels: %s\n",
              neon_kernels_use_dotprod() ? "SDOT (vdotq_s32)" : "widening (vmull_s8/vpadalq_s16)",
              packed_neon_kernels_available() ? "SDOT" : "not available");
  Checks checks;
  if (argc > 1) {
    const std::string expect = argv[1];
    if (expect != "sdot" && expect != "no-sdot") {
      std::fprintf(stderr, "usage: %s [sdot|no-sdot]\n", argv[0]);
      return 2;
    }
    checks.exact("the CPU's SDOT is detected as the test was told (" + expect + ")", expect == "sdot" ? 1.0f : 0.0f,
                 cpu_has_arm_dotprod() ? 1.0f : 0.0f);
  }
  Random rnd;
  test_q8_0(checks, rnd);
  test_q4_0(checks, rnd);
  test_q4_K(checks, rnd);
  test_q5_K(checks, rnd);
  test_q6_K(checks, rnd);
  test_f16(checks, rnd);
  test_packed(checks, rnd);
  return checks.finish();
}
