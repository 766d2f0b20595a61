/* The 3-D kernels of the avx512 code path of a portable build (SWEEP_PORTABLE=1; see "code paths" in acoustic.c). */
#include "acoustic_common.h"
#if defined(SWEEP_DISPATCH) && defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2,prefer-vector-width=512")
#define ISA(name) name##_avx512
#include "acoustic_instance3d.h"
#undef ISA
#endif
