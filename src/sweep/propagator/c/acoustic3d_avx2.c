/* The 3-D kernels of the avx2 code path of a portable build (SWEEP_PORTABLE=1; see "code paths" in acoustic.c). */
#include "acoustic_common.h"
#if defined(SWEEP_DISPATCH) && defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx2,fma,bmi2")
#define ISA(name) name##_avx2
#include "acoustic_instance3d.h"
#undef ISA
#endif
