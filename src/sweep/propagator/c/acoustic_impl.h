/* Template body of the acoustic kernels, included by acoustic.c once per precision with REAL (float or
 * double) and SFX(name) (appends _f32 / _f64) defined.
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
 * kernels only touch them in the absorbing layers (and write zeta = 0 on the r cells next to them), and
 * the adjoint is the adjoint of the step restricted to that invariant subspace: its psi/zeta outputs
 * outside the layers are left untouched (zero for every state the schedules produce).
 *
 * Adjoint of one step, with (A0..A5) the adjoint of the state after the step and s = w A1:
 *   Lh_x = s + a_x (A4 + s)                              (adjoint of L_x)
 *   P_x  = A2 - D1x Lh_x                                 (adjoint of psi_x'; D1^T = -D1, D2^T = D2)
 *   A0' = -A1
 *   A1' = A0 + 2 A1 + D2x Lh_x + D2z Lh_z - D1x(a_x P_x) - D1z(a_z P_z),  A1'[rec] += grad_rec
 *   A2' = b_x P_x,  A4' = b_x (A4 + s)                   (likewise z)
 *   grad_w += A1 S,  grad_f[src] += A1[src] w[src] / dh^2
 * It needs no forward state. Within a block the two wavefield adjoints are not swapped: A1' overwrites
 * A0's slot and the other slot keeps A1 = -A0', so after the first step the "A0" slot holds -A0 (the
 * sign is folded into the update, exactly) and one pass at the end of the block restores the layout.
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

static void SFX(psi_row)(const SFX(consts) *K, int r, const REAL *u, REAL *px, REAL *pz, int64_t i, int64_t xa,
                         int64_t xb, int64_t za, int64_t zb) {
#define CALL(R) SFX(psi_row_r)(K, u, px, pz, i, xa, xb, za, zb, R)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

static void SFX(fwd_row)(const SFX(consts) *K, int r, const REAL *u, REAL *up, const REAL *px, const REAL *pz,
                         REAL *zx, REAL *zz, REAL *srow, int64_t i, const segments *rs, const segments *cs) {
#define CALL(R)                                                                \
    do {                                                                       \
        if (srow)                                                              \
            SFX(fwd_row_r)(K, u, up, px, pz, zx, zz, srow, i, rs, cs, 1, R);   \
        else                                                                   \
            SFX(fwd_row_r)(K, u, up, px, pz, zx, zz, srow, i, rs, cs, 0, R);   \
    } while (0)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
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
    const int64_t pnz = P->pnz, pnx = P->pnx, top = P->ptop, left = P->pleft, pplane = pnz * pnx;
    const int r = (int)P->radius;
    const segments rs = make_segments(nz, r, P->za, P->zb), cs = make_segments(nx, r, P->xa, P->xb);
    REAL *const s0 = state, *const s1 = state + fs;
    REAL *const px = state + 2 * fs, *const pz = state + 3 * fs, *const zx = state + 4 * fs,
                *const zz = state + 5 * fs;
    const REAL *wav = (const REAL *)P->wavelet;
    const REAL *w = K.w;
    const int64_t nrec = P->nrec, nt = P->nt, nstrip = P->nstrip;
    const int64_t *const sidx = P->strip_idx;
    if (record) /* step n0's samples: u at the start of the block */
        for (int64_t q = 0; q < ns * nrec; q++) {
            const int64_t sh = q / nrec;
            record[(sh * nt + n0) * nrec + q % nrec] = s1[sh * plane + P->rec_z[q] * nx + P->rec_x[q]];
        }
    /* Per-thread rows: S of the current row, and u_prev of a row with sources. */
    REAL *rows = (REAL *)malloc(2 * (size_t)nthreads * (size_t)nx * sizeof(REAL));
    REAL *zero = (REAL *)calloc((size_t)nx, sizeof(REAL));
    if (!rows || !zero) {
        free(rows);
        free(zero);
        return 1;
    }
    K.zero = zero;
