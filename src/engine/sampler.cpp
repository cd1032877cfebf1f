#include "clusterd/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace clusterd {

static bool higher(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

CandidateList top_candidates(const float* logits, int64_t n, int32_t first_id, int k) {
  CandidateList out;
  float max_logit = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_logit);
  out.log_sum_exp = max_logit + static_cast<float>(std::log(sum));
  const int64_t keep = std::min<int64_t>(k, n);
  out.top.reserve(n);
  for (int64_t i = 0; i < n; ++i) out.top.push_back({first_id + static_cast<int32_t>(i), logits[i]});
  std::partial_sort(out.top.begin(), out.top.begin() + keep, out.top.end(), higher);
  out.top.resize(keep);
  return out;
}

CandidateList merge_candidates(std::span<const CandidateList> lists, int k) {
  CandidateList out;
  float max_lse = -INFINITY;
  for (const auto& l : lists) {
    max_lse = std::max(max_lse, l.log_sum_exp);
    out.top.insert(out.top.end(), l.top.begin(), l.top.end());
  }
  double sum = 0;
  for (const auto& l : lists) sum += std::exp(static_cast<double>(l.log_sum_exp) - max_lse);
  out.log_sum_exp = max_lse + static_cast<float>(std::log(sum));
  std::sort(out.top.begin(), out.top.end(), higher);
  if (static_cast<int>(out.top.size()) > k) out.top.resize(k);
  return out;
}

Sampler::Sampler(SamplingParams params) : params_(params), rng_(params.seed) {}

void Sampler::apply_penalties(CandidateList& list, std::span<const int32_t> history) const {
  const SamplingParams& p = params_;
  if (p.repeat_penalty == 1.0f && p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f) return;
  std::map<int32_t, int> counts;
  size_t first = history.size() > static_cast<size_t>(std::max(0, p.penalty_last_n))
                     ? history.size() - std::max(0, p.penalty_last_n)
                     : 0;
  for (size_t i = first; i < history.size(); ++i) counts[history[i]]++;
  for (auto& c : list.top) {
    auto it = counts.find(c.id);
    if (it == counts.end()) continue;
    c.logit = c.logit > 0 ? c.logit / p.repeat_penalty : c.logit * p.repeat_penalty;
    c.logit -= it->second * p.frequency_penalty + p.presence_penalty;
  }
  std::sort(list.top.begin(), list.top.end(), higher);
}

void Sampler::keep_top_k(CandidateList& list, int k) {
  if (k > 0 && static_cast<int>(list.top.size()) > k) list.top.resize(k);
}

// Probabilities of the listed candidates at `temperature`, normalized over the list.
static std::vector<double> probabilities(const CandidateList& list, float temperature) {
  std::vector<double> p(list.top.size());
  if (p.empty()) return p;
  const double t = temperature > 0 ? temperature : 1.0;
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp((list.top[i].logit - list.top[0].logit) / t);
  for (auto& x : p) x /= sum;
  return p;
}

void Sampler::keep_top_p(CandidateList& list, float top_p) {
  if (top_p >= 1.0f || list.top.empty()) return;
  auto p = probabilities(list, 1.0f);
  double cumulative = 0;
  size_t keep = 0;
  while (keep < p.size()) {
    cumulative += p[keep++];
    if (cumulative >= top_p) break;
  }
  list.top.resize(std::max<size_t>(1, keep));
}

void Sampler::keep_min_p(CandidateList& list, float min_p) {
  if (min_p <= 0.0f || list.top.empty()) return;
  // p(x) >= min_p * p(best)  <=>  logit(x) >= logit(best) + log(min_p)
  const float threshold = list.top[0].logit + std::log(min_p);
  size_t keep = 1;
  while (keep < list.top.size() && list.top[keep].logit >= threshold) ++keep;
  list.top.resize(keep);
}

int32_t Sampler::sample(CandidateList list, std::span<const int32_t> history) {
  if (list.top.empty()) return -1;
  apply_penalties(list, history);
  if (params_.temperature <= 0.0f) return list.top[0].id;
  keep_top_k(list, params_.top_k);
  keep_top_p(list, params_.top_p);
  keep_min_p(list, params_.min_p);
  auto p = probabilities(list, params_.temperature);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  double r = uniform(rng_), cumulative = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    cumulative += p[i];
    if (r < cumulative) return list.top[i].id;
  }
  return list.top.back().id;
}

}  // namespace clusterd
