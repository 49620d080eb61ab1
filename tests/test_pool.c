/* The engine's thread pool (src/pool.c): every part of a job runs exactly
 * once with its scratch, a job inside a job and a second caller at once run
 * serially, the thread count follows bpv_threads_set; and the kernels split
 * over it (products, convolutions, poolings) give the serial kernels' bits
 * at 2, 3 and 4 threads with every job split. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bpviz/bpviz.h"
#include "conv.h"
#include "graph.h"
#include "pool.h"
#include "simd.h"

/* ---- the pool ------------------------------------------------------------- */

static void test_range(void **state) {
    (void)state;
    for (int64_t n = 0; n < 40; n++)
        for (int np = 1; np < 9; np++) {
            int64_t next = 0;
            for (int p = 0; p < np; p++) {
                int64_t lo, hi;
                bpv_pool_range(n, p, np, &lo, &hi);
                assert_int_equal(lo, next);
                assert_true(hi >= lo);
                next = hi;
            }
            assert_int_equal(next, n);
        }
}

static void test_threads_setting(void **state) {
    (void)state;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(bpv_threads_set(3), 3);
    assert_int_equal(bpv_threads_get(), 3);
    assert_int_equal(bpv_threads_set(-1), -1);
    assert_int_equal(bpv_threads_set(257), -1);
    assert_int_equal(bpv_threads_get(), 3); /* unchanged */
    assert_int_equal(bpv_threads_set(0), cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    assert_int_equal(bpv_threads_set(1), 1);
    /* one thread, or too little work, or one unit: serial */
    assert_int_equal(bpv_pool_want(1e12, 100), 1);
    bpv_threads_set(4);
    double old = bpv_pool_min_cost_set(100);
    assert_int_equal(bpv_pool_want(150, 100), 1);
    assert_int_equal(bpv_pool_want(250, 100), 2);
    assert_int_equal(bpv_pool_want(1e9, 3), 3);
    assert_int_equal(bpv_pool_want(1e9, 100), 4);
    assert_int_equal(bpv_pool_want(1e9, 1), 1);
    bpv_pool_min_cost_set(0); /* every job that has units */
    assert_int_equal(bpv_pool_want(1, 2), 2);
    bpv_pool_min_cost_set(old);
}

#define MAXPARTS 16
typedef struct count_job {
    atomic_int runs[MAXPARTS];
    size_t scratch;
    atomic_int bad;
    int nested; /* a job inside the job: its bpv_pool_run result */
} count_job;

static void count_part(void *ctx, int part, int nparts, float *scratch) {
    count_job *j = ctx;
    if (part < 0 || part >= nparts || nparts > MAXPARTS || !scratch ||
        ((uintptr_t)scratch & 63) != 0)
        atomic_fetch_add(&j->bad, 1);
    else
        atomic_fetch_add(&j->runs[part], 1);
    for (size_t i = 0; i < j->scratch; i++) scratch[i] = (float)part; /* all of it is ours */
}

static void nested_part(void *ctx, int part, int nparts, float *scratch) {
    count_job *j = ctx;
    count_part(ctx, part, nparts, scratch);
    if (part == 0) j->nested = bpv_pool_run(2, 0, count_part, j);
}

static void test_every_part_once(void **state) {
    (void)state;
    bpv_threads_set(3);
    for (int np = 2; np <= MAXPARTS; np++)
        for (size_t scratch = 0; scratch < 5000; scratch += 1237) {
            count_job j = {.scratch = scratch};
            assert_int_equal(bpv_pool_run(np, scratch, count_part, &j), np);
            assert_int_equal(atomic_load(&j.bad), 0);
            for (int p = 0; p < MAXPARTS; p++)
                assert_int_equal(atomic_load(&j.runs[p]), p < np ? 1 : 0);
        }
    count_job j = {0};
    assert_int_equal(bpv_pool_run(1, 0, count_part, &j), 0); /* one part: the caller's */
    assert_int_equal(bpv_pool_run(2, 0, NULL, &j), 0);
    assert_int_equal(atomic_load(&j.runs[0]), 0);
    /* a job inside a job finds the pool busy */
    count_job n = {.nested = -1};
    assert_int_equal(bpv_pool_run(3, 0, nested_part, &n), 3);
    assert_int_equal(n.nested, 0);
}

/* After the count is lowered, the threads made before sit the jobs out. */
#define MAXSEEN 8
typedef struct who_job {
    pthread_mutex_t mu;
    pthread_t seen[MAXSEEN];
    int nseen;
} who_job;

static void who_part(void *ctx, int part, int nparts, float *scratch) {
    (void)part, (void)nparts, (void)scratch;
    who_job *j = ctx;
    for (volatile int spin = 0; spin < 20000; spin++) continue; /* long enough to share */
    pthread_mutex_lock(&j->mu);
    bool known = false;
    for (int i = 0; i < j->nseen; i++) known = known || pthread_equal(j->seen[i], pthread_self());
    if (!known && j->nseen < MAXSEEN) j->seen[j->nseen++] = pthread_self();
    pthread_mutex_unlock(&j->mu);
}

static void test_lowered_count(void **state) {
    (void)state;
    bpv_threads_set(4);
    who_job j = {.mu = PTHREAD_MUTEX_INITIALIZER};
    for (int i = 0; i < 50; i++) assert_int_equal(bpv_pool_run(8, 0, who_part, &j), 8);
    bpv_threads_set(2);
    j.nseen = 0;
    for (int i = 0; i < 200; i++) assert_int_equal(bpv_pool_run(8, 0, who_part, &j), 8);
    assert_true(j.nseen >= 1 && j.nseen <= 2);
    bpv_threads_set(0);
}

/* Two user threads dispatching at once: each job runs in the pool or
 * reports that it did not, never half. */
static void *dispatcher(void *arg) {
    atomic_int *failures = arg;
    for (int i = 0; i < 300; i++) {
        count_job j = {.scratch = 16};
        int np = 2 + i % 3;
        int r = bpv_pool_run(np, 16, count_part, &j);
        for (int p = 0; p < np; p++)
            if (atomic_load(&j.runs[p]) != (r ? 1 : 0)) atomic_fetch_add(failures, 1);
        if (atomic_load(&j.bad)) atomic_fetch_add(failures, 1);
    }
    return NULL;
}

static void test_concurrent_callers(void **state) {
    (void)state;
    bpv_threads_set(3);
    atomic_int failures = 0;
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, dispatcher, &failures), 0);
    assert_int_equal(pthread_create(&b, NULL, dispatcher, &failures), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(atomic_load(&failures), 0);
}

