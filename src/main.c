/* The bpviz command: parses options and calls the library. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h" /* bpv_closest */
#include "bpviz/bpviz.h"

static const char usage[] =
    "usage: bpviz MODEL.bp [-o FILE] [-T FORMAT] [--step N|last] [options]\n"
    "       bpviz run MODEL.bp\n"
    "       bpviz bench MODEL.bp [--steps N] [--snapshot every|none]\n"
    "\n"
    "Trains the model and draws its graph with values (red) and partials (orange).\n"
    "\n"
    "commands:\n"
    "  run MODEL.bp         train; print each `predict` and one line per epoch\n"
    "  bench MODEL.bp       time training steps (--steps N, default: 1000)\n"
    "  check MODEL.bp       find wrong gradients, NaN/inf, dead params (exit 1)\n"
    "\n"
    "options (MODEL.bp may be - for standard input, or a JSON trace to draw):\n"
    "  -o FILE              output file; the extension picks the format\n"
    "                       (.dot .gv .svg .png .pdf .json .html); - is stdout\n"
    "                       (default: DOT on standard output)\n"
    "  -T FORMAT            dot, svg, png, pdf, json, html; overrides the extension\n"
    "  --step N|last        the training step to draw, from 1 (default: 1), or\n"
    "                       first-nonfinite: the first step with a NaN or inf\n"
    "  --gradcheck          mark partials failing a finite-difference check\n"
    "  --focus NAME         draw only nodes within --depth K (default: 2) of NAME;\n"
    "                       --max-nodes N larger figures are refused (default: 150)\n"
    "  --steps SPEC         A-B[/K], 1,5,9 or all: .json, .html, -o 'step%d.svg'\n"
    "  --rankdir LR|TB      graph direction (default: LR)\n"
    "  --theme NAME         tutorial, print or colorblind (default: tutorial)\n"
    "  --labels MODE        values: d loss/d node (default), full: chain-rule steps,\n"
    "                       shapes: only shapes; --no-update: no after-update row\n"
    "  --precision N        significant digits of numbers, 1-17 (default: 4)\n"
    "  --exact-numbers      numbers as stored (default: rounding noise prints 0)\n"
    "  --plain-names        print names as written (no y_hat -> ŷ, w1 -> w₁)\n"
    "  --font NAME          font of all text (default: DejaVu Sans)\n"
    "  --tensors MODE       auto, values (min/mean/max) or heatmap (default: auto)\n"
    "  --legend, --op-symbols S  a key; S=tutorial: @ as MM (default: default)\n"
    "  --size W[xH], --dpi N  W x H inches (<= 1000), PNG dpi 1-2400 (default: 96)\n"
    "  --fit W:H            fill a W:H slide (16:9, 4:3), text kept (default: off)\n"
    "  --watch              render again each time MODEL.bp changes (needs -o)\n"
    "  --memory SIZE, --threads N  budget and threads (default: 4G or RAM/2, CPUs)\n"
    "  -h, --help           show this help (--version: the version)\n"
    "\n"
    "exit status: 0 success, 1 run-time failure (I/O), 2 bad model or usage\n";

/* ---- progress on a terminal ------------------------------------------------ */
/* A training that runs longer than PROGRESS_AFTER seconds shows one line of
 * progress on standard error, rewritten in place, when standard error is a
 * terminal (never in a pipe or a log file). */
#define PROGRESS_AFTER 2.0
#define PROGRESS_EVERY 0.25

typedef struct progress {
    double start, last;
    int shown; /* a line is on the screen */
} progress;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_progress(long step, long total, void *user) {
    progress *p = user;
    double t = now();
    if (t - p->start < PROGRESS_AFTER || t - p->last < PROGRESS_EVERY) return;
    p->last = t;
    double left = total > step ? (t - p->start) / (double)step * (double)(total - step) : 0;
    char eta[32];
    if (left >= 3600) snprintf(eta, sizeof eta, "%.1f h", left / 3600);
    else if (left >= 60) snprintf(eta, sizeof eta, "%.0f min", left / 60);
    else snprintf(eta, sizeof eta, "%.0f s", left);
    fprintf(stderr, "\rbpviz: training step %ld of %ld (%.0f%%), about %s left\033[K", step,
            total, total ? 100.0 * (double)step / (double)total : 100.0, eta);
    fflush(stderr);
    p->shown = 1;
}

