#include "clusterd/engine/transformer.h"

#include <algorithm>
#include <cmath>

#include "clusterd/engine/activations.h"
#include "clusterd/engine/attention.h"
#include "clusterd/engine/quant.h"

namespace clusterd {

Transformer::Transformer(const ModelWeights& weights, Collective& collective, TransformerOptions options)
    : w_(weights),
      collective_(collective),
      options_(options),
      pool_(options.n_threads),
      kv_(KvCacheOptions{static_cast<int>(weights.layers.size()), weights.shard.n_kv_heads(), weights.params.head_dim,
                         options.n_ctx, options.max_sequences, options.kv_type}) {
  const ModelParams& p = w_.params;
  rope_inv_freq_.resize(p.n_rot / 2);
  for (int i = 0; i < p.n_rot / 2; ++i) {
    rope_inv_freq_[i] = std::pow(p.rope_base, -2.0f * i / p.n_rot);
    if (!w_.rope_freqs.empty()) rope_inv_freq_[i] /= w_.rope_freqs[i];
  }
}

// The rotation of each of the n_rot / 2 pairs at each token's position (cos, sin),
// computed once per batch for all layers and heads.
void Transformer::rope_angles(std::span<const BatchToken> batch) {
  const int half = w_.params.n_rot / 2;
  rope_cs_.resize(batch.size() * half * 2);
  for (size_t t = 0; t < batch.size(); ++t) {
    for (int i = 0; i < half; ++i) {
      const float theta = batch[t].pos * rope_inv_freq_[i];
      rope_cs_[(t * half + i) * 2] = std::cos(theta);
      rope_cs_[(t * half + i) * 2 + 1] = std::sin(theta);
    }
  }
}

// Rotates the first n_rot dimensions of each head of x (n_heads * head_dim) by token
// t's angles.
void Transformer::rope(float* x, int n_heads, int t) const {
  const ModelParams& p = w_.params;
  const int half = p.n_rot / 2;
  const float* cs = &rope_cs_[static_cast<size_t>(t) * half * 2];
  for (int h = 0; h < n_heads; ++h) {
    float* head = x + static_cast<size_t>(h) * p.head_dim;
    for (int i = 0; i < half; ++i) {
      const float c = cs[2 * i], s = cs[2 * i + 1];
      // Normal style pairs neighbours; NeoX pairs the two halves.
      float* a = p.rope_style == RopeStyle::kNormal ? &head[2 * i] : &head[i];
      float* b = p.rope_style == RopeStyle::kNormal ? &head[2 * i + 1] : &head[i + half];
      const float x0 = *a, x1 = *b;
      *a = x0 * c - x1 * s;
      *b = x0 * s + x1 * c;
    }
  }
}

Status Transformer::forward(std::span<const BatchToken> batch, std::vector<float>& logits, std::vector<float>* hidden) {
  const ModelParams& p = w_.params;
  const Shard& sh = w_.shard;
  const int T = static_cast<int>(batch.size());
  const int E = p.n_embd, hd = p.head_dim;
  const int nq = sh.n_kv_heads() * p.n_gqa() * hd;  // this shard's query width
  const int nkv = sh.n_kv_heads() * hd;
  const int nff = static_cast<int>(sh.n_ffn());
  for (const auto& t : batch) {
    if (t.token < 0 || t.token >= p.n_vocab)
      return invalid_argument("token id " + std::to_string(t.token) + " outside the vocabulary");
    if (t.pos < 0 || t.pos >= options_.n_ctx) {
      return invalid_argument("position " + std::to_string(t.pos) + " beyond the context of " +
                              std::to_string(options_.n_ctx));
    }
    if (Status s = kv_.reserve(t.seq, t.pos + 1); !s.is_ok()) return s;
  }
  x_.resize(static_cast<size_t>(T) * E);
  xb_.resize(x_.size());
  proj_.resize(x_.size());
  q_.resize(static_cast<size_t>(T) * nq);
  att_.resize(q_.size());
  k_.resize(static_cast<size_t>(T) * nkv);
  v_.resize(k_.size());
  gate_.resize(static_cast<size_t>(T) * nff);
  up_.resize(gate_.size());
  rope_angles(batch);

  // x = token_embd[token], or the previous pipeline stage's output   (T, n_embd)
  if (sh.embeds) {
    for (int t = 0; t < T; ++t) {
      const uint8_t* row = w_.token_embd.data + static_cast<size_t>(batch[t].token) * w_.token_embd.row_stride;
      dequantize_row(w_.token_embd.type, row, &x_[static_cast<size_t>(t) * E], E);
    }
  } else {
    if (hidden == nullptr || hidden->size() != x_.size()) {
      return invalid_argument("a pipeline stage without the embedding needs the previous stage's activations");
    }
    std::copy(hidden->begin(), hidden->end(), x_.begin());
  }

  for (int l = 0; l < static_cast<int>(w_.layers.size()); ++l) {
    const LayerWeights& L = w_.layers[l];
    // Attention block: x += wo · attention(rope(wq·norm(x)), rope(wk·norm(x)), wv·norm(x))
    for (int t = 0; t < T; ++t) rms_norm(&x_[t * E], L.attn_norm.data(), &xb_[t * E], E, p.rms_eps);
    const MatmulOutput qkv[] = {{&L.wq, q_.data()}, {&L.wk, k_.data()}, {&L.wv, v_.data()}};
    matmul(qkv, xb_.data(), T, pool_, scratch_);  // q (T, nq), k and v (T, nkv)
    for (int t = 0; t < T; ++t) {
      float* q = &q_[static_cast<size_t>(t) * nq];
      float* k = &k_[static_cast<size_t>(t) * nkv];
      if (!L.bq.empty()) {
        for (int i = 0; i < nq; ++i) q[i] += L.bq[i];
        for (int i = 0; i < nkv; ++i) k[i] += L.bk[i], v_[static_cast<size_t>(t) * nkv + i] += L.bv[i];
      }
      if (!L.q_norm.empty()) {
        for (int h = 0; h < nq / hd; ++h) rms_norm(q + h * hd, L.q_norm.data(), q + h * hd, hd, p.rms_eps);
        for (int h = 0; h < nkv / hd; ++h) rms_norm(k + h * hd, L.k_norm.data(), k + h * hd, hd, p.rms_eps);
      }
      rope(q, nq / hd, t);
      rope(k, nkv / hd, t);
      kv_.store(batch[t].seq, l, batch[t].pos, k, &v_[static_cast<size_t>(t) * nkv]);
    }
    attention(l, batch);                                                     // (T, nq)
    matmul(L.wo, att_.data(), T, proj_.data(), pool_, scratch_);             // (T, n_embd), partial over shards
    if (Status s = collective_.all_reduce_sum(proj_); !s.is_ok()) return s;  // TP point 1
    for (size_t i = 0; i < x_.size(); ++i) x_[i] += proj_[i];

    // Feed-forward block: x += w_down · (silu(w_gate·norm(x)) * w_up·norm(x))
    for (int t = 0; t < T; ++t) rms_norm(&x_[t * E], L.ffn_norm.data(), &xb_[t * E], E, p.rms_eps);
    const MatmulOutput gate_up[] = {{&L.w_gate, gate_.data()}, {&L.w_up, up_.data()}};
    matmul(gate_up, xb_.data(), T, pool_, scratch_);  // gate and up (T, nff)
    for (int t = 0; t < T; ++t) silu_mul(&gate_[static_cast<size_t>(t) * nff], &up_[static_cast<size_t>(t) * nff], nff);
    matmul(L.w_down, gate_.data(), T, proj_.data(), pool_, scratch_);        // (T, n_embd), partial
    if (Status s = collective_.all_reduce_sum(proj_); !s.is_ok()) return s;  // TP point 2
    for (size_t i = 0; i < x_.size(); ++i) x_[i] += proj_[i];
  }

  // A pipeline stage before the last hands its activations on.
  if (!sh.outputs) {
    if (hidden != nullptr) *hidden = x_;
    return Status::ok();
  }

  // Output: logits = output · norm(x) for the tokens that want them  (n, shard vocab)
  std::vector<int> rows;
  for (int t = 0; t < T; ++t) {
    if (batch[t].logits) rows.push_back(t);
  }
  const int64_t V = sh.n_vocab();
  for (size_t r = 0; r < rows.size(); ++r) {
    rms_norm(&x_[static_cast<size_t>(rows[r]) * E], w_.output_norm.data(), &xb_[r * E], E, p.rms_eps);
  }
  size_t first = logits.size();
  logits.resize(first + rows.size() * V);
  if (!rows.empty()) matmul(w_.output, xb_.data(), static_cast<int>(rows.size()), &logits[first], pool_, scratch_);
  return Status::ok();
}

// att[t] = softmax(q[t] · K^T / sqrt(head_dim)) · V over positions 0..pos of t's
// sequence, per query head, with the KV head of its group (GQA).
void Transformer::attention(int layer, std::span<const BatchToken> batch) {
  const ModelParams& p = w_.params;
  const int hd = p.head_dim, gqa = p.n_gqa();
  const int n_kv_heads = w_.shard.n_kv_heads();
  const int nq = n_kv_heads * gqa * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Consecutive tokens of one sequence (a prompt chunk) share one read of its cache,
  // up to the last of their positions; each token attends to its own prefix of it.
  std::vector<AttentionRun>& runs = attention_runs_;
  runs.clear();
  for (int t = 0; t < static_cast<int>(batch.size()); ++t) {
    if (runs.empty() || batch[runs.back().first].seq != batch[t].seq) {
      runs.push_back({t, t + 1, batch[t].pos + 1});
    } else {
      runs.back().end = t + 1;
      runs.back().n = std::max(runs.back().n, batch[t].pos + 1);
    }
  }
  if (attention_scratch_.size() < static_cast<size_t>(pool_.size())) attention_scratch_.resize(pool_.size());
  // One unit per (run, KV head), split over the threads.
  const int64_t units = static_cast<int64_t>(runs.size()) * n_kv_heads;
  pool_.parallel_for(units, 1, [&](int thread, int64_t begin, int64_t end) {
    AttentionScratch& s = attention_scratch_[thread];
    for (int64_t u = begin; u < end; ++u) {
      const AttentionRun& run = runs[u / n_kv_heads];
      const int kvh = static_cast<int>(u % n_kv_heads);
      const int n = run.n, stride = (n + 15) / 16 * 16;  // attend_heads reads keys and scores in 16s
      s.keys.resize(static_cast<size_t>(stride) * hd);
      s.values.resize(static_cast<size_t>(n) * hd);
      s.scores.resize(static_cast<size_t>(gqa) * stride);
      kv_.load_keys_transposed(batch[run.first].seq, layer, kvh, n, stride, s.keys.data());  // (hd, stride)
      kv_.load_values(batch[run.first].seq, layer, kvh, n, s.values.data());
      for (int t = run.first; t < run.end; ++t) {
        const size_t heads = static_cast<size_t>(t) * nq + static_cast<size_t>(kvh) * gqa * hd;  // the group's
        attend_heads(&q_[heads], gqa, hd, s.keys.data(), stride, s.values.data(), batch[t].pos + 1, scale,
                     s.scores.data(), &att_[heads]);
      }
    }
  });
}

}  // namespace clusterd
