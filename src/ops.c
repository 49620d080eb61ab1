/* The op table: one row per op, indexed by bpv_op, and the shape rules the
 * rows point to. A row names the kernels (engine.c) that compute the op;
 * an elementwise op's kernels are the engine's generic elementwise ones
 * over its element functions (op_elem.h). docs/architecture.md lists the
 * steps to add an op. */
#include <stdio.h>
#include <string.h>

#include "graph.h"

/* ---- kernels (engine_impl.h: over double and over float32 storage) ------- */
#define KERNELS(fam)                                                              \
    void bpv_k64_##fam##_fwd(struct bpv_graph *, struct bpv_node *);              \
    void bpv_k64_##fam##_bwd(struct bpv_graph *, struct bpv_node *);             \
    void bpv_k32_##fam##_fwd(struct bpv_graph *, struct bpv_node *);              \
    void bpv_k32_##fam##_bwd(struct bpv_graph *, struct bpv_node *)
KERNELS(elem);
KERNELS(matmul);
KERNELS(transpose);
KERNELS(sum);
KERNELS(loss);
KERNELS(softmax);
KERNELS(xent);
#undef KERNELS
void bpv_local_elem(const struct bpv_graph *, const struct bpv_node *, int, double *);
void bpv_local_sum(const struct bpv_graph *, const struct bpv_node *, int, double *);

#define K(fam)                                                                    \
    .fwd = bpv_k64_##fam##_fwd, .bwd = bpv_k64_##fam##_bwd, .fwd32 = bpv_k32_##fam##_fwd, \
    .bwd32 = bpv_k32_##fam##_bwd

/* ---- shape rules ------------------------------------------------------------ */

static const char *shp(const bpv_shape *s, char *buf, size_t n) { return bpv_shape_str(s, buf, n); }

/* Elementwise over broadcast inputs: "cannot add shapes [2] and [3]". */
static bool shape_bcast(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                        char *msg, size_t len) {
    *out = *in[0];
    char x[128], y[128];
    for (int k = 1; k < nin; k++) {
        if (bpv_shape_broadcast(out, in[k], out)) continue;
        const bpv_op_def *d = &bpv_ops[n->op];
        static const char *const verbs[BPV_OP_COUNT] = {
            [BPV_OP_ADD] = "add", [BPV_OP_SUB] = "subtract", [BPV_OP_MUL] = "multiply",
            [BPV_OP_DIV] = "divide"};
        if (verbs[n->op])
            snprintf(msg, len, "cannot %s shapes %s and %s", verbs[n->op],
                     shp(in[0], x, sizeof x), shp(in[k], y, sizeof y));
        else
            snprintf(msg, len, "%s(): cannot combine shapes %s and %s",
                     n->custom ? n->custom->name : d->call, shp(in[0], x, sizeof x),
                     shp(in[k], y, sizeof y));
        return false;
    }
    return true;
}

static bool shape_pow(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                      char *msg, size_t len) {
    (void)n, (void)nin;
    char x[128], y[128];
    if (bpv_shape_broadcast(in[0], in[1], out)) return true;
    snprintf(msg, len, "cannot raise shape %s to the power of shape %s", shp(in[0], x, sizeof x),
             shp(in[1], y, sizeof y));
    return false;
}

static bool shape_scalar(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                         char *msg, size_t len) {
    (void)n, (void)in, (void)nin, (void)msg, (void)len;
    *out = (bpv_shape){0};
    return true;
}

static bool shape_mse(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                      char *msg, size_t len) {
    (void)n, (void)nin;
    char x[128], y[128];
    bpv_shape b;
    *out = (bpv_shape){0};
    if (bpv_shape_broadcast(in[0], in[1], &b)) return true;
    snprintf(msg, len, "mse: cannot compare shapes %s and %s", shp(in[0], x, sizeof x),
             shp(in[1], y, sizeof y));
    return false;
}

static bool shape_bce(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                      char *msg, size_t len) {
    (void)n, (void)nin;
    char x[128], y[128];
    *out = (bpv_shape){0};
    if (bpv_shape_eq(in[0], in[1])) return true;
    snprintf(msg, len,
             "bce: the predictions have shape %s but the targets %s; they must be the same",
             shp(in[0], x, sizeof x), shp(in[1], y, sizeof y));
    return false;
}

