/* The figure exporter: one snapshot -> a Graphviz graph (cgraph) -> DOT
 * (agwrite) or SVG/PNG/PDF (libgvc, in process). The only file that
 * includes Graphviz headers; ../docs/architecture.md has the picture.
 *
 * Layout choices, in short:
 * - Every forward edge input -> op has a twin backward edge on the same
 *   pair of nodes drawn with dir=back (dashed, arrow pointing at the input),
 *   so dot ranks and orders both the same way: backward edges run parallel
 *   to the forward ones and cannot disturb the layout or cross it.
 * - Every label is an HTML-like label built from escaped text, so user
 *   names never reach Graphviz's escape or record syntax.
 * - Nodes and edges are created in snapshot order with fixed names
 *   (n3, f3, b3), so the output is byte-for-byte deterministic. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>

#include "export.h"
#include "figure.h"
#include "focus.h"
#include "noise.h"
#include "heatmap.h"
#include "inspect.h"

/* Graphviz takes `char *` everywhere, even for text it only reads. */
#define S(x) ((char *)(x))

/* Tensors up to this many rows and columns print as matrices. */
#define MATRIX_MAX 6
/* Unnamed intermediates are named by their expression ("ŷ − y") up to
 * this many bytes; longer ones by the op over elided inputs ("… + b₂"). */
#define EXPR_MAX 28

typedef struct theme {
    const char *fwd, *fwd_text;   /* forward edges, values */
    const char *bwd, *bwd_text;   /* backward edges, gradients */
    const char *leaf_fill, *param_fill, *op_fill, *border;
    const char *muted;            /* secondary text: after update, shapes */
} theme;

static const theme themes[] = {
    [BPV_THEME_TUTORIAL] = {"red", "red", "orange", "darkorange2", "gray92", "gray85", "white",
                            "gray30", "gray40"},
    [BPV_THEME_PRINT] = {"black", "black", "gray45", "gray30", "gray95", "gray88", "white",
                         "black", "gray35"},
    [BPV_THEME_COLORBLIND] = {"#0072B2", "#0072B2", "#E69F00", "#B87F00", "gray92", "gray85",
                              "white", "gray30", "gray40"},
};

static const char font[] = "DejaVu Sans";

/* Inspection marks, the same in every theme and loud on purpose: a failed
 * gradient check in magenta, NaN/inf filled in a warning yellow, and the
 * origin of the first one with a heavy dark-orange border and a note. */
static const char mismatch_line[] = "magenta", mismatch_text[] = "#B000B0";
static const char warn_fill[] = "#FFE08A", origin_line[] = "#C03000";

/* ---- the Graphviz context --------------------------------------------------- */

/* One context per process: creating it loads plugins and must precede any
 * other cgraph use (it installs the default label attribute). */
static GVC_t *gvc;

/* Graphviz's messages (agerr: warnings and errors, from cgraph, the
 * layout and the cairo renderer) come here in fragments instead of going
 * to standard error; gv_messages() reads them after each figure. */
static bpv_buf gv_log;

static int on_gv_message(char *text) {
    bpv_buf_puts(&gv_log, text);
    return 0;
}

static GVC_t *context(void) {
    if (!gvc) {
        agseterrf(on_gv_message);
        agseterr(AGWARN); /* every message to on_gv_message, none to the terminal */
        gvc = gvContext();
    }
    return gvc;
}

/* Warnings that say nothing wrong about a figure, each with the reason. */
static bool gv_harmless(const char *line, size_t n) {
    /* the objective's arrow ends in a fixedsize spacer node "outN" whose
     * one-space label is meant not to fit (set in build()) */
    static const char spacer[] = "Warning: node 'out", small[] = "size too small for label";
    if (n >= sizeof spacer - 1 && memcmp(line, spacer, sizeof spacer - 1) == 0) {
        size_t k = sizeof small - 1;
        return n >= k && memcmp(line + n - k, small, k) == 0;
    }
    return false;
}

/* The first message in log[0..len) not known to be harmless (NULL if
 * none), its length in *n. */
static const char *gv_first_message(const char *log, size_t len, size_t *n) {
    for (size_t at = 0; at < len;) {
        const char *line = log + at, *nl = memchr(line, '\n', len - at);
        size_t k = nl ? (size_t)(nl - line) : len - at;
        at += k + 1;
        while (k > 0 && (line[k - 1] == ' ' || line[k - 1] == '\r')) k--;
        if (k == 0 || gv_harmless(line, k)) continue;
        *n = k > 400 ? 400 : k;
        return line;
    }
    return NULL;
}

int bpv_graphviz_messages(const char *log, size_t len, bpv_error **err) {
    size_t n = 0;
    const char *msg = log ? gv_first_message(log, len, &n) : NULL;
    if (!msg) return BPV_OK;
    return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                            "cannot draw the figure: Graphviz says \"%.*s\"",
                                            (int)n, msg));
}

/* After a figure: Graphviz's messages about it, checked and cleared. */
static int gv_messages(bpv_error **err) {
    int rc = bpv_graphviz_messages(gv_log.data, gv_log.len, err);
    gv_log.len = 0;
    return rc;
}

/* Frees the Graphviz context at the end of the process (optional). */
void bpv_graphviz_shutdown(void) {
    if (gvc) gvFreeContext(gvc);
    gvc = NULL;
    bpv_buf_free(&gv_log);
}

/* An error carrying Graphviz's first message about this figure, if it
 * gave one. */
static int gv_error(bpv_error **err, const char *what) {
    size_t n = 0;
    const char *msg = gv_log.data ? gv_first_message(gv_log.data, gv_log.len, &n) : NULL;
    int rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot draw the figure: %s%s%.*s",
                                              what, msg ? ": " : "", msg ? (int)n : 0,
                                              msg ? msg : ""));
    gv_log.len = 0;
    return rc;
}

/* ---- object IDs in order of creation ------------------------------------------
 * cgraph lists subgraphs (clusters: loop steps, modules, --fit rows) in the
 * order of their IDs, and its default ID of a named object is the address
 * of its interned name: an order that depends on what the heap held
 * before, so two drawings of the same snapshot in one process, or a run
 * and a trace read back, could list clusters differently. Here a named
 * object's ID counts up as names are first seen. */
typedef struct ordered_ids {
    Agraph_t *g;       /* the root graph, whose string dictionary holds the names */
    char **names;      /* names[k]: the name with ID 2k + 2 (even: named), interned */
    size_t n, cap;
    size_t *slots;     /* open addressing over names: k + 1, or 0 for empty */
    size_t nslots;
    IDTYPE anon;       /* the next anonymous ID (odd) */
} ordered_ids;

static size_t name_hash(const char *s) {
    size_t h = 1469598103934665603u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void *ids_open(Agraph_t *g, Agdisc_t *d) {
    (void)d;
    ordered_ids *o = calloc(1, sizeof *o);
    if (o) o->anon = 1, o->g = g;
    return o;
}

/* The slot of `name`, or of the empty slot where it would go. */
static size_t ids_slot(const ordered_ids *o, const char *name) {
    size_t i = name_hash(name) & (o->nslots - 1);
    while (o->slots[i] && strcmp(o->names[o->slots[i] - 1], name) != 0)
        i = (i + 1) & (o->nslots - 1);
    return i;
}

static bool ids_grow(ordered_ids *o) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        char **nn = realloc(o->names, cap * sizeof *nn);
        if (!nn) return false;
        o->names = nn;
        o->cap = cap;
    }
    if (2 * (o->n + 1) <= o->nslots) return true;
    size_t ns = o->nslots ? o->nslots * 2 : 128;
    size_t *old = o->slots, oldn = o->nslots;
    if (!(o->slots = calloc(ns, sizeof *o->slots))) {
        o->slots = old;
        return false;
    }
    o->nslots = ns;
    for (size_t i = 0; i < oldn; i++)
        if (old[i]) o->slots[ids_slot(o, o->names[old[i] - 1])] = old[i];
    free(old);
    return true;
}

static long ids_map(void *state, int objtype, char *str, IDTYPE *id, int createflag) {
    ordered_ids *o = state;
    (void)objtype;
    if (!o) return 0;
    if (!str) {
        *id = o->anon;
        o->anon += 2;
        return 1;
    }
    size_t i = o->nslots ? ids_slot(o, str) : 0;
    if (o->nslots && o->slots[i]) {
        *id = (IDTYPE)(2 * o->slots[i]);
        return 1;
    }
    if (!createflag || !ids_grow(o)) return 0;
    /* interned as cgraph's own IDs are: agwrite asks the string whether it
     * is HTML-like, which only an interned string can tell */
    char *copy = agstrdup(o->g, str);
    if (!copy) return 0;
    o->names[o->n++] = copy;
    o->slots[ids_slot(o, str)] = o->n;
    *id = (IDTYPE)(2 * o->n);
    return 1;
}

static long ids_alloc(void *state, int objtype, IDTYPE request) {
    (void)state, (void)objtype, (void)request;
    return 0; /* no object asks for an ID of its choice here */
}

static void ids_free(void *state, int objtype, IDTYPE id) {
    (void)state, (void)objtype, (void)id; /* names live until the graph closes */
}

static char *ids_print(void *state, int objtype, IDTYPE id) {
    ordered_ids *o = state;
    (void)objtype;
    if (!o || id % 2 || id < 2 || (size_t)(id / 2) > o->n) return NULL;
    return o->names[id / 2 - 1];
}

static void ids_close(void *state) {
    ordered_ids *o = state;
    if (!o) return;
    /* the names go with the graph's string dictionary, closed after this */
    free(o->names);
    free(o->slots);
    free(o);
}

static void ids_register(void *state, int objtype, void *obj) {
    (void)state, (void)objtype, (void)obj;
}

static Agiddisc_t ordered_id_disc = {ids_open, ids_map,   ids_alloc,   ids_free,
                                     ids_print, ids_close, ids_register};

/* A new root graph with IDs in order of creation. */
static Agraph_t *graph_open(void) {
    static Agdisc_t disc;
    disc.mem = &AgMemDisc;
    disc.id = &ordered_id_disc;
    disc.io = &AgIoDisc;
    return agopen(S("bpviz"), Agdirected, &disc);
}

/* ---- the figure being built ------------------------------------------------- */

/* Precedence of a display expression, for parentheses. */
/* binding powers (ops.h), for parentheses in expressions */
enum { P_ADD = BPV_PREC_ADD, P_MUL = BPV_PREC_MUL, P_NEG = BPV_PREC_NEG, P_POW = BPV_PREC_POW,
       P_ATOM = BPV_PREC_ATOM };

typedef struct fig {
    const bpv_snapshot *s;
    const bpv_figure_options *o;
    const theme *t;
    Agraph_t *g;
    Agnode_t **gv;
    int *uses;        /* how many op inputs each node feeds */
    int *fold;        /* per op node: the slot whose literal is folded, or -1 */
    bool *folded;     /* per node: a literal drawn inside its op */
    char **disp;      /* display name (raw UTF-8, not escaped) */
    int *prec;        /* precedence of disp */
    bool *named;      /* out-edges say "NAME = value" */
    char *L;          /* the objective's display name */
    Agsym_t *n_label, *n_margin, *n_shape, *n_style, *n_fill, *n_periph, *n_pen, *n_width, *n_height;
    Agsym_t *e_label, *e_color, *e_fontcolor, *e_style, *e_dir, *e_arrowhead, *e_arrowtail;
    struct vary *vary; /* the player's varying texts, or NULL */
    bool *keep;        /* --focus: the nodes drawn, or NULL for all */
    bpv_noise *nz;     /* rounding-noise bounds (noise.h), NULL: print as stored */
    size_t vary_k0;    /* --fit: vary->k before build(), to build again */
    int step_rows;     /* --fit: unrolled steps wrapped into this many rows (0: not) */
} fig;

static const char *const kind_names[] = {"data", "param", "const", "op"};

static bool is_scalar(const bpv_snap_node *n) { return n->shape.rank == 0; }

/* ---- texts that vary between steps (the HTML player) ----------------------- */

/* The player lays the graph out once for many steps. Every number (and the
 * caption) is a "varying text": a first pass per step only collects them
 * in order; the layout pass writes, in place of each one that differs
 * between steps, the widest of its values followed by an invisible marker
 * holding its index (export.h), so the page can swap the texts in place. */
enum { VARY_COLLECT, VARY_TEMPLATE };

typedef struct vary {
    int mode;
    int depth;            /* inside a varying text: nested ones belong to it */
    size_t k;             /* index of the next varying text */
    char **text;          /* collect: this step's texts (k of them) */
    size_t cap;
    const char *const *widest; /* template: per text, NULL when all steps agree */
    size_t n;
    bool overflow;        /* out of memory while collecting */
} vary;

static vary *cur_vary; /* handed to the next figure built */

static size_t vary_begin(const fig *f, const bpv_buf *b) {
    if (f->vary) f->vary->depth++;
    return b->len;
}

static void vary_end(const fig *f, bpv_buf *b, size_t from) {
    vary *v = f->vary;
    if (!v || --v->depth > 0) return;
    size_t k = v->k++;
    const char *text = b->data ? b->data + from : "";
    if (v->mode == VARY_COLLECT) {
        if (k == v->cap) {
            size_t cap = v->cap ? v->cap * 2 : 64;
            char **t = realloc(v->text, cap * sizeof *t);
            if (!t) {
                v->overflow = true;
                v->k--;
                return;
            }
            v->text = t;
            v->cap = cap;
        }
        if (!(v->text[k] = strdup(text))) v->overflow = true;
    } else if (k < v->n && v->widest[k] && b->data) {
        b->len = from;
        b->data[from] = '\0';
        bpv_buf_puts(b, BPV_VARY_OPEN);
        for (int bit = 31; bit >= 0; bit--)
            if (k >> bit || bit == 0) bpv_buf_puts(b, (k >> bit) & 1 ? BPV_VARY_ONE : BPV_VARY_ZERO);
        bpv_buf_puts(b, BPV_VARY_MID);
        bpv_buf_puts(b, v->widest[k]);
        bpv_buf_puts(b, BPV_VARY_CLOSE);
    }
}

static void num(const fig *f, bpv_buf *b, double v) {
    size_t at = vary_begin(f, b);
    bpv_fig_number(b, v, f->o->precision);
    vary_end(f, b, at);
}

/* numbers[i] as a figure prints it: 0 when it is within the rounding error
 * of the calculation that made it (noise.h), unless --exact-numbers. */
static double printed(const fig *f, const double *numbers, int64_t i) {
    return f->nz ? bpv_noise_clean(f->nz, numbers, i) : numbers[i];
}

/* Sets an HTML-like label; `html` must be well-formed. */
static void set_html(fig *f, void *obj, Agsym_t *sym, const char *html) {
    if (f->vary && f->vary->mode == VARY_COLLECT) return; /* only texts are wanted */
    char *h = agstrdup_html(f->g, S(html));
    agxset(obj, sym, h);
    agstrfree(f->g, h);
}

/* A buffer's text; an empty bpv_buf has no storage yet. */
static const char *str(const bpv_buf *b) { return b->data ? b->data : ""; }

/* Appends raw UTF-8 text escaped. */
static void esc(bpv_buf *b, const char *raw) {
    if (raw) bpv_fig_html(b, raw);
}

