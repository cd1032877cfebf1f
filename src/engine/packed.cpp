// Packing and the scalar reference of the packed product (layout in packed.h).
#include "clusterd/engine/packed.h"

#include <cmath>
#include <cstring>

#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/matmul.h"
#include "clusterd/engine/quant.h"
#include "packed_layout.h"

namespace clusterd {

namespace {

using namespace packed_layout;

// The group's place in its pair, for the layout's offsets.
int in_pair(int64_t g) { return static_cast<int>(g % 2); }

// The offset added to stored q8_0 / q4_0 weights.
int weight_offset(TensorType type) { return type == TensorType::kQ8_0 ? 128 : 8; }

// Where group g's quants and scales of block b start.
size_t quants_at(TensorType type, int nb, int64_t g, int b) {
  const bool q4 = type == TensorType::kQ4_0;
  return (g / 2) * packed_pair_bytes(type, int64_t{nb} * 32) + b * pair_block_bytes(q4) + block_quants(q4, in_pair(g));
}
size_t scales_at(TensorType type, int nb, int64_t g, int b) {
  const bool q4 = type == TensorType::kQ4_0;
  return (g / 2) * packed_pair_bytes(type, int64_t{nb} * 32) + b * pair_block_bytes(q4) + block_scales(q4, in_pair(g));
}

size_t q4_K_record_at(bool q5, int nsb, int64_t g, int sb) {
  return (g / 2) * packed_pair_bytes(q5 ? TensorType::kQ5_K : TensorType::kQ4_K, int64_t{nsb} * kQK_K) +
         sb * q4_K_pair_record(q5);
}

// fn(g, r, sb, block) for every superblock of every row of `w` (row r of group g).
template <typename Block, typename Fn>
void for_each_superblock(const WeightMatrix& w, Fn fn) {
  const int nsb = static_cast<int>(w.n_in / kQK_K);
  const int64_t groups = (w.n_out + kPackedRows - 1) / kPackedRows;
  for (int64_t g = 0; g < groups; ++g) {
    for (int r = 0; r < kPackedRows && g * kPackedRows + r < w.n_out; ++r) {
      const auto* row = reinterpret_cast<const Block*>(w.data + (g * kPackedRows + r) * w.row_stride);
      for (int sb = 0; sb < nsb; ++sb) fn(g, r, sb, row[sb]);
    }
  }
}

// The parts q4_K and q5_K share: quants' low 4 bits, scales, mins, d and dmin.
template <typename Block>
void pack_q4_K_parts(bool q5, uint8_t* record, int64_t g, int r, const Block& block) {
  for (int c = 0; c < 4; ++c) {
    for (int p = 0; p < 8; ++p)
      std::memcpy(record + q4_K_quants(q5, in_pair(g), c, p) + r * 4, block.qs + 32 * c + 4 * p, 4);
  }
  for (int sub = 0; sub < 8; ++sub) {
    int sc, m;
    k_quant_scale_min(sub, block.scales, &sc, &m);
    record[q4_K_scales(q5, in_pair(g), sub / 2) + (sub % 2) * kPackedRows + r] = static_cast<uint8_t>(sc);
    record[q4_K_mins(q5, in_pair(g)) + (sub / 2) * 32 + r * 2 + sub % 2] = static_cast<uint8_t>(m);
  }
  std::memcpy(record + q4_K_d(q5, in_pair(g)) + r * 2, &block.d, 2);
  std::memcpy(record + q4_K_dmin(q5, in_pair(g)) + r * 2, &block.dmin, 2);
}

void pack_q4_K(const WeightMatrix& w, uint8_t* out) {
  const int nsb = static_cast<int>(w.n_in / kQK_K);
  for_each_superblock<block_q4_K>(w, [&](int64_t g, int r, int sb, const block_q4_K& block) {
    pack_q4_K_parts(false, out + q4_K_record_at(false, nsb, g, sb), g, r, block);
  });
}

// q5_K's fifth bits: in chunk c, byte 4r + i of vector `half` holds at bit p the fifth
// bit of the quant whose low bits are in vector p, byte 4r + i, low (half 0) or high
// (half 1) nibble: element 32 * half + 4p + i of the chunk, bit 2c + half of qh[4p + i].
void pack_q5_K(const WeightMatrix& w, uint8_t* out) {
  const int nsb = static_cast<int>(w.n_in / kQK_K);
  for_each_superblock<block_q5_K>(w, [&](int64_t g, int r, int sb, const block_q5_K& block) {
    uint8_t* record = out + q4_K_record_at(true, nsb, g, sb);
    pack_q4_K_parts(true, record, g, r, block);
    for (int c = 0; c < 4; ++c) {
      for (int half = 0; half < 2; ++half) {
        for (int p = 0; p < 8; ++p) {
          for (int i = 0; i < 4; ++i) {
            const int bit = block.qh[4 * p + i] >> (2 * c + half) & 1;
            record[q5_K_fifth_bits(in_pair(g), c, half) + r * 4 + i] |= static_cast<uint8_t>(bit << p);
          }
        }
      }
    }
  });
}

size_t q6_K_record_at(int nsb, int64_t g, int sb) {
  return (g / 2) * packed_pair_bytes(TensorType::kQ6_K, int64_t{nsb} * kQK_K) + sb * kQ6KPairRecord;
}

// Where element i (0-15) of sub-block s of row r of group g (g % 2 of its pair) sits:
// its low nibble's byte and shift, and its high bits' byte and shift.
struct Q6KPlace {
  size_t low, high;
  int low_shift, high_shift;
};
Q6KPlace q6_K_place(int64_t g, int s, int r, int i) {
  const size_t sub = q6_K_sub_block(in_pair(g), s);
  const int quarter = i / 4;  // vectors: low nibbles of quarters 0, 1 | of 2, 3 | high bits of all four
  return {sub + (quarter / 2) * 64 + r * 4 + i % 4, sub + 128 + r * 4 + i % 4, 4 * (quarter % 2), 2 * quarter};
}

void pack_q6_K(const WeightMatrix& w, uint8_t* out) {
  const int nsb = static_cast<int>(w.n_in / kQK_K);
  for_each_superblock<block_q6_K>(w, [&](int64_t g, int r, int sb, const block_q6_K& block) {
    uint8_t* record = out + q6_K_record_at(nsb, g, sb);
    for (int s = 0; s < 16; ++s) {
      record[q6_K_scales(in_pair(g)) + s * kPackedRows + r] = static_cast<uint8_t>(block.scales[s]);
      for (int i = 0; i < 16; ++i) {
        const int q = q6_K_quant_at(block, 16 * s + i);
        const Q6KPlace at = q6_K_place(g, s, r, i);
        record[at.low] |= static_cast<uint8_t>((q & 0x0f) << at.low_shift);
        record[at.high] |= static_cast<uint8_t>((q >> 4) << at.high_shift);
      }
    }
    std::memcpy(record + q6_K_d(in_pair(g)) + r * 2, &block.d, 2);
  });
}

// y of every row of groups [2 pair_begin, 2 pair_end) and token: acc starts at 0 and
// step(g, r, t, sb, y_block, acc) adds each superblock in order.
template <typename Step>
void reference_superblocks(int64_t n_in, int64_t n_out, const PackedActivations& a, int n_tokens, float* y,
                           int64_t pair_begin, int64_t pair_end, Step step) {
  const int nsb = static_cast<int>(n_in / kQK_K);
  for (int64_t g = 2 * pair_begin; g < 2 * pair_end; ++g) {
    for (int r = 0; r < kPackedRows && g * kPackedRows + r < n_out; ++r) {
      for (int t = 0; t < n_tokens; ++t) {
        float acc = 0.0f;
        for (int sb = 0; sb < nsb; ++sb) {
          step(g, r, t, sb, q8_K_block(a, t, sb), acc);
        }
        y[t * n_out + g * kPackedRows + r] = acc;
      }
    }
  }
}

void reference_q6_K(const uint8_t* packed, int64_t n_in, int64_t n_out, const PackedActivations& a, int n_tokens,
                    float* y, int64_t pair_begin, int64_t pair_end) {
  const int nsb = static_cast<int>(n_in / kQK_K);
  reference_superblocks(n_in, n_out, a, n_tokens, y, pair_begin, pair_end,
                        [&](int64_t g, int r, int, int sb, const block_q8_K& y_block, float& acc) {
                          const uint8_t* record = packed + q6_K_record_at(nsb, g, sb);
                          int32_t total = 0;
                          for (int s = 0; s < 16; ++s) {
                            int32_t dot = -32 * y_block.bsums[s];
                            for (int i = 0; i < 16; ++i) {
                              const Q6KPlace at = q6_K_place(g, s, r, i);
                              const int q =
                                  (record[at.low] >> at.low_shift & 0x0f) | (record[at.high] >> at.high_shift & 3) << 4;
                              dot += q * y_block.qs[16 * s + i];
                            }
                            total += static_cast<int8_t>(record[q6_K_scales(in_pair(g)) + s * kPackedRows + r]) * dot;
                          }
                          uint16_t d;
                          std::memcpy(&d, record + q6_K_d(in_pair(g)) + r * 2, 2);
                          acc = std::fma(static_cast<float>(total), fp16_to_fp32(d) * y_block.d, acc);
                        });
}

void reference_q4_K(bool q5, const uint8_t* packed, int64_t n_in, int64_t n_out, const PackedActivations& a,
                    int n_tokens, float* y, int64_t pair_begin, int64_t pair_end) {
  const int nsb = static_cast<int>(n_in / kQK_K);
  reference_superblocks(n_in, n_out, a, n_tokens, y, pair_begin, pair_end,
                        [&](int64_t g, int r, int t, int sb, const block_q8_K& y_block, float& acc) {
                          const uint8_t* record = packed + q4_K_record_at(q5, nsb, g, sb);
                          int32_t total = 0, mins = 0;
                          for (int sub = 0; sub < 8; ++sub) {
                            const int c = sub / 2, half = sub % 2;
                            int32_t dot = 0;
                            for (int k = 0; k < 32; ++k) {
                              const uint8_t byte = record[q4_K_quants(q5, in_pair(g), c, k / 4) + r * 4 + k % 4];
                              int q = half ? byte >> 4 : byte & 0x0f;
                              if (q5)
                                q |= (record[q5_K_fifth_bits(in_pair(g), c, half) + r * 4 + k % 4] >> (k / 4) & 1) << 4;
                              dot += q * y_block.qs[64 * c + 32 * half + k];
                            }
                            total += record[q4_K_scales(q5, in_pair(g), c) + half * kPackedRows + r] * dot;
                            mins += record[q4_K_mins(q5, in_pair(g)) + (sub / 2) * 32 + r * 2 + sub % 2] *
                                    a.sums32[(t * nsb + sb) * 8 + sub];
                          }
                          uint16_t d, dmin;
                          std::memcpy(&d, record + q4_K_d(q5, in_pair(g)) + r * 2, 2);
                          std::memcpy(&dmin, record + q4_K_dmin(q5, in_pair(g)) + r * 2, 2);
                          acc = std::fma(static_cast<float>(total), fp16_to_fp32(d) * y_block.d, acc);
                          acc = std::fma(-static_cast<float>(mins), fp16_to_fp32(dmin) * y_block.d, acc);
                        });
}

}  // namespace

bool packing_supported(TensorType type) {
  if (type != TensorType::kQ8_0 && type != TensorType::kQ4_0 && type != TensorType::kQ4_K &&
      type != TensorType::kQ5_K && type != TensorType::kQ6_K) {
    return false;
  }
  static const bool kernels = cpu_has_avx512_vnni() || cpu_has_avx2() || packed_neon_kernels_available();
  return kernels;
}

void packed_product(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out, const PackedActivations& a,
                    int n_tokens, float* y, int64_t pair_begin, int64_t pair_end) {
  static const auto product = cpu_has_avx512_vnni() ? packed_product_avx512
                              : cpu_has_avx_vnni()  ? packed_product_avx_vnni
                              : cpu_has_avx2()      ? packed_product_avx2
                                                    : packed_product_neon;
  product(type, packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
}

size_t packed_pair_bytes(TensorType type, int64_t n_in) {
  if (type == TensorType::kQ4_K) return static_cast<size_t>(n_in / kQK_K) * q4_K_pair_record(false);
  if (type == TensorType::kQ5_K) return static_cast<size_t>(n_in / kQK_K) * q4_K_pair_record(true);
  if (type == TensorType::kQ6_K) return static_cast<size_t>(n_in / kQK_K) * kQ6KPairRecord;
  return static_cast<size_t>(n_in / 32) * pair_block_bytes(type == TensorType::kQ4_0);
}

size_t packed_matrix_bytes(TensorType type, int64_t n_in, int64_t n_out) {
  return static_cast<size_t>(packed_pairs(n_out)) * packed_pair_bytes(type, n_in);
}

void pack_matrix(const WeightMatrix& w, uint8_t* out) {
  if (w.type == TensorType::kQ4_K || w.type == TensorType::kQ5_K || w.type == TensorType::kQ6_K) {
    // Padding rows: zero scales. (q5_K and q6_K OR their bits into the zeroed record.)
    std::memset(out, 0, packed_matrix_bytes(w.type, w.n_in, w.n_out));
    if (w.type == TensorType::kQ4_K) pack_q4_K(w, out);
    if (w.type == TensorType::kQ5_K) pack_q5_K(w, out);
    if (w.type == TensorType::kQ6_K) pack_q6_K(w, out);
    return;
  }
  const int nb = static_cast<int>(w.n_in / 32);
  const int64_t groups = (w.n_out + kPackedRows - 1) / kPackedRows;
  std::memset(out, 0, packed_matrix_bytes(w.type, w.n_in, w.n_out));  // padding rows: zero scales
  for (int64_t g = 0; g < groups; ++g) {
    for (int r = 0; r < kPackedRows && g * kPackedRows + r < w.n_out; ++r) {
      const uint8_t* row = w.data + (g * kPackedRows + r) * w.row_stride;
      for (int b = 0; b < nb; ++b) {
        uint8_t* slice = out + quants_at(w.type, nb, g, b);
        auto* scales = reinterpret_cast<uint16_t*>(out + scales_at(w.type, nb, g, b));
        if (w.type == TensorType::kQ8_0) {
          const auto* block = reinterpret_cast<const block_q8_0*>(row) + b;
          scales[r] = block->d;
          for (int j = 0; j < 8; ++j) {
            for (int i = 0; i < 4; ++i) slice[j * 64 + r * 4 + i] = static_cast<uint8_t>(block->qs[4 * j + i] + 128);
          }
        } else {
          const auto* block = reinterpret_cast<const block_q4_0*>(row) + b;
          scales[r] = block->d;
          for (int j = 0; j < 4; ++j) std::memcpy(slice + j * 64 + r * 4, block->qs + 4 * j, 4);
        }
      }
    }
  }
}

void packed_activation_sums(const uint8_t* rows, size_t row_bytes, int n_tokens, int nb, float* d, int32_t* sum) {
  for (int t = 0; t < n_tokens; ++t) {
    const auto* blocks = reinterpret_cast<const block_q8_0*>(rows + t * row_bytes);
    for (int b = 0; b < nb; ++b) {
      int32_t s = 0;
      for (int i = 0; i < 32; ++i) s += blocks[b].qs[i];
      d[t * nb + b] = fp16_to_fp32(blocks[b].d);
      sum[t * nb + b] = s;
    }
  }
}

void packed_activation_sums_k(const uint8_t* rows, size_t row_bytes, int n_tokens, int nsb, int16_t* sums32) {
  for (int t = 0; t < n_tokens; ++t) {
    const auto* blocks = reinterpret_cast<const block_q8_K*>(rows + t * row_bytes);
    for (int sb = 0; sb < nsb; ++sb) {
      for (int sub = 0; sub < 8; ++sub) {
        sums32[(t * nsb + sb) * 8 + sub] =
            static_cast<int16_t>(blocks[sb].bsums[2 * sub] + blocks[sb].bsums[2 * sub + 1]);
      }
    }
  }
}

void packed_product_reference(TensorType type, const uint8_t* packed, int64_t n_in, int64_t n_out,
                              const PackedActivations& a, int n_tokens, float* y, int64_t pair_begin,
                              int64_t pair_end) {
  if (type == TensorType::kQ4_K) {
    reference_q4_K(false, packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
    return;
  }
  if (type == TensorType::kQ5_K) {
    reference_q4_K(true, packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
    return;
  }
  if (type == TensorType::kQ6_K) {
    reference_q6_K(packed, n_in, n_out, a, n_tokens, y, pair_begin, pair_end);
    return;
  }
  const int nb = static_cast<int>(n_in / 32);
  const int offset = weight_offset(type);
  for (int64_t g = 2 * pair_begin; g < 2 * pair_end; ++g) {
    for (int r = 0; r < kPackedRows && g * kPackedRows + r < n_out; ++r) {
      for (int t = 0; t < n_tokens; ++t) {
        float acc = 0.0f;
        for (int b = 0; b < nb; ++b) {
          const auto* y_block = reinterpret_cast<const block_q8_0*>(a.rows + t * a.row_bytes) + b;
          const uint8_t* slice = packed + quants_at(type, nb, g, b);
          int32_t sum = -offset * a.sum[t * nb + b];
          for (int k = 0; k < 32; ++k) {
            int w;
            if (type == TensorType::kQ8_0) {
              w = slice[(k / 4) * 64 + r * 4 + k % 4];
            } else {
              const uint8_t byte = slice[(k % 16 / 4) * 64 + r * 4 + k % 4];
              w = k < 16 ? byte & 0x0f : byte >> 4;
            }
            sum += w * y_block->qs[k];
          }
          uint16_t d;
          std::memcpy(&d, packed + scales_at(type, nb, g, b) + r * sizeof d, sizeof d);
          const float scale = fp16_to_fp32(d) * a.d[t * nb + b];
          acc = std::fma(static_cast<float>(sum), scale, acc);
        }
        y[t * n_out + g * kPackedRows + r] = acc;
      }
    }
  }
}

}  // namespace clusterd
