/* Inspecting a failing backward pass, on the snapshots of its steps: the
 * gradient check, the origin of the first NaN or infinity, and the lines
 * that report them (the `bpviz check` command, cmd_check.c, and `bpviz
 * --gradcheck` print them).
 *
 * Gradient check. For the step of a snapshot, every edge's elementwise
 * local partial is compared with a central difference of its op's forward,
 * and every parameter's gradient with a central difference of the whole
 * forward. Both sides are evaluated in double precision from the step's
 * float32 inputs (a copy of the graph with dtype f64 runs the engine's own
 * kernels and backward), so float32 rounding is not mistaken for a wrong
 * derivative; the number shown as "analytic" is the engine's float32 one.
 * A point where the one-sided differences disagree is a kink (relu or abs
 * at 0) and is skipped, as is anything not finite. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "figure.h"

static bool elementwise(const bpv_snap_node *n) {
    return !n->recorded && (bpv_ops[n->op].flags & BPV_OPF_ELEMWISE);
}

/* Flat index into `in` of element i of `out`, under broadcasting. */
static int64_t bcast_index(const bpv_shape *out, const bpv_shape *in, int64_t i) {
    int64_t idx = 0, stride = 1;
    for (int d = out->rank - 1; d >= 0; d--) {
        int64_t c = i % out->dim[d];
        i /= out->dim[d];
        int sd = d - (out->rank - in->rank);
        if (sd < 0) continue;
        if (in->dim[sd] != 1) idx += c * stride;
        stride *= in->dim[sd];
    }
    return idx;
}

/* The origin note's numbers: --precision significant digits (the
 * messages and the JSON trace's note: the default 4). */
static void put_num(bpv_buf *b, double v, int prec) { bpv_fig_number(b, v, prec); }

/* "log(−0.5) = NaN", "3.4×10³⁸ × 10 = ∞": element j of op node i. */
static void op_note(const bpv_snapshot *s, int i, int64_t j, int prec, bpv_buf *b) {
    const bpv_snap_node *n = &s->nodes[i];
    const char *name = n->fn ? n->fn : bpv_ops[n->op].name;
    if (!elementwise(n)) {
        bpv_buf_printf(b, "%s(…) = ", name);
        put_num(b, n->value[j], prec);
        return;
    }
    double v[2] = {0, 0};
    for (int k = 0; k < n->nin && k < 2; k++) {
        const bpv_snap_node *in = &s->nodes[n->in[k]];
        v[k] = in->value[bcast_index(&n->shape, &in->shape, j)];
    }
    const char *infix = bpv_ops[n->op].note_infix;
    if (infix) {
        put_num(b, v[0], prec);
        bpv_buf_puts(b, infix);
        put_num(b, v[1], prec);
    } else if (n->op == BPV_OP_NEG) {
        bpv_buf_puts(b, "−(");
        put_num(b, v[0], prec);
        bpv_buf_putc(b, ')');
    } else {
        bpv_buf_printf(b, "%s(", name);
        for (int k = 0; k < n->nin && k < 2; k++) {
            if (k) bpv_buf_puts(b, ", ");
            put_num(b, v[k], prec);
        }
        bpv_buf_putc(b, ')');
    }
    bpv_buf_puts(b, " = ");
    put_num(b, n->value[j], prec);
}

