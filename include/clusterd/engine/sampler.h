// Sampling from candidate lists: each rank reduces its slice of the vocabulary to its
// top-K logits plus the log-sum-exp of the whole slice, the coordinator merges the
// lists and samples. Full logit vectors never need to cross the network.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace clusterd {

struct Candidate {
  int32_t id = 0;
  float logit = 0;
};

struct CandidateList {
  std::vector<Candidate> top;  // highest logits first
  float log_sum_exp = 0;       // log(sum(exp(logit))) over every token the list stands for
};

// The `k` highest of `logits[0..n)`, ids offset by `first_id` (the slice's first vocab row).
CandidateList top_candidates(const float* logits, int64_t n, int32_t first_id, int k);
// Merges lists from disjoint vocab slices into the top `k` of their union.
CandidateList merge_candidates(std::span<const CandidateList> lists, int k);

struct SamplingParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: no limit (within the candidates)
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repeat_penalty = 1.0f;     // divides positive logits of recent tokens, multiplies negative ones
  float frequency_penalty = 0.0f;  // minus count * this
  float presence_penalty = 0.0f;   // minus this once present
  int penalty_last_n = 64;         // how many recent tokens the penalties look at
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplingParams params);

  // Picks a token. `history` is the sequence so far (prompt and generated tokens).
  int32_t sample(CandidateList candidates, std::span<const int32_t> history);

  // The steps of sample(), exposed for tests: each keeps `list.top` sorted.
  void apply_penalties(CandidateList& list, std::span<const int32_t> history) const;
  static void keep_top_k(CandidateList& list, int k);
  // top_p and min_p look at probabilities before temperature, as llama.cpp's chain does.
  static void keep_top_p(CandidateList& list, float p);
  static void keep_min_p(CandidateList& list, float min_p);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace clusterd
