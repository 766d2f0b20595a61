/* Template body of the 3-D acoustic kernels' shared pieces, included by acoustic_instance.h once per precision
 * (REAL, SFX) before the forward (acoustic3d_impl.h), the adjoint (acoustic3d_adjoint.h) and the reverse-time
 * rebuild (acoustic3d_retreat.h), which all use them: the problem's coefficients (k3), the per-cell arithmetic
 * (scalar functions a CUDA build can share), the rows of the grid with zero rows outside it, one shot's
 * fields and the per-thread scratch rows. */

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

/* psi' = b psi + a (D1 u) / dh: the C-PML memory of a first derivative (d: its stencil sum). */
ALWAYS_INLINE REAL SFX(c3_psi)(REAL b, REAL psi, REAL a, REAL d, REAL inv_dh) { return b * psi + a * (d * inv_dh); }

/* zeta' = b zeta + a L. */
ALWAYS_INLINE REAL SFX(c3_zeta)(REAL b, REAL zeta, REAL a, REAL l) { return b * zeta + a * l; }

/* u_next = 2 u - u_prev + w S. */
ALWAYS_INLINE REAL SFX(c3_leapfrog)(REAL u, REAL up, REAL w, REAL s) { return 2 * u - up + w * s; }

/* S of one cell (column j): x taps from the row ux, y / z taps from the rows uy / uz (offsets -R..R); with DOX
 * (DOY, DOZ) also D1 of psi_x' (pxn, a padded row) and zeta_x' = b_x zeta_x + a_x L_x (from zxi[j] into *zxn),
 * likewise y (psi_y' rows py, coefficients by, ay of the row) and z (pz, bz, az of the plane). */
ALWAYS_INLINE REAL SFX(c3_rhs)(const SFX(k3) *K, const REAL *ux, const REAL *const *uy, const REAL *const *uz,
                               const REAL *pxn, const REAL *const *py, const REAL *const *pz, const REAL *zxi,
                               const REAL *zyi, const REAL *zzi, REAL by, REAL ay, REAL bz, REAL az, int64_t j,
                               REAL *zxn, REAL *zyn, REAL *zzn, const int DOX, const int DOY, const int DOZ,
                               const int R) {
    const REAL uc = ux[j];
    REAL dxx = K->c2[0] * uc, dyy = K->c2[0] * uc, dzz = K->c2[0] * uc;
    for (int k = 1; k <= R; k++) {
        dxx = dxx + K->c2[k] * (ux[j + k] + ux[j - k]);
        dyy = dyy + K->c2[k] * (uy[k][j] + uy[-k][j]);
        dzz = dzz + K->c2[k] * (uz[k][j] + uz[-k][j]);
    }
    REAL lx = dxx * K->inv_dh2, ly = dyy * K->inv_dh2, lz = dzz * K->inv_dh2;
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
} SFX(c3_scratch);

/* Every thread's rows, zero-filled, in one block: T[t] for thread t; free() it. NULL when out of memory. */
static SFX(c3_scratch) *SFX(c3_alloc_scratch)(int nthreads, int64_t nx) {
    const int64_t ld = round_up(nx + 2 * SWEEP_XPAD, 16);
    const size_t head = (size_t)round_up(nthreads * (int64_t)sizeof(SFX(c3_scratch)), 64);
    char *mem = (char *)calloc(head + (size_t)nthreads * 4 * (size_t)ld * sizeof(REAL), 1);
    if (!mem) return 0;
    SFX(c3_scratch) *T = (SFX(c3_scratch) *)mem;
    REAL *block = (REAL *)(mem + head);
    for (int t = 0; t < nthreads; t++) {
        REAL *b = block + (size_t)t * 4 * (size_t)ld;
        T[t] = (SFX(c3_scratch)){b, b + ld, b + 2 * ld + SWEEP_XPAD, b + 3 * ld + SWEEP_XPAD};
    }
    return T;
}
