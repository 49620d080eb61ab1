/* Inspecting a failing backward pass (issue 4): custom derivatives, the
 * gradient check, NaN/inf origins, `bpviz check`, --focus and --max-nodes.
 * Each planted sample is found at its step, node and edge, in the text and
 * in the DOT read back with cgraph; the sound samples raise no alarm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <graphviz/cgraph.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "export.h"
#include <unistd.h>

#include "focus.h"
#include "model.h"
#include "testutil.h"

#define SAMPLE(name) BPV_SOURCE_DIR "/samples/" name

/* ---- helpers ------------------------------------------------------------------ */

static void assert_contains(const char *hay, const char *needle) {
    if (!hay || !strstr(hay, needle)) fail_msg("'%s' not in '%s'", needle, hay ? hay : "(null)");
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static const char *attr(void *obj, const char *name) {
    const char *v = agget(obj, (char *)name);
    return v ? v : "";
}

static Agraph_t *read_dot(const char *dot) {
    Agraph_t *g = agmemread(dot);
    assert_non_null(g);
    return g;
}

/* The DOT of `bpviz MODEL ARGS... -T dot`, read back. */
static Agraph_t *dot_of(const char *model, const char *a1, const char *a2, const char *a3) {
    char *out = NULL, *err = NULL;
    int rc =
        tu_bpviz(&out, &err, (char *)model, "-T", "dot", (char *)a1, (char *)a2, (char *)a3, NULL);
    if (rc != 0) fail_msg("bpviz failed (%d): %s", rc, err);
    Agraph_t *g = read_dot(out);
    free(out);
    free(err);
    return g;
}

/* The DOT of the first step with a NaN or inf at --precision P. */
static Agraph_t *dot_at_precision(const char *model, const char *p) {
    char *out = NULL, *err = NULL;
    int rc = tu_bpviz(&out, &err, (char *)model, "-T", "dot", "--step", "first-nonfinite",
                      "--precision", (char *)p, NULL);
    if (rc != 0) fail_msg("bpviz failed (%d): %s", rc, err);
    Agraph_t *g = read_dot(out);
    free(out);
    free(err);
    return g;
}

/* Every node and edge whose `class` is cls: "n3", "b7" ... joined by spaces. */
static void with_class(Agraph_t *g, const char *cls, char *buf, size_t n) {
    buf[0] = '\0';
    for (Agnode_t *v = agfstnode(g); v; v = agnxtnode(g, v)) {
        if (strcmp(attr(v, "class"), cls) == 0)
            snprintf(buf + strlen(buf), n - strlen(buf), "%s ", agnameof(v));
        for (Agedge_t *e = agfstout(g, v); e; e = agnxtout(g, e))
            if (strcmp(attr(e, "class"), cls) == 0)
                snprintf(buf + strlen(buf), n - strlen(buf), "%s ", agnameof(e));
    }
}

static bpv_model *load(const char *text) {
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string("t.bp", text, strlen(text), &err);
    if (!m) fail_msg("load failed: %s", err ? err->message : "?");
    return m;
}

static void run_keep(bpv_model *m, const char *spec, int gradcheck) {
    bpv_error *err = NULL;
    bpv_step_set *keep = bpv_step_set_parse(spec, &err);
    assert_non_null(keep);
    bpv_run_options ro = {0};
    ro.keep = keep;
    ro.gradcheck = gradcheck;
    int rc = bpv_model_run(m, &ro, &err);
    if (rc != BPV_OK) fail_msg("run failed: %s", err ? err->message : "?");
    bpv_step_set_free(keep);
}

/* ---- custom derivatives ---------------------------------------------------------- */

static const char sig_model[] =
    "data x = [1, 2, -1, 0.5]\ndata y = [1, 1, 0, 1]\nparam w = 0.5\nparam b = 0.0\n"
    "fn mysig(u) = 1 / (1 + exp(-u)) grad u = out * (1 - out)\n"
    "z = x * w + b\ny_hat = %s(z)\nloss = (y_hat - y)^2\ntrain epochs=3 lr=0.5\n";

static void test_custom_is_one_node(void **state) {
    (void)state;
    char a[512], b[512];
    snprintf(a, sizeof a, sig_model, "mysig");
    snprintf(b, sizeof b, sig_model, "sigmoid");
    bpv_model *ma = load(a), *mb = load(b);
    run_keep(ma, "all", 1);
    run_keep(mb, "all", 0);
    assert_int_equal(bpv_model_snapshot_count(ma), 12);
    for (size_t i = 0; i < 12; i++) {
        const bpv_snapshot *sa = bpv_model_snapshot(ma, i), *sb = bpv_model_snapshot(mb, i);
        /* the same graph, with one custom node where sigmoid was */
        assert_int_equal(sa->nnodes, sb->nnodes);
        const double *va, *vb, *ga, *gb;
        assert_int_equal(bpv_snapshot_node(sa, "y_hat", &va, &ga), 1);
        assert_int_equal(bpv_snapshot_node(sb, "y_hat", &vb, &gb), 1);
        assert_true(fabs(va[0] - vb[0]) <= 1e-6 * fabs(vb[0]));
        assert_true(fabs(sa->loss - sb->loss) <= 1e-5 * fabs(sb->loss) + 1e-9);
        int yh = -1;
        for (int k = 0; k < sa->nnodes; k++)
            if (sa->nodes[k].name && strcmp(sa->nodes[k].name, "y_hat") == 0) yh = k;
        assert_int_equal(sa->nodes[yh].op, BPV_OP_CUSTOM);
        assert_string_equal(sa->nodes[yh].fn, "mysig");
        /* a right partial passes the check */
        for (int e = 0; e < sa->nedges; e++)
            assert_int_not_equal(sa->edges[e].gradcheck.state, BPV_GRADCHECK_BAD);
        for (int p = 0; p < sa->nparams; p++)
            assert_int_equal(sa->params[p].gradcheck.state, BPV_GRADCHECK_OK);
    }
    bpv_model_free(ma);
    bpv_model_free(mb);
}

static void test_custom_figure_shows_formula(void **state) {
    (void)state;
    char a[512];
    snprintf(a, sizeof a, sig_model, "mysig");
    char *path = "/tmp/bpv_test_check_sig.bp";
    assert_int_equal(tu_write_file(path, a, strlen(a)), 0);
    Agraph_t *g = dot_of(path, "--labels", "full", NULL);
    bool found = false;
    Agnode_t *n;
    for (n = agfstnode(g); n; n = agnxtnode(g, n))
        if (strstr(attr(n, "label"), ">mysig<")) found = true;
    assert_true(found);
    bool formula = false;
    for (n = agfstnode(g); n; n = agnxtnode(g, n))
        for (Agedge_t *e = agfstout(g, n); e; e = agnxtout(g, e))
            if (strstr(attr(e, "label"), "ŷ · (1 − ŷ) = −0.7551 · 0.235 = −0.1774")) formula = true;
    assert_true(formula);
    agclose(g);
    remove(path);
}

static void test_custom_errors(void **state) {
    (void)state;
    static const struct {
        const char *src, *msg;
    } cases[] = {
        {"param c = 1.0\nfn f(u) = u * c grad u = c\n", "sees only its arguments"},
        {"fn f(u, v) = u * v grad u = v\n", "gives no `grad v = ...`"},
        {"fn f(u) = out grad u = 1\n", "'out' is the fn's value"},
        {"fn f(u) = sum(u) grad u = 1\n", "element by element"},
        {"fn f(u, v, w) = u grad u = 1, v = 1, w = 1\n", "one or two arguments"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bpv_error *err = NULL;
        bpv_model *m = bpv_model_load_string("t.bp", cases[i].src, strlen(cases[i].src), &err);
        assert_null(m);
        assert_non_null(err);
        assert_int_equal(err->status, BPV_ERR_MODEL);
        assert_contains(err->message, cases[i].msg);
        bpv_error_free(err);
    }
}

/* ---- broken_grad: a wrong custom partial ------------------------------------------ */

static void test_broken_grad_text(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, "check", SAMPLE("broken_grad.bp"), NULL), 1);
    assert_contains(out, "broken_grad.bp:20:1: gradient check: the partial of y_hat with "
                         "respect to z is wrong at step 1: analytic 0.6225 vs numeric 0.235 "
                         "(the `grad` of fn mysig)");
    /* the wrong partial is the only finding: not the params behind it */
    assert_int_equal(count(out, "gradient check:"), 1);
    assert_contains(out, "broken_grad.bp: 1 problem");
    assert_null(strstr(out, "not finite"));
    free(out);
    free(err);
    /* a figure with --gradcheck reports the same line on standard error */
    char svg[64];
    snprintf(svg, sizeof svg, "/tmp/bpv-gradcheck-%d.svg", (int)getpid());
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("broken_grad.bp"), "--gradcheck", "-o", svg, NULL),
                     0);
    assert_contains(err, "broken_grad.bp:20:1: gradient check: the partial of y_hat with "
                         "respect to z is wrong at step 1: analytic 0.6225 vs numeric 0.235");
    free(out);
    free(err);
    /* and nothing for a sound model */
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("quadratic.bp"), "--gradcheck", "-o", svg, NULL),
                     0);
    assert_string_equal(err, "");
    unlink(svg);
    free(out);
    free(err);
}