#pragma omp parallel num_threads(nthreads)
    {
        const unsigned int mxcsr = enter_ftz();
        REAL *const srow = rows + 2 * (size_t)thread_id() * (size_t)nx, *const uold = srow + nx;
        for (int64_t n = n0; n < n1; n++) {
            /* u_next overwrites u_prev, so the two wavefields swap slots every step. */
            REAL *const up = ((n - n0) & 1) ? s1 : s0;
            const REAL *const u = ((n - n0) & 1) ? s0 : s1;
            REAL *const kp = keep ? keep + (n - n0) * ns * pplane : 0;
            if (strips) {
                /* nowait: pass 1 does not touch u_prev, and its closing barrier keeps pass 2 from
                 * overwriting u_prev before every thread has gathered its part. */
                REAL *const sp = strips + (n - n0) * ns * nstrip;
#pragma omp for collapse(2) schedule(static) nowait
                for (int64_t sh = 0; sh < ns; sh++)
                    for (int64_t t = 0; t < nstrip; t++) {
                        const int64_t c = sidx[t];
                        sp[sh * nstrip + t] = up[sh * plane + (top + c / pnx) * nx + left + c % pnx];
                    }
            }
#pragma omp for collapse(2) schedule(static)
            for (int64_t sh = 0; sh < ns; sh++)
                for (int64_t i = 0; i < nz; i++) {
                    const int64_t o = sh * plane;
                    SFX(psi_row)(&K, r, u + o, px + o, pz + o, i, P->xa, P->xb, P->za, P->zb);
                }
#pragma omp for collapse(2) schedule(static)
            for (int64_t sh = 0; sh < ns; sh++)
                for (int64_t i = 0; i < nz; i++) {
                    const int64_t o = sh * plane, row = sh * nz + i;
                    const int64_t q0 = P->src_ptr[row], q1 = P->src_ptr[row + 1];
                    const int phys = i >= top && i < top + pnz;
                    if (q0 < q1) memcpy(uold, up + o + i * nx, (size_t)nx * sizeof(REAL));
                    SFX(fwd_row)(&K, r, u + o, up + o, px + o, pz + o, zx + o, zz + o,
                                 (q0 < q1 || (kp && phys)) ? srow : 0, i, &rs, &cs);
                    if (q0 < q1) {
                        /* Sources in a fixed order (several may share a cell): S += f / dh^2, then redo
                         * u_next there from the saved u_prev. */
                        for (int64_t t = q0; t < q1; t++) {
                            const int64_t q = P->src_order[t];
                            srow[P->src_x[q]] += wav[q * nt + n] * K.inv_dh2;
                        }
                        for (int64_t t = q0; t < q1; t++) {
                            const int64_t j = P->src_x[P->src_order[t]], c = o + i * nx + j;
                            up[c] = 2 * u[c] - uold[j] + w[i * nx + j] * srow[j];
                        }
                    }
                    if (kp && phys) memcpy(kp + sh * pplane + (i - top) * pnx, srow + left, (size_t)pnx * sizeof(REAL));
                    if (record && n + 1 < n1)
                        for (int64_t t = P->rec_ptr[row]; t < P->rec_ptr[row + 1]; t++) {
                            const int64_t q = P->rec_order[t];
                            record[(sh * nt + n + 1) * nrec + q % nrec] = up[o + i * nx + P->rec_x[q]];
                        }
                }
        }
        /* An odd number of steps left u in slot 0: swap back to (u_prev, u). */
        if ((n1 - n0) & 1) SFX(swap_slots)(s0, s1, ns * nz * nx);
        leave_ftz(mxcsr);
    }
    free(rows);
    free(zero);
    return 0;
}

/* ---- adjoint ---------------------------------------------------------------------------------- */

/* Adjoint of L_x at (i, j): Lh = s + a (A4 + s), s = w A1; zero outside the grid. */
#define LHX(i, j) ((SAFE && ((i) < 0 || (i) >= nz || (j) < 0 || (j) >= nx)) ? (REAL)0 : \
    (w[(i) * nx + (j)] * a1[(i) * nx + (j)] + ax[j] * (a4[(i) * nx + (j)] + w[(i) * nx + (j)] * a1[(i) * nx + (j)])))
#define LHZ(i, j) ((SAFE && ((i) < 0 || (i) >= nz || (j) < 0 || (j) >= nx)) ? (REAL)0 : \
    (w[(i) * nx + (j)] * a1[(i) * nx + (j)] + az[i] * (a5[(i) * nx + (j)] + w[(i) * nx + (j)] * a1[(i) * nx + (j)])))
#define SW(i, j) ((SAFE && ((i) < 0 || (i) >= nz || (j) < 0 || (j) >= nx)) ? (REAL)0 : \
    w[(i) * nx + (j)] * a1[(i) * nx + (j)])
#define APX(i, j) ((SAFE && ((i) < 0 || (i) >= nz || (j) < 0 || (j) >= nx)) ? (REAL)0 : ax[j] * a2[(i) * nx + (j)])
#define APZ(i, j) ((SAFE && ((i) < 0 || (i) >= nz || (j) < 0 || (j) >= nx)) ? (REAL)0 : az[i] * a3[(i) * nx + (j)])