/* ---- the kernels: the same bits at every thread count ------------------------- */

static uint64_t rng = 88172645463325252u;
static float rnd(void) { /* xorshift; about half of the values negative */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *rand32(int64_t n) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = rnd();
    return p;
}
static double *widen(const float *f, int64_t n) {
    double *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = f[i];
    return p;
}

/* the product's three layouts as the engine calls them: x @ y, and the
 * backward ones g @ y^T, x^T @ g (strided operands) */
static void test_matmul_threads(void **state) {
    (void)state;
    static const int64_t dims[][3] = {{64, 128, 784}, {784, 128, 64}, {64, 10, 128}, {1, 37, 300},
                                      {37, 1, 300},  {5, 7, 1},      {33, 65, 3},   {3, 300, 17},
                                      {300, 3, 17},  {9, 9, 0}};
    double old = bpv_pool_min_cost_set(0);
    for (size_t c = 0; c < sizeof dims / sizeof dims[0]; c++)
        for (int layout = 0; layout < 3; layout++) {
            const int64_t M = dims[c][0], N = dims[c][1], K = dims[c][2];
            /* x is M x K and y K x N as (rows, cols) strides */
            int64_t xr = K, xc = 1, yr = N, yc = 1;
            if (layout == 1) yr = 1, yc = K; /* y stored N x K: y^T */
            if (layout == 2) xr = 1, xc = M; /* x stored K x M: x^T */
            float *x = rand32(M * K), *y = rand32(K * N);
            double *xd = widen(x, M * K), *yd = widen(y, K * N);
            float *work = malloc(bpv_matmul_work(M, N, K) * sizeof *work + 64);
            float *ref = malloc((size_t)(M * N + 1) * sizeof *ref);
            float *got = malloc((size_t)(M * N + 1) * sizeof *got);
            double *refd = malloc((size_t)(M * N + 1) * sizeof *refd);
            double *gotd = malloc((size_t)(M * N + 1) * sizeof *gotd);
            bpv_threads_set(1);
            bpv_matmul32(M, N, K, x, xr, xc, y, yr, yc, ref, work);
            bpv_matmul(BPV_F64, M, N, K, xd, xr, xc, yd, yr, yc, refd, work);
            for (int nt = 2; nt <= 4; nt++) {
                bpv_threads_set(nt);
                memset(got, 0xff, (size_t)(M * N + 1) * sizeof *got);
                bpv_matmul32(M, N, K, x, xr, xc, y, yr, yc, got, work);
                if (memcmp(ref, got, (size_t)(M * N) * sizeof *got) != 0)
                    fail_msg("matmul32 %lldx%lldx%lld layout %d: %d threads differ",
                             (long long)M, (long long)N, (long long)K, layout, nt);
                bpv_matmul(BPV_F64, M, N, K, xd, xr, xc, yd, yr, yc, gotd, work);
                if (memcmp(refd, gotd, (size_t)(M * N) * sizeof *gotd) != 0)
                    fail_msg("matmul f64 %lldx%lldx%lld layout %d: %d threads differ",
                             (long long)M, (long long)N, (long long)K, layout, nt);
                /* f32 arithmetic over double storage: the float32 bits */
                bpv_matmul(BPV_F32, M, N, K, xd, xr, xc, yd, yr, yc, gotd, work);
                for (int64_t i = 0; i < M * N; i++)
                    if ((float)gotd[i] != ref[i] && !(isnan(gotd[i]) && isnan(ref[i])))
                        fail_msg("matmul f32 on doubles %lldx%lldx%lld: element %lld",
                                 (long long)M, (long long)N, (long long)K, (long long)i);
            }
            free(x), free(y), free(xd), free(yd), free(work);
            free(ref), free(got), free(refd), free(gotd);
        }
    bpv_pool_min_cost_set(old);
    bpv_threads_set(0);
}

