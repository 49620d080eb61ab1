/* Traces read back (src/trace.c, src/jsonread.c): a model's figure and the
 * figure of its JSON trace are the same bytes; every number of a trace
 * reads back as the exact float32 bpviz wrote; a recorded trace's unknown
 * ops and modules are drawn (DOT read back with cgraph); step selection,
 * the NaN/inf origin computed on traces, refusals, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <graphviz/cgraph.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpviz/bpviz.h"
#include "snapshot.h"
#include "testutil.h"

static char *model_path(const char *rel) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 512, "%s/%s", BPV_SOURCE_DIR, rel);
    return b;
}

/* bpv_render of `input` into `output` with the step selection and options
 * given; returns the status (the error is dropped after printing it). */
static int render(const char *input, const char *output, int format, const char *steps,
                  int gradcheck, bpv_tensors tensors) {
    bpv_render_options o;
    bpv_render_options_init(&o);
    o.model = input;
    o.output = output;
    o.format = format;
    o.steps = steps;
    o.gradcheck = gradcheck;
    o.figure.tensors = tensors;
    bpv_error *err = NULL;
    int rc = bpv_render(&o, &err);
    if (err) print_message("%s", err->message);
    bpv_error_free(err);
    return rc;
}

/* The figure of a model's step and the figure of its trace are the same
 * bytes, in `format`: `bpviz m.bp -T json -o t.json; bpviz t.json` as
 * `bpviz m.bp`, each drawing in a process of its own as a user runs them. */
static void same_figure(const char *model, const char *steps, int format, int gradcheck,
                        bpv_tensors tensors) {
    static const char *const fmts[] = {"dot", "svg", "png", "pdf", "json", "html"};
    static const char *const tens[] = {"auto", "values", "heatmap"};
    char *json = tu_tmp_path("rt.json"), *a = tu_tmp_path("rt.a"), *b = tu_tmp_path("rt.b");
    const char *path = model_path(model), *gc = gradcheck ? "--gradcheck" : "";
    assert_int_equal(tu_sh("%s %s --steps %s %s -T json -o %s 2>/dev/null", BPV_CLI_PATH, path,
                           steps, gc, json),
                     0);
    assert_int_equal(tu_sh("%s %s --steps %s %s -T %s --tensors %s -o %s 2>/dev/null",
                           BPV_CLI_PATH, path, steps, gc, fmts[format], tens[tensors], a),
                     0);
    /* the trace holds that one step: its default selection is it */
    assert_int_equal(tu_sh("%s %s -T %s --tensors %s -o %s", BPV_CLI_PATH, json, fmts[format],
                           tens[tensors], b),
                     0);
    size_t la, lb;
    char *da = tu_read_file(a, &la), *db = tu_read_file(b, &lb);
    assert_non_null(da);
    assert_non_null(db);
    if (la != lb || memcmp(da, db, la) != 0) {
        tu_sh("diff %s %s | head -20 >&2", a, b);
        fail_msg("%s (%s, format %d): the trace's figure differs from the model's", model,
                 steps, format);
    }
    free(da);
    free(db);
}

static void test_round_trip_figures(void **state) {
    (void)state;
    same_figure("samples/linear.bp", "1", BPV_FORMAT_SVG, 0, BPV_TENSORS_AUTO);
    same_figure("samples/two_layer_sigmoid.bp", "last", BPV_FORMAT_SVG, 0, BPV_TENSORS_AUTO);
    same_figure("samples/lenet.bp", "1", BPV_FORMAT_DOT, 0, BPV_TENSORS_AUTO);      /* CNN */
    same_figure("samples/lenet.bp", "2", BPV_FORMAT_SVG, 0, BPV_TENSORS_HEATMAP);
    same_figure("samples/rnn_hello.bp", "last", BPV_FORMAT_SVG, 0, BPV_TENSORS_AUTO); /* loops */
    same_figure("samples/bptt.bp", "3", BPV_FORMAT_DOT, 0, BPV_TENSORS_AUTO);
    same_figure("samples/exploding.bp", "first-nonfinite", BPV_FORMAT_SVG, 0, BPV_TENSORS_AUTO);
    same_figure("samples/nan_log.bp", "first-nonfinite", BPV_FORMAT_DOT, 0, BPV_TENSORS_AUTO);
    same_figure("samples/broken_grad.bp", "1", BPV_FORMAT_SVG, 1, BPV_TENSORS_AUTO); /* marks */
    same_figure("samples/residual.bp", "last", BPV_FORMAT_DOT, 0, BPV_TENSORS_VALUES);
    same_figure("tests/golden/fn_grad_exact.bp", "1", BPV_FORMAT_DOT, 0, BPV_TENSORS_AUTO);
}

