/* Template body of the 3-D acoustic kernels' forward, included by acoustic_instance.h once per precision
 * (REAL, SFX as for the 2-D templates, which it does not use) without FMA contraction, after the shared
 * pieces (acoustic3d_common.h); the adjoint (acoustic3d_adjoint.h) and the reverse-time rebuild
 * (acoustic3d_retreat.h) follow it.
 *
 * One step on the padded grid (fields zero outside it), exactly as the eager stepper, for a = x, y, z:
 *   psi_a' = b_a psi_a + a_a D1a u                        (a-layer cells; zero elsewhere)
 *   L_a    = D2a u + D1a psi_a'
 *   zeta_a' = b_a zeta_a + a_a L_a                        (a-layer cells)
 *   S = L_x + zeta_x' + L_y + zeta_y' + L_z + zeta_z' (+ f[n] / dh^3 at each source cell, in a fixed order)
 *   u_next = 2 u - u_prev + w S
 * State (8, nshots, NZ, NY, NX): u_prev, u, psi_x, psi_y, psi_z, zeta_x, zeta_y, zeta_z. The snapshot of
 * step n is S on the physical grid (nshots, nz, ny, nx). Receivers record u at step n before the update.
 * The auxiliaries are only touched where they can be nonzero: psi_a' on a's layer cells, the D1a psi_a' and
 * zeta_a terms on the rows (DOY), planes (DOZ) and column spans (DOX) within r cells of a's layers (none on a
 * side without a layer, see `segments`); elsewhere a branch-free loop with no C-PML term. Compiled without
 * FMA contraction, every operation rounds as the eager stepper's does: the forward equals it bit for bit,
 * and C-PML terms that vanish leave a cell's result unchanged, so spans are rounded to whole vectors freely
 * (c3_x) and the rebuild's interior S is the forward's.
 *
 * Layout, chosen by measurement (2-core AMD Zen 4 VM shared with other jobs, float32, order 4, 100^3 cells
 * with 20 absorbing cells on every face = 140^3 padded, 1 shot; ns per padded cell-step, best of interleaved
 * repeats; memory ~20 GB/s for both cores together):
 *   - a plain z sweep of whole planes, one step at a time: ~5.5 (1 thread); y-tiles of 16 / 48 rows did not
 *     help (5.7, 6.4): the 2r + 1 planes of u a z tap reads stay in L2 either way, but the 8 fields of the
 *     layers (~100 MB a step) stream from memory every step;
 *   - waves: a wavefront of G steps through z, step n + t on plane p - 2r t, so each plane's fields are used
 *     G times within 2r G planes, from L3 instead of memory: G = 1, 2, 4, 6 gave 4.0, 3.3, 3.1, 3.6; y-tiles
 *     skewed 2r rows per step within a wave (3.5-D blocking, for L2 reuse) gave 2.8 (16 rows), 2.7 (32) against
 *     2.5 for whole planes: a row of 140 cells is too short for the extra tasks to pay;
 *   - then per-row work (instruction counts under callgrind): whole-vector C-PML spans instead of the 2-D
 *     kernels' scratch blocks, one function per row, 256-bit vectors (Zen 4 splits 512-bit ones and an
 *     unaligned 512-bit load always crosses a line): 2.0 on 1 thread; 1.1-1.3 on 2 threads (a team: below).
 *   Deepwave 0.1.0's 3-D forward on this shot: 4.7-5.4 s (3.4-3.9 ns) on the quiet machine, against ~1.8 s here
 *   (0.36x); beside other jobs (load 2-3) 17.2 s against 3.0 s (0.18x, python -m sweep.bench.speed --sections
 *   3d) and 14-23 s against 2.7-3.2 s (0.14x). The 2-D kernel in the same runs: 0.7 ns (1 thread).
 * So: G = SWEEP_WAVE_MAX steps per thread per wave (fewer when a wave's planes would not fit SWEEP_WAVE_BYTES
 * of L3), whole planes (y-tiles only when a tile's reuse distance would exceed SWEEP_TILE_BYTES), x innermost
 * and contiguous (vectorised: check with -fopt-info-vec). Software prefetch of the next rows' fields and
 * explicit FMAs in the stencil sums measured no different (within 3%).
 *
 * Parallelism (see "the forward's schedule" below): whole shots per thread when nshots >= threads; otherwise
 * a team of threads per shot pipelines its steps through the waves with per-step progress counters (pool.h
 * wait scheme). Every cell's arithmetic is the same whatever the split or the wave, and no sum is split
 * across threads, so results do not depend on them. The adjoint and the rebuild split shots or bands of
 * z-planes as in 2-D (acoustic_common.h).
 *
 * VRZ (SWEEP_VRZ, see acoustic3d_common.h): the same schedule and rows, with the buoyancy's rows beside u's
 * (c3_beta), beta in psi' and the source, w = K; the snapshot (S_n, u_n), u_n copied from the row a task reads.
 */

