/* The optimizers: one update per param after each step, as torch.optim
 * (torch 1.13, single-tensor path, CPU) computes it, rounding for rounding:
 * SGD, SGD with momentum, Adam, over double or float32 storage. The update
 * of one scalar by plain SGD is optim.h's, inline. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "optim.h"
#include "pool.h"
#include "vmath.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define SGD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SGD_CLONES
#endif

/* The optimizers over each storage type: one update per param after each
 * step, matching torch.optim (torch 1.13, single-tensor path, CPU)
 * rounding for rounding; plain SGD is the tutorial's
 * `w.data = w.data - lr * w.grad.data`. Every operation is rounded to the
 * dtype, so over float32 storage they compute in float32 where that is
 * the same (GCC narrows the double operations), in vectorised loops. Only
 * plain SGD gets an AVX2 clone: in one, GCC 12 changed Adam's results (its
 * fused multiply-adds), which the golden models caught. */
#define R(x) bpv_round(dt, (x))
/* a * b + c as torch's kernels compute it: one fused multiply-add in its
 * AVX2 build, two roundings in its portable one (ATEN_CPU_CAPABILITY=default,
 * or a CPU without AVX2 and FMA: bpv_vmath_sleef) */
#define FMA(dt, a, b, c) (fused ? bpv_fma(dt, a, b, c) : R(R((a) * (b)) + (c)))
#define OPTIM(SUFFIX, T, DT)                                                      \
    SGD_CLONES                                                                    \
    static void sgd_##SUFFIX(bpv_dtype dt_in, T *restrict w, const T *restrict g, int64_t n, \
                             double lr) {                                         \
        const bpv_dtype dt = DT;                                                  \
        (void)dt_in;                                                              \
        const T lr_ = (T)lr; /* a value of the dtype: float32 arithmetic under f32 */ \
        for (int64_t i = 0; i < n; i++) w[i] = (T)R(w[i] - R(lr_ * g[i]));        \
    }                                                                             \
    static void momentum_##SUFFIX(bpv_dtype dt_in, T *restrict w, const T *restrict g, \
                                  T *restrict mb, int64_t n, double lr, double mom, \
                                  bool first) {                                   \
        const bpv_dtype dt = DT;                                                  \
        const bool fused = bpv_vmath_sleef();                                     \
        (void)dt_in;                                                              \
        if (first) /* torch: buf = clone(grad) */                                 \
            memcpy(mb, g, (size_t)n * sizeof *mb);                                \
        else                                                                      \
            for (int64_t i = 0; i < n; i++) mb[i] = (T)R(R(mb[i] * (T)mom) + g[i]); \
        for (int64_t i = 0; i < n; i++) w[i] = (T)FMA(dt, -lr, mb[i], w[i]);      \
    }                                                                             \
    static void adam_##SUFFIX(bpv_dtype dt_in, T *restrict w, const T *restrict g,    \
                              T *restrict mb, T *restrict vb, int64_t n, const double *k) { \
        const bpv_dtype dt = DT;                                                  \
        const bool fused = bpv_vmath_sleef();                                     \
        (void)dt_in;                                                              \
        /* values of the dtype: float32 arithmetic under f32 */                   \
        const T a1 = (T)k[0], b1 = (T)k[1], a2 = (T)k[2], b2 = (T)k[3], bc2s = (T)k[4], \
                eps = (T)k[5], nss = (T)k[6];                                     \
        for (int64_t i = 0; i < n; i++) {                                         \
            mb[i] = (T)FMA(dt, a1, g[i], R(mb[i] * b1));                          \
            vb[i] = (T)FMA(dt, R(a2 * g[i]), g[i], R(vb[i] * b2));                \
            const double denom = R(R(R(sqrt(vb[i])) / bc2s) + eps);               \
            w[i] = (T)R(w[i] + R(R(nss * mb[i]) / denom));                        \
        }                                                                         \
    }
OPTIM(f64, double, dt_in)
OPTIM(f32, float, BPV_F32) /* a constant dtype: R() folds into float32 operations */
#undef OPTIM

/* Momentum and Adam over float32 with AVX2 and FMA, eight lanes at a time:
 * each intrinsic rounds once, where the loops above round, and an FMA is
 * the fmaf they call, so the bits are theirs; the last n % 8 elements go
 * through them. Written out because GCC's own vectorisation of those loops
 * in target clones changed Adam's bits (the golden models caught it). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define OPT_AVX2 __attribute__((target("avx2,fma")))

static bool opt_avx2(void) {
    static atomic_int have = -1; /* atomic: asked from the engine's threads */
    int h = atomic_load_explicit(&have, memory_order_relaxed);
    if (h < 0) {
        __builtin_cpu_init();
        /* their FMAs are the AVX2 build's: not with the portable kernels */
        h = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
            bpv_vmath_sleef();
        atomic_store_explicit(&have, h, memory_order_relaxed);
    }
    return h;
}

