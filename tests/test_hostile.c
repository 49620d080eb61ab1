/* Hostile command lines and inputs for the bpviz command: duplicate and
 * conflicting options, outputs that are folders or sit in missing folders,
 * models that are folders, empty or /dev/null, limits set from the
 * environment, and names full of markup that must reach SVG and JSON
 * escaped. Every failing case asserts the exit status, the message, that a
 * pre-existing output file is untouched and that no temporary file is left
 * beside it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpviz/bpviz.h>

#include "testutil.h"

#define SAMPLE(name) BPV_SOURCE_DIR "/samples/" name
#define PRECIOUS "precious bytes\n"

/* Number of entries in tmpdir (to see that no temporary file was left). */
static int entries(void) {
    DIR *d = opendir(tu_tmpdir());
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* One failing command line: status, a piece of the message, and the
 * pre-existing output untouched with nothing left beside it. */
#define EXPECT_FAIL(status, msg, ...)                                                              \
    do {                                                                                           \
        char *out_ = tu_tmp_path("out.svg");                                                       \
        assert_int_equal(tu_write_file(out_, PRECIOUS, strlen(PRECIOUS)), 0);                      \
        int before_ = entries();                                                                   \
        char *err_ = NULL;                                                                         \
        int rc_ = tu_bpviz(NULL, &err_, __VA_ARGS__, NULL);                                        \
        if (rc_ != (status) || !strstr(err_, (msg)))                                               \
            fail_msg("status %d (want %d), stderr:\n%s\nwant: %s", rc_, (status), err_, (msg));    \
        char *kept_ = tu_read_file(out_, NULL);                                                    \
        assert_non_null(kept_);                                                                    \
        assert_string_equal(kept_, PRECIOUS);                                                      \
        assert_int_equal(entries(), before_);                                                      \
        free(kept_);                                                                               \
        free(err_);                                                                                \
    } while (0)

#define OUT tu_tmp_path("out.svg")
#define OUT_PATTERN tu_tmp_path("out%d.svg")
#define OUT_JSON tu_tmp_path("out.json")

static void test_duplicate_and_conflicting_options(void **state) {
    (void)state;
    EXPECT_FAIL(2, "option '-o' given twice", SAMPLE("linear.bp"), "-o", OUT, "-o", OUT);
    EXPECT_FAIL(2, "option '--theme' given twice", SAMPLE("linear.bp"), "--theme", "print",
                "--theme", "colorblind", "-o", OUT);
    EXPECT_FAIL(2, "option '-T' given twice", SAMPLE("linear.bp"), "-T", "svg", "-T", "svg", "-o",
                OUT);
    EXPECT_FAIL(2, "option '--step' given twice", SAMPLE("linear.bp"), "--step", "1", "--step", "2",
                "-o", OUT);
    EXPECT_FAIL(2, "option '--plain-names' given twice", SAMPLE("linear.bp"), "--plain-names",
                "--plain-names", "-o", OUT);
    EXPECT_FAIL(2, "use --step or --steps, not both", SAMPLE("linear.bp"), "--step", "1", "--steps",
                "1-2", "-o", OUT);
    EXPECT_FAIL(2, "one model at a time", SAMPLE("linear.bp"), SAMPLE("quadratic.bp"), "-o", OUT);
    EXPECT_FAIL(2, "a figure shows one step", SAMPLE("linear.bp"), "--steps", "all", "-o", OUT);
}

static void test_bad_option_values(void **state) {
    (void)state;
    EXPECT_FAIL(2, "--step takes a step number", SAMPLE("linear.bp"), "--step", "-1", "-o", OUT);
    EXPECT_FAIL(2, "bad step selection '0'", SAMPLE("linear.bp"), "--step", "0", "-o", OUT);
    EXPECT_FAIL(2, "bad step selection '99999999999999999999999'", SAMPLE("linear.bp"), "--step",
                "99999999999999999999999", "-o", OUT);
    EXPECT_FAIL(2, "step 401 is past the end", SAMPLE("linear.bp"), "--step", "401", "-o", OUT);
    EXPECT_FAIL(2, "bad step selection '5-1'", SAMPLE("linear.bp"), "--steps", "5-1", "-o", OUT);
    EXPECT_FAIL(2, "bad step selection '1,'", SAMPLE("linear.bp"), "--steps", "1,", "-o", OUT);
    EXPECT_FAIL(2, "--precision takes a number from 1 to 17, not '18'", SAMPLE("linear.bp"),
                "--precision", "18", "-o", OUT);
    EXPECT_FAIL(2, "--precision takes a number from 1 to 17, not '4x'", SAMPLE("linear.bp"),
                "--precision", "4x", "-o", OUT);
    EXPECT_FAIL(2, "unknown format 'bmp'", SAMPLE("linear.bp"), "-T", "bmp", "-o", OUT);
    EXPECT_FAIL(2, "--rankdir takes LR or TB, not 'lr;'", SAMPLE("linear.bp"), "--rankdir", "lr;",
                "-o", OUT);
    EXPECT_FAIL(2, "unknown option '--stepp'", SAMPLE("linear.bp"), "--stepp", "1", "-o", OUT);
    EXPECT_FAIL(2, "option '--labels' needs a value", SAMPLE("linear.bp"), "-o", OUT, "--labels");
    EXPECT_FAIL(2, "cannot tell the format of", SAMPLE("linear.bp"), "-o",
                tu_tmp_path("figure.svg.bak"));
    /* a raster that cannot be made is refused before anything is written */
    EXPECT_FAIL(2, "--dpi takes a number of pixels per inch from 1 to 2400, not '0.1'",
                SAMPLE("linear.bp"), "--dpi", "0.1", "-o", tu_tmp_path("out.png"));
    EXPECT_FAIL(2, "--size takes W or WxH in inches up to 1000", SAMPLE("linear.bp"), "--size",
                "999999", "-o", tu_tmp_path("out.png"));
}

static void test_hostile_outputs(void **state) {
    (void)state;
    /* -o names a folder: nothing in it or beside it changes */
    char *dir = tu_tmp_path("folder.svg");
    assert_int_equal(mkdir(dir, 0755), 0);
    EXPECT_FAIL(1, "cannot write", SAMPLE("linear.bp"), "-o", dir);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    EXPECT_FAIL(1, "cannot write", SAMPLE("linear.bp"), "-T", "svg", "-o", (char *)tu_tmpdir());
    /* -o into a folder that does not exist */
    EXPECT_FAIL(1, "No such file or directory", SAMPLE("linear.bp"), "-o",
                tu_tmp_path("missing/deeper/out.svg"));
    assert_int_equal(rmdir(dir), 0);
}

/* Outputs that are not plain files keep what they are: a FIFO (or a device
 * such as /dev/null) is written through, never replaced by a regular file,
 * and a symbolic link stays a link to the figure it names. */
/* A PNG too large to allocate is refused before cairo tries (--dpi 2400
 * on a figure took 2.5 GB and 35 s), and an existing file is kept. */
/* A CSV saved by a spreadsheet with a UTF-8 byte order mark: its first row
 * is data, not a header (it was dropped as one). */
/* A font name with markup or quotes would reach SVG's font-family="..."
 * and the player's page unescaped (attribute injection, broken XML): it is
 * refused, for every format, and nothing is written. */
static void test_font_name_injection(void **state) {
    (void)state;
    const char *bad[] = {"x\" onmouseover=\"alert(1)", "a<b", "a&b", "a\\b", "a\tb", "it's"};
    const char *ext[] = {"svg", "html", "dot"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        for (size_t e = 0; e < 3; e++) {
            char name[32];
            snprintf(name, sizeof name, "inj%zu.%s", k, ext[e]);
            char *path = tu_tmp_path(name), *out = NULL, *err = NULL;
            int rc = e == 1 ? tu_bpviz(&out, &err, SAMPLE("linear.bp"), "--font", bad[k],
                                       "--steps", "1-2", "-o", path, NULL)
                            : tu_bpviz(&out, &err, SAMPLE("linear.bp"), "--font", bad[k], "-o",
                                       path, NULL);
            assert_int_equal(rc, 2);
            assert_non_null(strstr(err, "--font: a family name is text without quotes"));
            assert_int_equal(access(path, F_OK), -1);
            free(out), free(err);
        }
}

static void test_csv_bom(void **state) {
    (void)state;
    char *csv = tu_tmp_path("bom.csv"), *bp = tu_tmp_path("bom.bp");
    assert_int_equal(tu_write_file(csv, "\xEF\xBB\xBF" "1,2\n3,4\n", 11), 0);
    const char *src = "data x = csv(\"bom.csv\", 0)\nparam w = 1\nloss = sum(x * w)\ntrain epochs=1\n";
    assert_int_equal(tu_write_file(bp, src, strlen(src)), 0);
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(bp, &err);
    assert_non_null(m);
    assert_int_equal(bpv_model_step_count(m), 2);
    bpv_model_free(m);
    unlink(csv), unlink(bp);
}

/* A first row that is not numbers is taken as a header, and a note on
 * standard error says which (a typo in a row of numbers would otherwise
 * lose it silently); a first row of numbers gives no note. The library
 * writes notes only where bpv_notes_to says. */
static void test_csv_header_note(void **state) {
    (void)state;
    char csv[512], bp[512];
    snprintf(csv, sizeof csv, "%s", tu_tmp_path("hdr.csv"));
    snprintf(bp, sizeof bp, "%s", tu_tmp_path("hdr.bp"));
    const char *src = "# header\ndata x = csv(\"hdr.csv\", 1)\nparam w = 1\nloss = sum(x * w)\n"
                      "train epochs=1\n";
    assert_int_equal(tu_write_file(bp, src, strlen(src)), 0);
    assert_int_equal(tu_write_file(csv, "1,2.5.\n3,4\n", 11), 0);
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, "run", bp, NULL), 0);
    assert_non_null(strstr(err, "hdr.bp:2:14: note: line 1 of 'hdr.csv' is taken as a header and "
                                "skipped (1,2.5.): '2.5.' in column 1 is not a number\n"));
    free(out), free(err);
    assert_int_equal(tu_write_file(csv, "1,2\n3,4\n", 8), 0);
    assert_int_equal(tu_bpviz(&out, &err, "run", bp, NULL), 0);
    assert_null(strstr(err, "note:"));
    free(out), free(err);
    /* the library: dropped by default, written where asked */
    assert_int_equal(tu_write_file(csv, "a,b\n3,4\n", 8), 0);
    FILE *notes = tmpfile();
    assert_non_null(notes);
    bpv_notes_to(notes);
    bpv_error *e = NULL;
    bpv_model *m = bpv_model_load(bp, &e);
    assert_non_null(m);
    assert_int_equal(bpv_model_step_count(m), 1);
    bpv_model_free(m);
    bpv_notes_to(NULL);
    m = bpv_model_load(bp, &e);
    assert_non_null(m);
    bpv_model_free(m);
    rewind(notes);
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, notes));
    assert_non_null(strstr(line, "note: line 1 of 'hdr.csv' is taken as a header and skipped "
                                 "(a,b): 'b' in column 1 is not a number"));
    assert_null(fgets(line, sizeof line, notes)); /* once: not after bpv_notes_to(NULL) */
    fclose(notes);
    unlink(csv), unlink(bp);
}

