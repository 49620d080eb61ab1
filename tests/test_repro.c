/* Reproducibility: the same model and options give byte-identical DOT, SVG
 * and JSON on every run. The second run changes what must not matter: the
 * output file's name and folder, the working folder, the time zone and the
 * locale (no addresses, timestamps, hash order or locale-dependent number
 * formats may reach the output). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* Renders model to path with the options; returns the bytes written. */
static char *render(const char *model, const char *path, const char *steps, size_t *len) {
    char *argv[] = {BPV_CLI_PATH,  (char *)model, "-o",   (char *)path, "--steps",
                    (char *)steps, "--labels",    "full", NULL};
    char *err = NULL;
    int rc = tu_run(argv, NULL, NULL, &err);
    if (rc != 0) fail_msg("%s -> %s: status %d\n%s", model, path, rc, err);
    free(err);
    char *data = tu_read_file(path, len);
    assert_non_null(data);
    assert_true(*len > 0);
    return data;
}

static void check_model(const char *model) {
    static const char *const exts[] = {"dot", "svg", "json"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        /* the last step (some samples take only one), and the first and last in JSON */
        const char *steps = strcmp(exts[i], "json") == 0 ? "1,last" : "last";
        char a[256], b[256];
        snprintf(a, sizeof a, "%s/first.%s", tu_tmpdir(), exts[i]);
        snprintf(b, sizeof b, "%s/sub/another-name.%s", tu_tmpdir(), exts[i]);

        unsetenv("TZ");
        setenv("LC_ALL", "C", 1);
        assert_int_equal(chdir("/"), 0);
        size_t la, lb;
        char *da = render(model, a, steps, &la);

        setenv("TZ", "Pacific/Chatham", 1);
        setenv("LC_ALL", "de_DE.UTF-8", 1); /* decimal comma, where installed */
        assert_int_equal(chdir(tu_tmpdir()), 0);
        char *db = render(model, b, steps, &lb);
        unsetenv("TZ");
        setenv("LC_ALL", "C", 1);

        if (la != lb || memcmp(da, db, la) != 0) {
            size_t k = 0;
            while (k < la && k < lb && da[k] == db[k]) k++;
            fail_msg("%s: %s differs between two runs at byte %zu:\n%.80s\n--- vs\n%.80s", model,
                     exts[i], k, da + (k > 40 ? k - 40 : 0), db + (k > 40 ? k - 40 : 0));
        }
        /* no pointer-like text either (a %p or an address in a name) */
        assert_null(strstr(da, "0x7f"));
        assert_null(strstr(da, "0x5"));
        free(da);
        free(db);
    }
}

static void test_samples_render_identically(void **state) {
    (void)state;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", tu_tmpdir());
    assert_int_equal(mkdir(sub, 0755), 0);
    DIR *d = opendir(BPV_SOURCE_DIR "/samples");
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 3, ".bp") != 0) continue;
        char model[512];
        snprintf(model, sizeof model, "%s/samples/%s", BPV_SOURCE_DIR, e->d_name);
        check_model(model);
        n++;
    }
    closedir(d);
    assert_true(n >= 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_render_identically),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
