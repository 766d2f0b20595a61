/* Template body of the 3-D reverse-time rebuild (boundary saving), included after acoustic3d_impl.h once per
 * precision, with the same REAL / SFX and that header's inline functions.
 *
 * As in 2-D (acoustic_retreat.h), on the physical grid, fields (2, nshots, nz, ny, nx) holding (u_{n+1}, u_n)
 * before step n and (u_n, u_{n-1}) after it:
 *   interior cells (not in the strip): S_n = L_x + L_y + L_z of u_n (+ f[n] / dh^3 at the sources),
 *                                      u_{n-1} = 2 u_n - u_{n+1} + w S_n;
 *   strip cells: u_{n-1} = the stored strip, S_n = (u_{n+1} - (2 u_n - u_{n-1})) / w.
 * An interior cell's stencil reads physical cells only, or the zero halo above a free surface, and the forward
 * gives it no C-PML terms; S_n comes from the forward's own c3_rhs with the C-PML terms off and u_{n-1} from its
 * c3_leapfrog, so given the forward's u_n it is the forward's S_n bit for bit.
 *
 * VRZ: S_n = Bdiv_x + Bdiv_y + Bdiv_z of u_n (+ beta f[n] / dh^3), the buoyancy read on the padded grid (the
 * physical window's values and, past a free surface, its edge copies: the forward's), and the snapshot (S_n, u_n).
 *
 * Parallelism as in the forward: the pool's threads over (shot, plane), every cell written by the owner of its
 * plane from values of the previous step only, so results do not depend on the thread count.
 */

/* S of a row on [j0, j1) into srow[j]; u_{n-1} over u_{n+1} (the row un). ux: the row of u (the grid's or a
 * zero-padded copy: x taps), uy / uz: the rows across it. */
ALWAYS_INLINE void SFX(bk3_span)(const SFX(k3) *K_, const REAL *restrict ux, const REAL *const *uy_,
                                 const REAL *const *uz_, const SFX(c3_beta) *B, const REAL *restrict ly,
                                 const REAL *restrict lz, REAL *restrict un,
                                 const REAL *restrict wr, REAL *restrict srow, int64_t j0, int64_t j1, const int R) {
    const SFX(k3) Kl = *K_, *const K = &Kl;
    const REAL *uy_a[9], *uz_a[9];
    for (int q = -R; q <= R; q++) {
        uy_a[R + q] = uy_[q];
        uz_a[R + q] = uz_[q];
    }
    const REAL *const *const uy = uy_a + R, *const *const uz = uz_a + R;
    const REAL *restrict bx = C3_VRZ ? B->x : 0;
#pragma GCC ivdep
    for (int64_t j = j0; j < j1; j++) {
        REAL unused;
        const REAL s = SFX(c3_rhs)(K, ux, uy, uz, bx, ly, lz, 0, uy, uz, 0, 0, 0, 0, 0, 0, 0, j, &unused, &unused,
                                   &unused, 0, 0, 0, R);
        srow[j] = s;
        un[j] = SFX(c3_leapfrog)(ux[j], un[j], wr[j], s);
    }
}

#define DEF(RR)                                                                                            \
    SWEEP_NOINLINE void SFX(bk3_span##RR)(const SFX(k3) *K, const REAL *ux, const REAL *const *uy,            \
                                          const REAL *const *uz, const SFX(c3_beta) *B, const REAL *ly,      \
                                          const REAL *lz, REAL *un, const REAL *wr, REAL *srow, int64_t j0,  \
                                          int64_t j1) {                                                      \
        SFX(bk3_span)(K, ux, uy, uz, B, ly, lz, un, wr, srow, j0, j1, RR);                                   \
    }
SWEEP_PER_RADIUS(DEF)
#undef DEF

static void SFX(bk3_spans)(const SFX(k3) *K, int r, const REAL *ux, const REAL *const *uy, const REAL *const *uz,
                           const SFX(c3_beta) *B, const REAL *ly, const REAL *lz, REAL *un, const REAL *wr,
                           REAL *srow, int64_t j0, int64_t j1) {
    if (j0 >= j1) return;
#define CALL(RR) SFX(bk3_span##RR)(K, ux, uy, uz, B, ly, lz, un, wr, srow, j0, j1)
    SWEEP_RADIUS_DISPATCH(r, CALL)
#undef CALL
}

/* The interior cells of row k of plane i: the gaps between its strip cells (flat physical indices
 * cells[0..ncells)). Those within r of the left or right edge (only on a side without a layer) read their x
 * taps from a zero-padded copy of the row (ub), as the forward's edge blocks do. */
