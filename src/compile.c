/* Compiler: the model's symbols -> a static graph for one target node.
 *
 * Names are checked where they are written (bpv_expr_validate, at definition
 * time), so a typo is reported on its own line; shapes are checked when a
 * graph is built for a train or predict, because data shapes depend on the
 * batch. Named nodes are compiled once and shared; fn calls are inlined. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "model.h"

/* ---- built-ins ---------------------------------------------------------
 * The functions a model may call are the ops whose row has a call name
 * (ops.c), and the initialisers below. */

/* Initialisers: valid only as the value of a data or param declaration. */
static const char *const init_fns[] = {"csv", "npy", "zeros", "ones", "randn", "uniform"};
#define NINIT (sizeof init_fns / sizeof init_fns[0])

static bool is_init_fn(const char *name) {
    for (size_t i = 0; i < NINIT; i++)
        if (strcmp(init_fns[i], name) == 0) return true;
    return false;
}

bpv_op bpv_op_of_token(bpv_token_kind k) {
    switch (k) {
    case TK_PLUS: return BPV_OP_ADD;
    case TK_MINUS: return BPV_OP_SUB;
    case TK_STAR: return BPV_OP_MUL;
    case TK_SLASH: return BPV_OP_DIV;
    case TK_CARET:
    case TK_STARSTAR: return BPV_OP_POW;
    case TK_AT: return BPV_OP_MATMUL;
    default: return BPV_OP_NONE;
    }
}

bool bpv_is_builtin(const char *name) { return bpv_op_by_call(name) || is_init_fn(name); }

/* "2 arguments", "1 or 2 arguments", "2 or more arguments" */
static const char *arity_text(const bpv_op_def *d, char *buf, size_t n) {
    if (d->min_in == d->max_in)
        snprintf(buf, n, "%d argument%s", d->min_in, d->min_in == 1 ? "" : "s");
    else if (d->max_in < 0)
        snprintf(buf, n, "%d or more arguments", d->min_in);
    else
        snprintf(buf, n, "%d to %d arguments", d->min_in, d->max_in);
    return buf;
}

/* Inlined fn calls nest at most this deep: a guard against fn chains long
 * enough to exhaust the stack (direct recursion is rejected earlier). */
#define MAX_INLINE_DEPTH 64

/* ---- symbol table ---------------------------------------------------------- */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int bpv_sym_find(const bpv_model *m, const char *name) {
    if (!m->symcap) return -1;
    size_t mask = (size_t)m->symcap - 1;
    for (size_t i = hash_str(name) & mask;; i = (i + 1) & mask) {
        int k = m->symtab[i] - 1; /* 0 marks an empty slot (arena memory is zeroed) */
        if (k < 0) return -1;
        if (strcmp(m->syms[k].name, name) == 0) return k;
    }
}

bool bpv_sym_add(bpv_model *m, const char *name, bpv_sym_kind kind, int ref, int stmt) {
    if (m->nsyms + 1 > m->symcap / 2) {
        /* the table stays at most half full; syms has room for symcap/2 */
        int cap = m->symcap ? m->symcap * 2 : 32;
        bpv_symbol *syms = bpv_arena_calloc(m->arena, (size_t)cap / 2, sizeof *syms);
        int *tab = bpv_arena_calloc(m->arena, (size_t)cap, sizeof *tab);
        if (!syms || !tab) return false;
        if (m->nsyms) memcpy(syms, m->syms, (size_t)m->nsyms * sizeof *syms);
        m->syms = syms;
        m->symtab = tab;
        m->symcap = cap;
        for (int k = 0; k < m->nsyms; k++) {
            size_t mask = (size_t)cap - 1, i = hash_str(syms[k].name) & mask;
            while (tab[i]) i = (i + 1) & mask;
            tab[i] = k + 1;
        }
    }
    int k = m->nsyms++;
    m->syms[k] = (bpv_symbol){name, kind, ref, stmt};
    size_t mask = (size_t)m->symcap - 1, i = hash_str(name) & mask;
    while (m->symtab[i]) i = (i + 1) & mask;
    m->symtab[i] = k + 1;
    return true;
}

static int stmt_line(const bpv_model *m, int stmt) {
    int line, col;
    bpv_source_locate(&m->src, m->prog.stmts[stmt].off, &line, &col);
    return line;
}

/* ---- errors ------------------------------------------------------------------ */

static bool failv(const bpv_model *m, bpv_error **err, size_t off, size_t len, const char *fmt,
                  va_list ap) {
    bpv_buf b;
    bpv_buf_init(&b);
    char tmp[512];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    bpv_buf_puts(&b, tmp);
    bpv_error_set(err, bpv_error_at(&m->src, off, len, BPV_ERR_MODEL, "%s", b.data));
    bpv_buf_free(&b);
    return false;
}

static bool fail(const bpv_model *m, bpv_error **err, size_t off, size_t len, const char *fmt,
                 ...) BPV_PRINTF(5, 6);
static bool fail(const bpv_model *m, bpv_error **err, size_t off, size_t len, const char *fmt,
                 ...) {
    va_list ap;
    va_start(ap, fmt);
    failv(m, err, off, len, fmt, ap);
    va_end(ap);
    return false;
}

/* ---- constants ----------------------------------------------------------------- */

/* Rounds a number written in the model to the dtype, refusing values the
 * dtype cannot hold. */
static bool round_number(const bpv_model *m, const bpv_ast *e, double v, double *out,
                         bpv_error **err) {
    if (!isfinite(v))
        return fail(m, err, e->off, e->len, "this number is out of range for f64");
    double r = bpv_round(m->dtype, v);
    if (isinf(r))
        return fail(m, err, e->off, e->len,
                    "%g is out of range for f32 (the largest float32 is about 3.4028235e+38); "
                    "use `dtype f64` for larger numbers",
                    v);
    *out = r;
    return true;
}

/* Finds the shape of a nested list by following first elements. */
static bool list_shape(const bpv_model *m, const bpv_ast *e, const char *what, bpv_shape *s,
                       bpv_error **err) {
    s->rank = 0;
    while (e->kind == AST_LIST) {
        if (e->nargs == 0) return fail(m, err, e->off, e->len, "%s is an empty list", what);
        if (s->rank == BPV_MAX_RANK)
            return fail(m, err, e->off, e->len, "%s is nested more than %d levels deep", what,
                        BPV_MAX_RANK);
        s->dim[s->rank++] = e->nargs;
        e = e->args[0];
    }
    return true;
}

/* Fills values from a nested list of the given shape; reports ragged rows. */
static bool list_fill(const bpv_model *m, const bpv_ast *e, const char *what, const bpv_shape *s,
                      int depth, double **out, bpv_error **err) {
    if (depth == s->rank) {
        double v;
        if (e->kind == AST_LIST)
            return fail(m, err, e->off, e->len,
                        "%s is ragged: this element is a list, but the first element at this "
                        "level is a number",
                        what);
        if (!bpv_ast_number(e, &v))
            return fail(m, err, e->off, e->len, "%s: expected a number here", what);
        return round_number(m, e, v, (*out)++, err);
    }
    if (e->kind != AST_LIST)
        return fail(m, err, e->off, e->len,
                    "%s is ragged: expected a list of %lld elements here, like its first "
                    "element",
                    what, (long long)s->dim[depth]);
    if (e->nargs != s->dim[depth])
        return fail(m, err, e->off, e->len,
                    "%s is ragged: this list has %d element%s but the first one at this level "
                    "has %lld",
                    what, e->nargs, e->nargs == 1 ? "" : "s", (long long)s->dim[depth]);
    for (int i = 0; i < e->nargs; i++)
        if (!list_fill(m, e->args[i], what, s, depth + 1, out, err)) return false;
    return true;
}

bool bpv_const_eval(bpv_model *m, const bpv_ast *e, const char *what, bpv_shape *shape,
                    double **values, bpv_error **err) {
    bpv_shape s = {0};
    if (e->kind != AST_LIST) {
        double v;
        if (!bpv_ast_number(e, &v))
            return fail(m, err, e->off, e->len, "%s must be a number or a list of numbers",
                        what);
    }
    if (!list_shape(m, e, what, &s, err)) return false;
    int64_t n = 1;
    for (int i = 0; i < s.rank; i++) n *= s.dim[i]; /* bounded by the source size */
    if (n > BPV_MAX_TENSOR_ELEMS)
        return fail(m, err, e->off, e->len, "%s has %lld elements; the limit is %lld (BPV_MAX_TENSOR_ELEMS)", what,
                    (long long)n, (long long)BPV_MAX_TENSOR_ELEMS);
    double *v = bpv_arena_calloc(m->arena, (size_t)n, sizeof *v);
    if (!v) return fail(m, err, e->off, e->len, "out of memory reading %s", what);
    double *p = v;
    if (!list_fill(m, e, what, &s, 0, &p, err)) return false;
    *shape = s;
    *values = v;
    return true;
}

bool bpv_ast_whole(const bpv_ast *e, double lo, double hi, double *v) {
    return bpv_ast_number(e, v) && *v == floor(*v) && *v >= lo && *v <= hi;
}

