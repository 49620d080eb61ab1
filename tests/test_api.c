/* The public C API as another program uses it: the graph builder, training
 * step by step with a snapshot callback, exporting one snapshot to memory
 * and to files, and samples/api_demo.c. Only <bpviz/bpviz.h> is used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpviz/bpviz.h>

#include "testutil.h"

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

/* y = sigmoid(w*x + b), the api_demo graph, checked against the formulas. */
static void test_builder_sigmoid(void **state) {
    (void)state;
    bpv_builder *b = bpv_builder_new_f64();
    assert_non_null(b);
    int w = bpv_builder_param(b, "w", (double[]){0.5}, NULL, 0);
    int bias = bpv_builder_param(b, "b", (double[]){-0.25}, NULL, 0);
    int x = bpv_builder_data(b, "x", (double[]){1.5}, NULL, 0);
    int z = bpv_builder_op(b, "z", "add", bpv_builder_op(b, NULL, "mul", w, x), bias);
    int y = bpv_builder_op(b, "y", "sigmoid", z, -1);
    assert_true(w >= 0 && bias >= 0 && x >= 0 && z >= 0 && y >= 0);
    bpv_error *err = NULL;
    const bpv_snapshot *s = bpv_builder_run(b, y, 0.1, &err);
    if (!s) fail_msg("%s", err->message);
    const double *v, *g;
    double yv = sigmoid(0.5 * 1.5 - 0.25), dy = yv * (1 - yv);
    assert_int_equal(bpv_snapshot_node(s, "y", &v, &g), 1);
    assert_true(fabs(v[0] - yv) < 1e-15);
    assert_true(fabs(g[0] - 1.0) == 0);
    assert_int_equal(bpv_snapshot_node(s, "w", &v, &g), 1);
    assert_true(v[0] == 0.5);
    assert_true(fabs(g[0] - dy * 1.5) < 1e-15);
    assert_int_equal(bpv_snapshot_node(s, "b", NULL, &g), 1);
    assert_true(fabs(g[0] - dy) < 1e-15);
    assert_int_equal(bpv_snapshot_node(s, "x", NULL, &g), 1);
    assert_null(g); /* data takes no gradient */
    assert_int_equal(bpv_snapshot_node(s, "nope", NULL, NULL), -1);
    assert_int_equal(bpv_snapshot_step(s), 1);
    assert_true(fabs(bpv_snapshot_loss(s) - yv) < 1e-15);

    /* the equivalent program is available and reads back as a model */
    const char *src = bpv_builder_source(b);
    assert_non_null(src);
    assert_non_null(strstr(src, "y = sigmoid(z)"));
    assert_non_null(strstr(src, "z = w * x + b"));
    bpv_model *m = bpv_model_load_string("again.bp", src, strlen(src), &err);
    assert_non_null(m);
    bpv_model_free(m);

    /* figures: SVG in memory with the values, DOT with the update (lr 0.1) */
    char *out;
    size_t len;
    assert_int_equal(bpv_snapshot_export(s, BPV_FORMAT_SVG, NULL, &out, &len, &err), BPV_OK);
    assert_true(len > 100 && strncmp(out, "<?xml", 5) == 0);
    assert_non_null(strstr(out, "σ"));
    assert_non_null(strstr(out, "0.6225"));
    free(out);
    assert_int_equal(bpv_snapshot_export(s, BPV_FORMAT_JSON, NULL, &out, &len, &err), BPV_OK);
    assert_non_null(strstr(out, "\"steps\""));
    assert_non_null(strstr(out, "builder>\",")); /* "<builder>", '<' maybe escaped */
    free(out);
    bpv_builder_free(b);
}

