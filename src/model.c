/* The loaded program: declarations checked top to bottom (bpv_model_prepare),
 * `train` keys, objectives and `predict` bindings checked and compiled, so
 * that a bad model fails before anything runs. Data (data.c) and param
 * initial values (init.c) are read here too; running is train.c's. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "init.h"
#include "model.h"

/* ---- errors --------------------------------------------------------------- */

bool bpv_model_fail(const bpv_model *m, bpv_error **err, size_t off, size_t len,
                    const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bpv_error_set(err, bpv_error_at(&m->src, off, len, BPV_ERR_MODEL, "%s", msg));
    return false;
}

bool bpv_model_oom(bpv_error **err) {
    bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    return false;
}

static int line_of(const bpv_model *m, size_t off) {
    int line, col;
    bpv_source_locate(&m->src, off, &line, &col);
    return line;
}

bool bpv_model_fits(const bpv_model *m, size_t bytes) {
    return bpv_memory_fits(bpv_arena_used(m->arena), bytes);
}

bool bpv_model_too_big(const bpv_model *m, bpv_error **err, size_t off, size_t len,
                       const char *what, size_t bytes) {
    char msg[1024];
    bpv_memory_text(msg, sizeof msg, what, (uint64_t)bpv_arena_used(m->arena) + bytes,
                    "make its tensors or batches smaller");
    return bpv_model_fail(m, err, off, len, "%s", msg);
}

/* ---- number helpers --------------------------------------------------------------- */


static bool is_name(const bpv_ast *e, const char *s) {
    return e->kind == AST_NAME && strcmp(e->name, s) == 0;
}

/* ---- declarations ------------------------------------------------------------------ */

static bool declare(bpv_model *m, const bpv_stmt *st, int i, bpv_sym_kind kind, int ref,
                    bpv_error **err) {
    if (bpv_is_builtin(st->name))
        return bpv_model_fail(m, err, st->name_off, st->name_len,
                    "'%s' is a built-in function; choose another name", st->name);
    int k = bpv_sym_find(m, st->name);
    if (k >= 0 && m->syms[k].kind == BPV_SYM_FAMILY)
        return bpv_model_fail(m, err, st->name_off, st->name_len,
                              "'%s' is already a family of nodes (%s[...], from line %d)",
                              st->name, st->name,
                              line_of(m, m->prog.stmts[m->syms[k].stmt].name_off));
    if (k >= 0)
        return bpv_model_fail(m, err, st->name_off, st->name_len, "'%s' is already defined at line %d",
                    st->name, line_of(m, m->prog.stmts[m->syms[k].stmt].name_off));
    if (!bpv_sym_add(m, st->name, kind, ref, i)) return bpv_model_oom(err);
    return true;
}

/* h[3] = ...: the family h is declared by its first member; a plain name
 * h cannot also be defined. */
static bool declare_family(bpv_model *m, const bpv_stmt *st, int i, bpv_error **err) {
    int k = bpv_sym_find(m, st->family);
    if (k >= 0 && m->syms[k].kind == BPV_SYM_FAMILY) return true;
    if (bpv_is_builtin(st->family))
        return bpv_model_fail(m, err, st->name_off, strlen(st->family),
                              "'%s' is a built-in function; choose another name", st->family);
    if (k >= 0)
        return bpv_model_fail(m, err, st->name_off, strlen(st->family),
                              "'%s' is already defined at line %d, so it cannot also name a "
                              "family of nodes",
                              st->family, line_of(m, m->prog.stmts[m->syms[k].stmt].name_off));
    return bpv_sym_add(m, st->family, BPV_SYM_FAMILY, -1, i) || bpv_model_oom(err);
}

static bool validate_data(bpv_model *m, const bpv_stmt *st, int i, bpv_error **err) {
    if (!declare(m, st, i, BPV_SYM_DATA, m->ndata, err)) return false;
    bpv_data *d = &m->data[m->ndata];
    d->name = st->name;
    d->stmt = st;
    if (!bpv_data_load(m, st, d, err)) return false;
    m->ndata++;
    return true;
}

