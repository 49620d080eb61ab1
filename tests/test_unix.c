/* bpviz as a Unix tool: help and version, suggestions for mistyped options,
 * standard input and output, lecture output (PDF fonts and page, PNG size
 * and resolution, one font), and --watch re-rendering a model being edited. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpviz/bpviz.h>

#include "testutil.h"

#define CLI BPV_CLI_PATH
#define LINEAR BPV_SOURCE_DIR "/samples/linear.bp"

static pid_t watcher; /* a --watch child to end even if its test fails */

static int teardown(void **state) {
    (void)state;
    if (watcher > 0) {
        kill(watcher, SIGKILL);
        waitpid(watcher, NULL, 0);
    }
    return tu_tmpdir_teardown(state);
}

static char *slurp(const char *path) {
    size_t len;
    char *s = tu_read_file(path, &len);
    if (!s) fail_msg("cannot read %s", path);
    return s;
}

static void test_help_version(void **state) {
    (void)state;
    char *out, *err;
    char *argv[] = {CLI, "--help", NULL};
    assert_int_equal(tu_run(argv, &out, NULL, &err), 0);
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    assert_true(lines <= 40); /* one screen */
    /* ... of 80 columns (UTF-8 characters counted, not bytes) */
    int cols = 0;
    for (const unsigned char *p = (const unsigned char *)out; *p; p++) {
        if (*p == '\n')
            cols = 0;
        else if ((*p & 0xc0) != 0x80 && ++cols > 80)
            fail_msg("a line of --help is wider than 80 columns");
    }
    const char *opts[] = {"--font NAME", "--size W[xH]", "--dpi N", "--watch"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) assert_non_null(strstr(out, opts[i]));
    /* every option that takes a value names its default, or is a selector
     * whose choices are listed (-T, --steps) */
    for (const char *line = out; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char buf[256];
        snprintf(buf, sizeof buf, "%.*s", (int)n, line);
        if (strncmp(buf, "  --", 4) == 0 && strchr(buf + 4, ' ') &&
            buf[4 + strcspn(buf + 4, " ") + 1] != ' ' && !strstr(buf, "--steps"))
            if (!strstr(buf, "default")) fail_msg("no default in: %s", buf);
        line += n + (nl != NULL);
    }
    free(out);
    free(err);
    char *argv2[] = {CLI, "--version", NULL};
    assert_int_equal(tu_run(argv2, &out, NULL, &err), 0);
    char want[64];
    snprintf(want, sizeof want, "bpviz %s\n", bpv_version());
    assert_string_equal(out, want);
    free(out);
    free(err);
}

