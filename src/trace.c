/* Reading a JSON trace back (trace.h): the text is parsed (jsonread.c),
 * then every step is checked field by field and copied into a snapshot
 * whose records live in the trace model's arena. Each error names the
 * field by its path in the document, "steps[3].nodes[7].value", at the
 * line and column of the offending value. An op bpviz knows is kept as
 * that op only when its inputs, attributes and shape are the ones bpviz's
 * op would have (its row's arity and shape rule): every exporter may then
 * rely on them; anything else is drawn by its name. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "figure.h"
#include "inspect.h"
#include "jsonread.h"
#include "trace.h"

/* Strings a trace may hold: names, formulas, notes, paths. */
#define TRACE_STRING_BYTES 4096
/* Op names and class names: [a-z_][a-z0-9_]* and identifiers. */
#define TRACE_NAME_BYTES 64

static const char *const kind_names[] = {"data", "param", "const", "op"};

typedef struct tr {
    bpv_model *m;
    bpv_error **err;
    char where[96];   /* "steps[3].nodes[7]" */
    bool failed;
    bool f32;
} tr;

static bool bad(tr *t, const bpv_jval *at, const char *field, const char *fmt, ...)
    BPV_PRINTF(4, 5);

/* A located error: "steps[3].nodes[7].value: MESSAGE" at the value. */
static bool bad(tr *t, const bpv_jval *at, const char *field, const char *fmt, ...) {
    if (t->failed) return false;
    t->failed = true;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char path[160];
    snprintf(path, sizeof path, "%s%s%s", t->where, t->where[0] && field && *field ? "." : "",
             field ? field : "");
    bpv_error_set(t->err, bpv_error_at(&t->m->src, at ? at->off : 0, at ? at->len : 1,
                                       BPV_ERR_MODEL, "%s%s%s", path, *path ? ": " : "", msg));
    return false;
}

static bool oom(tr *t) {
    if (t->failed) return false;
    t->failed = true;
    bpv_error_set(t->err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory reading '%s'",
                                        t->m->src.name));
    return false;
}

/* Arena memory within the memory budget. */
static void *talloc(tr *t, const bpv_jval *at, size_t n, size_t size) {
    size_t used = bpv_arena_used(t->m->arena);
    if ((n && size > (SIZE_MAX - used) / n) || !bpv_memory_fits(used, (uint64_t)n * size)) {
        char msg[256];
        bad(t, at, "", "%s",
            bpv_memory_text(msg, sizeof msg, "the trace",
                            (uint64_t)used + (uint64_t)n * size, NULL));
        return NULL;
    }
    void *p = bpv_arena_calloc(t->m->arena, n ? n : 1, size);
    if (!p) oom(t);
    return p;
}

/* ---- fields ------------------------------------------------------------------ */

static const bpv_jval *member(tr *t, const bpv_jval *obj, const char *key, bool required) {
    const bpv_jval *v = bpv_json_get(obj, key);
    if (!v && required) bad(t, obj, "", "\"%s\" is missing", key);
    return v;
}

static bool want_object(tr *t, const bpv_jval *v, const char *field) {
    if (v->type == BPV_J_OBJ) return true;
    return bad(t, v, field, "expected an object {...}, found %s", bpv_json_type_name(v));
}

/* A whole number in [lo, hi]. */
static bool whole(tr *t, const bpv_jval *v, const char *field, double lo, double hi,
                  int64_t *out) {
    if (v->type != BPV_J_NUM)
        return bad(t, v, field, "expected a whole number, found %s", bpv_json_type_name(v));
    if (v->num != floor(v->num))
        return bad(t, v, field, "expected a whole number, found %.17g", v->num);
    if (v->num < lo || v->num > hi) {
        if (hi >= 1e15)
            return bad(t, v, field, "%.17g: expected a whole number from %.0f", v->num, lo);
        return bad(t, v, field, "%.17g is out of range: expected %.0f to %.0f", v->num, lo, hi);
    }
    *out = (int64_t)v->num;
    return true;
}

static bool want_string(tr *t, const bpv_jval *v, const char *field, bool nullable,
                        const char **out) {
    if (nullable && v->type == BPV_J_NULL) {
        *out = NULL;
        return true;
    }
    if (v->type != BPV_J_STR)
        return bad(t, v, field, "expected a string%s, found %s", nullable ? " or null" : "",
                   bpv_json_type_name(v));
    if (v->str.n > TRACE_STRING_BYTES)
        return bad(t, v, field, "a string of %zu bytes; the limit is %d", v->str.n,
                   TRACE_STRING_BYTES);
    *out = v->str.s;
    return true;
}

/* An op's name or a class name: letters, digits and '_' (and '.' when
 * dots), not starting with a digit, up to 64 bytes. */
static bool identifier(const char *s, bool lower, bool dots) {
    size_t n = strlen(s);
    if (n == 0 || n > TRACE_NAME_BYTES || (s[0] >= '0' && s[0] <= '9')) return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                  (!lower && c >= 'A' && c <= 'Z') || (dots && c == '.');
        if (!ok) return false;
    }
    return true;
}

/* A number of a tensor, or "nan"/"inf"/"-inf" (bpviz's spelling), rounded
 * to the trace's dtype; a finite number beyond float32's range under f32 is
 * an error, not an infinity. */