static void SFX(bk3_row)(const SFX(k3) *K, int r, const REAL *u, REAL *un, const REAL *wr, REAL *srow, int64_t i,
                         int64_t k, const int64_t *cells, int64_t ncells, const segments *cs, const SFX(c3_scratch) *T) {
    const int64_t nx = K->nx, c = i * K->plane + k * nx, first = (i * K->ny + k) * nx;
    const REAL *uy_a[9], *uz_a[9], **uy = uy_a + 4, **uz = uz_a + 4;
    SFX(c3_taps_y)(K, u, i, k, uy, r);
    SFX(c3_taps_z)(K, u, i, k, uz, r);
    REAL *const ub = T->ub, *const ly = T->ly, *const lz = T->lz;
    SFX(c3_beta) B;
#if SWEEP_VRZ
    if (ncells < K->nx) { /* a row with interior cells */
        SFX(c3_beta_taps)(K, i, k, T->bb, &B, r);
        SFX(c3_bdiv_yz_any)(K, r, uy, uz, &B, ly, lz);
    }
#endif
    const REAL *const urow = u + c;
    REAL *const unr = un + c;
    REAL *const ux = ub + SWEEP_XPAD;
    int copied = 0;
    int64_t j0 = 0;
    for (int64_t t = 0; t <= ncells; t++) {
        const int64_t j1 = t < ncells ? cells[t] - first : nx;
        const int64_t m0 = clamp64(cs->s1, j0, j1), m1 = clamp64(cs->s4, m0, j1);
        if (!copied && (j0 < m0 || m1 < j1)) {
            memcpy(ux, urow, (size_t)nx * sizeof(REAL));
            copied = 1;
        }
        SFX(bk3_spans)(K, r, ux, uy, uz, &B, ly, lz, unr, wr, srow, j0, m0);
        SFX(bk3_spans)(K, r, urow, uy, uz, &B, ly, lz, unr, wr, srow, m0, m1);
        SFX(bk3_spans)(K, r, ux, uy, uz, &B, ly, lz, unr, wr, srow, m1, j1);
        j0 = j1 + 1;
    }
}

/* What every thread of one rebuild call reads (see sweep_acoustic3d_retreat). */
typedef struct {
    const sweep_problem3d *P;
    const SFX(k3) *K;
    const segments *cs;
    const SFX(c3_scratch) *T;
    REAL *fields, *keep;
    const REAL *strips;
    const int64_t *sptr;
    int64_t n0, n1;
    sweep_sched S;
} SFX(bk3_job);

/* Thread `me`'s part of a rebuild call. */
static void SFX(bk3_thread)(void *ctx, int me) {
    const SFX(bk3_job) *J = (const SFX(bk3_job) *)ctx;
    const sweep_problem3d *P = J->P;
    const SFX(k3) *const K = J->K;
    const int64_t ns = P->nshots, nz = P->pnz, ny = P->pny, nx = P->pnx, plane = ny * nx, vol = nz * plane;
    const int64_t fs = ns * vol, NY = P->ny, NX = P->nx, NZ = P->nz;
    const int64_t top = P->ptop, front = P->pfront, left = P->pleft, nt = P->nt, nstrip = P->nstrip;
    const int64_t n0 = J->n0, n1 = J->n1, budget = sweep_spin_ticks();
    const int64_t *const sidx = P->strip_idx, *const sptr = J->sptr;
    const REAL *const wav = (const REAL *)P->wavelet;
    const int r = (int)P->radius;
    REAL *const s0 = J->fields, *const s1 = J->fields + fs;
    const unsigned int mxcsr = enter_ftz();
    const sweep_part part = J->S.plan[me];
    REAL *const uold = J->T[me].uold;
    for (int64_t sh = part.s0; sh < part.s1; sh++) {
        const int64_t o = sh * vol;
        for (int64_t n = n1 - 1; n >= n0; n--) {
            /* u_{n-1} overwrites u_{n+1}, so the two wavefields swap slots every step. */
            const int64_t k = n1 - 1 - n;
            REAL *const un = (k & 1) ? s1 : s0;
            const REAL *const u = (k & 1) ? s0 : s1;
            REAL *const kp = SFX(slot)(J->keep, imaged_slot(n, n0, P->image_every), C3_SNAPS * fs); /* 0: not imaged */
            const REAL *const sp = J->strips + (n - n0) * ns * nstrip;
            if (k > 0) wait_neighbours(J->S.prog, &part, (int)k, budget);
            for (int64_t i = part.a; i < part.b; i++)
                for (int64_t y = 0; y < ny; y++) {
                    const int64_t prow = i * ny + y, c = o + prow * nx;
                    const int64_t row = (sh * NZ + top + i) * NY + front + y;
                    const int64_t q0 = P->src_ptr[row], q1 = P->src_ptr[row + 1];
                    const int64_t *const cells = sidx + sptr[prow], ncells = sptr[prow + 1] - sptr[prow];
                    const REAL *const wr = K->w + ((top + i) * NY + front + y) * NX + left;
                    REAL *const srow = kp ? kp + o + prow * nx : J->T[me].srow; /* not imaged: scratch */
                    if (q0 < q1) memcpy(uold, un + c, (size_t)nx * sizeof(REAL));
                    SFX(bk3_row)(K, r, u + o, un + o, wr, srow, i, y, cells, ncells, J->cs, J->T + me);
                    if (q0 < q1) {
                        /* Interior sources in the forward's order: S += f / dh^3 (VRZ: beta f / dh^3), then redo
                         * u_{n-1}. A strip cell's S already holds its sources. */
                        for (int64_t t = q0; t < q1; t++) {
                            const int64_t q = P->src_order[t], j = P->src_x[q] - left;
                            if (sorted_contains(cells, ncells, prow * nx + j)) continue;
                            if (C3_VRZ)
                                srow[j] += K->b[((top + i) * NY + front + y) * NX + left + j] * wav[q * nt + n] *
                                           K->inv_src;
                            else
                                srow[j] += wav[q * nt + n] * K->inv_src;
                        }
                        for (int64_t t = q0; t < q1; t++) {
                            const int64_t j = P->src_x[P->src_order[t]] - left;
                            if (!sorted_contains(cells, ncells, prow * nx + j))
                                un[c + j] = SFX(c3_leapfrog)(u[c + j], uold[j], wr[j], srow[j]);
                        }
                    }
                    for (int64_t t = 0; t < ncells; t++) {
                        const int64_t j = cells[t] - prow * nx, cc = o + cells[t];
                        const REAL prev = sp[sh * nstrip + sptr[prow] + t];
                        srow[j] = (un[cc] - (2 * u[cc] - prev)) / wr[j];
                        un[cc] = prev;
                    }
                    if (C3_VRZ && kp) memcpy(kp + fs + o + prow * nx, u + c, (size_t)nx * sizeof(REAL)); /* u_n */
                }
            sweep_word_post(J->S.prog + me, (int)(k + 1));
        }
        /* An odd number of steps left u_{n0} in slot 1: swap back to (u_{n0}, u_{n0-1}). */
        if ((n1 - n0) & 1) {
            wait_neighbours(J->S.prog, &part, (int)(n1 - n0), budget);
            SFX(c3_swap_planes)(s0 + o, s1 + o, part.a, part.b, plane);
        }
    }
    leave_ftz(mxcsr);
}

