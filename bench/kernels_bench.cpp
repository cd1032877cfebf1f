// Single-threaded matrix-vector products over a 4096 x 4096 weight matrix of each type,
// once per dot-product kernel this CPU can run (scalar, AVX2, AVX-512 VNNI, and the
// packed layout of packed.h where the type packs on this CPU). Prints the
// median of 7 runs as ns per row and GB/s of weights read, and the largest difference
// from the scalar result relative to the row's largest |output|.
//
//   kernels_bench [rows cols]     (cols a multiple of 256)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/matmul.h"
#include "clusterd/engine/packed.h"
#include "clusterd/engine/quant.h"

namespace clusterd {
namespace {

using RowDot = float (*)(int n, const void* weight_row, const void* activations);

struct Kernel {
  const char* variant;  // "scalar", "avx2", "avx512"
  RowDot dot;
};

// The row kernels of each weight type, scalar first; a variant the CPU lacks is left out.
std::vector<Kernel> kernels_for(TensorType type) {
  const bool avx2 = cpu_has_avx2();
  const bool avx512 = cpu_has_avx512_vnni();
  std::vector<Kernel> k;
  auto add = [&](bool available, const char* variant, RowDot dot) {
    if (available) k.push_back({variant, dot});
  };
#define CLUSTERD_ROW_DOT(fn, W, A) \
  [](int n, const void* w, const void* a) { return fn(n, static_cast<const W*>(w), static_cast<const A*>(a)); }
  switch (type) {
    case TensorType::kF32:
      add(true, "scalar", CLUSTERD_ROW_DOT(vec_dot_f32, float, float));
      add(avx2, "avx2", CLUSTERD_ROW_DOT(vec_dot_f32_avx2, float, float));
      break;
    case TensorType::kF16:
      add(true, "scalar", CLUSTERD_ROW_DOT(vec_dot_f16_f32, uint16_t, float));
      add(avx2, "avx2", CLUSTERD_ROW_DOT(vec_dot_f16_f32_avx2, uint16_t, float));
      break;
    case TensorType::kBF16:
      add(true, "scalar", CLUSTERD_ROW_DOT(vec_dot_bf16_f32, uint16_t, float));
      add(avx2, "avx2", CLUSTERD_ROW_DOT(vec_dot_bf16_f32_avx2, uint16_t, float));
      break;
    case TensorType::kQ8_0:
      add(true, "scalar", CLUSTERD_ROW_DOT(vec_dot_q8_0_q8_0, block_q8_0, block_q8_0));
      add(avx2, "avx2", CLUSTERD_ROW_DOT(vec_dot_q8_0_q8_0_avx2, block_q8_0, block_q8_0));
      add(avx512, "avx512", CLUSTERD_ROW_DOT(vec_dot_q8_0_q8_0_avx512, block_q8_0, block_q8_0));
      break;
    case TensorType::kQ4_0:
      add(true, "scalar", CLUSTERD_ROW_DOT(vec_dot_q4_0_q8_0, block_q4_0, block_q8_0));
      add(avx2, "avx2", CLUSTERD_ROW_DOT(vec_dot_q4_0_q8_0_avx2, block_q4_0, block_q8_0));
      add(avx512, "avx512", CLUSTERD_ROW_DOT(vec_dot_q4_0_q8_0_avx512, block_q4_0, block_q8_0));
      break;
    case TensorType::kQ4_K:
      add(true, "scalar", CLUSTERD_ROW_DOT(vec_dot_q4_K_q8_K, block_q4_K, block_q8_K));
      add(avx2, "avx2", CLUSTERD_ROW_DOT(vec_dot_q4_K_q8_K_avx2, block_q4_K, block_q8_K));
      add(avx512, "avx512", CLUSTERD_ROW_DOT(vec_dot_q4_K_q8_K_avx512, block_q4_K, block_q8_K));
      break;
    case TensorType::kQ5_K:
      add(true, "scalar", CLUSTERD_ROW_DOT(vec_dot_q5_K_q8_K, block_q5_K, block_q8_K));
      add(avx2, "avx2", CLUSTERD_ROW_DOT(vec_dot_q5_K_q8_K_avx2, block_q5_K, block_q8_K));
      add(avx512, "avx512", CLUSTERD_ROW_DOT(vec_dot_q5_K_q8_K_avx512, block_q5_K, block_q8_K));
      break;
    case TensorType::kQ6_K:
      add(true, "scalar", CLUSTERD_ROW_DOT(vec_dot_q6_K_q8_K, block_q6_K, block_q8_K));
      add(avx2, "avx2", CLUSTERD_ROW_DOT(vec_dot_q6_K_q8_K_avx2, block_q6_K, block_q8_K));
      add(avx512, "avx512", CLUSTERD_ROW_DOT(vec_dot_q6_K_q8_K_avx512, block_q6_K, block_q8_K));
      break;
    default: break;
  }
#undef CLUSTERD_ROW_DOT
  return k;
}

const char* type_name(TensorType type) {
  switch (type) {
    case TensorType::kF32: return "f32";
    case TensorType::kF16: return "f16";
    case TensorType::kBF16: return "bf16";
    case TensorType::kQ8_0: return "q8_0";
    case TensorType::kQ4_0: return "q4_0";
    case TensorType::kQ4_K: return "q4_K";
    case TensorType::kQ5_K: return "q5_K";
    case TensorType::kQ6_K: return "q6_K";
    default: return "?";
  }
}

// Weights quantized from Gaussian rows, as a model's would be.
std::vector<uint8_t> random_matrix(TensorType type, int rows, int cols, std::mt19937& rng) {
  const size_t row_bytes = tensor_row_bytes(type, cols);
  std::vector<uint8_t> w(row_bytes * rows);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> row(cols);
  for (int r = 0; r < rows; ++r) {
    for (float& v : row) v = dist(rng);
    if (!quantize_row(type, row.data(), w.data() + r * row_bytes, cols).is_ok()) std::abort();
  }
  return w;
}

// One matrix-vector product; returns its wall time in seconds.
double time_matvec(RowDot dot, const std::vector<uint8_t>& w, size_t row_bytes, const void* act, int rows, int cols,
                   std::vector<float>& out) {
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < rows; ++r) out[r] = dot(cols, w.data() + r * row_bytes, act);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The same product over the packed copy (one token, as decode runs it).
double report_packed(TensorType type, const std::vector<uint8_t>& w, int rows, int cols,
                     const std::vector<uint8_t>& act, const std::vector<float>& reference, double scalar_s) {
  constexpr int kRuns = 7;
  const WeightMatrix m{type, cols, rows, w.data(), tensor_row_bytes(type, cols)};
  const size_t bytes = packed_matrix_bytes(type, cols, rows);
  std::vector<uint8_t> storage(bytes + 64);
  uint8_t* packed = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
  pack_matrix(m, packed);
  std::vector<float> d(cols / 32);
  std::vector<int32_t> sum(cols / 32);
  std::vector<int16_t> sums32(cols / 256 * 8);
  PackedActivations a;
  if (activation_type_for(type) == TensorType::kQ8_K) {  // the K-quants
    packed_activation_sums_k(act.data(), act.size(), 1, cols / 256, sums32.data());
    a = {act.data(), act.size(), nullptr, nullptr, 0, sums32.data()};
  } else {
    packed_activation_sums(act.data(), act.size(), 1, cols / 32, d.data(), sum.data());
    a = {act.data(), act.size(), d.data(), sum.data(), cols / 32, nullptr};
  }
  std::vector<float> out(rows);
  std::vector<double> times;
  for (int i = 0; i <= kRuns; ++i) {  // the first run warms caches and clocks
    const auto start = std::chrono::steady_clock::now();
    packed_product(type, packed, cols, rows, a, 1, out.data(), 0, packed_pairs(rows));
    if (i > 0) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  const double s = times[kRuns / 2];
  double max_ref = 0, max_diff = 0;
  for (int r = 0; r < rows; ++r) {
    max_ref = std::max(max_ref, std::fabs(double{reference[r]}));
    max_diff = std::max(max_diff, std::fabs(double{out[r]} - reference[r]));
  }
  const double diff = max_ref > 0 ? max_diff / max_ref : max_diff;
  std::printf("%-6s %-7s %10.1f %10.1f %9.2f %8.2fx %10.1e\n", type_name(type), "packed", double(bytes) / (1 << 20),
              s * 1e9 / rows, double(bytes) / s * 1e-9, scalar_s / s, diff);
  return diff;
}

int run(int rows, int cols) {
  constexpr int kRuns = 7;
  std::mt19937 rng(7);
  double worst = 0;
  std::printf("%d x %d weights, 1 thread, median of %d matrix-vector products\n", rows, cols, kRuns);
  std::printf("cpu: avx2 %s, avx-vnni %s, avx512-vnni %s\n\n", cpu_has_avx2() ? "yes" : "no",
              cpu_has_avx_vnni() ? "yes" : "no", cpu_has_avx512_vnni() ? "yes" : "no");
  std::printf("%-6s %-7s %10s %10s %9s %9s %10s\n", "type", "kernel", "MiB", "ns/row", "GB/s", "speedup", "max diff");

  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0, TensorType::kQ4_0,
                          TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K}) {
    const size_t row_bytes = tensor_row_bytes(type, cols);
    const std::vector<uint8_t> w = random_matrix(type, rows, cols, rng);
    // Activations in the type the weights pair with, converted once as matmul() does.
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(cols);
    for (float& v : x) v = dist(rng);
    const TensorType act_type = activation_type_for(type);
    std::vector<uint8_t> act(tensor_row_bytes(act_type, cols));
    if (!quantize_row(act_type, x.data(), act.data(), cols).is_ok()) std::abort();

    std::vector<float> reference(rows), out(rows);
    double scalar_s = 0;
    for (const Kernel& k : kernels_for(type)) {
      std::vector<double> times;
      time_matvec(k.dot, w, row_bytes, act.data(), rows, cols, out);  // warm caches and clocks
      for (int i = 0; i < kRuns; ++i) times.push_back(time_matvec(k.dot, w, row_bytes, act.data(), rows, cols, out));
      std::sort(times.begin(), times.end());
      const double s = times[kRuns / 2];
      if (scalar_s == 0) {
        scalar_s = s;
        reference = out;
      }
      double max_ref = 0, max_diff = 0;
      for (int r = 0; r < rows; ++r) {
        max_ref = std::max(max_ref, std::fabs(double{reference[r]}));
        max_diff = std::max(max_diff, std::fabs(double{out[r]} - reference[r]));
      }
      const double diff = max_ref > 0 ? max_diff / max_ref : max_diff;
      worst = std::max(worst, diff);
      std::printf("%-6s %-7s %10.1f %10.1f %9.2f %8.2fx %10.1e\n", type_name(type), k.variant,
                  double(w.size()) / (1 << 20), s * 1e9 / rows, double(w.size()) / s * 1e-9, scalar_s / s, diff);
    }
    if (packing_supported(type)) worst = std::max(worst, report_packed(type, w, rows, cols, act, reference, scalar_s));
  }
  // Every kernel must agree with the scalar one to float rounding (ctest runs this small).
  if (worst > 1e-4) {
    std::fprintf(stderr, "kernels_bench: a kernel differs from the scalar reference by %.1e (relative)\n", worst);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace clusterd

int main(int argc, char** argv) {
  int rows = 4096, cols = 4096;
  if (argc == 3) {
    rows = std::atoi(argv[1]);
    cols = std::atoi(argv[2]);
  }
  if (argc != 1 && argc != 3) {
    std::fprintf(stderr, "usage: %s [rows cols]\n", argv[0]);
    return 2;
  }
  if (rows <= 0 || cols <= 0 || cols % 256 != 0) {
    std::fprintf(stderr, "kernels_bench: rows must be positive and cols a positive multiple of 256 (got %d x %d)\n",
                 rows, cols);
    return 2;
  }
  return clusterd::run(rows, cols);
}
