// The KV cache: for each sequence and layer, the keys and values of every position so
// far, for this shard's KV heads. F16 by default (half the memory), F32 on request.
// A sequence's memory grows with it, 256 positions at a time, up to the context.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "clusterd/common/status.h"
#include "clusterd/model/tensor_type.h"

namespace clusterd {

struct KvCacheOptions {
  int n_layer = 0;    // layers held here
  int kv_width = 0;   // KV heads here * head_dim
  int n_ctx = 2048;   // positions per sequence
  int max_sequences = 16;
  TensorType type = TensorType::kF16;  // kF16 or kF32
};

class KvCache {
 public:
  explicit KvCache(KvCacheOptions options);

  // Memory one sequence takes at full context (keys and values of every layer).
  uint64_t bytes_per_sequence() const;
  // Memory of one position of one sequence (keys and values of every layer).
  uint64_t bytes_per_position() const;
  uint64_t bytes_in_use() const;
  int n_ctx() const { return options_.n_ctx; }
  TensorType type() const { return options_.type; }

  // Makes room for positions [0, positions) of `seq` (a slot is taken on first use).
  // Fails when max_sequences are in use or positions exceed the context.
  Status reserve(int seq, int positions);
  void release(int seq);
  bool has(int seq) const { return slots_.count(seq) > 0; }

  // Writes one position's key and value (kv_width floats each) of `layer`.
  void store(int seq, int layer, int pos, const float* k, const float* v);
  // Reads keys / values of positions [0, n) of one KV head into `out` as f32,
  // row-major [n][head_dim]; `head_offset` = head * head_dim.
  void load_keys(int seq, int layer, int n, int head_offset, int head_dim, float* out) const;
  void load_values(int seq, int layer, int n, int head_offset, int head_dim, float* out) const;
  // As load_keys, transposed: out[i * n + p] is element i of position p's key, so that
  // scores for many positions come out of one pass over the query.
  void load_keys_transposed(int seq, int layer, int n, int head_offset, int head_dim, float* out) const;

 private:
  struct Slot {
    int capacity = 0;           // positions allocated
    std::vector<uint8_t> k, v;  // [layer][capacity][kv_width] in `type`
  };
  size_t element_bytes() const { return options_.type == TensorType::kF16 ? 2 : 4; }
  size_t offset(const Slot& s, int layer, int pos, int col) const {
    return ((static_cast<size_t>(layer) * s.capacity + pos) * options_.kv_width + col) * element_bytes();
  }
  void load(const Slot& s, const std::vector<uint8_t>& src, int layer, int n, int head_offset, int head_dim,
            float* out) const;

  KvCacheOptions options_;
  bool simd_f16_;  // widen f16 rows with AVX-512 (the same floats, faster)
  std::map<int, Slot> slots_;
};

}  // namespace clusterd