/* Appends a number, escaped (numbers hold no markup, only Unicode). */
static void esc_num(const fig *f, bpv_buf *b, double v) { num(f, b, v); }

/* ---- display names ------------------------------------------------------------ */

/* Appends node i's display name, parenthesised when it binds looser than
 * `need`. */
static void put_disp(const fig *f, bpv_buf *b, int i, int need) {
    bool paren = f->prec[i] < need;
    if (paren) bpv_buf_putc(b, '(');
    bpv_buf_puts(b, f->disp[i]);
    if (paren) bpv_buf_putc(b, ')');
}

static bool integral(double v) { return v == floor(v) && fabs(v) < 1e6; }

/* The display of an unnamed op as an expression over its inputs' names,
 * as its row says (bpv_op_def.fig_form). */
static int op_expr(const fig *f, bpv_buf *b, int i) {
    const bpv_snap_node *n = &f->s->nodes[i];
    const bpv_op_def *d = &bpv_ops[n->op];
    int a = n->in[0], c = n->nin > 1 ? n->in[1] : -1;
    switch (n->fn ? BPV_FIG_CALL : d->fig_form) {
    case BPV_FIG_INFIX:
        put_disp(f, b, a, d->fig_prec);
        bpv_buf_puts(b, d->fig_text);
        put_disp(f, b, c, d->fig_rneed);
        return d->fig_prec;
    case BPV_FIG_PREFIX:
        bpv_buf_puts(b, d->fig_text);
        put_disp(f, b, a, d->fig_rneed);
        return d->fig_prec;
    case BPV_FIG_POSTFIX:
        put_disp(f, b, a, d->fig_rneed);
        if (n->op == BPV_OP_INDEX && n->attr) /* x[2] */
            bpv_buf_printf(b, "[%lld]", (long long)n->attr[0]);
        else
            bpv_buf_puts(b, d->fig_text);
        return d->fig_prec;
    case BPV_FIG_ENCLOSE:
        bpv_buf_puts(b, d->fig_text);
        put_disp(f, b, a, d->fig_rneed);
        bpv_buf_puts(b, d->fig_text);
        return d->fig_prec;
    case BPV_FIG_SAME:
        put_disp(f, b, a, d->fig_rneed);
        return f->prec[a];
    case BPV_FIG_POWER: {
        const bpv_snap_node *e = &f->s->nodes[c];
        put_disp(f, b, a, P_ATOM);
        if (e->kind == BPV_NODE_CONST && e->numel == 1 && integral(e->value[0])) {
            bpv_fig_superscript(b, (long long)e->value[0]);
        } else {
            bpv_buf_putc(b, '^');
            put_disp(f, b, c, P_ATOM);
        }
        return d->fig_prec;
    }
    case BPV_FIG_CALL:
        break;
    }
    /* a function call: σ(z), mse(ŷ, y), mysig(z) */
    bpv_buf_puts(b, n->fn ? n->fn : d->fig_text ? d->fig_text : d->name);
    bpv_buf_putc(b, '(');
    for (int k = 0; k < n->nin; k++) {
        if (k) bpv_buf_puts(b, ", ");
        put_disp(f, b, n->in[k], P_ADD);
    }
    if (!n->fn && n->attr && (d->flags & BPV_OPF_SHAPE_ARG)) { /* reshape(x, [3, 2]) */
        bpv_buf_puts(b, ", [");
        for (int a = 0; a < d->nattrs && !isnan(n->attr[a]); a++) {
            if (a) bpv_buf_puts(b, ", ");
            num(f, b, n->attr[a]);
        }
        bpv_buf_putc(b, ']');
    }
    for (int a = 0; !n->fn && n->attr && !(d->flags & BPV_OPF_SHAPE_ARG) && a < d->nattrs; a++) {
        if (!d->attrs[a].required && (d->attrs[a].dflt == n->attr[a] || isnan(n->attr[a])))
            continue; /* a default */
        bpv_buf_puts(b, ", ");
        if (!d->attrs[a].required) bpv_buf_printf(b, "%s=", d->attrs[a].name);
        num(f, b, n->attr[a]);
    }
    bpv_buf_putc(b, ')');
    return P_ATOM;
}

/* An unnamed op whose expression is too long is written over its inputs
 * with every unnamed op among them elided: "… + b₂", "σ(…)", "relu(x + …)".
 * It stays unnamed (its edges show values only), and a partial reads
 * ∂loss/∂(… + b₂): the figure shows what the op does without inventing a
 * name (v₁₉) the model never wrote. */
static int elided_expr(fig *f, bpv_buf *b, int i) {
    const bpv_snap_node *n = &f->s->nodes[i];
    char *saved[8];
    int saved_prec[8], m = n->nin < 8 ? n->nin : 8;
    for (int k = 0; k < m; k++) {
        int j = n->in[k];
        saved[k] = NULL;
        if (f->s->nodes[j].name || f->s->nodes[j].kind != BPV_NODE_OP || strcmp(f->disp[j], "…") == 0)
            continue;
        saved[k] = f->disp[j];
        saved_prec[k] = f->prec[j];
        f->disp[j] = (char *)"…";
        f->prec[j] = P_ATOM;
    }
    int prec = op_expr(f, b, i);
    for (int k = m - 1; k >= 0; k--)
        if (saved[k]) {
            f->disp[n->in[k]] = saved[k];
            f->prec[n->in[k]] = saved_prec[k];
        }
    return prec;
}

static void name_nodes(fig *f) {
    for (int i = 0; i < f->s->nnodes; i++) {
        const bpv_snap_node *n = &f->s->nodes[i];
        bpv_buf b;
        bpv_buf_init(&b);
        f->prec[i] = P_ATOM;
        if (n->name) {
            bpv_fig_name(&b, n->name, f->o->plain_names);
            f->named[i] = true;
        } else if (n->kind == BPV_NODE_OP) {
            f->prec[i] = op_expr(f, &b, i);
            if (b.len > EXPR_MAX) {
                b.len = 0;
                b.data[0] = '\0';
                f->prec[i] = elided_expr(f, &b, i);
            }
        } else if (n->numel == 1) {
            num(f, &b, n->value[0]);
            if (n->value[0] < 0) f->prec[i] = P_NEG;
        } else {
            bpv_buf_puts(&b, kind_names[n->kind]);
        }
        f->disp[i] = bpv_buf_take(&b);
    }
    int o = f->s->objective;
    f->L = strdup(o >= 0 && o < f->s->nnodes && f->s->nodes[o].name ? f->disp[o] : "L");
}

/* Literal scalar constants used by exactly one binary op are folded into
 * that op's symbol (^2, +1, ×0.1, 1−) instead of being drawn. */
static void fold_literals(fig *f) {
    const bpv_snapshot *s = f->s;
    for (int i = 0; i < s->nnodes; i++) {
        f->fold[i] = -1;
        for (int k = 0; k < s->nodes[i].nin; k++) f->uses[s->nodes[i].in[k]]++;
    }
    for (int i = 0; i < s->nnodes; i++) {
        const bpv_snap_node *n = &s->nodes[i];
        if (n->kind != BPV_NODE_OP || n->nin != 2) continue;
        /* a function call keeps its arguments: max(x, 0), not max0 */
        const bpv_fig_form form = n->fn ? BPV_FIG_CALL : bpv_ops[n->op].fig_form;
        if (form != BPV_FIG_INFIX && form != BPV_FIG_POWER) continue;
        for (int k = 1; k >= 0; k--) {
            const bpv_snap_node *c = &s->nodes[n->in[k]];
            if (c->kind == BPV_NODE_CONST && c->literal && c->numel == 1 &&
                f->uses[n->in[k]] == 1 && n->in[0] != n->in[1]) {
                f->fold[i] = k;
                f->folded[n->in[k]] = true;
                break;
            }
        }
    }
}

/* ---- values as HTML ------------------------------------------------------------ */

static bool is_matrix(const bpv_shape *sh) {
    if (sh->rank == 0 || sh->rank > 2) return false;
    int64_t rows = sh->rank == 2 ? sh->dim[0] : 1, cols = sh->dim[sh->rank - 1];
    return rows * cols > 0 && rows <= MATRIX_MAX && cols <= MATRIX_MAX;
}

/* A value that is not a matrix: a scalar, or a summary of a large tensor. */
static void put_flat(const fig *f, bpv_buf *b, const double *v, const bpv_shape *sh) {
    int64_t numel = bpv_shape_numel(sh);
    if (sh->rank == 0) {
        esc_num(f, b, printed(f, v, 0));
        return;
    }
    for (int d = 0; d < sh->rank; d++)
        bpv_buf_printf(b, "%s%lld", d ? "×" : "", (long long)sh->dim[d]);
    if (numel == 0) {
        bpv_buf_puts(b, " (empty)");
        return;
    }
    double lo = printed(f, v, 0), hi = lo, sum = 0;
    for (int64_t i = 0; i < numel; i++) {
        double x = printed(f, v, i);
        lo = fmin(lo, x);
        hi = fmax(hi, x);
        sum += x;
    }
    bpv_buf_puts(b, ": min ");
    esc_num(f, b, lo);
    bpv_buf_puts(b, ", mean ");
    esc_num(f, b, sum / (double)numel);
    bpv_buf_puts(b, ", max ");
    esc_num(f, b, hi);
}

/* Raw text escaped, with '\n' as a line break and `slack` no-break spaces
 * after each line. */
static void esc_lines(bpv_buf *b, const char *raw, size_t slack) {
    for (;;) {
        const char *nl = raw ? strchr(raw, '\n') : NULL;
        if (nl) {
            char *line = strndup(raw, (size_t)(nl - raw));
            if (line) esc(b, line);
            free(line);
        } else {
            esc(b, raw);
        }
        for (size_t k = 0; k < slack; k++) bpv_buf_puts(b, "&#160;");
        if (!nl) return;
        bpv_buf_puts(b, "<BR/>");
        raw = nl + 1;
    }
}

/* --labels shapes: a tensor's row is its prefix without " = " and its shape
 * ("W₁ 3×2"), no numbers. */
static void shape_row(bpv_buf *b, const char *prefix, const bpv_shape *sh, const char *color,
                      int size) {
    bpv_buf t;
    bpv_buf_init(&t);
    bpv_buf_puts(&t, prefix ? prefix : "");
    while (t.len > 0 && (t.data[t.len - 1] == ' ' || t.data[t.len - 1] == '=')) t.data[--t.len] = '\0';
    if (t.len) bpv_buf_putc(&t, ' ');
    for (int d = 0; d < sh->rank; d++)
        bpv_buf_printf(&t, "%s%lld", d ? "×" : "", (long long)sh->dim[d]);
    bpv_buf_printf(b, "<TR><TD><FONT COLOR=\"%s\"", color);
    if (size) bpv_buf_printf(b, " POINT-SIZE=\"%d\"", size);
    bpv_buf_putc(b, '>');
    esc(b, t.data);
    bpv_buf_puts(b, "</FONT></TD></TR>");
    bpv_buf_free(&t);
}

/* ---- heatmaps (--tensors) ----------------------------------------------------- */

/* The node a tensor row belongs to: the one whose value, gradient or
 * update it is, or the input of the edge whose partial it is; -1 if none. */
static int tensor_owner(const fig *f, const double *v) {
    const bpv_snapshot *s = f->s;
    for (int i = 0; i < s->nnodes; i++)
        if (s->nodes[i].value == v || s->nodes[i].grad == v) return i;
    for (int k = 0; k < s->nedges; k++)
        if (s->edges[k].chained == v) return s->edges[k].from;
    for (int k = 0; k < s->nparams; k++)
        if (s->params[k].after == v) return s->params[k].node;
    return -1;
}

/* Whether a tensor of this shape is drawn as a heatmap. */
static bool heat_wanted(const fig *f, const bpv_shape *sh) {
    if (sh->rank == 0 || bpv_shape_numel(sh) < 2) return false;
    switch (f->o->tensors) {
    case BPV_TENSORS_HEATMAP:
        return true;
    case BPV_TENSORS_AUTO:
        return !is_matrix(sh);
    default:
        return false;
    }
}

/* A heatmap's range in the player: texts that vary like every number. */
static void heat_number(void *ctx, bpv_buf *b, double v) { num(ctx, b, v); }

/* The player: a heatmap's cell colours at this step (bpv_heat_codes) as a
 * varying text that is never printed. Returns its index in the template
 * pass when it differs between steps, else -1. */
static long vary_cells(const fig *f, const char *codes) {
    vary *v = f->vary;
    if (!v || v->depth > 0) return -1;
    size_t k = v->k;
    bpv_buf t;
    bpv_buf_init(&t);
    size_t at = vary_begin(f, &t);
    bpv_buf_puts(&t, codes);
    vary_end(f, &t, at);
    bpv_buf_free(&t);
    return v->mode == VARY_TEMPLATE && k < v->n && v->widest[k] ? (long)k : -1;
}

/* row() for a heatmap: the prefix, then the grids beside it. A gradient
 * row (in the theme's gradient colour) uses the gradient scale. Returns
 * false when the tensor prints as numbers. */
static bool heat_row(const fig *f, bpv_buf *b, const char *prefix, const double *v,
                     const bpv_shape *sh, const char *color, int size) {
    if (!heat_wanted(f, sh)) return false;
    bool grad = color == f->t->bwd_text;
    if (grad && v) { /* a value and its gradient share a colour in some themes */
        int o = tensor_owner(f, v);
        grad = o < 0 || f->s->nodes[o].value != v;
    }
    bpv_buf_printf(b, "<TR><TD ALIGN=\"RIGHT\"%s>", v ? "" : " COLSPAN=\"2\"");
    if (prefix && *prefix) {
        bpv_buf_printf(b, "<FONT COLOR=\"%s\"", color);
        if (size) bpv_buf_printf(b, " POINT-SIZE=\"%d\"", size);
        bpv_buf_putc(b, '>');
        esc_lines(b, prefix, 0);
        bpv_buf_puts(b, "</FONT>");
    } else {
        bpv_buf_putc(b, ' ');
    }
    bpv_buf_puts(b, "</TD>");
    if (!v) {
        bpv_buf_puts(b, "</TR>");
        return true;
    }
    int o = tensor_owner(f, v);
    const bpv_snap_node *n = o >= 0 ? &f->s->nodes[o] : NULL;
    bool batch = n && n->kind != BPV_NODE_PARAM && sh->rank >= 3 && f->s->nsamples >= 1 &&
                 sh->dim[0] == f->s->nsamples && (sh->rank == 4 || f->s->nsamples > 1);
    bpv_heat_scale scale = grad ? BPV_HEAT_GRAD : BPV_HEAT_VALUE;
    bpv_heat_step hs = {.number = heat_number, .ctx = (void *)f};
    char anchor[32];
    if (f->vary) { /* the player recolours the cells at every step */
        bpv_buf codes;
        bpv_buf_init(&codes);
        bpv_heat_codes(&codes, v, sh, batch, scale);
        long k = vary_cells(f, str(&codes));
        bpv_buf_free(&codes);
        if (k >= 0) {
            snprintf(anchor, sizeof anchor, BPV_HEAT_ANCHOR "%ld", k);
            hs.anchor = anchor;
        }
    }
    bpv_buf_puts(b, "<TD ALIGN=\"LEFT\">");
    bpv_heat_table(b, v, sh, batch, scale, color, f->o->precision, f->vary ? &hs : NULL);
    bpv_buf_puts(b, "</TD></TR>");
    return true;
}