ALWAYS_INLINE void SFX(adj_px_span)(const SFX(consts) *K_, const REAL *restrict a1, REAL *restrict a2,
                                    const REAL *restrict a4, int64_t i, int64_t j0, int64_t j1, const int SAFE,
                                    const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const int64_t nz = K->nz, nx = K->nx;
    const REAL *restrict w = K->w, *restrict ax = K->ax;
    (void)nz;
    for (int64_t j = j0; j < j1; j++) {
        REAL d = K->c1[1] * (LHX(i, j + 1) - LHX(i, j - 1));
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LHX(i, j + k) - LHX(i, j - k));
        a2[i * nx + j] = a2[i * nx + j] - d * K->inv_dh;
    }
}

ALWAYS_INLINE void SFX(adj_pz_span)(const SFX(consts) *K_, const REAL *restrict a1, REAL *restrict a3,
                                    const REAL *restrict a5, int64_t i, int64_t j0, int64_t j1, const int SAFE,
                                    const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const int64_t nz = K->nz, nx = K->nx;
    const REAL *restrict w = K->w, *restrict az = K->az;
    (void)nz;
    for (int64_t j = j0; j < j1; j++) {
        REAL d = K->c1[1] * (LHZ(i + 1, j) - LHZ(i - 1, j));
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LHZ(i + k, j) - LHZ(i - k, j));
        a3[i * nx + j] = a3[i * nx + j] - d * K->inv_dh;
    }
}

/* Pass 1 on row i's absorbing cells: P = A2 - D1 Lh into A2/A3. */
ALWAYS_INLINE void SFX(adj_psi_row_r)(const SFX(consts) *K, const REAL *a1, REAL *a2, REAL *a3, const REAL *a4,
                                      const REAL *a5, int64_t i, int64_t xa, int64_t xb, int64_t za, int64_t zb,
                                      const int R) {
    const int64_t nz = K->nz, nx = K->nx;
#define PX(a, b, S) SFX(adj_px_span)(K, a1, a2, a4, i, a, b, S, R)
#define PZ(a, b, S) SFX(adj_pz_span)(K, a1, a3, a5, i, a, b, S, R)
    if (xa < xb) {
        SPLIT_SAFE(0, xa, PX);
        SPLIT_SAFE(xb, nx, PX);
    } else {
        SPLIT_SAFE(0, nx, PX);
    }
    if (!(i >= za && i < zb)) SPLIT_SAFE(0, nx, PZ);
#undef PX
#undef PZ
}

/* Pass 2 on [j0, j1) of row i: X <- sigma X + 2 A1 + ... (A1' before the receiver term). */
ALWAYS_INLINE void SFX(adj_span)(const SFX(consts) *K_, REAL *restrict a0, const REAL *restrict a1,
                                 const REAL *restrict a2, const REAL *restrict a3, const REAL *restrict a4,
                                 const REAL *restrict a5, const REAL sigma, int64_t i, int64_t j0, int64_t j1,
                                 const int SAFE, const int DOX, const int DOZ, const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const int64_t nz = K->nz, nx = K->nx;
    const REAL *restrict w = K->w, *restrict ax = K->ax, *restrict az = K->az;
#pragma GCC ivdep
    for (int64_t j = j0; j < j1; j++) {
        const int64_t c = i * nx + j;
        REAL tx, tz;
        if (DOX) {
            tx = K->c2[0] * LHX(i, j);
            for (int k = 1; k <= R; k++) tx = tx + K->c2[k] * (LHX(i, j + k) + LHX(i, j - k));
        } else {
            tx = K->c2[0] * SW(i, j);
            for (int k = 1; k <= R; k++) tx = tx + K->c2[k] * (SW(i, j + k) + SW(i, j - k));
        }
        if (DOZ) {
            tz = K->c2[0] * LHZ(i, j);
            for (int k = 1; k <= R; k++) tz = tz + K->c2[k] * (LHZ(i + k, j) + LHZ(i - k, j));
        } else {
            tz = K->c2[0] * SW(i, j);
            for (int k = 1; k <= R; k++) tz = tz + K->c2[k] * (SW(i + k, j) + SW(i - k, j));
        }
        REAL t = sigma * a0[c] + 2 * a1[c] + tx * K->inv_dh2 + tz * K->inv_dh2;
        if (DOX) {
            REAL d = K->c1[1] * (APX(i, j + 1) - APX(i, j - 1));
            for (int k = 2; k <= R; k++) d = d + K->c1[k] * (APX(i, j + k) - APX(i, j - k));
            t = t - d * K->inv_dh;
        }
        if (DOZ) {
            REAL d = K->c1[1] * (APZ(i + 1, j) - APZ(i - 1, j));
            for (int k = 2; k <= R; k++) d = d + K->c1[k] * (APZ(i + k, j) - APZ(i - k, j));
            t = t - d * K->inv_dh;
        }
        a0[c] = t;
    }
}

