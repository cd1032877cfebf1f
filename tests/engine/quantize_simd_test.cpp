// The AVX-512 and AVX2 activation quantizers and fp16 widening write exactly the bytes
// of their scalar references, on random rows, rows full of rounding ties, zero blocks
// and blocks whose largest magnitude appears with both signs; the VBMI q4_0 kernel
// equals the AVX-512 one bit for bit.
#include "clusterd/engine/quantize_avx512.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/quant.h"
#include "clusterd/engine/quantize_avx2.h"

namespace clusterd {
namespace {

// Rows of 1024 elements: random normals, x.5 ties after scaling, a zero block, and a
// block where -amax comes before +amax.
std::vector<std::vector<float>> awkward_rows() {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < 20; ++r) {
    std::vector<float> row(1024);
    for (float& v : row) v = normal(rng) * (r + 1) * 0.25f;
    rows.push_back(row);
  }
  std::vector<float> ties(1024);
  for (int j = 0; j < 1024; ++j) ties[j] = (j % 32 == 0) ? 127.0f : static_cast<float>(j % 255 - 127) + 0.5f;
  rows.push_back(ties);
  std::vector<float> mixed(1024, 0.0f);
  for (int j = 256; j < 512; ++j) mixed[j] = normal(rng);
  mixed[300] = -9.0f;
  mixed[400] = 9.0f;
  rows.push_back(mixed);
  return rows;
}

// One family's quantizers and widening.
struct QuantizeFamily {
  const char* name;
  const char* test_name;
  bool (*available)();
  void (*q8_0)(const float*, void*, int64_t);
  void (*q8_K)(const float*, void*, int64_t);
  void (*widen)(const uint16_t*, float*, int64_t);
};

class QuantizeSimd : public ::testing::TestWithParam<QuantizeFamily> {
 protected:
  void SetUp() override {
    if (!GetParam().available()) GTEST_SKIP() << "this CPU lacks " << GetParam().name;
  }
};

TEST_P(QuantizeSimd, Q8_0MatchesReferenceByteForByte) {
  for (const auto& row : awkward_rows()) {
    const int64_t n = static_cast<int64_t>(row.size());
    std::vector<block_q8_0> ref(n / kQK8_0), simd(n / kQK8_0);
    quantize_row_q8_0(row.data(), ref.data(), n);
    GetParam().q8_0(row.data(), simd.data(), n);
    EXPECT_EQ(0, std::memcmp(ref.data(), simd.data(), ref.size() * sizeof(block_q8_0)));
  }
}

TEST_P(QuantizeSimd, Q8_KMatchesReferenceByteForByte) {
  for (const auto& row : awkward_rows()) {
    const int64_t n = static_cast<int64_t>(row.size());
    std::vector<block_q8_K> ref(n / kQK_K), simd(n / kQK_K);
    quantize_row_q8_K(row.data(), ref.data(), n);
    GetParam().q8_K(row.data(), simd.data(), n);
    EXPECT_EQ(0, std::memcmp(ref.data(), simd.data(), ref.size() * sizeof(block_q8_K)));
  }
}

TEST_P(QuantizeSimd, Fp16WideningMatchesReferenceForEveryNonNaNHalf) {
  std::vector<uint16_t> halves;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const bool nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
    if (!nan) halves.push_back(static_cast<uint16_t>(h));
  }
  halves.push_back(0x3c00);  // a length that leaves a tail
  std::vector<float> ref(halves.size()), simd(halves.size());
  fp16_to_fp32_row(halves.data(), ref.data(), static_cast<int64_t>(halves.size()));
  GetParam().widen(halves.data(), simd.data(), static_cast<int64_t>(halves.size()));
  EXPECT_EQ(0, std::memcmp(ref.data(), simd.data(), ref.size() * sizeof(float)));
}

// Every tail length widens exactly n halves and writes nothing past them.
TEST_P(QuantizeSimd, Fp16WideningWritesExactlyNFloats) {
  std::vector<uint16_t> halves(40);
  for (size_t i = 0; i < halves.size(); ++i) halves[i] = fp32_to_fp16(static_cast<float>(i) + 0.5f);
  for (int64_t n = 0; n <= 33; ++n) {
    std::vector<float> out(40, -7.0f);
    GetParam().widen(halves.data(), out.data(), n);
    for (int64_t i = 0; i < 40; ++i) {
      ASSERT_EQ(out[i], i < n ? static_cast<float>(i) + 0.5f : -7.0f) << "n " << n << " element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, QuantizeSimd,
                         ::testing::Values(QuantizeFamily{"AVX-512 VNNI", "avx512", cpu_has_avx512_vnni,
                                                          quantize_row_q8_0_avx512, quantize_row_q8_K_avx512,
                                                          fp16_to_fp32_row_avx512},
                                           QuantizeFamily{"AVX2", "avx2", cpu_has_avx2, quantize_row_q8_0_avx2,
                                                          quantize_row_q8_K_avx2, fp16_to_fp32_row_avx2}),
                         [](const auto& info) { return std::string(info.param.test_name); });

// The VBMI q4_0 kernel gathers its loads differently; every row length (full quads,
// a pair and a single block left over) gives the AVX-512 kernel's float exactly.
TEST(KernelsAvx512Vbmi, Q4_0DotEqualsAvx512KernelBitForBit) {
  if (!cpu_has_avx512_vbmi()) GTEST_SKIP() << "no AVX-512 VBMI on this CPU";
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255), quant(-127, 127);
  std::uniform_real_distribution<float> scale(0.001f, 2.0f);
  for (int nb : {1, 2, 3, 4, 5, 6, 7, 8, 64, 67}) {
    std::vector<block_q4_0> x(nb);
    std::vector<block_q8_0> y(nb);
    for (int i = 0; i < nb; ++i) {
      x[i].d = fp32_to_fp16(scale(rng));
      y[i].d = fp32_to_fp16(scale(rng));
      for (auto& q : x[i].qs) q = static_cast<uint8_t>(byte(rng));
      for (auto& q : y[i].qs) q = static_cast<int8_t>(quant(rng));
    }
    const float want = vec_dot_q4_0_q8_0_avx512(nb * kQK4_0, x.data(), y.data());
    const float got = vec_dot_q4_0_q8_0_avx512_vbmi(nb * kQK4_0, x.data(), y.data());
    EXPECT_EQ(std::bit_cast<uint32_t>(want), std::bit_cast<uint32_t>(got)) << nb << " blocks";
  }
}

}  // namespace
}  // namespace clusterd