static void test_broken_grad_dot(void **state) {
    (void)state;
    Agraph_t *g = dot_of(SAMPLE("broken_grad.bp"), "--gradcheck", NULL, NULL);
    char marked[512];
    with_class(g, "bpv-mismatch", marked, sizeof marked);
    /* nodes x w × b + mysig ...; edges by consumer: ×:0,1 +:2,3 mysig:4 */
    assert_string_equal(marked, "b4 n5 ");
    Agnode_t *n = agnode(g, "n5", 0);
    assert_non_null(n);
    assert_contains(attr(n, "label"), "mysig");
    assert_string_equal(attr(n, "color"), "magenta");
    assert_string_equal(attr(n, "penwidth"), "3");
    Agedge_t *e = agedge(g, agnode(g, "n4", 0), n, "b4", 0);
    assert_non_null(e);
    assert_string_equal(attr(e, "color"), "magenta");
    assert_string_equal(attr(e, "penwidth"), "3");
    assert_contains(attr(e, "label"), "✗ ∂ŷ/∂z: analytic 0.6225 vs numeric 0.235");
    agclose(g);
    /* without --gradcheck, nothing is marked */
    g = dot_of(SAMPLE("broken_grad.bp"), NULL, NULL, NULL);
    with_class(g, "bpv-mismatch", marked, sizeof marked);
    assert_string_equal(marked, "");
    agclose(g);
    /* --precision reaches the note as every other number of the figure */
    g = dot_at_precision(SAMPLE("exploding.bp"), "2");
    assert_contains(attr(agedge(g, agnode(g, "n6", 0), agnode(g, "out6", 0), "f_out6", 0), "label"),
                    "origin: 3.7×10¹⁹ ^ 2 = ∞");
    agclose(g);
    g = dot_at_precision(SAMPLE("nan_log.bp"), "9");
    assert_contains(attr(agedge(g, agnode(g, "n3", 0), agnode(g, "n5", 0), "f3", 0), "label"),
                    "origin: log(−0.400000095) = NaN");
    agclose(g);
}

