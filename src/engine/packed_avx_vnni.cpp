// The packed product on CPUs with AVX-VNNI but not AVX-512 VNNI (Intel client CPUs
// since Alder Lake; AMD Zen 5 has both): packed_avx2.cpp's tiles compiled again with
// VPDPBUSD on 256-bit vectors in place of VPMADDUBSW and the int16 widening.
#define CLUSTERD_PACKED_AVX_VNNI 1
#include "packed_avx2.cpp"  // NOLINT(bugprone-suspicious-include): the same tiles, a second build
