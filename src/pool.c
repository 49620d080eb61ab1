/* The engine's thread pool (pool.h). Workers wait for a job generation:
 * they spin briefly on it (a training step dispatches many small jobs, and
 * waking a sleeping thread costs more than most of them), then sleep on a
 * condition variable. The caller claims parts like the workers, then
 * waits the same way for the parts others claimed. Every hand-over that a sleeping thread sees goes
 * through the mutex; the spins and the claims of parts use C11 atomics
 * (ThreadSanitizer follows both). Under valgrind, or with BPV_POOL_SPIN=0,
 * nothing spins and parts are claimed under the mutex, so that helgrind
 * and drd, which do not follow atomics, see every hand-over. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bpviz/bpviz.h"
#include "pool.h"

#if defined(__has_include) && __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ON_VALGRIND() RUNNING_ON_VALGRIND
#else
#define ON_VALGRIND() 0
#endif

#define MAX_THREADS 256

/* Operations (multiply-adds of the tiled product, or their equivalent:
 * callers weigh other kernels' elements) a part must have before a job is
 * split. Measured (bench/README.md, "Threads"): a fork-join of two spinning
 * threads costs 0.1-0.2 µs, but two threads on this 2-core VM slow each
 * other's vector arithmetic (a half product alone 97 µs, beside the other
 * half 150 µs); the f32 product broke even at 128k-512k multiply-adds
 * (ratio 0.92-1.13 at 131k, 1.04 at 524k, 1.34 at 1M): 256k a part keeps
 * every product under 512k on one thread. */
#define MIN_COST 262144.0
/* how long an idle thread spins before it sleeps */
#define SPIN_NS 200000L

static struct {
    pthread_mutex_t busy; /* held by the running job's caller */
    pthread_mutex_t mu;   /* guards the hand-overs the sleepers see */
    pthread_cond_t wake, done_cv;
    int nworkers; /* threads 1..nworkers exist */
    pthread_t th[MAX_THREADS];
    uint32_t start_gen[MAX_THREADS];
    float *scratch[MAX_THREADS];
    size_t nscratch[MAX_THREADS];
    /* the job's generation (bits 32-63) and its parts (16-31): one word,
     * so that a thread reads the parts of the generation it claims in */
    _Atomic uint64_t work;
    /* the generation in which each part was last claimed */
    _Atomic uint32_t claimed[MAX_THREADS];
    atomic_int done; /* parts finished */
    atomic_bool quit;
    /* the job; read only by a thread that has claimed one of its parts */
    _Atomic(bpv_pool_fn *) fn;
    _Atomic(void *) ctx;
    bool registered; /* the atexit handler */
    int spin;        /* BPV_POOL_SPIN (default 1) */
} P = {.busy = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER,
       .wake = PTHREAD_COND_INITIALIZER, .done_cv = PTHREAD_COND_INITIALIZER, .spin = 1};

static atomic_int threads_setting; /* 0: not set yet */
_Atomic double bpv_pool_min_cost_ = -1; /* -1: BPV_POOL_MIN_COST not read yet */

/* a positive count up to MAX_THREADS, else 0 */
static int parse_count(const char *s) {
    if (!s || !*s) return 0;
    char *end;
    long n = strtol(s, &end, 10);
    return *end == '\0' && n >= 1 && n <= MAX_THREADS ? (int)n : 0;
}

int bpv_threads_get(void) {
    int n = atomic_load(&threads_setting);
    if (n > 0) return n;
    n = parse_count(getenv("BPV_THREADS"));
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c < 1 ? 1 : c > MAX_THREADS ? MAX_THREADS : (int)c;
    }
    int expected = 0; /* the first reader's answer stays */
    atomic_compare_exchange_strong(&threads_setting, &expected, n);
    return atomic_load(&threads_setting);
}

int bpv_threads_set(int n) {
    if (n < 0 || n > MAX_THREADS) return -1;
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c < 1 ? 1 : c > MAX_THREADS ? MAX_THREADS : (int)c;
    }
    atomic_store(&threads_setting, n);
    return n;
}

double bpv_pool_min_cost_set(double cost) { return atomic_exchange(&bpv_pool_min_cost_, cost); }