ALWAYS_INLINE void SFX(adj_row_r)(const SFX(consts) *K, REAL *a0, const REAL *a1, const REAL *a2, const REAL *a3,
                                  const REAL *a4, const REAL *a5, REAL sigma, int64_t i, const segments *rs,
                                  const segments *cs, const int R) {
    const int64_t nx = K->nx;
#define SPAN(j0, j1, S, X, Z) SFX(adj_span)(K, a0, a1, a2, a3, a4, a5, sigma, i, j0, j1, S, X, Z, R)
    if (i < rs->s1 || i >= rs->s4) {
        SPAN(0, nx, 1, 1, 1);
        return;
    }
    SPAN(0, cs->s1, 1, 1, 1);
    if (i < rs->p1 || i >= rs->p2) {
        SPAN(cs->s1, cs->p1, 0, 1, 1);
        SPAN(cs->p1, cs->p2, 0, 0, 1);
        SPAN(cs->p2, cs->s4, 0, 1, 1);
    } else {
        SPAN(cs->s1, cs->p1, 0, 1, 0);
        SPAN(cs->p1, cs->p2, 0, 0, 0);
        SPAN(cs->p2, cs->s4, 0, 1, 0);
    }
    SPAN(cs->s4, nx, 1, 1, 1);
#undef SPAN
}

