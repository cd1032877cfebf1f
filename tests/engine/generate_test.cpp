#include "clusterd/engine/generate.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/shared_fixtures.h"

namespace clusterd {
namespace {

TEST(StopStrings, TextIsCutBeforeTheFirstStopString) {
  bool stopped = false;
  EXPECT_EQ(stop_string_safe_length("Once upon a time. The end", {"The end", "time"}, stopped), 12u);
  EXPECT_TRUE(stopped);
}

TEST(StopStrings, ATailThatMayBeginAStopStringIsHeldBack) {
  bool stopped = false;
  EXPECT_EQ(stop_string_safe_length("Hello wor", {"world!"}, stopped), 6u);
  EXPECT_FALSE(stopped);
  EXPECT_EQ(stop_string_safe_length("Hello", {"xyz"}, stopped), 5u);
}

struct Stories {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tokenizer;
  ModelWeights weights;
};

std::optional<Stories> load_stories() {
  auto shared = testing::find_shared_dir();
  if (!shared) return std::nullopt;
  Stories s;
  s.file = std::move(*GgufFile::open(*shared / "models" / "stories260K.gguf"));
  s.tokenizer = std::move(*Tokenizer::from_gguf(*s.file));
  auto params = read_model_params(*s.file);
  s.weights = std::move(*load_weights(*s.file, *params, Shard::whole(*params)));
  return s;
}

TEST(Generate, GreedyStoryFromTextMatchesTheReferenceContinuation) {
  auto stories = load_stories();
  if (!stories) GTEST_SKIP() << "../shared (models and golden outputs) was not found";
  std::ifstream in(*testing::find_shared_dir() / "golden" / "generate" / "stories260K.json");
  auto golden = nlohmann::json::parse(in)[0];
  LocalCollective local;
  Transformer tf(stories->weights, local, TransformerOptions{256, 1, TensorType::kF16, 2});
  GenerateRequest req;
  req.prompt = stories->tokenizer->encode(golden["prompt"].get<std::string>(), true, false);
  EXPECT_EQ(req.prompt, golden["prompt_tokens"].get<std::vector<int32_t>>());
  req.max_tokens = 32;
  req.sampling.temperature = 0;
  std::string streamed;
  auto result = generate(tf, *stories->tokenizer, req, 0, [&](std::string_view piece) {
    streamed += piece;
    return true;
  });
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  EXPECT_EQ(result->tokens, golden["greedy_tokens"].get<std::vector<int32_t>>());
  EXPECT_EQ(result->text, streamed);
  EXPECT_EQ(result->text.substr(0, 40), golden["greedy_text"].get<std::string>().substr(0, 40));
  EXPECT_EQ(result->finish_reason, "length");
  EXPECT_FALSE(tf.kv_cache().has(0)) << "the sequence's cache is freed";
}

TEST(Generate, AStopStringEndsTheTextBeforeIt) {
  auto stories = load_stories();
  if (!stories) GTEST_SKIP() << "../shared (models and golden outputs) was not found";
  LocalCollective local;
  Transformer tf(stories->weights, local, TransformerOptions{256, 1, TensorType::kF16, 2});
  GenerateRequest req;
  req.prompt = stories->tokenizer->encode("Once upon a time", true, false);
  req.max_tokens = 32;
  req.sampling.temperature = 0;
  req.stop = {"Lily"};
  auto result = generate(tf, *stories->tokenizer, req, 0);
  ASSERT_TRUE(result.is_ok());
  EXPECT_EQ(result->text, ", there was a little girl named ");
  EXPECT_EQ(result->finish_reason, "stop");
}

TEST(Generate, TheSameSeedGivesTheSameStory) {
  auto stories = load_stories();
  if (!stories) GTEST_SKIP() << "../shared (models and golden outputs) was not found";
  LocalCollective local;
  Transformer tf(stories->weights, local, TransformerOptions{256, 1, TensorType::kF16, 2});
  GenerateRequest req;
  req.prompt = stories->tokenizer->encode("Once upon a time", true, false);
  req.max_tokens = 24;
  req.sampling.temperature = 1.0f;
  req.sampling.seed = 1234;
  auto a = generate(tf, *stories->tokenizer, req, 0);
  auto b = generate(tf, *stories->tokenizer, req, 1);
  req.sampling.seed = 99;
  auto c = generate(tf, *stories->tokenizer, req, 0);
  ASSERT_TRUE(a.is_ok() && b.is_ok() && c.is_ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_NE(a->tokens, c->tokens);
}

TEST(Generate, APromptBeyondTheContextIsRefused) {
  auto stories = load_stories();
  if (!stories) GTEST_SKIP() << "../shared (models and golden outputs) was not found";
  LocalCollective local;
  Transformer tf(stories->weights, local, TransformerOptions{16, 1, TensorType::kF16, 2});
  GenerateRequest req;
  req.prompt = std::vector<int32_t>(10, 1);
  req.max_tokens = 10;
  auto result = generate(tf, *stories->tokenizer, req, 0);
  EXPECT_FALSE(result.is_ok());
  EXPECT_NE(result.status().message().find("exceed the context of 16"), std::string::npos);
}

}  // namespace
}  // namespace clusterd
