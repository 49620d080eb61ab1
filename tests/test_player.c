/* Several steps at once: one figure per step through "%d" in the output
 * name, and the HTML step player (self-contained, small, fast), checked as
 * text here and in a real browser by tests/browser/player.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define SAMPLE(name) BPV_SOURCE_DIR "/samples/" name
/* where the browser test leaves its page and screenshots: relative to the
 * test's working directory, the build's tests folder */
#define BPV_BROWSER_OUT "player-browser"

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static void one_file_per_step(void **state) {
    (void)state;
    char *err = NULL;
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "--steps", "1-8/3", "-o",
                              tu_tmp_path("step%d.svg"), NULL),
                     0);
    free(err);
    assert_true(exists(tu_tmp_path("step1.svg")));
    assert_true(exists(tu_tmp_path("step4.svg")));
    assert_true(exists(tu_tmp_path("step7.svg")));
    assert_false(exists(tu_tmp_path("step2.svg")));
    size_t len;
    char *svg = tu_read_file(tu_tmp_path("step4.svg"), &len);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "step 4 ·"));
    free(svg);
    /* any figure format, zero-padded numbers, a list */
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "--steps", "2,10", "-o",
                              tu_tmp_path("f%03d.png"), NULL),
                     0);
    free(err);
    assert_true(exists(tu_tmp_path("f002.png")));
    assert_true(exists(tu_tmp_path("f010.png")));
    /* "%%" is a percent sign once the name holds a step pattern */
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "--steps", "3", "-o",
                              tu_tmp_path("100%%-%d.dot"), NULL),
                     0);
    free(err);
    assert_true(exists(tu_tmp_path("100%-3.dot")));
}

static void several_steps_need_a_pattern(void **state) {
    (void)state;
    char *err = NULL;
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "--steps", "1-3", "-o",
                              tu_tmp_path("many.svg"), NULL),
                     2);
    assert_non_null(strstr(err, "put %d in the name"));
    assert_false(exists(tu_tmp_path("many.svg")));
    free(err);
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "--steps", "1-3", "-o",
                              tu_tmp_path("a%db%d.svg"), NULL),
                     2);
    assert_non_null(strstr(err, "more than one %d"));
    free(err);
}

/* The quadratic sample with all 800 steps: one page, well under 1 MB and
 * written well under a second (docs/player.md has the measured figures). */
static void player_is_small_fast_and_self_contained(void **state) {
    (void)state;
    char *err = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("quadratic.bp"), "--steps", "all", "-o",
                              tu_tmp_path("train.html"), NULL),
                     0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(err);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("quadratic.bp, 800 steps: written in %.2f s\n", secs);
    /* a loose bound: sanitizer builds and busy machines are slower */
    assert_true(secs < 10);
    size_t len;
    char *html = tu_read_file(tu_tmp_path("train.html"), &len);
    assert_non_null(html);
    print_message("quadratic.bp, 800 steps: %zu bytes\n", len);
    assert_true(len < 1000 * 1000);
    assert_true(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    /* one inline figure, data and script; nothing fetched */
    assert_non_null(strstr(html, "<svg"));
    assert_non_null(strstr(html, "id=\"bpv-data\""));
    assert_non_null(strstr(html, "tspan data-k="));
    assert_non_null(strstr(html, "default-src 'none'"));
    assert_null(strstr(html, "<link"));
    assert_null(strstr(html, " src="));
    assert_null(strstr(html, "url("));
    assert_null(strstr(html, "@import"));
    assert_null(strstr(html, "https:"));
    for (const char *p = html; (p = strstr(p, "http:")) != NULL; p++)
        assert_true(strncmp(p, "http://www.w3.org/", 18) == 0); /* XML namespaces only */
    /* no marker left, no template placeholder left */
    assert_null(strstr(html, "\xe2\x81\xa3"));
    assert_null(strstr(html, "{{"));
    free(html);
}

