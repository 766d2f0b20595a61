/* Template body of the acoustic kernels, included by acoustic.c once per precision with REAL (float or
 * double) and SFX(name) (appends _f32 / _f64) defined.
 *
 * One step on the padded grid (fields zero outside it), exactly as the eager stepper:
 *   psi_x' = b_x psi_x + a_x D1x u                      (x-PML columns; zero elsewhere)
 *   L_x    = D2x u + D1x psi_x'
 *   zeta_x' = b_x zeta_x + a_x L_x                      (x-PML columns)
 *   (same along z), S = L_x + zeta_x' + L_z + zeta_z'
 *   u_next = 2 u - u_prev + w S,  u_next[src] += w[src] f[n] / dh^2
 * State (6, nshots, NZ, NX): u_prev, u, psi_x, psi_z, zeta_x, zeta_z.
 *
 * The auxiliaries psi/zeta vanish wherever a = 0 and b = 1 (they start at zero and stay there), so the
 * kernels only touch them in the absorbing layers, and the adjoint is the adjoint of the step restricted
 * to that invariant subspace (states whose auxiliaries vanish outside the layers): its psi/zeta outputs
 * outside the layers are left untouched (zero for every state the schedules produce).
 *
 * Adjoint of one step, with (A0..A5) the adjoint of the state after the step and s = w A1:
 *   Lh_x = s + a_x (A4 + s)                              (adjoint of L_x)
 *   P_x  = A2 - D1x Lh_x                                 (adjoint of psi_x'; D1^T = -D1, D2^T = D2)
 *   A0' = -A1
 *   A1' = A0 + 2 A1 + D2x Lh_x + D2z Lh_z - D1x(a_x P_x) - D1z(a_z P_z),  A1'[rec] += grad_rec
 *   A2' = b_x P_x,  A4' = b_x (A4 + s)                   (likewise z)
 *   grad_w += A1 S (+ A1[src] f / dh^2),  grad_f[src] += A1[src] w[src] / dh^2
 */

typedef struct {
    int64_t nz, nx;
    REAL c1[5], c2[5], inv_dh, inv_dh2;
    const REAL *w, *ax, *bx, *az, *bz;
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
}

/* Field value at (i, j), zero outside the padded grid when SAFE (a compile-time constant). */
#define LD(f, i, j) ((SAFE && ((i) < 0 || (i) >= nz || (j) < 0 || (j) >= nx)) ? (REAL)0 : (f)[(i) * nx + (j)])
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* ---- forward ---------------------------------------------------------------------------------- */

/* psi' = b psi + a D1 u on the absorbing cells of row i: x-PML columns, and the whole row if it is a
 * z-PML row. `pin` and `pout` may alias (pointwise update). */
ALWAYS_INLINE void SFX(psi_row_r)(const SFX(consts) *K, const REAL *u, const REAL *pxin, REAL *pxout,
                                  const REAL *pzin, REAL *pzout, int64_t i, int64_t xa, int64_t xb,
                                  int64_t za, int64_t zb, const int R) {
    const int64_t nz = K->nz, nx = K->nx;
    const REAL inv_dh = K->inv_dh;
    {
        const int SAFE = 1;
        for (int64_t j = xa > 0 ? 0 : xb; j < nx; j = (j + 1 == xa) ? xb : j + 1) {
            const int64_t c = i * nx + j;
            REAL d = K->c1[1] * (LD(u, i, j + 1) - LD(u, i, j - 1));
            for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LD(u, i, j + k) - LD(u, i, j - k));
            pxout[c] = K->bx[j] * pxin[c] + K->ax[j] * (d * inv_dh);
        }
    }
    if (i >= za && i < zb) return;
    const REAL a = K->az[i], b = K->bz[i];
    if (i < R || i >= nz - R) {
        const int SAFE = 1;
        for (int64_t j = 0; j < nx; j++) {
            const int64_t c = i * nx + j;
            REAL d = K->c1[1] * (LD(u, i + 1, j) - LD(u, i - 1, j));
            for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LD(u, i + k, j) - LD(u, i - k, j));
            pzout[c] = b * pzin[c] + a * (d * inv_dh);
        }
    } else {
        const int SAFE = 0;
        for (int64_t j = 0; j < nx; j++) {
            const int64_t c = i * nx + j;
            REAL d = K->c1[1] * (LD(u, i + 1, j) - LD(u, i - 1, j));
            for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LD(u, i + k, j) - LD(u, i - k, j));
            pzout[c] = b * pzin[c] + a * (d * inv_dh);
        }
    }
}