bool bpv_shape_eval(const bpv_model *m, const bpv_ast *e, bpv_shape *s, bpv_error **err) {
    *s = (bpv_shape){0};
    double v;
    if (e->kind != AST_LIST) {
        if (!bpv_ast_whole(e, 1, 1e12, &v))
            return fail(m, err, e->off, e->len,
                        "a shape is a list of sizes, like [3, 2] (or [] for a scalar)");
        *s = (bpv_shape){1, {(int64_t)v}};
        if (v > (double)BPV_MAX_TENSOR_ELEMS)
            return fail(m, err, e->off, e->len,
                        "shape [%.0f] has %.0f elements; the limit is %lld (BPV_MAX_TENSOR_ELEMS)",
                        v, v, (long long)BPV_MAX_TENSOR_ELEMS);
        return true;
    }
    if (e->nargs > BPV_MAX_RANK)
        return fail(m, err, e->off, e->len, "a shape has at most %d dimensions", BPV_MAX_RANK);
    double n = 1;
    for (int i = 0; i < e->nargs; i++) {
        if (!bpv_ast_whole(e->args[i], 1, 1e12, &v))
            return fail(m, err, e->args[i]->off, e->args[i]->len,
                        "a size in a shape must be a whole number of at least 1");
        s->dim[s->rank++] = (int64_t)v;
        n *= v;
    }
    if (n > (double)BPV_MAX_TENSOR_ELEMS) {
        char b[128];
        return fail(m, err, e->off, e->len,
                    "shape %s has %.0f elements; the limit is %lld (BPV_MAX_TENSOR_ELEMS)",
                    bpv_shape_str(s, b, sizeof b), n, (long long)BPV_MAX_TENSOR_ELEMS);
    }
    return true;
}

int bpv_member_find(const bpv_model *m, const char *family, int64_t k) {
    char small[96];
    size_t n = strlen(family) + 24;
    char *name = n <= sizeof small ? small : malloc(n);
    if (!name) return -1;
    snprintf(name, n, "%s[%lld]", family, (long long)k);
    int r = bpv_sym_find(m, name);
    if (name != small) free(name);
    return r;
}

bpv_op bpv_call_op(const bpv_ast *e, bpv_op op) {
    const bpv_op_def *d = &bpv_ops[op];
    if (d->with_attrs == BPV_OP_NONE) return op;
    bool attrs = e->nargs > d->max_in;
    for (int i = 0; e->kwnames && i < e->nargs; i++) attrs = attrs || e->kwnames[i];
    return attrs ? d->with_attrs : op;
}

/* The loop variables in force at statement `stmt` (NULL outside loops). */
static const bpv_loop_env *stmt_env(const bpv_model *m, int stmt) {
    return stmt >= 0 && stmt < m->prog.nstmts ? m->prog.stmts[stmt].env : NULL;
}

static bool is_loop_var(const bpv_loop_env *env, const char *name) {
    for (; env; env = env->up)
        if (strcmp(env->var, name) == 0) return true;
    return false;
}

/* ---- name checks at definition time ------------------------------------------- */

typedef struct names {
    const char **v;
    size_t n, cap;
} names;

static void names_add(names *ns, const char *s) {
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 32;
        const char **v = realloc(ns->v, cap * sizeof *v);
        if (!v) return; /* suggestions are best effort */
        ns->v = v;
        ns->cap = cap;
    }
    ns->v[ns->n++] = s;
}

/* The closest visible name to `name`: values (want_fn false) or functions. */
static const char *suggest(const bpv_model *m, const char *name, int stmt,
                           const char *const *params, int nparams, bool want_fn) {
    names ns = {0};
    if (want_fn) {
        for (int i = 1; i < BPV_OP_COUNT; i++)
            if (bpv_ops[i].call) names_add(&ns, bpv_ops[i].call);
    } else {
        for (int i = 0; i < nparams; i++) names_add(&ns, params[i]);
    }
    /* on a tie bpv_closest keeps the first: names that share the first
     * letter come first, so `wx` suggests `w` rather than `x` */
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < m->nsyms; k++)
            if (m->syms[k].stmt < stmt && (m->syms[k].kind == BPV_SYM_FN) == want_fn &&
                (m->syms[k].name[0] == name[0]) == (pass == 0))
                names_add(&ns, m->syms[k].name);
    const char *best = bpv_closest(name, ns.v, ns.n);
    free(ns.v);
    return best;
}

int bpv_later_def(const bpv_model *m, const char *name, int stmt) {
    for (int i = stmt < 0 ? 0 : stmt; i < m->prog.nstmts; i++) {
        const bpv_stmt *st = &m->prog.stmts[i];
        if (st->kind != ST_TRAIN && st->kind != ST_PREDICT && st->kind != ST_DTYPE &&
            st->name && strcmp(st->name, name) == 0)
            return i;
    }
    return -1;
}

