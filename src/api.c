/* The C API beyond loading and running: reading and exporting a single
 * snapshot, and the graph builder.
 *
 * The builder writes the .bp program equivalent to the calls it receives
 * and loads it like any model: the language's checks, shapes, messages and
 * numbers then hold for graphs built in C too, with no second compiler to
 * keep in step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "lexer.h"
#include "model.h"

/* ---- snapshots ---------------------------------------------------------------- */

long bpv_snapshot_epoch(const bpv_snapshot *s) { return s ? s->epoch : -1; }

double bpv_snapshot_loss(const bpv_snapshot *s) { return s ? s->loss : NAN; }

long bpv_snapshot_node(const bpv_snapshot *s, const char *name, const double **value,
                       const double **grad) {
    if (!s || !name) return -1;
    for (int i = 0; i < s->nnodes; i++) {
        const bpv_snap_node *n = &s->nodes[i];
        if (!n->name || strcmp(n->name, name) != 0) continue;
        if (value) *value = n->value;
        if (grad) *grad = n->grad;
        return (long)n->numel;
    }
    return -1;
}

int bpv_snapshot_export(const bpv_snapshot *s, bpv_format fmt, const bpv_figure_options *fig,
                        char **out, size_t *out_len, bpv_error **err) {
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!s) return bpv_error_set(err, bpv_error_null("bpv_snapshot_export", "snap"));
    if (!out) return bpv_error_set(err, bpv_error_null("bpv_snapshot_export", "out"));
    if (!out_len) return bpv_error_set(err, bpv_error_null("bpv_snapshot_export", "out_len"));
    *out = NULL;
    *out_len = 0;
    if (fmt == BPV_FORMAT_JSON) {
        bpv_buf b;
        bpv_buf_init(&b);
        bpv_export_json(&b, s->model, s->dtype, &s, 1);
        *out_len = b.len;
        *out = bpv_buf_take(&b);
        return *out ? BPV_OK
                    : bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    }
    return bpv_export_figure(s, fmt, fig, out, out_len, err);
}

int bpv_snapshot_write(const bpv_snapshot *s, const char *path, int fmt,
                       const bpv_figure_options *fig, bpv_error **err) {
    if (!s) return bpv_error_set(err, bpv_error_null("bpv_snapshot_write", "snap"));
    if (!path) return bpv_error_set(err, bpv_error_null("bpv_snapshot_write", "path"));
    if (fmt >= BPV_FORMAT_COUNT || fmt < -1) /* the caller's value, not the file's name */
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                "bpv_snapshot_write: format %d is not a "
                                                "bpv_format (BPV_FORMAT_DOT ... "
                                                "BPV_FORMAT_HTML) nor -1 (from the extension)",
                                                fmt));
    if (fmt < 0) fmt = strcmp(path, "-") == 0 ? BPV_FORMAT_DOT : bpv_format_from_path(path);
    if (fmt < 0)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                "cannot tell the format of '%s' from its "
                                                "extension; use .dot, .gv, .svg, .png, .pdf "
                                                "or .json",
                                                path));
    char *data;
    size_t len;
    int rc = bpv_snapshot_export(s, (bpv_format)fmt, fig, &data, &len, err);
    if (rc == BPV_OK) rc = bpv_file_write_atomic(path, data, len, err);
    free(data);
    return rc;
}

/* ---- the builder ---------------------------------------------------------------- */

enum { K_PARAM, K_DATA, K_CONST, K_OP };

/* Binding powers of generated text, as the parser binds (ops.h). */
enum { P_NEG = BPV_PREC_NEG, P_POW = BPV_PREC_POW, P_ATOM = BPV_PREC_ATOM };

typedef struct bnode {
    int kind;
    char *name;   /* NULL for unnamed ops and constants */
    char *text;   /* K_PARAM/K_DATA: the value list; K_CONST: the number */
    bpv_op op;
    int a, c;
    int uses;
} bnode;

/* The ops a builder offers: those the language writes, by the name the
 * language calls them (T) or, for operators, the row's name (add). */