/* ---- fonts, legend, op symbols (figures for slides) ------------------------- */

/* The font name handed to Graphviz. Its text layout (pango) reads the
 * last words of a name as a style, weight or size when they look like one
 * ("Nimbus Roman" is family Nimbus in style Roman, which fontconfig does
 * not have, so PNG and PDF silently got DejaVu Sans): a trailing comma ends
 * the family list, so every word is the family. svg_font_names() takes the
 * comma out of the written DOT and SVG again. One figure at a time (Graphviz
 * is single-threaded), so one buffer. */
static const char *layout_font(const char *face) {
    static char buf[256];
    if (!strchr(face, ' ') || strchr(face, ',') || strlen(face) + 2 > sizeof buf) return face;
    snprintf(buf, sizeof buf, "%s,", face);
    return buf;
}

/* Removes the comma layout_font() added from fontname="F," (DOT) and
 * font-family="F," (SVG). */
static void plain_font_names(char *out, size_t *len) {
    static const char *const keys[] = {"fontname=\"", "font-family=\""};
    if (!out) return;
    size_t n = *len;
    for (size_t k = 0; k < 2; k++) {
        size_t kl = strlen(keys[k]);
        for (char *p = out; (p = strstr(p, keys[k]));) {
            p += kl;
            char *q = memchr(p, '"', n - (size_t)(p - out));
            if (!q) break;
            if (q > p && q[-1] == ',') {
                memmove(q - 1, q, n - (size_t)(q - out) + 1); /* with the NUL */
                n--;
            }
            p = q;
        }
    }
    *len = n;
}

/* --op-symbols tutorial: the tutorial's symbols where they differ. */
static const char *tutorial_symbol(const fig *f, const bpv_snap_node *n, const char *sym) {
    if (f->o->op_symbols != BPV_OP_SYMBOLS_TUTORIAL || n->fn) return sym;
    switch (n->op) {
    case BPV_OP_MATMUL:
        return "MM";
    default:
        return sym;
    }
}

/* Whether some tensor of the figure is drawn as a heatmap. */
static bool any_heatmap(const fig *f) {
    for (int i = 0; i < f->s->nnodes; i++)
        if (f->gv[i] && heat_wanted(f, &f->s->nodes[i].shape)) return true;
    return false;
}

static void set_attr(void *obj, const char *name, const char *value);

/* --legend: a key, appended to b as an HTML <TABLE>. build() puts it in
 * the graph's label beside the caption, and the label in the bottom right
 * corner (labeljust=r): it takes no rank or room of the graph's own, so
 * it never widens a figure along its flow and never stops --fit from
 * wrapping, and it only adds its height over the caption's. Its items go
 * three to a row to keep that small. */
static void legend(const fig *f, bpv_buf *b) {
    const theme *t = f->t;
    bpv_buf item[8];
    int n = 0;
    for (int k = 0; k < 8; k++) bpv_buf_init(&item[k]);
    bpv_buf L;
    bpv_buf_init(&L);
    esc(&L, f->L);
    /* a line in a colour: a few em dashes */
    bpv_buf_printf(&item[n++], "<TD ALIGN=\"LEFT\"><FONT COLOR=\"%s\" POINT-SIZE=\"10\">━━ 1.5</FONT>"
                               "</TD><TD ALIGN=\"LEFT\"><FONT POINT-SIZE=\"10\">forward value</FONT></TD>",
                   t->fwd_text);
    bpv_buf_printf(&item[n++], "<TD ALIGN=\"LEFT\"><FONT COLOR=\"%s\" POINT-SIZE=\"10\">╍╍ ∂%s/∂x"
                               "</FONT></TD><TD ALIGN=\"LEFT\"><FONT POINT-SIZE=\"10\">backward partial"
                               "</FONT></TD>",
                   t->bwd_text, str(&L));
    bpv_buf_printf(&item[n++], "<TD BGCOLOR=\"%s\" BORDER=\"1\" COLOR=\"%s\"><FONT POINT-SIZE=\"10\">"
                               "x</FONT></TD><TD ALIGN=\"LEFT\"><FONT POINT-SIZE=\"10\">input, data"
                               "</FONT></TD>",
                   t->leaf_fill, t->border);
    bpv_buf_printf(&item[n++], "<TD BGCOLOR=\"%s\" BORDER=\"2\" COLOR=\"%s\"><FONT POINT-SIZE=\"10\">"
                               "w</FONT></TD><TD ALIGN=\"LEFT\"><FONT POINT-SIZE=\"10\">parameter "
                               "(double border)</FONT></TD>",
                   t->param_fill, t->border);
    bpv_buf_printf(&item[n++], "<TD BORDER=\"1\" COLOR=\"%s\" STYLE=\"ROUNDED\"><FONT POINT-SIZE=\"11\">"
                               "+</FONT><BR/><FONT COLOR=\"%s\" POINT-SIZE=\"8\">0.29</FONT><BR/>"
                               "<FONT COLOR=\"%s\" POINT-SIZE=\"8\">−0.21</FONT></TD><TD ALIGN=\"LEFT\">"
                               "<FONT POINT-SIZE=\"10\">operation: its value<BR ALIGN=\"LEFT\"/>and "
                               "gradient ∂%s/∂out<BR ALIGN=\"LEFT\"/></FONT></TD>",
                   t->border, t->fwd_text, t->bwd_text, str(&L));
    bpv_buf_free(&L);
    if (any_heatmap(f)) {
        static const bpv_heat_scale sc[2] = {BPV_HEAT_VALUE, BPV_HEAT_GRAD};
        static const char *const what[2] = {"values: −max … 0 … max", "gradients: −max … 0 … max"};
        for (int k = 0; k < 2; k++) {
            bpv_buf_puts(&item[n], "<TD ALIGN=\"LEFT\"><TABLE BORDER=\"0\" CELLSPACING=\"0\" "
                                   "CELLPADDING=\"0\"><TR>");
            for (int c = -4; c <= 4; c++) {
                char col[8];
                bpv_heat_color(sc[k], c / 4.0, 1, col);
                bpv_buf_printf(&item[n], "<TD BGCOLOR=\"%s\" WIDTH=\"7\" HEIGHT=\"9\" "
                                         "FIXEDSIZE=\"TRUE\"></TD>", col);
            }
            bpv_buf_printf(&item[n++], "</TR></TABLE></TD><TD ALIGN=\"LEFT\"><FONT POINT-SIZE=\"10\">"
                                       "%s</FONT></TD>", what[k]);
        }
    }
    enum { ACROSS = 3 };
    bpv_buf_puts(b, "<TABLE BORDER=\"1\" COLOR=\"#b0b0b0\" CELLBORDER=\"0\" CELLSPACING=\"2\" "
                    "CELLPADDING=\"2\" BGCOLOR=\"white\">");
    bpv_buf_printf(b, "<TR><TD COLSPAN=\"%d\" ALIGN=\"LEFT\"><FONT POINT-SIZE=\"10\"><B>key</B>"
                      "</FONT></TD></TR>", 2 * ACROSS);
    for (int k = 0; k < n; k++) {
        if (k % ACROSS == 0) bpv_buf_puts(b, k ? "</TR><TR>" : "<TR>");
        bpv_buf_puts(b, item[k].data);
    }
    if (n % ACROSS) bpv_buf_printf(b, "<TD COLSPAN=\"%d\"> </TD>", 2 * (ACROSS - n % ACROSS));
    bpv_buf_puts(b, "</TR></TABLE>");
    for (int k = 0; k < 8; k++) bpv_buf_free(&item[k]);
}

/* Rows of a label table. A label's rows all show tensors of one shape, so
 * a matrix spreads over shared columns: prefix | [ | numbers... | ] . One
 * flat table keeps Graphviz from stretching a nested matrix when another
 * row is wider, and lines up value, gradient and update column by column.
 * `prefix` is raw text ('\n' breaks lines); v NULL gives a text row. */
static void row(const fig *f, bpv_buf *b, const char *prefix, const double *v,
                const bpv_shape *sh, const char *color, int size) {
    if (v && sh->rank > 0 && f->o->labels == BPV_LABELS_SHAPES) {
        shape_row(b, prefix, sh, color, size);
        return;
    }
    if (heat_row(f, b, prefix, v, sh, color, size)) return;
    bpv_buf font;
    bpv_buf_init(&font);
    bpv_buf_printf(&font, "<FONT COLOR=\"%s\"", color);
    if (size) bpv_buf_printf(&font, " POINT-SIZE=\"%d\"", size);
    bpv_buf_putc(&font, '>');
    bool has_prefix = prefix && *prefix;
    bool matrix = is_matrix(sh);
    int64_t rows = sh->rank == 2 ? sh->dim[0] : 1, cols = sh->rank ? sh->dim[sh->rank - 1] : 1;
    if (!v || !matrix) {
        bpv_buf_puts(b, "<TR><TD");
        if (matrix) bpv_buf_printf(b, " COLSPAN=\"%lld\"", (long long)cols + 3);
        bpv_buf_putc(b, '>');
        if (!has_prefix && !v) {
            bpv_buf_puts(b, " </TD></TR>"); /* Graphviz rejects an empty <FONT> */
        } else {
            bpv_buf_puts(b, font.data);
            esc_lines(b, prefix, 0);
            if (v) put_flat(f, b, v, sh);
            bpv_buf_puts(b, "</FONT></TD></TR>");
        }
        bpv_buf_free(&font);
        return;
    }
    /* Brackets: fixed-size empty cells with three borders; the height is
     * estimated from the font so that extra space never stretches them. */
    int pt = size ? size : 12;
    int height = (int)rows * (pt * 6 / 5 + 2) - 2;
    for (int64_t r = 0; r < rows; r++) {
        bpv_buf_puts(b, "<TR>");
        if (r == 0) {
            bpv_buf_printf(b, "<TD ROWSPAN=\"%lld\" ALIGN=\"RIGHT\">", (long long)rows);
            if (has_prefix) {
                /* a space of slack: renderers draw some glyphs (∂, ₁) a
                 * little wider than Graphviz measured them */
                size_t longest = 0, cur = 0;
                for (const char *q = prefix; *q; q++) {
                    if (*q == '\n') cur = 0;
                    else if (((unsigned char)*q & 0xc0) != 0x80 && ++cur > longest) longest = cur;
                }
                bpv_buf_puts(b, font.data);
                esc_lines(b, prefix, 1 + longest / 16);
                bpv_buf_puts(b, "</FONT>");
            }
            bpv_buf_puts(b, "</TD>");
            bpv_buf_printf(b, "<TD ROWSPAN=\"%lld\" BORDER=\"1\" SIDES=\"LTB\" COLOR=\"%s\" "
                              "FIXEDSIZE=\"TRUE\" WIDTH=\"4\" HEIGHT=\"%d\"></TD>",
                           (long long)rows, color, height);
        }
        for (int64_t c = 0; c < cols; c++) {
            /* thin spaces: a gap between columns and inside the brackets */
            bpv_buf_printf(b, "<TD ALIGN=\"RIGHT\">%s&#8201;", font.data);
            esc_num(f, b, printed(f, v, r * cols + c));
            bpv_buf_puts(b, "&#8201;</FONT></TD>");
        }
        if (r == 0)
            bpv_buf_printf(b, "<TD ROWSPAN=\"%lld\" BORDER=\"1\" SIDES=\"RTB\" COLOR=\"%s\" "
                              "FIXEDSIZE=\"TRUE\" WIDTH=\"4\" HEIGHT=\"%d\"></TD>",
                           (long long)rows, color, height);
        bpv_buf_puts(b, "</TR>");
    }
    bpv_buf_free(&font);
}

static const char table_open[] =
    "<TABLE BORDER=\"0\" CELLBORDER=\"0\" CELLSPACING=\"0\" CELLPADDING=\"1\">";

/* "∂loss/∂ŷ" */
static void partial(const fig *f, bpv_buf *b, int of, int wrt) {
    bpv_buf_puts(b, "∂");
    if (of < 0) bpv_buf_puts(b, f->L);
    else put_disp(f, b, of, P_ATOM);
    bpv_buf_puts(b, "/∂");
    put_disp(f, b, wrt, P_ATOM);
}

/* ---- inspection marks --------------------------------------------------------- */

/* "✗ analytic −4 vs numeric −2", with the element of a tensor. Plain
 * numbers, not varying texts: a mark belongs to one step. */
static void gradcheck_text(const fig *f, bpv_buf *b, const bpv_gradcheck_mark *mk, int64_t numel) {
    bpv_buf_puts(b, "analytic ");
    bpv_fig_number(b, mk->analytic, f->o->precision);
    bpv_buf_puts(b, " vs numeric ");
    if (isnan(mk->numeric)) bpv_buf_puts(b, "?");
    else bpv_fig_number(b, mk->numeric, f->o->precision);
    if (numel > 1) bpv_buf_printf(b, " at [%lld]", (long long)mk->elem);
}

/* Appends a row of raw text before a label's closing </TABLE>. */
static void extra_row(bpv_buf *b, const char *color, const char *raw, int size) {
    static const char close[] = "</TABLE>";
    size_t n = sizeof close - 1;
    if (!b->data || b->len < n || memcmp(b->data + b->len - n, close, n) != 0) return;
    b->len -= n;
    b->data[b->len] = '\0';
    bpv_buf_printf(b, "<TR><TD><FONT COLOR=\"%s\" POINT-SIZE=\"%d\">", color, size);
    esc(b, raw);
    bpv_buf_puts(b, "</FONT></TD></TR></TABLE>");
}

/* Attributes only marked figures use are declared on first use, so an
 * unmarked figure's DOT stays as it was. */
static void set_attr(void *obj, const char *name, const char *value) {
    agsafeset(obj, S(name), S(value), S(""));
}

static bool bad_edge_into(const fig *f, int i) {
    if (!f->s->gradchecked) return false;
    for (int e = 0; e < f->s->nedges; e++)
        if (f->s->edges[e].to == i && f->s->edges[e].gradcheck.state == BPV_GRADCHECK_BAD)
            return true;
    return false;
}

static bool is_origin_node(const fig *f, int i) {
    return f->s->nf_pass && f->s->nf_node == i && f->s->nf_edge < 0;
}

static void origin_text(const fig *f, bpv_buf *b) {
    bpv_buf_puts(b, "origin: ");
    bpv_inspect_origin_note(f->s, f->o->precision, b); /* --precision reaches it */
}

/* Fill, border and class of a node's marks, after its own styling. */
static void mark_node(fig *f, int i, Agnode_t *nd, bool bad) {
    const bpv_snap_node *n = &f->s->nodes[i];
    const char *cls = NULL;
    if (n->nonfinite) {
        agxset(nd, f->n_fill, S(warn_fill));
        cls = "bpv-nonfinite";
    }
    if (bad) {
        set_attr(nd, "penwidth", "3");
        set_attr(nd, "color", mismatch_line);
        cls = "bpv-mismatch";
    }
    if (is_origin_node(f, i)) {
        set_attr(nd, "penwidth", "3.5");
        set_attr(nd, "color", origin_line);
        cls = "bpv-origin";
    }
    if (cls) set_attr(nd, "class", cls);
}