static bool num_value(tr *t, const bpv_jval *v, const char *field, double *out) {
    double d;
    if (v->type == BPV_J_NUM) d = v->num;
    else if (v->type == BPV_J_STR && strcmp(v->str.s, "nan") == 0) d = NAN;
    else if (v->type == BPV_J_STR && strcmp(v->str.s, "inf") == 0) d = INFINITY;
    else if (v->type == BPV_J_STR && strcmp(v->str.s, "-inf") == 0) d = -INFINITY;
    else if (v->type == BPV_J_STR)
        return bad(t, v, field, "expected a number, found the string \"%.40s\" (NaN and "
                                "infinities are \"nan\", \"inf\" and \"-inf\")", v->str.s);
    else return bad(t, v, field, "expected a number, found %s", bpv_json_type_name(v));
    *out = d;
    return true;
}

static bool round_dtype(tr *t, const bpv_jval *at, const char *field, double *v, int64_t n) {
    if (!t->f32) return true;
    for (int64_t i = 0; i < n; i++) {
        double r = (double)(float)v[i];
        if (isfinite(v[i]) && !isfinite(r)) {
            char num[32];
            return bad(t, at, field, "%s is beyond float32's range (the trace's dtype is f32)",
                       bpv_fmt_repr_s(num, v[i]));
        }
        v[i] = r;
    }
    return true;
}

static bool shape_numel(tr *t, const bpv_jval *at, const char *field, const bpv_shape *s,
                        int64_t *numel) {
    int64_t n = 1, lim = BPV_MAX_TENSOR_ELEMS;
    for (int d = 0; d < s->rank; d++) {
        if (s->dim[d] > lim || (s->dim[d] && n > lim / s->dim[d])) {
            char sb[96];
            return bad(t, at, field, "shape %s has more than %lld elements, the limit "
                                     "(BPV_MAX_TENSOR_ELEMS)",
                       bpv_shape_str(s, sb, sizeof sb), (long long)lim);
        }
        n *= s->dim[d];
    }
    *numel = n;
    return true;
}

static bool read_shape(tr *t, const bpv_jval *v, const char *field, bpv_shape *s,
                       int64_t *numel) {
    memset(s, 0, sizeof *s);
    size_t n = v->type == BPV_J_NUMS ? v->nums.n : v->type == BPV_J_ARR ? v->arr.n : 0;
    if (v->type != BPV_J_NUMS && !(v->type == BPV_J_ARR && n == 0))
        return bad(t, v, field, "expected a list of whole numbers like [4, 2] ([] for a "
                                "scalar), found %s", bpv_json_type_name(v));
    if (n > BPV_MAX_RANK)
        return bad(t, v, field, "%zu dimensions; bpviz draws tensors of at most %d", n,
                   BPV_MAX_RANK);
    s->rank = (int)n;
    for (size_t d = 0; d < n; d++) {
        double x = v->nums.v[d];
        if (x != floor(x) || x < 0 || x > 1e15)
            return bad(t, v, field, "dimension %zu is %.17g: expected a whole number from 0",
                       d, x);
        s->dim[d] = (int64_t)x;
    }
    return shape_numel(t, v, field, s, numel);
}

/* Copies a tensor written as nested lists of shape s (a number for a
 * scalar) into out[0..numel). */
static bool tensor_fill(tr *t, const bpv_jval *v, const char *field, const bpv_shape *s, int d,
                        double *out, int64_t *k) {
    char sb[96];
    if (d == s->rank) return num_value(t, v, field, &out[(*k)++]);
    int64_t want = s->dim[d];
    if (v->type == BPV_J_NUMS && d == s->rank - 1) {
        if ((int64_t)v->nums.n != want)
            return bad(t, v, field, "expected %lld number%s (shape %s), found %zu",
                       (long long)want, want == 1 ? "" : "s",
                       bpv_shape_str(s, sb, sizeof sb), v->nums.n);
        memcpy(out + *k, v->nums.v, (size_t)want * sizeof *out);
        *k += want;
        return true;
    }
    if (v->type == BPV_J_NUMS)
        return bad(t, v, field, "expected nested lists of shape %s, found a list of numbers",
                   bpv_shape_str(s, sb, sizeof sb));
    if (v->type != BPV_J_ARR)
        return bad(t, v, field, "expected %s of shape %s, found %s",
                   s->rank - d == 1 ? "a list of numbers" : "nested lists",
                   bpv_shape_str(s, sb, sizeof sb), bpv_json_type_name(v));
    if ((int64_t)v->arr.n != want)
        return bad(t, v, field, "expected %lld %s (shape %s), found %zu", (long long)want,
                   d == s->rank - 1 ? (want == 1 ? "number" : "numbers")
                                    : (want == 1 ? "list" : "lists"),
                   bpv_shape_str(s, sb, sizeof sb), v->arr.n);
    for (size_t i = 0; i < v->arr.n; i++)
        if (!tensor_fill(t, &v->arr.v[i], field, s, d + 1, out, k)) return false;
    return true;
}

/* A tensor of shape s, or null (*out NULL) when nullable. */
static bool read_tensor(tr *t, const bpv_jval *v, const char *field, const bpv_shape *s,
                        int64_t numel, bool nullable, double **out) {
    *out = NULL;
    if (v->type == BPV_J_NULL) {
        if (nullable) return true;
        return bad(t, v, field, "expected a tensor, found null");
    }
    double *x = talloc(t, v, (size_t)(numel ? numel : 1), sizeof *x);
    int64_t k = 0;
    if (!x || !tensor_fill(t, v, field, s, 0, x, &k)) return false;
    if (!round_dtype(t, v, field, x, numel)) return false;
    *out = x;
    return true;
}

/* The shape nested lists have (a parameter's "after" of a node the step
 * does not hold). */
