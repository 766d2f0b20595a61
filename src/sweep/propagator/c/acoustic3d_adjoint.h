/* Template body of the exact discrete adjoint of a block of 3-D acoustic steps, included after acoustic3d_common.h
 * and acoustic3d_impl.h (whose helpers it uses) once per precision, with the same REAL / SFX.
 *
 * Adjoint of one step, with (A0..A7) the adjoint of the state after the step (slots as the state's: u_prev, u,
 * psi_x, psi_y, psi_z, zeta_x, zeta_y, zeta_z) and s = w A1, for each axis a (psi slot Pa, zeta slot Za):
 *   Lh_a = s + a_a (A_Za + s)                              (adjoint of L_a)
 *   P_a  = A_Pa - D1a Lh_a                                 (adjoint of psi_a'; D1^T = -D1, D2^T = D2)
 *   A0' = -A1
 *   A1' = A0 + 2 A1 + sum_a D2a Lh_a - sum_a D1a(a_a P_a),  A1'[rec] += grad_rec
 *   A_Pa' = b_a P_a,  A_Za' = b_a (A_Za + s)
 *   grad_w += A1 S,  grad_f[src] += A1[src] w[src] / dh^3
 * It is the adjoint of the step restricted to the subspace where psi/zeta vanish outside the absorbing layers
 * (as in 2-D, acoustic_adjoint.h): the psi/zeta outputs outside them are left untouched. The two wavefield
 * adjoints are not swapped within a block (A1' overwrites A0's slot, the sign folded into sigma) and one pass
 * at the end of the block restores the layout. Needs no forward state.
 *
 * Outside the layers a = 0 and the auxiliaries vanish, so Lh = s there. A step runs three stages over the
 * planes of a band, each r planes behind the previous: A on plane m (s; on a z-layer plane also Lh_z and
 * A_Zz'), B on plane m - r (P_z on a z-layer plane: a_z P_z and A_Pz'), C on plane m - 2r (A1'). Stage C runs
 * the same three stages over the rows of its plane for the y layers (A': Lh_y and A_Zy' of a y-layer row, B':
 * P_y r rows behind, C': A1' of the row 2r rows behind, with the x layers of the row as in 2-D: edge spans of
 * whole chunks). Per thread: rings of 3r + 1 padded planes (s, Lh_z, a_z P_z), rings of 3r + 1 padded rows
 * (Lh_y, a_y P_y) and two padded rows (Lh_x, a_x P_x); a padded row has A3_V zeros either side, never written,
 * and a zero row stands for the rows and planes beyond the grid. Every auxiliary value is written by one stage
 * of one thread; planes beyond a band's edges get stage A only (they are z-interior: see the work split).
 *
 * VRZ (SWEEP_VRZ, see acoustic3d_common.h): D2a becomes Bdiv_a (symmetric: its own transpose), a_a P_a becomes
 * a_a beta P_a (psi' holds beta D1a u), the wavelet's gradient takes beta, and the model gradient per imaged step
 * (lambda = A1, mu = w A1, the snapshot (S_n, u_n)) is g_K += A1 S and at cell m
 *   g_beta += sum_a sum_k sum over i = m +- k physical: c_k / (2 dh^2) (mu_m - mu_i) (u_i - u_m)
 * (+ mu f[n] / dh^3 at the sources): each row its own cells' terms, so no two threads add to one cell.
 */

/* Cells per chunk of the edge spans: a cache line, a whole number of vectors on every code path. */
#define A3_V ((int64_t)(64 / sizeof(REAL)))
#define A3_UP(n) round_up((n), A3_V)

/* for (j = j0; j < j1; j++), in chunks of A3_V when CH (j1 - j0 is then a multiple of it). */
#define A3_FOR(j, j0, j1, CH)                                                                             \
    _Pragma("GCC ivdep") for (int64_t jb_ = (j0); jb_ < (j1); jb_ += (CH) ? A3_V : 1)                     \
        for (int64_t l_ = 0, j = jb_; l_ < ((CH) ? A3_V : 1); l_++, j++)

/* Lh = s + a (z + s) and z' = b (z + s): the adjoint of zeta' = b zeta + a L, given s and zeta's adjoint z. */
ALWAYS_INLINE REAL SFX(a3_lh)(REAL s, REAL a, REAL q) { return s + a * q; }

/* P = p - D1(Lh) / dh: the adjoint of psi' given its adjoint p (d: the stencil sum of Lh). */
ALWAYS_INLINE REAL SFX(a3_p)(REAL p, REAL d, REAL inv_dh) { return p - d * inv_dh; }