void bpv_inspect_origin_note(const bpv_snapshot *s, int prec, bpv_buf *b) {
    if (!s || !b || !s->nf_pass || s->nf_node < 0 || s->nf_node >= s->nnodes) return;
    const bpv_snap_node *n = &s->nodes[s->nf_node];
    if (s->nf_pass == 1) {
        int64_t j = bpv_first_nonfinite(n->value, n->numel);
        if (j < 0) return;
        if (n->kind == BPV_NODE_OP) {
            op_note(s, s->nf_node, j, prec, b);
        } else {
            bpv_buf_printf(b, "%s = ", n->name ? n->name : "const");
            put_num(b, n->value[j], prec);
        }
    } else if (s->nf_edge >= 0 && s->nf_edge < s->nedges) {
        const bpv_snap_edge *ed = &s->edges[s->nf_edge];
        const bpv_snap_node *to = n, *from = &s->nodes[ed->from];
        int64_t j = bpv_first_nonfinite(ed->chained, from->numel);
        if (j < 0) return;
        const char *name = to->fn ? to->fn : bpv_ops[to->op].name;
        bpv_buf_printf(b, "%s backward: ", name);
        int64_t o = to->numel == from->numel ? j : 0;
        if (to->grad) {
            bpv_buf_puts(b, "upstream ");
            put_num(b, to->grad[o], prec);
        }
        if (ed->local) {
            bpv_buf_puts(b, " × local ");
            put_num(b, ed->local[ed->nlocal > o ? o : 0], prec);
        }
        bpv_buf_puts(b, " at ");
        put_num(b, from->value[j], prec);
        bpv_buf_puts(b, " = ");
        put_num(b, ed->chained[j], prec);
    } else {
        /* a parameter whose finite contributions add up past the float range */
        int64_t j = bpv_first_nonfinite(n->grad, n->numel);
        if (j < 0) return;
        bpv_buf_printf(b, "∂/∂%s adds up to ", n->name ? n->name : "const");
        put_num(b, n->grad[j], prec);
    }
}

static bool mark_nonfinite(bpv_snapshot *s) {
    bpv_snapshot_locals(s); /* the note quotes a local partial */
    s->nf_pass = 0;
    s->nf_node = s->nf_edge = -1;
    s->nf_note[0] = '\0';
    bool any = false;
    for (int i = 0; i < s->nnodes; i++) {
        bpv_snap_node *n = &s->nodes[i];
        /* a value a trace did not record stands as NaN: not a finding */
        n->nonfinite = (!n->novalue && bpv_first_nonfinite(n->value, n->numel) >= 0) ||
                       bpv_first_nonfinite(n->grad, n->numel) >= 0;
        any = any || n->nonfinite;
    }
    /* a recorded trace may hold a partial that is not finite where the
     * node's gradient it adds to is (bpviz's own never does) */
    for (int e = 0; e < s->nedges && !any; e++)
        any = bpv_first_nonfinite(s->edges[e].chained, s->nodes[s->edges[e].from].numel) >= 0;
    if (!any) return false;
    /* forward: inputs come first, so the first non-finite value in order
     * has finite inputs */
    for (int i = 0; i < s->nnodes && !s->nf_pass; i++)
        if (!s->nodes[i].novalue && bpv_first_nonfinite(s->nodes[i].value, s->nodes[i].numel) >= 0) {
            s->nf_pass = 1;
            s->nf_node = i;
        }
    /* backward: edges are stored by consumer, so in reverse they follow the
     * backward pass; the first non-finite partial whose consumer's gradient
     * is finite is where it starts */
    for (int e = s->nedges - 1; e >= 0 && !s->nf_pass; e--) {
        const bpv_snap_edge *ed = &s->edges[e];
        const bpv_snap_node *to = &s->nodes[ed->to], *from = &s->nodes[ed->from];
        if (bpv_first_nonfinite(ed->chained, from->numel) < 0 ||
            bpv_first_nonfinite(to->grad, to->numel) >= 0)
            continue;
        s->nf_pass = 2;
        s->nf_edge = e;
        s->nf_node = ed->to;
    }
    /* a parameter whose finite contributions add up past the float range */
    for (int i = 0; i < s->nnodes && !s->nf_pass; i++)
        if (bpv_first_nonfinite(s->nodes[i].grad, s->nodes[i].numel) >= 0) {
            s->nf_pass = 2;
            s->nf_node = i;
        }
    if (s->nf_pass) {
        bpv_buf b;
        bpv_buf_init(&b);
        bpv_inspect_origin_note(s, 4, &b);
        snprintf(s->nf_note, sizeof s->nf_note, "%s", b.data ? b.data : "");
        bpv_buf_free(&b);
    }
    return true;
}