static void test_raster_bounded(void **state) {
    (void)state;
    char *png = tu_tmp_path("big.png"), *out = NULL, *err = NULL;
    assert_int_equal(tu_write_file(png, PRECIOUS, strlen(PRECIOUS)), 0);
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("two_layer_sigmoid.bp"), "--dpi", "2400", "-o",
                              png, NULL),
                     2);
    assert_non_null(strstr(err, "pixels; cairo draws at most 32767 a side"));
    free(out), free(err);
    char *kept = tu_read_file(png, NULL);
    assert_string_equal(kept, PRECIOUS);
    free(kept);
    /* within cairo's sides, the pixels count against the memory budget */
    assert_int_equal(tu_bpviz(&out, &err, SAMPLE("linear.bp"), "--dpi", "600", "--memory", "16M",
                              "-o", png, NULL),
                     2);
    assert_non_null(strstr(err, "error: drawing the PNG ("));
    assert_non_null(strstr(err, "pixels, 4 bytes each) needs "));
    assert_non_null(strstr(err, "more than the memory budget of 16 MiB; lower --dpi or --size, "
                                "or draw SVG or PDF, or raise it with --memory"));
    free(out), free(err);
    kept = tu_read_file(png, NULL);
    assert_string_equal(kept, PRECIOUS);
    free(kept);
    assert_int_equal(tu_bpviz(NULL, NULL, SAMPLE("linear.bp"), "--dpi", "600", "-o", png, NULL), 0);
    unlink(png);
}

