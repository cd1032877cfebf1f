// A model instance spread over a group of ranks. Rank 0 coordinates: per step it
// broadcasts the batch (token ids, positions, sequence ids, which tokens want logits).
// Tensor parallel: every rank runs its shard with the two all-reduces per layer going
// through the group, each rank reduces its vocab rows to top-K candidates with a
// log-sum-exp, and rank 0 gathers and merges them. Pipeline parallel (each rank a
// contiguous layer range): the stages run in turn, passing activations on, and the
// last stage sends the candidates. Full logits never cross the network.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "clusterd/collective/group.h"
#include "clusterd/engine/generate.h"
#include "clusterd/engine/transformer.h"

namespace clusterd {

// The engine's Collective over a Group.
class GroupCollective final : public Collective {
 public:
  explicit GroupCollective(Group& group) : group_(group) {}
  Status all_reduce_sum(std::span<float> data) override { return group_.all_reduce_sum(data); }

 private:
  Group& group_;
};

class GroupRunner final : public StepRunner {
 public:
  // `weights` is this rank's shard; the group's ranks must hold disjoint vocab slices
  // covering the vocabulary, and the same KV-head / FFN partition rules as the plan.
  GroupRunner(Group& group, const ModelWeights& weights, TransformerOptions options);

  // Rank 0 only: runs a step on every rank and returns the merged candidates.
  Result<std::vector<CandidateList>> step(std::span<const BatchToken> batch, int candidates) override;
  void release(int seq) override;
  int n_ctx() const override { return options_.n_ctx; }

  // Ranks other than 0: follow rank 0's steps until it calls finish() or the group
  // fails. Returns ok after finish().
  Status follow();
  // Rank 0: tells the followers to return from follow().
  Status finish();

 private:
  enum class Command : int32_t { kStep = 1, kRelease = 2, kFinish = 3 };
  Status send_command(Command command, int32_t a, int32_t b);
  // Runs `batch` here and gathers every rank's candidates at rank 0.
  Result<std::vector<CandidateList>> run_step(std::vector<BatchToken>& batch, int candidates);
  Result<std::vector<CandidateList>> run_pipeline_step(std::vector<BatchToken>& batch, int rows, int candidates);
  // Candidate lists of this rank's logits rows as floats, and back (merging `parts`
  // ranks' lists per row; `first_rank` names the first in errors).
  std::vector<float> pack_candidates(const Status& forward, int rows, int candidates) const;
  Result<std::vector<CandidateList>> unpack_candidates(const std::vector<float>& packed, int parts, int rows,
                                                       int candidates, int first_rank) const;

  Group& group_;
  GroupCollective collective_;
  LocalCollective local_;  // pipeline stages hold whole layers: nothing to sum
  bool pipeline_;
  TransformerOptions options_;
  Transformer transformer_;
  std::vector<float> logits_;
};

}  // namespace clusterd
