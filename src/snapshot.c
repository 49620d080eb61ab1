/* Snapshots: a deep copy of a graph at one step in a single malloc'd block
 * (structs first, then numbers, then strings, so everything stays aligned
 * and one free() releases it). Taken only for the steps a caller keeps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"

#define ALIGN8(x) (((x) + 7) & ~(size_t)7)

/* How a node is called inside a formula: its name, a literal's value, or
 * its op's name. */
static void display_name(bpv_buf *b, const bpv_node *n) {
    if (n->name) {
        bpv_buf_puts(b, n->name);
    } else if (n->kind == BPV_NODE_CONST && n->literal) {
        double v = n->val[0];
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
        bpv_buf_puts(b, bpv_op_table[n->op].name);
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
        if (len == 1 && *s == 'a') display_name(b, &g->nodes[n->in[0]]);
        else if (len == 1 && *s == 'b' && n->nin > 1) display_name(b, &g->nodes[n->in[1]]);
        else if (len == 3 && memcmp(s, "out", 3) == 0) display_name(b, n);
        else bpv_buf_add(b, s, len);
    }
}

static bool param_listed(const bpv_model *m, int k) {
    return m->cur_stmt <= 0 || m->params[k].stmt - m->prog.stmts < m->cur_stmt;
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
struct bpv_snap_cache {
    int cur_stmt;         /* the params listed depend on the statement */
    size_t off_nodes, off_edges, off_params, off_nums;
    size_t nums;          /* doubles per snapshot */
    char *templ;          /* off_nums bytes: the records, pointers to numbers unset */
    int64_t *voff, *goff; /* per node, in doubles from the numbers' start; -1: none */
    int64_t *loff, *coff; /* per edge: local (reserved), chained */
    /* per edge of a one-element op whose local partial is a constant (add,
     * sub, neg, sum...: lsrc -1, the number in lval) or an input's value
     * (mul: lsrc is that node), so the engine need not be called */
    int *lsrc;
    double *lval;
    bool *lfast;
    int64_t *poff;        /* per listed param */
};

static bpv_snap_cache *cache_build(const bpv_model *m, const bpv_graph *g) {
    bpv_arena *A = m->arena;
    int nedges = 0, np = 0;
    for (int i = 0; i < g->nnodes; i++) nedges += g->nodes[i].nin;
    for (int k = 0; k < m->nparams; k++) np += param_listed(m, k);
    bpv_snap_cache *c = bpv_arena_calloc(A, 1, sizeof *c);
    if (!c) return NULL;
    c->cur_stmt = m->cur_stmt;
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
    c->lsrc = bpv_arena_calloc(A, (size_t)nedges + 1, sizeof(int));
    c->lval = bpv_arena_calloc(A, (size_t)nedges + 1, sizeof(double));
    c->lfast = bpv_arena_calloc(A, (size_t)nedges + 1, sizeof(bool));
    int *pnode = malloc(((size_t)m->nparams + 1) * sizeof *pnode);
    if (!c->templ || !c->voff || !c->goff || !c->loff || !c->coff || !c->poff || !c->lsrc ||
        !c->lval || !c->lfast || !pnode) {
        free(pnode);
        return NULL;
    }
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
    s->nf_node = s->nf_edge = -1; /* bpv_snapshot_nonfinite's "all finite" */
    bpv_buf fb;
    bpv_buf_init(&fb);
    int64_t num = 0;
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
        sn->in[0] = n->in[0];
        sn->in[1] = n->in[1];
        sn->src_off = n->src_off;
        sn->src_len = n->src_len;
        if (n->custom) {
            sn->fn = n->custom->name;
            for (int k = 0; k < n->nin; k++) sn->fn_dlocal[k] = n->custom->dlocal[k];
        }
        c->voff[i] = num;
        num += n->numel;
        c->goff[i] = -1;
        if (n->grad) {
            c->goff[i] = num;
            num += n->numel;
        }
        for (int k = 0; k < n->nin; k++, e++) {
            bpv_snap_edge *se = &edges[e];
            se->from = n->in[k];
            se->to = i;
            se->slot = k;
            const char *f = n->custom ? n->custom->dlocal[k] : bpv_op_table[n->op].dlocal[k];
            c->loff[e] = c->coff[e] = -1;
            if (f) {
                fb.len = 0;
                formula(&fb, g, n, f);
                se->formula = bpv_arena_strndup(A, fb.data ? fb.data : "", fb.len);
                ok = ok && se->formula;
                c->loff[e] = num;
                num += n->numel;
                /* engine.c's bpv_graph_local for these ops, one element */
                bool one = n->numel == 1;
                for (int j = 0; j < n->nin; j++) one = one && g->nodes[n->in[j]].numel == 1;
                switch (one ? n->op : BPV_OP_NONE) {
                case BPV_OP_ADD: case BPV_OP_SUB: case BPV_OP_NEG: case BPV_OP_IDENTITY:
                case BPV_OP_SUM: case BPV_OP_MEAN: {
                    double v;
                    c->lfast[e] = bpv_graph_local(g, i, k, &v); /* independent of values */
                    c->lval[e] = v;
                    c->lsrc[e] = -1;
                    break;
                }
                case BPV_OP_MUL:
                    c->lfast[e] = true;
                    c->lsrc[e] = n->in[1 - k];
                    break;
                default: break;
                }
            }
            if (n->edge_grad[k]) {
                c->coff[e] = num;
                num += g->nodes[n->in[k]].numel;
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
        num += p->numel;
    }
    c->nums = (size_t)num;
    free(pnode);
    bpv_buf_free(&fb);
    return ok ? c : NULL;
}

/* Copies n numbers; true when n is 1 and the number is finite (the
 * caller then knows without bpv_snapshot_nonfinite's scan). */
static inline bool copy_nums(double *dst, const double *src, int64_t n) {
    if (n == 1) { /* most nodes of the scalar models */
        *dst = *src;
        return isfinite(*dst);
    }
    memcpy(dst, src, (size_t)n * sizeof *dst);
    return false;
}

bpv_snapshot *bpv_snapshot_take(const bpv_model *m, const bpv_graph *g, long step, long epoch,
                                const int64_t *samples, int64_t nsamples) {
    bpv_snap_cache *c = g->snap_cache;
    if (!c || c->cur_stmt != m->cur_stmt) {
        /* the cache is not part of the graph's state: built lazily, and again
         * when another train statement lists other params */
        c = cache_build(m, g);
        ((bpv_graph *)g)->snap_cache = c;
    }
    if (!c) return NULL;
    char *blk = malloc(c->off_nums + (c->nums + (size_t)nsamples) * sizeof(double));
    if (!blk) return NULL;
    memcpy(blk, c->templ, c->off_nums);
    bpv_snapshot *s = (bpv_snapshot *)blk;
    double *num = (double *)(blk + c->off_nums);
    s->step = step;
    s->epoch = epoch;
    s->loss = g->objective >= 0 ? g->nodes[g->objective].val[0] : NAN;
    s->nodes = (bpv_snap_node *)(blk + c->off_nodes);
    s->edges = (bpv_snap_edge *)(blk + c->off_edges);
    s->params = (bpv_snap_param *)(blk + c->off_params);
    s->samples = (int64_t *)(num + c->nums);
    s->nsamples = nsamples;
    if (nsamples) memcpy(s->samples, samples, (size_t)nsamples * sizeof(int64_t));
    int e = 0;
    bool finite = true; /* every value and grad is one finite number */
    for (int i = 0; i < g->nnodes; i++) {
        const bpv_node *n = &g->nodes[i];
        bpv_snap_node *sn = &s->nodes[i];
        sn->value = num + c->voff[i];
        finite &= copy_nums(sn->value, n->val, n->numel);
        if (c->goff[i] >= 0) {
            sn->grad = num + c->goff[i];
            finite &= copy_nums(sn->grad, n->grad, n->numel);
        }
        for (int k = 0; k < n->nin; k++, e++) {
            bpv_snap_edge *se = &s->edges[e];
            if (c->lfast[e]) {
                num[c->loff[e]] = c->lsrc[e] < 0 ? c->lval[e] : g->nodes[c->lsrc[e]].val[0];
                se->local = num + c->loff[e];
                se->nlocal = 1;
            } else if (c->loff[e] >= 0 && bpv_graph_local(g, i, k, num + c->loff[e])) {
                se->local = num + c->loff[e];
                se->nlocal = n->numel;
            }
            if (c->coff[e] >= 0) {
                se->chained = num + c->coff[e];
                copy_nums(se->chained, n->edge_grad[k], g->nodes[n->in[k]].numel);
            }
        }
    }
    for (int q = 0; q < s->nparams; q++) {
        bpv_snap_param *sp = &s->params[q];
        sp->after = num + c->poff[q];
        copy_nums(sp->after, m->params[sp->ref].val, sp->numel); /* until set_after */
    }
    /* the template already says "all finite" (check.c looks no further
     * when every value and grad is finite) */
    if (!finite) bpv_snapshot_nonfinite(s);
    return s;
}

void bpv_snapshot_set_after(bpv_snapshot *s, const bpv_model *m) {
    for (int k = 0; k < s->nparams; k++) {
        const bpv_param *p = &m->params[s->params[k].ref];
        memcpy(s->params[k].after, p->val, (size_t)p->numel * sizeof(double));
    }
}

void bpv_snapshot_free(bpv_snapshot *s) { free(s); }