static void test_hostile_special_outputs(void **state) {
    (void)state;
    char *fifo = tu_tmp_path("pipe.svg"), *got = tu_tmp_path("from-pipe.svg");
    assert_int_equal(tu_sh("mkfifo '%s'", fifo), 0);
    /* the reader gives up if the FIFO is replaced and never written */
    assert_int_equal(tu_sh("timeout 20 cat '%s' > '%s' & r=$!; '%s' '%s' -o '%s'; s=$?; "
                           "wait $r && exit $s",
                           fifo, got, BPV_CLI_PATH, SAMPLE("linear.bp"), fifo),
                     0);
    struct stat st;
    assert_int_equal(lstat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    char *svg = tu_read_file(got, NULL);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "</svg>"));
    free(svg);
    char *target = tu_tmp_path("real.svg"), *link = tu_tmp_path("link.svg");
    assert_int_equal(tu_write_file(target, PRECIOUS, strlen(PRECIOUS)), 0);
    assert_int_equal(symlink(target, link), 0);
    int before = entries();
    assert_int_equal(tu_bpviz(NULL, NULL, SAMPLE("linear.bp"), "-o", link, NULL), 0);
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    svg = tu_read_file(target, NULL);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "</svg>"));
    assert_int_equal(entries(), before);
    free(svg);
    unlink(link), unlink(target), unlink(fifo), unlink(got);
    /* a dangling link is written through, as a shell's `>` would: its
     * target (relative to the link's folder) is created, the link stays */
    char *dangling = tu_tmp_path("dangling.svg");
    assert_int_equal(symlink("made-by-link.svg", dangling), 0);
    assert_int_equal(tu_bpviz(NULL, NULL, SAMPLE("linear.bp"), "-o", dangling, NULL), 0);
    assert_int_equal(lstat(dangling, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    svg = tu_read_file(tu_tmp_path("made-by-link.svg"), NULL);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "</svg>"));
    free(svg);
    /* a loop of links is an error, not a hang */
    char *l1 = tu_tmp_path("loop1.svg"), *l2 = tu_tmp_path("loop2.svg");
    assert_int_equal(symlink("loop2.svg", l1), 0);
    assert_int_equal(symlink("loop1.svg", l2), 0);
    assert_int_not_equal(tu_bpviz(NULL, NULL, SAMPLE("linear.bp"), "-o", l1, NULL), 0);
    unlink(dangling), unlink(tu_tmp_path("made-by-link.svg")), unlink(l1), unlink(l2);
}

