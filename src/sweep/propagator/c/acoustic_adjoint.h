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
 * VRZ (SWEEP_VRZ 1): D2 Lh becomes the (symmetric) d/da (beta dLh/da), a P becomes beta a P, grad_f carries
 * beta[src], and the model gradient is (g_K, g_beta) per shot: g_K += A1 S_n and, with mu = K A1, the pair
 * terms of adj_image_b plus mu f[n] / dh^2 at the sources.
 * It is the adjoint of the step restricted to the subspace where psi/zeta vanish outside the absorbing
 * layers (see acoustic_impl.h): its psi/zeta outputs there are left untouched (zero for every state the
 * schedules produce). It needs no forward state. Within a block the two wavefield adjoints are not
 * swapped: A1' overwrites A0's slot and the other slot keeps A1 = -A0', so after the first step the "A0"
 * slot holds -A0 (the sign is folded into the update, exactly) and one pass at the end of the block
 * restores the layout. Parallelism as in the forward (see acoustic_impl.h).
 *
 * Outside the layers a = 0 and A2..A5 = 0, so Lh = s there: the kernels keep s rows, Lh_z rows (z-layer
 * rows only) and a_z P_z rows (likewise) in per-thread rings of padded rows (zeros beyond the left and right
 * edges, a zero row beyond the top and bottom), and Lh_x and a_x P_x of the current row in two padded rows.
 * The x-layer terms are local to a row, so all of a row's x-layer work runs with its A1' (stage C below), on
 * an edge span of whole chunks: no stencil needs a bounds check, and no short loop has a scalar remainder.
 */

/* The row of beta in a row's buoyancy terms (VRZ), or none. */
#if SWEEP_VRZ
#define SWEEP_BX(B) ((B)->x)
#else
#define SWEEP_BX(B) ((const REAL *)0)
#endif

/* Cells per chunk of the edge spans: a cache line, a whole number of vectors on every code path. */
#define ADJ_V ((int64_t)(64 / sizeof(REAL)))
#define ADJ_UP(n) round_up((n), ADJ_V)

/* for (j = j0; j < j1; j++), in chunks of ADJ_V when CH (j1 - j0 is then a multiple of it): each chunk
 * compiles to straight vector code, so that a short span costs no remainder loop. No loop using it carries
 * a dependency from one cell to the next. */
#define ADJ_FOR(j, j0, j1, CH)                                                                            \
    _Pragma("GCC ivdep") for (int64_t jb_ = (j0); jb_ < (j1); jb_ += (CH) ? ADJ_V : 1)                    \
        for (int64_t l_ = 0, j = jb_; l_ < ((CH) ? ADJ_V : 1); l_++, j++)

/* Stage A on row m: s = w A1 into s; on a z-layer row (Z) also Lh_z into hz and A5' = b_z (A5 + s), the
 * row's only use of A5. */
ALWAYS_INLINE void SFX(adj_s_row_r)(const SFX(consts) *K, const REAL *restrict y, REAL *restrict a5,
                                    REAL *restrict s, REAL *restrict hz, int64_t m, const int Z) {
    const int64_t nx = K->nx;
#if SWEEP_VRZ
    const REAL *restrict wr = SFX(crow)(K, K->w, m);
#else
    const REAL *restrict wr = K->w + m * nx;
#endif
    const REAL a = Z ? K->az[m] : 0, b = Z ? K->bz[m] : 1;
    for (int64_t j = 0; j < nx; j++) {
        const REAL sj = wr[j] * y[j];
        s[j] = sj;
        if (Z) {
            const REAL q = a5[j] + sj;
            hz[j] = sj + a * q;
            a5[j] = b * q;
        }
    }
}

SWEEP_NOINLINE void SFX(adj_s_row)(const SFX(consts) *K, const REAL *y, REAL *a5, REAL *s, REAL *hz, int64_t m,
                                   int z) {
    if (z)
        SFX(adj_s_row_r)(K, y, a5, s, hz, m, 1);
    else
        SFX(adj_s_row_r)(K, y, a5, s, hz, m, 0);
}

