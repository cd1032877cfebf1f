// Continuous batching: many requests share forward steps and each still gets the reply
// it gets alone; limits (queue depth, KV budget, context) and cancellation behave.
#include "clusterd/serving/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "clusterd/engine/model.h"
#include "clusterd/engine/synth.h"

namespace clusterd {
namespace {

constexpr int kCtx = 256;

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = std::filesystem::temp_directory_path() / ("scheduler-test-" + std::to_string(::getpid()) + ".gguf");
    SynthOptions o;
    o.n_embd = 128;
    o.n_head = 4;
    o.n_head_kv = 2;
    o.n_ff = 256;
    o.n_vocab = 384;
    o.seed = 7;
    ASSERT_TRUE(synthesize_model(o, path_, nullptr).is_ok());
    auto model = Model::open(path_);
    ASSERT_TRUE(model.is_ok()) << model.status().to_string();
    model_ = std::move(*model).release();
    auto weights = load_weights(*model_->file, model_->params, Shard::whole(model_->params));
    ASSERT_TRUE(weights.is_ok());
    weights_ = new ModelWeights(std::move(*weights));
  }
  static void TearDownTestSuite() {
    delete weights_;
    delete model_;
    std::filesystem::remove(path_);
  }

  static GenerateRequest request(int prompt_tokens, int max_tokens, uint32_t seed, float temperature = 0) {
    std::mt19937 rng(seed);
    GenerateRequest r;
    for (int i = 0; i < prompt_tokens; ++i) r.prompt.push_back(3 + static_cast<int32_t>(rng() % 300));
    r.max_tokens = max_tokens;
    r.sampling.temperature = temperature;
    r.sampling.seed = seed;
    return r;
  }

  // The reply a request gets on a transformer of its own.
  static std::vector<int32_t> alone(const GenerateRequest& r) {
    LocalCollective local;
    Transformer tf(*weights_, local, TransformerOptions{kCtx, 1, TensorType::kF16, 1});
    auto result = generate(tf, *model_->tokenizer, r, 0);
    EXPECT_TRUE(result.is_ok()) << result.status().to_string();
    return result.is_ok() ? result->tokens : std::vector<int32_t>{};
  }

  static inline std::filesystem::path path_;
  static inline Model* model_ = nullptr;
  static inline ModelWeights* weights_ = nullptr;
};

// A runner whose steps fail from the `fail_at`th on, to see errors reach every caller.
class FailingRunner final : public StepRunner {
 public:
  FailingRunner(StepRunner& inner, int fail_at) : inner_(inner), fail_at_(fail_at) {}
  Result<std::vector<CandidateList>> step(std::span<const BatchToken> batch, int k) override {
    if (++steps_ >= fail_at_) return unavailable("rank 1 (node b) stopped answering");
    return inner_.step(batch, k);
  }
  void release(int seq) override { inner_.release(seq); }
  int n_ctx() const override { return inner_.n_ctx(); }

 private:
  StepRunner& inner_;
  int fail_at_;
  int steps_ = 0;
};

// A runner whose steps wait while the gate is closed, to hold the scheduler mid-step.
class GatedRunner final : public StepRunner {
 public:
  explicit GatedRunner(StepRunner& inner) : inner_(inner) {}
  Result<std::vector<CandidateList>> step(std::span<const BatchToken> batch, int k) override {
    while (!open) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return inner_.step(batch, k);
  }
  void release(int seq) override { inner_.release(seq); }
  int n_ctx() const override { return inner_.n_ctx(); }
  std::atomic<bool> open{false};

 private:
  StepRunner& inner_;
};

