/* Figure labels for slides: rounding noise printed as 0 (noise.c),
 * --exact-numbers, --labels shapes and full on tensors, --no-update,
 * broadcast markers, --focus, the sink's empty label, elided names and
 * stepped ranges that keep their end. Real models are run and their DOT
 * read back with cgraph. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <graphviz/cgraph.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "model.h"
#include "testutil.h"

/* Runs a model (file, or text when `text` is set) and keeps the steps
 * `steps` selects. */
static bpv_model *run(const char *path, const char *text, const char *steps) {
    bpv_error *err = NULL;
    bpv_model *m = text ? bpv_model_load_string(path, text, strlen(text), &err)
                        : bpv_model_load(path, &err);
    if (!m) fail_msg("%s", err ? err->message : "load failed");
    bpv_step_set *keep = bpv_step_set_parse(steps, &err);
    assert_non_null(keep);
    if (strcmp(steps, "last") == 0) {
        bpv_step_set_free(keep);
        char spec[32];
        snprintf(spec, sizeof spec, "%ld", bpv_model_step_count(m));
        keep = bpv_step_set_parse(spec, &err);
    }
    bpv_run_options ro = {0};
    ro.keep = keep;
    ro.stop_after_last_kept = 1;
    if (bpv_model_run(m, &ro, &err) != BPV_OK) fail_msg("%s", err ? err->message : "run");
    bpv_step_set_free(keep);
    assert_true(bpv_model_snapshot_count(m) > 0);
    return m;
}

static char *dot_of(const bpv_snapshot *s, const bpv_figure_options *o) {
    char *out = NULL;
    size_t n = 0;
    bpv_error *err = NULL;
    if (bpv_export_figure(s, BPV_FORMAT_DOT, o, &out, &n, &err) != BPV_OK)
        fail_msg("export: %s", err ? err->message : "?");
    return out;
}

static const char *attr(void *obj, const char *name) {
    const char *v = agget(obj, (char *)name);
    return v ? v : "";
}

/* Every node and edge label of a DOT text, read back through cgraph, one
 * per line; the graph's caption first. */
static char *labels(const char *dot) {
    Agraph_t *g = agmemread(dot);
    assert_non_null(g);
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_buf_printf(&b, "%s\n", attr(g, "label"));
    for (Agnode_t *n = agfstnode(g); n; n = agnxtnode(g, n)) {
        bpv_buf_printf(&b, "%s\n", attr(n, "label"));
        for (Agedge_t *e = agfstout(g, n); e; e = agnxtout(g, e))
            bpv_buf_printf(&b, "%s\n", attr(e, "label"));
    }
    agclose(g);
    return bpv_buf_take(&b);
}

/* The label of node NAME's box, or of the edge KEY, read back. */
static char *node_label(const char *dot, const char *node) {
    Agraph_t *g = agmemread(dot);
    assert_non_null(g);
    Agnode_t *n = agnode(g, (char *)node, 0);
    assert_non_null(n);
    char *s = strdup(attr(n, "label"));
    agclose(g);
    return s;
}

static int node_index(const bpv_snapshot *s, const char *name) {
    for (int i = 0; i < s->nnodes; i++)
        if (s->nodes[i].name && strcmp(s->nodes[i].name, name) == 0) return i;
    fail_msg("no node %s", name);
    return -1;
}

static char *edge_label(const char *dot, const char *from, const char *to, const char *key) {
    Agraph_t *g = agmemread(dot);
    assert_non_null(g);
    Agnode_t *t = agnode(g, (char *)from, 0), *h = agnode(g, (char *)to, 0);
    assert_non_null(t);
    assert_non_null(h);
    Agedge_t *e = agedge(g, t, h, (char *)key, 0);
    if (!e) fail_msg("no edge %s -> %s [%s]", from, to, key);
    char *s = strdup(attr(e, "label"));
    agclose(g);
    return s;
}

static void has(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("'%s' not in '%s'", needle, hay);
}
static void lacks(const char *hay, const char *needle) {
    if (strstr(hay, needle)) fail_msg("'%s' should not be in '%s'", needle, hay);
}

/* two_layer_linear step 1: h₀ = 0.5·1 − 0.3·2 + 0.1 is 0 by hand and
 * −2.235×10⁻⁸ in float32; ∂loss/∂W₂ = δ·h₀ with it. */