/* S = L_x + zeta_x' + L_z + zeta_z' at (i, j) from u and the new psi; writes the new zeta when the
 * cell is near a layer (DOX / DOZ) and `zx`/`zz` are given. */
ALWAYS_INLINE REAL SFX(rhs)(const SFX(consts) *K, const REAL *restrict u, const REAL *restrict px,
                            const REAL *restrict pz, const REAL *zxin, REAL *zxout, const REAL *zzin,
                            REAL *zzout, int64_t i, int64_t j, const int SAFE, const int DOX, const int DOZ,
                            const int R) {
    const int64_t nz = K->nz, nx = K->nx;
    const int64_t c = i * nx + j;
    const REAL uc = u[c];
    REAL dxx = K->c2[0] * uc, dzz = K->c2[0] * uc;
    for (int k = 1; k <= R; k++) {
        dxx = dxx + K->c2[k] * (LD(u, i, j + k) + LD(u, i, j - k));
        dzz = dzz + K->c2[k] * (LD(u, i + k, j) + LD(u, i - k, j));
    }
    REAL lx = dxx * K->inv_dh2, lz = dzz * K->inv_dh2;
    REAL s;
    if (DOX) {
        REAL d = K->c1[1] * (LD(px, i, j + 1) - LD(px, i, j - 1));
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LD(px, i, j + k) - LD(px, i, j - k));
        lx = lx + d * K->inv_dh;
        const REAL zn = K->bx[j] * zxin[c] + K->ax[j] * lx;
        if (zxout) zxout[c] = zn;
        s = lx + zn;
    } else {
        s = lx;
    }
    if (DOZ) {
        REAL d = K->c1[1] * (LD(pz, i + 1, j) - LD(pz, i - 1, j));
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LD(pz, i + k, j) - LD(pz, i - k, j));
        lz = lz + d * K->inv_dh;
        const REAL zn = K->bz[i] * zzin[c] + K->az[i] * lz;
        if (zzout) zzout[c] = zn;
        s = s + lz;
        s = s + zn;
    } else {
        s = s + lz;
    }
    return s;
}

ALWAYS_INLINE void SFX(fwd_span)(const SFX(consts) *K, const REAL *restrict u, REAL *restrict up,
                                 const REAL *restrict px, const REAL *restrict pz, REAL *restrict zx,
                                 REAL *restrict zz, int64_t i, int64_t j0, int64_t j1, const int SAFE,
                                 const int DOX, const int DOZ, const int R) {
    const REAL *restrict w = K->w;
    const int64_t nx = K->nx;
#pragma GCC ivdep
    for (int64_t j = j0; j < j1; j++) {
        const int64_t c = i * nx + j;
        const REAL s = SFX(rhs)(K, u, px, pz, zx, zx, zz, zz, i, j, SAFE, DOX, DOZ, R);
        up[c] = 2 * u[c] - up[c] + w[c] * s;
    }
}

