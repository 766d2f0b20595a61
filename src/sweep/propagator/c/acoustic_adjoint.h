/* Template body of the exact discrete adjoint of a block of acoustic steps, included by acoustic.c after
 * acoustic_impl.h (whose helpers and macros it uses) once per precision, with the same REAL / SFX.
 *
 * Adjoint of one step, with (A0..A5) the adjoint of the state after the step and s = w A1:
 *   Lh_x = s + a_x (A4 + s)                              (adjoint of L_x)
 *   P_x  = A2 - D1x Lh_x                                 (adjoint of psi_x'; D1^T = -D1, D2^T = D2)
 *   A0' = -A1
 *   A1' = A0 + 2 A1 + D2x Lh_x + D2z Lh_z - D1x(a_x P_x) - D1z(a_z P_z),  A1'[rec] += grad_rec
 *   A2' = b_x P_x,  A4' = b_x (A4 + s)                   (likewise z)
 *   grad_w += A1 S,  grad_f[src] += A1[src] w[src] / dh^2
 * It is the adjoint of the step restricted to the subspace where psi/zeta vanish outside the absorbing
 * layers (see acoustic_impl.h): its psi/zeta outputs there are left untouched (zero for every state the
 * schedules produce). It needs no forward state. Within a block the two wavefield adjoints are not
 * swapped: A1' overwrites A0's slot and the other slot keeps A1 = -A0', so after the first step the "A0"
 * slot holds -A0 (the sign is folded into the update, exactly) and one pass at the end of the block
 * restores the layout. Parallelism as in the forward (see acoustic_impl.h).
 */

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

/* Pass 2 on [j0, j1) of row i: X <- sigma X + 2 A1 + ... (A1' before the receiver term). sr[k] (k = -R..R)
 * is row i + k of s = w A1 (a zero row outside the grid), computed once per row and step. */
#define SWS(k, j) ((SAFE && ((i) + (k) < 0 || (i) + (k) >= nz || (j) < 0 || (j) >= nx)) ? (REAL)0 : sr[k][j])
#define LHXS(j) ((SAFE && ((j) < 0 || (j) >= nx)) ? (REAL)0 : (sr[0][j] + ax[j] * (a4[i * nx + (j)] + sr[0][j])))
#define LHZS(k, j) ((SAFE && ((i) + (k) < 0 || (i) + (k) >= nz || (j) < 0 || (j) >= nx)) ? (REAL)0 : \
    (sr[k][j] + az[(i) + (k)] * (a5[((i) + (k)) * nx + (j)] + sr[k][j])))
