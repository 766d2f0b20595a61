/* One instance of the 2-D kernels in float32 and float64, with the names ISA(name_f32) / ISA(name_f64), and of
 * the FMA peak probe; included by acoustic.c (native build) or acoustic_<path>.c (one code path of a portable
 * build: see "Code paths" in acoustic.c). Every template is instantiated twice per precision: constant density
 * (SWEEP_VRZ 0: sweep_acoustic_*) and variable density (SWEEP_VRZ 1: sweep_acoustic_vrz_*, static helpers
 * ending in _vrz_f32 / _vrz_f64). KNAME(x) names an exported kernel. The 3-D kernels are another translation
 * unit (acoustic_instance3d.h), so that a build compiles the two in parallel. */
#define REAL float
#define SFX(name) ISA(name##_f32)
#define SWEEP_VRZ 0
#define KNAME(x) ISA(sweep_acoustic_##x##_f32)
#include "acoustic_impl.h"
#include "acoustic_adjoint.h"
#include "acoustic_retreat.h"
#undef SFX
#undef SWEEP_VRZ
#undef KNAME
#define SFX(name) ISA(name##_vrz_f32)
#define SWEEP_VRZ 1
#define KNAME(x) ISA(sweep_acoustic_vrz_##x##_f32)
#include "acoustic_impl.h"
#include "acoustic_adjoint.h"
#include "acoustic_retreat.h"
#undef SFX
#undef SWEEP_VRZ
#undef KNAME
#undef REAL

#define REAL double
#define SFX(name) ISA(name##_f64)
#define SWEEP_VRZ 0
#define KNAME(x) ISA(sweep_acoustic_##x##_f64)
#include "acoustic_impl.h"
#include "acoustic_adjoint.h"
#include "acoustic_retreat.h"
#undef SFX
#undef SWEEP_VRZ
#undef KNAME
#define SFX(name) ISA(name##_vrz_f64)
#define SWEEP_VRZ 1
#define KNAME(x) ISA(sweep_acoustic_vrz_##x##_f64)
#include "acoustic_impl.h"
#include "acoustic_adjoint.h"
#include "acoustic_retreat.h"
#undef SFX
#undef SWEEP_VRZ
#undef KNAME
#undef REAL

/* Peak single-precision FMA throughput of this code path: `nthreads` threads each run `iters` rounds of
 * 12 independent vector FMA chains (enough to cover the FMA latency on two pipes). Returns flop/s. */
#if defined(__AVX512F__)
typedef float ISA(sweep_vf) __attribute__((vector_size(64)));
#elif defined(__AVX__)
typedef float ISA(sweep_vf) __attribute__((vector_size(32)));
#else
typedef float ISA(sweep_vf) __attribute__((vector_size(16)));
#endif
typedef struct {
    int64_t iters;
    float sink[SWEEP_MAX_THREADS];
} ISA(sweep_fma_job);

static void ISA(sweep_fma_thread)(void *ctx, int me) {
    typedef ISA(sweep_vf) vf;
    ISA(sweep_fma_job) *J = (ISA(sweep_fma_job) *)ctx;
    const int lanes = (int)(sizeof(vf) / sizeof(float));
    vf m, a, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11;
    for (int l = 0; l < lanes; l++) {
        m[l] = 0.999999f;
        a[l] = 1e-7f;
    }
    /* distinct starts, or the compiler would merge identical chains */
    c0 = a * 1.f; c1 = a * 2.f; c2 = a * 3.f; c3 = a * 4.f; c4 = a * 5.f; c5 = a * 6.f;
    c6 = a * 7.f; c7 = a * 8.f; c8 = a * 9.f; c9 = a * 10.f; c10 = a * 11.f; c11 = a * 12.f;
    for (int64_t it = 0; it < J->iters; it++) {
        c0 = c0 * m + a; c1 = c1 * m + a; c2 = c2 * m + a; c3 = c3 * m + a;
        c4 = c4 * m + a; c5 = c5 * m + a; c6 = c6 * m + a; c7 = c7 * m + a;
        c8 = c8 * m + a; c9 = c9 * m + a; c10 = c10 * m + a; c11 = c11 * m + a;
    }
    const vf sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
    float s = 0;
    for (int l = 0; l < lanes; l++) s += sum[l];
    J->sink[me] = s; /* kept, so that the chains are not optimised away */
}

double ISA(sweep_fma_peak)(int nthreads, int64_t iters) {
    const int lanes = (int)(sizeof(ISA(sweep_vf)) / sizeof(float));
    ISA(sweep_fma_job) J = {iters, {0}};
    sweep_run_stats stats = {0, 0, 0};
    if (nthreads > SWEEP_MAX_THREADS) nthreads = SWEEP_MAX_THREADS;
    if (sweep_pool_run(nthreads, ISA(sweep_fma_thread), &J, &stats) || stats.wall <= 0) return 0;
    return 2.0 * 12 * lanes * (double)iters * nthreads / stats.wall;
}
