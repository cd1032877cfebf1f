// The packed layout (packed.h): the SIMD product equals the scalar reference bit for
// bit; a token's results do not depend on the other tokens of its batch, nor on how
// the row groups are split; and both agree with the file-layout kernels to float
// rounding. matmul uses the packed copy that load_weights makes.
#include "clusterd/engine/packed.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/matmul.h"
#include "clusterd/engine/quant.h"
#include "clusterd/engine/thread_pool.h"

namespace clusterd {
namespace {

// A weight type and the kernel family that runs its packed product.
struct PackedCase {
  TensorType type;
  CpuIsa isa;  // kAvx512, kAvxVnni or kAvx2
};

class Packed : public ::testing::TestWithParam<PackedCase> {
 protected:
  std::mt19937 rng_{20261126};
  TensorType type_ = GetParam().type;

  void SetUp() override {
    const PackedCase& c = GetParam();
    if (c.isa == CpuIsa::kAvx512 && !cpu_has_avx512_vnni()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
    if (c.isa == CpuIsa::kAvxVnni && !cpu_has_avx_vnni()) GTEST_SKIP() << "this CPU has no AVX-VNNI";
    if (c.isa == CpuIsa::kAvx2 && !cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2";
  }

  // The packed product through the case's kernels.
  void product(const uint8_t* packed, int64_t n_in, int64_t n_out, const PackedActivations& a, int n_tokens, float* y,
               int64_t pair_begin, int64_t pair_end) const {
    const CpuIsa isa = GetParam().isa;
    const auto kernels = isa == CpuIsa::kAvx512    ? packed_product_avx512
                         : isa == CpuIsa::kAvxVnni ? packed_product_avx_vnni
                                                   : packed_product_avx2;
    kernels(type_, packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
  }

  std::vector<float> gaussian(int64_t n, float sigma) {
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(n);
    for (float& f : v) f = dist(rng_);
    return v;
  }

  // A matrix of `type` in the file layout, rows of varying scale.
  std::vector<uint8_t> matrix(TensorType type, int64_t n_in, int64_t n_out) {
    const size_t row = tensor_row_bytes(type, n_in);
    std::vector<uint8_t> data(row * n_out);
    for (int64_t o = 0; o < n_out; ++o) {
      const float sigma = std::uniform_real_distribution<float>(0.01f, 2.0f)(rng_);
      EXPECT_TRUE(quantize_row(type, gaussian(n_in, sigma).data(), data.data() + o * row, n_in).is_ok());
    }
    return data;
  }

  // Activations of n_tokens rows in the type `weight` calls for, with their sums.
  struct Activations {
    std::vector<uint8_t> rows;
    std::vector<float> d;
    std::vector<int32_t> sum;
    std::vector<int16_t> sums32;
    PackedActivations view;
  };
  Activations activations(TensorType weight, int64_t n_in, int n_tokens) {
    Activations a;
    const TensorType type = activation_type_for(weight);
    const size_t row = tensor_row_bytes(type, n_in);
    a.rows.resize(row * n_tokens);
    for (int t = 0; t < n_tokens; ++t) {
      EXPECT_TRUE(quantize_row(type, gaussian(n_in, 1.0f).data(), a.rows.data() + t * row, n_in).is_ok());
    }
    if (type == TensorType::kQ8_K) {
      const int nsb = static_cast<int>(n_in / 256);
      a.sums32.resize(static_cast<size_t>(nsb) * 8 * n_tokens);
      packed_activation_sums_k(a.rows.data(), row, n_tokens, nsb, a.sums32.data());
      a.view = {a.rows.data(), row, nullptr, nullptr, 0, a.sums32.data()};
      return a;
    }
    const int nb = static_cast<int>(n_in / 32);
    a.d.resize(static_cast<size_t>(nb) * n_tokens);
    a.sum.resize(a.d.size());
    packed_activation_sums(a.rows.data(), row, n_tokens, nb, a.d.data(), a.sum.data());
    a.view = {a.rows.data(), row, a.d.data(), a.sum.data(), nb, nullptr};
    return a;
  }

  // Block-aligned sizes for the type: Q4_K rows go by 256.
  int64_t unit() const { return quant_block_size(type_); }

  static std::vector<uint8_t> pack(const WeightMatrix& w) {
    std::vector<uint8_t> storage(packed_matrix_bytes(w.type, w.n_in, w.n_out) + 64);
    uint8_t* aligned = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
    pack_matrix(w, aligned);
    return std::vector<uint8_t>(aligned, aligned + packed_matrix_bytes(w.type, w.n_in, w.n_out));
  }
};

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST_P(Packed, SimdEqualsTheScalarReferenceBitForBit) {
  const TensorType type = type_;
  for (int64_t n_in : {unit(), 3 * unit(), int64_t{2048}}) {
    for (int64_t n_out : {1, 16, 37, 100}) {
      const std::vector<uint8_t> data = matrix(type, n_in, n_out);
      const WeightMatrix w{type, n_in, n_out, data.data(), tensor_row_bytes(type, n_in)};
      const std::vector<uint8_t> packed = pack(w);
      for (int n_tokens : {1, 2, 3, 4, 5, 9}) {
        const Activations a = activations(type, n_in, n_tokens);
        std::vector<float> simd(n_tokens * n_out, NAN), scalar(n_tokens * n_out, NAN);
        product(packed.data(), n_in, n_out, a.view, n_tokens, simd.data(), 0, packed_pairs(n_out));
        packed_product_reference(type, packed.data(), n_in, n_out, a.view, n_tokens, scalar.data(), 0,
                                 packed_pairs(n_out));
        for (size_t i = 0; i < simd.size(); ++i) {
          ASSERT_TRUE(same_bits(simd[i], scalar[i])) << "n_in " << n_in << " n_out " << n_out << " tokens " << n_tokens
                                                     << " at " << i << ": " << simd[i] << " vs " << scalar[i];
        }
      }
    }
  }
}

TEST_P(Packed, EachTokenGetsWhatItGetsAloneWhateverThePairSplit) {
  const TensorType type = type_;
  const int64_t n_in = 2 * unit() > 256 ? 2 * unit() : 256, n_out = 150;  // five pairs, the last one partial
  const std::vector<uint8_t> data = matrix(type, n_in, n_out);
  const WeightMatrix w{type, n_in, n_out, data.data(), tensor_row_bytes(type, n_in)};
  const std::vector<uint8_t> packed = pack(w);
  const int n_tokens = 11;
  const Activations a = activations(type, n_in, n_tokens);
  std::vector<float> batched(n_tokens * n_out, NAN);
  // Uneven ranges of pairs, as threads might take them.
  for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 2}, {2, 3}, {3, 5}}) {
    product(packed.data(), n_in, n_out, a.view, n_tokens, batched.data(), begin, end);
  }
  for (int t = 0; t < n_tokens; ++t) {
    PackedActivations one = a.view;
    one.rows += t * one.row_bytes;
    if (one.d) {
      one.d += t * one.nb;
      one.sum += t * one.nb;
    } else {
      one.sums32 += t * (n_in / 256) * 8;
    }
    std::vector<float> alone(n_out, NAN);
    product(packed.data(), n_in, n_out, one, 1, alone.data(), 0, packed_pairs(n_out));
    for (int64_t o = 0; o < n_out; ++o) {
      ASSERT_TRUE(same_bits(alone[o], batched[t * n_out + o])) << "token " << t << " row " << o;
    }
  }
}

TEST_P(Packed, AgreesWithTheFileLayoutKernels) {
  const TensorType type = type_;
  const int64_t n_in = 1024, n_out = 48;
  const std::vector<uint8_t> data = matrix(type, n_in, n_out);
  const size_t row = tensor_row_bytes(type, n_in);
  const WeightMatrix w{type, n_in, n_out, data.data(), row};
  const std::vector<uint8_t> packed = pack(w);
  const int n_tokens = 5;
  const Activations a = activations(type, n_in, n_tokens);
  std::vector<float> y(n_tokens * n_out);
  product(packed.data(), n_in, n_out, a.view, n_tokens, y.data(), 0, packed_pairs(n_out));
  for (int t = 0; t < n_tokens; ++t) {
    for (int64_t o = 0; o < n_out; ++o) {
      const float expected = dot_row(type, data.data() + o * row, a.rows.data() + t * a.view.row_bytes, n_in);
      // A K-quant superblock sums 8 or 16 scaled sub-block terms (and q4_K subtracts its
      // mins), each larger than the result, so both kernels' float rounding is larger
      // relative to it.
      const bool k_quant = type == TensorType::kQ4_K || type == TensorType::kQ5_K || type == TensorType::kQ6_K;
      const float tolerance = (k_quant ? 1e-4f : 1e-5f) * (1.0f + std::fabs(expected));
      EXPECT_NEAR(y[t * n_out + o], expected, tolerance) << "token " << t << " row " << o;
    }
  }
}

TEST_P(Packed, StridedRowsAndExtremeQuantsPackLikeContiguousOnes) {
  const TensorType type = type_;
  const int64_t n_in = 2 * unit(), n_out = 20;
  // A column slice of a wider matrix (rows 3 blocks apart), with -128 in a q8_0 weight,
  // the largest 6-bit scales and mins in q4_K and q5_K ones and extreme quants and
  // scales in a q6_K one.
  std::vector<uint8_t> wide = matrix(type, 3 * n_in, n_out);
  const size_t wide_row = tensor_row_bytes(type, 3 * n_in);
  if (type == TensorType::kQ8_0) reinterpret_cast<block_q8_0*>(wide.data() + wide_row)[2].qs[5] = -128;
  if (type == TensorType::kQ6_K) {  // every quant 63 or 0, scales at both int8 ends
    block_q6_K& b = reinterpret_cast<block_q6_K*>(wide.data() + wide_row)[2];
    std::memset(b.ql, 0xff, sizeof b.ql);
    std::memset(b.qh, 0xff, 32);
    std::memset(b.qh + 32, 0, 32);
    for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(s % 2 ? 127 : -128);
  }
  if (type == TensorType::kQ5_K) {  // every quant 31, largest scales and mins
    block_q5_K& b = reinterpret_cast<block_q5_K*>(wide.data() + wide_row)[2];
    const uint8_t sc[8] = {63, 63, 63, 63, 63, 63, 63, 63}, m[8] = {63, 0, 63, 0, 63, 0, 63, 0};
    k_quant_pack_scale_min(sc, m, b.scales);
    std::memset(b.qs, 0xff, sizeof b.qs);
    std::memset(b.qh, 0xff, sizeof b.qh);
  }
  if (type == TensorType::kQ4_K) {
    block_q4_K& b = reinterpret_cast<block_q4_K*>(wide.data() + wide_row)[2];
    const uint8_t sc[8] = {63, 63, 63, 63, 63, 63, 63, 63}, m[8] = {63, 0, 63, 0, 63, 0, 63, 0};
    k_quant_pack_scale_min(sc, m, b.scales);
    std::memset(b.qs, 0xff, sizeof b.qs);
  }
  const WeightMatrix strided{type, n_in, n_out, wide.data() + tensor_row_bytes(type, n_in), wide_row};
  std::vector<uint8_t> contiguous;
  for (int64_t o = 0; o < n_out; ++o) {
    const uint8_t* from = strided.data + o * strided.row_stride;
    contiguous.insert(contiguous.end(), from, from + tensor_row_bytes(type, n_in));
  }
  const WeightMatrix dense{type, n_in, n_out, contiguous.data(), tensor_row_bytes(type, n_in)};
  EXPECT_EQ(pack(strided), pack(dense));
  const Activations a = activations(type, n_in, 2);
  const std::vector<uint8_t> packed = pack(dense);
  std::vector<float> y(2 * n_out);
  product(packed.data(), n_in, n_out, a.view, 2, y.data(), 0, packed_pairs(n_out));
  for (int t = 0; t < 2; ++t) {
    for (int64_t o = 0; o < n_out; ++o) {
      const float expected =
          dot_row(type, contiguous.data() + o * dense.row_stride, a.rows.data() + t * a.view.row_bytes, n_in);
      EXPECT_NEAR(y[t * n_out + o], expected, 1e-5f * (1.0f + std::fabs(expected)));
    }
  }
}

TEST_P(Packed, MatmulUsesThePackedCopyAndMatchesTheFileLayout) {
  const TensorType type = type_;
  if (!packing_supported(type)) GTEST_SKIP() << "weights of this type stay in the file layout on this CPU";
  const CpuIsa isa = GetParam().isa;
  const CpuIsa runs = cpu_has_avx512_vnni() ? CpuIsa::kAvx512 : cpu_has_avx_vnni() ? CpuIsa::kAvxVnni : CpuIsa::kAvx2;
  if (isa != runs) {
    GTEST_SKIP() << "matmul runs another family's kernels here (the ctests engine.avx2_path and "
                    "engine.avx_vnni_path run this with CLUSTERD_MAX_ISA=avx2 and avxvnni)";
  }
  const int64_t n_in = 512, n_out = 72;
  const std::vector<uint8_t> data = matrix(type, n_in, n_out);
  WeightMatrix file_layout{type, n_in, n_out, data.data(), tensor_row_bytes(type, n_in)};
  std::vector<uint8_t> storage(packed_matrix_bytes(type, n_in, n_out) + 64);
  uint8_t* aligned = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
  pack_matrix(file_layout, aligned);
  WeightMatrix packed = file_layout;
  packed.packed = aligned;
  EXPECT_EQ(packed.rows(0, 16).packed, nullptr);  // views fall back to the file layout
  ThreadPool pool(2);
  MatmulScratch scratch;
  const int n_tokens = 6;
  const std::vector<float> x = gaussian(n_in * n_tokens, 1.0f);
  std::vector<float> y_packed(n_tokens * n_out), y_file(n_tokens * n_out), y_one(n_out);
  matmul(packed, x.data(), n_tokens, y_packed.data(), pool, scratch);
  matmul(file_layout, x.data(), n_tokens, y_file.data(), pool, scratch);
  for (size_t i = 0; i < y_file.size(); ++i) EXPECT_NEAR(y_packed[i], y_file[i], 1e-4f * (1 + std::fabs(y_file[i])));
  for (int t = 0; t < n_tokens; ++t) {
    matmul(packed, x.data() + t * n_in, 1, y_one.data(), pool, scratch);
    for (int64_t o = 0; o < n_out; ++o) ASSERT_TRUE(same_bits(y_one[o], y_packed[t * n_out + o]));
  }
}

INSTANTIATE_TEST_SUITE_P(Types, Packed, ::testing::ValuesIn([] {
                           std::vector<PackedCase> cases;
                           for (CpuIsa isa : {CpuIsa::kAvx512, CpuIsa::kAvxVnni, CpuIsa::kAvx2}) {
                             for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K,
                                                     TensorType::kQ5_K, TensorType::kQ6_K})
                               cases.push_back({type, isa});
                           }
                           return cases;
                         }()),
                         [](const auto& info) {
                           const CpuIsa isa = info.param.isa;
                           return std::string(tensor_type_name(info.param.type)) + (isa == CpuIsa::kAvx512 ? "_avx512"
                                                                                    : isa == CpuIsa::kAvxVnni
                                                                                        ? "_avx_vnni"
                                                                                        : "_avx2");
                         });

}  // namespace
}  // namespace clusterd
