/* The scalar fast path: see tape.h. Every formula below is engine.c's for
 * one element (same operations, same order, same R() roundings); keep the
 * two in step. Ops not listed here (matmul, softmax, custom fns, ...) make
 * bpv_stape_build return NULL, so they always take the general engine. */
#include <math.h>
#include <stdint.h>

#include "kernels.h"
#include "tape.h"
#include "vmath.h"

enum {
    S_ADD, S_SUB, S_MUL, S_DIV, S_RDIV, S_POW2, S_POWK, S_POW, S_NEG, S_SIGMOID, S_RELU,
    S_TANH, S_EXP, S_LOG, S_SQRT, S_ABS, S_COPY, S_SUM, S_MEAN, S_MSE
};

typedef struct fins {
    int op;
    const double *a, *b; /* b: the second input, or a when there is none */
    double *o;
} fins;

typedef struct bins {
    int op;
    const double *a, *b, *y, *g; /* inputs' values, output value and grad */
    double *e[2];                /* edge_grad per input; NULL when the edge is not live */
    double *gi[2];               /* the inputs' grads */
} bins;

struct bpv_stape {
    bpv_graph *g;
    bpv_dtype dt;
    fins *f;
    int nf;
    bins *b;
    int nb;
    double **zero, **negzero, **pgrad; /* grads reset each pass; param grads */
    int nzero, nnegzero, npgrad;
    double *seed;                      /* the objective's grad */
};

#define R(x) bpv_round(dt, (x))
#define INLINE static inline __attribute__((always_inline))

static bool edge_live(const bpv_graph *g, const bpv_node *n, int k) {
    const bpv_node *in = &g->nodes[n->in[k]];
    return n->kind == BPV_NODE_OP && n->needs_grad && n->grad && in->needs_grad &&
           in->grad && n->edge_grad[k];
}

/* The tape op of node n, or -1 when the tape cannot run it. */
static int tape_op(const bpv_graph *g, const bpv_node *n) {
    const bpv_node *A = n->nin > 0 ? &g->nodes[n->in[0]] : NULL;
    const bpv_node *B = n->nin > 1 ? &g->nodes[n->in[1]] : NULL;
    int want = bpv_op_table[n->op].arity;
    if (n->op <= BPV_OP_NONE || n->op >= BPV_OP_COUNT || n->nin != want) return -1;
    switch (n->op) {
    case BPV_OP_ADD: return S_ADD;
    case BPV_OP_SUB: return S_SUB;
    case BPV_OP_MUL: return S_MUL;
    case BPV_OP_DIV: return bpv_python_number(A) && B->kind != BPV_NODE_CONST ? S_RDIV : S_DIV;
    case BPV_OP_POW:
        if (!bpv_python_number(B)) return S_POW;
        return B->val[0] == 2 ? S_POW2 : S_POWK;
    case BPV_OP_NEG: return S_NEG;
    case BPV_OP_SIGMOID: return S_SIGMOID;
    case BPV_OP_RELU: return S_RELU;
    case BPV_OP_TANH: return S_TANH;
    case BPV_OP_EXP: return S_EXP;
    case BPV_OP_LOG: return S_LOG;
    case BPV_OP_SQRT: return S_SQRT;
    case BPV_OP_ABS: return S_ABS;
    case BPV_OP_IDENTITY:
    case BPV_OP_T: return S_COPY;
    case BPV_OP_SUM: return S_SUM;
    case BPV_OP_MEAN: return S_MEAN;
    case BPV_OP_MSE: return S_MSE;
    default: return -1;
    }
}

