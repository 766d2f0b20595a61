/* Template body of the acoustic kernels' shared helpers and forward, included by acoustic.c once per
 * precision with REAL (float or double) and SFX(name) (appends _f32 / _f64) defined; the adjoint
 * (acoustic_adjoint.h) and the reverse-time rebuild (acoustic_retreat.h) follow it and use its helpers.
 *
 * One step on the padded grid (fields zero outside it), exactly as the eager stepper:
 *   psi_x' = b_x psi_x + a_x D1x u                      (x-PML columns; zero elsewhere)
 *   L_x    = D2x u + D1x psi_x'
 *   zeta_x' = b_x zeta_x + a_x L_x                      (x-PML columns)
 *   (same along z), S = L_x + zeta_x' + L_z + zeta_z' (+ f[n] / dh^2 at each source cell)
 *   u_next = 2 u - u_prev + w S
 * State (6, nshots, NZ, NX): u_prev, u, psi_x, psi_z, zeta_x, zeta_z. The snapshot of step n is S on
 * the physical grid (nshots, nz, nx): du_next/dw, all the model gradient needs.
 *
 * The auxiliaries psi/zeta vanish wherever a = 0 and b = 1 (they start at zero and stay there), so the
 * kernels only touch them in the absorbing layers (and write zeta = 0 on the r cells next to them).
 *
 * Parallelism: OpenMP over (shot, row) with a static schedule, the same split in every pass, so each
 * thread owns the same rows throughout; sources and receivers are handled by the owner of their row in
 * a fixed order, and the model gradient is accumulated per shot. No sum depends on the thread count.
 */

typedef struct {
    int64_t nz, nx;
    REAL c1[5], c2[5], inv_dh, inv_dh2;
    const REAL *w, *ax, *bx, *az, *bz;
    const REAL *zero; /* a row of nx zeros: stands for the rows outside the grid */
} SFX(consts);

static void SFX(load_consts)(const sweep_problem *P, SFX(consts) *K) {
    K->nz = P->nz;
    K->nx = P->nx;
    K->c1[0] = 0;
    for (int k = 1; k <= 4; k++) K->c1[k] = (REAL)P->c1[k - 1];
    for (int k = 0; k <= 4; k++) K->c2[k] = (REAL)P->c2[k];
    K->inv_dh = (REAL)P->inv_dh;
    K->inv_dh2 = (REAL)P->inv_dh2;
    K->w = (const REAL *)P->w;
    K->ax = (const REAL *)P->ax;
    K->bx = (const REAL *)P->bx;
    K->az = (const REAL *)P->az;
    K->bz = (const REAL *)P->bz;
    K->zero = 0;
}

/* rows[R + k] = row i + k of field f (k = -R..R), or the zero row outside the grid: stencils along z
 * then need no bounds checks, so that the top and bottom rows vectorise like the others. */
#define ROWS(name, f, i, R)                                                                               \
    const REAL *name##_a[9];                                                                              \
    for (int k_ = -(R); k_ <= (R); k_++) {                                                                \
        const int64_t ii_ = (i) + k_;                                                                     \
        name##_a[(R) + k_] = (ii_ >= 0 && ii_ < K->nz) ? (f) + ii_ * K->nx : K->zero;                     \
    }                                                                                                     \
    const REAL *const *const name = name##_a + (R)

/* Field value at (i, j), zero outside the padded grid when SAFE (a compile-time constant). */
#define LD(f, i, j) ((SAFE && ((i) < 0 || (i) >= nz || (j) < 0 || (j) >= nx)) ? (REAL)0 : (f)[(i) * nx + (j)])
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

/* Split the columns [j0, j1) of row i into bounds-checked edges and an unchecked middle, and run
 * BODY(a, b, SAFE) on each piece. A row within r of the top or bottom edge is checked throughout. */
