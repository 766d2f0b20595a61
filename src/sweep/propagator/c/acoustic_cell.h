/* Per-cell arithmetic of the 2-D step, included by acoustic_impl.h (same REAL / SFX) for both equations:
 * SWEEP_VRZ 0, the constant-density acoustic step; SWEEP_VRZ 1, the variable-density one (VRZ, see
 * sweep/propagator/eager/acoustic_vrz.py). The forward and the rebuild both go through `rhs`, so that the
 * rebuild repeats the forward's rounding; the adjoint applies the same (symmetric) operator.
 *
 * VRZ's d/da (beta du/da) along an axis is the eager stepper's pair form,
 *     sum_k (e_k beta_i + e_k beta_{i+-k}) (u_{i+-k} - u_i),   e_k = c_k / (2 dh^2),
 * three operations per tap (e_k beta_i once per offset). beta past the grid is edge-replicated (u is zero
 * there, the pair's coefficient is not): a row's x taps come from the grid's row or, near an edge, from a
 * copy of it padded with its edge values (pad_beta), its z taps from rows clamped to the grid (make_brow, crow).
 * Measured against the alternative beta A(u) + A(beta u) - G u (A the pair sums of u, G a precomputed
 * diagonal), which needs the same taps plus a G array: the pair form streams one array less per step and has
 * no cancellation between large terms.
 */

#if SWEEP_VRZ
/* Row i of a coefficient of the padded grid (beta, or w = K), read from its copy in the physical window: the
 * layout edge-replicates both into the layers, so a z-layer row reads the edge row (in cache) instead of
 * streaming its own copy. */
static inline const REAL *SFX(crow)(const SFX(consts) *K, const REAL *base, int64_t i) {
    return base + clamp64(i, K->blo, K->bhi) * K->bld;
}
#endif

/* Fields per snapshot: S (and u_n under VRZ), each (nshots, pnz, pnx). */
#define SNAPF (1 + SWEEP_VRZ)

/* beta at flat index c of the consts' grid (VRZ; the source term ignores it otherwise). */
#if SWEEP_VRZ
#define SWEEP_B(K, c) ((K)->b[(c)])
#else
#define SWEEP_B(K, c) ((REAL)0)
#endif

#if SWEEP_VRZ
/* a b + c, fused (one rounding) where the code path has FMA, else two roundings: either way one fixed
 * rounding, whatever the compiler would contract. */
ALWAYS_INLINE REAL SFX(fmadd)(REAL a, REAL b, REAL c) {
#if defined(__FMA__)
    return sizeof(REAL) == sizeof(float) ? (REAL)__builtin_fmaf((float)a, (float)b, (float)c) : (REAL)__builtin_fma(a, b, c);
#else
    return a * b + c;
#endif
}
#endif

#if SWEEP_VRZ
/* The buoyancy taps of one row: beta for the x taps (the grid's row, or a padded copy of it) and beta rows
 * i-R..i+R for the z taps (z[R + k], clamped to the grid). */
typedef struct {
    const REAL *x;
    const REAL *z[9];
} SFX(brow);

/* Row i's buoyancy taps (x taps from bx), for the R of the stencil. */
ALWAYS_INLINE SFX(brow) SFX(make_brow)(const SFX(consts) *K, const REAL *bx, int64_t i, const int R) {
    SFX(brow) B;
    B.x = bx;
    for (int k = -R; k <= R; k++) B.z[R + k] = SFX(crow)(K, K->b, i + k);
    return B;
}

/* bx[-4..-1] and bx[nx..nx+3] = the edge values of brow, the row of beta of nx values whose copy bx is (beta
 * edge-replicated past the grid). */
ALWAYS_INLINE void SFX(pad_beta)(REAL *bx, const REAL *brow, int64_t nx) {
    for (int k = 1; k <= SWEEP_XPAD; k++) {
        bx[-k] = brow[0];
        bx[nx - 1 + k] = brow[nx - 1];
    }
}
#else
typedef struct { const REAL *unused; } SFX(brow);
#endif

/* beta_j x under VRZ (bb: the row of beta), x otherwise. */
ALWAYS_INLINE REAL SFX(beta)(const REAL *bb, int64_t j, REAL x) {
#if SWEEP_VRZ
    return bb[j] * x;
#else
    (void)bb;
    (void)j;
    return x;
#endif
}

/* What a source adds to S: f / dh^2, times the buoyancy bsrc of its cell under VRZ. */
ALWAYS_INLINE REAL SFX(src_term)(const SFX(consts) *K, REAL bsrc, REAL f) {
#if SWEEP_VRZ
    return bsrc * (f * K->inv_dh2);
#else
    (void)bsrc;
    return f * K->inv_dh2;
#endif
}

/* psi_x' = b_x psi_x + a_x [beta] D1x u on [j0, j1): x taps from the padded row ux; psi_x' over psi_x (the row
 * px) and into the padded row pxn; bb the row of beta (VRZ). */