/* The files around a run are safe: the output may not be the model itself,
 * a name as long as the system allows is written (its temporary file fits
 * too), and a CSV "file" that is a FIFO is refused instead of waited on. */
static void test_files_around_a_run(void **state) {
    (void)state;
    char *model = tu_tmp_path("self.bp");
    const char *src = "data x = [1, 2]\nparam w = 1\nloss = sum(x * w)\ntrain epochs=1\n";
    assert_int_equal(tu_write_file(model, src, strlen(src)), 0);
    EXPECT_FAIL(2, "is the model being drawn", model, "-T", "svg", "-o", model);
    char *kept = tu_read_file(model, NULL);
    assert_non_null(kept);
    assert_string_equal(kept, src);
    free(kept);
    /* a 250-byte name: legal, and written */
    char name[260];
    memset(name, 'n', 246);
    memcpy(name + 246, ".svg", 5);
    char *longp = tu_tmp_path(name);
    int before = entries();
    assert_int_equal(tu_bpviz(NULL, NULL, SAMPLE("linear.bp"), "-o", longp, NULL), 0);
    char *svg = tu_read_file(longp, NULL);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "</svg>"));
    free(svg);
    assert_int_equal(entries(), before + 1);
    unlink(longp);
    /* csv() of a FIFO nobody writes: an error at once, not a hang */
    char *fifo = tu_tmp_path("pipe.csv"), *csvm = tu_tmp_path("fifo.bp");
    assert_int_equal(tu_sh("mkfifo '%s'", fifo), 0);
    const char *m2 = "data x = csv(\"pipe.csv\", 0)\nparam w = 1\nloss = sum(x * w)\n"
                     "train epochs=1\n";
    assert_int_equal(tu_write_file(csvm, m2, strlen(m2)), 0);
    char *err = NULL;
    assert_int_equal(tu_sh("timeout 20 '%s' run '%s' > /dev/null 2>&1; test $? -eq 2",
                           BPV_CLI_PATH, csvm),
                     0);
    assert_int_equal(tu_bpviz(NULL, &err, "run", csvm, NULL), 2);
    assert_non_null(strstr(err, "is not a regular file"));
    free(err);
    unlink(fifo), unlink(csvm), unlink(model);
}

