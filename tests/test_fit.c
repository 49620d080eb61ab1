/* --fit W:H: figures for slides. The PNG's own header gives the page size,
 * the DOT read back with cgraph the direction and wrapping chosen, and bad
 * values are usage errors (exit 2) with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <graphviz/cgraph.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define SAMPLE(name) BPV_SOURCE_DIR "/samples/" name

/* Width and height from a PNG's IHDR chunk. */
static void png_size(const char *path, unsigned *w, unsigned *h) {
    size_t len = 0;
    unsigned char *p = (unsigned char *)tu_read_file(path, &len);
    assert_non_null(p);
    assert_true(len > 24);
    assert_memory_equal(p, "\x89PNG\r\n\x1a\n", 8);
    assert_memory_equal(p + 12, "IHDR", 4);
    *w = (unsigned)p[16] << 24 | (unsigned)p[17] << 16 | (unsigned)p[18] << 8 | p[19];
    *h = (unsigned)p[20] << 24 | (unsigned)p[21] << 16 | (unsigned)p[22] << 8 | p[23];
    free(p);
}

static void fits(const char *sample, const char *shape, double want, unsigned *w, unsigned *h) {
    char *err = NULL;
    const char *out = tu_tmp_path("fit.png");
    assert_int_equal(tu_bpviz(NULL, &err, sample, "--fit", shape, "-o", out, NULL), 0);
    free(err);
    png_size(out, w, h);
    double a = (double)*w / *h;
    print_message("%s --fit %s: %ux%u, %.3f\n", strrchr(sample, '/') + 1, shape, *w, *h, a);
    assert_true(a > want / 1.2 && a < want * 1.2);
}

/* The two-layer samples come out within 20% of the slide's shape (the
 * default figure of two_layer_sigmoid is 4476x646, 7:1), and never smaller
 * than the natural drawing: its text keeps its size. */
static void two_layer_samples_fit_slides(void **state) {
    (void)state;
    const char *samples[] = {SAMPLE("two_layer_sigmoid.bp"), SAMPLE("two_layer_linear.bp")};
    for (int i = 0; i < 2; i++) {
        unsigned w0, h0, w, h;
        char *err = NULL;
        assert_int_equal(tu_bpviz(NULL, &err, samples[i], "-o", tu_tmp_path("plain.png"), NULL), 0);
        free(err);
        png_size(tu_tmp_path("plain.png"), &w0, &h0);
        fits(samples[i], "16:9", 16.0 / 9, &w, &h);
        /* the same pixels per inch: the slide holds at least the TB figure's
         * area, so nothing was shrunk */
        assert_true((double)w * h >= 0.5 * (double)w0 * h0);
        fits(samples[i], "4:3", 4.0 / 3, &w, &h);
        fits(samples[i], "3:4", 3.0 / 4, &w, &h);
    }
    unsigned w, h;
    fits(SAMPLE("quadratic.bp"), "16:9", 16.0 / 9, &w, &h);
}

static Agraph_t *fit_dot(const char *sample, const char *shape, const char *rankdir) {
    char *out = NULL, *err = NULL;
    int rc = rankdir ? tu_bpviz(&out, &err, sample, "--fit", shape, "--rankdir", rankdir, NULL)
                     : tu_bpviz(&out, &err, sample, "--fit", shape, NULL);
    assert_int_equal(rc, 0);
    free(err);
    Agraph_t *g = agmemread(out);
    free(out);
    assert_non_null(g);
    return g;
}

static int clusters(Agraph_t *g) {
    int n = 0;
    for (Agraph_t *s = agfstsubg(g); s; s = agnxtsubg(s))
        n += strncmp(agnameof(s), "cluster_fit", 11) == 0;
    return n;
}

/* --legend puts its key in the bottom right corner, beside the caption,
 * without widening the figure along its flow (it had a rank of its own at
 * the end: linear.bp 1128x339 became 1416x340). */
static void legend_in_the_corner(void **state) {
    (void)state;
    const char *samples[] = {SAMPLE("linear.bp"), SAMPLE("two_layer_sigmoid.bp")};
    for (int i = 0; i < 2; i++) {
        unsigned w0, h0, w, h;
        char *err = NULL;
        assert_int_equal(tu_bpviz(NULL, &err, samples[i], "-o", tu_tmp_path("nokey.png"), NULL), 0);
        free(err);
        assert_int_equal(
            tu_bpviz(NULL, &err, samples[i], "--legend", "-o", tu_tmp_path("key.png"), NULL), 0);
        free(err);
        png_size(tu_tmp_path("nokey.png"), &w0, &h0);
        png_size(tu_tmp_path("key.png"), &w, &h);
        print_message("%s: %ux%u, with --legend %ux%u\n", strrchr(samples[i], '/') + 1, w0, h0, w,
                      h);
        assert_true(w <= w0 * 1.05 + 10);
        assert_true(h <= h0 * 1.25);
        assert_true((double)w * h <= 1.25 * (double)w0 * h0);
    }
}

/* Drawing area / slide area once the page (padded to the slide's shape)
 * is the slide: the SVG's page size less the DOT's pad. */
