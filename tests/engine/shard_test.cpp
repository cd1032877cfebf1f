// A model split over N shards (Megatron-style tensor parallelism, run here as N
// in-process ranks summing through a shared collective) gives the logits of the whole
// model, and synthetic models of every architecture and type run.
#include <gtest/gtest.h>

#include <barrier>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "clusterd/engine/synth.h"
#include "clusterd/engine/transformer.h"

namespace clusterd {
namespace {

// N ranks in one process: each posts its buffer, then all add in rank order.
class InProcessGroup {
 public:
  explicit InProcessGroup(int n) : buffers_(n), barrier_(n) {}
  class Rank final : public Collective {
   public:
    Rank(InProcessGroup& g, int rank) : g_(g), rank_(rank) {}
    Status all_reduce_sum(std::span<float> data) override {
      g_.buffers_[rank_] = std::vector<float>(data.begin(), data.end());
      g_.barrier_.arrive_and_wait();
      for (size_t i = 0; i < data.size(); ++i) {
        float sum = 0;
        for (const auto& b : g_.buffers_) sum += b[i];
        data[i] = sum;
      }
      g_.barrier_.arrive_and_wait();
      return Status::ok();
    }

   private:
    InProcessGroup& g_;
    int rank_;
  };

 private:
  std::vector<std::vector<float>> buffers_;
  std::barrier<> barrier_;
};

std::filesystem::path synth(const SynthOptions& o, const std::string& name) {
  auto path = std::filesystem::temp_directory_path() / ("clusterd-shard-test-" + name + ".gguf");
  std::string notes;
  Status s = synthesize_model(o, path, &notes);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return path;
}

std::vector<float> run_whole(const GgufFile& file, const std::vector<BatchToken>& batch) {
  auto params = read_model_params(file);
  auto weights = load_weights(file, *params, Shard::whole(*params));
  EXPECT_TRUE(weights.is_ok()) << weights.status().to_string();
  LocalCollective local;
  Transformer tf(*weights, local, TransformerOptions{64, 1, TensorType::kF32, 1});
  std::vector<float> logits;
  EXPECT_TRUE(tf.forward(batch, logits).is_ok());
  return logits;
}

// Splits kv heads, FFN columns and vocab rows evenly over `n` ranks and gathers the
// vocab slices of every rank's logits back into full rows.
std::vector<float> run_split(const GgufFile& file, const std::vector<BatchToken>& batch, int n, int block) {
  auto params = read_model_params(file);
  const ModelParams& p = *params;
  InProcessGroup group(n);
  std::vector<std::vector<float>> parts(n);
  std::vector<Shard> shards(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    Shard& s = shards[r];
    s = Shard::whole(p);
    s.kv_head_begin = p.n_head_kv * r / n;
    s.kv_head_end = p.n_head_kv * (r + 1) / n;
    s.ffn_begin = p.n_ff / block * r / n * block;
    s.ffn_end = r + 1 == n ? p.n_ff : p.n_ff / block * (r + 1) / n * block;
    s.vocab_begin = static_cast<int64_t>(p.n_vocab) * r / n;
    s.vocab_end = static_cast<int64_t>(p.n_vocab) * (r + 1) / n;
    threads.emplace_back([&, r] {
      auto weights = load_weights(file, p, shards[r]);
      ASSERT_TRUE(weights.is_ok()) << weights.status().to_string();
      InProcessGroup::Rank rank(group, r);
      Transformer tf(*weights, rank, TransformerOptions{64, 1, TensorType::kF32, 1});
      ASSERT_TRUE(tf.forward(batch, parts[r]).is_ok());
    });
  }
  for (auto& t : threads) t.join();
  size_t rows = parts[0].size() / shards[0].n_vocab();
  std::vector<float> logits(rows * p.n_vocab);
  for (int r = 0; r < n; ++r) {
    for (size_t row = 0; row < rows; ++row) {
      std::copy_n(&parts[r][row * shards[r].n_vocab()], shards[r].n_vocab(),
                  &logits[row * p.n_vocab + shards[r].vocab_begin]);
    }
  }
  return logits;
}

std::vector<BatchToken> prompt(int n, int vocab) {
  std::vector<BatchToken> batch;
  for (int i = 0; i < n; ++i) batch.push_back({(i * 37 + 11) % vocab, i, 0, true});
  return batch;
}

struct SplitCase {
  std::string arch;
  TensorType type;
  int ranks;
  int n_embd = 256;  // 8 heads of n_embd / 8
  // Slices that do not align with the type's blocks are requantized at load time,
  // which moves logits a little; aligned splits only reorder float additions. With
  // K-quants a reordering that moves an activation across a Q8_K rounding boundary
  // moves it a whole step (one scale per 256 elements), which random weights amplify
  // (a change of 3e-6 in one product became 0.11 in a logit), so those cases allow 0.5;
  // the greedy tokens are checked in every case.
  double tolerance = 2e-3;
};

class TensorParallel : public ::testing::TestWithParam<SplitCase> {};

TEST_P(TensorParallel, SplitOverRanksGivesTheLogitsOfTheWholeModel) {
  const SplitCase& c = GetParam();
  SynthOptions o;
  o.arch = c.arch;
  o.n_embd = c.n_embd;
  o.n_head = 8;
  o.n_head_kv = 4;
  o.n_ff = 1024;
  o.n_vocab = 300;
  o.type = c.type;
  o.tied_embeddings = c.arch != "llama";
  auto path = synth(o, c.arch + std::string(tensor_type_name(c.type)) + std::to_string(c.ranks));
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  auto batch = prompt(6, o.n_vocab);
  auto whole = run_whole(**file, batch);
  auto split = run_split(**file, batch, c.ranks, 256);
  ASSERT_EQ(whole.size(), split.size());
  double max_diff = 0;
  for (size_t i = 0; i < whole.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(whole[i]) - split[i]));
  EXPECT_LT(max_diff, c.tolerance) << "largest logit difference";
  for (size_t row = 0; row < batch.size(); ++row) {
    auto best = [&](const std::vector<float>& v) {
      return std::max_element(v.begin() + row * o.n_vocab, v.begin() + (row + 1) * o.n_vocab) - v.begin();
    };
    EXPECT_EQ(best(whole), best(split)) << "greedy token at position " << row;
  }
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(
    Synth, TensorParallel,
    ::testing::Values(SplitCase{"llama", TensorType::kF32, 2}, SplitCase{"llama", TensorType::kQ8_0, 2},
                      SplitCase{"llama", TensorType::kQ4_0, 4}, SplitCase{"llama", TensorType::kQ4_K, 2, 512, 0.5},
                      SplitCase{"qwen2", TensorType::kQ8_0, 2}, SplitCase{"qwen3", TensorType::kBF16, 4},
                      SplitCase{"llama", TensorType::kQ5_K, 2, 512},
                      SplitCase{"llama", TensorType::kQ6_K, 4, 512, 0.5}),
    [](const ::testing::TestParamInfo<SplitCase>& info) {
      return info.param.arch + "_" + std::string(tensor_type_name(info.param.type)) + "_" +
             std::to_string(info.param.ranks) + "ranks";
    });

TEST(Synth, TheSameSeedWritesTheSameFile) {
  SynthOptions o;
  o.n_vocab = 300;
  auto a = synth(o, "seed-a"), b = synth(o, "seed-b");
  auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(read(a), read(b));
  o.seed = 2;
  auto c = synth(o, "seed-c");
  EXPECT_NE(read(a), read(c));
  for (auto& p : {a, b, c}) std::filesystem::remove(p);
}

TEST(Synth, RowsThatDoNotFitTheTypeFallBackToQ8_0AndSaySo) {
  SynthOptions o;
  o.n_embd = 96;  // not a multiple of 256
  o.n_head = 3;
  o.n_head_kv = 1;
  o.n_ff = 128;
  o.n_vocab = 300;
  o.type = TensorType::kQ4_K;
  auto path = std::filesystem::temp_directory_path() / "clusterd-synth-fallback.gguf";
  std::string notes;
  ASSERT_TRUE(synthesize_model(o, path, &notes).is_ok());
  EXPECT_NE(notes.find("stored as q8_0"), std::string::npos) << notes;
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok());
  EXPECT_EQ((*file)->find_tensor("blk.0.attn_q.weight")->type, TensorType::kQ8_0);
  std::filesystem::remove(path);
}

TEST(Synth, UnknownArchitectureIsRefusedNamingTheSupportedOnes) {
  SynthOptions o;
  o.arch = "gpt-neox";
  Status s = synthesize_model(o, "/nonexistent/x.gguf", nullptr);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("llama, qwen2, qwen3"), std::string::npos);
}

}  // namespace
}  // namespace clusterd