#define SPLIT_SAFE(j0, j1, BODY)                                                                          \
    do {                                                                                                  \
        const int64_t j0_ = (j0), j1_ = (j1);                                                             \
        if (j0_ < j1_) {                                                                                  \
            if (i < R || i >= nz - R) {                                                                   \
                BODY(j0_, j1_, 1);                                                                        \
            } else {                                                                                      \
                const int64_t m0_ = j0_ > R ? j0_ : (R < j1_ ? R : j1_);                                  \
                const int64_t m1_ = j1_ < nx - R ? (j1_ > m0_ ? j1_ : m0_) : (nx - R > m0_ ? nx - R : m0_); \
                if (j0_ < m0_) BODY(j0_, m0_, 1);                                                         \
                if (m0_ < m1_) BODY(m0_, m1_, 0);                                                         \
                if (m1_ < j1_) BODY(m1_, j1_, 1);                                                         \
            }                                                                                             \
        }                                                                                                 \
    } while (0)

/* Exchange the n values of a and b; an orphaned `omp for`: call it from every thread of a parallel region
 * (the kernels ping-pong two wavefields between slots and restore their layout after an odd count). */
static inline void SFX(swap_slots)(REAL *restrict a, REAL *restrict b, int64_t n) {
#pragma omp for schedule(static)
    for (int64_t c = 0; c < n; c++) {
        const REAL t = a[c];
        a[c] = b[c];
        b[c] = t;
    }
}

/* ---- forward ---------------------------------------------------------------------------------- */

ALWAYS_INLINE void SFX(psi_x_span)(const SFX(consts) *K_, const REAL *restrict u, REAL *restrict px, int64_t i,
                                   int64_t j0, int64_t j1, const int SAFE, const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const int64_t nz = K->nz, nx = K->nx;
    const REAL inv_dh = K->inv_dh;
    const REAL *restrict ax = K->ax, *restrict bx = K->bx;
    (void)nz;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t c = i * nx + j;
        REAL d = K->c1[1] * (LD(u, i, j + 1) - LD(u, i, j - 1));
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LD(u, i, j + k) - LD(u, i, j - k));
        px[c] = bx[j] * px[c] + ax[j] * (d * inv_dh);
    }
}

ALWAYS_INLINE void SFX(psi_z_span)(const SFX(consts) *K_, const REAL *restrict u, REAL *restrict pz, int64_t i,
                                   int64_t j0, int64_t j1, const int SAFE, const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const int64_t nz = K->nz, nx = K->nx;
    const REAL inv_dh = K->inv_dh, a = K->az[i], b = K->bz[i];
    (void)nz;
    (void)SAFE;
    ROWS(ur, u, i, R);
    for (int64_t j = j0; j < j1; j++) {
        const int64_t c = i * nx + j;
        REAL d = K->c1[1] * (ur[1][j] - ur[-1][j]);
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (ur[k][j] - ur[-k][j]);
        pz[c] = b * pz[c] + a * (d * inv_dh);
    }
}

/* psi' = b psi + a D1 u on the absorbing cells of row i: x-PML columns, and the whole row if it is a
 * z-PML row. */
ALWAYS_INLINE void SFX(psi_row_r)(const SFX(consts) *K, const REAL *u, REAL *px, REAL *pz, int64_t i,
                                  int64_t xa, int64_t xb, int64_t za, int64_t zb, const int R) {
    const int64_t nz = K->nz, nx = K->nx;
#define PX(a, b, S) SFX(psi_x_span)(K, u, px, i, a, b, S, R)
#define PZ(a, b, S) SFX(psi_z_span)(K, u, pz, i, a, b, S, R)
    if (xa < xb) {
        SPLIT_SAFE(0, xa, PX);
        SPLIT_SAFE(xb, nx, PX);
    } else {
        SPLIT_SAFE(0, nx, PX);
    }
    if (!(i >= za && i < zb)) PZ(0, nx, 0); /* rows outside the grid: see ROWS */
#undef PX
#undef PZ
}

/* S = L_x + zeta_x' + L_z + zeta_z' at (i, j) from u and the new psi; writes the new zeta when the
 * cell is near a layer (DOX / DOZ). */