/* Every product against the sum written out (each element from +0.0, one
 * rounded multiply and one rounded add per term, in t order), over shapes
 * that take each kernel's paths: narrow (8-float) and, where the CPU has
 * AVX-512, wide (16-float) tiles, partial tiles and panels, the
 * transposed product, direct and packed operands, several K-blocks, the
 * vector and outer-product forms; on 1 and 2 threads. ctest runs it again
 * with BPV_AVX512=0 (test_pool_avx2): both kernels give these bits. */
static void test_matmul_reference(void **state) {
    (void)state;
    static const int64_t ms[] = {1, 2, 3, 4, 5, 8, 12, 13, 17, 31, 33, 64};
    static const int64_t ns[] = {1, 2, 7, 10, 12, 16, 17, 25, 32, 33, 40, 128};
    static const int64_t ks[] = {1, 2, 17, 300};
    printf("product kernels: %s\n", bpv_simd_wide() ? "AVX-512 (16-float) and 8-float"
                                                   : "8-float only (no AVX-512 here, or BPV_AVX512=0)");
    double old = bpv_pool_min_cost_set(0);
    for (int nt = 1; nt <= 2; nt++) {
        bpv_threads_set(nt);
        for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
            for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
                for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++)
                    for (int layout = 0; layout < 3; layout++) {
                        const int64_t M = ms[a], N = ns[b], K = ks[k];
                        int64_t xr = K, xc = 1, yr = N, yc = 1;
                        if (layout == 1) yr = 1, yc = K;
                        if (layout == 2) xr = 1, xc = M;
                        float *x = rand32(M * K), *y = rand32(K * N);
                        float *work = malloc(bpv_matmul_work(M, N, K) * sizeof *work + 64);
                        float *got = malloc((size_t)(M * N) * sizeof *got);
                        bpv_matmul32(M, N, K, x, xr, xc, y, yr, yc, got, work);
                        for (int64_t i = 0; i < M; i++)
                            for (int64_t j = 0; j < N; j++) {
                                float sum = 0.0f;
                                for (int64_t t = 0; t < K; t++) {
                                    const float p = x[i * xr + t * xc] * y[t * yr + j * yc];
                                    sum = sum + p;
                                }
                                if (memcmp(&sum, &got[i * N + j], sizeof sum) != 0)
                                    fail_msg("matmul32 %lldx%lldx%lld layout %d, %d threads: "
                                             "[%lld, %lld] is %a, not %a",
                                             (long long)M, (long long)N, (long long)K, layout,
                                             nt, (long long)i, (long long)j,
                                             (double)got[i * N + j], (double)sum);
                            }
                        free(x), free(y), free(work), free(got);
                    }
    }
    bpv_pool_min_cost_set(old);
    bpv_threads_set(0);
}