/* Rebuilds steps n1-1 down to n0 in place on `fields` (2, nshots, nz, ny, nx): (u_{n1}, u_{n1-1}) on entry,
 * (u_{n0}, u_{n0-1}) on return. `strips` (n1 - n0, nshots, nstrip) holds each step's u_{n-1} on the strip cells;
 * `keep` (n1 - n0, nshots, nz, ny, nx) gets each step's S_n (VRZ: (n1 - n0, 2, nshots, nz, ny, nx), (S_n, u_n)); `stats`, if not NULL, what the run measured
 * (pool.h). Returns 0, or 1 if out of memory (nothing is then changed). */
int SWEEP3_NAME(retreat)(const sweep_problem3d *P, REAL *fields, const REAL *strips, int64_t n0,
                                  int64_t n1, REAL *keep, int nthreads, sweep_run_stats *stats) {
    SFX(k3) K;
    SFX(k3_load)(P, &K);
    /* The physical grid: c3_rhs then sees the zero row beyond its edges, as the forward does above a free
     * surface. */
    K.nz = P->pnz;
    K.ny = P->pny;
    K.nx = P->pnx;
    K.plane = P->pny * P->pnx;
    K.boz = P->ptop; /* the buoyancy stays on the padded grid */
    K.boy = P->pfront;
    K.box = P->pleft;
    const int r = (int)P->radius;
    const segments cs = make_segments(P->pnx, r, 0, P->pnx);
    if (n1 <= n0) return 0;
    int64_t *sptr = SFX(c3_strip_rows)(P->strip_idx, P->nstrip, P->pnz * P->pny, P->pnx);
    SFX(c3_scratch) *T = SFX(c3_alloc_scratch)(nthreads, C3_VRZ ? P->nx : P->pnx); /* VRZ: padded beta rows */
    REAL *zero = (REAL *)calloc((size_t)P->pnx, sizeof(REAL));
    SFX(bk3_job) J = {P, &K, &cs, T, fields, keep, strips, sptr, n0, n1, {0}};
    /* Bands may end anywhere: the rebuild reads only the wavefield across them. */
    int status = !sptr || !T || !zero || sched_alloc_cost(&J.S, P->nshots, P->pnz, nthreads, 0, P->pnz, 1);
    if (!status) {
        K.zero = zero;
        status = sweep_pool_run(nthreads, SFX(bk3_thread), &J, stats);
        sched_free(&J.S);
    }
    free(sptr);
    free(T);
    free(zero);
    return status;
}
