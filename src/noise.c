/* Rounding-noise bounds of a snapshot's numbers; see noise.h for the rules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "noise.h"

typedef struct entry {
    const double *numbers;
    double *bound;
    int64_t n;
} entry;

/* The entries, and an open-addressing index over them by array address
 * (slot: entry index + 1, 0 empty): every number a figure prints looks its
 * bounds up, so a search through the list made figures of many nodes
 * quadratic (20,000 nodes: 57 s). */
struct bpv_noise {
    entry *e;
    size_t n, cap;
    size_t *slot;
    size_t nslot; /* a power of two, at least 2 x cap */
    bool failed;
};

static size_t slot_of(const bpv_noise *nz, const double *numbers) {
    size_t h = (size_t)(((uintptr_t)numbers >> 3) * 0x9E3779B97F4A7C15ull);
    size_t i = h & (nz->nslot - 1);
    while (nz->slot[i] && nz->e[nz->slot[i] - 1].numbers != numbers) i = (i + 1) & (nz->nslot - 1);
    return i;
}

static double *add(bpv_noise *nz, const double *numbers, int64_t n) {
    if (!numbers || n <= 0 || nz->failed) return NULL;
    if (nz->n == nz->cap) {
        size_t cap = nz->cap ? nz->cap * 2 : 64;
        entry *e = realloc(nz->e, cap * sizeof *e);
        size_t *slot = e ? calloc(2 * cap, sizeof *slot) : NULL;
        if (!slot) {
            if (e) nz->e = e;
            nz->failed = true;
            return NULL;
        }
        nz->e = e;
        nz->cap = cap;
        free(nz->slot);
        nz->slot = slot;
        nz->nslot = 2 * cap;
        for (size_t k = 0; k < nz->n; k++) nz->slot[slot_of(nz, nz->e[k].numbers)] = k + 1;
    }
    double *b = calloc((size_t)n, sizeof *b);
    if (!b) {
        nz->failed = true;
        return NULL;
    }
    nz->e[nz->n++] = (entry){numbers, b, n};
    nz->slot[slot_of(nz, numbers)] = nz->n; /* a later entry for the same array wins */
    return b;
}

const double *bpv_noise_of(const bpv_noise *nz, const double *numbers) {
    if (!nz || !numbers || !nz->nslot) return NULL;
    size_t k = nz->slot[slot_of(nz, numbers)];
    return k ? nz->e[k - 1].bound : NULL;
}

double bpv_noise_clean(const bpv_noise *nz, const double *numbers, int64_t i) {
    double v = numbers[i];
    const double *b = bpv_noise_of(nz, numbers);
    if (!b || !isfinite(v) || !isfinite(b[i])) return v;
    return fabs(v) <= b[i] ? 0.0 : v;
}

void bpv_noise_free(bpv_noise *nz) {
    if (!nz) return;
    for (size_t i = 0; i < nz->n; i++) free(nz->e[i].bound);
    free(nz->e);
    free(nz->slot);
    free(nz);
}

/* The flat index into `in` of element k of `out` when `in` broadcasts to it
 * (dimensions aligned on the right, size-1 dimensions repeated). */
static int64_t bcast(const bpv_shape *out, const bpv_shape *in, int64_t k) {
    int64_t idx = 0, stride = 1;
    for (int d = out->rank - 1, di = in->rank - 1; d >= 0; d--, di--) {
        int64_t c = k % out->dim[d];
        k /= out->dim[d];
        if (di < 0) continue;
        if (in->dim[di] != 1) idx += c * stride;
        stride *= in->dim[di];
    }
    return idx;
}

static bool broadcasts(const bpv_shape *out, const bpv_shape *in) {
    if (in->rank > out->rank) return false;
    for (int d = 0; d < in->rank; d++) {
        int64_t a = in->dim[in->rank - 1 - d], o = out->dim[out->rank - 1 - d];
        if (a != 1 && a != o) return false;
    }
    return true;
}

static double sum_factor(int64_t n) { return n <= 1 ? 0 : ceil(log2((double)n)) + 1; }

/* ---- matrix products -------------------------------------------------------- */

/* A @ B with A [m, k] (a 1-D A is [1, k]) and B [k, n] (1-D: [k, 1]). */
typedef struct mm { int64_t m, k, n; } mm;