/* ---- forgot_zero_grad: accumulating gradients ----------------------------------- */

static void test_forgot_zero_grad(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, "check", SAMPLE("forgot_zero_grad.bp"), NULL), 1);
    assert_contains(out, "forgot_zero_grad.bp:13:7: gradient check: the gradient of param 'w' "
                         "is wrong at step 2: analytic −9.84 vs numeric −7.84; it still holds "
                         "earlier steps' gradients: the train has zero_grad=false");
    assert_int_equal(count(out, "gradient check:"), 1);
    free(out);
    free(err);
    char marked[256];
    Agraph_t *g = dot_of(SAMPLE("forgot_zero_grad.bp"), "--step", "1", "--gradcheck");
    with_class(g, "bpv-mismatch", marked, sizeof marked);
    assert_string_equal(marked, ""); /* step 1 starts from no gradient */
    agclose(g);
    g = dot_of(SAMPLE("forgot_zero_grad.bp"), "--step", "2", "--gradcheck");
    with_class(g, "bpv-mismatch", marked, sizeof marked);
    assert_string_equal(marked, "n1 "); /* w */
    Agnode_t *w = agnode(g, "n1", 0);
    assert_contains(attr(w, "label"), "w = 1.02");
    assert_contains(attr(w, "label"), "✗ analytic −9.84 vs numeric −7.84");
    assert_contains(attr(w, "label"), "zero_grad=false");
    agclose(g);
}

