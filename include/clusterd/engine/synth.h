// Synthetic models: random weights of any shape and tensor type, written as GGUF, for
// tests and benchmarks (`clusterd model synth`). Seeded and deterministic. They produce
// gibberish: they test arithmetic and speed, not text.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "clusterd/common/status.h"
#include "clusterd/model/gguf.h"
#include "clusterd/model/tensor_type.h"

namespace clusterd {

struct SynthOptions {
  std::string arch = "llama";  // llama, qwen2, qwen3
  int n_embd = 256;
  int n_layer = 2;
  int n_head = 8;
  int n_head_kv = 2;
  int head_dim = 0;  // 0: n_embd / n_head
  int n_ff = 768;
  int n_vocab = 512;
  int n_ctx = 2048;
  TensorType type = TensorType::kQ8_0;  // of the 2-D weights; norms stay F32
  bool tied_embeddings = false;
  uint64_t seed = 1;
  // Copy the tokenizer (and its vocabulary size) from this file; empty: a byte-level
  // SentencePiece vocabulary of n_vocab tokens is made up.
  std::filesystem::path like;
};

// Builds the model and writes it to `path`. A tensor whose rows do not fit the type's
// block size is stored as Q8_0 (or F16), and said so in `notes`.
Status synthesize_model(const SynthOptions& options, const std::filesystem::path& path, std::string* notes);

}  // namespace clusterd