/* Stage B on z-layer row p: P_z = A3 - D1z Lh_z (hz: rows p-R..p+R), a_z P_z into pz, A3' = b_z P_z. */
ALWAYS_INLINE void SFX(adj_pz_row_r)(const SFX(consts) *K_, const REAL *const *hz, REAL *restrict a3,
                                     REAL *restrict pz, int64_t p, const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const REAL a = K->az[p], b = K->bz[p];
#if SWEEP_VRZ
    const REAL *restrict bb = SFX(crow)(K, K->b, p); /* psi_z' carries beta: a_z beta P_z */
#else
    const REAL *bb = 0;
#endif
    for (int64_t j = 0; j < K->nx; j++) {
        REAL d = K->c1[1] * (hz[1][j] - hz[-1][j]);
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (hz[k][j] - hz[-k][j]);
        const REAL P = a3[j] - d * K->inv_dh;
        pz[j] = SFX(beta)(bb, j, a * P);
        a3[j] = b * P;
    }
}

/* A1' of row i on [j0, j1): a0 <- sigma a0 + 2 a1 + D2x hx + D2z hz - D1x px - D1z pz (hx, px: padded rows;
 * hz, pz: rows i-R..i+R), the D1 terms only where they can be nonzero (DOX: near an x layer, DOZ: near a z
 * layer). */
ALWAYS_INLINE void SFX(adj_a1_span)(const SFX(consts) *K, REAL *restrict a0, const REAL *restrict a1,
                                    const REAL *restrict hx, const REAL *restrict px, const REAL *const *hz,
                                    const REAL *const *pz, const SFX(brow) *B, const REAL sigma, int64_t j0,
                                    int64_t j1, const int DOX, const int DOZ, const int CH, const int R) {
#if SWEEP_VRZ
    /* The operator is symmetric (acoustic_cell.h): the forward's pair form on Lh_x and Lh_z. */
    const REAL *restrict bx = B->x;
    const REAL *br_a[9];
    for (int k = -R; k <= R; k++) br_a[R + k] = B->z[R + k];
    const REAL *const *const br = br_a + R;
#else
    (void)B;
#endif
    ADJ_FOR(j, j0, j1, CH) {
#if SWEEP_VRZ
        const REAL hxc = hx[j], hzc = hz[0][j];
        REAL eb = K->e[1] * bx[j];
        REAL tx = (eb + K->e[1] * bx[j + 1]) * (hx[j + 1] - hxc) + (eb + K->e[1] * bx[j - 1]) * (hx[j - 1] - hxc);
        REAL tz = (eb + K->e[1] * br[1][j]) * (hz[1][j] - hzc) + (eb + K->e[1] * br[-1][j]) * (hz[-1][j] - hzc);
        for (int k = 2; k <= R; k++) {
            eb = K->e[k] * bx[j];
            tx = tx + (eb + K->e[k] * bx[j + k]) * (hx[j + k] - hxc) + (eb + K->e[k] * bx[j - k]) * (hx[j - k] - hxc);
            tz = tz + (eb + K->e[k] * br[k][j]) * (hz[k][j] - hzc) + (eb + K->e[k] * br[-k][j]) * (hz[-k][j] - hzc);
        }
        REAL t = sigma * a0[j] + 2 * a1[j] + (tx + tz);
#else
        REAL tx = K->c2[0] * hx[j], tz = K->c2[0] * hz[0][j];
        for (int k = 1; k <= R; k++) {
            tx = tx + K->c2[k] * (hx[j + k] + hx[j - k]);
            tz = tz + K->c2[k] * (hz[k][j] + hz[-k][j]);
        }
        REAL t = sigma * a0[j] + 2 * a1[j] + (tx + tz) * K->inv_dh2;
#endif
        if (DOX) {
            REAL d = K->c1[1] * (px[j + 1] - px[j - 1]);
            for (int k = 2; k <= R; k++) d = d + K->c1[k] * (px[j + k] - px[j - k]);
            t = t - d * K->inv_dh;
        }
        if (DOZ) {
            REAL d = K->c1[1] * (pz[1][j] - pz[-1][j]);
            for (int k = 2; k <= R; k++) d = d + K->c1[k] * (pz[k][j] - pz[-k][j]);
            t = t - d * K->inv_dh;
        }
        a0[j] = t;
    }
}