/* ---- nodes ------------------------------------------------------------------- */

static void leaf_node(fig *f, int i, Agnode_t *nd) {
    const bpv_snap_node *n = &f->s->nodes[i];
    const theme *t = f->t;
    bpv_buf b, p;
    bpv_buf_init(&b);
    bpv_buf_init(&p);
    bpv_buf_puts(&b, table_open);
    if (n->name) bpv_buf_printf(&p, "%s = ", f->disp[i]);
    row(f, &b, p.data, n->value, &n->shape, "black", 0);
    /* --labels shapes: a tensor's box is its name and shape */
    bool compact = f->o->labels == BPV_LABELS_SHAPES && !is_scalar(n);
    if (n->grad && !compact) {
        p.len = 0;
        partial(f, &p, -1, i);
        bpv_buf_puts(&p, " = ");
        row(f, &b, p.data, n->grad, &n->shape, t->bwd_text, 11);
    }
    if (n->kind == BPV_NODE_PARAM && !compact && !f->o->no_update) {
        for (int k = 0; k < f->s->nparams; k++) {
            const bpv_snap_param *q = &f->s->params[k];
            if (q->node != i || !q->after) continue;
            row(f, &b, "after update: ", q->after, &q->shape, t->muted, 11);
        }
    }
    bpv_buf_puts(&b, "</TABLE>");
    bool bad = false, edge_bad = false;
    for (int e = 0; f->s->gradchecked && n->kind == BPV_NODE_PARAM && e < f->s->nedges; e++)
        edge_bad |= f->s->edges[e].gradcheck.state == BPV_GRADCHECK_BAD;
    for (int k = 0; k < f->s->nparams; k++) {
        const bpv_snap_param *q = &f->s->params[k];
        /* behind a wrong partial every param's gradient is wrong too: the
         * figure points at the cause */
        if (q->node != i || q->gradcheck.state != BPV_GRADCHECK_BAD ||
            (edge_bad && !q->accumulating))
            continue;
        bad = true;
        p.len = 0;
        bpv_buf_puts(&p, "✗ ");
        gradcheck_text(f, &p, &q->gradcheck, n->numel);
        extra_row(&b, mismatch_text, p.data, 12);
        if (q->accumulating)
            extra_row(&b, mismatch_text, "still adding earlier steps (zero_grad=false)", 11);
    }
    if (is_origin_node(f, i)) {
        p.len = 0;
        origin_text(f, &p);
        extra_row(&b, origin_line, p.data, 12);
    }
    set_html(f, nd, f->n_label, b.data);
    agxset(nd, f->n_shape, S("box"));
    agxset(nd, f->n_style, S(n->kind == BPV_NODE_PARAM ? "filled,bold" : "filled"));
    agxset(nd, f->n_fill, S(n->kind == BPV_NODE_PARAM ? t->param_fill : t->leaf_fill));
    if (n->kind == BPV_NODE_PARAM) agxset(nd, f->n_periph, S("2"));
    mark_node(f, i, nd, bad);
    bpv_buf_free(&b);
    bpv_buf_free(&p);
}

/* The op's symbol with a folded literal: ^2, +1, ×0.1, 1− */
static void op_symbol(const fig *f, bpv_buf *b, int i) {
    const bpv_snap_node *n = &f->s->nodes[i];
    const char *sym = n->fn ? n->fn : bpv_ops[n->op].symbol;
    sym = tutorial_symbol(f, n, sym);
    if (n->op == BPV_OP_CONV2D && n->nin >= 2) { /* conv 5×5 */
        const bpv_shape *w = &f->s->nodes[n->in[1]].shape;
        bpv_buf_printf(b, "%s %lld×%lld", sym, (long long)w->dim[2], (long long)w->dim[3]);
        return;
    }
    if (n->op == BPV_OP_INDEX && n->attr) { /* [2] */
        bpv_buf_printf(b, "[%lld]", (long long)n->attr[0]);
        return;
    }
    if ((n->op == BPV_OP_MAX_POOL2D || n->op == BPV_OP_AVG_POOL2D) && n->attr) {
        bpv_buf_printf(b, "%s %lld×%lld", sym, (long long)n->attr[0], (long long)n->attr[0]);
        return;
    }
    int k = f->fold[i];
    if (k == 1) bpv_buf_puts(b, sym);
    if (k >= 0) num(f, b, f->s->nodes[n->in[k]].value[0]);
    if (k != 1) bpv_buf_puts(b, sym);
}

static size_t utf8_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void op_node(fig *f, int i, Agnode_t *nd) {
    const bpv_snap_node *n = &f->s->nodes[i];
    bpv_buf b, sym;
    bpv_buf_init(&b);
    bpv_buf_init(&sym);
    op_symbol(f, &sym, i);
    /* long symbols (tanh, softmax) in a smaller font keep circles small */
    size_t len = utf8_chars(str(&sym));
    int size = len <= 1 ? 22 : len <= 3 ? 16 : len <= 5 ? 13 : 11;
    bpv_buf_puts(&b, table_open);
    bpv_buf_printf(&b, "<TR><TD><FONT POINT-SIZE=\"%d\">", size);
    esc(&b, sym.data);
    bpv_buf_puts(&b, "</FONT></TD></TR>");
    if (n->op == BPV_OP_CONV2D && n->attr) /* the rest of its geometry */
        bpv_buf_printf(&b, "<TR><TD><FONT POINT-SIZE=\"9\">stride %lld · padding %lld</FONT></TD></TR>",
                       (long long)n->attr[0], (long long)n->attr[1]);
    if ((n->op == BPV_OP_MAX_POOL2D || n->op == BPV_OP_AVG_POOL2D) && n->attr &&
        ((!isnan(n->attr[1]) && n->attr[1] != n->attr[0]) || n->attr[2] > 0))
        bpv_buf_printf(&b, "<TR><TD><FONT POINT-SIZE=\"9\">stride %lld · padding %lld</FONT></TD></TR>",
                       (long long)(isnan(n->attr[1]) ? n->attr[0] : n->attr[1]),
                       (long long)n->attr[2]);
    /* a scalar's value and gradient fit under the symbol; a tensor's are
     * on its edges */
    if (is_scalar(n)) {
        bpv_buf_printf(&b, "<TR><TD><FONT POINT-SIZE=\"9\" COLOR=\"%s\">", f->t->fwd_text);
        esc_num(f, &b, printed(f, n->value, 0));
        bpv_buf_puts(&b, "</FONT></TD></TR>");
        if (n->grad) {
            bpv_buf_printf(&b, "<TR><TD><FONT POINT-SIZE=\"9\" COLOR=\"%s\">", f->t->bwd_text);
            esc_num(f, &b, printed(f, n->grad, 0));
            bpv_buf_puts(&b, "</FONT></TD></TR>");
        }
    }
    bpv_buf_puts(&b, "</TABLE>");
    set_html(f, nd, f->n_label, b.data);
    /* a long label (conv 5×5, stride...) in a rounded box, not a swollen circle */
    const bool wide = len > 7;
    agxset(nd, f->n_shape, S(wide ? "box" : "circle"));
    agxset(nd, f->n_style, S(wide ? "rounded,filled" : "filled"));
    agxset(nd, f->n_fill, S(f->t->op_fill));
    agxset(nd, f->n_margin, S("0.02"));
    agxset(nd, f->n_width, S("0.7")); /* equal circles for short symbols */
    mark_node(f, i, nd, bad_edge_into(f, i)); /* an origin's note is on its edge out */
    if (n->torch) set_attr(nd, "tooltip", n->torch); /* a recorded op's own class */
    bpv_buf_free(&b);
    bpv_buf_free(&sym);
}

/* ---- edges ------------------------------------------------------------------- */

/* Forward label: "ŷ = 1" out of a named node, else the value. */
static void forward_label(const fig *f, bpv_buf *b, int from) {
    const bpv_snap_node *n = &f->s->nodes[from];
    bpv_buf p;
    bpv_buf_init(&p);
    if (f->named[from] || (f->o->labels == BPV_LABELS_SHAPES && !is_scalar(n)))
        bpv_buf_printf(&p, "%s = ", f->disp[from]);
    bpv_buf_puts(b, table_open);
    /* a leaf's box already shows its matrix: the edge only names it */
    if (n->kind != BPV_NODE_OP && !is_scalar(n) && f->named[from]) {
        p.len -= 3;
        p.data[p.len] = '\0';
        row(f, b, p.data, NULL, &n->shape, f->t->fwd_text, 0);
    } else {
        row(f, b, p.data, n->value, &n->shape, f->t->fwd_text, 0);
    }
    bpv_buf_puts(b, "</TABLE>");
    bpv_buf_free(&p);
}

/* The local derivative ∂to/∂from as text: the op table's formula with
 * a, b and out replaced by display names; a folded power gets its own. */
static void local_formula(const fig *f, bpv_buf *b, const bpv_snap_edge *e) {
    const bpv_snap_node *to = &f->s->nodes[e->to];
    if (to->op == BPV_OP_POW && e->slot == 0 && f->fold[e->to] == 1) {
        double k = f->s->nodes[to->in[1]].value[0];
        if (k == 0) {
            bpv_buf_putc(b, '0');
            return;
        }
        if (k != 1) num(f, b, k);
        if (k == 1) {
            bpv_buf_putc(b, '1');
            return;
        }
        bpv_buf_puts(b, "·");
        put_disp(f, b, e->from, P_ATOM);
        if (integral(k)) {
            if (k != 2) bpv_fig_superscript(b, (long long)k - 1);
        } else {
            bpv_buf_puts(b, "^(");
            num(f, b, k - 1);
            bpv_buf_putc(b, ')');
        }
        return;
    }
    const char *t = to->fn ? to->fn_dlocal[e->slot < 1 ? e->slot : 1]
                           : bpv_ops[to->op].dlocal[e->slot < 1 ? e->slot : 1];
    if (!t) {
        if (e->formula) bpv_fig_formula(b, e->formula, f->o->plain_names);
        return;
    }
    bool alone = strcmp(t, "a") == 0 || strcmp(t, "b") == 0 || strcmp(t, "out") == 0;
    while (*t) {
        size_t n = 0;
        while ((t[n] >= 'a' && t[n] <= 'z') || (t[n] >= 'A' && t[n] <= 'Z') || t[n] == '_' ||
               (n > 0 && t[n] >= '0' && t[n] <= '9'))
            n++;
        if (n == 0) {
            char c[2] = {*t, 0};
            bpv_fig_formula(b, c, true);
            t++;
            continue;
        }
        int who = -1;
        if (n == 1 && t[0] == 'a') who = to->in[0];
        else if (n == 1 && t[0] == 'b' && to->nin > 1) who = to->in[1];
        else if (n == 3 && memcmp(t, "out", 3) == 0) who = e->to;
        if (who >= 0) {
            put_disp(f, b, who, alone ? P_ADD : P_ATOM);
        } else {
            char word[64];
            size_t m = n < sizeof word - 1 ? n : sizeof word - 1;
            memcpy(word, t, m);
            word[m] = '\0';
            bpv_fig_formula(b, word, true); /* function names stay as written */
        }
        t += n;
    }
}

/* Backward edges that say only "∂loss/∂W": with --labels shapes a tensor's
 * (its shape is the input's), and by default the one edge out of a leaf:
 * its gradient is the leaf's own, shown once, in the box beside its value
 * and update. A leaf used several times keeps each path's contribution on
 * its edges and the total in the box. */
static bool grad_name_only(const fig *f, const bpv_snap_edge *e) {
    const bpv_snap_node *from = &f->s->nodes[e->from];
    if (f->o->labels == BPV_LABELS_SHAPES) return !is_scalar(from);
    return f->o->labels == BPV_LABELS_VALUES && from->kind != BPV_NODE_OP && from->grad &&
           f->uses[e->from] == 1;
}

/* Whether edge e's input was broadcast to its op's larger shape (a bias
 * [3] added to a batch [4, 3]); *batch: only leading dimensions were added. */
static bool broadcast_edge(const fig *f, const bpv_snap_edge *e, bool *batch) {
    const bpv_snap_node *from = &f->s->nodes[e->from], *to = &f->s->nodes[e->to];
    *batch = false;
    /* a recorded op bpviz has no row for (addmm) has no elementwise rule */
    if (to->kind != BPV_NODE_OP || to->recorded || !(bpv_ops[to->op].flags & BPV_OPF_ELEMWISE) ||
        from->numel >= to->numel || from->shape.rank > to->shape.rank)
        return false;
    *batch = from->shape.rank < to->shape.rank;
    for (int d = 0; d < from->shape.rank; d++)
        if (from->shape.dim[from->shape.rank - 1 - d] != to->shape.dim[to->shape.rank - 1 - d])
            *batch = false;
    return true;
}

/* --labels full on a tensor: the chain-rule step one line each,
 *   ∂loss/∂W₁ = ∂loss/∂(W₁x) · ∂(W₁x)/∂W₁
 *             = ∂loss/∂(W₁x) · xᵀ          (a matrix product's partials)
 *             = [ matrix ]
 * and a broadcast input's gradient summed: = Σ over batch ∂loss/∂h · 1. */
static void full_tensor_label(const fig *f, bpv_buf *b, const bpv_snap_edge *e) {
    const bpv_snap_node *from = &f->s->nodes[e->from], *to = &f->s->nodes[e->to];
    const char *color = f->t->bwd_text;
    bool top = e->to == f->s->objective;
    bpv_buf line;
    bpv_buf_init(&line);
    partial(f, &line, -1, e->from);
    bpv_buf_puts(&line, " = ");
    if (!top) {
        partial(f, &line, -1, e->to);
        bpv_buf_puts(&line, " · ");
        partial(f, &line, e->to, e->from);
        row(f, b, line.data, NULL, &from->shape, color, 0);
        line.len = 0;
        bpv_buf_puts(&line, "= ");
    }
    bool batch, bc = broadcast_edge(f, e, &batch);
    if (bc) bpv_buf_puts(&line, batch ? "Σ over batch " : "Σ over broadcast dims ");
    if (to->op == BPV_OP_MATMUL && !to->fn && to->nin == 2) {
        /* ∂/∂A = δ·Bᵀ, ∂/∂B = Aᵀ·δ, vectors taken as matrices */
        if (e->slot == 0) {
            partial(f, &line, -1, e->to);
            bpv_buf_puts(&line, " · ");
            put_disp(f, &line, to->in[1], P_ATOM);
            bpv_buf_puts(&line, "ᵀ");
        } else {
            put_disp(f, &line, to->in[0], P_ATOM);
            bpv_buf_puts(&line, "ᵀ · ");
            partial(f, &line, -1, e->to);
        }
    } else {
        if (!top) {
            partial(f, &line, -1, e->to);
            bpv_buf_puts(&line, " · ");
        }
        local_formula(f, &line, e);
    }
    row(f, b, line.data, NULL, &from->shape, color, 0);
    row(f, b, "= ", e->chained, &from->shape, color, 0);
    bpv_buf_free(&line);
}