/* u_prev <- u_next on row i (and the new zeta near the layers). */
ALWAYS_INLINE void SFX(fwd_row_r)(const SFX(consts) *K, const REAL *u, REAL *up, const REAL *px,
                                  const REAL *pz, REAL *zx, REAL *zz, int64_t i, const segments *rs,
                                  const segments *cs, const int R) {
    const int64_t nx = K->nx;
    if (i < rs->s1 || i >= rs->s4) {
        SFX(fwd_span)(K, u, up, px, pz, zx, zz, i, 0, nx, 1, 1, 1, R);
        return;
    }
    SFX(fwd_span)(K, u, up, px, pz, zx, zz, i, 0, cs->s1, 1, 1, 1, R);
    if (i < rs->p1 || i >= rs->p2) {
        SFX(fwd_span)(K, u, up, px, pz, zx, zz, i, cs->s1, cs->p1, 0, 1, 1, R);
        SFX(fwd_span)(K, u, up, px, pz, zx, zz, i, cs->p1, cs->p2, 0, 0, 1, R);
        SFX(fwd_span)(K, u, up, px, pz, zx, zz, i, cs->p2, cs->s4, 0, 1, 1, R);
    } else {
        SFX(fwd_span)(K, u, up, px, pz, zx, zz, i, cs->s1, cs->p1, 0, 1, 0, R);
        SFX(fwd_span)(K, u, up, px, pz, zx, zz, i, cs->p1, cs->p2, 0, 0, 0, R);
        SFX(fwd_span)(K, u, up, px, pz, zx, zz, i, cs->p2, cs->s4, 0, 1, 0, R);
    }
    SFX(fwd_span)(K, u, up, px, pz, zx, zz, i, cs->s4, nx, 1, 1, 1, R);
}

/* Dispatch on the stencil radius so that every inner loop has a compile-time length. */
#define SWEEP_RADIUS_DISPATCH(r, call)                                                                   \
    switch (r) {                                                                                         \
    case 1: call(1); break;                                                                              \
    case 2: call(2); break;                                                                              \
    case 3: call(3); break;                                                                              \
    default: call(4); break;                                                                             \
    }

