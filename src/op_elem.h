/* Element functions of the elementwise ops: each op's forward and its
 * backward for input k, on one element, rounded with R() exactly where
 * PyTorch's kernel rounds. They are written once and run everywhere: the
 * engine's tensor loops (engine.c), the scalar fast path (scalar.c), a
 * custom fn's program (fnprog.c) and the local partials snapshots show,
 * which are the backward with an upstream gradient of one (R(1 * x) is x).
 *
 * Signatures: FWD(dt, c, a, b, vec) and BWD(dt, c, k, a, b, y, g, vec) with
 * a, b the inputs' elements (b unused by unary ops), y the output, g the
 * upstream gradient and vec whether the element lies in a whole vector
 * block of its tensor (where torch's sigmoid and pow take SLEEF's path). */
#ifndef BPV_OP_ELEM_H
#define BPV_OP_ELEM_H

#include <math.h>

#include "graph.h"
#include "vmath.h"

/* What an element function needs of its node besides the numbers. */
typedef struct bpv_ectx {
    int variant;              /* BPV_VAR_*, chosen by the op's plan */
    double k;                 /* BPV_VAR_POW_SCALAR: the exponent as torch sees it */
    const bpv_custom *fn;     /* BPV_OP_CUSTOM: the fn */
    const double *attr;       /* the node's attributes (bpv_node.attr) */
    /* torch's AVX2 kernels are the ones followed (bpv_vmath_sleef): their
     * fused multiply-adds; else the portable kernels' two roundings */
    bool fused;
} bpv_ectx;

/* What an op's element functions read of node n: its variant, fn and
 * attributes, and for a Python-number power the exponent as torch sees it
 * (a literal: the number as written, unrounded). One place for the engine's
 * kernels and the scalar path. */
static inline bpv_ectx bpv_elem_ctx(const bpv_graph *g, const bpv_node *n) {
    bpv_ectx c = {n->variant, 0.0, n->custom, n->attr, bpv_vmath_sleef()};
    if (n->variant == BPV_VAR_POW_SCALAR) {
        const bpv_node *e = &g->nodes[n->in[1]];
        c.k = e->literal ? e->num : bpv_node_value(g, e, 0);
    }
    return c;
}

#define R(x) bpv_round(dt, (x))
#define EFWD(op)                                                                  \
    static inline __attribute__((always_inline)) double bpv_ef_##op(           \
        bpv_dtype dt, const bpv_ectx *c, double a, double b, bool vec)
#define EBWD(op)                                                                  \
    static inline __attribute__((always_inline)) double bpv_eb_##op(           \
        bpv_dtype dt, const bpv_ectx *c, int k, double a, double b, double y, double g,    \
        bool vec)
#define UNUSED_F (void)dt, (void)c, (void)a, (void)b, (void)vec
#define UNUSED_B (void)dt, (void)c, (void)k, (void)a, (void)b, (void)y, (void)g, (void)vec

/* ---- torch's pow --------------------------------------------------------- */

/* torch.pow(tensor, python_number): the CPU kernel special-cases these
 * exponents; others go through its pow kernel (vmath.c). */
static inline double bpv_pow_scalar(bpv_dtype dt, double a, double e, bool vec) {
    if (e == 0) return 1.0;
    if (e == 1) return a;
    if (e == 2) return R(a * a);
    if (e == 3) return R(R(a * a) * a);
    if (e == -2) return R(1.0 / R(a * a));
    if (e == 0.5) return R(sqrt(a));
    if (e == -0.5) return R(1.0 / R(sqrt(a)));
    if (e == -1) return R(1.0 / a);
    return bpv_vmath_pow(dt, a, e, vec, true);
}

/* d(a ** b)/da with grad 1, as torch's pow backward computes it,
 * b * a ** (b - 1); scalar: b is a Python number, in double for b - 1 and
 * rounded to the dtype where it multiplies. */
static inline double bpv_pow_dbase(bpv_dtype dt, double a, double b, bool scalar, bool vec) {
    if (b == 0) return 0.0;
    double p = scalar ? bpv_pow_scalar(dt, a, b - 1.0, vec)
                      : bpv_vmath_pow(dt, a, R(b - 1.0), vec, false);
    return R(R(b) * p);
}

/* d(a ** b)/db with grad 1: y log(a), 0 where a is 0 (torch masks it); the
 * log is torch's tensor log (vmath.c). */
static inline double bpv_pow_dexp(bpv_dtype dt, double a, double b, double y) {
    if (a == 0 && b >= 0) return 0.0;
    return R(y * bpv_vmath1(BPV_VF_LOG, dt, a));
}

/* sign as torch's sgn: 0 for ±0 and NaN. */
static inline double bpv_sign(double a) { return (double)(a > 0) - (double)(a < 0); }