static bool validate_param(bpv_model *m, const bpv_stmt *st, int i, bpv_error **err) {
    if (!declare(m, st, i, BPV_SYM_PARAM, m->nparams, err)) return false;
    bpv_param *p = &m->params[m->nparams];
    p->name = st->name;
    p->stmt = st;
    for (int k = 0; k < st->nkv; k++) {
        const bpv_ast_kv *kv = &st->kv[k];
        if (strcmp(kv->key, "lr") != 0) {
            static const char *const keys[] = {"lr"};
            const char *s = bpv_closest(kv->key, keys, 1);
            return bpv_model_fail(m, err, kv->key_off, kv->key_len,
                        "unknown param option '%s'%s; a param takes only lr=NUMBER", kv->key,
                        s ? " (did you mean 'lr'?)" : "");
        }
        if (p->has_lr)
            return bpv_model_fail(m, err, kv->key_off, kv->key_len, "lr is given twice");
        if (!bpv_ast_number(kv->value, &p->lr) || !(p->lr >= 0) || !isfinite(p->lr))
            return bpv_model_fail(m, err, kv->value->off, kv->value->len,
                        "lr must be a number of at least 0, like lr=0.01");
        p->has_lr = true;
    }
    if (!bpv_param_init(m, st, p, err)) return false;
    /* value, .grad and the optimizer's two buffers, in the model's storage;
     * the doubles bpv_param_init made stay as the initial value every run
     * starts from */
    const size_t esz = m->f32store ? sizeof(float) : sizeof(double);
    size_t bytes = (size_t)p->numel * 4 * esz;
    if (!bpv_model_fits(m, bytes))
        return bpv_model_too_big(m, err, st->value->off, st->value->len,
                                 "the model with this param (its value, gradient and optimizer "
                                 "state)",
                                 bytes);
    p->init = p->val;
    bpv_optim_state *os = &m->run.optim[m->nparams];
    p->val = bpv_arena_alloc(m->arena, (size_t)p->numel * esz);
    p->grad = bpv_arena_calloc(m->arena, (size_t)p->numel, esz);
    os->m = bpv_arena_calloc(m->arena, (size_t)p->numel, esz);
    os->v = bpv_arena_calloc(m->arena, (size_t)p->numel, esz);
    if (!p->val || !p->grad || !os->m || !os->v) return bpv_model_oom(err);
    bpv_param_restart(m, p);
    m->nparams++;
    return true;
}

void bpv_param_restart(const bpv_model *m, bpv_param *p) {
    /* torch's .grad starts as None and the first backward stores its result
     * as is; -0.0 + g == g for every g (a -0.0 gradient included), which
     * plain zeroes would turn into +0.0 */
    for (int64_t q = 0; q < p->numel; q++) {
        if (m->f32store) p->val32[q] = (float)p->init[q], p->grad32[q] = -0.0f;
        else p->val[q] = p->init[q], p->grad[q] = -0.0;
    }
}

static bool validate_const(bpv_model *m, const bpv_stmt *st, int i, bpv_error **err) {
    if (!declare(m, st, i, BPV_SYM_CONST, m->nconsts, err)) return false;
    bpv_const *c = &m->consts[m->nconsts];
    char what[300];
    snprintf(what, sizeof what, "const '%s'", st->name);
    c->name = st->name;
    c->stmt = st;
    if (!bpv_const_eval(m, st->value, what, &c->shape, &c->values, err)) return false;
    m->nconsts++;
    return true;
}

