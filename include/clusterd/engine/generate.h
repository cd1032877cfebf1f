// Text generation on one node: prefill the prompt in chunks, then sample token by token
// until max tokens, an end-of-generation token or a stop string. Streams text that is
// complete UTF-8 and cannot be the start of a stop string.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "clusterd/common/status.h"
#include "clusterd/engine/sampler.h"
#include "clusterd/engine/transformer.h"
#include "clusterd/model/tokenizer.h"

namespace clusterd {

struct GenerateRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included when the model wants one
  int max_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;  // the text ends before the first of these
  int prefill_chunk = 256;        // prompt tokens per forward pass
  int candidates = 64;            // K of the top-K candidate list
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (a stop string's tokens included)
  std::string text;             // the generated text, cut before a stop string
  std::string finish_reason;    // "stop" (end of generation or stop string) or "length"
  double prompt_ms = 0;
  double generation_ms = 0;
  double tokens_per_second() const {
    return generation_ms > 0 ? tokens.size() * 1000.0 / generation_ms : 0;
  }
};

// What generation needs from a model, local or spread over a group: run a batch and
// return the merged candidate list of each token that asked for logits; free a sequence.
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  virtual Result<std::vector<CandidateList>> step(std::span<const BatchToken> batch, int candidates) = 0;
  virtual void release(int seq) = 0;
  virtual int n_ctx() const = 0;
};

// A StepRunner over one transformer that holds the whole vocabulary.
class LocalStepRunner final : public StepRunner {
 public:
  explicit LocalStepRunner(Transformer& transformer) : tf_(transformer) {}
  Result<std::vector<CandidateList>> step(std::span<const BatchToken> batch, int candidates) override;
  void release(int seq) override { tf_.release_sequence(seq); }
  int n_ctx() const override { return tf_.kv_cache().n_ctx(); }

 private:
  Transformer& tf_;
  std::vector<float> logits_;
};

// Runs one sequence (`seq`) through `runner` and frees its cache afterwards.
// `on_text` receives each piece of text as it becomes final; returning false stops
// generation (finish_reason "stop").
Result<GenerateResult> generate(StepRunner& runner, const Tokenizer& tokenizer, const GenerateRequest& request, int seq,
                                const std::function<bool(std::string_view)>& on_text = {});

// Runs one sequence (`seq`) on a whole-model transformer and frees its cache afterwards.
// `on_text` receives each piece of text as it becomes final; returning false stops
// generation (finish_reason "stop").
Result<GenerateResult> generate(Transformer& transformer, const Tokenizer& tokenizer, const GenerateRequest& request,
                                int seq, const std::function<bool(std::string_view)>& on_text = {});

// Cuts `text` at the first stop string; returns how many bytes are final (cannot be
// the beginning of a stop string that more text would complete).
size_t stop_string_safe_length(const std::string& text, const std::vector<std::string>& stop, bool& stopped);

}  // namespace clusterd