OPT_AVX2
static int64_t momentum8(float *restrict w, const float *restrict g, float *restrict mb,
                         int64_t n, float lr, float mom, bool first) {
    const __m256 vm = _mm256_set1_ps(mom), vl = _mm256_set1_ps(-lr);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gi = _mm256_loadu_ps(g + i);
        const __m256 b =
            first ? gi : _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(mb + i), vm), gi);
        _mm256_storeu_ps(mb + i, b);
        _mm256_storeu_ps(w + i, _mm256_fmadd_ps(vl, b, _mm256_loadu_ps(w + i)));
    }
    return i;
}

OPT_AVX2
static int64_t adam8(float *restrict w, const float *restrict g, float *restrict mb,
                     float *restrict vb, int64_t n, const double *k) {
    const __m256 a1 = _mm256_set1_ps((float)k[0]), b1 = _mm256_set1_ps((float)k[1]);
    const __m256 a2 = _mm256_set1_ps((float)k[2]), b2 = _mm256_set1_ps((float)k[3]);
    const __m256 bc2s = _mm256_set1_ps((float)k[4]), eps = _mm256_set1_ps((float)k[5]);
    const __m256 nss = _mm256_set1_ps((float)k[6]);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gi = _mm256_loadu_ps(g + i);
        const __m256 m = _mm256_fmadd_ps(a1, gi, _mm256_mul_ps(_mm256_loadu_ps(mb + i), b1));
        const __m256 v = _mm256_fmadd_ps(_mm256_mul_ps(a2, gi), gi,
                                         _mm256_mul_ps(_mm256_loadu_ps(vb + i), b2));
        const __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), bc2s), eps);
        const __m256 step = _mm256_div_ps(_mm256_mul_ps(nss, m), den);
        _mm256_storeu_ps(mb + i, m);
        _mm256_storeu_ps(vb + i, v);
        _mm256_storeu_ps(w + i, _mm256_add_ps(_mm256_loadu_ps(w + i), step));
    }
    return i;
}
#else
static bool opt_avx2(void) { return false; }
static int64_t momentum8(float *w, const float *g, float *mb, int64_t n, float lr, float mom,
                         bool first) {
    (void)w, (void)g, (void)mb, (void)n, (void)lr, (void)mom, (void)first;
    return 0;
}
static int64_t adam8(float *w, const float *g, float *mb, float *vb, int64_t n,
                     const double *k) {
    (void)w, (void)g, (void)mb, (void)vb, (void)n, (void)k;
    return 0;
}
#endif

/* Adam's per-step numbers, as torch computes them in Python doubles and
 * rounds to the dtype: 1-b1, b1, 1-b2, b2, sqrt(bc2), eps, -lr/bc1. */
static void adam_consts(bpv_dtype dt, const bpv_train *t, const bpv_param *p,
                        bpv_optim_state *st, double *k) {
    long step = ++st->adam_t;
    const double bc1 = 1.0 - pow(t->beta1, (double)step);
    const double bc2 = 1.0 - pow(t->beta2, (double)step);
    const double step_size = (p->has_lr ? p->lr : t->lr) / bc1;
    k[0] = R(1.0 - t->beta1), k[1] = R(t->beta1), k[2] = R(1.0 - t->beta2), k[3] = R(t->beta2);
    k[4] = R(sqrt(bc2)), k[5] = R(t->eps), k[6] = R(-step_size);
}

/* ---- one param's update, on threads when it is large --------------------------
 * Each element's update reads and writes that element only, so the
 * elements split into ranges (whole cache lines) that threads update with
 * the same code: the same bits for any split. Adam's step count and
 * constants are taken once, before. */
typedef enum { SGD, MOMENTUM, ADAM } opt_kind;

typedef struct opt_job {
    opt_kind kind;
    bool f32s, first;
    bpv_dtype dt;
    void *w, *m, *v;
    const void *g;
    int64_t n;
    double lr, mom, k[7];
} opt_job;