typedef struct conv_out {
    float *y, *gx, *gw, *gb, *py, *pgx, *ay, *agx;
} conv_out;

static void conv_all(const bpv_conv2d_dims *d, const bpv_pool2d_dims *pd, const float *x,
                     const float *w, const float *b, const float *gy, const float *pgy,
                     conv_out *o) {
    float *work = malloc(bpv_conv2d_work(d) * sizeof *work);
    assert_non_null(work);
    bpv_conv2d_fwd32(d, x, w, b, o->y, work);
    bpv_conv2d_bwd_x32(d, gy, w, o->gx, work);
    bpv_conv2d_bwd_w32(d, gy, x, o->gw, work);
    bpv_conv2d_bwd_b32(d, gy, o->gb);
    bpv_maxpool2d_fwd32(pd, o->y, o->py);
    bpv_maxpool2d_bwd32(pd, o->y, pgy, o->pgx);
    bpv_avgpool2d_fwd32(pd, o->y, o->ay);
    bpv_avgpool2d_bwd32(pd, pgy, o->agx);
    free(work);
}

static void test_conv_threads(void **state) {
    (void)state;
    static const int64_t cfg[][8] = {/* n c h w o k stride pad */
                                     {6, 1, 28, 28, 10, 5, 1, 0},
                                     {5, 3, 12, 12, 4, 3, 1, 1},
                                     {3, 2, 9, 9, 3, 3, 2, 1},
                                     {1, 4, 8, 8, 5, 2, 1, 0},
                                     /* weight gradients by samples in two
                                      * blocks (10 of 102,400 elements fit
                                      * in the 1M buffers, src/conv.c) */
                                     {12, 64, 8, 8, 64, 5, 1, 0}};
    double old = bpv_pool_min_cost_set(0);
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        bpv_conv2d_dims d = {.n = cfg[c][0], .c = cfg[c][1], .h = cfg[c][2], .w = cfg[c][3],
                             .o = cfg[c][4], .kh = cfg[c][5], .kw = cfg[c][5],
                             .stride = cfg[c][6], .pad = cfg[c][7]};
        assert_true(bpv_conv2d_dims_fill(&d));
        const bpv_shape ysh = {.rank = 4, .dim = {d.n, d.o, d.oh, d.ow}};
        const bpv_pool2d_dims pd = bpv_pool2d_dims_of(&ysh, 2, NAN, 0);
        const int64_t nx = d.n * d.c * d.h * d.w, nw = d.o * d.c * d.kh * d.kw;
        const int64_t ny = d.n * d.o * d.oh * d.ow, np = d.n * d.o * pd.oh * pd.ow;
        float *x = rand32(nx), *w = rand32(nw), *b = rand32(d.o), *gy = rand32(ny);
        float *pgy = rand32(np);
        conv_out o[2];
        for (int k = 0; k < 2; k++) {
            o[k] = (conv_out){rand32(ny), rand32(nx), rand32(nw), rand32(d.o),
                              rand32(np), rand32(ny), rand32(np), rand32(ny)};
        }
        bpv_threads_set(1);
        conv_all(&d, &pd, x, w, b, gy, pgy, &o[0]);
        for (int nt = 2; nt <= 4; nt++) {
            bpv_threads_set(nt);
            conv_all(&d, &pd, x, w, b, gy, pgy, &o[1]);
            const struct {
                const char *name;
                float *a, *b;
                int64_t n;
            } cmp[] = {{"y", o[0].y, o[1].y, ny},         {"gx", o[0].gx, o[1].gx, nx},
                       {"gw", o[0].gw, o[1].gw, nw},      {"gb", o[0].gb, o[1].gb, d.o},
                       {"maxpool", o[0].py, o[1].py, np}, {"maxpool gx", o[0].pgx, o[1].pgx, ny},
                       {"avgpool", o[0].ay, o[1].ay, np}, {"avgpool gx", o[0].agx, o[1].agx, ny}};
            for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++)
                if (memcmp(cmp[i].a, cmp[i].b, (size_t)cmp[i].n * sizeof(float)) != 0)
                    fail_msg("conv case %zu: %s differs at %d threads", c, cmp[i].name, nt);
        }
        free(x), free(w), free(b), free(gy), free(pgy);
        for (int k = 0; k < 2; k++) {
            free(o[k].y), free(o[k].gx), free(o[k].gw), free(o[k].gb);
            free(o[k].py), free(o[k].pgx), free(o[k].ay), free(o[k].agx);
        }
    }
    bpv_pool_min_cost_set(old);
    bpv_threads_set(0);
}

