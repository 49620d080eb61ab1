/* Running a loaded model: the statements top to bottom, predictions
 * printed, each train statement's epochs and steps (batches, shuffle,
 * zero_grad, the optimizer), the scalar plans that take the steps of
 * all-scalar graphs, snapshots of the kept steps, inspection of non-finite
 * steps, one line per epoch. Params, data and graphs are in the model's
 * storage (float32 for f32 models, else double). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "init.h"
#include "inspect.h"
#include "optim.h"
#include "scalar.h"
#include "train.h"

/* Python's repr(tensor.tolist()) of a value in the dtype, stored as
 * float32 (f32) or double. */
static void fmt_value(bpv_buf *b, const void *v, bool f32, const bpv_shape *s, int d,
                      int64_t *pos) {
    if (d == s->rank || d >= BPV_MAX_RANK) { /* the bound tells gcc's -Warray-bounds */
        const int64_t i = (*pos)++;
        bpv_fmt_repr(b, f32 ? (double)((const float *)v)[i] : ((const double *)v)[i]);
        return;
    }
    bpv_buf_putc(b, '[');
    for (int64_t i = 0; i < s->dim[d]; i++) {
        if (i) bpv_buf_puts(b, ", ");
        fmt_value(b, v, f32, s, d + 1, pos);
    }
    bpv_buf_putc(b, ']');
}

static int emit(const bpv_run_options *o, bpv_buf *b, bpv_error **err) {
    if (o->out && b->len) {
        if (fwrite(b->data, 1, b->len, o->out) != b->len || ferror(o->out))
            return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                                    "cannot write the output: %s",
                                                    strerror(errno ? errno : EIO)));
    }
    b->len = 0;
    if (b->data) b->data[0] = '\0';
    return BPV_OK;
}

static int run_predict(bpv_model *m, int i, const bpv_run_options *o, bpv_buf *b,
                       bpv_error **err) {
    const bpv_stmt *st = &m->prog.stmts[i];
    bpv_graph *g = m->predicts[i];
    bpv_graph_forward(g);
    if (!o->out) return BPV_OK;
    /* echo the call as written: from the name to its closing parenthesis */
    size_t end = st->off + st->len, stop = st->name_off + st->name_len;
    for (size_t p = end; p > stop; p--)
        if (m->src.text[p - 1] == ')') {
            stop = p;
            break;
        }
    bpv_buf_puts(b, "predict ");
    bpv_buf_add(b, m->src.text + st->name_off, stop - st->name_off);
    bpv_buf_puts(b, " = ");
    const bpv_node *t = &g->nodes[g->nnodes - 1];
    int64_t pos = 0;
    fmt_value(b, t->val, g->f32, &t->shape, 0, &pos);
    bpv_buf_putc(b, '\n');
    return emit(o, b, err);
}

typedef struct leafref {
    int node, ref;
    /* data: where a step's samples are copied from and to (run_train), in
     * the model's storage, resolved once */
    void *dst;
    const void *src;
    int64_t sn;
} leafref;

static int collect(const bpv_graph *g, leafref *out, bpv_node_kind kind) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].kind == kind && (kind != BPV_NODE_PARAM || g->nodes[i].needs_grad))
            out[n++] = (leafref){i, g->nodes[i].ref, g->nodes[i].val, NULL, 0};
    return n;
}

static int epoch_line(bpv_model *m, const bpv_train *t, double loss, const bpv_run_options *o,
                      bpv_buf *b, bpv_error **err) {
    if (!o->out) return BPV_OK;
    bpv_buf_printf(b, "epoch=%ld loss=", m->run.epoch);
    bpv_fmt_repr(b, loss);
    for (int k = 0; k < m->nparams; k++) {
        const bpv_param *p = &m->params[k];
        if (p->stmt - m->prog.stmts >= t->stmt_index) continue; /* not declared yet */
        bpv_buf_printf(b, " %s=", p->name);
        int64_t pos = 0;
        fmt_value(b, p->val, m->f32store, &p->shape, 0, &pos);
    }
    bpv_buf_putc(b, '\n');
    return emit(o, b, err);
}

