/* Snapshots: a deep copy of a graph at one step in a single malloc'd block
 * (structs first, then numbers, so everything stays aligned and one free()
 * releases it). Taken only for the steps a caller keeps; a block released
 * by a caller that records every step and drops each is refilled by the
 * next take, numbers only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "snapshot.h"

#define ALIGN8(x) (((x) + 7) & ~(size_t)7)

/* How a node is called inside a formula: its name, a literal's value, or
 * its op's name. */
static void display_name(bpv_buf *b, const bpv_graph *g, const bpv_node *n) {
    if (n->name) {
        bpv_buf_puts(b, n->name);
    } else if (n->kind == BPV_NODE_CONST && n->literal) {
        double v = bpv_node_value(g, n, 0);
        char tmp[40];
        if (v == floor(v) && fabs(v) < 1e15)
            snprintf(tmp, sizeof tmp, "%.0f", v); /* "2·x" reads better than "2.0·x" */
        else
            bpv_fmt_repr_s(tmp, v);
        if (v < 0 || (v == 0 && signbit(v))) {
            bpv_buf_putc(b, '(');
            bpv_buf_puts(b, tmp);
            bpv_buf_putc(b, ')');
        } else {
            bpv_buf_puts(b, tmp);
        }
    } else if (n->kind == BPV_NODE_CONST) {
        bpv_buf_puts(b, "const");
    } else {
        bpv_buf_puts(b, bpv_ops[n->op].name);
    }
}

static bool ident_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

/* The op table's formula with the words a, b and out replaced by names. */
static void formula(bpv_buf *b, const bpv_graph *g, const bpv_node *n, const char *f) {
    while (*f) {
        if (!ident_char(*f)) {
            bpv_buf_putc(b, *f++);
            continue;
        }
        const char *s = f;
        while (ident_char(*f)) f++;
        size_t len = (size_t)(f - s);
        if (len == 1 && *s == 'a') display_name(b, g, &g->nodes[n->in[0]]);
        else if (len == 1 && *s == 'b' && n->nin > 1) display_name(b, g, &g->nodes[n->in[1]]);
        else if (len == 3 && memcmp(s, "out", 3) == 0) display_name(b, g, n);
        else bpv_buf_add(b, s, len);
    }
}

static bool param_listed(const bpv_model *m, int k) {
    return m->run.cur_stmt <= 0 || m->params[k].stmt - m->prog.stmts < m->run.cur_stmt;
}

/* ---- the per-graph cache ------------------------------------------------------
 * Everything of a snapshot that is the same at every step of one graph: the
 * header, node, edge and param records with their names and formulas (which
 * point to strings in the model's arena, so every snapshot shares them and
 * they live until bpv_model_free, as snapshots do), and where each number
 * goes. A step then costs one malloc, one memcpy of the records and the
 * numbers themselves: recording every step of a scalar model used to spend
 * most of its time rebuilding formula text. */
typedef struct bpv_snap_cache bpv_snap_cache;

/* One run of numbers a step copies into its snapshot: n numbers from src
 * (float32 when f32, widened as they are copied) to the numbers' offset
 * off, or (src NULL) edge `slot` of node `node`'s local partial, derived
 * later from the snapshot's own values (bpv_snapshot_locals). The graph's
 * buffers never move, so the lists are built once and a step is a few flat
 * loops over them. */
typedef struct bpv_snap_seg {
    const void *src;
    int64_t off, n;
    int node, slot;
    bool scan;            /* a node's value or grad: checked for non-finite */
    bool f32;             /* src holds float32 */
} bpv_snap_seg;

/* Single numbers, the bulk of a scalar model: a value or grad (scanned for
 * non-finite) or a partial or parameter. */
typedef struct bpv_snap_one {
    const void *src;
    int64_t off;
} bpv_snap_one;

