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
KERNELS(sumdim);
KERNELS(conv);
KERNELS(pool);
KERNELS(reshape);
KERNELS(cat);
KERNELS(index);
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

/* ---- ops over a sample's dimensions ------------------------------------------
 * A batched node's first dimension is the batch: these count dimensions
 * from the one after it, and keep it in front. */

static int lead(const bpv_node *n) { return n->batched ? 1 : 0; }

/* A dimension D of a sample of rank r (-r..r-1, or -r-1..r when `extra`
 * counts a new one) to 0..; false when out of range. */
static bool sample_dim(double a, int r, bool extra, int *d) {
    int top = extra ? r + 1 : r;
    int v = (int)a;
    if (v < -top || v >= top) return false;
    *d = v < 0 ? v + top : v;
    return true;
}

/* The sample part of a shape, for messages: "[3, 4]". */
static const char *sample_str(const bpv_node *n, const bpv_shape *s, char *buf, size_t len) {
    bpv_shape t = *s;
    int k = lead(n) && t.rank > 0 ? 1 : 0;
    for (int i = k; i < t.rank; i++) t.dim[i - k] = t.dim[i];
    t.rank -= k;
    return shp(&t, buf, len);
}

/* The name the language calls an op by, for messages: sum for SUM_DIM. */
static const char *call_name(bpv_op op) {
    return bpv_ops[op].call ? bpv_ops[op].call : bpv_ops[op].fig_text ? bpv_ops[op].fig_text : bpv_ops[op].name;
}

static bool dim_range_msg(const bpv_node *n, const bpv_shape *s, int d, bool extra,
                          const char *what, char *msg, size_t len) {
    char x[128];
    int r = s->rank - lead(n) + (extra ? 1 : 0);
    if (r <= 0)
        snprintf(msg, len, "%s: a sample of shape %s has no dimension to %s", call_name(n->op),
                 sample_str(n, s, x, sizeof x), what);
    else
        snprintf(msg, len, "%s: dim %d is out of range for a sample of shape %s (0 to %d, or -%d to -1)",
                 call_name(n->op), d,
                 sample_str(n, s, x, sizeof x), r - 1, r);
    return false;
}

static bool shape_sumdim(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                         char *msg, size_t len) {
    (void)nin;
    const bpv_shape *a = in[0];
    int r = a->rank - lead(n), d;
    if (r <= 0 || !sample_dim(n->attr[0], r, false, &d))
        return dim_range_msg(n, a, (int)n->attr[0], false, "reduce", msg, len);
    d += lead(n);
    *out = (bpv_shape){0};
    for (int i = 0; i < a->rank; i++)
        if (i != d) out->dim[out->rank++] = a->dim[i];
    return true;
}

/* x [C,H,W] or [N,C,H,W], w [O,C,kH,kW], b [O]: torch's conv2d. */
static bool shape_conv(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                       char *msg, size_t len) {
    const bpv_shape *x = in[0], *w = in[1];
    char xs[128], ws[128], bs[128];
    const int64_t stride = (int64_t)n->attr[0], pad = (int64_t)n->attr[1];
    if (x->rank != 3 && x->rank != 4) {
        snprintf(msg, len, "conv2d: the input must be [C, H, W] or a batch [N, C, H, W], not %s",
                 shp(x, xs, sizeof xs));
        return false;
    }
    if (w->rank != 4) {
        snprintf(msg, len, "conv2d: the weight must be [out channels, in channels, kH, kW], not %s",
                 shp(w, ws, sizeof ws));
        return false;
    }
    const int c = x->rank - 3;
    const int64_t C = x->dim[c], H = x->dim[c + 1], W = x->dim[c + 2];
    if (w->dim[1] != C) {
        snprintf(msg, len,
                 "conv2d: the input %s has %lld channel%s but the weight %s takes %lld",
                 shp(x, xs, sizeof xs), (long long)C, C == 1 ? "" : "s", shp(w, ws, sizeof ws),
                 (long long)w->dim[1]);
        return false;
    }
    if (nin == 3 && !(in[2]->rank == 1 && in[2]->dim[0] == w->dim[0])) {
        snprintf(msg, len, "conv2d: the bias must be [%lld], one per output channel of %s, not %s",
                 (long long)w->dim[0], shp(w, ws, sizeof ws), shp(in[2], bs, sizeof bs));
        return false;
    }
    if (w->dim[2] > H + 2 * pad || w->dim[3] > W + 2 * pad) {
        snprintf(msg, len,
                 "conv2d: the %lld×%lld kernel of %s is larger than the input's %lld×%lld (%s, "
                 "padding %lld)",
                 (long long)w->dim[2], (long long)w->dim[3], shp(w, ws, sizeof ws), (long long)H,
                 (long long)W, shp(x, xs, sizeof xs), (long long)pad);
        return false;
    }
    *out = *x;
    out->dim[c] = w->dim[0];
    out->dim[c + 1] = (H + 2 * pad - w->dim[2]) / stride + 1;
    out->dim[c + 2] = (W + 2 * pad - w->dim[3]) / stride + 1;
    return true;
}

