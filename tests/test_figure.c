/* The figure exporter: text helpers, then figures of hand-built snapshots
 * and of real models read back with cgraph (agmemread) and checked for the
 * right nodes, edges, values, colors and styles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <graphviz/cgraph.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "figure.h"
#include "heatmap.h"
#include "model.h"
#include "testutil.h"

/* ---- text helpers --------------------------------------------------------- */

static void check_name(const char *name, bool plain, const char *want) {
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_fig_name(&b, name, plain);
    assert_string_equal(b.data, want);
    bpv_buf_free(&b);
}

static void check_num(double v, int precision, const char *want) {
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_fig_number(&b, v, precision);
    assert_string_equal(b.data, want);
    bpv_buf_free(&b);
}

static void check_html(const char *s, const char *want) {
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_buf_puts(&b, "");
    bpv_fig_html(&b, s);
    assert_string_equal(b.data, want);
    bpv_buf_free(&b);
}

static void test_names(void **state) {
    (void)state;
    check_name("y_hat", false, "ŷ");
    check_name("y_hat", true, "y_hat");
    check_name("x_hat", false, "x\xcc\x82"); /* no precomposed x̂: combining mark */
    check_name("omega", false, "ω");
    check_name("Sigma", false, "Σ");
    check_name("w1", false, "w₁");
    check_name("w_1", false, "w₁");
    check_name("W12", false, "W₁₂");
    check_name("y_hat1", false, "ŷ₁");
    check_name("y1_hat", false, "ŷ₁");
    check_name("theta2", false, "θ₂");
    check_name("x_bar", false, "x\xcc\x84");
    check_name("loss", false, "loss");
    check_name("loss2", false, "loss₂");
    check_name("out_hat", false, "out_hat"); /* an accent over a word: as written */
    check_name("learning_rate", false, "learning_rate");
    check_name("_", false, "_");
    check_name("x_", false, "x_");
    check_name("etabeta", false, "etabeta");
}

static void test_numbers(void **state) {
    (void)state;
    check_num(1, 4, "1");
    check_num(-2, 4, "−2");
    check_num((double)1.02f, 4, "1.02"); /* float32 1.0199999809... */
    check_num(0.0034, 4, "0.0034");
    check_num(0.003364123, 4, "0.003364");
    check_num(5.525, 4, "5.525");
    check_num(9.99996, 4, "10");
    check_num(12345.6, 4, "12346");
    check_num(7.842553895898163e-05, 4, "7.843×10⁻⁵");
    check_num(-1.5e7, 3, "−1.5×10⁷");
    check_num(-0.0, 4, "0");
    check_num(0.0 / 0.0, 4, "NaN");
    check_num(1.0 / 0.0, 4, "∞");
    check_num(-1.0 / 0.0, 4, "−∞");
    check_num(0.1, 17, "0.10000000000000001");
    check_num(2.0 / 3.0, 0, "0.7"); /* precision clamped to 1 */
}

