/* Running a loaded model again: every run starts from the initial params
 * with new optimizers and no kept steps, so the same model run twice (or
 * after a run with other options, or a bench) prints the same bytes and
 * keeps the same snapshots as a freshly loaded one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "testutil.h"
#include "snapshot.h"

/* SGD (a scalar plan), momentum, Adam, batched, the last batch smaller, non-finite */
static const char *const golden[] = {"linear.bp", "momentum.bp", "adam.bp", "batch_mse.bp",
                                     "nonfinite.bp", "two_trains.bp"};

/* Tensor models over float32 storage (f32, the default) and one over
 * doubles: plain SGD, momentum and Adam (params of 8 elements and more take
 * the AVX2 kernels, the rest the scalar loops); shuffled batches with a
 * smaller last one; two trains, each with a new optimizer. */
static const char *const texts[] = {
    "data x = [[1, 2], [3, -1], [0.5, 4], [2, 2], [-1, 1], [3, 0], [1, 1]]\n"
    "data y = [1, -1, 2, 0.5, -2, 1, 0]\n"
    "param W = randn([2, 3], seed=3, std=0.5)\nparam v = uniform([3], -1, 1, seed=4)\n"
    "loss = mse(tanh(x @ W) @ v, y)\n"
    "train epochs=4 lr=0.05 batch=3 shuffle=true seed=11\n",
    "data x = [[1, 2], [3, -1], [0.5, 4], [2, 2], [-1, 1]]\n"
    "data y = [1, -1, 2, 0.5, -2]\n"
    "param W = randn([2, 3], seed=5)\nparam v = ones([3])\n"
    "loss = mse(sigmoid(x @ W) @ v, y)\n"
    "train epochs=3 lr=0.1 batch=2 shuffle=true seed=2 momentum=0.5\n"
    "train epochs=2 optimizer=adam batch=all\npredict v()\n",
    "data x = [[1, 2, 0], [3, -1, 1], [0.5, 4, -2], [2, 2, 2], [-1, 1, 0.5]]\n"
    "data y = [1, -1, 2, 0.5, -2]\n"
    "param W = randn([3, 11], seed=7, std=0.3)\nparam v = uniform([11], -1, 1, seed=8)\n"
    "param c = 0.1\n"
    "loss = mse(tanh(x @ W) @ v + c, y)\n"
    "train epochs=3 lr=0.05 batch=2 momentum=0.9\n"
    "train epochs=3 optimizer=adam lr=0.01 batch=2 shuffle=true seed=3\npredict c()\n",
    "dtype f64\n"
    "data x = [[1, 2], [3, -1], [0.5, 4], [2, 2], [-1, 1]]\n"
    "data y = [1, -1, 2, 0.5, -2]\n"
    "param W = randn([2, 9], seed=5)\nparam v = ones([9])\n"
    "loss = mse(sigmoid(x @ W) @ v, y)\n"
    "train epochs=2 lr=0.1 batch=2 momentum=0.5\n"
    "train epochs=2 optimizer=adam batch=all\n",
};

static bpv_model *load_golden(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/golden/%s", BPV_SOURCE_DIR, name);
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(path, &err);
    if (!m) fail_msg("load %s: %s", name, err ? err->message : "");
    return m;
}

static bpv_model *load_text(const char *text) {
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string("t.bp", text, strlen(text), &err);
    if (!m) fail_msg("load: %s", err ? err->message : "");
    return m;
}

static void on_warning(const char *msg, void *user) {
    (void)msg;
    ++*(int *)user;
}

/* Runs m (keeping `keep`, NULL: none) with its output in a temporary file
 * and returns that output (free it). `inspect` adds a warning callback,
 * which makes every step's finiteness looked at; `gradcheck` checks the
 * kept steps. */