static void progress_done(progress *p) {
    if (p->shown) fputs("\r\033[K", stderr);
    p->shown = 0;
}

/* Prints "bpviz: error: " and the message on one line, the arguments it
 * quotes cleaned as the library cleans its messages (an escape sequence
 * or a newline in an argument reaches the terminal as '?'). */
static void print_error(const char *fmt, ...) BPV_PRINTF(1, 2);
static void print_error(const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_buf_puts(&b, "bpviz: error: ");
    bpv_buf_put_clean(&b, text, n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
    bpv_buf_putc(&b, '\n');
    fputs(b.data, stderr);
    bpv_buf_free(&b);
}

static int usage_error(const char *fmt, const char *arg) {
    print_error(fmt, arg);
    fprintf(stderr, "Try 'bpviz --help'.\n");
    return BPV_ERR_MODEL;
}

static int report(int rc, bpv_error *err) {
    if (err) {
        fflush(stdout);
        fputs(err->message, stderr);
        bpv_error_free(err);
    }
    return rc;
}

static void on_warning(const char *message, void *user) {
    (void)user;
    fflush(stdout); /* after the epoch lines printed so far */
    fputs(message, stderr);
}

static int cmd_run(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] != '\0') /* `run -o x m.bp` took -o as the model */
            return usage_error("run takes no option '%s': it trains MODEL.bp and prints to "
                               "standard output (bpviz run MODEL.bp > FILE)",
                               argv[i]);
        if (path) return usage_error("unexpected argument '%s' after the model", argv[i]);
        path = argv[i];
    }
    if (!path) return usage_error("%s", "run needs a model file: bpviz run MODEL.bp");
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(path, &err);
    if (!m) return report(err ? err->status : BPV_ERR_MODEL, err);
    bpv_run_options ro = {0};
    ro.out = stdout;
    ro.on_warning = on_warning;
    /* epoch lines on the same terminal would tangle with a progress line */
    progress pr = {now(), 0, 0};
    if (isatty(STDERR_FILENO) && !isatty(STDOUT_FILENO)) {
        ro.on_progress = on_progress;
        ro.progress_user = &pr;
    }
    int rc = bpv_model_run(m, &ro, &err);
    progress_done(&pr);
    bpv_model_free(m);
    if (fflush(stdout) != 0 && rc == BPV_OK) {
        perror("bpviz: error: cannot write standard output");
        rc = BPV_ERR_RUNTIME;
    }
    return report(rc, err);
}

/* bench MODEL.bp [--steps N] [--warmup N] [--snapshot every|none] */
static int cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    bpv_bench_options bo = {0, -1, 0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--steps") == 0 || strcmp(a, "--warmup") == 0) {
            if (i + 1 >= argc) return usage_error("option '%s' needs a value", a);
            const char *v = argv[++i];
            char *end;
            long n = strtol(v, &end, 10);
            bool warm = a[2] == 'w';
            if (*v == '\0' || *end != '\0' || n < (warm ? 0 : 1) || n > 1000000000000L)
                return usage_error("expected a step count, not '%s'", v);
            if (warm) bo.warmup = n;
            else bo.steps = n;
        } else if (strcmp(a, "--snapshot") == 0) {
            if (i + 1 >= argc) return usage_error("option '%s' needs a value", a);
            const char *v = argv[++i];
            if (strcmp(v, "every") == 0) bo.snapshot_every = 1;
            else if (strcmp(v, "none") == 0) bo.snapshot_every = 0;
            else return usage_error("--snapshot takes every or none, not '%s'", v);
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown bench option '%s' (use --steps, --warmup, --snapshot)", a);
        } else if (path) {
            return usage_error("unexpected argument '%s' after the model", a);
        } else {
            path = a;
        }
    }
    if (!path) return usage_error("%s", "bench needs a model file: bpviz bench MODEL.bp");
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(path, &err);
    if (!m) return report(err ? err->status : BPV_ERR_MODEL, err);
    bpv_bench_result r;
    int rc = bpv_model_bench(m, &bo, &r, &err);
    bpv_model_free(m);
    if (rc == BPV_OK)
        printf("bench: %ld steps, %.1f ns/step, %.0f steps/s, %d thread%s\n", r.steps,
               r.ns_per_step, r.seconds > 0 ? (double)r.steps / r.seconds : 0.0, r.threads,
               r.threads == 1 ? "" : "s");
    return report(rc, err);
}

