/* Template body of the 3-D acoustic kernels' shared pieces, included by acoustic3d_instance.h once per precision
 * (REAL, SFX) and equation before the forward (acoustic3d_impl.h), the adjoint (acoustic3d_adjoint.h) and the
 * reverse-time rebuild (acoustic3d_retreat.h), which all use them: the problem's coefficients (k3), the per-cell
 * arithmetic (scalar functions a CUDA build can share), the rows of the grid with zero rows outside it, one shot's
 * fields and the per-thread scratch rows.
 *
 * Two equations share the templates. Constant density: L_a = D2a u + D1a psi_a', psi_a' = b psi + a D1a u. With
 * SWEEP_VRZ, variable density (sweep/propagator/eager/acoustic_vrz.py, operation for operation): with the buoyancy
 * beta (edge-replicated past the padded grid) and w = K = kappa dt^2,
 *   psi_a' = b_a psi_a + a_a (beta D1a u)
 *   L_a    = Bdiv_a u + D1a psi_a',  Bdiv_a u = sum_k c_k / dh^2 [ (beta_i + beta_{i+k}) / 2 (u_{i+k} - u_i)
 *                                                                + (beta_i + beta_{i-k}) / 2 (u_{i-k} - u_i) ]
 *   the source adds beta f / dh^3, and the snapshot of step n is (S_n, u_n).
 * C3_VRZ is the compile-time switch the code branches on (dead branches vanish: the constant-density instance
 * compiles to what it was before), C3_SNAPS the fields of a snapshot. */
#undef C3_VRZ
#undef C3_SNAPS
#if SWEEP_VRZ
#define C3_VRZ 1
#define C3_SNAPS 2
#else
#define C3_VRZ 0
#define C3_SNAPS 1
#endif

/* The 3-D kernels' vector length in bytes: they prefer 256-bit vectors (acoustic_instance.h). */
#if defined(__AVX__)
#define SWEEP_VEC3_BYTES 32
#else
#define SWEEP_VEC3_BYTES 16
#endif

/* Bytes a wave's y-tile may touch between two uses of a cell (2r planes of its rows, about five fields): whole
 * planes up to NX ~ 350 cells at order 4 in float32. */
#ifndef SWEEP_TILE_BYTES
#define SWEEP_TILE_BYTES (4 * 1024 * 1024)
#endif
/* Relative cost of a z-layer plane (C-PML z terms on every cell) against an interior plane (whose rows already
 * have y- and x-layer cells), for the band split. */
#define SWEEP_LAYER_PLANE_COST 2

typedef struct {
    int64_t nz, ny, nx, plane; /* plane = ny * nx */
    REAL c1[5], c2[5], inv_dh, inv_dh2, inv_src;
    const REAL *w, *ax, *bx, *ay, *by, *az, *bz;
    const REAL *zero; /* a row of nx zeros: stands for the rows and planes outside the grid */
    /* VRZ: c2 / 2 (the pair coefficients' halves folded in: exact), the buoyancy on the padded grid (bnz, bny,
     * bnx) and where the kernel's grid starts in it (boz, boy, box: the physical window for the rebuild). */
    REAL c2h[5];
    const REAL *b;
    int64_t bnz, bny, bnx, boz, boy, box;
} SFX(k3);

static void SFX(k3_load)(const sweep_problem3d *P, SFX(k3) *K) {
    K->nz = P->nz;
    K->ny = P->ny;
    K->nx = P->nx;
    K->plane = P->ny * P->nx;
    K->c1[0] = 0;
    for (int k = 1; k <= 4; k++) K->c1[k] = (REAL)P->c1[k - 1];
    for (int k = 0; k <= 4; k++) K->c2[k] = (REAL)P->c2[k];
    K->inv_dh = (REAL)P->inv_dh;
    K->inv_dh2 = (REAL)P->inv_dh2;
    K->inv_src = (REAL)P->inv_src;
    K->w = (const REAL *)P->w;
    K->ax = (const REAL *)P->ax;
    K->bx = (const REAL *)P->bx;
    K->ay = (const REAL *)P->ay;
    K->by = (const REAL *)P->by;
    K->az = (const REAL *)P->az;
    K->bz = (const REAL *)P->bz;
    K->zero = 0;
    for (int k = 0; k <= 4; k++) K->c2h[k] = K->c2[k] / 2;
    K->b = (const REAL *)P->b;
    K->bnz = P->nz;
    K->bny = P->ny;
    K->bnx = P->nx;
    K->boz = K->boy = K->box = 0;
}

