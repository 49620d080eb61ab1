/* The scalar fast path: see scalar.h. Elementwise ops run their element
 * functions (op_elem.h); the one-element forms of sum, mean, mse and the
 * transpose run the same shared pieces the engine's kernels use. Other ops
 * (matmul, softmax...) make bpv_scalar_build return NULL, so they always
 * take the general engine. */
#include <math.h>
#include <stdint.h>

#include "op_elem.h"
#include "scalar.h"

/* Operands point into the graph's storage: double, or float32 (f32). */
typedef struct fins {
    bpv_op op;
    bpv_ectx c;
    const void *a, *b; /* b: the second input, or a when there is none */
    void *o;
} fins;

typedef struct bins {
    bpv_op op;
    bpv_ectx c;
    const void *a, *b, *y, *g; /* inputs' values, output value and grad */
    void *e[2];                /* edge_grad per input; NULL when the edge is not live */
    void *gi[2];               /* the inputs' grads */
} bins;

struct bpv_scalar_plan {
    bpv_graph *g;
    bpv_dtype dt;
    bool f32;
    fins *f;
    int nf;
    bins *b;
    int nb;
    void **zero, **negzero, **pgrad; /* grads reset each pass; param grads */
    int nzero, nnegzero, npgrad;
    void *seed;                      /* the objective's grad */
};

/* x^2, the tutorial's loss: pow's element functions with the exponent a
 * constant the compiler sees, so they fold to the square they compute */
#define PLAN_SQUARE BPV_OP_COUNT
static const bpv_ectx square = {BPV_VAR_POW_SCALAR, 2.0, NULL, NULL, false};

#define R(x) bpv_round(dt, (x))
#define INLINE static inline __attribute__((always_inline))

static bool edge_live(const bpv_graph *g, const bpv_node *n, int k) {
    const bpv_node *in = &g->nodes[n->in[k]];
    return n->kind == BPV_NODE_OP && n->needs_grad && n->grad && in->needs_grad &&
           in->grad && n->edge_grad[k];
}

/* Whether the plan runs op node n. */
static bool plan_op(const bpv_node *n) {
    if (n->op <= BPV_OP_NONE || n->op >= BPV_OP_COUNT || n->nin < 1 || n->nin > 2) return false;
    if (n->op == BPV_OP_CUSTOM) return false; /* fn programs stay with the engine */
    if (bpv_ops[n->op].flags & BPV_OPF_ELEMWISE) return true;
    return n->op == BPV_OP_SUM || n->op == BPV_OP_MEAN || n->op == BPV_OP_MSE || n->op == BPV_OP_T;
}

bpv_scalar_plan *bpv_scalar_build(bpv_arena *ar, bpv_graph *g) {
    const int obj = g->objective;
    if (obj < 0 || obj >= g->nnodes) return NULL;
    const bpv_node *on = &g->nodes[obj];
    if (on->kind != BPV_NODE_OP || !on->grad) return NULL;
    int nop = 0, ngrad = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const bpv_node *n = &g->nodes[i];
        if (n->numel != 1 || !n->val) return NULL;
        if (n->kind == BPV_NODE_OP) {
            if (!plan_op(n)) return NULL;
            nop++;
        }
        if (n->grad) ngrad++;
    }
    bpv_scalar_plan *t = bpv_arena_calloc(ar, 1, sizeof *t);
    if (!t) return NULL;
    t->f = bpv_arena_calloc(ar, (size_t)nop + 1, sizeof *t->f);
    t->b = bpv_arena_calloc(ar, (size_t)nop + 1, sizeof *t->b);
    t->zero = bpv_arena_calloc(ar, (size_t)ngrad + 1, sizeof(void *));
    t->negzero = bpv_arena_calloc(ar, (size_t)ngrad + 1, sizeof(void *));
    t->pgrad = bpv_arena_calloc(ar, (size_t)ngrad + 1, sizeof(void *));
    if (!t->f || !t->b || !t->zero || !t->negzero || !t->pgrad) return NULL;
    t->g = g;
    t->dt = g->dtype;
    t->f32 = g->f32;
    t->seed = on->grad;
    for (int i = 0; i < g->nnodes; i++) {
        bpv_node *n = &g->nodes[i];
        if (n->kind == BPV_NODE_OP) {
            fins *f = &t->f[t->nf++];
            f->op = n->op;
            f->c = bpv_elem_ctx(g, n);
            if (f->c.variant == BPV_VAR_POW_SCALAR && f->c.k == 2) f->op = PLAN_SQUARE;
            f->a = g->nodes[n->in[0]].val;
            f->b = n->nin > 1 ? g->nodes[n->in[1]].val : f->a;
            f->o = n->val;
        }
        if (!n->grad) continue;
        if (n->kind == BPV_NODE_PARAM) {
            if (i <= obj && n->needs_grad) t->pgrad[t->npgrad++] = n->grad;
        } else if (i > obj) {
            t->zero[t->nzero++] = n->grad;
        } else if (i < obj) {
            t->negzero[t->nnegzero++] = n->grad;
        }
    }
    /* backward: the op nodes from the objective down, as bpv_graph_backward */
    for (int i = obj; i >= 0; i--) {
        bpv_node *n = &g->nodes[i];
        if (n->kind != BPV_NODE_OP || !n->needs_grad || !n->grad) continue;
        bins *b = &t->b[t->nb];
        b->op = n->op;
        b->c = bpv_elem_ctx(g, n);
        if (b->c.variant == BPV_VAR_POW_SCALAR && b->c.k == 2) b->op = PLAN_SQUARE;
        b->a = g->nodes[n->in[0]].val;
        b->b = n->nin > 1 ? g->nodes[n->in[1]].val : b->a;
        b->y = n->val;
        b->g = n->grad;
        bool any = false;
        for (int k = 0; k < n->nin; k++)
            if (edge_live(g, n, k)) {
                b->e[k] = n->edge_grad[k];
                b->gi[k] = g->nodes[n->in[k]].grad;
                any = true;
            }
        if (any) t->nb++;
    }
    return t;
}