static void test_suggestions(void **state) {
    (void)state;
    struct {
        const char *typo, *hint;
    } cases[] = {{"--stpe", "unknown option '--stpe' (did you mean '--step'?)"},
                 {"--wacth", "(did you mean '--watch'?)"},
                 {"--theem", "(did you mean '--theme'?)"},
                 {"--versoin", "(did you mean '--version'?)"},
                 {"--zzzzzzzzzzzz", "unknown option '--zzzzzzzzzzzz'\n"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err;
        char *argv[] = {CLI, LINEAR, (char *)cases[i].typo, "3", NULL};
        assert_int_equal(tu_run(argv, NULL, NULL, &err), 2);
        if (!strstr(err, cases[i].hint)) fail_msg("%s: %s", cases[i].typo, err);
        free(err);
    }
    char *err;
    char *argv[] = {CLI, LINEAR, "--size", "big", NULL};
    assert_int_equal(tu_run(argv, NULL, NULL, &err), 2);
    assert_non_null(strstr(err, "--size takes W or WxH"));
    free(err);
}

/* "-" for the model and the output, in every mode. */
static void test_stdin_stdout(void **state) {
    (void)state;
    const char *svg = tu_tmp_path("stdin.svg"), *log = tu_tmp_path("log");
    assert_int_equal(tu_sh("'%s' - -o - -T svg < '%s' > '%s' 2>'%s'", CLI, LINEAR, svg, log), 0);
    char *s = slurp(svg);
    assert_non_null(strstr(s, "</svg>"));
    free(s);
    /* JSON names the model <stdin> */
    const char *json = tu_tmp_path("stdin.json");
    assert_int_equal(tu_sh("'%s' - -T json < '%s' > '%s'", CLI, LINEAR, json), 0);
    s = slurp(json);
    assert_non_null(strstr(s, "stdin>\",")); /* "<stdin>", '<' maybe escaped */
    free(s);
    /* bpviz run - */
    const char *run = tu_tmp_path("run.txt");
    assert_int_equal(tu_sh("'%s' run - < '%s' > '%s'", CLI, LINEAR, run), 0);
    s = slurp(run);
    assert_non_null(strstr(s, "predict y_hat(x=5) = 5.0\n"));
    free(s);
    /* errors in a model from standard input are located in <stdin> */
    const char *bad = tu_tmp_path("bad.bp");
    const char *text = "data x = [1]\nparam w = 1\nloss = x * wx\n";
    assert_int_equal(tu_write_file(bad, text, strlen(text)), 0);
    assert_int_equal(tu_sh("'%s' - < '%s' 2>'%s' >/dev/null", CLI, bad, log), 2);
    s = slurp(log);
    assert_non_null(strstr(s, "<stdin>:3:12: error: unknown name 'wx'"));
    free(s);
    assert_int_equal(tu_sh("'%s' run - < '%s' 2>'%s' >/dev/null", CLI, bad, log), 2);
    s = slurp(log);
    assert_non_null(strstr(s, "<stdin>:3:12: error:"));
    free(s);
}

/* Pixels of a grayscale PGM (P5) file; NULL if it is not one. */
static unsigned char *read_pgm(const char *path, int *w, int *h) {
    size_t len;
    char *s = tu_read_file(path, &len);
    int maxv, off = 0;
    if (!s || sscanf(s, "P5 %d %d %d%n", w, h, &maxv, &off) != 3 || maxv != 255 ||
        len < (size_t)off + 1 + (size_t)*w * (size_t)*h) {
        free(s);
        return NULL;
    }
    unsigned char *px = malloc((size_t)*w * (size_t)*h);
    memcpy(px, s + off + 1, (size_t)*w * (size_t)*h);
    free(s);
    return px;
}

/* A PDF for LaTeX: fonts embedded, and a page no larger than the drawing. */
/* The same figure twice is the same PDF, byte for byte: cairo's creation
 * date becomes SOURCE_DATE_EPOCH's, or 1970-01-01 without it. */
static void test_pdf_reproducible(void **state) {
    (void)state;
    const char *a = tu_tmp_path("a.pdf"), *b = tu_tmp_path("b.pdf"), *c = tu_tmp_path("c.pdf");
    assert_int_equal(tu_sh("'%s' '%s' -o '%s'", CLI, LINEAR, a), 0);
    nanosleep(&(struct timespec){1, 100000000}, NULL); /* a second apart */
    assert_int_equal(tu_sh("'%s' '%s' -o '%s'", CLI, LINEAR, b), 0);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", a, b), 0);
    assert_int_equal(tu_sh("grep -a -q 'CreationDate (D:19700101000000' '%s'", a), 0);
    assert_int_equal(tu_sh("SOURCE_DATE_EPOCH=1700000000 '%s' '%s' -o '%s'", CLI, LINEAR, c), 0);
    assert_int_equal(tu_sh("grep -a -q 'CreationDate (D:20231114221320' '%s'", c), 0);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", a, c), 1);
}

static void test_pdf_for_latex(void **state) {
    (void)state;
    if (tu_sh("command -v pdffonts >/dev/null && command -v pdftoppm >/dev/null") != 0) {
        print_message("poppler-utils missing (scripts/install-deps.sh installs it)\n");
        skip();
    }
    const char *pdf = tu_tmp_path("fig.pdf"), *fonts = tu_tmp_path("fonts.txt");
    assert_int_equal(tu_sh("'%s' '%s' -o '%s'", CLI, LINEAR, pdf), 0);
    assert_int_equal(tu_sh("pdffonts '%s' > '%s'", pdf, fonts), 0);
    char *s = slurp(fonts);
    /* header, rule, then one line per font whose "emb" column says yes */
    int nfonts = 0;
    char *line = strchr(strchr(s, '\n') + 1, '\n') + 1;
    for (char *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        nfonts++;
        /* columns: name type encoding emb sub uni object gen; the type may
         * hold a space ("CID TrueType"), so count from the end */
        char *tok[16];
        int nt = 0;
        char copy[256];
        snprintf(copy, sizeof copy, "%s", line);
        for (char *t = strtok(copy, " "); t && nt < 16; t = strtok(NULL, " ")) tok[nt++] = t;
        if (nt < 6 || strcmp(tok[nt - 5], "yes") != 0) fail_msg("font not embedded: %s", line);
    }
    assert_true(nfonts >= 1);
    free(s);
    /* rasterise at 72 dpi: the ink reaches within a few points of each edge */
    assert_int_equal(tu_sh("pdftoppm -r 72 -gray -singlefile '%s' '%s'", pdf, tu_tmp_path("page")),
                     0);
    int w, h;
    unsigned char *px = read_pgm(tu_tmp_path("page.pgm"), &w, &h);
    assert_non_null(px);
    int left = w, right = -1, top = h, bottom = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (px[y * w + x] < 200) {
                if (x < left) left = x;
                if (x > right) right = x;
                if (y < top) top = y;
                if (y > bottom) bottom = y;
            }
    free(px);
    assert_true(right > left && bottom > top);
    int margins[4] = {left, w - 1 - right, top, h - 1 - bottom};
    for (int i = 0; i < 4; i++)
        /* pad, plus the caption's own padding at the bottom; a device
         * margin would add 36 more */
        if (margins[i] > 24) fail_msg("margin %d is %d pt (page %dx%d)", i, margins[i], w, h);
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void png_size(const char *path, uint32_t *w, uint32_t *h) {
    size_t len;
    unsigned char *s = (unsigned char *)tu_read_file(path, &len);
    assert_non_null(s);
    assert_true(len > 24 && memcmp(s, "\x89PNG", 4) == 0);
    *w = be32(s + 16);
    *h = be32(s + 20);
    free(s);
}

static void test_png_size_dpi(void **state) {
    (void)state;
    uint32_t w0, h0, w, h;
    assert_int_equal(tu_sh("'%s' '%s' -o '%s'", CLI, LINEAR, tu_tmp_path("a.png")), 0);
    png_size(tu_tmp_path("a.png"), &w0, &h0);
    /* twice the dpi, twice the pixels */
    assert_int_equal(tu_sh("'%s' '%s' -o '%s' --dpi 192", CLI, LINEAR, tu_tmp_path("b.png")), 0);
    png_size(tu_tmp_path("b.png"), &w, &h);
    assert_true(w >= 2 * w0 - 4 && w <= 2 * w0 + 4);
    assert_true(h >= 2 * h0 - 4 && h <= 2 * h0 + 4);
    /* 8 inches at 200 dpi: the wide figure is 1600 pixels wide */
    assert_int_equal(
        tu_sh("'%s' '%s' -o '%s' --size 8 --dpi 200", CLI, LINEAR, tu_tmp_path("c.png")), 0);
    png_size(tu_tmp_path("c.png"), &w, &h);
    assert_int_equal(w, 1600);
    assert_true(h < 1600);
    /* a box: the figure fits inside, touching one side */
    assert_int_equal(
        tu_sh("'%s' '%s' -o '%s' --size 3x3 --dpi 100", CLI, LINEAR, tu_tmp_path("d.png")), 0);
    png_size(tu_tmp_path("d.png"), &w, &h);
    assert_true(w == 300 && h < 300);
}

static void test_font(void **state) {
    (void)state;
    const char *dot = tu_tmp_path("font.dot");
    assert_int_equal(tu_sh("'%s' '%s' --font 'Liberation Serif' > '%s'", CLI, LINEAR, dot), 0);
    char *s = slurp(dot);
    assert_non_null(strstr(s, "fontname=\"Liberation Serif\""));
    assert_null(strstr(s, "DejaVu")); /* every node and edge, not only the defaults */
    free(s);
    if (tu_sh("command -v pdffonts >/dev/null && fc-list | grep -q 'Liberation Serif'") != 0)
        return;
    assert_int_equal(
        tu_sh("'%s' '%s' --font 'Liberation Serif' -o '%s'", CLI, LINEAR, tu_tmp_path("font.pdf")),
        0);
    assert_int_equal(tu_sh("pdffonts '%s' | grep -q LiberationSerif", tu_tmp_path("font.pdf")), 0);
}

/* Waits up to `secs` for `path` to contain `text`. */
static bool wait_for(const char *path, const char *text, double secs) {
    for (int i = 0; i < secs * 50; i++) {
        size_t len;
        char *s = tu_read_file(path, &len);
        bool hit = s && strstr(s, text);
        free(s);
        if (hit) return true;
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    return false;
}

/* Saves like an editor that writes a new file and renames it over the old. */
static void save_by_rename(const char *path, const char *text) {
    char t[300];
    snprintf(t, sizeof t, "%s.swp~", path);
    assert_int_equal(tu_write_file(t, text, strlen(text)), 0);
    assert_int_equal(rename(t, path), 0);
}

/* SIGTERM or SIGINT while a file is being written: the hidden temporary
 * file beside it is removed and the process ends as the signal says; the
 * old file is untouched. BPV_TEST_WRITE_PAUSE_MS holds the write between
 * the temporary file and its rename. */
static void test_signal_leaves_no_temp(void **state) {
    (void)state;
#ifdef BPV_TSAN
    /* ThreadSanitizer holds an asynchronous signal back until its own next
     * safe point, so the handler does not run where the test interrupts
     * the write: nothing to check under it */
    skip();
#endif
    const int sigs[2] = {SIGTERM, SIGINT};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(mkdir(tu_tmp_path(k ? "sig1" : "sig0"), 0755), 0);
        char out[600]; /* tu_tmp_path's buffers are reused by the wait below */
        snprintf(out, sizeof out, "%s", tu_tmp_path(k ? "sig1/f.svg" : "sig0/f.svg"));
        assert_int_equal(tu_write_file(out, "old", 3), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            setenv("BPV_TEST_WRITE_PAUSE_MS", "20000", 1);
            execl(CLI, CLI, LINEAR, "-o", out, (char *)NULL);
            _exit(127);
        }
        /* wait for the temporary file to appear */
        bool seen = false;
        for (int i = 0; i < 400 && !seen; i++) {
            seen = tu_sh("ls -A '%s' | grep -q '^\\.f\\.svg\\.'",
                         tu_tmp_path(k ? "sig1" : "sig0")) == 0;
            if (!seen) nanosleep(&(struct timespec){0, 25000000}, NULL);
        }
        assert_true(seen);
        kill(pid, sigs[k]);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), sigs[k]);
        /* only the old file remains */
        assert_int_equal(tu_sh("ls -A '%s' | grep -v -x f.svg", tu_tmp_path(k ? "sig1" : "sig0")),
                         1);
        char *s = slurp(out);
        assert_string_equal(s, "old");
        free(s);
    }
}

