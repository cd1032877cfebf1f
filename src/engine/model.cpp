#include "clusterd/engine/model.h"

namespace clusterd {

Result<std::unique_ptr<Model>> Model::open(const std::filesystem::path& path) {
  auto file = GgufFile::open(path);
  if (!file.is_ok()) return file.status();
  return from_file(std::move(*file));
}

Result<std::unique_ptr<Model>> Model::from_file(std::unique_ptr<GgufFile> file) {
  auto params = read_model_params(*file);
  if (!params.is_ok()) return params.status();
  auto tokenizer = Tokenizer::from_gguf(*file);
  if (!tokenizer.is_ok()) return tokenizer.status();
  auto model = std::make_unique<Model>();
  model->file = std::move(file);
  model->tokenizer = std::move(*tokenizer);
  model->params = *params;
  return model;
}

uint64_t kv_bytes_per_token(const ModelParams& p, TensorType kv_type) {
  const uint64_t element = kv_type == TensorType::kF32 ? 4 : 2;
  return 2ull * p.n_layer * p.n_head_kv * p.head_dim * element;
}

}  // namespace clusterd
