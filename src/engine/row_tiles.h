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

}  // namespace clusterd