/* upd on an x-layer column j (j < xa or j >= xb), else old. Two selects on 32-bit compares: gcc vectorises
 * them as blends, where a short-circuit || or 64-bit compares leave a branch or lane shuffles. */
ALWAYS_INLINE REAL SFX(adj_in_layer)(int64_t j, int64_t xa, int64_t xb, REAL upd, REAL old) {
    const REAL v = (int)j < (int)xa ? upd : old;
    return (int)j >= (int)xb ? upd : v;
}

/* Stage C on the edge span [j0, j1) of row i, which holds all the x-layer cells it touches ([0, xa) and
 * [xb, nx) are the layers) and whose R cells either side are outside them: Lh_x into hx, A4' = b_x (A4 + s),
 * then P_x = A2 - D1x Lh_x, a_x P_x into px and A2' = b_x P_x, then A1'. The x-layer updates run on every
 * cell of the span, selected to the layer cells (a_x = 0 elsewhere, so hx = s and px = 0 there). */
ALWAYS_INLINE void SFX(adj_edge_span)(const SFX(consts) *K, REAL *restrict a0, const REAL *restrict a1,
                                      REAL *restrict a2, REAL *restrict a4, const REAL *restrict s,
                                      REAL *restrict hx, REAL *restrict px, const REAL *const *hz,
                                      const REAL *const *pz, const SFX(brow) *B, const REAL sigma, int64_t j0,
                                      int64_t j1, int64_t xa, int64_t xb, const int DOZ, const int CH, const int R) {
    const REAL *restrict ax = K->ax, *restrict bx = K->bx;
    for (int k = 1; k <= R; k++) { /* s beyond the span (zero beyond the grid: s rows are padded) */
        hx[j0 - k] = s[j0 - k];
        hx[j1 - 1 + k] = s[j1 - 1 + k];
    }
    ADJ_FOR(j, j0, j1, CH) {
        const REAL old = a4[j], q = old + s[j];
        hx[j] = s[j] + ax[j] * q;
        a4[j] = SFX(adj_in_layer)(j, xa, xb, bx[j] * q, old);
    }
    ADJ_FOR(j, j0, j1, CH) {
        REAL d = K->c1[1] * (hx[j + 1] - hx[j - 1]);
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (hx[j + k] - hx[j - k]);
        const REAL old = a2[j], P = old - d * K->inv_dh;
        px[j] = SFX(beta)(SWEEP_BX(B), j, ax[j] * P); /* psi_x' carries beta */
        a2[j] = SFX(adj_in_layer)(j, xa, xb, bx[j] * P, old);
    }
    SFX(adj_a1_span)(K, a0, a1, hx, px, hz, pz, B, sigma, j0, j1, 1, DOZ, CH, R);
}

/* Stage C on row i (a0..a4: its rows; s: its s row): A1' and the x-layer updates. With chunked edges (CH) the
 * row is [0, xl) | [xl, xr) | [xr, nx), the middle span free of x-layer terms (Lh_x = s there); otherwise one
 * edge span covers the row. */