/* After a step's backward (inspection runs only): notes which params got a
 * gradient, and the first time a value or gradient is not finite warns,
 * keeps that step (keep_first_nonfinite) or stops (stop_on_nonfinite). */
static int inspect_step(bpv_model *m, const bpv_graph *g, const bpv_train *t,
                        const bpv_run_options *o, bpv_snapshot **snap, const int64_t *samples,
                        int64_t nsamples, const leafref *ps, int nps, bool *nf_stop,
                        bpv_error **err) {
    /* `bpviz check` reports params without gradient */
    for (int k = 0; k < nps && o->gradcheck; k++) {
        const bpv_param *p = &m->params[ps[k].ref];
        m->run.grad_used[ps[k].ref] = true;
        for (int64_t q = 0; q < p->numel && !m->run.grad_seen[ps[k].ref]; q++)
            if (m->f32store ? p->grad32[q] != 0 : p->grad[q] != 0) m->run.grad_seen[ps[k].ref] = true;
    }
    if (m->run.nf_step || bpv_graph_finite(g)) return BPV_OK;
    m->run.nf_step = m->run.step;
    bool keep = o->keep_first_nonfinite && !*snap;
    bpv_snapshot *s = *snap ? *snap : bpv_snapshot_take(m, g, m->run.step, m->run.epoch, samples, nsamples);
    if (!s) return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    if (s != *snap) bpv_inspect_nonfinite(s);
    if (keep && o->gradcheck && !bpv_gradcheck(m, g, s)) {
        bpv_snapshot_free(s);
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    }
    bpv_buf b;
    bpv_buf_init(&b);
    int rc = BPV_OK;
    if (t->stop_on_nonfinite && !o->keep_first_nonfinite) { /* a figure of it still draws */
        bpv_nonfinite_message(m, s, true, "stopped (stop_on_nonfinite=true)", &b);
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "%s", b.data));
    } else {
        bpv_nonfinite_message(m, s, false,
                              o->gradcheck ? "the first NaN or infinity" : "training goes on", &b);
        if (o->on_warning) { /* it quotes the file name and source text: one clean line */
            bpv_buf w;
            bpv_buf_init(&w);
            bpv_buf_put_clean(&w, b.data, b.len - (b.len > 0 && b.data[b.len - 1] == '\n'));
            bpv_buf_putc(&w, '\n');
            o->on_warning(w.data, o->warning_user);
            bpv_buf_free(&w);
        }
    }
    bpv_buf_free(&b);
    if (keep) *snap = s;
    else if (s != *snap) bpv_snapshot_free(s);
    if (o->keep_first_nonfinite) *nf_stop = true;
    return rc;
}

/* Copies the samples of one step into a graph's data nodes: cnt samples
 * from `start` of the epoch's order perm, in the model's storage. */
static inline void fill_batch(const bpv_train *t, const leafref *dl, int nd,
                              const int64_t *perm, int64_t start, int64_t cnt, bool f32) {
    const size_t esz = f32 ? sizeof(float) : sizeof(double);
    for (int k = 0; k < nd; k++) {
        const int64_t sn = dl[k].sn;
        if (sn == 1 && f32) { /* scalar samples: no memcpy call per number */
            float *dst = dl[k].dst;
            const float *src = dl[k].src;
            for (int64_t q = 0; q < cnt; q++) dst[q] = src[perm[start + q]];
        } else if (sn == 1) {
            double *dst = dl[k].dst;
            const double *src = dl[k].src;
            for (int64_t q = 0; q < cnt; q++) dst[q] = src[perm[start + q]];
        } else if (!t->shuffle) { /* the batch is one run of samples */
            memcpy(dl[k].dst, (const char *)dl[k].src + (size_t)(start * sn) * esz,
                   (size_t)(cnt * sn) * esz);
        } else {
            for (int64_t q = 0; q < cnt; q++)
                memcpy((char *)dl[k].dst + (size_t)(q * sn) * esz,
                       (const char *)dl[k].src + (size_t)(perm[start + q] * sn) * esz,
                       (size_t)sn * esz);
        }
    }
}

