// What part of a model one rank computes, and the collective it sums partial results
// through. Tensor parallelism (Megatron): q/k/v and ffn_gate/ffn_up split by output
// rows, attn_output and ffn_down by input columns, the output matrix by vocab rows,
// norms and embeddings replicated. Pipeline parallelism: a contiguous layer range.
// The whole model is the shard that holds everything.
#pragma once

#include <cstdint>
#include <span>

#include "clusterd/common/status.h"
#include "clusterd/model/model_params.h"

namespace clusterd {

struct Shard {
  int kv_head_begin = 0, kv_head_end = 0;  // KV-head groups (a query head stays with its KV head)
  int64_t ffn_begin = 0, ffn_end = 0;      // FFN columns
  int64_t vocab_begin = 0, vocab_end = 0;  // rows of the output matrix
  int layer_begin = 0, layer_end = 0;      // layers run here
  bool embeds = true;   // runs the token embedding (first pipeline stage)
  bool outputs = true;  // runs the final norm and the output matrix (last stage)

  static Shard whole(const ModelParams& params);
  int n_kv_heads() const { return kv_head_end - kv_head_begin; }
  int64_t n_ffn() const { return ffn_end - ffn_begin; }
  int64_t n_vocab() const { return vocab_end - vocab_begin; }
};

// Checks ranges against the model (inside bounds, non-empty where required).
Status validate_shard(const Shard& shard, const ModelParams& params);

// The two all-reduce points per layer go through this. Contributions must be added in
// rank order on every rank, so every rank holds bit-identical activations afterwards.
class Collective {
 public:
  virtual ~Collective() = default;
  // Sums `data` elementwise over the ranks of the group, in place.
  virtual Status all_reduce_sum(std::span<float> data) = 0;
};

// A group of one: nothing to add.
class LocalCollective final : public Collective {
 public:
  Status all_reduce_sum(std::span<float>) override { return Status::ok(); }
};

}  // namespace clusterd