static double fill_of(const char *sample, const char *shape) {
    Agraph_t *g = fit_dot(sample, shape, NULL);
    double px = 0, py = 0;
    assert_int_equal(sscanf(agget(g, "pad"), "%lf,%lf", &px, &py), 2);
    agclose(g);
    char *svg = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&svg, &err, sample, "--fit", shape, "-T", "svg", NULL), 0);
    free(err);
    double w = 0, h = 0;
    const char *at = strstr(svg, "<svg width=\"");
    assert_non_null(at);
    assert_int_equal(sscanf(at, "<svg width=\"%lfpt\" height=\"%lfpt\"", &w, &h), 2);
    free(svg);
    double fill = (w - 2 * px * 72) * (h - 2 * py * 72) / (w * h);
    print_message("%s --fit %s: page %.0fx%.0f pt, fill %.1f%%\n", strrchr(sample, '/') + 1, shape,
                  w, h, 100 * fill);
    return fill;
}

/* Branched CNNs and unrolled RNNs fill a 16:9 slide: a residual block's
 * chain is cut where only one edge pair crosses (before: one column, 27%),
 * and bptt's eight steps go four to a row (before: a staircase, 50%), the
 * step boxes inside the rows' clusters. */
static void branched_and_unrolled_samples_fill_slides(void **state) {
    (void)state;
    const char *samples[] = {SAMPLE("residual.bp"), SAMPLE("lenet.bp"), SAMPLE("inception.bp"),
                             SAMPLE("bptt.bp")};
    for (int i = 0; i < 4; i++) assert_true(fill_of(samples[i], "16:9") >= 0.75);
    Agraph_t *g = fit_dot(SAMPLE("residual.bp"), "16:9", NULL);
    assert_true(clusters(g) >= 2);
    agclose(g);
    g = fit_dot(SAMPLE("bptt.bp"), "16:9", NULL);
    assert_true(clusters(g) >= 2);
    Agraph_t *row = agsubg(g, "cluster_fit0", 0);
    assert_non_null(row);
    assert_non_null(agsubg(row, "cluster_t_1", 0));
    assert_string_equal(agget(agsubg(row, "cluster_t_1", 0), "peripheries"), "1");
    agclose(g);
}

/* The DOT carries the choices: a direction, the wrapping clusters and a pad
 * that gives the page its shape. An explicit --rankdir is kept. */
static void dot_carries_the_choices(void **state) {
    (void)state;
    Agraph_t *g = fit_dot(SAMPLE("two_layer_sigmoid.bp"), "16:9", NULL);
    char *dir = agget(g, "rankdir"), *pad = agget(g, "pad");
    assert_non_null(dir);
    assert_true(strcmp(dir, "LR") == 0 || strcmp(dir, "TB") == 0);
    assert_non_null(pad);
    assert_non_null(strchr(pad, ',')); /* pad="x,y": one of them widened */
    print_message("two_layer_sigmoid --fit 16:9: rankdir=%s, %d rows, pad=%s\n", dir, clusters(g),
                  pad);
    char *bb = agget(g, "bb");
    assert_true(!bb || !*bb); /* the trial layouts leave nothing behind */
    agclose(g);

    g = fit_dot(SAMPLE("two_layer_sigmoid.bp"), "16:9", "LR");
    assert_string_equal(agget(g, "rankdir"), "LR");
    agclose(g);
    /* linear.bp in LR is 3.5:1, in TB 0.8:1: 1:1 takes TB */
    g = fit_dot(SAMPLE("linear.bp"), "1:1", NULL);
    assert_string_equal(agget(g, "rankdir"), "TB");
    agclose(g);
    /* a plain figure is unchanged: no pad pair, no clusters */
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("two_layer_sigmoid.bp"), NULL), 0);
    free(err);
    g = agmemread(out);
    free(out);
    assert_non_null(g);
    assert_string_equal(agget(g, "pad"), "0.3");
    assert_int_equal(clusters(g), 0);
    agclose(g);
}

static void bad_shapes_are_usage_errors(void **state) {
    (void)state;
    const char *bad[] = {"0:9", "abc", "1000000:1", "16", "16:", ":9", "-16:9", "16:9:1", "1:11",
                         "nan:1", "inf:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *err = NULL;
        assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "--fit", bad[i], "-o",
                                  tu_tmp_path("bad.png"), NULL),
                         2);
        assert_non_null(err);
        assert_non_null(strstr(err, "--fit takes a slide's shape W:H"));
        assert_non_null(strstr(err, bad[i]));
        free(err);
    }
    char *err = NULL;
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "--fit", NULL), 2);
    assert_non_null(strstr(err, "needs a value"));
    free(err);
    char *out = NULL;
    assert_int_equal(tu_bpviz(&out, &err, "--help", NULL), 0);
    assert_non_null(strstr(out, "--fit W:H"));
    free(out);
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_layer_samples_fit_slides),
        cmocka_unit_test(dot_carries_the_choices),
        cmocka_unit_test(branched_and_unrolled_samples_fill_slides),
        cmocka_unit_test(legend_in_the_corner),
        cmocka_unit_test(bad_shapes_are_usage_errors),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
