// The four-token kernels return, for each token, exactly what the one-row kernel of the
// same instruction set returns; so a batched matmul equals the same matmul run one
// token at a time, bit for bit, whatever the number of tokens.
#include "clusterd/engine/kernels_x4.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/matmul.h"
#include "clusterd/engine/quant.h"
#include "clusterd/engine/thread_pool.h"

namespace clusterd {
namespace {

template <typename W, typename A>
using OneRowFn = float (*)(int, const W*, const A*);
template <typename W, typename A>
using X4Fn = void (*)(int, const W*, const A* const[4], float[4]);

class KernelsX4 : public ::testing::Test {
 protected:
  std::mt19937 rng_{20240917};

  // A Gaussian row of n floats with standard deviation sigma.
  std::vector<float> gaussian(int64_t n, float sigma) {
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(n);
    for (float& f : v) f = dist(rng_);
    return v;
  }

  // A quantized Gaussian row of nb blocks of `type`; the sigma varies per row so the
  // scales differ between the four tokens.
  template <typename Block>
  std::vector<Block> quantized(TensorType type, int nb) {
    const int64_t n = int64_t{nb} * quant_block_size(type);
    const float sigma = std::uniform_real_distribution<float>(0.05f, 3.0f)(rng_);
    std::vector<Block> v(nb);
    EXPECT_TRUE(quantize_row(type, gaussian(n, sigma).data(), v.data(), n).is_ok());
    return v;
  }

