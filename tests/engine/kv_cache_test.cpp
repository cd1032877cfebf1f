// The KV cache gives back what was stored, per head, through growth and in both types.
#include "clusterd/engine/kv_cache.h"

#include <gtest/gtest.h>

#include <vector>

namespace clusterd {
namespace {

// A value that f16 holds exactly, distinct per (layer, position, head, element, k/v).
float value_at(int layer, int pos, int head, int i, bool key) {
  return static_cast<float>((layer * 7 + pos * 3 + head * 5 + i) % 97 - 48) / (key ? 4.0f : 8.0f);
}

void store_positions(KvCache& kv, int seq, int n_layer, int n_heads, int hd, int from, int to) {
  std::vector<float> k(static_cast<size_t>(n_heads) * hd), v(k.size());
  for (int l = 0; l < n_layer; ++l) {
    for (int p = from; p < to; ++p) {
      for (int h = 0; h < n_heads; ++h) {
        for (int i = 0; i < hd; ++i) {
          k[h * hd + i] = value_at(l, p, h, i, true);
          v[h * hd + i] = value_at(l, p, h, i, false);
        }
      }
      kv.store(seq, l, p, k.data(), v.data());
    }
  }
}

class KvCacheTypes : public ::testing::TestWithParam<TensorType> {};

TEST_P(KvCacheTypes, LoadsWhatWasStoredThroughGrowth) {
  const int n_layer = 3, n_heads = 2, hd = 24;
  KvCache kv(KvCacheOptions{n_layer, n_heads, hd, 1024, 4, GetParam()});
  // 200 positions fit the first allocation (256); 600 make it grow twice, moving
  // what the first 200 stored.
  ASSERT_TRUE(kv.reserve(5, 200).is_ok());
  store_positions(kv, 5, n_layer, n_heads, hd, 0, 200);
  ASSERT_TRUE(kv.reserve(5, 600).is_ok());
  store_positions(kv, 5, n_layer, n_heads, hd, 200, 600);
  EXPECT_EQ(kv.bytes_in_use(), kv.bytes_per_position() * 768);

  for (int n : {1, 200, 600}) {
    std::vector<float> keys(static_cast<size_t>(n) * hd), values(keys.size());
    for (int l = 0; l < n_layer; ++l) {
      for (int h = 0; h < n_heads; ++h) {
        kv.load_keys_transposed(5, l, h, n, n, keys.data());
        kv.load_values(5, l, h, n, values.data());
        for (int p = 0; p < n; ++p) {
          for (int i = 0; i < hd; ++i) {
            ASSERT_EQ(keys[static_cast<size_t>(i) * n + p], value_at(l, p, h, i, true))
                << "layer " << l << " head " << h << " position " << p << " element " << i;
            ASSERT_EQ(values[static_cast<size_t>(p) * hd + i], value_at(l, p, h, i, false))
                << "layer " << l << " head " << h << " position " << p << " element " << i;
          }
        }
      }
    }
  }
}

TEST_P(KvCacheTypes, SequencesAreSeparateAndOverwritable) {
  const int hd = 16;
  KvCache kv(KvCacheOptions{1, 1, hd, 64, 2, GetParam()});
  ASSERT_TRUE(kv.reserve(0, 4).is_ok());
  ASSERT_TRUE(kv.reserve(1, 4).is_ok());
  EXPECT_FALSE(kv.reserve(2, 4).is_ok()) << "a third sequence exceeds max_sequences";
  EXPECT_FALSE(kv.reserve(0, 65).is_ok()) << "positions beyond the context";
  std::vector<float> a(hd, 1.5f), b(hd, -2.0f), c(hd, 0.25f), out(hd);
  kv.store(0, 0, 3, a.data(), a.data());
  kv.store(1, 0, 3, b.data(), b.data());
  kv.store(0, 0, 3, c.data(), c.data());  // a position written again (a re-run prompt)
  std::vector<float> keys(4 * hd), values(4 * hd);
  kv.load_keys_transposed(0, 0, 0, 4, 4, keys.data());
  kv.load_values(0, 0, 0, 4, values.data());
  EXPECT_EQ(keys[3], 0.25f);
  EXPECT_EQ(values[3 * hd], 0.25f);
  kv.load_values(1, 0, 0, 4, values.data());
  EXPECT_EQ(values[3 * hd + hd - 1], -2.0f);
  kv.release(1);
  EXPECT_FALSE(kv.has(1));
  EXPECT_TRUE(kv.reserve(2, 4).is_ok()) << "a released slot is free again";
}

INSTANTIATE_TEST_SUITE_P(Types, KvCacheTypes, ::testing::Values(TensorType::kF16, TensorType::kF32),
                         [](const ::testing::TestParamInfo<TensorType>& info) {
                           return std::string(info.param == TensorType::kF16 ? "F16" : "F32");
                         });

}  // namespace
}  // namespace clusterd
