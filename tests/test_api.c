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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builder_sigmoid), cmocka_unit_test(test_builder_tensors),
        cmocka_unit_test(test_builder_errors),  cmocka_unit_test(test_run_callback),
        cmocka_unit_test(test_api_demo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
