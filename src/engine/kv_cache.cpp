#include "clusterd/engine/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/quant.h"
#include "clusterd/engine/quantize_avx512.h"

namespace clusterd {

KvCache::KvCache(KvCacheOptions options) : options_(options), simd_f16_(cpu_has_avx512_vnni()) {}

uint64_t KvCache::bytes_per_position() const { return 2ull * options_.n_layer * options_.kv_width * element_bytes(); }

uint64_t KvCache::bytes_per_sequence() const { return bytes_per_position() * options_.n_ctx; }

uint64_t KvCache::bytes_in_use() const {
  uint64_t total = 0;
  for (const auto& [seq, slot] : slots_) total += bytes_per_position() * slot.capacity;
  return total;
}

Status KvCache::reserve(int seq, int positions) {
  if (positions > options_.n_ctx) {
    return invalid_argument("KV cache: " + std::to_string(positions) + " positions exceed the context of " +
                            std::to_string(options_.n_ctx));
  }
  auto it = slots_.find(seq);
  if (it == slots_.end()) {
    if (static_cast<int>(slots_.size()) >= options_.max_sequences) {
      return unavailable("KV cache: all " + std::to_string(options_.max_sequences) + " sequence slots are in use");
    }
    it = slots_.emplace(seq, Slot{}).first;
  }
  Slot& old = it->second;
  if (positions <= old.capacity) return Status::ok();
  // Grow to the next multiple of 256 positions, moving each layer's rows.
  Slot grown;
  grown.capacity = std::min(options_.n_ctx, (positions + 255) / 256 * 256);
  const size_t layer_bytes = static_cast<size_t>(grown.capacity) * options_.kv_width * element_bytes();
  grown.k.assign(layer_bytes * options_.n_layer, 0);
  grown.v.assign(grown.k.size(), 0);
  const size_t used = static_cast<size_t>(old.capacity) * options_.kv_width * element_bytes();
  for (int l = 0; l < options_.n_layer && used > 0; ++l) {
    std::memcpy(grown.k.data() + offset(grown, l, 0, 0), old.k.data() + offset(old, l, 0, 0), used);
    std::memcpy(grown.v.data() + offset(grown, l, 0, 0), old.v.data() + offset(old, l, 0, 0), used);
  }
  old = std::move(grown);
  return Status::ok();
}

void KvCache::release(int seq) { slots_.erase(seq); }

void KvCache::store(int seq, int layer, int pos, const float* k, const float* v) {
  Slot& s = slots_.at(seq);
  const int w = options_.kv_width;
  if (options_.type == TensorType::kF16) {
    fp32_to_fp16_row(k, reinterpret_cast<uint16_t*>(s.k.data() + offset(s, layer, pos, 0)), w);
    fp32_to_fp16_row(v, reinterpret_cast<uint16_t*>(s.v.data() + offset(s, layer, pos, 0)), w);
  } else {
    std::memcpy(s.k.data() + offset(s, layer, pos, 0), k, w * sizeof(float));
    std::memcpy(s.v.data() + offset(s, layer, pos, 0), v, w * sizeof(float));
  }
}

void KvCache::load(const Slot& s, const std::vector<uint8_t>& src, int layer, int n, int head_offset, int head_dim,
                   float* out) const {
  for (int p = 0; p < n; ++p) {
    const uint8_t* row = src.data() + offset(s, layer, p, head_offset);
    if (options_.type == TensorType::kF16) {
      const auto* half = reinterpret_cast<const uint16_t*>(row);
      float* dst = out + static_cast<size_t>(p) * head_dim;
      if (simd_f16_) {
        fp16_to_fp32_row_avx512(half, dst, head_dim);
      } else {
        fp16_to_fp32_row(half, dst, head_dim);
      }
    } else {
      std::memcpy(out + static_cast<size_t>(p) * head_dim, row, head_dim * sizeof(float));
    }
  }
}

void KvCache::load_keys(int seq, int layer, int n, int head_offset, int head_dim, float* out) const {
  const Slot& s = slots_.at(seq);
  load(s, s.k, layer, n, head_offset, head_dim, out);
}

void KvCache::load_values(int seq, int layer, int n, int head_offset, int head_dim, float* out) const {
  const Slot& s = slots_.at(seq);
  load(s, s.v, layer, n, head_offset, head_dim, out);
}

void KvCache::load_keys_transposed(int seq, int layer, int n, int head_offset, int head_dim, float* out) const {
  const Slot& s = slots_.at(seq);
  std::vector<float> key(head_dim);
  for (int p = 0; p < n; ++p) {
    const uint8_t* stored = s.k.data() + offset(s, layer, p, head_offset);
    if (options_.type != TensorType::kF16) {
      std::memcpy(key.data(), stored, head_dim * sizeof(float));
    } else if (simd_f16_) {
      fp16_to_fp32_row_avx512(reinterpret_cast<const uint16_t*>(stored), key.data(), head_dim);
    } else {
      fp16_to_fp32_row(reinterpret_cast<const uint16_t*>(stored), key.data(), head_dim);
    }
    for (int i = 0; i < head_dim; ++i) out[static_cast<size_t>(i) * n + p] = key[i];
  }
}

}  // namespace clusterd
