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
  int n_layer = 0;     // layers held here
  int n_kv_heads = 0;  // KV heads held here
  int head_dim = 0;
  int n_ctx = 2048;  // positions per sequence
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

  // Writes one position's key and value (n_kv_heads * head_dim floats each, head by
  // head) of `layer`.
  void store(int seq, int layer, int pos, const float* k, const float* v);
  // Reads the values of positions [0, n) of KV head `head` into `out` as f32,
  // row-major [n][head_dim].
  void load_values(int seq, int layer, int head, int n, float* out) const;
  // Reads the keys the same way, transposed: out[i * stride + p] (stride >= n) is
  // element i of position p's key, so that scores for many positions come out of one
  // pass over the query.
  void load_keys_transposed(int seq, int layer, int head, int n, int stride, float* out) const;

 private:
  // What attention reads of one head is contiguous: values position by position, keys
  // element by element (each element's run over the positions), so that a load is one
  // sequential widening instead of a strided gather (and keys need no transposing).
  struct Slot {
    int capacity = 0;  // positions allocated
    // keys: [layer][head][head_dim][capacity], values: [layer][head][capacity][head_dim]
    std::vector<uint8_t> k, v;
  };
  size_t element_bytes() const { return options_.type == TensorType::kF16 ? 2 : 4; }
  // Start of one head's keys or values in a slot, in elements.
  size_t head_start(const Slot& s, int layer, int head) const {
    return (static_cast<size_t>(layer) * options_.n_kv_heads + head) * s.capacity * options_.head_dim;
  }
  // `n` elements from `src` (in `type`) to f32.
  void widen(const uint8_t* src, size_t n, float* out) const;

  KvCacheOptions options_;
  void (*widen_f16_)(const uint16_t*, float*, int64_t);  // the widest SIMD the CPU has (the same floats)
  std::map<int, Slot> slots_;
};

}  // namespace clusterd