static void test_html(void **state) {
    (void)state;
    check_html("a<b>&\"c'", "a&lt;b&gt;&amp;&quot;c&#39;");
    check_html("∂loss/∂ŷ = −2", "∂loss/∂ŷ = −2");
    check_html("x\x01y\n", "x y ");
    check_html("bad\xff\xc3(", "bad\xef\xbf\xbd\xef\xbf\xbd(");
    check_html("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* a surrogate */
    check_html("\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* overlong */

    bpv_buf b;
    bpv_buf_init(&b);
    bpv_fig_formula(&b, "2*a - sigma_hat", false);
    assert_string_equal(b.data, "2·a − σ\xcc\x82");
    bpv_buf_free(&b);
}

/* ---- hand-built snapshots ---------------------------------------------- */

/* A snapshot whose parts are all separately allocated (tests only). */
typedef struct hsnap {
    bpv_snapshot s;
    bpv_snap_node nodes[16];
    int ins[16][2];
    bpv_snap_edge edges[16];
    bpv_snap_param params[4];
    double pool[512];
    size_t used;
    int64_t sample;
} hsnap;

static double *vals(hsnap *h, int n, const double *v) {
    double *p = &h->pool[h->used];
    h->used += (size_t)n;
    assert_true(h->used <= sizeof h->pool / sizeof h->pool[0]);
    memcpy(p, v, (size_t)n * sizeof *p);
    return p;
}

static double *val1(hsnap *h, double v) { return vals(h, 1, &v); }

static bpv_shape shape(int rank, int64_t d0, int64_t d1) {
    bpv_shape s = {.rank = rank, .dim = {d0, d1}};
    return s;
}

static int node(hsnap *h, const char *name, bpv_node_kind kind, bpv_op op, bpv_shape sh,
                const double *v, const double *g, int a, int b) {
    int i = h->s.nnodes++;
    bpv_snap_node *n = &h->nodes[i];
    n->name = name;
    n->kind = kind;
    n->op = op;
    n->shape = sh;
    n->numel = bpv_shape_numel(&sh);
    n->value = vals(h, (int)n->numel, v);
    n->grad = g ? vals(h, (int)n->numel, g) : NULL;
    n->nin = a < 0 ? 0 : b < 0 ? 1 : 2;
    h->ins[i][0] = a;
    h->ins[i][1] = b;
    n->in = h->ins[i];
    return i;
}

static void edge(hsnap *h, int from, int to, int slot, const double *local,
                 const double *chained) {
    bpv_snap_edge *e = &h->edges[h->s.nedges++];
    e->from = from;
    e->to = to;
    e->slot = slot;
    e->formula = chained ? bpv_ops[h->nodes[to].op].dlocal[slot] : NULL;
    e->nlocal = local ? h->nodes[to].numel : 0;
    e->local = local ? vals(h, (int)h->nodes[to].numel, local) : NULL;
    e->chained = chained ? vals(h, (int)h->nodes[from].numel, chained) : NULL;
}

static void init(hsnap *h) {
    memset(h, 0, sizeof *h);
    h->s.model = "test.bp";
    h->s.step = 1;
    h->s.samples = &h->sample;
    h->s.nsamples = 1;
    h->s.nodes = h->nodes;
    h->s.edges = h->edges;
    h->s.params = h->params;
}

/* linear.bp at step 1: x=1, w=1, ŷ=x·w=1, y=2, r=ŷ−y=−1, loss=r^2=1. */
static void linear_step1(hsnap *h) {
    init(h);
    bpv_shape sc = shape(0, 0, 0);
    double one = 1, two = 2, m1 = -1, m2 = -2;
    int x = node(h, "x", BPV_NODE_DATA, BPV_OP_NONE, sc, &one, NULL, -1, -1);
    int w = node(h, "w", BPV_NODE_PARAM, BPV_OP_NONE, sc, &one, &m2, -1, -1);
    int yh = node(h, "y_hat", BPV_NODE_OP, BPV_OP_MUL, sc, &one, &m2, x, w);
    int y = node(h, "y", BPV_NODE_DATA, BPV_OP_NONE, sc, &two, NULL, -1, -1);
    int r = node(h, "r", BPV_NODE_OP, BPV_OP_SUB, sc, &m1, &m2, yh, y);
    int k = node(h, NULL, BPV_NODE_CONST, BPV_OP_NONE, sc, &two, NULL, -1, -1);
    h->nodes[k].literal = true;
    int loss = node(h, "loss", BPV_NODE_OP, BPV_OP_POW, sc, &one, &one, r, k);
    edge(h, x, yh, 0, &one, NULL);
    edge(h, w, yh, 1, &one, &m2);
    edge(h, yh, r, 0, &one, &m2);
    edge(h, y, r, 1, &m1, NULL);
    edge(h, r, loss, 0, &m2, &m2);
    edge(h, k, loss, 1, NULL, NULL);
    h->s.objective = loss;
    h->s.loss = 1;
    h->params[0] = (bpv_snap_param){
        .name = "w", .node = w, .shape = sc, .numel = 1, .after = val1(h, (double)1.02f)};
    h->s.nparams = 1;
}

static char *export(const bpv_snapshot *s, bpv_format fmt, const bpv_figure_options *o,
                    size_t *len) {
    char *buf[1] = {NULL}; /* an array: GCC 12 mistakes a returned &local for dangling */
    size_t n = 0;
    bpv_error *err = NULL;
    int rc = bpv_export_figure(s, fmt, o, buf, &n, &err);
    if (rc != BPV_OK) fail_msg("export failed: %s", err ? err->message : "?");
    assert_non_null(buf[0]);
    if (len) *len = n;
    return buf[0];
}

static Agraph_t *read_dot(const char *dot) {
    Agraph_t *g = agmemread(dot);
    assert_non_null(g);
    return g;
}

static const char *attr(void *obj, const char *name) {
    const char *v = agget(obj, (char *)name);
    return v ? v : "";
}

static Agedge_t *find_edge(Agraph_t *g, const char *t, const char *h, const char *key) {
    Agnode_t *tn = agnode(g, (char *)t, 0), *hn = agnode(g, (char *)h, 0);
    assert_non_null(tn);
    assert_non_null(hn);
    Agedge_t *e = agedge(g, tn, hn, (char *)key, 0);
    if (!e) fail_msg("no edge %s -> %s [key=%s]", t, h, key);
    return e;
}

static void assert_contains(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("'%s' not in '%s'", needle, hay);
}

/* A forward edge: solid red, labelled with `text`. */
static void check_forward(Agraph_t *g, const char *t, const char *h, const char *key,
                          const char *text) {
    Agedge_t *e = find_edge(g, t, h, key);
    assert_string_equal(attr(e, "color"), "red");
    assert_string_equal(attr(e, "fontcolor"), "red");
    assert_string_equal(attr(e, "style"), "solid");
    assert_true(aghtmlstr(agget(e, "label")));
    assert_contains(attr(e, "label"), text);
}

/* A backward edge: dashed orange, drawn against the forward direction. */
static void check_backward(Agraph_t *g, const char *t, const char *h, const char *key,
                           const char *text) {
    Agedge_t *e = find_edge(g, t, h, key);
    assert_string_equal(attr(e, "color"), "orange");
    assert_string_equal(attr(e, "style"), "dashed");
    assert_string_equal(attr(e, "dir"), "back");
    assert_contains(attr(e, "label"), text);
}

static void test_linear_dot(void **state) {
    (void)state;
    hsnap h;
    linear_step1(&h);
    char *dot = export(&h.s, BPV_FORMAT_DOT, NULL, NULL);
    Agraph_t *g = read_dot(dot);

    /* the literal 2 is folded into the power: no box of its own */
    assert_null(agnode(g, "n5", 0));
    assert_int_equal(agnnodes(g), 7); /* 6 nodes and the loss arrow's end */
    assert_string_equal(attr(agnode(g, "n6", 0), "shape"), "circle");
    assert_contains(attr(agnode(g, "n6", 0), "label"), "^2");
    assert_contains(attr(agnode(g, "n2", 0), "label"), "×");
    assert_contains(attr(agnode(g, "n4", 0), "label"), "−");
    assert_contains(attr(agnode(g, "n0", 0), "label"), "x = 1");
    assert_string_equal(attr(agnode(g, "n0", 0), "shape"), "box");
    assert_string_equal(attr(agnode(g, "n1", 0), "peripheries"), "2");
    assert_contains(attr(agnode(g, "n1", 0), "label"), "w = 1");
    assert_contains(attr(agnode(g, "n1", 0), "label"), "∂loss/∂w = −2");
    assert_contains(attr(agnode(g, "n1", 0), "label"), "after update: 1.02");

    check_forward(g, "n0", "n2", "f0", "x = 1");
    check_forward(g, "n1", "n2", "f1", "w = 1");
    check_forward(g, "n2", "n4", "f2", "ŷ = 1");
    check_forward(g, "n3", "n4", "f3", "y = 2");
    check_forward(g, "n4", "n6", "f4", "r = −1");
    check_forward(g, "n6", "out6", "f_out6", "loss = 1");
    /* a param with one edge out: its gradient once, in its box; the edge
     * only names it */
    check_backward(g, "n1", "n2", "b1", ">∂loss/∂w<");
    assert_null(strstr(attr(find_edge(g, "n1", "n2", "b1"), "label"), "−2"));
    check_backward(g, "n2", "n4", "b2", "∂loss/∂ŷ = −2");
    check_backward(g, "n4", "n6", "b4", "∂loss/∂r = −2");
    check_backward(g, "n6", "out6", "b_out6", "∂loss/∂loss = 1");
    /* data takes no gradient: no backward edge */
    assert_null(agedge(g, agnode(g, "n0", 0), agnode(g, "n2", 0), "b0", 0));
    assert_null(agedge(g, agnode(g, "n3", 0), agnode(g, "n4", 0), "b3", 0));
    assert_int_equal(agnedges(g), 6 + 4); /* forward with the loss arrow, backward */

    assert_string_equal(attr(g, "rankdir"), "LR");
    assert_contains(attr(g, "label"), "step 1 · epoch 0 · sample 0 (x = 1, y = 2) · loss = 1");
    agclose(g);

    /* deterministic: the same bytes twice */
    char *again = export(&h.s, BPV_FORMAT_DOT, NULL, NULL);
    assert_string_equal(dot, again);
    free(again);
    free(dot);
}

static void test_linear_full_labels(void **state) {
    (void)state;
    hsnap h;
    linear_step1(&h);
    bpv_figure_options o;
    bpv_figure_options_init(&o);
    o.labels = BPV_LABELS_FULL;
    o.rankdir_tb = 1;
    char *dot = export(&h.s, BPV_FORMAT_DOT, &o, NULL);
    Agraph_t *g = read_dot(dot);
    check_backward(g, "n1", "n2", "b1", "∂loss/∂w = ∂loss/∂ŷ · ∂ŷ/∂w");
    check_backward(g, "n1", "n2", "b1", "= −2 · x = −2 · 1 = −2");
    check_backward(g, "n2", "n4", "b2", "∂loss/∂ŷ = ∂loss/∂r · ∂r/∂ŷ");
    check_backward(g, "n4", "n6", "b4", "∂loss/∂r = 2·r = −2");
    assert_string_equal(attr(g, "rankdir"), "TB");
    agclose(g);
    free(dot);
}

static void test_themes_and_names(void **state) {
    (void)state;
    hsnap h;
    linear_step1(&h);
    bpv_figure_options o;
    bpv_figure_options_init(&o);
    o.theme = BPV_THEME_PRINT;
    o.plain_names = 1;
    char *dot = export(&h.s, BPV_FORMAT_DOT, &o, NULL);
    assert_null(strstr(dot, "red"));
    assert_null(strstr(dot, "orange"));
    assert_non_null(strstr(dot, "y_hat = 1"));
    assert_non_null(strstr(dot, "style=dashed"));
    free(dot);

    o.theme = BPV_THEME_COLORBLIND;
    dot = export(&h.s, BPV_FORMAT_DOT, &o, NULL);
    assert_null(strstr(dot, "=red"));
    assert_non_null(strstr(dot, "#0072B2"));
    assert_non_null(strstr(dot, "#E69F00"));
    free(dot);
}

static void test_linear_svg_png_pdf(void **state) {
    (void)state;
    hsnap h;
    linear_step1(&h);
    size_t len;
    char *svg = export(&h.s, BPV_FORMAT_SVG, NULL, &len);
    assert_int_equal(strlen(svg), len);
    assert_non_null(strstr(svg, "<svg"));
    /* well-formed enough: balanced text and group elements, one root */
    int open_text = 0, close_text = 0, open_g = 0, close_g = 0;
    for (const char *p = svg; (p = strstr(p, "<text")); p++) open_text++;
    for (const char *p = svg; (p = strstr(p, "</text>")); p++) close_text++;
    for (const char *p = svg; (p = strstr(p, "<g ")); p++) open_g++;
    for (const char *p = svg; (p = strstr(p, "</g>")); p++) close_g++;
    assert_int_equal(open_text, close_text);
    assert_int_equal(open_g, close_g);
    const char *end = strstr(svg, "</svg>");
    assert_non_null(end);
    assert_null(strstr(end + 6, "<"));
    const char *want[] = {"x = 1", "w = 1", "ŷ = 1", "r = −1", "loss = 1", "∂loss/∂w = −2",
                          "∂loss/∂ŷ = −2", "∂loss/∂r = −2", "∂loss/∂loss = 1", "after update: 1.02",
                          "font-family=\"DejaVu Sans\""};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) assert_contains(svg, want[i]);
    free(svg);

    char *png = export(&h.s, BPV_FORMAT_PNG, NULL, &len);
    assert_true(len > 1000);
    assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
    free(png);
    char *pdf = export(&h.s, BPV_FORMAT_PDF, NULL, &len);
    assert_true(len > 1000);
    assert_memory_equal(pdf, "%PDF", 4);
    free(pdf);
}

/* Names with markup and bad bytes (the lexer would refuse them; the
 * exporter must not trust it) still give a clean figure. */
static void test_hostile_names(void **state) {
    (void)state;
    hsnap h;
    linear_step1(&h);
    h.nodes[0].name = "<b>&\"x\"</b>";
    h.nodes[1].name = "w\xff\\N";
    size_t len;
    char *svg = export(&h.s, BPV_FORMAT_SVG, NULL, &len);
    assert_non_null(strstr(svg, "&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt; = 1"));
    assert_null(strstr(svg, "\xff"));
    free(svg);
    char *dot = export(&h.s, BPV_FORMAT_DOT, NULL, NULL);
    Agraph_t *g = read_dot(dot);
    assert_contains(attr(agnode(g, "n1", 0), "label"), "w\xef\xbf\xbd\\N = 1");
    agclose(g);
    free(dot);
}

static void test_bad_format(void **state) {
    (void)state;
    hsnap h;
    linear_step1(&h);
    char *out = (char *)1;
    size_t len = 1;
    bpv_error *err = NULL;
    assert_int_equal(bpv_export_figure(&h.s, BPV_FORMAT_JSON, NULL, &out, &len, &err),
                     BPV_ERR_MODEL);
    assert_null(out);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "DOT, SVG, PNG or PDF"));
    bpv_error_free(err);
}

