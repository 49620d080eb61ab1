/* The bpviz command end to end: options, formats, exit statuses, messages,
 * and that a failed run leaves an existing output file untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define SAMPLE(name) BPV_SOURCE_DIR "/samples/" name

static void test_help_and_version(void **state) {
    (void)state;
    char *out, *err;
    assert_int_equal(tu_bpviz(&out, &err, "--help", NULL), 0);
    const char *options[] = {"-o FILE", "-T FORMAT", "--step",      "--steps",      "--rankdir",
                             "--theme", "--labels",  "--precision", "--plain-names"};
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        assert_non_null(strstr(out, options[i]));
    free(out);
    free(err);
    assert_int_equal(tu_bpviz(&out, &err, "--version", NULL), 0);
    assert_true(strncmp(out, "bpviz ", 6) == 0);
    free(out);
    free(err);
}

static void test_usage_errors(void **state) {
    (void)state;
    char *out, *err;
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "--bogus", NULL), 2);
    assert_non_null(strstr(err, "unknown option '--bogus'"));
    free(out);
    free(err);
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "-T", "gif", NULL), 2);
    assert_non_null(strstr(err, "unknown format 'gif'"));
    free(out);
    free(err);
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "--precision", "0", NULL), 2);
    free(out);
    free(err);
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "-o", NULL), 2);
    assert_non_null(strstr(err, "needs a value"));
    free(out);
    free(err);
    assert_int_equal(tu_bpviz(&out, &err, "/nonexistent/model.bp", NULL), 2);
    assert_non_null(strstr(err, "cannot open model '/nonexistent/model.bp'"));
    free(out);
    free(err);
    /* run takes only the model: -o was read as the model's name */
    assert_int_equal(tu_bpviz(&out, &err, "run", "-o", "x", SAMPLE("linear.bp"), NULL), 2);
    assert_non_null(strstr(err, "run takes no option '-o'"));
    free(out);
    free(err);
    /* --depth without --focus was ignored silently */
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "--depth", "2", NULL), 2);
    assert_non_null(strstr(err, "--depth K goes with --focus NAME"));
    free(out);
    free(err);
    /* a folder as the output: named as one, not "Device or resource busy" */
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "-T", "svg", "-o", ".", NULL), 1);
    assert_non_null(strstr(err, "cannot write '.': it is a folder"));
    free(out);
    free(err);
}

/* --threads N anywhere on the line, for every command, and BPV_THREADS;
 * bench reports the count; the numbers do not depend on it. */
static void test_threads(void **state) {
    (void)state;
    char *out, *err, *one = NULL;
    assert_int_equal(tu_bpviz(&out, &err, "bench", "--threads", "1", SAMPLE("linear.bp"),
                              "--steps", "5", NULL), 0);
    assert_non_null(strstr(out, " ns/step, "));
    assert_non_null(strstr(out, ", 1 thread\n"));
    free(out), free(err);
    assert_int_equal(tu_bpviz(&out, &err, "bench", SAMPLE("linear.bp"), "--steps", "5",
                              "--threads", "3", NULL), 0);
    assert_non_null(strstr(out, ", 3 threads\n"));
    free(out), free(err);
    setenv("BPV_THREADS", "2", 1);
    assert_int_equal(tu_bpviz(&out, &err, "bench", SAMPLE("linear.bp"), "--steps", "5", NULL), 0);
    assert_non_null(strstr(out, ", 2 threads\n"));
    free(out), free(err);
    /* the option wins over the environment */
    assert_int_equal(tu_bpviz(&out, &err, "run", SAMPLE("two_layer_sigmoid.bp"), "--threads",
                              "1", NULL), 0);
    one = out;
    free(err);
    assert_int_equal(tu_bpviz(&out, &err, "--threads", "3", "run",
                              SAMPLE("two_layer_sigmoid.bp"), NULL), 0); /* before the command */
    assert_string_equal(out, one);
    free(out), free(err);
    setenv("BPV_THREADS", "3", 1);
    assert_int_equal(tu_bpviz(&out, &err, "run", SAMPLE("two_layer_sigmoid.bp"), NULL), 0);
    assert_string_equal(out, one);
    free(out), free(err), free(one);
    setenv("BPV_THREADS", "many", 1);
    assert_int_equal(tu_bpviz(&out, &err, "run", SAMPLE("linear.bp"), NULL), 2);
    assert_non_null(strstr(err, "BPV_THREADS takes a number of threads from 1 to 256, not 'many'"));
    free(out), free(err);
    unsetenv("BPV_THREADS");
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "--threads", "0", NULL), 2);
    assert_non_null(strstr(err, "--threads takes a number of threads from 1 to 256, not '0'"));
    free(out), free(err);
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "--threads", NULL), 2);
    assert_non_null(strstr(err, "option '--threads' needs a value"));
    free(out), free(err);
}