/* One forward and one backward loop per storage type T. */
#define RUN_FORWARD(NAME, T)                                                      \
    INLINE void NAME(bpv_dtype dt, const fins *f, int n) {                        \
        for (int i = 0; i < n; i++, f++) {                                        \
            const double a = *(const T *)f->a, b = *(const T *)f->b;              \
            double o;                                                             \
            switch ((int)f->op) {                                                 \
            case PLAN_SQUARE: o = bpv_ef_pow(dt, &square, a, b, false); break;    \
            BPV_ELEM_OPS(FWD_CASE)                                                \
            /* one element: torch's cascade sum of one term is +0.0 + a */        \
            case BPV_OP_SUM: o = R(0.0 + a); break;                               \
            case BPV_OP_MEAN: o = R(R(0.0 + a) / 1.0); break;                     \
            case BPV_OP_MSE: o = R(R(0.0 + bpv_mse_term(dt, a, b)) / 1.0); break; \
            case BPV_OP_T: o = a; break;                                          \
            default: o = NAN; break;                                              \
            }                                                                     \
            *(T *)f->o = (T)o;                                                    \
        }                                                                         \
    }
#define FWD_CASE(OP, fn, vf, arity) case OP: o = bpv_ef_##fn(dt, &f->c, a, b, false); break;
RUN_FORWARD(run_forward64, double)
RUN_FORWARD(run_forward32, float)

/* One live edge: record the chained partial and add it into the input's
 * grad (every param grad was zero, so contributions go straight in). */
#define PASS(T, k, expr)                                                          \
    do {                                                                          \
        if (b->e[k]) {                                                            \
            const double c_ = (expr);                                             \
            *(T *)b->e[k] = (T)c_;                                                \
            *(T *)b->gi[k] = (T)R(*(T *)b->gi[k] + c_);                           \
        }                                                                         \
    } while (0)

#define RUN_BACKWARD(NAME, T)                                                     \
    INLINE void NAME(bpv_dtype dt, const bins *b, int n) {                        \
        typedef T num_t; /* for BWD_CASE, expanded after T is gone */             \
        for (int i = 0; i < n; i++, b++) {                                        \
            const double a = *(const T *)b->a, bv = *(const T *)b->b;             \
            const double y = *(const T *)b->y, gv = *(const T *)b->g;             \
            switch ((int)b->op) {                                                 \
            case PLAN_SQUARE: PASS(T, 0, bpv_eb_pow(dt, &square, 0, a, bv, y, gv, false)); break; \
            BPV_ELEM_OPS(BWD_CASE)                                                \
            case BPV_OP_SUM:                                                      \
            case BPV_OP_MEAN: PASS(T, 0, bpv_reduce_share(dt, b->op, gv, 1)); break; \
            case BPV_OP_MSE:                                                      \
                PASS(T, 0, bpv_mse_grad(dt, 0, a, bv, gv, 1.0));                  \
                PASS(T, 1, bpv_mse_grad(dt, 1, a, bv, gv, 1.0));                  \
                break;                                                            \
            case BPV_OP_T: PASS(T, 0, gv); break;                                 \
            default: break;                                                       \
            }                                                                     \
        }                                                                         \
    }
#define BWD_CASE(OP, fn, vf, arity)                                               \
    case OP:                                                                      \
        PASS(num_t, 0, bpv_eb_##fn(dt, &b->c, 0, a, bv, y, gv, false));           \
        if ((arity) != 1) PASS(num_t, 1, bpv_eb_##fn(dt, &b->c, 1, a, bv, y, gv, false)); \
        break;
RUN_BACKWARD(run_backward64, double)
RUN_BACKWARD(run_backward32, float)

void bpv_scalar_forward(const bpv_scalar_plan *t) {
    if (t->f32) run_forward32(BPV_F32, t->f, t->nf);
    else if (t->dt == BPV_F32) run_forward64(BPV_F32, t->f, t->nf);
    else run_forward64(BPV_F64, t->f, t->nf);
}

void bpv_scalar_backward(const bpv_scalar_plan *t) {
    if (t->f32) {
        for (int i = 0; i < t->npgrad; i++)
            if (*(float *)t->pgrad[i] != 0) {
                bpv_graph_backward(t->g);
                return;
            }
        t->g->param_direct = true;
        for (int i = 0; i < t->nzero; i++) *(float *)t->zero[i] = 0.0f;
        for (int i = 0; i < t->nnegzero; i++) *(float *)t->negzero[i] = -0.0f;
        *(float *)t->seed = 1.0f;
        run_backward32(BPV_F32, t->b, t->nb);
        return;
    }
    for (int i = 0; i < t->npgrad; i++)
        if (*(double *)t->pgrad[i] != 0) {
            bpv_graph_backward(t->g);
            return;
        }
    t->g->param_direct = true;
    for (int i = 0; i < t->nzero; i++) *(double *)t->zero[i] = 0.0;
    for (int i = 0; i < t->nnegzero; i++) *(double *)t->negzero[i] = -0.0;
    *(double *)t->seed = 1.0;
    if (t->dt == BPV_F32) run_backward64(BPV_F32, t->b, t->nb);
    else run_backward64(BPV_F64, t->b, t->nb);
}
