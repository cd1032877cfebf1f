// <immintrin.h> for the AVX-512 kernel files, with the target attribute they put on
// each function (the build targets baseline x86-64; callers check
// cpu_has_avx512_vnni() first). Include only under defined(__x86_64__).
//
// GCC 12's AVX-512 headers build "undefined" vectors from self-initialised variables,
// which -Wuninitialized reports at every use (GCC bug 105593, fixed in GCC 13); the
// warnings are located in the header, so silencing them around the include suffices.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

#define CLUSTERD_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")))