static void test_run_prints_predictions(void **state) {
    (void)state;
    char *out, *err;
    assert_int_equal(tu_bpviz(&out, &err, "run", SAMPLE("linear.bp"), NULL), 0);
    assert_true(strncmp(out, "predict y_hat(x=5) = 5.0\nepoch=0 loss=", 37) == 0);
    assert_non_null(strstr(out, "\nepoch=99 loss="));
    free(out);
    free(err);
}

static void test_step_past_end_keeps_file(void **state) {
    (void)state;
    char *out, *err;
    char *path = tu_tmp_path("keep.svg");
    assert_int_equal(tu_write_file(path, "precious", 8), 0);
    /* linear.bp: 4 samples x 100 epochs */
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "--step", "401", "-o", path, NULL),
                     2);
    assert_non_null(strstr(err, "step 401 is past the end: the model has 400 steps"));
    char *kept = tu_read_file(path, NULL);
    assert_string_equal(kept, "precious");
    free(kept);
    free(out);
    free(err);
    /* an unknown extension */
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "-o", tu_tmp_path("f.gif"), NULL),
                     2);
    assert_non_null(strstr(err, "cannot tell the format"));
    free(out);
    free(err);
    /* an unwritable path: run-time failure, status 1 */
    assert_int_equal(
        tu_bpviz(&out, &err, SAMPLE("linear.bp"), "-o", "/nonexistent-dir/f.dot", NULL), 1);
    assert_non_null(strstr(err, "cannot write '/nonexistent-dir/f.dot'"));
    free(out);
    free(err);
}

static void test_json_trace(void **state) {
    (void)state;
    char *out, *err;
    char *path = tu_tmp_path("trace.json");
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "--steps", "1-2", "-o", path, NULL),
                     0);
    char *json = tu_read_file(path, NULL);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"dtype\": \"f32\""));
    assert_non_null(strstr(json, "\"step\": 1,"));
    assert_non_null(strstr(json, "\"step\": 2,"));
    assert_null(strstr(json, "\"step\": 3,"));
    /* step 1 of the tutorial: x=1, y=2, w=1 -> loss 1, w after = 1 - 0.01 * -2 */
    assert_non_null(strstr(json, "\"loss\": 1.0,"));
    assert_non_null(strstr(json, "\"after\": 1.0199999809265137"));
    free(json);
    free(out);
    free(err);
}

static void test_formats(void **state) {
    (void)state;
    char *out, *err;
    size_t len;
    /* DOT on standard output by default */
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), NULL), 0);
    assert_non_null(strstr(out, "digraph"));
    free(out);
    free(err);
    const struct {
        const char *file, *magic;
        size_t n;
    } cases[] = {{"f.svg", "<?xml", 5},
                 {"f.png", "\x89PNG", 4},
                 {"f.pdf", "%PDF", 4},
                 {"f.gv", "digraph", 7}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = tu_tmp_path(cases[i].file);
        assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "-o", path, NULL), 0);
        free(out);
        free(err);
        char *data = tu_read_file(path, &len);
        assert_non_null(data);
        assert_true(len > cases[i].n);
        assert_memory_equal(data, cases[i].magic, cases[i].n);
        free(data);
    }
    /* -T overrides the extension */
    char *path = tu_tmp_path("really-svg.dot");
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "-T", "svg", "-o", path, NULL), 0);
    char *data = tu_read_file(path, &len);
    assert_non_null(strstr(data, "<svg"));
    free(data);
    free(out);
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_run_prints_predictions),
        cmocka_unit_test(test_step_past_end_keeps_file),
        cmocka_unit_test(test_json_trace),
        cmocka_unit_test(test_formats),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