static bool unknown_name(bpv_model *m, const bpv_ast *e, const char *name, size_t off,
                         size_t len, int stmt, const char *const *params, int nparams,
                         bool is_call, bpv_error **err) {
    int later = bpv_later_def(m, name, stmt);
    if (later >= 0)
        return fail(m, err, off, len,
                    "'%s' is used before it is defined (at line %d); statements run top to "
                    "bottom",
                    name, stmt_line(m, later));
    const char *s = suggest(m, name, stmt, params, nparams, is_call);
    (void)e;
    if (is_call)
        return fail(m, err, off, len, "unknown function '%s'%s%s%s", name,
                    s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
    return fail(m, err, off, len, "unknown name '%s'%s%s%s", name, s ? " (did you mean '" : "",
                s ? s : "", s ? "'?)" : "");
}

static size_t name_len(const char *s) { return strlen(s); }

/* The tensor inputs and attributes of a call of op `op`: positional
 * arguments up to the op's inputs are its tensors, the ones after them its
 * attributes in the row's order, and NAME=VALUE arguments attributes by
 * name. Checks the counts, names and values, fills attr (row order,
 * defaults included) and *nin. */
bool bpv_call_args(const bpv_model *m, const bpv_ast *e, bpv_op op, int *nin, double *attr,
                   bpv_error **err) {
    const bpv_op_def *d = &bpv_ops[op];
    int npos = 0;
    while (npos < e->nargs && !(e->kwnames && e->kwnames[npos])) npos++;
    if (d->flags & BPV_OPF_SHAPE_ARG) { /* reshape(x, [2, -1]) */
        if (e->nargs != d->min_in + 1 || npos != e->nargs)
            return fail(m, err, e->off, e->len, "%s() takes a tensor and a shape, as %s(x, [2, 3])",
                        e->name, e->name);
        const bpv_ast *l = e->args[d->min_in];
        if (l->kind != AST_LIST || l->nargs < 1 || l->nargs > d->nattrs)
            return fail(m, err, l->off, l->len,
                        "the new shape is a list of 1 to %d sizes, like [2, 3] (one may be -1: "
                        "inferred)",
                        d->nattrs);
        int infer = 0;
        for (int a = 0; a < d->nattrs; a++) attr[a] = NAN;
        for (int a = 0; a < l->nargs; a++) {
            double v;
            if (!bpv_ast_whole(l->args[a], -1, 1e12, &v) || v == 0)
                return fail(m, err, l->args[a]->off, l->args[a]->len,
                            "a size must be a whole number of at least 1, or -1 for the one "
                            "inferred");
            if (v == -1 && infer++)
                return fail(m, err, l->args[a]->off, l->args[a]->len,
                            "only one size may be -1 (inferred)");
            attr[a] = v;
        }
        *nin = d->min_in;
        return true;
    }
    int tens = d->max_in < 0 || npos < d->max_in ? npos : d->max_in;
    char want[64];
    if (tens < d->min_in || (npos > tens + d->nattrs)) {
        if (d->nattrs == 0 && d->min_in == d->max_in)
            return fail(m, err, e->off, e->len, "%s() takes %d argument%s, got %d", e->name,
                        d->min_in, d->min_in == 1 ? "" : "s", e->nargs);
        if (d->nattrs == 0)
            return fail(m, err, e->off, e->len, "%s() takes %s, got %d", e->name,
                        arity_text(d, want, sizeof want), npos);
        /* the whole signature: clamp(a, lo, hi), conv2d(a, b[, c], stride=1, padding=0) */
        char sig[256];
        bool fixed = d->min_in == d->max_in;
        size_t k = (size_t)snprintf(sig, sizeof sig, "%s(", e->name);
        for (int i = 0; i < (d->max_in > 0 ? d->max_in : d->min_in) && k < sizeof sig; i++)
            k += i >= d->min_in ? (size_t)snprintf(sig + k, sizeof sig - k, "[, %c]", 'a' + i)
                                : (size_t)snprintf(sig + k, sizeof sig - k, "%s%c",
                                                   i ? ", " : "", 'a' + i);
        for (int a = 0; a < d->nattrs && k < sizeof sig; a++) {
            fixed = fixed && d->attrs[a].required;
            if (d->attrs[a].required)
                k += (size_t)snprintf(sig + k, sizeof sig - k, ", %s", d->attrs[a].name);
            else
                k += (size_t)snprintf(sig + k, sizeof sig - k, ", %s=%g", d->attrs[a].name,
                                      d->attrs[a].dflt);
        }
        if (k < sizeof sig) snprintf(sig + k, sizeof sig - k, ")");
        if (!fixed)
            return fail(m, err, e->off, e->len, "%s() is called as %s; got %d argument%s",
                        e->name, sig, npos, npos == 1 ? "" : "s");
        return fail(m, err, e->off, e->len, "%s() takes %d arguments, as %s; got %d", e->name,
                    d->min_in + d->nattrs, sig, npos);
    }
    bool given[BPV_MAX_ATTRS] = {false};
    for (int a = 0; a < d->nattrs; a++) attr[a] = d->attrs[a].dflt;
    for (int i = tens; i < e->nargs; i++) {
        const char *kw = e->kwnames ? e->kwnames[i] : NULL;
        int a = kw ? -1 : i - tens;
        for (int j = 0; kw && j < d->nattrs; j++)
            if (strcmp(d->attrs[j].name, kw) == 0) a = j;
        if (a < 0) {
            const char *names[BPV_MAX_ATTRS];
            for (int j = 0; j < d->nattrs; j++) names[j] = d->attrs[j].name;
            const char *near = d->nattrs ? bpv_closest(kw, names, (size_t)d->nattrs) : NULL;
            if (!d->nattrs)
                return fail(m, err, e->kwoffs[i], strlen(kw), "%s() takes no keyword arguments",
                            e->name);
            if (!near) {
                char opts[128];
                size_t k = 0;
                opts[0] = '\0';
                for (int j = 0; j < d->nattrs && k < sizeof opts; j++)
                    k += (size_t)snprintf(opts + k, sizeof opts - k, "%s%s", j ? ", " : "",
                                          d->attrs[j].name);
                return fail(m, err, e->kwoffs[i], strlen(kw),
                            "%s() has no option '%s'; its option%s %s %s", e->name, kw,
                            d->nattrs == 1 ? "" : "s", d->nattrs == 1 ? "is" : "are", opts);
            }
            return fail(m, err, e->kwoffs[i], strlen(kw), "%s() has no option '%s' (did you mean '%s'?)",
                        e->name, kw, near);
        }
        const bpv_attr_def *ad = &d->attrs[a];
        const bpv_ast *v = e->args[i];
        if (given[a])
            return fail(m, err, v->off, v->len, "%s() is given '%s' twice", e->name, ad->name);
        double x;
        if (!bpv_ast_number(v, &x) || !isfinite(x))
            return fail(m, err, v->off, v->len, "%s(): '%s' must be a number written here",
                        e->name, ad->name);
        if (ad->kind == BPV_ATTR_INT && (x != floor(x) || x < ad->lo || x > ad->hi))
            return fail(m, err, v->off, v->len,
                        "%s(): '%s' must be a whole number from %.0f to %.0f", e->name,
                        ad->name, ad->lo, ad->hi);
        attr[a] = x;
        given[a] = true;
    }
    for (int a = 0; a < d->nattrs; a++)
        if (d->attrs[a].required && !given[a])
            return fail(m, err, e->off, e->len, "%s() needs '%s'", e->name, d->attrs[a].name);
    *nin = tens;
    return true;
}

/* zeros(SHAPE) and ones(SHAPE) are also constant tensors in expressions. */
static bool is_const_fn(const char *name) {
    return strcmp(name, "zeros") == 0 || strcmp(name, "ones") == 0;
}

/* "h[7] is not defined; ...": the members of family `name` there are. */
static bool no_member(const bpv_model *m, const bpv_ast *at, const char *name, int64_t k,
                      int stmt, bpv_error **err) {
    char full[96];
    snprintf(full, sizeof full, "%.60s[%lld]", name, (long long)k);
    int later = bpv_later_def(m, full, stmt);
    if (later >= 0) {
        const bpv_loop_env *le = m->prog.stmts[later].env;
        return fail(m, err, at->off, at->len,
                    "%s is used before it is defined (at line %d%s%.40s%s%lld); statements run "
                    "top to bottom",
                    full, stmt_line(m, later), le ? ", in the step " : "", le ? le->var : "",
                    le ? " = " : "", le ? (long long)le->value : 0LL);
    }
    /* the members defined so far: their smallest and largest index */
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int i = 0; i < m->nsyms; i++) {
        const bpv_stmt *st = &m->prog.stmts[m->syms[i].stmt];
        if (m->syms[i].kind == BPV_SYM_LET && st->family && strcmp(st->family, name) == 0 &&
            m->syms[i].stmt < stmt) {
            if (st->member < lo) lo = st->member;
            if (st->member > hi) hi = st->member;
        }
    }
    if (lo > hi)
        return fail(m, err, at->off, at->len, "%s is not defined; no member of '%.60s' is yet",
                    full, name);
    return fail(m, err, at->off, at->len,
                "%s is not defined; the members of '%.60s' defined so far run from %lld to %lld",
                full, name, (long long)lo, (long long)hi);
}

/* name[i] or, where a call takes any number of inputs (`range`),
 * name[A..B]: a family's members or a slice of a tensor. */
static bool validate_index(bpv_model *m, const bpv_ast *e, int stmt, const char *const *params,
                           int nparams, const char *self, bool range, bpv_error **err) {
    const bpv_loop_env *env = nparams ? NULL : stmt_env(m, stmt);
    const bpv_ast *ix = e->args[0];
    int k = bpv_sym_find(m, e->name);
    bool family = k >= 0 && m->syms[k].kind == BPV_SYM_FAMILY;
    for (int i = 0; i < nparams; i++)
        if (strcmp(params[i], e->name) == 0) family = false;
    char msg[200];
    const bpv_ast *bad;
    int64_t lo, hi;
    if (ix->kind == AST_RANGE) {
        if (!family)
            return fail(m, err, ix->off, ix->len,
                        "'%s' is not a family of nodes; a range like h[1..5] selects a family's "
                        "members",
                        e->name);
        if (!range)
            return fail(m, err, e->off, e->len,
                        "a range %s[A..B] stands for several nodes; use it as an argument of "
                        "stack() or cat()",
                        e->name);
        if (!bpv_index_eval(ix->args[0], env, &lo, &bad, msg, sizeof msg) ||
            !bpv_index_eval(ix->args[1], env, &hi, &bad, msg, sizeof msg))
            return fail(m, err, bad->off, bad->len, "%s", msg);
        if (hi < lo)
            return fail(m, err, ix->off, ix->len,
                        "this range runs from %lld down to %lld; a range A..B needs A <= B",
                        (long long)lo, (long long)hi);
        if (hi - lo >= BPV_MAX_NODES)
            return fail(m, err, ix->off, ix->len, "this range has more than %d members (BPV_MAX_NODES)",
                        BPV_MAX_NODES);
    } else {
        if (!bpv_index_eval(ix, env, &lo, &bad, msg, sizeof msg))
            return fail(m, err, bad->off, bad->len, "%s", msg);
        hi = lo;
    }
    if (!family) { /* a slice of a tensor: the name must be a value here */
        bpv_ast name = *e;
        name.kind = AST_NAME;
        name.off = e->name_off;
        name.len = strlen(e->name);
        name.nargs = 0;
        return bpv_expr_validate(m, &name, stmt, params, nparams, self, err);
    }
    for (int64_t i = lo; i <= hi; i++) {
        int s = bpv_member_find(m, e->name, i);
        if (s < 0 || m->syms[s].stmt >= stmt) return no_member(m, e, e->name, i, stmt, err);
    }
    return true;
}

