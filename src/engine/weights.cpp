#include "clusterd/engine/weights.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "clusterd/engine/packed.h"
#include "clusterd/engine/quant.h"

namespace clusterd {

namespace {

std::string shape_text(int64_t a, int64_t b) {
  std::string out = "[";  // built with += : GCC 12 -O3 warns falsely (-Wrestrict) on "[" + to_string
  out += std::to_string(a);
  out += ", ";
  out += std::to_string(b);
  out += "]";
  return out;
}

class WeightLoader {
 public:
  WeightLoader(const GgufFile& file) : file_(file) {}

  // A 2-D tensor of exactly (ne0, ne1).
  WeightMatrix matrix(const std::string& name, int64_t ne0, int64_t ne1) {
    WeightMatrix m;
    const GgufTensorInfo* t = tensor(name);
    if (!t) return m;
    if (t->n_dims > 2 || t->ne[0] != ne0 || t->ne[1] != ne1) {
      fail("tensor " + name + " has shape " + shape_text(t->ne[0], t->ne[1]) + ", expected " + shape_text(ne0, ne1));
      return m;
    }
    if (!quant_type_supported(t->type) || t->type == TensorType::kQ8_K) {
      fail("tensor " + name + " has type " + std::string(tensor_type_name(t->type)) +
           ", which clusterd cannot compute with (supported: f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K)");
      return m;
    }
    m.type = t->type;
    m.n_in = ne0;
    m.n_out = ne1;
    m.data = file_.tensor_data(*t).data();
    m.row_stride = tensor_row_bytes(t->type, ne0);
    return m;
  }

  // A 1-D tensor of `n` elements, converted to f32; `optional` tensors may be absent.
  std::vector<float> vector(const std::string& name, int64_t n, bool optional = false) {
    const GgufTensorInfo* t = optional ? file_.find_tensor(name) : tensor(name);
    if (!t) return {};
    if (t->n_dims != 1 || t->ne[0] != n) {
      fail("tensor " + name + " has " + std::to_string(t->ne[0]) + " elements, expected " + std::to_string(n));
      return {};
    }
    if (!quant_type_supported(t->type)) {
      fail("tensor " + name + " has unsupported type " + std::string(tensor_type_name(t->type)));
      return {};
    }
    std::vector<float> out(n);
    dequantize_row(t->type, file_.tensor_data(*t).data(), out.data(), n);
    return out;
  }

  const Status& status() const { return status_; }