static void test_noise_two_layer(void **state) {
    (void)state;
    bpv_model *m = run(BPV_SOURCE_DIR "/samples/two_layer_linear.bp", NULL, "1");
    const bpv_snapshot *s = bpv_model_snapshot(m, 0);
    int h = node_index(s, "h"), w2 = node_index(s, "W2");
    assert_true(s->nodes[h].value[0] != 0 && fabs(s->nodes[h].value[0]) < 1e-7);

    bpv_figure_options o;
    bpv_figure_options_init(&o);
    char *dot = dot_of(s, &o), *all = labels(dot);
    lacks(all, "×10⁻"); /* no noise anywhere */
    char id[16];
    snprintf(id, sizeof id, "n%d", w2);
    char *box = node_label(dot, id);
    /* ∂loss/∂W₂ = [0 −14.08 2.346]: the first element prints as 0 */
    has(box, "∂loss/∂W₂ = ");
    has(box, "&#8201;0&#8201;");
    has(box, "−14.08");
    free(box);
    free(all);
    free(dot);

    /* --precision 2 does not bring it back */
    o.precision = 2;
    dot = dot_of(s, &o);
    all = labels(dot);
    lacks(all, "×10⁻");
    free(all);
    free(dot);

    /* --exact-numbers: as stored */
    o.precision = 4;
    o.exact_numbers = 1;
    dot = dot_of(s, &o);
    all = labels(dot);
    has(all, "−2.235×10⁻⁸");
    has(all, "×10⁻⁷");
    free(all);
    free(dot);

    /* the JSON trace keeps the exact values */
    char *json = NULL;
    size_t len = 0;
    bpv_error *err = NULL;
    assert_int_equal(bpv_snapshot_export(s, BPV_FORMAT_JSON, NULL, &json, &len, &err), BPV_OK);
    has(json, "e-08");
    free(json);
    bpv_model_free(m);
}

/* linear.bp's last step: ŷ = 8, y = 8 and ŷ − y = 0, not −4.768×10⁻⁷ */
static void test_noise_linear_last(void **state) {
    (void)state;
    bpv_model *m = run(BPV_SOURCE_DIR "/samples/linear.bp", NULL, "last");
    const bpv_snapshot *s = bpv_model_snapshot(m, 0);
    int sub = -1, pw = -1;
    for (int i = 0; i < s->nnodes; i++) {
        if (s->nodes[i].op == BPV_OP_SUB) sub = i;
        if (s->nodes[i].op == BPV_OP_POW) pw = i;
    }
    assert_true(sub >= 0 && pw >= 0);
    assert_true(s->nodes[sub].value[0] != 0); /* the stored noise */
    bpv_figure_options o;
    bpv_figure_options_init(&o);
    char *dot = dot_of(s, &o);
    char a[16], b[16];
    snprintf(a, sizeof a, "n%d", sub);
    snprintf(b, sizeof b, "n%d", pw);
    char key[16] = "";
    for (int k = 0; k < s->nedges; k++)
        if (s->edges[k].from == sub && s->edges[k].to == pw) snprintf(key, sizeof key, "f%d", k);
    char *fwd = edge_label(dot, a, b, key);
    has(fwd, ">0<"); /* the edge ŷ − y → ^2 */
    free(fwd);
    char *all = labels(dot);
    lacks(all, "×10⁻");
    has(all, "loss = 0"); /* the caption too */
    free(all);
    free(dot);

    o.exact_numbers = 1;
    dot = dot_of(s, &o);
    all = labels(dot);
    has(all, "−4.768×10⁻⁷");
    free(all);
    free(dot);
    bpv_model_free(m);
}

/* --labels shapes and --no-update */
static void test_shapes_no_update(void **state) {
    (void)state;
    bpv_model *m = run(BPV_SOURCE_DIR "/samples/two_layer_linear.bp", NULL, "1");
    const bpv_snapshot *s = bpv_model_snapshot(m, 0);
    bpv_figure_options o;
    bpv_figure_options_init(&o);
    o.labels = BPV_LABELS_SHAPES;
    char *dot = dot_of(s, &o);
    char id[16], id2[16];
    int w1 = node_index(s, "W1"), b2 = node_index(s, "b2"), h = node_index(s, "h");
    snprintf(id, sizeof id, "n%d", w1);
    char *box = node_label(dot, id);
    has(box, "W₁ 3×2");
    lacks(box, "0.5");
    lacks(box, "after update");
    free(box);
    snprintf(id, sizeof id, "n%d", b2);
    box = node_label(dot, id);
    has(box, "b₂ = 0.2"); /* a scalar keeps its value */
    free(box);
    /* the tensor h: its shape forward, its name backward, no numbers */
    for (int k = 0; k < s->nedges; k++) {
        if (s->edges[k].from != h) continue;
        snprintf(id, sizeof id, "n%d", h);
        snprintf(id2, sizeof id2, "n%d", s->edges[k].to);
        char key[16];
        snprintf(key, sizeof key, "f%d", k);
        char *l = edge_label(dot, id, id2, key);
        has(l, "h 3");
        lacks(l, "1.8");
        free(l);
        snprintf(key, sizeof key, "b%d", k);
        l = edge_label(dot, id, id2, key);
        has(l, "∂loss/∂h<");
        lacks(l, "3.91");
        free(l);
    }
    free(dot);

    bpv_figure_options_init(&o);
    o.no_update = 1;
    dot = dot_of(s, &o);
    char *all = labels(dot);
    lacks(all, "after update");
    has(all, "∂loss/∂W₁ = "); /* the gradient stays in the box */
    free(all);
    free(dot);
    bpv_model_free(m);
}