/* check MODEL.bp [--steps SPEC] */
static int cmd_check(int argc, char **argv) {
    const char *path = NULL, *steps = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0) {
            if (i + 1 >= argc) return usage_error("option '%s' needs a value", argv[i]);
            steps = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("unknown check option '%s' (use --steps SPEC)", argv[i]);
        } else if (path) {
            return usage_error("unexpected argument '%s' after the model", argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (!path) return usage_error("%s", "check needs a model file: bpviz check MODEL.bp");
    bpv_error *err = NULL;
    char *text = NULL;
    int rc = bpv_check(path, steps, &text, &err);
    if (text) fputs(text, stdout);
    free(text);
    if (fflush(stdout) != 0 && rc == BPV_OK) rc = BPV_ERR_RUNTIME;
    return report(rc, err);
}

/* Every option, for "did you mean" suggestions. */
static const char *const options[] = {
    "-o",          "-T",     "--step", "--steps", "--rankdir", "--theme", "--labels",
    "--precision", "--plain-names", "--font", "--size", "--dpi", "--watch", "--help",
    "--version", "--gradcheck", "--focus", "--depth", "--max-nodes",
    "--exact-numbers", "--no-update", "--tensors", "--legend", "--op-symbols", "--fit",
    "--memory", "--threads"};

static int unknown_option(const char *a) {
    const char *near = bpv_closest(a, options, sizeof options / sizeof options[0]);
    if (!near) return usage_error("unknown option '%s'", a);
    print_error("unknown option '%s' (did you mean '%s'?)", a, near);
    fprintf(stderr, "Try 'bpviz --help'.\n");
    return BPV_ERR_MODEL;
}

/* A positive number, or -1. */
static double positive(const char *v) {
    char *end;
    double d = strtod(v, &end);
    return *v && *end == '\0' && d > 0 && d < 1e6 ? d : -1;
}

/* --fit W:H: two positive numbers whose ratio is from 1:10 to 10:1. */
static bool parse_fit(const char *v, double *w, double *h) {
    const char *colon = strchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= 32) return false;
    char a[32];
    snprintf(a, sizeof a, "%.*s", (int)(colon - v), v);
    *w = positive(a);
    *h = positive(colon + 1);
    if (*w <= 0 || *h <= 0 || *w / *h > 10 || *h / *w > 10) {
        *w = *h = 0;
        return false;
    }
    return true;
}

/* --watch: Ctrl-C or a TERM signal ends it with status 0. */
static volatile sig_atomic_t watch_stop;
static void on_signal(int sig) {
    (void)sig;
    watch_stop = 1;
}

static int on_render(int rc, const bpv_error *err, void *user) {
    const char *output = user;
    char when[16];
    time_t t = time(NULL);
    strftime(when, sizeof when, "%H:%M:%S", localtime(&t));
    bpv_buf shown;
    bpv_buf_init(&shown);
    bpv_buf_put_clean(&shown, output, strlen(output));
    if (rc == BPV_OK) fprintf(stderr, "bpviz: %s wrote %s\n", when, shown.data);
    else fprintf(stderr, "bpviz: %s failed:\n%s", when, err ? err->message : "\n");
    bpv_buf_free(&shown);
    return 0; /* keep watching: errors are for fixing in the editor */
}

