// The transformer forward pass over one shard, for a batch of tokens that may belong to
// several sequences (prefill chunks and batched decode run the same code).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "clusterd/common/status.h"
#include "clusterd/engine/kv_cache.h"
#include "clusterd/engine/matmul.h"
#include "clusterd/engine/shard.h"
#include "clusterd/engine/thread_pool.h"
#include "clusterd/engine/weights.h"

namespace clusterd {

struct BatchToken {
  int32_t token = 0;
  int32_t pos = 0;      // position in its sequence
  int32_t seq = 0;      // sequence id
  bool logits = false;  // return this token's logits
};

struct TransformerOptions {
  int n_ctx = 2048;
  int max_sequences = 16;
  TensorType kv_type = TensorType::kF16;
  int n_threads = 1;
};

class Transformer {
 public:
  // `weights` and `collective` must outlive the transformer.
  Transformer(const ModelWeights& weights, Collective& collective, TransformerOptions options);

  // Runs the batch. For every token with `logits` set, appends shard.n_vocab() logits
  // (this shard's vocab rows) to `logits`, in batch order. Positions must continue
  // each sequence's cache (pos = tokens already cached for that sequence).
  // Pipeline stages pass activations through `hidden` (tokens x n_embd): a stage that
  // does not embed reads the previous stage's from it, one that does not output the
  // logits writes its own into it.
  Status forward(std::span<const BatchToken> batch, std::vector<float>& logits, std::vector<float>* hidden = nullptr);

  // Frees a sequence's cache.
  void release_sequence(int seq) { kv_.release(seq); }
  const KvCache& kv_cache() const { return kv_; }
  const ModelWeights& weights() const { return w_; }

 private:
  void attention(int layer, std::span<const BatchToken> batch);
  void rope_angles(std::span<const BatchToken> batch);
  void rope(float* x, int n_heads, int t) const;

  const ModelWeights& w_;
  Collective& collective_;
  TransformerOptions options_;
  ThreadPool pool_;
  KvCache kv_;
  MatmulScratch scratch_;
  std::vector<float> rope_inv_freq_;  // (n_rot / 2)
  std::vector<float> rope_cs_;        // (tokens, n_rot / 2, 2): cos and sin per pair
  // Activations, reused between calls: [tokens][width].
  std::vector<float> x_, xb_, q_, k_, v_, att_, proj_, gate_, up_;
  // Per pool thread: one sequence's keys (transposed) and values for one KV head, and
  // the scores of one query head.
  struct AttentionScratch {
    std::vector<float> keys, values, scores;
  };
  std::vector<AttentionScratch> attention_scratch_;
  // The batch's runs of consecutive tokens of one sequence: tokens [first, end), cache
  // read up to position n (reused between calls, so the hot path does not allocate).
  struct AttentionRun {
    int first, end, n;
  };
  std::vector<AttentionRun> attention_runs_;
};

}  // namespace clusterd