int bpv_pool_want(double cost, int64_t units) {
    if (!bpv_pool_big(cost) || units < 2) return 1;
    int nt = bpv_threads_get();
    if (nt < 2) return 1;
    double per = atomic_load_explicit(&bpv_pool_min_cost_, memory_order_relaxed);
    if (per < 0) { /* the tests' knob: 0 splits every job that has units */
        const char *s = getenv("BPV_POOL_MIN_COST");
        char *end;
        double v = s && *s ? strtod(s, &end) : -1;
        per = s && *s && *end == '\0' && v >= 0 ? v : MIN_COST;
        double unset = -1;
        atomic_compare_exchange_strong(&bpv_pool_min_cost_, &unset, per);
    }
    if (per > 0) {
        const double by_cost = cost / per;
        if (by_cost < 2) return 1;
        if (by_cost < nt) nt = (int)by_cost;
    }
    return units < nt ? (int)units : nt;
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint32_t gen_of(uint64_t w) { return (uint32_t)(w >> 32); }

/* Spins until the generation differs from `old`, for at most SPIN_NS; true
 * when it did. */
static bool spin_gen(uint32_t old) {
    if (!P.spin) return false;
    long t0 = 0;
    for (int i = 1;; i++) {
        if (gen_of(atomic_load_explicit(&P.work, memory_order_acquire)) != old) return true;
        cpu_relax();
        if (i % 256 == 0) {
            long t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) return false;
        }
    }
}

/* Claims a part of job `gen` for thread tid: its own part (part tid)
 * first, so that a thread keeps working on the same rows, columns or
 * elements from job to job and finds them in its cache; then any other
 * part left, so that a thread the system does not schedule in time stalls
 * nothing. A part is claimed by moving its word from an older generation
 * to `gen`: a thread that arrives after its job ended finds every part of
 * it at that generation or later, and claims nothing. The job's caller
 * waits for every part, so what a claimed part reads stays valid. False
 * when no part is left. */
static bool claim(uint32_t gen, int tid, int *part, int *n) {
    if (!P.spin) pthread_mutex_lock(&P.mu); /* the job word too, for helgrind and drd */
    const uint64_t w = atomic_load_explicit(&P.work, memory_order_acquire);
    const int np = gen_of(w) == gen ? (int)(w >> 16 & 0xffff) : 0;
    bool ok = false;
    for (int i = 0; i < np && !ok; i++) {
        const int p = (tid + i) % np;
        uint32_t v = atomic_load_explicit(&P.claimed[p], memory_order_acquire);
        while ((int32_t)(gen - v) > 0 && !ok)
            ok = atomic_compare_exchange_weak_explicit(&P.claimed[p], &v, gen,
                                                       memory_order_acq_rel,
                                                       memory_order_acquire);
        if (ok) *part = p, *n = np;
    }
    if (!P.spin) pthread_mutex_unlock(&P.mu);
    return ok;
}

static void run_parts(uint32_t gen, int tid) {
    int part, n;
    while (claim(gen, tid, &part, &n)) {
        bpv_pool_fn *fn = atomic_load_explicit(&P.fn, memory_order_relaxed);
        fn(atomic_load_explicit(&P.ctx, memory_order_relaxed), part, n, P.scratch[tid]);
        /* under the mutex: the last part wakes a caller that sleeps, and
         * helgrind sees the part's writes happen before the caller's reads */
        pthread_mutex_lock(&P.mu);
        if (atomic_fetch_add_explicit(&P.done, 1, memory_order_acq_rel) + 1 == n)
            pthread_cond_signal(&P.done_cv);
        pthread_mutex_unlock(&P.mu);
    }
}

/* Spins until all n parts are done, for at most SPIN_NS; true when they are. */
static bool spin_done(int n) {
    if (!P.spin) return false;
    long t0 = 0;
    for (int i = 1;; i++) {
        if (atomic_load_explicit(&P.done, memory_order_acquire) == n) return true;
        cpu_relax();
        if (i % 256 == 0) {
            long t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) return false;
        }
    }
}