ALWAYS_INLINE void SFX(adj_span)(const SFX(consts) *K_, REAL *restrict a0, const REAL *restrict a1,
                                 const REAL *restrict a2, const REAL *restrict a3, const REAL *restrict a4,
                                 const REAL *restrict a5, const REAL *const *sr, const REAL sigma, int64_t i,
                                 int64_t j0, int64_t j1, const int SAFE, const int DOX, const int DOZ, const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const int64_t nz = K->nz, nx = K->nx;
    const REAL *restrict ax = K->ax, *restrict az = K->az;
#pragma GCC ivdep
    for (int64_t j = j0; j < j1; j++) {
        const int64_t c = i * nx + j;
        REAL tx, tz;
        if (DOX) {
            tx = K->c2[0] * LHXS(j);
            for (int k = 1; k <= R; k++) tx = tx + K->c2[k] * (LHXS(j + k) + LHXS(j - k));
        } else {
            tx = K->c2[0] * SWS(0, j);
            for (int k = 1; k <= R; k++) tx = tx + K->c2[k] * (SWS(0, j + k) + SWS(0, j - k));
        }
        if (DOZ) {
            tz = K->c2[0] * LHZS(0, j);
            for (int k = 1; k <= R; k++) tz = tz + K->c2[k] * (LHZS(k, j) + LHZS(-k, j));
        } else {
            tz = K->c2[0] * SWS(0, j);
            for (int k = 1; k <= R; k++) tz = tz + K->c2[k] * (SWS(k, j) + SWS(-k, j));
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
#undef SWS
#undef LHXS
#undef LHZS

ALWAYS_INLINE void SFX(adj_row_r)(const SFX(consts) *K, REAL *a0, const REAL *a1, const REAL *a2, const REAL *a3,
                                  const REAL *a4, const REAL *a5, const REAL *const *sr, REAL sigma, int64_t i,
                                  const segments *rs, const segments *cs, const int R) {
    const int64_t nx = K->nx;
#define SPAN(j0, j1, S, X, Z) SFX(adj_span)(K, a0, a1, a2, a3, a4, a5, sr, sigma, i, j0, j1, S, X, Z, R)
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

#define DEF(RR)                                                                                            \
    SWEEP_NOINLINE void SFX(adj_psi_row##RR)(const SFX(consts) *K, const REAL *a1, REAL *a2, REAL *a3,        \
                                             const REAL *a4, const REAL *a5, int64_t i, int64_t xa, int64_t xb, \
                                             int64_t za, int64_t zb) {                                       \
        SFX(adj_psi_row_r)(K, a1, a2, a3, a4, a5, i, xa, xb, za, zb, RR);                                    \
    }                                                                                                      \
    SWEEP_NOINLINE void SFX(adj_row##RR)(const SFX(consts) *K, REAL *a0, const REAL *a1, const REAL *a2,      \
                                         const REAL *a3, const REAL *a4, const REAL *a5, const REAL *const *sr, \
                                         REAL sigma, int64_t i, const segments *rs, const segments *cs) {    \
        SFX(adj_row_r)(K, a0, a1, a2, a3, a4, a5, sr, sigma, i, rs, cs, RR);                                 \
    }
SWEEP_PER_RADIUS(DEF)
#undef DEF

static void SFX(adj_psi_row)(const SFX(consts) *K, int r, const REAL *a1, REAL *a2, REAL *a3, const REAL *a4,
                             const REAL *a5, int64_t i, int64_t xa, int64_t xb, int64_t za, int64_t zb) {
#define CALL(R) SFX(adj_psi_row##R)(K, a1, a2, a3, a4, a5, i, xa, xb, za, zb)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

static void SFX(adj_row)(const SFX(consts) *K, int r, REAL *a0, const REAL *a1, const REAL *a2, const REAL *a3,
                         const REAL *a4, const REAL *a5, const REAL *const *sr, REAL sigma, int64_t i,
                         const segments *rs, const segments *cs) {
#define CALL(R) SFX(adj_row##R)(K, a0, a1, a2, a3, a4, a5, sr, sigma, i, rs, cs)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

/* Pass 3 on row i, pointwise in the layers: A4' = b (A4 + w A1), A2' = b P (likewise z). */
static void SFX(adj_decay_row)(const SFX(consts) *K, const REAL *Y, REAL *a2, REAL *a3, REAL *a4, REAL *a5,
                               int64_t i, int64_t xa, int64_t xb, int64_t za, int64_t zb) {
    const int64_t nx = K->nx, o = i * nx;
    const REAL *restrict y = Y + o, *restrict wr = K->w + o, *restrict bx = K->bx;
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
        const REAL b = K->bz[i];
        for (int64_t j = 0; j < nx; j++) {
            p5[j] = b * (p5[j] + wr[j] * y[j]);
            p3[j] = b * p3[j];
        }
    }
}

/* Adjoint steps n1-1 down to n0 in place on `adj` (6, nshots, NZ, NX): on entry the adjoint of the state
 * after step n1-1, on return that of the state at step n0. `kept` (n1 - n0, nshots, nz, nx) holds the
 * snapshots (only read when `grad_w` is given); `grad_rec` (nshots, nt, nrec) the adjoint of the data.
 * Accumulates into `grad_w` (nshots, nz, nx; per shot, so that no two threads add to one cell) and
 * `grad_wavelet` (nshots, nsrc, nt) when not NULL. Returns 0, or 1 if out of memory.
 *
 * The three passes of a step run fused over a band's rows: pass 1 r rows ahead of pass 2, pass 3 r rows
 * behind it, so that every row sees the values the unfused passes would give it (pass 1 of row i reads
 * A5 of rows i-r..i+r, pass 2 reads P of rows i-r..i+r, pass 3 of row i must wait for both). */
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
    const REAL *w = K.w;
    const int64_t xa = P->xa, xb = P->xb, za = P->za, zb = P->zb;
    if (n1 <= n0) return 0;
    sweep_sched S;
    /* Per thread: a ring of 2r + 1 rows of s = w A1, and a zero row. */
    const int64_t L = 2 * r + 1;
    REAL *ring = (REAL *)malloc((size_t)nthreads * (size_t)L * (size_t)nx * sizeof(REAL));
    REAL *zero = (REAL *)calloc((size_t)nx, sizeof(REAL));
    if (!ring || !zero || sched_alloc(&S, ns, nz, nthreads, za + r, zb - r)) {
        free(ring);
        free(zero);
        return 1;
    }
    const int64_t budget = spin_ticks();
#pragma omp parallel num_threads(nthreads)
    {
        const unsigned int mxcsr = enter_ftz();
        const int me = thread_id();
        const sweep_part part = S.plan[me];
        const int64_t a = part.a, b = part.b;
        REAL *const myring = ring + (size_t)me * (size_t)L * (size_t)nx;
        const REAL *sr_a[9];
        const REAL *const *const sr = sr_a + r;
        for (int64_t sh = part.s0; sh < part.s1; sh++) {
            const int64_t o = sh * plane;
            for (int64_t n = n1 - 1; n >= n0; n--) {
                const int64_t k = n1 - 1 - n;
                REAL *const X = ((k & 1) ? adj + fs : adj) + o;       /* sigma A0, overwritten by A1' */
                const REAL *const Y = ((k & 1) ? adj : adj + fs) + o; /* A1 */
                const REAL sigma = k == 0 ? (REAL)1 : (REAL)-1;
                const REAL *const kp = kept ? kept + (n - n0) * ns * pplane : 0;
                if (k > 0) wait_neighbours(S.prog, &part, (int)k, budget);
                /* s = w A1 of row m into its ring slot (A1 is read-only during the step, so the rows beyond
                 * the band's edges are safe to read). */
#define S_ROW(m)                                                                                           \
    do {                                                                                                   \
        const int64_t m_ = (m);                                                                            \
        if (m_ >= 0 && m_ < nz) {                                                                          \
            REAL *restrict d_ = myring + (m_ % L) * nx;                                                    \
            const REAL *restrict w_ = w + m_ * nx, *restrict y_ = Y + m_ * nx;                             \
            for (int64_t j_ = 0; j_ < nx; j_++) d_[j_] = w_[j_] * y_[j_];                                  \
        }                                                                                                  \
    } while (0)
                for (int64_t m = a - r; m < a; m++) S_ROW(m);
                for (int64_t i = a; i < b + 2 * r; i++) {
                    if (i - r < b) S_ROW(i); /* rows up to i2 + r for pass 2 below */
                    /* Pass 1 on row i: P = A2 - D1 Lh in the layers; the wavelet gradient at its sources. */
                    if (i < b) {
                        const int64_t row = sh * nz + i;
                        SFX(adj_psi_row)(&K, r, Y, a2 + o, a3 + o, a4 + o, a5 + o, i, xa, xb, za, zb);
                        if (grad_wavelet)
                            for (int64_t t = P->src_ptr[row]; t < P->src_ptr[row + 1]; t++) {
                                const int64_t q = P->src_order[t], c = i * nx + P->src_x[q];
                                grad_wavelet[q * nt + n] += Y[c] * w[c] * K.inv_dh2;
                            }
                    }
                    /* Pass 2 on row i - r: A1' into X's slot, the receivers' adjoint, grad_w += A1 S. */
                    const int64_t i2 = i - r;
                    if (i2 >= a && i2 < b) {
                        const int64_t row = sh * nz + i2;
                        for (int q = -r; q <= r; q++)
                            sr_a[r + q] = (i2 + q >= 0 && i2 + q < nz) ? myring + ((i2 + q) % L) * nx : zero;
                        SFX(adj_row)(&K, r, X, Y, a2 + o, a3 + o, a4 + o, a5 + o, sr, sigma, i2, &rs, &cs);
                        for (int64_t t = P->rec_ptr[row]; t < P->rec_ptr[row + 1]; t++) {
                            const int64_t q = P->rec_order[t];
                            X[i2 * nx + P->rec_x[q]] += grad_rec[(sh * nt + n) * nrec + q % nrec];
                        }
                        if (grad_w && i2 >= top && i2 < top + pnz) {
                            REAL *restrict g = grad_w + sh * pplane + (i2 - top) * pnx;
                            const REAL *restrict s = kp + sh * pplane + (i2 - top) * pnx;
                            const REAL *restrict y = Y + i2 * nx + left;
                            for (int64_t j = 0; j < pnx; j++) g[j] += y[j] * s[j];
                        }
                    }
                    /* Pass 3 on row i - 2r. */
                    const int64_t i3 = i - 2 * r;
                    if (i3 >= a && i3 < b) SFX(adj_decay_row)(&K, Y, a2 + o, a3 + o, a4 + o, a5 + o, i3, xa, xb, za, zb);
                }
                progress_post(S.prog + me, (int)(k + 1));
            }
            /* Restore the layout (A0, A1): after k >= 1 steps one slot holds A1 and the other -A0. */
            wait_neighbours(S.prog, &part, (int)(n1 - n0), budget);
            for (int64_t i = a; i < b; i++) {
                REAL *restrict s0 = adj + o + i * nx, *restrict s1 = adj + fs + o + i * nx;
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
        }
        leave_ftz(mxcsr);
    }
#undef S_ROW
    sched_free(&S);
    free(ring);
    free(zero);
    return 0;
}

#undef LD
#undef LHX
#undef LHZ
#undef SW
#undef APX
#undef APZ
#undef SPLIT_SAFE