/* Every number of a trace bpviz wrote reads back as the same bits, and a
 * trace written again from the trace is the same text. */
static void test_round_trip_numbers(void **state) {
    (void)state;
    static const char *const models[] = {"samples/lenet.bp", "samples/rnn_hello.bp",
                                         "samples/exploding.bp", "samples/two_layer_sigmoid.bp"};
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        bpv_error *err = NULL;
        bpv_model *m = bpv_model_load(model_path(models[k]), &err);
        assert_non_null(m);
        bpv_step_set *keep = bpv_step_set_parse("1-3", &err);
        bpv_run_options ro = {0};
        ro.keep = keep;
        ro.stop_after_last_kept = 1;
        assert_int_equal(bpv_model_run(m, &ro, &err), 0);
        size_t n = bpv_model_snapshot_count(m);
        const bpv_snapshot *snaps[3];
        for (size_t i = 0; i < n; i++) snaps[i] = bpv_model_snapshot(m, i);
        char *json = NULL;
        size_t len = 0;
        assert_int_equal(bpv_export(m, snaps, n, BPV_FORMAT_JSON, NULL, &json, &len, &err), 0);
        bpv_model *t = bpv_trace_load_string("t.json", json, len, &err);
        if (!t) fail_msg("%s", err->message);
        assert_int_equal(bpv_model_is_trace(t), 1);
        assert_int_equal(bpv_model_is_trace(m), 0);
        assert_int_equal(bpv_model_snapshot_count(t), n);
        for (size_t i = 0; i < n; i++) tu_same_snapshot(snaps[i], bpv_model_snapshot(t, i));
        const bpv_snapshot *tsn[3];
        for (size_t i = 0; i < n; i++) tsn[i] = bpv_model_snapshot(t, i);
        char *again = NULL;
        size_t alen = 0;
        assert_int_equal(bpv_export(t, tsn, n, BPV_FORMAT_JSON, NULL, &again, &alen, &err), 0);
        assert_int_equal(alen, len);
        assert_memory_equal(again, json, len);
        free(again);
        free(json);
        bpv_model_free(t);
        bpv_step_set_free(keep);
        bpv_model_free(m);
    }
}

/* A graph's subgraph called `name`, searched at every depth. */
static Agraph_t *find_sub(Agraph_t *g, const char *name) {
    Agraph_t *s = agsubg(g, (char *)name, 0);
    for (Agraph_t *c = agfstsubg(g); !s && c; c = agnxtsubg(c)) s = find_sub(c, name);
    return s;
}

static const char *attr(void *obj, const char *name) {
    const char *v = agget(obj, (char *)name);
    return v ? v : "";
}

/* A recorded trace: ops bpviz has no row for are drawn by name with their
 * PyTorch class as a tooltip; modules are nested clusters. */