/* Slot `slot` (imaged_slot's, -1: none) of a snapshot buffer of `size` values per slot, or NULL (as acoustic_impl.h's,
 * which lives in the 2-D translation unit). */
static inline REAL *SFX(slot)(REAL *buf, int64_t slot, int64_t size) { return buf && slot >= 0 ? buf + slot * size : 0; }
static inline const REAL *SFX(cslot)(const REAL *buf, int64_t slot, int64_t size) {
    return buf && slot >= 0 ? buf + slot * size : 0;
}

/* ---- per-cell arithmetic (scalar functions of a cell's values: a CUDA build can share them) ---------- */

/* sum_{k=1..R} c1[k] (f[j+k] - f[j-k]) along a row. */
ALWAYS_INLINE REAL SFX(c3_d1x)(const REAL *c1, const REAL *f, int64_t j, const int R) {
    REAL d = c1[1] * (f[j + 1] - f[j - 1]);
    for (int k = 2; k <= R; k++) d = d + c1[k] * (f[j + k] - f[j - k]);
    return d;
}

/* sum_{k=1..R} c1[k] (t[k][j] - t[-k][j]) across rows or planes (t: the rows at offsets -R..R). */
ALWAYS_INLINE REAL SFX(c3_d1t)(const REAL *c1, const REAL *const *t, int64_t j, const int R) {
    REAL d = c1[1] * (t[1][j] - t[-1][j]);
    for (int k = 2; k <= R; k++) d = d + c1[k] * (t[k][j] - t[-k][j]);
    return d;
}

/* psi' = b psi + a (D1 u) / dh: the C-PML memory of a first derivative (d: its stencil sum); VRZ: of beta du/da,
 * b psi + a (beta (D1 u) / dh) (beta: the cell's buoyancy). */
ALWAYS_INLINE REAL SFX(c3_psi)(REAL b, REAL psi, REAL a, REAL d, REAL inv_dh, REAL beta) {
    if (C3_VRZ) return b * psi + a * (beta * (d * inv_dh));
    return b * psi + a * (d * inv_dh);
}

/* VRZ: the pair terms of Bdiv. With FMA hardware (every x86 path but the baseline) the pair terms use fused
 * multiply-adds: c_k / 2 (s_+ d_+ + s_- d_-) + acc as fma(c_k / 2, fma(s_-, d_-, s_+ d_+), acc), 4 roundings fewer
 * per offset and 2 operations fewer of about 9 (the forward's cost is in these sums). The forward, the rebuild and
 * the adjoint all call these, so the rebuild still repeats the forward's rounding; against the eager stepper,
 * which rounds every product, the difference is rounding (float64 ~1e-16 relative). */
#if defined(__FMA__)
#define C3_FMA(a, b, c) _Generic((REAL)0, float: __builtin_fmaf, default: __builtin_fma)((a), (b), (c))
#else
#define C3_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* c2h (s_+ d_+ + s_- d_-) of one offset (s: pair sums, d: differences), plus acc when ACC. */
ALWAYS_INLINE REAL SFX(c3_pair)(REAL c2h, REAL sp, REAL dp, REAL sm, REAL dm, REAL acc, const int ACC) {
    const REAL t = C3_FMA(sm, dm, sp * dp);
    return ACC ? C3_FMA(c2h, t, acc) : c2h * t;
}

/* VRZ: dh^2 Bdiv along a row, sum_k c_k [ (b_j + b_{j+k}) / 2 (f_{j+k} - f_j) + (b_j + b_{j-k}) / 2 (f_{j-k} - f_j) ]
 * with the halves folded into c2h = c_k / 2 (exact). f: a padded row (zeros beyond the grid), b: a padded row (edge
 * copies). */