ALWAYS_INLINE void SFX(adj_row_r)(const SFX(consts) *K_, REAL *a0, const REAL *a1, REAL *a2, REAL *a4,
                                  const REAL *s, REAL *hx, REAL *px, const REAL *const *hz, const REAL *const *pz,
                                  const SFX(brow) *B, REAL sigma, int64_t xa, int64_t xb, int64_t xl, int64_t xr, const int DOZ,
                                  const int CH, const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    if (CH) {
        SFX(adj_edge_span)(K, a0, a1, a2, a4, s, hx, px, hz, pz, B, sigma, 0, xl, xa, xb, DOZ, 1, R);
        SFX(adj_a1_span)(K, a0, a1, s, px, hz, pz, B, sigma, xl, xr, 0, DOZ, 0, R);
        SFX(adj_edge_span)(K, a0, a1, a2, a4, s, hx, px, hz, pz, B, sigma, xr, K->nx, xa, xb, DOZ, 1, R);
    } else {
        SFX(adj_edge_span)(K, a0, a1, a2, a4, s, hx, px, hz, pz, B, sigma, 0, K->nx, xa, xb, DOZ, 0, R);
    }
}

#define DEF(RR)                                                                                            \
    SWEEP_NOINLINE void SFX(adj_pz_row##RR)(const SFX(consts) *K, const REAL *const *hz, REAL *a3, REAL *pz,  \
                                            int64_t p) {                                                     \
        SFX(adj_pz_row_r)(K, hz, a3, pz, p, RR);                                                             \
    }                                                                                                      \
    SWEEP_NOINLINE void SFX(adj_row##RR)(const SFX(consts) *K, REAL *a0, const REAL *a1, REAL *a2, REAL *a4,  \
                                         const REAL *s, REAL *hx, REAL *px, const REAL *const *hz,           \
                                         const REAL *const *pz, const SFX(brow) *B, REAL sigma, int64_t xa,  \
                                         int64_t xb, int64_t xl, int64_t xr, int doz) {                      \
        if (xl <= xr) {                                                                                    \
            if (doz)                                                                                       \
                SFX(adj_row_r)(K, a0, a1, a2, a4, s, hx, px, hz, pz, B, sigma, xa, xb, xl, xr, 1, 1, RR);       \
            else                                                                                           \
                SFX(adj_row_r)(K, a0, a1, a2, a4, s, hx, px, hz, pz, B, sigma, xa, xb, xl, xr, 0, 1, RR);       \
        } else {                                                                                           \
            SFX(adj_row_r)(K, a0, a1, a2, a4, s, hx, px, hz, pz, B, sigma, xa, xb, xl, xr, 1, 0, RR);           \
        }                                                                                                  \
    }
SWEEP_PER_RADIUS(DEF)
#undef DEF