static void test_hostile_models(void **state) {
    (void)state;
    EXPECT_FAIL(2, "is a folder, not a model file", (char *)tu_tmpdir(), "-o", OUT);
    EXPECT_FAIL(2, "cannot open model", tu_tmp_path("no-such-model.bp"), "-o", OUT);
    /* empty, /dev/null and standard input (the tests' stdin is /dev/null) */
    char *empty = tu_tmp_path("empty.bp");
    assert_int_equal(tu_write_file(empty, "", 0), 0);
    EXPECT_FAIL(2, "the model has no training step to draw", empty, "-o", OUT);
    EXPECT_FAIL(2, "the model has no training step to draw", "/dev/null", "-o", OUT);
    EXPECT_FAIL(2, "the model has no training step to draw", "-", "-o", OUT);
    /* a located error keeps the output too */
    char *bad = tu_tmp_path("bad.bp");
    const char *text = "data x = [1, 2]\nparam w = 1\nloss = (x * w\n";
    assert_int_equal(tu_write_file(bad, text, strlen(text)), 0);
    EXPECT_FAIL(2, "bad.bp:3:", bad, "-o", OUT);
    /* a PNG passed as a model */
    char *png = tu_tmp_path("image.png");
    assert_int_equal(tu_write_file(png, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16), 0);
    EXPECT_FAIL(2, "image.png:1:1: error: invalid UTF-8 byte 0x89", png, "-o", OUT);
    /* `run` with no model or two */
    EXPECT_FAIL(2, "run needs a model file", "run");
    EXPECT_FAIL(2, "unexpected argument", "run", SAMPLE("linear.bp"), SAMPLE("linear.bp"));
    unlink(empty);
    unlink(bad);
    unlink(png);
}