static bool shape_matmul(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                         char *msg, size_t len) {
    (void)n, (void)nin;
    const bpv_shape *sa = in[0], *sb = in[1];
    char x[128], y[128];
    if (sa->rank == 0 || sb->rank == 0 || sa->rank > 2 || sb->rank > 2) {
        snprintf(msg, len, "matmul: %s @ %s — both operands must have 1 or 2 dimensions",
                 shp(sa, x, sizeof x), shp(sb, y, sizeof y));
        return false;
    }
    int64_t ka = sa->dim[sa->rank - 1], kb = sb->dim[0];
    if (ka != kb) {
        snprintf(msg, len, "matmul: %s @ %s — inner sizes %lld and %lld differ",
                 shp(sa, x, sizeof x), shp(sb, y, sizeof y), (long long)ka, (long long)kb);
        return false;
    }
    *out = (bpv_shape){0};
    if (sa->rank == 2) out->dim[out->rank++] = sa->dim[0];
    if (sb->rank == 2) out->dim[out->rank++] = sb->dim[1];
    return true;
}

static bool shape_transpose(const bpv_node *n, const bpv_shape *const *in, int nin,
                            bpv_shape *out, char *msg, size_t len) {
    (void)n, (void)nin;
    const bpv_shape *sa = in[0];
    char x[128];
    if (sa->rank > 2) {
        snprintf(msg, len, "T() transposes a matrix; this has shape %s", shp(sa, x, sizeof x));
        return false;
    }
    *out = *sa;
    if (sa->rank == 2) {
        out->dim[0] = sa->dim[1];
        out->dim[1] = sa->dim[0];
    }
    return true;
}

static bool shape_xent(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                       char *msg, size_t len) {
    (void)n, (void)nin;
    const bpv_shape *sa = in[0], *sb = in[1];
    char x[128], y[128], z[128];
    if (sa->rank != 1 && sa->rank != 2) {
        snprintf(msg, len, "cross_entropy: logits must have shape [C] or [N, C], got %s",
                 shp(sa, x, sizeof x));
        return false;
    }
    bpv_shape want = {0};
    if (sa->rank == 2) want = (bpv_shape){1, {sa->dim[0]}};
    if (!bpv_shape_eq(sb, &want)) {
        snprintf(msg, len,
                 "cross_entropy: logits of shape %s need class-index targets of shape %s, got %s",
                 shp(sa, x, sizeof x), shp(&want, z, sizeof z), shp(sb, y, sizeof y));
        return false;
    }
    *out = (bpv_shape){0};
    return true;
}

static bool shape_same(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                       char *msg, size_t len) {
    (void)n, (void)nin, (void)msg, (void)len;
    *out = *in[0];
    return true;
}

/* ---- variants ------------------------------------------------------------------ */

/* A const scalar operand stands for a Python number in the torch program:
 * `x ** 2` takes torch's scalar-exponent path and `2 / x` is computed by
 * Tensor.__rtruediv__ as x.reciprocal() * 2. */
static bool python_number(const bpv_node *x) { return x->kind == BPV_NODE_CONST && x->numel == 1; }

static int plan_div(const bpv_graph *g, const bpv_node *n) {
    const bpv_node *a = &g->nodes[n->in[0]], *b = &g->nodes[n->in[1]];
    return python_number(a) && b->kind != BPV_NODE_CONST ? BPV_VAR_RDIV : BPV_VAR_DEFAULT;
}

static int plan_pow(const bpv_graph *g, const bpv_node *n) {
    return python_number(&g->nodes[n->in[1]]) ? BPV_VAR_POW_SCALAR : BPV_VAR_DEFAULT;
}

/* ---- attributes ------------------------------------------------------------------ */

static const bpv_attr_def clamp_attrs[] = {
    {.name = "lo", .kind = BPV_ATTR_NUM, .required = true},
    {.name = "hi", .kind = BPV_ATTR_NUM, .required = true},
};

/* ---- the rows ------------------------------------------------------------------- */

/* elementwise rows: the engine's elementwise kernels over the op's element
 * functions (op_elem.h) */
#define ELEM(extra) .flags = BPV_OPF_ELEMWISE | (extra), K(elem), .local = bpv_local_elem
#define UNARY .min_in = 1, .max_in = 1, .shape = shape_same
#define BINARY .min_in = 2, .max_in = 2, .shape = shape_bcast
#define CALL(s) .fig_form = BPV_FIG_CALL, .fig_text = s, .fig_prec = BPV_PREC_ATOM, .fig_rneed = BPV_PREC_ADD