void bpv_inspect_nonfinite(bpv_snapshot *s) {
    /* a take found every value and grad finite: the template's marks hold */
    if (s && !s->pristine) s->pristine = !mark_nonfinite(s);
}

/* ---- names as the model writes them ------------------------------------------ */

void bpv_inspect_node_text(const bpv_model *m, const bpv_snapshot *s, int i, bpv_buf *b) {
    const bpv_snap_node *n = &s->nodes[i];
    if (n->name) {
        bpv_buf_puts(b, n->name);
        return;
    }
    if (n->kind == BPV_NODE_CONST && n->numel == 1) {
        bpv_fmt_repr(b, n->value[0]);
        return;
    }
    /* the expression as written, on one line and clipped */
    size_t len = n->src_len, shown = 0;
    if (n->src_off + len > m->src.len) len = 0;
    bool space = false, quoted = false;
    for (size_t k = 0; k < len && shown < 40; k++) {
        char c = m->src.text[n->src_off + k];
        if (c == '"') quoted = !quoted;
        if (c == '#' && !quoted) { /* a comment inside a bracket, not the expression */
            while (k + 1 < len && m->src.text[n->src_off + k + 1] != '\n') k++;
            space = true;
            continue;
        }
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            space = true;
            continue;
        }
        if (space && shown) bpv_buf_putc(b, ' '), shown++;
        space = false;
        bpv_buf_putc(b, c);
        shown++;
    }
    if (shown >= 40) bpv_buf_puts(b, "…");
    if (!len) bpv_buf_puts(b, n->fn ? n->fn : bpv_ops[n->op].name);
}

void bpv_nonfinite_message(const bpv_model *m, const bpv_snapshot *s, bool is_error,
                           const char *what, bpv_buf *b) {
    int line = 1, col = 1;
    int i = s->nf_node >= 0 ? s->nf_node : 0;
    const bpv_snap_node *n = &s->nodes[i];
    bpv_source_locate(&m->src, n->src_off, &line, &col);
    bpv_buf_put_clean(b, m->src.name, strlen(m->src.name));
    bpv_buf_printf(b, ":%d:%d: %s: step %ld (epoch %ld): ", line, col,
                   is_error ? "error" : "warning", s->step, s->epoch);
    const char *op = n->kind == BPV_NODE_OP ? (n->fn ? n->fn : bpv_ops[n->op].name)
                                            : n->kind == BPV_NODE_PARAM ? "param" : "data";
    if (s->nf_pass == 2 && s->nf_edge >= 0) {
        const bpv_snap_edge *e = &s->edges[s->nf_edge];
        bpv_buf_puts(b, "the gradient from ");
        bpv_inspect_node_text(m, s, e->to, b);
        bpv_buf_printf(b, " (%s) to ", op);
        bpv_inspect_node_text(m, s, e->from, b);
        bpv_buf_puts(b, " is not finite");
    } else {
        bpv_buf_puts(b, s->nf_pass == 2 ? "the gradient of " : "");
        bpv_inspect_node_text(m, s, i, b);
        bpv_buf_printf(b, " (%s) is not finite", op);
    }
    bpv_buf_printf(b, ": origin %s; %s\n", s->nf_note, what);
}

/* ---- the gradient check --------------------------------------------------------- */

/* A double-precision copy of a graph with its own buffers; one spare node
 * past the end stands in for the input being perturbed, so x * x moves one
 * operand at a time. */
typedef struct ck {
    const bpv_graph *g;
    bpv_graph h;
    bpv_node *nodes;
    double *mem;
    int *ins;             /* every node's inputs, copied: check_edge rewires them */
    double **edges;       /* every node's edge pointers, pointing into mem */
    double *red;          /* its own gathering space (bpv_graph.red_work) */
    double *conv;         /* and convolution scratch (bpv_graph.conv_work), in double */
    double *spare, *out0, *outp, *outm, *loc;
    int64_t maxel;
} ck;

