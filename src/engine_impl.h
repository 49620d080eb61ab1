/* The engine, generic over the storage type: forward and backward over the
 * topologically sorted node array. Each op's kernels are named by its row
 * in the op table (ops.c); this file holds them and the walk that calls
 * them. engine_f64.c instantiates it over double storage, engine_f32.c over
 * float32 storage (BPV_STORE_F32); a graph runs on the one its storage
 * is (bpv_graph.f32, engine.c). Every kernel rounds with R()
 * exactly where PyTorch's float32 CPU kernel rounds (checked against torch
 * 1.13, see tests/torch/ops_reference.py); elementwise ops run their
 * element functions (op_elem.h) over whole tensors; tanh, exp, log and
 * sigmoid are torch's own (vmath.c); sum, mean and the loss means add in
 * torch's order (csum.c), other reductions accumulate in double and round
 * at the end. No allocation here: the scalar tutorial models run this
 * every step. */
#include <math.h>
#include <string.h>

#include "conv.h"
#include "csum.h"
#include "graph.h"
#include "op_elem.h"
#include "pool.h"
#include "vmath.h"

#define R(x) bpv_round(dt, (x))

/* NUM is the storage type, VAL, GRAD, EDGE and RED the fields that hold
 * it, and the helpers that read or write it take it; KN names a kernel of
 * either instantiation (the op table points to both). The arithmetic is
 * the same double-and-round code either way, so are the numbers: a stored
 * number is a value of the dtype, which float32 holds exactly. */
#ifdef BPV_STORE_F32
#define NUM float
#define NUMBITS uint32_t
#define VAL val32
#define GRAD grad32
#define EDGE edge_grad32
#define RED red_work32
#define MATMUL(dt, M, N, K, x, xr, xc, y, yr, yc, c, w) bpv_matmul32(M, N, K, x, xr, xc, y, yr, yc, c, w)
#define VMATH(fn, dt, x, o, n) bpv_vmath32(fn, x, o, n)
#define CSUM_ARRAY(dt, x, n) bpv_csum_array32(dt, x, n)
#define CSUM_COLUMNS bpv_csum_columns32
#define GRAPH_FORWARD bpv_k32_forward
#define GRAPH_BACKWARD bpv_k32_backward
#define KN(name) bpv_k32_##name
#define KIND_FWD fwd32
#define KIND_BWD bwd32
#define SUM_DIM(dt, mean, x, o, l, i, out) \
    ((mean) ? bpv_cmean_dim32(dt, x, o, l, i, out) : bpv_csum_dim32(dt, x, o, l, i, out))
#define SUM_DIM_BACK bpv_csum_dim_backward32
#define CONV_WORK conv_work32
#define KERN(name, dt, ...) bpv_##name##32(__VA_ARGS__) /* float32: the dtype is f32 */
#else
#define NUM double
#define NUMBITS uint64_t
#define VAL val
#define GRAD grad
#define EDGE edge_grad
#define RED red_work
#define MATMUL bpv_matmul
#define VMATH bpv_vmath
#define CSUM_ARRAY bpv_csum_array
#define CSUM_COLUMNS bpv_csum_columns
#define GRAPH_FORWARD bpv_k64_forward
#define GRAPH_BACKWARD bpv_k64_backward
#define KN(name) bpv_k64_##name
#define KIND_FWD fwd
#define KIND_BWD bwd
#define SUM_DIM(dt, mean, x, o, l, i, out) \
    ((mean) ? bpv_cmean_dim(dt, x, o, l, i, out) : bpv_csum_dim(dt, x, o, l, i, out))
#define SUM_DIM_BACK bpv_csum_dim_backward
#define CONV_WORK conv_work
#define KERN(name, dt, ...) bpv_##name##64(dt, __VA_ARGS__)
#endif

/* The elementwise loops run in AVX2 where the CPU has it (four doubles a
 * lane set): the same IEEE operations, so the same bits, in fewer steps. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define ENGINE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ENGINE_CLONES
#endif

static void fill(NUM *p, int64_t n, double v) {
    for (int64_t i = 0; i < n; i++) p[i] = v;
}

/* Where a sum torch does not order (engine.c GRAD2, the losses' broadcast
 * inputs) is accumulated in double before its one rounding: the edge
 * itself over double storage, the graph's acc_work over float32. */
#ifdef BPV_STORE_F32
#define ACC(g, e) ((g)->acc_work)
static void fill_d(double *p, int64_t n, double v) {
    for (int64_t i = 0; i < n; i++) p[i] = v;
}
#else
#define ACC(g, e) (e)
#define fill_d fill
#endif

/* ---- broadcasting --------------------------------------------------------
 * Walks the output shape keeping the flat offset of each of two inputs; an
 * input dimension of size 1 (or a missing leading one) has stride 0. */
typedef struct bcast_it {
    int rank;
    int64_t dim[BPV_MAX_RANK];
    int64_t st[2][BPV_MAX_RANK];
    int64_t idx[BPV_MAX_RANK];
    int64_t off[2];
} bcast_it;

static void bcast_init(bcast_it *it, const bpv_shape *out, const bpv_shape *a,
                       const bpv_shape *b) {
    const bpv_shape *in[2] = {a, b};
    memset(it, 0, sizeof *it);
    it->rank = out->rank;
    for (int d = 0; d < out->rank; d++) it->dim[d] = out->dim[d];
    for (int k = 0; k < 2; k++) {
        int64_t stride = 1;
        for (int d = out->rank - 1; d >= 0; d--) {
            int sd = d - (out->rank - in[k]->rank);
            int64_t sz = sd >= 0 ? in[k]->dim[sd] : 1;
            it->st[k][d] = sz == 1 ? 0 : stride;
            stride *= sz;
        }
    }
}

static inline void bcast_next(bcast_it *it) {
    for (int d = it->rank - 1; d >= 0; d--) {
        it->off[0] += it->st[0][d];
        it->off[1] += it->st[1][d];
        if (++it->idx[d] < it->dim[d]) return;
        it->off[0] -= it->st[0][d] * it->dim[d];
        it->off[1] -= it->st[1][d] * it->dim[d];
        it->idx[d] = 0;
    }
}

/* Whether b is o's trailing dimensions exactly (a bias broadcast over the
 * leading ones), so b's flat index is o's modulo numel(b). */
static inline bool bcast_tail(const bpv_shape *o, const bpv_shape *b) {
    if (b->rank == 0 || b->rank > o->rank) return false;
    for (int d = 0; d < b->rank; d++)
        if (b->dim[d] != o->dim[o->rank - b->rank + d]) return false;
    return true;
}

/* Runs the body for every element i in [lo_, hi_) of shape *osh (N
 * elements) with ia, ib the offsets of inputs A and B. Equal sizes and
 * scalar operands skip the index walk: equal numel means the same flat
 * layout (only size-1 dims differ). Only those and a bias (B repeating
 * along the leading dimensions) have offsets known from i alone; the
 * general walk starts at 0 (lo_ must be 0 there: elem_split). */