/* ---- one train statement ----------------------------------------------------
 * Everything a train statement's steps share, set up once (train_begin):
 * the graphs of a full and of the last, smaller batch, the scalar plans
 * that take their steps, the leaves a step fills and updates, the new
 * optimizer. */
typedef struct trainer {
    bpv_model *m;
    const bpv_train *t;
    const bpv_run_options *o;
    bpv_graph *G, *P;          /* full batch; last, smaller batch or NULL */
    bpv_scalar_plan *TG, *TP;  /* scalar plans of G and P, or NULL */
    leafref *gd, *pd, *ps;     /* data leaves of G and P; G's trained params */
    int ngd, npd, nps;
    int64_t n;                 /* samples per epoch (1 when the graph uses no data) */
    int64_t *perm;             /* the epoch's sample order */
    bool f32;                  /* the model stores float32 */
    bool inspect;              /* whether a step's finiteness is looked at */
    long total, maxkeep;
    long next_keep;            /* the next step to keep, so that most steps skip
                                * the step-set lookup */
} trainer;

static void train_end(trainer *tr) {
    free(tr->gd), free(tr->pd), free(tr->ps), free(tr->perm);
}

static int train_begin(trainer *tr, bpv_model *m, bpv_train *t, const bpv_run_options *o,
                       long maxkeep, bpv_error **err) {
    bpv_graph *G = t->full, *P = t->part;
    *tr = (trainer){.m = m, .t = t, .o = o, .G = G, .P = P, .f32 = m->f32store};
    int cap = G->nnodes + (P ? P->nnodes : 0) + 1;
    tr->n = t->nsamples ? t->nsamples : 1;
    tr->gd = malloc((size_t)cap * sizeof *tr->gd);
    tr->pd = malloc((size_t)cap * sizeof *tr->pd);
    tr->ps = malloc((size_t)cap * sizeof *tr->ps);
    tr->perm = malloc((size_t)tr->n * sizeof *tr->perm);
    if (!tr->gd || !tr->pd || !tr->ps || !tr->perm) {
        train_end(tr);
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    }
    tr->ngd = collect(G, tr->gd, BPV_NODE_DATA);
    tr->npd = P ? collect(P, tr->pd, BPV_NODE_DATA) : 0;
    tr->nps = collect(G, tr->ps, BPV_NODE_PARAM);
    /* all-scalar graphs run as flat instruction lists (scalar.c);
     * BPV_NO_SCALAR=1 turns them off, to compare the two paths */
    if (!t->planned) { /* once: every run takes the same plans */
        t->plan_full = bpv_scalar_build(m->arena, G);
        t->plan_part = P ? bpv_scalar_build(m->arena, P) : NULL;
        t->planned = true;
    }
    bool plans = !getenv("BPV_NO_SCALAR");
    tr->TG = plans ? t->plan_full : NULL;
    tr->TP = plans ? t->plan_part : NULL;
    for (int k = 0; k < tr->ngd + tr->npd; k++) {
        leafref *l = k < tr->ngd ? &tr->gd[k] : &tr->pd[k - tr->ngd];
        const bpv_data *d = &m->data[l->ref];
        l->src = tr->f32 ? (const void *)d->values32 : (const void *)d->values;
        l->sn = bpv_shape_numel(&d->sample);
    }
    tr->inspect =
        o->gradcheck || o->on_warning || o->keep_first_nonfinite || t->stop_on_nonfinite;
    /* each train starts a new optimizer, as a new torch.optim object would */
    for (int k = 0; k < tr->nps; k++)
        bpv_optim_reset(m, &m->params[tr->ps[k].ref], &m->run.optim[tr->ps[k].ref]);
    tr->total = m->total_steps;
    tr->maxkeep = maxkeep;
    tr->next_keep = o->keep ? bpv_step_set_next(o->keep, m->run.step + 1, tr->total) : LONG_MAX;
    return BPV_OK;
}