bpv_stape *bpv_stape_build(bpv_arena *ar, bpv_graph *g) {
    const int obj = g->objective;
    if (obj < 0 || obj >= g->nnodes) return NULL;
    const bpv_node *on = &g->nodes[obj];
    if (on->kind != BPV_NODE_OP || !on->grad) return NULL;
    int nop = 0, ngrad = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const bpv_node *n = &g->nodes[i];
        if (n->numel != 1 || !n->val) return NULL;
        if (n->kind == BPV_NODE_OP) {
            if (tape_op(g, n) < 0) return NULL;
            nop++;
        }
        if (n->grad) ngrad++;
    }
    bpv_stape *t = bpv_arena_calloc(ar, 1, sizeof *t);
    if (!t) return NULL;
    t->f = bpv_arena_calloc(ar, (size_t)nop + 1, sizeof *t->f);
    t->b = bpv_arena_calloc(ar, (size_t)nop + 1, sizeof *t->b);
    t->zero = bpv_arena_calloc(ar, (size_t)ngrad + 1, sizeof(double *));
    t->negzero = bpv_arena_calloc(ar, (size_t)ngrad + 1, sizeof(double *));
    t->pgrad = bpv_arena_calloc(ar, (size_t)ngrad + 1, sizeof(double *));
    if (!t->f || !t->b || !t->zero || !t->negzero || !t->pgrad) return NULL;
    t->g = g;
    t->dt = g->dtype;
    t->seed = on->grad;
    for (int i = 0; i < g->nnodes; i++) {
        bpv_node *n = &g->nodes[i];
        if (n->kind == BPV_NODE_OP) {
            fins *f = &t->f[t->nf++];
            f->op = tape_op(g, n);
            f->a = g->nodes[n->in[0]].val;
            f->b = n->nin > 1 ? g->nodes[n->in[1]].val : f->a;
            if (f->op == S_POWK && g->nodes[n->in[1]].literal)
                f->b = &g->nodes[n->in[1]].num; /* the Python number, unrounded */
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
        b->op = tape_op(g, n);
        b->a = g->nodes[n->in[0]].val;
        b->b = n->nin > 1 ? g->nodes[n->in[1]].val : b->a;
        if (b->op == S_POWK && g->nodes[n->in[1]].literal) b->b = &g->nodes[n->in[1]].num;
        b->y = n->val;
        b->g = n->grad;
        bool any = false;
        for (int k = 0; k < n->nin; k++) {
            /* engine.c computes only edge 1 of a reciprocal and edge 0 of a
             * scalar-exponent pow: the other input is a constant there */
            bool used = !((b->op == S_RDIV && k == 0) ||
                          ((b->op == S_POW2 || b->op == S_POWK) && k == 1));
            if (used && edge_live(g, n, k)) {
                b->e[k] = n->edge_grad[k];
                b->gi[k] = g->nodes[n->in[k]].grad;
                any = true;
            }
        }
        if (any) t->nb++;
    }
    return t;
}

INLINE void run_forward(bpv_dtype dt, const fins *f, int n) {
    for (int i = 0; i < n; i++, f++) {
        const double a = *f->a, b = *f->b;
        double o;
        switch (f->op) {
        case S_ADD: o = R(a + b); break;
        case S_SUB: o = R(a - b); break;
        case S_MUL: o = R(a * b); break;
        case S_DIV: o = R(a / b); break;
        case S_RDIV: o = R(R(1.0 / b) * a); break;
        case S_POW2: o = R(a * a); break;
        case S_POWK: o = bpv_pow_scalar(dt, a, b, false); break; /* one element: libm's */
        case S_POW: o = bpv_vmath_pow(dt, a, b, false, false); break;
        case S_NEG: o = -a; break;
        case S_SIGMOID: o = bpv_sigmoid(dt, a); break;
        case S_RELU: o = a < 0 ? 0.0 : a; break;
        case S_TANH: o = bpv_vmath1(BPV_VF_TANH, dt, a); break; /* as engine.c */
        case S_EXP: o = bpv_vmath1(BPV_VF_EXP, dt, a); break;
        case S_LOG: o = bpv_vmath1(BPV_VF_LOG, dt, a); break;
        case S_SQRT: o = R(sqrt(a)); break;
        case S_ABS: o = fabs(a); break;
        case S_COPY: o = a; break;
        case S_SUM:
        case S_MEAN: {
            double s = 0;
            s += a;
            s = R(s);
            o = f->op == S_MEAN ? R(s / 1.0) : s;
            break;
        }
        case S_MSE: {
            double d = R(a - b), s = 0;
            s += R(d * d);
            o = R(R(s) / 1.0);
            break;
        }
        default: o = NAN; break;
        }
        *f->o = o;
    }
}