static void SFX(adj_pz_row)(const SFX(consts) *K, int r, const REAL *const *hz, REAL *a3, REAL *pz, int64_t p) {
#define CALL(R) SFX(adj_pz_row##R)(K, hz, a3, pz, p)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

static void SFX(adj_row)(const SFX(consts) *K, int r, REAL *a0, const REAL *a1, REAL *a2, REAL *a4, const REAL *s,
                         REAL *hx, REAL *px, const REAL *const *hz, const REAL *const *pz, const SFX(brow) *B,
                         REAL sigma, int64_t xa, int64_t xb, int64_t xl, int64_t xr, int doz) {
#define CALL(R) SFX(adj_row##R)(K, a0, a1, a2, a4, s, hx, px, hz, pz, B, sigma, xa, xb, xl, xr, doz)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

/* One thread's rings (see below): rows of s, Lh_z and a_z P_z, row m in slot m % L. */
typedef struct {
    REAL *s, *h, *p;
    const REAL *zero; /* a padded zero row */
    int64_t L, stride, nz, za, zb;
} SFX(adj_rings);

static inline REAL *SFX(adj_slot)(const SFX(adj_rings) *g, REAL *ring, int64_t m) {
    return ring + (m % g->L) * g->stride;
}

/* Whether row m is a z-layer row of the grid. */
static inline int SFX(adj_zrow)(const SFX(adj_rings) *g, int64_t m) {
    return m >= 0 && m < g->nz && !(m >= g->za && m < g->zb);
}

/* hz[q], pz[q] (q = -r..r) = row m + q of Lh_z (s on a z-interior row) and of a_z P_z (zero there); zero rows
 * beyond the grid. Returns whether any of the rows is a z-layer row. */
static int SFX(adj_tables)(const SFX(adj_rings) *g, int r, int64_t m, const REAL **hz, const REAL **pz) {
    int any = 0;
    for (int q = -r; q <= r; q++) {
        const int64_t mq = m + q;
        const int z = SFX(adj_zrow)(g, mq);
        any |= z;
        hz[q] = (mq < 0 || mq >= g->nz) ? g->zero : SFX(adj_slot)(g, z ? g->h : g->s, mq);
        pz[q] = z ? SFX(adj_slot)(g, g->p, mq) : g->zero;
    }
    return any;
}

#if SWEEP_VRZ
/* VRZ's d/dbeta terms of an imaged step on physical row pi, into gb (that row of g_beta): with mu = lambda K
 * (lambda the adjoint of u_{n+1}), sum over the axes, k and the physical partners i = m +- k of
 * e_k (mu_m - mu_i)(u_i - u_m). Pairs reaching past the physical grid are held fixed (no term): a missing z
 * partner row is the row itself (its term is exactly zero), x partners are checked on the R edge columns
 * (XCHK). Each cell sums its own pairs in one pass, in a fixed order, so no two threads add to one row.
 * yq, wq, uq: lambda, K and u_n of rows pi-R..pi+R (index R + k), mu: the row's mu. */
ALWAYS_INLINE void SFX(image_b_span)(const SFX(consts) *K, REAL *restrict gb, const REAL *restrict mu,
                                     const REAL *const *yq, const REAL *const *wq, const REAL *const *uq, int64_t j0,
                                     int64_t j1, int64_t pnx, const int XCHK, const int R) {
    const REAL *restrict u = uq[R];
    for (int64_t j = j0; j < j1; j++) {
        const REAL m = mu[j], uc = u[j];
        REAL acc = gb[j];
        for (int k = 1; k <= R; k++) {
            const REAL e = K->e[k];
            if (!XCHK || j - k >= 0) acc = acc + e * (m - mu[j - k]) * (u[j - k] - uc);
            if (!XCHK || j + k < pnx) acc = acc + e * (m - mu[j + k]) * (u[j + k] - uc);
            acc = acc + e * (m - yq[R - k][j] * wq[R - k][j]) * (uq[R - k][j] - uc);
            acc = acc + e * (m - yq[R + k][j] * wq[R + k][j]) * (uq[R + k][j] - uc);
        }
        gb[j] = acc;
    }
}

/* image_b_span over row pi (y: lambda of this shot on the padded grid; ku: u_n of the snapshot's shot). */
ALWAYS_INLINE void SFX(image_b_row)(const sweep_problem *P, const SFX(consts) *K, REAL *gb, const REAL *y,
                                    const REAL *ku, REAL *restrict mu, int64_t pi, const int R) {
    const int64_t nx = P->nx, pnz = P->pnz, pnx = P->pnx, c = (P->ptop + pi) * nx + P->pleft;
    const REAL *yq[9], *wq[9], *uq[9];
    for (int k = -R; k <= R; k++) {
        const int64_t q = pi + k >= 0 && pi + k < pnz ? k : 0; /* a missing partner: the row itself */
        yq[R + k] = y + c + q * nx;
        wq[R + k] = K->w + c + q * nx;
        uq[R + k] = ku + (pi + q) * pnx;
    }
    for (int64_t j = 0; j < pnx; j++) mu[j] = yq[R][j] * wq[R][j];
    const int64_t e0 = R < pnx ? R : pnx, e1 = pnx - R > e0 ? pnx - R : e0;
    SFX(image_b_span)(K, gb, mu, yq, wq, uq, 0, e0, pnx, 1, R);
    SFX(image_b_span)(K, gb, mu, yq, wq, uq, e0, e1, pnx, 0, R);
    SFX(image_b_span)(K, gb, mu, yq, wq, uq, e1, pnx, pnx, 1, R);
}

#define DEF(RR)                                                                                            \
    SWEEP_NOINLINE void SFX(image_b_row##RR)(const sweep_problem *P, const SFX(consts) *K, REAL *gb,          \
                                             const REAL *y, const REAL *ku, REAL *mu, int64_t pi) {          \
        SFX(image_b_row)(P, K, gb, y, ku, mu, pi, RR);                                                       \
    }
SWEEP_PER_RADIUS(DEF)
#undef DEF

static void SFX(adj_image_b)(const sweep_problem *P, const SFX(consts) *K, REAL *gb, const REAL *y, const REAL *ku,
                             REAL *mu, int64_t pi) {
#define CALL(R) SFX(image_b_row##R)(P, K, gb, y, ku, mu, pi)
    SWEEP_RADIUS_DISPATCH((int)P->radius, CALL)
#undef CALL
}
#endif

/* What every thread of one adjoint call reads (see sweep_acoustic_adjoint). */
typedef struct {
    const sweep_problem *P;
    const SFX(consts) *K;
    REAL *adj, *rows, *grad_w, *grad_wavelet;
    const REAL *kept, *grad_rec;
    int64_t n0, n1, per, stride, xa, xb, xl, xr;
    sweep_sched S;
} SFX(adj_job);

/* Thread `me`'s part of an adjoint call. */
static void SFX(adj_thread)(void *ctx, int me) {
    const SFX(adj_job) *J = (const SFX(adj_job) *)ctx;
    const sweep_problem *P = J->P;
    const SFX(consts) *const Kp = J->K;
    const int64_t ns = P->nshots, nz = P->nz, nx = P->nx, plane = nz * nx, fs = ns * plane;
    const int64_t pnz = P->pnz, pnx = P->pnx, top = P->ptop, left = P->pleft, pplane = pnz * pnx;
    const int64_t nrec = P->nrec, nt = P->nt, za = P->za, zb = P->zb;
    const int64_t n0 = J->n0, n1 = J->n1, stride = J->stride, L = 3 * P->radius + 1, budget = sweep_spin_ticks();
    const int64_t xa = J->xa, xb = J->xb, xl = J->xl, xr = J->xr;
    const int r = (int)P->radius;
    REAL *const adj = J->adj, *const grad_w = J->grad_w, *const grad_wavelet = J->grad_wavelet;
    REAL *const a2 = adj + 2 * fs, *const a3 = adj + 3 * fs, *const a4 = adj + 4 * fs, *const a5 = adj + 5 * fs;
    const REAL *const kept = J->kept, *const grad_rec = J->grad_rec, *const w = Kp->w;
    const unsigned int mxcsr = enter_ftz();
    const sweep_part part = J->S.plan[me];
    const int64_t a = part.a, b = part.b;
    REAL *const mine = J->rows + me * J->per + ADJ_V;
    const REAL *const zero = J->rows + (int64_t)J->S.nthreads * J->per + ADJ_V;
    const SFX(adj_rings) g = {mine, mine + L * stride, mine + 2 * L * stride, zero, L, stride, nz, za, zb};
    REAL *const hx = mine + 3 * L * stride, *const px = hx + stride;
#if SWEEP_VRZ
    /* beta's row (padded with its edge values: the x taps of Lh_x) and mu's (adj_image_b) */
    REAL *const bp = px + stride, *const mu = bp + stride;
    const REAL *const wav = (const REAL *)P->wavelet;
#endif
    const REAL *hz_a[9], *pz_a[9], **const hz = hz_a + r, **const pz = pz_a + r;
    for (int64_t sh = part.s0; sh < part.s1; sh++) {
        const int64_t o = sh * plane;
        for (int64_t n = n1 - 1; n >= n0; n--) {
            const int64_t k = n1 - 1 - n;
            REAL *const X = ((k & 1) ? adj + fs : adj) + o;       /* sigma A0, overwritten by A1' */
            const REAL *const Y = ((k & 1) ? adj : adj + fs) + o; /* A1 */
            const REAL sigma = k == 0 ? (REAL)1 : (REAL)-1;
            const REAL *const kp = SFX(cslot)(kept, imaged_slot(n, n0, P->image_every), SNAPF * ns * pplane);
            if (k > 0) wait_neighbours(J->S.prog, &part, (int)k, budget);
            for (int64_t m = a - r; m < b + 2 * r; m++) {
                /* Stage A on row m (A1 is read-only during the step, so rows beyond the band are safe). */
                if (m >= 0 && m < nz && m < b + r) {
                    const int z = SFX(adj_zrow)(&g, m) && m >= a && m < b;
                    SFX(adj_s_row)(Kp, Y + m * nx, a5 + o + m * nx, SFX(adj_slot)(&g, g.s, m),
                                   SFX(adj_slot)(&g, g.h, m), m, z);
                }
                /* Stage B on row m - r. */
                const int64_t p = m - r;
                if (p >= a && p < b && SFX(adj_zrow)(&g, p)) {
                    SFX(adj_tables)(&g, r, p, hz, pz);
                    SFX(adj_pz_row)(Kp, r, hz, a3 + o + p * nx, SFX(adj_slot)(&g, g.p, p), p);
                }
                /* Stage C on row m - 2r; the receivers' adjoint, grad_w += A1 S, the wavelet's gradient. */
                const int64_t i = m - 2 * r;
                if (i >= a && i < b) {
                    const int64_t row = sh * nz + i, c = i * nx;
                    const int doz = SFX(adj_tables)(&g, r, i, hz, pz);
#if SWEEP_VRZ
                    memcpy(bp, SFX(crow)(Kp, Kp->b, i), (size_t)nx * sizeof(REAL));
                    SFX(pad_beta)(bp, SFX(crow)(Kp, Kp->b, i), nx);
                    const SFX(brow) Bv = SFX(make_brow)(Kp, bp, i, r), *const B = &Bv;
#else
                    const SFX(brow) *const B = 0;
#endif
                    SFX(adj_row)(Kp, r, X + c, Y + c, a2 + o + c, a4 + o + c, SFX(adj_slot)(&g, g.s, i), hx, px, hz,
                                 pz, B, sigma, xa, xb, xl, xr, doz);
                    for (int64_t t = P->rec_ptr[row]; t < P->rec_ptr[row + 1]; t++) {
                        const int64_t q = P->rec_order[t];
                        X[c + P->rec_x[q]] += grad_rec[(sh * nt + n) * nrec + q % nrec];
                    }
                    if (grad_w && kp && i >= top && i < top + pnz) { /* kp: 0 on a step not imaged */
                        REAL *restrict gw = grad_w + sh * pplane + (i - top) * pnx;
                        const REAL *restrict sk = kp + sh * pplane + (i - top) * pnx;
                        const REAL *restrict y = Y + c + left;
                        for (int64_t j = 0; j < pnx; j++) gw[j] += y[j] * sk[j];
#if SWEEP_VRZ
                        REAL *restrict gb = grad_w + (ns + sh) * pplane + (i - top) * pnx;
                        SFX(adj_image_b)(P, Kp, gb, Y, kp + (ns + sh) * pplane, mu, i - top);
                        for (int64_t t = P->src_ptr[row]; t < P->src_ptr[row + 1]; t++) { /* S's beta f / dh^2 */
                            const int64_t q = P->src_order[t], j = P->src_x[q] - left, cq = c + P->src_x[q];
                            if (j >= 0 && j < pnx) gb[j] += (Y[cq] * w[cq]) * (wav[q * nt + n] * Kp->inv_dh2);
                        }
#endif
                    }
                    if (grad_wavelet)
                        for (int64_t t = P->src_ptr[row]; t < P->src_ptr[row + 1]; t++) {
                            const int64_t q = P->src_order[t], cq = c + P->src_x[q];
                            grad_wavelet[q * nt + n] += SFX(src_term)(Kp, SWEEP_B(Kp, cq), Y[cq] * w[cq]);
                        }
                }
            }
            sweep_word_post(J->S.prog + me, (int)(k + 1));
        }
        /* Restore the layout (A0, A1): after k >= 1 steps one slot holds A1 and the other -A0. */
        wait_neighbours(J->S.prog, &part, (int)(n1 - n0), budget);
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

/* Adjoint steps n1-1 down to n0 in place on `adj` (6, nshots, NZ, NX): on entry the adjoint of the state
 * after step n1-1, on return that of the state at step n0. `kept` (n1 - n0, nshots, nz, nx) holds the
 * snapshots (only read when `grad_w` is given); `grad_rec` (nshots, nt, nrec) the adjoint of the data.
 * Accumulates into `grad_w` (nshots, nz, nx; per shot, so that no two threads add to one cell) and
 * `grad_wavelet` (nshots, nsrc, nt) when not NULL; `stats`, if not NULL, gets what the run measured (pool.h).
 * Returns 0, or 1 if out of memory (nothing is then changed).
 *
 * A step runs three stages over a band's rows, each r rows behind the previous: A on row m (s, and Lh_z
 * and A5' on a z-layer row), B on row m - r (P_z on a z-layer row: reads Lh_z of rows m-2r..m), C on row
 * m - 2r (A1' and the x layers: reads s, Lh_z and a_z P_z of rows m-3r..m-r). Every auxiliary row is read
 * and written by one stage only. The rings hold L = 3r + 1 rows. Rows beyond a band's edges get stage A only:
 * they are z-interior (see the work split in acoustic_common.h), so their Lh_z is s and a_z P_z zero. */
int KNAME(adjoint)(const sweep_problem *P, REAL *adj, const REAL *kept, int64_t n0, int64_t n1,
                                const REAL *grad_rec, REAL *grad_w, REAL *grad_wavelet, int nthreads,
                                sweep_run_stats *stats) {
    SFX(consts) K;
    SFX(load_consts)(P, &K);
    const int64_t ns = P->nshots, nz = P->nz, nx = P->nx;
    const int r = (int)P->radius;
    if (n1 <= n0) return 0;
    /* x layers [0, xa) and [xb, nx) (the whole row when there is no interior), and the edge spans [0, xl)
     * and [xr, nx) in whole chunks, each reaching r cells past its layer (one span when they would meet). */
    int64_t xa, xb;
    layer_columns(nx, P->xa, P->xb, &xa, &xb);
    /* Per thread: three rings of L padded rows (s, Lh_z, a_z P_z) and two padded rows (Lh_x, a_x P_x); and a
     * zero row. A padded row has ADJ_V zeros either side, never written. */
    const int64_t L = 3 * r + 1, stride = ADJ_UP(nx) + 2 * ADJ_V, per = (3 * L + 2 + 2 * SWEEP_VRZ) * stride;
    REAL *rows = (REAL *)aligned_alloc(64, (size_t)(nthreads * per + stride) * sizeof(REAL));
    SFX(adj_job) J = {P, &K, adj, rows, grad_w, grad_wavelet, kept, grad_rec, n0, n1, per, stride, xa, xb,
                      ADJ_UP(xa + r), nx - ADJ_UP(nx - xb + r), {0}};
    if (!rows || sched_alloc(&J.S, ns, nz, nthreads, P->za + r, P->zb - r)) {
        free(rows);
        return 1;
    }
    memset(rows, 0, (size_t)(nthreads * per + stride) * sizeof(REAL));
    const int status = sweep_pool_run(nthreads, SFX(adj_thread), &J, stats);
    sched_free(&J.S);
    free(rows);
    return status;
}

#undef ADJ_FOR
#undef ADJ_UP
#undef ADJ_V
#undef SWEEP_BX
