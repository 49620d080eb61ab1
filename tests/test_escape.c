/* Text a user controls reaches every output escaped for that format, and
 * every message on one clean line. Models are written under hostile file
 * names (markup, both quotes, "]]>", "</script>", an escape sequence, a
 * newline, other control bytes, bytes that are not UTF-8) and drawn in
 * every format: DOT must read back with cgraph, SVG must pass xmllint, the
 * player's embedded JSON and the JSON trace must parse (python3) and give
 * the file name back, the player's title must be the name as text. The
 * model also holds a NaN whose note quotes its expression, with a comment
 * full of markup inside it. Then the messages: usage errors, located
 * errors and warnings quote names cleaned; Graphviz's messages are checked;
 * a CSV with CR line ends reads; a fn blow-up is reported at the call the
 * model wrote; bpv_snapshot_write names a bad format value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <graphviz/cgraph.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpviz/bpviz.h>

#include "base.h"
#include "export.h"
#include "testutil.h"

#define SAMPLE(name) BPV_SOURCE_DIR "/samples/" name

/* A NaN at step 1 (log of a negative number) whose expression spans two
 * lines with a comment of markup, quotes and an escape sequence between. */
static const char model_text[] = "param w = 1.0\n"
                                 "data x = [1, 2]\n"
                                 "fn sq(a) = a * a\n"
                                 "loss = sum(sq(log(x * w # <b>]]> \x1b[31m \"q' &amp; </script>\n"
                                 "  - 5)))\n"
                                 "train epochs=2 lr=0.01\n";

typedef struct hostile {
    const char *name;  /* the model's file name in the scratch folder */
    const char *json;  /* the name as JSON gives it back (UTF-8) */
    const char *title; /* the player's title: the base name as text */
} hostile;

static const hostile names[] = {
    {"a<b>&amp;\"'.bp", "a<b>&amp;\"'.bp", "a<b>&amp;\"'.bp"},
    {"x]]>y.bp", "x]]>y.bp", "x]]>y.bp"},
    {"<!--x-->.bp", "<!--x-->.bp", "<!--x-->.bp"},
    {"e\x1b[31mred.bp", "e\x1b[31mred.bp", "e [31mred.bp"},
    {"nl\nname.bp", "nl\nname.bp", "nl name.bp"},
    {"c\x01\x02\x7f\t.bp", "c\x01\x02\x7f\t.bp", "c    .bp"},
    {"bad\xff\xfe.bp", "bad\xef\xbf\xbd\xef\xbf\xbd.bp", "bad\xef\xbf\xbd\xef\xbf\xbd.bp"},
    /* a folder "x<" holds "script><b>.bp": the path holds "</script>" */
    {"x</script><b>.bp", "x</script><b>.bp", "script><b>.bp"},
};

/* python3 reads what a format must parse as: prints one value to a file */
static const char py_json[] =
    "import json,sys\n"
    "d=json.load(open(sys.argv[1],encoding='utf-8'))\n"
    "open(sys.argv[2],'w',encoding='utf-8',errors='surrogateescape').write(d['model'])\n";
static const char py_html[] =
    "import html,json,re,sys\n"
    "t=open(sys.argv[1],encoding='utf-8').read()\n"
    "m=re.search(r'<script type=\"application/json\" id=\"bpv-data\">(.*?)</script>',t,re.S)\n"
    "d=json.loads(m.group(1))\n"
    "ti=re.search(r'<title>(.*?)</title>',t,re.S).group(1)\n"
    "assert ti.endswith(' \\u00b7 bpviz'), ti\n"
    "assert t.count('</script')==2, t.count('</script')\n"
    "open(sys.argv[2],'w',encoding='utf-8').write(d['model']+'\\n'+html.unescape(ti[:-8]))\n";

static bool have(const char *path) { return access(path, X_OK) == 0; }

/* Runs a python3 program on `in`; returns what it wrote (malloc'd). */
static char *python(const char *prog, const char *in) {
    char *py = tu_tmp_path("check.py"), *res = tu_tmp_path("check.out");
    assert_int_equal(tu_write_file(py, prog, strlen(prog)), 0);
    unlink(res);
    char *argv[] = {"/usr/bin/python3", py, (char *)in, res, NULL};
    char *err = NULL;
    int rc = tu_run(argv, NULL, NULL, &err);
    if (rc != 0) fail_msg("python3 on %s: %s", in, err);
    free(err);
    char *text = tu_read_file(res, NULL);
    assert_non_null(text);
    return text;
}

