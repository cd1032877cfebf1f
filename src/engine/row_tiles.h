// The loop order of the F16/BF16 tiled products (kernels_avx512.cpp, kernels_avx2.cpp,
// kernels_neon.cpp): rows in chunks of about 128 KB, which stay in L2 while every group
// of tokens passes over them; a group's activations stay in L1 across the chunk's rows.
#pragma once

#include <algorithm>
#include <cstddef>

namespace clusterd {

// tile(r, nr, t, nt) for rows [r, r + nr) and tokens [t, t + nt): nr is row_step (or
// what is left of a chunk), nt is token_step (or what is left of the tokens).
template <typename Tile>
void for_each_row_tile(int rows, int tokens, int row_step, int token_step, size_t row_bytes, Tile tile) {
  const int chunk = std::max<int>(4, static_cast<int>((size_t{128} << 10) / std::max<size_t>(row_bytes, 1)));
  for (int r0 = 0; r0 < rows; r0 += chunk) {
    const int r1 = std::min(rows, r0 + chunk);
    for (int t = 0; t < tokens; t += token_step) {
      const int nt = std::min(token_step, tokens - t);
      for (int r = r0; r < r1; r += row_step) tile(r, std::min(row_step, r1 - r), t, nt);
    }
  }
}

}  // namespace clusterd
