/* Shared declarations and helpers of the compiled kernels (see acoustic.c), included by every translation
 * unit: acoustic.c and, in a portable build, one acoustic_<path>.c per code path. */
#ifndef SWEEP_ACOUSTIC_COMMON_H
#define SWEEP_ACOUSTIC_COMMON_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#include "pool.h"

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
    int64_t image_every;             /* gradient sampling: snapshots of the steps n % image_every == 0 only */
    /* Variable density (the sweep_acoustic_vrz_* kernels; NULL for the constant-density ones): */
    const void *b;                   /* (NZ, NX) buoyancy beta */
} sweep_problem;

/* One 3-D propagation problem (acoustic3d_*.h), shared by both precisions, laid out as sweep_problem with a
 * y axis: arrays C-contiguous, (NZ, NY, NX) padded grids, every size, index and offset int64. */
typedef struct {
    int64_t nshots, nz, ny, nx;      /* padded grid (NZ, NY, NX) and shots */
    int64_t nsrc, nrec, nt;
    int64_t radius;                  /* stencil half-width r, 1..4 */
    int64_t xa, xb, ya, yb, za, zb;  /* PML-free interior along each axis: [xa, xb), [ya, yb), [za, zb) */
    double c1[4];                    /* first derivative, offsets 1..r (1/dh) */
    double c2[5];                    /* second derivative, offsets 0..r (1/dh^2) */
    double inv_dh, inv_dh2, inv_src; /* 1/dh, 1/dh^2 and the source's 1/dh^3 */
    const void *w;                   /* (NZ, NY, NX) v^2 dt^2 */
    const void *ax, *bx;             /* (NX,) C-PML coefficients */
    const void *ay, *by;             /* (NY,) */
    const void *az, *bz;             /* (NZ,) */
    const void *wavelet;             /* (nshots, nsrc, nt) */
    const int64_t *src_z, *src_y, *src_x; /* (nshots, nsrc) padded-grid indices */
    const int64_t *rec_z, *rec_y, *rec_x; /* (nshots, nrec) */
    int64_t ptop, pfront, pleft, pnz, pny, pnx; /* physical window of the padded grid (the snapshot's grid) */
    /* Sources / receivers by padded row: those of row (i, k) of shot s are src_order[src_ptr[(s*NZ+i)*NY+k] ..
     * src_ptr[(s*NZ+i)*NY+k+1]) (flat indices q = s*nsrc + m, ascending), likewise rec_*. */
    const int64_t *src_ptr, *src_order;   /* (nshots*NZ*NY + 1,), (nshots*nsrc,) */
    const int64_t *rec_ptr, *rec_order;   /* (nshots*NZ*NY + 1,), (nshots*nrec,) */
    /* Boundary strip: flat indices (i*pny + k)*pnx + j into the physical grid, ascending (grid.strip_cells()). */
    const int64_t *strip_idx;
    int64_t nstrip;
    int64_t wave;                    /* steps per thread of a wave of the forward (acoustic3d_impl.h); 0: from the cache */
    int64_t tile_y;                  /* rows per y-tile of the forward's waves; 0: from the cache */
    int64_t image_every;             /* gradient sampling: snapshots of the steps n % image_every == 0 only */
    /* The variable-density kernels (sweep_acoustic3d_vrz_*, SWEEP_VRZ): the buoyancy (NZ, NY, NX), which w then
     * multiplies as K = kappa dt^2; NULL (unused) for constant density. */
    const void *b;
} sweep_problem3d;

/* ---- helpers of every kernel template -------------------------------------------------------------- */
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define SWEEP_NOINLINE static __attribute__((noinline))
#define SWEEP_PER_RADIUS(DEF) DEF(1) DEF(2) DEF(3) DEF(4)

/* Dispatch on the stencil radius so that every inner loop has a compile-time length. */
#define SWEEP_RADIUS_DISPATCH(r, call)                                                                   \
    switch (r) {                                                                                         \
    case 1: call(1); break;                                                                              \
    case 2: call(2); break;                                                                              \
    case 3: call(3); break;                                                                              \
    default: call(4); break;                                                                             \
    }

