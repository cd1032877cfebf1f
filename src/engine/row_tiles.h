// Tiled products' loops: the loop order of the F16/BF16 tiles (kernels_avx512.cpp,
// kernels_avx2.cpp, kernels_neon.cpp), rows in chunks of about 128 KB, which stay in
// L2 while every group of tokens passes over them, a group's activations in L1 across
// the chunk's rows; and the choice of a compiled tile by its size (also the packed
// kernels').
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace clusterd {

// tile(w_r, x_t, y_tr, nr, nt) for rows [r, r + nr) of w (w_stride elements apart)
// and tokens [t, t + nt) of x (x_stride apart), whose results go to y_tr = y + t *
// y_stride + r: nr is row_step (or what is left of a chunk), nt is token_step (or what
// is left of the tokens).
template <typename Tile>
void for_each_row_tile(const uint16_t* w, size_t w_stride, int rows, const float* x, size_t x_stride, int tokens,
                       float* y, size_t y_stride, int row_step, int token_step, Tile tile) {
  const int chunk = std::max<int>(4, static_cast<int>((size_t{128} << 10) / std::max<size_t>(2 * w_stride, 1)));
  for (int r0 = 0; r0 < rows; r0 += chunk) {
    const int r1 = std::min(rows, r0 + chunk);
    for (int t = 0; t < tokens; t += token_step) {
      const int nt = std::min(token_step, tokens - t);
      for (int r = r0; r < r1; r += row_step) {
        tile(w + r * w_stride, x + t * x_stride, y + t * y_stride + r, std::min(row_step, r1 - r), nt);
      }
    }
  }
}

// f(std::integral_constant<int, count>) for a count in [1, kMax]: a tile size known at
// run time picks its compiled tile.
template <int kMax, typename F>
void with_count(int count, F f) {
  if constexpr (kMax > 1) {
    if (count < kMax) return with_count<kMax - 1>(count, f);
  }
  f(std::integral_constant<int, kMax>{});
}

// The loop over pairs [begin, end) of a packed matrix (packed.h) for kernels whose
// vectors are narrower than a group (packed_avx2.cpp: halves, packed_neon.cpp:
// quarters; a pair is kUnits of them): tile(U, T, u0, t0) with U and T as
// std::integral_constant. One token: a whole pair per tile (U = kUnits, one stream);
// more tokens: kBatchUnits (one group) by up to kMaxTokens tokens.
template <int kUnits, int kBatchUnits, int kMaxTokens, typename Tile>
void for_each_pair_tile(int64_t begin, int64_t end, int n_tokens, Tile tile) {
  for (int64_t p = begin; p < end; ++p) {
    if (n_tokens == 1) {
      tile(std::integral_constant<int, kUnits>{}, std::integral_constant<int, 1>{}, kUnits * p, 0);
      continue;
    }
    for (int64_t u = kUnits * p; u < kUnits * (p + 1); u += kBatchUnits) {
      for (int t0 = 0; t0 < n_tokens; t0 += kMaxTokens) {
        with_count<kMaxTokens>(std::min(kMaxTokens, n_tokens - t0),
                               [&](auto T) { tile(std::integral_constant<int, kBatchUnits>{}, T, u, t0); });
      }
    }
  }
}

}  // namespace clusterd