/* The tensor step of test_tensors and test_heatmap: z = W @ x (2x2 @ 2),
 * loss = sum(z) + sum(B) with B an 8x8 tensor; the numbers live in static
 * arrays the snapshot points into. Returns W's node. */
static int tensor_step(hsnap *hp) {
#define h (*hp)
    static double W[] = {0.5, -0.25, 1, 2}, x[] = {1, 2}, z[] = {0, 5}, g1[] = {1, 1};
    static double gW[] = {1, 2, 1, 2}, one = 1, big[64], gbig[64];
    for (int i = 0; i < 64; i++) big[i] = i - 10, gbig[i] = 0.5;
    int Wn = node(&h, "W", BPV_NODE_PARAM, BPV_OP_NONE, shape(2, 2, 2), W, gW, -1, -1);
    int xn = node(&h, "x", BPV_NODE_DATA, BPV_OP_NONE, shape(1, 2, 0), x, NULL, -1, -1);
    int zn = node(&h, "z", BPV_NODE_OP, BPV_OP_MATMUL, shape(1, 2, 0), z, g1, Wn, xn);
    int Bn = node(&h, "B", BPV_NODE_PARAM, BPV_OP_NONE, shape(2, 8, 8), big, gbig, -1, -1);
    int sn = node(&h, NULL, BPV_NODE_OP, BPV_OP_SUM, shape(0, 0, 0), &one, &one, zn, -1);
    int tn = node(&h, NULL, BPV_NODE_OP, BPV_OP_SUM, shape(0, 0, 0), &one, &one, Bn, -1);
    int loss = node(&h, "loss", BPV_NODE_OP, BPV_OP_ADD, shape(0, 0, 0), &one, &one, sn, tn);
    edge(&h, Wn, zn, 0, NULL, gW);
    edge(&h, xn, zn, 1, NULL, NULL);
    edge(&h, zn, sn, 0, NULL, g1);
    edge(&h, Bn, tn, 0, NULL, gbig);
    edge(&h, sn, loss, 0, &one, &one);
    edge(&h, tn, loss, 1, &one, &one);
    h.s.objective = loss;
    h.s.loss = 1;
    return Wn;
#undef h
}

