/* Golden tests of `bpviz run`: for every tests/golden/NAME.bp, runs
 *   bpviz run NAME.bp
 * and compares its standard output with NAME.out, which the PyTorch program
 * of the same model wrote (tests/torch/make_golden.py; see
 * tests/torch/README.md to regenerate).
 *
 * The first line of each .bp says how to compare:
 *   # golden: exact       byte for byte (IEEE-exact ops only)
 *   # golden: rel=1e-5    line by line: the text between numbers identical,
 *                         each number within the relative tolerance (or
 *                         1e-7 absolute near 0); nan and inf exactly
 *
 * `test_golden NAME...` runs only the named models. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define GOLDEN_DIR BPV_TEST_DIR "/golden"
#define ABS_TOL 1e-7
#define MIN_MODELS 12

/* The tutorial's published output (produced by PyTorch), from the spec. */
static const char *const QUADRATIC_FIRST = "predict y_hat(x=5) = 8.800000190734863";
static const char *const QUADRATIC_LAST[2] = {
    "epoch=199 loss=7.842553895898163e-05 w1=0.006645866669714451 "
    "w2=1.955818772315979 b=0.060525789856910706",
    "predict y_hat(x=5) = 10.005765914916992",
};

typedef struct golden {
    char *name; /* "linear" */
    char *bp;   /* full path of NAME.bp */
    char *out;  /* full path of NAME.out */
} golden;

static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- comparison ----------------------------------------------------------- */

/* The compare mode from the .bp's first line: returns true and sets *exact
 * and *rel, or false if the line is missing or malformed. */
static bool golden_mode(const char *bp_text, bool *exact, double *rel) {
    const char *p = bp_text;
    const char *prefix = "# golden:";
    if (strncmp(p, prefix, strlen(prefix)) != 0) return false;
    p += strlen(prefix);
    while (*p == ' ') p++;
    if (strncmp(p, "exact", 5) == 0 && (p[5] == '\n' || p[5] == '\0' || p[5] == ' ')) {
        *exact = true;
        *rel = 0;
        return true;
    }
    if (strncmp(p, "rel=", 4) == 0) {
        char *end;
        double r = strtod(p + 4, &end);
        if (end == p + 4 || !(r > 0 && r < 1) || (*end != '\n' && *end != '\0' && *end != ' '))
            return false;
        *exact = false;
        *rel = r;
        return true;
    }
    return false;
}

static bool is_ident_char(char c) {
    return isalnum((unsigned char)c) || c == '_' || c == '.';
}

/* Length of the number token at s[i] (within a line of length n), or 0 if
 * none starts there: [-]digits[.digits][e[+-]digits], [-]inf, nan. A number
 * does not start inside a name (w1, x2) and does not run into one. */
static size_t number_at(const char *s, size_t i, size_t n) {
    if (i > 0 && (is_ident_char(s[i - 1]) || s[i - 1] == '-')) return 0;
    size_t j = i;
    if (j < n && s[j] == '-') j++;
    if (j + 3 <= n && (strncmp(s + j, "inf", 3) == 0 || strncmp(s + j, "nan", 3) == 0)) {
        j += 3;
    } else {
        size_t d = j;
        while (j < n && isdigit((unsigned char)s[j])) j++;
        if (j == d) return 0;
        if (j < n && s[j] == '.') {
            j++;
            while (j < n && isdigit((unsigned char)s[j])) j++;
        }
        if (j < n && (s[j] == 'e' || s[j] == 'E')) {
            size_t e = j + 1;
            if (e < n && (s[e] == '+' || s[e] == '-')) e++;
            if (e < n && isdigit((unsigned char)s[e])) {
                j = e;
                while (j < n && isdigit((unsigned char)s[j])) j++;
            }
        }
    }
    if (j < n && (isalnum((unsigned char)s[j]) || s[j] == '_')) return 0;
    return j - i;
}

static double parse_number(const char *s, size_t len) {
    char buf[64];
    if (len >= sizeof buf) return NAN;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return strtod(buf, NULL);
}

static bool numbers_close(double a, double b, double rel) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    double d = fabs(a - b);
    if (d <= ABS_TOL) return true;
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return d <= rel * m;
}