static void test_recorded_trace_figure(void **state) {
    (void)state;
    bpv_error *err = NULL;
    bpv_model *t = bpv_trace_load(model_path("tests/data/traces/recorded.json"), &err);
    if (!t) fail_msg("%s", err->message);
    assert_int_equal(bpv_model_snapshot_count(t), 2);
    assert_int_equal(bpv_model_step_count(t), 3);
    assert_int_equal(bpv_model_nonfinite_step(t), 3);
    const bpv_snapshot *s = bpv_model_snapshot(t, 0);
    char *dot = NULL;
    size_t len = 0;
    assert_int_equal(bpv_export(t, &s, 1, BPV_FORMAT_DOT, NULL, &dot, &len, &err), 0);
    Agraph_t *g = agmemread(dot);
    assert_non_null(g);
    Agraph_t *feat = agsubg(g, "cluster_module:features", 0);
    assert_non_null(feat); /* the outer module at the top */
    Agraph_t *lin = agsubg(feat, "cluster_module:features.0", 0);
    Agraph_t *relu = agsubg(feat, "cluster_module:features.1", 0);
    assert_non_null(lin); /* nested by path */
    assert_non_null(relu);
    assert_null(find_sub(g, "cluster_module:"));
    assert_string_equal(attr(lin, "label"), "features.0 · Linear");
    assert_string_equal(attr(relu, "label"), "features.1 · ReLU");
    assert_string_equal(attr(feat, "label"), "features");
    /* the weight, its transpose and addmm are in the Linear's cluster; x is not */
    assert_non_null(agnode(lin, "n1", 0));
    assert_non_null(agnode(lin, "n4", 0));
    assert_null(agnode(feat, "n0", 0));
    assert_non_null(agnode(feat, "n6", 0)); /* view: made by "features" itself */
    assert_null(agnode(lin, "n6", 0));
    Agnode_t *addmm = agnode(g, "n4", 0);
    assert_non_null(addmm);
    assert_non_null(strstr(attr(addmm, "label"), ">addmm<"));
    assert_string_equal(attr(addmm, "tooltip"), "AddmmBackward0");
    assert_non_null(strstr(attr(agnode(g, "n5", 0), "label"), "ReLU")); /* bpviz's own op */
    /* view's value was not recorded: "?" on its edge out, not NaN */
    Agedge_t *out = agedge(g, agnode(g, "n6", 0), agnode(g, "n7", 0), "f6", 0);
    assert_non_null(out);
    assert_non_null(strstr(attr(out, "label"), "&#8201;?&#8201;"));
    assert_null(strstr(attr(out, "label"), "NaN"));
    agclose(g);
    free(dot);

    /* the recorder's names go back out as they came in */
    char *json = NULL;
    assert_int_equal(bpv_export(t, &s, 1, BPV_FORMAT_JSON, NULL, &json, &len, &err), 0);
    assert_non_null(strstr(json, "\"op\": \"addmm\", \"inputs\": [2, 0, 3]"));
    assert_non_null(strstr(json, "\"torch\": \"AddmmBackward0\", \"module\": \"features.0\", "
                                 "\"module_class\": \"Linear\""));
    assert_non_null(strstr(json, "\"op\": \"view\", \"inputs\": [5], \"shape\": [2], \"value\": "
                                 "null"));
    assert_null(strstr(json, "\"nonfinite\"")); /* a value not recorded is not a NaN */
    free(json);
    bpv_model_free(t);
}

/* text with its first `from` replaced by `to` (malloc'd). */
static char *replaced(const char *text, const char *from, const char *to) {
    const char *p = strstr(text, from);
    assert_non_null(p);
    size_t a = (size_t)(p - text), lf = strlen(from), lt = strlen(to), n = strlen(text);
    char *r = malloc(n - lf + lt + 1);
    assert_non_null(r);
    memcpy(r, text, a);
    memcpy(r + a, to, lt);
    memcpy(r + a + lt, p + lf, n - a - lf + 1);
    return r;
}

/* Where the first NaN or infinity comes from, computed on a recorded trace
 * that does not say: forward, an op whose inputs are finite; backward, the
 * first partial in reverse order whose op's gradient is finite. */