#define FOR_BCAST_RANGE(lo_, hi_, ...)                                            \
    do {                                                                          \
        if (A->numel == N && B->numel == N) {                                     \
            for (int64_t i = (lo_); i < (hi_); i++) {                             \
                const int64_t ia = i, ib = i;                                     \
                __VA_ARGS__;                                                      \
            }                                                                     \
        } else if (A->numel == N && B->numel == 1) {                              \
            for (int64_t i = (lo_); i < (hi_); i++) {                             \
                const int64_t ia = i, ib = 0;                                     \
                __VA_ARGS__;                                                      \
            }                                                                     \
        } else if (A->numel == 1 && B->numel == N) {                              \
            for (int64_t i = (lo_); i < (hi_); i++) {                             \
                const int64_t ia = 0, ib = i;                                     \
                __VA_ARGS__;                                                      \
            }                                                                     \
        } else if (A->numel == N && B->numel > 0 && bcast_tail(osh, &B->shape)) { \
            /* a bias: B repeats along the leading dimensions */                  \
            const int64_t nb_ = B->numel;                                         \
            /* row by row of B's length: an inner loop that vectorises */         \
            for (int64_t row_ = (lo_) - (lo_) % nb_; row_ < (hi_); row_ += nb_) { \
                const int64_t rend_ = row_ + nb_ < (hi_) ? row_ + nb_ : (hi_);    \
                const int64_t rbeg_ = row_ > (lo_) ? row_ : (lo_);                \
                for (int64_t i = rbeg_, ib = rbeg_ - row_; i < rend_; i++, ib++) { \
                    const int64_t ia = i;                                         \
                    __VA_ARGS__;                                                  \
                }                                                                 \
            }                                                                     \
        } else {                                                                  \
            bcast_it it_;                                                         \
            bcast_init(&it_, osh, &A->shape, &B->shape);                          \
            for (int64_t i = 0; i < (hi_); i++) {                                 \
                const int64_t ia = it_.off[0], ib = it_.off[1];                   \
                __VA_ARGS__;                                                      \
                bcast_next(&it_);                                                 \
            }                                                                     \
        }                                                                         \
    } while (0)
#define FOR_BCAST(...) FOR_BCAST_RANGE(0, N, __VA_ARGS__)

/* out[i] = EXPR(a, b) for i in [lo, hi) */
#define FWD2(...)                                                                 \
    FOR_BCAST_RANGE(lo, hi, {                                                     \
        const double a = A->VAL[ia], b = B->VAL[ib];                              \
        (void)a; (void)b;                                                         \
        o[i] = (__VA_ARGS__);                                                     \
    })


/* The max that propagates NaN, like torch's vectorized maximum. */
static double row_max(const NUM *x, int64_t c) {
    double m = -INFINITY;
    for (int64_t j = 0; j < c; j++) {
        if (x[j] != x[j]) return x[j];
        if (x[j] > m) m = x[j];
    }
    return m;
}

/* ---- one row of softmax and friends, as torch's vectorised kernels -------
 * torch reduces a row with 8-float (4-double) vectors: the first vector is
 * the accumulator and each later one, the partial last one included, is
 * added lane by lane; then the lanes are combined (float32 under AVX2 as
 * ((0+4)+(2+6))+((1+5)+(3+7)), otherwise in lane order). A row shorter
 * than one vector is summed in order. Terms are fed in order, one at a
 * time. With fma, a term g*y goes into its lane as one fused multiply-add
 * (softmax's backward, where torch's AVX2 build contracts it). */
typedef struct row_sum {
    bpv_dtype dt;
    bool fused;     /* torch's AVX2 kernels: tree lane order, contracted FMAs */
    int lanes;
    int64_t n, i;
    double acc[8];
} row_sum;

static void rs_init(row_sum *r, bpv_dtype dt, int64_t n) {
    r->dt = dt;
    r->fused = bpv_vmath_sleef();
    r->lanes = dt == BPV_F32 ? 8 : 4;
    r->n = n;
    r->i = 0;
}

/* adds g * y (y = 1: adds g) */
static void rs_add(row_sum *r, double g, double y, bool product) {
    const bpv_dtype dt = r->dt;
    const int64_t i = r->i++;
    const double p = product ? R(g * y) : g;
    if (r->n < r->lanes) {
        r->acc[0] = i == 0 ? p : R(r->acc[0] + p);
    } else if (i < r->lanes) {
        r->acc[i] = p;
    } else {
        double *a = &r->acc[i % r->lanes];
        *a = product && r->fused ? bpv_fma(dt, g, y, *a) : R(*a + p);
    }
}

static double rs_result(const row_sum *r) {
    const bpv_dtype dt = r->dt;
    const double *a = r->acc;
    if (r->n == 0) return 0.0;
    if (r->n < r->lanes) return a[0];
    if (r->lanes == 8 && r->fused)
        return R(R(R(a[0] + a[4]) + R(a[2] + a[6])) + R(R(a[1] + a[5]) + R(a[3] + a[7])));
    double s = a[0];
    for (int l = 1; l < r->lanes; l++) s = R(s + a[l]);
    return s;
}

/* g - e * s as log_softmax's backward computes it: one FMA in torch's AVX2
 * build, two roundings in its portable one */
static double minus_product(bpv_dtype dt, bool fused, double g, double e, double s) {
    return fused ? bpv_fma(dt, -e, s, g) : R(g - R(e * s));
}

/* log(sum(exp(x - max))) of one row, as torch's log_softmax computes it;
 * the exps a chunk at a time on the stack (SLEEF's lanes are independent,
 * so the grouping does not change them) */
static double row_logsumexp(bpv_dtype dt, const NUM *x, int64_t c, double m) {
    row_sum r;
    rs_init(&r, dt, c);
    double e[64];
    for (int64_t j0 = 0; j0 < c; j0 += 64) {
        const int64_t k = c - j0 < 64 ? c - j0 : 64;
        for (int64_t j = 0; j < k; j++) e[j] = R(x[j0 + j] - m);
        bpv_vmath(BPV_VF_EXP, dt, e, e, k);
        for (int64_t j = 0; j < k; j++) rs_add(&r, e[j], 1, false);
    }
    return bpv_vmath1(BPV_VF_LOG, dt, rs_result(&r));
}

/* row_logsumexp of nr rows of c (x row-major, nr * c <= LSE_BLOCK), with
 * their maxima m, into lse: one call of the vector exp for all their
 * elements and one of log for all their sums, rather than a call each row
 * (a call costs more than ten classes' exps); the exps and logs are the
 * same, each lane computed alone. */
enum { LSE_BLOCK = 512 };
static void rows_logsumexp(bpv_dtype dt, const NUM *x, int64_t c, int64_t nr, const double *m,
                           double *lse) {
    double e[LSE_BLOCK];
    for (int64_t r = 0; r < nr; r++)
        for (int64_t j = 0; j < c; j++) e[r * c + j] = R(x[r * c + j] - m[r]);
    bpv_vmath(BPV_VF_EXP, dt, e, e, nr * c);
    for (int64_t r = 0; r < nr; r++) {
        row_sum rs;
        rs_init(&rs, dt, c);
        for (int64_t j = 0; j < c; j++) rs_add(&rs, e[r * c + j], 1, false);
        lse[r] = rs_result(&rs);
    }
    bpv_vmath(BPV_VF_LOG, dt, lse, lse, nr);
}

/* Rows of c that rows_logsumexp takes at a time: 0 when one row is longer
 * than its block (row_logsumexp then takes each row alone). */
static int64_t lse_rows(int64_t c) { return c > 0 && c <= LSE_BLOCK ? LSE_BLOCK / c : 0; }

/* The maxima and log-sum-exps of rows r0..r0+nr-1 of x (nr <= lse_rows(c),
 * or 1). */
static void block_lse(bpv_dtype dt, const NUM *x, int64_t c, int64_t r0, int64_t nr, double *m,
                      double *lse) {
    for (int64_t r = 0; r < nr; r++) m[r] = row_max(x + (r0 + r) * c, c);
    if (lse_rows(c) == 0)
        lse[0] = row_logsumexp(dt, x + r0 * c, c, m[0]);
    else
        rows_logsumexp(dt, x + r0 * c, c, nr, m, lse);
}

/* Last-dimension rows of a node: softmax and friends work row by row. */
static int64_t last_dim(const bpv_node *x) {
    return x->shape.rank ? x->shape.dim[x->shape.rank - 1] : 1;
}

/* Matrix view of a matmul operand: [n] is a row for a, a column for b. */
static void mat_dims(const bpv_node *a, const bpv_node *b, int64_t *m, int64_t *k, int64_t *p) {
    *m = a->shape.rank == 2 ? a->shape.dim[0] : 1;
    *k = a->shape.rank >= 1 ? a->shape.dim[a->shape.rank - 1] : 1;
    *p = b->shape.rank == 2 ? b->shape.dim[1] : 1;
}