/* The build's vector length in bytes: the edge blocks (see xlayout) run over whole vectors. */
#if defined(__AVX512F__)
#define SWEEP_VEC_BYTES 64
#elif defined(__AVX__)
#define SWEEP_VEC_BYTES 32
#else
#define SWEEP_VEC_BYTES 16
#endif

/* Zero padding either side of a padded row: the widest stencil's radius. */
#define SWEEP_XPAD 4

/* Flush subnormals to zero (FTZ | DAZ): decaying wavefield tails are otherwise ~3x slower on x86.
 * Each thread sets its own MXCSR and restores the value it found. */
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

/* n rounded up to a multiple of v (n >= 0, v > 0). */
static inline int64_t round_up(int64_t n, int64_t v) { return (n + v - 1) / v * v; }

/* Gradient sampling: only the steps n with n % every == 0 are imaged, and a call's snapshot buffer over steps
 * [n0, n1) holds theirs in order. The slot of step n in it, or -1 when step n is not imaged. */
static inline int64_t imaged_slot(int64_t n, int64_t n0, int64_t every) {
    if (every <= 1) return n - n0;
    return n % every ? -1 : n / every - (n0 + every - 1) / every;
}

/* The x-layer columns [0, *a) and [*b, nx) of a grid whose absorption-free columns are [xa, xb): the whole
 * row (*a = *b = nx) when there are none. */
static inline void layer_columns(int64_t nx, int64_t xa, int64_t xb, int64_t *a, int64_t *b) {
    *a = xa < xb ? xa : nx;
    *b = xa < xb ? xb : nx;
}