static bool validate_fn(bpv_model *m, const bpv_stmt *st, int i, bpv_error **err) {
    if (!declare(m, st, i, BPV_SYM_FN, -1, err)) return false;
    for (int k = 0; k < st->nparams; k++) {
        size_t off = st->param_offs ? st->param_offs[k] : st->off;
        if (bpv_is_builtin(st->params[k]))
            return bpv_model_fail(m, err, off, strlen(st->params[k]),
                        "'%s' is a built-in function; choose another parameter name",
                        st->params[k]);
        for (int j = 0; j < k; j++)
            if (strcmp(st->params[j], st->params[k]) == 0)
                return bpv_model_fail(m, err, off, strlen(st->params[k]),
                            "parameter '%s' appears twice", st->params[k]);
    }
    if (st->grads) return bpv_custom_make(m, st, i, err);
    return bpv_expr_validate(m, st->value, i, st->params, st->nparams, st->name, err);
}

/* ---- train ------------------------------------------------------------------------ */

static const char *const train_keys[] = {"epochs", "lr",  "batch",     "optimizer",
                                         "momentum", "beta1", "beta2", "eps",
                                         "zero_grad", "shuffle", "seed", "loss",
                                         "stop_on_nonfinite"};
#define NTRAIN_KEYS (sizeof train_keys / sizeof train_keys[0])

static bool bool_value(bpv_model *m, const bpv_ast_kv *kv, bool *out, bpv_error **err) {
    if (is_name(kv->value, "true")) *out = true;
    else if (is_name(kv->value, "false")) *out = false;
    else
        return bpv_model_fail(m, err, kv->value->off, kv->value->len, "%s must be true or false",
                    kv->key);
    return true;
}

static bool unit_interval(bpv_model *m, const bpv_ast_kv *kv, double *out, bpv_error **err) {
    if (!bpv_ast_number(kv->value, out) || !(*out >= 0 && *out < 1))
        return bpv_model_fail(m, err, kv->value->off, kv->value->len,
                    "%s must be a number from 0 up to (not including) 1, like %s=0.9", kv->key,
                    kv->key);
    return true;
}

