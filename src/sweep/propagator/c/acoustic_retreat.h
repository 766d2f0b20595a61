/* Template body of the reverse-time rebuild (boundary saving), included by acoustic.c after
 * acoustic_impl.h once per precision, with the same REAL / SFX and that header's inline functions.
 *
 * The rebuild walks the physical grid backwards, fields (2, nshots, nz, nx) holding (u_{n+1}, u_n)
 * before step n and (u_n, u_{n-1}) after it, as the eager stepper's retreat:
 *   interior cells (not in the strip): S_n = L_x + L_z of u_n (+ f[n] / dh^2 at the sources),
 *                                      u_{n-1} = 2 u_n - u_{n+1} + w S_n;
 *   strip cells: u_{n-1} = the stored strip, S_n = (u_{n+1} - (2 u_n - u_{n-1})) / w.
 * An interior cell's stencil reads physical cells only, or the zero halo beyond an edge without a layer
 * (the strip covers every cell within r of an absorbing edge), and the forward gives it no C-PML terms
 * (see segments); S_n comes from the forward's own `rhs`, C-PML terms off, so given the forward's u_n it
 * is the forward's S_n bit for bit (same operations, same contractions into FMAs). VRZ: S_n from the pair
 * form with the forward's beta taps (acoustic_cell.h), the snapshot (S_n, u_n).
 *
 * Parallelism as in the forward: the pool's threads over (shot, row), every cell written by the
 * owner of its row from values of the previous step only, so results do not depend on the thread count.
 */

/* S of row i on [j0, j1) into srow[j]; u_{n-1} over u_{n+1} (in `un`); wr is row i of w, ux row i of u (the
 * grid's or a zero-padded copy: x taps). */
ALWAYS_INLINE void SFX(back_span)(const SFX(consts) *K_, const REAL *restrict ux, const REAL *u, REAL *restrict un,
                                  const REAL *restrict wr, REAL *restrict srow, const SFX(brow) *B, int64_t i,
                                  int64_t j0, int64_t j1, const int R) {
    /* A local copy: its coefficients are then loop invariants the compiler keeps in registers. */
    const SFX(consts) Kl = *K_, *const K = &Kl;
    const int64_t nx = K->nx;
    ROWS(ur, u, i, R);
    REAL *restrict unr = un + i * nx;
#pragma GCC ivdep
    for (int64_t j = j0; j < j1; j++) {
        REAL unused;
        const REAL s = SFX(rhs)(K, ux, ur, B, 0, ur, 0, 0, 0, 0, j, &unused, &unused, 0, 0, R);
        srow[j] = s;
        unr[j] = 2 * ux[j] - unr[j] + wr[j] * s;
    }
}

/* The interior cells of row i: the gaps between its strip cells (flat indices cells[0..ncells)). Those
 * within r of the left or right edge (only on a side without a layer) read their x taps from a zero-padded
 * copy of the row (`ub`, zero beyond it), as the forward's edge blocks do, so a cell gets the forward's
 * arithmetic (same operations, same contractions into FMAs). */
ALWAYS_INLINE void SFX(back_row_r)(const SFX(consts) *K, const REAL *u, REAL *un, const REAL *wr, REAL *srow,
                                   int64_t i, const int64_t *cells, int64_t ncells, const segments *cs, REAL *ub,
                                   REAL *bb, const int R) {
    const int64_t nx = K->nx;
    const REAL *const urow = u + i * nx;
    REAL *const ux = ub + SWEEP_XPAD;
#if SWEEP_VRZ
    /* beta's row as the forward's: the grid's, or a copy padded with its edge values where ux is a copy */
    const REAL *const brow = SFX(crow)(K, K->b, i);
    const SFX(brow) Bd = SFX(make_brow)(K, brow, i, R), Bp = SFX(make_brow)(K, bb + SWEEP_XPAD, i, R);
    const SFX(brow) *const Bdirect = &Bd, *const Bpad = &Bp;
#else
    (void)bb;
    const SFX(brow) *const Bdirect = 0, *const Bpad = 0;
#endif
    int copied = 0;
    int64_t j0 = 0;
    for (int64_t t = 0; t <= ncells; t++) {
        const int64_t j1 = t < ncells ? cells[t] - i * nx : nx;
        const int64_t m0 = clamp64(cs->s1, j0, j1), m1 = clamp64(cs->s4, m0, j1);
        if (!copied && (j0 < m0 || m1 < j1)) {
            memcpy(ux, urow, (size_t)nx * sizeof(REAL));
#if SWEEP_VRZ
            memcpy(bb + SWEEP_XPAD, brow, (size_t)nx * sizeof(REAL));
            SFX(pad_beta)(bb + SWEEP_XPAD, brow, nx);
#endif
            copied = 1;
        }
        if (j0 < m0) SFX(back_span)(K, ux, u, un, wr, srow, Bpad, i, j0, m0, R);
        if (m0 < m1) SFX(back_span)(K, urow, u, un, wr, srow, Bdirect, i, m0, m1, R);
        if (m1 < j1) SFX(back_span)(K, ux, u, un, wr, srow, Bpad, i, m1, j1, R);
        j0 = j1 + 1;
    }
}