static int watch(const bpv_render_options *o) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bpv_watch_options w = {on_render, (void *)o->output, &watch_stop};
    bpv_error *err = NULL;
    int rc = bpv_watch(o, &w, &err); /* before report() reads err */
    return report(rc, err);
}

/* Returns the option's value (the next argument), or NULL after reporting. */
static const char *take_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        usage_error("option '%s' needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* --tensors, --legend, --op-symbols: figures for slides. Returns 0, or the
 * status after reporting a usage error. */
static int slide_option(int argc, char **argv, int *i, bpv_figure_options *fo) {
    const char *a = argv[*i], *v;
    if (strcmp(a, "--legend") == 0) {
        fo->legend = 1;
        return 0;
    }
    if (!(v = take_value(argc, argv, i))) return BPV_ERR_MODEL;
    if (strcmp(a, "--tensors") == 0) {
        if (strcmp(v, "auto") == 0) fo->tensors = BPV_TENSORS_AUTO;
        else if (strcmp(v, "values") == 0) fo->tensors = BPV_TENSORS_VALUES;
        else if (strcmp(v, "heatmap") == 0) fo->tensors = BPV_TENSORS_HEATMAP;
        else return usage_error("--tensors takes auto, values or heatmap, not '%s'", v);
    } else {
        if (strcmp(v, "default") == 0) fo->op_symbols = BPV_OP_SYMBOLS_DEFAULT;
        else if (strcmp(v, "tutorial") == 0) fo->op_symbols = BPV_OP_SYMBOLS_TUTORIAL;
        else return usage_error("--op-symbols takes default or tutorial, not '%s'", v);
    }
    return 0;
}

/* --memory SIZE, taken out of argv wherever it stands (every command has a
 * budget); returns 0, or the status of a usage error. */
static int take_memory(int *argc, char **argv) {
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--memory") != 0) continue;
        uint64_t v = 0;
        if (i + 1 >= *argc) return usage_error("option '%s' needs a value", argv[i]);
        if (!bpv_size_parse(argv[i + 1], &v) || bpv_memory_budget_set(v) != BPV_OK || v == 0)
            return usage_error("--memory takes a size of at least 1M, like 512M or 16G, not '%s'",
                               argv[i + 1]);
        for (int k = i + 2; k <= *argc; k++) argv[k - 2] = argv[k]; /* argv[argc] is NULL */
        *argc -= 2;
        for (int k = i; k < *argc; k++) /* given twice */
            if (strcmp(argv[k], "--memory") == 0)
                return usage_error("option '%s' given twice", "--memory");
        return 0;
    }
    return 0;
}

/* --threads N (any command, anywhere on the line) and BPV_THREADS: set the
 * engine's thread count and taken out of argv. Returns 0 or the usage
 * error's status. */
static int take_threads(int *argc, char **argv) {
    const char *env = getenv("BPV_THREADS");
    long n = 0;
    char *end;
    if (env && *env) {
        n = strtol(env, &end, 10);
        if (*end != '\0' || n < 1 || n > 256)
            return usage_error("BPV_THREADS takes a number of threads from 1 to 256, not '%s'",
                               env);
    }
    int k = 1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--threads") != 0) {
            argv[k++] = argv[i];
            continue;
        }
        if (i + 1 >= *argc) return usage_error("option '%s' needs a value", argv[i]);
        const char *v = argv[++i];
        n = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || n < 1 || n > 256)
            return usage_error("--threads takes a number of threads from 1 to 256, not '%s'", v);
    }
    *argc = k;
    argv[k] = NULL;
    if (n > 0) bpv_threads_set((int)n);
    return 0;
}