static void test_recorded_nonfinite(void **state) {
    (void)state;
    bpv_error *err = NULL;
    bpv_model *t = bpv_trace_load(model_path("tests/data/traces/recorded.json"), &err);
    assert_non_null(t);
    const bpv_snapshot *s1 = bpv_model_snapshot(t, 0), *s3 = bpv_model_snapshot(t, 1);
    assert_int_equal(s1->nf_pass, 0);
    assert_int_equal(s3->nf_pass, 1);
    assert_int_equal(s3->nf_node, 2);
    assert_string_equal(s3->nf_note, "log(−1) = NaN");
    assert_false(s3->nodes[0].nonfinite);
    assert_true(s3->nodes[2].nonfinite);
    bpv_model_free(t);

    /* backward: a chained partial NaN where the op's gradient is finite */
    char *text = tu_read_file(model_path("tests/data/traces/tiny.json"), NULL);
    assert_non_null(text);
    char *nf = replaced(text, "\"chained\": [5.0, 7.0, 9.0]", "\"chained\": [5.0, \"inf\", 9.0]");
    free(text);
    text = nf;
    t = bpv_trace_load_string("tiny.json", text, strlen(text), &err);
    if (!t) fail_msg("%s", err->message);
    const bpv_snapshot *s = bpv_model_snapshot(t, 0);
    assert_int_equal(s->nf_pass, 2);
    assert_int_equal(s->nf_edge, 1);
    assert_int_equal(s->nf_node, 2);
    assert_non_null(strstr(s->nf_note, "mul backward"));
    assert_int_equal(bpv_model_nonfinite_step(t), 1);
    bpv_model_free(t);
    free(text);

    /* first-nonfinite draws that step; a trace without one is an error */
    assert_int_equal(render(model_path("tests/data/traces/recorded.json"), tu_tmp_path("nf.json"),
                            BPV_FORMAT_JSON, "first-nonfinite", 0, BPV_TENSORS_AUTO),
                     0);
    char *out = tu_read_file(tu_tmp_path("nf.json"), NULL);
    assert_non_null(strstr(out, "\"step\": 3,"));
    assert_null(strstr(out, "\"step\": 1,"));
    assert_non_null(strstr(out, "\"nonfinite\": {\"pass\": \"forward\", \"node\": 2, \"edge\": "
                                "null, \"note\": \"log(−1) = NaN\"}"));
    free(out);
    assert_int_equal(render(model_path("tests/data/traces/tiny.json"), tu_tmp_path("nf.svg"),
                            -1, "first-nonfinite", 0, BPV_TENSORS_AUTO),
                     BPV_ERR_MODEL);
}

/* Step selection on a trace: the steps it holds, "last", ranges, files per
 * step; a step it does not hold is an error naming the ones it has. */
static void test_select(void **state) {
    (void)state;
    const char *rec = model_path("tests/data/traces/recorded.json");
    assert_int_equal(render(rec, tu_tmp_path("s.json"), -1, "last", 0, 0), 0);
    char *out = tu_read_file(tu_tmp_path("s.json"), NULL);
    assert_non_null(strstr(out, "\"step\": 3,"));
    assert_null(strstr(out, "\"step\": 1,"));
    free(out);
    assert_int_equal(render(rec, tu_tmp_path("all.json"), -1, "1-3", 0, 0), 0);
    out = tu_read_file(tu_tmp_path("all.json"), NULL);
    assert_non_null(strstr(out, "\"step\": 1,"));
    assert_non_null(strstr(out, "\"step\": 3,"));
    free(out);
    assert_int_equal(render(rec, tu_tmp_path("step%d.dot"), -1, "all", 0, 0), 0);
    assert_non_null(out = tu_read_file(tu_tmp_path("step1.dot"), NULL));
    free(out);
    assert_non_null(out = tu_read_file(tu_tmp_path("step3.dot"), NULL));
    free(out);

    bpv_render_options o;
    bpv_render_options_init(&o);
    o.model = rec;
    o.output = tu_tmp_path("two.svg");
    o.steps = "2";
    bpv_error *err = NULL;
    assert_int_equal(bpv_render(&o, &err), BPV_ERR_MODEL);
    assert_string_equal(err->message, "bpviz: error: the trace holds no step that '2' selects; "
                                      "its steps are: 1, 3\n");
    bpv_error_free(err);
    err = NULL;
    o.steps = "all"; /* two figures need %d, as for a model */
    assert_int_equal(bpv_render(&o, &err), BPV_ERR_MODEL);
    assert_non_null(strstr(err->message, "put %d in the name"));
    bpv_error_free(err);
    err = NULL;
    o.steps = "1";
    o.gradcheck = 1;
    assert_int_equal(bpv_render(&o, &err), BPV_ERR_MODEL);
    assert_non_null(strstr(err->message, "the gradient check runs the model"));
    bpv_error_free(err);
}