static const char *builder_name(int op) {
    const bpv_op_def *d = &bpv_ops[op];
    if (op == BPV_OP_NONE || (!d->call && !d->lang_infix)) return NULL;
    return d->call && !d->lang_infix ? d->call : d->name;
}

/* How the language writes op: its infix operator or NULL for a call. */
static int prec_of_op(bpv_op op) {
    const bpv_op_def *d = &bpv_ops[op];
    return d->lang_infix ? d->lang_prec : P_ATOM;
}

struct bpv_builder {
    bool f64;
    bnode *nodes;
    int n, cap;
    bpv_error *error; /* the first failure; reported by bpv_builder_run */
    bpv_model *model; /* of the last run; owns its snapshot */
    char *source;
};

static bpv_builder *builder_new(bool f64) {
    bpv_builder *b = calloc(1, sizeof *b);
    if (b) b->f64 = f64;
    return b;
}

bpv_builder *bpv_builder_new(void) { return builder_new(false); }
bpv_builder *bpv_builder_new_f64(void) { return builder_new(true); }

void bpv_builder_free(bpv_builder *b) {
    if (!b) return;
    for (int i = 0; i < b->n; i++) {
        free(b->nodes[i].name);
        free(b->nodes[i].text);
    }
    free(b->nodes);
    bpv_error_free(b->error);
    bpv_model_free(b->model);
    free(b->source);
    free(b);
}

static int fail(bpv_builder *b, bpv_error *e) {
    if (!b->error) b->error = e;
    else bpv_error_free(e);
    return -1;
}

static int add_node(bpv_builder *b, bnode nd) {
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 16;
        bnode *v = realloc(b->nodes, (size_t)cap * sizeof *v);
        if (!v) {
            free(nd.name);
            free(nd.text);
            return fail(b, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        }
        b->nodes = v;
        b->cap = cap;
    }
    b->nodes[b->n] = nd;
    return b->n++;
}

static bool name_taken(const bpv_builder *b, const char *name) {
    for (int i = 0; i < b->n; i++)
        if (b->nodes[i].name && strcmp(b->nodes[i].name, name) == 0) return true;
    return false;
}

/* Names must be plain identifiers: they are written into the program. */
static bool check_name(bpv_builder *b, const char *name) {
    bool ok = name && (*name == '_' || (*name >= 'a' && *name <= 'z') ||
                       (*name >= 'A' && *name <= 'Z'));
    for (const char *p = name; ok && *p; p++)
        ok = *p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
             (*p >= '0' && *p <= '9');
    if (!ok) {
        fail(b, bpv_error_new(BPV_ERR_MODEL,
                              "builder: '%s' is not a name (letters, digits and _, not "
                              "starting with a digit)",
                              name ? name : "(null)"));
        return false;
    }
    if (bpv_is_keyword(name, strlen(name)) || bpv_is_builtin(name)) {
        fail(b, bpv_error_new(BPV_ERR_MODEL,
                              "builder: '%s' is a keyword or built-in function of the "
                              "language and cannot name a node",
                              name));
        return false;
    }
    if (name_taken(b, name)) {
        fail(b, bpv_error_new(BPV_ERR_MODEL, "builder: the name '%s' is already used", name));
        return false;
    }
    return true;
}

static void put_number(bpv_buf *t, double v) {
    char tmp[40];
    bpv_buf_puts(t, bpv_fmt_repr_s(tmp, v));
}

/* Nested list text of a row-major tensor. */
static void put_tensor(bpv_buf *t, const double *v, const int64_t *dims, int rank, int d,
                       int64_t *at) {
    if (d == rank) {
        put_number(t, v[(*at)++]);
        return;
    }
    bpv_buf_putc(t, '[');
    for (int64_t i = 0; i < dims[d]; i++) {
        if (i) bpv_buf_puts(t, ", ");
        put_tensor(t, v, dims, rank, d + 1, at);
    }
    bpv_buf_putc(t, ']');
}

