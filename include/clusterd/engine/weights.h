// The weights one rank uses, as views into the mapped GGUF file (nothing is copied
// but small vectors: norms, biases, rope factors). Shapes are checked against the
// hyper-parameters; slices follow the Shard.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "clusterd/common/status.h"
#include "clusterd/engine/matmul.h"
#include "clusterd/engine/shard.h"
#include "clusterd/model/gguf.h"
#include "clusterd/model/model_params.h"

namespace clusterd {

struct LayerWeights {
  std::vector<float> attn_norm;       // (n_embd)
  WeightMatrix wq;                    // (n_embd -> shard q heads * head_dim)
  WeightMatrix wk, wv;                // (n_embd -> shard kv heads * head_dim)
  std::vector<float> bq, bk, bv;      // qwen2 biases of the shard's rows; empty otherwise
  std::vector<float> q_norm, k_norm;  // qwen3 (head_dim); empty otherwise
  WeightMatrix wo;                    // (shard q heads * head_dim -> n_embd): a column slice
  std::vector<float> ffn_norm;        // (n_embd)
  WeightMatrix w_gate, w_up;          // (n_embd -> shard ffn columns)
  WeightMatrix w_down;                // (shard ffn columns -> n_embd): a column slice
};

// Memory for weight copies: 64-byte aligned, and from 2 MiB up 2 MiB-aligned and
// backed by transparent huge pages where the kernel allows (fewer TLB misses on the
// weight streams: decode on Q4_0, 1 thread, about 5% faster). Not yet written.
struct FreeWeightMemory {
  void operator()(uint8_t* p) const { std::free(p); }
};
using WeightMemory = std::unique_ptr<uint8_t, FreeWeightMemory>;
WeightMemory allocate_weight_memory(size_t bytes);

struct ModelWeights {
  ModelParams params;
  Shard shard;
  WeightMatrix token_embd;           // (n_embd, n_vocab), replicated
  std::vector<float> output_norm;    // (n_embd)
  WeightMatrix output;               // (n_embd -> shard vocab rows)
  std::vector<float> rope_freqs;     // (n_rot / 2) frequency divisors, llama 3.1; empty otherwise
  std::vector<LayerWeights> layers;  // indexed by layer - shard.layer_begin
  // Column slices (attn_output, ffn_down of a tensor-parallel shard) copied at load
  // time so that their rows are contiguous (unless they are packed, which copies them
  // anyway), requantized (to Q8_0 where 32-aligned,
  // else F32) where they do not align with their type's blocks; the views above point
  // into these.
  std::vector<std::vector<uint8_t>> requantized;
  std::vector<std::string> load_notes;  // one line per requantized slice
  // The packed copies (packed.h) of the matrices above whose type packs on this CPU;
  // each matrix's `packed` points to one of these.
  std::vector<WeightMemory> packed;
  uint64_t packed_bytes = 0;

  // Bytes of weight data this shard reads (for memory accounting and bandwidth bounds).
  uint64_t bytes() const;
};

// Builds the views. The file must outlive the result. Errors name the file and the
// tensor ("x.gguf: tensor blk.2.ffn_up.weight has shape [128, 384], expected [128, 512]").
// With `pack`, Q8_0, Q4_0 and K-quant (Q4_K, Q5_K, Q6_K) matrices are also copied into the packed layout where
// the CPU supports it (faster products; the copy is private memory of the same size).
Result<ModelWeights> load_weights(const GgufFile& file, const ModelParams& params, const Shard& shard,
                                  bool pack = true);

// Bytes [begin, end) of one tensor's data.
struct TensorByteRange {
  std::string tensor;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// The bytes load_weights reads for `shard`, per tensor: a row range of the tensors
// split by rows (q, k, v, gate, up, output), the whole of the others (norms, the
// embedding, and attn_output and ffn_down, split by columns so every row is read).
// Tensors the file lacks are left out (load_weights reports them).
std::vector<TensorByteRange> shard_byte_ranges(const GgufFile& file, const ModelParams& params, const Shard& shard);

}  // namespace clusterd