/* What needs a model refuses a trace with a message that says so. */
static void test_trace_refused(void **state) {
    (void)state;
    const char *tiny = model_path("tests/data/traces/tiny.json");
    bpv_error *err = NULL;
    bpv_model *t = bpv_trace_load(tiny, &err);
    assert_non_null(t);
    assert_int_equal(bpv_model_run(t, NULL, &err), BPV_ERR_MODEL);
    assert_non_null(strstr(err->message, "is a JSON trace, not a model"));
    bpv_error_free(err);
    err = NULL;
    assert_int_equal(bpv_model_bench(t, NULL, NULL, &err), BPV_ERR_MODEL);
    bpv_error_free(err);
    err = NULL;
    bpv_model_free(t);
    assert_null(bpv_model_load(tiny, &err));
    assert_int_equal(err->status, BPV_ERR_MODEL);
    assert_non_null(strstr(err->message, "is a JSON trace, not a model"));
    bpv_error_free(err);
    err = NULL;
    assert_int_equal(bpv_check(tiny, NULL, NULL, &err), BPV_ERR_MODEL);
    bpv_error_free(err);

    char *out = NULL, *msg = NULL;
    assert_int_equal(tu_bpviz(&out, &msg, "run", tiny, NULL), 2);
    assert_non_null(strstr(msg, "is a JSON trace, not a model"));
    free(out), free(msg);
    assert_int_equal(tu_bpviz(&out, &msg, "check", tiny, NULL), 2);
    assert_non_null(strstr(msg, "is a JSON trace, not a model"));
    free(out), free(msg);
    assert_int_equal(tu_bpviz(&out, &msg, tiny, "--gradcheck", NULL), 2);
    assert_non_null(strstr(msg, "the gradient check runs the model"));
    free(out), free(msg);
}

/* A trace is recognised by its name or by its text: standard input and a
 * file named otherwise are read as traces when they start with '{'. */
static void test_detect(void **state) {
    (void)state;
    char *text = tu_read_file(model_path("tests/data/traces/tiny.json"), NULL);
    assert_non_null(text);
    assert_int_equal(tu_write_file(tu_tmp_path("tiny.trace"), text, strlen(text)), 0);
    char *out = NULL, *msg = NULL;
    assert_int_equal(tu_bpviz(&out, &msg, tu_tmp_path("tiny.trace"), "-T", "dot", NULL), 0);
    assert_non_null(strstr(out, "cluster_module:layer"));
    assert_non_null(strstr(out, "layer · Scale"));
    free(out), free(msg);
    assert_int_equal(tu_sh("%s - -T json < %s > %s", BPV_CLI_PATH, tu_tmp_path("tiny.trace"),
                           tu_tmp_path("stdin.json")),
                     0);
    free(out = tu_read_file(tu_tmp_path("stdin.json"), NULL));
    assert_non_null(out);
    free(text);
    /* a .json file with a model's text is a trace: its error says JSON */
    assert_int_equal(tu_write_file(tu_tmp_path("m.json"), "param w = 1\n", 12), 0);
    assert_int_equal(tu_bpviz(&out, &msg, tu_tmp_path("m.json"), NULL), 2);
    assert_non_null(strstr(msg, "m.json:1:1: error: expected a value"));
    free(out), free(msg);
}