/* A class index target, or -1 when it is not an integer in [0, c). */
static int64_t class_index(double t, int64_t c) {
    if (!(t >= 0 && t < (double)c) || t != floor(t)) return -1;
    return (int64_t)t;
}

/* ---- elementwise ops: the element functions of op_elem.h over tensors ---- */

/* Element functions get the dtype as EDT: a constant over float32 storage,
 * where R() then folds away and one IEEE operation runs in float32. */
#ifdef BPV_STORE_F32
#define EDT BPV_F32
#else
#define EDT dt
#endif

/* Elements [lo, hi) of an elementwise op's forward. */
ENGINE_CLONES
static void elem_fwd_range(bpv_graph *g, bpv_node *n, int64_t lo, int64_t hi) {
    const bpv_dtype dt = g->dtype;
    const bpv_ectx ctx = bpv_elem_ctx(g, n), *c = &ctx;
    const bpv_node *A = &g->nodes[n->in[0]];
    const bpv_node *B = n->nin > 1 ? &g->nodes[n->in[1]] : A;
    NUM *o = n->VAL;
    const NUM *x = A->VAL;
    const int64_t N = n->numel;
    const bpv_shape *osh = &n->shape;
    /* sigmoid and pow split like torch's kernels: whole vector blocks, then
     * the rest (vmath.c); a part's range starts on a block (elem_split), so
     * a vector function over it makes the same split */
    const int64_t vend = bpv_vmath_blocks(dt, N);
    (void)vend, (void)c, (void)B, (void)osh, (void)N;
    switch (n->op) {
#define X(OP, f, vf, arity)                                                       \
    case OP:                                                                      \
        if ((int)(vf) >= 0)                                                       \
            VMATH((bpv_vfn)(vf), dt, x + lo, o + lo, hi - lo);                    \
        else if ((arity) == 1 || n->nin == 1)                                     \
            for (int64_t i = lo; i < hi; i++) o[i] = bpv_ef_##f(EDT, c, x[i], 0, i < vend); \
        else                                                                      \
            FWD2(bpv_ef_##f(EDT, c, a, b, i < vend));                             \
        break;
        BPV_ELEM_OPS(X)
#undef X
    default: break;
    }
}

/* ---- elementwise ops on threads -------------------------------------------------
 * Large elementwise ops split their elements into ranges of whole blocks
 * (ELEM_BLOCK elements: a cache line of floats, and a multiple of the
 * vector blocks in which sigmoid and pow differ from their tails), each
 * computed as the serial loop computes it. Forward: every op whose inputs
 * have offsets known from the index (FOR_BCAST_RANGE); backward: one-input
 * ops and two-input ops of equal shapes. Not a user's fn (its context is
 * not known to be reentrant). */
enum { ELEM_BLOCK = 16 };

static void elem_bwd_range(bpv_graph *g, bpv_node *n, int64_t lo, int64_t hi);

static bool elem_transcendental(bpv_op op) {
    switch (op) {
#define X(OP, f, vf, arity)                                                       \
    case OP: return (int)(vf) >= 0 || (OP) == BPV_OP_POW;
        BPV_ELEM_OPS(X)
#undef X
    default: return false;
    }
}

typedef struct elem_job {
    bpv_graph *g;
    bpv_node *n;
    bool bwd;
} elem_job;

static void elem_part(void *ctx, int part, int nparts, float *scratch) {
    (void)scratch;
    const elem_job *j = ctx;
    const int64_t N = j->n->numel;
    int64_t lo, hi;
    bpv_pool_blocks(N, ELEM_BLOCK, part, nparts, &lo, &hi);
    if (hi <= lo) return;
    if (j->bwd) elem_bwd_range(j->g, j->n, lo, hi);
    else elem_fwd_range(j->g, j->n, lo, hi);
}

/* Runs the op's elements on threads when they are worth it; false: run
 * them serially. */
static bool elem_split(bpv_graph *g, bpv_node *n, bool bwd) {
    const int64_t N = n->numel;
    /* An element weighs 64 multiply-adds of a product in a transcendental
     * forward (tanh, exp, log, sigmoid, pow), else 8: a part then needs
     * 4096 and 32768 elements. Measured on two threads against one (a chain
     * of eight ops, bench/README.md "Threads"): tanh breaks even at 2048
     * elements and is 1.45x at 8192; relu loses at 8192 (100 against 85
     * us) and gains 4% at 32768, 11% at 131072 (memory-bound). */
    const double cost = (double)N * (!bwd && elem_transcendental(n->op) ? 64 : 8);
    if (!bpv_pool_big(cost) || n->op == BPV_OP_CUSTOM) return false;
    if (bwd && (bpv_ops[n->op].flags & BPV_OPF_LINEAR)) return false; /* grad_addsub */
    if (n->nin > 1) {
        const bpv_node *A = &g->nodes[n->in[0]], *B = &g->nodes[n->in[1]];
        const bool known = (A->numel == N && (B->numel == N || B->numel == 1 ||
                                              (B->numel > 0 && bcast_tail(&n->shape, &B->shape)))) ||
                           (A->numel == 1 && B->numel == N);
        if (!known || (bwd && (A->numel != N || B->numel != N))) return false;
    }
    const int np = bpv_pool_want(cost, (N + ELEM_BLOCK - 1) / ELEM_BLOCK);
    elem_job j = {g, n, bwd};
    return np > 1 && bpv_pool_run(np, 0, elem_part, &j) > 0;
}

void KN(elem_fwd)(bpv_graph *g, bpv_node *n) {
    if (n->op == BPV_OP_CUSTOM && !n->custom) { /* only a hand-built graph lacks its fn */
        fill(n->VAL, n->numel, NAN);
        return;
    }
    if (!elem_split(g, n, false)) elem_fwd_range(g, n, 0, n->numel);
}

/* ---- other forward kernels --------------------------------------------------- */

void KN(sum_fwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]];
    const double s = CSUM_ARRAY(dt, A->VAL, A->numel); /* torch's order (csum.c) */
    /* torch mean = sum(x).div_(numel) */
    n->VAL[0] = n->op == BPV_OP_MEAN ? R(s / (double)A->numel) : s;
}

void KN(transpose_fwd)(bpv_graph *g, bpv_node *n) {
    const bpv_node *A = &g->nodes[n->in[0]];
    const NUM *x = A->VAL;
    NUM *o = n->VAL;
    if (A->shape.rank == 2) {
        int64_t r = A->shape.dim[0], c = A->shape.dim[1];
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c; j++) o[j * r + i] = x[i * c + j];
    } else {
        memmove(o, x, (size_t)n->numel * sizeof *o);
    }
}

void KN(matmul_fwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]], *B = &g->nodes[n->in[1]];
    int64_t m, k, p;
    mat_dims(A, B, &m, &k, &p);
    MATMUL(dt, m, p, k, A->VAL, k, 1, B->VAL, p, 1, n->VAL, g->mm_work);
    (void)dt;
}

/* Loss over the broadcast shape, then mean (apply_loss_reduction). */
ENGINE_CLONES
void KN(loss_fwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]], *B = &g->nodes[n->in[1]];
    NUM *o = n->VAL;
    bpv_shape bs;
    if (!bpv_shape_broadcast(&A->shape, &B->shape, &bs)) {
        o[0] = NAN;
        return;
    }
    const bpv_shape *osh = &bs;
    const int64_t N = bpv_shape_numel(&bs);
    bpv_csum s; /* the elements summed as they come, in torch's order */
    bpv_csum_init(&s, dt, N);
    if (n->op == BPV_OP_MSE) {
        FOR_BCAST({
            bpv_csum_add(&s, bpv_mse_term(dt, A->VAL[ia], B->VAL[ib]));
        });
    } else {
        /* torch 1.13 CPU: (y-1)*max(log(1-p),-100) - y*max(log(p),-100),
         * element by element with libm's logf under float32 */
        FOR_BCAST({
            double p = A->VAL[ia], y = B->VAL[ib];
            double l1 = dt == BPV_F32 ? logf((float)(1.0 - p)) : log(1.0 - p);
            double l0 = dt == BPV_F32 ? logf((float)p) : log(p);
            if (l1 < -100) l1 = -100;
            if (l0 < -100) l0 = -100;
            bpv_csum_add(&s, R(R(R(y - 1.0) * l1) - R(y * l0)));
        });
    }
    o[0] = R(bpv_csum_result(&s) / (double)N);
}

