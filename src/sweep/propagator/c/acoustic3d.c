/* The 3-D kernels of the native build (-march=native), a translation unit of their own beside acoustic.c's 2-D
 * ones so that the build compiles the two in parallel; a portable build compiles acoustic3d_<path>.c instead
 * (see "code paths" in acoustic.c). */
#include "acoustic_common.h"
#if !defined(SWEEP_DISPATCH)
#define ISA(name) name
#include "acoustic_instance3d.h"
#undef ISA
#endif
