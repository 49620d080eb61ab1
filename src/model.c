/* The model: declarations checked top to bottom (bpv_model_check), then the
 * statements run (bpv_model_exec): predictions, training with SGD, momentum
 * or Adam, snapshots of the kept steps and one line per epoch.
 *
 * Seeded initialisers and shuffling use splitmix64 (Steele et al.), a 64-bit
 * generator that needs no tables and gives the same stream on every machine:
 * uniform numbers are the top 53 bits / 2^53, randn is Box-Muller in double
 * (both values of each pair used), and every result is rounded to the dtype
 * once. Shuffling is Fisher-Yates over a stream seeded once per train. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "op_elem.h"
#include "model.h"
#include "scalar.h"

/* ---- errors --------------------------------------------------------------- */

static bool fail(const bpv_model *m, bpv_error **err, size_t off, size_t len, const char *fmt,
                 ...) BPV_PRINTF(5, 6);
static bool fail(const bpv_model *m, bpv_error **err, size_t off, size_t len, const char *fmt,
                 ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bpv_error_set(err, bpv_error_at(&m->src, off, len, BPV_ERR_MODEL, "%s", msg));
    return false;
}

static bool oom(bpv_error **err) {
    bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    return false;
}

static int line_of(const bpv_model *m, size_t off) {
    int line, col;
    bpv_source_locate(&m->src, off, &line, &col);
    return line;
}

/* Refuses an allocation that would take the model past its memory limit. */
static bool fits(const bpv_model *m, size_t bytes) {
    size_t used = bpv_arena_used(m->arena);
    return bytes <= BPV_MAX_MODEL_BYTES && used <= BPV_MAX_MODEL_BYTES - bytes;
}

/* ---- random numbers ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double unit(uint64_t *s) { return (double)(splitmix64(s) >> 11) * 0x1p-53; }

/* ---- number helpers --------------------------------------------------------------- */

/* A whole number in [lo, hi]. */
static bool whole(const bpv_ast *e, double lo, double hi, double *v) {
    return bpv_ast_number(e, v) && *v == floor(*v) && *v >= lo && *v <= hi;
}

static bool is_name(const bpv_ast *e, const char *s) {
    return e->kind == AST_NAME && strcmp(e->name, s) == 0;
}

/* ---- declarations ------------------------------------------------------------------ */

static bool declare(bpv_model *m, const bpv_stmt *st, int i, bpv_sym_kind kind, int ref,
                    bpv_error **err) {
    if (bpv_is_builtin(st->name))
        return fail(m, err, st->name_off, st->name_len,
                    "'%s' is a built-in function; choose another name", st->name);
    int k = bpv_sym_find(m, st->name);
    if (k >= 0)
        return fail(m, err, st->name_off, st->name_len, "'%s' is already defined at line %d",
                    st->name, line_of(m, m->prog.stmts[m->syms[k].stmt].name_off));
    if (!bpv_sym_add(m, st->name, kind, ref, i)) return oom(err);
    return true;
}

/* Under float32 storage a data's values are also kept as float32, the
 * form the graphs read batches from; the doubles stay for the compiler's
 * checks (class indices). */
static bool data_store(bpv_model *m, bpv_data *d, const bpv_ast *e, bpv_error **err) {
    if (!m->f32store) return true;
    const int64_t nv = d->nsamples * bpv_shape_numel(&d->sample);
    const size_t bytes = (size_t)(nv ? nv : 1) * sizeof(float);
    if (!fits(m, bytes))
        return fail(m, err, e->off, e->len,
                    "this data is too large for the model memory limit (BPV_MAX_MODEL_MB)");
    if (!(d->values32 = bpv_arena_alloc(m->arena, bytes))) return oom(err);
    for (int64_t i = 0; i < nv; i++) d->values32[i] = (float)d->values[i];
    return true;
}

/* Splits a list value into samples: the first dimension counts samples. */
static bool data_list(bpv_model *m, const bpv_stmt *st, bpv_data *d, bpv_error **err) {
    char what[300];
    snprintf(what, sizeof what, "data '%s'", st->name);
    const bpv_ast *e = st->value;
    if (e->kind == AST_LIST && e->nargs == 0)
        return fail(m, err, e->off, e->len, "data '%s' is empty; give it at least one sample",
                    st->name);
    if (e->kind != AST_LIST)
        return fail(m, err, e->off, e->len,
                    "data '%s' needs a list of samples, like [1, 2, 3], or csv(\"file.csv\", 0)",
                    st->name);
    bpv_shape s;
    double *v;
    if (!bpv_const_eval(m, e, what, &s, &v, err)) return false;
    d->nsamples = s.dim[0];
    d->sample.rank = s.rank - 1;
    for (int k = 1; k < s.rank; k++) d->sample.dim[k - 1] = s.dim[k];
    d->values = v;
    return data_store(m, d, e, err);
}

/* Parses one CSV number cell: surrounding blanks and quotes are ignored. */
static bool csv_cell(const char *s, size_t n, double *v) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') s++, n -= 2;
    if (n == 0 || n > 63) return false;
    char buf[64];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    *v = strtod(buf, &end);
    return *end == '\0' && end != buf;
}

