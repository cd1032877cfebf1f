#include "clusterd/engine/kv_cache.h"

#include <cstring>

#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/quant.h"
#include "clusterd/engine/quantize_avx512.h"

namespace clusterd {

KvCache::KvCache(KvCacheOptions options) : options_(options), simd_f16_(cpu_has_avx512_vnni()) {}

uint64_t KvCache::bytes_per_sequence() const {
  return 2ull * options_.n_layer * options_.n_ctx * options_.kv_width * element_bytes();
}

uint64_t KvCache::bytes_in_use() const { return bytes_per_sequence() * slots_.size(); }

Status KvCache::reserve(int seq) {
  if (slots_.count(seq)) return Status::ok();
  if (static_cast<int>(slots_.size()) >= options_.max_sequences) {
    return unavailable("KV cache: all " + std::to_string(options_.max_sequences) + " sequence slots are in use");
  }
  Slot& s = slots_[seq];
  size_t n = bytes_per_sequence() / 2;
  s.k.assign(n, 0);
  s.v.assign(n, 0);
  return Status::ok();
}

void KvCache::release(int seq) { slots_.erase(seq); }

void KvCache::store(int seq, int layer, int pos, const float* k, const float* v) {
  Slot& s = slots_.at(seq);
  const int w = options_.kv_width;
  if (options_.type == TensorType::kF16) {
    fp32_to_fp16_row(k, reinterpret_cast<uint16_t*>(s.k.data() + offset(layer, pos, 0)), w);
    fp32_to_fp16_row(v, reinterpret_cast<uint16_t*>(s.v.data() + offset(layer, pos, 0)), w);
  } else {
    std::memcpy(s.k.data() + offset(layer, pos, 0), k, w * sizeof(float));
    std::memcpy(s.v.data() + offset(layer, pos, 0), v, w * sizeof(float));
  }
}

void KvCache::load(const std::vector<uint8_t>& src, int layer, int n, int head_offset, int head_dim,
                   float* out) const {
  for (int p = 0; p < n; ++p) {
    const uint8_t* row = src.data() + offset(layer, p, head_offset);
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
  load(slots_.at(seq).k, layer, n, head_offset, head_dim, out);
}

void KvCache::load_values(int seq, int layer, int n, int head_offset, int head_dim, float* out) const {
  load(slots_.at(seq).v, layer, n, head_offset, head_dim, out);
}

void KvCache::load_keys_transposed(int seq, int layer, int n, int head_offset, int head_dim, float* out) const {
  const std::vector<uint8_t>& src = slots_.at(seq).k;
  std::vector<float> key(head_dim);
  for (int p = 0; p < n; ++p) {
    const uint8_t* stored = src.data() + offset(layer, p, head_offset);
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