/* ---- nan_log and exploding: the first NaN or infinity ------------------------------ */

static void test_nan_log(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, "run", SAMPLE("nan_log.bp"), NULL), 0);
    /* one warning line, and training goes on to the end */
    assert_int_equal(count(err, "\n"), 1);
    assert_contains(err, "nan_log.bp:14:1: warning: step 2 (epoch 0): y_hat (log) is not "
                         "finite: origin log(−0.4) = NaN; training goes on\n");
    assert_int_equal(count(out, "epoch="), 20);
    free(out);
    free(err);

    assert_int_equal(tu_bpviz(&out, &err, "check", SAMPLE("nan_log.bp"), NULL), 1);
    assert_contains(out, "step 2 (epoch 0): y_hat (log) is not finite: origin log(−0.4) = NaN");
    assert_null(strstr(out, "gradient check:")); /* NaN is not a wrong derivative */
    free(out);
    free(err);

    Agraph_t *g = dot_of(SAMPLE("nan_log.bp"), "--step", "first-nonfinite", NULL);
    char marked[256];
    with_class(g, "bpv-origin", marked, sizeof marked);
    assert_string_equal(marked, "n3 "); /* x w mul log: the log */
    Agnode_t *n = agnode(g, "n3", 0);
    assert_contains(attr(n, "label"), "log");
    /* the note on its forward edge out (an edge label never lies on an edge) */
    assert_string_equal(attr(n, "xlabel"), "");
    assert_contains(attr(agedge(g, n, agnode(g, "n5", 0), "f3", 0), "label"),
                    "origin: log(−0.4) = NaN");
    assert_string_equal(attr(n, "penwidth"), "3.5");
    assert_string_equal(attr(n, "fillcolor"), "#FFE08A");
    assert_contains(attr(g, "label"), "step 2 ");
    /* its inputs are finite: w and x are not filled */
    assert_string_not_equal(attr(agnode(g, "n1", 0), "fillcolor"), "#FFE08A");
    agclose(g);
}

static void test_exploding(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, "run", SAMPLE("exploding.bp"), NULL), 0);
    assert_int_equal(count(err, "\n"), 1);
    assert_contains(err, "exploding.bp:16:1: warning: step 112 (epoch 27): loss (pow) is not "
                         "finite: origin 3.736×10¹⁹ ^ 2 = ∞; training goes on\n");
    free(out);
    free(err);
    Agraph_t *g = dot_of(SAMPLE("exploding.bp"), "--step", "first-nonfinite", NULL);
    char marked[256];
    with_class(g, "bpv-origin", marked, sizeof marked);
    assert_string_equal(marked, "n6 "); /* x w mul y sub 2 pow */
    assert_contains(attr(agedge(g, agnode(g, "n6", 0), agnode(g, "out6", 0), "f_out6", 0), "label"),
                    "origin: 3.736×10¹⁹ ^ 2 = ∞");
    assert_contains(attr(g, "label"), "step 112 ");
    with_class(g, "bpv-mismatch", marked, sizeof marked);
    assert_string_equal(marked, "");
    agclose(g);
}