static bool data_csv(bpv_model *m, const bpv_stmt *st, bpv_data *d, bpv_error **err) {
    const bpv_ast *e = st->value;
    if (e->kwnames)
        for (int i = 0; i < e->nargs; i++)
            if (e->kwnames[i])
                return fail(m, err, e->kwoffs[i], strlen(e->kwnames[i]),
                            "csv() takes a file name and a column: csv(\"file.csv\", 0)");
    if (e->nargs != 2)
        return fail(m, err, e->off, e->len,
                    "csv() takes a file name and a column, like csv(\"file.csv\", 0) or "
                    "csv(\"file.csv\", 0:3); got %d argument%s",
                    e->nargs, e->nargs == 1 ? "" : "s");
    const bpv_ast *fa = e->args[0], *ca = e->args[1];
    if (fa->kind != AST_STRING)
        return fail(m, err, fa->off, fa->len, "csv() needs a file name in quotes, like \"data.csv\"");
    double c0, c1;
    if (ca->kind == AST_RANGE) {
        if (!whole(ca->args[0], 0, 1e6, &c0) || !whole(ca->args[1], 0, 1e6, &c1) || c1 <= c0)
            return fail(m, err, ca->off, ca->len,
                        "a column range A:B needs whole numbers with A < B (columns A to B-1)");
    } else {
        if (!whole(ca, 0, 1e6, &c0))
            return fail(m, err, ca->off, ca->len,
                        "the column must be a whole number from 0 (or a range A:B)");
        c1 = c0 + 1;
    }
    int col0 = (int)c0, ncol = (int)(c1 - c0);
    bool vec = ca->kind == AST_RANGE;

    bpv_buf path;
    bpv_buf_init(&path);
    if (fa->name[0] != '/' && m->src.dir && *m->src.dir && strcmp(m->src.dir, ".") != 0) {
        bpv_buf_puts(&path, m->src.dir);
        bpv_buf_putc(&path, '/');
    }
    bpv_buf_puts(&path, fa->name);
    FILE *f = fopen(path.data, "rb");
    char *text = NULL;
    size_t len = 0;
    int saved = errno;
    bool too_big = false; /* BPV_MAX_CSV_MB; also stops /dev/zero and endless pipes */
    if (f) {
        size_t cap = 1 << 16;
        text = malloc(cap);
        size_t r;
        while (text && (r = fread(text + len, 1, cap - len - 1, f)) > 0) {
            len += r;
            if (len > bpv_limits_get()->csv_bytes) {
                too_big = true;
                break;
            }
            if (len + 1 == cap) {
                char *t = cap > ((size_t)1 << 40) ? NULL : realloc(text, cap * 2);
                if (!t) free(text);
                text = t;
                cap *= 2;
            }
        }
        saved = ferror(f) ? errno : 0;
        if (ferror(f)) {
            free(text);
            text = NULL;
        }
        fclose(f);
        if (!text && !saved) saved = ENOMEM;
    }
    if (too_big) {
        free(text);
        fail(m, err, fa->off, fa->len, "'%s' is larger than %zu MiB (BPV_MAX_CSV_MB)", path.data,
             bpv_limits_get()->csv_bytes >> 20);
        bpv_buf_free(&path);
        return false;
    }
    if (!text) {
        fail(m, err, fa->off, fa->len, "cannot read '%s': %s", path.data,
             strerror(saved ? saved : EIO));
        bpv_buf_free(&path);
        return false;
    }
    text[len] = '\0';

    double *vals = NULL;
    size_t nvals = 0, capv = 0;
    int64_t rows = 0;
    bool ok = true, first = true;
    int lineno = 0;
    for (size_t p = 0; p < len && ok;) {
        size_t q = p;
        while (q < len && text[q] != '\n') q++;
        size_t end = q;
        if (end > p && text[end - 1] == '\r') end--;
        lineno++;
        const char *ln = text + p;
        size_t ll = end - p;
        p = q + 1;
        bool blank = true;
        for (size_t i = 0; i < ll; i++)
            if (ln[i] != ' ' && ln[i] != '\t') blank = false;
        if (blank) continue;
        /* cell boundaries of the columns we want */
        double row[64];
        double *rv = ncol <= 64 ? row : NULL;
        if (!rv) rv = malloc((size_t)ncol * sizeof *rv);
        if (!rv) {
            ok = oom(err);
            break;
        }
        int c = 0, got = 0;
        size_t cs = 0;
        bool bad = false;
        size_t bad_s = 0, bad_n = 0;
        int bad_c = 0;
        for (size_t i = 0; i <= ll; i++) {
            if (i < ll && ln[i] != ',') continue;
            if (c >= col0 && c < col0 + ncol) {
                double v = 0;
                if (!csv_cell(ln + cs, i - cs, &v) && !bad) {
                    bad = true;
                    bad_s = cs;
                    bad_n = i - cs;
                    bad_c = c;
                }
                rv[c - col0] = v;
                got++;
            }
            c++;
            cs = i + 1;
        }
        if (first && bad) { /* a header row */
            first = false;
            if (rv != row) free(rv);
            continue;
        }
        first = false;
        if (got < ncol) {
            ok = fail(m, err, ca->off, ca->len, "%s:%d: this row has %d column%s; column %d is missing",
                      fa->name, lineno, c, c == 1 ? "" : "s", col0 + got);
        } else if (bad) {
            ok = fail(m, err, fa->off, fa->len, "%s:%d: '%.*s' in column %d is not a number",
                      fa->name, lineno, (int)(bad_n > 40 ? 40 : bad_n), ln + bad_s, bad_c);
        } else {
            if (nvals + (size_t)ncol > (size_t)BPV_MAX_TENSOR_ELEMS) {
                ok = fail(m, err, fa->off, fa->len,
                          "%s has more than %lld values in the chosen columns; the limit is %lld "
                          "(BPV_MAX_TENSOR_ELEMS)",
                          fa->name, (long long)BPV_MAX_TENSOR_ELEMS,
                          (long long)BPV_MAX_TENSOR_ELEMS);
            } else {
                if (nvals + (size_t)ncol > capv) {
                    size_t nc = capv ? capv * 2 : 1024;
                    while (nc < nvals + (size_t)ncol) nc *= 2;
                    double *nv = realloc(vals, nc * sizeof *nv);
                    if (!nv) ok = oom(err);
                    else vals = nv, capv = nc;
                }
                for (int k = 0; ok && k < ncol; k++) {
                    double r = bpv_round(m->dtype, rv[k]);
                    if (isinf(r) && isfinite(rv[k])) {
                        ok = fail(m, err, fa->off, fa->len,
                                  "%s:%d: %g is out of range for f32; use `dtype f64`", fa->name,
                                  lineno, rv[k]);
                    }
                    if (ok) vals[nvals++] = r;
                }
                rows++;
            }
        }
        if (rv != row) free(rv);
    }
    free(text);
    if (ok && rows == 0)
        ok = fail(m, err, fa->off, fa->len, "'%s' has no data rows", path.data);
    if (ok && !fits(m, nvals * sizeof(double)))
        ok = fail(m, err, fa->off, fa->len, "'%s' is too large for the model memory limit (BPV_MAX_MODEL_MB)",
                  path.data);
    if (ok) {
        d->values = bpv_arena_calloc(m->arena, nvals, sizeof(double));
        if (!d->values) ok = oom(err);
        else memcpy(d->values, vals, nvals * sizeof(double));
        d->nsamples = rows;
        d->sample = (bpv_shape){0};
        if (vec) d->sample = (bpv_shape){1, {ncol}};
        if (ok) ok = data_store(m, d, fa, err);
    }
    free(vals);
    bpv_buf_free(&path);
    return ok;
}