const bpv_op_def bpv_ops[BPV_OP_COUNT] = {
    [BPV_OP_NONE] = {.name = "none", .symbol = ""},
    [BPV_OP_ADD] = {.name = "add", .symbol = "+", BINARY, ELEM(BPV_OPF_CONST_LOCAL | BPV_OPF_LINEAR), .dlocal = {"1", "1"},
                    .fig_form = BPV_FIG_INFIX, .fig_text = " + ", .fig_prec = BPV_PREC_ADD,
                    .fig_rneed = BPV_PREC_ADD, .lang_infix = " + ", .lang_prec = BPV_PREC_ADD,
                    .note_infix = " + "},
    [BPV_OP_SUB] = {.name = "sub", .symbol = "−", BINARY, ELEM(BPV_OPF_CONST_LOCAL | BPV_OPF_LINEAR),
                    .dlocal = {"1", "−1"},
                    .fig_form = BPV_FIG_INFIX, .fig_text = " − ", .fig_prec = BPV_PREC_ADD,
                    .fig_rneed = BPV_PREC_MUL, .lang_infix = " - ", .lang_prec = BPV_PREC_ADD,
                    .note_infix = " − "},
    [BPV_OP_MUL] = {.name = "mul", .symbol = "×", BINARY, ELEM(0), .dlocal = {"b", "a"},
                    .fig_form = BPV_FIG_INFIX, .fig_text = "·", .fig_prec = BPV_PREC_MUL,
                    .fig_rneed = BPV_PREC_MUL, .lang_infix = " * ", .lang_prec = BPV_PREC_MUL,
                    .note_infix = " × "},
    [BPV_OP_DIV] = {.name = "div", .symbol = "÷", BINARY, ELEM(0), .dlocal = {"1/b", "−a/b²"},
                    .fig_form = BPV_FIG_INFIX, .fig_text = "/", .fig_prec = BPV_PREC_MUL,
                    .fig_rneed = BPV_PREC_NEG, .lang_infix = " / ", .lang_prec = BPV_PREC_MUL,
                    .note_infix = " ÷ ", .plan = plan_div},
    [BPV_OP_NEG] = {.name = "neg", .symbol = "−", UNARY, ELEM(BPV_OPF_CONST_LOCAL), .dlocal = {"−1", NULL},
                    .fig_form = BPV_FIG_PREFIX,
                    .fig_text = "−", .fig_prec = BPV_PREC_NEG, .fig_rneed = BPV_PREC_POW, .lang_infix = "-",
                    .lang_prec = BPV_PREC_NEG},
    [BPV_OP_POW] = {.name = "pow", .call = "pow", .symbol = "^", .min_in = 2, .max_in = 2,
                    .shape = shape_pow, ELEM(0), .dlocal = {"b·a^(b−1)", "out·ln a"},
                    .fig_form = BPV_FIG_POWER, .fig_prec = BPV_PREC_POW, .lang_infix = "^",
                    .lang_prec = BPV_PREC_POW, .note_infix = " ^ ", .plan = plan_pow},
    [BPV_OP_MATMUL] = {.name = "matmul", .symbol = "@", .min_in = 2, .max_in = 2,
                       .shape = shape_matmul, K(matmul),
                       .dlocal = {"∂/∂a: g @ bᵀ", "∂/∂b: aᵀ @ g"}, .fig_form = BPV_FIG_INFIX,
                       .fig_text = "", .fig_prec = BPV_PREC_MUL, .fig_rneed = BPV_PREC_NEG,
                       .lang_infix = " @ ", .lang_prec = BPV_PREC_MUL},
    [BPV_OP_SIGMOID] = {.name = "sigmoid", .call = "sigmoid", .symbol = "σ", UNARY, ELEM(0),
                        .dlocal = {"σ·(1−σ)", NULL}, CALL("σ")},
    [BPV_OP_RELU] = {.name = "relu", .call = "relu", .symbol = "ReLU", UNARY, ELEM(0),
                     .dlocal = {"1 if a>0 else 0", NULL}, CALL("relu")},
    [BPV_OP_TANH] = {.name = "tanh", .call = "tanh", .symbol = "tanh", UNARY, ELEM(0),
                     .dlocal = {"1−out²", NULL}, CALL("tanh")},
    [BPV_OP_EXP] = {.name = "exp", .call = "exp", .symbol = "exp", UNARY, ELEM(0),
                    .dlocal = {"out", NULL}, CALL("exp")},
    [BPV_OP_LOG] = {.name = "log", .call = "log", .symbol = "log", UNARY, ELEM(0),
                    .dlocal = {"1/a", NULL}, CALL("log")},
    [BPV_OP_SQRT] = {.name = "sqrt", .call = "sqrt", .symbol = "√", UNARY, ELEM(0),
                     .dlocal = {"1/(2·out)", NULL}, CALL("sqrt")},
    [BPV_OP_ABS] = {.name = "abs", .call = "abs", .symbol = "|·|", UNARY, ELEM(0),
                    .dlocal = {"sign(a)", NULL}, .fig_form = BPV_FIG_ENCLOSE, .fig_text = "|",
                    .fig_prec = BPV_PREC_ATOM, .fig_rneed = BPV_PREC_ADD},
    [BPV_OP_SUM] = {.name = "sum", .call = "sum", .symbol = "Σ", .min_in = 1, .max_in = 1,
                    .shape = shape_scalar, K(sum), .local = bpv_local_sum,
                    .flags = BPV_OPF_SUM_LOCAL | BPV_OPF_CONST_LOCAL, .dlocal = {"1", NULL},
                    CALL("sum")},
    [BPV_OP_MEAN] = {.name = "mean", .call = "mean", .symbol = "mean", .min_in = 1,
                     .max_in = 1, .shape = shape_scalar, K(sum), .local = bpv_local_sum,
                     .flags = BPV_OPF_SUM_LOCAL | BPV_OPF_CONST_LOCAL, .dlocal = {"1/N", NULL},
                     CALL("mean")},
    [BPV_OP_T] = {.name = "transpose", .call = "T", .symbol = "ᵀ", .min_in = 1, .max_in = 1,
                  .shape = shape_transpose, K(transpose), .dlocal = {"gᵀ", NULL},
                  .fig_form = BPV_FIG_POSTFIX, .fig_text = "ᵀ", .fig_prec = BPV_PREC_ATOM,
                  .fig_rneed = BPV_PREC_ATOM},
    [BPV_OP_MSE] = {.name = "mse", .call = "mse", .symbol = "MSE", .min_in = 2, .max_in = 2,
                    .shape = shape_mse, K(loss), .dlocal = {"2·(a−b)/N", "2·(b−a)/N"},
                    CALL("mse")},
    [BPV_OP_BCE] = {.name = "bce", .call = "bce", .symbol = "BCE", .min_in = 2, .max_in = 2,
                    .shape = shape_bce, K(loss),
                    .dlocal = {"(a−b)/(a·(1−a))/N", "−ln(a/(1−a))/N"}, CALL("bce")},
    [BPV_OP_SOFTMAX] = {.name = "softmax", .call = "softmax", .symbol = "softmax", UNARY,
                        K(softmax), .dlocal = {"out·(g − Σ g·out)", NULL}, CALL("softmax")},
    [BPV_OP_LOG_SOFTMAX] = {.name = "log_softmax", .call = "log_softmax",
                            .symbol = "log softmax", UNARY, K(softmax),
                            .dlocal = {"g − exp(out)·Σ g", NULL}, CALL("log_softmax")},
    [BPV_OP_CROSS_ENTROPY] = {.name = "cross_entropy", .call = "cross_entropy", .symbol = "CE",
                              .min_in = 2, .max_in = 2, .shape = shape_xent, K(xent),
                              .flags = BPV_OPF_CLASS_TARGETS,
                              .dlocal = {"(softmax(a) − onehot(b))/N", NULL},
                              CALL("cross_entropy")},
    [BPV_OP_IDENTITY] = {.name = "identity", .symbol = "=", UNARY, ELEM(BPV_OPF_CONST_LOCAL),
                         .dlocal = {"1", NULL},
                         .fig_form = BPV_FIG_SAME, .fig_prec = BPV_PREC_ATOM, .fig_rneed = BPV_PREC_ADD},
    /* the real symbol and partials are the fn's (bpv_node.custom) */
    [BPV_OP_CUSTOM] = {.name = "custom", .symbol = "f", .min_in = 1, .max_in = 2,
                       .shape = shape_bcast, ELEM(0), .dlocal = {"∂f/∂a", "∂f/∂b"}, CALL(NULL)},
    [BPV_OP_MAX] = {.name = "max", .call = "max", .symbol = "max", BINARY, ELEM(0),
                    .dlocal = {"1 if a>b, ½ if a=b, else 0", "1 if b>a, ½ if a=b, else 0"},
                    CALL("max")},
    [BPV_OP_MIN] = {.name = "min", .call = "min", .symbol = "min", BINARY, ELEM(0),
                    .dlocal = {"1 if a<b, ½ if a=b, else 0", "1 if b<a, ½ if a=b, else 0"},
                    CALL("min")},
    [BPV_OP_CLAMP] = {.name = "clamp", .call = "clamp", .symbol = "clamp", UNARY, ELEM(0),
                      .attrs = clamp_attrs, .nattrs = 2,
                      .dlocal = {"1 if lo≤a≤hi else 0", NULL}, CALL("clamp")},
};

/* A new op without a row would leave a NULL name for figures and JSON. */
static_assert(sizeof bpv_ops / sizeof bpv_ops[0] == BPV_OP_COUNT,
              "bpv_ops needs one row per bpv_op");

bpv_op bpv_op_by_call(const char *name) {
    for (int i = 1; i < BPV_OP_COUNT; i++)
        if (bpv_ops[i].call && strcmp(bpv_ops[i].call, name) == 0) return (bpv_op)i;
    return BPV_OP_NONE;
}
