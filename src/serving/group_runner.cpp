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
    : group_(group),
      collective_(group),
      local_(),
      pipeline_(!weights.shard.embeds || !weights.shard.outputs),
      options_(options),
      transformer_(weights, pipeline_ ? static_cast<Collective&>(local_) : collective_, options) {}

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

// Per logits row: k (id, logit) pairs, the count (-1: the step failed there), the
// log-sum-exp of the slice.
static size_t row_floats(int k) { return 2 * static_cast<size_t>(k) + 2; }

std::vector<float> GroupRunner::pack_candidates(const Status& forward, int rows, int k) const {
  const Shard& shard = transformer_.weights().shard;
  const int64_t V = shard.n_vocab();
  std::vector<float> out(row_floats(k) * rows, 0.0f);
  for (int r = 0; r < rows; ++r) {
    float* row = &out[r * row_floats(k)];
    if (!forward.is_ok()) {
      row[2 * k] = bits_of(-1);
      continue;
    }
    CandidateList list = top_candidates(&logits_[r * V], V, static_cast<int32_t>(shard.vocab_begin), k);
    for (size_t i = 0; i < list.top.size(); ++i) {
      row[2 * i] = bits_of(list.top[i].id);
      row[2 * i + 1] = list.top[i].logit;
    }
    row[2 * k] = bits_of(static_cast<int32_t>(list.top.size()));
    row[2 * k + 1] = list.log_sum_exp;
  }
  return out;
}

Result<std::vector<CandidateList>> GroupRunner::unpack_candidates(const std::vector<float>& packed, int parts, int rows,
                                                                  int k, int first_rank) const {
  std::vector<CandidateList> merged;
  for (int r = 0; r < rows; ++r) {
    std::vector<CandidateList> lists;
    for (int part = 0; part < parts; ++part) {
      const float* in = &packed[(part * rows + r) * row_floats(k)];
      const int32_t count = int_of(in[2 * k]);
      if (count < 0) return unavailable("rank " + std::to_string(first_rank + part) + " failed to run the step");
      CandidateList list;
      for (int32_t i = 0; i < count && i < k; ++i) list.top.push_back({int_of(in[2 * i]), in[2 * i + 1]});
      list.log_sum_exp = in[2 * k + 1];
      lists.push_back(std::move(list));
    }
    merged.push_back(merge_candidates(lists, k));
  }
  return merged;
}

Result<std::vector<CandidateList>> GroupRunner::run_step(std::vector<BatchToken>& batch, int k) {
  int rows = 0;
  for (const auto& t : batch) rows += t.logits ? 1 : 0;
  logits_.clear();
  if (pipeline_) return run_pipeline_step(batch, rows, k);
  // Tensor parallel: every rank runs its slice of every layer, then each returns the
  // top candidates of its vocab rows. Every rank takes part in the gather even after a
  // local error, so the group stays in step; the error travels as a count of -1.
  Status forward = transformer_.forward(batch, logits_);
  std::vector<float> mine = pack_candidates(forward, rows, k);
  std::vector<float> all(mine.size() * group_.size());
  if (Status s = group_.all_gather(mine, all); !s.is_ok()) return s;
  if (!forward.is_ok()) return forward;
  return unpack_candidates(all, group_.size(), rows, k, 0);
}

// Pipeline parallel: stage by stage, each rank runs its layers on the activations the
// previous stage broadcast (the first embeds the tokens), then passes its own on; the
// last stage broadcasts the candidates. A failed stage sends a flag instead, so every
// rank finishes the step with the same error.
Result<std::vector<CandidateList>> GroupRunner::run_pipeline_step(std::vector<BatchToken>& batch, int rows, int k) {
  const int n = group_.size(), me = group_.rank();
  const size_t width = static_cast<size_t>(batch.size()) * transformer_.weights().params.n_embd;
  std::vector<float> hidden(width), message(width + 1);
  Status local = Status::ok();
  for (int stage = 0; stage + 1 < n; ++stage) {
    if (stage == me) {
      const int32_t upstream = me > 0 ? int_of(message[width]) : 0;  // 1 + the failed stage
      if (upstream == 0) local = transformer_.forward(batch, logits_, &hidden);
      std::copy(hidden.begin(), hidden.end(), message.begin());
      message[width] = bits_of(upstream != 0 ? upstream : local.is_ok() ? 0 : 1 + stage);
    }
    if (Status s = group_.broadcast(message, stage); !s.is_ok()) return s;
    if (stage + 1 == me) std::copy(message.begin(), message.begin() + width, hidden.begin());
  }
  std::vector<float> packed(row_floats(k) * rows);
  if (me == n - 1) {
    Status forward = int_of(message[width]) != 0 ? unavailable("an earlier pipeline stage failed")
                                                 : transformer_.forward(batch, logits_, &hidden);
    packed = pack_candidates(forward, rows, k);
  }
  if (Status s = group_.broadcast(packed, n - 1); !s.is_ok()) return s;
  if (!local.is_ok()) return local;
  if (int32_t failed = int_of(message[width]); failed != 0) {
    return unavailable("rank " + std::to_string(failed - 1) + " failed to run its pipeline stage");
  }
  return unpack_candidates(packed, 1, rows, k, n - 1);
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