struct bpv_snap_cache {
    int cur_stmt;         /* the params listed depend on the statement */
    size_t off_nodes, off_edges, off_params, off_nums;
    size_t nums;          /* doubles per snapshot */
    char *templ;          /* off_nums bytes: the records, pointers to numbers unset */
    int64_t *voff, *goff; /* per node, in doubles from the numbers' start; -1: none */
    int64_t *loff, *coff; /* per edge: local, chained; -1: none */
    int64_t *poff;        /* per listed param */
    /* every step: single numbers scanned and not, double and float32, then
     * the rest */
    bpv_snap_one *scan1, *copy1, *scan1f, *copy1f;
    int nscan1, ncopy1, nscan1f, ncopy1f;
    bpv_snap_seg *segs;
    int nsegs;
    /* local partials (segs with src NULL), derived when first read on
     * `view`, a copy of the graph whose values are repointed at the
     * snapshot's */
    bpv_snap_seg *lazy;
    int nlazy;
    bpv_graph *view;
    /* local partials that are the same at every step (add, sub, neg, sum...
     * of one element): written once into each new block */
    bpv_snap_seg *fixed;
    int nfixed;
};

static void add_seg(bpv_snap_cache *c, bpv_snap_seg sg) {
    bpv_snap_one o = {sg.src, sg.off};
    if (!sg.src) c->lazy[c->nlazy++] = sg;
    else if (sg.n != 1) c->segs[c->nsegs++] = sg;
    else if (sg.scan && sg.f32) c->scan1f[c->nscan1f++] = o;
    else if (sg.scan) c->scan1[c->nscan1++] = o;
    else if (sg.f32) c->copy1f[c->ncopy1f++] = o;
    else c->copy1[c->ncopy1++] = o;
}

/* Where p lies in the graph's number block, or -1 when it is elsewhere
 * (params, constants). Compared as integers: p may belong to another
 * object. */
static int64_t block_off(const bpv_graph *g, const void *p) {
    const size_t size = g->f32 ? sizeof(float) : sizeof(double);
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)g->nums;
    if (!g->nums || a < lo || a >= lo + (uintptr_t)g->nnums * size) return -1;
    return (int64_t)((a - lo) / size);
}