/* Waits until `want` hidden temporary files are in dir; false after 10 s. */
static bool temps_appear(const char *dir, int want) {
    for (int i = 0; i < 400; i++) {
        if (tu_sh("test \"$(ls -A '%s' | grep -c '^\\.')\" -eq %d", dir, want) == 0) return true;
        nanosleep(&(struct timespec){0, 25000000}, NULL);
    }
    return false;
}

/* -o 'set/s%d.svg' writes every step's file to a temporary first and
 * renames them only when all are written: a failure at one step leaves the
 * old files as they were; a rename that fails midway names the files
 * written; a signal removes every temporary file. */
static void test_step_files_all_or_nothing(void **state) {
    (void)state;
    char dir[512]; /* tu_tmp_path's buffers are reused */
    snprintf(dir, sizeof dir, "%s", tu_tmp_path("set"));
    assert_int_equal(mkdir(dir, 0755), 0);
    char path[3][600];
    for (int k = 0; k < 3; k++) {
        snprintf(path[k], sizeof path[k], "%s/s%d.svg", dir, k + 1);
        assert_int_equal(tu_write_file(path[k], "old", 3), 0);
    }
    char pattern[600];
    snprintf(pattern, sizeof pattern, "%s/s%%d.svg", dir);
    /* step 2's file is a folder: nothing is replaced, nothing left behind */
    assert_int_equal(unlink(path[1]), 0);
    assert_int_equal(mkdir(path[1], 0755), 0);
    char *err = NULL;
    assert_int_equal(tu_bpviz(NULL, &err, LINEAR, "--steps", "1-3", "-o", pattern, NULL), 1);
    assert_non_null(strstr(err, "s2.svg': it is a folder"));
    free(err);
    for (int k = 0; k < 3; k += 2) {
        char *s = slurp(path[k]);
        assert_string_equal(s, "old");
        free(s);
    }
    assert_int_equal(tu_sh("ls -A '%s' | grep -q '^\\.'", dir), 1);
    assert_int_equal(rmdir(path[1]), 0);
    assert_int_equal(tu_write_file(path[1], "old", 3), 0);

    /* a folder appears at step 2's name after every file is written: step
     * 1's file is new, steps 2 and 3 keep theirs, and the message says so */
    char log[512];
    snprintf(log, sizeof log, "%s", tu_tmp_path("set.log"));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("BPV_TEST_WRITE_PAUSE_MS", "3000", 1);
        assert_non_null(freopen(log, "w", stderr));
        execl(CLI, CLI, LINEAR, "--steps", "1-3", "-o", pattern, (char *)NULL);
        _exit(127);
    }
    assert_true(temps_appear(dir, 3));
    assert_int_equal(unlink(path[1]), 0);
    assert_int_equal(mkdir(path[1], 0755), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    char *msg = slurp(log);
    assert_non_null(strstr(msg, "s2.svg': Is a directory; '"));
    assert_non_null(strstr(msg, "s1.svg' was written, '"));
    assert_non_null(strstr(msg, "s3.svg' each kept its old content or does not exist"));
    free(msg);
    char *s = slurp(path[0]);
    assert_non_null(strstr(s, "<svg"));
    free(s);
    s = slurp(path[2]);
    assert_string_equal(s, "old");
    free(s);
    assert_int_equal(tu_sh("ls -A '%s' | grep -q '^\\.'", dir), 1);
    assert_int_equal(rmdir(path[1]), 0);

    /* SIGTERM while the three are written and none renamed: all removed */
    assert_int_equal(tu_write_file(path[0], "old", 3), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("BPV_TEST_WRITE_PAUSE_MS", "20000", 1);
        execl(CLI, CLI, LINEAR, "--steps", "1-3", "-o", pattern, (char *)NULL);
        _exit(127);
    }
    assert_true(temps_appear(dir, 3));
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(tu_sh("ls -A '%s' | grep -q '^\\.'", dir), 1);
    s = slurp(path[0]);
    assert_string_equal(s, "old");
    free(s);
}