static void test_limits_from_environment(void **state) {
    (void)state;
    setenv("BPV_MAX_NODES", "lots", 1);
    EXPECT_FAIL(2, "BPV_MAX_NODES must be a whole number from 1 to", SAMPLE("linear.bp"), "-o",
                OUT);
    setenv("BPV_MAX_NODES", "3", 1);
    EXPECT_FAIL(2, "more than 3 nodes (BPV_MAX_NODES)", SAMPLE("linear.bp"), "-o", OUT);
    unsetenv("BPV_MAX_NODES");

    /* kept steps count in bytes against the memory budget, before the run */
    setenv("BPV_MEMORY", "1M", 1);
    char wideparam[512]; /* tu_tmp_path's buffers are reused */
    snprintf(wideparam, sizeof wideparam, "%s", tu_tmp_path("wideparam.bp"));
    const char *wt = "param W = zeros([128, 128])\nloss = sum(W * W)\ntrain epochs=200\n";
    assert_int_equal(tu_write_file(wideparam, wt, strlen(wt)), 0);
    EXPECT_FAIL(2, "error: keeping 200 steps of this model (", wideparam, "--steps", "1-200",
                "-o", OUT_PATTERN);
    EXPECT_FAIL(2, "more than the memory budget of 1 MiB; make its tensors or batches smaller, "
                   "or raise it with --memory 256M (or BPV_MEMORY=256M)",
                wideparam, "--steps", "1-200", "-o", OUT_PATTERN);
    unsetenv("BPV_MEMORY");
    EXPECT_FAIL(2, "more than the memory budget of 4 MiB; keep fewer steps (--steps 1-200/",
                "--memory", "4M", wideparam, "--steps", "1-200", "-o", OUT_PATTERN);
    EXPECT_FAIL(2, "(1.2 MiB a step) needs 226.1 MiB, more than the memory budget of 2 MiB; keep "
                   "fewer steps (--steps 1-200/200), or raise it with --memory 256M",
                "--memory", "2M", wideparam, "--steps", "1-200", "-o", OUT_PATTERN);
    assert_int_equal(tu_bpviz(NULL, NULL, "--memory", "64M", wideparam, "--steps", "1-3", "-o",
                              OUT_JSON, NULL),
                     0);
    unlink(OUT_JSON);
    EXPECT_FAIL(2, "with its text) needs", "--memory", "8M", wideparam, "--steps", "1-200",
                "-o", OUT_JSON);
    EXPECT_FAIL(2, "--memory takes a size of at least 1M, like 512M or 16G, not '1k'",
                "--memory", "1k", wideparam);
    unlink(wideparam);

    setenv("BPV_MAX_TENSOR_ELEMS", "3", 1);
    EXPECT_FAIL(2, "the limit is 3 (BPV_MAX_TENSOR_ELEMS)", SAMPLE("linear.bp"), "-o", OUT);
    unsetenv("BPV_MAX_TENSOR_ELEMS");

    setenv("BPV_MAX_LINE_BYTES", "80", 1);
    char *wide = tu_tmp_path("wide.bp");
    char text[400];
    int n = snprintf(text, sizeof text, "data x = [1, 2]\nparam w = 1\nloss = sum(x * w)");
    while (n < 200) text[n++] = ' ';
    n += snprintf(text + n, sizeof text - (size_t)n, "# a long comment\ntrain epochs=1\n");
    assert_int_equal(tu_write_file(wide, text, (size_t)n), 0);
    EXPECT_FAIL(2, "wide.bp:3:81: error: this line is longer than 80 bytes (BPV_MAX_LINE_BYTES)",
                wide, "-o", OUT);
    unsetenv("BPV_MAX_LINE_BYTES");

    /* the default line limit, 1 MiB: a list on one line of 1.2 MB */
    char *huge = tu_tmp_path("huge-line.bp");
    FILE *hf = fopen(huge, "w");
    assert_non_null(hf);
    fputs("data x = [0", hf);
    for (int i = 0; i < 200000; i++) fputs(", 0.125", hf);
    fputs("]\nparam w = 1\nloss = sum(x * w)\ntrain epochs=1\n", hf);
    assert_int_equal(fclose(hf), 0);
    EXPECT_FAIL(2, "huge-line.bp:1:1048577: error: this line is longer than 1048576 bytes", huge,
                "-o", OUT);
    unlink(huge);

    setenv("BPV_MAX_SOURCE_MB", "1", 1);
    EXPECT_FAIL(2, "is larger than 1 MiB", "/dev/zero", "-o", OUT);
    unsetenv("BPV_MAX_SOURCE_MB");

    /* a CSV that never ends is no regular file; one too large is refused */
    char *zero = tu_tmp_path("zero.bp");
    const char *zt =
        "data x = csv(\"/dev/zero\", 0)\nparam w = 1\nloss = (x * w)^2\ntrain epochs=1\n";
    assert_int_equal(tu_write_file(zero, zt, strlen(zt)), 0);
    EXPECT_FAIL(2, "zero.bp:1:14: error: '/dev/zero' is not a regular file", zero, "-o", OUT);
    setenv("BPV_MEMORY", "1M", 1);
    char *big = tu_tmp_path("big.bp"), *bigcsv = tu_tmp_path("big.csv");
    assert_int_equal(tu_sh("yes 1 | head -c 2100000 > '%s'", bigcsv), 0);
    const char *bt =
        "data x = csv(\"big.csv\", 0)\nparam w = 1\nloss = (x * w)^2\ntrain epochs=1\n";
    assert_int_equal(tu_write_file(big, bt, strlen(bt)), 0);
    EXPECT_FAIL(2, "big.bp:1:14: error: the model with '", big, "-o", OUT);
    EXPECT_FAIL(2, "big.csv' read needs 2.1 MiB, more than the memory budget of 1 MiB", big, "-o",
                OUT);
    unsetenv("BPV_MEMORY");
    unlink(big), unlink(bigcsv);

    setenv("BPV_MAX_NESTING", "3", 1);
    char *deep = tu_tmp_path("deep.bp");
    const char *dt = "param w = 1\nloss = ((((w))))\ntrain epochs=1\n";
    assert_int_equal(tu_write_file(deep, dt, strlen(dt)), 0);
    EXPECT_FAIL(2,
                "deep.bp:2:11: error: expression nested too deeply (more than 3 levels; "
                "BPV_MAX_NESTING)",
                deep, "-o", OUT);
    setenv("BPV_MAX_NESTING", "1001", 1);
    EXPECT_FAIL(2, "BPV_MAX_NESTING must be a whole number from 1 to 1000, not '1001'", deep, "-o",
                OUT);
    unsetenv("BPV_MAX_NESTING");
    unlink(wide);
    unlink(zero);
    unlink(deep);
}

