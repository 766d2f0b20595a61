/* Compiled CPU kernels of the 2-D and 3-D acoustic steppers: forward blocks of steps, the exact discrete
 * adjoint of a block of steps, and the reverse-time rebuild of the physical wavefield from boundary
 * strips, in float32 and float64.
 *
 * The discretisation is the eager stepper's (sweep/propagator/eager/acoustic.py), operation for
 * operation (and, in 2-D, the variable-density one, sweep/propagator/eager/acoustic_vrz.py: the same
 * templates instantiated with SWEEP_VRZ 1, named sweep_acoustic_vrz_*; see acoustic_cell.h); see
 * acoustic_impl.h for the forward passes, acoustic_adjoint.h for the adjoint and acoustic_retreat.h for the
 * rebuild (acoustic3d_impl.h, acoustic3d_adjoint.h, acoustic3d_retreat.h in 3-D, named sweep_acoustic3d_*).
 * This file only instantiates the templates (acoustic_instance.h) and holds the shared helpers. Every exported symbol starts with
 * `sweep_`; helpers are static (a global called `step` would resolve to libc's legacy step() when loaded
 * through ctypes).
 */
#include "acoustic_common.h"

/* ---- code paths -------------------------------------------------------------------------------------
 *
 * The default build (-march=native) compiles one instance of the kernels for the build machine. A
 * portable build (SWEEP_PORTABLE=1, which defines SWEEP_DISPATCH) compiles three, for x86-64 baseline,
 * AVX2 + FMA and AVX-512 (512-bit vectors), and picks one per process at the first call from what the
 * CPU supports; SWEEP_ISA=baseline|avx2 forces a lower one (a higher one than the CPU has is ignored).
 * The forward and the rebuild always run the same instance, so the rebuild repeats the forward's rounding;
 * the paths differ from each other by FMA contraction and vector width only (rounding, not arithmetic). */
#if defined(SWEEP_DISPATCH) && defined(__x86_64__) && defined(__GNUC__)
/* The instances live in acoustic{,3d}_avx512.c, acoustic{,3d}_avx2.c and acoustic{,3d}_baseline.c (2-D and 3-D
 * kernels of each code path, compiled in parallel). */
/* The six kernels of one family (name prefix `name`, problem struct `PT`) on code path `p`. */
#define DECLARE_FAMILY(name, PT, p)                                                                        \
    int name##_forward_f32_##p(const PT *, float *, int64_t, int64_t, float *, float *, float *, int,       \
                               sweep_run_stats *);                                                         \
    int name##_forward_f64_##p(const PT *, double *, int64_t, int64_t, double *, double *, double *, int,   \
                               sweep_run_stats *);                                                         \
    int name##_adjoint_f32_##p(const PT *, float *, const float *, int64_t, int64_t, const float *, float *, \
                               float *, int, sweep_run_stats *);                                           \
    int name##_adjoint_f64_##p(const PT *, double *, const double *, int64_t, int64_t, const double *,      \
                               double *, double *, int, sweep_run_stats *);                                \
    int name##_retreat_f32_##p(const PT *, float *, const float *, int64_t, int64_t, float *, int,          \
                               sweep_run_stats *);                                                         \
    int name##_retreat_f64_##p(const PT *, double *, const double *, int64_t, int64_t, double *, int,       \
                               sweep_run_stats *);
/* Every kernel family, constant and variable density in 2-D and 3-D, and the FMA probe of code path `p`. */
#define DECLARE(p)                                                                                         \
    DECLARE_FAMILY(sweep_acoustic, sweep_problem, p)                                                       \
    DECLARE_FAMILY(sweep_acoustic_vrz, sweep_problem, p)                                                   \
    DECLARE_FAMILY(sweep_acoustic3d, sweep_problem3d, p)                                                   \
    DECLARE_FAMILY(sweep_acoustic3d_vrz, sweep_problem3d, p)                                               \
    double sweep_fma_peak_##p(int, int64_t);
DECLARE(avx512)
DECLARE(avx2)
DECLARE(baseline)

enum { SWEEP_BASELINE = 0, SWEEP_AVX2 = 1, SWEEP_AVX512 = 2 };