static bool train_keys_parse(bpv_model *m, const bpv_stmt *st, bpv_train *t, bpv_error **err) {
    const bpv_ast_kv *given[NTRAIN_KEYS] = {0};
    for (int k = 0; k < st->nkv; k++) {
        const bpv_ast_kv *kv = &st->kv[k];
        size_t j = 0;
        while (j < NTRAIN_KEYS && strcmp(train_keys[j], kv->key) != 0) j++;
        if (j == NTRAIN_KEYS) {
            const char *s = bpv_closest(kv->key, train_keys, NTRAIN_KEYS);
            if (s)
                return bpv_model_fail(m, err, kv->key_off, kv->key_len,
                            "unknown train key '%s' (did you mean '%s'?)", kv->key, s);
            return bpv_model_fail(m, err, kv->key_off, kv->key_len,
                        "unknown train key '%s'; the keys are epochs, lr, batch, optimizer, "
                        "momentum, beta1, beta2, eps, zero_grad, shuffle, seed, loss, "
                        "stop_on_nonfinite",
                        kv->key);
        }
        if (given[j])
            return bpv_model_fail(m, err, kv->key_off, kv->key_len, "%s is given twice", kv->key);
        given[j] = kv;
    }
    t->stmt = st;
    t->epochs = 0;
    t->batch = 1;
    t->momentum = 0;
    t->beta1 = 0.9;
    t->beta2 = 0.999;
    t->eps = 1e-8;
    t->zero_grad = true;
    t->loss = "loss";
    t->loss_off = st->off;
    t->loss_len = st->len;
    double v;
    const bpv_ast_kv *kv;
    if (!(kv = given[0]))
        return bpv_model_fail(m, err, st->off, st->len,
                    "train needs epochs=N, the number of passes over the data");
    if (!bpv_ast_whole(kv->value, 1, 1e9, &v))
        return bpv_model_fail(m, err, kv->value->off, kv->value->len,
                    "epochs must be a whole number from 1 to 1000000000");
    t->epochs = (long)v;
    if ((kv = given[3])) {
        if (is_name(kv->value, "adam")) t->adam = true;
        else if (!is_name(kv->value, "sgd")) {
            static const char *const opts[] = {"sgd", "adam"};
            const char *s = kv->value->kind == AST_NAME ? bpv_closest(kv->value->name, opts, 2)
                                                        : NULL;
            return bpv_model_fail(m, err, kv->value->off, kv->value->len,
                        "optimizer must be sgd or adam%s%s%s", s ? " (did you mean '" : "",
                        s ? s : "", s ? "'?)" : "");
        }
    }
    t->lr = t->adam ? 0.001 : 0.01;
    if ((kv = given[1]) && (!bpv_ast_number(kv->value, &t->lr) || !(t->lr >= 0) || !isfinite(t->lr)))
        return bpv_model_fail(m, err, kv->value->off, kv->value->len,
                    "lr must be a number of at least 0, like lr=0.01");
    if ((kv = given[2])) {
        if (is_name(kv->value, "all")) t->batch = 0;
        else if (bpv_ast_whole(kv->value, 1, (double)BPV_MAX_TENSOR_ELEMS, &v)) t->batch = (int64_t)v;
        else
            return bpv_model_fail(m, err, kv->value->off, kv->value->len,
                        "batch must be a whole number of samples from 1, or all");
    }
    if ((kv = given[4])) {
        if (t->adam)
            return bpv_model_fail(m, err, kv->key_off, kv->key_len,
                        "momentum is an sgd setting; adam uses beta1 and beta2");
        if (!bpv_ast_number(kv->value, &t->momentum) || !(t->momentum >= 0) ||
            !isfinite(t->momentum))
            return bpv_model_fail(m, err, kv->value->off, kv->value->len,
                        "momentum must be a number of at least 0, like momentum=0.9");
    }
    for (int j = 5; j <= 7; j++)
        if ((kv = given[j]) && !t->adam)
            return bpv_model_fail(m, err, kv->key_off, kv->key_len,
                        "%s is an adam setting; add optimizer=adam", kv->key);
    if ((kv = given[5]) && !unit_interval(m, kv, &t->beta1, err)) return false;
    if ((kv = given[6]) && !unit_interval(m, kv, &t->beta2, err)) return false;
    if ((kv = given[7]) && (!bpv_ast_number(kv->value, &t->eps) || !(t->eps >= 0) || !isfinite(t->eps)))
        return bpv_model_fail(m, err, kv->value->off, kv->value->len,
                    "eps must be a number of at least 0, like eps=1e-8");
    if ((kv = given[8]) && !bool_value(m, kv, &t->zero_grad, err)) return false;
    if ((kv = given[9]) && !bool_value(m, kv, &t->shuffle, err)) return false;
    if ((kv = given[12]) && !bool_value(m, kv, &t->stop_on_nonfinite, err)) return false;
    if ((kv = given[10])) {
        if (!bpv_ast_whole(kv->value, 0, 9007199254740992.0, &v))
            return bpv_model_fail(m, err, kv->value->off, kv->value->len,
                        "seed must be a whole number from 0");
        t->seed = (uint64_t)v;
    }
    if ((kv = given[11])) {
        if (kv->value->kind != AST_NAME)
            return bpv_model_fail(m, err, kv->value->off, kv->value->len,
                        "loss must name a node, like loss=total");
        t->loss = kv->value->name;
        t->loss_off = kv->value->off;
        t->loss_len = kv->value->len;
    }
    return true;
}

