// Dot products of one weight row with four activation rows at once
// (src/engine/kernels_x4.cpp), for batches of tokens: each weight block is loaded and
// unpacked once and used for all four activations, instead of once per token.
//
// Contract: out[t] is bit for bit what the one-row kernel of the same instruction set
// returns for (x, y[t]): the same integer block sums and the same float operations in
// the same order per token. So a matmul may mix x4 and one-row calls freely and its
// result does not depend on how the tokens were grouped.
//
// The AVX-512 functions require cpu_has_avx512_vnni(), the AVX2 ones cpu_has_avx2(),
// with the same assumptions on the quants as those kernels (kernels_avx512.h, quant.h).
// On other architectures they fall back to four calls of the scalar references.
#pragma once

#include "clusterd/engine/quant.h"

namespace clusterd {

void vec_dot_q8_0_q8_0_x4_avx512(int n, const block_q8_0* x, const block_q8_0* const y[4], float out[4]);
void vec_dot_q4_0_q8_0_x4_avx512(int n, const block_q4_0* x, const block_q8_0* const y[4], float out[4]);
void vec_dot_q4_K_q8_K_x4_avx512(int n, const block_q4_K* x, const block_q8_K* const y[4], float out[4]);
void vec_dot_q6_K_q8_K_x4_avx512(int n, const block_q6_K* x, const block_q8_K* const y[4], float out[4]);

void vec_dot_q8_0_q8_0_x4_avx2(int n, const block_q8_0* x, const block_q8_0* const y[4], float out[4]);
void vec_dot_q4_0_q8_0_x4_avx2(int n, const block_q4_0* x, const block_q8_0* const y[4], float out[4]);
void vec_dot_q4_K_q8_K_x4_avx2(int n, const block_q4_K* x, const block_q8_K* const y[4], float out[4]);
void vec_dot_q6_K_q8_K_x4_avx2(int n, const block_q6_K* x, const block_q8_K* const y[4], float out[4]);

}  // namespace clusterd