ALWAYS_INLINE REAL SFX(rhs)(const SFX(consts) *K, const REAL *restrict u, const REAL *const *ur,
                            const REAL *restrict px, const REAL *const *pr, REAL *restrict zx,
                            REAL *restrict zz, int64_t i, int64_t j,
                            const int SAFE, const int DOX, const int DOZ, const int R) {
    const int64_t nz = K->nz, nx = K->nx;
    const int64_t c = i * nx + j;
    const REAL uc = u[c];
    (void)nz;
    REAL dxx = K->c2[0] * uc, dzz = K->c2[0] * uc;
    for (int k = 1; k <= R; k++) {
        dxx = dxx + K->c2[k] * (LD(u, i, j + k) + LD(u, i, j - k));
        dzz = dzz + K->c2[k] * (ur[k][j] + ur[-k][j]);
    }
    REAL lx = dxx * K->inv_dh2, lz = dzz * K->inv_dh2;
    REAL s;
    if (DOX) {
        REAL d = K->c1[1] * (LD(px, i, j + 1) - LD(px, i, j - 1));
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LD(px, i, j + k) - LD(px, i, j - k));
        lx = lx + d * K->inv_dh;
        const REAL zn = K->bx[j] * zx[c] + K->ax[j] * lx;
        zx[c] = zn;
        s = lx + zn;
    } else {
        s = lx;
    }
    if (DOZ) {
        REAL d = K->c1[1] * (pr[1][j] - pr[-1][j]);
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (pr[k][j] - pr[-k][j]);
        lz = lz + d * K->inv_dh;
        const REAL zn = K->bz[i] * zz[c] + K->az[i] * lz;
        zz[c] = zn;
        s = s + lz;
        s = s + zn;
    } else {
        s = s + lz;
    }
    return s;
}

/* u_prev <- u_next on [j0, j1) of row i; S into srow[j] when KEEP. */
ALWAYS_INLINE void SFX(fwd_span)(const SFX(consts) *K_, const REAL *restrict u, REAL *restrict up,
                                 const REAL *restrict px, const REAL *restrict pz, REAL *restrict zx,
                                 REAL *restrict zz, REAL *restrict srow, int64_t i, int64_t j0, int64_t j1,
                                 const int SAFE, const int DOX, const int DOZ, const int KEEP, const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const REAL *restrict w = K->w;
    const int64_t nx = K->nx;
    ROWS(ur, u, i, R);
    ROWS(pr, DOZ ? pz : u, i, R);
#pragma GCC ivdep
    for (int64_t j = j0; j < j1; j++) {
        const int64_t c = i * nx + j;
        const REAL s = SFX(rhs)(K, u, ur, px, pr, zx, zz, i, j, SAFE, DOX, DOZ, R);
        if (KEEP) srow[j] = s;
        up[c] = 2 * u[c] - up[c] + w[c] * s;
    }
}

ALWAYS_INLINE void SFX(fwd_row_r)(const SFX(consts) *K, const REAL *u, REAL *up, const REAL *px, const REAL *pz,
                                  REAL *zx, REAL *zz, REAL *srow, int64_t i, const segments *rs, const segments *cs,
                                  const int KEEP, const int R) {
    const int64_t nx = K->nx;
    /* Only the columns near the left and right edges need bounds checks (rows: see ROWS); the edge
     * pieces get C-PML terms when any of their cells is near a layer (see segments). */
    const int pml_l = cs->c0 > 0 || cs->c1 < cs->s1, pml_r = cs->c1 < nx || cs->c0 > cs->s4;
#define FS(j0, j1, S, X, Z) SFX(fwd_span)(K, u, up, px, pz, zx, zz, srow, i, j0, j1, S, X, Z, KEEP, R)
#define EDGE(j0, j1, X, Z) ((X) ? FS(j0, j1, 1, 1, Z) : FS(j0, j1, 1, 0, Z))
    if (i < rs->c0 || i >= rs->c1) {
        EDGE(0, cs->s1, pml_l, 1);
        FS(cs->s1, cs->p1, 0, 1, 1);
        FS(cs->p1, cs->p2, 0, 0, 1);
        FS(cs->p2, cs->s4, 0, 1, 1);
        EDGE(cs->s4, nx, pml_r, 1);
    } else {
        EDGE(0, cs->s1, pml_l, 0);
        FS(cs->s1, cs->p1, 0, 1, 0);
        FS(cs->p1, cs->p2, 0, 0, 0);
        FS(cs->p2, cs->s4, 0, 1, 0);
        EDGE(cs->s4, nx, pml_r, 0);
    }
#undef EDGE
#undef FS
}

