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
  double prompt_ms = 0;      // prefill, from the first prompt chunk to the first token's logits
  double generation_ms = 0;  // from the first sampled token to the last
  double queue_ms = 0;       // waiting for a place in the running batch (scheduler)
  double first_token_ms = 0;  // from arrival to the first token (scheduler)
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

// One sequence after its prompt: samples each next token from the merged candidates,
// turns tokens into final text (complete UTF-8, cut before a stop string) and says when
// generation ends. Shared by generate() and the serving scheduler.
class Continuation {
 public:
  Continuation(const Tokenizer& tokenizer, const GenerateRequest& request);

  // Samples the next token from `candidates`; `fresh` gets the text that became final.
  int32_t advance(CandidateList candidates, std::string& fresh);
  // Ends generation early (the client went away): finish_reason "stop".
  void cancel();
  bool done() const { return done_; }
  // The token whose logits come next (the last one sampled) and its position.
  int32_t last_token() const { return history_.back(); }
  int32_t next_position() const { return static_cast<int32_t>(history_.size()) - 1; }
  // Candidates the next step must gather (covers top_k).
  int candidates() const { return k_; }
  GenerateResult& result() { return out_; }

 private:
  void finish(const std::string& reason, std::string& fresh, bool flush);

  const Tokenizer& tokenizer_;
  const GenerateRequest& request_;
  Sampler sampler_;
  StreamDecoder decoder_;
  std::vector<int32_t> history_;
  std::string pending_;  // decoded text not yet final (it may start a stop string)
  int k_;
  bool done_ = false;
  GenerateResult out_;
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