static bool infer_shape(tr *t, const bpv_jval *v, const char *field, bpv_shape *s,
                        int64_t *numel) {
    memset(s, 0, sizeof *s);
    const bpv_jval *x = v;
    for (;;) {
        if (x->type == BPV_J_NUM || x->type == BPV_J_STR) break;
        if (s->rank == BPV_MAX_RANK)
            return bad(t, v, field, "nested more than %d deep; bpviz draws tensors of at "
                                    "most %d dimensions", BPV_MAX_RANK, BPV_MAX_RANK);
        if (x->type == BPV_J_NUMS) {
            s->dim[s->rank++] = (int64_t)x->nums.n;
            break;
        }
        if (x->type != BPV_J_ARR)
            return bad(t, v, field, "expected a tensor, found %s", bpv_json_type_name(x));
        s->dim[s->rank++] = (int64_t)x->arr.n;
        if (x->arr.n == 0) break;
        x = &x->arr.v[0];
    }
    return shape_numel(t, v, field, s, numel);
}

static bool read_bool(tr *t, const bpv_jval *v, const char *field, bool *out) {
    if (v->type != BPV_J_BOOL)
        return bad(t, v, field, "expected true or false, found %s", bpv_json_type_name(v));
    *out = v->b;
    return true;
}

/* The "check" of an edge or parameter (--gradcheck). */
static bool read_check(tr *t, const bpv_jval *v, const char *field, bpv_gradcheck_mark *mk) {
    static const char *const states[] = {"none", "ok", "skip", "mismatch"};
    if (!want_object(t, v, field)) return false;
    const bpv_jval *st = member(t, v, "state", true);
    if (!st) return false;
    const char *s = NULL;
    if (!want_string(t, st, "check.state", false, &s)) return false;
    int k = 1;
    while (k < 4 && strcmp(s, states[k]) != 0) k++;
    if (k == 4) return bad(t, st, "check.state", "expected \"ok\", \"mismatch\" or \"skip\"");
    mk->state = (bpv_gradcheck_state)k;
    if (mk->state == BPV_GRADCHECK_SKIP) return true;
    static const char *const keys[] = {"element", "analytic", "numeric", "relerr"};
    double x[4];
    for (int i = 0; i < 4; i++) {
        const bpv_jval *e = member(t, v, keys[i], true);
        if (!e || !num_value(t, e, "check", &x[i])) return false;
    }
    if (x[0] != floor(x[0]) || x[0] < 0 || x[0] > 1e15)
        return bad(t, member(t, v, "element", true), "check.element",
                   "expected a whole number from 0");
    mk->elem = (int64_t)x[0];
    mk->analytic = x[1];
    mk->numeric = x[2];
    mk->relerr = x[3];
    return true;
}

/* ---- ops --------------------------------------------------------------------- */

/* Whether node n is what bpviz's op n->op makes of its inputs: arity,
 * attributes and the shape its rule gives (batched or not). */
static bool op_fits(const bpv_snapshot *s, const bpv_snap_node *n) {
    const bpv_op_def *d = &bpv_ops[n->op];
    if (n->nin < d->min_in || (d->max_in >= 0 && n->nin > d->max_in)) return false;
    if (d->nattrs && !n->attr) return false;
    const bpv_shape *shapes[8], **sh = n->nin <= 8 ? shapes : malloc((size_t)n->nin * sizeof *sh);
    if (!sh) return false;
    for (int k = 0; k < n->nin; k++) sh[k] = &s->nodes[n->in[k]].shape;
    bool ok = false;
    for (int batched = 0; batched < 2 && !ok; batched++) {
        bpv_node tmp = {0};
        tmp.kind = BPV_NODE_OP;
        tmp.op = n->op;
        tmp.in = (int *)n->in;
        tmp.nin = n->nin;
        tmp.attr = n->attr;
        tmp.batched = batched;
        bpv_shape out;
        char msg[256];
        if (d->shape) {
            ok = d->shape(&tmp, sh, n->nin, &out, msg, sizeof msg);
        } else {
            out = *sh[0];
            ok = true;
            for (int k = 1; k < n->nin && ok; k++) ok = bpv_shape_broadcast(&out, sh[k], &out);
        }
        ok = ok && bpv_shape_eq(&out, &n->shape);
    }
    if (sh != shapes) free(sh);
    return ok;
}

/* The attributes of bpviz op `op` from "attrs", in its row's order (a
 * default where one is not given). */
