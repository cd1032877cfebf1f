// A model file opened for inference: the mapped GGUF, its tokenizer and its
// hyper-parameters. Weights are views built per shard (load_weights).
#pragma once

#include <filesystem>
#include <memory>

#include "clusterd/common/status.h"
#include "clusterd/model/gguf.h"
#include "clusterd/model/model_params.h"
#include "clusterd/model/tokenizer.h"

namespace clusterd {

struct Model {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tokenizer;
  ModelParams params;

  // Opens and validates the file, reads the tokenizer and hyper-parameters.
  static Result<std::unique_ptr<Model>> open(const std::filesystem::path& path);
  // The same over a file already parsed (an image of slices streamed from a peer).
  static Result<std::unique_ptr<Model>> from_file(std::unique_ptr<GgufFile> file);
};

// KV-cache bytes per token of context for the whole model at `kv_type`.
uint64_t kv_bytes_per_token(const ModelParams& params, TensorType kv_type);

}  // namespace clusterd