static void SFX(adj_psi_row)(const SFX(consts) *K, int r, const REAL *a1, REAL *a2, REAL *a3, const REAL *a4,
                             const REAL *a5, int64_t i, int64_t xa, int64_t xb, int64_t za, int64_t zb) {
#define CALL(R) SFX(adj_psi_row_r)(K, a1, a2, a3, a4, a5, i, xa, xb, za, zb, R)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

static void SFX(adj_row)(const SFX(consts) *K, int r, REAL *a0, const REAL *a1, const REAL *a2, const REAL *a3,
                         const REAL *a4, const REAL *a5, REAL sigma, int64_t i, const segments *rs,
                         const segments *cs) {
#define CALL(R) SFX(adj_row_r)(K, a0, a1, a2, a3, a4, a5, sigma, i, rs, cs, R)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

/* Adjoint steps n1-1 down to n0 in place on `adj` (6, nshots, NZ, NX): on entry the adjoint of the state
 * after step n1-1, on return that of the state at step n0. `kept` (n1 - n0, nshots, nz, nx) holds the
 * snapshots (only read when `grad_w` is given); `grad_rec` (nshots, nt, nrec) the adjoint of the data.
 * Accumulates into `grad_w` (nshots, nz, nx; per shot, so that no two threads add to one cell) and
 * `grad_wavelet` (nshots, nsrc, nt) when not NULL. Returns 0. */
int SFX(sweep_acoustic_adjoint)(const sweep_problem *P, REAL *adj, const REAL *kept, int64_t n0, int64_t n1,
                                const REAL *grad_rec, REAL *grad_w, REAL *grad_wavelet, int nthreads) {
    SFX(consts) K;
    SFX(load_consts)(P, &K);
    const int64_t ns = P->nshots, nz = P->nz, nx = P->nx, plane = nz * nx, fs = ns * plane;
    const int64_t pnz = P->pnz, pnx = P->pnx, top = P->ptop, left = P->pleft, pplane = pnz * pnx;
    const int64_t nrec = P->nrec, nt = P->nt;
    const int r = (int)P->radius;
    const segments rs = make_segments(nz, r, P->za, P->zb), cs = make_segments(nx, r, P->xa, P->xb);
    REAL *const a2 = adj + 2 * fs, *const a3 = adj + 3 * fs, *const a4 = adj + 4 * fs, *const a5 = adj + 5 * fs;
    const REAL *w = K.w, *bx = K.bx, *bz = K.bz;
    const int64_t xa = P->xa, xb = P->xb, za = P->za, zb = P->zb;
    if (n1 <= n0) return 0;
#pragma omp parallel num_threads(nthreads)
    {
        const unsigned int mxcsr = enter_ftz();
        for (int64_t n = n1 - 1; n >= n0; n--) {
            const int64_t k = n1 - 1 - n;
            REAL *const X = (k & 1) ? adj + fs : adj;       /* sigma A0, overwritten by A1' */
            const REAL *const Y = (k & 1) ? adj : adj + fs; /* A1 */
            const REAL sigma = k == 0 ? (REAL)1 : (REAL)-1;
            const REAL *const kp = kept ? kept + (n - n0) * ns * pplane : 0;
            /* Pass 1: P = A2 - D1 Lh in the layers; the wavelet gradient at the sources of the row. */
#pragma omp for collapse(2) schedule(static)
            for (int64_t sh = 0; sh < ns; sh++)
                for (int64_t i = 0; i < nz; i++) {
                    const int64_t o = sh * plane, row = sh * nz + i;
                    SFX(adj_psi_row)(&K, r, Y + o, a2 + o, a3 + o, a4 + o, a5 + o, i, xa, xb, za, zb);
                    if (grad_wavelet)
                        for (int64_t t = P->src_ptr[row]; t < P->src_ptr[row + 1]; t++) {
                            const int64_t q = P->src_order[t], c = i * nx + P->src_x[q];
                            grad_wavelet[q * nt + n] += Y[o + c] * w[c] * K.inv_dh2;
                        }
                }
            /* Pass 2: A1' into X's slot, the receivers' adjoint, and grad_w += A1 S. */
#pragma omp for collapse(2) schedule(static)
            for (int64_t sh = 0; sh < ns; sh++)
                for (int64_t i = 0; i < nz; i++) {
                    const int64_t o = sh * plane, row = sh * nz + i;
                    SFX(adj_row)(&K, r, X + o, Y + o, a2 + o, a3 + o, a4 + o, a5 + o, sigma, i, &rs, &cs);
                    for (int64_t t = P->rec_ptr[row]; t < P->rec_ptr[row + 1]; t++) {
                        const int64_t q = P->rec_order[t];
                        X[o + i * nx + P->rec_x[q]] += grad_rec[(sh * nt + n) * nrec + q % nrec];
                    }
                    if (grad_w && i >= top && i < top + pnz) {
                        REAL *restrict g = grad_w + sh * pplane + (i - top) * pnx;
                        const REAL *restrict s = kp + sh * pplane + (i - top) * pnx;
                        const REAL *restrict y = Y + o + i * nx + left;
                        for (int64_t j = 0; j < pnx; j++) g[j] += y[j] * s[j];
                    }
                }
            /* Pass 3, pointwise in the layers: A4' = b (A4 + w A1), A2' = b P (likewise z). */
#pragma omp for collapse(2) schedule(static)
            for (int64_t sh = 0; sh < ns; sh++)
                for (int64_t i = 0; i < nz; i++) {
                    const int64_t o = sh * plane + i * nx;
                    const REAL *restrict y = Y + o, *restrict wr = w + i * nx;
                    REAL *restrict p2 = a2 + o, *restrict p4 = a4 + o;
                    const int64_t xa_ = xa < xb ? xa : nx, xb_ = xa < xb ? xb : nx;
                    for (int64_t j = 0; j < xa_; j++) {
                        p4[j] = bx[j] * (p4[j] + wr[j] * y[j]);
                        p2[j] = bx[j] * p2[j];
                    }
                    for (int64_t j = xb_; j < nx; j++) {
                        p4[j] = bx[j] * (p4[j] + wr[j] * y[j]);
                        p2[j] = bx[j] * p2[j];
                    }
                    if (i < za || i >= zb) {
                        REAL *restrict p3 = a3 + o, *restrict p5 = a5 + o;
                        const REAL b = bz[i];
                        for (int64_t j = 0; j < nx; j++) {
                            p5[j] = b * (p5[j] + wr[j] * y[j]);
                            p3[j] = b * p3[j];
                        }
                    }
                }
        }
        /* Restore the layout (A0, A1): after k >= 1 steps one slot holds A1 and the other -A0. */
#pragma omp for schedule(static)
        for (int64_t q = 0; q < ns * nz; q++) {
            REAL *restrict s0 = adj + q * nx, *restrict s1 = adj + fs + q * nx;
            if ((n1 - n0) & 1) {
                for (int64_t j = 0; j < nx; j++) {
                    const REAL t = s0[j];
                    s0[j] = -s1[j];
                    s1[j] = t;
                }
            } else {
                for (int64_t j = 0; j < nx; j++) s0[j] = -s0[j];
            }
        }
        leave_ftz(mxcsr);
    }
    return 0;
}

#undef LD
#undef LHX
#undef LHZ
#undef SW
#undef APX
#undef APZ
#undef SPLIT_SAFE
/* ROWS, ALWAYS_INLINE, SWEEP_RADIUS_DISPATCH: used by acoustic_retreat.h, which undefines them. */