void KN(softmax_fwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]];
    const NUM *x = A->VAL;
    NUM *o = n->VAL;
    const int64_t N = n->numel;
    int64_t c = last_dim(A), rows = c ? N / c : 0;
    for (int64_t r = 0; r < rows; r++) {
        const NUM *xr = x + r * c;
        NUM *orow = o + r * c;
        const double m = row_max(xr, c);
        if (n->op == BPV_OP_LOG_SOFTMAX) { /* (x - max) - log(sum exp(x - max)) */
            const double lse = row_logsumexp(dt, xr, c, m);
            for (int64_t j = 0; j < c; j++) orow[j] = R(R(xr[j] - m) - lse);
            continue;
        }
        /* e = exp(x - max) into the output row, then e * (1 / sum e) */
        for (int64_t j = 0; j < c; j++) orow[j] = R(xr[j] - m);
        VMATH(BPV_VF_EXP, dt, orow, orow, c);
        row_sum rs;
        rs_init(&rs, dt, c);
        for (int64_t j = 0; j < c; j++) rs_add(&rs, orow[j], 1, false);
        const double inv = R(1.0 / rs_result(&rs));
        for (int64_t j = 0; j < c; j++) orow[j] = R(orow[j] * inv);
    }
}

/* log_softmax then nll_loss(mean): -sum(ls[r, t_r]) / rows, the sum in
 * nll_loss's cascade: each row's term goes into level 0, and after row b
 * level j moves up while b is a multiple of the level's span (16^(j+1),
 * more for over 2^32 rows); the levels are then summed from +0.0 in order */
void KN(xent_fwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]], *B = &g->nodes[n->in[1]];
    const NUM *x = A->VAL;
    int64_t c = last_dim(A), rows = A->shape.rank >= 2 ? A->shape.dim[0] : 1;
    enum { LEVELS = 8 };
    double lv[LEVELS] = {0};
    const int p = bpv_ceil_log2(rows), lp = p / LEVELS > 4 ? p / LEVELS : 4;
    const int64_t mask = ((int64_t)1 << lp) - 1;
    bool bad = false;
    const int64_t blk = lse_rows(c) ? lse_rows(c) : 1;
    double m[LSE_BLOCK], lse[LSE_BLOCK];
    for (int64_t r = 0; r < rows; r++) {
        const NUM *xr = x + r * c;
        if (r % blk == 0) block_lse(dt, x, c, r, rows - r < blk ? rows - r : blk, m, lse);
        int64_t t = class_index(B->VAL[r < B->numel ? r : 0], c);
        if (t < 0) {
            bad = true;
            continue;
        }
        lv[0] = R(lv[0] - R(R(xr[t] - m[r % blk]) - lse[r % blk]));
        for (int j = 0; j + 1 < LEVELS; j++) {
            if ((r & (mask << (j * lp))) != 0) break;
            lv[j + 1] = R(lv[j + 1] + lv[j]);
            lv[j] = 0.0;
        }
    }
    double s = 0.0;
    for (int j = 0; j < LEVELS; j++) s = R(s + lv[j]);
    n->VAL[0] = bad ? NAN : R(s / (double)rows);
}

#ifndef BPV_STORE_F32
void bpv_graph_forward_node(bpv_graph *g, int i) {
    bpv_node *n = &g->nodes[i];
    if (n->kind == BPV_NODE_OP) bpv_ops[n->op].fwd(g, n);
}
#endif

void GRAPH_FORWARD(bpv_graph *g) {
    for (int i = 0; i < g->nnodes; i++) {
        bpv_node *n = &g->nodes[i];
        if (n->kind == BPV_NODE_OP) bpv_ops[n->op].KIND_FWD(g, n);
    }
}

/* ---- backward ------------------------------------------------------------- */

/* Where edge k of n may be written instead of its edge_grad: the zeroed
 * .grad of a param that has no other edge, when the caller reads no edge
 * this pass (g->edges_unread). Only for ops whose results are never -0.0
 * (matmul's sums start from +0.0), since .grad takes +0.0 + e. NULL: write
 * edge_grad. pass_grad then only marks the grad written. */
static NUM *direct_grad(const bpv_graph *g, const bpv_node *n, int k) {
    const bpv_node *in = &g->nodes[n->in[k]];
    return n->op == BPV_OP_MATMUL && g->edges_unread && g->param_direct &&
                   in->kind == BPV_NODE_PARAM && in->sole_edge && in->grad_pending
               ? in->GRAD
               : NULL;
}

/* Adds edge k's contribution into its input's grad. A non-param grad starts
 * at -0.0, the exact identity of +, so its first contribution is copied as
 * torch's input buffer does (a -0.0 gradient survives): R(-0.0 + e) is e,
 * every edge_grad being rounded already. Params are summed separately when
 * the reverse walk reaches them (param_accumulate). */
ENGINE_CLONES
static void pass_grad(bpv_graph *g, const bpv_node *n, int k) {
    const bpv_dtype dt = g->dtype;
    bpv_node *in = &g->nodes[n->in[k]];
    const NUM *e = n->EDGE[k];
    if ((in->kind == BPV_NODE_PARAM && !g->param_direct) || !in->GRAD) return;
    if (e == in->GRAD || direct_grad(g, n, k)) { /* computed in place (compile.c, direct_grad) */
        in->grad_pending = false;
        return;
    }
    if (in->grad_pending) {
        if (in->kind == BPV_NODE_PARAM) /* +0.0 + e, as into torch's zeroed .grad */
            for (int64_t j = 0; j < in->numel; j++) in->GRAD[j] = e[j] + 0.0;
        else
            memcpy(in->GRAD, e, (size_t)in->numel * sizeof *e);
        in->grad_pending = false;
        return;
    }
    for (int64_t j = 0; j < in->numel; j++) in->GRAD[j] = R(in->GRAD[j] + e[j]);
}

/* Whether edge k of n carries a gradient this pass. */
static bool edge_live(const bpv_graph *g, const bpv_node *n, int k) {
    const bpv_node *in = &g->nodes[n->in[k]];
    return n->kind == BPV_NODE_OP && n->needs_grad && n->GRAD && in->needs_grad &&
           in->GRAD && n->EDGE[k];
}

/* How torch sums a contribution over o's shape down to a broadcast input of
 * shape b. o's dimensions (those above 1) are kept or reduced, and runs of
 * each are merged; torch's reduction order depends on that pattern:
 *  R     a single number: one contiguous sum;
 *  R K   a bias ([m] or [1, m] against [n, m]): column sums;
 *  K R   and  R K R  ([n, 1], [1, n, 1]): each run of reduced elements one
 *        contiguous sum, added in order over the leading reduced index;
 *  K R K ([n, 1, m] against [n, k, m]): column sums of each leading slab.
 * Other patterns are summed in double (PLAN_NONE). */
typedef enum { PLAN_NONE, PLAN_COLUMNS, PLAN_ROWS, PLAN_SLABS } plan_kind;
typedef struct reduce_plan {
    plan_kind kind;
    int64_t outer, mid, inner; /* COLUMNS: rows, cols; ROWS: outer, kept, inner; SLABS: lead, rows, cols */
} reduce_plan;