bool bpv_expr_validate(bpv_model *m, const bpv_ast *e, int stmt, const char *const *params,
                    int nparams, const char *self, bpv_error **err) {
    switch (e->kind) {
    case AST_NUMBER:
        return true;
    case AST_STRING:
        return fail(m, err, e->off, e->len,
                    "a string is not a value; strings only name files, as in csv(\"f.csv\", 0)");
    case AST_RANGE:
        return fail(m, err, e->off, e->len,
                    "a column range A:B is only allowed in csv(\"file.csv\", A:B)");
    case AST_INDEX:
        return validate_index(m, e, stmt, params, nparams, self, false, err);
    case AST_NAME: {
        for (int i = 0; i < nparams; i++)
            if (strcmp(params[i], e->name) == 0) return true;
        int k = bpv_sym_find(m, e->name);
        if (!nparams && is_loop_var(stmt_env(m, stmt), e->name))
            return fail(m, err, e->off, e->len,
                        "'%s' is a loop variable; it can be used in an index, like h[%s-1], "
                        "not as a value",
                        e->name, e->name);
        if (k >= 0 && m->syms[k].kind == BPV_SYM_FAMILY)
            return fail(m, err, e->off, e->len,
                        "'%s' is a family of nodes; use one member, like %s[0], or stack a range "
                        "of them, like stack(%s[1..3])",
                        e->name, e->name, e->name);
        if (k >= 0 && m->syms[k].stmt < stmt) {
            if (m->syms[k].kind == BPV_SYM_FN)
                return fail(m, err, e->off, e->len,
                            "'%s' is a function; call it with arguments, like %s(...)", e->name,
                            e->name);
            return true;
        }
        if (self && strcmp(self, e->name) == 0)
            return fail(m, err, e->off, e->len, "'%s' is the function being defined", e->name);
        if (bpv_is_builtin(e->name))
            return fail(m, err, e->off, e->len,
                        "'%s' is a built-in function; call it with arguments, like %s(...)",
                        e->name, e->name);
        return unknown_name(m, e, e->name, e->off, e->len, stmt, params, nparams, false, err);
    }
    case AST_UNARY:
    case AST_BINARY:
    case AST_LIST:
        for (int i = 0; i < e->nargs; i++)
            if (!bpv_expr_validate(m, e->args[i], stmt, params, nparams, self, err)) return false;
        return true;
    case AST_CALL: {
        size_t noff = e->name_off, nlen = name_len(e->name);
        bpv_op op = bpv_op_by_call(e->name);
        if (op != BPV_OP_NONE) {
            int nin;
            double attr[BPV_MAX_ATTRS];
            op = bpv_call_op(e, op);
            if (!bpv_call_args(m, e, op, &nin, attr, err)) return false;
            for (int i = 0; i < nin; i++) {
                const bpv_ast *a = e->args[i];
                bool ok = a->kind == AST_INDEX
                              ? validate_index(m, a, stmt, params, nparams, self,
                                               bpv_ops[op].max_in < 0, err)
                              : bpv_expr_validate(m, a, stmt, params, nparams, self, err);
                if (!ok) return false;
            }
            return true;
        }
        if (is_const_fn(e->name)) {
            if (e->kwnames || e->nargs != 1)
                return fail(m, err, e->off, e->len, "%s() takes one argument, a shape like [3, 2]",
                            e->name);
            bpv_shape sh;
            return bpv_shape_eval(m, e->args[0], &sh, err);
        }
        if (e->kwnames && !is_init_fn(e->name))
            for (int i = 0; i < e->nargs; i++)
                if (e->kwnames[i])
                    return fail(m, err, e->kwoffs[i], strlen(e->kwnames[i]),
                                "%s() takes no keyword arguments", e->name);
        int want = -1;
        if (is_init_fn(e->name)) {
            if (strcmp(e->name, "csv") == 0)
                return fail(m, err, noff, nlen,
                            "csv() reads data: use it as `data NAME = csv(\"file.csv\", COL)`");
            if (strcmp(e->name, "npy") == 0)
                return fail(m, err, noff, nlen,
                            "npy() reads data: use it as `data NAME = npy(\"file.npy\")`");
            return fail(m, err, noff, nlen,
                        "%s() makes a param's initial value: use it as `param NAME = %s(...)`",
                        e->name, e->name);
        } else if (self && strcmp(self, e->name) == 0) {
            return fail(m, err, noff, nlen,
                        "fn '%s' calls itself; recursion is not supported (a graph is a fixed "
                        "set of nodes)",
                        self);
        } else {
            bool shadowed = false;
            for (int i = 0; i < nparams; i++)
                if (strcmp(params[i], e->name) == 0) shadowed = true;
            int k = bpv_sym_find(m, e->name);
            if (shadowed || (k >= 0 && m->syms[k].stmt < stmt && m->syms[k].kind != BPV_SYM_FN))
                return fail(m, err, noff, nlen, "'%s' is not a function", e->name);
            if (k < 0 || m->syms[k].stmt >= stmt)
                return unknown_name(m, e, e->name, noff, nlen, stmt, params, nparams, true,
                                    err);
            want = m->prog.stmts[m->syms[k].stmt].nparams;
        }
        if (e->nargs != want)
            return fail(m, err, e->off, e->len, "%s() takes %d argument%s, got %d", e->name,
                        want, want == 1 ? "" : "s", e->nargs);
        for (int i = 0; i < e->nargs; i++)
            if (!bpv_expr_validate(m, e->args[i], stmt, params, nparams, self, err)) return false;
        return true;
    }
    }
    return fail(m, err, e->off, e->len, "unexpected expression");
}

/* ---- graph building -------------------------------------------------------------- */

typedef struct frame {
    const char *const *names; /* fn parameters */
    const int *nodes;         /* the argument nodes bound to them */
    int n;
    int stmt;                 /* the fn statement: globals visible before it */
} frame;

typedef struct cc {
    bpv_model *m;
    int upto;
    int64_t batch;
    bool predict;
    const bpv_binding *bind;
    int nbind;
    bpv_node *nodes;
    int n, cap;
    int *memo; /* per symbol: node index + 1 */
    const char *target;
    size_t target_off, target_len;
    int depth;
    int64_t visits; /* expressions compiled: fn inlining can multiply them */
    const bpv_ast *outer_call; /* the model's own fn call being inlined, or NULL */
    double *fn_count[2]; /* per fn statement: nodes, sub-expressions once inlined (or -1) */
    const bpv_loop_env *env; /* the loop variables of the statement being compiled */
    bpv_error **err;
} cc;