/* No byte of a message would garble a terminal: no control byte but
 * newlines (one per line) and tabs, valid UTF-8. */
static void assert_clean_text(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
            fail_msg("control byte 0x%02x in:\n%s", *p, s);
    assert_true(bpv_utf8_valid(s, strlen(s), NULL));
}

/* One hostile model drawn in every format (PNG and PDF, which hold no
 * name, only when `raster`). */
static void check_name(const hostile *h, bool raster) {
    if (strchr(h->name, '/')) {
        char dir[64];
        snprintf(dir, sizeof dir, "%.*s", (int)(strchr(h->name, '/') - h->name), h->name);
        mkdir(tu_tmp_path(dir), 0755);
    }
    char model[4096];
    snprintf(model, sizeof model, "%s", tu_tmp_path(h->name));
    assert_int_equal(tu_write_file(model, model_text, strlen(model_text)), 0);
    char want_json[4096];
    snprintf(want_json, sizeof want_json, "%s/%s", tu_tmpdir(), h->json);

    /* the NaN's warning under `run`: FILE:LINE:COL on one line, nothing raw */
    char *err = NULL;
    assert_int_equal(tu_bpviz(NULL, &err, "run", model, NULL), 0);
    assert_clean_text(err);
    assert_non_null(strstr(err, ":4:15: warning: step 1 (epoch 0): log(x * w - 5) (log) is not "
                                "finite: origin log(−4) = NaN; training goes on\n"));
    assert_null(strstr(err, "\"q'")); /* the comment is not the expression */
    assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* one line */
    free(err);

    static const char *const ext[] = {"dot", "svg", "png", "pdf", "json", "html"};
    for (size_t e = 0; e < sizeof ext / sizeof ext[0]; e++) {
        if ((e == 2 || e == 3) && !raster) continue;
        char outname[32], out[4096];
        snprintf(outname, sizeof outname, "out.%s", ext[e]);
        snprintf(out, sizeof out, "%s", tu_tmp_path(outname));
        int rc = tu_bpviz(NULL, &err, model, "--steps", e >= 4 ? "1-2" : "1", "-o", out, NULL);
        if (rc != 0) fail_msg("%s as %s: status %d: %s", h->name, ext[e], rc, err);
        assert_string_equal(err, ""); /* Graphviz said nothing either */
        free(err);
        size_t len;
        char *text = tu_read_file(out, &len);
        assert_non_null(text);
        assert_true(len > 0);
        if (e == 0) { /* DOT reads back: the same nodes, the note escaped */
            Agraph_t *g = agmemread(text);
            assert_non_null(g);
            assert_true(agnnodes(g) >= 8);
            agclose(g);
            assert_null(strstr(text, "<b>"));
        } else if (e == 1) {
            assert_null(strstr(text, "<b>"));
            assert_non_null(strstr(text, "origin: log(−4) = NaN"));
            char *argv[] = {"/usr/bin/xmllint", "--noout", out, NULL};
            char *xerr = NULL;
            if (tu_run(argv, NULL, NULL, &xerr) != 0) fail_msg("xmllint %s: %s", h->name, xerr);
            free(xerr);
        } else if (e == 2) {
            assert_memory_equal(text, "\x89PNG", 4);
        } else if (e == 3) {
            assert_memory_equal(text, "%PDF", 4);
        } else if (e == 4) {
            char *got = python(py_json, out);
            assert_string_equal(got, want_json);
            free(got);
            assert_null(strstr(text, "<b>"));
            assert_non_null(strstr(text, "\"note\": \"log(−4) = NaN\""));
        } else {
            char *got = python(py_html, out);
            char want[8192];
            snprintf(want, sizeof want, "%s\n%s", want_json, h->title);
            assert_string_equal(got, want);
            free(got);
            assert_null(strstr(text, "<b>"));
        }
        free(text);
        unlink(out);
    }
    /* a located error of a model with that name: FILE:LINE:COL on one line */
    const char *bad = "param w = 1\nloss = w <&> 2\n";
    assert_int_equal(tu_write_file(model, bad, strlen(bad)), 0);
    assert_int_equal(tu_bpviz(NULL, &err, model, "-o", tu_tmp_path("out.svg"), NULL), 2);
    assert_clean_text(err);
    assert_non_null(strstr(err, ":2:10: error: unexpected character '<'\n"));
    assert_ptr_equal(strchr(err, '\n'), strstr(err, "'<'\n") + 3);
    free(err);
    unlink(model);
}

static void test_hostile_file_names_in_every_format(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) check_name(&names[i], i == 0);
}