/* Tensors, a named constant-free loss, shared unnamed results and f32. */
static void test_builder_tensors(void **state) {
    (void)state;
    bpv_builder *b = bpv_builder_new();
    int64_t wd[2] = {2, 3}, xd[1] = {3};
    int W = bpv_builder_param(b, "W", (double[]){1, 2, 3, 4, 5, 6}, wd, 2);
    int x = bpv_builder_data(b, "x", (double[]){1, 0, -1}, xd, 1);
    int h = bpv_builder_op(b, NULL, "matmul", W, x);              /* [-2, -2] */
    int sq = bpv_builder_op(b, NULL, "mul", h, h);                /* h used twice */
    int loss = bpv_builder_op(b, NULL, "sum", sq, -1);            /* unnamed objective */
    bpv_error *err = NULL;
    const bpv_snapshot *s = bpv_builder_run(b, loss, 0, &err);
    if (!s) fail_msg("%s", err->message);
    assert_true(bpv_snapshot_loss(s) == 8.0);
    const double *g;
    assert_int_equal(bpv_snapshot_node(s, "W", NULL, &g), 6);
    /* d/dW sum(h*h) = 2h x^T = [[-4, 0, 4], [-4, 0, 4]] */
    double want[6] = {-4, 0, 4, -4, 0, 4};
    for (int i = 0; i < 6; i++) assert_true(g[i] == want[i]);
    const char *src = bpv_builder_source(b);
    assert_non_null(strstr(src, "t1 = W @ x"));
    assert_non_null(strstr(src, "loss = sum(t1 * t1)"));
    /* a second run rebuilds; one more op makes a different graph */
    int half = bpv_builder_op(b, "half", "mul", loss, bpv_builder_const(b, 0.5));
    s = bpv_builder_run(b, half, 0, &err);
    if (!s) fail_msg("%s", err->message);
    assert_true(bpv_snapshot_loss(s) == 4.0);
    bpv_builder_free(b);
}

/* Mistakes are remembered and reported once, by bpv_builder_run. */
static void test_builder_errors(void **state) {
    (void)state;
    bpv_error *err = NULL;
    bpv_builder *b = bpv_builder_new();
    int w = bpv_builder_param(b, "w", (double[]){1}, NULL, 0);
    assert_int_equal(bpv_builder_op(b, NULL, "sigmod", w, -1), -1);
    assert_int_equal(bpv_builder_op(b, "y", "sigmoid", w, -1), -1); /* after an error */
    assert_null(bpv_builder_run(b, w, 0, &err));
    assert_non_null(strstr(err->message, "unknown op 'sigmod' (did you mean 'sigmoid'?)"));
    assert_int_equal(err->status, BPV_ERR_MODEL);
    bpv_error_free(err);
    err = NULL;
    assert_null(bpv_builder_source(b));
    bpv_builder_free(b);

    const char *bad_names[] = {"2x", "a-b", "train", "sigmoid", "", "w"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        b = bpv_builder_new();
        bpv_builder_param(b, "w", (double[]){1}, NULL, 0);
        assert_int_equal(bpv_builder_data(b, bad_names[i], (double[]){1}, NULL, 0), -1);
        assert_null(bpv_builder_run(b, 0, 0, &err));
        assert_non_null(err);
        bpv_error_free(err);
        err = NULL;
        bpv_builder_free(b);
    }

    /* shapes are checked with the language's messages */
    b = bpv_builder_new();
    int64_t d2[1] = {2}, d3[1] = {3};
    int p = bpv_builder_param(b, "p", (double[]){1, 2}, d2, 1);
    int q = bpv_builder_data(b, "q", (double[]){1, 2, 3}, d3, 1);
    int r = bpv_builder_op(b, "r", "add", p, q);
    assert_true(r >= 0);
    assert_null(bpv_builder_run(b, r, 0, &err));
    assert_non_null(strstr(err->message, "cannot add shapes [2] and [3]"));
    bpv_error_free(err);
    err = NULL;
    /* non-finite values and a bad objective */
    assert_int_equal(bpv_builder_param(b, "n", (double[]){NAN}, NULL, 0), -1);
    bpv_builder_free(b);
    b = bpv_builder_new();
    assert_null(bpv_builder_run(b, 0, 0, &err));
    assert_non_null(strstr(err->message, "objective"));
    bpv_error_free(err);
    bpv_builder_free(b);
    bpv_builder_free(NULL);
}

typedef struct seen {
    long steps[16];
    double loss[16];
    int n, stop_at;
} seen;

static int on_snap(const bpv_snapshot *s, void *user) {
    seen *k = user;
    k->steps[k->n] = bpv_snapshot_step(s);
    k->loss[k->n] = bpv_snapshot_loss(s);
    return ++k->n == k->stop_at;
}

