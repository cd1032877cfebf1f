// The shard plan: which node computes which part of a model. Tensor parallelism (TP)
// splits KV-head groups, FFN columns and vocab rows over the ranks; pipeline
// parallelism (PP) gives each rank a contiguous range of layers. The plan is a plain
// value: printable, JSON for the API, checked against each node's free memory.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "clusterd/common/status.h"
#include "clusterd/engine/shard.h"
#include "clusterd/model/gguf.h"
#include "clusterd/model/model_params.h"

namespace clusterd {

// What a model weighs, tensor by tensor kind, without the tensors themselves.
struct ModelFootprint {
  ModelParams params;
  TensorType token_embd_type = TensorType::kF32;
  TensorType output_type = TensorType::kF32;  // = token_embd_type when tied
  TensorType attn_qkv_type = TensorType::kF32;
  TensorType attn_output_type = TensorType::kF32;
  TensorType ffn_gate_up_type = TensorType::kF32;
  TensorType ffn_down_type = TensorType::kF32;
};

// Reads the types of layer 0 (and the embeddings) from a GGUF file.
Result<ModelFootprint> footprint_of(const GgufFile& file, const ModelParams& params);
// A footprint with every matrix of one type (for planning synthetic shapes).
ModelFootprint uniform_footprint(const ModelParams& params, TensorType type);

struct PlanNode {
  std::string id;
  std::string name;
  uint64_t free_memory_bytes = 0;
};

enum class PlanStrategy { kAuto, kTensor, kPipeline };
const char* plan_strategy_name(PlanStrategy s);
Result<PlanStrategy> parse_plan_strategy(const std::string& name);

struct PlanRequest {
  PlanStrategy strategy = PlanStrategy::kAuto;
  bool equal_split = false;  // TP shares: false = proportional to free memory (PP always is)
  int ctx = 4096;            // context per sequence
  int max_sequences = 4;     // KV cache is reserved for this many sequences
  int max_batch_tokens = 512;
};

struct RankPlan {
  int rank = 0;
  std::string node_id;
  std::string node_name;
  Shard shard;
  uint64_t weight_bytes = 0;
  uint64_t kv_cache_bytes = 0;
  uint64_t work_bytes = 0;  // activations and scratch at max_batch_tokens
  uint64_t free_bytes = 0;
  uint64_t total_bytes() const { return weight_bytes + kv_cache_bytes + work_bytes; }
};

struct ShardPlan {
  PlanStrategy strategy = PlanStrategy::kTensor;
  std::vector<RankPlan> ranks;
  std::vector<std::string> notes;  // slices that will be requantized, and why

  nlohmann::json to_json() const;
  std::string to_text() const;  // a table for `clusterctl model load --dry-run`
};

// Plans `model` over `nodes` (ranks in the given order). Refuses, with the numbers, a
// plan that does not fit ("node b needs 9.1 GiB, has 7.8 GiB free"), TP over more
// ranks than KV heads, and empty inputs.
Result<ShardPlan> plan_model(const ModelFootprint& model, const std::vector<PlanNode>& nodes,
                             const PlanRequest& request);

}  // namespace clusterd