/* Names a program gives through the C API, which no file system limits:
 * slashes, "</script>", a terminal's title sequence, invalid UTF-8. */
static void test_hostile_names_through_the_api(void **state) {
    (void)state;
    const char *name = "\x1b]0;pwned\x07</script><script>alert(1)</script>]]>\xc3(.bp";
    const char *want = "\x1b]0;pwned\x07</script><script>alert(1)</script>]]>\xef\xbf\xbd(.bp";
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string(name, model_text, strlen(model_text), &err);
    assert_non_null(m);
    bpv_step_set *all = bpv_step_set_parse("all", &err);
    assert_non_null(all);
    bpv_run_options ro = {0};
    ro.keep = all;
    assert_int_equal(bpv_model_run(m, &ro, &err), BPV_OK);
    size_t n = bpv_model_snapshot_count(m);
    assert_int_equal(n, 4);
    const bpv_snapshot *snaps[4];
    for (size_t i = 0; i < n; i++) snaps[i] = bpv_model_snapshot(m, i);
    for (int fmt = BPV_FORMAT_JSON; fmt <= BPV_FORMAT_HTML; fmt++) {
        char *out = NULL;
        size_t len = 0;
        assert_int_equal(bpv_export(m, snaps, n, (bpv_format)fmt, NULL, &out, &len, &err), BPV_OK);
        char *path = tu_tmp_path(fmt == BPV_FORMAT_JSON ? "api.json" : "api.html");
        assert_int_equal(tu_write_file(path, out, len), 0);
        assert_null(strstr(out, "alert(1)</script>"));
        free(out);
        char *got = python(fmt == BPV_FORMAT_JSON ? py_json : py_html, path);
        char expect[512];
        /* the title: after the last '/', control bytes as spaces */
        snprintf(expect, sizeof expect, fmt == BPV_FORMAT_JSON ? "%s" : "%s\nscript>]]>\xef\xbf\xbd(.bp", want);
        assert_string_equal(got, expect);
        free(got);
        unlink(path);
    }
    bpv_step_set_free(all);
    bpv_model_free(m);
}

/* Usage errors quote arguments as every other message does. */
static void test_usage_errors_are_clean(void **state) {
    (void)state;
    char *err = NULL;
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "--dpi", "\x1b[2J\n9", NULL), 2);
    assert_string_equal(err, "bpviz: error: --dpi takes a number of pixels per inch from 1 to "
                             "2400, not '?[2J?9'\nTry 'bpviz --help'.\n");
    free(err);
    assert_int_equal(tu_bpviz(NULL, &err, "--dpo\x1b[31m", NULL), 2);
    assert_clean_text(err);
    assert_non_null(strstr(err, "unknown option '--dpo?[31m'"));
    free(err);
    assert_int_equal(tu_bpviz(NULL, &err, "run", "-x\xff", NULL), 2);
    assert_clean_text(err);
    assert_non_null(strstr(err, "run takes no option '-x?'"));
    free(err);
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "-T", "\x1b[5m", NULL), 2);
    assert_string_equal(err, "bpviz: error: unknown format '?[5m' (use dot, svg, png, pdf, json "
                             "or html)\nTry 'bpviz --help'.\n");
    free(err);
    /* an output that is a folder is named as one, not "resource busy" */
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "-T", "svg", "-o", ".", NULL), 1);
    assert_string_equal(err, "bpviz: error: cannot write '.': it is a folder; give a file name, "
                             "like ./figure.svg\n");
    free(err);
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "-o", "./", NULL), 1);
    assert_string_equal(err, "bpviz: error: cannot write './': it is a folder; give a file name, "
                             "like ./figure.svg\n");
    free(err);
    assert_int_equal(tu_bpviz(NULL, &err, SAMPLE("linear.bp"), "-T", "svg", "-o", "/", NULL), 1);
    assert_string_equal(err, "bpviz: error: cannot write '/': it is a folder; give a file name, "
                             "like /figure.svg\n");
    free(err);
}

/* Graphviz's messages: the spacer node's warning is known and dropped;
 * any other message fails the figure, quoted and cleaned. A figure whose
 * objective has an arrow into space (every sample) draws with nothing on
 * standard error in every format. */