/* upd on an x-layer column j (j < xa or j >= xb), else old (selects vectorised as blends). */
ALWAYS_INLINE REAL SFX(a3_in_layer)(int64_t j, int64_t xa, int64_t xb, REAL upd, REAL old) {
    const REAL v = (int)j < (int)xa ? upd : old;
    return (int)j >= (int)xb ? upd : v;
}

/* Stage A on a row: s = w A1 into s; with Z also Lh into h and z' = b (z + s) (the row's only use of z). */
ALWAYS_INLINE void SFX(a3_s_span)(const REAL *restrict w, const REAL *restrict y, REAL *restrict z,
                                  REAL *restrict s, REAL *restrict h, REAL a, REAL b, int64_t nx, const int Z) {
    for (int64_t j = 0; j < nx; j++) {
        const REAL sj = w[j] * y[j];
        s[j] = sj;
        if (Z) {
            const REAL q = z[j] + sj;
            h[j] = SFX(a3_lh)(sj, a, q);
            z[j] = b * q;
        }
    }
}

SWEEP_NOINLINE void SFX(a3_s_row)(const REAL *w, const REAL *y, REAL *z, REAL *s, REAL *h, REAL a, REAL b,
                                  int64_t nx, int zl) {
    if (zl)
        SFX(a3_s_span)(w, y, z, s, h, a, b, nx, 1);
    else
        SFX(a3_s_span)(w, y, z, s, h, a, b, nx, 0);
}

/* Stage A' on a y-layer row: Lh = s + a (z + s) into h and z' = b (z + s), s from the ring. */
SWEEP_NOINLINE void SFX(a3_lh_row)(const REAL *restrict s, REAL *restrict z, REAL *restrict h, REAL a, REAL b,
                                   int64_t nx) {
    for (int64_t j = 0; j < nx; j++) {
        const REAL q = z[j] + s[j];
        h[j] = SFX(a3_lh)(s[j], a, q);
        z[j] = b * q;
    }
}

/* Stage B on a row: P = A_P - D1(Lh) (h: the Lh rows across it), a P into pa (VRZ: a beta P, beta the buoyancy's
 * row), A_P' = b P. */
ALWAYS_INLINE void SFX(a3_p_span)(const SFX(k3) *K_, const REAL *const *h_, REAL *restrict ap, REAL *restrict pa,
                                  REAL a, REAL b, const REAL *restrict beta, const int R) {
    const SFX(k3) Kl = *K_, *const K = &Kl;
    const REAL *ha[9];
    for (int q = -R; q <= R; q++) ha[R + q] = h_[q];
    const REAL *const *const h = ha + R;
    for (int64_t j = 0; j < K->nx; j++) {
        const REAL P = SFX(a3_p)(ap[j], SFX(c3_d1t)(K->c1, h, j, R), K->inv_dh);
        pa[j] = C3_VRZ ? a * (beta[j] * P) : a * P;
        ap[j] = b * P;
    }
}

/* A1' of a row on [j0, j1): a0 <- sigma a0 + 2 a1 + (D2x hx + D2y hy + D2z hz) - D1x px - D1y py - D1z pz (hx, px:
 * padded rows; hy, py, hz, pz: rows across it), the D1 terms only where they can be nonzero. VRZ: Bdiv for D2, with
 * the buoyancy's rows btx (padded), bty, btz. */
ALWAYS_INLINE void SFX(a3_a1_span)(const SFX(k3) *K, REAL *restrict a0, const REAL *restrict a1,
                                   const REAL *restrict hx, const REAL *restrict px, const REAL *const *hy,
                                   const REAL *const *py, const REAL *const *hz, const REAL *const *pz,
                                   const REAL *restrict btx, const REAL *const *bty, const REAL *const *btz,
                                   const REAL sigma, int64_t j0, int64_t j1, const int DOX, const int DOY,
                                   const int DOZ, const int CH, const int R) {
    A3_FOR(j, j0, j1, CH) {
        REAL tx, ty, tz;
        if (C3_VRZ) {
            tx = SFX(c3_bdx)(K->c2h, hx, btx, j, R);
            ty = SFX(c3_bdt)(K->c2h, hy, bty, j, R);
            tz = SFX(c3_bdt)(K->c2h, hz, btz, j, R);
        } else {
            tx = K->c2[0] * hx[j], ty = K->c2[0] * hy[0][j], tz = K->c2[0] * hz[0][j];
            for (int k = 1; k <= R; k++) {
                tx = tx + K->c2[k] * (hx[j + k] + hx[j - k]);
                ty = ty + K->c2[k] * (hy[k][j] + hy[-k][j]);
                tz = tz + K->c2[k] * (hz[k][j] + hz[-k][j]);
            }
        }
        REAL t = sigma * a0[j] + 2 * a1[j] + (tx + ty + tz) * K->inv_dh2;
        if (DOX) t = t - SFX(c3_d1x)(K->c1, px, j, R) * K->inv_dh;
        if (DOY) t = t - SFX(c3_d1t)(K->c1, py, j, R) * K->inv_dh;
        if (DOZ) t = t - SFX(c3_d1t)(K->c1, pz, j, R) * K->inv_dh;
        a0[j] = t;
    }
}

