#include "clusterd/serving/group_runner.h"

#include <cstring>

namespace clusterd {

namespace {

// Small integers travel through the float collectives as their bit patterns.
float bits_of(int32_t v) {
  float f;
  std::memcpy(&f, &v, sizeof f);
  return f;
}
int32_t int_of(float f) {
  int32_t v;
  std::memcpy(&v, &f, sizeof v);
  return v;
}

constexpr int kMaxCandidates = 1024;

}  // namespace

GroupRunner::GroupRunner(Group& group, const ModelWeights& weights, TransformerOptions options)
    : group_(group), collective_(group), options_(options), transformer_(weights, collective_, options) {}

Status GroupRunner::send_command(Command command, int32_t a, int32_t b) {
  std::vector<float> header = {bits_of(static_cast<int32_t>(command)), bits_of(a), bits_of(b)};
  return group_.broadcast(header, 0);
}

Result<std::vector<CandidateList>> GroupRunner::step(std::span<const BatchToken> batch, int candidates) {
  if (group_.rank() != 0) return internal_error("GroupRunner::step is for rank 0; other ranks call follow()");
  if (candidates < 1 || candidates > kMaxCandidates) return invalid_argument("candidates must be 1..1024");
  const int32_t n = static_cast<int32_t>(batch.size());
  if (Status s = send_command(Command::kStep, n, candidates); !s.is_ok()) return s;
  std::vector<float> body(4 * n);
  for (int32_t i = 0; i < n; ++i) {
    body[4 * i] = bits_of(batch[i].token);
    body[4 * i + 1] = bits_of(batch[i].pos);
    body[4 * i + 2] = bits_of(batch[i].seq);
    body[4 * i + 3] = bits_of(batch[i].logits ? 1 : 0);
  }
  if (Status s = group_.broadcast(body, 0); !s.is_ok()) return s;
  std::vector<BatchToken> local(batch.begin(), batch.end());
  return run_step(local, candidates);
}

Result<std::vector<CandidateList>> GroupRunner::run_step(std::vector<BatchToken>& batch, int k) {
  logits_.clear();
  Status forward = transformer_.forward(batch, logits_);
  // Every rank takes part in the gather even after a local error, so the group stays in
  // step; the error then travels as a row count of -1.
  const Shard& shard = transformer_.weights().shard;
  const int64_t V = shard.n_vocab();
  int rows = 0;
  for (const auto& t : batch) rows += t.logits ? 1 : 0;
  // Per row: k (id, logit) pairs, the count, the log-sum-exp.
  const size_t row_floats = 2 * static_cast<size_t>(k) + 2;
  std::vector<float> mine(row_floats * rows, 0.0f);
  for (int r = 0; r < rows; ++r) {
    float* out = &mine[r * row_floats];
    if (!forward.is_ok()) {
      out[2 * k] = bits_of(-1);
      continue;
    }
    CandidateList list = top_candidates(&logits_[r * V], V, static_cast<int32_t>(shard.vocab_begin), k);
    for (size_t i = 0; i < list.top.size(); ++i) {
      out[2 * i] = bits_of(list.top[i].id);
      out[2 * i + 1] = list.top[i].logit;
    }
    out[2 * k] = bits_of(static_cast<int32_t>(list.top.size()));
    out[2 * k + 1] = list.log_sum_exp;
  }
  std::vector<float> all(mine.size() * group_.size());
  if (Status s = group_.all_gather(mine, all); !s.is_ok()) return s;
  if (!forward.is_ok()) return forward;
  std::vector<CandidateList> merged;
  for (int r = 0; r < rows; ++r) {
    std::vector<CandidateList> parts;
    for (int rank = 0; rank < group_.size(); ++rank) {
      const float* in = &all[(rank * rows + r) * row_floats];
      const int32_t count = int_of(in[2 * k]);
      if (count < 0) return unavailable("rank " + std::to_string(rank) + " failed to run the step");
      CandidateList part;
      for (int32_t i = 0; i < count && i < k; ++i) part.top.push_back({int_of(in[2 * i]), in[2 * i + 1]});
      part.log_sum_exp = in[2 * k + 1];
      parts.push_back(std::move(part));
    }
    merged.push_back(merge_candidates(parts, k));
  }
  return merged;
}

void GroupRunner::release(int seq) {
  if (group_.rank() == 0 && send_command(Command::kRelease, seq, 0).is_ok()) transformer_.release_sequence(seq);
}

Status GroupRunner::finish() { return send_command(Command::kFinish, 0, 0); }

Status GroupRunner::follow() {
  for (;;) {
    std::vector<float> header(3);
    if (Status s = group_.broadcast(header, 0); !s.is_ok()) return s;
    const auto command = static_cast<Command>(int_of(header[0]));
    const int32_t a = int_of(header[1]), b = int_of(header[2]);
    if (command == Command::kFinish) return Status::ok();
    if (command == Command::kRelease) {
      transformer_.release_sequence(a);
      continue;
    }
    if (command != Command::kStep || a < 0 || a > (1 << 20) || b < 1 || b > kMaxCandidates) {
      return invalid_argument("follow: a malformed command from rank 0");
    }
    std::vector<float> body(4 * static_cast<size_t>(a));
    if (Status s = group_.broadcast(body, 0); !s.is_ok()) return s;
    std::vector<BatchToken> batch(a);
    for (int32_t i = 0; i < a; ++i) {
      batch[i] = {int_of(body[4 * i]), int_of(body[4 * i + 1]), int_of(body[4 * i + 2]), int_of(body[4 * i + 3]) != 0};
    }
    auto result = run_step(batch, b);
    if (!result.is_ok() && group_.broken()) return result.status();
  }
}

}  // namespace clusterd