/* Compares one line; on a difference writes the reason into why. */
static bool line_matches(const char *e, size_t en, const char *g, size_t gn, double rel,
                         char *why, size_t whylen) {
    size_t i = 0, j = 0;
    while (i < en || j < gn) {
        size_t ne = i < en ? number_at(e, i, en) : 0;
        size_t ng = j < gn ? number_at(g, j, gn) : 0;
        if (ne && ng) {
            double a = parse_number(e + i, ne), b = parse_number(g + j, ng);
            /* integers (epoch numbers, echoed arguments) are text: exact */
            bool ints = strcspn(e + i, ".eEin") >= ne || strcspn(g + j, ".eEin") >= ng;
            if (ints ? (ne != ng || memcmp(e + i, g + j, ne) != 0) : !numbers_close(a, b, rel)) {
                double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
                snprintf(why, whylen,
                         "number at column %zu: expected %.*s, got %.*s (relative difference %.3g, "
                         "tolerance %g)",
                         j + 1, (int)ne, e + i, (int)ng, g + j, m > 0 ? fabs(a - b) / m : 0.0, rel);
                return false;
            }
            i += ne;
            j += ng;
            continue;
        }
        if (i >= en || j >= gn || e[i] != g[j]) {
            snprintf(why, whylen, "text differs at column %zu", j + 1);
            return false;
        }
        i++;
        j++;
    }
    return true;
}

/* Compares whole outputs. exact: byte for byte. Returns true if they
 * match; otherwise prints the first differing line of both to stderr. */
static bool outputs_match(const char *name, const char *exp, const char *got, bool exact,
                          double rel) {
    const char *e = exp, *g = got;
    int line = 1;
    char why[512] = "";
    for (;;) {
        bool eend = *e == '\0', gend = *g == '\0';
        if (eend && gend) return true;
        const char *enl = strchr(e, '\n'), *gnl = strchr(g, '\n');
        size_t en = enl ? (size_t)(enl - e) : strlen(e);
        size_t gn = gnl ? (size_t)(gnl - g) : strlen(g);
        bool same;
        if (eend || gend) {
            same = false;
            snprintf(why, sizeof why, "%s", eend ? "bpviz printed more lines than expected"
                                                 : "bpviz printed fewer lines than expected");
        } else if ((enl == NULL) != (gnl == NULL)) {
            same = false;
            snprintf(why, sizeof why, "newline at the end of the line differs");
        } else if (exact) {
            same = en == gn && memcmp(e, g, en) == 0;
            if (!same) snprintf(why, sizeof why, "exact comparison");
        } else {
            same = line_matches(e, en, g, gn, rel, why, sizeof why);
        }
        if (!same) {
            fprintf(stderr,
                    "golden %s: line %d differs (%s)\n"
                    "  expected (PyTorch): %.*s\n"
                    "  got (bpviz):        %.*s\n",
                    name, line, why, (int)(eend ? 6 : en), eend ? "<none>" : e,
                    (int)(gend ? 6 : gn), gend ? "<none>" : g);
            return false;
        }
        e += en + (enl != NULL);
        g += gn + (gnl != NULL);
        line++;
    }
}

/* ---- running ----------------------------------------------------------------- */

/* Runs `bpviz run PATH`; returns its standard output (malloc'd), or NULL
 * (after printing its status and stderr) if it does not exit with status 0. */
static char *run_bpviz(const char *name, const char *bp) {
    char *argv[] = {BPV_CLI_PATH, "run", (char *)bp, NULL};
    char *out = NULL, *err = NULL;
    int st = tu_run(argv, &out, NULL, &err);
    if (st != 0) {
        fprintf(stderr, "golden %s: `bpviz run %s` exited with status %d; stderr:\n%s\n", name,
                bp, st, err ? err : "");
        free(out);
        free(err);
        return NULL;
    }
    if (err && *err) fprintf(stderr, "golden %s: bpviz wrote to stderr:\n%s\n", name, err);
    free(err);
    return out;
}