static bool validate_train(bpv_model *m, const bpv_stmt *st, int i, bool *covered,
                        bpv_error **err) {
    bpv_train *t = &m->trains[m->ntrains];
    if (!train_keys_parse(m, st, t, err)) return false;
    t->stmt_index = i;
    int k = bpv_sym_find(m, t->loss);
    bool named = t->loss_off != st->off;
    /* (looked for only when needed: a scan of every later statement) */
    int later = k < 0 && !named ? bpv_later_def(m, t->loss, i) : -1;
    if (k < 0 && !named && later >= 0)
        return bpv_model_fail(m, err, st->off, st->len,
                    "the loss is defined at line %d, after this train; move the train below it",
                    line_of(m, m->prog.stmts[later].off));
    if (k < 0 && !named)
        return bpv_model_fail(m, err, st->off, st->len,
                    "no node named 'loss' to train; name one `loss = ...` or use train "
                    "loss=NAME");
    if (k < 0 || m->syms[k].stmt >= i || m->syms[k].kind == BPV_SYM_FN) {
        bpv_ast tmp = {0};
        tmp.kind = AST_NAME;
        tmp.name = t->loss;
        tmp.off = t->loss_off;
        tmp.len = t->loss_len;
        if (!named && k >= 0 && m->syms[k].kind != BPV_SYM_FN)
            return bpv_model_fail(m, err, st->off, st->len,
                        "the loss is defined at line %d, after this train; move the train "
                        "below it",
                        line_of(m, m->prog.stmts[m->syms[k].stmt].off));
        if (!named) tmp.off = st->off, tmp.len = st->len;
        if (!bpv_expr_validate(m, &tmp, i, NULL, 0, NULL, err)) return false;
        return bpv_model_fail(m, err, tmp.off, tmp.len, "'%s' cannot be trained", t->loss);
    }
    /* the data this objective reads decide the samples per epoch; what it
     * needs is defined at or before its own statement, so the work is
     * bounded by that, not by the model's length (many train lines stay
     * linear) */
    const int top = m->syms[k].stmt;
    bool *need = calloc((size_t)top + 1, sizeof *need);
    if (!need) return bpv_model_oom(err);
    bpv_mark_needed(m, t->loss, need);
    const bpv_data *first = NULL;
    for (int j = 0; j <= top && j < i; j++) {
        if (!need[j]) continue;
        covered[j] = true;
        if (m->prog.stmts[j].kind != ST_DATA) continue;
        const bpv_data *d = &m->data[m->syms[bpv_sym_find(m, m->prog.stmts[j].name)].ref];
        if (!first) {
            first = d;
        } else if (d->nsamples != first->nsamples) {
            free(need);
            return bpv_model_fail(m, err, st->off, st->len,
                        "data '%s' has %lld sample%s but '%s' has %lld; all data used by one "
                        "train must have the same number of samples",
                        d->name, (long long)d->nsamples, d->nsamples == 1 ? "" : "s",
                        first->name, (long long)first->nsamples);
        }
    }
    free(need);
    int64_t n = first ? first->nsamples : 1;
    int64_t b = t->batch == 1 || !first ? 1 : t->batch == 0 ? n : (t->batch < n ? t->batch : n);
    t->nsamples = first ? n : 0;
    t->bsize = b;
    t->steps_per_epoch = (long)((n + b - 1) / b);
    int64_t gb = (t->batch == 1 || !first) ? 0 : b; /* batch=1 keeps sample shapes */
    t->full = bpv_compile_ex(m, i, t->loss, t->loss_off, t->loss_len, gb, false, NULL, 0, true,
                             err);
    if (!t->full) return false;
    const bpv_node *obj = &t->full->nodes[t->full->objective];
    const bpv_stmt *ls = &m->prog.stmts[m->syms[k].stmt];
    if (obj->shape.rank != 0) {
        char sb[128];
        return bpv_model_fail(m, err, ls->name_off, ls->name_len,
                    "the loss '%s' has shape %s; wrap it in mean() or sum()", t->loss,
                    bpv_shape_str(&obj->shape, sb, sizeof sb));
    }
    if (!obj->needs_grad)
        return bpv_model_fail(m, err, ls->name_off, ls->name_len,
                    "the loss '%s' does not depend on any param, so training cannot change it",
                    t->loss);
    int64_t r = gb ? n % b : 0;
    t->part = NULL;
    if (r) {
        t->part = bpv_compile_ex(m, i, t->loss, t->loss_off, t->loss_len, r, false, NULL, 0,
                                 true, err);
        if (!t->part) return false;
    }
    double total = (double)m->total_steps + (double)t->epochs * (double)t->steps_per_epoch;
    if (total > 1e12)
        return bpv_model_fail(m, err, st->off, st->len,
                    "this model would train for %.0f steps; the limit is 1e12", total);
    m->total_steps += t->epochs * t->steps_per_epoch;
    m->ntrains++;
    return true;
}