static int leaf(bpv_builder *b, int kind, const char *name, const double *values,
                const int64_t *dims, int rank) {
    const char *what = kind == K_PARAM ? "param" : "data";
    if (b->error) return -1;
    if (!check_name(b, name)) return -1;
    if (rank < 0 || rank > BPV_MAX_RANK || (rank > 0 && !dims) || !values)
        return fail(b, bpv_error_new(BPV_ERR_MODEL,
                                     "builder: %s '%s' needs values and a rank from 0 to %d "
                                     "with its dims",
                                     what, name, BPV_MAX_RANK));
    int64_t numel = 1;
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 1 || dims[d] > BPV_MAX_TENSOR_ELEMS / numel)
            return fail(b, bpv_error_new(BPV_ERR_MODEL,
                                         "builder: %s '%s' has a bad size %lld in dimension %d",
                                         what, name, (long long)dims[d], d));
        numel *= dims[d];
    }
    for (int64_t i = 0; i < numel; i++)
        if (!isfinite(values[i]))
            return fail(b, bpv_error_new(BPV_ERR_MODEL,
                                         "builder: %s '%s' has a value that is not finite "
                                         "(element %lld)",
                                         what, name, (long long)i));
    bpv_buf t;
    bpv_buf_init(&t);
    int64_t at = 0;
    if (kind == K_DATA) bpv_buf_putc(&t, '['); /* data is a list of samples: one */
    put_tensor(&t, values, dims, rank, 0, &at);
    if (kind == K_DATA) bpv_buf_putc(&t, ']');
    char *nm = strdup(name);
    if (!nm || !t.data) {
        free(nm);
        bpv_buf_free(&t);
        return fail(b, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    }
    return add_node(b, (bnode){.kind = kind, .name = nm, .text = bpv_buf_take(&t), .a = -1,
                               .c = -1});
}

int bpv_builder_param(bpv_builder *b, const char *name, const double *values,
                      const int64_t *dims, int rank) {
    if (b && !b->error && !name) return fail(b, bpv_error_null("bpv_builder_param", "name"));
    if (b && !b->error && !values) return fail(b, bpv_error_null("bpv_builder_param", "values"));
    if (b && !b->error && !dims && rank > 0)
        return fail(b, bpv_error_null("bpv_builder_param", "dims"));
    return b ? leaf(b, K_PARAM, name, values, dims, rank) : -1;
}

int bpv_builder_data(bpv_builder *b, const char *name, const double *values,
                     const int64_t *dims, int rank) {
    if (b && !b->error && !name) return fail(b, bpv_error_null("bpv_builder_data", "name"));
    if (b && !b->error && !values) return fail(b, bpv_error_null("bpv_builder_data", "values"));
    if (b && !b->error && !dims && rank > 0)
        return fail(b, bpv_error_null("bpv_builder_data", "dims"));
    return b ? leaf(b, K_DATA, name, values, dims, rank) : -1;
}