/* 2 x 2 max pooling's vector path against the scan written out: ties keep
 * the first element, NaN replaces anything (the last NaN wins), -0.0 and
 * +0.0 tie; the gradient goes to the pick as +0.0 + gy. */
static void test_maxpool22_scan(void **state) {
    (void)state;
    const float special[] = {0.0f, -0.0f, 1.0f, 1.0f, -1.0f, NAN, -NAN, INFINITY, -INFINITY, 0.5f};
    for (int64_t w = 2; w <= 37; w += 5) {
        const int64_t h = 5, n = 2, c = 3, hw = h * w;
        const bpv_shape sh = {.rank = 4, .dim = {n, c, h, w}};
        const bpv_pool2d_dims pd = bpv_pool2d_dims_of(&sh, 2, NAN, 0);
        const int64_t ohw = pd.oh * pd.ow;
        float *x = rand32(n * c * hw), *gy = rand32(n * c * ohw);
        for (int64_t i = 0; i < n * c * hw; i++)
            if (rng % 3 == 0) x[i] = special[rnd() > 0 ? i % 10 : (i * 7) % 10];
        for (int64_t i = 0; i < n * c * ohw; i += 5) gy[i] = -0.0f;
        float *y = rand32(n * c * ohw), *gx = rand32(n * c * hw);
        float *ey = calloc((size_t)(n * c * ohw), sizeof *ey);
        float *egx = calloc((size_t)(n * c * hw), sizeof *egx);
        for (int64_t q = 0; q < n * c; q++)
            for (int64_t oy = 0; oy < pd.oh; oy++)
                for (int64_t ox = 0; ox < pd.ow; ox++) {
                    int64_t best = 2 * oy * w + 2 * ox;
                    float m = -INFINITY;
                    for (int64_t i = 2 * oy; i < 2 * oy + 2; i++)
                        for (int64_t j = 2 * ox; j < 2 * ox + 2; j++) {
                            const float v = x[q * hw + i * w + j];
                            if (v > m || isnan(v)) m = v, best = i * w + j;
                        }
                    ey[q * ohw + oy * pd.ow + ox] = x[q * hw + best];
                    egx[q * hw + best] = 0.0f + gy[q * ohw + oy * pd.ow + ox];
                }
        bpv_maxpool2d_fwd32(&pd, x, y);
        bpv_maxpool2d_bwd32(&pd, x, gy, gx);
        if (memcmp(y, ey, (size_t)(n * c * ohw) * sizeof *y) != 0)
            fail_msg("max pool 2x2 forward, width %lld", (long long)w);
        if (memcmp(gx, egx, (size_t)(n * c * hw) * sizeof *gx) != 0)
            fail_msg("max pool 2x2 backward, width %lld", (long long)w);
        free(x), free(gy), free(y), free(gx), free(ey), free(egx);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),           cmocka_unit_test(test_threads_setting),
        cmocka_unit_test(test_every_part_once), cmocka_unit_test(test_concurrent_callers),
        cmocka_unit_test(test_matmul_threads),  cmocka_unit_test(test_conv_threads),
        cmocka_unit_test(test_maxpool22_scan),  cmocka_unit_test(test_lowered_count),
        cmocka_unit_test(test_matmul_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