static void test_graphviz_messages(void **state) {
    (void)state;
    bpv_error *err = NULL;
    const char *spacer = "Warning: node 'out6', graph 'bpviz' size too small for label\n";
    assert_int_equal(bpv_graphviz_messages(spacer, strlen(spacer), &err), BPV_OK);
    assert_null(err);
    assert_int_equal(bpv_graphviz_messages("", 0, &err), BPV_OK);
    assert_int_equal(bpv_graphviz_messages(NULL, 0, &err), BPV_OK);
    const char *other = "Warning: node 'out6', graph 'bpviz' size too small for label\n"
                        "Warning: graph is too large for cairo-renderer bitmaps. Scaling by "
                        "0.5 to fit\n\x1b[31mError: x\n";
    assert_int_equal(bpv_graphviz_messages(other, strlen(other), &err), BPV_ERR_RUNTIME);
    assert_non_null(err);
    assert_string_equal(err->message,
                        "bpviz: error: cannot draw the figure: Graphviz says \"Warning: graph is "
                        "too large for cairo-renderer bitmaps. Scaling by 0.5 to fit\"\n");
    bpv_error_free(err);
    err = NULL;
    const char *bad = "\x1b[31mError: \xff syntax error\n";
    assert_int_equal(bpv_graphviz_messages(bad, strlen(bad), &err), BPV_ERR_RUNTIME);
    assert_string_equal(err->message,
                        "bpviz: error: cannot draw the figure: Graphviz says \"?[31mError: ? "
                        "syntax error\"\n");
    bpv_error_free(err);

    static const char *const ext[] = {"dot", "svg", "png", "pdf", "html"};
    for (size_t e = 0; e < sizeof ext / sizeof ext[0]; e++) {
        char name[32];
        snprintf(name, sizeof name, "quiet.%s", ext[e]);
        char *out = tu_tmp_path(name), *text = NULL;
        assert_int_equal(tu_bpviz(NULL, &text, SAMPLE("two_layer_sigmoid.bp"), "--fit", "16:9",
                                  "--steps", e == 4 ? "1-2" : "2", "-o", out, NULL),
                         0);
        assert_string_equal(text, "");
        free(text);
        unlink(out);
    }
    /* a raster too large or too small: a bpviz message, no file at all */
    char *png = tu_tmp_path("none.png"), *text = NULL;
    assert_int_equal(tu_bpviz(NULL, &text, SAMPLE("linear.bp"), "--size", "1000", "-o", png, NULL),
                     2);
    assert_true(strncmp(text, "bpviz: error: the PNG would be ", 31) == 0);
    free(text);
    assert_int_equal(tu_bpviz(NULL, &text, SAMPLE("linear.bp"), "--size", "0.01", "-o", png, NULL),
                     1);
    assert_true(strncmp(text, "bpviz: error: cannot draw the figure: Graphviz rendered nothing",
                        63) == 0);
    free(text);
    assert_int_equal(access(png, F_OK), -1);
}

/* A CSV saved with old Mac line ends (CR only) reads row by row, like one
 * with CRLF or LF; a row number in a message counts those line ends. */
static void test_csv_cr_line_ends(void **state) {
    (void)state;
    const char *csvs[] = {"1,2\r3,4\r5,6\r", "a,b\r1,2\r3,4\r5,6", "1,2\r\n3,4\r\n\r\n5,6\n"};
    for (size_t i = 0; i < 3; i++) {
        char *csv = tu_tmp_path("cr.csv"), *bp = tu_tmp_path("cr.bp");
        assert_int_equal(tu_write_file(csv, csvs[i], strlen(csvs[i])), 0);
        const char *src = "data x = csv(\"cr.csv\", 0)\ndata y = csv(\"cr.csv\", 1)\n"
                          "param w = 1\nloss = (x * w - y)^2\ntrain epochs=1\n";
        assert_int_equal(tu_write_file(bp, src, strlen(src)), 0);
        bpv_error *err = NULL;
        bpv_model *m = bpv_model_load(bp, &err);
        if (!m) fail_msg("%s", err->message);
        assert_int_equal(bpv_model_step_count(m), 3);
        const double *v = NULL;
        bpv_run_options ro = {0};
        bpv_step_set *all = bpv_step_set_parse("all", &err);
        ro.keep = all;
        assert_int_equal(bpv_model_run(m, &ro, &err), BPV_OK);
        assert_int_equal(bpv_snapshot_node(bpv_model_snapshot(m, 2), "y", &v, NULL), 1);
        assert_true(v[0] == 6.0);
        bpv_step_set_free(all);
        bpv_model_free(m);
    }
    char *csv = tu_tmp_path("cr.csv");
    assert_int_equal(tu_write_file(csv, "1,2\r3,x\r", 8), 0);
    bpv_error *err = NULL;
    assert_null(bpv_model_load(tu_tmp_path("cr.bp"), &err));
    assert_non_null(strstr(err->message, "cr.csv:2: 'x' in column 1 is not a number"));
    bpv_error_free(err);
}