static void backward_label(const fig *f, bpv_buf *b, const bpv_snap_edge *e) {
    const bpv_snap_node *from = &f->s->nodes[e->from], *to = &f->s->nodes[e->to];
    const theme *t = f->t;
    bpv_buf p;
    bpv_buf_init(&p);
    bpv_buf_puts(b, table_open);
    partial(f, &p, -1, e->from);
    if (grad_name_only(f, e)) {
        row(f, b, p.data, NULL, &from->shape, t->bwd_text, 0);
    } else if (f->o->labels == BPV_LABELS_FULL && e->chained && !(is_scalar(from) && is_scalar(to))) {
        full_tensor_label(f, b, e);
        bpv_buf_puts(b, "</TABLE>");
        bpv_buf_free(&p);
        return;
    } else if (f->o->labels == BPV_LABELS_FULL) {
        /* ∂L/∂w = ∂L/∂ŷ · ∂ŷ/∂w          next to the objective, whose
         *       = −2 · x = −2 · 1 = −2    upstream is 1:  ∂L/∂r = 2·r = −2 */
        bool top = e->to == f->s->objective;
        bpv_buf formula, upv, loc;
        bpv_buf_init(&formula);
        bpv_buf_init(&upv);
        bpv_buf_init(&loc);
        local_formula(f, &formula, e);
        bool scalar = is_scalar(from) && is_scalar(to) && to->grad && e->chained;
        if (scalar) {
            num(f, &upv, printed(f, to->grad, 0));
            if (e->local) {
                size_t at = vary_begin(f, &loc); /* the brackets vary too */
                double l = printed(f, e->local, 0);
                if (l < 0 && !top) bpv_buf_putc(&loc, '(');
                num(f, &loc, l);
                if (l < 0 && !top) bpv_buf_putc(&loc, ')');
                vary_end(f, &loc, at);
            }
        }
        bpv_buf_puts(&p, " = ");
        if (top) {
            bpv_buf_puts(&p, str(&formula));
            /* a matrix follows on the right of both lines */
            bpv_buf_puts(&p, scalar ? " = " : "\n= ");
        } else {
            partial(f, &p, -1, e->to);
            bpv_buf_puts(&p, " · ");
            partial(f, &p, e->to, e->from);
            if (scalar) {
                row(f, b, p.data, NULL, &from->shape, t->bwd_text, 0);
                p.len = 0;
                bpv_buf_puts(&p, "= ");
                bpv_buf_printf(&p, "%s · %s = ", str(&upv), str(&formula));
                if (loc.len && strcmp(str(&loc), str(&formula)) != 0)
                    bpv_buf_printf(&p, "%s · %s = ", str(&upv), str(&loc));
            } else {
                bpv_buf_puts(&p, "\n= ");
            }
        }
        bpv_buf_free(&formula);
        bpv_buf_free(&upv);
        bpv_buf_free(&loc);
    } else {
        bpv_buf_puts(&p, " = ");
    }
    if (!grad_name_only(f, e)) row(f, b, p.data, e->chained, &from->shape, t->bwd_text, 0);
    bpv_buf_puts(b, "</TABLE>");
    bpv_buf_free(&p);
}

static void style_edge(fig *f, Agedge_t *ed, bool backward) {
    const theme *t = f->t;
    agxset(ed, f->e_color, S(backward ? t->bwd : t->fwd));
    agxset(ed, f->e_fontcolor, S(backward ? t->bwd_text : t->fwd_text));
    if (backward) {
        agxset(ed, f->e_style, S("dashed"));
        agxset(ed, f->e_dir, S("back"));
    }
}

/* ---- the graph ------------------------------------------------------------ */

static void caption(const fig *f, bpv_buf *b) {
    const bpv_snapshot *s = f->s;
    bpv_buf raw;
    bpv_buf_init(&raw);
    size_t at = vary_begin(f, &raw); /* the whole caption is one varying text */
    /* steps count from 1 (steps taken); epochs and samples from 0, as the
     * JSON trace and the data's rows (x[0]) do */
    bpv_buf_printf(&raw, "step %ld · epoch %ld", s->step, s->epoch);
    if (s->nsamples == 1) {
        bpv_buf_printf(&raw, " · sample %lld", (long long)s->samples[0]);
        int shown = 0;
        for (int i = 0; i < s->nnodes; i++) {
            const bpv_snap_node *n = &s->nodes[i];
            if (n->kind != BPV_NODE_DATA || !n->name || n->numel > 4) continue;
            bpv_buf_puts(&raw, shown++ ? ", " : " (");
            bpv_buf_printf(&raw, "%s = ", f->disp[i]);
            if (n->shape.rank > 0) bpv_buf_putc(&raw, '[');
            for (int64_t k = 0; k < n->numel; k++) {
                if (k) bpv_buf_puts(&raw, ", ");
                num(f, &raw, printed(f, n->value, k));
            }
            if (n->shape.rank > 0) bpv_buf_putc(&raw, ']');
        }
        if (shown) bpv_buf_putc(&raw, ')');
    } else if (s->nsamples > 1) {
        bool run = true;
        for (int64_t k = 1; k < s->nsamples; k++)
            run = run && s->samples[k] == s->samples[k - 1] + 1;
        if (run) {
            bpv_buf_printf(&raw, " · samples %lld–%lld", (long long)s->samples[0],
                           (long long)s->samples[s->nsamples - 1]);
        } else if (s->nsamples <= 8) {
            bpv_buf_puts(&raw, " · samples ");
            for (int64_t k = 0; k < s->nsamples; k++)
                bpv_buf_printf(&raw, "%s%lld", k ? ", " : "", (long long)s->samples[k]);
        } else {
            bpv_buf_printf(&raw, " · batch of %lld samples", (long long)s->nsamples);
        }
    }
    bpv_buf_printf(&raw, " · %s = ", f->L);
    bool loss_node = s->objective >= 0 && s->objective < s->nnodes &&
                     s->nodes[s->objective].numel == 1 && s->nodes[s->objective].value[0] == s->loss;
    num(f, &raw, loss_node ? printed(f, s->nodes[s->objective].value, 0) : s->loss);
    vary_end(f, &raw, at);
    /* padding keeps the caption clear of the lowest node */
    bpv_buf_puts(b, "<TABLE BORDER=\"0\" CELLPADDING=\"8\"><TR><TD><FONT POINT-SIZE=\"14\">");
    esc(b, raw.data);
    bpv_buf_puts(b, "</FONT></TD></TR></TABLE>");
    bpv_buf_free(&raw);
}

/* A failed check or the backward origin on edge k: extra label rows. */
static void mark_edge(const fig *f, Agedge_t *ed, int k, bpv_buf *label) {
    const bpv_snap_edge *e = &f->s->edges[k];
    (void)ed;
    bpv_buf t;
    bpv_buf_init(&t);
    if (e->gradcheck.state == BPV_GRADCHECK_BAD) {
        bpv_buf_puts(&t, "✗ ");
        partial(f, &t, e->to, e->from);
        bpv_buf_puts(&t, ": ");
        gradcheck_text(f, &t, &e->gradcheck, f->s->nodes[e->to].numel);
        extra_row(label, mismatch_text, t.data, 12);
    }
    if (f->s->nf_pass == 2 && f->s->nf_edge == k) {
        t.len = 0;
        origin_text(f, &t);
        extra_row(label, origin_line, t.data, 12);
    }
    bpv_buf_free(&t);
}

/* Line style of a marked edge, after style_edge. */
static void restyle_edge(fig *f, Agedge_t *ed, int k) {
    const bpv_snap_edge *e = &f->s->edges[k];
    if (e->gradcheck.state == BPV_GRADCHECK_BAD) {
        agxset(ed, f->e_color, S(mismatch_line));
        agxset(ed, f->e_fontcolor, S(mismatch_text));
        set_attr(ed, "penwidth", "3");
        set_attr(ed, "class", "bpv-mismatch");
    }
    if (f->s->nf_pass == 2 && f->s->nf_edge == k) {
        agxset(ed, f->e_color, S(origin_line));
        set_attr(ed, "penwidth", "3.5");
        set_attr(ed, "class", "bpv-origin");
    }
}

/* An edge with one end outside the --focus neighbourhood: a short grey
 * edge to or from a "…" standing in for the rest of the graph. */
static void cut_stub(fig *f, int k, const bpv_snap_edge *e) {
    char id[32];
    snprintf(id, sizeof id, "cut%d", k);
    Agnode_t *stub = agnode(f->g, id, 1);
    set_html(f, stub, f->n_label, "<FONT COLOR=\"gray40\" POINT-SIZE=\"16\">…</FONT>");
    agxset(stub, f->n_shape, S("plaintext"));
    agxset(stub, f->n_periph, S("0"));
    set_attr(stub, "class", "bpv-cut");
    snprintf(id, sizeof id, "c%d", k);
    Agedge_t *ce = f->gv[e->from] ? agedge(f->g, f->gv[e->from], stub, id, 1)
                                  : agedge(f->g, stub, f->gv[e->to], id, 1);
    agxset(ce, f->e_color, S("gray60"));
    agxset(ce, f->e_style, S("dashed"));
}

/* "[3] → [4, 3]": a shape as the marker of a broadcast edge writes it. */
static void shape_list(bpv_buf *b, const bpv_shape *sh) {
    bpv_buf_putc(b, '[');
    for (int d = 0; d < sh->rank; d++) bpv_buf_printf(b, "%s%lld", d ? ", " : "", (long long)sh->dim[d]);
    bpv_buf_putc(b, ']');
}

/* An input broadcast to its op's larger shape: its forward edge says
 * "[3] → [4, 3]", its backward edge that the gradient was summed back. */
static void broadcast_marks(const fig *f, const bpv_snap_edge *e, bpv_buf *label, bool backward) {
    bool batch;
    if (!broadcast_edge(f, e, &batch)) return;
    bpv_buf t;
    bpv_buf_init(&t);
    if (!backward) {
        shape_list(&t, &f->s->nodes[e->from].shape);
        bpv_buf_puts(&t, " → ");
        shape_list(&t, &f->s->nodes[e->to].shape);
    } else if (f->o->labels != BPV_LABELS_FULL) { /* full labels say it in the formula */
        bpv_buf_puts(&t, batch ? "summed over the batch" : "summed over the broadcast dims");
    }
    if (t.len) extra_row(label, backward ? f->t->bwd_text : f->t->fwd_text, t.data, 10);
    bpv_buf_free(&t);
}

/* The note of an op that is the origin of the first NaN or inf goes on its
 * first drawn forward edge out (edge k; -1: the sink's arrow), below the
 * value: dot lays edge labels out as nodes, so the note never lies on an
 * edge, as a label beside the circle (xlabel) did. */
static void origin_note(const fig *f, int from, int k, bpv_buf *label) {
    if (!is_origin_node(f, from) || f->s->nodes[from].kind != BPV_NODE_OP) return;
    for (int j = 0; k >= 0 && j < k; j++) {
        const bpv_snap_edge *e = &f->s->edges[j];
        if (e->from == from && e->to >= 0 && e->to < f->s->nnodes && f->gv[e->to]) return;
    }
    bpv_buf t;
    bpv_buf_init(&t);
    origin_text(f, &t);
    extra_row(label, origin_line, t.data, 12);
    bpv_buf_free(&t);
}

/* --focus NAME: the focused node drawn with a heavy blue border. */
static void focus_mark(fig *f) {
    if (!f->o->focus) return;
    for (int i = 0; i < f->s->nnodes; i++) {
        const bpv_snap_node *n = &f->s->nodes[i];
        if (!f->gv[i] || !n->name || strcmp(n->name, f->o->focus) != 0) continue;
        set_attr(f->gv[i], "penwidth", "3.5");
        set_attr(f->gv[i], "color", "#1F5FBF");
        set_attr(f->gv[i], "class", "bpv-focus");
    }
}

/* Above this many drawn nodes, build() sets faster layout limits. */
#define BIG_GRAPH 200

/* The unrolled steps of a figure whose nodes come from one loop: the
 * first step and the count; false for none or several loops. */
static bool step_range(const fig *f, long long *first, long long *count) {
    const char *var = NULL;
    long long lo = 0, hi = -1;
    for (int i = 0; i < f->s->nnodes; i++) {
        const bpv_snap_node *n = &f->s->nodes[i];
        if (!n->loop_var) continue;
        if (var && strcmp(var, n->loop_var) != 0) return false;
        if (!var || n->loop_value < lo) lo = n->loop_value;
        if (!var || n->loop_value > hi) hi = n->loop_value;
        var = n->loop_var;
    }
    *first = lo;
    *count = hi - lo + 1;
    return var != NULL;
}

/* --fit: the row of node i when unrolled steps are wrapped, or -1 (not in
 * a step, or not wrapped). */
static int step_row(const fig *f, int i) {
    const bpv_snap_node *n = &f->s->nodes[i];
    long long first, count;
    if (f->step_rows < 2 || !n->loop_var || !step_range(f, &first, &count)) return -1;
    return (int)((n->loop_value - first) * f->step_rows / count);
}

/* The cluster of module `path` (its first `len` bytes) of a recorded
 * trace, inside its parent's ("features" holds "features.0"), made on
 * first use and labelled "features.0 · Conv2d" when some node names the
 * module's class. */
static Agraph_t *module_cluster(fig *f, const char *path, size_t len) {
    const char *dot = NULL;
    for (size_t k = 0; k < len; k++)
        if (path[k] == '.') dot = path + k;
    Agraph_t *parent = dot ? module_cluster(f, path, (size_t)(dot - path)) : f->g;
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_buf_puts(&b, "cluster_module:");
    bpv_buf_add(&b, path, len);
    Agraph_t *sub = agsubg(parent, b.data, 0);
    if (sub || !(sub = agsubg(parent, b.data, 1))) { /* made before, or cannot be */
        bpv_buf_free(&b);
        return sub ? sub : parent;
    }
    const char *cls = NULL;
    for (int i = 0; i < f->s->nnodes && !cls; i++) {
        const bpv_snap_node *n = &f->s->nodes[i];
        if (n->module && n->module_class && strlen(n->module) == len &&
            memcmp(n->module, path, len) == 0)
            cls = n->module_class;
    }
    char *raw = malloc(len + 1);
    if (raw) {
        memcpy(raw, path, len);
        raw[len] = '\0';
        b.len = 0;
        bpv_fig_html(&b, raw); /* a path is the user's text: escaped */
        if (cls) {
            bpv_buf_puts(&b, " · ");
            bpv_fig_html(&b, cls);
        }
        char *h = agstrdup_html(f->g, S(b.data ? b.data : ""));
        agsafeset(sub, S("label"), h, S(""));
        agstrfree(f->g, h);
        free(raw);
    }
    bpv_buf_free(&b);
    set_attr(sub, "labeljust", "l");
    set_attr(sub, "labelloc", "t");
    set_attr(sub, "style", "rounded");
    set_attr(sub, "color", "#9a9a9a");
    set_attr(sub, "fontcolor", "#606060");
    set_attr(sub, "fontsize", "11");
    return sub;
}

/* The graph node i is drawn in: the cluster of its module (a recorded
 * trace's), or of its unrolled time step (labelled "t = 3"), made on first
 * use, or the root. */