ALWAYS_INLINE REAL SFX(c3_bdx)(const REAL *c2h, const REAL *f, const REAL *b, int64_t j, const int R) {
    const REAL fc = f[j], bc = b[j];
    REAL d = SFX(c3_pair)(c2h[1], bc + b[j + 1], f[j + 1] - fc, bc + b[j - 1], f[j - 1] - fc, 0, 0);
    for (int k = 2; k <= R; k++)
        d = SFX(c3_pair)(c2h[k], bc + b[j + k], f[j + k] - fc, bc + b[j - k], f[j - k] - fc, d, 1);
    return d;
}

/* VRZ: dh^2 Bdiv across rows or planes (t, b: the rows at offsets -R..R of the field and of the buoyancy). */
ALWAYS_INLINE REAL SFX(c3_bdt)(const REAL *c2h, const REAL *const *t, const REAL *const *b, int64_t j, const int R) {
    const REAL fc = t[0][j], bc = b[0][j];
    REAL d = SFX(c3_pair)(c2h[1], bc + b[1][j], t[1][j] - fc, bc + b[-1][j], t[-1][j] - fc, 0, 0);
    for (int k = 2; k <= R; k++)
        d = SFX(c3_pair)(c2h[k], bc + b[k][j], t[k][j] - fc, bc + b[-k][j], t[-k][j] - fc, d, 1);
    return d;
}

/* zeta' = b zeta + a L. */
ALWAYS_INLINE REAL SFX(c3_zeta)(REAL b, REAL zeta, REAL a, REAL l) { return b * zeta + a * l; }

/* u_next = 2 u - u_prev + w S. */
ALWAYS_INLINE REAL SFX(c3_leapfrog)(REAL u, REAL up, REAL w, REAL s) { return 2 * u - up + w * s; }

/* S of one cell (column j): x taps from the row ux, y / z taps from the rows uy / uz (offsets -R..R); with DOX
 * (DOY, DOZ) also D1 of psi_x' (pxn, a padded row) and zeta_x' = b_x zeta_x + a_x L_x (from zxi[j] into *zxn),
 * likewise y (psi_y' rows py, coefficients by, ay of the row) and z (pz, bz, az of the plane). VRZ: x taps of the
 * buoyancy from its padded row bx, and Bdiv_y u / dh^2, Bdiv_z u / dh^2 from the rows lyr, lzr (c3_bdiv_yz; uy, uz
 * unused); the arguments of the other equation are unused. */
ALWAYS_INLINE REAL SFX(c3_rhs)(const SFX(k3) *K, const REAL *ux, const REAL *const *uy, const REAL *const *uz,
                               const REAL *bx, const REAL *lyr, const REAL *lzr,
                               const REAL *pxn, const REAL *const *py, const REAL *const *pz, const REAL *zxi,
                               const REAL *zyi, const REAL *zzi, REAL by, REAL ay, REAL bz, REAL az, int64_t j,
                               REAL *zxn, REAL *zyn, REAL *zzn, const int DOX, const int DOY, const int DOZ,
                               const int R) {
    REAL lx, ly, lz;
    if (C3_VRZ) {
        lx = SFX(c3_bdx)(K->c2h, ux, bx, j, R) * K->inv_dh2;
        ly = lyr[j];
        lz = lzr[j];
    } else {
        const REAL uc = ux[j];
        REAL dxx = K->c2[0] * uc, dyy = K->c2[0] * uc, dzz = K->c2[0] * uc;
        for (int k = 1; k <= R; k++) {
            dxx = dxx + K->c2[k] * (ux[j + k] + ux[j - k]);
            dyy = dyy + K->c2[k] * (uy[k][j] + uy[-k][j]);
            dzz = dzz + K->c2[k] * (uz[k][j] + uz[-k][j]);
        }
        lx = dxx * K->inv_dh2;
        ly = dyy * K->inv_dh2;
        lz = dzz * K->inv_dh2;
    }
    REAL s;
    if (DOX) {
        lx = lx + SFX(c3_d1x)(K->c1, pxn, j, R) * K->inv_dh;
        const REAL zn = SFX(c3_zeta)(K->bx[j], zxi[j], K->ax[j], lx);
        *zxn = zn;
        s = lx + zn;
    } else {
        s = lx;
    }
    if (DOY) {
        ly = ly + SFX(c3_d1t)(K->c1, py, j, R) * K->inv_dh;
        const REAL zn = SFX(c3_zeta)(by, zyi[j], ay, ly);
        *zyn = zn;
        s = s + ly;
        s = s + zn;
    } else {
        s = s + ly;
    }
    if (DOZ) {
        lz = lz + SFX(c3_d1t)(K->c1, pz, j, R) * K->inv_dh;
        const REAL zn = SFX(c3_zeta)(bz, zzi[j], az, lz);
        *zzn = zn;
        s = s + lz;
        s = s + zn;
    } else {
        s = s + lz;
    }
    return s;
}