/* Nested fns that double at every level: reported at the call the model
 * wrote, with the nodes it would add, whether the count is far past the
 * limit (refused at once) or just past it (found while inlining). */
static void test_fn_blowup_at_the_call(void **state) {
    (void)state;
    char *bp = tu_tmp_path("blowup.bp");
    bpv_buf src;
    bpv_buf_init(&src);
    bpv_buf_puts(&src, "param w = 1\nfn f0(a) = a * w\n");
    for (int i = 1; i <= 11; i++) bpv_buf_printf(&src, "fn f%d(a) = f%d(a) + f%d(a)\n", i, i - 1, i - 1);
    bpv_buf_puts(&src, "y = 2 * f11(w)\nloss = y + f10(w)\ntrain epochs=1\n");
    assert_int_equal(tu_write_file(bp, src.data, src.len), 0);
    bpv_buf_free(&src);
    /* f11 adds 2^12 - 1 nodes, f10 2^11 - 1 */
    setenv("BPV_MAX_NODES", "1000", 1);
    char *err = NULL;
    assert_int_equal(tu_bpviz(NULL, &err, "check", bp, NULL), 2);
    assert_non_null(strstr(err, "blowup.bp:14:9: error: this call of f11() adds about 4095 nodes "
                                "once its fn calls are inlined, and the graph would have more "
                                "than 1000 nodes (BPV_MAX_NODES); simplify the fns it calls\n"
                                "    y = 2 * f11(w)\n"
                                "            ^~~~~~\n"));
    free(err);
    setenv("BPV_MAX_NODES", "4500", 1); /* f11 fits, f10 then passes the limit */
    assert_int_equal(tu_bpviz(NULL, &err, "check", bp, NULL), 2);
    assert_non_null(strstr(err, "blowup.bp:15:12: error: this call of f10() adds about 2047 nodes "
                                "once its fn calls are inlined, and the graph would have more "
                                "than 4500 nodes (BPV_MAX_NODES)"));
    free(err);
    unsetenv("BPV_MAX_NODES");
    unlink(bp);
}

/* A format value that is not a bpv_format is named as such. */
static void test_snapshot_write_bad_format(void **state) {
    (void)state;
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(SAMPLE("linear.bp"), &err);
    assert_non_null(m);
    bpv_step_set *first = bpv_step_set_parse("1", &err);
    bpv_run_options ro = {0};
    ro.keep = first;
    assert_int_equal(bpv_model_run(m, &ro, &err), BPV_OK);
    bpv_step_set_free(first);
    const bpv_snapshot *s = bpv_model_snapshot(m, 0);
    assert_non_null(s);
    char *svg = tu_tmp_path("fmt.svg");
    assert_int_equal(bpv_snapshot_write(s, svg, 42, NULL, &err), BPV_ERR_MODEL);
    assert_string_equal(err->message, "bpviz: error: bpv_snapshot_write: format 42 is not a "
                                      "bpv_format (BPV_FORMAT_DOT ... BPV_FORMAT_HTML) nor -1 "
                                      "(from the extension)\n");
    bpv_error_free(err);
    err = NULL;
    assert_int_equal(bpv_snapshot_write(s, svg, -7, NULL, &err), BPV_ERR_MODEL);
    assert_non_null(strstr(err->message, "format -7 is not a bpv_format"));
    bpv_error_free(err);
    err = NULL;
    assert_int_equal(access(svg, F_OK), -1);
    assert_int_equal(bpv_snapshot_write(s, tu_tmp_path("fmt.xyz"), -1, NULL, &err), BPV_ERR_MODEL);
    assert_non_null(strstr(err->message, "cannot tell the format of"));
    bpv_error_free(err);
    bpv_model_free(m);
}

int main(void) {
    if (!have("/usr/bin/python3") || !have("/usr/bin/xmllint")) {
        fprintf(stderr, "python3 and xmllint (libxml2-utils) are needed: skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_file_names_in_every_format),
        cmocka_unit_test(test_hostile_names_through_the_api),
        cmocka_unit_test(test_usage_errors_are_clean),
        cmocka_unit_test(test_graphviz_messages),
        cmocka_unit_test(test_csv_cr_line_ends),
        cmocka_unit_test(test_fn_blowup_at_the_call),
        cmocka_unit_test(test_snapshot_write_bad_format),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