/* A tensor step: z = W @ x (2x2 @ 2), loss = sum(z), plus a large tensor. */
static void test_tensors(void **state) {
    (void)state;
    hsnap h;
    init(&h);
    double W[] = {0.5, -0.25, 1, 2};
    int Wn = tensor_step(&h);
    h.params[0] = (bpv_snap_param){
        .name = "W", .node = Wn, .shape = shape(2, 2, 2), .numel = 4, .after = vals(&h, 4, W)};
    h.s.nparams = 1;

    bpv_figure_options vo;
    bpv_figure_options_init(&vo);
    vo.tensors = BPV_TENSORS_VALUES; /* large tensors as statistics */
    char *dot = export(&h.s, BPV_FORMAT_DOT, &vo, NULL);
    Agraph_t *g = read_dot(dot);
    const char *wl = attr(agnode(g, "n0", 0), "label");
    assert_contains(wl, "<TABLE");
    assert_contains(wl, "SIDES=\"LTB\""); /* the matrix's left bracket */
    assert_contains(wl, "−0.25");
    assert_contains(wl, "∂loss/∂W =");
    const char *bl = attr(agnode(g, "n3", 0), "label");
    assert_contains(bl, "8×8: min −10, mean 21.5, max 53");
    assert_null(strstr(bl, "SIDES"));
    assert_contains(attr(agnode(g, "n2", 0), "label"), "@");
    /* an unnamed node is called by its expression */
    check_backward(g, "n2", "n4", "b2", "∂loss/∂z =");
    check_backward(g, "n4", "n6", "b4", "∂loss/∂sum(z) = 1");
    check_forward(g, "n2", "n4", "f2", "z =");
    agclose(g);
    free(dot);

    size_t len;
    char *svg = export(&h.s, BPV_FORMAT_SVG, NULL, &len);
    assert_contains(svg, "−0.25");
    free(svg);
}