static bpv_snap_cache *cache_build(const bpv_model *m, const bpv_graph *g) {
    bpv_arena *A = m->arena;
    int nedges = 0, np = 0;
    int64_t maxnumel = 1;
    for (int i = 0; i < g->nnodes; i++) {
        nedges += g->nodes[i].nin;
        if (g->nodes[i].numel > maxnumel) maxnumel = g->nodes[i].numel;
    }
    for (int k = 0; k < m->nparams; k++) np += param_listed(m, k);
    bpv_snap_cache *c = bpv_arena_calloc(A, 1, sizeof *c);
    if (!c) return NULL;
    c->cur_stmt = m->run.cur_stmt;
    c->off_nodes = ALIGN8(sizeof(bpv_snapshot));
    c->off_edges = ALIGN8(c->off_nodes + (size_t)g->nnodes * sizeof(bpv_snap_node));
    c->off_params = ALIGN8(c->off_edges + (size_t)nedges * sizeof(bpv_snap_edge));
    c->off_nums = ALIGN8(c->off_params + (size_t)np * sizeof(bpv_snap_param));
    c->templ = bpv_arena_alloc(A, c->off_nums); /* zeroed */
    c->voff = bpv_arena_calloc(A, (size_t)g->nnodes + 1, sizeof(int64_t));
    c->goff = bpv_arena_calloc(A, (size_t)g->nnodes + 1, sizeof(int64_t));
    c->loff = bpv_arena_calloc(A, (size_t)nedges + 1, sizeof(int64_t));
    c->coff = bpv_arena_calloc(A, (size_t)nedges + 1, sizeof(int64_t));
    c->poff = bpv_arena_calloc(A, (size_t)np + 1, sizeof(int64_t));
    /* at most a value and a grad per node, a local and a chained per edge,
     * one per param */
    size_t maxsegs = 2 * (size_t)g->nnodes + 2 * (size_t)nedges + (size_t)np + 1;
    c->segs = bpv_arena_calloc(A, maxsegs, sizeof(bpv_snap_seg));
    /* single numbers of the storage the graph and params use: doubles,
     * float32, or (params of another storage than the graph) both */
    const bool f32 = g->f32, pf32 = bpv_model_params_f32(m);
    const size_t n64 = !f32 || !pf32 ? maxsegs : 1, n32 = f32 || pf32 ? maxsegs : 1;
    c->scan1 = bpv_arena_calloc(A, n64, sizeof(bpv_snap_one));
    c->copy1 = bpv_arena_calloc(A, n64, sizeof(bpv_snap_one));
    c->scan1f = bpv_arena_calloc(A, n32, sizeof(bpv_snap_one));
    c->copy1f = bpv_arena_calloc(A, n32, sizeof(bpv_snap_one));
    c->lazy = bpv_arena_calloc(A, (size_t)nedges + 1, sizeof(bpv_snap_seg));
    c->view = bpv_arena_alloc(A, sizeof *c->view);
    bpv_node *vnodes = bpv_arena_calloc(A, (size_t)g->nnodes + 1, sizeof *vnodes);
    c->fixed = bpv_arena_calloc(A, (size_t)nedges + 1, sizeof(bpv_snap_seg));
    double *fixval = bpv_arena_calloc(A, (size_t)nedges + 1, sizeof(double));
    int *pnode = malloc(((size_t)m->nparams + 1) * sizeof *pnode);
    double *scratch = malloc((size_t)maxnumel * sizeof *scratch);
    double *zeros = calloc((size_t)maxnumel, sizeof *zeros);
    if (!zeros || !c->templ || !c->voff || !c->goff || !c->loff || !c->coff || !c->poff || !c->segs ||
        !c->scan1 || !c->copy1 || !c->scan1f || !c->copy1f || !c->lazy || !c->view || !vnodes || !c->fixed ||
        !fixval || !pnode || !scratch) {
        free(pnode), free(scratch), free(zeros);
        return NULL;
    }
    /* the view runs the op's arithmetic on double storage: the snapshot's
     * numbers; until a snapshot is read, a zeroed scratch stands in for
     * them (the partials written once per block do not read values) */
    *c->view = *g;
    memcpy(vnodes, g->nodes, (size_t)g->nnodes * sizeof *vnodes);
    c->view->f32 = false;
    c->view->nodes = vnodes;
    c->view->snap_cache = NULL;
    for (int i = 0; i < g->nnodes; i++) vnodes[i].val = zeros;

    bpv_snapshot *s = (bpv_snapshot *)c->templ;
    bpv_snap_node *nodes = (bpv_snap_node *)(c->templ + c->off_nodes);
    bpv_snap_edge *edges = (bpv_snap_edge *)(c->templ + c->off_edges);
    bpv_snap_param *params = (bpv_snap_param *)(c->templ + c->off_params);
    s->model = m->src.name;
    s->dtype = g->dtype;
    s->objective = g->objective;
    s->nnodes = g->nnodes;
    s->nedges = nedges;
    s->nparams = np;
    s->nf_node = s->nf_edge = -1; /* bpv_inspect_nonfinite's "all finite" */
    s->cache = c;
    bpv_buf fb;
    bpv_buf_init(&fb);
    /* the graph's own numbers first, as one copy; then whatever lies
     * outside the block, one run each */
    int64_t num = 0;
    if (g->nums && g->nnums) {
        add_seg(c, (bpv_snap_seg){.src = g->nums, .off = 0, .n = g->nnums, .scan = true,
                                  .f32 = f32});
        num = g->nnums;
    }
    int e = 0;
    bool ok = true;
    for (int k = 0; k < m->nparams; k++) pnode[k] = -1;
    for (int i = 0; i < g->nnodes && ok; i++) {
        const bpv_node *n = &g->nodes[i];
        bpv_snap_node *sn = &nodes[i];
        if (n->kind == BPV_NODE_PARAM && n->ref >= 0 && n->ref < m->nparams) pnode[n->ref] = i;
        sn->name = n->name;
        sn->kind = n->kind;
        sn->op = n->op;
        sn->literal = n->literal;
        sn->shape = n->shape;
        sn->numel = n->numel;
        sn->nin = n->nin;
        sn->in = n->in;
        sn->attr = n->attr;
        sn->loop_var = n->loop_var;
        sn->loop_value = n->loop_value;
        sn->src_off = n->src_off;
        sn->src_len = n->src_len;
        if (n->custom) {
            sn->fn = n->custom->name;
            for (int k = 0; k < n->nin && k < 2; k++) sn->fn_dlocal[k] = n->custom->dlocal[k];
        }
        if ((c->voff[i] = block_off(g, n->val)) < 0) {
            c->voff[i] = num;
            add_seg(c, (bpv_snap_seg){.src = n->val, .off = num, .n = n->numel, .scan = true,
                                      .f32 = f32});
            num += n->numel;
        }
        c->goff[i] = -1;
        if (n->grad && (c->goff[i] = block_off(g, n->grad)) < 0) {
            c->goff[i] = num;
            add_seg(c, (bpv_snap_seg){.src = n->grad, .off = num, .n = n->numel, .scan = true,
                                      .f32 = f32});
            num += n->numel;
        }
        for (int k = 0; k < n->nin; k++, e++) {
            bpv_snap_edge *se = &edges[e];
            se->from = n->in[k];
            se->to = i;
            se->slot = k;
            const char *f = n->custom ? n->custom->dlocal[k]
                                      : bpv_ops[n->op].dlocal[k < 1 ? k : 1];
            c->loff[e] = c->coff[e] = -1;
            if (f) {
                fb.len = 0;
                formula(&fb, g, n, f);
                se->formula = bpv_arena_strndup(A, fb.data ? fb.data : "", fb.len);
                ok = ok && se->formula;
            }
            /* whether the engine has an elementwise partial depends on the
             * op alone, so ask once */
            if (f && bpv_graph_local(c->view, i, k, scratch)) {
                c->loff[e] = num;
                se->nlocal = n->numel;
                bpv_snap_seg sg = {.off = num, .n = n->numel, .node = i, .slot = k};
                /* one element: the partial of add, sub, neg, sum... is a
                 * constant, written once per block instead of derived */
                bool one = n->numel == 1;
                for (int j = 0; j < n->nin; j++) one = one && g->nodes[n->in[j]].numel == 1;
                if (one && (bpv_ops[n->op].flags & BPV_OPF_CONST_LOCAL)) {
                    fixval[c->nfixed] = scratch[0]; /* independent of values */
                    sg.src = &fixval[c->nfixed];
                    c->fixed[c->nfixed++] = sg;
                } else {
                    add_seg(c, sg); /* src NULL: derived later */
                }
                num += n->numel;
            }
            if (n->edge_grad[k] && (c->coff[e] = block_off(g, n->edge_grad[k])) < 0) {
                c->coff[e] = num;
                int64_t cn = g->nodes[n->in[k]].numel;
                add_seg(c, (bpv_snap_seg){.src = n->edge_grad[k], .off = num, .n = cn, .f32 = f32});
                num += cn;
            }
        }
    }
    int q = 0;
    for (int k = 0; k < m->nparams && ok; k++) {
        if (!param_listed(m, k)) continue;
        const bpv_param *p = &m->params[k];
        bpv_snap_param *sp = &params[q];
        sp->name = p->name;
        sp->node = pnode[k];
        sp->shape = p->shape;
        sp->numel = p->numel;
        sp->ref = k;
        c->poff[q++] = num;
        /* `after` holds the value before the update until set_after */
        add_seg(c, (bpv_snap_seg){.src = p->val, .off = num, .n = p->numel, .f32 = pf32});
        num += p->numel;
    }
    c->nums = (size_t)num;
    free(pnode), free(scratch), free(zeros);
    bpv_buf_free(&fb);
    return ok ? c : NULL;
}

