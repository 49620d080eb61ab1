/* The engine's thread pool: a fork-join over a fixed set of threads.
 *
 * Determinism is the kernels' part of the contract: a job splits its output
 * elements into contiguous ranges (bpv_pool_range), one per part, and each
 * element is computed by one part exactly as the serial kernel computes it, so the numbers do not depend on the thread count. A kernel asks
 * bpv_pool_want how many threads its work is worth; small work stays on the
 * calling thread.
 *
 * One pool per process, created at the first job that wants a second
 * thread; its threads are joined and its scratch freed at exit (atexit). A
 * job holds the pool for its duration: a job started while another runs
 * (another thread's model, or a job inside a job) runs on its caller alone,
 * with the same numbers. */
#ifndef BPV_POOL_H
#define BPV_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Part `part` of a job's nparts; scratch: the running thread's floats, as
 * many as the job asked, 64-byte aligned. Which thread runs a part (and
 * how many parts one thread runs) varies; what a part computes must not. */
typedef void bpv_pool_fn(void *ctx, int part, int nparts, float *scratch);

/* The parts worth splitting `cost` operations (multiply-adds, or elements)
 * into, when they come in `units` independent pieces: at most the thread
 * count, the units, and one part per bpv_pool_min_cost operations; 1
 * means: compute serially. */
int bpv_pool_want(double cost, int64_t units);

/* The operations a part needs (bpv_pool_min_cost_set), read by
 * bpv_pool_big; -1 until the environment's knob has been read. */
extern _Atomic double bpv_pool_min_cost_;

/* Whether `cost` operations may be worth a second thread: a test cheap
 * enough to put before any other work of splitting a job, so that small
 * work pays nothing for the pool. */
static inline bool bpv_pool_big(double cost) {
    const double m = atomic_load_explicit(&bpv_pool_min_cost_, memory_order_relaxed);
    return m < 0 || cost >= 2 * m;
}

/* Runs parts 0..nparts-1 of fn (nparts from bpv_pool_want) on the pool's
 * threads and the caller's, and returns nparts once all are done; or
 * returns 0 without running anything, and fn must run serially instead:
 * nparts < 2, the pool held by another job, or no memory for threads or
 * scratch. Thread t (the caller is 0) claims part t first, so that from
 * job to job a thread works on the same rows, samples or elements and
 * finds them in its core's cache; a part not claimed yet is run by
 * whichever thread gets to it first, so a thread the system does not
 * schedule in time leaves its part to another rather than stalling the
 * job. */
int bpv_pool_run(int nparts, size_t scratch, bpv_pool_fn *fn, void *ctx);

/* Part p's units [lo, hi) of n, in order; contiguous over the parts. */
static inline void bpv_pool_range(int64_t n, int p, int np, int64_t *lo, int64_t *hi) {
    *lo = n * p / np;
    *hi = n * (p + 1) / np;
}

/* Part p's elements [lo, hi) of n in blocks of `block` (a cache line of
 * them, so that no two parts write one line): contiguous and in order over
 * the parts, the last block short. */
static inline void bpv_pool_blocks(int64_t n, int64_t block, int p, int np, int64_t *lo,
                                   int64_t *hi) {
    bpv_pool_range((n + block - 1) / block, p, np, lo, hi);
    *lo *= block;
    *hi = *hi * block < n ? *hi * block : n;
}

/* The operations a thread must have before a job is split (see pool.c for
 * the measurement); tests set 0 to split every job that has units. Returns
 * the previous value. */
double bpv_pool_min_cost_set(double cost);

#endif