static reduce_plan plan_reduce(const bpv_shape *o, const bpv_shape *b) {
    reduce_plan p = {PLAN_NONE, 1, 1, 1};
    const int off = o->rank - b->rank;
    if (off < 0) return p;
    char run[BPV_MAX_RANK];
    int64_t size[BPV_MAX_RANK];
    int nr = 0;
    for (int d = 0; d < o->rank; d++) {
        const int64_t od = o->dim[d], bd = d < off ? 1 : b->dim[d - off];
        if (od == 1 && bd == 1) continue;
        char kind;
        if (bd == od) kind = 'K';
        else if (bd == 1) kind = 'R';
        else return p;
        if (od == 0) return p;
        if (nr && run[nr - 1] == kind) {
            size[nr - 1] *= od;
        } else {
            run[nr] = kind;
            size[nr++] = od;
        }
    }
    if (nr == 1 && run[0] == 'R') p = (reduce_plan){PLAN_COLUMNS, size[0], 1, 1};
    else if (nr == 2 && run[0] == 'R') p = (reduce_plan){PLAN_COLUMNS, size[0], size[1], 1};
    else if (nr == 2) p = (reduce_plan){PLAN_ROWS, 1, size[0], size[1]};
    else if (nr == 3 && run[0] == 'R') p = (reduce_plan){PLAN_ROWS, size[0], size[1], size[2]};
    else if (nr == 3) p = (reduce_plan){PLAN_SLABS, size[0], size[1], size[2]};
    return p;
}

/* e (the input's numel) = w (o's numel) summed as the plan says, each term
 * negated when negate (not for PLAN_ROWS, whose callers negate w itself) */
static void reduce_by_plan(bpv_dtype dt, const reduce_plan *p, const NUM *w, bool negate,
                           NUM *e) {
    switch (p->kind) {
    case PLAN_COLUMNS: CSUM_COLUMNS(dt, w, p->outer, p->mid, negate, e); break;
    case PLAN_ROWS:
        for (int64_t j = 0; j < p->mid; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < p->outer; k++)
                s = R(s + CSUM_ARRAY(dt, w + (k * p->mid + j) * p->inner, p->inner));
            e[j] = s;
        }
        break;
    case PLAN_SLABS:
        for (int64_t l = 0; l < p->outer; l++)
            CSUM_COLUMNS(dt, w + l * p->mid * p->inner, p->mid, p->inner, negate,
                             e + l * p->inner);
        break;
    case PLAN_NONE: break;
    }
}

/* The input's share of a contribution computed over n's (broadcast) shape is
 * summed over the broadcast dimensions (torch's sum_to_size): gathered in
 * red_work and summed in torch's order where plan_reduce knows it, else
 * (and in hand-built graphs, which have no red_work) in double, rounded
 * once. An input that was not broadcast takes its share as it is. */
#define GRAD2(K, ...)                                                             \
    do {                                                                          \
        if (!edge_live(g, n, K)) break;                                           \
        const bpv_node *I_ = &g->nodes[n->in[K]];                                 \
        NUM *e_ = n->EDGE[K];                                             \
        const bool red_ = I_->numel != N;                                         \
        const reduce_plan p_ = red_ ? plan_reduce(osh, &I_->shape)                \
                                    : (reduce_plan){PLAN_NONE, 1, 1, 1};          \
        NUM *w_ = p_.kind != PLAN_NONE ? g->RED : NULL;                   \
        double *d_ = red_ && !w_ ? ACC(g, e_) : NULL;                             \
        if (d_) fill_d(d_, I_->numel, -0.0);                                      \
        FOR_BCAST({                                                               \
            const double a = A->VAL[ia], b = B->VAL[ib], y = n->VAL[i];           \
            const double gv = n->GRAD[i];                                         \
            (void)a; (void)b; (void)y; (void)gv;                                  \
            const double c_ = (__VA_ARGS__);                                      \
            const int64_t t_ = (K) == 0 ? ia : ib;                                \
            if (w_) w_[i] = c_;                                                   \
            else if (d_) d_[t_] += c_;                                            \
            else e_[t_] = c_;                                                     \
        });                                                                       \
        if (w_)                                                                   \
            reduce_by_plan(dt, &p_, w_, false, e_);                               \
        else if (d_)                                                              \
            for (int64_t j_ = 0; j_ < I_->numel; j_++) e_[j_] = R(d_[j_]);        \
        pass_grad(g, n, K);                                                       \
    } while (0)

/* add and sub: edge k takes grad (negated for sub's b) without FOR_BCAST's
 * per-element dispatch when the input has n's shape, or is b broadcast in a
 * pattern plan_reduce knows: summed in torch's order straight from grad.
 * Returns false for the rest, which GRAD2 sums. */
ENGINE_CLONES
static bool grad_addsub(bpv_graph *g, bpv_node *n, int k, bool neg) {
    reduce_plan p;
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]], *B = &g->nodes[n->in[1]];
    const bpv_node *I = k ? B : A;
    const int64_t N = n->numel, nb = I->numel;
    const NUM *gr = n->GRAD;
    NUM *e = n->EDGE[k];
    if (!edge_live(g, n, k)) return true;
    if (nb == N) { /* equal numel: the same flat layout */
        if (neg)
            for (int64_t i = 0; i < N; i++) e[i] = -gr[i];
        else if (e != gr) /* else one buffer already (compile.c) */
            memcpy(e, gr, (size_t)N * sizeof *e);
    } else if (k == 1 && A->numel == N && nb > 0 &&
               (p = plan_reduce(&n->shape, &B->shape)).kind != PLAN_NONE &&
               !(neg && p.kind == PLAN_ROWS)) {
        /* the incoming gradient is the contribution: summed as it is */
        reduce_by_plan(dt, &p, gr, neg, e);
    } else {
        return false;
    }
    pass_grad(g, n, k);
    return true;
}

/* Unary elementwise ops: the input has n's shape. */
#define GRAD1(...)                                                                \
    do {                                                                          \
        if (!edge_live(g, n, 0)) break;                                           \
        NUM *e_ = n->EDGE[0];                                             \
        for (int64_t i = 0; i < N; i++) {                                         \
            const double a = x[i], y = n->VAL[i], gv = n->GRAD[i];                \
            (void)a; (void)y; (void)gv;                                           \
            e_[i] = (__VA_ARGS__);                                                \
        }                                                                         \
        pass_grad(g, n, 0);                                                       \
    } while (0)

/* ---- backward kernels ---------------------------------------------------------- */