/* One out-of-line function per radius (and KEEP): every inner loop still has compile-time constants, and
 * the compiler handles several small functions much faster than one huge one. */
#define DEF(RR)                                                                                            \
    SWEEP_NOINLINE void SFX(psi_row##RR)(const SFX(consts) *K, const REAL *u, REAL *px, REAL *pz, int64_t i,  \
                                         int64_t xa, int64_t xb, int64_t za, int64_t zb) {                   \
        SFX(psi_row_r)(K, u, px, pz, i, xa, xb, za, zb, RR);                                                 \
    }                                                                                                      \
    SWEEP_NOINLINE void SFX(fwd_row_keep##RR)(const SFX(consts) *K, const REAL *u, REAL *up, const REAL *px,  \
                                              const REAL *pz, REAL *zx, REAL *zz, REAL *srow, int64_t i,     \
                                              const segments *rs, const segments *cs) {                      \
        SFX(fwd_row_r)(K, u, up, px, pz, zx, zz, srow, i, rs, cs, 1, RR);                                    \
    }                                                                                                      \
    SWEEP_NOINLINE void SFX(fwd_row_nokeep##RR)(const SFX(consts) *K, const REAL *u, REAL *up, const REAL *px, \
                                                const REAL *pz, REAL *zx, REAL *zz, int64_t i,               \
                                                const segments *rs, const segments *cs) {                    \
        SFX(fwd_row_r)(K, u, up, px, pz, zx, zz, 0, i, rs, cs, 0, RR);                                       \
    }
SWEEP_PER_RADIUS(DEF)
#undef DEF

