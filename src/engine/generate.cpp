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

Continuation::Continuation(const Tokenizer& tokenizer, const GenerateRequest& request)
    : tokenizer_(tokenizer),
      request_(request),
      sampler_(request.sampling),
      decoder_(tokenizer),
      history_(request.prompt),
      k_(std::max(request.candidates, request.sampling.top_k)) {
  out_.finish_reason = "length";
}

int32_t Continuation::advance(CandidateList candidates, std::string& fresh) {
  fresh.clear();
  int32_t token = sampler_.sample(std::move(candidates), history_);
  out_.tokens.push_back(token);
  history_.push_back(token);
  if (tokenizer_.is_end_of_generation(token)) {
    finish("stop", fresh, true);
    return token;
  }
  pending_ += decoder_.push(token);
  bool stopped = false;
  size_t safe = stop_string_safe_length(pending_, request_.stop, stopped);
  fresh.assign(pending_, 0, safe);
  pending_.erase(0, safe);
  if (stopped) {
    finish("stop", fresh, false);
  } else if (static_cast<int>(out_.tokens.size()) >= request_.max_tokens) {
    finish("length", fresh, true);
  }
  out_.text += fresh;
  return token;
}

void Continuation::cancel() {
  if (done_) return;
  pending_.clear();
  done_ = true;
  out_.finish_reason = "stop";
}

// Ends generation. With `flush`, the decoder's held-back bytes and text that could have
// begun a stop string become final (nothing more can complete it).
void Continuation::finish(const std::string& reason, std::string& fresh, bool flush) {
  done_ = true;
  out_.finish_reason = reason;
  if (!flush) {
    pending_.clear();
    return;
  }
  pending_ += decoder_.flush();
  bool stopped = false;
  size_t safe = stop_string_safe_length(pending_, request_.stop, stopped);
  if (stopped) out_.finish_reason = "stop";
  else safe = pending_.size();
  fresh.append(pending_, 0, safe);
  pending_.clear();
}

Result<GenerateResult> generate(StepRunner& runner, const Tokenizer& tokenizer, const GenerateRequest& req, int seq,
                                const std::function<bool(std::string_view)>& on_text) {
  if (req.prompt.empty()) return invalid_argument("generate: the prompt has no tokens");
  if (static_cast<int>(req.prompt.size()) + req.max_tokens > runner.n_ctx()) {
    return invalid_argument("generate: " + std::to_string(req.prompt.size()) + " prompt tokens plus " +
                            std::to_string(req.max_tokens) + " new tokens exceed the context of " +
                            std::to_string(runner.n_ctx()));
  }
  Continuation next(tokenizer, req);
  CandidateList candidates;

  // Prefill in chunks; only the last prompt token needs logits.
  auto t0 = std::chrono::steady_clock::now();
  const int n_prompt = static_cast<int>(req.prompt.size());
  for (int begin = 0; begin < n_prompt; begin += req.prefill_chunk) {
    int end = std::min(n_prompt, begin + req.prefill_chunk);
    std::vector<BatchToken> batch;
    for (int i = begin; i < end; ++i) batch.push_back({req.prompt[i], i, seq, i == n_prompt - 1});
    auto lists = runner.step(batch, next.candidates());
    if (!lists.is_ok()) {
      runner.release(seq);
      return lists.status();
    }
    if (end == n_prompt) candidates = std::move(lists->back());
  }
  const double prompt_ms = ms_since(t0);

  auto t1 = std::chrono::steady_clock::now();
  std::string fresh;
  while (req.max_tokens > 0) {
    next.advance(std::move(candidates), fresh);
    if (!fresh.empty() && on_text && !on_text(fresh)) next.cancel();
    if (next.done()) break;
    std::vector<BatchToken> step = {{next.last_token(), next.next_position(), seq, true}};
    auto lists = runner.step(step, next.candidates());
    if (!lists.is_ok()) {
      runner.release(seq);
      return lists.status();
    }
    candidates = std::move(lists->front());
  }
  runner.release(seq);
  GenerateResult out = std::move(next.result());
  out.prompt_ms = prompt_ms;
  out.generation_ms = ms_since(t1);
  return out;
}

}  // namespace clusterd