static Agraph_t *step_cluster(fig *f, int i) {
    const bpv_snap_node *n = &f->s->nodes[i];
    if (n->module) return module_cluster(f, n->module, strlen(n->module));
    if (!n->loop_var) return f->g;
    char name[160], label[160];
    Agraph_t *parent = f->g;
    int row = step_row(f, i);
    if (row >= 0) { /* --fit: the step's cluster inside its row's */
        snprintf(name, sizeof name, "cluster_fit%d", row);
        if (!(parent = agsubg(f->g, name, 0))) {
            if (!(parent = agsubg(f->g, name, 1))) return f->g;
            set_attr(parent, "peripheries", "0");
            set_attr(parent, "label", "");
        }
    }
    snprintf(name, sizeof name, "cluster_%.60s_%lld", n->loop_var, (long long)n->loop_value);
    Agraph_t *sub = agsubg(parent, name, 0);
    if (sub) return sub;
    sub = agsubg(parent, name, 1);
    if (!sub) return f->g;
    if (parent != f->g) set_attr(sub, "peripheries", "1"); /* not its row's 0 */
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_fig_html(&b, n->loop_var);
    snprintf(label, sizeof label, "%s = %lld", b.data ? b.data : "", (long long)n->loop_value);
    bpv_buf_free(&b);
    set_attr(sub, "label", label);
    set_attr(sub, "labeljust", "l");
    set_attr(sub, "labelloc", "t");
    set_attr(sub, "style", "rounded,dashed");
    set_attr(sub, "color", "#9a9a9a");
    set_attr(sub, "fontcolor", "#606060");
    return sub;
}

/* Unrolled steps left to right (or top to bottom): a node of step t that
 * reads only leaves would be ranked beside step 1; an invisible edge from
 * the last node of step t-1 keeps it in its own step's place. */
static void step_order(fig *f) {
    const bpv_snapshot *s = f->s;
    bool any = false;
    for (int i = 0; i < s->nnodes && !any; i++) any = s->nodes[i].loop_var && f->gv[i];
    if (!any) return;
    /* clusters are ranked with the whole graph, not one by one */
    agattr(f->g, AGRAPH, S("newrank"), S("true"));
    char id[32];
    for (int i = 0; i < s->nnodes; i++) {
        const bpv_snap_node *n = &s->nodes[i];
        if (!n->loop_var || !f->gv[i]) continue;
        bool inner = false; /* an input made in some step already orders it */
        for (int k = 0; k < n->nin && !inner; k++)
            inner = s->nodes[n->in[k]].loop_var != NULL;
        if (inner) continue;
        int prev = -1;
        for (int j = i - 1; j >= 0 && prev < 0; j--) {
            const bpv_snap_node *m = &s->nodes[j];
            if (m->loop_var && f->gv[j] && m->loop_value == n->loop_value - 1 &&
                strcmp(m->loop_var, n->loop_var) == 0)
                prev = j;
        }
        if (prev < 0 || step_row(f, prev) != step_row(f, i)) continue; /* --fit: a new row */
        snprintf(id, sizeof id, "step%d", i);
        Agedge_t *e = agedge(f->g, f->gv[prev], f->gv[i], id, 1);
        if (e) agxset(e, f->e_style, S("invis"));
    }
}

static void build(fig *f) {
    const bpv_snapshot *s = f->s;
    const theme *t = f->t;
    Agraph_t *g = f->g;
    char id[32];

    /* --font: set before any node exists, as nodes copy the defaults */
    const char *face = f->o->font && *f->o->font ? f->o->font : font;
    face = layout_font(face);
    agattr(g, AGRAPH, S("rankdir"), S(f->o->rankdir_tb ? "TB" : "LR"));
    agattr(g, AGRAPH, S("fontname"), S(face));
    agattr(g, AGRAPH, S("bgcolor"), S("white"));
    agattr(g, AGRAPH, S("pad"), S("0.3"));
    /* the player's figure is fitted to a window: tighter, so its text
     * comes out larger */
    agattr(g, AGRAPH, S("nodesep"), S(f->vary ? "0.25" : "0.45"));
    agattr(g, AGRAPH, S("ranksep"), S(f->vary ? "0.25" : "0.4"));
    agattr(g, AGRAPH, S("labelloc"), S("b"));
    agattr(g, AGRAPH, S("outputorder"), S("edgesfirst"));
    agattr(g, AGRAPH, S("linelength"), S("0")); /* agwrite: no folded lines */
    int drawn = 0;
    for (int i = 0; i < s->nnodes; i++) drawn += !(f->folded[i] || (f->keep && !f->keep[i]));
    if (drawn > BIG_GRAPH) {
        /* dot's network simplex (ranks, then x positions with every edge
         * label as a node) runs to optimality by default: 39 s for a
         * 983-node scalar MLP. Capped at 2 passes per node it takes 9 s
         * with much the same picture; tighter caps (0.5) leave long
         * detours. Straight edges skip spline routing around the many
         * long edges of a wide sum (37 s -> 11 s at 404 nodes); such
         * figures are overviews. Measurements: bench/README.md. */
        agattr(g, AGRAPH, S("nslimit"), S("2"));
        agattr(g, AGRAPH, S("nslimit1"), S("2"));
        agattr(g, AGRAPH, S("mclimit"), S("0.2"));
        agattr(g, AGRAPH, S("remincross"), S("false"));
        agattr(g, AGRAPH, S("splines"), S("line"));
    }
    agattr(g, AGNODE, S("fontname"), S(face));
    agattr(g, AGNODE, S("fontsize"), S("13"));
    agattr(g, AGNODE, S("color"), S(t->border));
    f->n_margin = agattr(g, AGNODE, S("margin"), S("0.12,0.06"));
    f->n_label = agattr(g, AGNODE, S("label"), S(""));
    f->n_shape = agattr(g, AGNODE, S("shape"), S("box"));
    f->n_style = agattr(g, AGNODE, S("style"), S(""));
    f->n_fill = agattr(g, AGNODE, S("fillcolor"), S("white"));
    f->n_periph = agattr(g, AGNODE, S("peripheries"), S("1"));
    f->n_width = agattr(g, AGNODE, S("width"), S("0.3"));
    f->n_height = agattr(g, AGNODE, S("height"), S("0.3"));
    agattr(g, AGEDGE, S("fontname"), S(face));
    agattr(g, AGEDGE, S("fontsize"), S("12"));
    agattr(g, AGEDGE, S("arrowsize"), S("0.7"));
    agattr(g, AGEDGE, S("penwidth"), S("1.3"));
    f->e_label = agattr(g, AGEDGE, S("label"), S(""));
    f->e_color = agattr(g, AGEDGE, S("color"), S("black"));
    f->e_fontcolor = agattr(g, AGEDGE, S("fontcolor"), S("black"));
    f->e_style = agattr(g, AGEDGE, S("style"), S("solid"));
    f->e_dir = agattr(g, AGEDGE, S("dir"), S("forward"));

    for (int i = 0; i < s->nnodes; i++) {
        if (f->folded[i] || (f->keep && !f->keep[i])) continue;
        snprintf(id, sizeof id, "n%d", i);
        Agnode_t *nd = agnode(step_cluster(f, i), id, 1);
        f->gv[i] = nd;
        if (s->nodes[i].kind == BPV_NODE_OP) op_node(f, i, nd);
        else leaf_node(f, i, nd);
    }

    step_order(f);
    focus_mark(f);

    bpv_buf b;
    bpv_buf_init(&b);
    for (int k = 0; k < s->nedges; k++) {
        const bpv_snap_edge *e = &s->edges[k];
        if (e->from < 0 || e->from >= s->nnodes || e->to < 0 || e->to >= s->nnodes ||
            f->folded[e->from])
            continue;
        if (!f->gv[e->from] != !f->gv[e->to]) { /* cut by --focus: a "…" stub */
            cut_stub(f, k, e);
            continue;
        }
        if (!f->gv[e->from] || !f->gv[e->to]) continue;
        snprintf(id, sizeof id, "f%d", k);
        Agedge_t *fe = agedge(g, f->gv[e->from], f->gv[e->to], id, 1);
        b.len = 0;
        forward_label(f, &b, e->from);
        broadcast_marks(f, e, &b, false);
        origin_note(f, e->from, k, &b);
        set_html(f, fe, f->e_label, b.data);
        style_edge(f, fe, false);
        if (!e->chained) continue;
        snprintf(id, sizeof id, "b%d", k);
        Agedge_t *be = agedge(g, f->gv[e->from], f->gv[e->to], id, 1);
        b.len = 0;
        backward_label(f, &b, e);
        broadcast_marks(f, e, &b, true);
        mark_edge(f, be, k, &b);
        set_html(f, be, f->e_label, b.data);
        style_edge(f, be, true);
        restyle_edge(f, be, k);
    }

    /* Ops that feed nothing (the objective) get an arrow into empty space,
     * as in the tutorial's figures, carrying their value and gradient. */
    for (int i = 0; i < s->nnodes; i++) {
        if (s->nodes[i].kind != BPV_NODE_OP || f->uses[i] > 0 || !f->gv[i]) continue;
        snprintf(id, sizeof id, "out%d", i);
        Agnode_t *sink = agnode(g, id, 1);
        agxset(sink, f->n_shape, S("none"));
        /* long across the flow, so the two arrows arrive apart */
        agxset(sink, f->n_width, S(f->o->rankdir_tb ? "0.8" : "0.1"));
        agxset(sink, f->n_height, S(f->o->rankdir_tb ? "0.1" : "0.6"));
        agxset(sink, f->n_periph, S("0"));
        /* an empty label of its own: agwrite leaves out a label equal to the
         * default "", and `dot` reading the file would print the name;
         * an HTML label of one space is written and draws nothing */
        set_html(f, sink, f->n_label, " ");
        set_attr(sink, "fixedsize", "true"); /* the space takes no room */
        snprintf(id, sizeof id, "f_out%d", i);
        Agedge_t *fe = agedge(g, f->gv[i], sink, id, 1);
        b.len = 0;
        forward_label(f, &b, i);
        origin_note(f, i, -1, &b);
        set_html(f, fe, f->e_label, b.data);
        style_edge(f, fe, false);
        if (!s->nodes[i].grad) continue;
        snprintf(id, sizeof id, "b_out%d", i);
        Agedge_t *be = agedge(g, f->gv[i], sink, id, 1);
        bpv_buf p;
        bpv_buf_init(&p);
        partial(f, &p, -1, i);
        bpv_buf_puts(&p, " = ");
        b.len = 0;
        bpv_buf_puts(&b, table_open);
        row(f, &b, p.data, s->nodes[i].grad, &s->nodes[i].shape, t->bwd_text, 0);
        bpv_buf_puts(&b, "</TABLE>");
        bpv_buf_free(&p);
        set_html(f, be, f->e_label, b.data);
        style_edge(f, be, true);
    }

    b.len = 0;
    if (f->o->legend) { /* caption and key side by side, bottom right */
        bpv_buf_puts(&b, "<TABLE BORDER=\"0\" CELLSPACING=\"0\" CELLPADDING=\"0\"><TR>"
                         "<TD VALIGN=\"BOTTOM\">");
        caption(f, &b);
        bpv_buf_puts(&b, "</TD><TD VALIGN=\"BOTTOM\">");
        legend(f, &b);
        bpv_buf_puts(&b, "</TD></TR></TABLE>");
        agattr(g, AGRAPH, S("labeljust"), S("r"));
    } else {
        caption(f, &b);
    }
    set_html(f, g, agattr(g, AGRAPH, S("label"), S("")), b.data);
    bpv_buf_free(&b);
}

/* The options about the output rather than the drawing: --size, --dpi,
 * and a tight PDF page (--font is applied in build()). */
static void output_options(fig *f, bpv_format fmt) {
    const bpv_figure_options *o = f->o;
    char v[64];
    if (o->size_w > 0 || o->size_h > 0) {
        double w = o->size_w > 0 ? o->size_w : o->size_h, h = o->size_h > 0 ? o->size_h : w;
        snprintf(v, sizeof v, "%g,%g!", w, h); /* '!': scale up as well as down */
        agattr(f->g, AGRAPH, S("size"), S(v));
    }
    if (fmt == BPV_FORMAT_PNG && o->dpi > 0) {
        snprintf(v, sizeof v, "%g", o->dpi);
        agattr(f->g, AGRAPH, S("dpi"), S(v));
    }
    if (fmt == BPV_FORMAT_PDF) {
        /* The page is the drawing, for \includegraphics: no device margin
         * (cairo's PDF default is half an inch) and a hairline of pad. */
        agattr(f->g, AGRAPH, S("margin"), S("0"));
        agattr(f->g, AGRAPH, S("pad"), S("0.04"));
    }
}

/* A PNG's size is known once the graph is laid out: its drawing (bb, in
 * points), scaled to --size if given, plus the pad, at the dpi. cairo would
 * allocate it whole, 4 bytes a pixel (--dpi 2400 on a 150-node figure: 2.5
 * GB, 35 s), so it is refused above 32767 pixels a side (cairo's) or when
 * its pixels and what the process holds pass the memory budget. */
static bool raster_fits(Agraph_t *g, bpv_error **err) {
    const boxf bb = GD_bb(g);
    double w = bb.UR.x - bb.LL.x, h = bb.UR.y - bb.LL.y;
    const char *sz = agget(g, S("size")), *dp = agget(g, S("dpi")), *pd = agget(g, S("pad"));
    double sw = 0, sh = 0;
    if (sz && *sz && sscanf(sz, "%lf,%lf", &sw, &sh) == 2 && sw > 0 && sh > 0 && w > 0 && h > 0) {
        double k = fmin(sw * 72 / w, sh * 72 / h);
        w *= k, h *= k;
    }
    double dpi = dp && *dp ? atof(dp) : 96, pad = pd && *pd ? atof(pd) : 0.0555;
    if (!(dpi > 0)) dpi = 96;
    const double pw = (w / 72 + 2 * pad) * dpi, ph = (h / 72 + 2 * pad) * dpi;
    if (!(pw <= 32767 && ph <= 32767)) {
        bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                         "the PNG would be %.0f x %.0f pixels; cairo draws at "
                                         "most 32767 a side: lower --dpi or --size, or draw SVG "
                                         "or PDF",
                                         pw, ph));
        return false;
    }
    const uint64_t held = bpv_memory_held(), bytes = (uint64_t)(ceil(pw) * ceil(ph)) * 4;
    if (bpv_memory_fits(held, bytes)) return true;
    char what[96];
    snprintf(what, sizeof what, "drawing the PNG (%.0f x %.0f pixels, 4 bytes each)", pw, ph);
    bpv_error_set(err, bpv_memory_error(what, held + bytes, "lower --dpi or --size, or draw SVG "
                                                            "or PDF"));
    return false;
}

/* cairo dates each PDF (/CreationDate (D:YYYYMMDDHHMMSSZ)): the same figure
 * would differ from run to run. The date becomes SOURCE_DATE_EPOCH's (the
 * reproducible-builds convention) or, without it, 1970-01-01: digits
 * rewritten in place, so the file's cross-reference offsets stay right. */