int bpv_builder_const(bpv_builder *b, double value) {
    if (!b || b->error) return -1;
    if (!isfinite(value))
        return fail(b, bpv_error_new(BPV_ERR_MODEL, "builder: a constant must be finite"));
    bpv_buf t;
    bpv_buf_init(&t);
    put_number(&t, value);
    if (!t.data) return fail(b, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    return add_node(b, (bnode){.kind = K_CONST, .text = bpv_buf_take(&t), .a = -1, .c = -1});
}

int bpv_builder_op(bpv_builder *b, const char *name, const char *op, int a, int c) {
    if (!b || b->error) return -1;
    if (!op) return fail(b, bpv_error_null("bpv_builder_op", "op"));
    int k = 1;
    while (k < BPV_OP_COUNT && (!op || !builder_name(k) || strcmp(builder_name(k), op) != 0)) k++;
    if (k == BPV_OP_COUNT) {
        const char *known[BPV_OP_COUNT];
        size_t nk = 0;
        for (int i = 1; i < BPV_OP_COUNT; i++)
            if (builder_name(i)) known[nk++] = builder_name(i);
        const char *near = op ? bpv_closest(op, known, nk) : NULL;
        return fail(b, bpv_error_new(BPV_ERR_MODEL, "builder: unknown op '%s'%s%s%s",
                                     op ? op : "(null)", near ? " (did you mean '" : "",
                                     near ? near : "", near ? "'?)" : ""));
    }
    int want = bpv_ops[k].min_in;
    if (a < 0 || a >= b->n || (want == 2 && (c < 0 || c >= b->n)) || (want == 1 && c != -1))
        return fail(b, bpv_error_new(BPV_ERR_MODEL,
                                     "builder: op '%s' takes %s node%s made by this builder "
                                     "(got %d and %d)",
                                     op, want == 2 ? "two" : "one (and -1)",
                                     want == 2 ? "s" : "", a, c));
    char *nm = NULL;
    if (name) {
        if (!check_name(b, name)) return -1;
        if (!(nm = strdup(name))) return fail(b, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    }
    int r = add_node(b, (bnode){.kind = K_OP, .name = nm, .op = (bpv_op)k, .a = a, .c = c});
    if (r >= 0) {
        b->nodes[a].uses++;
        if (want == 2) b->nodes[c].uses++;
    }
    return r;
}

/* ---- generating the program ---- */

typedef struct gen {
    bpv_builder *b;
    char **name;  /* per node: the name it goes by in the program, or NULL */
} gen;

static int prec_of(const gen *g, int i) {
    const bnode *n = &g->b->nodes[i];
    if (g->name[i]) return P_ATOM;
    if (n->kind == K_CONST) return n->text[0] == '-' ? P_NEG : P_ATOM;
    return prec_of_op(n->op);
}

static void expr(const gen *g, bpv_buf *t, int i);

static void operand(const gen *g, bpv_buf *t, int i, bool paren) {
    if (paren) bpv_buf_putc(t, '(');
    expr(g, t, i);
    if (paren) bpv_buf_putc(t, ')');
}

/* The expression of node i; named nodes appear by name. The right operand
 * of an operator of equal precedence keeps its parentheses: float addition
 * is not associative. */
static void expr(const gen *g, bpv_buf *t, int i) {
    const bnode *n = &g->b->nodes[i];
    if (g->name[i]) {
        bpv_buf_puts(t, g->name[i]);
        return;
    }
    if (n->kind == K_CONST) {
        bpv_buf_puts(t, n->text);
        return;
    }
    const bpv_op_def *d = &bpv_ops[n->op];
    int p = prec_of_op(n->op);
    if (d->lang_infix && d->min_in == 2) {
        bool pow = p == P_POW;
        operand(g, t, n->a, pow ? prec_of(g, n->a) != P_ATOM : prec_of(g, n->a) < p);
        bpv_buf_puts(t, d->lang_infix);
        operand(g, t, n->c, pow ? prec_of(g, n->c) < P_POW : prec_of(g, n->c) <= p);
    } else if (d->lang_infix) { /* a prefix operator: -x */
        bpv_buf_puts(t, d->lang_infix);
        operand(g, t, n->a, prec_of(g, n->a) <= P_NEG);
    } else {
        bpv_buf_printf(t, "%s(", d->call);
        expr(g, t, n->a);
        if (d->min_in == 2) {
            bpv_buf_puts(t, ", ");
            expr(g, t, n->c);
        }
        bpv_buf_putc(t, ')');
    }
}

/* A name no node has, for an unnamed result that needs one. */
static char *fresh_name(const gen *g, const char *stem) {
    char buf[64];
    for (int k = 0;; k++) {
        if (k == 0) snprintf(buf, sizeof buf, "%s", stem);
        else snprintf(buf, sizeof buf, "%s%d", stem, k);
        bool taken = false;
        for (int i = 0; i < g->b->n && !taken; i++)
            taken = g->name[i] && strcmp(g->name[i], buf) == 0;
        if (!taken) return strdup(buf);
    }
}

static char *generate(bpv_builder *b, int objective, double lr) {
    gen g = {b, calloc((size_t)b->n, sizeof(char *))};
    if (!g.name) return NULL;
    bool ok = true;
    for (int i = 0; i < b->n && ok; i++)
        if (b->nodes[i].name) ok = (g.name[i] = strdup(b->nodes[i].name)) != NULL;
    /* An unnamed result used twice gets a name, so it stays one node
     * instead of being computed twice; the objective needs one for train. */
    int t = 0;
    for (int i = 0; i < b->n && ok; i++) {
        const bnode *n = &b->nodes[i];
        if (g.name[i] || n->kind != K_OP || (n->uses < 2 && i != objective)) continue;
        char stem[16];
        snprintf(stem, sizeof stem, "t%d", ++t);
        ok = (g.name[i] = fresh_name(&g, i == objective ? "loss" : stem)) != NULL;
    }
    bpv_buf s;
    bpv_buf_init(&s);
    bpv_buf_puts(&s, "# made by bpv_builder\n");
    if (b->f64) bpv_buf_puts(&s, "dtype f64\n");
    for (int i = 0; i < b->n; i++) {
        const bnode *n = &b->nodes[i];
        if (n->kind == K_PARAM || n->kind == K_DATA)
            bpv_buf_printf(&s, "%s %s = %s\n", n->kind == K_PARAM ? "param" : "data", n->name,
                           n->text);
    }
    for (int i = 0; i < b->n; i++) {
        if (b->nodes[i].kind != K_OP || !g.name[i]) continue;
        bpv_buf_printf(&s, "%s = ", g.name[i]);
        char *keep = g.name[i];
        g.name[i] = NULL; /* write its expression, not its name */
        expr(&g, &s, i);
        g.name[i] = keep;
        bpv_buf_putc(&s, '\n');
    }
    char lrs[40];
    bpv_buf_printf(&s, "train epochs=1 lr=%s loss=%s\n", bpv_fmt_repr_s(lrs, lr),
                   g.name[objective] ? g.name[objective] : "?");
    for (int i = 0; i < b->n; i++) free(g.name[i]);
    free(g.name);
    if (!ok) {
        bpv_buf_free(&s);
        return NULL;
    }
    return bpv_buf_take(&s);
}

const bpv_snapshot *bpv_builder_run(bpv_builder *b, int objective, double lr,
                                    bpv_error **err) {
    if (!b) { /* bpv_builder_new ran out of memory: reported here, as promised */
        bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                         "bpv_builder_run: b is NULL (bpv_builder_new ran out "
                                         "of memory)"));
        return NULL;
    }
    if (!b->error && (objective < 0 || objective >= b->n || b->nodes[objective].kind == K_CONST))
        fail(b, bpv_error_new(BPV_ERR_MODEL,
                              "builder: the objective must be a node made by this builder "
                              "(got %d)",
                              objective));
    if (!b->error && !(lr >= 0 && isfinite(lr)))
        fail(b, bpv_error_new(BPV_ERR_MODEL, "builder: lr must be a finite number >= 0"));
    if (b->error) {
        /* a copy: the builder keeps reporting its first error */
        bpv_error *e = malloc(sizeof *e);
        if (e && !(e->message = strdup(b->error->message))) {
            free(e);
            e = NULL;
        }
        if (e) e->status = b->error->status;
        bpv_error_set(err, e ? e : bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        return NULL;
    }
    bpv_model_free(b->model);
    b->model = NULL;
    free(b->source);
    if (!(b->source = generate(b, objective, lr))) {
        bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "builder: out of memory"));
        return NULL;
    }
    b->model = bpv_model_load_string("<builder>", b->source, strlen(b->source), err);
    if (!b->model) return NULL;
    bpv_step_set *keep = bpv_step_set_parse("1", err);
    if (!keep) return NULL;
    bpv_run_options ro = {0};
    ro.keep = keep;
    ro.stop_after_last_kept = 1;
    int rc = bpv_model_run(b->model, &ro, err);
    bpv_step_set_free(keep);
    if (rc != BPV_OK) return NULL;
    return bpv_model_snapshot(b->model, 0);
}

const char *bpv_builder_source(bpv_builder *b) { return b && !b->error ? b->source : NULL; }