ENGINE_CLONES
void KN(elem_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_ectx ctx = bpv_elem_ctx(g, n), *c = &ctx;
    const bpv_node *A = &g->nodes[n->in[0]];
    const bpv_node *B = n->nin > 1 ? &g->nodes[n->in[1]] : A;
    const int64_t N = n->numel;
    const bpv_shape *osh = &n->shape;
    const NUM *x = A->VAL;
    /* a.pow(..) and sigmoid as in the forward */
    const int64_t vend = bpv_vmath_blocks(dt, N);
    /* add and sub pass their gradient on as it is (or negated): summed
     * straight from grad where the shapes allow */
    const bool linear = bpv_ops[n->op].flags & BPV_OPF_LINEAR;
    (void)vend, (void)c, (void)B, (void)osh, (void)x;
    if (n->op == BPV_OP_CUSTOM && !n->custom) return;
    if (elem_split(g, n, true)) { /* the edges computed on threads */
        for (int k = 0; k < n->nin; k++)
            if (edge_live(g, n, k)) pass_grad(g, n, k);
        return;
    }
    switch (n->op) {
#define X(OP, f, vf, arity)                                                       \
    case OP:                                                                      \
        if ((arity) == 1 || n->nin == 1) {                                        \
            GRAD1(bpv_eb_##f(EDT, c, 0, a, 0, y, gv, i < vend));                  \
        } else {                                                                  \
            if (!linear || !grad_addsub(g, n, 0, bpv_eb_##f(EDT, c, 0, 0, 0, 0, 1, 0) < 0)) \
                GRAD2(0, bpv_eb_##f(EDT, c, 0, a, b, y, gv, i < vend));           \
            if (!linear || !grad_addsub(g, n, 1, bpv_eb_##f(EDT, c, 1, 0, 0, 0, 1, 0) < 0)) \
                GRAD2(1, bpv_eb_##f(EDT, c, 1, a, b, y, gv, i < vend));           \
        }                                                                         \
        break;
        BPV_ELEM_OPS(X)
#undef X
    default: break;
    }
}

/* Elements [lo, hi) of the live edges of a one-input op, or of a two-input
 * op whose inputs have its shape (elem_split): what GRAD1 and GRAD2 compute
 * there, without passing them on. */
ENGINE_CLONES
static void elem_bwd_range(bpv_graph *g, bpv_node *n, int64_t lo, int64_t hi) {
    const bpv_dtype dt = g->dtype;
    const bpv_ectx ctx = bpv_elem_ctx(g, n), *c = &ctx;
    const bpv_node *A = &g->nodes[n->in[0]];
    const bpv_node *B = n->nin > 1 ? &g->nodes[n->in[1]] : A;
    const NUM *y = n->VAL, *gr = n->GRAD;
    const int64_t vend = bpv_vmath_blocks(dt, n->numel);
    (void)vend, (void)c, (void)B;
    switch (n->op) {
#define X(OP, f, vf, arity)                                                       \
    case OP:                                                                      \
        for (int k = 0; k < ((arity) == 1 || n->nin == 1 ? 1 : 2); k++) {         \
            if (!edge_live(g, n, k)) continue;                                    \
            NUM *e = n->EDGE[k];                                                  \
            for (int64_t i = lo; i < hi; i++) {                                   \
                const double b = (arity) == 1 || n->nin == 1 ? 0 : B->VAL[i];     \
                e[i] = bpv_eb_##f(EDT, c, k, A->VAL[i], b, y[i], gr[i], i < vend); \
            }                                                                     \
        }                                                                         \
        break;
        BPV_ELEM_OPS(X)
#undef X
    default: break;
    }
}

void KN(sum_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_node *A = &g->nodes[n->in[0]];
    if (!edge_live(g, n, 0)) return;
    fill(n->EDGE[0], A->numel, bpv_reduce_share(g->dtype, n->op, n->GRAD[0], A->numel));
    pass_grad(g, n, 0);
}

void KN(transpose_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_node *A = &g->nodes[n->in[0]];
    const NUM *gr = n->GRAD;
    if (!edge_live(g, n, 0)) return;
    NUM *e = n->EDGE[0];
    if (A->shape.rank == 2) {
        int64_t r = A->shape.dim[0], c = A->shape.dim[1];
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c; j++) e[i * c + j] = gr[j * r + i];
    } else {
        memmove(e, gr, (size_t)n->numel * sizeof *e);
    }
    pass_grad(g, n, 0);
}

void KN(matmul_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]], *B = &g->nodes[n->in[1]];
    const NUM *gr = n->GRAD;
    int64_t m, k, p;
    mat_dims(A, B, &m, &k, &p);
    (void)dt;
    if (edge_live(g, n, 0)) { /* g @ b^T */
        NUM *d = direct_grad(g, n, 0);
        MATMUL(dt, m, k, p, gr, p, 1, B->VAL, 1, p, d ? d : n->EDGE[0], g->mm_work);
        pass_grad(g, n, 0);
    }
    if (edge_live(g, n, 1)) { /* a^T @ g */
        NUM *d = direct_grad(g, n, 1);
        MATMUL(dt, k, p, m, A->VAL, 1, k, gr, p, 1, d ? d : n->EDGE[1], g->mm_work);
        pass_grad(g, n, 1);
    }
}

ENGINE_CLONES
void KN(loss_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]], *B = &g->nodes[n->in[1]];
    bpv_shape bs;
    if (!bpv_shape_broadcast(&A->shape, &B->shape, &bs)) return;
    const double gl = n->GRAD[0];
    const bpv_shape *osh = &bs; /* the per-element work runs over the broadcast shape */
    const int64_t N = bpv_shape_numel(&bs);
    const double dn = (double)N;
    for (int k = 0; k < 2; k++) {
        if (!edge_live(g, n, k)) continue;
        const bpv_node *I = k ? B : A;
        NUM *e = n->EDGE[k];
        double *d = I->numel != N ? ACC(g, e) : NULL;
        if (d) fill_d(d, I->numel, -0.0);
        FOR_BCAST({
            const double a = A->VAL[ia], b = B->VAL[ib];
            double c;
            if (n->op == BPV_OP_MSE) {
                c = bpv_mse_grad(dt, k, a, b, gl, dn);
            } else if (k == 0) {
                /* grad * (p - y) / max((1 - p) * p, 1e-12), then / N */
                double den = R(R(1.0 - a) * a), eps = R(1e-12);
                if (den < eps) den = eps;
                c = R(R(R(gl * R(a - b)) / den) / dn);
            } else {
                /* target: -logit(p) * grad / N */
                c = R(R(-R(log(R(a / R(1.0 - a)))) * gl) / dn);
            }
            const int64_t t_ = k ? ib : ia;
            if (d) d[t_] += c;
            else e[t_] = c;
        });
        if (d)
            for (int64_t j = 0; j < I->numel; j++) e[j] = R(d[j]);
        pass_grad(g, n, k);
    }
}

void KN(softmax_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]];
    const NUM *gr = n->GRAD;
    const int64_t N = n->numel;
    if (!edge_live(g, n, 0)) return;
    NUM *e = n->EDGE[0];
    int64_t c = last_dim(A), rows = c ? N / c : 0;
    for (int64_t r = 0; r < rows; r++) {
        const NUM *yr = n->VAL + r * c, *gw = gr + r * c;
        NUM *er = e + r * c;
        row_sum rs;
        rs_init(&rs, dt, c);
        if (n->op == BPV_OP_SOFTMAX) {
            /* (g - sum(g * y)) * y */
            for (int64_t j = 0; j < c; j++) rs_add(&rs, gw[j], yr[j], true);
            const double s = rs_result(&rs);
            for (int64_t j = 0; j < c; j++) er[j] = R(yr[j] * R(gw[j] - s));
        } else {
            /* g - exp(y) * sum(g), one FMA in torch's AVX2 build */
            for (int64_t j = 0; j < c; j++) rs_add(&rs, gw[j], 1, false);
            const double s = rs_result(&rs);
            VMATH(BPV_VF_EXP, dt, yr, er, c);
            for (int64_t j = 0; j < c; j++) er[j] = minus_product(dt, rs.fused, gw[j], er[j], s);
        }
    }
    pass_grad(g, n, 0);
}

/* nll_loss_backward puts -(grad / rows) at the target, then
 * log_softmax_backward: gi - exp(ls) * sum(gi) with sum(gi) = that */
void KN(xent_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]], *B = &g->nodes[n->in[1]];
    const NUM *x = A->VAL, *gr = n->GRAD;
    if (!edge_live(g, n, 0)) return;
    NUM *e = n->EDGE[0];
    int64_t c = last_dim(A), rows = A->shape.rank >= 2 ? A->shape.dim[0] : 1;
    double gt = -R(gr[0] / (double)rows);
    const bool fused = bpv_vmath_sleef();
    const int64_t blk = lse_rows(c) ? lse_rows(c) : 1;
    double m[LSE_BLOCK], lse[LSE_BLOCK];
    for (int64_t r0 = 0; r0 < rows; r0 += blk) { /* a block of rows: one exp call */
        const int64_t nr = rows - r0 < blk ? rows - r0 : blk;
        block_lse(dt, x, c, r0, nr, m, lse);
        for (int64_t r = r0; r < r0 + nr; r++)
            for (int64_t j = 0; j < c; j++)
                e[r * c + j] = R(R(x[r * c + j] - m[r - r0]) - lse[r - r0]);
        VMATH(BPV_VF_EXP, dt, e + r0 * c, e + r0 * c, nr * c);
        for (int64_t r = r0; r < r0 + nr; r++) {
            NUM *er = e + r * c;
            int64_t t = class_index(B->VAL[r < B->numel ? r : 0], c);
            if (t < 0) {
                fill(er, c, NAN);
                continue;
            }
            for (int64_t j = 0; j < c; j++)
                er[j] = minus_product(dt, fused, j == t ? gt : 0.0, er[j], gt);
        }
    }
    pass_grad(g, n, 0);
}