/* a custom fn's program on one element (fnprog.c) */
double bpv_fnprog_eval(bpv_dtype dt, const bpv_fnprog *p, double a, double b, double out,
                       bool vec);

/* ---- the ops ---------------------------------------------------------------- */

EFWD(add) { UNUSED_F; return R(a + b); }
EBWD(add) { UNUSED_B; return g; }
EFWD(sub) { UNUSED_F; return R(a - b); }
EBWD(sub) { UNUSED_B; return k ? -g : g; }
EFWD(mul) { UNUSED_F; return R(a * b); }
EBWD(mul) { UNUSED_B; return R(g * (k ? a : b)); }

EFWD(div) {
    UNUSED_F;
    return c->variant == BPV_VAR_RDIV ? R(R(1.0 / b) * a) : R(a / b);
}
EBWD(div) {
    UNUSED_B;
    if (c->variant == BPV_VAR_RDIV) /* y = reciprocal(b) * a: mul backward, then -g * (r * r) */
        return k ? R(-R(g * a) * R(R(1.0 / b) * R(1.0 / b))) : R(g * R(1.0 / b));
    return k ? R(-g * R(R(a / b) / b)) : R(g / b); /* torch: -grad * ((a / b) / b) */
}

/* torch's pow kernel: whole vector blocks, then the rest (vmath.c) */
EFWD(pow) {
    UNUSED_F;
    if (c->variant == BPV_VAR_POW_SCALAR) return bpv_pow_scalar(dt, a, c->k, vec);
    return bpv_vmath_pow(dt, a, b, vec, false);
}
EBWD(pow) {
    UNUSED_B;
    if (k == 1) return R(g * bpv_pow_dexp(dt, a, b, y)); /* pow_backward_exponent */
    /* pow_backward: exp == 0 gives zeros, else grad * (exp * a.pow(exp - 1)) */
    if (c->variant == BPV_VAR_POW_SCALAR)
        return c->k == 0 ? 0.0 : R(g * bpv_pow_dbase(dt, a, c->k, true, vec));
    return b == 0 ? 0.0 : R(g * bpv_pow_dbase(dt, a, b, false, vec));
}

EFWD(neg) { UNUSED_F; return -a; }
EBWD(neg) { UNUSED_B; return -g; }
EFWD(identity) { UNUSED_F; return a; }
EBWD(identity) { UNUSED_B; return g; }

/* torch's own kernels, SLEEF's vector functions included (vmath.c); the
 * engine runs tanh, exp, log and sigmoid over whole tensors at once
 * (bpv_vmath), which is these element by element */
EFWD(sigmoid) { UNUSED_F; return bpv_vmath_sigmoid(dt, a, vec); }
/* sigmoid_backward: grad * (1 - y) * y, left to right */
EBWD(sigmoid) { UNUSED_B; return R(R(g * R(1.0 - y)) * y); }
EFWD(tanh) { UNUSED_F; return bpv_vmath1(BPV_VF_TANH, dt, a); }
/* tanh_backward: grad * (1 - y*y); torch's build fuses 1 - y*y into an
 * FMA. A float's square is exact in double, so under f32 1.0 - y*y rounds
 * once just as the FMA does, without a libm call per element. */
/* torch's AVX2 kernel fuses 1 - y*y (one rounding: y*y of two floats is
 * exact in double); its portable one rounds y*y first */
EBWD(tanh) {
    UNUSED_B;
    if (!c->fused) return R(g * R(1.0 - R(y * y)));
    return dt == BPV_F32 ? R(g * R(1.0 - y * y)) : R(g * R(fma(-y, y, 1.0)));
}
EFWD(exp) { UNUSED_F; return bpv_vmath1(BPV_VF_EXP, dt, a); }
EBWD(exp) { UNUSED_B; return R(g * y); }
EFWD(log) { UNUSED_F; return bpv_vmath1(BPV_VF_LOG, dt, a); }
EBWD(log) { UNUSED_B; return R(g / a); }

/* torch relu keeps -0.0 and NaN: a < 0 ? 0 : a */
EFWD(relu) { UNUSED_F; return a < 0 ? 0.0 : a; }
/* threshold_backward: y <= 0 ? 0 : grad (NaN passes the gradient) */
EBWD(relu) { UNUSED_B; return y <= 0 ? 0.0 : g; }
EFWD(sqrt) { UNUSED_F; return R(sqrt(a)); }
EBWD(sqrt) { UNUSED_B; return R(g / R(2.0 * y)); }
EFWD(abs) { UNUSED_F; return fabs(a); }
EBWD(abs) { UNUSED_B; return R(g * bpv_sign(a)); }