static bool mm_dims(const bpv_snapshot *s, const bpv_snap_node *o, mm *d) {
    const bpv_shape *a = &s->nodes[o->in[0]].shape, *b = &s->nodes[o->in[1]].shape;
    if (a->rank < 1 || a->rank > 2 || b->rank < 1 || b->rank > 2) return false;
    d->m = a->rank == 2 ? a->dim[0] : 1;
    d->k = a->dim[a->rank - 1];
    d->n = b->rank == 2 ? b->dim[1] : 1;
    return b->dim[0] == d->k && d->m * d->n == o->numel;
}

/* ---- forward ---------------------------------------------------------------- */

static void forward(bpv_noise *nz, const bpv_snapshot *s, int i, double ur) {
    const bpv_snap_node *o = &s->nodes[i];
    double *u = add(nz, o->value, o->numel);
    if (!u) return;
    const double *v = o->value;
    if (o->kind != BPV_NODE_OP) {
        for (int64_t k = 0; k < o->numel; k++) u[k] = ur * fabs(v[k]);
        return;
    }
    for (int j = 0; j < o->nin; j++)
        if (o->in[j] < 0 || o->in[j] >= i) return; /* not in order: no bound */
    const bpv_snap_node *a = &s->nodes[o->in[0]], *b = o->nin > 1 ? &s->nodes[o->in[1]] : NULL;
    const double *ua = bpv_noise_of(nz, a->value), *ub = b ? bpv_noise_of(nz, b->value) : NULL;
    if (!ua || (b && !ub)) return;
    bool elem = broadcasts(&o->shape, &a->shape) && (!b || broadcasts(&o->shape, &b->shape));
    switch (o->op) {
    case BPV_OP_ADD:
    case BPV_OP_SUB:
    case BPV_OP_MUL:
    case BPV_OP_DIV:
        if (!elem || !b) return;
        for (int64_t k = 0; k < o->numel; k++) {
            int64_t ka = bcast(&o->shape, &a->shape, k), kb = bcast(&o->shape, &b->shape, k);
            double x = a->value[ka], y = b->value[kb], r = fabs(v[k]);
            double e = o->op == BPV_OP_MUL ? fabs(y) * ua[ka] + fabs(x) * ub[kb]
                     : o->op == BPV_OP_DIV ? (ua[ka] + r * ub[kb]) / fabs(y)
                                           : ua[ka] + ub[kb];
            u[k] = e + ur * r;
        }
        return;
    case BPV_OP_NEG:
    case BPV_OP_IDENTITY:
    case BPV_OP_FLATTEN:
    case BPV_OP_RESHAPE:
        if (a->numel != o->numel) return;
        memcpy(u, ua, (size_t)o->numel * sizeof *u);
        return;
    case BPV_OP_T:
        if (a->numel != o->numel) return;
        if (a->shape.rank < 2) memcpy(u, ua, (size_t)o->numel * sizeof *u);
        else
            for (int64_t r = 0; r < a->shape.dim[0]; r++)
                for (int64_t c = 0; c < a->shape.dim[1]; c++)
                    u[c * a->shape.dim[0] + r] = ua[r * a->shape.dim[1] + c];
        return;
    case BPV_OP_SUM:
    case BPV_OP_MEAN: {
        if (o->numel != 1) return;
        double e = 0, m = 0;
        for (int64_t k = 0; k < a->numel; k++) {
            e += ua[k];
            m += fabs(a->value[k]);
        }
        e += sum_factor(a->numel) * ur * m;
        if (o->op == BPV_OP_MEAN && a->numel > 0) e /= (double)a->numel;
        u[0] = e + ur * fabs(v[0]);
        return;
    }
    case BPV_OP_MATMUL: {
        mm d;
        if (!b || !mm_dims(s, o, &d)) return;
        for (int64_t r = 0; r < d.m; r++)
            for (int64_t c = 0; c < d.n; c++) {
                double e = 0, m = 0;
                for (int64_t q = 0; q < d.k; q++) {
                    double x = a->value[r * d.k + q], y = b->value[q * d.n + c];
                    e += fabs(x) * ub[q * d.n + c] + ua[r * d.k + q] * fabs(y);
                    m += fabs(x * y);
                }
                u[r * d.n + c] = e + (double)d.k * ur * m;
            }
        return;
    }
    default:
        break;
    }
    /* any other elementwise op: its local partials carry the inputs' bounds */
    if (!(bpv_ops[o->op].flags & BPV_OPF_ELEMWISE) || o->fn) return;
    for (int k = 0; k < s->nedges; k++) {
        const bpv_snap_edge *e = &s->edges[k];
        if (e->to != i || !e->local || e->nlocal != o->numel) continue;
        const bpv_snap_node *in = &s->nodes[e->from];
        const double *ui = bpv_noise_of(nz, in->value);
        if (in->kind == BPV_NODE_CONST && in->literal) continue; /* a number as written: exact */
        if (!ui || !broadcasts(&o->shape, &in->shape)) return;
        for (int64_t q = 0; q < o->numel; q++)
            if (isfinite(e->local[q])) u[q] += fabs(e->local[q]) * ui[bcast(&o->shape, &in->shape, q)];
    }
    for (int64_t q = 0; q < o->numel; q++) u[q] += 2 * ur * fabs(v[q]);
}