/* Stage C' on the edge span [j0, j1) of a row, which holds all the x-layer cells it touches and whose R cells
 * either side are outside them: Lh_x into hx, A_Zx' = b_x (A_Zx + s), then P_x = A_Px - D1x Lh_x, a_x P_x into px
 * and A_Px' = b_x P_x, then A1'. The x-layer updates run on every cell of the span, selected to the layer cells
 * (a_x = 0 elsewhere, so hx = s and px = 0 there). */
ALWAYS_INLINE void SFX(a3_edge_span)(const SFX(k3) *K, REAL *restrict a0, const REAL *restrict a1,
                                     REAL *restrict apx, REAL *restrict azx, const REAL *restrict s,
                                     REAL *restrict hx, REAL *restrict px, const REAL *const *hy,
                                     const REAL *const *py, const REAL *const *hz, const REAL *const *pz,
                                     const REAL *restrict btx, const REAL *const *bty, const REAL *const *btz,
                                     const REAL sigma, int64_t j0, int64_t j1, int64_t xa, int64_t xb, const int DOY,
                                     const int DOZ, const int CH, const int R) {
    const REAL *restrict ax = K->ax, *restrict bx = K->bx;
    for (int k = 1; k <= R; k++) { /* s beyond the span (zero beyond the grid: s rows are padded) */
        hx[j0 - k] = s[j0 - k];
        hx[j1 - 1 + k] = s[j1 - 1 + k];
    }
    A3_FOR(j, j0, j1, CH) {
        const REAL old = azx[j], q = old + s[j];
        hx[j] = SFX(a3_lh)(s[j], ax[j], q);
        azx[j] = SFX(a3_in_layer)(j, xa, xb, bx[j] * q, old);
    }
    A3_FOR(j, j0, j1, CH) {
        const REAL old = apx[j], P = SFX(a3_p)(old, SFX(c3_d1x)(K->c1, hx, j, R), K->inv_dh);
        px[j] = C3_VRZ ? ax[j] * (btx[j] * P) : ax[j] * P;
        apx[j] = SFX(a3_in_layer)(j, xa, xb, bx[j] * P, old);
    }
    SFX(a3_a1_span)(K, a0, a1, hx, px, hy, py, hz, pz, btx, bty, btz, sigma, j0, j1, 1, DOY, DOZ, CH, R);
}

/* One row's adjoint rows: A0 (overwritten by A1'), A1, A_Px, A_Zx, and its s row; VRZ: the buoyancy's rows. */
typedef struct {
    REAL *a0, *apx, *azx;
    const REAL *a1, *s;
    const SFX(c3_beta) *B;
} SFX(a3_row);

/* Stage C' on a row: with chunked edges (CH) the row is [0, xl) | [xl, xr) | [xr, nx), the middle span free of
 * x-layer terms (Lh_x = s there); otherwise one edge span covers the row. */
ALWAYS_INLINE void SFX(a3_row_r)(const SFX(k3) *K_, const SFX(a3_row) *w, REAL *hx, REAL *px, const REAL *const *hy,
                                 const REAL *const *py, const REAL *const *hz, const REAL *const *pz, REAL sigma,
                                 int64_t xa, int64_t xb, int64_t xl, int64_t xr, const int DOY, const int DOZ,
                                 const int CH, const int R) {
    const SFX(k3) Kl = *K_, *const K = &Kl;
    const REAL *hy_a[9], *py_a[9], *hz_a[9], *pz_a[9];
    for (int q = -R; q <= R; q++) {
        hy_a[R + q] = hy[q];
        py_a[R + q] = DOY ? py[q] : hy[q];
        hz_a[R + q] = hz[q];
        pz_a[R + q] = DOZ ? pz[q] : hz[q];
    }
    const REAL *const *const ty = hy_a + R, *const *const qy = py_a + R;
    const REAL *const *const tz = hz_a + R, *const *const qz = pz_a + R;
    const REAL *bty_a[9], *btz_a[9];
    for (int q = -R; q <= R; q++) {
        bty_a[R + q] = C3_VRZ ? w->B->ya[4 + q] : 0;
        btz_a[R + q] = C3_VRZ ? w->B->za[4 + q] : 0;
    }
    const REAL *const *const by = bty_a + R, *const *const bz = btz_a + R;
    const REAL *const bx = C3_VRZ ? w->B->x : 0;
    if (CH) {
        SFX(a3_edge_span)(K, w->a0, w->a1, w->apx, w->azx, w->s, hx, px, ty, qy, tz, qz, bx, by, bz, sigma, 0, xl,
                          xa, xb, DOY, DOZ, 1, R);
        SFX(a3_a1_span)(K, w->a0, w->a1, w->s, px, ty, qy, tz, qz, bx, by, bz, sigma, xl, xr, 0, DOY, DOZ, 0, R);
        SFX(a3_edge_span)(K, w->a0, w->a1, w->apx, w->azx, w->s, hx, px, ty, qy, tz, qz, bx, by, bz, sigma, xr,
                          K->nx, xa, xb, DOY, DOZ, 1, R);
    } else {
        SFX(a3_edge_span)(K, w->a0, w->a1, w->apx, w->azx, w->s, hx, px, ty, qy, tz, qz, bx, by, bz, sigma, 0,
                          K->nx, xa, xb, DOY, DOZ, 0, R);
    }
}