static void pdf_fixed_date(char *pdf, size_t len) {
    static const char key[] = "/CreationDate (D:";
    const size_t klen = sizeof key - 1;
    time_t when = 0;
    const char *env = getenv("SOURCE_DATE_EPOCH");
    if (env && *env) {
        char *end;
        long long v = strtoll(env, &end, 10);
        if (*end == '\0' && v >= 0 && v < 253402300800LL) when = (time_t)v;
    }
    struct tm tm;
    char digits[16];
    if (!gmtime_r(&when, &tm) ||
        strftime(digits, sizeof digits, "%Y%m%d%H%M%S", &tm) != 14)
        return;
    for (size_t i = 0; i + klen + 14 <= len; i++) {
        if (memcmp(pdf + i, key, klen) != 0) continue;
        char *d = pdf + i + klen;
        bool ok = true;
        for (int k = 0; k < 14; k++) ok = ok && d[k] >= '0' && d[k] <= '9';
        if (ok) memcpy(d, digits, 14);
    }
}

static int render(Agraph_t *g, bpv_format fmt, char **out, size_t *out_len, bpv_error **err) {
    if (fmt == BPV_FORMAT_DOT) {
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (!mem)
            return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        int rc = agwrite(g, mem);
        if (fclose(mem) != 0 || rc != 0) {
            free(text);
            return gv_error(err, "cannot write DOT");
        }
        *out = text;
        *out_len = len;
        return BPV_OK;
    }
    static const char *const names[] = {[BPV_FORMAT_SVG] = "svg", [BPV_FORMAT_PNG] = "png",
                                        [BPV_FORMAT_PDF] = "pdf"};
    if (gvLayout(gvc, g, "dot") != 0 || agerrors() >= AGERR) {
        gvFreeLayout(gvc, g);
        return gv_error(err, "layout failed");
    }
    if (fmt == BPV_FORMAT_PNG && !raster_fits(g, err)) {
        gvFreeLayout(gvc, g);
        return BPV_ERR_MODEL;
    }
    char *data = NULL;
    unsigned int len = 0;
    int rc = gvRenderData(gvc, g, names[fmt], &data, &len);
    gvFreeLayout(gvc, g);
    if (rc != 0 || !data || agerrors() >= AGERR) {
        if (data) gvFreeRenderData(data);
        return gv_error(err, "rendering failed");
    }
    if (len == 0) { /* cairo gave up (a raster too small or too large): no file */
        gvFreeRenderData(data);
        return gv_error(err, "Graphviz rendered nothing (is the --size or --dpi too small or "
                             "too large?)");
    }
    /* Copy into malloc'd memory: the caller frees with free(), and
     * gvRenderData's buffer must go back through gvFreeRenderData. */
    *out = malloc(len + 1);
    if (!*out) {
        gvFreeRenderData(data);
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    }
    memcpy(*out, data, len);
    (*out)[len] = '\0';
    *out_len = len;
    gvFreeRenderData(data);
    if (fmt == BPV_FORMAT_PDF) pdf_fixed_date(*out, len);
    return BPV_OK;
}

/* ---- --fit W:H: a figure for a slide -------------------------------------------
 *
 * The text keeps its natural size: nothing is scaled down. Instead
 * 1. the graph is laid out in both directions (LR, TB; unless --rankdir
 *    was given);
 * 2. a drawing still too long along its flow is also laid out wrapped: its
 *    nodes go into 2-4 invisible clusters by where the unwrapped layout
 *    put them (fit_wrap), or an unrolled loop's steps by their number
 *    (fit_wrap_steps); the edges between clusters do not constrain the
 *    ranks, so each cluster starts again at the left (or top) and dot
 *    stacks them as rows (or columns);
 *    of all these the layout whose text comes out largest on a W:H slide
 *    wins (fit_off);
 * 3. the page is padded to exactly W:H (graph attribute pad), the drawing
 *    centred. A ratio=W/H layout was tried instead of padding: it spreads
 *    the nodes apart over the whole page, far worse to read.
 * Only graphs up to BIG_GRAPH nodes are laid out more than once. */

#define FIT_MAX_ROWS 4

typedef struct fit_box {
    double w, h; /* the page, pad included, in points */
    double bw, bh; /* the drawing (bb) */
    bool ok;
} fit_box;

/* A node's place along the flow, 0 (first rank) to 1 (last). */
typedef struct fit_pos {
    char *name;
    double t;
} fit_pos;

/* The width of the slide of shape T the page needs at its natural size:
 * the smaller, the larger the text once the slide is shown. (The page's
 * closeness to T alone favoured wrapped layouts whose text came out
 * smaller: inception at 4:3 filled 84% instead of 65% with 6.2 instead of
 * 7.3 px text.) */
static double fit_off(fit_box b, double T) { return fmax(b.w, b.h * T); }

/* Lays g out and measures it; with `pos`, also records each node's place
 * along the flow (malloc'd names, *npos of them). */
static fit_box fit_measure(fig *f, fit_pos **pos, size_t *npos) {
    fit_box b = {0, 0, 0, 0, false};
    Agraph_t *g = f->g;
    if (gvLayout(gvc, g, "dot") != 0 || agerrors() >= AGERR) {
        gvFreeLayout(gvc, g);
        return b;
    }
    boxf bb = GD_bb(g);
    const char *pad = agget(g, S("pad"));
    double px = 4, py = 4; /* Graphviz's default pad, in points */
    if (pad && *pad) {
        double x, y;
        int n = sscanf(pad, "%lf,%lf", &x, &y);
        if (n >= 1) px = py = x * 72;
        if (n == 2) py = y * 72;
    }
    b.bw = bb.UR.x - bb.LL.x;
    b.bh = bb.UR.y - bb.LL.y;
    b.w = b.bw + 2 * px;
    b.h = b.bh + 2 * py;
    b.ok = b.bw > 0 && b.bh > 0;
    if (pos && b.ok) {
        size_t n = (size_t)agnnodes(g), k = 0;
        *pos = calloc(n + 1, sizeof **pos);
        for (Agnode_t *nd = agfstnode(g); *pos && nd; nd = agnxtnode(g, nd)) {
            double t = f->o->rankdir_tb ? (bb.UR.y - ND_coord(nd).y) / b.bh
                                        : (ND_coord(nd).x - bb.LL.x) / b.bw;
            (*pos)[k].name = strdup(agnameof(nd));
            (*pos)[k++].t = t;
        }
        *npos = *pos ? k : 0;
    }
    gvFreeLayout(gvc, g);
    agsafeset(g, S("bb"), S(""), S("")); /* gvLayout's note, not for DOT output */
    return b;
}

/* The figure built again from scratch (another direction, or before
 * wrapping). False when Graphviz cannot open a graph. */
static bool fit_rebuild(fig *f, bpv_format fmt) {
    agclose(f->g);
    memset(f->gv, 0, ((size_t)f->s->nnodes + 1) * sizeof *f->gv);
    if (f->vary) {
        f->vary->k = f->vary_k0;
        f->vary->depth = 0;
    }
    f->g = graph_open();
    if (!f->g) return false;
    build(f);
    output_options(f, fmt);
    return true;
}

static double fit_t(const fit_pos *pos, size_t npos, Agnode_t *nd) {
    const char *name = agnameof(nd);
    for (size_t k = 0; k < npos; k++)
        if (strcmp(pos[k].name, name) == 0) return pos[k].t;
    return 0;
}

/* A leaf goes with the op it feeds first, a sink (the objective's arrow)
 * with its producer. */
static void fit_follow(Agraph_t *g, Agnode_t **nodes, int k, int *seg) {
    for (int i = 0; i < k; i++) {
        Agedge_t *e = agfstout(g, nodes[i]);
        Agedge_t *in = agfstin(g, nodes[i]);
        Agnode_t *other = !in && e ? aghead(e) : in && !e ? agtail(in) : NULL;
        for (int j = 0; other && j < k; j++)
            if (nodes[j] == other) seg[i] = seg[j];
    }
}

static int fit_index(Agnode_t **nodes, int k, Agnode_t *nd) {
    int j = 0;
    while (j < k && nodes[j] != nd) j++;
    return j;
}

/* Whether the cut between segment r - 1 and r is crossed by one pair of
 * nodes only (an edge and its backward twin), from r - 1 into r, and no
 * edge skips a segment or goes back. */