/* torch.maximum / torch.minimum propagate NaN; at a tie each input takes
 * half the gradient: where(a == b, grad / 2, grad), zeroed where the other
 * input wins. Equal values of opposite sign (0 and -0) give b in torch's
 * vector blocks (maxps) and a in the rest (std::max). */
EFWD(max) {
    UNUSED_F;
    if (a != a || b != b) return a + b;
    return vec ? (a > b ? a : b) : (a < b ? b : a);
}
EBWD(max) {
    UNUSED_B;
    const double x = k ? b : a, o = k ? a : b;
    return x < o ? 0.0 : x == o ? R(g / 2.0) : g;
}
EFWD(min) {
    UNUSED_F;
    if (a != a || b != b) return a + b;
    return vec ? (a < b ? a : b) : (b < a ? b : a);
}
EBWD(min) {
    UNUSED_B;
    const double x = k ? b : a, o = k ? a : b;
    return x > o ? 0.0 : x == o ? R(g / 2.0) : g;
}

/* torch.clamp(a, lo, hi): min(max(a, lo), hi) with the bounds rounded to
 * the dtype, a kept at a tie; NaN stays NaN. Its gradient passes where
 * lo <= a <= hi (clamp_backward), so not at NaN. */
EFWD(clamp) {
    UNUSED_F;
    if (a != a) return a;
    const double lo = R(c->attr[0]), hi = R(c->attr[1]), t = a < lo ? lo : a;
    return hi < t ? hi : t;
}
EBWD(clamp) {
    UNUSED_B;
    return a >= R(c->attr[0]) && a <= R(c->attr[1]) ? g : 0.0;
}

/* the user's body, and the user's partial times the incoming gradient, as
 * a torch autograd.Function's backward would write it */
EFWD(custom) { UNUSED_F; return bpv_fnprog_eval(dt, &c->fn->body, a, b, 0, vec); }
EBWD(custom) {
    UNUSED_B;
    return R(g * bpv_fnprog_eval(dt, &c->fn->grad[k], a, b, y, vec));
}

/* ---- pieces of other ops that the scalar fast path also runs --------------- */

/* A reduction's share for each input element: sum passes the gradient,
 * mean divides it by the count. Its local partial is this with g = 1. */
static inline double bpv_reduce_share(bpv_dtype dt, bpv_op op, double g, int64_t count) {
    return op == BPV_OP_MEAN ? R(g / (double)count) : g;
}

/* One element of mse's sum: (a - b)^2 */
static inline double bpv_mse_term(bpv_dtype dt, double a, double b) {
    const double d = R(a - b);
    return R(d * d);
}

/* mse_loss_backward for input k, one element: (2/N) * (x - t) * grad */
static inline double bpv_mse_grad(bpv_dtype dt, int k, double a, double b, double g, double n) {
    return R(R(R(2.0 / n) * R(k ? b - a : a - b)) * g);
}

/* Every elementwise op: X(OP, name, vfn, arity) with vfn the whole-tensor
 * vector function the engine's forward runs instead of the element
 * function (-1: none) and arity its inputs (0: one or two). The engine's
 * elementwise kernels, the scalar fast path and fn programs switch over
 * this list, so an op added here is everywhere. */
#define BPV_ELEM_OPS(X)                                                           \
    X(BPV_OP_ADD, add, -1, 2)                                                        \
    X(BPV_OP_SUB, sub, -1, 2)                                                        \
    X(BPV_OP_MUL, mul, -1, 2)                                                        \
    X(BPV_OP_DIV, div, -1, 2)                                                        \
    X(BPV_OP_POW, pow, -1, 2)                                                        \
    X(BPV_OP_NEG, neg, -1, 1)                                                        \
    X(BPV_OP_IDENTITY, identity, -1, 1)                                              \
    X(BPV_OP_SIGMOID, sigmoid, BPV_VF_SIGMOID, 1)                                    \
    X(BPV_OP_TANH, tanh, BPV_VF_TANH, 1)                                             \
    X(BPV_OP_EXP, exp, BPV_VF_EXP, 1)                                                \
    X(BPV_OP_LOG, log, BPV_VF_LOG, 1)                                                \
    X(BPV_OP_RELU, relu, -1, 1)                                                      \
    X(BPV_OP_SQRT, sqrt, -1, 1)                                                      \
    X(BPV_OP_ABS, abs, -1, 1)                                                        \
    X(BPV_OP_MAX, max, -1, 2)                                                        \
    X(BPV_OP_MIN, min, -1, 2)                                                        \
    X(BPV_OP_CLAMP, clamp, -1, 1)                                                    \
    X(BPV_OP_CUSTOM, custom, -1, 0)

#undef UNUSED_F
#undef UNUSED_B
#undef EFWD
#undef EBWD
#undef R

#endif
