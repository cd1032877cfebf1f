#include "clusterd/engine/generate.h"

#include <algorithm>
#include <chrono>

namespace clusterd {

static double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

size_t stop_string_safe_length(const std::string& text, const std::vector<std::string>& stop, bool& stopped) {
  stopped = false;
  size_t first_stop = std::string::npos;
  for (const auto& s : stop) {
    if (s.empty()) continue;
    size_t at = text.find(s);
    if (at != std::string::npos) first_stop = std::min(first_stop, at);
  }
  if (first_stop != std::string::npos) {
    stopped = true;
    return first_stop;
  }
  // Hold back a tail that is a prefix of some stop string.
  size_t safe = text.size();
  for (const auto& s : stop) {
    for (size_t n = std::min(s.size() - 1, text.size()); n > 0; --n) {
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        safe = std::min(safe, text.size() - n);
        break;
      }
    }
  }
  return safe;
}

Result<std::vector<CandidateList>> LocalStepRunner::step(std::span<const BatchToken> batch, int candidates) {
  logits_.clear();
  if (Status s = tf_.forward(batch, logits_); !s.is_ok()) return s;
  const Shard& shard = tf_.weights().shard;
  const int64_t V = shard.n_vocab();
  std::vector<CandidateList> out;
  for (size_t row = 0; row * V < logits_.size(); ++row) {
    out.push_back(top_candidates(&logits_[row * V], V, static_cast<int32_t>(shard.vocab_begin), candidates));
  }
  return out;
}

Result<GenerateResult> generate(Transformer& tf, const Tokenizer& tokenizer, const GenerateRequest& req, int seq,
                                const std::function<bool(std::string_view)>& on_text) {
  const Shard& shard = tf.weights().shard;
  if (shard.vocab_begin != 0 || shard.vocab_end != tf.weights().params.n_vocab) {
    return invalid_argument("generate: needs a transformer holding the whole vocabulary");
  }
  LocalStepRunner runner(tf);
  return generate(runner, tokenizer, req, seq, on_text);
}

Result<GenerateResult> generate(StepRunner& runner, const Tokenizer& tokenizer, const GenerateRequest& req, int seq,
                                const std::function<bool(std::string_view)>& on_text) {
  if (req.prompt.empty()) return invalid_argument("generate: the prompt has no tokens");
  if (static_cast<int>(req.prompt.size()) + req.max_tokens > runner.n_ctx()) {
    return invalid_argument("generate: " + std::to_string(req.prompt.size()) + " prompt tokens plus " +
                            std::to_string(req.max_tokens) + " new tokens exceed the context of " +
                            std::to_string(runner.n_ctx()));
  }
  GenerateResult out;
  std::vector<int32_t> history = req.prompt;
  const int k = std::max(req.candidates, req.sampling.top_k);
  CandidateList candidates;

  // Prefill in chunks; only the last prompt token needs logits.
  auto t0 = std::chrono::steady_clock::now();
  const int n_prompt = static_cast<int>(req.prompt.size());
  for (int begin = 0; begin < n_prompt; begin += req.prefill_chunk) {
    int end = std::min(n_prompt, begin + req.prefill_chunk);
    std::vector<BatchToken> batch;
    for (int i = begin; i < end; ++i) batch.push_back({req.prompt[i], i, seq, i == n_prompt - 1});
    auto lists = runner.step(batch, k);
    if (!lists.is_ok()) {
      runner.release(seq);
      return lists.status();
    }
    if (end == n_prompt) candidates = std::move(lists->back());
  }
  out.prompt_ms = ms_since(t0);

  Sampler sampler(req.sampling);
  StreamDecoder decoder(tokenizer);
  std::string pending;  // decoded text not yet passed on (may start a stop string)
  bool stopped = false;
  auto t1 = std::chrono::steady_clock::now();
  out.finish_reason = "length";
  for (int n = 0; n < req.max_tokens; ++n) {
    int32_t token = sampler.sample(std::move(candidates), history);
    out.tokens.push_back(token);
    history.push_back(token);
    if (tokenizer.is_end_of_generation(token)) {
      out.finish_reason = "stop";
      break;
    }
    pending += decoder.push(token);
    size_t safe = stop_string_safe_length(pending, req.stop, stopped);
    if (safe > 0) {
      out.text.append(pending, 0, safe);
      if (on_text && !on_text(std::string_view(pending).substr(0, safe))) stopped = true;
      pending.erase(0, safe);
    }
    if (stopped) {
      out.finish_reason = "stop";
      pending.clear();
      break;
    }
    if (n + 1 == req.max_tokens) break;
    std::vector<BatchToken> step = {{token, static_cast<int32_t>(history.size() - 1), seq, true}};
    auto lists = runner.step(step, k);
    if (!lists.is_ok()) {
      runner.release(seq);
      return lists.status();
    }
    candidates = std::move(lists->front());
  }
  if (!stopped) {
    pending += decoder.flush();
    size_t safe = stop_string_safe_length(pending, req.stop, stopped);
    if (stopped) out.finish_reason = "stop";
    else safe = pending.size();  // nothing more can complete a stop string
    if (safe > 0) {
      out.text.append(pending, 0, safe);
      if (on_text) on_text(std::string_view(pending).substr(0, safe));
    }
  }
  out.generation_ms = ms_since(t1);
  runner.release(seq);
  return out;
}

}  // namespace clusterd
