// CLUSTERD_TARGET_CLONES: compiles a function again for x86-64-v4 (AVX-512) and
// x86-64-v3 (AVX2) next to the baseline build, the best copy being picked at load
// time (GCC function multi-versioning, Linux x86-64). Elsewhere it expands to nothing.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define CLUSTERD_TARGET_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLUSTERD_TARGET_CLONES
#endif
