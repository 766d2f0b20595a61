/* The kernels' threads: a small persistent pool and the one wait scheme every wait of the library uses.
 *
 * Why not OpenMP: libgomp's threads spin for a long time (GOMP_SPINCOUNT, ~ms) at the end of a parallel
 * region and while waiting for the next one, unless OMP_WAIT_POLICY=passive was set before the runtime
 * started (at `import torch`, too early for sweep). On a busy machine the scheduler puts two threads that
 * wake each other on one core, so a spinning thread holds that core for a whole time slice while the
 * thread it waits for cannot run: boundary saving and Revolve, which make hundreds or thousands of short
 * calls, ran 10-30x slower with 2 threads than with 1 beside another busy process. Here every wait
 * (a worker waiting for work, the caller waiting for the workers, a band waiting for its neighbours) spins,
 * yielding the core to any other runnable thread, then sleeps on a futex: for some 20 us inside a call,
 * about 1 ms for an idle worker between calls (pool.c).
 *
 * A run also measures itself: its wall time and the CPU time its threads got. With n threads that are
 * actually running, CPU / wall is close to n; on an oversubscribed machine it falls towards 1 (the
 * threads take turns on a core), which is how the Python side decides to use fewer threads for a while
 * (sweep.propagator.c.threads). */
#ifndef SWEEP_POOL_H
#define SWEEP_POOL_H
#include <stdint.h>

/* Most threads one run may use. */
#define SWEEP_MAX_THREADS 256

/* A word that threads wait on until it reaches a value: one cache line each. */
typedef struct {
    int value, waiters;
    char pad[56];
} __attribute__((aligned(64))) sweep_word;

/* What one kernel call measured (summed over its runs): seconds of wall time, seconds of CPU time of all
 * its threads, and the most threads a run used. Mirrored by _RunStats in __init__.py. */
typedef struct {
    double wall, cpu;
    int64_t threads;
} sweep_run_stats;

typedef void (*sweep_job)(void *ctx, int tid);

/* Runs job(ctx, tid) for tid = 0 .. nthreads-1, tid 0 on the calling thread, and returns when all have
 * returned; adds what it measured to *stats when stats is not NULL. One run at a time per process (others
 * wait their turn). Returns 0, or 1 when a worker thread could not be started (nothing ran). */
int sweep_pool_run(int nthreads, sweep_job job, void *ctx, sweep_run_stats *stats);

/* Spin budget of every wait, in TSC ticks (SWEEP_SPIN_TICKS overrides the default, ~20 us). */
int64_t sweep_spin_ticks(void);

/* Waits until w->value >= v (in wrap-around order): spins for `budget` ticks yielding the core, then
 * sleeps on a futex (woken by sweep_word_post / sweep_word_add). */
void sweep_word_wait(sweep_word *w, int v, int64_t budget);

/* Sets w->value = v (release) and wakes its sleepers. */
void sweep_word_post(sweep_word *w, int v);

/* Adds 1 to w->value (release) and wakes its sleepers. */
void sweep_word_add(sweep_word *w);

/* Test hook: the next `count` allocations the kernels check with sweep_alloc_fails() report failure, as
 * if memory had run out (count <= 0 turns it off). */
void sweep_test_fail_allocs(int count);

/* Whether a kernel's allocation should be treated as failed (see sweep_test_fail_allocs). */
int sweep_alloc_fails(void);
#endif