static bool shape_pool(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                       char *msg, size_t len) {
    (void)nin;
    const bpv_shape *x = in[0];
    char xs[128];
    const int64_t k = (int64_t)n->attr[0];
    if (x->rank != 3 && x->rank != 4) {
        snprintf(msg, len, "%s: the input must be [C, H, W] or a batch [N, C, H, W], not %s",
                 bpv_ops[n->op].call, shp(x, xs, sizeof xs));
        return false;
    }
    const int c = x->rank - 3;
    const int64_t st = isnan(n->attr[1]) ? k : (int64_t)n->attr[1], pad = (int64_t)n->attr[2];
    if (2 * pad > k) {
        snprintf(msg, len, "%s: padding %lld is more than half the kernel %lld",
                 bpv_ops[n->op].call, (long long)pad, (long long)k);
        return false;
    }
    if (k > x->dim[c + 1] + 2 * pad || k > x->dim[c + 2] + 2 * pad) {
        snprintf(msg, len, "%s: the kernel %lld is larger than the input's %lld×%lld (%s)",
                 bpv_ops[n->op].call, (long long)k, (long long)x->dim[c + 1],
                 (long long)x->dim[c + 2], shp(x, xs, sizeof xs));
        return false;
    }
    *out = *x;
    out->dim[c + 1] = (x->dim[c + 1] + 2 * pad - k) / st + 1;
    out->dim[c + 2] = (x->dim[c + 2] + 2 * pad - k) / st + 1;
    return true;
}

static bool shape_flatten(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                          char *msg, size_t len) {
    (void)nin, (void)msg, (void)len;
    const bpv_shape *x = in[0];
    *out = (bpv_shape){0};
    int k = lead(n) && x->rank > 0 ? 1 : 0;
    if (k) out->dim[out->rank++] = x->dim[0];
    int64_t el = 1;
    for (int i = k; i < x->rank; i++) el *= x->dim[i];
    out->dim[out->rank++] = el;
    return true;
}

static bool shape_reshape(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                          char *msg, size_t len) {
    (void)nin;
    const bpv_shape *x = in[0];
    char xs[128], ts[128];
    int k = lead(n) && x->rank > 0 ? 1 : 0;
    int64_t have = 1, want = 1;
    for (int i = k; i < x->rank; i++) have *= x->dim[i];
    bpv_shape t = {0};
    int infer = -1;
    for (int i = 0; i < BPV_MAX_RANK && !isnan(n->attr[i]); i++) {
        t.dim[t.rank] = (int64_t)n->attr[i];
        if (t.dim[t.rank] == -1) infer = t.rank;
        else want *= t.dim[t.rank];
        t.rank++;
    }
    if (infer >= 0 && want > 0 && have % want == 0) t.dim[infer] = have / want, want = have;
    if (t.rank + k > BPV_MAX_RANK) {
        snprintf(msg, len, "reshape: a batch of samples of shape %s would have more than %d dimensions",
                 shp(&t, ts, sizeof ts), BPV_MAX_RANK);
        return false;
    }
    if (want != have) {
        snprintf(msg, len, "reshape: a sample of shape %s has %lld elements, but the shape %s %s",
                 sample_str(n, x, xs, sizeof xs), (long long)have, shp(&t, ts, sizeof ts),
                 infer >= 0 ? "cannot be filled with them" : "holds a different number");
        return false;
    }
    *out = (bpv_shape){0};
    if (k) out->dim[out->rank++] = x->dim[0];
    for (int i = 0; i < t.rank; i++) out->dim[out->rank++] = t.dim[i];
    return true;
}