/* ---- ops over a sample's dimensions ---------------------------------------
 * Copies (flatten, reshape, cat, stack, index) move numbers without
 * arithmetic, so their bits are torch's trivially; their backward copies
 * the gradient back into place. */

/* A node's dimension attribute as an axis of the whole tensor x (the batch
 * dimension in front skipped); `extra`: stack's new dimension. */
static int node_axis(const bpv_node *n, const bpv_node *x, bool extra) {
    const int lead = n->batched ? 1 : 0;
    const int r = x->shape.rank - lead + (extra ? 1 : 0);
    const int a = (int)n->attr[0];
    return (a < 0 ? a + r : a) + lead;
}

/* s viewed as [outer, len, inner] around axis d (len 1 past the end). */
static void axis_view(const bpv_shape *s, int d, int64_t *outer, int64_t *len, int64_t *inner) {
    *outer = *inner = 1;
    *len = d < s->rank ? s->dim[d] : 1;
    for (int i = 0; i < d && i < s->rank; i++) *outer *= s->dim[i];
    for (int i = d + 1; i < s->rank; i++) *inner *= s->dim[i];
}

void KN(sumdim_fwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_node *A = &g->nodes[n->in[0]];
    int64_t outer, len, inner;
    axis_view(&A->shape, node_axis(n, A, false), &outer, &len, &inner);
    SUM_DIM(dt, n->op == BPV_OP_MEAN_DIM, A->VAL, outer, len, inner, n->VAL);
}

void KN(sumdim_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_node *A = &g->nodes[n->in[0]];
    if (!edge_live(g, n, 0)) return;
    int64_t outer, len, inner;
    axis_view(&A->shape, node_axis(n, A, false), &outer, &len, &inner);
    /* sum: g copied; mean: g / len rounded once, torch's division */
    SUM_DIM_BACK(g->dtype, n->op == BPV_OP_MEAN_DIM, n->GRAD, outer, len, inner, n->EDGE[0]);
    pass_grad(g, n, 0);
}

void KN(reshape_fwd)(bpv_graph *g, bpv_node *n) {
    memcpy(n->VAL, g->nodes[n->in[0]].VAL, (size_t)n->numel * sizeof(NUM));
}

void KN(reshape_bwd)(bpv_graph *g, bpv_node *n) {
    if (!edge_live(g, n, 0)) return;
    memcpy(n->EDGE[0], n->GRAD, (size_t)n->numel * sizeof(NUM));
    pass_grad(g, n, 0);
}

/* cat and stack: input k is the slab [outer, len_k, inner] of the output's
 * [outer, total, inner] (len_k 1 for stack's new dimension). */
static void cat_walk(bpv_graph *g, bpv_node *n, bool back) {
    const bool stack = n->op == BPV_OP_STACK;
    int64_t outer, total, inner;
    const int d = node_axis(n, &g->nodes[n->in[0]], stack);
    axis_view(&n->shape, d, &outer, &total, &inner);
    int64_t at = 0;
    for (int k = 0; k < n->nin; k++) {
        const bpv_node *x = &g->nodes[n->in[k]];
        const int64_t len = stack ? 1 : x->shape.dim[d], slab = len * inner;
        if (!back) {
            for (int64_t o = 0; o < outer; o++)
                memcpy(n->VAL + (o * total + at) * inner, x->VAL + o * slab,
                       (size_t)slab * sizeof(NUM));
        } else if (edge_live(g, n, k)) {
            for (int64_t o = 0; o < outer; o++)
                memcpy(n->EDGE[k] + o * slab, n->GRAD + (o * total + at) * inner,
                       (size_t)slab * sizeof(NUM));
            pass_grad(g, n, k);
        }
        at += len;
    }
}

void KN(cat_fwd)(bpv_graph *g, bpv_node *n) { cat_walk(g, n, false); }
void KN(cat_bwd)(bpv_graph *g, bpv_node *n) { cat_walk(g, n, true); }

static int64_t index_of(const bpv_node *n, const bpv_node *x, int64_t *outer, int64_t *size,
                        int64_t *inner) {
    axis_view(&x->shape, n->batched ? 1 : 0, outer, size, inner);
    const int64_t i = (int64_t)n->attr[0];
    return i < 0 ? i + *size : i;
}

void KN(index_fwd)(bpv_graph *g, bpv_node *n) {
    const bpv_node *A = &g->nodes[n->in[0]];
    int64_t outer, size, inner;
    const int64_t i = index_of(n, A, &outer, &size, &inner);
    for (int64_t o = 0; o < outer; o++)
        memcpy(n->VAL + o * inner, A->VAL + (o * size + i) * inner, (size_t)inner * sizeof(NUM));
}

void KN(index_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_node *A = &g->nodes[n->in[0]];
    if (!edge_live(g, n, 0)) return;
    int64_t outer, size, inner;
    const int64_t i = index_of(n, A, &outer, &size, &inner);
    NUM *e = n->EDGE[0];
    fill(e, A->numel, 0.0); /* torch's select backward: zeros, then the slice */
    for (int64_t o = 0; o < outer; o++)
        memcpy(e + (o * size + i) * inner, n->GRAD + o * inner, (size_t)inner * sizeof(NUM));
    pass_grad(g, n, 0);
}

/* ---- convolution and pooling (conv.c) -------------------------------------- */

static bpv_conv2d_dims conv_dims(const bpv_graph *g, const bpv_node *n) {
    bpv_conv2d_dims d;
    /* the shape rule checked the sizes */
    bpv_conv2d_dims_of(&g->nodes[n->in[0]].shape, &g->nodes[n->in[1]].shape,
                       (int64_t)n->attr[0], (int64_t)n->attr[1], &d);
    return d;
}

void KN(conv_fwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_conv2d_dims d = conv_dims(g, n);
    const NUM *b = n->nin > 2 ? g->nodes[n->in[2]].VAL : NULL;
    KERN(conv2d_fwd, dt, &d, g->nodes[n->in[0]].VAL, g->nodes[n->in[1]].VAL, b, n->VAL,
         g->CONV_WORK);
    (void)dt;
}

void KN(conv_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_conv2d_dims d = conv_dims(g, n);
    if (edge_live(g, n, 0)) {
        KERN(conv2d_bwd_x, dt, &d, n->GRAD, g->nodes[n->in[1]].VAL, n->EDGE[0], g->CONV_WORK);
        pass_grad(g, n, 0);
    }
    if (edge_live(g, n, 1)) {
        KERN(conv2d_bwd_w, dt, &d, n->GRAD, g->nodes[n->in[0]].VAL, n->EDGE[1], g->CONV_WORK);
        pass_grad(g, n, 1);
    }
    if (n->nin > 2 && edge_live(g, n, 2)) {
        KERN(conv2d_bwd_b, dt, &d, n->GRAD, n->EDGE[2]);
        pass_grad(g, n, 2);
    }
    (void)dt;
}

static bpv_pool2d_dims pool_dims(const bpv_graph *g, const bpv_node *n) {
    return bpv_pool2d_dims_of(&g->nodes[n->in[0]].shape, (int64_t)n->attr[0], n->attr[1],
                              (int64_t)n->attr[2]);
}