#define DEF2(RR, Y, Z)                                                                                     \
    SWEEP_NOINLINE void SFX(a3_row_##RR##Y##Z)(const SFX(k3) *K, const SFX(a3_row) *w, REAL *hx, REAL *px,  \
                                               const REAL *const *hy, const REAL *const *py,                \
                                               const REAL *const *hz, const REAL *const *pz, REAL sigma,    \
                                               int64_t xa, int64_t xb, int64_t xl, int64_t xr) {            \
        if (xl <= xr)                                                                                      \
            SFX(a3_row_r)(K, w, hx, px, hy, py, hz, pz, sigma, xa, xb, xl, xr, Y, Z, 1, RR);               \
        else                                                                                               \
            SFX(a3_row_r)(K, w, hx, px, hy, py, hz, pz, sigma, xa, xb, xl, xr, Y, Z, 0, RR);               \
    }
#define DEF(RR)                                                                                            \
    DEF2(RR, 0, 0) DEF2(RR, 0, 1) DEF2(RR, 1, 0) DEF2(RR, 1, 1)                                            \
    SWEEP_NOINLINE void SFX(a3_p_row##RR)(const SFX(k3) *K, const REAL *const *h, REAL *ap, REAL *pa, REAL a, \
                                          REAL b, const REAL *beta) {                                       \
        SFX(a3_p_span)(K, h, ap, pa, a, b, beta, RR);                                                        \
    }
SWEEP_PER_RADIUS(DEF)
#undef DEF
#undef DEF2