/* One live edge: record the chained partial and add it into the input's
 * grad (every param grad was zero, so contributions go straight in). */
#define PASS(k, expr)                                                             \
    do {                                                                          \
        if (b->e[k]) {                                                            \
            const double c_ = (expr);                                             \
            *b->e[k] = c_;                                                        \
            *b->gi[k] = R(*b->gi[k] + c_);                                        \
        }                                                                         \
    } while (0)

INLINE void run_backward(bpv_dtype dt, const bins *b, int n) {
    for (int i = 0; i < n; i++, b++) {
        const double a = *b->a, bv = *b->b, y = *b->y, gv = *b->g;
        switch (b->op) {
        case S_ADD: PASS(0, gv); PASS(1, gv); break;
        case S_SUB: PASS(0, gv); PASS(1, -gv); break;
        case S_MUL: PASS(0, R(gv * bv)); PASS(1, R(gv * a)); break;
        case S_DIV:
            PASS(0, R(gv / bv));
            PASS(1, R(-gv * R(R(a / bv) / bv)));
            break;
        case S_RDIV: PASS(1, R(-R(gv * a) * R(R(1.0 / bv) * R(1.0 / bv)))); break;
        case S_POW2: PASS(0, R(gv * R(2.0 * a))); break; /* bpv_pow_scalar(a, 1) = a */
        case S_POWK: PASS(0, bv == 0 ? 0.0 : R(gv * bpv_pow_dbase(dt, a, bv, true, false))); break;
        case S_POW:
            PASS(0, bv == 0 ? 0.0 : R(gv * bpv_pow_dbase(dt, a, bv, false, false)));
            PASS(1, R(gv * bpv_pow_dexp(dt, a, bv, y)));
            break;
        case S_NEG: PASS(0, -gv); break;
        case S_SIGMOID: PASS(0, R(R(gv * R(1.0 - y)) * y)); break;
        case S_RELU: PASS(0, y <= 0 ? 0.0 : gv); break;
        case S_TANH: PASS(0, R(gv * R(fma(-y, y, 1.0)))); break;
        case S_EXP: PASS(0, R(gv * y)); break;
        case S_LOG: PASS(0, R(gv / a)); break;
        case S_SQRT: PASS(0, R(gv / R(2.0 * y))); break;
        case S_ABS: PASS(0, R(gv * bpv_sign(a))); break;
        case S_COPY:
        case S_SUM: PASS(0, gv); break;
        case S_MEAN: PASS(0, R(gv / 1.0)); break;
        case S_MSE:
            PASS(0, R(R(R(2.0 / 1.0) * R(a - bv)) * gv));
            PASS(1, R(R(R(2.0 / 1.0) * R(bv - a)) * gv));
            break;
        default: break;
        }
    }
}

void bpv_stape_forward(const bpv_stape *t) {
    if (t->dt == BPV_F32) run_forward(BPV_F32, t->f, t->nf);
    else run_forward(BPV_F64, t->f, t->nf);
}

void bpv_stape_backward(const bpv_stape *t) {
    for (int i = 0; i < t->npgrad; i++)
        if (*t->pgrad[i] != 0) {
            bpv_graph_backward(t->g);
            return;
        }
    t->g->param_direct = true;
    for (int i = 0; i < t->nzero; i++) *t->zero[i] = 0.0;
    for (int i = 0; i < t->nnegzero; i++) *t->negzero[i] = -0.0;
    *t->seed = 1.0;
    if (t->dt == BPV_F32) run_backward(BPV_F32, t->b, t->nb);
    else run_backward(BPV_F64, t->b, t->nb);
}