static void ck_free(ck *c) {
    free(c->nodes);
    free(c->mem);
    free(c->ins);
    free(c->edges);
    free(c->red);
    free(c->conv);
}

/* What the double copy of g holds: doubles for values, gradients and edge
 * gradients plus five work rows of the largest node's size (returned),
 * its largest node and its edges. ck_init allocates it and
 * bpv_gradcheck_bytes sizes it for the memory budget. */
static size_t ck_count(const bpv_graph *g, int64_t *maxel, size_t *nedges) {
    size_t total = 0;
    *maxel = 1;
    *nedges = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const bpv_node *x = &g->nodes[i];
        *nedges += (size_t)x->nin;
        if (x->numel > *maxel) *maxel = x->numel;
        total += (size_t)x->numel * (x->grad ? 2 : 1);
        for (int k = 0; k < x->nin; k++)
            if (x->edge_grad[k]) total += (size_t)g->nodes[x->in[k]].numel;
    }
    return total + 5 * (size_t)*maxel;
}

static bool ck_init(ck *c, const bpv_graph *g) {
    memset(c, 0, sizeof *c);
    int n = g->nnodes;
    int64_t maxel;
    size_t nedges;
    size_t total = ck_count(g, &maxel, &nedges);
    c->g = g;
    c->maxel = maxel;
    c->nodes = malloc(((size_t)n + 1) * sizeof *c->nodes);
    c->mem = calloc(total, sizeof *c->mem);
    c->ins = malloc((nedges + 1) * sizeof *c->ins);
    c->edges = calloc(nedges + 1, sizeof *c->edges);
    if (!c->nodes || !c->mem || !c->ins || !c->edges) {
        ck_free(c);
        return false;
    }
    memcpy(c->nodes, g->nodes, (size_t)n * sizeof *c->nodes);
    double *p = c->mem;
    size_t e = 0;
    for (int i = 0; i < n; i++) {
        bpv_node *x = &c->nodes[i];
        if (x->nin) {
            memcpy(c->ins + e, x->in, (size_t)x->nin * sizeof *c->ins);
            memcpy(c->edges + e, x->edge_grad, (size_t)x->nin * sizeof *c->edges);
            x->in = c->ins + e;
            x->edge_grad = c->edges + e;
            e += (size_t)x->nin;
        }
        x->val = p;
        p += x->numel;
        for (int64_t j = 0; j < x->numel; j++) x->val[j] = bpv_node_value(g, &g->nodes[i], j);
        if (x->grad) {
            x->grad = p;
            p += x->numel;
        }
        for (int k = 0; k < x->nin; k++)
            if (x->edge_grad[k]) {
                x->edge_grad[k] = p;
                p += g->nodes[x->in[k]].numel;
            }
    }
    c->spare = p, p += maxel;
    c->out0 = p, p += maxel;
    c->outp = p, p += maxel;
    c->outm = p, p += maxel;
    c->loc = p, p += maxel;
    c->h = *g;
    c->h.dtype = BPV_F64;
    c->h.f32 = false; /* its own double copy, whatever g stores */
    c->h.red_work = g->nred ? (c->red = malloc((size_t)g->nred * sizeof *c->red)) : NULL;
    c->h.conv_work = g->nconv_work ? (c->conv = malloc((size_t)g->nconv_work * sizeof *c->conv)) : NULL;
    if ((g->nred && !c->red) || (g->nconv_work && !c->conv)) {
        ck_free(c);
        return false;
    }
    c->h.nodes = c->nodes;
    c->h.mm_work = NULL; /* f64 products need none */
    c->h.nums = NULL;    /* the copies above are not one block */
    c->h.nnums = 0;
    return true;
}


size_t bpv_gradcheck_bytes(const bpv_graph *g) {
    int64_t maxel;
    size_t nedges;
    /* and a param's analytic gradient beside the work rows */
    size_t total = ck_count(g, &maxel, &nedges) + (size_t)maxel;
    return (total + (size_t)g->nred + (size_t)g->nconv_work) * sizeof(double) +
           ((size_t)g->nnodes + 1) * sizeof(bpv_node) + (nedges + 1) * (sizeof(int) + sizeof(double *));
}