/* ---- forward ------------------------------------------------------------------------------------- */

/* p <- b p + a D1(t) / dh on [0, nx): psi_y' or psi_z' of one row, in place (t: the u rows across it; VRZ: beta
 * the buoyancy's row). */
ALWAYS_INLINE void SFX(fw3_psi_span)(const SFX(k3) *K_, const REAL *const *t_, REAL *restrict p, REAL a, REAL b,
                                     const REAL *restrict beta, const int R) {
    const SFX(k3) Kl = *K_, *const K = &Kl; /* local copies: loop invariants kept in registers */
    const REAL *ta[9];
    for (int q = -R; q <= R; q++) ta[R + q] = t_[q];
    const REAL *const *const t = ta + R;
    const REAL inv_dh = K->inv_dh;
    for (int64_t j = 0; j < K->nx; j++)
        p[j] = SFX(c3_psi)(b, p[j], a, SFX(c3_d1t)(K->c1, t, j, R), inv_dh, C3_VRZ ? beta[j] : 0);
}

/* psi_x' = b_x psi_x + a_x D1x u on [j0, j1): x taps from the padded row ux; psi_x' over psi_x (the row px) and
 * into the padded row pxn (VRZ: beta the buoyancy's row). */
ALWAYS_INLINE void SFX(fw3_psi_x)(const SFX(k3) *K_, const REAL *restrict ux, REAL *restrict px, REAL *restrict pxn,
                                  const REAL *restrict beta, int64_t j0, int64_t j1, const int R) {
    const SFX(k3) Kl = *K_, *const K = &Kl;
    const REAL inv_dh = K->inv_dh;
    const REAL *restrict ax = K->ax, *restrict bx = K->bx;
    for (int64_t j = j0; j < j1; j++) {
        const REAL p = SFX(c3_psi)(bx[j], px[j], ax[j], SFX(c3_d1x)(K->c1, ux, j, R), inv_dh, C3_VRZ ? beta[j] : 0);
        px[j] = p;
        pxn[j] = p;
    }
}

/* A row's inputs and outputs: x taps from ux (a zero-padded copy of the row), psi_x' from pxn (likewise), y and z
 * taps from the tables (pointing at their centre); u_prev and the zetas updated in place; S into srow. VRZ: the
 * buoyancy's rows B. */
typedef struct {
    const REAL *ux, *pxn, *w;
    const REAL *const *uy, *const *uz, *const *py, *const *pz;
    const REAL *bx, *ly, *lz; /* VRZ: the buoyancy's padded row; Bdiv_y u / dh^2, Bdiv_z u / dh^2 (c3_bdiv_yz) */
    REAL *up, *zx, *zy, *zz, *srow;
    REAL by, ay, bz, az;
} SFX(c3_io);

/* u_next (and zeta') of the cells [j0, j1) of a row. */
ALWAYS_INLINE void SFX(fw3_span_r)(const SFX(k3) *K, const SFX(c3_io) *io, int64_t j0, int64_t j1, const int DOX,
                                   const int DOY, const int DOZ, const int R) {
    const REAL *restrict ux = io->ux, *restrict pxn = io->pxn, *restrict w = io->w;
    REAL *restrict up = io->up, *restrict zx = io->zx, *restrict zy = io->zy, *restrict zz = io->zz;
    REAL *restrict srow = io->srow;
    const REAL by = io->by, ay = io->ay, bz = io->bz, az = io->az;
    const REAL *uy_a[9], *uz_a[9], *py_a[9], *pz_a[9];
    for (int q = -R; q <= R; q++) {
        uy_a[R + q] = io->uy[q];
        uz_a[R + q] = io->uz[q];
        py_a[R + q] = DOY ? io->py[q] : io->uy[q];
        pz_a[R + q] = DOZ ? io->pz[q] : io->uz[q];
    }
    const REAL *const *const uy = uy_a + R, *const *const uz = uz_a + R;
    const REAL *const *const py = py_a + R, *const *const pz = pz_a + R;
    const REAL *restrict bx = io->bx, *restrict ly = io->ly, *restrict lz = io->lz;
#pragma GCC ivdep
    for (int64_t j = j0; j < j1; j++) {
        REAL zxn = 0, zyn = 0, zzn = 0;
        const REAL s = SFX(c3_rhs)(K, ux, uy, uz, bx, ly, lz, pxn, py, pz, zx, zy, zz, by, ay, bz, az, j, &zxn,
                                   &zyn, &zzn, DOX, DOY, DOZ, R);
        if (DOX) zx[j] = zxn;
        if (DOY) zy[j] = zyn;
        if (DOZ) zz[j] = zzn;
        srow[j] = s;
        up[j] = SFX(c3_leapfrog)(ux[j], up[j], w[j], s);
    }
}