/* A kept step's snapshot, with the params after the update, into the
 * model's list; the caller's on_snapshot may ask to stop. */
static int keep_snapshot(bpv_model *m, const bpv_run_options *o, bpv_snapshot *snap, bool *stop,
                         bpv_error **err) {
    bpv_snapshot_set_after(snap, m);
    if (m->run.nsnaps == m->run.capsnaps) {
        size_t nc = m->run.capsnaps ? m->run.capsnaps * 2 : 16;
        bpv_snapshot **v = realloc(m->run.snaps, nc * sizeof *v);
        if (!v) {
            bpv_snapshot_free(snap);
            return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        }
        m->run.snaps = v;
        m->run.capsnaps = nc;
    }
    m->run.snaps[m->run.nsnaps++] = snap;
    if (o->on_snapshot && o->on_snapshot(snap, o->user)) *stop = true;
    return BPV_OK;
}

/* Runs one train statement; *stop is set when the caller asked to stop.
 * The step loop reads the trainer's fields as locals, which the compiler
 * keeps in registers (a store through a graph's bool flags could alias a
 * struct's), so that a step of a few scalars costs no more than it must. */
static int run_train(bpv_model *m, bpv_train *t, const bpv_run_options *o, bpv_buf *b,
                     long maxkeep, bool *stop, bpv_error **err) {
    trainer tr;
    int rc = train_begin(&tr, m, t, o, maxkeep, err);
    if (rc != BPV_OK) return rc;
    bpv_graph *const G = tr.G, *const P = tr.P;
    const bpv_scalar_plan *const TG = tr.TG, *const TP = tr.TP;
    const leafref *const gd = tr.gd, *const pd = tr.pd, *const ps = tr.ps;
    const int ngd = tr.ngd, npd = tr.npd, nps = tr.nps;
    const int64_t n = tr.n;
    int64_t *const perm = tr.perm;
    const bool f32 = tr.f32, inspect = tr.inspect;
    const long total = tr.total;
    long next_keep = tr.next_keep;
    uint64_t rng = t->seed;
    for (long e = 0; e < t->epochs && !*stop && rc == BPV_OK; e++) {
        for (int64_t i = 0; i < n; i++) perm[i] = i;
        if (t->shuffle) bpv_shuffle(perm, n, &rng);
        double loss = 0;
        for (long s = 0; s < t->steps_per_epoch; s++) {
            bool last = P && s == t->steps_per_epoch - 1;
            bpv_graph *g = last ? P : G;
            const bpv_scalar_plan *plan = last ? TP : TG;
            int64_t start = s * t->bsize;
            int64_t cnt = last ? t->nsamples - start : t->bsize;
            /* a step nobody records need not keep every edge's partial */
            const bool unread = m->run.step + 1 < next_keep;
            fill_batch(t, last ? pd : gd, last ? npd : ngd, perm, start, cnt, f32);
            if (plan) bpv_scalar_forward(plan);
            else bpv_graph_forward(g);
            /* the tutorial zeroes .grad after each update, i.e. from the
             * second backward on; before the first it is still None */
            if (t->zero_grad && m->run.step > 0 && !plan)
                g->params_zeroed = true; /* the backward pass zeroes as it writes */
            else if (t->zero_grad && m->run.step > 0)
                for (int k = 0; k < nps; k++) {
                    bpv_param *p = &m->params[ps[k].ref];
                    memset(p->grad, 0, (size_t)p->numel * (f32 ? sizeof(float) : sizeof(double)));
                }
            g->edges_unread = unread && !inspect;
            if (plan) bpv_scalar_backward(plan);
            else bpv_graph_backward(g);
            m->run.step++;
            if (o->on_progress) /* a figure's run ends at its last kept step */
                o->on_progress(m->run.step, o->stop_after_last_kept && maxkeep < total ? maxkeep : total,
                               o->progress_user);
            loss = bpv_node_value(g, &g->nodes[g->objective], 0);
            bpv_snapshot *snap = NULL;
            if (m->run.step >= next_keep) { /* steps count up by one: this is next_keep */
                next_keep = bpv_step_set_next(o->keep, m->run.step + 1, total);
                snap = bpv_snapshot_take(m, g, m->run.step, m->run.epoch,
                                         t->nsamples ? perm + start : NULL, t->nsamples ? cnt : 0);
                if (!snap) {
                    rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                                          "out of memory taking a snapshot"));
                    break;
                }
            }
            bpv_inspect_nonfinite(snap);
            bool nf_stop = false;
            if (snap && o->gradcheck && !bpv_gradcheck(m, g, snap)) {
                bpv_snapshot_free(snap);
                rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
                break;
            }
            if (inspect)
                rc = inspect_step(m, g, t, o, &snap, perm + start, t->nsamples ? cnt : 0, ps, nps,
                                  &nf_stop, err);
            if (rc != BPV_OK) {
                bpv_snapshot_free(snap);
                break;
            }
            for (int k = 0; k < nps; k++) bpv_optim_update(m, t, ps[k].ref);
            if (snap && (rc = keep_snapshot(m, o, snap, stop, err)) != BPV_OK) break;
            if (o->stop_after_last_kept && m->run.step >= maxkeep) *stop = true;
            if (nf_stop) *stop = true;
            if (*stop) break;
        }
        if (*stop || rc != BPV_OK) break;
        rc = epoch_line(m, t, loss, o, b, err);
        m->run.epoch++;
    }
    train_end(&tr);
    return rc;
}

