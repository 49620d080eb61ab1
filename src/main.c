/* The bpviz command: parses options and calls the library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpviz/bpviz.h"

static const char usage[] =
    "usage: bpviz MODEL.bp [-o FILE] [-T FORMAT] [--step N|last] [options]\n"
    "       bpviz run MODEL.bp\n"
    "\n"
    "Trains the model and draws its computation graph at one training step, with\n"
    "forward values (red) and backward partial derivatives (orange).\n"
    "\n"
    "commands:\n"
    "  run MODEL.bp         train; print each `predict` and one line per epoch\n"
    "\n"
    "options (MODEL.bp may be - for standard input):\n"
    "  -o FILE              output file; the extension picks the format\n"
    "                       (.dot .gv .svg .png .pdf .json); - is standard output\n"
    "                       (default: DOT on standard output)\n"
    "  -T FORMAT            dot, svg, png, pdf or json; overrides the extension\n"
    "  --step N|last        the training step to draw, from 1 (default: 1)\n"
    "  --steps SPEC         steps for -T json: A-B, A-B/K, 1,5,9, all, last\n"
    "  --rankdir LR|TB      graph direction (default: LR)\n"
    "  --theme NAME         tutorial, print or colorblind (default: tutorial)\n"
    "  --labels MODE        values: d loss/d node on backward edges (default);\n"
    "                       full: the whole chain-rule step with local derivatives\n"
    "  --precision N        significant digits of numbers, 1-17 (default: 4)\n"
    "  --plain-names        print names as written (no y_hat -> ŷ, w1 -> w₁)\n"
    "  -h, --help           show this help\n"
    "  --version            show the version\n"
    "\n"
    "exit status: 0 success, 1 run-time failure (I/O), 2 bad model or usage\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "bpviz: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'bpviz --help'.\n");
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

static int cmd_run(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (path) return usage_error("unexpected argument '%s' after the model", argv[i]);
        path = argv[i];
    }
    if (!path) return usage_error("%s", "run needs a model file: bpviz run MODEL.bp");
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(path, &err);
    if (!m) return report(err ? err->status : BPV_ERR_MODEL, err);
    bpv_run_options ro = {0};
    ro.out = stdout;
    int rc = bpv_model_run(m, &ro, &err);
    bpv_model_free(m);
    if (fflush(stdout) != 0 && rc == BPV_OK) {
        perror("bpviz: error: cannot write standard output");
        rc = BPV_ERR_RUNTIME;
    }
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

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "run") == 0) return cmd_run(argc - 2, argv + 2);

    bpv_render_options o;
    bpv_render_options_init(&o);
    const char *step = NULL, *steps = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
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
                return usage_error("unknown format '%s' (use dot, svg, png, pdf or json)", v);
        } else if (strcmp(a, "--step") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            if (strspn(v, "0123456789") != strlen(v) && strcmp(v, "last") != 0)
                return usage_error("--step takes a step number or 'last', not '%s'", v);
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
            else return usage_error("--labels takes values or full, not '%s'", v);
        } else if (strcmp(a, "--precision") == 0) {
            if (!(v = take_value(argc, argv, &i))) return BPV_ERR_MODEL;
            char *end;
            long p = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || p < 1 || p > 17)
                return usage_error("--precision takes a number from 1 to 17, not '%s'", v);
            o.figure.precision = (int)p;
        } else if (strcmp(a, "--plain-names") == 0) {
            o.figure.plain_names = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
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
    o.steps = steps ? steps : step;
    bpv_error *err = NULL;
    int rc = bpv_render(&o, &err);
    return report(rc, err);
}