ALWAYS_INLINE void SFX(psi_x_span)(const SFX(consts) *K_, const REAL *restrict ux, REAL *restrict px,
                                   REAL *restrict pxn, const REAL *restrict bb, int64_t j0, int64_t j1, const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const REAL inv_dh = K->inv_dh;
    const REAL *restrict ax = K->ax, *restrict bx = K->bx;
    for (int64_t j = j0; j < j1; j++) {
        REAL d = K->c1[1] * (ux[j + 1] - ux[j - 1]);
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (ux[j + k] - ux[j - k]);
        const REAL p = bx[j] * px[j] + ax[j] * SFX(beta)(bb, j, d * inv_dh);
        px[j] = p;
        pxn[j] = p;
    }
}

/* psi_z' = b_z psi_z + a_z [beta] D1z u on row i (in place). */
ALWAYS_INLINE void SFX(psi_z_span)(const SFX(consts) *K_, const REAL *restrict u, REAL *restrict pz, int64_t i,
                                   int64_t j0, int64_t j1, const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const int64_t nx = K->nx;
    const REAL inv_dh = K->inv_dh, a = K->az[i], b = K->bz[i];
#if SWEEP_VRZ
    const REAL *restrict bb = SFX(crow)(K, K->b, i);
#else
    const REAL *bb = 0;
#endif
    ROWS(ur, u, i, R);
    REAL *restrict pr = pz + i * nx;
    for (int64_t j = j0; j < j1; j++) {
        REAL d = K->c1[1] * (ur[1][j] - ur[-1][j]);
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (ur[k][j] - ur[-k][j]);
        pr[j] = b * pr[j] + a * SFX(beta)(bb, j, d * inv_dh);
    }
}

/* S = L_x + zeta_x' + L_z + zeta_z' at column j: ux is the row of u (x taps), ur its rows i-R..i+R (z taps),
 * pxn the row of psi_x' and pr the rows of psi_z' (when DOX / DOZ); zeta' into *zxn / *zzn from zxi / zzi;
 * bz, az are the row's z coefficients; B the row's buoyancy terms (VRZ). */
ALWAYS_INLINE REAL SFX(rhs)(const SFX(consts) *K, const REAL *ux, const REAL *const *ur, const SFX(brow) *B,
                            const REAL *pxn, const REAL *const *pr, const REAL *zxi, const REAL *zzi, REAL bz,
                            REAL az, int64_t j, REAL *zxn, REAL *zzn, const int DOX, const int DOZ, const int R) {
    const REAL uc = ux[j];
#if SWEEP_VRZ
    /* The pair form (see the top of this file), x and z in two sums, every product in an explicit fma (fmadd):
     * where gcc may contract a sum of two products either way, the forward and the rebuild (different loops,
     * vector bodies and remainders) would round differently. */
    const REAL *const bx = B->x, *const *const br = B->z + R, bc = bx[j];
    REAL lx = 0, lz = 0;
    for (int k = 1; k <= R; k++) {
        const REAL e = K->e[k], eb = e * bc;
        lx = SFX(fmadd)(SFX(fmadd)(e, bx[j + k], eb), ux[j + k] - uc, lx);
        lx = SFX(fmadd)(SFX(fmadd)(e, bx[j - k], eb), ux[j - k] - uc, lx);
        lz = SFX(fmadd)(SFX(fmadd)(e, br[k][j], eb), ur[k][j] - uc, lz);
        lz = SFX(fmadd)(SFX(fmadd)(e, br[-k][j], eb), ur[-k][j] - uc, lz);
    }
#else
    (void)B;
    REAL dxx = K->c2[0] * uc, dzz = K->c2[0] * uc;
    for (int k = 1; k <= R; k++) {
        dxx = dxx + K->c2[k] * (ux[j + k] + ux[j - k]);
        dzz = dzz + K->c2[k] * (ur[k][j] + ur[-k][j]);
    }
    REAL lx = dxx * K->inv_dh2, lz = dzz * K->inv_dh2;
#endif
    REAL s;
    if (DOX) {
        REAL d = K->c1[1] * (pxn[j + 1] - pxn[j - 1]);
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (pxn[j + k] - pxn[j - k]);
        lx = lx + d * K->inv_dh;
        const REAL zn = K->bx[j] * zxi[j] + K->ax[j] * lx;
        *zxn = zn;
        s = lx + zn;
    } else {
        s = lx;
    }
    if (DOZ) {
        REAL d = K->c1[1] * (pr[1][j] - pr[-1][j]);
        for (int k = 2; k <= R; k++) d = d + K->c1[k] * (pr[k][j] - pr[-k][j]);
        lz = lz + d * K->inv_dh;
        const REAL zn = bz * zzi[j] + az * lz;
        *zzn = zn;
        s = s + lz;
        s = s + zn;
    } else {
        s = s + lz;
    }
    return s;
}