/* sqrt at 0 is finite forward; its backward is the origin: an edge */
static void test_backward_origin(void **state) {
    (void)state;
    const char *path = "/tmp/bpv_test_check_bw.bp";
    const char *text = "data x = [1, 2]\nparam w = 0.0\nloss = sqrt(x * w) + w\n"
                       "train epochs=1 lr=0.1\n";
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, "run", path, NULL), 0);
    assert_contains(err, ":3:8: warning: step 1 (epoch 0): the gradient from sqrt(x * w) (sqrt) "
                         "to x * w is not finite: origin sqrt backward: upstream 1 × local ∞ "
                         "at 0 = ∞; training goes on\n");
    free(out);
    free(err);
    Agraph_t *g = dot_of(path, "--step", "first-nonfinite", NULL);
    char marked[256];
    with_class(g, "bpv-origin", marked, sizeof marked);
    assert_string_equal(marked, "b2 "); /* edges: × 0,1; √ 2; + 3,4 */
    Agedge_t *e = agedge(g, agnode(g, "n2", 0), agnode(g, "n3", 0), "b2", 0);
    assert_non_null(e);
    assert_string_equal(attr(e, "penwidth"), "3.5");
    assert_contains(attr(e, "label"), "origin: sqrt backward");
    /* forward values are all finite: only nodes with an infinite gradient are filled */
    assert_string_equal(attr(agnode(g, "n3", 0), "fillcolor"), "white");
    assert_string_equal(attr(agnode(g, "n2", 0), "fillcolor"), "#FFE08A");
    agclose(g);
    remove(path);
}

static void test_stop_on_nonfinite(void **state) {
    (void)state;
    size_t len;
    char *src = tu_read_file(SAMPLE("nan_log.bp"), &len);
    assert_non_null(src);
    char *t = strstr(src, "train epochs=20 lr=0.3");
    assert_non_null(t);
    char model[4096];
    snprintf(model, sizeof model, "%.*strain epochs=20 lr=0.3 stop_on_nonfinite=true\n",
             (int)(t - src), src);
    const char *path = "/tmp/bpv_test_check_stop.bp";
    assert_int_equal(tu_write_file(path, model, strlen(model)), 0);
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, "run", path, NULL), 1);
    assert_contains(err, "error: step 2 (epoch 0): y_hat (log) is not finite: origin "
                         "log(−0.4) = NaN; stopped (stop_on_nonfinite=true)");
    assert_int_equal(count(out, "epoch="), 0); /* stopped inside epoch 0 */
    free(out);
    free(err);
    /* for check the stop is a finding, not a failure */
    assert_int_equal(tu_bpviz(&out, &err, "check", path, NULL), 1);
    assert_contains(out, "step 2 (epoch 0): y_hat (log) is not finite");
    assert_contains(out, ": 1 problem (2 training steps;");
    free(out);
    free(err);
    /* its figure still draws */
    Agraph_t *g = dot_of(path, "--step", "first-nonfinite", NULL);
    assert_contains(attr(g, "label"), "step 2 ");
    agclose(g);
    remove(path);
    free(src);
}

/* ---- no false alarms ------------------------------------------------------------- */

static bool planted(const char *name) {
    static const char *const p[] = {"broken_grad.bp", "nan_log.bp", "exploding.bp",
                                    "forgot_zero_grad.bp"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(name, p[i]) == 0) return true;
    return false;
}