static void SFX(a3_p_row)(const SFX(k3) *K, int r, const REAL *const *h, REAL *ap, REAL *pa, REAL a, REAL b,
                          const REAL *beta) {
#define CALL(RR) SFX(a3_p_row##RR)(K, h, ap, pa, a, b, beta)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

static void SFX(a3_row_any)(const SFX(k3) *K, int r, const SFX(a3_row) *w, REAL *hx, REAL *px, const REAL *const *hy,
                            const REAL *const *py, const REAL *const *hz, const REAL *const *pz, REAL sigma,
                            int64_t xa, int64_t xb, int64_t xl, int64_t xr, int doy, int doz) {
    const int f = 2 * (doy != 0) + (doz != 0);
#define CALL(RR)                                                                                           \
    do {                                                                                                   \
        switch (f) {                                                                                       \
        case 0: SFX(a3_row_##RR##00)(K, w, hx, px, hy, py, hz, pz, sigma, xa, xb, xl, xr); break;          \
        case 1: SFX(a3_row_##RR##01)(K, w, hx, px, hy, py, hz, pz, sigma, xa, xb, xl, xr); break;          \
        case 2: SFX(a3_row_##RR##10)(K, w, hx, px, hy, py, hz, pz, sigma, xa, xb, xl, xr); break;          \
        default: SFX(a3_row_##RR##11)(K, w, hx, px, hy, py, hz, pz, sigma, xa, xb, xl, xr); break;         \
        }                                                                                                  \
    } while (0)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

/* One thread's rings: planes of s, Lh_z and a_z P_z (plane m in slot m % L), rows of Lh_y and a_y P_y (row m in slot
 * m % L), the padded rows Lh_x and a_x P_x, and a padded zero row. Pointers are to column 0 of slot 0. */
typedef struct {
    REAL *s, *hz, *pz, *hy, *py, *hx, *px, *bb; /* bb: VRZ, the buoyancy's padded row (c3_beta_taps) */
    const REAL *zero;
    int64_t L, stride, pstride, nz, ny, za, zb, ya, yb;
} SFX(a3_rings);

/* Row k of plane m in a plane ring. */
static inline REAL *SFX(a3_pr)(const SFX(a3_rings) *g, REAL *ring, int64_t m, int64_t k) {
    return ring + (m % g->L) * g->pstride + k * g->stride;
}

/* Row m in a row ring. */
static inline REAL *SFX(a3_rr)(const SFX(a3_rings) *g, REAL *ring, int64_t m) { return ring + (m % g->L) * g->stride; }

static inline int SFX(a3_zlayer)(const SFX(a3_rings) *g, int64_t m) {
    return m >= 0 && m < g->nz && !(m >= g->za && m < g->zb);
}

static inline int SFX(a3_ylayer)(const SFX(a3_rings) *g, int64_t m) {
    return m >= 0 && m < g->ny && !(m >= g->ya && m < g->yb);
}

/* hz[q], pz[q] (q = -r..r) = row k of plane m + q of Lh_z (s on a z-interior plane) and of a_z P_z (zero there);
 * zero rows beyond the grid. Returns whether any of the planes is a z-layer plane. */
static int SFX(a3_ztables)(const SFX(a3_rings) *g, int r, int64_t m, int64_t k, const REAL **hz, const REAL **pz) {
    int any = 0;
    for (int q = -r; q <= r; q++) {
        const int64_t mq = m + q;
        const int z = SFX(a3_zlayer)(g, mq);
        any |= z;
        hz[q] = (mq < 0 || mq >= g->nz) ? g->zero : SFX(a3_pr)(g, z ? g->hz : g->s, mq, k);
        pz[q] = z ? SFX(a3_pr)(g, g->pz, mq, k) : g->zero;
    }
    return any;
}

/* hy[q], py[q] (q = -r..r) = row k + q of plane i of Lh_y (s on a y-interior row) and of a_y P_y (zero there). */
static int SFX(a3_ytables)(const SFX(a3_rings) *g, int r, int64_t i, int64_t k, const REAL **hy, const REAL **py) {
    int any = 0;
    for (int q = -r; q <= r; q++) {
        const int64_t kq = k + q;
        const int y = SFX(a3_ylayer)(g, kq);
        any |= y;
        hy[q] = (kq < 0 || kq >= g->ny) ? g->zero : (y ? SFX(a3_rr)(g, g->hy, kq) : SFX(a3_pr)(g, g->s, i, kq));
        py[q] = y ? SFX(a3_rr)(g, g->py, kq) : g->zero;
    }
    return any;
}

/* What every thread of one adjoint call reads (see sweep_acoustic3d_adjoint). */
typedef struct {
    const sweep_problem3d *P;
    const SFX(k3) *K;
    REAL *adj, *rows, *grad_w, *grad_wavelet;
    const REAL *kept, *grad_rec;
    int64_t n0, n1, per, stride, xa, xb, xl, xr;
    sweep_sched S;
} SFX(a3_job);

/* VRZ: imaged step n's g_beta terms of the physical cells of row k of plane i (padded indices) of shot sh, from
 * A1 = Y and the snapshot kp (S_n, u_n): the pairs (m, m +- q) of physical cells along each axis, c_q / (2 dh^2)
 * (mu_m - mu_i) (u_i - u_m) with mu = w A1, then mu f[n] / dh^3 at the row's sources. mu of the row goes to the
 * scratch row mu first; a partner row beyond the physical grid is replaced by the row itself, whose term is then
 * exactly zero (mu_m - mu_m = 0), so that the loops over the y and z partners have no branch. */
static void SFX(a3_image_beta)(const SFX(a3_job) *J, const REAL *Y, int64_t sh, int64_t i, int64_t k, int64_t n,
                               const REAL *kp, REAL *restrict mu) {
    const sweep_problem3d *P = J->P;
    const SFX(k3) *K = J->K;
    const int64_t ns = P->nshots, NY = P->ny, NX = P->nx, plane = NY * NX, top = P->ptop, front = P->pfront;
    const int64_t left = P->pleft, pnz = P->pnz, pny = P->pny, pnx = P->pnx, pvol = pnz * pny * pnx;
    const int64_t pi = i - top, pk = k - front, prow = pi * pny + pk, c = i * plane + k * NX + left;
    const int r = (int)P->radius;
    REAL *restrict gb = J->grad_w + (ns + sh) * pvol + prow * pnx;
    const REAL *restrict um = kp + (ns + sh) * pvol + prow * pnx, *restrict ym = Y + c, *restrict wm = K->w + c;
    for (int64_t j = 0; j < pnx; j++) mu[j] = ym[j] * wm[j];
    for (int q = 1; q <= r; q++) {
        const REAL h = (REAL)(0.5 * P->c2[q] * P->inv_dh2);
        /* x: partners j + q and j - q within the row. */
        for (int64_t j = 0; j + q < pnx; j++) gb[j] += h * ((mu[j] - mu[j + q]) * (um[j + q] - um[j]));
        for (int64_t j = q; j < pnx; j++) gb[j] += h * ((mu[j] - mu[j - q]) * (um[j - q] - um[j]));
        /* y, then z: the rows q away on either side (the row itself beyond the physical grid). */
        for (int axis = 0; axis < 2; axis++) {
            const int64_t at = axis ? pi : pk, len = axis ? pnz : pny;
            const int64_t pad = axis ? plane : NX, phys = axis ? pny * pnx : pnx;
            const int64_t up = at + q < len ? q : 0, dn = at - q >= 0 ? q : 0;
            const REAL *restrict ya = ym + up * pad, *restrict wa = wm + up * pad, *restrict ua = um + up * phys;
            const REAL *restrict yb = ym - dn * pad, *restrict wb = wm - dn * pad, *restrict ub = um - dn * phys;
            for (int64_t j = 0; j < pnx; j++)
                gb[j] += h * ((mu[j] - ya[j] * wa[j]) * (ua[j] - um[j])) + h * ((mu[j] - yb[j] * wb[j]) * (ub[j] - um[j]));
        }
    }
    const REAL *const wav = (const REAL *)P->wavelet;
    const int64_t row = (sh * P->nz + i) * NY + k;
    for (int64_t t = P->src_ptr[row]; t < P->src_ptr[row + 1]; t++) {
        const int64_t q = P->src_order[t], j = P->src_x[q] - left;
        if (j >= 0 && j < pnx) gb[j] += mu[j] * wav[q * P->nt + n] * K->inv_src;
    }
}

/* Stage C on plane i of shot sh (offset o) at step n: the rows' own pipeline for the y layers, then A1', the
 * receivers' adjoint, grad_w += A1 S and the wavelet's gradient, row by row. */
static void SFX(a3_plane_c)(const SFX(a3_job) *J, const SFX(a3_rings) *g, REAL *X, const REAL *Y, int64_t sh,
                            int64_t o, int64_t i, int64_t n, REAL sigma, const REAL *kp) {
    const sweep_problem3d *P = J->P;
    const SFX(k3) *K = J->K;
    const int64_t NZ = P->nz, NY = P->ny, NX = P->nx, plane = NY * NX, fs = P->nshots * NZ * plane;
    const int64_t top = P->ptop, front = P->pfront, left = P->pleft, pny = P->pny, pnx = P->pnx, nt = P->nt;
    const int64_t pvol = P->pnz * pny * pnx, nrec = P->nrec;
    const int r = (int)P->radius;
    REAL *const adj = J->adj;
    REAL *const apy = adj + 3 * fs + o, *const azy = adj + 6 * fs + o;
    REAL *const apx = adj + 2 * fs + o, *const azx = adj + 5 * fs + o;
    const REAL *hy_a[9], *py_a[9], *hz_a[9], *pz_a[9];
    const REAL **hy = hy_a + 4, **py = py_a + 4, **hz = hz_a + 4, **pz = pz_a + 4;
    for (int q = -4; q <= 4; q++) hy[q] = py[q] = hz[q] = pz[q] = g->zero;
    for (int64_t m = 0; m < NY + 2 * r; m++) {
        /* Stage A' on y-layer row m: Lh_y and A_Zy'. */
        if (m < NY && SFX(a3_ylayer)(g, m))
            SFX(a3_lh_row)(SFX(a3_pr)(g, g->s, i, m), azy + i * plane + m * NX, SFX(a3_rr)(g, g->hy, m), K->ay[m],
                           K->by[m], NX);
        /* Stage B' on y-layer row p = m - r: P_y. */
        const int64_t p = m - r;
        if (p >= 0 && p < NY && SFX(a3_ylayer)(g, p)) {
            SFX(a3_ytables)(g, r, i, p, hy, py);
            SFX(a3_p_row)(K, r, hy, apy + i * plane + p * NX, SFX(a3_rr)(g, g->py, p), K->ay[p], K->by[p],
                          C3_VRZ ? K->b + i * plane + p * NX : 0);
        }
        /* Stage C' on row k = m - 2r. */
        const int64_t k = m - 2 * r;
        if (k < 0 || k >= NY) continue;
        const int64_t c = i * plane + k * NX, row = (sh * NZ + i) * NY + k;
        const int doy = SFX(a3_ytables)(g, r, i, k, hy, py);
        const int doz = SFX(a3_ztables)(g, r, i, k, hz, pz);
        SFX(c3_beta) B;
        if (C3_VRZ) SFX(c3_beta_taps)(K, i, k, g->bb, &B, r);
        const SFX(a3_row) w = {X + c, apx + c, azx + c, Y + c, SFX(a3_pr)(g, g->s, i, k), &B};
        SFX(a3_row_any)(K, r, &w, g->hx, g->px, hy, py, hz, pz, sigma, J->xa, J->xb, J->xl, J->xr, doy, doz);
        for (int64_t t = P->rec_ptr[row]; t < P->rec_ptr[row + 1]; t++) {
            const int64_t q = P->rec_order[t];
            X[c + P->rec_x[q]] += J->grad_rec[(sh * nt + n) * nrec + q % nrec];
        }
        if (J->grad_w && kp && i >= top && i < top + P->pnz && k >= front && k < front + pny) {
            const int64_t prow = (i - top) * pny + (k - front);
            REAL *restrict gw = J->grad_w + sh * pvol + prow * pnx;
            const REAL *restrict sk = kp + sh * pvol + prow * pnx;
            const REAL *restrict y = Y + c + left;
            for (int64_t j = 0; j < pnx; j++) gw[j] += y[j] * sk[j];
            if (C3_VRZ) SFX(a3_image_beta)(J, Y, sh, i, k, n, kp, g->bb); /* bb: free after the row */
        }
        if (J->grad_wavelet)
            for (int64_t t = P->src_ptr[row]; t < P->src_ptr[row + 1]; t++) {
                const int64_t q = P->src_order[t], cq = c + P->src_x[q];
                J->grad_wavelet[q * nt + n] += C3_VRZ ? Y[cq] * K->w[cq] * K->b[cq] * K->inv_src
                                                      : Y[cq] * K->w[cq] * K->inv_src;
            }
    }
}

/* Thread `me`'s part of an adjoint call. */
static void SFX(a3_thread)(void *ctx, int me) {
    const SFX(a3_job) *J = (const SFX(a3_job) *)ctx;
    const sweep_problem3d *P = J->P;
    const SFX(k3) *const K = J->K;
    const int64_t ns = P->nshots, NZ = P->nz, NY = P->ny, NX = P->nx, plane = NY * NX, vol = NZ * plane;
    const int64_t fs = ns * vol, pvol = P->pnz * P->pny * P->pnx;
    const int64_t n0 = J->n0, n1 = J->n1, stride = J->stride, L = 3 * P->radius + 1, budget = sweep_spin_ticks();
    const int r = (int)P->radius;
    REAL *const adj = J->adj;
    REAL *const apz = adj + 4 * fs, *const azz = adj + 7 * fs;
    const unsigned int mxcsr = enter_ftz();
    const sweep_part part = J->S.plan[me];
    const int64_t a = part.a, b = part.b, pstride = NY * stride;
    REAL *const mine = J->rows + me * J->per + A3_V;
    const REAL *const zero = J->rows + (int64_t)J->S.nthreads * J->per + A3_V;
    const SFX(a3_rings) g = {mine, mine + L * pstride, mine + 2 * L * pstride, mine + 3 * L * pstride,
                             mine + 3 * L * pstride + L * stride, mine + 3 * L * pstride + 2 * L * stride,
                             mine + 3 * L * pstride + 2 * L * stride + stride,
                             mine + 3 * L * pstride + 2 * L * stride + 2 * stride - SWEEP_XPAD, zero, L, stride,
                             pstride, NZ, NY,
                             P->za, P->zb, P->ya, P->yb};
    const REAL *hz_a[9], *pz_a[9], **const hz = hz_a + 4, **const pz = pz_a + 4;
    for (int64_t sh = part.s0; sh < part.s1; sh++) {
        const int64_t o = sh * vol;
        for (int64_t n = n1 - 1; n >= n0; n--) {
            const int64_t k = n1 - 1 - n;
            REAL *const X = ((k & 1) ? adj + fs : adj) + o;       /* sigma A0, overwritten by A1' */
            const REAL *const Y = ((k & 1) ? adj : adj + fs) + o; /* A1 */
            const REAL sigma = k == 0 ? (REAL)1 : (REAL)-1;
            const REAL *const kp = SFX(cslot)(J->kept, imaged_slot(n, n0, P->image_every), C3_SNAPS * ns * pvol);
            if (k > 0) wait_neighbours(J->S.prog, &part, (int)k, budget);
            for (int64_t m = a - r; m < b + 2 * r; m++) {
                /* Stage A on plane m (A1 is read-only during the step, so planes beyond the band are safe). */
                if (m >= 0 && m < NZ && m < b + r) {
                    const int z = SFX(a3_zlayer)(&g, m) && m >= a && m < b;
                    for (int64_t row = 0; row < NY; row++) {
                        const int64_t c = m * plane + row * NX;
                        SFX(a3_s_row)(K->w + c, Y + c, azz + o + c, SFX(a3_pr)(&g, g.s, m, row),
                                      SFX(a3_pr)(&g, g.hz, m, row), K->az[m], K->bz[m], NX, z);
                    }
                }
                /* Stage B on plane p = m - r. */
                const int64_t p = m - r;
                if (p >= a && p < b && SFX(a3_zlayer)(&g, p))
                    for (int64_t row = 0; row < NY; row++) {
                        SFX(a3_ztables)(&g, r, p, row, hz, pz);
                        SFX(a3_p_row)(K, r, hz, apz + o + p * plane + row * NX, SFX(a3_pr)(&g, g.pz, p, row),
                                      K->az[p], K->bz[p], C3_VRZ ? K->b + p * plane + row * NX : 0);
                    }
                /* Stage C on plane m - 2r. */
                const int64_t i = m - 2 * r;
                if (i >= a && i < b) SFX(a3_plane_c)(J, &g, X, Y, sh, o, i, n, sigma, kp);
            }
            sweep_word_post(J->S.prog + me, (int)(k + 1));
        }
        /* Restore the layout (A0, A1): after k >= 1 steps one slot holds A1 and the other -A0. */
        wait_neighbours(J->S.prog, &part, (int)(n1 - n0), budget);
        REAL *restrict s0 = adj + o + a * plane, *restrict s1 = adj + fs + o + a * plane;
        const int64_t cells = (b - a) * plane;
        if ((n1 - n0) & 1) {
            for (int64_t c = 0; c < cells; c++) {
                const REAL t = s0[c];
                s0[c] = -s1[c];
                s1[c] = t;
            }
        } else {
            for (int64_t c = 0; c < cells; c++) s0[c] = -s0[c];
        }
    }
    leave_ftz(mxcsr);
}

/* Adjoint steps n1-1 down to n0 in place on `adj` (8, nshots, NZ, NY, NX): on entry the adjoint of the state after
 * step n1-1, on return that of the state at step n0. `kept` (n1 - n0, nshots, nz, ny, nx) holds the snapshots
 * (only read when `grad_w` is given; VRZ: (n1 - n0, 2, nshots, nz, ny, nx), (S_n, u_n), and `grad_w` is (2, nshots,
 * nz, ny, nx): (g_K, g_beta)); `grad_rec` (nshots, nt, nrec) the adjoint of the data. Accumulates into
 * `grad_w` (nshots, nz, ny, nx; per shot, so that no two threads add to one cell) and `grad_wavelet` (nshots,
 * nsrc, nt) when not NULL; `stats`, if not NULL, gets what the run measured (pool.h). Returns 0, or 1 if out of
 * memory (nothing is then changed). */
int SWEEP3_NAME(adjoint)(const sweep_problem3d *P, REAL *adj, const REAL *kept, int64_t n0, int64_t n1,
                                  const REAL *grad_rec, REAL *grad_w, REAL *grad_wavelet, int nthreads,
                                  sweep_run_stats *stats) {
    SFX(k3) K;
    SFX(k3_load)(P, &K);
    const int64_t ns = P->nshots, NZ = P->nz, NY = P->ny, NX = P->nx;
    const int r = (int)P->radius;
    if (n1 <= n0) return 0;
    /* x layers [0, xa) and [xb, nx) (the whole row when there is no interior), and the edge spans [0, xl) and
     * [xr, nx) in whole chunks, each reaching r cells past its layer (one span when they would meet). */
    int64_t xa, xb;
    layer_columns(NX, P->xa, P->xb, &xa, &xb);
    /* Per thread: three rings of L padded planes, two of L padded rows, two padded rows (VRZ: three); and a zero
     * row. */
    const int64_t L = 3 * r + 1, stride = A3_UP(NX) + 2 * A3_V;
    const int64_t per = 3 * L * NY * stride + (2 * L + 2 + C3_VRZ) * stride;
    const size_t total = (size_t)(nthreads * per + stride) * sizeof(REAL);
    REAL *rows = (REAL *)aligned_alloc(64, round_up((int64_t)total, 64));
    SFX(a3_job) J = {P, &K, adj, rows, grad_w, grad_wavelet, kept, grad_rec, n0, n1, per, stride, xa, xb,
                     A3_UP(xa + r), NX - A3_UP(NX - xb + r), {0}};
    if (!rows || sched_alloc_cost(&J.S, ns, NZ, nthreads, P->za + r, P->zb - r, SWEEP_LAYER_PLANE_COST)) {
        free(rows);
        return 1;
    }
    memset(rows, 0, total);
    K.zero = rows + (int64_t)nthreads * per + A3_V;
    const int status = sweep_pool_run(nthreads, SFX(a3_thread), &J, stats);
    sched_free(&J.S);
    free(rows);
    return status;
}

#undef A3_FOR
#undef A3_UP
#undef A3_V