void KN(pool_fwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    const bpv_pool2d_dims d = pool_dims(g, n);
    const NUM *x = g->nodes[n->in[0]].VAL;
    if (n->op == BPV_OP_MAX_POOL2D)
        KERN(maxpool2d_fwd, dt, &d, x, n->VAL);
    else
        KERN(avgpool2d_fwd, dt, &d, x, n->VAL);
    (void)dt;
}

void KN(pool_bwd)(bpv_graph *g, bpv_node *n) {
    const bpv_dtype dt = g->dtype;
    if (!edge_live(g, n, 0)) return;
    const bpv_pool2d_dims d = pool_dims(g, n);
    if (n->op == BPV_OP_MAX_POOL2D)
        KERN(maxpool2d_bwd, dt, &d, g->nodes[n->in[0]].VAL, n->GRAD, n->EDGE[0]);
    else
        KERN(avgpool2d_bwd, dt, &d, n->GRAD, n->EDGE[0]);
    pass_grad(g, n, 0);
    (void)dt;
}

/* torch sums all contributions to a leaf in its input buffer first (in the
 * order they arrive) and then adds that sum into .grad. Contributions arrive
 * from users in reverse node order, input slot 0 before 1. */
#define MAX_GATHER 16
static void param_accumulate(bpv_graph *g, int p, int last) {
    const bpv_dtype dt = g->dtype;
    bpv_node *pn = &g->nodes[p];
    const NUM *es[MAX_GATHER];
    int ne = 0, total = 0;
    for (int j = last; j > p; j--) {
        const bpv_node *u = &g->nodes[j];
        for (int k = 0; k < u->nin; k++)
            if (u->in[k] == p && edge_live(g, u, k)) {
                if (ne < MAX_GATHER) es[ne++] = u->EDGE[k];
                total++;
            }
    }
    if (total == 0) return;
    for (int64_t i = 0; i < pn->numel; i++) {
        double s = es[0][i];
        if (total <= MAX_GATHER) {
            for (int q = 1; q < ne; q++) s = R(s + es[q][i]);
        } else { /* many users: walk them again per element rather than allocate */
            int seen = 0;
            for (int j = last; j > p; j--) {
                const bpv_node *u = &g->nodes[j];
                for (int k = 0; k < u->nin; k++)
                    if (u->in[k] == p && edge_live(g, u, k) && seen++ > 0)
                        s = R(s + u->EDGE[k][i]);
            }
        }
        pn->GRAD[i] = R(pn->GRAD[i] + s);
    }
}

/* Whether every value is +0.0 or -0.0 (NaN is not): the bits but the sign
 * ORed together, a loop without exits that vectorizes. */
static bool all_zero(const NUM *p, int64_t n) {
    NUMBITS acc = 0;
    for (int64_t j = 0; j < n; j++) {
        NUMBITS b;
        memcpy(&b, &p[j], sizeof b);
        acc |= b;
    }
    return (NUMBITS)(acc << 1) == 0;
}

static void backward_pass(bpv_graph *g) {
    const int obj = g->objective;
    const bool zeroed = g->params_zeroed;
    g->params_zeroed = false;
    /* grads up to the objective are -0.0 until their first contribution,
     * which pass_grad then copies instead of adding; so are the grads of
     * params the caller zeroed, as +0.0 */
    for (int i = 0; i < g->nnodes; i++) {
        bpv_node *n = &g->nodes[i];
        const bool param = n->kind == BPV_NODE_PARAM;
        n->grad_pending = n->GRAD && (param ? zeroed : i <= obj);
        if (n->grad_pending && (obj < 0 || obj >= g->nnodes || i > obj)) {
            fill(n->GRAD, n->numel, param ? 0.0 : -0.0); /* nothing can reach it */
            n->grad_pending = false;
        } else if (n->GRAD && !param && i > obj) {
            fill(n->GRAD, n->numel, 0.0);
        }
    }
    if (obj < 0 || obj >= g->nnodes) return;
    bpv_node *on = &g->nodes[obj];
    if (!on->GRAD) {
        for (int i = 0; i <= obj; i++)
            if (g->nodes[i].grad_pending) {
                fill(g->nodes[i].GRAD, g->nodes[i].numel,
                     g->nodes[i].kind == BPV_NODE_PARAM ? 0.0 : -0.0);
                g->nodes[i].grad_pending = false;
            }
        return;
    }
    if (on->kind != BPV_NODE_PARAM) fill(on->GRAD, on->numel, 1.0);
    on->grad_pending = false;
    /* With every param grad ±0 (zero_grad, or the first step), adding each
     * contribution into .grad as it arrives gives torch's sum exactly:
     * 0 + s differs from s only in the sign of a zero, which torch's final
     * grad + s erases too. The per-param gather, which walks the users of
     * each param (O(nodes x params)), is then needed only for zero_grad=false. */
    g->param_direct = true;
    for (int i = 0; i <= obj && g->param_direct && !zeroed; i++) {
        const bpv_node *n = &g->nodes[i];
        if (n->kind == BPV_NODE_PARAM && n->needs_grad && n->GRAD && !all_zero(n->GRAD, n->numel))
            g->param_direct = false;
    }
    for (int i = obj; i >= 0; i--) {
        bpv_node *n = &g->nodes[i];
        if (n->grad_pending) { /* every contribution comes from a later node */
            fill(n->GRAD, n->numel, n->kind == BPV_NODE_PARAM ? 0.0 : -0.0);
            n->grad_pending = false;
        }
        if (!n->needs_grad || !n->GRAD) continue;
        if (n->kind == BPV_NODE_PARAM) {
            if (!g->param_direct) param_accumulate(g, i, obj);
        } else if (n->kind == BPV_NODE_OP) {
            bpv_ops[n->op].KIND_BWD(g, n);
        }
    }
}

void GRAPH_BACKWARD(bpv_graph *g) {
    backward_pass(g);
    g->edges_unread = false;
}


#ifndef BPV_STORE_F32 /* snapshots read double graphs only */
/* ---- local partials for snapshots ------------------------------------------
 * Each op's backward with an upstream gradient of one, element by element,
 * so a figure's local partial times the incoming gradient is the chained
 * partial torch computes. */

void bpv_local_elem(const bpv_graph *g, const bpv_node *n, int k, double *out) {
    const bpv_dtype dt = g->dtype;
    const bpv_ectx ctx = bpv_elem_ctx(g, n), *c = &ctx;
    const bpv_node *A = &g->nodes[n->in[0]];
    const bpv_node *B = n->nin > 1 ? &g->nodes[n->in[1]] : A;
    const int64_t N = n->numel;
    const bpv_shape *osh = &n->shape;
    const int64_t vend = bpv_vmath_blocks(dt, N);
    (void)vend, (void)c;
    switch (n->op) {
#define X(OP, f, vf, arity)                                                       \
    case OP:                                                                      \
        if ((arity) == 1 || n->nin == 1)                                          \
            for (int64_t i = 0; i < N; i++)                                       \
                out[i] = bpv_eb_##f(dt, c, 0, A->val[i], 0, n->val[i], 1.0, i < vend); \
        else                                                                      \
            FOR_BCAST(out[i] = bpv_eb_##f(dt, c, k, A->val[ia], B->val[ib], n->val[i], 1.0, \
                                          i < vend));                             \
        break;
        BPV_ELEM_OPS(X)
#undef X
    default: break;
    }
}

void bpv_local_sum(const bpv_graph *g, const bpv_node *n, int k, double *out) {
    (void)k;
    out[0] = bpv_reduce_share(g->dtype, n->op, 1.0, g->nodes[n->in[0]].numel);
}

bool bpv_graph_local(const bpv_graph *g, int ni, int k, double *out) {
    const bpv_node *n = &g->nodes[ni];
    if (n->kind != BPV_NODE_OP || k < 0 || k >= n->nin || !bpv_ops[n->op].local ||
        (n->op == BPV_OP_CUSTOM && !n->custom))
        return false;
    bpv_ops[n->op].local(g, n, k, out);
    return true;
}
#endif