static void test_model(void **state) {
    const golden *gd = *state;
    char *bp_text = tu_read_file(gd->bp, NULL);
    assert_non_null(bp_text);
    bool exact;
    double rel;
    bool mode_ok = golden_mode(bp_text, &exact, &rel);
    free(bp_text);
    if (!mode_ok)
        fail_msg("%s: first line must be `# golden: exact` or `# golden: rel=TOL`", gd->bp);
    char *expected = tu_read_file(gd->out, NULL);
    if (!expected) fail_msg("%s: cannot read (regenerate: tests/torch/README.md)", gd->out);
    char *got = run_bpviz(gd->name, gd->bp);
    if (!got) {
        free(expected);
        fail_msg("golden %s: bpviz run failed", gd->name);
    }
    bool ok = outputs_match(gd->name, expected, got, exact, rel);
    free(expected);
    free(got);
    if (!ok) fail_msg("golden %s: output differs from PyTorch's", gd->name);
}

/* The tutorial acceptance: quadratic's first and last lines, exactly. */
static void test_quadratic_acceptance(void **state) {
    (void)state;
    char *bp = xasprintf("%s/quadratic.bp", GOLDEN_DIR);
    char *out = run_bpviz("quadratic", bp);
    free(bp);
    if (!out) fail_msg("quadratic: bpviz run failed");
    size_t n = strlen(out);
    const char *first_end = NULL;
    char *last = NULL, *prev = NULL;
    if (n > 0 && out[n - 1] == '\n') {
        out[n - 1] = '\0';
        first_end = strchr(out, '\n');
        last = strrchr(out, '\n');
        if (last) {
            *last = '\0';
            prev = strrchr(out, '\n');
        }
    }
    if (!prev) {
        fprintf(stderr, "quadratic acceptance: fewer than 3 lines:\n%s\n", out);
        free(out);
        fail_msg("quadratic: output too short");
    }
    bool ok = (size_t)(first_end - out) == strlen(QUADRATIC_FIRST) &&
              strncmp(out, QUADRATIC_FIRST, strlen(QUADRATIC_FIRST)) == 0 &&
              strcmp(prev + 1, QUADRATIC_LAST[0]) == 0 && strcmp(last + 1, QUADRATIC_LAST[1]) == 0;
    if (!ok)
        fprintf(stderr,
                "quadratic acceptance:\n  expected: %s\n            %s\n            %s\n"
                "  got:      %.*s\n            %s\n            %s\n",
                QUADRATIC_FIRST, QUADRATIC_LAST[0], QUADRATIC_LAST[1], (int)(first_end - out),
                out, prev + 1, last + 1);
    free(out);
    assert_true(ok);
}

/* The comparator itself: numbers inside names are text, numbers compare
 * with the tolerance, nan/inf exactly. */
static void test_comparator(void **state) {
    (void)state;
    char why[256];
#define LM(a, b, r) line_matches(a, strlen(a), b, strlen(b), r, why, sizeof why)
    assert_true(LM("epoch=3 loss=0.5 w1=[1.0, -2.5e-05]", "epoch=3 loss=0.5000001 w1=[1.0, -2.5000001e-05]", 1e-5));
    assert_false(LM("epoch=3 loss=0.5", "epoch=4 loss=0.5", 1e-5));
    assert_false(LM("epoch=1000000 loss=0.5", "epoch=1000001 loss=0.5", 1e-5));
    assert_false(LM("y(x=5) = 1.0", "y(x=5.0) = 1.0", 1e-5));
    assert_false(LM("w1=1.0", "w2=1.0", 1e-5));
    assert_false(LM("loss=0.5", "loss=0.5001", 1e-5));
    assert_true(LM("loss=1e-09", "loss=5e-08", 1e-5)); /* absolute tolerance near 0 */
    assert_false(LM("loss=nan", "loss=1.0", 1e-5));
    assert_true(LM("loss=nan w=-inf", "loss=nan w=-inf", 1e-5));
    assert_false(LM("w=inf", "w=-inf", 1e-5));
    assert_false(LM("w=inf", "w=1e+308", 1e-5));
    assert_false(LM("p = [1.0, 2.0]", "p = [1.0, 2.0, 3.0]", 1e-5));
    assert_false(LM("x=1.0", "x=1.0 ", 1e-5));
    assert_true(LM("predict y_hat(x=-0.5) = -0.0", "predict y_hat(x=-0.5) = 0.0", 1e-5));
#undef LM
    assert_true(outputs_match("self", "a=1.0\nb=2.0\n", "a=1.0\nb=2.0\n", true, 0));
    assert_false(outputs_match("self", "a=1.0\nb=2.0\n", "a=1.0\nb=2.00000001\n", true, 0));
    assert_true(outputs_match("self", "a=1.0\nb=2.0\n", "a=1.0\nb=2.00000001\n", false, 1e-5));
    assert_false(outputs_match("self", "a=1.0\nb=2.0\n", "a=1.0\n", false, 1e-5));
    assert_false(outputs_match("self", "a=1.0\n", "a=1.0\nb=2.0\n", false, 1e-5));
    assert_false(outputs_match("self", "a=1.0\n", "a=1.0", false, 1e-5));
    bool exact;
    double rel;
    assert_true(golden_mode("# golden: exact\n", &exact, &rel) && exact);
    assert_true(golden_mode("# golden: rel=1e-5\n", &exact, &rel) && !exact && rel == 1e-5);
    assert_false(golden_mode("# golden: close\n", &exact, &rel));
    assert_false(golden_mode("data x = [1]\n", &exact, &rel));
}