static char *run(bpv_model *m, const char *keep, bool inspect, bool gradcheck) {
    FILE *f = tmpfile();
    assert_non_null(f);
    bpv_error *err = NULL;
    bpv_step_set *set = keep ? bpv_step_set_parse(keep, &err) : NULL;
    int warnings = 0;
    bpv_run_options o = {0};
    o.out = f;
    o.keep = set;
    o.gradcheck = gradcheck;
    if (inspect) {
        o.on_warning = on_warning;
        o.warning_user = &warnings;
    }
    int rc = bpv_model_run(m, &o, &err);
    bpv_step_set_free(set);
    if (rc != BPV_OK) fail_msg("run failed: %s", err ? err->message : "");
    long len = ftell(f);
    assert_true(len >= 0);
    char *out = calloc((size_t)len + 1, 1);
    assert_non_null(out);
    rewind(f);
    assert_int_equal(fread(out, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return out;
}

/* n numbers of a param's buffer in m's storage (float32 or double) */
static void same_stored(const bpv_model *m, const void *a, const void *b, int64_t n) {
    assert_memory_equal(a, b, (size_t)n * (m->f32store ? sizeof(float) : sizeof(double)));
}

static void same_snapshots(const bpv_model *a, const bpv_model *b) {
    assert_int_equal(bpv_model_snapshot_count(a), bpv_model_snapshot_count(b));
    for (size_t i = 0; i < bpv_model_snapshot_count(a); i++)
        tu_same_snapshot(bpv_model_snapshot(a, i), bpv_model_snapshot(b, i));
}

/* m run twice and a fresh copy run once, keeping `keep`: the same output,
 * the same snapshots, the same first non-finite step. */
static void twice(bpv_model *m, bpv_model *fresh, const char *keep, bool inspect) {
    char *want = run(fresh, keep, inspect, false);
    for (int r = 0; r < 2; r++) {
        char *got = run(m, keep, inspect, false);
        assert_string_equal(got, want);
        same_snapshots(m, fresh);
        assert_int_equal(bpv_model_nonfinite_step(m), bpv_model_nonfinite_step(fresh));
        free(got);
    }
    free(want);
}

/* Every model, with every step kept (the double graph, edges read) and with
 * none (the fast paths), under inspection and without. */
static void check_model(bpv_model *(*loader)(const char *), const char *what) {
    static const char *const keeps[] = {"all", NULL, "2,5-7"};
    for (int k = 0; k < 3; k++)
        for (int inspect = 0; inspect < 2; inspect++) {
            bpv_model *m = loader(what), *fresh = loader(what);
            twice(m, fresh, keeps[k], inspect);
            bpv_model_free(m);
            bpv_model_free(fresh);
        }
}

static void test_golden_twice(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof golden / sizeof *golden; i++) check_model(load_golden, golden[i]);
}

static void test_tensor_twice(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) check_model(load_text, texts[i]);
}

/* What a run leaves behind (other kept steps, gradient checks, a bench that
 * trains longer) does not reach the next run. */
static void test_after_other_runs(void **state) {
    (void)state;
    const char *models[] = {"momentum.bp", "adam.bp", "nonfinite.bp", "batch_mse.bp"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        bpv_model *m = load_golden(models[i]), *fresh = load_golden(models[i]);
        char *want = run(fresh, "1-3", false, false);
        free(run(m, "2", true, true));
        bpv_bench_result res;
        bpv_bench_options bo = {bpv_model_step_count(m) * 3, 1, 0};
        bpv_error *err = NULL;
        assert_int_equal(bpv_model_bench(m, &bo, &res, &err), BPV_OK);
        assert_int_equal(bpv_model_snapshot_count(m), 0);
        assert_int_equal(bpv_model_step_count(m), bpv_model_step_count(fresh));
        char *got = run(m, "1-3", false, false);
        assert_string_equal(got, want);
        same_snapshots(m, fresh);
        free(got), free(want);
        bpv_model_free(m);
        bpv_model_free(fresh);
    }
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        bpv_model *m = load_text(texts[i]), *fresh = load_text(texts[i]);
        char *want = run(fresh, NULL, false, false);
        free(run(m, "all", true, true));
        char *got = run(m, NULL, false, false);
        assert_string_equal(got, want);
        for (int q = 0; q < m->nparams; q++) {
            same_stored(m, m->params[q].val, fresh->params[q].val, m->params[q].numel);
            same_stored(m, m->params[q].grad, fresh->params[q].grad, m->params[q].numel);
        }
        free(got), free(want);
        bpv_model_free(m);
        bpv_model_free(fresh);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_twice),
        cmocka_unit_test(test_tensor_twice),
        cmocka_unit_test(test_after_other_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