static void test_sound_samples_pass(void **state) {
    (void)state;
    DIR *d = opendir(BPV_SOURCE_DIR "/samples");
    assert_non_null(d);
    int checked = 0, jacobian = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        if (n < 4 || strcmp(de->d_name + n - 3, ".bp") != 0 || planted(de->d_name)) continue;
        char path[512], *out = NULL, *err = NULL;
        snprintf(path, sizeof path, "%s/samples/%s", BPV_SOURCE_DIR, de->d_name);
        int rc = tu_bpviz(&out, &err, "check", path, NULL);
        if (rc != 0) fail_msg("%s: check exits %d:\n%s%s", de->d_name, rc, out, err);
        assert_contains(out, ": ok (");
        free(out);
        free(err);
        /* every step, in process: no mismatch, no NaN */
        size_t len;
        char *text = tu_read_file(path, &len);
        bpv_error *e = NULL;
        bpv_model *m = bpv_model_load_string(path, text, len, &e);
        assert_non_null(m);
        long total = bpv_model_step_count(m);
        char spec[64];
        /* every step (at most 400); a convolution model at its first and last
         * (bpviz check above took 8), as each check runs its forward pass
         * hundreds of times */
        long every = strstr(text, "conv2d(") ? total - 1 : total / 400;
        snprintf(spec, sizeof spec, "1-%ld/%ld", total, every > 1 ? every : 1);
        run_keep(m, spec, 1);
        for (size_t i = 0; i < bpv_model_snapshot_count(m); i++) {
            const bpv_snapshot *s = bpv_model_snapshot(m, i);
            assert_int_equal(s->nf_pass, 0);
            for (int k = 0; k < s->nedges; k++) {
                if (s->edges[k].gradcheck.state == BPV_GRADCHECK_BAD)
                    fail_msg("%s step %ld edge %d: relerr %g", de->d_name, s->step, k,
                             s->edges[k].gradcheck.relerr);
                /* matmul edges are checked too, along the edge */
                jacobian += !s->edges[k].local && s->edges[k].gradcheck.state == BPV_GRADCHECK_OK;
            }
            for (int k = 0; k < s->nparams; k++) {
                const bpv_gradcheck_mark *c = &s->params[k].gradcheck;
                assert_int_not_equal(c->state, BPV_GRADCHECK_BAD);
                /* far below the threshold, not just under it */
                /* (a CNN's finite differences cross relu and max-pool kinks
                 * the one-sided test misses when few elements of a window
                 * flip: lenet's first conv reaches 1e-4 at step 36) */
                double bound = strstr(text, "conv2d(") ? BPV_GRADCHECK_TOL / 5 : BPV_GRADCHECK_TOL / 100;
                if (c->state == BPV_GRADCHECK_OK && c->relerr >= bound)
                    fail_msg("%s step %ld param %s: relerr %g", de->d_name, s->step,
                             s->params[k].name, c->relerr);
            }
        }
        bpv_model_free(m);
        free(text);
        checked++;
    }
    closedir(d);
    assert_true(checked >= 5);
    assert_true(jacobian > 0);
    /* and each planted sample shows only its own problem */
    char *out = NULL, *err = NULL;
    tu_bpviz(&out, &err, "check", SAMPLE("exploding.bp"), NULL);
    assert_null(strstr(out, "gradient check:"));
    free(out);
    free(err);
}

/* relu and abs at exactly 0 have no derivative: skipped, not a false alarm */
static void test_kinks_are_skipped(void **state) {
    (void)state;
    bpv_model *m = load("data x = [1, -1]\nparam w = 0.0\nparam c = 0.5\n"
                        "loss = (relu(x * w) + abs(x * w) + c * x - 1)^2\n"
                        "train epochs=1 lr=0.1\n");
    run_keep(m, "1", 1);
    const bpv_snapshot *s = bpv_model_snapshot(m, 0);
    int skipped = 0;
    for (int k = 0; k < s->nedges; k++) {
        const bpv_snap_node *to = &s->nodes[s->edges[k].to];
        assert_int_not_equal(s->edges[k].gradcheck.state, BPV_GRADCHECK_BAD);
        if (to->op == BPV_OP_RELU || to->op == BPV_OP_ABS) {
            assert_int_equal(s->edges[k].gradcheck.state, BPV_GRADCHECK_SKIP);
            skipped++;
        }
    }
    assert_int_equal(skipped, 2);
    for (int k = 0; k < s->nparams; k++)
        assert_int_not_equal(s->params[k].gradcheck.state, BPV_GRADCHECK_BAD);
    bpv_model_free(m);
}