static size_t count(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* --tensors: the 8x8 tensor of test_tensors as a heatmap (automatically,
 * and every tensor with heatmap), read back through cgraph; the legend
 * and the tutorial's symbols. */
static void test_heatmap(void **state) {
    (void)state;
    hsnap h;
    init(&h);
    tensor_step(&h);

    /* the colours: both ends and the middle of each scale */
    char c[8];
    bpv_heat_color(BPV_HEAT_VALUE, -3, 3, c);
    assert_string_equal(c, "#053061");
    bpv_heat_color(BPV_HEAT_VALUE, 0, 3, c);
    assert_string_equal(c, "#f7f7f7");
    bpv_heat_color(BPV_HEAT_VALUE, 7, 3, c); /* clamped */
    assert_string_equal(c, "#67001f");
    bpv_heat_color(BPV_HEAT_GRAD, 1, 1, c);
    assert_string_equal(c, "#7f3b08");
    bpv_heat_color(BPV_HEAT_GRAD, -1, 1, c);
    assert_string_equal(c, "#2d004b");

    /* 91 levels, 0 in the middle; NaN grey */
    assert_int_equal(bpv_heat_level(-3, 3), 0);
    assert_int_equal(bpv_heat_level(0, 3), 45);
    assert_int_equal(bpv_heat_level(3, 3), 90);
    assert_int_equal(bpv_heat_level(1, 3), 60);
    assert_int_equal(bpv_heat_level(-INFINITY, 3), 0);
    assert_int_equal(bpv_heat_level(NAN, 3), BPV_HEAT_NAN);
    bpv_heat_level_color(BPV_HEAT_VALUE, BPV_HEAT_NAN, c);
    assert_string_equal(c, "#999999");
    bpv_heat_color(BPV_HEAT_VALUE, 1, 3, c);
    char c2[8];
    bpv_heat_level_color(BPV_HEAT_VALUE, 60, c2);
    assert_string_equal(c, c2);
    /* the player's codes: the scale, then a level a cell, in table order */
    {
        double v[6] = {-2, 0, 2, 1, NAN, -1};
        bpv_shape sh = {.rank = 2, .dim = {2, 3}};
        bpv_buf b;
        bpv_buf_init(&b);
        bpv_heat_codes(&b, v, &sh, false, BPV_HEAT_GRAD);
        char want_codes[8] = {'g', '!' + 0, '!' + 45, '!' + 90, '!' + 68, '!' + 91, '!' + 23, 0};
        assert_string_equal(b.data, want_codes);
        bpv_buf_free(&b);
    }

    /* auto: the 8x8 B is a heatmap, the 2x2 W stays numbers */
    char *dot = export(&h.s, BPV_FORMAT_DOT, NULL, NULL);
    Agraph_t *g = read_dot(dot);
    const char *bl = attr(agnode(g, "n3", 0), "label");
    assert_true(aghtmlstr((char *)bl));
    assert_null(strstr(bl, "mean"));
    /* value and gradient: 64 cells each, and a bar of 9 beside each range */
    assert_int_equal(count(bl, "BGCOLOR="), 2 * (64 + 9));
    /* the gradient is 0.5 everywhere: its largest magnitude, the orange end */
    assert_int_equal(count(bl, "BGCOLOR=\"#7f3b08\""), 64 + 1);
    /* B[0][0] = -10 of a range ±53 */
    bpv_heat_color(BPV_HEAT_VALUE, -10, 53, c);
    char want[32];
    snprintf(want, sizeof want, "BGCOLOR=\"%s\"", c);
    assert_contains(bl, want);
    assert_contains(bl, "−53"); /* the range, symmetric */
    assert_contains(bl, "∂loss/∂B =");
    const char *wl = attr(agnode(g, "n0", 0), "label");
    assert_null(strstr(wl, "BGCOLOR"));
    assert_contains(wl, "−0.25");
    assert_null(agnode(g, "legend", 0));
    agclose(g);
    free(dot);

    /* heatmap: W too (4 cells, value + gradient + after-update rows) */
    bpv_figure_options o;
    bpv_figure_options_init(&o);
    o.tensors = BPV_TENSORS_HEATMAP;
    o.legend = 1;
    o.op_symbols = BPV_OP_SYMBOLS_TUTORIAL;
    dot = export(&h.s, BPV_FORMAT_DOT, &o, NULL);
    g = read_dot(dot);
    wl = attr(agnode(g, "n0", 0), "label");
    assert_int_equal(count(wl, "BGCOLOR="), 2 * (4 + 9));
    assert_null(strstr(wl, "−0.25"));
    /* the key sits in the graph's label, beside the caption, bottom right:
     * no node of its own that would take a rank */
    assert_null(agnode(g, "legend", 0));
    assert_string_equal(agget(g, "labeljust"), "r");
    const char *gl = agget(g, "label");
    assert_contains(gl, "step 1");
    assert_contains(gl, "forward value");
    assert_contains(gl, "backward partial");
    assert_contains(gl, "parameter");
    assert_contains(gl, "gradients: −max … 0 … max"); /* heatmaps: their scales */
    assert_null(agfstsubg(g)); /* nothing to keep --fit from wrapping */
    assert_contains(attr(agnode(g, "n2", 0), "label"), "MM");
    agclose(g);
    free(dot);

    /* SVG and PDF render it; the SVG is well-formed XML with the cells as
     * filled polygons */
    size_t len;
    char *svg = export(&h.s, BPV_FORMAT_SVG, &o, &len);
    assert_true(count(svg, "fill=\"#7f3b08\"") >= 64);
    assert_contains(svg, "forward value");
    const char *path = "/tmp/bpv-test-heat.svg";
    assert_int_equal(tu_write_file(path, svg, len), 0);
    if (tu_sh("command -v xmllint >/dev/null") == 0)
        assert_int_equal(tu_sh("xmllint --noout %s", path), 0);
    remove(path);
    free(svg);
    char *pdf = export(&h.s, BPV_FORMAT_PDF, &o, &len);
    assert_true(len > 4 && memcmp(pdf, "%PDF", 4) == 0);
    free(pdf);
    char *png = export(&h.s, BPV_FORMAT_PNG, &o, &len);
    assert_true(len > 8 && memcmp(png, "\x89PNG", 4) == 0);
    free(png);
}

/* ---- real models --------------------------------------------------------- */

static int keep_first(const bpv_snapshot *s, void *user) {
    *(const bpv_snapshot **)user = s;
    return 0;
}

/* samples/linear.bp, step 1, through the whole library. */
static void test_linear_model(void **state) {
    (void)state;
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(BPV_SOURCE_DIR "/samples/linear.bp", &err);
    if (!m) fail_msg("%s", err ? err->message : "load failed");
    bpv_step_set *steps = bpv_step_set_parse("1", &err);
    assert_non_null(steps);
    const bpv_snapshot *snap = NULL;
    bpv_run_options ro = {0};
    ro.keep = steps;
    ro.stop_after_last_kept = 1;
    ro.on_snapshot = keep_first;
    ro.user = &snap;
    if (bpv_model_run(m, &ro, &err) != BPV_OK) fail_msg("%s", err ? err->message : "run");
    snap = bpv_model_snapshot(m, 0);
    assert_non_null(snap);

    char *dot = export(snap, BPV_FORMAT_DOT, NULL, NULL);
    Agraph_t *g = read_dot(dot);
    /* every label of every forward (red) and backward (orange) edge */
    bpv_buf fwd, bwd;
    bpv_buf_init(&fwd);
    bpv_buf_init(&bwd);
    for (Agnode_t *n = agfstnode(g); n; n = agnxtnode(g, n))
        for (Agedge_t *e = agfstout(g, n); e; e = agnxtout(g, e)) {
            bool back = strcmp(attr(e, "color"), "orange") == 0;
            assert_true(back || strcmp(attr(e, "color"), "red") == 0);
            assert_string_equal(attr(e, "style"), back ? "dashed" : "solid");
            bpv_buf_puts(back ? &bwd : &fwd, attr(e, "label"));
            bpv_buf_puts(back ? &bwd : &fwd, "\n");
        }
    assert_contains(fwd.data, "x = 1");
    assert_contains(fwd.data, "w = 1");
    assert_contains(fwd.data, "ŷ = 1");
    assert_contains(fwd.data, "y = 2");
    assert_contains(fwd.data, ">−1<");
    assert_contains(fwd.data, "loss = 1");
    assert_contains(bwd.data, ">∂loss/∂w<"); /* the number is in w's box */
    assert_null(strstr(bwd.data, "∂loss/∂w = "));
    assert_contains(bwd.data, "∂loss/∂ŷ = −2");
    assert_contains(bwd.data, "∂loss/∂(ŷ − y) = −2");
    assert_contains(bwd.data, "∂loss/∂loss = 1");
    assert_contains(attr(g, "label"), "step 1 · epoch 0 · sample 0 (x = 1, y = 2) · loss = 1");
    bpv_buf_free(&fwd);
    bpv_buf_free(&bwd);
    agclose(g);
    free(dot);

    size_t len;
    char *svg = export(snap, BPV_FORMAT_SVG, NULL, &len);
    assert_contains(svg, "∂loss/∂w = −2");
    assert_contains(svg, "after update: 1.02");
    free(svg);

    bpv_step_set_free(steps);
    bpv_model_free(m);
}

static int teardown(void **state) {
    (void)state;
    bpv_graphviz_shutdown();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_linear_dot),
        cmocka_unit_test(test_linear_full_labels),
        cmocka_unit_test(test_themes_and_names),
        cmocka_unit_test(test_linear_svg_png_pdf),
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_bad_format),
        cmocka_unit_test(test_tensors),
        cmocka_unit_test(test_heatmap),
        cmocka_unit_test(test_linear_model),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