/* cat: the inputs agree but in dimension D; stack: they agree everywhere
 * and a new dimension D of size nin is made. */
static bool shape_cat(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                      char *msg, size_t len) {
    const bool stack = n->op == BPV_OP_STACK;
    const char *what = stack ? "stack" : "cat";
    const bpv_shape *a = in[0];
    char xs[128], ys[128];
    int r = a->rank - lead(n), d;
    if (!stack && r <= 0) {
        snprintf(msg, len, "cat: a sample of shape %s has no dimension to join along",
                 sample_str(n, a, xs, sizeof xs));
        return false;
    }
    if (!sample_dim(n->attr[0], r, stack, &d))
        return dim_range_msg(n, a, (int)n->attr[0], stack, "join along", msg, len);
    d += lead(n);
    for (int k = 1; k < nin; k++) {
        const bpv_shape *b = in[k];
        bool ok = b->rank == a->rank;
        for (int i = 0; ok && i < a->rank; i++)
            if (b->dim[i] != a->dim[i] && (stack || i != d)) ok = false;
        if (!ok) {
            if (stack)
                snprintf(msg, len, "stack: input %d has shape %s but input 1 has %s; stacked "
                         "tensors must have the same shape", k + 1, shp(b, xs, sizeof xs),
                         shp(a, ys, sizeof ys));
            else
                snprintf(msg, len, "cat: input %d has shape %s but input 1 has %s; they may "
                         "differ only in dimension %d of a sample", k + 1, shp(b, xs, sizeof xs),
                         shp(a, ys, sizeof ys), d - lead(n));
            return false;
        }
    }
    if (stack && a->rank >= BPV_MAX_RANK) {
        snprintf(msg, len, "stack: stacking tensors of shape %s would make more than %d "
                 "dimensions", shp(a, xs, sizeof xs), BPV_MAX_RANK);
        return false;
    }
    (void)what;
    *out = (bpv_shape){0};
    for (int i = 0; i < a->rank + (stack ? 1 : 0); i++) {
        if (stack)
            out->dim[i] = i == d ? nin : a->dim[i < d ? i : i - 1];
        else if (i != d)
            out->dim[i] = a->dim[i];
        else
            for (int k = 0; k < nin; k++) out->dim[i] += in[k]->dim[i];
    }
    out->rank = a->rank + (stack ? 1 : 0);
    return true;
}