static void player_of_one_step_and_themes(void **state) {
    (void)state;
    char *err = NULL;
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("two_layer_linear.bp"), "--theme", "colorblind",
                              "-o", tu_tmp_path("one.html"), NULL),
                     0);
    free(err);
    size_t len;
    char *html = tu_read_file(tu_tmp_path("one.html"), &len);
    assert_non_null(html);
    assert_non_null(strstr(html, "class=\"theme-colorblind\""));
    free(html);
    /* -T html whatever the extension */
    assert_int_equal(
        tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "-T", "html", "-o", tu_tmp_path("t.out"), NULL),
        0);
    free(err);
    html = tu_read_file(tu_tmp_path("t.out"), &len);
    assert_non_null(html);
    assert_true(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    free(html);
}

static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
    return n;
}

/* Heatmaps in the player: each tensor's cells in a group the page
 * recolours at every step (data-heat), its colours by level in the data;
 * Graphviz's link around the group is gone. The browser test compares the
 * colours with static figures. */
static void player_recolours_heatmaps(void **state) {
    (void)state;
    char *err = NULL;
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("two_layer_sigmoid.bp"), "--tensors", "heatmap",
                              "--steps", "1-5", "-o", tu_tmp_path("heat.html"), NULL),
                     0);
    free(err);
    size_t len;
    char *html = tu_read_file(tu_tmp_path("heat.html"), &len);
    assert_non_null(html);
    /* W₁, b₁, W₂ ... as values and gradients, each at least once */
    assert_true(count_of(html, "<g data-heat=\"") >= 6);
    assert_non_null(strstr(html, "\"heatColors\":[[\"#053061\""));
    assert_null(strstr(html, "colours of step"));
    assert_null(strstr(html, "<a "));
    assert_null(strstr(html, "</a>"));
    assert_null(strstr(html, "bpvheat"));
    free(html);
    /* no heatmap, no palette */
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "--steps", "1-5", "-o",
                              tu_tmp_path("plain.html"), NULL),
                     0);
    free(err);
    html = tu_read_file(tu_tmp_path("plain.html"), &len);
    assert_non_null(html);
    assert_null(strstr(html, "\"heatColors\":"));
    assert_null(strstr(html, "<g data-heat"));
    free(html);
}

/* Finds a program on PATH; NULL when it is not there. */
static char *which(const char *name) {
    const char *path = getenv("PATH");
    static char found[512];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(found, sizeof found, "%.*s/%s", (int)n, path, name);
        if (n && access(found, X_OK) == 0) return found;
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* The real page in headless Chromium: skipped (not passed) when Chromium,
 * node or the test's node_modules are missing. */
static void player_in_a_browser(void **state) {
    (void)state;
    const char *chromium = getenv("BPV_CHROMIUM") ? getenv("BPV_CHROMIUM") : "/usr/bin/chromium";
    char *node = which("node");
    if (access(chromium, X_OK) != 0 || !node ||
        access(BPV_TEST_DIR "/browser/node_modules/playwright-core", F_OK) != 0) {
        print_message("skipped: needs %s, node and `npm ci` in tests/browser "
                      "(scripts/install-deps.sh)\n",
                      chromium);
        if (getenv("BPV_REQUIRE_BROWSER")) fail_msg("BPV_REQUIRE_BROWSER is set"); /* CI */
        skip();
    }
    char *argv[] = {node,
                    BPV_TEST_DIR "/browser/player.test.js",
                    BPV_CLI_PATH,
                    SAMPLE("quadratic.bp"),
                    BPV_BROWSER_OUT,
                    NULL};
    char *out = NULL, *err = NULL;
    int rc = tu_run(argv, &out, NULL, &err);
    if (rc == 77) {
        free(out);
        free(err);
        skip();
    }
    if (rc != 0) print_message("%s%s", out ? out : "", err ? err : "");
    else print_message("%s", strstr(out, "all checks passed") ? "all checks passed\n" : out);
    free(out);
    free(err);
    assert_int_equal(rc, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_file_per_step),
        cmocka_unit_test(several_steps_need_a_pattern),
        cmocka_unit_test(player_is_small_fast_and_self_contained),
        cmocka_unit_test(player_of_one_step_and_themes),
        cmocka_unit_test(player_recolours_heatmaps),
        cmocka_unit_test(player_in_a_browser),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
