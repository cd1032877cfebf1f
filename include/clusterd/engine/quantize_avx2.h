// AVX2 versions of the activation quantizers and of the fp16 row widening the KV cache
// needs (src/engine/quantize_avx2.cpp), for CPUs without AVX-512. Each writes the same
// bytes as its scalar reference in quant.h for finite inputs; a caller must check
// cpu_has_avx2() first.
#pragma once

#include <cstdint>

namespace clusterd {

// As quantize_row_q8_0: round half away from zero, d = amax / 127.
void quantize_row_q8_0_avx2(const float* in, void* blocks, int64_t n);
// As quantize_row_q8_K: the first element of largest magnitude maps to -127, ties to
// even, bsums from the written quants.
void quantize_row_q8_K_avx2(const float* in, void* blocks, int64_t n);
// As fp16_to_fp32_row for every non-NaN half (the hardware quiets signalling NaNs).
void fp16_to_fp32_row_avx2(const uint16_t* src, float* dst, int64_t n);

}  // namespace clusterd