static bool check_data(bpv_model *m, const bpv_stmt *st, int i, bpv_error **err) {
    if (!declare(m, st, i, BPV_SYM_DATA, m->ndata, err)) return false;
    bpv_data *d = &m->data[m->ndata];
    d->name = st->name;
    d->stmt = st;
    const bpv_ast *e = st->value;
    bool ok = (e->kind == AST_CALL && strcmp(e->name, "csv") == 0) ? data_csv(m, st, d, err)
                                                                    : data_list(m, st, d, err);
    if (!ok) return false;
    m->ndata++;
    return true;
}

/* SHAPE of an initialiser: [3, 2], [] (a scalar) or a single number. */
static bool init_shape(bpv_model *m, const bpv_ast *e, bpv_shape *s, bpv_error **err) {
    *s = (bpv_shape){0};
    double v;
    if (e->kind != AST_LIST) {
        if (!whole(e, 1, 1e12, &v))
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
        if (!whole(e->args[i], 1, 1e12, &v))
            return fail(m, err, e->args[i]->off, e->args[i]->len,
                        "a size in a shape must be a whole number of at least 1");
        s->dim[s->rank++] = (int64_t)v;
        n *= v;
    }
    if (n > (double)BPV_MAX_TENSOR_ELEMS) {
        char b[128];
        return fail(m, err, e->off, e->len, "shape %s has %.0f elements; the limit is %lld (BPV_MAX_TENSOR_ELEMS)",
                    bpv_shape_str(s, b, sizeof b), n, (long long)BPV_MAX_TENSOR_ELEMS);
    }
    return true;
}

static const char *const init_names[] = {"zeros", "ones", "randn", "uniform"};

static bool param_init(bpv_model *m, const bpv_stmt *st, bpv_param *p, bpv_error **err) {
    const bpv_ast *e = st->value;
    if (e->kind != AST_CALL) {
        char what[300];
        snprintf(what, sizeof what, "the initial value of '%s'", st->name);
        double *v;
        if (!bpv_const_eval(m, e, what, &p->shape, &v, err)) return false;
        p->numel = bpv_shape_numel(&p->shape);
        p->val = v;
        return true;
    }
    int kind = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(e->name, init_names[i]) == 0) kind = i;
    if (kind < 0) {
        const char *s = bpv_closest(e->name, init_names, 4);
        return fail(m, err, e->name_off, strlen(e->name),
                    "a param starts as a number, a list, zeros(), ones(), randn() or uniform(), "
                    "not %s()%s%s%s",
                    e->name, s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
    }
    static const int npos[] = {1, 1, 1, 3};
    static const char *const usage[] = {"zeros([3, 2])", "ones([3, 2])",
                                        "randn([3, 2], seed=1, std=0.1)",
                                        "uniform([3, 2], -0.5, 0.5, seed=1)"};
    int pos = 0;
    double seed = 0, stdv = 1, lo = 0, hi = 1;
    for (int i = 0; i < e->nargs; i++) {
        const bpv_ast *a = e->args[i];
        const char *kw = e->kwnames ? e->kwnames[i] : NULL;
        if (!kw) {
            if (pos++ >= npos[kind] || (i > 0 && e->kwnames && e->kwnames[i - 1]))
                return fail(m, err, a->off, a->len, "too many arguments; use it like %s",
                            usage[kind]);
            continue;
        }
        size_t ko = e->kwoffs[i], kl = strlen(kw);
        if (strcmp(kw, "seed") == 0 && (kind == 2 || kind == 3)) {
            if (!whole(a, 0, 9007199254740992.0, &seed))
                return fail(m, err, a->off, a->len, "seed must be a whole number from 0");
        } else if (strcmp(kw, "std") == 0 && kind == 2) {
            if (!bpv_ast_number(a, &stdv) || !(stdv >= 0) || !isfinite(stdv))
                return fail(m, err, a->off, a->len, "std must be a number of at least 0");
        } else {
            return fail(m, err, ko, kl, "%s() has no option '%s'; use it like %s", e->name, kw,
                        usage[kind]);
        }
    }
    if (pos != npos[kind])
        return fail(m, err, e->off, e->len, "%s() takes %d value%s before its options; use it like %s",
                    e->name, npos[kind], npos[kind] == 1 ? "" : "s", usage[kind]);
    if (!init_shape(m, e->args[0], &p->shape, err)) return false;
    if (kind == 3) {
        if (!bpv_ast_number(e->args[1], &lo) || !isfinite(lo))
            return fail(m, err, e->args[1]->off, e->args[1]->len, "LO must be a number");
        if (!bpv_ast_number(e->args[2], &hi) || !isfinite(hi) || hi < lo)
            return fail(m, err, e->args[2]->off, e->args[2]->len,
                        "HI must be a number not below LO");
    }
    p->numel = bpv_shape_numel(&p->shape);
    if (!fits(m, (size_t)p->numel * 8))
        return fail(m, err, e->off, e->len, "this param is too large for the model memory limit (BPV_MAX_MODEL_MB)");
    p->val = bpv_arena_calloc(m->arena, (size_t)p->numel, sizeof(double));
    if (!p->val) return oom(err);
    uint64_t s = (uint64_t)seed;
    for (int64_t i = 0; i < p->numel; i++) {
        double v = kind == 1 ? 1.0 : 0.0;
        if (kind == 2) {
            if (i % 2 == 0) {
                double u1 = 1.0 - unit(&s), u2 = unit(&s);
                double r = sqrt(-2.0 * log(u1)), t = 2.0 * 3.14159265358979323846 * u2;
                v = r * cos(t);
                if (i + 1 < p->numel) p->val[i + 1] = r * sin(t); /* the pair's second value */
            } else {
                v = p->val[i];
            }
            v *= stdv;
        } else if (kind == 3) {
            v = lo + (hi - lo) * unit(&s);
        }
        p->val[i] = v;
    }
    for (int64_t i = 0; i < p->numel; i++) {
        double r = bpv_round(m->dtype, p->val[i]);
        if (isinf(r) && isfinite(p->val[i]))
            return fail(m, err, e->off, e->len, "the initial values are out of range for f32");
        p->val[i] = r;
    }
    return true;
}

