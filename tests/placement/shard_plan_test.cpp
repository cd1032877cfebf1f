#include "clusterd/placement/shard_plan.h"

#include <gtest/gtest.h>

namespace clusterd {
namespace {

constexpr uint64_t GiB = 1ull << 30;

ModelParams shape(int embd, int layers, int heads, int kv, int ff, int vocab, bool tied = false, int head_dim = 0) {
  ModelParams p;
  p.arch_name = "llama";
  p.n_embd = embd;
  p.n_layer = layers;
  p.n_head = heads;
  p.n_head_kv = kv;
  p.head_dim = head_dim ? head_dim : embd / heads;
  p.n_rot = p.head_dim;
  p.n_ff = ff;
  p.n_vocab = vocab;
  p.tied_embeddings = tied;
  return p;
}

ModelParams llama3_8b() { return shape(4096, 32, 32, 8, 14336, 128256); }
ModelParams llama3_70b() { return shape(8192, 80, 64, 8, 28672, 128256); }
ModelParams qwen3_4b() { return shape(2560, 36, 32, 8, 9728, 151936, true, 128); }

ModelFootprint q4_k_m(const ModelParams& p) {
  ModelFootprint f = uniform_footprint(p, TensorType::kQ4_K);
  f.ffn_down_type = TensorType::kQ6_K;
  f.output_type = TensorType::kQ6_K;
  return f;
}

std::vector<PlanNode> nodes(int n, uint64_t free_each = 64 * GiB) {
  std::vector<PlanNode> out;
  for (int i = 0; i < n; ++i) out.push_back({"id" + std::to_string(i), std::string(1, char('a' + i)), free_each});
  return out;
}

// Every KV head, FFN column and vocab row belongs to exactly one rank, in order.
void expect_partition(const ShardPlan& plan, const ModelParams& p) {
  int kv = 0;
  int64_t ffn = 0, vocab = 0;
  for (const auto& r : plan.ranks) {
    EXPECT_EQ(r.shard.kv_head_begin, kv);
    EXPECT_EQ(r.shard.ffn_begin, ffn);
    EXPECT_EQ(r.shard.vocab_begin, vocab);
    EXPECT_GT(r.shard.n_kv_heads(), 0);
    EXPECT_GT(r.shard.n_ffn(), 0);
    kv = r.shard.kv_head_end;
    ffn = r.shard.ffn_end;
    vocab = r.shard.vocab_end;
    EXPECT_TRUE(validate_shard(r.shard, p).is_ok());
  }
  EXPECT_EQ(kv, p.n_head_kv);
  EXPECT_EQ(ffn, p.n_ff);
  EXPECT_EQ(vocab, p.n_vocab);
}

class TensorPlans : public ::testing::TestWithParam<int> {};

TEST_P(TensorPlans, Llama3_8BSplitsEveryHeadColumnAndRowOnceWithAlignedFfnSlices) {
  const int n = GetParam();
  ModelParams p = llama3_8b();
  PlanRequest req;
  req.strategy = PlanStrategy::kTensor;
  req.equal_split = true;
  auto plan = plan_model(q4_k_m(p), nodes(n), req);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  expect_partition(*plan, p);
  for (const auto& r : plan->ranks) {
    EXPECT_EQ(r.shard.ffn_begin % 256, 0) << "ffn_down is Q6_K: slices start on 256-column blocks";
  }
  // 8 KV heads over 1, 2, 4, 8 ranks: equal; 3 ranks: 3/3/2.
  if (8 % n == 0) {
    for (const auto& r : plan->ranks) EXPECT_EQ(r.shard.n_kv_heads(), 8 / n);
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, TensorPlans, ::testing::Values(1, 2, 3, 4, 5, 6, 7, 8));

TEST(ShardPlan, ProportionalSplitGivesTheBiggerNodeMore) {
  ModelParams p = llama3_8b();
  std::vector<PlanNode> n = {{"a", "big", 96 * GiB}, {"b", "small", 32 * GiB}};
  auto plan = plan_model(q4_k_m(p), n, PlanRequest{PlanStrategy::kTensor});
  ASSERT_TRUE(plan.is_ok());
  EXPECT_EQ(plan->ranks[0].shard.n_kv_heads(), 6);
  EXPECT_EQ(plan->ranks[1].shard.n_kv_heads(), 2);
  EXPECT_GT(plan->ranks[0].shard.n_ffn(), 2 * plan->ranks[1].shard.n_ffn());
  EXPECT_GT(plan->ranks[0].weight_bytes, plan->ranks[1].weight_bytes);
}

TEST(ShardPlan, MoreRanksThanKvHeadsCannotBeTensorParallel) {
  ModelParams p = llama3_8b();
  PlanRequest req;
  req.strategy = PlanStrategy::kTensor;
  auto plan = plan_model(q4_k_m(p), nodes(9), req);
  ASSERT_FALSE(plan.is_ok());
  EXPECT_NE(plan.status().message().find("8"), std::string::npos);
  req.strategy = PlanStrategy::kAuto;
  auto fallback = plan_model(q4_k_m(p), nodes(9), req);
  ASSERT_TRUE(fallback.is_ok()) << fallback.status().to_string();
  EXPECT_EQ(fallback->strategy, PlanStrategy::kPipeline);
}

TEST(ShardPlan, Llama70BDoesNotFitTwoSmallNodesAndTheErrorGivesTheNumbers) {
  ModelParams p = llama3_70b();
  auto plan = plan_model(q4_k_m(p), nodes(2, 16 * GiB), PlanRequest{});
  ASSERT_FALSE(plan.is_ok());
  const std::string& m = plan.status().message();
  EXPECT_NE(m.find("node a needs"), std::string::npos) << m;
  EXPECT_NE(m.find("GiB, has 16.0 GiB free"), std::string::npos) << m;
}

TEST(ShardPlan, Llama70BFitsFourNodesOf32GiBWithTensorParallelism) {
  ModelParams p = llama3_70b();
  auto plan = plan_model(q4_k_m(p), nodes(4, 32 * GiB), PlanRequest{});
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(plan->strategy, PlanStrategy::kTensor);
  uint64_t total = 0;
  for (const auto& r : plan->ranks) total += r.weight_bytes;
  EXPECT_GT(total, 38 * GiB);  // ~40 GiB of Q4_K_M weights plus replicated embeddings
}

TEST(ShardPlan, UnevenNodesThatCannotHoldEqualSharesGetAPipeline) {
  ModelParams p = llama3_8b();
  std::vector<PlanNode> n = {{"a", "studio", 60 * GiB}, {"b", "mini", 3 * GiB}};
  PlanRequest req;
  req.equal_split = true;
  auto plan = plan_model(q4_k_m(p), n, req);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(plan->strategy, PlanStrategy::kPipeline);
  EXPECT_NE(plan->notes[0].find("node mini needs"), std::string::npos) << plan->notes[0];
}

TEST(ShardPlan, PipelineGivesContiguousLayerRangesWithEmbeddingFirstAndOutputLast) {
  ModelParams p = qwen3_4b();
  PlanRequest req;
  req.strategy = PlanStrategy::kPipeline;
  auto plan = plan_model(uniform_footprint(p, TensorType::kQ8_0), nodes(3), req);
  ASSERT_TRUE(plan.is_ok());
  int layer = 0;
  for (const auto& r : plan->ranks) {
    EXPECT_EQ(r.shard.layer_begin, layer);
    layer = r.shard.layer_end;
    EXPECT_EQ(r.shard.embeds, r.rank == 0);
    EXPECT_EQ(r.shard.outputs, r.rank == 2);
  }
  EXPECT_EQ(layer, 36);
}

TEST(ShardPlan, SlicesThatCannotAlignAreListedForRequantization) {
  // 3 ranks over 8 KV heads of 128 dims with 4 query heads each: rank boundaries at
  // 3 and 6 KV heads = 1536 and 3072 query columns, fine for Q4_K's 256; with 96-dim
  // heads they are not.
  ModelParams p = shape(3072, 4, 32, 8, 8192, 32000, false, 96);
  auto plan = plan_model(uniform_footprint(p, TensorType::kQ4_K), nodes(3), PlanRequest{PlanStrategy::kTensor, true});
  ASSERT_TRUE(plan.is_ok());
  bool noted = false;
  for (const auto& note : plan->notes) noted |= note.find("attn_output") != std::string::npos;
  EXPECT_TRUE(noted) << plan->to_text();
}

TEST(ShardPlan, TheTextTableAndJsonDescribeEveryRank) {
  ModelParams p = llama3_8b();
  auto plan = plan_model(q4_k_m(p), nodes(2), PlanRequest{});
  ASSERT_TRUE(plan.is_ok());
  std::string text = plan->to_text();
  EXPECT_NE(text.find("strategy: tensor"), std::string::npos);
  EXPECT_NE(text.find("0-4"), std::string::npos) << text;
  auto doc = plan->to_json();
  EXPECT_EQ(doc["ranks"].size(), 2u);
  EXPECT_EQ(doc["ranks"][1]["kv_heads"], nlohmann::json::array({4, 8}));
}

TEST(ShardPlan, EmptyInputsAreRefused) {
  EXPECT_FALSE(plan_model(q4_k_m(llama3_8b()), {}, PlanRequest{}).is_ok());
  EXPECT_FALSE(parse_plan_strategy("diagonal").is_ok());
}

}  // namespace
}  // namespace clusterd
