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
 * With SWEEP_VRZ 1 (acoustic_instance.h, kernels sweep_acoustic_vrz_*) the same template runs the
 * variable-density step (sweep/propagator/eager/acoustic_vrz.py): D2 u becomes d/da (beta du/da) (the pair
 * form, acoustic_cell.h), psi' carries beta, the sources add beta f / dh^2, w is K = z vp dt^2, and the
 * snapshot is (S_n, u_n), two fields (SNAPF). Everything else (rows, edge blocks, layers, bands, strips,
 * sources and receivers by row) is shared.
 *
 * Parallelism: the pool's threads (pool.h) over (shot, row), the same split in every pass, so each
 * thread owns the same rows throughout; sources and receivers are handled by the owner of their row in
 * a fixed order, and the model gradient is accumulated per shot. No sum depends on the thread count.
 */

/* Slot `slot` (imaged_slot's, -1: none) of a snapshot buffer of `size` values per slot, or NULL. */
static inline REAL *SFX(slot)(REAL *buf, int64_t slot, int64_t size) {
    return buf && slot >= 0 ? buf + slot * size : 0;
}
static inline const REAL *SFX(cslot)(const REAL *buf, int64_t slot, int64_t size) {
    return buf && slot >= 0 ? buf + slot * size : 0;
}