/* The state a run starts from, whatever ran before: no step taken, the
 * params' initial values, their grads as at load (-0.0: torch's None), new
 * optimizers, no kept snapshot. Graphs keep pointing at the same buffers;
 * what a step leaves in a graph's own buffers the next step overwrites. */
static void run_reset(bpv_model *m) {
    bpv_run *r = &m->run;
    for (size_t i = 0; i < r->nsnaps; i++) bpv_snapshot_free(r->snaps[i]);
    r->nsnaps = 0;
    r->step = r->epoch = r->nf_step = 0;
    r->cur_stmt = 0;
    memset(r->grad_used, 0, (size_t)m->nparams * sizeof *r->grad_used);
    memset(r->grad_seen, 0, (size_t)m->nparams * sizeof *r->grad_seen);
    for (int k = 0; k < m->nparams; k++) {
        bpv_param *p = &m->params[k];
        bpv_param_restart(m, p);
        bpv_optim_reset(m, p, &r->optim[k]);
    }
}

int bpv_model_exec(bpv_model *m, const bpv_run_options *o, bpv_error **err) {
    run_reset(m);
    bpv_buf b;
    bpv_buf_init(&b);
    long maxkeep = o->keep ? bpv_step_set_max(o->keep, m->total_steps) : 0;
    bool stop = false;
    int rc = BPV_OK, ti = 0;
    for (int i = 0; i < m->prog.nstmts && rc == BPV_OK && !stop; i++) {
        const bpv_stmt *st = &m->prog.stmts[i];
        m->run.cur_stmt = i;
        if (st->kind == ST_PREDICT) {
            rc = run_predict(m, i, o, &b, err);
        } else if (st->kind == ST_TRAIN) {
            if (o->stop_after_last_kept && m->run.step >= maxkeep) break;
            rc = run_train(m, &m->trains[ti++], o, &b, maxkeep, &stop, err);
        }
    }
    if (rc == BPV_OK && o->out && fflush(o->out) != 0)
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot write the output: %s",
                                              strerror(errno)));
    bpv_buf_free(&b);
    return rc;
}