/* The columns of a row: psi_x' on [0, pl) and [pr, nx) (the x layers, rounded to whole vectors), the C-PML x terms
 * on [0, a) and [b, nx) (every cell within r of an x layer, likewise), none on [a, b). The kernels are compiled
 * without FMA contraction, so a cell outside the layers that gets the C-PML terms (exact zeros there) computes
 * exactly what it would without them, and the spans may be rounded to whole vectors freely. */
typedef struct {
    int64_t pl, pr, a, b;
} SFX(c3_x);

static SFX(c3_x) SFX(c3_xsplit)(int64_t nx, int64_t xa, int64_t xb, const segments *cs) {
    const int64_t v = SWEEP_VEC3_BYTES / (int64_t)sizeof(REAL);
    int64_t la, lb;
    layer_columns(nx, xa, xb, &la, &lb);
    SFX(c3_x) X;
    X.pl = clamp64(round_up(la, v), 0, nx);
    X.pr = clamp64(nx - round_up(nx - lb, v), 0, nx);
    if (X.pl > X.pr) X.pl = X.pr = nx; /* one span over the row */
    X.a = clamp64(round_up(cs->c0, v), 0, nx);
    X.b = clamp64(nx - round_up(nx - cs->c1, v), 0, nx);
    if (X.a > X.b) X.a = X.b = nx;
    return X;
}

/* u_prev <- u_next on row k of plane i (psi_x and the zetas updated in the layers; psi_y of the rows k-r..k+r and
 * psi_z of the planes i-r..i+r already are); S into S->srow. */
ALWAYS_INLINE void SFX(fw3_row_r)(const SFX(k3) *K_, const SFX(c3_fields) *F, int64_t i, int64_t k,
                                  const SFX(c3_x) *X_, const SFX(c3_scratch) *S, const int DOY, const int DOZ,
                                  const int R) {
    const SFX(k3) Kl = *K_, *const K = &Kl; /* local copies: loop invariants kept in registers */
    const SFX(c3_x) X = *X_;
    const int64_t nx = K->nx, c = i * K->plane + k * nx;
    const REAL *uy_a[9], *uz_a[9], *py_a[9], *pz_a[9];
    const REAL **uy = uy_a + R, **uz = uz_a + R, **py = py_a + R, **pz = pz_a + R;
    SFX(c3_taps_y)(K, F->u, i, k, uy, R);
    SFX(c3_taps_z)(K, F->u, i, k, uz, R);
    if (DOY) SFX(c3_taps_y)(K, F->py, i, k, py, R);
    if (DOZ) SFX(c3_taps_z)(K, F->pz, i, k, pz, R);
    REAL *const ux = S->ub + SWEEP_XPAD, *const pxn = S->pb + SWEEP_XPAD;
    memcpy(ux, F->u + c, (size_t)nx * sizeof(REAL));
    SFX(c3_beta) B;
    if (C3_VRZ) {
        SFX(c3_beta_taps)(K, i, k, S->bb, &B, R);
        SFX(c3_bdiv_yz)(K, uy, uz, &B, S->ly, S->lz, R);
    }
    const REAL *const beta = C3_VRZ ? K->b + c : 0;
    SFX(fw3_psi_x)(K, ux, F->px + c, pxn, beta, 0, X.pl, R);
    SFX(fw3_psi_x)(K, ux, F->px + c, pxn, beta, X.pr, nx, R);
    const SFX(c3_io) io = {ux, pxn, K->w + c, uy, uz, py, pz, C3_VRZ ? B.x : 0, S->ly, S->lz, F->up + c, F->zx + c, F->zy + c, F->zz + c,
                           S->srow, K->by[k], K->ay[k], K->bz[i], K->az[i]};
    if (C3_VRZ && k + 2 < K->ny) {
        /* VRZ: prefetch the x-layer spans of psi_x and zeta_x two rows ahead. They are short runs at both ends of
         * each row, which the hardware prefetchers do not follow, and their loads stalled about a quarter of a
         * row's time (perf), more than the constant-density rows' shorter loops could hide. */
        const int64_t cn = c + 2 * nx, line = 64 / (int64_t)sizeof(REAL);
        for (int64_t j = 0; j < X.a; j += line) {
            __builtin_prefetch(F->px + cn + j, 1, 3);
            __builtin_prefetch(F->zx + cn + j, 1, 3);
        }
        for (int64_t j = X.b; j < nx; j += line) {
            __builtin_prefetch(F->px + cn + j, 1, 3);
            __builtin_prefetch(F->zx + cn + j, 1, 3);
        }
        __builtin_prefetch(F->px + cn + nx - 1, 1, 3);
        __builtin_prefetch(F->zx + cn + nx - 1, 1, 3);
    }
    SFX(fw3_span_r)(K, &io, 0, X.a, 1, DOY, DOZ, R);
    SFX(fw3_span_r)(K, &io, X.a, X.b, 0, DOY, DOZ, R);
    SFX(fw3_span_r)(K, &io, X.b, nx, 1, DOY, DOZ, R);
}

