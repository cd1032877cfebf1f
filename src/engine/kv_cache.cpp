#include "clusterd/engine/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/quant.h"
#include "clusterd/engine/quantize_avx2.h"
#include "clusterd/engine/quantize_avx512.h"

namespace clusterd {

KvCache::KvCache(KvCacheOptions options)
    : options_(options),
      widen_f16_(cpu_has_avx512_vnni() ? fp16_to_fp32_row_avx512
                 : cpu_has_avx2()      ? fp16_to_fp32_row_avx2
                                       : fp16_to_fp32_row) {}

uint64_t KvCache::bytes_per_position() const {
  return 2ull * options_.n_layer * options_.n_kv_heads * options_.head_dim * element_bytes();
}

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
  // Grow to the next multiple of 256 positions, moving each head's keys and values.
  Slot grown;
  grown.capacity = std::min(options_.n_ctx, (positions + 255) / 256 * 256);
  const int hd = options_.head_dim;
  const size_t eb = element_bytes();
  grown.k.assign(static_cast<size_t>(options_.n_layer) * options_.n_kv_heads * grown.capacity * hd * eb, 0);
  grown.v.assign(grown.k.size(), 0);
  for (int l = 0; l < options_.n_layer && old.capacity > 0; ++l) {
    for (int h = 0; h < options_.n_kv_heads; ++h) {
      const size_t from = head_start(old, l, h) * eb, to = head_start(grown, l, h) * eb;
      std::memcpy(grown.v.data() + to, old.v.data() + from, static_cast<size_t>(old.capacity) * hd * eb);
      for (int i = 0; i < hd; ++i) {
        std::memcpy(grown.k.data() + to + static_cast<size_t>(i) * grown.capacity * eb,
                    old.k.data() + from + static_cast<size_t>(i) * old.capacity * eb, old.capacity * eb);
      }
    }
  }
  old = std::move(grown);
  return Status::ok();
}

void KvCache::release(int seq) { slots_.erase(seq); }

void KvCache::store(int seq, int layer, int pos, const float* k, const float* v) {
  Slot& s = slots_.at(seq);
  const int hd = options_.head_dim;
  for (int h = 0; h < options_.n_kv_heads; ++h) {
    const float* key = k + static_cast<size_t>(h) * hd;
    const float* value = v + static_cast<size_t>(h) * hd;
    const size_t start = head_start(s, layer, h);
    const size_t row = start + static_cast<size_t>(pos) * hd;
    if (options_.type == TensorType::kF16) {
      auto* keys = reinterpret_cast<uint16_t*>(s.k.data()) + start + pos;
      for (int i = 0; i < hd; ++i) keys[static_cast<size_t>(i) * s.capacity] = fp32_to_fp16(key[i]);
      fp32_to_fp16_row(value, reinterpret_cast<uint16_t*>(s.v.data()) + row, hd);
    } else {
      auto* keys = reinterpret_cast<float*>(s.k.data()) + start + pos;
      for (int i = 0; i < hd; ++i) keys[static_cast<size_t>(i) * s.capacity] = key[i];
      std::memcpy(reinterpret_cast<float*>(s.v.data()) + row, value, hd * sizeof(float));
    }
  }
}

void KvCache::widen(const uint8_t* src, size_t n, float* out) const {
  if (options_.type != TensorType::kF16) {
    std::memcpy(out, src, n * sizeof(float));
  } else {
    widen_f16_(reinterpret_cast<const uint16_t*>(src), out, static_cast<int64_t>(n));
  }
}

void KvCache::load_values(int seq, int layer, int head, int n, float* out) const {
  const Slot& s = slots_.at(seq);
  widen(s.v.data() + head_start(s, layer, head) * element_bytes(), static_cast<size_t>(n) * options_.head_dim, out);
}

void KvCache::load_keys_transposed(int seq, int layer, int head, int n, int stride, float* out) const {
  const Slot& s = slots_.at(seq);
  const uint8_t* keys = s.k.data() + head_start(s, layer, head) * element_bytes();
  for (int i = 0; i < options_.head_dim; ++i) {
    widen(keys + static_cast<size_t>(i) * s.capacity * element_bytes(), n, out + static_cast<size_t>(i) * stride);
  }
}

}  // namespace clusterd