 private:
  const GgufTensorInfo* tensor(const std::string& name) {
    const GgufTensorInfo* t = file_.find_tensor(name);
    if (!t) fail("tensor " + name + " is missing");
    return t;
  }
  void fail(const std::string& what) {
    if (status_.is_ok()) status_ = invalid_argument(file_.name() + ": " + what);
  }
  const GgufFile& file_;
  Status status_;
};

// Columns [first, first + count) of `m`, requantized into `storage` when the slice does
// not start and end on the type's block boundaries.
WeightMatrix column_slice(const WeightMatrix& m, int64_t first, int64_t count, const std::string& name, ModelWeights& w,
                          bool will_pack) {
  const int block = quant_block_size(m.type);
  if (count == m.n_in) return m;
  if (first % block == 0 && count % block == 0) {
    // Packing reads the strided view once and makes its own contiguous copy.
    if (will_pack && packing_supported(m.type)) return m.columns(first, count);
    // A copy with contiguous rows: read as a strided view, half of every row costs
    // decode about 10% of its memory bandwidth (bench tp), and touches every page.
    WeightMatrix view = m.columns(first, count);
    const size_t row = tensor_row_bytes(m.type, count);
    std::vector<uint8_t> data(row * m.n_out);
    for (int64_t r = 0; r < m.n_out; ++r) std::memcpy(data.data() + r * row, view.data + r * view.row_stride, row);
    WeightMatrix out{m.type, count, m.n_out, nullptr, row};
    w.requantized.push_back(std::move(data));
    out.data = w.requantized.back().data();
    return out;
  }
  const TensorType to = first % 32 == 0 && count % 32 == 0 ? TensorType::kQ8_0 : TensorType::kF32;
  const size_t out_row = tensor_row_bytes(to, count);
  std::vector<uint8_t> data(out_row * m.n_out);
  std::vector<float> row(m.n_in);
  for (int64_t r = 0; r < m.n_out; ++r) {
    dequantize_row(m.type, m.data + r * m.row_stride, row.data(), m.n_in);
    (void)quantize_row(to, row.data() + first, data.data() + r * out_row, count);
  }
  w.load_notes.push_back(name + ": columns [" + std::to_string(first) + ", " + std::to_string(first + count) +
                         ") do not align with " + std::string(tensor_type_name(m.type)) + " blocks of " +
                         std::to_string(block) + "; requantized to " + std::string(tensor_type_name(to)));
  WeightMatrix out{to, count, m.n_out, nullptr, out_row};
  w.requantized.push_back(std::move(data));
  out.data = w.requantized.back().data();
  return out;
}

// Gives `m` a packed copy when its type packs on this CPU, and lets the file's pages
// of it go: products read only the copy. Unless `read_again` (the output matrix that
// shares the embedding's bytes), a streamed image frees them; a mapped file pages them
// in again if they are read.
void pack(WeightMatrix& m, ModelWeights& w, const GgufFile& file, bool read_again = false) {
  if (!m.data || !packing_supported(m.type) || m.n_in % 32 != 0) return;
  const size_t bytes = packed_matrix_bytes(m.type, m.n_in, m.n_out);
  w.packed.push_back(allocate_weight_memory(bytes));
  pack_matrix(m, w.packed.back().get());
  m.packed = w.packed.back().get();
  w.packed_bytes += bytes;
  const size_t span = (m.n_out - 1) * m.row_stride + tensor_row_bytes(m.type, m.n_in);
  if (read_again) {
    file.release({m.data, span});
  } else {
    file.discard({m.data, span});
  }
}

std::vector<float> slice(const std::vector<float>& v, int64_t first, int64_t count) {
  if (v.empty()) return {};
  return std::vector<float>(v.begin() + first, v.begin() + first + count);
}

}  // namespace

WeightMemory allocate_weight_memory(size_t bytes) {
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t alignment = bytes >= kHugePage ? kHugePage : 64;
  auto* memory = static_cast<uint8_t*>(std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment));
  if (!memory) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (alignment == kHugePage) madvise(memory, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // advice only
#endif
  return WeightMemory(memory);
}

uint64_t ModelWeights::bytes() const {
  auto m = [](const WeightMatrix& w) {
    return w.data ? static_cast<uint64_t>(w.n_out) * tensor_row_bytes(w.type, w.n_in) : 0;
  };
  uint64_t total = shard.outputs ? m(output) : 0;
  for (const auto& l : layers) total += m(l.wq) + m(l.wk) + m(l.wv) + m(l.wo) + m(l.w_gate) + m(l.w_up) + m(l.w_down);
  return total;
}

Result<ModelWeights> load_weights(const GgufFile& file, const ModelParams& p, const Shard& shard, bool pack_weights) {
  if (Status s = validate_shard(shard, p); !s.is_ok()) return s;
  ModelWeights w;
  w.params = p;
  w.shard = shard;
  WeightLoader load(file);
  const int64_t hd = p.head_dim;
  const int64_t q_rows = static_cast<int64_t>(p.n_head) * hd;
  const int64_t kv_rows = static_cast<int64_t>(p.n_head_kv) * hd;
  // The shard's query heads are those of its KV-head groups.
  const int64_t q0 = static_cast<int64_t>(shard.kv_head_begin) * p.n_gqa() * hd;
  const int64_t nq = static_cast<int64_t>(shard.n_kv_heads()) * p.n_gqa() * hd;
  const int64_t k0 = static_cast<int64_t>(shard.kv_head_begin) * hd;
  const int64_t nk = static_cast<int64_t>(shard.n_kv_heads()) * hd;

  w.token_embd = load.matrix("token_embd.weight", p.n_embd, p.n_vocab);
  if (shard.outputs) {
    w.output_norm = load.vector("output_norm.weight", p.n_embd);
    WeightMatrix out = p.tied_embeddings ? w.token_embd : load.matrix("output.weight", p.n_embd, p.n_vocab);
    if (out.data) w.output = out.rows(shard.vocab_begin, shard.n_vocab());
  }
  if (p.rope_freq_factors) w.rope_freqs = load.vector("rope_freqs.weight", p.n_rot / 2);

  for (int l = shard.layer_begin; l < shard.layer_end && load.status().is_ok(); ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerWeights L;
    L.attn_norm = load.vector(b + "attn_norm.weight", p.n_embd);
    WeightMatrix wq = load.matrix(b + "attn_q.weight", p.n_embd, q_rows);
    WeightMatrix wk = load.matrix(b + "attn_k.weight", p.n_embd, kv_rows);
    WeightMatrix wv = load.matrix(b + "attn_v.weight", p.n_embd, kv_rows);
    WeightMatrix wo = load.matrix(b + "attn_output.weight", q_rows, p.n_embd);
    if (p.qkv_bias) {
      L.bq = slice(load.vector(b + "attn_q.bias", q_rows), q0, nq);
      L.bk = slice(load.vector(b + "attn_k.bias", kv_rows), k0, nk);
      L.bv = slice(load.vector(b + "attn_v.bias", kv_rows), k0, nk);
    }
    if (p.qk_norm) {
      L.q_norm = load.vector(b + "attn_q_norm.weight", hd);
      L.k_norm = load.vector(b + "attn_k_norm.weight", hd);
    }
    L.ffn_norm = load.vector(b + "ffn_norm.weight", p.n_embd);
    WeightMatrix gate = load.matrix(b + "ffn_gate.weight", p.n_embd, p.n_ff);
    WeightMatrix up = load.matrix(b + "ffn_up.weight", p.n_embd, p.n_ff);
    WeightMatrix down = load.matrix(b + "ffn_down.weight", p.n_ff, p.n_embd);
    if (!load.status().is_ok()) break;
    L.wq = wq.rows(q0, nq);
    L.wk = wk.rows(k0, nk);
    L.wv = wv.rows(k0, nk);
    L.wo = column_slice(wo, q0, nq, b + "attn_output.weight", w, pack_weights);
    L.w_gate = gate.rows(shard.ffn_begin, shard.n_ffn());
    L.w_up = up.rows(shard.ffn_begin, shard.n_ffn());
    L.w_down = column_slice(down, shard.ffn_begin, shard.n_ffn(), b + "ffn_down.weight", w, pack_weights);
    w.layers.push_back(std::move(L));
  }
  if (!load.status().is_ok()) return load.status();
  if (pack_weights) {
    if (shard.outputs) pack(w.output, w, file, /*read_again=*/p.tied_embeddings);
    for (LayerWeights& L : w.layers) {
      for (WeightMatrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) pack(*m, w, file);
    }
  }
  return w;
}

std::vector<TensorByteRange> shard_byte_ranges(const GgufFile& file, const ModelParams& p, const Shard& shard) {
  std::vector<TensorByteRange> out;
  auto whole = [&](const std::string& name) {
    if (const GgufTensorInfo* t = file.find_tensor(name)) out.push_back({name, 0, t->size});
  };
  auto rows = [&](const std::string& name, int64_t first, int64_t count) {
    const GgufTensorInfo* t = file.find_tensor(name);
    if (!t) return;
    const uint64_t row = tensor_row_bytes(t->type, t->ne[0]);
    out.push_back({name, std::min<uint64_t>(t->size, row * first), std::min<uint64_t>(t->size, row * (first + count))});
  };
  const int64_t hd = p.head_dim;
  const int64_t q0 = static_cast<int64_t>(shard.kv_head_begin) * p.n_gqa() * hd;
  const int64_t nq = static_cast<int64_t>(shard.n_kv_heads()) * p.n_gqa() * hd;
  const int64_t k0 = static_cast<int64_t>(shard.kv_head_begin) * hd;
  const int64_t nk = static_cast<int64_t>(shard.n_kv_heads()) * hd;
  whole("token_embd.weight");
  if (shard.outputs) {
    whole("output_norm.weight");
    if (!p.tied_embeddings) rows("output.weight", shard.vocab_begin, shard.n_vocab());
  }
  if (p.rope_freq_factors) whole("rope_freqs.weight");
  for (int l = shard.layer_begin; l < shard.layer_end; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    whole(b + "attn_norm.weight");
    rows(b + "attn_q.weight", q0, nq);
    rows(b + "attn_k.weight", k0, nk);
    rows(b + "attn_v.weight", k0, nk);
    whole(b + "attn_output.weight");
    if (p.qkv_bias) {
      whole(b + "attn_q.bias");  // small: read whole, then sliced
      whole(b + "attn_k.bias");
      whole(b + "attn_v.bias");
    }
    if (p.qk_norm) {
      whole(b + "attn_q_norm.weight");
      whole(b + "attn_k_norm.weight");
    }
    whole(b + "ffn_norm.weight");
    rows(b + "ffn_gate.weight", shard.ffn_begin, shard.n_ffn());
    rows(b + "ffn_up.weight", shard.ffn_begin, shard.n_ffn());
    whole(b + "ffn_down.weight");
  }
  return out;
}

}  // namespace clusterd