static inline void opt_range(const opt_job *j, int64_t lo, int64_t hi) {
    const bpv_dtype dt = j->dt;
    const int64_t n = hi - lo;
    if (!j->f32s) {
        double *w = (double *)j->w + lo, *m = j->m ? (double *)j->m + lo : NULL;
        double *v = j->v ? (double *)j->v + lo : NULL;
        const double *g = (const double *)j->g + lo;
        if (j->kind == SGD) sgd_f64(dt, w, g, n, j->lr);
        else if (j->kind == MOMENTUM) momentum_f64(dt, w, g, m, n, j->lr, j->mom, j->first);
        else adam_f64(dt, w, g, m, v, n, j->k);
        return;
    }
    float *w = (float *)j->w + lo, *m = j->m ? (float *)j->m + lo : NULL;
    float *v = j->v ? (float *)j->v + lo : NULL;
    const float *g = (const float *)j->g + lo;
    if (j->kind == SGD) {
        sgd_f32(dt, w, g, n, j->lr);
    } else if (j->kind == MOMENTUM) {
        const int64_t done =
            opt_avx2() ? momentum8(w, g, m, n, (float)j->lr, (float)j->mom, j->first) : 0;
        momentum_f32(dt, w + done, g + done, m + done, n - done, j->lr, j->mom, j->first);
    } else {
        const int64_t done = opt_avx2() ? adam8(w, g, m, v, n, j->k) : 0;
        adam_f32(dt, w + done, g + done, m + done, v + done, n - done, j->k);
    }
}

enum { LINE = 16 }; /* elements of a part's boundary: a cache line of floats */

static void opt_part(void *ctx, int part, int nparts, float *scratch) {
    (void)scratch;
    const opt_job *j = ctx;
    int64_t lo, hi;
    bpv_pool_blocks(j->n, LINE, part, nparts, &lo, &hi);
    if (hi > lo) opt_range(j, lo, hi);
}

/* An element's update costs about as much as 16 multiply-adds of a
 * product (memory-bound SGD; Adam's square root and divisions, 32). */
static void opt_run(opt_job *j) {
    const double cost = (double)j->n * (j->kind == ADAM ? 32 : 16);
    if (bpv_pool_big(cost)) {
        const int np = bpv_pool_want(cost, (j->n + LINE - 1) / LINE);
        if (np > 1 && bpv_pool_run(np, 0, opt_part, j)) return;
    }
    opt_range(j, 0, j->n);
}

/* The job for one param's step: the kind, the rates and Adam's constants. */
static inline opt_job opt_job_of(bpv_dtype dt, bool f32s, const bpv_train *t, bpv_param *p,
                          bpv_optim_state *st) {
    opt_job j = {.f32s = f32s, .dt = dt, .n = p->numel,
                 .lr = R(p->has_lr ? p->lr : t->lr)};
    j.w = f32s ? (void *)p->val32 : (void *)p->val;
    j.g = f32s ? (const void *)p->grad32 : (const void *)p->grad;
    if (!t->adam && t->momentum == 0) {
        j.kind = SGD; /* a scalar's is optim.h's */
    } else if (!t->adam) {
        j.kind = MOMENTUM;
        j.first = !st->has_momentum;
        st->has_momentum = true;
        j.mom = R(t->momentum);
        j.m = f32s ? (void *)st->m32 : (void *)st->m;
    } else {
        /* exp_avg.mul_(b1).add_(g, alpha=1-b1); exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2);
         * denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps);
         * p.addcdiv_(exp_avg, denom, value=-lr/bc1) */
        j.kind = ADAM;
        adam_consts(dt, t, p, st, j.k);
        j.m = f32s ? (void *)st->m32 : (void *)st->m;
        j.v = f32s ? (void *)st->v32 : (void *)st->v;
    }
    return j;
}

/* One optimizer step for one param over double storage (an f64 model, or
 * an f32 one under BPV_STORE_F64=1). */
void bpv_optim_update_f64(bpv_dtype dt, const bpv_train *t, bpv_param *p,
                          bpv_optim_state *st) {
    opt_job j = opt_job_of(dt, false, t, p, st);
    opt_run(&j);
}

/* The same over float32 storage: eight lanes at a time with AVX2 and FMA
 * where the CPU has them, the rest through the loops above. */
void bpv_optim_update_f32(const bpv_train *t, bpv_param *p, bpv_optim_state *st) {
    const bpv_dtype dt = BPV_F32;
    if (!t->adam && t->momentum == 0 && !bpv_pool_big(16.0 * (double)p->numel)) {
        /* a small param's SGD step: no job to build */
        sgd_f32(dt, p->val32, p->grad32, p->numel, R(p->has_lr ? p->lr : t->lr));
        return;
    }
    opt_job j = opt_job_of(dt, true, t, p, st);
    opt_run(&j);
}

#undef R

void bpv_optim_reset(const bpv_model *m, const bpv_param *p, bpv_optim_state *st) {
    const size_t bytes = (size_t)p->numel * (m->f32store ? sizeof(float) : sizeof(double));
    st->has_momentum = false;
    st->adam_t = 0;
    memset(st->m, 0, bytes);
    memset(st->v, 0, bytes);
}