static void *worker(void *arg) {
    const int tid = (int)(intptr_t)arg;
    uint32_t seen = P.start_gen[tid];
    for (;;) {
        if (spin_gen(seen)) {
            seen = gen_of(atomic_load_explicit(&P.work, memory_order_acquire));
        } else {
            pthread_mutex_lock(&P.mu);
            while (gen_of(atomic_load(&P.work)) == seen) pthread_cond_wait(&P.wake, &P.mu);
            seen = gen_of(atomic_load(&P.work));
            pthread_mutex_unlock(&P.mu);
        }
        if (atomic_load(&P.quit)) return NULL;
        /* a thread made when the count was higher sits the jobs out */
        if (tid < atomic_load_explicit(&threads_setting, memory_order_relaxed))
            run_parts(seen, tid);
    }
}

/* at exit: the workers are told to quit and joined, the scratch freed */
static void shutdown_pool(void) {
    pthread_mutex_lock(&P.busy);
    pthread_mutex_lock(&P.mu);
    atomic_store(&P.quit, true);
    atomic_store(&P.work, (uint64_t)(gen_of(atomic_load(&P.work)) + 1) << 32); /* no parts */
    pthread_cond_broadcast(&P.wake);
    pthread_mutex_unlock(&P.mu);
    for (int t = 1; t <= P.nworkers; t++) pthread_join(P.th[t], NULL);
    P.nworkers = 0;
    for (int t = 0; t < MAX_THREADS; t++) {
        free(P.scratch[t]);
        P.scratch[t] = NULL;
        P.nscratch[t] = 0;
    }
    pthread_mutex_unlock(&P.busy);
}

/* Threads 1..nt-1 exist and every thread has `scratch` floats; false
 * when memory or threads ran out (what exists is kept for later). Called
 * with busy held. */
static bool prepare(int nt, size_t scratch) {
    if (!P.registered) {
        if (atexit(shutdown_pool) != 0) return false;
        P.registered = true;
        const char *s = getenv("BPV_POOL_SPIN");
        P.spin = !(s && strcmp(s, "0") == 0) && !ON_VALGRIND();
    }
    /* every thread that exists may claim a part, not only the nt wanted */
    const int nthreads = nt > P.nworkers + 1 ? nt : P.nworkers + 1;
    for (int t = 0; t < nthreads; t++) {
        if (P.nscratch[t] >= scratch) continue;
        /* rounded up to whole cache lines; grown, never shrunk */
        size_t bytes = (scratch * sizeof(float) + 63) / 64 * 64;
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes) != 0) return false;
        free(P.scratch[t]);
        P.scratch[t] = p;
        P.nscratch[t] = bytes / sizeof(float);
    }
    while (P.nworkers < nt - 1) {
        const int t = P.nworkers + 1;
        P.start_gen[t] = gen_of(atomic_load(&P.work));
        if (pthread_create(&P.th[t], NULL, worker, (void *)(intptr_t)t) != 0) return false;
        P.nworkers = t;
    }
    return true;
}

int bpv_pool_run(int nparts, size_t scratch, bpv_pool_fn *fn, void *ctx) {
    if (nparts < 2 || !fn) return 0;
    if (nparts > MAX_THREADS) nparts = MAX_THREADS;
    if (pthread_mutex_trylock(&P.busy) != 0) return 0;
    int nt = bpv_threads_get(); /* threads woken: one a part at most */
    if (nt > nparts) nt = nparts;
    if (!prepare(nt, scratch < 1 ? 1 : scratch)) {
        pthread_mutex_unlock(&P.busy);
        return 0;
    }
    pthread_mutex_lock(&P.mu);
    atomic_store_explicit(&P.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&P.ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&P.done, 0, memory_order_relaxed);
    const uint32_t gen = gen_of(atomic_load(&P.work)) + 1;
    atomic_store_explicit(&P.work, (uint64_t)gen << 32 | (uint64_t)nparts << 16,
                          memory_order_release);
    pthread_cond_broadcast(&P.wake);
    pthread_mutex_unlock(&P.mu);
    run_parts(gen, 0);
    if (!spin_done(nparts)) {
        pthread_mutex_lock(&P.mu);
        while (atomic_load(&P.done) < nparts) pthread_cond_wait(&P.done_cv, &P.mu);
        pthread_mutex_unlock(&P.mu);
    }
    pthread_mutex_unlock(&P.busy);
    return nparts;
}