void wait_until(const std::function<bool()>& done) {
  while (!done()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

uint64_t steps_with_more_than_one_sequence(const ServingStats& s) {
  uint64_t n = 0;
  for (size_t i = 1; i < s.batch_size.counts().size(); ++i) n += s.batch_size.counts()[i];
  return n;
}

TEST_F(SchedulerTest, ConcurrentRequestsShareStepsAndEachGetsItsReplyAlone) {
  LocalCollective local;
  Transformer tf(*weights_, local, TransformerOptions{kCtx, 8, TensorType::kF16, 2});
  LocalStepRunner runner(tf);
  // A small step budget so the longest prompt is prefilled in chunks between decodes.
  Scheduler scheduler(runner, *model_->tokenizer, SchedulerOptions{8, 48, 16, 0});
  std::vector<GenerateRequest> requests;
  for (int i = 0; i < 12; ++i) {
    requests.push_back(request(i == 5 ? 150 : 3 + 7 * i, 20 + i, 100 + i, i % 3 == 0 ? 0.9f : 0.0f));
  }
  std::vector<std::vector<int32_t>> got(requests.size());
  std::vector<std::string> streamed(requests.size()), text(requests.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < requests.size(); ++i) {
    threads.emplace_back([&, i] {
      auto r = scheduler.generate(requests[i], [&](std::string_view piece) {
        streamed[i] += piece;
        return true;
      });
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      got[i] = r->tokens;
      text[i] = r->text;
      EXPECT_GE(r->first_token_ms, r->queue_ms);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(got[i], alone(requests[i])) << "request " << i;
    EXPECT_EQ(streamed[i], text[i]) << "request " << i;
  }
  ServingStats s = scheduler.stats();
  EXPECT_GT(steps_with_more_than_one_sequence(s), 0u) << "no step ever ran two sequences";
  EXPECT_EQ(s.requests_finished, requests.size());
  EXPECT_EQ(s.time_to_first_token.count(), requests.size());
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.kv_tokens_in_use, 0);
  EXPECT_EQ(tf.kv_cache().bytes_in_use(), 0u) << "every sequence's cache is freed";
}

TEST_F(SchedulerTest, ACancelledRequestIsDroppedAndItsCacheFreed) {
  LocalCollective local;
  Transformer tf(*weights_, local, TransformerOptions{kCtx, 4, TensorType::kF16, 1});
  LocalStepRunner runner(tf);
  Scheduler scheduler(runner, *model_->tokenizer, SchedulerOptions{4, 64, 4, 0});
  int pieces = 0;
  auto r = scheduler.generate(request(10, 200, 1), [&](std::string_view) { return ++pieces < 3; });
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->finish_reason, "stop");
  EXPECT_LT(r->tokens.size(), 200u);
  ServingStats s = scheduler.stats();
  EXPECT_EQ(s.requests_cancelled, 1u);
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(tf.kv_cache().bytes_in_use(), 0u);
  // The next request runs normally.
  auto next = scheduler.generate(request(5, 8, 2));
  ASSERT_TRUE(next.is_ok());
  EXPECT_EQ(next->tokens, alone(request(5, 8, 2)));
}

TEST_F(SchedulerTest, AFullQueueRefusesAndRequestsThatCanNeverFitAreInvalid) {
  LocalCollective local;
  Transformer tf(*weights_, local, TransformerOptions{kCtx, 1, TensorType::kF16, 1});
  LocalStepRunner inner(tf);
  GatedRunner runner(inner);
  Scheduler scheduler(runner, *model_->tokenizer, SchedulerOptions{1, 16, 1, 200});

  auto too_long = scheduler.generate(request(200, 100, 3));
  ASSERT_FALSE(too_long.is_ok());
  EXPECT_EQ(too_long.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.status().message().find("context of 256"), std::string::npos) << too_long.status().message();
  auto over_budget = scheduler.generate(request(150, 60, 3));
  ASSERT_FALSE(over_budget.is_ok());
  EXPECT_EQ(over_budget.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(over_budget.status().message().find("budget is 200"), std::string::npos);

  // One running (its step held at the gate), one waiting: the third is refused.
  std::thread first([&] { EXPECT_TRUE(scheduler.generate(request(4, 10, 4)).is_ok()); });
  wait_until([&] { return scheduler.stats().running == 1; });
  std::thread second([&] { EXPECT_TRUE(scheduler.generate(request(4, 5, 5)).is_ok()); });
  wait_until([&] { return scheduler.stats().waiting == 1; });
  auto third = scheduler.generate(request(4, 5, 6));
  ASSERT_FALSE(third.is_ok());
  EXPECT_EQ(third.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(third.status().message().find("queue is full"), std::string::npos);
  runner.open = true;
  first.join();
  second.join();
  EXPECT_EQ(scheduler.stats().requests_refused, 1u);
}

TEST_F(SchedulerTest, SubmitRefusesBeforeAnyReplyAndADroppedTicketIsCancelled) {
  LocalCollective local;
  Transformer tf(*weights_, local, TransformerOptions{kCtx, 2, TensorType::kF16, 1});
  LocalStepRunner runner(tf);
  Scheduler scheduler(runner, *model_->tokenizer, SchedulerOptions{2, 64, 4, 0});
  auto refused = scheduler.submit(request(300, 10, 40));
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  {
    auto ticket = scheduler.submit(request(6, 200, 41));
    ASSERT_TRUE(ticket.is_ok());
  }  // nobody waits: the request is dropped at a step boundary
  wait_until([&] { return scheduler.stats().requests_cancelled == 1; });
  EXPECT_EQ(scheduler.stats().running, 0);
  auto ticket = scheduler.submit(request(6, 8, 42));
  ASSERT_TRUE(ticket.is_ok());
  auto r = scheduler.wait(*ticket);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->tokens, alone(request(6, 8, 42)));
}

TEST_F(SchedulerTest, RequestsWaitForKvBudgetInArrivalOrder) {
  LocalCollective local;
  Transformer tf(*weights_, local, TransformerOptions{kCtx, 4, TensorType::kF16, 1});
  LocalStepRunner runner(tf);
  // Room for one 100-position request at a time although four slots exist.
  Scheduler scheduler(runner, *model_->tokenizer, SchedulerOptions{4, 64, 8, 150});
  std::vector<std::thread> threads;
  std::vector<std::vector<int32_t>> got(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      auto r = scheduler.generate(request(40, 60, 10 + i));
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      got[i] = r->tokens;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i], alone(request(40, 60, 10 + i)));
  ServingStats s = scheduler.stats();
  EXPECT_EQ(steps_with_more_than_one_sequence(s), 0u) << "two 100-position requests never fit a budget of 150";
}

TEST_F(SchedulerTest, AFailedStepFailsEveryRunningRequestAndIsReported) {
  LocalCollective local;
  Transformer tf(*weights_, local, TransformerOptions{kCtx, 4, TensorType::kF16, 1});
  LocalStepRunner inner(tf);
  FailingRunner runner(inner, 6);
  std::atomic<int> reported{0};
  Scheduler scheduler(runner, *model_->tokenizer, SchedulerOptions{4, 64, 8, 0}, [&](const Status&) { reported++; });
  auto r = scheduler.generate(request(8, 50, 20));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("node b"), std::string::npos);
  EXPECT_EQ(reported.load(), 1);
  EXPECT_EQ(scheduler.stats().requests_failed, 1u);
  EXPECT_EQ(tf.kv_cache().bytes_in_use(), 0u);
}

TEST_F(SchedulerTest, StoppingFailsWaitingRequestsAndRefusesNewOnes) {
  LocalCollective local;
  Transformer tf(*weights_, local, TransformerOptions{kCtx, 1, TensorType::kF16, 1});
  LocalStepRunner inner(tf);
  GatedRunner runner(inner);
  Scheduler scheduler(runner, *model_->tokenizer, SchedulerOptions{1, 16, 4, 0});
  std::vector<Status> results(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      auto r = scheduler.generate(request(4, 200, 30 + i));
      results[i] = r.status();
    });
    wait_until([&] { return scheduler.stats().running + scheduler.stats().waiting == i + 1; });
  }
  std::thread stopper([&] { scheduler.stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  runner.open = true;  // the step in flight completes, then the scheduler stops
  stopper.join();
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
  auto after = scheduler.generate(request(4, 4, 31));
  ASSERT_FALSE(after.is_ok());
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace clusterd