#define DEF(RR)                                                                                            \
    SWEEP_NOINLINE void SFX(back_row##RR)(const SFX(consts) *K, const REAL *u, REAL *un, const REAL *wr,      \
                                          REAL *srow, int64_t i, const int64_t *cells, int64_t ncells,       \
                                          const segments *cs, REAL *ub, REAL *bb) {                          \
        SFX(back_row_r)(K, u, un, wr, srow, i, cells, ncells, cs, ub, bb, RR);                               \
    }
SWEEP_PER_RADIUS(DEF)
#undef DEF

static void SFX(back_row)(const SFX(consts) *K, int r, const REAL *u, REAL *un, const REAL *wr, REAL *srow,
                          int64_t i, const int64_t *cells, int64_t ncells, const segments *cs, REAL *ub, REAL *bb) {
#define CALL(R) SFX(back_row##R)(K, u, un, wr, srow, i, cells, ncells, cs, ub, bb)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

/* What every thread of one rebuild call reads (see sweep_acoustic_retreat). */
typedef struct {
    const sweep_problem *P;
    const SFX(consts) *K;
    const segments *cs;
    const SFX(thread_rows) *T;
    REAL *fields, *keep;
    const REAL *strips;
    const int64_t *sptr;
    int64_t n0, n1;
    sweep_sched S;
} SFX(back_job);

/* Thread `me`'s part of a rebuild call. */
static void SFX(back_thread)(void *ctx, int me) {
    const SFX(back_job) *J = (const SFX(back_job) *)ctx;
    const sweep_problem *P = J->P;
    const SFX(consts) *const K = J->K;
    const int64_t ns = P->nshots, nz = P->pnz, nx = P->pnx, plane = nz * nx, fs = ns * plane;
    const int64_t NZ = P->nz, NX = P->nx, top = P->ptop, left = P->pleft, nt = P->nt, nstrip = P->nstrip;
    const int64_t n0 = J->n0, n1 = J->n1, budget = sweep_spin_ticks();
    const int64_t *const sidx = P->strip_idx, *const sptr = J->sptr;
    const REAL *const wav = (const REAL *)P->wavelet;
    const int r = (int)P->radius;
    REAL *const s0 = J->fields, *const s1 = J->fields + fs;
    const unsigned int mxcsr = enter_ftz();
    const sweep_part part = J->S.plan[me];
    REAL *const uold = J->T[me].uold, *const ub = J->T[me].s.ub;
#if SWEEP_VRZ
    REAL *const bb = J->T[me].s.bb;
#else
    REAL *const bb = 0;
#endif
    for (int64_t sh = part.s0; sh < part.s1; sh++) {
        const int64_t o = sh * plane;
        for (int64_t n = n1 - 1; n >= n0; n--) {
            /* u_{n-1} overwrites u_{n+1}, so the two wavefields swap slots every step. */
            const int64_t k = n1 - 1 - n;
            REAL *const un = (k & 1) ? s1 : s0;
            const REAL *const u = (k & 1) ? s0 : s1;
            REAL *const kp = SFX(slot)(J->keep, imaged_slot(n, n0, P->image_every), SNAPF * fs); /* 0: not imaged */
            const REAL *const sp = J->strips + (n - n0) * ns * nstrip;
            if (k > 0) wait_neighbours(J->S.prog, &part, (int)k, budget);
            for (int64_t i = part.a; i < part.b; i++) {
                const int64_t row = sh * NZ + top + i;
                const int64_t q0 = P->src_ptr[row], q1 = P->src_ptr[row + 1];
                const int64_t *const cells = sidx + sptr[i], ncells = sptr[i + 1] - sptr[i];
                const REAL *const wr = K->w + (top + i) * NX + left;
                REAL *const srow = kp ? kp + o + i * nx : J->T[me].srow; /* S of a step not imaged: scratch */
                if (q0 < q1) memcpy(uold, un + o + i * nx, (size_t)nx * sizeof(REAL));
                SFX(back_row)(K, r, u + o, un + o, wr, srow, i, cells, ncells, J->cs, ub, bb);
                if (SWEEP_VRZ && kp) /* VRZ's snapshot (S_n, u_n) */
                    memcpy(kp + fs + o + i * nx, u + o + i * nx, (size_t)nx * sizeof(REAL));
                if (q0 < q1) {
                    /* Interior sources in the forward's order: S += f / dh^2, then redo u_{n-1}. A strip
                     * cell's S already holds its sources. */
                    for (int64_t t = q0; t < q1; t++) {
                        const int64_t q = P->src_order[t], j = P->src_x[q] - left;
                        if (!sorted_contains(cells, ncells, i * nx + j))
                            srow[j] += SFX(src_term)(K, SWEEP_B(K, i * K->bld + j), wav[q * nt + n]);
                    }
                    for (int64_t t = q0; t < q1; t++) {
                        const int64_t j = P->src_x[P->src_order[t]] - left, c = o + i * nx + j;
                        if (!sorted_contains(cells, ncells, i * nx + j))
                            un[c] = 2 * u[c] - uold[j] + wr[j] * srow[j];
                    }
                }
                for (int64_t t = 0; t < ncells; t++) {
                    const int64_t j = cells[t] - i * nx, c = o + cells[t];
                    const REAL prev = sp[sh * nstrip + sptr[i] + t];
                    srow[j] = (un[c] - (2 * u[c] - prev)) / wr[j];
                    un[c] = prev;
                }
            }
            sweep_word_post(J->S.prog + me, (int)(k + 1));
        }
        /* An odd number of steps left u_{n0} in slot 1: swap back to (u_{n0}, u_{n0-1}). */
        if ((n1 - n0) & 1) {
            wait_neighbours(J->S.prog, &part, (int)(n1 - n0), budget);
            SFX(swap_rows)(s0 + o, s1 + o, part.a, part.b, nx);
        }
    }
    leave_ftz(mxcsr);
}

/* Rebuilds steps n1-1 down to n0 in place on `fields` (2, nshots, nz, nx): (u_{n1}, u_{n1-1}) on entry,
 * (u_{n0}, u_{n0-1}) on return. `strips` (n1 - n0, nshots, nstrip) holds each step's u_{n-1} on the
 * strip cells; `keep` (n1 - n0, nshots, nz, nx) gets each step's S_n; `stats`, if not NULL, what the run
 * measured (pool.h). Returns 0, or 1 if out of memory (nothing is then changed). */
int KNAME(retreat)(const sweep_problem *P, REAL *fields, const REAL *strips, int64_t n0, int64_t n1,
                                REAL *keep, int nthreads, sweep_run_stats *stats) {
    SFX(consts) K;
    SFX(load_consts)(P, &K);
    /* The physical grid: rhs then sees the zero row beyond its edges, as the forward does above a
     * free surface. */
    const int64_t nz = P->pnz, nx = P->pnx;
    K.nz = nz;
    K.nx = nx;
#if SWEEP_VRZ
    K.b += P->ptop * P->nx + P->pleft; /* beta on the physical window (rows of NX values) */
    K.blo = 0;
    K.bhi = nz - 1;
#endif
    const int r = (int)P->radius;
    const segments cs = make_segments(nx, r, 0, nx);
    if (n1 <= n0) return 0;
    /* Strip cells by row: those of row i are sidx[sptr[i] .. sptr[i+1]). Per-thread row: u_{n+1} of a
     * row with sources, which the source terms need after the row has overwritten it. */
    int64_t *sptr = SFX(strip_rows)(P->strip_idx, P->nstrip, nz, nx);
    SFX(thread_rows) *T = SFX(alloc_thread_rows)(nthreads, nx);
    REAL *zero = (REAL *)calloc((size_t)nx, sizeof(REAL));
    SFX(back_job) J = {P, &K, &cs, T, fields, keep, strips, sptr, n0, n1, {0}};
    /* Bands may end anywhere: the rebuild reads only the wavefield across them. */
    int status = !sptr || !T || !zero || sched_alloc(&J.S, P->nshots, nz, nthreads, 0, nz);
    if (!status) {
        K.zero = zero;
        status = sweep_pool_run(nthreads, SFX(back_thread), &J, stats);
        sched_free(&J.S);
    }
    free(sptr);
    free(T);
    free(zero);
    return status;
}

#undef ROWS
#undef SWEEP_B
#undef SNAPF