static void SFX(psi_row)(const SFX(consts) *K, int r, const REAL *u, REAL *px, REAL *pz, int64_t i, int64_t xa,
                         int64_t xb, int64_t za, int64_t zb) {
#define CALL(R) SFX(psi_row##R)(K, u, px, pz, i, xa, xb, za, zb)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

static void SFX(fwd_row)(const SFX(consts) *K, int r, const REAL *u, REAL *up, const REAL *px, const REAL *pz,
                         REAL *zx, REAL *zz, REAL *srow, int64_t i, const segments *rs, const segments *cs) {
#define CALL(R)                                                                \
    do {                                                                       \
        if (srow)                                                              \
            SFX(fwd_row_keep##R)(K, u, up, px, pz, zx, zz, srow, i, rs, cs);   \
        else                                                                   \
            SFX(fwd_row_nokeep##R)(K, u, up, px, pz, zx, zz, i, rs, cs);       \
    } while (0)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

/* Strip cells by physical row: those of row i are sidx[sptr[i] .. sptr[i+1]) (sptr has pnz + 1 entries). */
static int64_t *SFX(strip_rows)(const int64_t *sidx, int64_t nstrip, int64_t pnz, int64_t pnx) {
    int64_t *sptr = (int64_t *)malloc((size_t)(pnz + 1) * sizeof(int64_t));
    if (!sptr) return 0;
    for (int64_t i = 0, t = 0; i <= pnz; i++) {
        while (t < nstrip && sidx[t] < i * pnx) t++;
        sptr[i] = t;
    }
    return sptr;
}

/* One forward step of rows [a, b) of shot sh (u_prev slot `up`, u slot `u`, both offset to the shot):
 * psi runs r rows ahead of the main pass, both in place (see the work split in acoustic.c: no psi_z is
 * read across the band's edges). */
static void SFX(fwd_band)(const sweep_problem *P, const SFX(consts) *K, const segments *rs, const segments *cs,
                          const REAL *u, REAL *up, REAL *px, REAL *pz, REAL *zx, REAL *zz, REAL *srow, REAL *uold,
                          int64_t sh, int64_t a, int64_t b, int64_t n, int64_t n1, REAL *kp, REAL *record,
                          REAL *sp, const int64_t *sptr) {
    const int64_t nz = P->nz, nx = P->nx, nt = P->nt, nrec = P->nrec, pnz = P->pnz, pnx = P->pnx;
    const int64_t top = P->ptop, left = P->pleft, pplane = pnz * pnx, nstrip = P->nstrip;
    const int r = (int)P->radius;
    const REAL *wav = (const REAL *)P->wavelet, *w = K->w;
    if (sp) /* this step's strip: u_prev on the strip cells of the band's rows, before it is overwritten */
        for (int64_t i = a > top ? a : top; i < b && i < top + pnz; i++)
            for (int64_t t = sptr[i - top]; t < sptr[i - top + 1]; t++) {
                const int64_t c = P->strip_idx[t];
                sp[sh * nstrip + t] = up[(top + c / pnx) * nx + left + c % pnx];
            }
    for (int64_t i = a; i < b && i < a + r; i++) SFX(psi_row)(K, r, u, px, pz, i, P->xa, P->xb, P->za, P->zb);
    for (int64_t i = a; i < b; i++) {
        if (i + r < b) SFX(psi_row)(K, r, u, px, pz, i + r, P->xa, P->xb, P->za, P->zb);
        const int64_t row = sh * nz + i;
        const int64_t q0 = P->src_ptr[row], q1 = P->src_ptr[row + 1];
        const int phys = i >= top && i < top + pnz;
        if (q0 < q1) memcpy(uold, up + i * nx, (size_t)nx * sizeof(REAL));
        SFX(fwd_row)(K, r, u, up, px, pz, zx, zz, (q0 < q1 || (kp && phys)) ? srow : 0, i, rs, cs);
        if (q0 < q1) {
            /* Sources in a fixed order (several may share a cell): S += f / dh^2, then redo u_next there
             * from the saved u_prev. */
            for (int64_t t = q0; t < q1; t++) {
                const int64_t q = P->src_order[t];
                srow[P->src_x[q]] += wav[q * nt + n] * K->inv_dh2;
            }
            for (int64_t t = q0; t < q1; t++) {
                const int64_t j = P->src_x[P->src_order[t]], c = i * nx + j;
                up[c] = 2 * u[c] - uold[j] + w[c] * srow[j];
            }
        }
        if (kp && phys) memcpy(kp + sh * pplane + (i - top) * pnx, srow + left, (size_t)pnx * sizeof(REAL));
        if (record && n + 1 < n1)
            for (int64_t t = P->rec_ptr[row]; t < P->rec_ptr[row + 1]; t++) {
                const int64_t q = P->rec_order[t];
                record[(sh * nt + n + 1) * nrec + q % nrec] = up[i * nx + P->rec_x[q]];
            }
    }
}

/* Exchange rows [a, b) of the two wavefield slots of one shot. */
static void SFX(swap_rows)(REAL *s0, REAL *s1, int64_t a, int64_t b, int64_t nx) {
    REAL *restrict x = s0 + a * nx, *restrict y = s1 + a * nx;
    for (int64_t c = 0; c < (b - a) * nx; c++) {
        const REAL t = x[c];
        x[c] = y[c];
        y[c] = t;
    }
}

/* Steps n0 -> n1 in place on `state` (6, nshots, NZ, NX). `record` (nshots, nt, nrec), if not NULL,
 * gets u at the receivers at the start of each step; `keep` (n1 - n0, nshots, nz, nx), if not NULL,
 * gets each step's snapshot S on the physical grid; `strips` (n1 - n0, nshots, nstrip), if not NULL,
 * gets u_prev at the start of each step on the strip cells. Returns 0, or 1 if out of memory. */
int SFX(sweep_acoustic_forward)(const sweep_problem *P, REAL *state, int64_t n0, int64_t n1, REAL *record,
                                REAL *keep, REAL *strips, int nthreads) {
    SFX(consts) K;
    SFX(load_consts)(P, &K);
    const int64_t ns = P->nshots, nz = P->nz, nx = P->nx, plane = nz * nx, fs = ns * plane;
    const int64_t pplane = P->pnz * P->pnx;
    const int r = (int)P->radius;
    const segments rs = make_segments(nz, r, P->za, P->zb), cs = make_segments(nx, r, P->xa, P->xb);
    REAL *const s0 = state, *const s1 = state + fs;
    REAL *const px = state + 2 * fs, *const pz = state + 3 * fs, *const zx = state + 4 * fs,
                *const zz = state + 5 * fs;
    const int64_t nrec = P->nrec, nt = P->nt, nstrip = P->nstrip;
    if (n1 <= n0) return 0;
    if (record) /* step n0's samples: u at the start of the block */
        for (int64_t q = 0; q < ns * nrec; q++) {
            const int64_t sh = q / nrec;
            record[(sh * nt + n0) * nrec + q % nrec] = s1[sh * plane + P->rec_z[q] * nx + P->rec_x[q]];
        }
    /* Per-thread rows: S of the current row, and u_prev of a row with sources. */
    REAL *rows = (REAL *)malloc(2 * (size_t)nthreads * (size_t)nx * sizeof(REAL));
    REAL *zero = (REAL *)calloc((size_t)nx, sizeof(REAL));
    int64_t *sptr = strips ? SFX(strip_rows)(P->strip_idx, nstrip, P->pnz, P->pnx) : 0;
    sweep_sched S;
    if (!rows || !zero || (strips && !sptr) || sched_alloc(&S, ns, nz, nthreads, P->za + r, P->zb - r)) {
        free(rows);
        free(zero);
        free(sptr);
        return 1;
    }
    K.zero = zero;
    const int64_t budget = spin_ticks();
#pragma omp parallel num_threads(nthreads)
    {
        const unsigned int mxcsr = enter_ftz();
        const int me = thread_id();
        const sweep_part part = S.plan[me];
        REAL *const srow = rows + 2 * (size_t)me * (size_t)nx, *const uold = srow + nx;
        /* Shot by shot, all steps of each (a band's shot range is one shot when it has neighbours). */
        for (int64_t sh = part.s0; sh < part.s1; sh++) {
            const int64_t o = sh * plane;
            for (int64_t n = n0; n < n1; n++) {
                /* u_next overwrites u_prev, so the two wavefields swap slots every step. */
                REAL *const up = ((n - n0) & 1) ? s1 : s0;
                const REAL *const u = ((n - n0) & 1) ? s0 : s1;
                if (n > n0) wait_neighbours(S.prog, &part, (int)(n - n0), budget);
                SFX(fwd_band)(P, &K, &rs, &cs, u + o, up + o, px + o, pz + o, zx + o, zz + o, srow, uold, sh,
                              part.a, part.b, n, n1, keep ? keep + (n - n0) * ns * pplane : 0, record,
                              strips ? strips + (n - n0) * ns * nstrip : 0, sptr);
                progress_post(S.prog + me, (int)(n - n0 + 1));
            }
            /* An odd number of steps left u in slot 0: swap back to (u_prev, u), once the neighbours
             * have stopped reading it. */
            if ((n1 - n0) & 1) {
                wait_neighbours(S.prog, &part, (int)(n1 - n0), budget);
                SFX(swap_rows)(s0 + o, s1 + o, part.a, part.b, nx);
            }
        }
        leave_ftz(mxcsr);
    }
    sched_free(&S);
    free(rows);
    free(zero);
    free(sptr);
    return 0;
}

/* LD, SPLIT_SAFE: also used by acoustic_adjoint.h, which undefines them; ROWS, ALWAYS_INLINE,
 * SWEEP_RADIUS_DISPATCH: used by acoustic_retreat.h, which undefines them. */