/* Training step by step: the callback sees every kept step, in order, and
 * stops the run when it asks to. */
static void test_run_callback(void **state) {
    (void)state;
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(BPV_SOURCE_DIR "/samples/linear.bp", &err);
    assert_non_null(m);
    bpv_step_set *all = bpv_step_set_parse("all", &err);
    seen k = {.stop_at = 5};
    bpv_run_options ro = {0};
    ro.keep = all;
    ro.on_snapshot = on_snap;
    ro.user = &k;
    assert_int_equal(bpv_model_run(m, &ro, &err), BPV_OK);
    assert_int_equal(k.n, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(k.steps[i], i + 1);
    assert_true(k.loss[0] == 1.0); /* x=1, y=2, w=1: (1-2)^2 */
    assert_int_equal(bpv_model_snapshot_count(m), 5);
    /* each kept snapshot exports on its own, to a file */
    char dir[] = "/tmp/bpv-api-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/step3.json", dir);
    assert_int_equal(bpv_snapshot_write(bpv_model_snapshot(m, 2), path, -1, NULL, &err), BPV_OK);
    size_t len;
    char *text = tu_read_file(path, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"step\": 3"));
    free(text);
    snprintf(path, sizeof path, "%s/step3.txt", dir);
    assert_int_equal(bpv_snapshot_write(bpv_model_snapshot(m, 2), path, -1, NULL, &err),
                     BPV_ERR_MODEL);
    assert_non_null(strstr(err->message, "cannot tell the format"));
    bpv_error_free(err);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    assert_int_equal(system(path), 0);
    bpv_step_set_free(all);
    bpv_model_free(m);
}

/* *err is the error "bpviz: error: WHAT..." with `status`; it is freed. */
static void expect_error(bpv_error **err, int status, const char *what) {
    assert_non_null(*err);
    assert_int_equal((*err)->status, status);
    if (!strstr((*err)->message, what)) fail_msg("'%s' not in: %s", what, (*err)->message);
    bpv_error_free(*err);
    *err = NULL;
}

/* The error of a NULL argument: "FUNCTION: ARGUMENT is NULL". */
static void expect_null_arg(bpv_error **err, const char *fn_arg) {
    char what[128];
    snprintf(what, sizeof what, "bpviz: error: %s is NULL\n", fn_arg);
    expect_error(err, BPV_ERR_MODEL, what);
}
#define EXPECT_NULL_ARG expect_null_arg

/* Every public function with each pointer argument NULL in turn (the others
 * valid): the header's documented result, never a crash (run under ASan and
 * UBSan too). An error names the function and the argument; a NULL `err`
 * is always accepted. */