/* ---- predict --------------------------------------------------------------------- */

static bool validate_predict(bpv_model *m, const bpv_stmt *st, int i, bool *covered,
                          bpv_error **err) {
    bpv_ast tmp = {0};
    tmp.kind = AST_NAME;
    tmp.name = st->name;
    tmp.off = st->name_off;
    tmp.len = st->name_len;
    if (!bpv_expr_validate(m, &tmp, i, NULL, 0, NULL, err)) return false;
    bpv_binding *bind = st->nkv ? bpv_arena_calloc(m->arena, (size_t)st->nkv, sizeof *bind) : NULL;
    if (st->nkv && !bind) return bpv_model_oom(err);
    for (int k = 0; k < st->nkv; k++) {
        const bpv_ast_kv *kv = &st->kv[k];
        int s = bpv_sym_find(m, kv->key);
        if (s < 0 || m->syms[s].stmt >= i) {
            tmp.name = kv->key;
            tmp.off = kv->key_off;
            tmp.len = kv->key_len;
            return bpv_expr_validate(m, &tmp, i, NULL, 0, NULL, err) &&
                   bpv_model_fail(m, err, kv->key_off, kv->key_len, "unknown data '%s'", kv->key);
        }
        if (m->syms[s].kind != BPV_SYM_DATA) {
            static const char *const kinds[] = {"data", "a param", "a const", "a named node",
                                                "a function", "a family of nodes"};
            return bpv_model_fail(m, err, kv->key_off, kv->key_len,
                        "'%s' is %s, not data; predict can only give values to data", kv->key,
                        kinds[m->syms[s].kind]);
        }
        for (int j = 0; j < k; j++)
            if (strcmp(bind[j].name, kv->key) == 0)
                return bpv_model_fail(m, err, kv->key_off, kv->key_len, "'%s' is given twice", kv->key);
        char what[300];
        snprintf(what, sizeof what, "the value of '%s'", kv->key);
        double *v;
        if (!bpv_const_eval(m, kv->value, what, &bind[k].shape, &v, err)) return false;
        bind[k].name = kv->key;
        bind[k].values = v;
    }
    /* bind is non-NULL even with no bindings: a prediction takes no declared data */
    bpv_graph *g = bpv_compile_ex(m, i, st->name, st->name_off, st->name_len, 0, true, bind,
                                  st->nkv, false, err);
    if (!g) return false;
    m->predicts[i] = g;
    const int top = m->syms[bpv_sym_find(m, st->name)].stmt; /* validated above */
    bool *need = calloc((size_t)top + 1, sizeof *need);
    if (!need) return bpv_model_oom(err);
    bpv_mark_needed(m, st->name, need);
    for (int j = 0; j <= top && j < i; j++) covered[j] |= need[j];
    free(need);
    return true;
}

/* ---- the check -------------------------------------------------------------------- */

/* An f32 model stores float32 everywhere (its params, data and graphs);
 * BPV_STORE_F64=1 keeps doubles holding float32 values instead, to compare
 * the two storages on whole models (ctest runs the golden models both
 * ways). */
static bool store_f32(const bpv_model *m) {
    return m->dtype == BPV_F32 && !getenv("BPV_STORE_F64");
}

