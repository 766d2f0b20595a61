/* The 3-D kernels of the baseline code path of a portable build (SWEEP_PORTABLE=1; see "code paths" in acoustic.c). */
#include "acoustic_common.h"
#if defined(SWEEP_DISPATCH) && defined(__x86_64__) && defined(__GNUC__)
/* A fallback for CPUs without AVX2: no loop unrolling, to keep the build short. */
#pragma GCC optimize("O2", "no-unroll-loops")
#define ISA(name) name##_baseline
#include "acoustic_instance3d.h"
#undef ISA
#endif