/* ---- discovery ------------------------------------------------------------- */

static golden *models;
static size_t nmodels;

static int cmp_golden(const void *a, const void *b) {
    return strcmp(((const golden *)a)->name, ((const golden *)b)->name);
}

static bool wanted(const char *name, int argc, char **argv) {
    if (argc <= 1) return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return true;
    return false;
}

static void find_models(int argc, char **argv) {
    DIR *d = opendir(GOLDEN_DIR);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", GOLDEN_DIR);
        exit(1);
    }
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n <= 3 || strcmp(de->d_name + n - 3, ".bp") != 0) continue;
        char *name = xasprintf("%.*s", (int)(n - 3), de->d_name);
        if (!wanted(name, argc, argv)) {
            free(name);
            continue;
        }
        if (nmodels == cap) {
            cap = cap ? cap * 2 : 32;
            models = realloc(models, cap * sizeof *models);
            assert_non_null(models);
        }
        models[nmodels].name = name;
        models[nmodels].bp = xasprintf("%s/%s.bp", GOLDEN_DIR, name);
        models[nmodels].out = xasprintf("%s/%s.out", GOLDEN_DIR, name);
        /* PyTorch's portable kernels (ATEN_CPU_CAPABILITY=default) give other
         * numbers for some models: NAME.portable.out, written by
         * make_golden.py --portable, where they differ */
        const char *cap = getenv("ATEN_CPU_CAPABILITY");
        if (cap && strcmp(cap, "default") == 0) {
            char *port = xasprintf("%s/%s.portable.out", GOLDEN_DIR, name);
            if (access(port, R_OK) == 0) {
                free(models[nmodels].out);
                models[nmodels].out = port;
            } else {
                free(port);
            }
        }
        nmodels++;
    }
    closedir(d);
    if (nmodels) qsort(models, nmodels, sizeof *models, cmp_golden);
}

/* Every model has its expected output and a compare mode. */
static void test_golden_set(void **state) {
    (void)state;
    assert_true(nmodels >= MIN_MODELS);
    for (size_t i = 0; i < nmodels; i++) {
        char *bp = tu_read_file(models[i].bp, NULL);
        char *out = tu_read_file(models[i].out, NULL);
        bool exact;
        double rel;
        bool ok = bp && out && golden_mode(bp, &exact, &rel);
        free(bp);
        free(out);
        if (!ok) fail_msg("%s: missing .out or bad `# golden:` first line", models[i].name);
    }
}

int main(int argc, char **argv) {
    find_models(argc, argv);
    size_t n = 0;
    struct CMUnitTest *tests = calloc(nmodels + 3, sizeof *tests);
    assert_non_null(tests);
    if (argc <= 1) {
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_comparator);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_golden_set);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_quadratic_acceptance);
    }
    for (size_t i = 0; i < nmodels; i++) {
        tests[n].name = models[i].name;
        tests[n].test_func = test_model;
        tests[n].initial_state = &models[i];
        n++;
    }
    int failed = _cmocka_run_group_tests("golden", tests, n, NULL, NULL);
    for (size_t i = 0; i < nmodels; i++) {
        free(models[i].name);
        free(models[i].bp);
        free(models[i].out);
    }
    free(models);
    free(tests);
    return failed;
}