static void test_check_statuses(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    const char *bad = "/tmp/bpv_test_check_bad.bp";
    const char *text = "param w = 1\nloss = (w - wx)^2\ntrain epochs=1\n";
    assert_int_equal(tu_write_file(bad, text, strlen(text)), 0);
    assert_int_equal(tu_bpviz(&out, &err, "check", bad, NULL), 2);
    assert_contains(err, "unknown name 'wx'");
    free(out);
    free(err);
    /* a param the objective never sees, and a dead relu */
    const char *dead = "/tmp/bpv_test_check_dead.bp";
    text = "data x = [1, 2]\nparam w = -1.0\nparam v = 2.0\nparam u = 1.0\n"
           "loss = (relu(x * w) + u - 3)^2\ntrain epochs=2 lr=0.1\n";
    assert_int_equal(tu_write_file(dead, text, strlen(text)), 0);
    assert_int_equal(tu_bpviz(&out, &err, "check", dead, NULL), 1);
    assert_contains(out, ":3:7: param 'v' is not connected to the objective");
    assert_contains(out, ":2:7: param 'w' never receives a nonzero gradient in 4 steps");
    assert_null(strstr(out, "'u'"));
    free(out);
    free(err);
    remove(bad);
    remove(dead);
}

/* ---- JSON ------------------------------------------------------------------------- */

static void test_json_fields(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(
        tu_bpviz(&out, &err, SAMPLE("broken_grad.bp"), "-T", "json", "--gradcheck", NULL), 0);
    assert_contains(out, "\"fn\": \"mysig\"");
    assert_contains(out, "\"check\": {\"state\": \"mismatch\", \"element\": 0, \"analytic\": "
                         "0.622459352016449");
    assert_contains(out, "\"formula\": \"y_hat\"");
    free(out);
    free(err);
    assert_int_equal(
        tu_bpviz(&out, &err, SAMPLE("nan_log.bp"), "-T", "json", "--step", "first-nonfinite", NULL),
        0);
    assert_contains(out, "\"nonfinite\": {\"pass\": \"forward\", \"node\": 3, \"edge\": null, "
                         "\"note\": \"log(−0.4) = NaN\"}");
    free(out);
    free(err);
    /* a trace without inspection keeps its old keys only */
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "-T", "json", NULL), 0);
    assert_null(strstr(out, "\"check\""));
    assert_null(strstr(out, "\"nonfinite\""));
    free(out);
    free(err);
}

/* ---- focus and the size limit ----------------------------------------------------- */