static bool shape_index(const bpv_node *n, const bpv_shape *const *in, int nin, bpv_shape *out,
                        char *msg, size_t len) {
    (void)nin;
    const bpv_shape *a = in[0];
    char xs[128];
    const int d = lead(n);
    const int64_t i = (int64_t)n->attr[0];
    if (a->rank - d <= 0) {
        snprintf(msg, len, "a sample of shape %s has no dimension to index", sample_str(n, a, xs, sizeof xs));
        return false;
    }
    const int64_t size = a->dim[d];
    if (i < -size || i >= size) {
        snprintf(msg, len,
                 "index %lld is out of range for the first dimension of a sample of shape %s (0 "
                 "to %lld)",
                 (long long)i, sample_str(n, a, xs, sizeof xs), (long long)(size - 1));
        return false;
    }
    *out = (bpv_shape){0};
    for (int k = 0; k < a->rank; k++)
        if (k != d) out->dim[out->rank++] = a->dim[k];
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

static const bpv_attr_def dim_attrs[] = {
    {.name = "dim", .kind = BPV_ATTR_INT, .required = true, .lo = -BPV_MAX_RANK, .hi = BPV_MAX_RANK},
};
static const bpv_attr_def cat_attrs[] = {
    {.name = "dim", .kind = BPV_ATTR_INT, .dflt = 0, .lo = -BPV_MAX_RANK, .hi = BPV_MAX_RANK},
};
static const bpv_attr_def conv_attrs[] = {
    {.name = "stride", .kind = BPV_ATTR_INT, .dflt = 1, .lo = 1, .hi = 1 << 20},
    {.name = "padding", .kind = BPV_ATTR_INT, .dflt = 0, .lo = 0, .hi = 1 << 20},
};
/* stride: NAN (not given) is the kernel, as torch's stride=None */
static const bpv_attr_def pool_attrs[] = {
    {.name = "kernel", .kind = BPV_ATTR_INT, .required = true, .lo = 1, .hi = 1 << 20},
    {.name = "stride", .kind = BPV_ATTR_INT, .dflt = NAN, .lo = 1, .hi = 1 << 20},
    {.name = "padding", .kind = BPV_ATTR_INT, .dflt = 0, .lo = 0, .hi = 1 << 20},
};
/* reshape(x, [d0, ...]): the list fills d0..; -1 once, for a size inferred */
static const bpv_attr_def shape_attrs[] = {
    {.name = "d0", .kind = BPV_ATTR_INT, .required = true, .lo = -1, .hi = 1e12},
    {.name = "d1", .kind = BPV_ATTR_INT, .dflt = NAN, .lo = -1, .hi = 1e12},
    {.name = "d2", .kind = BPV_ATTR_INT, .dflt = NAN, .lo = -1, .hi = 1e12},
    {.name = "d3", .kind = BPV_ATTR_INT, .dflt = NAN, .lo = -1, .hi = 1e12},
};
static_assert(sizeof shape_attrs / sizeof shape_attrs[0] == BPV_MAX_RANK,
              "reshape takes one attribute per dimension");
static const bpv_attr_def index_attrs[] = {
    {.name = "index", .kind = BPV_ATTR_INT, .required = true, .lo = -1e12, .hi = 1e12},
};

/* ---- the rows ------------------------------------------------------------------- */

/* elementwise rows: the engine's elementwise kernels over the op's element
 * functions (op_elem.h) */
#define ELEM(extra) .flags = BPV_OPF_ELEMWISE | (extra), K(elem), .local = bpv_local_elem
#define UNARY .min_in = 1, .max_in = 1, .shape = shape_same
#define BINARY .min_in = 2, .max_in = 2, .shape = shape_bcast
#define UNARY1 .min_in = 1, .max_in = 1
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
    [BPV_OP_SUM] = {.name = "sum", .call = "sum", .with_attrs = BPV_OP_SUM_DIM, .symbol = "Σ", .min_in = 1, .max_in = 1,
                    .shape = shape_scalar, K(sum), .local = bpv_local_sum,
                    .flags = BPV_OPF_SUM_LOCAL | BPV_OPF_CONST_LOCAL, .dlocal = {"1", NULL},
                    CALL("sum")},
    [BPV_OP_MEAN] = {.name = "mean", .call = "mean", .with_attrs = BPV_OP_MEAN_DIM, .symbol = "mean", .min_in = 1,
                     .max_in = 1, .shape = shape_scalar, K(sum), .local = bpv_local_sum,
                     .flags = BPV_OPF_SUM_LOCAL | BPV_OPF_CONST_LOCAL, .dlocal = {"1/N", NULL},
                     CALL("mean")},
    [BPV_OP_T] = {.name = "transpose", .call = "T", .symbol = "ᵀ", .min_in = 1, .max_in = 1,
                  .shape = shape_transpose, K(transpose), .dlocal = {"gᵀ", NULL},
                  .flags = BPV_OPF_UNBATCH,
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
    /* sum(a, dim=D): the calls of sum and mean given a dim */
    [BPV_OP_SUM_DIM] = {.name = "sum_dim", .symbol = "Σ", UNARY1, .shape = shape_sumdim,
                        K(sumdim), .attrs = dim_attrs, .nattrs = 1, .dlocal = {"1", NULL},
                        CALL("sum")},
    [BPV_OP_MEAN_DIM] = {.name = "mean_dim", .symbol = "mean", UNARY1, .shape = shape_sumdim,
                         K(sumdim), .attrs = dim_attrs, .nattrs = 1, .dlocal = {"1/N", NULL},
                         CALL("mean")},
    [BPV_OP_CONV2D] = {.name = "conv2d", .call = "conv2d", .symbol = "conv", .min_in = 2,
                       .max_in = 3, .shape = shape_conv, K(conv), .attrs = conv_attrs,
                       .nattrs = 2, .dlocal = {"∂/∂x: g ⋆ᵀ w", "∂/∂w: g ⋆ x"},
                       CALL("conv")},
    [BPV_OP_MAX_POOL2D] = {.name = "max_pool2d", .call = "max_pool2d", .symbol = "max pool",
                           UNARY1, .shape = shape_pool, K(pool), .attrs = pool_attrs,
                           .nattrs = 3, .dlocal = {"1 at each window's first maximum, else 0", NULL},
                           CALL("maxpool")},
    [BPV_OP_AVG_POOL2D] = {.name = "avg_pool2d", .call = "avg_pool2d", .symbol = "avg pool",
                           UNARY1, .shape = shape_pool, K(pool), .attrs = pool_attrs,
                           .nattrs = 3, .dlocal = {"1/K²", NULL}, CALL("avgpool")},
    [BPV_OP_FLATTEN] = {.name = "flatten", .call = "flatten", .symbol = "flatten", UNARY1,
                        .shape = shape_flatten, K(reshape), .dlocal = {"1", NULL},
                        CALL("flatten")},
    [BPV_OP_RESHAPE] = {.name = "reshape", .call = "reshape", .symbol = "reshape", UNARY1,
                        .shape = shape_reshape, K(reshape), .attrs = shape_attrs,
                        .nattrs = BPV_MAX_RANK, .flags = BPV_OPF_SHAPE_ARG,
                        .dlocal = {"1", NULL}, CALL("reshape")},
    [BPV_OP_CAT] = {.name = "cat", .call = "cat", .symbol = "cat", .min_in = 1, .max_in = -1,
                    .shape = shape_cat, K(cat), .attrs = cat_attrs, .nattrs = 1,
                    .dlocal = {"1 on its slice", "1 on its slice"},
                    CALL("cat")},
    [BPV_OP_STACK] = {.name = "stack", .call = "stack", .symbol = "stack", .min_in = 1,
                      .max_in = -1, .shape = shape_cat, K(cat), .attrs = cat_attrs, .nattrs = 1,
                      .dlocal = {"1 on its slice", "1 on its slice"},
                      CALL("stack")},
    [BPV_OP_INDEX] = {.name = "index", .symbol = "[i]", UNARY1, .shape = shape_index,
                      K(index), .attrs = index_attrs, .nattrs = 1,
                      .dlocal = {"1 at the index, else 0", NULL},
                      .fig_form = BPV_FIG_POSTFIX, .fig_text = "[i]", .fig_prec = BPV_PREC_ATOM,
                      .fig_rneed = BPV_PREC_ATOM},
};

/* A new op without a row would leave a NULL name for figures and JSON. */
static_assert(sizeof bpv_ops / sizeof bpv_ops[0] == BPV_OP_COUNT,
              "bpv_ops needs one row per bpv_op");

bpv_op bpv_op_by_call(const char *name) {
    for (int i = 1; i < BPV_OP_COUNT; i++)
        if (bpv_ops[i].call && strcmp(bpv_ops[i].call, name) == 0) return (bpv_op)i;
    return BPV_OP_NONE;
}