static int sweep_isa(void) {
    static int isa = -1;
    if (isa < 0) {
        __builtin_cpu_init();
        int best = SWEEP_BASELINE;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = SWEEP_AVX2;
        if (best == SWEEP_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
            best = SWEEP_AVX512;
        const char *e = getenv("SWEEP_ISA");
        int want = best;
        if (e && !strcmp(e, "baseline")) want = SWEEP_BASELINE;
        if (e && !strcmp(e, "avx2")) want = SWEEP_AVX2;
        isa = want < best ? want : best;
    }
    return isa;
}

const char *sweep_code_path(void) {
    static const char *names[] = {"baseline", "avx2", "avx512"};
    return names[sweep_isa()];
}

#define DISPATCH(name, params, args)                                                                      \
    int name params {                                                                                     \
        switch (sweep_isa()) {                                                                            \
        case SWEEP_AVX512: return name##_avx512 args;                                                     \
        case SWEEP_AVX2: return name##_avx2 args;                                                         \
        default: return name##_baseline args;                                                             \
        }                                                                                                 \
    }
#define FWD_PARAMS(PT, R) (const PT *P, R *state, int64_t n0, int64_t n1, R *record, R *keep, R *strips, \
                           int nthreads, sweep_run_stats *stats)
#define ADJ_PARAMS(PT, R) (const PT *P, R *adj, const R *kept, int64_t n0, int64_t n1, const R *grad_rec, \
                           R *grad_w, R *grad_wavelet, int nthreads, sweep_run_stats *stats)
#define BACK_PARAMS(PT, R) (const PT *P, R *fields, const R *strips, int64_t n0, int64_t n1, R *keep, \
                            int nthreads, sweep_run_stats *stats)
#define FWD_ARGS (P, state, n0, n1, record, keep, strips, nthreads, stats)
#define ADJ_ARGS (P, adj, kept, n0, n1, grad_rec, grad_w, grad_wavelet, nthreads, stats)
#define BACK_ARGS (P, fields, strips, n0, n1, keep, nthreads, stats)
/* The six dispatching entry points of one kernel family (see DECLARE_FAMILY). */
#define DISPATCH_FAMILY(name, PT)                                                                          \
    DISPATCH(name##_forward_f32, FWD_PARAMS(PT, float), FWD_ARGS)                                          \
    DISPATCH(name##_forward_f64, FWD_PARAMS(PT, double), FWD_ARGS)                                         \
    DISPATCH(name##_adjoint_f32, ADJ_PARAMS(PT, float), ADJ_ARGS)                                          \
    DISPATCH(name##_adjoint_f64, ADJ_PARAMS(PT, double), ADJ_ARGS)                                         \
    DISPATCH(name##_retreat_f32, BACK_PARAMS(PT, float), BACK_ARGS)                                        \
    DISPATCH(name##_retreat_f64, BACK_PARAMS(PT, double), BACK_ARGS)
DISPATCH_FAMILY(sweep_acoustic, sweep_problem)
DISPATCH_FAMILY(sweep_acoustic_vrz, sweep_problem)
DISPATCH_FAMILY(sweep_acoustic3d, sweep_problem3d)
DISPATCH_FAMILY(sweep_acoustic3d_vrz, sweep_problem3d)

double sweep_fma_peak(int nthreads, int64_t iters) {
    switch (sweep_isa()) {
    case SWEEP_AVX512: return sweep_fma_peak_avx512(nthreads, iters);
    case SWEEP_AVX2: return sweep_fma_peak_avx2(nthreads, iters);
    default: return sweep_fma_peak_baseline(nthreads, iters);
    }
}
#else
#define ISA(name) name
#include "acoustic_instance.h"
#undef ISA

const char *sweep_code_path(void) {
#if defined(__AVX512F__)
    return "native (avx512)";
#elif defined(__AVX2__)
    return "native (avx2)";
#else
    return "native";
#endif
}
#endif

/* ABI version, checked by the Python loader so that a stale build is reported instead of misused. */
int sweep_abi_version(void) { return 8; }