/* Perturbation for a value: relative, with a floor so 0 moves too. */
static double step_for(double v) { return 1e-6 * fmax(fabs(v), 1e-3); }

typedef struct cmp {
    double rel;    /* relative error, over the noise floor */
    bool skip;     /* kink or not finite */
} cmp;

/* Compares analytic a (double) with the central difference of fp, fm
 * around f0 for step h; `scale` bounds the magnitude of the terms summed
 * into them, for the rounding noise. */
static cmp compare(double a, double fp, double fm, double f0, double h, double scale) {
    cmp r = {0, false};
    double num = (fp - fm) / (2 * h), dp = (fp - f0) / h, dm = (f0 - fm) / h;
    if (!isfinite(a) || !isfinite(num) || !isfinite(dp) || !isfinite(dm)) {
        r.skip = true;
        return r;
    }
    /* a kink: the two one-sided slopes disagree */
    if (fabs(dp - dm) > 0.1 * fmax(fabs(dp), fabs(dm)) + 1e-7 * (1 + fabs(a))) {
        r.skip = true;
        return r;
    }
    /* the rounding noise of the difference itself: below it, agree */
    double noise = 2.3e-16 * fmax(scale, fabs(fp) + fabs(fm) + fabs(f0)) / h;
    r.rel = fabs(a - num) / fmax(fmax(fabs(a), fabs(num)), fmax(1e4 * noise, 1e-30));
    return r;
}

static void mark_update(bpv_gradcheck_mark *mk, cmp r, int64_t elem, double analytic, double num,
                        bool *any_ok) {
    if (r.skip) return;
    *any_ok = true;
    if (mk->state == BPV_GRADCHECK_NONE || r.rel > mk->relerr) {
        mk->relerr = r.rel;
        mk->elem = elem;
        mk->analytic = analytic;
        mk->numeric = num;
        mk->state = BPV_GRADCHECK_OK;
    }
}

/* g · v over n elements, adding its terms' magnitude to *scale. */
static double dot_scaled(const double *g, const double *v, int64_t n, double *scale) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        s += g[i] * v[i];
        *scale += fabs(g[i] * v[i]);
    }
    return s;
}