/* cache_build's count of numbers, without building anything: every local
 * partial an op has a formula for is counted (some are Jacobians and take
 * none), and every param is listed. */
size_t bpv_snapshot_bytes(const bpv_model *m, const bpv_graph *g, int64_t nsamples,
                          int64_t *numbers) {
    int64_t num = g->nums ? g->nnums : 0, nedges = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const bpv_node *n = &g->nodes[i];
        if (block_off(g, n->val) < 0) num += n->numel;
        if (n->grad && block_off(g, n->grad) < 0) num += n->numel;
        for (int k = 0; k < n->nin; k++, nedges++) {
            const char *f = n->custom ? n->custom->dlocal[k] : bpv_ops[n->op].dlocal[k < 1 ? k : 1];
            if (f) num += n->numel;
            if (n->edge_grad[k] && block_off(g, n->edge_grad[k]) < 0)
                num += g->nodes[n->in[k]].numel;
        }
    }
    for (int k = 0; k < m->nparams; k++) num += m->params[k].numel;
    if (numbers) *numbers = num;
    return ALIGN8(sizeof(bpv_snapshot)) + (size_t)g->nnodes * sizeof(bpv_snap_node) +
           (size_t)nedges * sizeof(bpv_snap_edge) + (size_t)m->nparams * sizeof(bpv_snap_param) +
           32 + ((size_t)num + (size_t)nsamples) * sizeof(double);
}