__attribute__((unused)) static segments make_segments(int64_t n, int64_t r, int64_t lo, int64_t hi) {
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

/* ---- work split and synchronisation ----------------------------------------------------------------
 *
 * A call splits its work once: with nshots >= threads, each thread takes a contiguous range of whole
 * shots and runs every step of each of them with no synchronisation at all; with fewer shots, each
 * shot's rows are cut into bands, one per thread. A band's boundary rows lie in the z-interior
 * [za + r, zb - r], so that no C-PML auxiliary (psi_z, zeta_z or their adjoints) is read across a band
 * boundary: they are zero there and never written. Across a boundary a step reads only the neighbour's
 * wavefield of the previous step, so the only dependency is "my neighbours have finished step k - 1",
 * checked with a per-thread progress counter (no barrier over all threads), waited on with the pool's
 * wait scheme (pool.h: spin a few microseconds yielding the core, then sleep).
 *
 * Every cell's arithmetic is the same whatever the split, so results do not depend on it. */
typedef struct {
    int64_t s0, s1;  /* shots [s0, s1) */
    int64_t a, b;    /* rows [a, b) of each */
    int up, down;    /* neighbour threads sharing the shot (bands above / below), or -1 */
} sweep_part;

/* Relative cost of a row outside [lo, hi] (an absorbing-layer row: C-PML terms on every cell, measured at
 * about three times an interior row): bands get equal costs, not equal row counts. The 3-D kernels cut
 * planes, whose layer cost they pass (SWEEP_LAYER_PLANE_COST in acoustic3d_impl.h). */
#define SWEEP_LAYER_ROW_COST 3

static inline int64_t row_cost(int64_t i, int64_t lo, int64_t hi, int64_t layer_cost) {
    return (i < lo || i > hi) ? layer_cost : 1;
}

/* The first row i with cost(rows < i) >= target (nz if none). */
static inline int64_t cost_cut(int64_t nz, int64_t lo, int64_t hi, int64_t layer_cost, int64_t target) {
    int64_t i = 0, c = 0;
    while (i < nz && c < target) c += row_cost(i++, lo, hi, layer_cost);
    return i;
}

/* The split of nshots shots of nz rows over nthreads threads (see above); rows [lo, hi] are where a band
 * boundary may lie, a row outside them costing layer_cost. Threads without work get an empty shot range. */
__attribute__((unused)) static void make_plan_cost(int64_t ns, int64_t nz, int nthreads, int64_t lo, int64_t hi,
                                                   int64_t layer_cost, sweep_part *plan) {
    for (int t = 0; t < nthreads; t++) {
        plan[t].s0 = plan[t].s1 = 0;
        plan[t].a = 0;
        plan[t].b = nz;
        plan[t].up = plan[t].down = -1;
    }
    if (ns >= nthreads) {
        for (int t = 0; t < nthreads; t++) {
            plan[t].s0 = t * ns / nthreads;
            plan[t].s1 = (t + 1) * ns / nthreads;
        }
        return;
    }
    int64_t total = 0;
    for (int64_t i = 0; i < nz; i++) total += row_cost(i, lo, hi, layer_cost);
    for (int64_t s = 0; s < ns; s++) {
        const int t0 = (int)(s * nthreads / ns), t1 = (int)((s + 1) * nthreads / ns);
        int m = t1 - t0 > 64 ? 64 : t1 - t0;
        int64_t cut[65];
        for (;;) { /* m bands with strictly increasing boundaries inside [lo, hi], or fewer */
            int ok = 1;
            cut[0] = 0;
            cut[m] = nz;
            for (int k = 1; k < m; k++) {
                cut[k] = clamp64(cost_cut(nz, lo, hi, layer_cost, k * total / m), lo, hi);
                if (cut[k] <= cut[k - 1] || lo > hi) ok = 0;
            }
            if (ok || m == 1) break;
            m--;
        }
        for (int k = 0; k < m; k++) {
            sweep_part *p = plan + t0 + k;
            p->s0 = s;
            p->s1 = s + 1;
            p->a = cut[k];
            p->b = cut[k + 1];
            p->up = k > 0 ? t0 + k - 1 : -1;
            p->down = k + 1 < m ? t0 + k + 1 : -1;
        }
    }
}

__attribute__((unused)) static void make_plan(int64_t ns, int64_t nz, int nthreads, int64_t lo, int64_t hi, sweep_part *plan) {
    make_plan_cost(ns, nz, nthreads, lo, hi, SWEEP_LAYER_ROW_COST, plan);
}

/* Wait for the neighbours of `part` to have finished v steps. */
static inline void wait_neighbours(sweep_word *prog, const sweep_part *part, int v, int64_t budget) {
    if (part->up >= 0) sweep_word_wait(prog + part->up, v, budget);
    if (part->down >= 0) sweep_word_wait(prog + part->down, v, budget);
}

/* Plan and progress counters of one call (free with free()). */
typedef struct {
    sweep_part *plan;
    sweep_word *prog; /* per thread: steps finished in this call */
    int nthreads;
} sweep_sched;

__attribute__((unused)) static int sched_alloc_cost(sweep_sched *s, int64_t ns, int64_t nz, int nthreads, int64_t lo,
                                                    int64_t hi, int64_t layer_cost) {
    s->plan = (sweep_part *)malloc((size_t)nthreads * sizeof(sweep_part));
    s->prog = (sweep_word *)aligned_alloc(64, (size_t)nthreads * sizeof(sweep_word));
    if (!s->plan || !s->prog || sweep_alloc_fails()) {
        free(s->plan);
        free(s->prog);
        return 1;
    }
    memset(s->prog, 0, (size_t)nthreads * sizeof(sweep_word));
    s->nthreads = nthreads;
    make_plan_cost(ns, nz, nthreads, lo, hi, layer_cost, s->plan);
    return 0;
}

__attribute__((unused)) static int sched_alloc(sweep_sched *s, int64_t ns, int64_t nz, int nthreads, int64_t lo, int64_t hi) {
    return sched_alloc_cost(s, ns, nz, nthreads, lo, hi, SWEEP_LAYER_ROW_COST);
}

__attribute__((unused)) static void sched_free(sweep_sched *s) {
    free(s->plan);
    free(s->prog);
}

#endif