/* --watch does not react to its own output, even when the figure's name
 * looks like data (out.csv) or is a per-step pattern: one render in two
 * seconds, not one per write of its own. */
static void test_watch_ignores_own_output(void **state) {
    (void)state;
    assert_int_equal(mkdir(tu_tmp_path("own"), 0755), 0);
    const char *model = tu_tmp_path("own/m.bp");
    const char *src = "data x = [1, 2]\nparam w = 1\nloss = sum(x * w)\ntrain epochs=1\n";
    assert_int_equal(tu_write_file(model, src, strlen(src)), 0);
    const char *outs[2] = {"own/out.csv", "own/s%d.csv"};
    for (int k = 0; k < 2; k++) {
        char *log = tu_tmp_path(k ? "own1.log" : "own0.log");
        assert_int_equal(tu_sh("timeout 2 '%s' '%s' -T svg -o '%s' %s --watch 2> '%s'; true", CLI,
                               model, tu_tmp_path(outs[k]), k ? "--steps 1-2" : "", log),
                         0);
        assert_int_equal(tu_sh("test $(grep -c wrote '%s') -eq 1", log), 0);
    }
}

static void test_watch(void **state) {
    (void)state;
    /* the log lives outside the watched folder: an open file inside would
     * keep the folder's inode alive */
    assert_int_equal(mkdir(tu_tmp_path("watch"), 0755), 0);
    const char *model = tu_tmp_path("watch/w.bp"), *svg = tu_tmp_path("watch/w.svg"),
               *log = tu_tmp_path("w.log");
    const char *v1 = "data x = [1, 2]\ndata y = [2, 4]\nparam w = 1.5\n"
                     "y_hat = x * w\nloss = (y_hat - y)^2\ntrain epochs=1 lr=0.1\n";
    assert_int_equal(tu_write_file(model, v1, strlen(v1)), 0);
    pid_t pid = watcher = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        freopen(log, "w", stderr);
        execl(CLI, CLI, model, "-o", svg, "--watch", (char *)NULL);
        _exit(127);
    }
    assert_true(wait_for(svg, "w = 1.5", 10));
    /* saved by rename: re-rendered */
    save_by_rename(model, "data x = [1, 2]\ndata y = [2, 4]\nparam w = 2.75\n"
                          "y_hat = x * w\nloss = (y_hat - y)^2\ntrain epochs=1 lr=0.1\n");
    assert_true(wait_for(svg, "w = 2.75", 10));
    /* a mistake: reported, the figure kept, and watching goes on */
    save_by_rename(model, "data x = [1, 2]\nparam w = 2\nloss = x * wx\ntrain epochs=1\n");
    assert_true(wait_for(log, "w.bp:3:12: error: unknown name 'wx'", 10));
    assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
    char *s = slurp(svg);
    assert_non_null(strstr(s, "w = 2.75"));
    free(s);
    /* written in place (no rename), fixed */
    assert_int_equal(tu_write_file(model, v1, strlen(v1)), 0);
    assert_true(wait_for(svg, "w = 1.5", 10));
    /* no temporary files left beside the figure */
    assert_int_equal(tu_sh("ls -A '%s' | grep -v -x -e w.bp -e w.svg", tu_tmp_path("watch")), 1);
    /* TERM ends it cleanly */
    kill(pid, SIGTERM);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    watcher = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    /* a model from standard input or output to standard output cannot be watched */
    char *err;
    char *argv[] = {CLI, "-", "-o", (char *)svg, "--watch", NULL};
    assert_int_equal(tu_run(argv, NULL, NULL, &err), 2);
    assert_non_null(strstr(err, "--watch needs a model file"));
    free(err);
    char *argv2[] = {CLI, (char *)model, "--watch", NULL};
    assert_int_equal(tu_run(argv2, NULL, NULL, &err), 2);
    assert_non_null(strstr(err, "-o FILE"));
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_version), cmocka_unit_test(test_suggestions),
        cmocka_unit_test(test_stdin_stdout), cmocka_unit_test(test_pdf_for_latex),
        cmocka_unit_test(test_png_size_dpi), cmocka_unit_test(test_font),
        cmocka_unit_test(test_watch),             cmocka_unit_test(test_signal_leaves_no_temp),
        cmocka_unit_test(test_step_files_all_or_nothing),
        cmocka_unit_test(test_watch_ignores_own_output),
        cmocka_unit_test(test_pdf_reproducible),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, teardown);
}
