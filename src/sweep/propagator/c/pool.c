/* The kernels' thread pool and wait scheme (see pool.h). Compiled once, whatever the code paths. */
#define _GNU_SOURCE
#include "pool.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

int64_t sweep_spin_ticks(void) {
    static int64_t ticks = -1;
    if (ticks < 0) {
        const char *e = getenv("SWEEP_SPIN_TICKS");
        ticks = e ? atoll(e) : 50000;
    }
    return ticks;
}

static void wake_all(sweep_word *w) {
    if (__atomic_load_n(&w->waiters, __ATOMIC_SEQ_CST)) {
#ifdef __linux__
        syscall(SYS_futex, &w->value, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#endif
    }
}

void sweep_word_post(sweep_word *w, int v) {
    __atomic_store_n(&w->value, v, __ATOMIC_SEQ_CST);
    wake_all(w);
}

void sweep_word_add(sweep_word *w) {
    __atomic_fetch_add(&w->value, 1, __ATOMIC_SEQ_CST);
    wake_all(w);
}

static inline int reached(const sweep_word *w, int v) {
    return (int)((unsigned)__atomic_load_n(&w->value, __ATOMIC_ACQUIRE) - (unsigned)v) >= 0;
}

void sweep_word_wait(sweep_word *w, int v, int64_t budget) {
    if (reached(w, v)) return;
    /* Spin, handing the core to any other runnable thread between checks: on a busy machine the thread
     * being waited for is often queued on this very core. */
    const uint64_t t0 = __rdtsc();
    while ((int64_t)(__rdtsc() - t0) < budget) {
        for (int k = 0; k < 16; k++) _mm_pause();
        if (reached(w, v)) return;
        sched_yield();
        if (reached(w, v)) return;
    }
    for (;;) {
        __atomic_fetch_add(&w->waiters, 1, __ATOMIC_SEQ_CST);
        const int cur = __atomic_load_n(&w->value, __ATOMIC_SEQ_CST);
        if ((int)((unsigned)cur - (unsigned)v) < 0) {
#ifdef __linux__
            struct timespec ts = {0, 2000000}; /* 2 ms: a safety net; posts wake sleepers */
            syscall(SYS_futex, &w->value, FUTEX_WAIT_PRIVATE, cur, &ts, NULL, 0);
#else
            sched_yield();
#endif
        }
        __atomic_fetch_sub(&w->waiters, 1, __ATOMIC_SEQ_CST);
        if (reached(w, v)) return;
    }
}

static double seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the pool ------------------------------------------------------------------------------------------
 * Worker t (1 .. SWEEP_MAX_THREADS-1) waits on its own slot: the caller posts a run to exactly the workers
 * of its team, so a worker outside the team is never woken, and one inside cannot miss its run (the next
 * run is posted only after every member of this one has finished). */
typedef struct {
    sweep_word posted; /* runs posted to this worker */
    double cpu;        /* CPU seconds of its part of the last run */
} slot;

static struct {
    pthread_mutex_t lock;
    int started; /* workers 1 .. started exist */
    sweep_job job;
    void *ctx;
    sweep_word done; /* workers finished in this run */
    slot slots[SWEEP_MAX_THREADS];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* How long an idle worker spins (yielding) before it sleeps: about 1 ms. A sleeping worker costs the next
 * call a futex wake-up, 25-40 us on a virtual machine whose idle vCPU has halted (measured: 5.6 us per
 * small call when the worker still spins, 30 us when it sleeps), and Revolve makes thousands of calls
 * separated by some 50 us of Python. libgomp spins about as long, but without yielding the core. */
#define SWEEP_DOCK_SPINS 50

static void *worker(void *arg) {
    const int tid = (int)(intptr_t)arg;
    slot *const s = pool.slots + tid;
    const int64_t budget = SWEEP_DOCK_SPINS * sweep_spin_ticks();
    for (int next = 1;; next++) {
        sweep_word_wait(&s->posted, next, budget);
        const double c0 = seconds(CLOCK_THREAD_CPUTIME_ID);
        pool.job(pool.ctx, tid);
        s->cpu = seconds(CLOCK_THREAD_CPUTIME_ID) - c0;
        sweep_word_add(&pool.done);
    }
    return NULL;
}

/* A forked child has none of the parent's workers: start again from none. */
static void after_fork_in_child(void) {
    pthread_mutex_init(&pool.lock, NULL);
    pool.started = 0;
    for (int t = 0; t < SWEEP_MAX_THREADS; t++) pool.slots[t].posted.value = pool.slots[t].posted.waiters = 0;
}

static int ensure_workers(int n) {
    while (pool.started < n - 1) {
        const int tid = pool.started + 1;
        pthread_attr_t attr;
        pthread_t thread;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int err = pthread_create(&thread, &attr, worker, (void *)(intptr_t)tid);
        pthread_attr_destroy(&attr);
        if (err) return 1;
        pool.started = tid;
    }
    return 0;
}

int sweep_pool_run(int nthreads, sweep_job job, void *ctx, sweep_run_stats *stats) {
    static int registered = 0;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > SWEEP_MAX_THREADS) nthreads = SWEEP_MAX_THREADS;
    const double w0 = seconds(CLOCK_MONOTONIC);
    const int team = nthreads > 1; /* one thread runs on the caller alone, without the pool */
    if (team) {
        pthread_mutex_lock(&pool.lock);
        if (!registered) {
            pthread_atfork(NULL, NULL, after_fork_in_child);
            registered = 1;
        }
        if (ensure_workers(nthreads)) {
            pthread_mutex_unlock(&pool.lock);
            return 1;
        }
        pool.job = job;
        pool.ctx = ctx;
        __atomic_store_n(&pool.done.value, 0, __ATOMIC_SEQ_CST);
        for (int t = 1; t < nthreads; t++) {
            slot *const s = pool.slots + t;
            sweep_word_post(&s->posted, s->posted.value + 1);
        }
    }
    const double c0 = seconds(CLOCK_THREAD_CPUTIME_ID);
    job(ctx, 0);
    double cpu = seconds(CLOCK_THREAD_CPUTIME_ID) - c0;
    if (team) {
        sweep_word_wait(&pool.done, nthreads - 1, sweep_spin_ticks());
        for (int t = 1; t < nthreads; t++) cpu += pool.slots[t].cpu;
        pthread_mutex_unlock(&pool.lock);
    }
    if (stats) {
        stats->wall += seconds(CLOCK_MONOTONIC) - w0;
        stats->cpu += cpu;
        if (stats->threads < nthreads) stats->threads = nthreads;
    }
    return 0;
}

/* ---- test hook -------------------------------------------------------------------------------------- */
static int fail_allocs = 0;

void sweep_test_fail_allocs(int count) { __atomic_store_n(&fail_allocs, count > 0 ? count : 0, __ATOMIC_SEQ_CST); }

int sweep_alloc_fails(void) {
    int left = __atomic_load_n(&fail_allocs, __ATOMIC_SEQ_CST);
    while (left > 0) {
        if (__atomic_compare_exchange_n(&fail_allocs, &left, left - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return 1;
    }
    return 0;
}
