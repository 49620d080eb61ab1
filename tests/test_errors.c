/* Golden error messages: every tests/errors/NAME.bp must fail to load with
 * exactly the text in tests/errors/NAME.err and status 2, or the status a
 * first line "# status: N" names; every tests/errors/NAME.json, a JSON
 * trace, must fail to load (bpv_trace_load) the same way, with status 2. BPV_UPDATE_GOLDEN=1 rewrites the .err
 * files from the current messages (review the diff before committing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpviz/bpviz.h"
#include "testutil.h"

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The status a case expects: "# status: N" on its first line, else 2. */
static int expected_status(const char *text) {
    int status;
    if (sscanf(text, "# status: %d", &status) == 1) return status;
    return BPV_ERR_MODEL;
}

/* Runs one case; returns 0 when it behaves as its golden file says. */
static int run_case(const char *base, bool update) {
    char bp[1024], golden[1024];
    /* a trace's name keeps its extension: NAME.json */
    size_t bl = strlen(base);
    bool trace = bl > 5 && strcmp(base + bl - 5, ".json") == 0;
    if (trace) snprintf(bp, sizeof bp, "errors/%s", base);
    else snprintf(bp, sizeof bp, "errors/%s.bp", base);
    snprintf(golden, sizeof golden, "errors/%.*s.err", (int)(trace ? bl - 5 : bl), base);
    size_t len;
    char *text = tu_read_file(bp, &len);
    if (!text) {
        print_error("%s: cannot read\n", bp);
        return 1;
    }
    int want_status = trace ? BPV_ERR_MODEL : expected_status(text);
    free(text);

    bpv_error *err = NULL;
    bpv_model *m = trace ? bpv_trace_load(bp, &err) : bpv_model_load(bp, &err);
    if (m) {
        print_error("%s: loaded without an error\n", bp);
        bpv_model_free(m);
        return 1;
    }
    if (!err) {
        print_error("%s: failed without an error message\n", bp);
        return 1;
    }
    int rc = 0;
    if (update) {
        if (tu_write_file(golden, err->message, strlen(err->message)) != 0) {
            print_error("%s: cannot write\n", golden);
            rc = 1;
        }
    } else {
        char *want = tu_read_file(golden, NULL);
        if (!want) {
            print_error("%s: missing; run with BPV_UPDATE_GOLDEN=1 to create it. Message:\n%s",
                        golden, err->message);
            rc = 1;
        } else if (strcmp(want, err->message) != 0) {
            print_error("%s: message differs\n--- want\n%s--- got\n%s---\n", bp, want,
                        err->message);
            rc = 1;
        }
        free(want);
    }
    if (err->status != want_status) {
        print_error("%s: status %d, want %d\n", bp, err->status, want_status);
        rc = 1;
    }
    bpv_error_free(err);
    return rc;
}

static void test_golden_errors(void **state) {
    (void)state;
    assert_int_equal(chdir(BPV_TEST_DIR), 0);
    /* a small memory budget, the same on every machine, so the memory-*
     * cases fail fast and with the same text */
    assert_int_equal(bpv_memory_budget_set(64u << 20), BPV_OK);
    const char *env = getenv("BPV_UPDATE_GOLDEN");
    bool update = env && strcmp(env, "1") == 0;

    DIR *d = opendir("errors");
    assert_non_null(d);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        bool json = l > 5 && strcmp(e->d_name + l - 5, ".json") == 0;
        if (!json && (l <= 3 || strcmp(e->d_name + l - 3, ".bp") != 0)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
            assert_non_null(names);
        }
        names[n] = json ? strdup(e->d_name) : strndup(e->d_name, l - 3);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp); /* stable report order */

    int failed = 0;
    for (size_t i = 0; i < n; i++) failed += run_case(names[i], update);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (update) print_message("rewrote %zu golden files in errors/\n", n);
    assert_true(n >= 20);
    if (failed) fail_msg("%d of %zu error cases failed", failed, n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
