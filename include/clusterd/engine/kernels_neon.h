// NEON dot products for 64-bit ARM (Apple silicon, Graviton, Ampere, Raspberry Pi 4+),
// the ARM twins of the AVX2 kernels. NEON is part of every AArch64 CPU, so unlike AVX2
// there is no run-time check: where CLUSTERD_HAVE_NEON_KERNELS is defined the functions
// exist and are always safe to call. The int8 products use the SDOT instruction when
// the build targets it (__ARM_FEATURE_DOTPROD: -march=armv8.2-a+dotprod, -mcpu=native
// on a CPU that has it, Apple clang's default for arm64), widening multiplies otherwise.
//
// Each matches its scalar reference in quant.h: the integer arithmetic inside a block
// is the same and exact, only the order of the float additions differs (the K-quant
// kernels even combine blocks in the reference's order). Unlike AVX2 there is no sign
// trick, so int8 quants may use the full range [-128, 127]. `n` is the number of
// elements, a multiple of the weight's block size (any n for f16).
#pragma once

#include <cstddef>
#include <cstdint>

#include "clusterd/engine/quant.h"

// 32-bit ARM also defines __ARM_NEON but lacks the AArch64 instructions used here
// (across-vector adds, float64 lanes), so it keeps the scalar code.
#if defined(__ARM_NEON) && defined(__aarch64__)
#define CLUSTERD_HAVE_NEON_KERNELS 1

namespace clusterd {

float vec_dot_q8_0_q8_0_neon(int n, const block_q8_0* x, const block_q8_0* y);
float vec_dot_q4_0_q8_0_neon(int n, const block_q4_0* x, const block_q8_0* y);
float vec_dot_q4_K_q8_K_neon(int n, const block_q4_K* x, const block_q8_K* y);
float vec_dot_q5_K_q8_K_neon(int n, const block_q5_K* x, const block_q8_K* y);
float vec_dot_q6_K_q8_K_neon(int n, const block_q6_K* x, const block_q8_K* y);

// Products are added in float over runs of 64 elements, the runs in double, as the
// reference accumulates in double.
float vec_dot_f16_f32_neon(int n, const uint16_t* x, const float* y);
// F16 rows (`rows` of n, w_stride elements apart) times float activation rows (`tokens`,
// x_stride apart): y[t * y_stride + r], one row by up to three tokens per tile, each
// result equal to vec_dot_f16_f32_neon of its row and token.
void dot_f16_rows_neon(const uint16_t* w, size_t w_stride, int rows, const float* x, size_t x_stride, int tokens, int n,
                       float* y, size_t y_stride);

// True when the int8 kernels were built for SDOT (vdotq_s32); for tests and logs.
constexpr bool neon_kernels_use_dotprod() {
#if defined(__ARM_FEATURE_DOTPROD)
  return true;
#else
  return false;
#endif
}

}  // namespace clusterd

#endif  // __ARM_NEON && __aarch64__