/* ---- rows of the grid ------------------------------------------------------------------------------ */

/* t[q] (q = -R..R) = row k + q of plane i of field f, or the zero row outside the grid. */
ALWAYS_INLINE void SFX(c3_taps_y)(const SFX(k3) *K, const REAL *f, int64_t i, int64_t k, const REAL **t, const int R) {
    const REAL *row = f + i * K->plane + k * K->nx;
    if (k >= R && k + R < K->ny) {
        for (int q = -R; q <= R; q++) t[q] = row + q * K->nx;
        return;
    }
    for (int q = -R; q <= R; q++) t[q] = (k + q >= 0 && k + q < K->ny) ? row + q * K->nx : K->zero;
}

/* t[q] (q = -R..R) = row k of plane i + q of field f, or the zero row outside the grid. */
ALWAYS_INLINE void SFX(c3_taps_z)(const SFX(k3) *K, const REAL *f, int64_t i, int64_t k, const REAL **t, const int R) {
    const REAL *row = f + i * K->plane + k * K->nx;
    if (i >= R && i + R < K->nz) {
        for (int q = -R; q <= R; q++) t[q] = row + q * K->plane;
        return;
    }
    for (int q = -R; q <= R; q++) t[q] = (i + q >= 0 && i + q < K->nz) ? row + q * K->plane : K->zero;
}

/* VRZ: the buoyancy around row k of plane i of the kernel's grid: x (a padded row, edge copies beyond the padded
 * grid), y[q] / z[q] (q = -R..R) the rows k + q / planes i + q, clamped to the padded grid (edge replication).
 * Pointers to the kernel's column 0 (the padded grid's column box). */
typedef struct {
    const REAL *x;
    const REAL *ya[9], *za[9];
} SFX(c3_beta);

/* Fills B for row k of plane i (the x row copied into bb, a scratch row of bnx + 2 SWEEP_XPAD). */
static inline void SFX(c3_beta_taps)(const SFX(k3) *K, int64_t i, int64_t k, REAL *bb, SFX(c3_beta) *B, int r) {
    const int64_t I = i + K->boz, Y = k + K->boy, nx = K->bnx, plane = K->bny * nx;
    const REAL *const row = K->b + I * plane + Y * nx;
    memcpy(bb + SWEEP_XPAD, row, (size_t)nx * sizeof(REAL));
    for (int q = 1; q <= SWEEP_XPAD; q++) {
        bb[SWEEP_XPAD - q] = row[0];
        bb[SWEEP_XPAD + nx - 1 + q] = row[nx - 1];
    }
    B->x = bb + SWEEP_XPAD + K->box;
    for (int q = -r; q <= r; q++) {
        B->ya[4 + q] = row + (clamp64(Y + q, 0, K->bny - 1) - Y) * nx + K->box;
        B->za[4 + q] = row + (clamp64(I + q, 0, K->bnz - 1) - I) * plane + K->box;
    }
}

/* VRZ: ly = Bdiv_y u / dh^2 and lz = Bdiv_z u / dh^2 of a row on [0, nx) (uy, uz: the u rows across it, B the
 * buoyancy's), each in a loop of its own: with the x terms in one loop, the 4R + 2 rows of u and of beta across
 * the row need more registers than there are (spills, and more streams than the prefetchers follow). The same
 * operations as in one loop, so the rounding is the same. */