static bool read_attrs(tr *t, const bpv_jval *v, bpv_op op, const double **out) {
    const bpv_op_def *d = &bpv_ops[op];
    *out = NULL;
    if (!d->nattrs) return v ? want_object(t, v, "attrs") : true;
    double *a = talloc(t, v, (size_t)d->nattrs, sizeof *a);
    if (!a) return false;
    bool missing = false;
    for (int k = 0; k < d->nattrs; k++) a[k] = d->attrs[k].required ? NAN : d->attrs[k].dflt;
    if (v && !want_object(t, v, "attrs")) return false;
    if (d->flags & BPV_OPF_SHAPE_ARG) { /* reshape: "shape": [3, -1] */
        const bpv_jval *sv = v ? bpv_json_get(v, "shape") : NULL;
        if (!sv) return true; /* drawn by its name */
        size_t n = sv->type == BPV_J_NUMS ? sv->nums.n : 0;
        if (n == 0 || (int)n > d->nattrs)
            return bad(t, sv, "attrs.shape", "expected 1 to %d whole numbers", d->nattrs);
        for (size_t k = 0; k < n; k++) {
            double x = sv->nums.v[k];
            if (x != floor(x) || x < d->attrs[k].lo || x > d->attrs[k].hi)
                return bad(t, sv, "attrs.shape", "expected whole numbers from -1");
            a[k] = x;
        }
        *out = a;
        return true;
    }
    for (size_t i = 0; v && i < v->obj.n; i++) {
        const bpv_jmem *mm = &v->obj.m[i];
        int k = 0;
        while (k < d->nattrs && strcmp(d->attrs[k].name, mm->key) != 0) k++;
        if (k == d->nattrs) {
            const char *known[BPV_MAX_ATTRS];
            for (int j = 0; j < d->nattrs; j++) known[j] = d->attrs[j].name;
            const char *near = bpv_closest(mm->key, known, (size_t)d->nattrs);
            bpv_jval at = {.off = mm->key_off, .len = strlen(mm->key) + 2};
            return bad(t, &at, "attrs", "%s has no attribute \"%.60s\"%s%s%s", d->name,
                       mm->key, near ? " (did you mean \"" : "", near ? near : "",
                       near ? "\"?)" : "");
        }
        const bpv_attr_def *ad = &d->attrs[k];
        double x;
        if (!num_value(t, &mm->val, "attrs", &x)) return false;
        if (!isfinite(x) || (ad->kind == BPV_ATTR_INT && (x != floor(x) || x < ad->lo ||
                                                          x > ad->hi)))
            return bad(t, &mm->val, "attrs", "%s's %s: %.17g is not allowed", d->name,
                       ad->name, x);
        a[k] = x;
    }
    for (int k = 0; k < d->nattrs; k++) missing = missing || (d->attrs[k].required && isnan(a[k]));
    *out = missing ? NULL : a; /* without them: drawn by its name */
    return true;
}

/* ---- one step ---------------------------------------------------------------- */

static void where(tr *t, long step, const char *list, long item) {
    if (!list) snprintf(t->where, sizeof t->where, "steps[%ld]", step);
    else if (item < 0) snprintf(t->where, sizeof t->where, "steps[%ld].%s", step, list);
    else snprintf(t->where, sizeof t->where, "steps[%ld].%s[%ld]", step, list, item);
}

static bool array_of(tr *t, const bpv_jval *v, const char *field, size_t *n) {
    if (v->type == BPV_J_ARR) *n = v->arr.n;
    else if (v->type == BPV_J_NUMS) *n = v->nums.n;
    else return bad(t, v, field, "expected a list [...], found %s", bpv_json_type_name(v));
    return true;
}

/* Item i of a list of objects. */
static const bpv_jval *item(tr *t, const bpv_jval *list, size_t i) {
    if (list->type != BPV_J_ARR) {
        bpv_jval at = *list;
        bad(t, &at, "", "expected an object {...}, found a number");
        return NULL;
    }
    const bpv_jval *v = &list->arr.v[i];
    return want_object(t, v, "") ? v : NULL;
}