/* Very small XML well-formedness check: tags balance, attribute values are
 * quoted, '&' starts an entity and no raw '<' sits in text. Enough to see
 * that names reached the SVG escaped; xmllint checks fully when installed. */
static void assert_xml_well_formed(const char *s) {
    const char *stack[256];
    size_t lens[256];
    int depth = 0;
    for (const char *p = s; *p;) {
        if (*p == '&') {
            const char *semi = strchr(p, ';');
            assert_non_null(semi);
            assert_true(semi - p <= 10);
            for (const char *q = p + 1; q < semi; q++)
                assert_true((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '#' ||
                            *q == 'x');
            p = semi + 1;
            continue;
        }
        if (*p != '<') {
            assert_true(*p != '>' || 1); /* '>' is legal in text */
            p++;
            continue;
        }
        if (strncmp(p, "<!--", 4) == 0) {
            const char *e = strstr(p, "-->");
            assert_non_null(e);
            p = e + 3;
            continue;
        }
        if (p[1] == '?' || p[1] == '!') {
            const char *e = strchr(p, '>');
            assert_non_null(e);
            p = e + 1;
            continue;
        }
        bool closing = p[1] == '/';
        const char *name = p + (closing ? 2 : 1);
        size_t nl = strcspn(name, " \t\r\n/>");
        assert_true(nl > 0);
        const char *q = name + nl;
        while (*q && *q != '>') {
            if (*q == '"' || *q == '\'') {
                const char *e = strchr(q + 1, *q);
                assert_non_null(e);
                for (const char *r = q + 1; r < e; r++) assert_true(*r != '<');
                q = e + 1;
            } else {
                assert_true(*q != '<');
                q++;
            }
        }
        assert_int_equal(*q, '>');
        bool empty = q[-1] == '/';
        if (closing) {
            assert_true(depth > 0);
            depth--;
            assert_int_equal(lens[depth], nl);
            assert_memory_equal(stack[depth], name, nl);
        } else if (!empty) {
            assert_true(depth < 256);
            stack[depth] = name;
            lens[depth++] = nl;
        }
        p = q + 1;
    }
    assert_int_equal(depth, 0);
}

static void test_markup_in_names_is_escaped(void **state) {
    (void)state;
    /* The model's file name holds markup, quotes, a backslash and non-ASCII;
     * its CSV's header does too. Both must reach the outputs escaped. */
    char *model = tu_tmp_path("a<b>&c\"d'e\\f é ∂.bp");
    char *csv = tu_tmp_path("x&<y>.csv");
    const char *ct = "\"<x>\",'&amp;\\'\",\"é\"\n1,2\n2,4\n";
    assert_int_equal(tu_write_file(csv, ct, strlen(ct)), 0);
    const char *mt = "data x = csv(\"x&<y>.csv\", 0)\ndata y = csv(\"x&<y>.csv\", 1)\n"
                     "param w = 1.0\ny_hat = x * w\nloss = (y_hat - y)^2\ntrain epochs=2 lr=0.01\n";
    assert_int_equal(tu_write_file(model, mt, strlen(mt)), 0);

    char *svg = tu_tmp_path("named.svg");
    char *err = NULL;
    int rc = tu_bpviz(NULL, &err, model, "-o", svg, NULL);
    if (rc != 0) fail_msg("status %d: %s", rc, err);
    free(err);
    size_t len;
    char *text = tu_read_file(svg, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "<svg"));
    assert_xml_well_formed(text);
    assert_null(strstr(text, "a<b>"));
    free(text);
    if (access("/usr/bin/xmllint", X_OK) == 0) {
        char *argv[] = {"/usr/bin/xmllint", "--noout", svg, NULL};
        char *xerr = NULL;
        int x = tu_run(argv, NULL, NULL, &xerr);
        if (x != 0) fail_msg("xmllint: %s", xerr);
        free(xerr);
    }

    /* DOT read back must name the same things; JSON must stay one string */
    char *json = tu_tmp_path("named.json");
    assert_int_equal(tu_bpviz(NULL, &err, model, "-o", json, NULL), 0);
    free(err);
    text = tu_read_file(json, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "a\\u003cb>&c\\\"d'e\\\\f é ∂.bp"));
    free(text);

    /* the located error of a model with that name keeps the name readable */
    const char *bad = "param w = 1\nloss = w <&> 2\n";
    assert_int_equal(tu_write_file(model, bad, strlen(bad)), 0);
    assert_int_equal(tu_bpviz(NULL, &err, model, "-o", svg, NULL), 2);
    assert_non_null(strstr(err, "a<b>&c\"d'e\\f é ∂.bp:2:"));
    free(err);
    unlink(model);
    unlink(csv);
    unlink(svg);
    unlink(json);
}