static bool check_param(bpv_model *m, const bpv_stmt *st, int i, bpv_error **err) {
    if (!declare(m, st, i, BPV_SYM_PARAM, m->nparams, err)) return false;
    bpv_param *p = &m->params[m->nparams];
    p->name = st->name;
    p->stmt = st;
    for (int k = 0; k < st->nkv; k++) {
        const bpv_ast_kv *kv = &st->kv[k];
        if (strcmp(kv->key, "lr") != 0) {
            static const char *const keys[] = {"lr"};
            const char *s = bpv_closest(kv->key, keys, 1);
            return fail(m, err, kv->key_off, kv->key_len,
                        "unknown param option '%s'%s; a param takes only lr=NUMBER", kv->key,
                        s ? " (did you mean 'lr'?)" : "");
        }
        if (p->has_lr)
            return fail(m, err, kv->key_off, kv->key_len, "lr is given twice");
        if (!bpv_ast_number(kv->value, &p->lr) || !(p->lr >= 0) || !isfinite(p->lr))
            return fail(m, err, kv->value->off, kv->value->len,
                        "lr must be a number of at least 0, like lr=0.01");
        p->has_lr = true;
    }
    if (!param_init(m, st, p, err)) return false;
    /* value, .grad and the optimizer's two buffers, in the model's storage
     * (the doubles param_init made stay as the initial values) */
    const size_t esz = m->f32store ? sizeof(float) : sizeof(double);
    size_t bytes = (size_t)p->numel * (m->f32store ? 4 : 3) * esz;
    if (!fits(m, bytes))
        return fail(m, err, st->value->off, st->value->len,
                    "this param is too large for the model memory limit (BPV_MAX_MODEL_MB)");
    if (m->f32store) {
        float *v = bpv_arena_alloc(m->arena, (size_t)p->numel * esz);
        if (!v) return oom(err);
        for (int64_t q = 0; q < p->numel; q++) v[q] = (float)p->val[q];
        p->val32 = v;
    }
    p->grad = bpv_arena_calloc(m->arena, (size_t)p->numel, esz);
    p->m = bpv_arena_calloc(m->arena, (size_t)p->numel, esz);
    p->v = bpv_arena_calloc(m->arena, (size_t)p->numel, esz);
    if (!p->grad || !p->m || !p->v) return oom(err);
    /* torch's .grad starts as None and the first backward stores its result
     * as is; -0.0 + g == g for every g (a -0.0 gradient included), which
     * plain zeroes would turn into +0.0 */
    for (int64_t q = 0; q < p->numel; q++) {
        if (m->f32store) p->grad32[q] = -0.0f;
        else p->grad[q] = -0.0;
    }
    m->nparams++;
    return true;
}