int main(int argc, char **argv) {
    bpv_signals_cleanup(); /* an interrupted write leaves no temporary file */
    bpv_notes_to(stderr);  /* a CSV's header row is said, not skipped silently */
    int mrc = take_memory(&argc, argv);
    if (mrc != 0) return mrc;
    int trc = take_threads(&argc, argv);
    if (trc != 0) return trc;
    if (argc >= 2 && strcmp(argv[1], "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "bench") == 0) return cmd_bench(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "check") == 0) return cmd_check(argc - 2, argv + 2);

    bpv_render_options o;
    bpv_render_options_init(&o);
    const char *step = NULL, *steps = NULL;
    int watching = 0;
    const char *seen[64];
    int nseen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (a[0] == '-' && a[1] != '\0') { /* an option given twice is a mistake */
            for (int k = 0; k < nseen; k++)
                if (strcmp(seen[k], a) == 0) return usage_error("option '%s' given twice", a);
            if (nseen < 64) seen[nseen++] = a;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("bpviz %s\n", bpv_version());
            return 0;
        } else if (strcmp(a, "-o") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            o.output = v;
        } else if (strcmp(a, "-T") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            o.format = bpv_format_from_name(v);
            if (o.format < 0)
                return usage_error("unknown format '%s' (use dot, svg, png, pdf, json or "
                                   "html)", v);
        } else if (strcmp(a, "--step") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            if (strspn(v, "0123456789") != strlen(v) && strcmp(v, "last") != 0 &&
                strcmp(v, "first-nonfinite") != 0)
                return usage_error("--step takes a step number, 'last' or 'first-nonfinite', "
                                   "not '%s'", v);
            step = v;
        } else if (strcmp(a, "--steps") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            steps = v;
        } else if (strcmp(a, "--rankdir") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            if (strcmp(v, "LR") == 0) o.figure.rankdir_tb = 0;
            else if (strcmp(v, "TB") == 0) o.figure.rankdir_tb = 1;
            else return usage_error("--rankdir takes LR or TB, not '%s'", v);
        } else if (strcmp(a, "--theme") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            if (strcmp(v, "tutorial") == 0) o.figure.theme = BPV_THEME_TUTORIAL;
            else if (strcmp(v, "print") == 0) o.figure.theme = BPV_THEME_PRINT;
            else if (strcmp(v, "colorblind") == 0) o.figure.theme = BPV_THEME_COLORBLIND;
            else return usage_error("unknown theme '%s' (use tutorial, print or colorblind)", v);
        } else if (strcmp(a, "--labels") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            if (strcmp(v, "values") == 0) o.figure.labels = BPV_LABELS_VALUES;
            else if (strcmp(v, "full") == 0) o.figure.labels = BPV_LABELS_FULL;
            else if (strcmp(v, "shapes") == 0) o.figure.labels = BPV_LABELS_SHAPES;
            else return usage_error("--labels takes values, full or shapes, not '%s'", v);
        } else if (strcmp(a, "--precision") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            char *end;
            long p = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || p < 1 || p > 17)
                return usage_error("--precision takes a number from 1 to 17, not '%s'", v);
            o.figure.precision = (int)p;
        } else if (strcmp(a, "--plain-names") == 0) {
            o.figure.plain_names = 1;
        } else if (strcmp(a, "--font") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            o.figure.font = v;
        } else if (strcmp(a, "--size") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            char w[64];
            const char *x = strchr(v, 'x');
            snprintf(w, sizeof w, "%.*s", x ? (int)(x - v) : (int)strlen(v), v);
            o.figure.size_w = positive(w);
            o.figure.size_h = x ? positive(x + 1) : 0;
            /* a figure bigger than 1000 inches is a typo, and too large to render */
            if (o.figure.size_w < 0 || o.figure.size_h < 0 || o.figure.size_w > 1000 ||
                o.figure.size_h > 1000)
                return usage_error("--size takes W or WxH in inches up to 1000, like 6 or 6x4, "
                                   "not '%s'",
                                   v);
        } else if (strcmp(a, "--dpi") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            if ((o.figure.dpi = positive(v)) < 1 || o.figure.dpi > 2400)
                return usage_error("--dpi takes a number of pixels per inch from 1 to 2400, "
                                   "not '%s'",
                                   v);
        } else if (strcmp(a, "--fit") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            if (!parse_fit(v, &o.figure.fit_w, &o.figure.fit_h))
                return usage_error("--fit takes a slide's shape W:H of two positive numbers "
                                   "between 1:10 and 10:1, like 16:9 or 4:3, not '%s'",
                                   v);
        } else if (strcmp(a, "--watch") == 0) {
            watching = 1;
        } else if (strcmp(a, "--gradcheck") == 0) {
            o.gradcheck = 1;
            o.report = stderr;
        } else if (strcmp(a, "--focus") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            o.figure.focus = v;
        } else if (strcmp(a, "--depth") == 0 || strcmp(a, "--max-nodes") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            char *end;
            long n = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || n < (a[2] == 'd' ? 0 : 1) || n > 100000000)
                return usage_error(a[2] == 'd' ? "--depth takes a number of edges from 0, not '%s'"
                                               : "--max-nodes takes a number from 1, not '%s'",
                                   v);
            if (a[2] == 'd') o.figure.focus_depth = (int)n;
            else o.figure.max_nodes = n;
        } else if (strcmp(a, "--exact-numbers") == 0) { /* numbers and labels */
            o.figure.exact_numbers = 1;
        } else if (strcmp(a, "--no-update") == 0) {
            o.figure.no_update = 1;
        } else if (strcmp(a, "--tensors") == 0 || strcmp(a, "--legend") == 0 ||
                   strcmp(a, "--op-symbols") == 0) {
            int rc = slide_option(argc, argv, &i, &o.figure);
            if (rc != 0) return rc;
        } else if (a[0] == '-' && a[1] != '\0') {
            return unknown_option(a);
        } else if (o.model) {
            return usage_error("unexpected argument '%s': one model at a time", a);
        } else {
            o.model = a;
        }
    }
    if (!o.model) {
        fputs(usage, stderr);
        return BPV_ERR_MODEL;
    }
    if (step && steps) return usage_error("%s", "use --step or --steps, not both");
    if (o.figure.font && *o.figure.font) { /* cairo and pango would fall back silently */
        char used[256];
        if (bpv_font_check(o.figure.font, used, sizeof used) == 0) {
            bpv_buf w;
            bpv_buf_init(&w);
            bpv_buf_put_clean(&w, o.figure.font, strlen(o.figure.font));
            fprintf(stderr, "bpviz: warning: font family '%s' not found; figures are drawn in "
                            "'%s' instead (fc-list : family lists the installed ones)\n",
                    w.data, used[0] ? used : "a fallback font");
            bpv_buf_free(&w);
        }
    }
    for (int k = 0; k < nseen; k++) /* --depth alone would be ignored silently */
        if (strcmp(seen[k], "--depth") == 0 && !o.figure.focus)
            return usage_error("%s", "--depth K goes with --focus NAME: the nodes within K "
                                     "edges of NAME");
    for (int k = 0; k < nseen; k++) /* --fit keeps a --rankdir given */
        if (strcmp(seen[k], "--rankdir") == 0) o.figure.fit_keep_rankdir = 1;
    o.steps = steps ? steps : step;
    if (watching) return watch(&o);
    bpv_error *err = NULL;
    progress pr = {now(), 0, 0};
    if (isatty(STDERR_FILENO)) {
        o.on_progress = on_progress;
        o.progress_user = &pr;
    }
    int rc = bpv_render(&o, &err);
    progress_done(&pr);
    return report(rc, err);
}
