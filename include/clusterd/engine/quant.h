// Quantized block types and their scalar reference code: fp16/bf16 conversion, the
// block layouts of ggml (byte for byte, so GGUF files written by llama.cpp read
// correctly), row quantizers and dequantizers, and reference dot products that the
// SIMD kernels are tested against.
//
// Conventions (ggml's): a row of n elements is n / QK consecutive blocks; n must be a
// multiple of the type's block size. fp16 and bf16 values are stored as uint16_t bit
// patterns. Everything here is little-endian, as GGUF is.
#pragma once

#include <cstdint>
#include <cstring>

#include "clusterd/common/status.h"
#include "clusterd/model/tensor_type.h"

namespace clusterd {

// ---------------------------------------------------------------------------------
// fp16 (IEEE 754 binary16) and bf16 (the top half of a binary32)

// Exact: every half value, subnormals, infinities and NaNs included, is a float.
inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf, or NaN keeping its payload
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal: mant * 2^-24. Shift the leading one up to bit 10, then it is hidden.
    const int shift = __builtin_clz(mant) - 21;
    mant = (mant << shift) & 0x3ffu;
    bits = sign | (uint32_t(113 - shift) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Rounds to nearest, ties to even; overflow gives inf, underflow gives (signed) zero
// or a subnormal; NaN stays NaN (quiet, the top of its payload kept).
inline uint16_t fp32_to_fp16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  // 65520 (= 0x477ff000) is half way between 65504, the largest half, and 2^16; the
  // tie goes to the even neighbour, which is the infinity.
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (abs < 0x38800000u) {  // below 2^-14: a half subnormal, in units of 2^-24
    const int exp = static_cast<int>(abs >> 23);
    const int shift = 126 - exp;  // mantissa with hidden bit, divided by 2^shift
    if (shift > 24) return sign;  // below 2^-25: rounds to zero
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;  // may carry into the smallest normal
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t h = (abs - (112u << 23)) >> 13;
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;  // a carry bumps the exponent
  return static_cast<uint16_t>(sign | h);
}

inline float bf16_to_fp32(uint16_t b) {
  const uint32_t bits = uint32_t{b} << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Rounds to nearest, ties to even; NaN stays NaN (made quiet so that truncating the
// payload cannot turn it into an infinity).
inline uint16_t fp32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

void fp16_to_fp32_row(const uint16_t* src, float* dst, int64_t n);
void fp32_to_fp16_row(const float* src, uint16_t* dst, int64_t n);
void bf16_to_fp32_row(const uint16_t* src, float* dst, int64_t n);
void fp32_to_bf16_row(const float* src, uint16_t* dst, int64_t n);

// ---------------------------------------------------------------------------------
// Block layouts. Each comment gives the value of element j of the block.

constexpr int kQK4_0 = 32;
constexpr int kQK8_0 = 32;
constexpr int kQK_K = 256;       // super-block of the K-quants
constexpr int kKScaleSize = 12;  // 8 six-bit scales and 8 six-bit mins of Q4_K/Q5_K

// value[j] = (nibble_j - 8) * d, with nibble_j = qs[j] & 15 and nibble_{j+16} = qs[j] >> 4
// for j < 16.
struct block_q4_0 {
  uint16_t d;  // fp16
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must match ggml's layout");

// value[j] = qs[j] * d.
struct block_q8_0 {
  uint16_t d;  // fp16
  int8_t qs[kQK8_0];
};
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must match ggml's layout");

// 8 sub-blocks of 32; sub-block s = j / 32 has a 6-bit scale sc[s] and min m[s] packed
// into `scales` (see k_quant_scale_min). value[j] = d*sc[s]*q[j] - dmin*m[s], where q is
// a nibble of qs: for the 64 elements 64c..64c+63, element 64c+l (l < 32) is the low
// nibble of qs[32c+l] and element 64c+32+l its high nibble.
struct block_q4_K {
  uint16_t d;     // fp16, scale of the sub-block scales
  uint16_t dmin;  // fp16, scale of the sub-block mins
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(block_q4_K) == 144, "block_q4_K must match ggml's layout");

// As Q4_K with 5-bit q: the low 4 bits are placed as in Q4_K; the fifth bit of element
// 64c+l is bit 2c of qh[l] and that of element 64c+32+l is bit 2c+1 of qh[l] (l < 32).
struct block_q5_K {
  uint16_t d;     // fp16
  uint16_t dmin;  // fp16
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(block_q5_K) == 176, "block_q5_K must match ggml's layout");

// 16 sub-blocks of 16: value[j] = d * scales[j/16] * (q[j] - 32), q 6 bits. In half
// h (elements 128h..128h+127), for l < 32 and k < 4, element 128h+32k+l takes its low
// 4 bits from ql[64h + l + 32*(k&1)] (low nibble for k < 2, high for k >= 2) and its
// top 2 bits from bits 2k..2k+1 of qh[32h + l].
struct block_q6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;  // fp16
};
static_assert(sizeof(block_q6_K) == 210, "block_q6_K must match ggml's layout");
// The quant (0..63, value d * scale * (q - 32)) of element j (0..255) of a block.
int q6_K_quant_at(const block_q6_K& b, int j);

// Activations for the K-quant dot products: value[j] = qs[j] * d; bsums[i] is the sum
// of qs[16i..16i+15] (it lets a dot product apply a sub-block's min in one multiply).
struct block_q8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(block_q8_K) == 292, "block_q8_K must match ggml's layout");

// Sub-block s (0..7) of the packed Q4_K/Q5_K `scales`: bytes 0-3 hold sc[0..3] in their
// low 6 bits, bytes 4-7 hold m[0..3]; byte 8+i holds the low 4 bits of sc[4+i] (low
// nibble) and m[4+i] (high nibble), whose top 2 bits are the top bits of bytes i and 4+i.
inline void k_quant_scale_min(int s, const uint8_t* scales, int* sc, int* m) {
  if (s < 4) {
    *sc = scales[s] & 63;
    *m = scales[s + 4] & 63;
  } else {
    *sc = (scales[s + 4] & 0x0f) | ((scales[s - 4] >> 6) << 4);
    *m = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
  }
}

// The inverse of k_quant_scale_min: packs 8 scales and 8 mins (each < 64).
void k_quant_pack_scale_min(const uint8_t sc[8], const uint8_t m[8], uint8_t scales[kKScaleSize]);

// ---------------------------------------------------------------------------------
// Rows. `n` is the number of elements and must be a multiple of the block size (1 for
// f16/bf16, 32 for q4_0/q8_0, 256 for the K-quants); `blocks` holds n / QK blocks.

void dequantize_row_f16(const void* blocks, float* out, int64_t n);
void dequantize_row_bf16(const void* blocks, float* out, int64_t n);
void dequantize_row_q8_0(const void* blocks, float* out, int64_t n);
void dequantize_row_q4_0(const void* blocks, float* out, int64_t n);
void dequantize_row_q4_K(const void* blocks, float* out, int64_t n);
void dequantize_row_q5_K(const void* blocks, float* out, int64_t n);
void dequantize_row_q6_K(const void* blocks, float* out, int64_t n);
void dequantize_row_q8_K(const void* blocks, float* out, int64_t n);

// Reference quantizers: deterministic, for writing model files and activations; inputs
// must be finite. q8_0 and q4_0 write the same bytes as llama.cpp (checked on the
// fixture models), q8_K follows the same rule (the extreme maps to -127, rounding to
// nearest even). The K-quants search each sub-block's scale (and min) for the least
// squared error, then encode those in 6 (q4_K, q5_K) or 8 (q6_K) bits; their bytes
// differ from llama.cpp's, their error is as low or lower on the fixture models.
// Worst RMS error of dequantize(quantize(x)) relative to the row's RMS on Gaussian rows:
// q8_0 0.55%, q8_K 0.71%, q4_0 8.8%, q4_K 7.2%, q5_K 3.7%, q6_K 1.8%
// (tests/engine/quant_test.cpp).
void quantize_row_f16(const float* in, void* blocks, int64_t n);
void quantize_row_bf16(const float* in, void* blocks, int64_t n);
void quantize_row_q8_0(const float* in, void* blocks, int64_t n);
void quantize_row_q4_0(const float* in, void* blocks, int64_t n);
void quantize_row_q4_K(const float* in, void* blocks, int64_t n);
void quantize_row_q5_K(const float* in, void* blocks, int64_t n);
void quantize_row_q6_K(const float* in, void* blocks, int64_t n);
void quantize_row_q8_K(const float* in, void* blocks, int64_t n);

// Whether dequantize_row / quantize_row handle `type` (F32, F16, BF16, Q8_0, Q4_0,
// Q4_K, Q5_K, Q6_K and Q8_K).
bool quant_type_supported(TensorType type);

// Elements per block and bytes per block of a supported type; 0 for the others.
int quant_block_size(TensorType type);
int quant_type_size(TensorType type);

// Dequantizes a row of `type` (F32 is copied). Requires quant_type_supported(type) and
// n a multiple of the block size: it aborts otherwise, as the loader must have refused
// such a tensor long before a kernel sees it.
void dequantize_row(TensorType type, const void* src, float* dst, int64_t n);

// Quantizes a row into `type` (F32 is copied); invalid_argument, naming the type and
// n, when the type is not supported or n is not a multiple of its block size.
Status quantize_row(TensorType type, const float* src, void* dst, int64_t n);

// ---------------------------------------------------------------------------------
// Reference dot products: the scalar definitions the SIMD kernels must match. Inside a
// block the arithmetic is integer, as in ggml; blocks are combined in float. `n` is
// the number of elements (a multiple of the weight's block size).

float vec_dot_q4_0_q8_0(int n, const block_q4_0* x, const block_q8_0* y);
float vec_dot_q8_0_q8_0(int n, const block_q8_0* x, const block_q8_0* y);
float vec_dot_q4_K_q8_K(int n, const block_q4_K* x, const block_q8_K* y);
float vec_dot_q5_K_q8_K(int n, const block_q5_K* x, const block_q8_K* y);
float vec_dot_q6_K_q8_K(int n, const block_q6_K* x, const block_q8_K* y);

// Accumulate in double.
float vec_dot_f32(int n, const float* x, const float* y);
float vec_dot_f16_f32(int n, const uint16_t* x, const float* y);
float vec_dot_bf16_f32(int n, const uint16_t* x, const float* y);

// ---------------------------------------------------------------------------------
// AVX2 kernels (src/engine/kernels_avx2.cpp). The build targets generic x86-64, so a
// caller must check cpu_has_avx2() first; each matches its reference above to float
// rounding (the integer parts are exact; only the order of float additions differs),
// given int8 quants in [-127, 127] as every quantizer here and in llama.cpp writes.

// The widest x86 kernel family allowed: the environment variable CLUSTERD_MAX_ISA
// ("scalar", "avx2", "avxvnni" or "avx512"; read once) caps what cpu_has_avx2(),
// cpu_has_avx_vnni() and cpu_has_avx512_vnni() report, so that one machine can run and
// time each family's path end to end. Unset, every family the CPU has is used; an
// unknown value is ignored with a warning on stderr.
enum class CpuIsa { kScalar, kAvx2, kAvxVnni, kAvx512 };
CpuIsa max_cpu_isa();

// True when the CPU has AVX2, FMA and F16C and CLUSTERD_MAX_ISA allows AVX2 (always
// false on other architectures).
bool cpu_has_avx2();
// True when cpu_has_avx2() and the CPU has AVX-VNNI (VPDPBUSD on 256-bit vectors) and
// CLUSTERD_MAX_ISA allows it; the packed products use it (packed_avx_vnni.cpp).
bool cpu_has_avx_vnni();

// True on AArch64 CPUs with SDOT (FEAT_DotProd: HWCAP_ASIMDDP on Linux,
// hw.optional.arm.FEAT_DotProd on macOS; elsewhere, whether the build targets it);
// always false on other architectures.
bool cpu_has_arm_dotprod();

float vec_dot_q4_0_q8_0_avx2(int n, const block_q4_0* x, const block_q8_0* y);
float vec_dot_q8_0_q8_0_avx2(int n, const block_q8_0* x, const block_q8_0* y);
float vec_dot_q4_K_q8_K_avx2(int n, const block_q4_K* x, const block_q8_K* y);
float vec_dot_q5_K_q8_K_avx2(int n, const block_q5_K* x, const block_q8_K* y);
float vec_dot_q6_K_q8_K_avx2(int n, const block_q6_K* x, const block_q8_K* y);

// Float rows, any n >= 0: eight-wide FMA in float, so they differ from the references
// (which add in double) by float rounding, bounded by about n/32 * 2^-24 of the sum of
// |x[i] * y[i]|. f16 is widened with F16C; bf16 by a shift, which is exact.
float vec_dot_f32_avx2(int n, const float* x, const float* y);
float vec_dot_f16_f32_avx2(int n, const uint16_t* x, const float* y);
float vec_dot_bf16_f32_avx2(int n, const uint16_t* x, const float* y);
// F16 or BF16 rows times float activation rows, as dot_half_rows_avx512
// (kernels_avx512.h) but one row by up to three tokens per tile; each result equals
// vec_dot_f16_f32_avx2 / vec_dot_bf16_f32_avx2 of its row and token.
void dot_half_rows_avx2(TensorType type, const uint16_t* w, size_t w_stride, int rows, const float* x, size_t x_stride,
                        int tokens, int n, float* y, size_t y_stride);

}  // namespace clusterd