static void test_focus(void **state) {
    (void)state;
    size_t len;
    char *text = tu_read_file(SAMPLE("two_layer_sigmoid.bp"), &len);
    bpv_error *e = NULL;
    bpv_model *m = bpv_model_load_string("two_layer_sigmoid.bp", text, len, &e);
    assert_non_null(m);
    run_keep(m, "1", 0);
    const bpv_snapshot *s = bpv_model_snapshot(m, 0);
    int h = -1;
    for (int i = 0; i < s->nnodes; i++)
        if (s->nodes[i].name && strcmp(s->nodes[i].name, "h") == 0) h = i;
    assert_true(h >= 0);
    for (int depth = 0; depth <= 3; depth++) {
        /* the neighbourhood by brute force: distances over the edge list */
        int dist[64];
        assert_true(s->nnodes <= 64);
        for (int i = 0; i < s->nnodes; i++) dist[i] = i == h ? 0 : 99;
        for (int round = 0; round < s->nnodes; round++)
            for (int k = 0; k < s->nedges; k++) {
                int a = s->edges[k].from, b = s->edges[k].to;
                if (dist[a] + 1 < dist[b]) dist[b] = dist[a] + 1;
                if (dist[b] + 1 < dist[a]) dist[a] = dist[b] + 1;
            }
        bpv_figure_options o;
        bpv_figure_options_init(&o);
        o.focus = "h";
        o.focus_depth = depth;
        char *dot = NULL;
        size_t n;
        assert_int_equal(bpv_export_figure(s, BPV_FORMAT_DOT, &o, &dot, &n, &e), BPV_OK);
        Agraph_t *g = read_dot(dot);
        int cut = 0;
        for (int k = 0; k < s->nedges; k++)
            cut += (dist[s->edges[k].from] <= depth) != (dist[s->edges[k].to] <= depth);
        int kept = 0, stubs = 0;
        for (int i = 0; i < s->nnodes; i++) {
            char id[16];
            snprintf(id, sizeof id, "n%d", i);
            bool drawn = agnode(g, id, 0) != NULL;
            const bpv_snap_node *sn = &s->nodes[i];
            bool folded = sn->kind == BPV_NODE_CONST && sn->literal;
            if (!folded) assert_int_equal(drawn, dist[i] <= depth);
            kept += drawn;
        }
        for (Agnode_t *v = agfstnode(g); v; v = agnxtnode(g, v))
            if (strncmp(agnameof(v), "cut", 3) == 0) {
                stubs++;
                assert_contains(attr(v, "label"), "…");
            }
        assert_int_equal(stubs, cut);
        assert_true(kept >= 1);
        agclose(g);
        free(dot);
    }
    /* a name that is not there */
    bool keep[64];
    assert_int_equal(bpv_focus_select(s, "hh", 2, keep, &e), BPV_ERR_MODEL);
    assert_contains(e->message, "no node named 'hh' in the graph (did you mean 'h'?)");
    bpv_error_free(e);
    bpv_model_free(m);
    free(text);
}

static void test_max_nodes(void **state) {
    (void)state;
    /* 45 tanh terms: 183 nodes drawn, over the default limit */
    char model[8192] = "data x = [1, 2]\ndata y = [3, 4]\n";
    for (int i = 0; i < 45; i++)
        snprintf(model + strlen(model), sizeof model - strlen(model), "param w%d = 0.5\n", i);
    strcat(model, "y_hat = ");
    for (int i = 0; i < 45; i++)
        snprintf(model + strlen(model), sizeof model - strlen(model), "%stanh(x * w%d)",
                 i ? " + " : "", i);
    strcat(model, "\nloss = (y_hat - y)^2\ntrain epochs=1\n");
    const char *path = "/tmp/bpv_test_check_big.bp";
    assert_int_equal(tu_write_file(path, model, strlen(model)), 0);
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, path, "-T", "svg", NULL), 2);
    assert_contains(err, "the graph has 183 nodes, too many for a readable figure (the limit "
                         "is 150): draw one part with --focus NAME [--depth K], or raise the "
                         "limit with --max-nodes N");
    free(out);
    free(err);
    assert_int_equal(tu_bpviz(&out, &err, path, "-T", "dot", "--max-nodes", "200", NULL), 0);
    free(out);
    free(err);
    assert_int_equal(tu_bpviz(&out, &err, path, "-T", "svg", "--focus", "w3", NULL), 0);
    assert_contains(out, "<svg");
    free(out);
    free(err);
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_custom_is_one_node),
        cmocka_unit_test(test_custom_figure_shows_formula),
        cmocka_unit_test(test_custom_errors),
        cmocka_unit_test(test_broken_grad_text),
        cmocka_unit_test(test_broken_grad_dot),
        cmocka_unit_test(test_forgot_zero_grad),
        cmocka_unit_test(test_nan_log),
        cmocka_unit_test(test_exploding),
        cmocka_unit_test(test_backward_origin),
        cmocka_unit_test(test_stop_on_nonfinite),
        cmocka_unit_test(test_sound_samples_pass),
        cmocka_unit_test(test_kinks_are_skipped),
        cmocka_unit_test(test_check_statuses),
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_focus),
        cmocka_unit_test(test_max_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
