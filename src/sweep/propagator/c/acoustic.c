/* Compiled CPU kernels of the 2-D acoustic stepper: forward blocks of steps, the exact discrete
 * adjoint of a block of steps, and the reverse-time rebuild of the physical wavefield from boundary
 * strips, in float32 and float64.
 *
 * The discretisation is the eager stepper's (sweep/propagator/eager/acoustic.py), operation for
 * operation; see acoustic_impl.h for the forward passes, acoustic_adjoint.h for the adjoint and
 * acoustic_retreat.h for the rebuild. This file only
 * instantiates the templates twice and holds the shared helpers. Every exported symbol starts with
 * `sweep_`; helpers are static (a global called `step` would resolve to libc's legacy step() when loaded
 * through ctypes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* One propagation problem, shared by both precisions. Arrays are C-contiguous; `real` arrays are in
 * the kernel's precision (float or double); coefficients are double and rounded once to `real`, as
 * PyTorch rounds a Python float multiplying a float32 tensor. */
typedef struct {
    int64_t nshots, nz, nx;          /* padded grid (NZ, NX) and shots */
    int64_t nsrc, nrec, nt;
    int64_t radius;                  /* stencil half-width r, 1..4 */
    int64_t xa, xb, za, zb;          /* PML-free interior (a = 0, b = 1): columns [xa, xb), rows [za, zb) */
    double c1[4];                    /* first derivative, offsets 1..r (1/dh) */
    double c2[5];                    /* second derivative, offsets 0..r (1/dh^2) */
    double inv_dh, inv_dh2;
    const void *w;                   /* (NZ, NX) v^2 dt^2 */
    const void *ax, *bx;             /* (NX,) C-PML coefficients */
    const void *az, *bz;             /* (NZ,) */
    const void *wavelet;             /* (nshots, nsrc, nt) */
    const int64_t *src_z, *src_x;    /* (nshots, nsrc) padded-grid indices */
    const int64_t *rec_z, *rec_x;    /* (nshots, nrec) */
    int64_t ptop, pleft, pnz, pnx;   /* physical window of the padded grid (the snapshot's grid) */
    /* Sources / receivers by row: those of padded row i of shot s are src_order[src_ptr[s*NZ+i] ..
     * src_ptr[s*NZ+i+1]) (flat indices q = s*nsrc + k, ascending), likewise rec_*. */
    const int64_t *src_ptr, *src_order;   /* (nshots*NZ + 1,), (nshots*nsrc,) */
    const int64_t *rec_ptr, *rec_order;   /* (nshots*NZ + 1,), (nshots*nrec,) */
    /* Boundary strip: flat indices i*pnx + j into the physical grid, ascending (grid.strip_cells()). */
    const int64_t *strip_idx;
    int64_t nstrip;
} sweep_problem;

static inline int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Flush subnormals to zero (FTZ | DAZ): decaying wavefield tails are otherwise ~3x slower on x86.
 * Each OpenMP thread sets its own MXCSR and restores the value it found. */
#define SWEEP_FTZ_DAZ 0x8040u

static inline unsigned int enter_ftz(void) {
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | SWEEP_FTZ_DAZ);
    return old;
}

static inline void leave_ftz(unsigned int old) { _mm_setcsr(old); }

/* Column (or row) segments of one line of the grid, [lo, hi) being its absorption-free range (empty when
 * there is none): [0,s1) touches the outer edge (bounds-checked stencils), [s1,p1) and [p2,s4) lie
 * within r cells of an absorbing layer (C-PML terms), [p1,p2) is the branch-free centre. The cells that
 * need C-PML terms are exactly those with index < c0 or >= c1: not the edge cells on a side without a
 * layer (a free surface, abcn = 0), whose zero C-PML terms would still change the rounding (gcc fuses
 * other products into FMAs) and so the reverse-time rebuild's match with the forward. */
typedef struct { int64_t s1, p1, p2, s4, c0, c1; } segments;

static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

static segments make_segments(int64_t n, int64_t r, int64_t lo, int64_t hi) {
    segments s;
    s.s1 = r < n ? r : n;
    s.s4 = n - r > s.s1 ? n - r : s.s1;
    s.p1 = clamp64(lo + r, s.s1, s.s4);
    s.p2 = clamp64(hi - r, s.p1, s.s4);
    s.c0 = (lo == 0 && lo < hi) ? 0 : lo + r;
    s.c1 = (hi == n && lo < hi) ? n : hi - r;
    return s;
}

/* Whether the ascending array a[0..n) holds v. */
static inline int sorted_contains(const int64_t *a, int64_t n, int64_t v) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == v;
}

#define REAL float
#define SFX(name) name##_f32
#include "acoustic_impl.h"
#include "acoustic_adjoint.h"
#include "acoustic_retreat.h"
#undef REAL
#undef SFX

#define REAL double
#define SFX(name) name##_f64
#include "acoustic_impl.h"
#include "acoustic_adjoint.h"
#include "acoustic_retreat.h"
#undef REAL
#undef SFX

/* ABI version, checked by the Python loader so that a stale build is reported instead of misused. */
int sweep_abi_version(void) { return 3; }