static void gradcheck_edge(ck *c, int i, int k, bpv_snap_edge *se) {
    const bpv_graph *g = c->g;
    bpv_node *n = &c->nodes[i];
    const bpv_node *gin = &g->nodes[n->in[k]];
    const int64_t N = n->numel;
    bpv_gradcheck_mark *mk = &se->gradcheck;
    *mk = (bpv_gradcheck_mark){.state = BPV_GRADCHECK_NONE};
    int spare = g->nnodes, saved = n->in[k];
    c->nodes[spare] = c->nodes[saved];
    c->nodes[spare].val = c->spare;
    for (int64_t j = 0; j < gin->numel; j++) c->spare[j] = bpv_node_value(g, gin, j);
    n->in[k] = spare;
    bpv_graph_forward_node(&c->h, i);
    memcpy(c->out0, n->val, (size_t)N * sizeof(double));
    bool reduce = bpv_ops[n->op].flags & BPV_OPF_SUM_LOCAL;
    bool any_ok = false;
    if (bpv_graph_local(&c->h, i, k, c->loc)) {
        int64_t nj = gin->numel < BPV_GRADCHECK_MAX_ELEMS ? gin->numel : BPV_GRADCHECK_MAX_ELEMS;
        for (int64_t j = 0; j < nj; j++) {
            double v = c->spare[j], h = step_for(v);
            c->spare[j] = v + h;
            bpv_graph_forward_node(&c->h, i);
            memcpy(c->outp, n->val, (size_t)N * sizeof(double));
            c->spare[j] = v - h;
            bpv_graph_forward_node(&c->h, i);
            memcpy(c->outm, n->val, (size_t)N * sizeof(double));
            c->spare[j] = v;
            for (int64_t o = 0; o < N; o++) {
                if (!reduce && bcast_index(&n->shape, &gin->shape, o) != j) continue;
                int64_t at = reduce ? 0 : o;
                cmp r = compare(c->loc[at], c->outp[o], c->outm[o], c->out0[o], h, 0);
                double num = (c->outp[o] - c->outm[o]) / (2 * h);
                mark_update(mk, r, reduce ? j : o, se->local[at], num, &any_ok);
            }
        }
    }
    /* a Jacobian (matmul, softmax, losses): the partial along the edge,
     * g · ∂out/∂input with g the op's gradient, against the difference of
     * g · out; both from the double backward on the step's inputs */
    if (!se->local && n->grad && n->edge_grad[k]) {
        const double *gr = n->grad, *a64 = n->edge_grad[k];
        int64_t nj = gin->numel < BPV_GRADCHECK_MAX_ELEMS ? gin->numel : BPV_GRADCHECK_MAX_ELEMS;
        for (int64_t j = 0; j < nj; j++) {
            double v = c->spare[j], h = step_for(v), scale = 0;
            c->spare[j] = v + h;
            bpv_graph_forward_node(&c->h, i);
            double fp = dot_scaled(gr, n->val, N, &scale);
            c->spare[j] = v - h;
            bpv_graph_forward_node(&c->h, i);
            double fm = dot_scaled(gr, n->val, N, &scale);
            c->spare[j] = v;
            double f0 = dot_scaled(gr, c->out0, N, &scale);
            cmp r = compare(a64[j], fp, fm, f0, h, scale);
            mark_update(mk, r, j, se->chained[j], (fp - fm) / (2 * h), &any_ok);
        }
    }
    n->in[k] = saved;
    for (int64_t j = 0; j < N; j++) n->val[j] = bpv_node_value(g, &g->nodes[i], j);
    if (!any_ok) mk->state = BPV_GRADCHECK_SKIP;
    else if (mk->relerr > BPV_GRADCHECK_TOL) mk->state = BPV_GRADCHECK_BAD;
}

/* Resets the leaves to the step's values and runs forward in double. */
static double full_forward(ck *c) {
    bpv_graph_forward(&c->h);
    return c->nodes[c->g->objective].val[0];
}

static void gradcheck_param(ck *c, bpv_snapshot *s, bpv_snap_param *sp, const double *a64,
                            double L0) {
    bpv_gradcheck_mark *mk = &sp->gradcheck;
    *mk = (bpv_gradcheck_mark){.state = BPV_GRADCHECK_NONE};
    sp->accumulating = false;
    int node = sp->node;
    const bpv_snap_node *sn = &s->nodes[node];
    bpv_node *pn = &c->nodes[node];
    if (!sn->grad) return;
    /* this step's own gradient: the sum of the partials along its edges */
    int64_t worst = -1;
    double worst_d = 0;
    for (int64_t j = 0; j < sn->numel; j++) {
        double sum = 0, mag = 0;
        for (int e = 0; e < s->nedges; e++)
            if (s->edges[e].from == node && s->edges[e].chained) {
                sum += s->edges[e].chained[j];
                mag += fabs(s->edges[e].chained[j]);
            }
        double d = fabs(sn->grad[j] - sum);
        if (isfinite(d) && d > 1e-5 * fmax(mag, fabs(sn->grad[j])) + 1e-30 && d > worst_d) {
            worst_d = d;
            worst = j;
        }
    }
    sp->accumulating = worst >= 0;
    bool any_ok = false;
    int64_t nj = sn->numel < BPV_GRADCHECK_MAX_ELEMS ? sn->numel : BPV_GRADCHECK_MAX_ELEMS;
    for (int64_t j = 0; j < nj; j++) {
        double v = pn->val[j], h = step_for(v);
        pn->val[j] = v + h;
        double Lp = full_forward(c);
        pn->val[j] = v - h;
        double Lm = full_forward(c);
        pn->val[j] = v;
        double num = (Lp - Lm) / (2 * h);
        cmp r = compare(a64[j], Lp, Lm, L0, h, 0);
        if (sp->accumulating && !r.skip && j == worst) r.rel = INFINITY; /* reported first */
        mark_update(mk, r, j, sn->grad[j], num, &any_ok);
    }
    if (sp->accumulating && mk->relerr != INFINITY) { /* not among the checked elements */
        mk->state = BPV_GRADCHECK_BAD;
        mk->elem = worst;
        mk->analytic = sn->grad[worst];
        mk->numeric = NAN;
        mk->relerr = INFINITY;
        return;
    }
    if (!any_ok) mk->state = BPV_GRADCHECK_SKIP;
    else if (mk->relerr > BPV_GRADCHECK_TOL) mk->state = BPV_GRADCHECK_BAD;
}

