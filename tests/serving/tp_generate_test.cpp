// Tensor parallelism over real TCP groups (one thread per rank on loopback): the
// fixture models planned over 2, 3 and 4 ranks generate the tokens one node generates.
#include <gtest/gtest.h>

#include <thread>

#include "clusterd/engine/model.h"
#include "clusterd/placement/shard_plan.h"
#include "clusterd/serving/group_runner.h"
#include "support/shared_fixtures.h"

namespace clusterd {
namespace {

struct TpCase {
  std::string model;
  int ranks;
  PlanStrategy strategy = PlanStrategy::kTensor;
};

GenerateRequest request(const Model& m, const std::string& prompt, float temp) {
  GenerateRequest req;
  req.prompt = m.tokenizer->encode(prompt, m.tokenizer->add_bos(), false);
  req.max_tokens = 16;
  req.sampling.temperature = temp;
  req.sampling.seed = 42;
  return req;
}

std::vector<int32_t> generate_alone(const Model& m, const GenerateRequest& req) {
  auto weights = load_weights(*m.file, m.params, Shard::whole(m.params));
  LocalCollective local;
  Transformer tf(*weights, local, TransformerOptions{128, 2, TensorType::kF16, 1});
  auto r = generate(tf, *m.tokenizer, req, 0);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? r->tokens : std::vector<int32_t>{};
}

std::vector<int32_t> generate_split(const Model& m, const GenerateRequest& req, int n,
                                    PlanStrategy strategy = PlanStrategy::kTensor) {
  std::vector<PlanNode> nodes;
  for (int i = 0; i < n; ++i) nodes.push_back({"id" + std::to_string(i), "n" + std::to_string(i), 1ull << 34});
  auto footprint = footprint_of(*m.file, m.params);
  EXPECT_TRUE(footprint.is_ok());
  auto plan = plan_model(*footprint, nodes, PlanRequest{strategy, true, 128, 2});
  EXPECT_TRUE(plan.is_ok()) << plan.status().to_string();
  if (!plan.is_ok()) return {};
  EXPECT_EQ(plan->strategy, strategy);
  std::vector<std::unique_ptr<DataListener>> listeners;
  std::vector<GroupMember> members;
  for (int r = 0; r < n; ++r) {
    listeners.push_back(std::move(*DataListener::bind(0)));
    members.push_back({"127.0.0.1", listeners.back()->port(), "n" + std::to_string(r)});
  }
  std::vector<int32_t> tokens;
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      auto weights = load_weights(*m.file, m.params, plan->ranks[r].shard);
      ASSERT_TRUE(weights.is_ok()) << weights.status().to_string();
      auto group = Group::form(GroupOptions{"tp-test-key-0123456789abcdef", 9, r, members}, *listeners[r]);
      ASSERT_TRUE(group.is_ok()) << group.status().to_string();
      GroupRunner runner(**group, *weights, TransformerOptions{128, 2, TensorType::kF16, 1});
      if (r != 0) {
        EXPECT_TRUE(runner.follow().is_ok());
        return;
      }
      auto result = generate(runner, *m.tokenizer, req, 0);
      EXPECT_TRUE(result.is_ok()) << result.status().to_string();
      if (result.is_ok()) tokens = result->tokens;
      EXPECT_TRUE(runner.finish().is_ok());
    });
  }
  for (auto& t : threads) t.join();
  return tokens;
}

class TensorParallelGeneration : public ::testing::TestWithParam<TpCase> {};