/* A CSV cell holding escape sequences and bytes that are not UTF-8 is quoted
 * in the message with those bytes shown as '?', never sent to the terminal. */
static void test_csv_cell_message_is_clean(void **state) {
    (void)state;
    char *csv = tu_tmp_path("cells.csv");
    const char *ct = "a,b\n1,2\n\x1b[31m\xff\xfe<b>,3\n";
    assert_int_equal(tu_write_file(csv, ct, strlen(ct)), 0);
    char *model = tu_tmp_path("cells.bp");
    const char *mt = "data x = csv(\"cells.csv\", 0)\nparam w = 1\nloss = (x * w)^2\n"
                     "train epochs=1\n";
    assert_int_equal(tu_write_file(model, mt, strlen(mt)), 0);
    char *err = NULL;
    assert_int_equal(tu_bpviz(NULL, &err, model, "-o", OUT, NULL), 2);
    assert_non_null(strstr(err, "cells.csv:3: '?[31m?\?<b>' in column 0 is not a number"));
    assert_null(strchr(err, '\x1b'));
    free(err);
    unlink(csv);
    unlink(model);
}

/* bpviz check's double copy of the graph counts against the budget too,
 * before anything runs (an 8192 x 8192 param once took 135 s and 7.3 GB) */
static void test_check_within_budget(void **state) {
    (void)state;
    char *bp = tu_tmp_path("wide-check.bp"), *err = NULL;
    const char *src = "param W = zeros([512, 512])\nloss = sum(W * W)\ntrain epochs=1\n";
    assert_int_equal(tu_write_file(bp, src, strlen(src)), 0);
    assert_int_equal(tu_bpviz(NULL, &err, "check", "--memory", "24M", bp, NULL), 2);
    assert_non_null(strstr(err, "error: keeping 1 step of this model ("));
    assert_non_null(strstr(err, "a step, and the gradient check) needs "));
    assert_non_null(strstr(err, "more than the memory budget of 24 MiB"));
    free(err);
    assert_int_equal(tu_bpviz(NULL, &err, "--gradcheck", "--memory", "24M", bp, "-o",
                              tu_tmp_path("wide-check.svg"), NULL),
                     2);
    assert_non_null(strstr(err, "and the gradient check) needs "));
    free(err);
    unlink(bp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicate_and_conflicting_options),
        cmocka_unit_test(test_bad_option_values),
        cmocka_unit_test(test_hostile_outputs),
        cmocka_unit_test(test_hostile_special_outputs),
        cmocka_unit_test(test_raster_bounded),
        cmocka_unit_test(test_csv_bom),
        cmocka_unit_test(test_font_name_injection),
        cmocka_unit_test(test_files_around_a_run),
        cmocka_unit_test(test_hostile_models),
        cmocka_unit_test(test_limits_from_environment),
        cmocka_unit_test(test_markup_in_names_is_escaped),
        cmocka_unit_test(test_csv_cell_message_is_clean),
        cmocka_unit_test(test_check_within_budget),
        cmocka_unit_test(test_csv_header_note),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