bool bpv_gradcheck(const bpv_model *m, const bpv_graph *g, bpv_snapshot *s) {
    (void)m;
    s->gradchecked = true;
    bpv_snapshot_locals(s); /* the marks compare against the local partials */
    ck c;
    if (!ck_init(&c, g)) return false;
    /* local partials, on the step's own inputs; the double backward on
     * them gives the Jacobian edges' analytic side */
    if (g->objective >= 0) {
        for (int i = 0; i < g->nnodes; i++) {
            bpv_node *x = &c.nodes[i];
            if (x->kind == BPV_NODE_PARAM && x->grad)
                for (int64_t j = 0; j < x->numel; j++) x->grad[j] = -0.0;
        }
        bpv_graph_backward(&c.h);
    }
    int e = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nin; k++, e++) {
            bpv_snap_edge *se = &s->edges[e];
            se->gradcheck = (bpv_gradcheck_mark){.state = BPV_GRADCHECK_NONE};
            if (se->chained) gradcheck_edge(&c, i, k, se);
        }
    /* parameter gradients: forward and backward in double, then one
     * perturbed forward per side per element */
    if (g->objective >= 0 && isfinite(s->loss)) {
        for (int i = 0; i < g->nnodes; i++) {
            bpv_node *x = &c.nodes[i];
            if (x->kind == BPV_NODE_PARAM && x->grad)
                for (int64_t j = 0; j < x->numel; j++) x->grad[j] = -0.0;
        }
        double L0 = full_forward(&c);
        bpv_graph_backward(&c.h);
        for (int q = 0; q < s->nparams; q++) {
            bpv_snap_param *sp = &s->params[q];
            if (sp->node < 0 || !c.nodes[sp->node].grad) continue;
            double *a64 = malloc((size_t)sp->numel * sizeof *a64);
            if (!a64) {
                ck_free(&c);
                return false;
            }
            memcpy(a64, c.nodes[sp->node].grad, (size_t)sp->numel * sizeof *a64);
            gradcheck_param(&c, s, sp, a64, L0);
            free(a64);
        }
    }
    ck_free(&c);
    return true;
}

/* ---- report lines ----------------------------------------------------------------- */

typedef struct finding {
    int kind;            /* 0 edge, 1 param */
    size_t off;          /* where in the model: the op, or the param */
    size_t from_off;
    int slot;
    char *text;          /* the first occurrence, formatted */
    long first_step, count;
} finding;

void bpv_inspect_loc(const bpv_model *m, size_t off, bpv_buf *b) {
    int line = 1, col = 1;
    bpv_source_locate(&m->src, off, &line, &col);
    bpv_buf_put_clean(b, m->src.name, strlen(m->src.name));
    bpv_buf_printf(b, ":%d:%d: ", line, col);
}

static void put_mark(bpv_buf *b, const bpv_gradcheck_mark *mk, int64_t numel) {
    bpv_buf_puts(b, "analytic ");
    put_num(b, mk->analytic, 4);
    bpv_buf_puts(b, " vs numeric ");
    if (isnan(mk->numeric)) bpv_buf_puts(b, "?");
    else put_num(b, mk->numeric, 4);
    if (numel > 1) bpv_buf_printf(b, " at [%lld]", (long long)mk->elem);
}

