// shard_byte_ranges names every byte load_weights reads for a shard: a shard built from
// an image holding only the header and those ranges (every other byte poisoned) runs
// exactly as one built from the whole file, and a split rank needs less than the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "clusterd/engine/synth.h"
#include "clusterd/engine/transformer.h"
#include "clusterd/engine/weights.h"

namespace clusterd {
namespace {

namespace fs = std::filesystem;

struct RangesCase {
  const char* arch;
  TensorType type;
  bool tied;
};

class ShardRangesTest : public ::testing::TestWithParam<RangesCase> {};

std::vector<float> forward(const GgufFile& file, const ModelParams& p, const Shard& shard) {
  auto weights = load_weights(file, p, shard);
  EXPECT_TRUE(weights.is_ok()) << weights.status().to_string();
  if (!weights.is_ok()) return {};
  LocalCollective local;  // one rank's partial sums: enough to tell the weights apart
  Transformer tf(*weights, local, TransformerOptions{32, 1, TensorType::kF32, 1});
  std::vector<BatchToken> batch;
  for (int i = 0; i < 5; ++i) batch.push_back({(i * 37 + 11) % p.n_vocab, i, 0, true});
  std::vector<float> logits;
  EXPECT_TRUE(tf.forward(batch, logits).is_ok());
  return logits;
}

TEST_P(ShardRangesTest, AShardBuiltFromItsRangesAloneRunsLikeOneBuiltFromTheWholeFile) {
  const RangesCase c = GetParam();
  SynthOptions o;
  o.arch = c.arch;
  o.type = c.type;
  o.tied_embeddings = c.tied;
  o.n_embd = 256;
  o.n_ff = 512;
  o.n_head = 8;
  o.n_head_kv = 4;
  o.n_vocab = 384;
  const fs::path path = fs::temp_directory_path() / ("clusterd-ranges-" + std::to_string(::getpid()) + ".gguf");
  std::string notes;
  ASSERT_TRUE(synthesize_model(o, path, &notes).is_ok());
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
  fs::remove(path);
  auto file = GgufFile::parse(bytes, "whole.gguf");
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  auto params = read_model_params(**file);
  ASSERT_TRUE(params.is_ok());
  const ModelParams& p = *params;

  for (int rank = 0; rank < 2; ++rank) {
    Shard shard = Shard::whole(p);
    shard.kv_head_begin = rank * p.n_head_kv / 2;
    shard.kv_head_end = (rank + 1) * p.n_head_kv / 2;
    shard.ffn_begin = rank * p.n_ff / 2;
    shard.ffn_end = (rank + 1) * p.n_ff / 2;
    shard.vocab_begin = rank * p.n_vocab / 2;
    shard.vocab_end = (rank + 1) * p.n_vocab / 2;
    std::vector<uint8_t> image(bytes.size(), 0xff);  // as f16 scales and floats: NaN
    const uint64_t header = (*file)->data_offset();
    std::copy_n(bytes.begin(), header, image.begin());
    uint64_t needed = 0;
    for (const TensorByteRange& r : shard_byte_ranges(**file, p, shard)) {
      const GgufTensorInfo* t = (*file)->find_tensor(r.tensor);
      ASSERT_NE(t, nullptr) << r.tensor;
      ASSERT_LE(r.end, t->size) << r.tensor;
      const uint64_t at = header + t->offset;
      std::copy(bytes.begin() + at + r.begin, bytes.begin() + at + r.end, image.begin() + at + r.begin);
      needed += r.end - r.begin;
    }
    auto partial = GgufFile::parse(image, "ranges.gguf");
    ASSERT_TRUE(partial.is_ok());
    std::vector<float> want = forward(**file, p, shard);
    std::vector<float> got = forward(**partial, p, shard);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float))) << c.arch << " rank " << rank;
    EXPECT_LT(needed, bytes.size() - header) << "a rank of two reads less than the whole model";
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, ShardRangesTest,
                         ::testing::Values(RangesCase{"llama", TensorType::kQ8_0, false},
                                           RangesCase{"llama", TensorType::kQ4_K, true},
                                           RangesCase{"qwen2", TensorType::kQ8_0, false},
                                           RangesCase{"qwen3", TensorType::kF16, false}));

}  // namespace
}  // namespace clusterd