bool bpv_model_prepare(bpv_model *m, bpv_error **err) {
    const bpv_program *pr = &m->prog;
    int nd = 0, np = 0, nc = 0, nt = 0;
    for (int i = 0; i < pr->nstmts; i++) {
        switch (pr->stmts[i].kind) {
        case ST_DATA: nd++; break;
        case ST_PARAM: np++; break;
        case ST_CONST: nc++; break;
        case ST_TRAIN: nt++; break;
        default: break;
        }
    }
    m->data = bpv_arena_calloc(m->arena, (size_t)nd + 1, sizeof *m->data);
    m->params = bpv_arena_calloc(m->arena, (size_t)np + 1, sizeof *m->params);
    m->consts = bpv_arena_calloc(m->arena, (size_t)nc + 1, sizeof *m->consts);
    m->trains = bpv_arena_calloc(m->arena, (size_t)nt + 1, sizeof *m->trains);
    m->predicts = bpv_arena_calloc(m->arena, (size_t)pr->nstmts + 1, sizeof *m->predicts);
    m->run.optim = bpv_arena_calloc(m->arena, (size_t)np + 1, sizeof *m->run.optim);
    m->run.grad_used = bpv_arena_calloc(m->arena, (size_t)np + 1, sizeof(bool));
    m->run.grad_seen = bpv_arena_calloc(m->arena, (size_t)np + 1, sizeof(bool));
    bool *covered = calloc((size_t)pr->nstmts + 1, sizeof *covered);
    if (!m->data || !m->params || !m->consts || !m->trains || !m->predicts || !m->run.optim ||
        !m->run.grad_used || !m->run.grad_seen || !covered) {
        free(covered);
        return bpv_model_oom(err);
    }
    m->total_steps = 0;
    m->f32store = store_f32(m);
    bool ok = true;
    int dtype_stmt = -1, first_decl = -1;
    for (int i = 0; ok && i < pr->nstmts; i++) {
        const bpv_stmt *st = &pr->stmts[i];
        switch (st->kind) {
        case ST_DTYPE:
            if (dtype_stmt >= 0)
                ok = bpv_model_fail(m, err, st->off, st->len, "dtype is already set at line %d",
                          line_of(m, pr->stmts[dtype_stmt].off));
            else if (first_decl >= 0)
                ok = bpv_model_fail(m, err, st->off, st->len,
                          "dtype must come before any data, param or const (line %d declares "
                          "one)",
                          line_of(m, pr->stmts[first_decl].off));
            else if (strcmp(st->name, "f32") == 0)
                m->dtype = BPV_F32, m->f32store = store_f32(m);
            else if (strcmp(st->name, "f64") == 0)
                m->dtype = BPV_F64, m->f32store = false;
            else {
                static const char *const dts[] = {"f32", "f64"};
                const char *s = bpv_closest(st->name, dts, 2);
                ok = bpv_model_fail(m, err, st->name_off, st->name_len, "unknown dtype '%s'%s%s%s; use f32 or f64",
                          st->name, s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
            }
            dtype_stmt = i;
            break;
        case ST_DATA:
            if (first_decl < 0) first_decl = i;
            ok = validate_data(m, st, i, err);
            break;
        case ST_PARAM:
            if (first_decl < 0) first_decl = i;
            ok = validate_param(m, st, i, err);
            break;
        case ST_CONST:
            if (first_decl < 0) first_decl = i;
            ok = validate_const(m, st, i, err);
            break;
        case ST_LET:
            ok = bpv_expr_validate(m, st->value, i, NULL, 0, NULL, err) &&
                 (!st->family || declare_family(m, st, i, err)) &&
                 declare(m, st, i, BPV_SYM_LET, -1, err);
            break;
        case ST_FOR: /* the parser unrolled it */
            break;
        case ST_FN:
            ok = validate_fn(m, st, i, err);
            break;
        case ST_TRAIN:
            ok = validate_train(m, st, i, covered, err);
            break;
        case ST_PREDICT:
            ok = validate_predict(m, st, i, covered, err);
            break;
        }
        (void)nt;
    }
    /* named nodes no train or predict uses still get their shapes checked,
     * with one sample per data */
    for (int i = pr->nstmts - 1; ok && i >= 0; i--) {
        const bpv_stmt *st = &pr->stmts[i];
        if (st->kind != ST_LET || covered[i]) continue;
        ok = bpv_compile_ex(m, i + 1, st->name, st->name_off, st->name_len, 0, false, NULL, 0,
                            false, err) != NULL;
        if (ok) bpv_mark_needed(m, st->name, covered);
    }
    free(covered);
    return ok;
}