/* --labels full on tensors, broadcast markers, --focus, the sink */
static const char batch_model[] =
    "data x = [[1, 2], [2, 1], [0, 1], [1, 0]]\n"
    "data y = [[3], [3], [1], [1]]\n"
    "param W = [[0.5, -0.3, 0.2], [0.2, 0.8, 0.1]]\n"
    "param b = [0.1, 0.0, -0.1]\n"
    "param v = [[0.3], [-0.5], [0.7]]\n"
    "h = x @ W + b\n"
    "y_hat = h @ v\n"
    "loss = mse(y_hat, y)\n"
    "train epochs=2 lr=0.05 batch=4\n";

static void test_full_broadcast_focus(void **state) {
    (void)state;
    bpv_model *m = run("batch.bp", batch_model, "1");
    const bpv_snapshot *s = bpv_model_snapshot(m, 0);
    int b = node_index(s, "b"), W = node_index(s, "W"), h = node_index(s, "h");
    int eb = -1, eW = -1;
    for (int k = 0; k < s->nedges; k++) {
        if (s->edges[k].from == b) eb = k;
        if (s->edges[k].from == W) eW = k;
    }
    char t[16], hd[16], key[16];
    bpv_figure_options o;
    bpv_figure_options_init(&o);
    char *dot = dot_of(s, &o);
    snprintf(t, sizeof t, "n%d", b);
    snprintf(hd, sizeof hd, "n%d", s->edges[eb].to);
    snprintf(key, sizeof key, "f%d", eb);
    char *l = edge_label(dot, t, hd, key);
    has(l, "[3] → [4, 3]");
    free(l);
    snprintf(key, sizeof key, "b%d", eb);
    l = edge_label(dot, t, hd, key);
    has(l, "summed over the batch");
    free(l);
    /* the sink carries an empty label of its own (not its name) */
    Agraph_t *g = agmemread(dot);
    int sinks = 0;
    for (Agnode_t *n = agfstnode(g); n; n = agnxtnode(g, n)) {
        if (strncmp(agnameof(n), "out", 3) != 0) continue;
        sinks++;
        char *lab = agget(n, "label");
        assert_non_null(lab);
        assert_true(aghtmlstr(lab));
        assert_string_equal(lab, " ");
    }
    assert_int_equal(sinks, 1);
    agclose(g);
    free(dot);

    o.labels = BPV_LABELS_FULL;
    dot = dot_of(s, &o);
    snprintf(t, sizeof t, "n%d", W);
    snprintf(hd, sizeof hd, "n%d", s->edges[eW].to);
    snprintf(key, sizeof key, "b%d", eW);
    l = edge_label(dot, t, hd, key);
    has(l, "∂loss/∂W = ∂loss/∂(xW) · ∂(xW)/∂W");
    has(l, "= xᵀ · ∂loss/∂(xW)");
    free(l);
    snprintf(t, sizeof t, "n%d", b);
    snprintf(hd, sizeof hd, "n%d", s->edges[eb].to);
    snprintf(key, sizeof key, "b%d", eb);
    l = edge_label(dot, t, hd, key);
    has(l, "Σ over batch ∂loss/∂h");
    free(l);
    free(dot);

    bpv_figure_options_init(&o);
    o.focus = "h";
    dot = dot_of(s, &o);
    snprintf(t, sizeof t, "n%d", h);
    g = agmemread(dot);
    assert_string_equal(attr(agnode(g, t, 0), "class"), "bpv-focus");
    assert_string_equal(attr(agnode(g, t, 0), "penwidth"), "3.5");
    agclose(g);
    free(dot);
    bpv_model_free(m);
}

/* long unnamed expressions are elided, never named v₁ */
static void test_no_invented_names(void **state) {
    (void)state;
    bpv_model *m = run(BPV_SOURCE_DIR "/samples/residual.bp", NULL, "1");
    char *dot = dot_of(bpv_model_snapshot(m, 0), NULL), *all = labels(dot);
    lacks(all, "v₁");
    has(all, "…");
    free(all);
    free(dot);
    bpv_model_free(m);
}

/* --steps 1-800/100 keeps step 800 */
static void test_steps_keep_end(void **state) {
    (void)state;
    bpv_model *m = run(BPV_SOURCE_DIR "/samples/quadratic.bp", NULL, "1-800/100");
    assert_int_equal(bpv_model_step_count(m), 800);
    size_t n = bpv_model_snapshot_count(m);
    assert_int_equal(n, 9);
    assert_int_equal(bpv_snapshot_step(bpv_model_snapshot(m, 7)), 701);
    assert_int_equal(bpv_snapshot_step(bpv_model_snapshot(m, 8)), 800);
    bpv_model_free(m);
}

static int teardown(void **state) {
    (void)state;
    bpv_graphviz_shutdown();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noise_two_layer),  cmocka_unit_test(test_noise_linear_last),
        cmocka_unit_test(test_shapes_no_update), cmocka_unit_test(test_full_broadcast_focus),
        cmocka_unit_test(test_no_invented_names), cmocka_unit_test(test_steps_keep_end),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
