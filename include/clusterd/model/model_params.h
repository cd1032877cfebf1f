// Hyper-parameters of a transformer, read from a GGUF file's metadata, for the
// architectures clusterd runs: llama (Llama 2/3/3.1/3.2, Mistral, SmolLM), qwen2, qwen3.
#pragma once

#include <cstdint>
#include <string>

#include "clusterd/common/status.h"
#include "clusterd/model/gguf.h"

namespace clusterd {

enum class ModelArch { kLlama, kQwen2, kQwen3 };

// How rotary embeddings pair up dimensions: llama rotates (x[2i], x[2i+1]) — its GGUF
// q/k rows are permuted for that — qwen rotates (x[i], x[i + n_rot/2]) ("NeoX").
enum class RopeStyle { kNormal, kNeox };

struct ModelParams {
  ModelArch arch = ModelArch::kLlama;
  std::string arch_name;  // "llama", "qwen2", "qwen3"
  std::string name;       // general.name, if any
  int n_vocab = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;  // key/value length per head
  int n_ff = 0;
  int n_ctx_train = 0;
  int n_rot = 0;  // rotated dimensions per head (rope.dimension_count), <= head_dim
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  RopeStyle rope_style = RopeStyle::kNormal;
  bool tied_embeddings = false;  // no output.weight: the output reuses token_embd
  bool qkv_bias = false;         // qwen2
  bool qk_norm = false;          // qwen3: RMSNorm per head on q and k
  bool rope_freq_factors = false;  // llama 3.1: rope_freqs.weight divides the frequencies

  int n_gqa() const { return n_head / n_head_kv; }  // query heads per KV head
};

// Supported architecture names, for error messages: "llama, qwen2, qwen3".
const char* supported_architectures();

// Reads and checks the hyper-parameters (shapes must agree with the tensors present).
// Errors name the file and the key ("x.gguf: key 'llama.block_count' is missing").
Result<ModelParams> read_model_params(const GgufFile& file);

}  // namespace clusterd
