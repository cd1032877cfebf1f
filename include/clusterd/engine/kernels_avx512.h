// AVX-512 VNNI dot products (src/engine/kernels_avx512.cpp), for the same block pairs
// as the AVX2 kernels in quant.h. The build targets generic x86-64, so a caller must
// check cpu_has_avx512_vnni() first; on other architectures that is false and the
// functions fall back to the scalar references.
//
// Contract, as for the AVX2 kernels: inside a block the arithmetic is integer and
// equals the scalar reference exactly; blocks are combined in float, in a different
// order than the reference, so results differ from it by float rounding only.
//
// Assumption: activation quants (the block_q8_0 `y` and block_q8_K qs) lie in
// [-127, 127], as every quantizer here and in llama.cpp writes. VNNI multiplies
// unsigned by signed bytes, and the q8_0 x q8_0 kernel moves the sign of x onto y,
// which would overflow for y = -128. Weight quants may be any value their type allows
// (q8_0 weights the full int8 range). block_q8_K bsums must be the sums of its qs, as
// quantize_row_q8_K writes them: the K-quant kernels read them instead of summing y.
#pragma once

#include "clusterd/engine/quant.h"

namespace clusterd {

// True when the CPU (and OS) support AVX-512 F, BW, VL and VNNI, plus FMA and F16C.
bool cpu_has_avx512_vnni();
// True when cpu_has_avx512_vnni() and the CPU has AVX-512 VBMI (byte permutes).
bool cpu_has_avx512_vbmi();

float vec_dot_q8_0_q8_0_avx512(int n, const block_q8_0* x, const block_q8_0* y);
float vec_dot_q4_0_q8_0_avx512(int n, const block_q4_0* x, const block_q8_0* y);
// vec_dot_q4_0_q8_0_avx512, bit for bit, for CPUs where cpu_has_avx512_vbmi().
float vec_dot_q4_0_q8_0_avx512_vbmi(int n, const block_q4_0* x, const block_q8_0* y);
float vec_dot_q4_K_q8_K_avx512(int n, const block_q4_K* x, const block_q8_K* y);
float vec_dot_q5_K_q8_K_avx512(int n, const block_q5_K* x, const block_q8_K* y);
float vec_dot_q6_K_q8_K_avx512(int n, const block_q6_K* x, const block_q8_K* y);

// F16 or BF16 weight rows (`rows` rows of n, w_stride elements apart) times F32
// activation rows (`tokens` rows, x_stride apart): y[t * y_stride + r] for every row r
// and token t, one row by up to four tokens at a time (each weight vector widened once
// for the tile's tokens). Each (row, token) sum is computed by the same operations in
// the same order whatever the tile: a token's results do not depend on the other
// tokens.
void dot_half_rows_avx512(TensorType type, const uint16_t* w, size_t w_stride, int rows, const float* x,
                          size_t x_stride, int tokens, int n, float* y, size_t y_stride);

}  // namespace clusterd