static int cfail(cc *c, size_t off, size_t len, const char *fmt, ...) BPV_PRINTF(4, 5);
static int cfail(cc *c, size_t off, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    failv(c->m, c->err, off, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Nodes an expression adds once its fn calls are inlined, counted on the
 * AST (a name adds none, a call of a fn its body's count), each fn's body
 * counted once (memo, per statement); with `visits`, the sub-expressions
 * compiled instead (names too). An estimate (a list or an index counts
 * one), for catching and reporting a blow-up: nested fns can ask for 2^40
 * nodes, which are counted, never built. */
static double inlined_count(const bpv_model *m, const bpv_ast *e, bool visits, double *memo,
                            int depth) {
    if (depth > MAX_INLINE_DEPTH) return HUGE_VAL;
    if (e->kind == AST_LIST || e->kind == AST_INDEX || e->kind == AST_NUMBER) return 1;
    double n = visits;
    for (int i = 0; i < e->nargs; i++)
        if (!e->kwnames || !e->kwnames[i]) n += inlined_count(m, e->args[i], visits, memo, depth);
    switch (e->kind) {
    case AST_NAME:
    case AST_STRING:
    case AST_RANGE: return n;
    case AST_UNARY: return e->op == TK_PLUS || visits ? n : n + 1;
    case AST_CALL: {
        int k = bpv_sym_find(m, e->name);
        int st = k >= 0 && m->syms[k].kind == BPV_SYM_FN ? m->syms[k].stmt : -1;
        if (st < 0 || (m->customs && m->customs[st])) return visits ? n : n + 1;
        if (memo[st] < 0) {
            memo[st] = HUGE_VAL; /* a cycle counts as too many */
            memo[st] = inlined_count(m, m->prog.stmts[st].value, visits, memo, depth + 1);
        }
        return n + memo[st];
    }
    default: return visits ? n : n + 1;
    }
}

/* inlined_count of a call, with the fn bodies' counts kept for the
 * compilation's other calls; HUGE_VAL when out of memory. */
static double call_count(cc *c, const bpv_ast *e, bool visits) {
    double **memo = &c->fn_count[visits];
    if (!*memo) {
        *memo = malloc(((size_t)c->m->prog.nstmts + 1) * sizeof **memo);
        if (!*memo) return HUGE_VAL;
        for (int i = 0; i <= c->m->prog.nstmts; i++) (*memo)[i] = -1;
    }
    return inlined_count(c->m, e, visits, *memo, 0);
}

/* A limit passed inside the model's own fn call e (or about to be): the
 * message points at that call, which the model wrote, not at an inner fn's
 * body, and says how much it asks for. */
static int blowup(cc *c, const bpv_ast *e, bool visits) {
    double n = call_count(c, e, visits);
    char count[64];
    if (n < 1e18) snprintf(count, sizeof count, "about %.0f", n);
    else snprintf(count, sizeof count, "more than 10^18");
    if (visits)
        return cfail(c, e->off, e->len,
                     "this call of %s() expands to %s sub-expressions once its fn calls are "
                     "inlined, more than %lld (8 x BPV_MAX_NODES); simplify the fns it calls",
                     e->name, count, (long long)8 * BPV_MAX_NODES);
    return cfail(c, e->off, e->len,
                 "this call of %s() adds %s nodes once its fn calls are inlined, and the graph "
                 "would have more than %d nodes (BPV_MAX_NODES); simplify the fns it calls",
                 e->name, count, BPV_MAX_NODES);
}

static int node_add(cc *c, bpv_node_kind kind, bpv_op op, const int *ins, int nin,
                    const bpv_shape *shape_in, size_t off, size_t len) {
    /* callers may pass an existing node's shape, which the realloc below
     * would free: copy it first */
    const bpv_shape sh = *shape_in, *shape = &sh;
    if (c->n >= BPV_MAX_NODES) {
        if (c->outer_call) return blowup(c, c->outer_call, false);
        return cfail(c, off, len, "the graph would have more than %d nodes (BPV_MAX_NODES)", BPV_MAX_NODES);
    }
    int64_t numel = bpv_shape_numel(shape);
    if (numel > BPV_MAX_TENSOR_ELEMS) {
        char sb[128];
        return cfail(c, off, len,
                     "this tensor would have shape %s, %lld elements; the limit is %lld "
                     "(BPV_MAX_TENSOR_ELEMS)",
                     bpv_shape_str(shape, sb, sizeof sb), (long long)numel,
                     (long long)BPV_MAX_TENSOR_ELEMS);
    }
    int *in = NULL;
    if (nin > 0) {
        if (!(in = bpv_arena_alloc(c->m->arena, (size_t)nin * sizeof *in)))
            return cfail(c, off, len, "out of memory compiling");
        memcpy(in, ins, (size_t)nin * sizeof *in);
    }
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 64;
        bpv_node *v = realloc(c->nodes, (size_t)cap * sizeof *v);
        if (!v) {
            bpv_error_set(c->err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory compiling"));
            return -1;
        }
        c->nodes = v;
        c->cap = cap;
    }
    bpv_node *nd = &c->nodes[c->n];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    nd->op = op;
    nd->in = in;
    nd->nin = nin;
    nd->shape = *shape;
    nd->numel = numel;
    nd->ref = -1;
    nd->src_off = off;
    nd->src_len = len;
    if (kind != BPV_NODE_DATA && kind != BPV_NODE_PARAM && c->env) { /* leaves stay outside */
        nd->loop_var = c->env->var;
        nd->loop_value = c->env->value;
    }
    return c->n++;
}

static int literal(cc *c, const bpv_ast *e, double v) {
    double r = 0;
    if (!round_number(c->m, e, v, &r, c->err)) return -1;
    double *val = bpv_arena_alloc(c->m->arena, sizeof *val);
    if (!val) return cfail(c, e->off, e->len, "out of memory");
    bpv_shape s = {0};
    int n = node_add(c, BPV_NODE_CONST, BPV_OP_NONE, NULL, 0, &s, e->off, e->len);
    if (n < 0) return -1;
    *val = r;
    c->nodes[n].val = val;
    c->nodes[n].literal = true;
    c->nodes[n].num = v;
    return n;
}

static const bpv_binding *find_binding(cc *c, const char *name) {
    for (int i = 0; i < c->nbind; i++)
        if (strcmp(c->bind[i].name, name) == 0) return &c->bind[i];
    return NULL;
}

/* The leaf for a data, param or const symbol (one node per symbol). */
static int leaf(cc *c, int k, size_t use_off, size_t use_len) {
    if (c->memo[k]) return c->memo[k] - 1;
    bpv_model *m = c->m;
    const bpv_symbol *sy = &m->syms[k];
    const bpv_stmt *st = &m->prog.stmts[sy->stmt];
    bpv_shape s;
    int n = -1;
    switch (sy->kind) {
    case BPV_SYM_DATA: {
        const bpv_data *d = &m->data[sy->ref];
        if (c->predict) {
            const bpv_binding *b = find_binding(c, sy->name);
            if (!b)
                return cfail(c, c->target_off, c->target_len,
                             "predict needs a value for data '%s', like predict %s(%s=...)",
                             sy->name, c->target, sy->name);
            s = b->shape;
        } else if (c->batch == 0) {
            s = d->sample;
        } else {
            if (d->sample.rank >= BPV_MAX_RANK)
                return cfail(c, st->name_off, st->name_len,
                             "data '%s' has samples of rank %d; a batch dimension would make "
                             "more than %d",
                             sy->name, d->sample.rank, BPV_MAX_RANK);
            s.rank = d->sample.rank + 1;
            s.dim[0] = c->batch;
            for (int i = 0; i < d->sample.rank; i++) s.dim[i + 1] = d->sample.dim[i];
        }
        n = node_add(c, BPV_NODE_DATA, BPV_OP_NONE, NULL, 0, &s, st->name_off, st->name_len);
        if (n >= 0) c->nodes[n].batched = !c->predict && c->batch > 0;
        break;
    }
    case BPV_SYM_PARAM: {
        bpv_param *p = &m->params[sy->ref];
        n = node_add(c, BPV_NODE_PARAM, BPV_OP_NONE, NULL, 0, &p->shape, st->name_off,
                     st->name_len);
        if (n >= 0) c->nodes[n].val = p->val;
        break;
    }
    case BPV_SYM_CONST: {
        bpv_const *k2 = &m->consts[sy->ref];
        n = node_add(c, BPV_NODE_CONST, BPV_OP_NONE, NULL, 0, &k2->shape, st->name_off,
                     st->name_len);
        if (n >= 0) c->nodes[n].val = k2->values; /* read-only: leaves are never written */
        break;
    }
    default:
        return cfail(c, use_off, use_len, "internal error: '%s' is not a leaf", sy->name);
    }
    if (n < 0) return -1;
    c->nodes[n].loop_var = NULL; /* a leaf is drawn outside every time step */
    c->nodes[n].name = sy->name;
    c->nodes[n].ref = sy->ref;
    c->memo[k] = n + 1;
    return n;
}

static int compile_expr(cc *c, const bpv_ast *e, const frame *f);

static int compile_let(cc *c, int k) {
    if (c->memo[k]) return c->memo[k] - 1;
    const bpv_symbol *sy = &c->m->syms[k];
    const bpv_stmt *st = &c->m->prog.stmts[sy->stmt];
    int n0 = c->n;
    const bpv_loop_env *outer = c->env;
    c->env = st->env;
    int r = compile_expr(c, st->value, NULL);
    if (r >= 0 && (r < n0 || c->nodes[r].name)) {
        /* `b = a`: an existing node gets a node of its own, so both names show */
        r = node_add(c, BPV_NODE_OP, BPV_OP_IDENTITY, (int[]){r}, 1, &c->nodes[r].shape, st->off,
                     st->len);
        if (r >= 0) c->nodes[r].batched = c->nodes[c->nodes[r].in[0]].batched;
    } else if (r >= 0) {
        c->nodes[r].src_off = st->off;
        c->nodes[r].src_len = st->len;
    }
    c->env = outer;
    if (r < 0) return -1;
    c->nodes[r].name = sy->name;
    c->nodes[r].literal = false;
    c->memo[k] = r + 1;
    return r;
}

/* Resolves a global name as the symbols stand before statement `limit`. */
static int global_name(cc *c, const char *name, size_t off, size_t len, int limit) {
    int k = bpv_sym_find(c->m, name);
    if (k < 0 || c->m->syms[k].stmt >= limit)
        return cfail(c, off, len, "unknown name '%s'", name);
    switch (c->m->syms[k].kind) {
    case BPV_SYM_LET:
        return compile_let(c, k);
    case BPV_SYM_FN:
        return cfail(c, off, len, "'%s' is a function; call it with arguments", name);
    default:
        return leaf(c, k, off, len);
    }
}

/* cross_entropy targets are class indices: a data or const leaf whose every
 * value is a whole number in [0, C). Checked once here so the engine can
 * index with them. */
static bool check_targets(cc *c, const bpv_ast *e, int logits, int t) {
    const bpv_node *nt = &c->nodes[t];
    /* y[t] of class-index data: check the whole of y */
    while (nt->kind == BPV_NODE_OP && (nt->op == BPV_OP_INDEX || nt->op == BPV_OP_IDENTITY))
        nt = &c->nodes[nt->in[0]];
    int64_t C = c->nodes[logits].shape.dim[c->nodes[logits].shape.rank - 1];
    const double *v = NULL;
    const float *v32 = NULL; /* data an f32 model keeps as float32 only */
    int64_t n = 0;
    const bpv_ast *te = e->args[1];
    if (nt->kind == BPV_NODE_CONST) {
        v = nt->val;
        n = nt->numel;
    } else if (nt->kind == BPV_NODE_DATA) {
        if (c->predict) {
            const bpv_binding *b = find_binding(c, nt->name);
            v = b->values;
            n = bpv_shape_numel(&b->shape);
        } else {
            const bpv_data *d = &c->m->data[nt->ref];
            v = d->values;
            v32 = d->values ? NULL : d->values32;
            n = d->nsamples * bpv_shape_numel(&d->sample);
        }
    } else {
        return cfail(c, te->off, te->len,
                     "cross_entropy: the targets must be data or a const of class indices") >=
               0;
    }
    for (int64_t i = 0; i < n; i++) {
        const double x = v32 ? (double)v32[i] : v[i];
        if (!(x >= 0 && x < (double)C && x == floor(x))) {
            char buf[32];
            return cfail(c, te->off, te->len,
                         "cross_entropy: target %s is not a class index from 0 to %lld",
                         bpv_fmt_repr_s(buf, x), (long long)(C - 1)) >= 0;
        }
    }
    return true;
}

/* A node of op `op` over the inputs ins: its shape from the op's rule (a
 * message naming both shapes when they do not fit), its attributes and the
 * variant its plan picks. */
static int op_node(cc *c, bpv_op op, const bpv_ast *e, const int *ins, int nin,
                   const double *attr, const bpv_custom *fn) {
    const bpv_op_def *d = &bpv_ops[op];
    bpv_node tmp = {0};
    tmp.kind = BPV_NODE_OP;
    tmp.op = op;
    tmp.in = (int *)ins;
    tmp.nin = nin;
    tmp.custom = fn;
    tmp.attr = attr;
    for (int k = 0; k < nin; k++) tmp.batched = tmp.batched || c->nodes[ins[k]].batched;
    const bpv_shape *shapes[8] = {0}, **sh = nin <= 8 ? shapes : malloc((size_t)nin * sizeof *sh);
    if (!sh) return cfail(c, e->off, e->len, "out of memory compiling");
    for (int k = 0; k < nin; k++) sh[k] = &c->nodes[ins[k]].shape;
    char msg[512];
    bpv_shape s;
    bool ok = d->shape(&tmp, sh, nin, &s, msg, sizeof msg);
    if (sh != shapes) free(sh);
    if (!ok) return cfail(c, e->off, e->len, "%s", msg);
    if ((d->flags & BPV_OPF_CLASS_TARGETS) && !check_targets(c, e, ins[0], ins[1])) return -1;
    int r = node_add(c, BPV_NODE_OP, op, ins, nin, &s, e->off, e->len);
    if (r < 0) return -1;
    bpv_node *n = &c->nodes[r];
    if (d->nattrs && attr) { /* kept with the node, like its inputs */
        double *keep = bpv_arena_alloc(c->m->arena, (size_t)d->nattrs * sizeof *keep);
        if (!keep) return cfail(c, e->off, e->len, "out of memory compiling");
        memcpy(keep, attr, (size_t)d->nattrs * sizeof *keep);
        c->nodes[r].attr = keep;
    }
    n->custom = fn;
    n->batched = tmp.batched && s.rank > 0 && !(d->flags & BPV_OPF_UNBATCH);
    if (d->plan) {
        bpv_graph view = {0};
        view.nodes = c->nodes;
        view.nnodes = c->n;
        view.dtype = c->m->dtype;
        n->variant = d->plan(&view, n);
    }
    return r;
}

/* The node of family member name[k], compiled on first use. */
static int member_node(cc *c, const bpv_ast *e, int64_t k, const frame *f) {
    int s = bpv_member_find(c->m, e->name, k);
    int limit = f ? f->stmt : c->upto;
    if (s < 0 || c->m->syms[s].stmt >= limit)
        return cfail(c, e->off, e->len, "%s[%lld] is not defined here", e->name, (long long)k);
    return compile_let(c, s);
}

static bool is_family(cc *c, const bpv_ast *e, const frame *f) {
    if (f)
        for (int i = 0; i < f->n; i++)
            if (strcmp(f->names[i], e->name) == 0) return false;
    int k = bpv_sym_find(c->m, e->name);
    return k >= 0 && c->m->syms[k].kind == BPV_SYM_FAMILY;
}

/* An index's value under the loop variables in force (none in a fn body). */
static bool index_value(cc *c, const bpv_ast *ix, const frame *f, int64_t *v) {
    char msg[200];
    const bpv_ast *bad;
    if (!bpv_index_eval(ix, f ? NULL : c->env, v, &bad, msg, sizeof msg))
        return cfail(c, bad->off, bad->len, "%s", msg) >= 0;
    return true;
}

/* name[i]: a family member, or element i of a sample's first dimension. */
static int compile_index(cc *c, const bpv_ast *e, const frame *f) {
    const bpv_ast *ix = e->args[0];
    if (ix->kind == AST_RANGE)
        return cfail(c, e->off, e->len,
                     "a range %s[A..B] stands for several nodes; use it as an argument of "
                     "stack() or cat()",
                     e->name);
    int64_t k;
    if (!index_value(c, ix, f, &k)) return -1;
    if (is_family(c, e, f)) return member_node(c, e, k, f);
    bpv_ast name = *e;
    name.kind = AST_NAME;
    name.off = e->name_off;
    name.len = strlen(e->name);
    name.nargs = 0;
    int x = compile_expr(c, &name, f);
    if (x < 0) return -1;
    const double attr[1] = {(double)k};
    return op_node(c, BPV_OP_INDEX, e, (int[]){x}, 1, attr, NULL);
}

/* Whether argument a is a range of family members, h[1..5] (1, with its
 * bounds), or not (0); -1 after an error: a range where the op takes a
 * fixed number of inputs (`many` false), bounds that do not evaluate, or
 * a name that is no family. */
static int arg_range(cc *c, const bpv_ast *a, const frame *f, bool many, int64_t *lo,
                     int64_t *hi) {
    if (a->kind != AST_INDEX || a->args[0]->kind != AST_RANGE) return 0;
    if (!many) { /* compile_index says a range stands for several nodes */
        compile_index(c, a, f);
        return -1;
    }
    if (!index_value(c, a->args[0]->args[0], f, lo) || !index_value(c, a->args[0]->args[1], f, hi))
        return -1;
    if (*hi < *lo || *hi - *lo >= BPV_MAX_NODES)
        return cfail(c, a->off, a->len, "this range selects no members");
    if (!is_family(c, a, f)) return cfail(c, a->off, a->len, "'%s' is not a family of nodes", a->name);
    return 1;
}

static int compile_call(cc *c, const bpv_ast *e, const frame *f) {
    bpv_op op = bpv_op_by_call(e->name);
    if (op != BPV_OP_NONE) {
        int nin;
        double attr[BPV_MAX_ATTRS];
        op = bpv_call_op(e, op);
        if (!bpv_call_args(c->m, e, op, &nin, attr, c->err)) return -1;
        /* a range h[1..5] is one argument but several inputs */
        int64_t total = 0, lo, hi;
        for (int i = 0; i < nin; i++) {
            int k = arg_range(c, e->args[i], f, bpv_ops[op].max_in < 0, &lo, &hi);
            if (k < 0) return -1;
            total += k ? hi - lo + 1 : 1;
        }
        if (total > BPV_MAX_NODES) return cfail(c, e->off, e->len, "too many inputs");
        int one[4], *args = total <= 4 ? one : malloc((size_t)total * sizeof *args);
        if (!args) return cfail(c, e->off, e->len, "out of memory");
        int r = 0, q = 0;
        for (int i = 0; i < nin && r >= 0; i++) {
            const bpv_ast *a = e->args[i];
            if (arg_range(c, a, f, true, &lo, &hi) > 0)
                for (int64_t k = lo; k <= hi && r >= 0; k++) r = args[q++] = member_node(c, a, k, f);
            else
                r = args[q++] = compile_expr(c, a, f);
        }
        if (r >= 0) r = op_node(c, op, e, args, q, attr, NULL);
        if (args != one) free(args);
        return r;
    }
    if (is_const_fn(e->name)) { /* zeros([4]): a constant tensor */
        bpv_shape sh;
        if (e->nargs != 1 || !bpv_shape_eval(c->m, e->args[0], &sh, c->err)) return -1;
        int64_t numel = bpv_shape_numel(&sh);
        double *v = bpv_arena_calloc(c->m->arena, (size_t)(numel ? numel : 1), sizeof *v);
        if (!v) return cfail(c, e->off, e->len, "out of memory");
        if (e->name[0] == 'o')
            for (int64_t i = 0; i < numel; i++) v[i] = 1.0;
        int n = node_add(c, BPV_NODE_CONST, BPV_OP_NONE, NULL, 0, &sh, e->off, e->len);
        if (n >= 0) c->nodes[n].val = v;
        return n;
    }
    int limit = f ? f->stmt : c->upto;
    int k = bpv_sym_find(c->m, e->name);
    if (k < 0 || c->m->syms[k].stmt >= limit || c->m->syms[k].kind != BPV_SYM_FN)
        return cfail(c, e->name_off, strlen(e->name), "unknown function '%s'", e->name);
    const bpv_stmt *fs = &c->m->prog.stmts[c->m->syms[k].stmt];
    if (e->nargs != fs->nparams)
        return cfail(c, e->off, e->len, "%s() takes %d argument%s, got %d", e->name, fs->nparams,
                     fs->nparams == 1 ? "" : "s", e->nargs);
    if (c->depth >= MAX_INLINE_DEPTH)
        return cfail(c, e->off, e->len, "fn calls nest more than %d deep", MAX_INLINE_DEPTH);
    int *bound = malloc(((size_t)fs->nparams + 1) * sizeof *bound);
    if (!bound) return cfail(c, e->off, e->len, "out of memory");
    int r = 0;
    for (int i = 0; i < e->nargs && r >= 0; i++) r = bound[i] = compile_expr(c, e->args[i], f);
    const bpv_custom *cf = c->m->customs ? c->m->customs[c->m->syms[k].stmt] : NULL;
    if (r >= 0 && cf) {
        /* a fn with `grad`: one node, elementwise over its broadcast arguments */
        r = op_node(c, BPV_OP_CUSTOM, e, bound, cf->nargs, NULL, cf);
    } else if (r >= 0) {
        frame inner = {fs->params, bound, fs->nparams, c->m->syms[k].stmt};
        bool outermost = !c->outer_call;
        if (outermost) { /* where a blow-up inside is reported */
            /* far past a limit: refused before building a million nodes */
            if (call_count(c, e, false) > 4.0 * BPV_MAX_NODES) r = blowup(c, e, false);
            else if (call_count(c, e, true) > 16.0 * BPV_MAX_NODES) r = blowup(c, e, true);
            if (r < 0) {
                free(bound);
                return -1;
            }
            c->outer_call = e;
        }
        c->depth++;
        r = compile_expr(c, fs->value, &inner);
        c->depth--;
        if (outermost) c->outer_call = NULL;
    }
    free(bound);
    return r;
}

static int compile_expr(cc *c, const bpv_ast *e, const frame *f) {
    /* Each inlined fn call compiles its body again, so nested calls can ask
     * for exponentially many visits even when they add no nodes (a body
     * that returns its argument); bound the work, not only the nodes. */
    if (++c->visits > 8 * (int64_t)BPV_MAX_NODES && c->outer_call) return blowup(c, c->outer_call, true);
    if (c->visits > 8 * (int64_t)BPV_MAX_NODES)
        return cfail(c, e->off, e->len,
                     "this expression expands to more than %lld sub-expressions once its fn "
                     "calls are inlined (8 x BPV_MAX_NODES); simplify the fns it calls",
                     (long long)8 * BPV_MAX_NODES);
    switch (e->kind) {
    case AST_NUMBER:
        return literal(c, e, e->num);
    case AST_NAME:
        if (f)
            for (int i = 0; i < f->n; i++)
                if (strcmp(f->names[i], e->name) == 0) return f->nodes[i];
        return global_name(c, e->name, e->off, e->len, f ? f->stmt : c->upto);
    case AST_UNARY: {
        if (e->op == TK_PLUS) return compile_expr(c, e->args[0], f);
        if (e->args[0]->kind == AST_NUMBER) return literal(c, e, -e->args[0]->num);
        int a = compile_expr(c, e->args[0], f);
        return a < 0 ? -1 : op_node(c, BPV_OP_NEG, e, (int[]){a}, 1, NULL, NULL);
    }
    case AST_BINARY: {
        bpv_op op = bpv_op_of_token(e->op);
        if (op == BPV_OP_NONE) return cfail(c, e->off, e->len, "unknown operator");
        int a = compile_expr(c, e->args[0], f);
        if (a < 0) return -1;
        int b = compile_expr(c, e->args[1], f);
        return b < 0 ? -1 : op_node(c, op, e, (int[]){a, b}, 2, NULL, NULL);
    }
    case AST_CALL:
        return compile_call(c, e, f);
    case AST_INDEX:
        return compile_index(c, e, f);
    case AST_LIST: {
        bpv_shape s;
        double *v;
        if (!bpv_const_eval(c->m, e, "this list", &s, &v, c->err)) return -1;
        int n = node_add(c, BPV_NODE_CONST, BPV_OP_NONE, NULL, 0, &s, e->off, e->len);
        if (n >= 0) c->nodes[n].val = v;
        return n;
    }
    default:
        return cfail(c, e->off, e->len, "this is not a value");
    }
}

/* Marks the statements (LETs and fns) a target needs, walking from the
 * target down, so named nodes can then be compiled in statement order: the
 * recursion depth stays that of one expression, however long the chain of
 * named nodes is. */
static void mark_refs(const bpv_model *m, const bpv_ast *e, const bpv_stmt *fn,
                      const bpv_loop_env *env, bool *need) {
    if (e->kind == AST_INDEX) {
        const bpv_ast *ix = e->args[0];
        int k = bpv_sym_find(m, e->name);
        bool param = false;
        for (int i = 0; fn && i < fn->nparams; i++) param = param || strcmp(fn->params[i], e->name) == 0;
        char msg[8];
        const bpv_ast *bad;
        int64_t lo, hi;
        if (!param && k >= 0 && m->syms[k].kind == BPV_SYM_FAMILY) {
            bool ok = ix->kind == AST_RANGE
                          ? bpv_index_eval(ix->args[0], env, &lo, &bad, msg, sizeof msg) &&
                                bpv_index_eval(ix->args[1], env, &hi, &bad, msg, sizeof msg)
                          : bpv_index_eval(ix, env, &lo, &bad, msg, sizeof msg);
            if (ix->kind != AST_RANGE) hi = lo;
            for (int64_t i = lo; ok && i <= hi; i++) {
                int s = bpv_member_find(m, e->name, i);
                if (s >= 0) need[m->syms[s].stmt] = true;
            }
        } else if (!param && k >= 0) {
            need[m->syms[k].stmt] = true;
        }
        return;
    }
    if (e->kind == AST_NAME || e->kind == AST_CALL) {
        bool is_param = false;
        if (fn && e->kind == AST_NAME)
            for (int i = 0; i < fn->nparams; i++)
                if (strcmp(fn->params[i], e->name) == 0) is_param = true;
        int k = is_param ? -1 : bpv_sym_find(m, e->name);
        if (k >= 0) need[m->syms[k].stmt] = true;
    }
    if (e->kind == AST_UNARY || e->kind == AST_BINARY || e->kind == AST_CALL)
        for (int i = 0; i < e->nargs; i++) mark_refs(m, e->args[i], fn, env, need);
}

bool bpv_mark_needed(const bpv_model *m, const char *target, bool *need) {
    int k = bpv_sym_find(m, target);
    if (k < 0) return false;
    need[m->syms[k].stmt] = true;
    for (int i = m->syms[k].stmt; i >= 0; i--) {
        const bpv_stmt *st = &m->prog.stmts[i];
        if (need[i] && (st->kind == ST_LET || st->kind == ST_FN))
            mark_refs(m, st->value, st->kind == ST_FN ? st : NULL, st->env, need);
    }
    return true;
}

/* Allocates values, gradients and edge buffers once the nodes are known,
 * after checking the limits. */
static bpv_graph *finish(cc *c, int target, bool objective) {
    bpv_model *m = c->m;
    int n = c->n;
    bpv_node *nd = c->nodes;
    bool *from = calloc((size_t)n, sizeof *from), *anc = calloc((size_t)n, sizeof *anc);
    if (!from || !anc) {
        free(from);
        free(anc);
        bpv_error_set(c->err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory compiling"));
        return NULL;
    }
    if (objective) {
        /* needs_grad: downstream of a param and upstream of the objective */
        for (int i = 0; i < n; i++) {
            from[i] = nd[i].kind == BPV_NODE_PARAM;
            for (int k = 0; k < nd[i].nin; k++)
                if (from[nd[i].in[k]] && bpv_op_grad_input(nd[i].op, k)) from[i] = true;
        }
        anc[target] = true;
        for (int i = n - 1; i >= 0; i--)
            if (anc[i])
                for (int k = 0; k < nd[i].nin; k++) anc[nd[i].in[k]] = true;
    }
    /* sizes first, so a model too big for the limits allocates nothing */
    const size_t esz = m->f32store ? sizeof(float) : sizeof(double);
    size_t need = (size_t)n * sizeof(bpv_node) + sizeof(bpv_graph);
    int64_t maxel = 1;
    for (int i = 0; i < n; i++) {
        nd[i].needs_grad = objective && from[i] && anc[i];
        int64_t el = nd[i].numel;
        if (el > maxel) maxel = el;
        if (nd[i].kind == BPV_NODE_OP || nd[i].kind == BPV_NODE_DATA) need += (size_t)el * esz;
        if (nd[i].needs_grad && nd[i].kind != BPV_NODE_PARAM) need += (size_t)el * esz;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < nd[i].nin; k++)
            if (nd[i].needs_grad && nd[nd[i].in[k]].needs_grad && bpv_op_grad_input(nd[i].op, k))
                need += (size_t)nd[nd[i].in[k]].numel * esz;
    /* the f32 matrix products pack their operands: space for the largest of
     * every product the forward and backward passes make */
    size_t nwork = 0;
    for (int i = 0; i < n; i++) {
        if (nd[i].kind != BPV_NODE_OP || nd[i].op != BPV_OP_MATMUL) continue;
        const bpv_shape *a = &nd[nd[i].in[0]].shape, *b = &nd[nd[i].in[1]].shape;
        int64_t rows = a->rank == 2 ? a->dim[0] : 1, inner = a->rank ? a->dim[a->rank - 1] : 1;
        int64_t cols = b->rank == 2 ? b->dim[1] : 1;
        size_t w[3] = {bpv_matmul_work(rows, cols, inner), bpv_matmul_work(rows, inner, cols),
                       bpv_matmul_work(inner, cols, rows)};
        for (int k = 0; k < (nd[i].needs_grad ? 3 : 1); k++)
            if (w[k] > nwork) nwork = w[k];
    }
    need += nwork * sizeof(float);
    /* the convolutions' scratch, in the storage type */
    size_t ncw = 0;
    for (int i = 0; i < n; i++) {
        if (nd[i].kind != BPV_NODE_OP || nd[i].op != BPV_OP_CONV2D) continue;
        bpv_conv2d_dims cd;
        if (bpv_conv2d_dims_of(&nd[nd[i].in[0]].shape, &nd[nd[i].in[1]].shape,
                               (int64_t)nd[i].attr[0], (int64_t)nd[i].attr[1], &cd) &&
            bpv_conv2d_work(&cd) > ncw)
            ncw = bpv_conv2d_work(&cd);
    }
    need += ncw * esz;
    /* a binary op whose trainable input was broadcast gathers its
     * contributions before torch's sum over the broadcast dimensions */
    int64_t nred = 0;
    for (int i = 0; i < n; i++) {
        if (nd[i].kind != BPV_NODE_OP || !nd[i].needs_grad || nd[i].nin != 2 ||
            !(bpv_ops[nd[i].op].flags & BPV_OPF_ELEMWISE))
            continue;
        for (int k = 0; k < 2; k++)
            if (nd[nd[i].in[k]].needs_grad && nd[nd[i].in[k]].numel != nd[i].numel &&
                nd[i].numel > nred)
                nred = nd[i].numel;
    }
    need += (size_t)nred * sizeof(double) + (m->f32store ? (size_t)maxel * sizeof(double) : 0);
    free(from);
    free(anc);
    if (!bpv_memory_fits(bpv_arena_used(m->arena), need)) {
        const bpv_node *t = &nd[target];
        char what[64], msg[1024];
        snprintf(what, sizeof what, "the model with this graph (%zu MiB)", (need + (1u << 20) - 1) >> 20);
        bpv_memory_text(msg, sizeof msg, what, bpv_arena_used(m->arena) + need,
                        "make its tensors or batches smaller");
        bpv_error_set(c->err, bpv_error_at(&m->src, t->src_off, t->src_len, BPV_ERR_MODEL, "%s", msg));
        return NULL;
    }
    bpv_graph *g = bpv_arena_alloc(m->arena, sizeof *g);
    bpv_node *nodes = g ? bpv_arena_calloc(m->arena, (size_t)n, sizeof *nodes) : NULL;
    float *work = nodes && nwork ? bpv_arena_calloc(m->arena, nwork, sizeof(float)) : NULL;
    void *cwork = nodes && ncw ? bpv_arena_calloc(m->arena, ncw, esz) : NULL;
    void *red = nodes && nred ? bpv_arena_calloc(m->arena, (size_t)nred,
                                                  m->f32store ? sizeof(float) : sizeof(double))
                              : NULL;
    /* float32 storage: a double scratch where the sums torch does not
     * order are accumulated before their one rounding */
    double *acc = nodes && m->f32store ? bpv_arena_calloc(m->arena, (size_t)maxel, sizeof(double))
                                       : NULL;
    /* edges that carry a gradient into each node */
    int *uses = nodes ? calloc((size_t)n + 1, sizeof *uses) : NULL;
    if (!nodes || (nwork && !work) || (ncw && !cwork) || (nred && !red) || !uses ||
        (m->f32store && !acc)) {
        free(uses);
        goto oom;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < nd[i].nin; k++)
            if (nd[i].needs_grad && nd[nd[i].in[k]].needs_grad && bpv_op_grad_input(nd[i].op, k))
                uses[nd[i].in[k]]++;
    memcpy(nodes, nd, (size_t)n * sizeof *nodes);
    /* one edge pointer per input */
    for (int i = 0; i < n; i++)
        if (nodes[i].nin &&
            !(nodes[i].edge_grad = bpv_arena_calloc(m->arena, (size_t)nodes[i].nin, sizeof(double *))))
            goto oom_uses;
    /* Every number the graph owns (values, grads, edge gradients) lives in
     * one block, in node order: the first pass sizes it, the second hands
     * it out. A snapshot copies the block whole. */
    const bool f32 = m->f32store;
    char *nums = NULL;
    int64_t used = 0;
    for (int pass = 0; pass < 2; pass++) {
#define CARVE(ptr, count)                                                         \
    ((ptr) = nums ? (void *)(nums + (size_t)used * esz) : NULL, used += (int64_t)(count))
        if (pass) {
            if (!(nums = bpv_arena_calloc(m->arena, (size_t)(used ? used : 1), esz)))
                goto oom_uses;
            used = 0;
        }
        for (int i = 0; i < n; i++) {
            bpv_node *x = &nodes[i];
            if (x->kind == BPV_NODE_OP || x->kind == BPV_NODE_DATA) {
                CARVE(x->val, x->numel);
                if (pass && x->kind == BPV_NODE_DATA && c->predict) {
                    const bpv_binding *b = find_binding(c, x->name);
                    if (f32)
                        for (int64_t j = 0; j < x->numel; j++) x->val32[j] = (float)b->values[j];
                    else
                        memcpy(x->val, b->values, (size_t)x->numel * sizeof(double));
                }
            } else if (pass && x->kind == BPV_NODE_CONST && f32) {
                /* constants hold values of the dtype: exact as float32 */
                float *v = bpv_arena_alloc(m->arena, (size_t)(x->numel ? x->numel : 1) * esz);
                if (!v) goto oom_uses;
                for (int64_t j = 0; j < x->numel; j++) v[j] = (float)x->val[j];
                x->val32 = v;
            }
            if (!x->needs_grad) continue;
            const bpv_node *a = x->nin ? &nodes[x->in[0]] : NULL;
            if (x->kind == BPV_NODE_PARAM) {
                x->grad = m->params[x->ref].grad; /* .grad persists across steps */
                x->sole_edge = uses[i] == 1;
            }
            else if ((x->op == BPV_OP_ADD || x->op == BPV_OP_SUB) && a->needs_grad &&
                     a->kind != BPV_NODE_PARAM && uses[x->in[0]] == 1 && a->numel == x->numel &&
                     a->numel > 1)
                /* a + b passes its gradient to a unchanged: one buffer for
                 * both grads and the edge between them, no copy */
                x->grad = a->grad;
            else
                CARVE(x->grad, x->numel);
            for (int k = 0; k < x->nin; k++) {
                bpv_node *in = &nodes[x->in[k]];
                if (!in->needs_grad || !bpv_op_grad_input(x->op, k)) continue;
                /* a tensor's only gradient is this edge's: the edge is written
                 * straight into the input's grad, which would be a copy of it
                 * (pass_grad). Not params (they accumulate) nor single numbers
                 * (the scalar plan adds every edge into its input). */
                if (uses[x->in[k]] == 1 && in->kind != BPV_NODE_PARAM && in->numel > 1)
                    x->edge_grad[k] = in->grad;
                else
                    CARVE(x->edge_grad[k], in->numel);
            }
        }
#undef CARVE
    }
    free(uses);
    g->nums = (double *)nums; /* nums32 under f32 */
    g->nnums = used;
    g->dtype = m->dtype;
    g->f32 = f32;
    g->nodes = nodes;
    g->nnodes = n;
    g->objective = objective ? target : -1;
    g->batch = c->batch;
    g->mm_work = work;
    g->conv_work = cwork; /* conv_work32 under f32 */
    g->nconv_work = (int64_t)ncw;
    g->red_work = red;
    g->nred = nred;
    g->acc_work = acc;
    return g;
oom_uses:
    free(uses);
oom:
    bpv_error_set(c->err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory compiling the graph"));
    return NULL;
}

bpv_graph *bpv_compile_ex(bpv_model *m, int upto, const char *target, size_t target_off,
                          size_t target_len, int64_t batch, bool predict,
                          const bpv_binding *bind, int nbind, bool objective, bpv_error **err) {
    cc c = {0};
    c.m = m;
    c.upto = upto;
    c.batch = batch;
    c.predict = predict;
    c.bind = bind;
    c.nbind = nbind;
    c.err = err;
    c.target = target;
    c.target_off = target_off;
    c.target_len = target_len;
    bpv_graph *g = NULL;
    bool *need = NULL;
    int k = bpv_sym_find(m, target);
    if (k < 0 || m->syms[k].stmt >= upto) {
        cfail(&c, target_off, target_len, "unknown name '%s'", target);
        return NULL;
    }
    if (m->syms[k].kind == BPV_SYM_FN) {
        cfail(&c, target_off, target_len, "'%s' is a function, not a node", target);
        return NULL;
    }
    c.memo = calloc((size_t)m->nsyms, sizeof *c.memo);
    need = calloc((size_t)m->syms[k].stmt + 1, sizeof *need); /* what it needs comes before it */
    if (!c.memo || !need) {
        bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory compiling"));
        goto done;
    }
    bpv_mark_needed(m, target, need);
    int r = -1;
    for (int i = 0; i <= m->syms[k].stmt; i++) {
        const bpv_stmt *st = &m->prog.stmts[i];
        if (!need[i] || st->kind != ST_LET) continue;
        int s = bpv_sym_find(m, st->name);
        if (s < 0 || m->syms[s].stmt != i) continue;
        if ((r = compile_let(&c, s)) < 0) goto done;
    }
    r = m->syms[k].kind == BPV_SYM_LET ? compile_let(&c, k)
                                        : leaf(&c, k, target_off, target_len);
    if (r < 0) goto done;
    g = finish(&c, r, objective);
done:
    free(c.memo);
    free(c.nodes);
    free(c.fn_count[0]);
    free(c.fn_count[1]);
    free(need);
    return g;
}

bpv_graph *bpv_compile(bpv_model *m, int upto, const char *target, size_t target_off,
                       size_t target_len, int64_t batch, const bpv_binding *bind, int nbind,
                       bpv_error **err) {
    /* with bindings: a prediction (no gradients); without: a training graph */
    return bpv_compile_ex(m, upto, target, target_off, target_len, batch, bind != NULL, bind,
                          nbind, bind == NULL, err);
}