  // x4(x, y[0..3]) == one_row(x, y[t]) for each t, bit for bit, for each block count.
  template <typename W, typename A>
  void expect_same_as_one_row(X4Fn<W, A> x4, OneRowFn<W, A> one_row, TensorType wtype, TensorType atype,
                              const std::vector<int>& block_counts, const std::string& what) {
    for (int nb : block_counts) {
      for (int rep = 0; rep < 4; ++rep) {
        const std::vector<W> x = quantized<W>(wtype, nb);
        std::vector<A> y[4];
        for (auto& row : y) row = quantized<A>(atype, nb);
        const A* const rows[4] = {y[0].data(), y[1].data(), y[2].data(), y[3].data()};
        const int n = nb * quant_block_size(wtype);
        float out[4];
        x4(n, x.data(), rows, out);
        for (int t = 0; t < 4; ++t) {
          EXPECT_EQ(out[t], one_row(n, x.data(), y[t].data())) << what << ", " << nb << " blocks, token " << t;
        }
      }
    }
  }
};

const std::vector<int> kSmallBlockCounts = {1, 2, 3, 4, 5, 6, 7, 9, 13, 64, 65};  // q8_0/q4_0: tails of 1-3
const std::vector<int> kSuperBlockCounts = {1, 2, 3, 5, 8};

TEST_F(KernelsX4, Avx512KernelsEqualFourOneRowCalls) {
  if (!cpu_has_avx512_vnni()) GTEST_SKIP() << "this CPU has no AVX-512 F/BW/VL/VNNI";
  expect_same_as_one_row<block_q8_0, block_q8_0>(vec_dot_q8_0_q8_0_x4_avx512, vec_dot_q8_0_q8_0_avx512,
                                                 TensorType::kQ8_0, TensorType::kQ8_0, kSmallBlockCounts, "q8_0");
  expect_same_as_one_row<block_q4_0, block_q8_0>(vec_dot_q4_0_q8_0_x4_avx512, vec_dot_q4_0_q8_0_avx512,
                                                 TensorType::kQ4_0, TensorType::kQ8_0, kSmallBlockCounts, "q4_0");
  expect_same_as_one_row<block_q4_K, block_q8_K>(vec_dot_q4_K_q8_K_x4_avx512, vec_dot_q4_K_q8_K_avx512,
                                                 TensorType::kQ4_K, TensorType::kQ8_K, kSuperBlockCounts, "q4_K");
  expect_same_as_one_row<block_q6_K, block_q8_K>(vec_dot_q6_K_q8_K_x4_avx512, vec_dot_q6_K_q8_K_avx512,
                                                 TensorType::kQ6_K, TensorType::kQ8_K, kSuperBlockCounts, "q6_K");
}

TEST_F(KernelsX4, Avx2KernelsEqualFourOneRowCalls) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2/FMA/F16C";
  expect_same_as_one_row<block_q8_0, block_q8_0>(vec_dot_q8_0_q8_0_x4_avx2, vec_dot_q8_0_q8_0_avx2, TensorType::kQ8_0,
                                                 TensorType::kQ8_0, kSmallBlockCounts, "q8_0");
  expect_same_as_one_row<block_q4_0, block_q8_0>(vec_dot_q4_0_q8_0_x4_avx2, vec_dot_q4_0_q8_0_avx2, TensorType::kQ4_0,
                                                 TensorType::kQ8_0, kSmallBlockCounts, "q4_0");
  expect_same_as_one_row<block_q4_K, block_q8_K>(vec_dot_q4_K_q8_K_x4_avx2, vec_dot_q4_K_q8_K_avx2, TensorType::kQ4_K,
                                                 TensorType::kQ8_K, kSuperBlockCounts, "q4_K");
  expect_same_as_one_row<block_q6_K, block_q8_K>(vec_dot_q6_K_q8_K_x4_avx2, vec_dot_q6_K_q8_K_avx2, TensorType::kQ6_K,
                                                 TensorType::kQ8_K, kSuperBlockCounts, "q6_K");
}

// matmul over T tokens writes, for every token, what matmul over that token alone
// writes: the grouping into fours (and the tail) does not change a bit.
TEST_F(KernelsX4, BatchedMatmulEqualsPerTokenMatmul) {
  ThreadPool pool(2);
  MatmulScratch scratch;
  const TensorType types[] = {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ6_K};
  for (TensorType type : types) {
    const int64_t block = quant_block_size(type);
    const int64_t n_in = block == kQK_K ? 3 * block : 13 * block;  // odd block counts
    const int64_t n_out = 37;                                      // not a multiple of the row tile
    const size_t row_bytes = tensor_row_bytes(type, n_in);
    std::vector<uint8_t> weights(row_bytes * n_out);
    for (int64_t o = 0; o < n_out; ++o) {
      ASSERT_TRUE(quantize_row(type, gaussian(n_in, 0.5f).data(), weights.data() + o * row_bytes, n_in).is_ok());
    }
    WeightMatrix w;
    w.type = type;
    w.n_in = n_in;
    w.n_out = n_out;
    w.data = weights.data();
    w.row_stride = row_bytes;
    for (int n_tokens = 1; n_tokens <= 9; ++n_tokens) {
      const std::vector<float> x = gaussian(n_in * n_tokens, 1.0f);
      std::vector<float> batched(static_cast<size_t>(n_out) * n_tokens);
      matmul(w, x.data(), n_tokens, batched.data(), pool, scratch);
      for (int t = 0; t < n_tokens; ++t) {
        std::vector<float> single(n_out);
        matmul(w, x.data() + t * n_in, 1, single.data(), pool, scratch);
        for (int64_t o = 0; o < n_out; ++o) {
          ASSERT_EQ(batched[t * n_out + o], single[o])
              << "type " << static_cast<int>(type) << ", " << n_tokens << " tokens, token " << t << ", row " << o;
        }
      }
    }
  }
}

// Products of one input fused into one call (q/k/v, gate/up) write exactly what one
// call per matrix writes, also when the matrices mix activation types (Q8_0 and Q8_K)
// and float weights, for batches below and above four tokens.
TEST_F(KernelsX4, FusedMatmulEqualsOneCallPerMatrix) {
  ThreadPool pool(2);
  MatmulScratch scratch;
  const int64_t n_in = 2 * kQK_K;
  const TensorType types[] = {TensorType::kQ4_K, TensorType::kQ8_0, TensorType::kQ6_K, TensorType::kF32};
  const int64_t rows[] = {37, 16, 21, 9};
  std::vector<std::vector<uint8_t>> storage;
  std::vector<WeightMatrix> matrices;
  for (int i = 0; i < 4; ++i) {
    const size_t row_bytes = tensor_row_bytes(types[i], n_in);
    storage.emplace_back(row_bytes * rows[i]);
    for (int64_t o = 0; o < rows[i]; ++o) {
      ASSERT_TRUE(
          quantize_row(types[i], gaussian(n_in, 0.5f).data(), storage.back().data() + o * row_bytes, n_in).is_ok());
    }
    matrices.push_back({types[i], n_in, rows[i], storage.back().data(), row_bytes});
  }
  for (int n_tokens : {1, 3, 4, 9}) {
    const std::vector<float> x = gaussian(n_in * n_tokens, 1.0f);
    std::vector<std::vector<float>> fused(4), alone(4);
    std::vector<MatmulOutput> outputs;
    for (int i = 0; i < 4; ++i) {
      fused[i].resize(rows[i] * n_tokens);
      alone[i].resize(rows[i] * n_tokens);
      outputs.push_back({&matrices[i], fused[i].data()});
      matmul(matrices[i], x.data(), n_tokens, alone[i].data(), pool, scratch);
    }
    matmul(outputs, x.data(), n_tokens, pool, scratch);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(fused[i], alone[i]) << "matrix " << i << ", " << n_tokens << " tokens";
  }
}

}  // namespace
}  // namespace clusterd