static bool check_const(bpv_model *m, const bpv_stmt *st, int i, bpv_error **err) {
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

static bool check_fn(bpv_model *m, const bpv_stmt *st, int i, bpv_error **err) {
    if (!declare(m, st, i, BPV_SYM_FN, -1, err)) return false;
    for (int k = 0; k < st->nparams; k++) {
        size_t off = st->param_offs ? st->param_offs[k] : st->off;
        if (bpv_is_builtin(st->params[k]))
            return fail(m, err, off, strlen(st->params[k]),
                        "'%s' is a built-in function; choose another parameter name",
                        st->params[k]);
        for (int j = 0; j < k; j++)
            if (strcmp(st->params[j], st->params[k]) == 0)
                return fail(m, err, off, strlen(st->params[k]),
                            "parameter '%s' appears twice", st->params[k]);
    }
    if (st->grads) return bpv_custom_make(m, st, i, err);
    return bpv_check_expr(m, st->value, i, st->params, st->nparams, st->name, err);
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
        return fail(m, err, kv->value->off, kv->value->len, "%s must be true or false",
                    kv->key);
    return true;
}

static bool unit_interval(bpv_model *m, const bpv_ast_kv *kv, double *out, bpv_error **err) {
    if (!bpv_ast_number(kv->value, out) || !(*out >= 0 && *out < 1))
        return fail(m, err, kv->value->off, kv->value->len,
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
                return fail(m, err, kv->key_off, kv->key_len,
                            "unknown train key '%s' (did you mean '%s'?)", kv->key, s);
            return fail(m, err, kv->key_off, kv->key_len,
                        "unknown train key '%s'; the keys are epochs, lr, batch, optimizer, "
                        "momentum, beta1, beta2, eps, zero_grad, shuffle, seed, loss, "
                        "stop_on_nonfinite",
                        kv->key);
        }
        if (given[j])
            return fail(m, err, kv->key_off, kv->key_len, "%s is given twice", kv->key);
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
        return fail(m, err, st->off, st->len,
                    "train needs epochs=N, the number of passes over the data");
    if (!whole(kv->value, 1, 1e9, &v))
        return fail(m, err, kv->value->off, kv->value->len,
                    "epochs must be a whole number from 1 to 1000000000");
    t->epochs = (long)v;
    if ((kv = given[3])) {
        if (is_name(kv->value, "adam")) t->adam = true;
        else if (!is_name(kv->value, "sgd")) {
            static const char *const opts[] = {"sgd", "adam"};
            const char *s = kv->value->kind == AST_NAME ? bpv_closest(kv->value->name, opts, 2)
                                                        : NULL;
            return fail(m, err, kv->value->off, kv->value->len,
                        "optimizer must be sgd or adam%s%s%s", s ? " (did you mean '" : "",
                        s ? s : "", s ? "'?)" : "");
        }
    }
    t->lr = t->adam ? 0.001 : 0.01;
    if ((kv = given[1]) && (!bpv_ast_number(kv->value, &t->lr) || !(t->lr >= 0) || !isfinite(t->lr)))
        return fail(m, err, kv->value->off, kv->value->len,
                    "lr must be a number of at least 0, like lr=0.01");
    if ((kv = given[2])) {
        if (is_name(kv->value, "all")) t->batch = 0;
        else if (whole(kv->value, 1, (double)BPV_MAX_TENSOR_ELEMS, &v)) t->batch = (int64_t)v;
        else
            return fail(m, err, kv->value->off, kv->value->len,
                        "batch must be a whole number of samples from 1, or all");
    }
    if ((kv = given[4])) {
        if (t->adam)
            return fail(m, err, kv->key_off, kv->key_len,
                        "momentum is an sgd setting; adam uses beta1 and beta2");
        if (!bpv_ast_number(kv->value, &t->momentum) || !(t->momentum >= 0) ||
            !isfinite(t->momentum))
            return fail(m, err, kv->value->off, kv->value->len,
                        "momentum must be a number of at least 0, like momentum=0.9");
    }
    for (int j = 5; j <= 7; j++)
        if ((kv = given[j]) && !t->adam)
            return fail(m, err, kv->key_off, kv->key_len,
                        "%s is an adam setting; add optimizer=adam", kv->key);
    if ((kv = given[5]) && !unit_interval(m, kv, &t->beta1, err)) return false;
    if ((kv = given[6]) && !unit_interval(m, kv, &t->beta2, err)) return false;
    if ((kv = given[7]) && (!bpv_ast_number(kv->value, &t->eps) || !(t->eps >= 0) || !isfinite(t->eps)))
        return fail(m, err, kv->value->off, kv->value->len,
                    "eps must be a number of at least 0, like eps=1e-8");
    if ((kv = given[8]) && !bool_value(m, kv, &t->zero_grad, err)) return false;
    if ((kv = given[9]) && !bool_value(m, kv, &t->shuffle, err)) return false;
    if ((kv = given[12]) && !bool_value(m, kv, &t->stop_on_nonfinite, err)) return false;
    if ((kv = given[10])) {
        if (!whole(kv->value, 0, 9007199254740992.0, &v))
            return fail(m, err, kv->value->off, kv->value->len,
                        "seed must be a whole number from 0");
        t->seed = (uint64_t)v;
    }
    if ((kv = given[11])) {
        if (kv->value->kind != AST_NAME)
            return fail(m, err, kv->value->off, kv->value->len,
                        "loss must name a node, like loss=total");
        t->loss = kv->value->name;
        t->loss_off = kv->value->off;
        t->loss_len = kv->value->len;
    }
    return true;
}

static bool check_train(bpv_model *m, const bpv_stmt *st, int i, bool *covered,
                        bpv_error **err) {
    bpv_train *t = &m->trains[m->ntrains];
    if (!train_keys_parse(m, st, t, err)) return false;
    t->stmt_index = i;
    int k = bpv_sym_find(m, t->loss);
    bool named = t->loss_off != st->off;
    int later = bpv_later_def(m, t->loss, i);
    if (k < 0 && !named && later >= 0)
        return fail(m, err, st->off, st->len,
                    "the loss is defined at line %d, after this train; move the train below it",
                    line_of(m, m->prog.stmts[later].off));
    if (k < 0 && !named)
        return fail(m, err, st->off, st->len,
                    "no node named 'loss' to train; name one `loss = ...` or use train "
                    "loss=NAME");
    if (k < 0 || m->syms[k].stmt >= i || m->syms[k].kind == BPV_SYM_FN) {
        bpv_ast tmp = {0};
        tmp.kind = AST_NAME;
        tmp.name = t->loss;
        tmp.off = t->loss_off;
        tmp.len = t->loss_len;
        if (!named && k >= 0 && m->syms[k].kind != BPV_SYM_FN)
            return fail(m, err, st->off, st->len,
                        "the loss is defined at line %d, after this train; move the train "
                        "below it",
                        line_of(m, m->prog.stmts[m->syms[k].stmt].off));
        if (!named) tmp.off = st->off, tmp.len = st->len;
        if (!bpv_check_expr(m, &tmp, i, NULL, 0, NULL, err)) return false;
        return fail(m, err, tmp.off, tmp.len, "'%s' cannot be trained", t->loss);
    }
    /* the data this objective reads decide the samples per epoch */
    bool *need = calloc((size_t)m->prog.nstmts + 1, sizeof *need);
    if (!need) return oom(err);
    bpv_mark_needed(m, t->loss, need);
    const bpv_data *first = NULL;
    for (int j = 0; j < i; j++) {
        if (!need[j]) continue;
        covered[j] = true;
        if (m->prog.stmts[j].kind != ST_DATA) continue;
        const bpv_data *d = &m->data[m->syms[bpv_sym_find(m, m->prog.stmts[j].name)].ref];
        if (!first) {
            first = d;
        } else if (d->nsamples != first->nsamples) {
            free(need);
            return fail(m, err, st->off, st->len,
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
        return fail(m, err, ls->name_off, ls->name_len,
                    "the loss '%s' has shape %s; wrap it in mean() or sum()", t->loss,
                    bpv_shape_str(&obj->shape, sb, sizeof sb));
    }
    if (!obj->needs_grad)
        return fail(m, err, ls->name_off, ls->name_len,
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
        return fail(m, err, st->off, st->len,
                    "this model would train for %.0f steps; the limit is 1e12", total);
    m->total_steps += t->epochs * t->steps_per_epoch;
    m->ntrains++;
    return true;
}

/* ---- predict --------------------------------------------------------------------- */

static bool check_predict(bpv_model *m, const bpv_stmt *st, int i, bool *covered,
                          bpv_error **err) {
    bpv_ast tmp = {0};
    tmp.kind = AST_NAME;
    tmp.name = st->name;
    tmp.off = st->name_off;
    tmp.len = st->name_len;
    if (!bpv_check_expr(m, &tmp, i, NULL, 0, NULL, err)) return false;
    bpv_binding *bind = st->nkv ? bpv_arena_calloc(m->arena, (size_t)st->nkv, sizeof *bind) : NULL;
    if (st->nkv && !bind) return oom(err);
    for (int k = 0; k < st->nkv; k++) {
        const bpv_ast_kv *kv = &st->kv[k];
        int s = bpv_sym_find(m, kv->key);
        if (s < 0 || m->syms[s].stmt >= i) {
            tmp.name = kv->key;
            tmp.off = kv->key_off;
            tmp.len = kv->key_len;
            return bpv_check_expr(m, &tmp, i, NULL, 0, NULL, err) &&
                   fail(m, err, kv->key_off, kv->key_len, "unknown data '%s'", kv->key);
        }
        if (m->syms[s].kind != BPV_SYM_DATA) {
            static const char *const kinds[] = {"data", "a param", "a const", "a named node",
                                                "a function"};
            return fail(m, err, kv->key_off, kv->key_len,
                        "'%s' is %s, not data; predict can only give values to data", kv->key,
                        kinds[m->syms[s].kind]);
        }
        for (int j = 0; j < k; j++)
            if (strcmp(bind[j].name, kv->key) == 0)
                return fail(m, err, kv->key_off, kv->key_len, "'%s' is given twice", kv->key);
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
    bool *need = calloc((size_t)m->prog.nstmts + 1, sizeof *need);
    if (!need) return oom(err);
    bpv_mark_needed(m, st->name, need);
    for (int j = 0; j < i; j++) covered[j] |= need[j];
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

bool bpv_model_check(bpv_model *m, bpv_error **err) {
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
    bool *covered = calloc((size_t)pr->nstmts + 1, sizeof *covered);
    if (!m->data || !m->params || !m->consts || !m->trains || !m->predicts || !covered) {
        free(covered);
        return oom(err);
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
                ok = fail(m, err, st->off, st->len, "dtype is already set at line %d",
                          line_of(m, pr->stmts[dtype_stmt].off));
            else if (first_decl >= 0)
                ok = fail(m, err, st->off, st->len,
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
                ok = fail(m, err, st->name_off, st->name_len, "unknown dtype '%s'%s%s%s; use f32 or f64",
                          st->name, s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
            }
            dtype_stmt = i;
            break;
        case ST_DATA:
            if (first_decl < 0) first_decl = i;
            ok = check_data(m, st, i, err);
            break;
        case ST_PARAM:
            if (first_decl < 0) first_decl = i;
            ok = check_param(m, st, i, err);
            break;
        case ST_CONST:
            if (first_decl < 0) first_decl = i;
            ok = check_const(m, st, i, err);
            break;
        case ST_LET:
            ok = bpv_check_expr(m, st->value, i, NULL, 0, NULL, err) &&
                 declare(m, st, i, BPV_SYM_LET, -1, err);
            break;
        case ST_FN:
            ok = check_fn(m, st, i, err);
            break;
        case ST_TRAIN:
            ok = check_train(m, st, i, covered, err);
            break;
        case ST_PREDICT:
            ok = check_predict(m, st, i, covered, err);
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

/* ---- running ---------------------------------------------------------------------- */

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

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SGD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SGD_CLONES
#endif

/* The optimizers over each storage type: one update per param after each
 * step, matching torch.optim (torch 1.13, single-tensor path, CPU)
 * rounding for rounding; plain SGD is the tutorial's
 * `w.data = w.data - lr * w.grad.data`. Every operation is rounded to the
 * dtype, so over float32 storage they compute in float32 where that is
 * the same (GCC narrows the double operations), in vectorised loops. Only
 * plain SGD gets an AVX2 clone: in one, GCC 12 changed Adam's results (its
 * fused multiply-adds), which the golden models caught. */
#define R(x) bpv_round(dt, (x))
#define OPTIM(SUFFIX, T, DT)                                                      \
    SGD_CLONES                                                                    \
    static void sgd_##SUFFIX(bpv_dtype dt_in, T *restrict w, const T *restrict g, int64_t n, \
                             double lr) {                                         \
        const bpv_dtype dt = DT;                                                  \
        (void)dt_in;                                                              \
        const T lr_ = (T)lr; /* a value of the dtype: float32 arithmetic under f32 */ \
        for (int64_t i = 0; i < n; i++) w[i] = (T)R(w[i] - R(lr_ * g[i]));        \
    }                                                                             \
    static void momentum_##SUFFIX(bpv_dtype dt_in, T *restrict w, const T *restrict g, \
                                  T *restrict mb, int64_t n, double lr, double mom, \
                                  bool first) {                                   \
        const bpv_dtype dt = DT;                                                  \
        (void)dt_in;                                                              \
        if (first) /* torch: buf = clone(grad) */                                 \
            memcpy(mb, g, (size_t)n * sizeof *mb);                                \
        else                                                                      \
            for (int64_t i = 0; i < n; i++) mb[i] = (T)R(R(mb[i] * (T)mom) + g[i]); \
        for (int64_t i = 0; i < n; i++) w[i] = (T)bpv_fma(dt, -lr, mb[i], w[i]);  \
    }                                                                             \
    static void adam_##SUFFIX(bpv_dtype dt_in, T *restrict w, const T *restrict g,    \
                              T *restrict mb, T *restrict vb, int64_t n, const double *k) { \
        const bpv_dtype dt = DT;                                                  \
        (void)dt_in;                                                              \
        /* values of the dtype: float32 arithmetic under f32 */                   \
        const T a1 = (T)k[0], b1 = (T)k[1], a2 = (T)k[2], b2 = (T)k[3], bc2s = (T)k[4], \
                eps = (T)k[5], nss = (T)k[6];                                     \
        for (int64_t i = 0; i < n; i++) {                                         \
            mb[i] = (T)bpv_fma(dt, a1, g[i], R(mb[i] * b1));                      \
            vb[i] = (T)bpv_fma(dt, R(a2 * g[i]), g[i], R(vb[i] * b2));            \
            const double denom = R(R(R(sqrt(vb[i])) / bc2s) + eps);               \
            w[i] = (T)R(w[i] + R(R(nss * mb[i]) / denom));                        \
        }                                                                         \
    }
OPTIM(f64, double, dt_in)
OPTIM(f32, float, BPV_F32) /* a constant dtype: R() folds into float32 operations */
#undef OPTIM

/* Momentum and Adam over float32 with AVX2 and FMA, eight lanes at a time:
 * each intrinsic rounds once, where the loops above round, and an FMA is
 * the fmaf they call, so the bits are theirs; the last n % 8 elements go
 * through them. Written out because GCC's own vectorisation of those loops
 * in target clones changed Adam's bits (the golden models caught it). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define OPT_AVX2 __attribute__((target("avx2,fma")))

static bool opt_avx2(void) {
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return have;
}

OPT_AVX2
static int64_t momentum8(float *restrict w, const float *restrict g, float *restrict mb,
                         int64_t n, float lr, float mom, bool first) {
    const __m256 vm = _mm256_set1_ps(mom), vl = _mm256_set1_ps(-lr);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gi = _mm256_loadu_ps(g + i);
        const __m256 b =
            first ? gi : _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(mb + i), vm), gi);
        _mm256_storeu_ps(mb + i, b);
        _mm256_storeu_ps(w + i, _mm256_fmadd_ps(vl, b, _mm256_loadu_ps(w + i)));
    }
    return i;
}

OPT_AVX2
static int64_t adam8(float *restrict w, const float *restrict g, float *restrict mb,
                     float *restrict vb, int64_t n, const double *k) {
    const __m256 a1 = _mm256_set1_ps((float)k[0]), b1 = _mm256_set1_ps((float)k[1]);
    const __m256 a2 = _mm256_set1_ps((float)k[2]), b2 = _mm256_set1_ps((float)k[3]);
    const __m256 bc2s = _mm256_set1_ps((float)k[4]), eps = _mm256_set1_ps((float)k[5]);
    const __m256 nss = _mm256_set1_ps((float)k[6]);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gi = _mm256_loadu_ps(g + i);
        const __m256 m = _mm256_fmadd_ps(a1, gi, _mm256_mul_ps(_mm256_loadu_ps(mb + i), b1));
        const __m256 v = _mm256_fmadd_ps(_mm256_mul_ps(a2, gi), gi,
                                         _mm256_mul_ps(_mm256_loadu_ps(vb + i), b2));
        const __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), bc2s), eps);
        const __m256 step = _mm256_div_ps(_mm256_mul_ps(nss, m), den);
        _mm256_storeu_ps(mb + i, m);
        _mm256_storeu_ps(vb + i, v);
        _mm256_storeu_ps(w + i, _mm256_add_ps(_mm256_loadu_ps(w + i), step));
    }
    return i;
}
#else
static bool opt_avx2(void) { return false; }
static int64_t momentum8(float *w, const float *g, float *mb, int64_t n, float lr, float mom,
                         bool first) {
    (void)w, (void)g, (void)mb, (void)n, (void)lr, (void)mom, (void)first;
    return 0;
}
static int64_t adam8(float *w, const float *g, float *mb, float *vb, int64_t n,
                     const double *k) {
    (void)w, (void)g, (void)mb, (void)vb, (void)n, (void)k;
    return 0;
}
#endif

/* Adam's per-step numbers, as torch computes them in Python doubles and
 * rounds to the dtype: 1-b1, b1, 1-b2, b2, sqrt(bc2), eps, -lr/bc1. */
static void adam_consts(bpv_dtype dt, const bpv_train *t, bpv_param *p, double *k) {
    long step = ++p->adam_t;
    const double bc1 = 1.0 - pow(t->beta1, (double)step);
    const double bc2 = 1.0 - pow(t->beta2, (double)step);
    const double step_size = (p->has_lr ? p->lr : t->lr) / bc1;
    k[0] = R(1.0 - t->beta1), k[1] = R(t->beta1), k[2] = R(1.0 - t->beta2), k[3] = R(t->beta2);
    k[4] = R(sqrt(bc2)), k[5] = R(t->eps), k[6] = R(-step_size);
}

/* One optimizer step for one param over double storage (an f64 model, or
 * an f32 one under BPV_STORE_F64=1). */
static void update_f64(bpv_dtype dt, const bpv_train *t, bpv_param *p) {
    const double lr = R(p->has_lr ? p->lr : t->lr);
    const int64_t n = p->numel;
    if (!t->adam && t->momentum == 0) {
        if (n == 1) p->val[0] = R(p->val[0] - R(lr * p->grad[0])); /* inline: a call costs more */
        else sgd_f64(dt, p->val, p->grad, n, lr);
    } else if (!t->adam) {
        const bool first = !p->has_momentum;
        p->has_momentum = true;
        momentum_f64(dt, p->val, p->grad, p->m, n, lr, R(t->momentum), first);
    } else {
        /* exp_avg.mul_(b1).add_(g, alpha=1-b1); exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2);
         * denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps);
         * p.addcdiv_(exp_avg, denom, value=-lr/bc1) */
        double k[7];
        adam_consts(dt, t, p, k);
        adam_f64(dt, p->val, p->grad, p->m, p->v, n, k);
    }
}

/* The same over float32 storage: eight lanes at a time with AVX2 and FMA
 * where the CPU has them, the rest through the loops above. */
static void update_f32(const bpv_train *t, bpv_param *p) {
    const bpv_dtype dt = BPV_F32;
    const double lr = R(p->has_lr ? p->lr : t->lr);
    const int64_t n = p->numel;
    float *w = p->val32, *g = p->grad32;
    if (!t->adam && t->momentum == 0) {
        if (n == 1) w[0] = (float)R(w[0] - R(lr * g[0])); /* inline: a call costs more */
        else sgd_f32(dt, w, g, n, lr);
    } else if (!t->adam) {
        const bool first = !p->has_momentum;
        const double mom = R(t->momentum);
        p->has_momentum = true;
        const int64_t done = opt_avx2() ? momentum8(w, g, p->m32, n, (float)lr, (float)mom, first) : 0;
        momentum_f32(dt, w + done, g + done, p->m32 + done, n - done, lr, mom, first);
    } else {
        double k[7];
        adam_consts(dt, t, p, k);
        const int64_t done = opt_avx2() ? adam8(w, g, p->m32, p->v32, n, k) : 0;
        adam_f32(dt, w + done, g + done, p->m32 + done, p->v32 + done, n - done, k);
    }
}

/* One optimizer step for one param, over the model's storage. */
static inline void update(const bpv_model *m, const bpv_train *t, bpv_param *p) {
    if (m->f32store) update_f32(t, p);
    else update_f64(m->dtype, t, p);
}
#undef R

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
    bpv_buf_printf(b, "epoch=%ld loss=", m->epoch);
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
    if (o->gradcheck && !m->grad_used) { /* `bpviz check` reports params without gradient */
        m->grad_used = bpv_arena_calloc(m->arena, (size_t)m->nparams + 1, sizeof(bool));
        m->grad_seen = bpv_arena_calloc(m->arena, (size_t)m->nparams + 1, sizeof(bool));
        if (!m->grad_used || !m->grad_seen)
            return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    }
    for (int k = 0; k < nps && m->grad_used; k++) {
        const bpv_param *p = &m->params[ps[k].ref];
        m->grad_used[ps[k].ref] = true;
        for (int64_t q = 0; q < p->numel && !m->grad_seen[ps[k].ref]; q++)
            if (m->f32store ? p->grad32[q] != 0 : p->grad[q] != 0) m->grad_seen[ps[k].ref] = true;
    }
    if (m->nf_step || bpv_graph_finite(g)) return BPV_OK;
    m->nf_step = m->step;
    bool keep = o->keep_first_nonfinite && !*snap;
    bpv_snapshot *s = *snap ? *snap : bpv_snapshot_take(m, g, m->step, m->epoch, samples, nsamples);
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
        if (o->on_warning) o->on_warning(b.data, o->warning_user);
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

/* Runs one train statement; *stop is set when the caller asked to stop. */
static int run_train(bpv_model *m, bpv_train *t, const bpv_run_options *o, bpv_buf *b,
                     long maxkeep, bool *stop, bpv_error **err) {
    bpv_graph *G = t->full, *P = t->part;
    int cap = G->nnodes + (P ? P->nnodes : 0) + 1;
    leafref *gd = malloc((size_t)cap * sizeof *gd), *pd = malloc((size_t)cap * sizeof *pd),
            *ps = malloc((size_t)cap * sizeof *ps);
    int64_t n = t->nsamples ? t->nsamples : 1;
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    if (!gd || !pd || !ps || !perm) {
        free(gd), free(pd), free(ps), free(perm);
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    }
    const bool f32 = m->f32store;
    int ngd = collect(G, gd, BPV_NODE_DATA), npd = P ? collect(P, pd, BPV_NODE_DATA) : 0;
    int nps = collect(G, ps, BPV_NODE_PARAM);
    /* all-scalar graphs run as flat instruction lists (scalar.c);
     * BPV_NO_SCALAR=1 turns them off, to compare the two paths */
    bool plans = !getenv("BPV_NO_SCALAR");
    bpv_scalar_plan *TG = plans ? bpv_scalar_build(m->arena, G) : NULL;
    bpv_scalar_plan *TP = plans && P ? bpv_scalar_build(m->arena, P) : NULL;
    for (int k = 0; k < ngd + npd; k++) {
        leafref *l = k < ngd ? &gd[k] : &pd[k - ngd];
        const bpv_data *d = &m->data[l->ref];
        l->src = f32 ? (const void *)d->values32 : (const void *)d->values;
        l->sn = bpv_shape_numel(&d->sample);
    }
    const bool inspect =
        o->gradcheck || o->on_warning || o->keep_first_nonfinite || t->stop_on_nonfinite;
    /* each train starts a new optimizer, as a new torch.optim object would */
    for (int k = 0; k < nps; k++) {
        bpv_param *p = &m->params[ps[k].ref];
        const size_t bytes = (size_t)p->numel * (f32 ? sizeof(float) : sizeof(double));
        p->has_momentum = false;
        p->adam_t = 0;
        memset(p->m, 0, bytes);
        memset(p->v, 0, bytes);
    }
    uint64_t rng = t->seed;
    long total = m->total_steps;
    /* the next step to keep, so that most steps skip the step-set lookup */
    long next_keep = o->keep ? bpv_step_set_next(o->keep, m->step + 1, total) : LONG_MAX;
    int rc = BPV_OK;
    for (long e = 0; e < t->epochs && !*stop && rc == BPV_OK; e++) {
        for (int64_t i = 0; i < n; i++) perm[i] = i;
        if (t->shuffle)
            for (int64_t i = n - 1; i > 0; i--) {
                int64_t j = (int64_t)(splitmix64(&rng) % (uint64_t)(i + 1));
                int64_t x = perm[i];
                perm[i] = perm[j];
                perm[j] = x;
            }
        double loss = 0;
        for (long s = 0; s < t->steps_per_epoch; s++) {
            bool last = P && s == t->steps_per_epoch - 1;
            bpv_graph *g = last ? P : G;
            const bpv_scalar_plan *plan = last ? TP : TG;
            int64_t start = s * t->bsize;
            int64_t cnt = last ? t->nsamples - start : t->bsize;
            /* a step nobody records need not keep every edge's partial */
            const bool unread = m->step + 1 < next_keep;
            fill_batch(t, last ? pd : gd, last ? npd : ngd, perm, start, cnt, f32);
            if (plan) bpv_scalar_forward(plan);
            else bpv_graph_forward(g);
            /* the tutorial zeroes .grad after each update, i.e. from the
             * second backward on; before the first it is still None */
            if (t->zero_grad && m->step > 0 && !plan)
                g->params_zeroed = true; /* the backward pass zeroes as it writes */
            else if (t->zero_grad && m->step > 0)
                for (int k = 0; k < nps; k++) {
                    bpv_param *p = &m->params[ps[k].ref];
                    memset(p->grad, 0, (size_t)p->numel * (f32 ? sizeof(float) : sizeof(double)));
                }
            g->edges_unread = unread && !inspect;
            if (plan) bpv_scalar_backward(plan);
            else bpv_graph_backward(g);
            m->step++;
            if (o->on_progress) /* a figure's run ends at its last kept step */
                o->on_progress(m->step, o->stop_after_last_kept && maxkeep < total ? maxkeep : total,
                               o->progress_user);
            loss = bpv_node_value(g, &g->nodes[g->objective], 0);
            bpv_snapshot *snap = NULL;
            if (m->step >= next_keep) { /* steps count up by one: this is next_keep */
                next_keep = bpv_step_set_next(o->keep, m->step + 1, total);
                snap = bpv_snapshot_take(m, g, m->step, m->epoch,
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
            for (int k = 0; k < nps; k++) update(m, t, &m->params[ps[k].ref]);
            if (snap) {
                bpv_snapshot_set_after(snap, m);
                if (m->nsnaps == m->capsnaps) {
                    size_t nc = m->capsnaps ? m->capsnaps * 2 : 16;
                    bpv_snapshot **v = realloc(m->snaps, nc * sizeof *v);
                    if (!v) {
                        bpv_snapshot_free(snap);
                        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
                        break;
                    }
                    m->snaps = v;
                    m->capsnaps = nc;
                }
                m->snaps[m->nsnaps++] = snap;
                if (o->on_snapshot && o->on_snapshot(snap, o->user)) *stop = true;
            }
            if (o->stop_after_last_kept && m->step >= maxkeep) *stop = true;
            if (nf_stop) *stop = true;
            if (*stop) break;
        }
        if (*stop || rc != BPV_OK) break;
        rc = epoch_line(m, t, loss, o, b, err);
        m->epoch++;
    }
    free(gd), free(pd), free(ps), free(perm);
    return rc;
}

int bpv_model_exec(bpv_model *m, const bpv_run_options *o, bpv_error **err) {
    bpv_buf b;
    bpv_buf_init(&b);
    long maxkeep = o->keep ? bpv_step_set_max(o->keep, m->total_steps) : 0;
    bool stop = false;
    int rc = BPV_OK, ti = 0;
    for (int i = 0; i < m->prog.nstmts && rc == BPV_OK && !stop; i++) {
        const bpv_stmt *st = &m->prog.stmts[i];
        m->cur_stmt = i;
        if (st->kind == ST_PREDICT) {
            rc = run_predict(m, i, o, &b, err);
        } else if (st->kind == ST_TRAIN) {
            if (o->stop_after_last_kept && m->step >= maxkeep) break;
            rc = run_train(m, &m->trains[ti++], o, &b, maxkeep, &stop, err);
        }
    }
    if (rc == BPV_OK && o->out && fflush(o->out) != 0)
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot write the output: %s",
                                              strerror(errno)));
    bpv_buf_free(&b);
    return rc;
}
