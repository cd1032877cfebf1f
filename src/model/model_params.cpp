#include "clusterd/model/model_params.h"

namespace clusterd {

const char* supported_architectures() { return "llama, qwen2, qwen3"; }

namespace {

class ParamReader {
 public:
  ParamReader(const GgufFile& file, std::string prefix) : file_(file), prefix_(std::move(prefix)) {}

  // `key` without the architecture prefix; `fallback` < 0 means the key is required.
  int integer(const std::string& key, int64_t fallback, int64_t max = 1 << 30) {
    std::string full = prefix_ + "." + key;
    const GgufValue* v = file_.find(full);
    if (!v) {
      if (fallback < 0) fail("key '" + full + "' is missing");
      return static_cast<int>(std::max<int64_t>(fallback, 0));
    }
    auto i = v->as_int();
    if (!i || *i < 1 || *i > max) {
      fail("key '" + full + "' must be an integer from 1 to " + std::to_string(max));
      return 0;
    }
    return static_cast<int>(*i);
  }
  float real(const std::string& key, float fallback) {
    std::string full = prefix_ + "." + key;
    const GgufValue* v = file_.find(full);
    if (!v) return fallback;
    auto f = v->as_float();
    if (!f || !(*f > 0)) {
      fail("key '" + full + "' must be a positive number");
      return fallback;
    }
    return static_cast<float>(*f);
  }
  void fail(const std::string& what) {
    if (status_.is_ok()) status_ = invalid_argument(file_.name() + ": " + what);
  }
  const Status& status() const { return status_; }

 private:
  const GgufFile& file_;
  std::string prefix_;
  Status status_;
};

}  // namespace

Result<ModelParams> read_model_params(const GgufFile& file) {
  const GgufValue* arch = file.find("general.architecture");
  const std::string* arch_name = arch ? arch->as_string() : nullptr;
  if (!arch_name)
    return invalid_argument(file.name() + ": key 'general.architecture' is missing; is this a model file?");
  ModelParams p;
  p.arch_name = *arch_name;
  if (p.arch_name == "llama") {
    p.arch = ModelArch::kLlama;
  } else if (p.arch_name == "qwen2") {
    p.arch = ModelArch::kQwen2;
  } else if (p.arch_name == "qwen3") {
    p.arch = ModelArch::kQwen3;
  } else {
    return invalid_argument(file.name() + ": architecture '" + p.arch_name +
                            "' is not supported (supported: " + supported_architectures() + ")");
  }
  if (const GgufValue* n = file.find("general.name"); n && n->as_string()) p.name = *n->as_string();

  ParamReader r(file, p.arch_name);
  p.n_embd = r.integer("embedding_length", -1);
  p.n_layer = r.integer("block_count", -1, 4096);
  p.n_head = r.integer("attention.head_count", -1, 4096);
  p.n_head_kv = r.integer("attention.head_count_kv", p.n_head, 4096);
  p.n_ff = r.integer("feed_forward_length", -1);
  p.n_ctx_train = r.integer("context_length", 2048);
  p.rms_eps = r.real("attention.layer_norm_rms_epsilon", 1e-5f);
  p.rope_base = r.real("rope.freq_base", 10000.0f);
  if (!r.status().is_ok()) return r.status();
  p.head_dim = r.integer("attention.key_length", p.n_embd / p.n_head);
  p.n_rot = r.integer("rope.dimension_count", p.head_dim);
  if (!r.status().is_ok()) return r.status();
  if (p.n_head % p.n_head_kv != 0) {
    return invalid_argument(file.name() + ": head_count " + std::to_string(p.n_head) +
                            " is not a multiple of head_count_kv " + std::to_string(p.n_head_kv));
  }
  if (p.n_rot > p.head_dim || p.n_rot % 2 != 0) {
    return invalid_argument(file.name() + ": rope.dimension_count " + std::to_string(p.n_rot) +
                            " must be even and at most the head size " + std::to_string(p.head_dim));
  }
  p.rope_style = p.arch == ModelArch::kLlama ? RopeStyle::kNormal : RopeStyle::kNeox;
  p.qkv_bias = p.arch == ModelArch::kQwen2;
  p.qk_norm = p.arch == ModelArch::kQwen3;
  p.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  p.rope_freq_factors = file.find_tensor("rope_freqs.weight") != nullptr;

  const GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
  if (!embd) return invalid_argument(file.name() + ": tensor 'token_embd.weight' is missing");
  if (embd->ne[0] != p.n_embd) {
    return invalid_argument(file.name() + ": tensor 'token_embd.weight' has rows of " + std::to_string(embd->ne[0]) +
                            ", embedding_length says " + std::to_string(p.n_embd));
  }
  p.n_vocab = static_cast<int>(embd->ne[1]);
  return p;
}

}  // namespace clusterd