static void test_null_arguments(void **state) {
    (void)state;
    bpv_error *err = NULL;
    char dir[] = "/tmp/bpv-null-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[96], svg[96];
    snprintf(svg, sizeof svg, "%s/out.svg", dir);
    const char *model = BPV_SOURCE_DIR "/samples/linear.bp";

    assert_non_null(bpv_version());
    bpv_error_free(NULL);
    bpv_signals_cleanup();

    /* loading */
    assert_null(bpv_model_load(NULL, NULL));
    assert_null(bpv_model_load(NULL, &err));
    EXPECT_NULL_ARG(&err, "bpv_model_load: path");
    size_t tlen;
    char *text = tu_read_file(model, &tlen);
    assert_non_null(text);
    assert_null(bpv_model_load_string("x.bp", NULL, 5, NULL));
    assert_null(bpv_model_load_string("x.bp", NULL, 5, &err));
    EXPECT_NULL_ARG(&err, "bpv_model_load_string: text");
    bpv_model *m = bpv_model_load_string("x.bp", NULL, 0, &err); /* the empty model */
    if (!m) fail_msg("%s", err->message);
    assert_int_equal(bpv_model_step_count(m), 0);
    bpv_model_free(m);
    m = bpv_model_load_string(NULL, text, tlen, &err); /* named "<string>" */
    if (!m) fail_msg("%s", err->message);
    free(text);
    bpv_model_free(NULL);

    /* traces */
    assert_null(bpv_trace_load(NULL, NULL));
    assert_null(bpv_trace_load(NULL, &err));
    EXPECT_NULL_ARG(&err, "bpv_trace_load: path");
    assert_null(bpv_trace_load_string("t.json", NULL, 5, NULL));
    assert_null(bpv_trace_load_string("t.json", NULL, 5, &err));
    EXPECT_NULL_ARG(&err, "bpv_trace_load_string: text");
    assert_null(bpv_trace_load_string(NULL, NULL, 0, &err)); /* empty: not a trace */
    assert_non_null(err);
    assert_non_null(strstr(err->message, "<string>:1:1: error: the file is empty"));
    bpv_error_free(err);
    err = NULL;
    assert_int_equal(bpv_model_is_trace(NULL), -1);
    assert_int_equal(bpv_model_is_trace(m), 0);

    /* step sets and running */
    assert_null(bpv_step_set_parse(NULL, NULL));
    assert_null(bpv_step_set_parse(NULL, &err));
    EXPECT_NULL_ARG(&err, "bpv_step_set_parse: spec");
    bpv_step_set_free(NULL);
    assert_int_equal(bpv_model_run(NULL, NULL, NULL), BPV_ERR_MODEL);
    assert_int_equal(bpv_model_run(NULL, NULL, &err), BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_model_run: model");
    assert_int_equal(bpv_model_run(m, NULL, NULL), BPV_OK); /* opts NULL: defaults */
    assert_int_equal(bpv_model_snapshot_count(m), 0);
    bpv_step_set *keep = bpv_step_set_parse("1,3", NULL);
    assert_non_null(keep);
    bpv_run_options ro = {0}; /* every pointer field NULL but keep */
    ro.keep = keep;
    assert_int_equal(bpv_model_run(m, &ro, &err), BPV_OK);
    bpv_step_set_free(keep);
    assert_int_equal(bpv_model_step_count(NULL), -1);
    assert_int_equal(bpv_model_step_count(m), 400);
    assert_int_equal(bpv_model_nonfinite_step(NULL), -1);
    assert_int_equal(bpv_model_nonfinite_step(m), 0);
    assert_int_equal(bpv_model_snapshot_count(NULL), 0);
    assert_null(bpv_model_snapshot(NULL, 0));
    assert_int_equal(bpv_model_snapshot_count(m), 2);
    const bpv_snapshot *s = bpv_model_snapshot(m, 0);
    assert_non_null(s);
    assert_null(bpv_model_snapshot(m, 2));

    /* check */
    char *report = (char *)"unchanged";
    assert_int_equal(bpv_check(NULL, NULL, &report, &err), BPV_ERR_MODEL);
    assert_null(report);
    EXPECT_NULL_ARG(&err, "bpv_check: model");
    assert_int_equal(bpv_check(NULL, NULL, NULL, NULL), BPV_ERR_MODEL);
    int st = bpv_check(model, NULL, &report, NULL); /* steps NULL: the default spread */
    assert_true(st == BPV_OK || st == BPV_CHECK_PROBLEMS);
    assert_non_null(report);
    free(report);
    assert_int_equal(bpv_check(model, "1", NULL, &err), st); /* report dropped */
    assert_null(err);

    /* bench */
    bpv_bench_result res = {0};
    bpv_bench_options bo = {5, 1, 0};
    assert_int_equal(bpv_model_bench(NULL, &bo, &res, NULL), BPV_ERR_MODEL);
    assert_int_equal(bpv_model_bench(NULL, &bo, &res, &err), BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_model_bench: model");
    assert_int_equal(bpv_model_bench(m, &bo, NULL, &err), BPV_OK);  /* res dropped */
    assert_int_equal(bpv_model_bench(m, NULL, &res, &err), BPV_OK); /* opts: defaults */
    assert_int_equal(res.steps, 1000);
    /* the bench freed the run's snapshots: run again to have some */
    keep = bpv_step_set_parse("1", NULL);
    ro.keep = keep;
    assert_int_equal(bpv_model_run(m, &ro, NULL), BPV_OK);
    bpv_step_set_free(keep);
    s = bpv_model_snapshot(m, 0);
    assert_non_null(s);

    /* snapshots */
    assert_int_equal(bpv_snapshot_step(NULL), -1);
    assert_int_equal(bpv_snapshot_epoch(NULL), -1);
    assert_true(isnan(bpv_snapshot_loss(NULL)));
    assert_int_equal(bpv_snapshot_step(s), 1);
    assert_int_equal(bpv_snapshot_epoch(s), 0);
    const double *v = NULL, *g = NULL;
    assert_int_equal(bpv_snapshot_node(NULL, "w", &v, &g), -1);
    assert_int_equal(bpv_snapshot_node(s, NULL, &v, &g), -1);
    assert_null(v);
    assert_null(g);
    assert_int_equal(bpv_snapshot_node(s, "w", NULL, &g), 1);
    assert_non_null(g);
    assert_int_equal(bpv_snapshot_node(s, "w", &v, NULL), 1);
    assert_non_null(v);

    /* formats and options */
    assert_int_equal(bpv_format_from_name(NULL), -1);
    assert_int_equal(bpv_format_from_path(NULL), -1);
    bpv_figure_options_init(NULL);
    bpv_render_options_init(NULL);

    /* exporting */
    char *out = (char *)"unchanged";
    size_t len = 7;
    const bpv_snapshot *snaps[2] = {s, NULL};
    assert_int_equal(bpv_export(NULL, snaps, 1, BPV_FORMAT_JSON, NULL, &out, &len, &err),
                     BPV_ERR_MODEL);
    assert_null(out);
    assert_int_equal(len, 0);
    EXPECT_NULL_ARG(&err, "bpv_export: model");
    assert_int_equal(bpv_export(m, NULL, 1, BPV_FORMAT_JSON, NULL, &out, &len, &err),
                     BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_export: snaps");
    assert_int_equal(bpv_export(m, snaps, 2, BPV_FORMAT_JSON, NULL, &out, &len, &err),
                     BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_export: snaps[1]");
    assert_int_equal(bpv_export(m, snaps, 1, BPV_FORMAT_JSON, NULL, NULL, &len, &err),
                     BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_export: out");
    assert_int_equal(bpv_export(m, snaps, 1, BPV_FORMAT_JSON, NULL, &out, NULL, &err),
                     BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_export: out_len");
    assert_int_equal(bpv_export(NULL, NULL, 0, BPV_FORMAT_JSON, NULL, NULL, NULL, NULL),
                     BPV_ERR_MODEL);
    /* snaps NULL with none: an empty trace; fig NULL: the defaults */
    assert_int_equal(bpv_export(m, NULL, 0, BPV_FORMAT_JSON, NULL, &out, &len, &err), BPV_OK);
    assert_non_null(strstr(out, "string>\"")); /* "<string>", '<' maybe escaped */
    free(out);
    assert_int_equal(bpv_export(m, NULL, 0, BPV_FORMAT_SVG, NULL, &out, &len, &err), BPV_ERR_MODEL);
    expect_error(&err, BPV_ERR_MODEL, "no step to draw");
    assert_int_equal(bpv_export(m, snaps, 1, BPV_FORMAT_DOT, NULL, &out, &len, &err), BPV_OK);
    free(out);

    out = (char *)"unchanged";
    assert_int_equal(bpv_snapshot_export(NULL, BPV_FORMAT_DOT, NULL, &out, &len, &err),
                     BPV_ERR_MODEL);
    assert_null(out);
    EXPECT_NULL_ARG(&err, "bpv_snapshot_export: snap");
    assert_int_equal(bpv_snapshot_export(s, BPV_FORMAT_DOT, NULL, NULL, &len, &err), BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_snapshot_export: out");
    assert_int_equal(bpv_snapshot_export(s, BPV_FORMAT_DOT, NULL, &out, NULL, &err), BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_snapshot_export: out_len");
    assert_int_equal(bpv_snapshot_export(NULL, BPV_FORMAT_DOT, NULL, NULL, NULL, NULL),
                     BPV_ERR_MODEL);
    assert_int_equal(bpv_snapshot_export(s, BPV_FORMAT_DOT, NULL, &out, &len, NULL), BPV_OK);
    free(out);

    assert_int_equal(bpv_snapshot_write(NULL, svg, -1, NULL, &err), BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_snapshot_write: snap");
    assert_int_equal(bpv_snapshot_write(s, NULL, -1, NULL, &err), BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_snapshot_write: path");
    assert_int_equal(bpv_snapshot_write(s, NULL, -1, NULL, NULL), BPV_ERR_MODEL);
    assert_int_equal(bpv_snapshot_write(s, svg, -1, NULL, NULL), BPV_OK); /* fig: defaults */

    /* the builder */
    bpv_builder_free(NULL);
    assert_int_equal(bpv_builder_param(NULL, "w", (double[]){1}, NULL, 0), -1);
    assert_int_equal(bpv_builder_data(NULL, "x", (double[]){1}, NULL, 0), -1);
    assert_int_equal(bpv_builder_const(NULL, 1), -1);
    assert_int_equal(bpv_builder_op(NULL, "y", "neg", 0, -1), -1);
    assert_null(bpv_builder_source(NULL));
    assert_null(bpv_builder_run(NULL, 0, 0, NULL));
    assert_null(bpv_builder_run(NULL, 0, 0, &err));
    expect_error(&err, BPV_ERR_RUNTIME, "bpv_builder_run: b is NULL");
    static const struct {
        int data; /* bpv_builder_data rather than _param */
        const char *name;
        int values, dims, rank; /* 0: that pointer is NULL */
        const char *what;
    } leaves[] = {
        {0, NULL, 1, 1, 1, "bpv_builder_param: name"},
        {0, "w", 0, 1, 1, "bpv_builder_param: values"},
        {0, "w", 1, 0, 1, "bpv_builder_param: dims"},
        {1, NULL, 1, 1, 1, "bpv_builder_data: name"},
        {1, "x", 0, 1, 1, "bpv_builder_data: values"},
        {1, "x", 1, 0, 1, "bpv_builder_data: dims"},
    };
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
        bpv_builder *b = bpv_builder_new();
        assert_non_null(b);
        int64_t d1[1] = {1};
        const double *vals = leaves[i].values ? (const double[]){1} : NULL;
        const int64_t *dims = leaves[i].dims ? d1 : NULL;
        int h = leaves[i].data ? bpv_builder_data(b, leaves[i].name, vals, dims, leaves[i].rank)
                               : bpv_builder_param(b, leaves[i].name, vals, dims, leaves[i].rank);
        assert_int_equal(h, -1);
        assert_null(bpv_builder_run(b, 0, 0, &err));
        EXPECT_NULL_ARG(&err, leaves[i].what);
        assert_null(bpv_builder_run(b, 0, 0, NULL));
        bpv_builder_free(b);
    }
    bpv_builder *b = bpv_builder_new();
    int w = bpv_builder_param(b, "w", (double[]){2}, NULL, 0); /* dims NULL, rank 0 */
    int x = bpv_builder_data(b, "x", (double[]){3}, NULL, 0);
    int t = bpv_builder_op(b, NULL, "mul", w, x); /* name NULL: unnamed */
    assert_true(w >= 0 && x >= 0 && t >= 0);
    s = bpv_builder_run(b, t, 0, NULL);
    assert_non_null(s);
    assert_true(bpv_snapshot_loss(s) == 6.0);
    assert_non_null(bpv_builder_source(b));
    assert_int_equal(bpv_builder_op(b, "y", NULL, w, -1), -1);
    assert_null(bpv_builder_run(b, t, 0, &err));
    EXPECT_NULL_ARG(&err, "bpv_builder_op: op");
    assert_null(bpv_builder_source(b));
    bpv_builder_free(b);

    /* the whole job */
    assert_int_equal(bpv_render(NULL, NULL), BPV_ERR_MODEL);
    assert_int_equal(bpv_render(NULL, &err), BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_render: opts");
    bpv_render_options rdo;
    bpv_render_options_init(&rdo);
    rdo.output = svg;
    assert_int_equal(bpv_render(&rdo, &err), BPV_ERR_MODEL); /* model still NULL */
    EXPECT_NULL_ARG(&err, "bpv_render: opts->model");
    rdo.model = model; /* steps, font, focus, report, on_progress: NULL */
    rdo.gradcheck = 1;
    assert_int_equal(bpv_render(&rdo, &err), BPV_OK);
    assert_null(err);

    snprintf(path, sizeof path, "%s/written", dir);
    assert_int_equal(bpv_file_write_atomic(NULL, "abc", 3, NULL), BPV_ERR_MODEL);
    assert_int_equal(bpv_file_write_atomic(NULL, "abc", 3, &err), BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_file_write_atomic: path");
    assert_int_equal(bpv_file_write_atomic(path, NULL, 3, &err), BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_file_write_atomic: data");
    assert_int_equal(access(path, F_OK), -1);                             /* nothing written */
    assert_int_equal(bpv_file_write_atomic(path, NULL, 0, &err), BPV_OK); /* an empty file */
    char *back = tu_read_file(path, &len);
    assert_non_null(back);
    assert_int_equal(len, 0);
    free(back);

    assert_int_equal(bpv_watch(NULL, NULL, NULL), BPV_ERR_MODEL);
    assert_int_equal(bpv_watch(NULL, NULL, &err), BPV_ERR_MODEL);
    EXPECT_NULL_ARG(&err, "bpv_watch: render");
    rdo.model = "-"; /* watch NULL is accepted; standard input is refused */
    assert_int_equal(bpv_watch(&rdo, NULL, &err), BPV_ERR_MODEL);
    expect_error(&err, BPV_ERR_MODEL, "standard input");

    bpv_model_free(m);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    assert_int_equal(system(path), 0);
}

/* samples/api_demo.c, built by the tests, writes its SVG. */
static void test_api_demo(void **state) {
    (void)state;
    char dir[] = "/tmp/bpv-demo-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char svg[64];
    snprintf(svg, sizeof svg, "%s/demo.svg", dir);
    char *argv[] = {BPV_API_DEMO_PATH, svg, NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_run(argv, &out, NULL, &err), 0);
    assert_non_null(strstr(out, "y = 0.622459"));
    assert_non_null(strstr(out, "dy/dw = 0.352506"));
    size_t len;
    char *text = tu_read_file(svg, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "</svg>"));
    assert_non_null(strstr(text, "∂y/∂w"));
    free(text);
    free(out);
    free(err);
    unlink(svg);
    rmdir(dir);
}

/* The memory budget: set, refused below 1 MiB, and 0 back to the default;
 * a model past it fails to load with the budget named, and a run whose kept
 * steps would pass it fails before training. */
static void test_memory_budget(void **state) {
    (void)state;
    const char *src = "param W = zeros([256, 256])\nloss = sum(W * W)\ntrain epochs=50\n";
    assert_int_equal(bpv_memory_budget_set(1000), BPV_ERR_MODEL);
    assert_int_equal(bpv_memory_budget_set(1u << 20), BPV_OK);
    bpv_error *err = NULL;
    assert_null(bpv_model_load_string("m.bp", src, strlen(src), &err));
    assert_non_null(err);
    assert_int_equal(err->status, BPV_ERR_MODEL);
    assert_non_null(strstr(err->message, "m.bp:1:11: error: the model with this param "));
    assert_non_null(strstr(err->message, "more than the memory budget of 1 MiB"));
    bpv_error_free(err);
    err = NULL;
    assert_int_equal(bpv_memory_budget_set(8u << 20), BPV_OK);
    bpv_model *m = bpv_model_load_string("m.bp", src, strlen(src), &err);
    assert_non_null(m);
    bpv_step_set *all = bpv_step_set_parse("all", &err);
    assert_non_null(all);
    bpv_run_options ro = {0};
    ro.keep = all;
    assert_int_equal(bpv_model_run(m, &ro, &err), BPV_ERR_MODEL);
    assert_non_null(strstr(err->message, "keeping 50 steps of this model ("));
    assert_non_null(strstr(err->message, "keep fewer steps (--steps 1-50/"));
    assert_int_equal(bpv_model_snapshot_count(m), 0);
    bpv_error_free(err);
    err = NULL;
    assert_int_equal(bpv_memory_budget_set(0), BPV_OK); /* the default: at least 8 MiB */
    assert_int_equal(bpv_model_run(m, &ro, &err), BPV_OK);
    assert_int_equal(bpv_model_snapshot_count(m), 50);
    bpv_step_set_free(all);
    bpv_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_builder_sigmoid), cmocka_unit_test(test_builder_tensors),
        cmocka_unit_test(test_builder_errors),  cmocka_unit_test(test_run_callback),
        cmocka_unit_test(test_api_demo),        cmocka_unit_test(test_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