TEST_P(TensorParallelGeneration, GreedyTokensEqualOneNode) {
  auto shared = testing::find_shared_dir();
  if (!shared) GTEST_SKIP() << "../shared (models) was not found";
  auto model = Model::open(*shared / "models" / (GetParam().model + ".gguf"));
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto req = request(**model, "Once upon a time", 0);
  auto alone = generate_alone(**model, req);
  ASSERT_FALSE(alone.empty());
  EXPECT_EQ(generate_split(**model, req, GetParam().ranks, GetParam().strategy), alone);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallelGeneration,
                         ::testing::Values(TpCase{"stories260K", 2}, TpCase{"stories260K", 3}, TpCase{"stories260K", 4},
                                           TpCase{"tiny-llama-gqa.f32", 2}, TpCase{"tiny-llama-gqa.q8_0", 2},
                                           TpCase{"tiny-llama-gqa.q4_0", 2}, TpCase{"tiny-llama-gqa.q4_k", 2},
                                           TpCase{"tiny-qwen2.q8_0", 2}, TpCase{"tiny-qwen3.bf16", 2},
                                           TpCase{"stories260K", 2, PlanStrategy::kPipeline},
                                           TpCase{"stories260K", 3, PlanStrategy::kPipeline},
                                           TpCase{"tiny-llama-gqa.q4_k", 2, PlanStrategy::kPipeline},
                                           TpCase{"tiny-qwen2.q8_0", 2, PlanStrategy::kPipeline},
                                           TpCase{"tiny-qwen3.bf16", 2, PlanStrategy::kPipeline}),
                         [](const ::testing::TestParamInfo<TpCase>& info) {
                           std::string name = info.param.model + "_" + std::to_string(info.param.ranks) +
                                              (info.param.strategy == PlanStrategy::kPipeline ? "stages" : "ranks");
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(TensorParallelGeneration, SeededSamplingGivesTheSameStoryOnOneTwoAndFourRanks) {
  auto shared = testing::find_shared_dir();
  if (!shared) GTEST_SKIP() << "../shared (models) was not found";
  auto model = Model::open(*shared / "models" / "stories260K.gguf");
  ASSERT_TRUE(model.is_ok());
  auto req = request(**model, "Lily and Tom", 0.9f);
  auto alone = generate_alone(**model, req);
  EXPECT_EQ(generate_split(**model, req, 2), alone);
  EXPECT_EQ(generate_split(**model, req, 4), alone);
  EXPECT_EQ(generate_split(**model, req, 2, PlanStrategy::kPipeline), alone);
}

}  // namespace
}  // namespace clusterd

namespace clusterd {
namespace {

TEST(TensorParallelGeneration, ARankThatDiesFailsTheRequestWithAnErrorNamingIt) {
  auto shared = testing::find_shared_dir();
  if (!shared) GTEST_SKIP() << "../shared (models) was not found";
  auto model = Model::open(*shared / "models" / "stories260K.gguf");
  ASSERT_TRUE(model.is_ok());
  const ModelParams& p = (*model)->params;
  std::vector<std::unique_ptr<DataListener>> listeners;
  std::vector<GroupMember> members;
  for (int r = 0; r < 2; ++r) {
    listeners.push_back(std::move(*DataListener::bind(0)));
    members.push_back({"127.0.0.1", listeners.back()->port(), r == 0 ? "alpha" : "beta"});
  }
  auto plan = plan_model(*footprint_of(*(*model)->file, p), {{"a", "alpha", 1ull << 34}, {"b", "beta", 1ull << 34}},
                         PlanRequest{PlanStrategy::kTensor, true, 128, 2});
  ASSERT_TRUE(plan.is_ok());
  std::thread beta([&] {
    auto weights = load_weights(*(*model)->file, p, plan->ranks[1].shard);
    auto group = Group::form(GroupOptions{"tp-test-key-0123456789abcdef", 3, 1, members}, *listeners[1]);
    ASSERT_TRUE(group.is_ok());
    GroupRunner runner(**group, *weights, TransformerOptions{128, 2, TensorType::kF16, 1});
    (*group)->close();  // dies before the first step
  });
  auto weights = load_weights(*(*model)->file, p, plan->ranks[0].shard);
  GroupOptions o{"tp-test-key-0123456789abcdef", 3, 0, members};
  o.deadline_ms = 1000;
  auto group = Group::form(o, *listeners[0]);
  ASSERT_TRUE(group.is_ok());
  GroupRunner runner(**group, *weights, TransformerOptions{128, 2, TensorType::kF16, 1});
  beta.join();
  auto req = request(**model, "Once upon a time", 0);
  auto t0 = std::chrono::steady_clock::now();
  auto result = generate(runner, *(*model)->tokenizer, req, 0);
  ASSERT_FALSE(result.is_ok());
  EXPECT_NE(result.status().message().find("beta"), std::string::npos) << result.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
}

}  // namespace
}  // namespace clusterd