/* ---- backward ---------------------------------------------------------------- */

/* The bound of edge e's local partial at element q of `to`. */
static double local_bound(const bpv_noise *nz, const bpv_snapshot *s, const bpv_snap_edge *e,
                          int64_t q, double ur) {
    const bpv_snap_node *o = &s->nodes[e->to];
    double l = fabs(e->local[q]);
    if (bpv_ops[o->op].flags & BPV_OPF_CONST_LOCAL) return 0;
    if ((o->op == BPV_OP_MUL || o->op == BPV_OP_DIV || o->op == BPV_OP_POW) && o->nin == 2) {
        const bpv_snap_node *a = &s->nodes[o->in[0]], *b = &s->nodes[o->in[1]];
        const double *ua = bpv_noise_of(nz, a->value), *ub = bpv_noise_of(nz, b->value);
        if (!ua || !ub) return 2 * ur * l;
        int64_t ka = bcast(&o->shape, &a->shape, q), kb = bcast(&o->shape, &b->shape, q);
        double x = fabs(a->value[ka]), y = fabs(b->value[kb]);
        if (o->op == BPV_OP_MUL) return e->slot == 0 ? ub[kb] : ua[ka]; /* ∂(ab)/∂a = b */
        if (o->op == BPV_OP_DIV) /* 1/b and −a/b² */
            return e->slot == 0 ? l * (ur + (y > 0 ? ub[kb] / y : 0))
                                : l * 2 * ur + (y > 0 ? (ua[ka] + 2 * x * ub[kb] / y) / (y * y) : 0);
        if (e->slot == 0) /* k·a^(k−1): relative error (k−1)·e_a/|a| */
            return l * (2 * ur + (x > 0 ? fabs(b->value[kb] - 1) * ua[ka] / x : 0));
    }
    return 2 * ur * l;
}

/* Bounds of edge e's chained partial (numel of `from`) into u. */
static void backward_edge(const bpv_noise *nz, const bpv_snapshot *s, const bpv_snap_edge *e,
                          double *u, double *uloc, double ur) {
    const bpv_snap_node *o = &s->nodes[e->to], *from = &s->nodes[e->from];
    const double *ug = bpv_noise_of(nz, o->grad);
    if (!ug || !o->grad) return;
    const double *G = o->grad;
    if (o->op == BPV_OP_MATMUL) {
        mm d;
        if (!mm_dims(s, o, &d)) return;
        const bpv_snap_node *a = &s->nodes[o->in[0]], *b = &s->nodes[o->in[1]];
        const double *ua = bpv_noise_of(nz, a->value), *ub = bpv_noise_of(nz, b->value);
        if (!ua || !ub) return;
        if (e->slot == 0) { /* dA = G·Bᵀ: [m, k] */
            for (int64_t r = 0; r < d.m; r++)
                for (int64_t q = 0; q < d.k; q++) {
                    double x = 0, m = 0;
                    for (int64_t c = 0; c < d.n; c++) {
                        double g = G[r * d.n + c], y = b->value[q * d.n + c];
                        x += fabs(g) * ub[q * d.n + c] + ug[r * d.n + c] * fabs(y);
                        m += fabs(g * y);
                    }
                    u[r * d.k + q] = x + (double)d.n * ur * m;
                }
        } else { /* dB = Aᵀ·G: [k, n] */
            for (int64_t q = 0; q < d.k; q++)
                for (int64_t c = 0; c < d.n; c++) {
                    double x = 0, m = 0;
                    for (int64_t r = 0; r < d.m; r++) {
                        double g = G[r * d.n + c], y = a->value[r * d.k + q];
                        x += fabs(g) * ua[r * d.k + q] + ug[r * d.n + c] * fabs(y);
                        m += fabs(g * y);
                    }
                    u[q * d.n + c] = x + (double)d.m * ur * m;
                }
        }
        return;
    }
    if ((o->op == BPV_OP_SUM || o->op == BPV_OP_MEAN) && o->numel == 1) {
        double n = o->op == BPV_OP_MEAN ? (double)from->numel : 1;
        for (int64_t k = 0; k < from->numel; k++) u[k] = ug[0] / n + ur * fabs(e->chained[k]);
        return;
    }
    if ((o->op == BPV_OP_NEG || o->op == BPV_OP_IDENTITY || o->op == BPV_OP_FLATTEN ||
         o->op == BPV_OP_RESHAPE) &&
        from->numel == o->numel) {
        memcpy(u, ug, (size_t)o->numel * sizeof *u);
        return;
    }
    /* elementwise: local ⊙ G, summed over a broadcast input's copies */
    if (!e->local || e->nlocal != o->numel || !broadcasts(&o->shape, &from->shape)) return;
    double *mag = calloc((size_t)from->numel + 1, sizeof *mag);
    int64_t *cnt = calloc((size_t)from->numel + 1, sizeof *cnt);
    if (mag && cnt) {
        for (int64_t q = 0; q < o->numel; q++) {
            double l = fabs(e->local[q]), lb = local_bound(nz, s, e, q, ur);
            if (uloc) uloc[q] = lb;
            int64_t j = bcast(&o->shape, &from->shape, q);
            double t = l * fabs(G[q]);
            u[j] += l * ug[q] + fabs(G[q]) * lb + (l != 1 ? ur * t : 0);
            mag[j] += t;
            cnt[j]++;
        }
        for (int64_t j = 0; j < from->numel; j++) u[j] += sum_factor(cnt[j]) * ur * mag[j];
    }
    free(mag);
    free(cnt);
}