static bool read_node(tr *t, bpv_snapshot *s, int i, const bpv_jval *v) {
    bpv_snap_node *n = &s->nodes[i];
    const bpv_jval *x;
    int64_t id;
    if (!(x = member(t, v, "id", true)) || !whole(t, x, "id", 0, 1e15, &id)) return false;
    if (id != i)
        return bad(t, x, "id", "%lld where %d was expected: ids count from 0 in the order "
                               "of the list", (long long)id, i);
    if ((x = member(t, v, "name", false)) && !want_string(t, x, "name", true, &n->name))
        return false;
    const char *kind = NULL;
    if (!(x = member(t, v, "kind", true)) || !want_string(t, x, "kind", false, &kind))
        return false;
    int k = 0;
    while (k < 4 && strcmp(kind, kind_names[k]) != 0) k++;
    if (k == 4) {
        const char *near = bpv_closest(kind, kind_names, 4);
        return bad(t, x, "kind", "\"%.40s\" is not a kind: expected \"data\", \"param\", "
                                 "\"const\" or \"op\"%s%s%s", kind,
                   near ? " (did you mean \"" : "", near ? near : "", near ? "\"?)" : "");
    }
    n->kind = (bpv_node_kind)k;
    const char *op = NULL;
    const bpv_jval *opv = member(t, v, "op", n->kind == BPV_NODE_OP);
    if (!opv && n->kind == BPV_NODE_OP) return false;
    if (opv && !want_string(t, opv, "op", n->kind != BPV_NODE_OP, &op)) return false;
    if (op && n->kind != BPV_NODE_OP)
        return bad(t, opv, "op", "a %s node has no op (null)", kind);
    if (op && !identifier(op, true, false))
        return bad(t, opv, "op", "\"%.40s\" is not an op name: lower-case letters, digits "
                                 "and '_', up to %d bytes", op, TRACE_NAME_BYTES);
    /* inputs, before the node */
    const bpv_jval *in = member(t, v, "inputs", false);
    size_t nin = 0;
    if (in && !array_of(t, in, "inputs", &nin)) return false;
    if (nin && in->type != BPV_J_NUMS)
        return bad(t, in, "inputs", "expected a list of node ids");
    if (nin && n->kind != BPV_NODE_OP)
        return bad(t, in, "inputs", "a %s node has no inputs", kind);
    if (nin > (size_t)BPV_MAX_NODES)
        return bad(t, in, "inputs", "%zu inputs; the limit is %d (BPV_MAX_NODES)", nin,
                   BPV_MAX_NODES);
    int *ins = talloc(t, in, nin, sizeof *ins);
    if (!ins) return false;
    for (size_t j = 0; j < nin; j++) {
        double d = in->nums.v[j];
        if (d != floor(d) || d < 0 || d >= i)
            return bad(t, in, "inputs", "input %zu is %.17g: an input is the id of an earlier "
                                        "node (0 to %d)", j, d, i - 1);
        ins[j] = (int)d;
    }
    n->in = ins;
    n->nin = (int)nin;
    if (!(x = member(t, v, "shape", true)) || !read_shape(t, x, "shape", &n->shape, &n->numel))
        return false;
    if (!(x = member(t, v, "value", true))) return false;
    if (!read_tensor(t, x, "value", &n->shape, n->numel, true, &n->value)) return false;
    if (!n->value) { /* not recorded: drawn as "?", not reported as a NaN */
        n->novalue = true;
        double *nan = talloc(t, x, (size_t)(n->numel ? n->numel : 1), sizeof *nan);
        if (!nan) return false;
        for (int64_t j = 0; j < n->numel; j++) nan[j] = bpv_unknown();
        n->value = nan;
    }
    if ((x = member(t, v, "grad", false)) &&
        !read_tensor(t, x, "grad", &n->shape, n->numel, true, &n->grad))
        return false;
    if ((x = member(t, v, "loop", false))) {
        if (!want_object(t, x, "loop")) return false;
        if (x->obj.n != 1) return bad(t, x, "loop", "expected one loop variable, as {\"t\": 3}");
        int64_t lv;
        if (!whole(t, &x->obj.m[0].val, "loop", -1e15, 1e15, &lv)) return false;
        if (!identifier(x->obj.m[0].key, false, false))
            return bad(t, x, "loop", "the loop variable is a name, as {\"t\": 3}");
        n->loop_var = x->obj.m[0].key;
        n->loop_value = lv;
    }
    if ((x = member(t, v, "torch", false))) {
        if (!want_string(t, x, "torch", true, &n->torch)) return false;
        if (n->torch && !identifier(n->torch, false, false))
            return bad(t, x, "torch", "expected a class name (letters, digits, '_'), up to %d "
                                      "bytes", TRACE_NAME_BYTES);
    }
    if ((x = member(t, v, "module_class", false))) {
        if (!want_string(t, x, "module_class", true, &n->module_class)) return false;
        if (n->module_class && !identifier(n->module_class, false, true))
            return bad(t, x, "module_class", "expected a class name (letters, digits, '_', "
                                             "'.'), up to %d bytes", TRACE_NAME_BYTES);
    }
    if ((x = member(t, v, "module", false))) {
        if (!want_string(t, x, "module", true, &n->module)) return false;
        const char *p = n->module;
        if (p && !*p) n->module = NULL; /* top level */
        for (; p && *p; p++) {
            bool end = p[1] == '\0' || p[1] == '.';
            if (*p == '.' && (p == n->module || end))
                return bad(t, x, "module", "a dotted path of module names, as "
                                           "\"features.0\": no empty name between dots");
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return bad(t, x, "module", "a control character in a module's path");
        }
    }
    const bpv_jval *fnv = member(t, v, "fn", false);
    if (fnv && !want_string(t, fnv, "fn", true, &n->fn)) return false;
    if (n->kind != BPV_NODE_OP) {
        n->literal = n->kind == BPV_NODE_CONST && !n->name && n->shape.rank == 0;
        return true;
    }
    /* the op: bpviz's own when it fits, else drawn by its name */
    bpv_op o = BPV_OP_COUNT;
    for (int j = 1; j < BPV_OP_COUNT; j++)
        if (strcmp(bpv_ops[j].name, op) == 0) o = (bpv_op)j;
    if (o == BPV_OP_CUSTOM && !n->fn)
        return bad(t, opv, "op", "op \"custom\" (a fn with grad) needs the function's name "
                                 "in \"fn\"");
    x = member(t, v, "attrs", false);
    if (o != BPV_OP_COUNT && o != BPV_OP_CUSTOM) {
        n->op = o;
        n->fn = NULL;
        if (!read_attrs(t, x, o, &n->attr)) return false;
        if (op_fits(s, n)) return true;
    } else if (o == BPV_OP_CUSTOM) {
        n->op = o;
        if ((x = member(t, v, "fn_grad", false))) {
            if (x->type != BPV_J_ARR || x->arr.n != (size_t)n->nin || n->nin > 2)
                return bad(t, x, "fn_grad", "expected one partial (a string or null) per input");
            for (int k = 0; k < n->nin; k++)
                if (!want_string(t, &x->arr.v[k], "fn_grad", true, &n->fn_dlocal[k]))
                    return false;
        }
        if (n->nin >= 1 && n->nin <= 2 && op_fits(s, n)) return true;
        /* bpviz's own kind of op: wrong inputs are a wrong trace */
        return bad(t, opv, "op", "a fn with grad takes one or two inputs whose shapes "
                                 "broadcast to its own");
    } else if (x && !want_object(t, x, "attrs")) {
        return false;
    }
    n->op = BPV_OP_CUSTOM;
    n->attr = NULL;
    n->fn = op;
    n->recorded = true;
    return true;
}