/* Limits: the file's size, nodes, nesting, each with its variable. */
static void test_limits(void **state) {
    (void)state;
    const char *tiny = model_path("tests/data/traces/tiny.json");
    assert_int_equal(tu_sh("BPV_MAX_NODES=3 %s %s -o %s 2> %s", BPV_CLI_PATH, tiny,
                           tu_tmp_path("l.svg"), tu_tmp_path("l.err")),
                     2);
    char *msg = tu_read_file(tu_tmp_path("l.err"), NULL);
    assert_non_null(strstr(msg, "tiny.json:11:16: error: steps[0].nodes: 5 nodes; the limit is 3 "
                                "(BPV_MAX_NODES)"));
    free(msg);
    assert_int_equal(tu_sh("BPV_MAX_NESTING=3 %s %s -o %s 2> %s", BPV_CLI_PATH, tiny,
                           tu_tmp_path("l.svg"), tu_tmp_path("l.err")),
                     2);
    msg = tu_read_file(tu_tmp_path("l.err"), NULL);
    assert_non_null(strstr(msg, "nested more than 3 deep (BPV_MAX_NESTING)"));
    free(msg);
    /* a trace over the size limit is refused before it is parsed */
    assert_int_equal(tu_sh("head -c 2000000 /dev/zero | tr '\\0' ' ' > %s && echo '{}' >> %s",
                           tu_tmp_path("big.json"), tu_tmp_path("big.json")),
                     0);
    assert_int_equal(tu_sh("BPV_MAX_TRACE_MB=1 %s %s -o %s 2> %s", BPV_CLI_PATH,
                           tu_tmp_path("big.json"), tu_tmp_path("l.svg"), tu_tmp_path("l.err")),
                     2);
    msg = tu_read_file(tu_tmp_path("l.err"), NULL);
    assert_non_null(strstr(msg, "is larger than 1 MiB (BPV_MAX_TRACE_MB)"));
    free(msg);
    assert_int_equal(tu_sh("BPV_MAX_TRACE_MB=1 %s - -o %s < %s 2> %s", BPV_CLI_PATH,
                           tu_tmp_path("l.svg"), tu_tmp_path("big.json"), tu_tmp_path("l.err")),
                     2);
    msg = tu_read_file(tu_tmp_path("l.err"), NULL);
    assert_non_null(strstr(msg, "trace '-' is larger than 1 MiB (BPV_MAX_TRACE_MB)"));
    free(msg);
    assert_int_equal(tu_sh("BPV_MAX_TRACE_MB=zero %s %s 2> /dev/null", BPV_CLI_PATH, tiny), 2);
}

/* JSON the reader takes besides bpviz's own spelling: Python's NaN and
 * Infinity, escapes, a byte order mark; f32 numbers rounded to float32. */
static void test_json_spellings(void **state) {
    (void)state;
    char *text = tu_read_file(model_path("tests/data/traces/tiny.json"), NULL);
    assert_non_null(text);
    char *a = replaced(text, "\"value\": [0.5, 0.25, 1.0]", "\"value\": [NaN, 0.1e0, -Infinity]");
    char *b = replaced(a, "\"name\": \"w\"", "\"name\": \"\\u03c9\"");
    char *c = replaced(b, "{", "\xef\xbb\xbf{");
    char *d = replaced(c, "{\"name\": \"w\", \"node\": 1", "{\"name\": \"\\u03c9\", \"node\": 1");
    bpv_error *err = NULL;
    bpv_model *t = bpv_trace_load_string(NULL, d, strlen(d), &err);
    if (!t) fail_msg("%s", err->message);
    const double *v;
    assert_int_equal(bpv_snapshot_node(bpv_model_snapshot(t, 0), "ω", &v, NULL), 3);
    assert_true(isnan(v[0]));
    assert_true(v[1] == (double)0.1f);
    assert_true(isinf(v[2]) && v[2] < 0);
    bpv_model_free(t);
    free(a), free(b), free(c), free(d), free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_figures), cmocka_unit_test(test_round_trip_numbers),
        cmocka_unit_test(test_recorded_trace_figure), cmocka_unit_test(test_recorded_nonfinite),
        cmocka_unit_test(test_select),          cmocka_unit_test(test_trace_refused),
        cmocka_unit_test(test_detect),          cmocka_unit_test(test_limits),
        cmocka_unit_test(test_json_spellings),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