static finding *find_or_add(finding **v, size_t *n, int kind, size_t off, size_t from_off,
                            int slot) {
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i].kind == kind && (*v)[i].off == off && (*v)[i].from_off == from_off &&
            (*v)[i].slot == slot)
            return &(*v)[i];
    finding *nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv) return NULL;
    *v = nv;
    finding *f = &nv[(*n)++];
    *f = (finding){kind, off, from_off, slot, NULL, 0, 0};
    return f;
}

/* Appends one line per distinct gradient-check mismatch in the kept
 * snapshots (the first step it shows at, and how many more); returns how
 * many lines it wrote. */
long bpv_gradcheck_mismatches(const bpv_model *m, bpv_buf *out) {
    finding *fs = NULL;
    size_t nfs = 0;
    long problems = 0;
    bpv_buf t;
    bpv_buf_init(&t);
    for (size_t q = 0; q < m->run.nsnaps; q++) {
        const bpv_snapshot *s = m->run.snaps[q];
        bool edge_bad = false;
        for (int e = 0; e < s->nedges; e++) {
            const bpv_snap_edge *ed = &s->edges[e];
            if (ed->gradcheck.state != BPV_GRADCHECK_BAD) continue;
            edge_bad = true;
            const bpv_snap_node *to = &s->nodes[ed->to];
            finding *f = find_or_add(&fs, &nfs, 0, to->src_off, s->nodes[ed->from].src_off,
                                     ed->slot);
            if (!f) continue;
            if (!f->count++) {
                f->first_step = s->step;
                t.len = 0;
                bpv_inspect_loc(m, to->src_off, &t);
                bpv_buf_puts(&t, "gradient check: the partial of ");
                bpv_inspect_node_text(m, s, ed->to, &t);
                bpv_buf_puts(&t, " with respect to ");
                bpv_inspect_node_text(m, s, ed->from, &t);
                bpv_buf_printf(&t, " is wrong at step %ld: ", s->step);
                put_mark(&t, &ed->gradcheck, to->numel);
                if (to->fn) bpv_buf_printf(&t, " (the `grad` of fn %s)", to->fn);
                f->text = strdup(t.data);
            }
        }
        for (int p = 0; p < s->nparams; p++) {
            const bpv_snap_param *sp = &s->params[p];
            /* a wrong partial upstream makes the params' gradients wrong too:
             * report the cause */
            if (sp->gradcheck.state != BPV_GRADCHECK_BAD || (edge_bad && !sp->accumulating))
                continue;
            const bpv_param *mp = &m->params[sp->ref];
            finding *f = find_or_add(&fs, &nfs, 1, mp->stmt->name_off, 0, 0);
            if (!f) continue;
            if (!f->count++) {
                f->first_step = s->step;
                t.len = 0;
                bpv_inspect_loc(m, mp->stmt->name_off, &t);
                bpv_buf_printf(&t, "gradient check: the gradient of param '%s' is wrong at "
                                   "step %ld: ",
                               sp->name, s->step);
                put_mark(&t, &sp->gradcheck, sp->numel);
                if (sp->accumulating)
                    bpv_buf_puts(&t, "; it still holds earlier steps' gradients: the train "
                                     "has zero_grad=false");
                f->text = strdup(t.data);
            }
        }
    }
    for (size_t i = 0; i < nfs; i++) {
        bpv_buf_puts(out, fs[i].text ? fs[i].text : "gradient check: mismatch");
        if (fs[i].count > 1)
            bpv_buf_printf(out, " (and at %ld more checked steps)", fs[i].count - 1);
        bpv_buf_putc(out, '\n');
        problems++;
    }
    for (size_t i = 0; i < nfs; i++) free(fs[i].text);
    free(fs);
    bpv_buf_free(&t);
    return problems;
}