static bool read_edges(tr *t, bpv_snapshot *s, long si, const bpv_jval *list) {
    size_t n = 0;
    where(t, si, "edges", -1);
    if (!array_of(t, list, "", &n)) return false;
    int64_t want = 0;
    for (int i = 0; i < s->nnodes; i++) want += s->nodes[i].nin;
    if ((int64_t)n != want)
        return bad(t, list, "", "%zu edges for %lld op inputs: the list holds one edge per "
                                "input of every op, in node order", n, (long long)want);
    s->nedges = (int)n;
    s->edges = talloc(t, list, n, sizeof *s->edges);
    if (!s->edges) return false;
    size_t e = 0;
    for (int i = 0; i < s->nnodes; i++) {
        const bpv_snap_node *to = &s->nodes[i];
        for (int k = 0; k < to->nin; k++, e++) {
            where(t, si, "edges", (long)e);
            const bpv_jval *v = item(t, list, e), *x;
            if (!v) return false;
            bpv_snap_edge *se = &s->edges[e];
            se->from = to->in[k];
            se->to = i;
            se->slot = k;
            static const char *const keys[] = {"from", "to", "slot"};
            const int64_t expect[] = {to->in[k], i, k};
            for (int j = 0; j < 3; j++) {
                int64_t got;
                if (!(x = member(t, v, keys[j], true)) ||
                    !whole(t, x, keys[j], -1e15, 1e15, &got))
                    return false;
                if (got != expect[j])
                    return bad(t, x, keys[j], "%lld, but this edge is input %d of node %d, "
                                              "which is node %d: expected from %d, to %d, "
                                              "slot %d (edges follow the nodes' inputs)",
                               (long long)got, k, i, to->in[k], to->in[k], i, k);
            }
            if ((x = member(t, v, "formula", false)) &&
                !want_string(t, x, "formula", true, &se->formula))
                return false;
            const bpv_snap_node *from = &s->nodes[se->from];
            if ((x = member(t, v, "local", false)) && x->type != BPV_J_NULL) {
                /* the consumer's shape, or one number (sum, mean) */
                bool one = x->type == BPV_J_NUM || x->type == BPV_J_STR;
                bpv_shape sc = {0, {0}};
                if (!read_tensor(t, x, "local", one ? &sc : &to->shape, one ? 1 : to->numel,
                                 true, &se->local))
                    return false;
                se->nlocal = one ? 1 : to->numel;
            }
            if ((x = member(t, v, "chained", false)) &&
                !read_tensor(t, x, "chained", &from->shape, from->numel, true, &se->chained))
                return false;
            if ((x = member(t, v, "check", false))) {
                if (!read_check(t, x, "check", &se->gradcheck)) return false;
                s->gradchecked = true;
            }
        }
    }
    return true;
}

static bool read_params(tr *t, bpv_snapshot *s, long si, const bpv_jval *list) {
    size_t n = 0;
    where(t, si, "params", -1);
    if (!array_of(t, list, "", &n)) return false;
    if (n > (size_t)BPV_MAX_NODES)
        return bad(t, list, "", "%zu params; the limit is %d (BPV_MAX_NODES)", n, BPV_MAX_NODES);
    s->nparams = (int)n;
    s->params = talloc(t, list, n, sizeof *s->params);
    if (!s->params) return false;
    for (size_t q = 0; q < n; q++) {
        where(t, si, "params", (long)q);
        const bpv_jval *v = item(t, list, q), *x;
        if (!v) return false;
        bpv_snap_param *p = &s->params[q];
        p->ref = (int)q;
        if (!(x = member(t, v, "name", true)) || !want_string(t, x, "name", false, &p->name))
            return false;
        int64_t node;
        if (!(x = member(t, v, "node", true)) ||
            !whole(t, x, "node", -1, (double)s->nnodes - 1, &node))
            return false;
        p->node = (int)node;
        if (node >= 0 && s->nodes[node].kind != BPV_NODE_PARAM)
            return bad(t, x, "node", "node %lld is %s %s node, not a param", (long long)node,
                       s->nodes[node].kind == BPV_NODE_OP ? "an" : "a",
                       kind_names[s->nodes[node].kind]);
        const bpv_jval *after = member(t, v, "after", false);
        if (node >= 0) {
            p->shape = s->nodes[node].shape;
            p->numel = s->nodes[node].numel;
        } else if (after && after->type != BPV_J_NULL) {
            if (!infer_shape(t, after, "after", &p->shape, &p->numel)) return false;
        }
        if (after && !read_tensor(t, after, "after", &p->shape, p->numel, true, &p->after))
            return false;
        if ((x = member(t, v, "check", false))) {
            if (!read_check(t, x, "check", &p->gradcheck)) return false;
            s->gradchecked = true;
        }
        if ((x = member(t, v, "accumulating", false)) &&
            !read_bool(t, x, "accumulating", &p->accumulating))
            return false;
    }
    return true;
}

/* "nonfinite": {"pass": ..., "node": N, "edge": E or null, "note": "..."} */
static bool read_nonfinite(tr *t, bpv_snapshot *s, const bpv_jval *v) {
    if (!want_object(t, v, "nonfinite")) return false;
    const bpv_jval *x;
    const char *pass = NULL, *note = "";
    if (!(x = member(t, v, "pass", true)) || !want_string(t, x, "nonfinite.pass", false, &pass))
        return false;
    if (strcmp(pass, "forward") != 0 && strcmp(pass, "backward") != 0)
        return bad(t, x, "nonfinite.pass", "expected \"forward\" or \"backward\"");
    int64_t node, edge = -1;
    if (!(x = member(t, v, "node", true)) ||
        !whole(t, x, "nonfinite.node", 0, (double)s->nnodes - 1, &node))
        return false;
    if ((x = member(t, v, "edge", false)) && x->type != BPV_J_NULL &&
        !whole(t, x, "nonfinite.edge", 0, (double)s->nedges - 1, &edge))
        return false;
    if ((x = member(t, v, "note", false)) && !want_string(t, x, "nonfinite.note", true, &note))
        return false;
    s->nf_pass = pass[0] == 'f' ? 1 : 2;
    s->nf_node = (int)node;
    s->nf_edge = (int)edge;
    /* cut at a character's start, like every other text */
    size_t len = note ? strlen(note) : 0, cap = sizeof s->nf_note - 1;
    if (len > cap) {
        len = cap;
        while (len > 0 && ((unsigned char)note[len] & 0xc0) == 0x80) len--;
    }
    if (len) memcpy(s->nf_note, note, len);
    s->nf_note[len] = '\0';
    return true;
}