/* Copies n numbers and tells whether all are finite, in the same pass (a
 * tensor model's snapshot is mostly this): x * 0 is 0 for finite x and NaN
 * otherwise, summed in four lanes so the loop does not wait on one add. */
static bool copy_finite(double *restrict dst, const double *restrict src, int64_t n) {
    double z0 = 0.0, z1 = 0.0, z2 = 0.0, z3 = 0.0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const double a = src[i], b = src[i + 1], c = src[i + 2], d = src[i + 3];
        dst[i] = a, dst[i + 1] = b, dst[i + 2] = c, dst[i + 3] = d;
        z0 += a * 0.0, z1 += b * 0.0, z2 += c * 0.0, z3 += d * 0.0;
    }
    for (; i < n; i++) {
        dst[i] = src[i];
        z0 += src[i] * 0.0;
    }
    return (z0 + z1) + (z2 + z3) == 0.0;
}

/* A new block: the records from the template, their pointers set to this
 * block's numbers, and the constant partials. */
static bpv_snapshot *block_new(const bpv_snap_cache *c, int64_t nsamples) {
    char *blk = malloc(c->off_nums + (c->nums + (size_t)nsamples) * sizeof(double));
    if (!blk) return NULL;
    memcpy(blk, c->templ, c->off_nums);
    bpv_snapshot *s = (bpv_snapshot *)blk;
    double *num = (double *)(blk + c->off_nums);
    s->nodes = (bpv_snap_node *)(blk + c->off_nodes);
    s->edges = (bpv_snap_edge *)(blk + c->off_edges);
    s->params = (bpv_snap_param *)(blk + c->off_params);
    s->samples = (int64_t *)(num + c->nums);
    s->cap_samples = nsamples;
    int e = 0;
    for (int i = 0; i < s->nnodes; i++) {
        bpv_snap_node *sn = &s->nodes[i];
        sn->value = num + c->voff[i];
        if (c->goff[i] >= 0) sn->grad = num + c->goff[i];
        for (int k = 0; k < sn->nin; k++, e++) {
            bpv_snap_edge *se = &s->edges[e];
            if (c->loff[e] >= 0) se->local = num + c->loff[e];
            if (c->coff[e] >= 0) se->chained = num + c->coff[e];
        }
    }
    for (int q = 0; q < s->nparams; q++) s->params[q].after = num + c->poff[q];
    for (int k = 0; k < c->nfixed; k++) num[c->fixed[k].off] = *(const double *)c->fixed[k].src;
    return s;
}

/* copy_finite from float32 storage: a float whose exponent bits are all
 * ones is ±inf or NaN; no early exit, so the loop vectorizes */
static bool copy_finite32(double *restrict dst, const float *restrict src, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &src[i], sizeof b);
        bad |= (b & 0x7f800000u) == 0x7f800000u;
        dst[i] = src[i];
    }
    return !bad;
}

static void widen(double *restrict dst, const float *restrict src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}