static bool fit_cut_ok(Agraph_t *g, Agnode_t **nodes, int k, const int *seg, int r) {
    Agnode_t *t = NULL, *h = NULL;
    for (int i = 0; i < k; i++)
        for (Agedge_t *e = agfstout(g, nodes[i]); e; e = agnxtout(g, e)) {
            int j = fit_index(nodes, k, aghead(e));
            if (j == k || seg[j] == seg[i]) continue;
            if (seg[j] != seg[i] + 1) return false;
            if (seg[i] != r - 1) continue;
            if (t && (t != nodes[i] || h != nodes[j])) return false;
            t = nodes[i];
            h = nodes[j];
        }
    return t != NULL; /* else a row of its own: nothing to wrap */
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Wraps the graph into `rows` invisible clusters (see above). Only a chain
 * is wrapped: each cut must cross one pair of nodes (an edge and its
 * backward twin), from one row into the next. A cut goes where the
 * unwrapped layout's place along the flow is r/rows, or the nearest place
 * within half a row where the graph is a chain (between a residual
 * block's join and the next split, say). Graphviz 2.42's dot frees
 * memory twice when laying out some graphs with more edges between such
 * clusters (inception.bp cut in two: a chain of three turned edges), so
 * anything else is left alone and false returned. */
static bool fit_wrap(fig *f, int rows, const fit_pos *pos, size_t npos) {
    bool done = false;
    Agraph_t *g = f->g;
    int n = agnnodes(g);
    int *seg = calloc((size_t)n + 1, sizeof *seg);
    double *tt = calloc((size_t)n + 1, sizeof *tt), *mid = calloc((size_t)n + 1, sizeof *mid);
    double *cut = calloc((size_t)rows, sizeof *cut);
    Agnode_t **nodes = calloc((size_t)n + 1, sizeof *nodes);
    Agraph_t **sub = calloc((size_t)rows, sizeof *sub);
    if (!seg || !tt || !mid || !cut || !nodes || !sub) goto out;
    int k = 0;
    for (Agnode_t *nd = agfstnode(g); nd && k < n; nd = agnxtnode(g, nd)) {
        tt[k] = fit_t(pos, npos, nd);
        nodes[k++] = nd;
    }
    /* candidate cuts: midway between neighbouring places along the flow */
    memcpy(mid, tt, (size_t)k * sizeof *mid);
    qsort(mid, (size_t)k, sizeof *mid, cmp_double);
    int nmid = 0;
    for (int i = 1; i < k; i++)
        if (mid[i] > mid[i - 1]) mid[nmid++] = (mid[i] + mid[i - 1]) / 2;
    for (int r = 1; r < rows; r++) {
        double want = (double)r / rows, best = HUGE_VAL;
        cut[r] = -1;
        for (int c = 0; c < nmid; c++) {
            double d = fabs(mid[c] - want);
            if (d >= 0.5 / rows || d >= best || (r > 1 && mid[c] <= cut[r - 1])) continue;
            for (int i = 0; i < k; i++) seg[i] = tt[i] >= mid[c] ? r : r - 1;
            fit_follow(g, nodes, k, seg);
            /* only this cut counts here: nodes far off are in neither row */
            bool ok = true;
            for (int i = 0; i < k && ok; i++)
                for (Agedge_t *e = agfstout(g, nodes[i]); e && ok; e = agnxtout(g, e)) {
                    int j = fit_index(nodes, k, aghead(e));
                    ok = j == k || seg[j] >= seg[i];
                }
            if (ok && fit_cut_ok(g, nodes, k, seg, r)) {
                best = d;
                cut[r] = mid[c];
            }
        }
        if (cut[r] < 0) goto out;
    }
    for (int i = 0; i < k; i++) {
        seg[i] = 0;
        for (int r = 1; r < rows; r++) seg[i] += tt[i] >= cut[r];
    }
    fit_follow(g, nodes, k, seg);
    for (int r = 1; r < rows; r++) /* one pair across each cut, nothing more */
        if (!fit_cut_ok(g, nodes, k, seg, r)) goto out;
    done = true;
    for (int r = 0; r < rows; r++) {
        char name[32];
        snprintf(name, sizeof name, "cluster_fit%d", r);
        if (!(sub[r] = agsubg(g, name, 1))) goto out;
        set_attr(sub[r], "peripheries", "0");
        set_attr(sub[r], "label", "");
    }
    for (int i = 0; i < k; i++) agsubnode(sub[seg[i]], nodes[i], 1);
    /* An edge from one row into the next would rank the next row after
     * this one; turned round (and drawn with its arrow turned back) it
     * ranks the next row's start before this row's end instead. Not
     * constraint=false: Graphviz 2.42's dot frees such an edge twice
     * across clusters. */
    for (int i = 0; i < k; i++) {
        Agedge_t *next;
        for (Agedge_t *e = agfstout(g, nodes[i]); e; e = next) {
            next = agnxtout(g, e);
            int j = 0;
            while (j < k && nodes[j] != aghead(e)) j++;
            const char *was = agnameof(e);
            if (j == k || seg[j] == seg[i] || !was || was[0] == 'w') continue;
            char name[64];
            snprintf(name, sizeof name, "w%s", was); /* turned: not again */
            Agedge_t *r = agedge(g, aghead(e), nodes[i], name, 1);
            if (!r) continue;
            agcopyattr(e, r);
            const char *dir = agget(e, S("dir"));
            agxset(r, f->e_dir, S(dir && strcmp(dir, "back") == 0 ? "forward" : "back"));
            agdelete(g, e);
        }
    }
out:
    free(seg);
    free(tt);
    free(mid);
    free(cut);
    free(nodes);
    free(sub);
    return done;
}

/* The snapshot node drawn as nd, or -1. */
static int node_of(const fig *f, Agnode_t *nd) {
    for (int i = 0; i < f->s->nnodes; i++)
        if (f->gv[i] == nd) return i;
    return -1;
}

/* --fit for unrolled loops: build() put each row of steps (f->step_rows)
 * in a cluster of its own, around the steps' clusters; the nodes outside
 * the loop (parameters, inputs, the loss) stay outside every row. The
 * edges from one row into the next are turned round, as fit_wrap() turns
 * them, so each row starts again at the left (or top). As there, only a
 * chain between rows is wrapped: every edge from row r - 1 into row r
 * must join the same two nodes (h[t-1] into step t: the value and its
 * gradient), or the graph is left as built and false returned. */
static bool fit_wrap_steps(fig *f) {
    Agraph_t *g = f->g;
    int n = agnnodes(g), k = 0;
    Agnode_t **nodes = calloc((size_t)n + 1, sizeof *nodes);
    int *row = calloc((size_t)n + 1, sizeof *row);
    Agnode_t **t = calloc((size_t)f->step_rows + 1, sizeof *t);
    Agnode_t **h = calloc((size_t)f->step_rows + 1, sizeof *h);
    bool ok = nodes && row && t && h;
    for (Agnode_t *nd = agfstnode(g); ok && nd && k < n; nd = agnxtnode(g, nd)) {
        int i = node_of(f, nd);
        row[k] = i >= 0 ? step_row(f, i) : -1;
        nodes[k++] = nd;
    }
    for (int i = 0; ok && i < k; i++)
        for (Agedge_t *e = agfstout(g, nodes[i]); ok && e; e = agnxtout(g, e)) {
            int j = fit_index(nodes, k, aghead(e));
            if (j == k || row[i] < 0 || row[j] < 0 || row[i] == row[j]) continue;
            int r = row[j];
            ok = r == row[i] + 1 && (!t[r] || (t[r] == nodes[i] && h[r] == nodes[j]));
            t[r] = nodes[i];
            h[r] = nodes[j];
        }
    for (int r = 1; ok && r < f->step_rows; r++) ok = t[r] != NULL;
    for (int i = 0; ok && i < k; i++) {
        Agedge_t *next;
        for (Agedge_t *e = agfstout(g, nodes[i]); e; e = next) {
            next = agnxtout(g, e);
            int j = fit_index(nodes, k, aghead(e));
            const char *was = agnameof(e);
            if (j == k || row[i] < 0 || row[j] < 0 || row[i] == row[j] || !was || was[0] == 'w')
                continue;
            char name[64];
            snprintf(name, sizeof name, "w%s", was);
            Agedge_t *turned = agedge(g, aghead(e), nodes[i], name, 1);
            if (!turned) continue;
            agcopyattr(e, turned);
            const char *dir = agget(e, S("dir"));
            agxset(turned, f->e_dir, S(dir && strcmp(dir, "back") == 0 ? "forward" : "back"));
            agdelete(g, e);
        }
    }
    free(nodes);
    free(row);
    free(t);
    free(h);
    return ok;
}

/* Pads the page of the laid-out box b to the shape T. */
static void fit_pad(fig *f, fit_box b, double T) {
    const bpv_figure_options *o = f->o;
    double bw = b.bw, bh = b.bh, px = (b.w - b.bw) / 2, py = (b.h - b.bh) / 2;
    if (o->size_w > 0 || o->size_h > 0) { /* --size scales the drawing, not the pad */
        double w = o->size_w > 0 ? o->size_w : o->size_h, h = o->size_h > 0 ? o->size_h : w;
        double z = fmin(w * 72 / bw, h * 72 / bh);
        bw *= z;
        bh *= z;
    }
    double W = bw + 2 * px, H = bh + 2 * py;
    if (W / H < T) px = (T * H - bw) / 2;
    else py = (W / T - bh) / 2;
    char v[64];
    snprintf(v, sizeof v, "%.4f,%.4f", px / 72, py / 72);
    agattr(f->g, AGRAPH, S("pad"), S(v));
}

/* --fit: direction, wrapping and pad (above). `alt` holds the options of
 * the other direction while f->o points at it. False when the graph could
 * not be built again (f->g is then NULL). */
static bool fit(fig *f, bpv_format fmt, bpv_figure_options *alt) {
    const double T = f->o->fit_w / f->o->fit_h;
    const bpv_figure_options *mine = f->o;
    if (agnnodes(f->g) > BIG_GRAPH) { /* one more layout is all it gets */
        fit_box b = fit_measure(f, NULL, NULL);
        if (b.ok) fit_pad(f, b, T);
        return true;
    }
    *alt = *mine;
    alt->rankdir_tb = !mine->rankdir_tb;
    /* every direction and row count; another row must earn its place */
    int best_dir = 0, best_rows = 1;
    bool best_steps = false; /* the rows are unrolled steps (fit_wrap_steps) */
    long long first_step = 0, nsteps = 0;
    bool loop = step_range(f, &first_step, &nsteps);
    fit_box best = {0, 0, 0, 0, false};
    double best_score = HUGE_VAL;
    fit_pos *pos[2] = {NULL, NULL};
    size_t npos[2] = {0, 0};
    bool ok = true;
    for (int dir = 0; ok && dir < (mine->fit_keep_rankdir ? 1 : 2); dir++) {
        f->o = dir ? alt : mine;
        if (dir && !(ok = fit_rebuild(f, fmt))) break;
        bool clustered = agfstsubg(f->g) != NULL;
        fit_box b = fit_measure(f, clustered ? NULL : &pos[dir], &npos[dir]);
        if (!b.ok) continue;
        if (fit_off(b, T) < best_score) {
            best_dir = dir;
            best_rows = 1;
            best = b;
            best_score = fit_off(b, T);
        }
        /* wrapping helps a drawing too long along its flow */
        double along = f->o->rankdir_tb ? T * b.h / b.w : b.w / b.h / T;
        for (int rows = 2; pos[dir] && along > 1.2 && rows <= FIT_MAX_ROWS; rows++) {
            if (!(ok = fit_rebuild(f, fmt))) break;
            if (!fit_wrap(f, rows, pos[dir], npos[dir])) continue;
            fit_box w = fit_measure(f, NULL, NULL);
            double score = fit_off(w, T) * (1 + 0.03 * (rows - 1));
            if (w.ok && score < best_score) {
                best_dir = dir;
                best_rows = rows;
                best_steps = false;
                best = w;
                best_score = score;
            }
        }
        /* an unrolled loop: whole steps to a row (its steps often lie in a
         * staircase, as long across the flow as along it) */
        for (int rows = 2; loop && rows <= FIT_MAX_ROWS && rows <= nsteps; rows++) {
            f->step_rows = rows;
            ok = fit_rebuild(f, fmt);
            bool wrapped = ok && fit_wrap_steps(f); 
            f->step_rows = 0;
            if (!wrapped) continue;
            fit_box w = fit_measure(f, NULL, NULL);
            double score = fit_off(w, T) * (1 + 0.03 * (rows - 1));
            if (w.ok && score < best_score) {
                best_dir = dir;
                best_rows = rows;
                best_steps = true;
                best = w;
                best_score = score;
            }
        }
        if (!ok) break;
    }
    if (ok && best.ok) { /* build the winner */
        f->o = best_dir ? alt : mine;
        f->step_rows = best_steps ? best_rows : 0;
        if ((ok = fit_rebuild(f, fmt))) {
            if (best_steps) fit_wrap_steps(f);
            else if (best_rows > 1) fit_wrap(f, best_rows, pos[best_dir], npos[best_dir]);
            fit_pad(f, best, T);
        }
    }
    for (int d = 0; d < 2; d++) {
        for (size_t k = 0; k < npos[d]; k++) free(pos[d][k].name);
        free(pos[d]);
    }
    return ok;
}

void bpv_figure_options_init(bpv_figure_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->rankdir_tb = 0;
    o->theme = BPV_THEME_TUTORIAL;
    o->labels = BPV_LABELS_VALUES;
    o->precision = 4;
    o->plain_names = 0;
    o->focus_depth = 2;
}

/* A font family goes into DOT, SVG attributes and the player's page as
 * it is (Graphviz writes it unescaped into SVG's font-family="..."): a
 * name with markup or quotes would inject attributes or break the XML, so
 * only plain text is taken. UTF-8 letters pass (bytes from 0x80). */
static bool font_name_safe(const char *f) {
    if (!*f || strlen(f) > 200) return false;
    for (const unsigned char *p = (const unsigned char *)f; *p; p++)
        if (*p < 0x20 || *p == 0x7f || strchr("\"'<>&\\", *p)) return false;
    return true;
}

int bpv_export_figure(const bpv_snapshot *snap, bpv_format fmt, const bpv_figure_options *opt,
                      char **out, size_t *out_len, bpv_error **err) {
    *out = NULL;
    *out_len = 0;
    if (fmt != BPV_FORMAT_DOT && fmt != BPV_FORMAT_SVG && fmt != BPV_FORMAT_PNG &&
        fmt != BPV_FORMAT_PDF)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "a figure is DOT, SVG, PNG or PDF"));
    bpv_figure_options defaults;
    if (!opt) {
        bpv_figure_options_init(&defaults);
        opt = &defaults;
    }
    if (opt->font && !font_name_safe(opt->font))
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                "--font: a family name is text without quotes, "
                                                "'<', '>', '&', '\\' or control characters, "
                                                "like \"Latin Modern Roman\""));
    if (!context())
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot start Graphviz"));
    agreseterrors();
    gv_log.len = 0;

    int n = snap->nnodes;
    bpv_snapshot_locals(snap);
    fig f = {.s = snap, .o = opt, .vary = cur_vary};
    f.t = &themes[(unsigned)opt->theme < sizeof themes / sizeof themes[0] ? opt->theme : 0];
    f.gv = calloc((size_t)n + 1, sizeof *f.gv);
    f.uses = calloc((size_t)n + 1, sizeof *f.uses);
    f.fold = calloc((size_t)n + 1, sizeof *f.fold);
    f.folded = calloc((size_t)n + 1, sizeof *f.folded);
    f.disp = calloc((size_t)n + 1, sizeof *f.disp);
    f.prec = calloc((size_t)n + 1, sizeof *f.prec);
    f.named = calloc((size_t)n + 1, sizeof *f.named);
    int rc = BPV_OK;
    if (!f.gv || !f.uses || !f.fold || !f.folded || !f.disp || !f.prec || !f.named) {
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        goto done;
    }
    fold_literals(&f);
    name_nodes(&f);
    if (!opt->exact_numbers) f.nz = bpv_noise_new(snap); /* NULL: numbers as stored */
    if (opt->focus) {
        if (!(f.keep = calloc((size_t)n + 1, sizeof *f.keep))) {
            rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
            goto done;
        }
        rc = bpv_focus_select(snap, opt->focus, opt->focus_depth, f.keep, err);
        if (rc != BPV_OK) goto done;
    }
    long drawn = 0, limit = opt->max_nodes ? opt->max_nodes : BPV_FIGURE_MAX_NODES;
    for (int i = 0; i < n; i++) drawn += !f.folded[i] && (!f.keep || f.keep[i]);
    if (limit > 0 && drawn > limit) {
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                              "the graph has %ld nodes, too many for a readable "
                                              "figure (the limit is %ld): draw one part with "
                                              "--focus NAME [--depth K], or raise the limit "
                                              "with --max-nodes N",
                                              drawn, limit));
        goto done;
    }
    f.g = graph_open();
    if (!f.g) {
        rc = gv_error(err, "cannot create the graph");
        goto done;
    }
    f.vary_k0 = f.vary ? f.vary->k : 0;
    build(&f);
    output_options(&f, fmt);
    bpv_figure_options refit; /* --fit: the other direction's options */
    if (opt->fit_w > 0 && opt->fit_h > 0 && agerrors() < AGERR &&
        !(f.vary && f.vary->mode == VARY_COLLECT) && !fit(&f, fmt, &refit)) {
        rc = gv_error(err, "cannot create the graph");
        goto done;
    }
    if (agerrors() >= AGERR) rc = gv_error(err, "cannot build the graph");
    else if (!f.vary || f.vary->mode != VARY_COLLECT) rc = render(f.g, fmt, out, out_len, err);
    if (rc == BPV_OK && (fmt == BPV_FORMAT_DOT || fmt == BPV_FORMAT_SVG))
        plain_font_names(*out, out_len);
    agclose(f.g);
    if (rc == BPV_OK && (rc = gv_messages(err)) != BPV_OK) {
        free(*out);
        *out = NULL;
        *out_len = 0;
    }

done:
    for (int i = 0; f.disp && i < n; i++) free(f.disp[i]);
    free(f.disp);
    free(f.L);
    free(f.gv);
    free(f.uses);
    free(f.fold);
    free(f.folded);
    free(f.prec);
    free(f.named);
    free(f.keep);
    bpv_noise_free(f.nz);
    return rc;
}

/* ---- one layout for many steps (the HTML player) ----------------------------- */

/* Rough advance widths in DejaVu Sans (em), to pick the widest of a text's
 * values: Graphviz then measures that one exactly. */
static double text_width(const char *s) {
    double w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        if (c >= '0' && c <= '9') w += 0.636;
        else if (c == '.' || c == ',' || c == ' ') w += 0.318;
        else if (c == '(' || c == ')') w += 0.39;
        else if (c < 0x80) w += 0.62;
        else if (c >= 0xc0) {
            /* superscripts (⁰-⁹, ⁻, ¹²³) are narrow; − × · and the rest wide */
            bool sup = (c == 0xe2 && p[1] == 0x81) || (c == 0xc2 && (p[1] == 0xb9 || p[1] == 0xb2 || p[1] == 0xb3));
            bool dot = c == 0xc2 && p[1] == 0xb7;
            w += sup ? 0.4 : dot ? 0.318 : 0.838;
        }
    }
    return w;
}

static void free_texts(char **t, size_t n) {
    for (size_t i = 0; t && i < n; i++) free(t[i]);
    free(t);
}

int bpv_export_figure_steps(const bpv_snapshot *const *snaps, size_t n,
                            const bpv_figure_options *opt, bpv_fig_steps *out, bpv_error **err) {
    memset(out, 0, sizeof *out);
    if (n == 0) return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "no step to draw"));
    vary v = {.mode = VARY_COLLECT};
    char **all = NULL;
    size_t nvary = 0;
    int rc = BPV_OK;
    for (size_t i = 0; i < n && rc == BPV_OK; i++) {
        char *unused = NULL;
        size_t unused_len = 0;
        v.k = 0;
        v.depth = 0;
        cur_vary = &v;
        rc = bpv_export_figure(snaps[i], BPV_FORMAT_SVG, opt, &unused, &unused_len, err);
        cur_vary = NULL;
        free(unused);
        if (rc == BPV_OK && !v.overflow && i == 0) {
            nvary = v.k;
            all = (nvary && n > SIZE_MAX / sizeof *all / nvary) ? NULL
                                                                  : calloc(n * nvary + 1, sizeof *all);
            if (!all) v.overflow = true;
        }
        if (rc == BPV_OK && v.overflow) {
            rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        } else if (rc == BPV_OK && v.k != nvary) {
            rc = bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                  "the figure of step %ld is laid out unlike "
                                                  "that of step %ld, so they cannot share one "
                                                  "page; write one figure per step instead "
                                                  "(-o 'step%%d.svg')",
                                                  snaps[i]->step, snaps[0]->step));
        }
        if (rc == BPV_OK) memcpy(all + i * nvary, v.text, nvary * sizeof *all);
        else for (size_t k = 0; k < v.k; k++) free(v.text[k]);
    }
    free(v.text);
    const char **widest = NULL;
    if (rc == BPV_OK && !(widest = calloc(nvary + 1, sizeof *widest)))
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    for (size_t k = 0; rc == BPV_OK && k < nvary; k++) {
        double best = -1;
        bool same = true;
        for (size_t i = 0; i < n; i++) {
            const char *t = all[i * nvary + k];
            same = same && strcmp(t, all[k]) == 0;
            double w = text_width(t);
            if (w > best) {
                best = w;
                widest[k] = t;
            }
        }
        if (same) widest[k] = NULL; /* a fixed text stays as it is */
    }
    if (rc == BPV_OK) {
        vary t = {.mode = VARY_TEMPLATE, .widest = widest, .n = nvary};
        cur_vary = &t;
        rc = bpv_export_figure(snaps[0], BPV_FORMAT_SVG, opt, &out->svg, &out->svg_len, err);
        cur_vary = NULL;
        if (rc == BPV_OK && t.k != nvary)
            rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "the figure changed while "
                                                                   "it was laid out"));
    }
    free(widest);
    if (rc != BPV_OK) {
        free(out->svg);
        free_texts(all, all ? n * nvary : 0);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->text = all;
    out->nvary = nvary;
    out->nsteps = n;
    return BPV_OK;
}

void bpv_fig_steps_free(bpv_fig_steps *fs) {
    if (!fs) return;
    free(fs->svg);
    free_texts(fs->text, fs->nsteps * fs->nvary);
    memset(fs, 0, sizeof *fs);
}