static bpv_snapshot *read_step(tr *t, long si, const bpv_jval *v, const char *model_name) {
    where(t, si, NULL, -1);
    if (!want_object(t, v, "")) return NULL;
    bpv_snapshot *s = calloc(1, sizeof *s);
    if (!s) {
        oom(t);
        return NULL;
    }
    s->model = model_name;
    s->dtype = t->f32 ? BPV_F32 : BPV_F64;
    s->nf_node = s->nf_edge = -1;
    const bpv_jval *x;
    int64_t w;
    bool ok = (x = member(t, v, "step", true)) && whole(t, x, "step", 1, 1e15, &w);
    if (ok) s->step = (long)w;
    if (ok && (x = member(t, v, "epoch", false)) && (ok = whole(t, x, "epoch", 0, 1e15, &w)))
        s->epoch = (long)w;
    if (ok && (x = member(t, v, "samples", false))) {
        size_t n = 0;
        ok = array_of(t, x, "samples", &n) &&
             (n == 0 || x->type == BPV_J_NUMS ||
              bad(t, x, "samples", "expected a list of sample indices"));
        if (ok && (int64_t)n > BPV_MAX_TENSOR_ELEMS)
            ok = bad(t, x, "samples", "%zu samples; the limit is %lld (BPV_MAX_TENSOR_ELEMS)",
                     n, (long long)BPV_MAX_TENSOR_ELEMS);
        if (ok && !(s->samples = talloc(t, x, n, sizeof *s->samples))) ok = false;
        for (size_t k = 0; ok && k < n; k++) {
            double d = x->nums.v[k];
            if (d != floor(d) || d < 0 || d > 1e15)
                ok = bad(t, x, "samples", "sample %zu is %.17g: expected a whole number from 0",
                         k, d);
            else s->samples[k] = (int64_t)d;
        }
        s->nsamples = (int64_t)n;
    }
    s->loss = NAN;
    if (ok && (x = member(t, v, "loss", false)) && x->type != BPV_J_NULL) {
        ok = num_value(t, x, "loss", &s->loss);
        if (ok && t->f32) s->loss = (double)(float)s->loss;
    }
    const bpv_jval *nodes = ok ? member(t, v, "nodes", true) : NULL;
    size_t nn = 0;
    ok = ok && nodes && array_of(t, nodes, "nodes", &nn);
    if (ok && nn > (size_t)BPV_MAX_NODES)
        ok = bad(t, nodes, "nodes", "%zu nodes; the limit is %d (BPV_MAX_NODES)", nn,
                 BPV_MAX_NODES);
    if (ok && nn == 0) ok = bad(t, nodes, "nodes", "a step holds at least one node");
    if (ok) {
        s->nnodes = (int)nn;
        ok = (s->nodes = talloc(t, nodes, nn, sizeof *s->nodes)) != NULL;
    }
    for (size_t i = 0; ok && i < nn; i++) {
        where(t, si, "nodes", (long)i);
        const bpv_jval *nv = item(t, nodes, i);
        ok = nv && read_node(t, s, (int)i, nv);
    }
    where(t, si, NULL, -1);
    if (ok) {
        x = member(t, v, "objective", true);
        ok = x && whole(t, x, "objective", 0, 1e15, &w);
        if (ok && w >= s->nnodes)
            ok = bad(t, x, "objective", "node %lld does not exist: the step has %d nodes",
                     (long long)w, s->nnodes);
        if (ok) s->objective = (int)w;
    }
    const bpv_jval *edges = ok ? member(t, v, "edges", true) : NULL;
    ok = ok && edges && read_edges(t, s, si, edges);
    where(t, si, NULL, -1);
    if (ok && (x = member(t, v, "params", false))) ok = read_params(t, s, si, x);
    where(t, si, NULL, -1);
    if (!ok) {
        free(s);
        return NULL;
    }
    /* marks and the origin of a NaN or infinity as bpviz finds them for its
     * own steps; a trace that says where it starts is taken at its word */
    s->pristine = false;
    bpv_inspect_nonfinite(s);
    if ((x = member(t, v, "nonfinite", false)) && x->type != BPV_J_NULL &&
        !read_nonfinite(t, s, x)) {
        free(s);
        return NULL;
    }
    return s;
}

/* ---- the whole trace ------------------------------------------------------------ */

bool bpv_trace_detect(const char *name, const char *text, size_t len) {
    size_t n = name ? strlen(name) : 0;
    if (n >= 5 && strcasecmp(name + n - 5, ".json") == 0) return true;
    if (!text) return false;
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) i = 3;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    return i < len && text[i] == '{';
}