typedef struct {
    int64_t nz, nx;
    REAL c1[5], c2[5], inv_dh, inv_dh2;
    const REAL *w, *ax, *bx, *az, *bz;
    const REAL *zero; /* a row of nx zeros: stands for the rows outside the grid */
#if SWEEP_VRZ
    REAL e[5];                    /* c2[k] / (2 dh^2), the pair weights (acoustic_cell.h) */
    const REAL *b;                /* buoyancy beta: rows of bld values */
    int64_t bld;
    int64_t blo, bhi;             /* beta's and w's distinct rows: those outside copy row blo or bhi */
#endif
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
#if SWEEP_VRZ
    K->e[0] = 0;
    for (int k = 1; k <= 4; k++) K->e[k] = (REAL)(0.5 * P->c2[k] * P->inv_dh2);
    K->b = (const REAL *)P->b;
    K->bld = P->nx;
    K->blo = P->ptop;
    K->bhi = P->ptop + P->pnz - 1;
#endif
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

/* ---- forward ---------------------------------------------------------------------------------- */

/* How a row's columns are computed. The columns within r of a padded edge or of an x absorbing layer
 * (the edge blocks [0, el) and [er, nx)) read their x taps from a zero-padded copy of the row, so that no
 * cell needs bounds checks; the middle [el, er) reads the fields directly and has no C-PML x terms. Each
 * block runs over whole vectors, the left one over [0, xl) and the right one over [xr, nx), into scratch
 * rows from which only its own cells are copied back: ~20-cell loops with scalar remainders and
 * bounds-checked edge pieces otherwise cost an x-layer cell about ten interior ones. psi_x' of the layer
 * columns is computed over [0, pl) and [pr, nx), in place and into a zero-padded row (past the layer the
 * formula gives exact zeros: a = 0, b = 1 and psi = 0 there). Rows too narrow for that (a block reaching
 * the other layer) are one block computed in place, with C-PML x terms on exactly the cells outside
 * [c0, c1) (see segments). */
typedef struct {
    int two;          /* two edge blocks and a middle; otherwise one block */
    int dox_l, dox_r; /* the left / right block has C-PML x terms */
    int64_t el, er, xl, xr, pl, pr;
    int64_t xa, xb;   /* the layer columns [0, xa) and [xb, nx) (see layer_columns) */
} SFX(xlayout);

static SFX(xlayout) SFX(make_xlayout)(int64_t nx, int64_t r, int64_t xa, int64_t xb, const segments *cs) {
    const int64_t v = SWEEP_VEC_BYTES / (int64_t)sizeof(REAL);
    SFX(xlayout) L;
    layer_columns(nx, xa, xb, &L.xa, &L.xb);
    L.el = clamp64(cs->c0 > r ? cs->c0 : r, 0, nx);
    L.er = clamp64(cs->c1 < nx - r ? cs->c1 : nx - r, 0, nx);
    L.xl = clamp64(round_up(L.el, v), 0, nx);
    L.xr = clamp64(nx - round_up(nx - L.er, v), 0, nx);
    L.pl = clamp64(round_up(L.xa, v), 0, L.xl);
    L.pr = clamp64(nx - round_up(nx - L.xb, v), L.xr, nx);
    L.dox_l = cs->c0 > 0;
    L.dox_r = cs->c1 < nx;
    L.two = L.xa < L.xb && L.el <= L.er && L.pl <= L.xb && L.pr >= L.xa;
    return L;
}

/* Per-thread scratch rows (nx + 2 SWEEP_XPAD each, the padded ones zero outside what a row writes). */
typedef struct {
    REAL *ub;  /* u of the current row at ub[SWEEP_XPAD + j], zero beyond the grid */
    REAL *pb;  /* psi_x' of the current row at pb[SWEEP_XPAD + j]: the layer columns, zero elsewhere */
    REAL *ou, *ozx, *ozz; /* a block's u_next, zeta_x', zeta_z' */
#if SWEEP_VRZ
    REAL *bb;  /* beta of the current row at bb[SWEEP_XPAD + j], edge-replicated beyond the grid */
#endif
} SFX(scratch);

#include "acoustic_cell.h"

/* The row's fields: u (x taps from ux), u_prev / zeta read from the *i rows and written to the *o rows at
 * j - o (o = 0 in place, the block's start for scratch rows), S into srow[j] when KEEP. */
typedef struct {
    const REAL *ux, *const *ur, *pxn, *const *pr, *upi, *zxi, *zzi, *w;
    REAL *upo, *zxo, *zzo, *srow;
    REAL bz, az;
    int64_t o;
#if SWEEP_VRZ
    SFX(brow) B;
#endif
} SFX(rowio);

ALWAYS_INLINE void SFX(fwd_span)(const SFX(consts) *K_, const SFX(rowio) *io, int64_t j0, int64_t j1,
                                 const int DOX, const int DOZ, const int KEEP, const int R) {
    /* Local copies: coefficients and row pointers are then loop invariants kept in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const REAL *restrict ux = io->ux, *restrict pxn = io->pxn, *restrict w = io->w;
    const REAL *upi = io->upi, *zxi = io->zxi, *zzi = io->zzi;
    REAL *upo = io->upo, *zxo = io->zxo, *zzo = io->zzo, *restrict srow = io->srow;
    const REAL bz = io->bz, az = io->az;
    const int64_t o = io->o;
    const REAL *ur_a[9], *pr_a[9];
    for (int k = -R; k <= R; k++) {
        ur_a[R + k] = io->ur[k];
        pr_a[R + k] = DOZ ? io->pr[k] : io->ur[k];
    }
    const REAL *const *const ur = ur_a + R, *const *const pr = pr_a + R;
#if SWEEP_VRZ
    const SFX(brow) Bl = io->B, *const B = &Bl;
#else
    const SFX(brow) *const B = 0;
#endif
#pragma GCC ivdep
    for (int64_t j = j0; j < j1; j++) {
        REAL zxn = 0, zzn = 0;
        const REAL s = SFX(rhs)(K, ux, ur, B, pxn, pr, zxi, zzi, bz, az, j, &zxn, &zzn, DOX, DOZ, R);
        if (DOX) zxo[j - o] = zxn;
        if (DOZ) zzo[j - o] = zzn;
        if (KEEP) srow[j] = s;
        upo[j - o] = 2 * ux[j] - upi[j] + w[j] * s;
    }
}

/* A span [j0, j1) with runtime DOX / DOZ flags. */
ALWAYS_INLINE void SFX(fwd_span_any)(const SFX(consts) *K, const SFX(rowio) *io, int64_t j0, int64_t j1, int dox,
                                     int doz, const int KEEP, const int R) {
    if (j0 >= j1) return;
    if (dox && doz) SFX(fwd_span)(K, io, j0, j1, 1, 1, KEEP, R);
    else if (dox) SFX(fwd_span)(K, io, j0, j1, 1, 0, KEEP, R);
    else if (doz) SFX(fwd_span)(K, io, j0, j1, 0, 1, KEEP, R);
    else SFX(fwd_span)(K, io, j0, j1, 0, 0, KEEP, R);
}

/* An edge block's own cells [j0, j1) back from the scratch rows (which start at column o): u_next, and
 * zeta_x' / zeta_z' where the block has those terms. */
ALWAYS_INLINE void SFX(put_block)(const SFX(scratch) *S, REAL *uprow, REAL *zxrow, REAL *zzrow, int64_t o,
                                  int64_t j0, int64_t j1, int dox, int doz) {
    const size_t n = (size_t)(j1 - j0) * sizeof(REAL);
    memcpy(uprow + j0, S->ou + (j0 - o), n);
    if (dox) memcpy(zxrow + j0, S->ozx + (j0 - o), n);
    if (doz) memcpy(zzrow + j0, S->ozz + (j0 - o), n);
}

/* u_prev <- u_next on row i (psi_x and zeta updated in the layers; psi_z of rows i-R..i+R already is);
 * S into srow when KEEP. See xlayout for the column split. */
ALWAYS_INLINE void SFX(fwd_row_r)(const SFX(consts) *K, const REAL *u, REAL *up, REAL *px, const REAL *pz,
                                  REAL *zx, REAL *zz, REAL *srow, int64_t i, const segments *rs, const segments *cs,
                                  const SFX(xlayout) *X, const SFX(scratch) *S, const int KEEP, const int R) {
    const int64_t nx = K->nx, c = i * nx;
    const int doz = i < rs->c0 || i >= rs->c1;
    ROWS(ur, u, i, R);
    ROWS(pr, pz, i, R);
    REAL *const ux = S->ub + SWEEP_XPAD, *const pxn = S->pb + SWEEP_XPAD;
    const REAL *const urow = u + c;
    REAL *const pxrow = px + c, *const uprow = up + c, *const zxrow = zx + c, *const zzrow = zz + c;
#if SWEEP_VRZ
    /* beta's row: the grid's for psi_x and the middle, a copy padded with its edge values (bx) for the edge
     * blocks' x taps. */
    const REAL *const brow = SFX(crow)(K, K->b, i);
    REAL *const bx = S->bb + SWEEP_XPAD;
#define SWEEP_SET_B(io_, taps) (io_).B = SFX(make_brow)(K, (taps), i, R)
#define SWEEP_COPY_B(j0_, n_) memcpy(bx + (j0_), brow + (j0_), (size_t)(n_) * sizeof(REAL))
#define SWEEP_PAD_B() SFX(pad_beta)(bx, brow, nx)
#else
    const REAL *const brow = 0;
#define SWEEP_SET_B(io_, taps) (void)0
#define SWEEP_COPY_B(j0_, n_) (void)0
#define SWEEP_PAD_B() (void)0
#endif
#if SWEEP_VRZ
    const REAL *const wrow = SFX(crow)(K, K->w, i);
#else
    const REAL *const wrow = K->w + c;
#endif
    SFX(rowio) io = {urow, ur, pxn, pr, uprow, zxrow, zzrow, wrow, uprow, zxrow, zzrow, srow,
                     K->bz[i], K->az[i], 0};
    if (X->two) {
        const int64_t l1 = X->xl + R < nx ? X->xl + R : nx, r0 = X->xr - R > 0 ? X->xr - R : 0;
        memcpy(ux, urow, (size_t)l1 * sizeof(REAL));
        memcpy(ux + r0, urow + r0, (size_t)(nx - r0) * sizeof(REAL));
        SWEEP_COPY_B(0, l1);
        SWEEP_COPY_B(r0, nx - r0);
        SWEEP_PAD_B();
        SFX(psi_x_span)(K, ux, pxrow, pxn, brow, 0, X->pl, R);
        SFX(psi_x_span)(K, ux, pxrow, pxn, brow, X->pr, nx, R);
        /* The blocks first: they read u_prev and zeta of their extra cells before the middle writes them,
         * and the middle then overwrites their S there. */
        io.ux = ux;
        io.upo = S->ou;
        io.zxo = S->ozx;
        io.zzo = S->ozz;
        SWEEP_SET_B(io, bx);
        SFX(fwd_span_any)(K, &io, 0, X->xl, X->dox_l, doz, KEEP, R);
        SFX(put_block)(S, uprow, zxrow, zzrow, 0, 0, X->el, X->dox_l, doz);
        io.o = X->xr;
        SFX(fwd_span_any)(K, &io, X->xr, nx, X->dox_r, doz, KEEP, R);
        SFX(put_block)(S, uprow, zxrow, zzrow, X->xr, X->er, nx, X->dox_r, doz);
        io = (SFX(rowio)){urow, ur, pxn, pr, uprow, zxrow, zzrow, wrow, uprow, zxrow, zzrow, srow,
                          K->bz[i], K->az[i], 0};
        SWEEP_SET_B(io, brow);
        SFX(fwd_span_any)(K, &io, X->el, X->er, 0, doz, KEEP, R);
    } else {
        memcpy(ux, urow, (size_t)nx * sizeof(REAL));
        SWEEP_COPY_B(0, nx);
        SWEEP_PAD_B();
        SFX(psi_x_span)(K, ux, pxrow, pxn, brow, 0, X->xa, R);
        SFX(psi_x_span)(K, ux, pxrow, pxn, brow, X->xb, nx, R);
        io.ux = ux;
        SWEEP_SET_B(io, bx);
        const int64_t m0 = clamp64(cs->c0, 0, nx), m1 = clamp64(cs->c1, m0, nx);
        SFX(fwd_span_any)(K, &io, 0, m0, 1, doz, KEEP, R);
        SFX(fwd_span_any)(K, &io, m0, m1, 0, doz, KEEP, R);
        SFX(fwd_span_any)(K, &io, m1, nx, 1, doz, KEEP, R);
    }
#undef SWEEP_SET_B
#undef SWEEP_COPY_B
#undef SWEEP_PAD_B
}

/* One out-of-line function per radius (and KEEP): every inner loop still has compile-time constants, and
 * the compiler handles several small functions much faster than one huge one. */
#define DEF(RR)                                                                                            \
    SWEEP_NOINLINE void SFX(psi_z_row##RR)(const SFX(consts) *K, const REAL *u, REAL *pz, int64_t i) {        \
        SFX(psi_z_span)(K, u, pz, i, 0, K->nx, RR);                                                          \
    }                                                                                                      \
    SWEEP_NOINLINE void SFX(fwd_row_keep##RR)(const SFX(consts) *K, const REAL *u, REAL *up, REAL *px,        \
                                              const REAL *pz, REAL *zx, REAL *zz, REAL *srow, int64_t i,     \
                                              const segments *rs, const segments *cs, const SFX(xlayout) *X, \
                                              const SFX(scratch) *S) {                                       \
        SFX(fwd_row_r)(K, u, up, px, pz, zx, zz, srow, i, rs, cs, X, S, 1, RR);                              \
    }                                                                                                      \
    SWEEP_NOINLINE void SFX(fwd_row_nokeep##RR)(const SFX(consts) *K, const REAL *u, REAL *up, REAL *px,      \
                                                const REAL *pz, REAL *zx, REAL *zz, int64_t i,               \
                                                const segments *rs, const segments *cs,                      \
                                                const SFX(xlayout) *X, const SFX(scratch) *S) {              \
        SFX(fwd_row_r)(K, u, up, px, pz, zx, zz, 0, i, rs, cs, X, S, 0, RR);                                 \
    }
SWEEP_PER_RADIUS(DEF)
#undef DEF

/* psi_z' on row i when it is a z-layer row (rows outside the grid: see ROWS). */
static void SFX(psi_z_row)(const SFX(consts) *K, int r, const REAL *u, REAL *pz, int64_t i, int64_t za, int64_t zb) {
    if (i >= za && i < zb) return;
#define CALL(R) SFX(psi_z_row##R)(K, u, pz, i)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

static void SFX(fwd_row)(const SFX(consts) *K, int r, const REAL *u, REAL *up, REAL *px, const REAL *pz,
                         REAL *zx, REAL *zz, REAL *srow, int64_t i, const segments *rs, const segments *cs,
                         const SFX(xlayout) *X, const SFX(scratch) *S) {
#define CALL(R)                                                                      \
    do {                                                                             \
        if (srow)                                                                    \
            SFX(fwd_row_keep##R)(K, u, up, px, pz, zx, zz, srow, i, rs, cs, X, S);   \
        else                                                                         \
            SFX(fwd_row_nokeep##R)(K, u, up, px, pz, zx, zz, i, rs, cs, X, S);       \
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

/* A thread's rows: S of the current row, u_prev of a row with sources, and the row scratch. */
typedef struct {
    REAL *srow, *uold;
    SFX(scratch) s;
} SFX(thread_rows);

/* Every thread's rows (see thread_rows), zero-filled, in one block: T[t] for thread t; free() it. NULL when
 * out of memory. */
static SFX(thread_rows) *SFX(alloc_thread_rows)(int nthreads, int64_t nx) {
    const int64_t ld = round_up(nx + 2 * SWEEP_XPAD, 16);
    const size_t head = (size_t)round_up(nthreads * (int64_t)sizeof(SFX(thread_rows)), 64);
    const size_t nrows = 7 + SWEEP_VRZ; /* + beta's padded row */
    char *mem = (char *)calloc(head + (size_t)nthreads * nrows * (size_t)ld * sizeof(REAL), 1);
    if (!mem) return 0;
    SFX(thread_rows) *T = (SFX(thread_rows) *)mem;
    REAL *block = (REAL *)(mem + head);
    for (int t = 0; t < nthreads; t++) {
        REAL *b = block + (size_t)t * nrows * (size_t)ld;
        T[t].srow = b;
        T[t].uold = b + ld;
        T[t].s = (SFX(scratch)){b + 2 * ld, b + 3 * ld, b + 4 * ld, b + 5 * ld, b + 6 * ld};
#if SWEEP_VRZ
        T[t].s.bb = b + 7 * ld;
#endif
    }
    return T;
}

/* One forward step of rows [a, b) of shot sh (u_prev slot `up`, u slot `u`, both offset to the shot):
 * psi_z runs r rows ahead of the main pass, both in place (see the work split in acoustic_common.h: no
 * psi_z is read across the band's edges). */
static void SFX(fwd_band)(const sweep_problem *P, const SFX(consts) *K, const segments *rs, const segments *cs,
                          const SFX(xlayout) *X, const SFX(thread_rows) *T, const REAL *u, REAL *up, REAL *px,
                          REAL *pz, REAL *zx, REAL *zz, int64_t sh, int64_t a, int64_t b, int64_t n, int64_t n1,
                          REAL *kp, REAL *record, REAL *sp, const int64_t *sptr) {
    REAL *const srow = T->srow, *const uold = T->uold;
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
    for (int64_t i = a; i < b && i < a + r; i++) SFX(psi_z_row)(K, r, u, pz, i, P->za, P->zb);
    for (int64_t i = a; i < b; i++) {
        if (i + r < b) SFX(psi_z_row)(K, r, u, pz, i + r, P->za, P->zb);
        const int64_t row = sh * nz + i;
        const int64_t q0 = P->src_ptr[row], q1 = P->src_ptr[row + 1];
        const int phys = i >= top && i < top + pnz;
        if (q0 < q1) memcpy(uold, up + i * nx, (size_t)nx * sizeof(REAL));
        SFX(fwd_row)(K, r, u, up, px, pz, zx, zz, (q0 < q1 || (kp && phys)) ? srow : 0, i, rs, cs, X, &T->s);
        if (q0 < q1) {
            /* Sources in a fixed order (several may share a cell): S += f / dh^2, then redo u_next there
             * from the saved u_prev. */
            for (int64_t t = q0; t < q1; t++) {
                const int64_t q = P->src_order[t];
                const int64_t j = P->src_x[q];
                srow[j] += SFX(src_term)(K, SWEEP_B(K, i * nx + j), wav[q * nt + n]);
            }
            for (int64_t t = q0; t < q1; t++) {
                const int64_t j = P->src_x[P->src_order[t]], c = i * nx + j;
                up[c] = 2 * u[c] - uold[j] + w[c] * srow[j];
            }
        }
        if (kp && phys) {
            memcpy(kp + sh * pplane + (i - top) * pnx, srow + left, (size_t)pnx * sizeof(REAL));
            if (SWEEP_VRZ) /* and u_n (VRZ's snapshot (S, u_n)) */
                memcpy(kp + (P->nshots + sh) * pplane + (i - top) * pnx, u + i * nx + left,
                       (size_t)pnx * sizeof(REAL));
        }
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

/* What every thread of one forward call reads (see sweep_acoustic_forward). */
typedef struct {
    const sweep_problem *P;
    const SFX(consts) *K;
    const segments *rs, *cs;
    const SFX(xlayout) *X;
    const SFX(thread_rows) *T;
    REAL *s0, *s1, *px, *pz, *zx, *zz, *record, *keep, *strips;
    const int64_t *sptr;
    int64_t n0, n1;
    sweep_sched S;
} SFX(fwd_job);

/* Thread `me`'s part of a forward call. */
static void SFX(fwd_thread)(void *ctx, int me) {
    const SFX(fwd_job) *J = (const SFX(fwd_job) *)ctx;
    const sweep_problem *P = J->P;
    const int64_t ns = P->nshots, nx = P->nx, plane = P->nz * nx, pplane = P->pnz * P->pnx, nstrip = P->nstrip;
    const int64_t n0 = J->n0, n1 = J->n1, budget = sweep_spin_ticks();
    REAL *const s0 = J->s0, *const s1 = J->s1;
    const unsigned int mxcsr = enter_ftz();
    const sweep_part part = J->S.plan[me];
    /* Shot by shot, all steps of each (a band's shot range is one shot when it has neighbours). */
    for (int64_t sh = part.s0; sh < part.s1; sh++) {
        const int64_t o = sh * plane;
        for (int64_t n = n0; n < n1; n++) {
            /* u_next overwrites u_prev, so the two wavefields swap slots every step. */
            REAL *const up = ((n - n0) & 1) ? s1 : s0;
            const REAL *const u = ((n - n0) & 1) ? s0 : s1;
            if (n > n0) wait_neighbours(J->S.prog, &part, (int)(n - n0), budget);
            REAL *const kp = SFX(slot)(J->keep, imaged_slot(n, n0, P->image_every), SNAPF * ns * pplane); /* 0: not imaged */
            SFX(fwd_band)(P, J->K, J->rs, J->cs, J->X, J->T + me, u + o, up + o, J->px + o, J->pz + o, J->zx + o,
                          J->zz + o, sh, part.a, part.b, n, n1, kp, J->record,
                          J->strips ? J->strips + (n - n0) * ns * nstrip : 0, J->sptr);
            sweep_word_post(J->S.prog + me, (int)(n - n0 + 1));
        }
        /* An odd number of steps left u in slot 0: swap back to (u_prev, u), once the neighbours have
         * stopped reading it. */
        if ((n1 - n0) & 1) {
            wait_neighbours(J->S.prog, &part, (int)(n1 - n0), budget);
            SFX(swap_rows)(s0 + o, s1 + o, part.a, part.b, nx);
        }
    }
    leave_ftz(mxcsr);
}

/* Steps n0 -> n1 in place on `state` (6, nshots, NZ, NX). `record` (nshots, nt, nrec), if not NULL,
 * gets u at the receivers at the start of each step; `keep` (n1 - n0, nshots, nz, nx), if not NULL,
 * gets each step's snapshot S on the physical grid; `strips` (n1 - n0, nshots, nstrip), if not NULL,
 * gets u_prev at the start of each step on the strip cells. `stats`, if not NULL, gets what the run
 * measured (pool.h). Returns 0, or 1 if out of memory (nothing is then changed). */
int KNAME(forward)(const sweep_problem *P, REAL *state, int64_t n0, int64_t n1, REAL *record,
                                REAL *keep, REAL *strips, int nthreads, sweep_run_stats *stats) {
    SFX(consts) K;
    SFX(load_consts)(P, &K);
    const int64_t ns = P->nshots, nz = P->nz, nx = P->nx, plane = nz * nx, fs = ns * plane;
    const int r = (int)P->radius;
    const segments rs = make_segments(nz, r, P->za, P->zb), cs = make_segments(nx, r, P->xa, P->xb);
    const SFX(xlayout) X = SFX(make_xlayout)(nx, r, P->xa, P->xb, &cs);
    const int64_t nrec = P->nrec, nt = P->nt;
    if (n1 <= n0) return 0;
    SFX(thread_rows) *T = SFX(alloc_thread_rows)(nthreads, nx);
    REAL *zero = (REAL *)calloc((size_t)nx, sizeof(REAL));
    int64_t *sptr = strips ? SFX(strip_rows)(P->strip_idx, P->nstrip, P->pnz, P->pnx) : 0;
    SFX(fwd_job) J = {P, &K, &rs, &cs, &X, T, state, state + fs, state + 2 * fs, state + 3 * fs, state + 4 * fs,
                      state + 5 * fs, record, keep, strips, sptr, n0, n1, {0}};
    int status = !T || !zero || (strips && !sptr) || sched_alloc(&J.S, ns, nz, nthreads, P->za + r, P->zb - r);
    if (!status) {
        if (record) /* step n0's samples: u at the start of the block */
            for (int64_t q = 0; q < ns * nrec; q++) {
                const int64_t sh = q / nrec;
                record[(sh * nt + n0) * nrec + q % nrec] = J.s1[sh * plane + P->rec_z[q] * nx + P->rec_x[q]];
            }
        K.zero = zero;
        status = sweep_pool_run(nthreads, SFX(fwd_thread), &J, stats);
        sched_free(&J.S);
    }
    free(T);
    free(zero);
    free(sptr);
    return status;
}

/* ROWS: also used by acoustic_adjoint.h and acoustic_retreat.h; the latter undefines it. */