bpv_noise *bpv_noise_new(const bpv_snapshot *s) {
    bpv_noise *nz = calloc(1, sizeof *nz);
    if (!nz) return NULL;
    double ur = s->dtype == BPV_F32 ? ldexp(1, -24) : ldexp(1, -53);
    for (int i = 0; i < s->nnodes; i++) forward(nz, s, i, ur);
    /* each node's edges out, in edge order (one pass over the edges, not
     * one per node) */
    int *first = calloc((size_t)s->nnodes + 1, sizeof *first);
    int *out = malloc(((size_t)s->nedges + 1) * sizeof *out);
    if (!first || !out) {
        free(first), free(out);
        nz->failed = true;
        return nz;
    }
    for (int k = 0; k < s->nedges; k++)
        if (s->edges[k].from >= 0 && s->edges[k].from < s->nnodes) first[s->edges[k].from + 1]++;
    for (int i = 0; i < s->nnodes; i++) first[i + 1] += first[i];
    for (int k = 0; k < s->nedges; k++) {
        int f = s->edges[k].from;
        if (f >= 0 && f < s->nnodes) out[first[f]++] = k;
    }
    for (int i = s->nnodes; i > 0; i--) first[i] = first[i - 1]; /* back to starts */
    first[0] = 0;
    /* gradients from the objective back: a node's grad sums its edges' */
    for (int i = s->nnodes - 1; i >= 0; i--) {
        const bpv_snap_node *n = &s->nodes[i];
        if (!n->grad) continue;
        double *ug = add(nz, n->grad, n->numel);
        if (!ug || i == s->objective) continue; /* the objective's is 1, exact */
        int uses = 0;
        bool known = true;
        for (int x = first[i]; x < first[i + 1]; x++) {
            const bpv_snap_edge *e = &s->edges[out[x]];
            if (!e->chained) continue;
            double *uc = add(nz, e->chained, n->numel);
            double *ul = e->local ? add(nz, e->local, e->nlocal) : NULL;
            if (!uc) {
                free(first), free(out);
                return nz;
            }
            if (e->to <= i) {
                known = false;
                continue;
            }
            backward_edge(nz, s, e, uc, ul, ur);
            for (int64_t q = 0; q < n->numel; q++) {
                ug[q] += uc[q];
                if (uses) ug[q] += ur * (fabs(e->chained[q]) + fabs(n->grad[q]));
            }
            uses++;
        }
        if (!known) memset(ug, 0, (size_t)n->numel * sizeof *ug);
    }
    free(first), free(out);
    for (int k = 0; k < s->nparams; k++) {
        const bpv_snap_param *p = &s->params[k];
        double *ua = add(nz, p->after, p->numel);
        if (!ua || p->node < 0 || p->node >= s->nnodes) continue;
        const bpv_snap_node *n = &s->nodes[p->node];
        for (int64_t q = 0; q < p->numel && q < n->numel; q++)
            ua[q] = ur * (fabs(n->value[q]) + fabs(p->after[q]));
    }
    return nz;
}
