#include "clusterd/placement/shard_plan.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace clusterd {

const char* plan_strategy_name(PlanStrategy s) {
  switch (s) {
    case PlanStrategy::kAuto: return "auto";
    case PlanStrategy::kTensor: return "tensor";
    case PlanStrategy::kPipeline: return "pipeline";
  }
  return "unknown";
}

Result<PlanStrategy> parse_plan_strategy(const std::string& name) {
  if (name == "auto") return PlanStrategy::kAuto;
  if (name == "tensor") return PlanStrategy::kTensor;
  if (name == "pipeline") return PlanStrategy::kPipeline;
  return invalid_argument("strategy '" + name + "' is not one of auto, tensor, pipeline");
}

Result<ModelFootprint> footprint_of(const GgufFile& file, const ModelParams& p) {
  auto type = [&](const std::string& name, TensorType& out) {
    const GgufTensorInfo* t = file.find_tensor(name);
    if (!t) return false;
    out = t->type;
    return true;
  };
  ModelFootprint f;
  f.params = p;
  bool ok = type("token_embd.weight", f.token_embd_type) && type("blk.0.attn_q.weight", f.attn_qkv_type) &&
            type("blk.0.attn_output.weight", f.attn_output_type) && type("blk.0.ffn_up.weight", f.ffn_gate_up_type) &&
            type("blk.0.ffn_down.weight", f.ffn_down_type);
  if (!ok) return invalid_argument(file.name() + ": the tensors of layer 0 or the token embedding are missing");
  if (!type("output.weight", f.output_type)) f.output_type = f.token_embd_type;
  return f;
}

ModelFootprint uniform_footprint(const ModelParams& params, TensorType t) {
  return ModelFootprint{params, t, t, t, t, t, t};
}

namespace {

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / double(1ull << 30));
  return buf;
}

int block_of(TensorType t) {
  auto traits = tensor_type_traits(t);
  return traits ? static_cast<int>(traits->block_size) : 1;
}

uint64_t rows_bytes(TensorType t, int64_t rows, int64_t row_len) {
  if (rows <= 0 || row_len <= 0) return 0;
  auto traits = tensor_type_traits(t);
  if (!traits) return 0;
  // Slices that do not fit the blocks are stored requantized as Q8_0 (or F32).
  if (row_len % traits->block_size != 0) {
    return static_cast<uint64_t>(rows) * (row_len % 32 == 0 ? row_len / 32 * 34 : row_len * 4);
  }
  return static_cast<uint64_t>(rows) * static_cast<uint64_t>(row_len / traits->block_size) * traits->type_size;
}