static bool read_trace(tr *t, const bpv_jval *root) {
    t->where[0] = '\0';
    if (root->type != BPV_J_OBJ)
        return bad(t, root, "", "expected a trace: an object {\"model\": ..., \"dtype\": ..., "
                                "\"steps\": [...]}, found %s", bpv_json_type_name(root));
    bpv_model *m = t->m;
    const bpv_jval *x;
    const char *name = m->src.name, *dtype = "f32", *str;
    if ((x = member(t, root, "model", false)) && !want_string(t, x, "model", false, &name))
        return false;
    if ((x = member(t, root, "producer", false)) && !want_string(t, x, "producer", true, &str))
        return false;
    if ((x = member(t, root, "note", false)) && !want_string(t, x, "note", true, &str))
        return false;
    if ((x = member(t, root, "dtype", false))) {
        if (!want_string(t, x, "dtype", false, &dtype)) return false;
        if (strcmp(dtype, "f32") != 0 && strcmp(dtype, "f64") != 0)
            return bad(t, x, "dtype", "\"%.20s\": expected \"f32\" or \"f64\"", dtype);
    }
    t->f32 = strcmp(dtype, "f32") == 0;
    m->dtype = t->f32 ? BPV_F32 : BPV_F64;
    const bpv_jval *steps = member(t, root, "steps", true);
    size_t n = 0;
    if (!steps || !array_of(t, steps, "steps", &n)) return false;
    if (n == 0) return bad(t, steps, "steps", "the trace holds no step");
    m->run.snaps = calloc(n, sizeof *m->run.snaps);
    if (!m->run.snaps) return oom(t);
    m->run.capsnaps = n;
    for (size_t i = 0; i < n; i++) {
        if (steps->type != BPV_J_ARR) {
            where(t, (long)i, NULL, -1);
            return bad(t, steps, "", "expected an object {...}, found a number");
        }
        bpv_snapshot *s = read_step(t, (long)i, &steps->arr.v[i], name);
        if (!s) return false;
        m->run.snaps[m->run.nsnaps++] = s;
        if (i && s->step <= m->run.snaps[i - 1]->step) {
            where(t, (long)i, NULL, -1);
            return bad(t, bpv_json_get(&steps->arr.v[i], "step"), "step",
                       "step %ld after step %ld: steps are listed in increasing order",
                       s->step, m->run.snaps[i - 1]->step);
        }
        if (s->nf_pass && !m->run.nf_step) m->run.nf_step = s->step;
    }
    m->total_steps = m->run.snaps[n - 1]->step;
    return true;
}

bpv_model *bpv_trace_read(const char *name, const char *text, size_t len, bpv_error **err) {
    if (!name) name = "<string>";
    bpv_arena *a = bpv_arena_new();
    bpv_model *m = a ? bpv_arena_alloc(a, sizeof *m) : NULL;
    char *copy = m ? bpv_arena_alloc(a, len + 1) : NULL;
    if (!copy) {
        bpv_arena_free(a);
        bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory loading '%s'", name));
        return NULL;
    }
    if (len) memcpy(copy, text, len);
    m->arena = a;
    m->trace = true;
    m->src.name = bpv_arena_strdup(a, name);
    m->src.dir = ".";
    m->src.text = copy;
    m->src.len = len;
    m->dtype = BPV_F32;
    uint64_t budget = bpv_memory_budget();
    bpv_json_limits lim = {bpv_limits_get()->nesting, TRACE_STRING_BYTES,
                           budget > SIZE_MAX ? SIZE_MAX : (size_t)budget,
                           "the memory budget (--memory, BPV_MEMORY)"};
    tr t = {m, err, "", false, true};
    const bpv_jval *root = m->src.name ? bpv_json_parse(&m->src, a, &lim, err) : NULL;
    if (!m->src.name) oom(&t);
    if (!root || !read_trace(&t, root)) {
        /* what bpv_model_free does, from below it */
        for (size_t i = 0; i < m->run.nsnaps; i++) bpv_snapshot_free(m->run.snaps[i]);
        free(m->run.snaps);
        bpv_arena_free(a);
        return NULL;
    }
    return m;
}

bool bpv_trace_select(bpv_model *m, const char *spec, bpv_error **err) {
    bpv_run *r = &m->run;
    if (r->nsnaps == 0)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "the trace holds no step")),
               false;
    long first = r->snaps[0]->step, last = r->snaps[r->nsnaps - 1]->step;
    bool *keep = calloc(r->nsnaps, sizeof *keep);
    if (!keep) return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory")), false;
    size_t kept = 0;
    if (spec && strcmp(spec, "first-nonfinite") == 0) {
        for (size_t i = 0; i < r->nsnaps && !kept; i++)
            if (r->snaps[i]->nf_pass) keep[i] = true, kept = 1;
        if (!kept) {
            free(keep);
            bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                             "no value or gradient is NaN or infinite in the "
                                             "trace's %zu step%s",
                                             r->nsnaps, r->nsnaps == 1 ? "" : "s"));
            return false;
        }
    } else {
        char def[32];
        snprintf(def, sizeof def, "%ld", first);
        bpv_step_set *set = bpv_step_set_parse(spec ? spec : def, err);
        if (!set) {
            free(keep);
            return false;
        }
        for (size_t i = 0; i < r->nsnaps; i++) {
            long st = r->snaps[i]->step;
            keep[i] = bpv_step_set_next(set, st, last) == st;
            kept += keep[i];
        }
        /* a range keeps the steps the trace holds; nothing kept is a
         * mistake */
        bpv_step_set_free(set);
        if (!kept) {
            free(keep);
            bpv_buf b;
            bpv_buf_init(&b);
            for (size_t i = 0; i < r->nsnaps && i < 12; i++)
                bpv_buf_printf(&b, "%s%ld", i ? ", " : "", r->snaps[i]->step);
            if (r->nsnaps > 12) bpv_buf_printf(&b, ", … %ld", last);
            bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                             "the trace holds no step that '%s' selects; its "
                                             "step%s: %s",
                                             spec ? spec : def, r->nsnaps == 1 ? " is" : "s are",
                                             b.data ? b.data : ""));
            bpv_buf_free(&b);
            return false;
        }
    }
    size_t w = 0;
    for (size_t i = 0; i < r->nsnaps; i++) {
        if (keep[i]) r->snaps[w++] = r->snaps[i];
        else bpv_snapshot_free(r->snaps[i]);
    }
    r->nsnaps = w;
    free(keep);
    return true;
}