ALWAYS_INLINE void SFX(c3_bdiv_yz)(const SFX(k3) *K_, const REAL *const *uy_, const REAL *const *uz_,
                                   const SFX(c3_beta) *B, REAL *restrict ly, REAL *restrict lz, const int R) {
    const SFX(k3) Kl = *K_, *const K = &Kl;
    const REAL *ta[9], *ba[9];
    const REAL *const *const t = ta + R, *const *const b = ba + R;
    for (int q = -R; q <= R; q++) {
        ta[R + q] = uy_[q];
        ba[R + q] = B->ya[4 + q];
    }
    for (int64_t j = 0; j < K->nx; j++) ly[j] = SFX(c3_bdt)(K->c2h, t, b, j, R) * K->inv_dh2;
    for (int q = -R; q <= R; q++) {
        ta[R + q] = uz_[q];
        ba[R + q] = B->za[4 + q];
    }
    for (int64_t j = 0; j < K->nx; j++) lz[j] = SFX(c3_bdt)(K->c2h, t, b, j, R) * K->inv_dh2;
}

#if SWEEP_VRZ
#define DEF(RR)                                                                                            \
    SWEEP_NOINLINE void SFX(c3_bdiv_yz##RR)(const SFX(k3) *K, const REAL *const *uy, const REAL *const *uz,  \
                                            const SFX(c3_beta) *B, REAL *ly, REAL *lz) {                     \
        SFX(c3_bdiv_yz)(K, uy, uz, B, ly, lz, RR);                                                           \
    }
SWEEP_PER_RADIUS(DEF)
#undef DEF

static void SFX(c3_bdiv_yz_any)(const SFX(k3) *K, int r, const REAL *const *uy, const REAL *const *uz,
                                const SFX(c3_beta) *B, REAL *ly, REAL *lz) {
#define CALL(RR) SFX(c3_bdiv_yz##RR)(K, uy, uz, B, ly, lz)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}
#endif

/* One shot's fields (u_prev is overwritten by u_next). */
typedef struct {
    const REAL *u;
    REAL *up, *px, *py, *pz, *zx, *zy, *zz;
} SFX(c3_fields);

/* Per-thread scratch rows (nx + 2 SWEEP_XPAD each; the padded ones zero outside what a row writes). */
typedef struct {
    REAL *ub;          /* u of the current row at ub[SWEEP_XPAD + j], zero beyond the grid */
    REAL *pb;          /* psi_x' of the current row at pb[SWEEP_XPAD + j]: the layer columns, zero elsewhere */
    REAL *srow, *uold; /* S of the current row; u_prev of a row with sources */
    REAL *bb;          /* VRZ: the buoyancy's padded row (c3_beta_taps) */
    REAL *ly, *lz;     /* VRZ: Bdiv_y u / dh^2, Bdiv_z u / dh^2 of the current row (c3_bdiv_yz) */
} SFX(c3_scratch);

/* Every thread's rows, zero-filled, in one block: T[t] for thread t; free() it. NULL when out of memory. */
static SFX(c3_scratch) *SFX(c3_alloc_scratch)(int nthreads, int64_t nx) {
    const int64_t ld = round_up(nx + 2 * SWEEP_XPAD, 16), nrows = 4 + 3 * C3_VRZ;
    const size_t head = (size_t)round_up(nthreads * (int64_t)sizeof(SFX(c3_scratch)), 64);
    char *mem = (char *)calloc(head + (size_t)nthreads * nrows * (size_t)ld * sizeof(REAL), 1);
    if (!mem) return 0;
    SFX(c3_scratch) *T = (SFX(c3_scratch) *)mem;
    REAL *block = (REAL *)(mem + head);
    for (int t = 0; t < nthreads; t++) {
        REAL *b = block + (size_t)t * nrows * (size_t)ld;
        T[t] = (SFX(c3_scratch)){b, b + ld, b + 2 * ld + SWEEP_XPAD, b + 3 * ld + SWEEP_XPAD,
                                 C3_VRZ ? b + 4 * ld : 0, C3_VRZ ? b + 5 * ld : 0, C3_VRZ ? b + 6 * ld : 0};
    }
    return T;
}