static void SFX(psi_row)(const SFX(consts) *K, int r, const REAL *u, const REAL *pxin, REAL *pxout,
                         const REAL *pzin, REAL *pzout, int64_t i, int64_t xa, int64_t xb, int64_t za,
                         int64_t zb) {
#define CALL(R) SFX(psi_row_r)(K, u, pxin, pxout, pzin, pzout, i, xa, xb, za, zb, R)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

static void SFX(fwd_row)(const SFX(consts) *K, int r, const REAL *u, REAL *up, const REAL *px,
                         const REAL *pz, REAL *zx, REAL *zz, int64_t i, const segments *rs,
                         const segments *cs) {
#define CALL(R) SFX(fwd_row_r)(K, u, up, px, pz, zx, zz, i, rs, cs, R)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

/* Steps n0 -> n1 in place on `state` (6, nshots, NZ, NX). `record` (nshots, nt, nrec), if not NULL,
 * gets u at the receivers at the start of each step; `keep` (n1 - n0, 6, nshots, NZ, NX), if not NULL,
 * gets the state at the start of each step. Returns 0. */
int SFX(sweep_acoustic_forward)(const sweep_problem *P, REAL *state, int64_t n0, int64_t n1, REAL *record,
                                REAL *keep, int nthreads) {
    SFX(consts) K;
    SFX(load_consts)(P, &K);
    const int64_t ns = P->nshots, nz = P->nz, nx = P->nx, plane = nz * nx, fs = ns * plane;
    const int r = (int)P->radius;
    const segments rs = make_segments(nz, r, P->za, P->zb), cs = make_segments(nx, r, P->xa, P->xb);
    REAL *const s0 = state, *const s1 = state + fs;
    REAL *const px = state + 2 * fs, *const pz = state + 3 * fs, *const zx = state + 4 * fs,
                *const zz = state + 5 * fs;
    const REAL *wav = (const REAL *)P->wavelet;
    const REAL *w = K.w;
#pragma omp parallel num_threads(nthreads)
    {
        const unsigned int mxcsr = enter_ftz();
        for (int64_t n = n0; n < n1; n++) {
            /* u_next overwrites u_prev, so the two wavefields swap slots every step. */
            REAL *const up = ((n - n0) & 1) ? s1 : s0;
            const REAL *const u = ((n - n0) & 1) ? s0 : s1;
            if (keep) {
                REAL *kp = keep + (n - n0) * 6 * fs;
#pragma omp for schedule(static)
                for (int64_t q = 0; q < 6 * ns * nz; q++) {
                    const int64_t f = q / (ns * nz), row = q % (ns * nz);
                    const REAL *src = (f == 0 ? up : f == 1 ? u : state + f * fs) + row * nx;
                    memcpy(kp + q * nx, src, (size_t)nx * sizeof(REAL));
                }
            }
            if (record) {
#pragma omp for schedule(static)
                for (int64_t q = 0; q < ns * P->nrec; q++) {
                    const int64_t sh = q / P->nrec;
                    record[(sh * P->nt + n) * P->nrec + q % P->nrec] =
                        u[sh * plane + P->rec_z[q] * nx + P->rec_x[q]];
                }
            }
#pragma omp for collapse(2) schedule(static)
            for (int64_t sh = 0; sh < ns; sh++)
                for (int64_t i = 0; i < nz; i++) {
                    const int64_t o = sh * plane;
                    SFX(psi_row)(&K, r, u + o, px + o, px + o, pz + o, pz + o, i, P->xa, P->xb, P->za, P->zb);
                }
#pragma omp for collapse(2) schedule(static)
            for (int64_t sh = 0; sh < ns; sh++)
                for (int64_t i = 0; i < nz; i++) {
                    const int64_t o = sh * plane;
                    SFX(fwd_row)(&K, r, u + o, up + o, px + o, pz + o, zx + o, zz + o, i, &rs, &cs);
                }
            /* Sources in a fixed serial order: several may share a cell. */
#pragma omp single
            for (int64_t q = 0; q < ns * P->nsrc; q++) {
                const int64_t c = P->src_z[q] * nx + P->src_x[q];
                up[(q / P->nsrc) * plane + c] += w[c] * wav[q * P->nt + n] * K.inv_dh2;
            }
        }
        if ((n1 - n0) & 1) {
            /* An odd number of steps left u in slot 0: swap back to (u_prev, u). */
#pragma omp for schedule(static)
            for (int64_t q = 0; q < ns * nz; q++) {
                REAL *a = s0 + q * nx, *b = s1 + q * nx;
                for (int64_t j = 0; j < nx; j++) {
                    const REAL t = a[j];
                    a[j] = b[j];
                    b[j] = t;
                }
            }
        }
        leave_ftz(mxcsr);
    }
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

/* Pass 1 on row i's absorbing cells: the forward psi' into scratch (for S), and P = A2 - D1 Lh into A2/A3. */
ALWAYS_INLINE void SFX(adj_psi_row_r)(const SFX(consts) *K, const REAL *a1, REAL *a2, REAL *a3, const REAL *a4,
                                      const REAL *a5, int64_t i, int64_t xa, int64_t xb, int64_t za, int64_t zb,
                                      const int R) {
    const int64_t nz = K->nz, nx = K->nx;
    const REAL *w = K->w, *ax = K->ax, *az = K->az;
    const int SAFE = 1;
    for (int64_t j = xa > 0 ? 0 : xb; j < nx; j = (j + 1 == xa) ? xb : j + 1) {
        REAL d = K->c1[1] * (LHX(i, j + 1) - LHX(i, j - 1));
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LHX(i, j + k) - LHX(i, j - k));
        a2[i * nx + j] = a2[i * nx + j] - d * K->inv_dh;
    }
    if (i >= za && i < zb) return;
    for (int64_t j = 0; j < nx; j++) {
        REAL d = K->c1[1] * (LHZ(i + 1, j) - LHZ(i - 1, j));
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (LHZ(i + k, j) - LHZ(i - k, j));
        a3[i * nx + j] = a3[i * nx + j] - d * K->inv_dh;
    }
}

/* Pass 2 on [j0, j1) of row i: A0 <- A1' (before the receiver term) and grad_w += A1 S. */
ALWAYS_INLINE void SFX(adj_span)(const SFX(consts) *K, REAL *restrict a0, const REAL *restrict a1,
                                 const REAL *restrict a2, const REAL *restrict a3, const REAL *restrict a4,
                                 const REAL *restrict a5, const REAL *restrict fu, const REAL *restrict fpx,
                                 const REAL *restrict fpz, const REAL *restrict fzx, const REAL *restrict fzz,
                                 REAL *restrict gw, int64_t i, int64_t j0, int64_t j1, const int SAFE,
                                 const int DOX, const int DOZ, const int R, const int GRAD) {
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
        REAL t = a0[c] + 2 * a1[c] + tx * K->inv_dh2 + tz * K->inv_dh2;
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
        if (GRAD) gw[c] += a1[c] * SFX(rhs)(K, fu, fpx, fpz, fzx, 0, fzz, 0, i, j, SAFE, DOX, DOZ, R);
        a0[c] = t;
    }
}

ALWAYS_INLINE void SFX(adj_row_r)(const SFX(consts) *K, REAL *a0, const REAL *a1, const REAL *a2, const REAL *a3,
                                  const REAL *a4, const REAL *a5, const REAL *fu, const REAL *fpx, const REAL *fpz,
                                  const REAL *fzx, const REAL *fzz, REAL *gw, int64_t i, const segments *rs,
                                  const segments *cs, const int R) {
    const int64_t nx = K->nx;
    /* The model gradient is a compile-time switch: a run-time test in the loop defeats vectorisation. */
#define SPAN(j0, j1, S, X, Z)                                                                            \
    do {                                                                                                 \
        if (gw)                                                                                          \
            SFX(adj_span)(K, a0, a1, a2, a3, a4, a5, fu, fpx, fpz, fzx, fzz, gw, i, j0, j1, S, X, Z, R, 1); \
        else                                                                                             \
            SFX(adj_span)(K, a0, a1, a2, a3, a4, a5, fu, fpx, fpz, fzx, fzz, gw, i, j0, j1, S, X, Z, R, 0); \
    } while (0)
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
                         const REAL *a4, const REAL *a5, const REAL *fu, const REAL *fpx, const REAL *fpz,
                         const REAL *fzx, const REAL *fzz, REAL *gw, int64_t i, const segments *rs,
                         const segments *cs) {
#define CALL(R) SFX(adj_row_r)(K, a0, a1, a2, a3, a4, a5, fu, fpx, fpz, fzx, fzz, gw, i, rs, cs, R)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

/* Adjoint of step n in place on `adj` (6, nshots, NZ, NX), given the forward state `fstate` at the start
 * of step n and the adjoint `grad_rec` of its receiver samples (element [shot, rec] at
 * grad_rec[shot * grad_rec_stride + rec]). Accumulates into `grad_w` (nshots, NZ, NX; per shot, so
 * that no two threads add to one cell) and `grad_wavelet` (nshots, nsrc, nt) when not NULL.
 * `scratch` (2, nshots, NZ, NX) must be zero outside the absorbing layers (it holds the forward psi'
 * there). Returns 0. */
int SFX(sweep_acoustic_adjoint)(const sweep_problem *P, REAL *adj, const REAL *fstate, int64_t n,
                                const REAL *grad_rec, int64_t grad_rec_stride, REAL *grad_w,
                                REAL *grad_wavelet, REAL *scratch, int nthreads) {
    SFX(consts) K;
    SFX(load_consts)(P, &K);
    const int64_t ns = P->nshots, nz = P->nz, nx = P->nx, plane = nz * nx, fs = ns * plane;
    const int r = (int)P->radius;
    const segments rs = make_segments(nz, r, P->za, P->zb), cs = make_segments(nx, r, P->xa, P->xb);
    REAL *const a0 = adj, *const a1 = adj + fs, *const a2 = adj + 2 * fs, *const a3 = adj + 3 * fs,
                *const a4 = adj + 4 * fs, *const a5 = adj + 5 * fs;
    const REAL *const fu = fstate + fs, *const fpx = fstate + 2 * fs, *const fpz = fstate + 3 * fs,
               *const fzx = fstate + 4 * fs, *const fzz = fstate + 5 * fs;
    REAL *const spx = scratch, *const spz = scratch + fs;
    const REAL *wav = (const REAL *)P->wavelet;
    const REAL *w = K.w, *bx = K.bx, *bz = K.bz;
#pragma omp parallel num_threads(nthreads)
    {
        const unsigned int mxcsr = enter_ftz();
        /* Sources first, while A1 is still the adjoint of u_next; serial because they may share cells. */
#pragma omp single
        for (int64_t q = 0; q < ns * P->nsrc; q++) {
            const int64_t sh = q / P->nsrc, c = P->src_z[q] * nx + P->src_x[q];
            const REAL g = a1[sh * plane + c] * K.inv_dh2;
            if (grad_wavelet) grad_wavelet[q * P->nt + n] += g * w[c];
            if (grad_w) grad_w[sh * plane + c] += g * wav[q * P->nt + n];
        }
#pragma omp for collapse(2) schedule(static)
        for (int64_t sh = 0; sh < ns; sh++)
            for (int64_t i = 0; i < nz; i++) {
                const int64_t o = sh * plane;
                if (grad_w)
                    SFX(psi_row)(&K, r, fu + o, fpx + o, spx + o, fpz + o, spz + o, i, P->xa, P->xb, P->za, P->zb);
                SFX(adj_psi_row)(&K, r, a1 + o, a2 + o, a3 + o, a4 + o, a5 + o, i, P->xa, P->xb, P->za, P->zb);
            }
#pragma omp for collapse(2) schedule(static)
        for (int64_t sh = 0; sh < ns; sh++)
            for (int64_t i = 0; i < nz; i++) {
                const int64_t o = sh * plane;
                SFX(adj_row)(&K, r, a0 + o, a1 + o, a2 + o, a3 + o, a4 + o, a5 + o, fu + o, spx + o, spz + o,
                             fzx + o, fzz + o, grad_w ? grad_w + o : 0, i, &rs, &cs);
            }
        /* Pass 3, pointwise: (A0, A1) <- (-A1, A1'), and the auxiliaries' adjoints in the layers. */
#pragma omp for collapse(2) schedule(static)
        for (int64_t sh = 0; sh < ns; sh++)
            for (int64_t i = 0; i < nz; i++) {
                const int64_t o = sh * plane + i * nx;
                for (int64_t j = P->xa > 0 ? 0 : P->xb; j < nx; j = (j + 1 == P->xa) ? P->xb : j + 1) {
                    const int64_t c = o + j;
                    a4[c] = bx[j] * (a4[c] + w[i * nx + j] * a1[c]);
                    a2[c] = bx[j] * a2[c];
                }
                if (i < P->za || i >= P->zb) {
                    for (int64_t j = 0; j < nx; j++) {
                        const int64_t c = o + j;
                        a5[c] = bz[i] * (a5[c] + w[i * nx + j] * a1[c]);
                        a3[c] = bz[i] * a3[c];
                    }
                }
                for (int64_t j = 0; j < nx; j++) {
                    const REAL v = a1[o + j];
                    a1[o + j] = a0[o + j];
                    a0[o + j] = -v;
                }
            }
#pragma omp single
        for (int64_t q = 0; q < ns * P->nrec; q++) {
            const int64_t sh = q / P->nrec;
            a1[sh * plane + P->rec_z[q] * nx + P->rec_x[q]] += grad_rec[sh * grad_rec_stride + q % P->nrec];
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
#undef ALWAYS_INLINE
#undef SWEEP_RADIUS_DISPATCH