// Splits `units` into one count per weight, proportional, each at least 1 (units >= n).
std::vector<int64_t> split_units(int64_t units, const std::vector<double>& weights) {
  const size_t n = weights.size();
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<int64_t> out(n, 1);
  int64_t left = units - static_cast<int64_t>(n);
  std::vector<std::pair<double, size_t>> remainders;
  int64_t given = 0;
  for (size_t i = 0; i < n; ++i) {
    double share = left * weights[i] / total;
    int64_t whole = static_cast<int64_t>(share);
    out[i] += whole;
    given += whole;
    remainders.push_back({share - whole, i});
  }
  std::sort(remainders.begin(), remainders.end(),
            [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  for (size_t k = 0; given < left; ++k, ++given) out[remainders[k % n].second]++;
  return out;
}

// Bytes of one layer's weights for `q_rows` query rows, `kv_rows` key (and value) rows
// and `ffn` FFN columns (norms included).
uint64_t layer_bytes(const ModelFootprint& m, int64_t q_rows, int64_t kv_rows, int64_t ffn) {
  const ModelParams& p = m.params;
  return rows_bytes(m.attn_qkv_type, q_rows + 2 * kv_rows, p.n_embd) +
         rows_bytes(m.attn_output_type, p.n_embd, q_rows) + rows_bytes(m.ffn_gate_up_type, 2 * ffn, p.n_embd) +
         rows_bytes(m.ffn_down_type, p.n_embd, ffn) + 8ull * p.n_embd;
}

// A rank on `node` holding the whole model until the caller narrows its shard.
RankPlan rank_on(int rank, const PlanNode& node, const ModelParams& p) {
  RankPlan rp;
  rp.rank = rank;
  rp.node_id = node.id;
  rp.node_name = node.name;
  rp.free_bytes = node.free_memory_bytes;
  rp.shard = Shard::whole(p);
  return rp;
}

uint64_t work_bytes(const ModelParams& p, const PlanRequest& r, int64_t q_local, int64_t kv_local, int64_t ffn_local,
                    int64_t vocab_local) {
  return 4ull * r.max_batch_tokens * (3ull * p.n_embd + 2ull * q_local + 2ull * kv_local + 2ull * ffn_local) +
         4ull * r.max_sequences * vocab_local;
}

uint64_t kv_bytes(const ModelParams& p, const PlanRequest& r, int layers, int kv_heads) {
  return 2ull * layers * kv_heads * p.head_dim * 2ull * r.ctx * r.max_sequences;  // F16 keys and values
}

Status check_fit(const ShardPlan& plan) {
  std::string problems;
  for (const auto& r : plan.ranks) {
    if (r.total_bytes() > r.free_bytes) {
      problems += (problems.empty() ? "" : "; ") + std::string("node ") + r.node_name + " needs " +
                  gib(r.total_bytes()) + ", has " + gib(r.free_bytes) + " free";
    }
  }
  if (problems.empty()) return Status::ok();
  return unavailable(std::string(plan_strategy_name(plan.strategy)) + " plan does not fit: " + problems);
}

Result<ShardPlan> plan_tensor(const ModelFootprint& m, const std::vector<PlanNode>& nodes, const PlanRequest& req,
                              const std::vector<double>& weights) {
  const ModelParams& p = m.params;
  const int n = static_cast<int>(nodes.size());
  if (n > p.n_head_kv) {
    return invalid_argument("tensor parallelism over " + std::to_string(n) +
                            " nodes needs at least as many KV heads; " + "the model has " +
                            std::to_string(p.n_head_kv) + " (use pipeline parallelism)");
  }
  ShardPlan plan;
  plan.strategy = PlanStrategy::kTensor;
  // FFN columns go in units of ffn_down's block, so its column slices stay aligned.
  int unit = block_of(m.ffn_down_type);
  if (p.n_ff % unit != 0 || p.n_ff / unit < n) {
    unit = p.n_ff % 32 == 0 && p.n_ff / 32 >= n ? 32 : 1;
    if (n > 1) {
      plan.notes.push_back("ffn_down (" + std::string(tensor_type_name(m.ffn_down_type)) + ") column slices of " +
                           std::to_string(p.n_ff) +
                           " columns cannot align with its blocks; slices are requantized to " +
                           (unit == 32 ? "q8_0" : "f32") + " at load");
    }
  }
  auto kv = split_units(p.n_head_kv, weights);
  auto ffn = split_units(p.n_ff / unit, weights);
  auto vocab = split_units(p.n_vocab, weights);
  const int o_block = block_of(m.attn_output_type);
  int kv0 = 0;
  int64_t ffn0 = 0, vocab0 = 0;
  for (int r = 0; r < n; ++r) {
    RankPlan rp = rank_on(r, nodes[r], p);
    Shard& s = rp.shard;
    s.kv_head_begin = kv0;
    s.kv_head_end = kv0 += static_cast<int>(kv[r]);
    s.ffn_begin = ffn0;
    s.ffn_end = ffn0 = r + 1 == n ? p.n_ff : ffn0 + ffn[r] * unit;
    s.vocab_begin = vocab0;
    s.vocab_end = vocab0 += vocab[r];
    const int64_t hd = p.head_dim;
    const int64_t q_local = static_cast<int64_t>(s.n_kv_heads()) * p.n_gqa() * hd;
    const int64_t kv_local = static_cast<int64_t>(s.n_kv_heads()) * hd;
    const int64_t q0 = static_cast<int64_t>(s.kv_head_begin) * p.n_gqa() * hd;
    if (n > 1 && (q0 % o_block != 0 || q_local % o_block != 0)) {
      plan.notes.push_back("rank " + std::to_string(r) + ": attn_output (" +
                           std::string(tensor_type_name(m.attn_output_type)) + ") columns [" + std::to_string(q0) +
                           ", " + std::to_string(q0 + q_local) + ") do not align with its blocks of " +
                           std::to_string(o_block) + "; requantized at load");
    }
    const uint64_t layer = layer_bytes(m, q_local, kv_local, s.n_ffn());
    rp.weight_bytes = layer * p.n_layer + rows_bytes(m.token_embd_type, p.n_vocab, p.n_embd) +
                      (p.tied_embeddings ? 0 : rows_bytes(m.output_type, s.n_vocab(), p.n_embd));
    rp.kv_cache_bytes = kv_bytes(p, req, p.n_layer, s.n_kv_heads());
    rp.work_bytes = work_bytes(p, req, q_local, kv_local, s.n_ffn(), s.n_vocab());
    plan.ranks.push_back(rp);
  }
  return plan;
}

Result<ShardPlan> plan_pipeline(const ModelFootprint& m, const std::vector<PlanNode>& nodes, const PlanRequest& req,
                                const std::vector<double>& weights) {
  const ModelParams& p = m.params;
  const int n = static_cast<int>(nodes.size());
  if (n > p.n_layer) {
    return invalid_argument("pipeline parallelism over " + std::to_string(n) +
                            " nodes needs at least as many layers; " + "the model has " + std::to_string(p.n_layer));
  }
  ShardPlan plan;
  plan.strategy = PlanStrategy::kPipeline;
  auto layers = split_units(p.n_layer, weights);
  const uint64_t layer = layer_bytes(m, static_cast<int64_t>(p.n_head) * p.head_dim,
                                     static_cast<int64_t>(p.n_head_kv) * p.head_dim, p.n_ff);
  int l0 = 0;
  for (int r = 0; r < n; ++r) {
    RankPlan rp = rank_on(r, nodes[r], p);
    Shard& s = rp.shard;
    s.layer_begin = l0;
    s.layer_end = l0 += static_cast<int>(layers[r]);
    s.embeds = r == 0;
    s.outputs = r + 1 == n;
    const uint64_t embd = rows_bytes(m.token_embd_type, p.n_vocab, p.n_embd);
    rp.weight_bytes = layer * s.layer_end - layer * s.layer_begin + (s.embeds ? embd : 0) +
                      (s.outputs ? (p.tied_embeddings ? embd : rows_bytes(m.output_type, p.n_vocab, p.n_embd)) : 0);
    if (s.embeds && s.outputs && p.tied_embeddings) rp.weight_bytes -= embd;  // one copy serves both
    rp.kv_cache_bytes = kv_bytes(p, req, s.layer_end - s.layer_begin, p.n_head_kv);
    rp.work_bytes = work_bytes(p, req, static_cast<int64_t>(p.n_head) * p.head_dim,
                               static_cast<int64_t>(p.n_head_kv) * p.head_dim, p.n_ff, s.outputs ? p.n_vocab : 0);
    plan.ranks.push_back(rp);
  }
  return plan;
}

}  // namespace

Result<ShardPlan> plan_model(const ModelFootprint& m, const std::vector<PlanNode>& nodes, const PlanRequest& req) {
  if (nodes.empty()) return invalid_argument("plan: no nodes to place the model on");
  if (req.ctx <= 0 || req.max_sequences <= 0) return invalid_argument("plan: ctx and max_sequences must be positive");
  // TP shares follow free memory unless equal shares are asked for; PP layer ranges
  // always follow free memory (it exists for nodes that differ a lot).
  std::vector<double> by_memory, weights;
  for (const auto& node : nodes) {
    by_memory.push_back(std::max<double>(1.0, static_cast<double>(node.free_memory_bytes)));
    weights.push_back(req.equal_split ? 1.0 : by_memory.back());
  }
  if (req.strategy == PlanStrategy::kTensor || req.strategy == PlanStrategy::kPipeline) {
    auto plan = req.strategy == PlanStrategy::kTensor ? plan_tensor(m, nodes, req, weights)
                                                      : plan_pipeline(m, nodes, req, by_memory);
    if (!plan.is_ok()) return plan;
    if (Status s = check_fit(*plan); !s.is_ok()) return s;
    return plan;
  }
  // auto: tensor parallelism when every rank can hold its share, else pipeline.
  auto tensor = plan_tensor(m, nodes, req, weights);
  Status why = tensor.is_ok() ? check_fit(*tensor) : tensor.status();
  if (why.is_ok()) return tensor;
  auto pipeline = plan_pipeline(m, nodes, req, by_memory);
  if (pipeline.is_ok() && check_fit(*pipeline).is_ok()) {
    pipeline->notes.insert(pipeline->notes.begin(), "pipeline chosen: " + why.message());
    return pipeline;
  }
  Status pipeline_why = pipeline.is_ok() ? check_fit(*pipeline) : pipeline.status();
  return unavailable("no plan fits: " + why.message() + "; " + pipeline_why.message());
}

nlohmann::json ShardPlan::to_json() const {
  nlohmann::json ranks_json = nlohmann::json::array();
  for (const auto& r : ranks) {
    const Shard& s = r.shard;
    ranks_json.push_back({{"rank", r.rank},
                          {"node", r.node_name},
                          {"node_id", r.node_id},
                          {"kv_heads", {s.kv_head_begin, s.kv_head_end}},
                          {"ffn_columns", {s.ffn_begin, s.ffn_end}},
                          {"vocab_rows", {s.vocab_begin, s.vocab_end}},
                          {"layers", {s.layer_begin, s.layer_end}},
                          {"embeds", s.embeds},
                          {"outputs", s.outputs},
                          {"weight_bytes", r.weight_bytes},
                          {"kv_cache_bytes", r.kv_cache_bytes},
                          {"work_bytes", r.work_bytes},
                          {"memory_bytes", r.total_bytes()},
                          {"free_bytes", r.free_bytes}});
  }
  return {{"strategy", plan_strategy_name(strategy)}, {"ranks", ranks_json}, {"notes", notes}};
}

std::string ShardPlan::to_text() const {
  std::string out = std::string("strategy: ") + plan_strategy_name(strategy) + "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-5s %-16s %-9s %-15s %-15s %-9s %10s %10s\n", "RANK", "NODE", "KV HEADS",
                "FFN COLUMNS", "VOCAB ROWS", "LAYERS", "MEMORY", "FREE");
  out += line;
  for (const auto& r : ranks) {
    const Shard& s = r.shard;
    auto range = [](int64_t a, int64_t b) { return std::to_string(a) + "-" + std::to_string(b); };
    std::snprintf(line, sizeof line, "%-5d %-16s %-9s %-15s %-15s %-9s %10s %10s\n", r.rank, r.node_name.c_str(),
                  range(s.kv_head_begin, s.kv_head_end).c_str(), range(s.ffn_begin, s.ffn_end).c_str(),
                  s.outputs ? range(s.vocab_begin, s.vocab_end).c_str() : "-",
                  range(s.layer_begin, s.layer_end).c_str(), gib(r.total_bytes()).c_str(), gib(r.free_bytes).c_str());
    out += line;
  }
  for (const auto& note : notes) out += "note: " + note + "\n";
  return out;
}

}  // namespace clusterd