static bpv_snapshot *take(bpv_model *m, const bpv_graph *g, long step, long epoch,
                          const int64_t *samples, int64_t nsamples) {
    bpv_snap_cache *c = g->snap_cache;
    if (!c || c->cur_stmt != m->run.cur_stmt) {
        /* the cache is not part of the graph's state: built lazily, and again
         * when another train statement lists other params */
        c = cache_build(m, g);
        ((bpv_graph *)g)->snap_cache = c;
    }
    if (!c) return NULL;
    bpv_snapshot *s = m->run.snap_spare;
    if (s && s->cache == c && s->cap_samples >= nsamples) {
        m->run.snap_spare = NULL; /* its records and pointers are already right */
    } else {
        s = block_new(c, nsamples);
        if (!s) return NULL;
    }
    double *num = (double *)((char *)s + c->off_nums);
    s->step = step;
    s->epoch = epoch;
    s->loss = g->objective < 0 ? NAN
              : g->f32     ? g->nodes[g->objective].val32[0]
                           : g->nodes[g->objective].val[0];
    s->nsamples = nsamples;
    for (int64_t i = 0; i < nsamples; i++) s->samples[i] = samples[i];
    /* x * 0 is 0 for finite x and NaN otherwise: one sum tells whether
     * every single value and grad is finite */
    double zero = 0.0;
    bool finite = true;
    for (const bpv_snap_one *o = c->scan1, *end = o + c->nscan1; o < end; o++) {
        double v = *(const double *)o->src;
        num[o->off] = v;
        zero += v * 0.0;
    }
    for (const bpv_snap_one *o = c->scan1f, *end = o + c->nscan1f; o < end; o++) {
        double v = *(const float *)o->src;
        num[o->off] = v;
        zero += v * 0.0;
    }
    for (const bpv_snap_one *o = c->copy1, *end = o + c->ncopy1; o < end; o++)
        num[o->off] = *(const double *)o->src;
    for (const bpv_snap_one *o = c->copy1f, *end = o + c->ncopy1f; o < end; o++)
        num[o->off] = *(const float *)o->src;
    for (const bpv_snap_seg *sg = c->segs, *end = sg + c->nsegs; sg < end; sg++) {
        double *dst = num + sg->off;
        if (sg->f32 && sg->scan) finite &= copy_finite32(dst, sg->src, sg->n);
        else if (sg->f32) widen(dst, sg->src, sg->n);
        else if (sg->scan) finite &= copy_finite(dst, sg->src, sg->n);
        else memcpy(dst, sg->src, (size_t)sg->n * sizeof *dst);
    }
    finite &= zero == 0.0;
    s->locals_pending = c->nlazy > 0;
    /* the template says "all finite"; when something is not, the runner
     * marks it (bpv_inspect_nonfinite, which sits above the snapshots) */
    s->pristine = finite;
    return s;
}

bpv_snapshot *bpv_snapshot_take(bpv_model *m, const bpv_graph *g, long step, long epoch,
                                const int64_t *samples, int64_t nsamples) {
    return take(m, g, step, epoch, samples, nsamples);
}


void bpv_snapshot_locals(const bpv_snapshot *cs) {
    if (!cs->locals_pending) return;
    /* derived numbers go into the snapshot's own (malloc'd) block */
    bpv_snapshot *s = (bpv_snapshot *)cs;
    const bpv_snap_cache *c = s->cache;
    bpv_graph *v = c->view;
    for (int i = 0; i < v->nnodes; i++) v->nodes[i].val = s->nodes[i].value;
    double *num = (double *)((char *)s + c->off_nums);
    for (const bpv_snap_seg *sg = c->lazy, *end = sg + c->nlazy; sg < end; sg++)
        bpv_graph_local(v, sg->node, sg->slot, num + sg->off);
    s->locals_pending = false;
}

void bpv_snapshot_set_after(bpv_snapshot *s, const bpv_model *m) {
    const bool f32 = bpv_model_params_f32(m);
    for (int k = 0; k < s->nparams; k++) {
        const bpv_param *p = &m->params[s->params[k].ref];
        if (f32) widen(s->params[k].after, p->val32, p->numel);
        else if (p->numel == 1) s->params[k].after[0] = p->val[0];
        else memcpy(s->params[k].after, p->val, (size_t)p->numel * sizeof(double));
    }
}

void bpv_snapshot_free(bpv_snapshot *s) { free(s); }

void bpv_snapshot_release(bpv_model *m, bpv_snapshot *s) {
    /* a block with marks (non-finite, gradient check) differs from the
     * template in more than its numbers */
    if (s && !m->run.snap_spare && s->pristine && !s->gradchecked) m->run.snap_spare = s;
    else free(s);
}