/* One out-of-line row function per (radius, DOY, DOZ) (every inner loop with compile-time constants, no call per
 * span), and one psi row function per radius. */
#define DEF2(RR, Y, Z)                                                                                     \
    SWEEP_NOINLINE void SFX(fw3_row_##RR##Y##Z)(const SFX(k3) *K, const SFX(c3_fields) *F, int64_t i, int64_t k, \
                                                const SFX(c3_x) *X, const SFX(c3_scratch) *S) {               \
        SFX(fw3_row_r)(K, F, i, k, X, S, Y, Z, RR);                                                           \
    }
#define DEF(RR)                                                                                            \
    DEF2(RR, 0, 0) DEF2(RR, 0, 1) DEF2(RR, 1, 0) DEF2(RR, 1, 1)                                            \
    SWEEP_NOINLINE void SFX(fw3_psi_row##RR)(const SFX(k3) *K, const REAL *const *t, REAL *p, REAL a, REAL b, \
                                             const REAL *beta) {                                               \
        SFX(fw3_psi_span)(K, t, p, a, b, beta, RR);                                                          \
    }
SWEEP_PER_RADIUS(DEF)
#undef DEF
#undef DEF2

static void SFX(fw3_psi_row)(const SFX(k3) *K, int r, const REAL *const *t, REAL *p, REAL a, REAL b,
                             const REAL *beta) {
#define CALL(RR) SFX(fw3_psi_row##RR)(K, t, p, a, b, beta)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

static void SFX(fw3_row)(const SFX(k3) *K, int r, const SFX(c3_fields) *F, int64_t i, int64_t k, int doy, int doz,
                         const SFX(c3_x) *X, const SFX(c3_scratch) *S) {
    const int f = 2 * (doy != 0) + (doz != 0);
#define ROW(RR)                                                                                            \
    do {                                                                                                   \
        switch (f) {                                                                                       \
        case 0: SFX(fw3_row_##RR##00)(K, F, i, k, X, S); break;                                        \
        case 1: SFX(fw3_row_##RR##01)(K, F, i, k, X, S); break;                                        \
        case 2: SFX(fw3_row_##RR##10)(K, F, i, k, X, S); break;                                        \
        default: SFX(fw3_row_##RR##11)(K, F, i, k, X, S); break;                                       \
        }                                                                                                  \
    } while (0)
    SWEEP_RADIUS_DISPATCH(r, ROW)
#undef ROW
}

/* psi_z' on rows [y0, y1) of plane m when it is a z-layer plane. */
static void SFX(fw3_psi_z_plane)(const SFX(k3) *K, int r, const SFX(c3_fields) *F, int64_t m, int64_t y0, int64_t y1,
                                 int64_t za, int64_t zb) {
    if (m >= za && m < zb) return;
    const REAL *t_a[9], **t = t_a + 4;
    for (int64_t k = y0; k < y1; k++) {
        SFX(c3_taps_z)(K, F->u, m, k, t, r);
        SFX(fw3_psi_row)(K, r, t, F->pz + m * K->plane + k * K->nx, K->az[m], K->bz[m],
                         C3_VRZ ? K->b + m * K->plane + k * K->nx : 0);
    }
}

/* psi_y' on the y-layer rows among [y0, y1) of plane i. */
static void SFX(fw3_psi_y_rows)(const SFX(k3) *K, int r, const SFX(c3_fields) *F, int64_t i, int64_t y0, int64_t y1,
                                int64_t ya, int64_t yb) {
    const REAL *t_a[9], **t = t_a + 4;
    for (int64_t k = y0; k < y1; k++) {
        if (k >= ya && k < yb) continue;
        SFX(c3_taps_y)(K, F->u, i, k, t, r);
        SFX(fw3_psi_row)(K, r, t, F->py + i * K->plane + k * K->nx, K->ay[k], K->by[k],
                         C3_VRZ ? K->b + i * K->plane + k * K->nx : 0);
    }
}

/* Strip cells by row: those of row m are sidx[sptr[m] .. sptr[m+1]) (rows of ncol cells; sptr has nrows + 1
 * entries). */
static int64_t *SFX(c3_strip_rows)(const int64_t *sidx, int64_t nstrip, int64_t nrows, int64_t ncol) {
    int64_t *sptr = (int64_t *)malloc((size_t)(nrows + 1) * sizeof(int64_t));
    if (!sptr) return 0;
    for (int64_t m = 0, t = 0; m <= nrows; m++) {
        while (t < nstrip && sidx[t] < m * ncol) t++;
        sptr[m] = t;
    }
    return sptr;
}

/* ---- the forward's schedule: waves ---------------------------------------------------------------------
 *
 * A task (n, i, [ya, yb)) is step n on rows [ya, yb) of plane i: psi_z' of those rows of plane i + r (and of
 * planes 0..r-1 with plane 0), psi_y' of the y-layer rows among [ya + r, yb + r) (the task of the rows before
 * did the rest), then the rows. It reads u_n on planes i - r .. i + 2r and rows ya - r .. yb + 2r, and
 * overwrites u_{n-1} and psi_z on plane i + r of its own rows, so it may run once step n - 1 has run on the
 * planes up to i + 2r of rows up to yb + 2r: then u_n is there, and step n-1 has read all it reads of what the
 * task overwrites. A wave of G steps runs, for each y-tile (rows [tH - 2r s, (t+1)H - 2r s) at step n0 + s:
 * shifted 2r rows per step, whole planes by default) and p = 0, 1, ..., step n + t on plane p - t D (D = 2r)
 * for t = 0..G-1: each task after the ones it needs, and the G steps touching each plane within some G D
 * planes, so that the fields come from memory about once per wave instead of once per step.
 *
 * Work split: with nshots >= threads, each thread takes whole shots and runs their waves with no
 * synchronisation. Otherwise each shot has a team of threads that pipeline its steps: thread k of a team of m
 * runs steps [w + kG, w + (k+1)G) of each wave of m G steps starting at w, sweeping the planes D behind its
 * predecessor (the owner of the step before its first), whose progress on that step it waits for (pool.h
 * wait scheme): per-step progress counters (tile t, plane i: t NZ + i + 1), no barrier. Bands of planes, as
 * the adjoint and the rebuild use, would serialise with waves: a band's step n + 1 at its edge needs its
 * neighbour's step n there, which the neighbour's wave reaches only at its end. Every cell's arithmetic is the
 * same whatever the split, the tiles and the wave length, so results do not depend on them. */

/* Bytes of the planes a wave of one thread keeps in cache ((G D + 2r + 1) planes of about four fields). */
#ifndef SWEEP_WAVE_BYTES
#define SWEEP_WAVE_BYTES (16 * 1024 * 1024)
#endif
/* Most steps of a thread's wave. */
#define SWEEP_WAVE_MAX 4

/* What every thread of one forward call reads (see sweep_acoustic3d_forward). */
typedef struct {
    const sweep_problem3d *P;
    const SFX(k3) *K;
    const segments *ys, *zs;
    const SFX(c3_x) *X;
    const SFX(c3_scratch) *T;
    REAL *s0, *s1, *px, *py, *pz, *zx, *zy, *zz, *record, *keep, *strips;
    const int64_t *sptr;
    int64_t n0, n1, group; /* steps [n0, n1); a thread's steps per wave */
    int64_t tile;          /* rows per y-tile */
    int team;              /* threads per shot (1: whole shots per thread) */
    int nthreads;
    sweep_word *prog;      /* team mode: planes done of each step, per shot team: prog[team * K + n - n0] */
} SFX(fw3_job);

/* The task (n, i, [ya, yb)) of shot sh: step n on rows [ya, yb) of plane i (see above). */
static void SFX(fw3_task)(const SFX(fw3_job) *J, const SFX(c3_scratch) *T, int64_t sh, int64_t n, int64_t i, int64_t ya,
                          int64_t yb) {
    const sweep_problem3d *P = J->P;
    const SFX(k3) *K = J->K;
    const int64_t NZ = P->nz, NY = P->ny, NX = P->nx, plane = NY * NX, o = sh * NZ * plane, nt = P->nt;
    const int64_t nrec = P->nrec, top = P->ptop, front = P->pfront, left = P->pleft;
    const int64_t pnz = P->pnz, pny = P->pny, pnx = P->pnx, pvol = pnz * pny * pnx, nstrip = P->nstrip;
    const int r = (int)P->radius;
    /* u_next overwrites u_prev, so the two wavefields swap slots every step. */
    REAL *const up = ((n - J->n0) & 1) ? J->s1 : J->s0;
    const REAL *const u = ((n - J->n0) & 1) ? J->s0 : J->s1;
    const REAL *const wav = (const REAL *)P->wavelet, *const w = K->w;
    REAL *const kp = SFX(slot)(J->keep, imaged_slot(n, J->n0, P->image_every), C3_SNAPS * P->nshots * pvol);
    REAL *const sp = J->strips ? J->strips + (n - J->n0) * P->nshots * nstrip : 0;
    REAL *const record = J->record;
    const SFX(c3_fields) F = {u + o, up + o, J->px + o, J->py + o, J->pz + o, J->zx + o, J->zy + o, J->zz + o};
    REAL *const srow = T->srow, *const uold = T->uold;
    /* psi_y' of the rows this task first needs: [ya - r, ya + r) were updated by the task of the rows before. */
    const int64_t ylo = ya == 0 ? 0 : (ya + r < NY ? ya + r : NY), yhi = yb == NY ? NY : (yb + r < NY ? yb + r : NY);
    if (i == 0)
        for (int64_t m = 0; m < r && m < NZ; m++) SFX(fw3_psi_z_plane)(K, r, &F, m, ya, yb, P->za, P->zb);
    if (i + r < NZ) SFX(fw3_psi_z_plane)(K, r, &F, i + r, ya, yb, P->za, P->zb);
    SFX(fw3_psi_y_rows)(K, r, &F, i, ylo, yhi, P->ya, P->yb);
    const int doz = i < J->zs->c0 || i >= J->zs->c1;
    const int pin = i >= top && i < top + pnz;
    for (int64_t k = ya; k < yb; k++) {
        const int doy = k < J->ys->c0 || k >= J->ys->c1;
        const int64_t row = (sh * NZ + i) * NY + k, c = i * plane + k * NX;
        const int64_t q0 = P->src_ptr[row], q1 = P->src_ptr[row + 1];
        const int phys = pin && k >= front && k < front + pny;
        const int64_t prow = (i - top) * pny + (k - front); /* physical row (when phys) */
        if (sp && phys) /* this step's strip: u_prev on the row's strip cells, before the row overwrites it */
            for (int64_t t = J->sptr[prow]; t < J->sptr[prow + 1]; t++)
                sp[sh * nstrip + t] = F.up[c + left + (P->strip_idx[t] - prow * pnx)];
        if (q0 < q1) memcpy(uold, F.up + c, (size_t)NX * sizeof(REAL));
        SFX(fw3_row)(K, r, &F, i, k, doy, doz, J->X, T);
        if (q0 < q1) {
            /* Sources in a fixed order (several may share a cell): S += f / dh^3 (VRZ: beta f / dh^3), then redo
             * u_next there from the saved u_prev. */
            for (int64_t t = q0; t < q1; t++) {
                const int64_t q = P->src_order[t], j = P->src_x[q];
                if (C3_VRZ)
                    srow[j] += K->b[c + j] * wav[q * nt + n] * K->inv_src;
                else
                    srow[j] += wav[q * nt + n] * K->inv_src;
            }
            for (int64_t t = q0; t < q1; t++) {
                const int64_t j = P->src_x[P->src_order[t]];
                F.up[c + j] = SFX(c3_leapfrog)(F.u[c + j], uold[j], w[c + j], srow[j]);
            }
        }
        if (kp && phys) memcpy(kp + sh * pvol + prow * pnx, srow + left, (size_t)pnx * sizeof(REAL));
        if (C3_VRZ && kp && phys) /* u_n, which this step only reads */
            memcpy(kp + (P->nshots + sh) * pvol + prow * pnx, F.u + c + left, (size_t)pnx * sizeof(REAL));
        if (record && n + 1 < J->n1)
            for (int64_t t = P->rec_ptr[row]; t < P->rec_ptr[row + 1]; t++) {
                const int64_t q = P->rec_order[t];
                record[(sh * nt + n + 1) * nrec + q % nrec] = F.up[c + P->rec_x[q]];
            }
    }
}

/* Exchange planes [a, b) of the two wavefield slots of one shot. */
static void SFX(c3_swap_planes)(REAL *s0, REAL *s1, int64_t a, int64_t b, int64_t plane) {
    REAL *restrict x = s0 + a * plane, *restrict y = s1 + a * plane;
    for (int64_t c = 0; c < (b - a) * plane; c++) {
        const REAL t = x[c];
        x[c] = y[c];
        y[c] = t;
    }
}

/* Rows [*a, *b) of tile t at step n: the tiles of H rows shifted up by 2r rows per step (see above). */
static inline void SFX(fw3_rows)(const SFX(fw3_job) *J, int64_t t, int64_t n, int64_t *a, int64_t *b) {
    const int64_t s = 2 * J->P->radius * (n - J->n0), H = J->tile, NY = J->P->ny;
    *a = clamp64(t * H - s, 0, NY);
    *b = clamp64((t + 1) * H - s, 0, NY);
}

/* Runs steps [sa, sb) of shot sh as one wave (see above); in a team, waits for the owner of step sa - 1 when
 * that is another thread, and publishes the progress of step sb - 1 (tile t, plane i: t NZ + i + 1). */
static void SFX(fw3_wave)(const SFX(fw3_job) *J, const SFX(c3_scratch) *T, sweep_word *prog, int64_t sh, int64_t sa,
                          int64_t sb, int wait_first, int post_last, int64_t budget) {
    const int64_t NZ = J->P->nz, NY = J->P->ny, D = 2 * J->P->radius, G = sb - sa, H = J->tile;
    const int64_t t0 = D * (sa - J->n0) / H, t1 = (NY - 1 + D * (sb - 1 - J->n0)) / H;
    for (int64_t tile = t0; tile <= t1; tile++)
        for (int64_t p = 0; p < NZ + (G - 1) * D; p++)
            for (int64_t t = 0; t < G; t++) {
                const int64_t i = p - t * D, n = sa + t;
                if (i < 0 || i >= NZ) continue;
                if (t == 0 && wait_first) { /* (n - 1, tile, i + D) done; all of it beyond its last tile */
                    const int64_t last = (NY - 1 + D * (n - 1 - J->n0)) / H;
                    const int64_t need = tile > last ? last * NZ + NZ : tile * NZ + (i + D < NZ ? i + D : NZ - 1) + 1;
                    sweep_word_wait(prog + (n - 1 - J->n0), (int)need, budget);
                }
                int64_t a, b;
                SFX(fw3_rows)(J, tile, n, &a, &b);
                if (a < b) SFX(fw3_task)(J, T, sh, n, i, a, b);
                if (t == G - 1 && post_last) sweep_word_post(prog + (n - J->n0), (int)(tile * NZ + i + 1));
            }
}

/* Thread `me`'s part of a forward call. */
static void SFX(fw3_thread)(void *ctx, int me) {
    const SFX(fw3_job) *J = (const SFX(fw3_job) *)ctx;
    const sweep_problem3d *P = J->P;
    const int64_t ns = P->nshots, NZ = P->nz, plane = P->ny * P->nx, vol = NZ * plane;
    const int64_t n0 = J->n0, n1 = J->n1, K = n1 - n0, G = J->group, budget = sweep_spin_ticks();
    const int m = J->team;
    const unsigned int mxcsr = enter_ftz();
    if (m == 1) { /* whole shots: [me * ns / threads, (me + 1) * ns / threads) */
        for (int64_t sh = me * ns / J->nthreads; sh < (me + 1) * ns / J->nthreads; sh++) {
            for (int64_t w = n0; w < n1; w += G) SFX(fw3_wave)(J, J->T + me, 0, sh, w, w + G < n1 ? w + G : n1, 0, 0, 0);
            if (K & 1) SFX(c3_swap_planes)(J->s0 + sh * vol, J->s1 + sh * vol, 0, NZ, plane);
        }
    } else if (me / m < ns) { /* thread k of the team of shot me / m */
        const int64_t sh = me / m, k = me % m;
        sweep_word *const prog = J->prog + sh * K;
        for (int64_t w = n0 + k * G; w < n1; w += m * G) {
            const int64_t sb = w + G < n1 ? w + G : n1;
            SFX(fw3_wave)(J, J->T + me, prog, sh, w, sb, w > n0, 1, budget);
        }
        /* An odd number of steps left u in slot 0: swap back to (u_prev, u) once the last step is done (and so,
         * by its dependencies, every step), each thread its share of planes. */
        if (K & 1) {
            const int64_t last = (P->ny - 1 + 2 * P->radius * (K - 1)) / J->tile; /* the last step's last tile */
            sweep_word_wait(prog + K - 1, (int)(last * NZ + NZ), budget);
            SFX(c3_swap_planes)(J->s0 + sh * vol, J->s1 + sh * vol, k * NZ / m, (k + 1) * NZ / m, plane);
        }
    }
    leave_ftz(mxcsr);
}

/* A thread's steps per wave: P->wave, or as many (up to SWEEP_WAVE_MAX) as keep the planes of a team's wave (its
 * m G steps, 2r planes apart) within SWEEP_WAVE_BYTES, and give every thread of a team steps in a call of K. */
static int64_t SFX(c3_group)(const sweep_problem3d *P, int team, int64_t K) {
    if (P->wave > 0) return P->wave;
    const int64_t r = P->radius, per = 4 * P->ny * P->nx * (int64_t)sizeof(REAL);
    int64_t g = (SWEEP_WAVE_BYTES / per - 2 * r - 1) / (2 * r * team);
    if (g > SWEEP_WAVE_MAX) g = SWEEP_WAVE_MAX;
    if (team > 1 && g > K / team) g = K / team;
    return g < 1 ? 1 : g;
}

/* Rows per y-tile: P->tile_y, or as many as keep the reuse distance of a wave (2r planes of the tile's rows, their
 * halo and the rows its skew adds, of about five fields) within SWEEP_TILE_BYTES. */
static int64_t SFX(c3_tile)(const sweep_problem3d *P) {
    if (P->tile_y > 0) return P->tile_y;
    const int64_t r = P->radius, row = 5 * 2 * r * P->nx * (int64_t)sizeof(REAL);
    int64_t h = SWEEP_TILE_BYTES / row - 2 * r * SWEEP_WAVE_MAX;
    if (h < 8) h = 8;
    return h;
}

/* Steps n0 -> n1 in place on `state` (8, nshots, NZ, NY, NX). `record` (nshots, nt, nrec), if not NULL, gets
 * u at the receivers at the start of each step; `keep` (n1 - n0, nshots, nz, ny, nx), if not NULL, each step's
 * snapshot S on the physical grid (VRZ: (n1 - n0, 2, nshots, nz, ny, nx), (S, u_n)); `strips` (n1 - n0, nshots, nstrip), if not NULL, u_prev at the start of each
 * step on the strip cells. `stats`, if not NULL, gets what the run measured (pool.h). Returns 0, or 1 if out of
 * memory (nothing is then changed). */
int SWEEP3_NAME(forward)(const sweep_problem3d *P, REAL *state, int64_t n0, int64_t n1, REAL *record,
                                  REAL *keep, REAL *strips, int nthreads, sweep_run_stats *stats) {
    SFX(k3) K;
    SFX(k3_load)(P, &K);
    const int64_t ns = P->nshots, NZ = P->nz, NY = P->ny, NX = P->nx, vol = NZ * NY * NX, fs = ns * vol;
    const int r = (int)P->radius;
    const segments zs = make_segments(NZ, r, P->za, P->zb), ys = make_segments(NY, r, P->ya, P->yb);
    const segments cs = make_segments(NX, r, P->xa, P->xb);
    const SFX(c3_x) X = SFX(c3_xsplit)(NX, P->xa, P->xb, &cs);
    const int64_t nrec = P->nrec, nt = P->nt;
    if (n1 <= n0) return 0;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > SWEEP_MAX_THREADS) nthreads = SWEEP_MAX_THREADS;
    /* Whole shots per thread, or a team per shot (the threads beyond ns teams idle). */
    const int team = ns >= nthreads ? 1 : (int)(nthreads / ns);
    SFX(c3_scratch) *T = SFX(c3_alloc_scratch)(nthreads, NX);
    REAL *zero = (REAL *)calloc((size_t)NX, sizeof(REAL));
    int64_t *sptr = strips ? SFX(c3_strip_rows)(P->strip_idx, P->nstrip, P->pnz * P->pny, P->pnx) : 0;
    const size_t nprog = team > 1 ? (size_t)(ns * (n1 - n0)) : 1;
    sweep_word *prog = (sweep_word *)aligned_alloc(64, nprog * sizeof(sweep_word));
    SFX(fw3_job) J = {P, &K, &ys, &zs, &X, T, state, state + fs, state + 2 * fs, state + 3 * fs,
                      state + 4 * fs, state + 5 * fs, state + 6 * fs, state + 7 * fs, record, keep, strips, sptr,
                      n0, n1, SFX(c3_group)(P, team, n1 - n0), SFX(c3_tile)(P), team, nthreads, prog};
    int status = !T || !zero || (strips && !sptr) || !prog || sweep_alloc_fails();
    if (!status) {
        memset(prog, 0, nprog * sizeof(sweep_word));
        if (record) /* step n0's samples: u at the start of the block */
            for (int64_t q = 0; q < ns * nrec; q++) {
                const int64_t sh = q / nrec;
                record[(sh * nt + n0) * nrec + q % nrec] =
                    J.s1[sh * vol + (P->rec_z[q] * NY + P->rec_y[q]) * NX + P->rec_x[q]];
            }
        K.zero = zero;
        status = sweep_pool_run(nthreads, SFX(fw3_thread), &J, stats);
    }
    free(T);
    free(zero);
    free(sptr);
    free(prog);
    return status;
}
