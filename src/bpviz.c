/* The public API: loading, running and exporting models, atomic writes. */
/* realpath() is an X/Open function */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export.h"
#include "inspect.h"
#include "snapshot.h"
#include "trace.h"
#include "train.h"

/* A model file larger than this (default 16 MiB, BPV_MAX_SOURCE_MB) is
 * refused before it is read: models are small programs, and a huge file is
 * a mistake (a data file passed by accident) rather than a model. */
#define BPV_MAX_SOURCE_BYTES (bpv_limits_get()->source_bytes)

/* ---- loading --------------------------------------------------------------- */

/* A trace given where a model is wanted (bpviz run t.json). */
static bpv_error *not_a_model(const char *name) {
    return bpv_error_new(BPV_ERR_MODEL,
                         "'%s' is a JSON trace, not a model: bpviz draws it (bpviz %s -o "
                         "figure.svg), but running, checking and timing need the model",
                         name, name);
}

/* Reads a stream to its end, at most `limit` bytes, or `trace_limit` when
 * it is non-zero and the text is a trace's (bpv_trace_detect). */
static char *read_stream(FILE *f, size_t limit, size_t trace_limit, size_t *len,
                         int *too_big) {
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    *too_big = 0;
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        bool trace = trace_limit && bpv_trace_detect(NULL, buf, n);
        if (n > (trace ? trace_limit : limit)) {
            *too_big = trace ? 2 : 1; /* which limit */
            free(buf);
            return NULL;
        }
        if (n + 1 == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) free(buf);
            buf = p;
        }
    }
    if (!buf) return NULL;
    if (ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* What an input file is, for messages: its noun and its size limit; a
 * model that may be a trace (bpviz FILE) has the trace's limit too. */
typedef struct input_kind {
    const char *what;  /* "model", "trace" */
    size_t limit;
    const char *too_big; /* the rest of the message after "larger than N MiB" */
    size_t trace_limit;  /* 0, or: a trace's text may be this long */
} input_kind;

static const char trace_too_big[] = " (BPV_MAX_TRACE_MB)";

/* Reads the whole file `path` ("-": standard input), NUL-terminated and
 * malloc'd; NULL with an error. */
static char *slurp(const char *path, const input_kind *k, size_t *len, bpv_error **err) {
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "cannot open %s '%s': %s", k->what, path,
                                         strerror(errno)));
        return NULL;
    }
    struct stat st;
    if (!is_stdin && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "'%s' is a folder, not a %s file",
                                         path, k->what));
        return NULL;
    }
    int too_big, saved = 0;
    char *text = read_stream(f, k->limit, k->trace_limit, len, &too_big);
    if (!text) saved = errno;
    if (!is_stdin) fclose(f);
    if (!text) {
        if (too_big == 2) /* bpviz FILE: the first bytes told which */
            bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "trace '%s' is larger than %zu "
                                                            "MiB%s",
                                             path, k->trace_limit >> 20, trace_too_big));
        else if (too_big)
            bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "%s '%s' is larger than %zu MiB%s",
                                             k->what, path, k->limit >> 20, k->too_big));
        else
            bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot read %s '%s': %s",
                                             k->what, path, strerror(saved ? saved : EIO)));
    }
    return text;
}

static const char model_too_big[] = "; is it really a model file? (BPV_MAX_SOURCE_MB)";

bpv_model *bpv_model_load(const char *path, bpv_error **err) {
    if (!path) {
        bpv_error_set(err, bpv_error_null("bpv_model_load", "path"));
        return NULL;
    }
    bpv_error *lim = bpv_limits_error();
    if (lim) {
        bpv_error_set(err, lim);
        return NULL;
    }
    size_t len = 0;
    input_kind k = {"model", BPV_MAX_SOURCE_BYTES, model_too_big, 0};
    char *text = slurp(path, &k, &len, err);
    if (!text) return NULL;
    bpv_model *m = bpv_model_load_string(strcmp(path, "-") == 0 ? "<stdin>" : path, text, len,
                                         err);
    free(text);
    return m;
}

/* ---- traces ------------------------------------------------------------------ */

bpv_model *bpv_trace_load_string(const char *name, const char *text, size_t len,
                                 bpv_error **err) {
    if (!name) name = "<string>";
    if (!text && len > 0) {
        bpv_error_set(err, bpv_error_null("bpv_trace_load_string", "text"));
        return NULL;
    }
    bpv_error *lim = bpv_limits_error();
    if (lim) {
        bpv_error_set(err, lim);
        return NULL;
    }
    if (len > bpv_limits_get()->trace_bytes) {
        bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "trace '%s' is larger than %zu MiB%s",
                                         name, bpv_limits_get()->trace_bytes >> 20,
                                         trace_too_big));
        return NULL;
    }
    return bpv_trace_read(name, text ? text : "", len, err);
}

bpv_model *bpv_trace_load(const char *path, bpv_error **err) {
    if (!path) {
        bpv_error_set(err, bpv_error_null("bpv_trace_load", "path"));
        return NULL;
    }
    bpv_error *lim = bpv_limits_error();
    if (lim) {
        bpv_error_set(err, lim);
        return NULL;
    }
    size_t len = 0;
    input_kind k = {"trace", bpv_limits_get()->trace_bytes, trace_too_big, 0};
    char *text = slurp(path, &k, &len, err);
    if (!text) return NULL;
    bpv_model *m = bpv_trace_read(strcmp(path, "-") == 0 ? "<stdin>" : path, text, len, err);
    free(text);
    return m;
}

int bpv_model_is_trace(const bpv_model *m) { return m ? m->trace : -1; }

/* What bpviz draws: a trace (its name ends in .json, or its text starts
 * with '{') or a model. */
static bpv_model *load_input(const char *path, bpv_error **err) {
    if (bpv_trace_detect(path, NULL, 0)) return bpv_trace_load(path, err);
    bpv_error *lim = bpv_limits_error();
    if (lim) {
        bpv_error_set(err, lim);
        return NULL;
    }
    size_t len = 0;
    input_kind k = {"model", BPV_MAX_SOURCE_BYTES, model_too_big, bpv_limits_get()->trace_bytes};
    char *text = slurp(path, &k, &len, err);
    if (!text) return NULL;
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    bpv_model *m = bpv_trace_detect(NULL, text, len) ? bpv_trace_read(name, text, len, err)
                                                     : bpv_model_load_string(name, text, len, err);
    free(text);
    return m;
}

bpv_model *bpv_model_load_string(const char *name, const char *text, size_t len,
                                 bpv_error **err) {
    if (!name) name = "<string>";
    if (!text && len > 0) {
        bpv_error_set(err, bpv_error_null("bpv_model_load_string", "text"));
        return NULL;
    }
    if (!text) text = ""; /* memcpy wants a pointer even for 0 bytes */
    bpv_error *lim = bpv_limits_error();
    if (lim) {
        bpv_error_set(err, lim);
        return NULL;
    }
    if (bpv_trace_detect(NULL, text, len)) {
        bpv_error_set(err, not_a_model(name));
        return NULL;
    }
    if (len > BPV_MAX_SOURCE_BYTES) {
        bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                         "model '%s' is larger than %zu MiB; is it really a "
                                         "model file? (BPV_MAX_SOURCE_MB)",
                                         name, BPV_MAX_SOURCE_BYTES >> 20));
        return NULL;
    }
    bpv_arena *a = bpv_arena_new();
    bpv_model *m = a ? bpv_arena_alloc(a, sizeof *m) : NULL;
    char *copy = m ? bpv_arena_alloc(a, len + 1) : NULL;
    if (!copy) {
        bpv_arena_free(a);
        bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory loading '%s'", name));
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    m->arena = a;
    m->src.name = bpv_arena_strdup(a, name);
    m->src.text = copy;
    m->src.len = len;
    /* relative CSV paths start from the model's folder */
    const char *slash = strrchr(name, '/');
    if (strcmp(name, "<stdin>") == 0 || !slash)
        m->src.dir = ".";
    else
        m->src.dir = slash == name ? "/" : bpv_arena_strndup(a, name, (size_t)(slash - name));
    m->dtype = BPV_F32;
    if (!bpv_parse(&m->src, a, &m->prog, err) || !bpv_model_prepare(m, err)) {
        bpv_model_free(m);
        return NULL;
    }
    return m;
}

void bpv_model_free(bpv_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->run.nsnaps; i++) bpv_snapshot_free(m->run.snaps[i]);
    free(m->run.snaps);
    bpv_snapshot_free(m->run.snap_spare);
    bpv_arena_free(m->arena); /* m itself lives in its arena */
}

/* ---- running --------------------------------------------------------------- */

/* Checks, before a run, that the model and what the run will hold fit the
 * memory budget: each kept snapshot (the largest a train statement's graph
 * makes), the gradient check's copy, and, for a JSON trace or HTML player
 * holding every kept step, about text_per_number bytes of text per number
 * (0: none). */
static int run_budget(const bpv_model *m, const bpv_run_options *o, size_t text_per_number,
                      bpv_error **err) {
    long kept = o->keep ? bpv_step_set_count(o->keep, m->total_steps) : 0;
    if (o->keep_first_nonfinite || o->on_snapshot) kept++; /* the one in hand */
    size_t per = 0, gc = 0;
    int64_t numbers = 0;
    for (int t = 0; t < m->ntrains; t++) {
        const bpv_train *tr = &m->trains[t];
        const bpv_graph *gs[2] = {tr->full, tr->part};
        for (int k = 0; k < 2; k++) {
            if (!gs[k]) continue;
            int64_t nums = 0;
            size_t b = bpv_snapshot_bytes(m, gs[k], tr->bsize, &nums);
            if (b > per) per = b;
            if (nums > numbers) numbers = nums;
            if (o->gradcheck && bpv_gradcheck_bytes(gs[k]) > gc) gc = bpv_gradcheck_bytes(gs[k]);
        }
    }
    per += (size_t)numbers * text_per_number;
    const uint64_t used = bpv_arena_used(m->arena) + gc;
    uint64_t need = (uint64_t)kept * per;
    if (kept == 0 || bpv_memory_fits(used, need)) return BPV_OK;
    need += used;
    char what[160], advice[160], each[32];
    snprintf(what, sizeof what, "keeping %ld step%s of this model (%s a step%s%s)", kept,
             kept == 1 ? "" : "s", bpv_size_text(each, per),
             text_per_number ? ", with its text" : "", o->gradcheck ? ", and the gradient check" : "");
    const uint64_t budget = bpv_memory_budget();
    long fit = used < budget ? (long)((budget - used) / (per ? per : 1)) : 0;
    long first = o->keep ? bpv_step_set_min(o->keep, m->total_steps) : 0;
    long last = o->keep ? bpv_step_set_max(o->keep, m->total_steps) : 0;
    if (fit >= 1 && o->keep && last > first)
        snprintf(advice, sizeof advice, "keep fewer steps (--steps %ld-%ld/%ld)", first, last,
                 (last - first) / fit + 1);
    else
        snprintf(advice, sizeof advice, "make its tensors or batches smaller");
    return bpv_error_set(err, bpv_memory_error(what, need, advice));
}

int bpv_model_run(bpv_model *m, const bpv_run_options *opts, bpv_error **err) {
    if (!m) return bpv_error_set(err, bpv_error_null("bpv_model_run", "model"));
    if (m->trace) return bpv_error_set(err, not_a_model(m->src.name));
    bpv_run_options none = {0};
    if (!opts) opts = &none;
    int rc = run_budget(m, opts, 0, err);
    return rc != BPV_OK ? rc : bpv_model_exec(m, opts, err);
}

long bpv_model_step_count(const bpv_model *m) { return m ? m->total_steps : -1; }

long bpv_model_nonfinite_step(const bpv_model *m) { return m ? m->run.nf_step : -1; }

size_t bpv_model_snapshot_count(const bpv_model *m) { return m ? m->run.nsnaps : 0; }

const bpv_snapshot *bpv_model_snapshot(const bpv_model *m, size_t i) {
    if (!m) return NULL;
    return i < m->run.nsnaps ? m->run.snaps[i] : NULL;
}

long bpv_snapshot_step(const bpv_snapshot *s) { return s ? s->step : -1; }

/* ---- exporting ------------------------------------------------------------- */

static const char *const format_names[BPV_FORMAT_COUNT] = {"dot", "svg",  "png",
                                                           "pdf", "json", "html"};

int bpv_format_from_name(const char *name) {
    if (!name) return -1;
    if (strcasecmp(name, "gv") == 0) return BPV_FORMAT_DOT;
    for (int i = 0; i < BPV_FORMAT_COUNT; i++)
        if (strcasecmp(name, format_names[i]) == 0) return i;
    return -1;
}

int bpv_format_from_path(const char *path) {
    if (!path) return -1;
    const char *base = strrchr(path, '/');
    const char *dot = strrchr(base ? base : path, '.');
    return dot ? bpv_format_from_name(dot + 1) : -1;
}

int bpv_export(const bpv_model *m, const bpv_snapshot *const *snaps, size_t n, bpv_format fmt,
               const bpv_figure_options *fig, char **out, size_t *out_len, bpv_error **err) {
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!m) return bpv_error_set(err, bpv_error_null("bpv_export", "model"));
    if (!snaps && n > 0) return bpv_error_set(err, bpv_error_null("bpv_export", "snaps"));
    for (size_t i = 0; i < n; i++)
        if (!snaps[i])
            return bpv_error_set(err,
                                 bpv_error_new(BPV_ERR_MODEL, "bpv_export: snaps[%zu] is NULL", i));
    if (!out) return bpv_error_set(err, bpv_error_null("bpv_export", "out"));
    if (!out_len) return bpv_error_set(err, bpv_error_null("bpv_export", "out_len"));
    *out = NULL;
    *out_len = 0;
    if (fmt == BPV_FORMAT_JSON) {
        bpv_buf b;
        bpv_buf_init(&b);
        /* a trace keeps the name it was written with */
        bpv_export_json(&b, m->trace && n ? snaps[0]->model : m->src.name, m->dtype, snaps, n);
        *out_len = b.len;
        *out = bpv_buf_take(&b);
        return BPV_OK;
    }
    if (fmt == BPV_FORMAT_HTML) {
        bpv_figure_options dflt;
        if (!fig) bpv_figure_options_init(&dflt);
        bpv_buf b;
        bpv_buf_init(&b);
        int rc = bpv_export_player(snaps, n, fig ? fig : &dflt, &b, err);
        *out_len = b.len;
        *out = bpv_buf_take(&b);
        if (rc == BPV_OK && !*out)
            rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        if (rc != BPV_OK) {
            free(*out);
            *out = NULL;
            *out_len = 0;
        }
        return rc;
    }
    if ((unsigned)fmt >= BPV_FORMAT_COUNT)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "unknown output format"));
    if (n == 0)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "no step to draw"));
    bpv_figure_options defaults;
    if (!fig) {
        bpv_figure_options_init(&defaults);
        fig = &defaults;
    }
    return bpv_export_figure(snaps[0], fmt, fig, out, out_len, err);
}

/* ---- atomic file writes ---------------------------------------------------- */

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* A device or a pipe (/dev/null, a FIFO, /dev/fd/N) is written to as it is:
 * a file renamed over it would replace it. */
static int write_in_place(const char *path, const char *data, size_t len, bpv_error **err) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int rc = fd < 0 ? -1 : write_all(fd, data, len);
    int e = errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot write '%s': %s", path,
                                                strerror(e)));
    return BPV_OK;
}

/* ---- temporary files and signals ----------------------------------------------
 * The temporary files written and not yet renamed (one for a single write,
 * one per file of a per-step set), for bpv_signals_cleanup's handler to
 * remove. The list changes only with the signals blocked, so the handler
 * never sees it half-updated. */
static char **pending_v;
static size_t pending_cap;
static volatile sig_atomic_t pending_n;

static void block_signals(sigset_t *old) {
    sigset_t all;
    sigemptyset(&all);
    sigaddset(&all, SIGINT), sigaddset(&all, SIGTERM), sigaddset(&all, SIGHUP);
    sigprocmask(SIG_BLOCK, &all, old);
}

/* Called with the signals blocked; false when out of memory. */
static bool pending_add(char *tmp) {
    if ((size_t)pending_n == pending_cap) {
        size_t cap = pending_cap ? 2 * pending_cap : 8;
        char **v = realloc(pending_v, cap * sizeof *v);
        if (!v) return false;
        pending_v = v, pending_cap = cap;
    }
    pending_v[pending_n] = tmp;
    pending_n = pending_n + 1;
    return true;
}

/* Called with the signals blocked. */
static void pending_drop(const char *tmp) {
    for (sig_atomic_t i = 0; i < pending_n; i++)
        if (pending_v[i] == tmp) {
            pending_v[i] = pending_v[pending_n - 1];
            pending_n = pending_n - 1;
            return;
        }
}

/* Async-signal-safe: unlink, then the signal's own default action. */
static void on_fatal_signal(int sig) {
    for (sig_atomic_t i = 0; i < pending_n; i++) unlink(pending_v[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

void bpv_signals_cleanup(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* The test suite's hook: BPV_TEST_WRITE_PAUSE_MS holds a write between its
 * temporary files and the renames, so a signal can be sent in between. */
static void test_pause(void) {
    const char *ms = getenv("BPV_TEST_WRITE_PAUSE_MS");
    if (!ms) return;
    long v = strtol(ms, NULL, 10);
    if (v <= 0 || v > 60000) return;
    struct timespec ts = {v / 1000, (v % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A write made but not yet visible: its temporary file, to be renamed over
 * target; tmp NULL when the data went straight to its place (standard
 * output, a device, a pipe), where there is nothing to rename. */
typedef struct staged {
    char *tmp, *target;
} staged;

static int stage(const char *path, const char *data, size_t len, staged *st, bpv_error **err);

/* A symbolic link whose target does not exist: the target is written (its
 * path relative to the link's folder), at most 8 links deep. */
static int stage_through_dangling(const char *path, const char *data, size_t len, staged *st,
                                  bpv_error **err) {
    static int depth;
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0 || depth >= 8)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                                "cannot write '%s': %s", path,
                                                n < 0 ? strerror(errno) : "too many links"));
    target[n] = '\0';
    char *full = NULL;
    const char *slash = strrchr(path, '/');
    if (target[0] != '/' && slash) { /* relative to the link's folder */
        size_t d = (size_t)(slash - path + 1);
        full = malloc(d + (size_t)n + 1);
        if (!full) return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        memcpy(full, path, d);
        memcpy(full + d, target, (size_t)n + 1);
    }
    depth++;
    int rc = stage(full ? full : target, data, len, st, err);
    depth--;
    free(full);
    return rc;
}

/* Writes data to a temporary file beside the file path names (through
 * symbolic links), ready to be renamed over it; see bpv_file_write_atomic. */
static int stage(const char *path, const char *data, size_t len, staged *st, bpv_error **err) {
    st->tmp = st->target = NULL;
    if (strcmp(path, "-") == 0) {
        fflush(stdout);
        if (write_all(STDOUT_FILENO, data, len) != 0)
            return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                                    "cannot write to standard output: %s",
                                                    strerror(errno)));
        return BPV_OK;
    }
    struct stat st_, lst;
    const bool exists = stat(path, &st_) == 0;
    if (exists && S_ISDIR(st_.st_mode)) /* rename would say "busy" */
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                                "cannot write '%s': it is a folder; give a file "
                                                "name, like %s%sfigure.svg",
                                                path, path,
                                                path[strlen(path) - 1] == '/' ? "" : "/"));
    if (exists && !S_ISREG(st_.st_mode)) return write_in_place(path, data, len, err);
    /* a symbolic link stays one: its target is what gets replaced */
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        char *real = realpath(path, NULL);
        if (real) {
            int rc = stage(real, data, len, st, err);
            free(real);
            return rc;
        }
        /* a dangling link: written through, like a shell's `>`: its target
         * is created (relative to the link's folder), the link stays */
        if (errno == ENOENT) return stage_through_dangling(path, data, len, st, err);
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot write '%s': %s", path,
                                                strerror(errno))); /* a loop of links */
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16), *target = strdup(path);
    if (!tmp || !target) {
        free(tmp), free(target);
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    }
    /* The temporary file sits beside the target so rename() stays within
     * one file system and is atomic. */
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    memcpy(tmp, path, dirlen);
    /* ".NAME.XXXXXX" adds 8 bytes: a legal name near NAME_MAX keeps only
     * as much of itself as fits */
    const int base_max = 255 - 8;
    const size_t blen = strlen(path + dirlen);
    snprintf(tmp + dirlen, plen - dirlen + 16, ".%.*s.XXXXXX",
             blen > (size_t)base_max ? base_max : (int)blen, path + dirlen);
    /* a SIGINT or SIGTERM from here until the rename removes the temporary
     * file (bpv_signals_cleanup): it is registered before the signals are
     * let through again */
    sigset_t old;
    block_signals(&old);
    int fd = mkstemp(tmp);
    if (fd >= 0 && !pending_add(tmp)) {
        close(fd);
        unlink(tmp);
        fd = -1;
        errno = ENOMEM;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (fd < 0) {
        int e = errno;
        free(tmp), free(target);
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot write '%s': %s", path,
                                                strerror(e)));
    }
    /* keep the permissions an ordinary new file would get */
    mode_t mask = umask(0);
    umask(mask);
    mode_t mode = stat(path, &st_) == 0 ? (st_.st_mode & 07777) : (0666 & ~mask);
    int rc = write_all(fd, data, len);
    int e = errno;
    if (rc == 0 && fchmod(fd, mode) != 0) (void)0; /* best effort */
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0) {
        block_signals(&old);
        unlink(tmp);
        pending_drop(tmp);
        sigprocmask(SIG_SETMASK, &old, NULL);
        free(tmp), free(target);
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot write '%s': %s", path,
                                                strerror(e)));
    }
    st->tmp = tmp, st->target = target;
    return BPV_OK;
}

/* Renames a staged write over its target (rename_it) or removes it, and
 * frees it; returns 0 or the rename's errno. */
static int unstage(staged *st, bool rename_it) {
    int e = 0;
    if (st->tmp) {
        sigset_t old;
        block_signals(&old);
        if (rename_it && rename(st->tmp, st->target) != 0) e = errno;
        if (!rename_it || e) unlink(st->tmp);
        pending_drop(st->tmp);
        sigprocmask(SIG_SETMASK, &old, NULL);
    }
    free(st->tmp), free(st->target);
    st->tmp = st->target = NULL;
    return e;
}

int bpv_file_write_atomic(const char *path, const char *data, size_t len, bpv_error **err) {
    if (!path) return bpv_error_set(err, bpv_error_null("bpv_file_write_atomic", "path"));
    if (!data && len > 0)
        return bpv_error_set(err, bpv_error_null("bpv_file_write_atomic", "data"));
    staged st;
    int rc = stage(path, data, len, &st, err);
    if (rc != BPV_OK || !st.tmp) return rc;
    test_pause();
    int e = unstage(&st, true);
    if (e)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot write '%s': %s", path,
                                                strerror(e)));
    return BPV_OK;
}

/* ---- the whole job --------------------------------------------------------- */

/* An output name may hold one "%d" (or "%0Nd"), the step number: one file
 * per step. Returns how many it holds; "%%" then stands for '%'. */
static int step_patterns(const char *path) {
    int count = 0;
    for (const char *p = path; *p; p++) {
        if (*p != '%') continue;
        if (p[1] == '%') {
            p++;
            continue;
        }
        const char *q = p + 1;
        if (*q == '0')
            while (*q >= '0' && *q <= '9' && q - p < 4) q++;
        if (*q == 'd') count++;
    }
    return count;
}

/* The name with its step pattern filled in; malloc'd, NULL when out of
 * memory. */
static char *step_path(const char *path, long step) {
    bpv_buf b;
    bpv_buf_init(&b);
    for (const char *p = path; *p; p++) {
        const char *q = p + 1;
        if (*p == '%' && p[1] == '%') {
            bpv_buf_putc(&b, '%');
            p++;
            continue;
        }
        int width = 0;
        if (*p == '%' && *q == '0')
            while (*q >= '0' && *q <= '9' && q - p < 4) width = width * 10 + (*q++ - '0');
        if (*p == '%' && *q == 'd') {
            bpv_buf_printf(&b, "%0*ld", width, step);
            p = q;
        } else {
            bpv_buf_putc(&b, *p);
        }
    }
    return bpv_buf_take(&b);
}

/* Exports the run's snapshots into `output`: all of them in one JSON trace
 * or HTML player, or one file per step when the name holds "%d". */
static int write_selection(const bpv_model *m, const char *output, int fmt, const char *spec,
                           const bpv_figure_options *fig, bpv_error **err) {
    size_t n = bpv_model_snapshot_count(m);
    int patterns = step_patterns(output);
    if (patterns > 1)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                "the output name '%s' holds more than one %%d; "
                                                "it takes one, for the step number",
                                                output));
    if (patterns == 0 && n > 1 && fmt != BPV_FORMAT_JSON && fmt != BPV_FORMAT_HTML)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                "a figure shows one step, but '%s' selects %zu; "
                                                "put %%d in the name for one file per step "
                                                "(-o 'step%%d.svg'), or write them all to one "
                                                ".html player or .json trace",
                                                spec, n));
    const bpv_snapshot **snaps = malloc((n ? n : 1) * sizeof *snaps);
    if (!snaps) return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    for (size_t i = 0; i < n; i++) snaps[i] = bpv_model_snapshot(m, i);
    int rc = BPV_OK;
    if (!patterns) {
        char *data = NULL;
        size_t len = 0;
        rc = bpv_export(m, snaps, n, (bpv_format)fmt, fig, &data, &len, err);
        if (rc == BPV_OK) rc = bpv_file_write_atomic(output, data, len, err);
        free(data);
        free(snaps);
        return rc;
    }
    /* one file per step, all or nothing: every file is written to its
     * temporary first, and only when all are written are they renamed */
    staged *st = calloc(n ? n : 1, sizeof *st);
    if (!st) rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    size_t nst = 0;
    for (size_t d = 0; d < n && rc == BPV_OK; d++) {
        char *data = NULL, *path = step_path(output, bpv_snapshot_step(snaps[d]));
        size_t len = 0;
        if (!path) rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        if (rc == BPV_OK) rc = bpv_export(m, snaps + d, 1, (bpv_format)fmt, fig, &data, &len, err);
        if (rc == BPV_OK) rc = stage(path, data, len, &st[nst], err);
        if (rc == BPV_OK) nst++;
        free(data);
        free(path);
    }
    if (rc != BPV_OK) { /* nothing replaced yet: drop what was written */
        for (size_t d = 0; d < nst; d++) unstage(&st[d], false);
        free(st);
        free(snaps);
        return rc;
    }
    test_pause();
    /* a rename can still fail (a folder put there meanwhile): the message
     * says which files are new and which are not */
    size_t done = 0;
    int e = 0;
    for (; done < nst && !e; done++) e = unstage(&st[done], true);
    if (e) {
        done--; /* st[done] failed */
        char *bad = step_path(output, bpv_snapshot_step(snaps[done]));
        char *first = step_path(output, bpv_snapshot_step(snaps[0]));
        char *prev = done ? step_path(output, bpv_snapshot_step(snaps[done - 1])) : NULL;
        char *last = step_path(output, bpv_snapshot_step(snaps[n - 1]));
        char written[PATH_MAX * 2 + 64];
        if (done == 0) snprintf(written, sizeof written, "no file was written");
        else if (done == 1) snprintf(written, sizeof written, "'%s' was written", first ? first : "?");
        else
            snprintf(written, sizeof written, "the %zu files '%s' to '%s' were written", done,
                     first ? first : "?", prev ? prev : "?");
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                              "cannot write '%s': %s; %s, '%s'%s%s%s kept its "
                                              "old content or does not exist",
                                              bad ? bad : "?", strerror(e), written,
                                              bad ? bad : "?", done + 1 < n ? " to '" : "",
                                              done + 1 < n ? (last ? last : "?") : "",
                                              done + 1 < n ? "' each" : ""));
        for (size_t d = done + 1; d < nst; d++) unstage(&st[d], false);
        free(bad), free(first), free(prev), free(last);
    }
    free(st);
    free(snaps);
    return rc;
}

void bpv_render_options_init(bpv_render_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->format = -1;
    bpv_figure_options_init(&o->figure);
}

int bpv_render(const bpv_render_options *o, bpv_error **err) {
    if (!o) return bpv_error_set(err, bpv_error_null("bpv_render", "opts"));
    if (!o->model) return bpv_error_set(err, bpv_error_null("bpv_render", "opts->model"));
    const char *output = o->output ? o->output : "-";
    int fmt = o->format;
    if (fmt < 0) {
        fmt = strcmp(output, "-") == 0 ? BPV_FORMAT_DOT : bpv_format_from_path(output);
        struct stat ds;
        if (fmt < 0 && stat(output, &ds) == 0 && S_ISDIR(ds.st_mode)) /* -o ./ or -o . */
            return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                                    "cannot write '%s': it is a folder; give a "
                                                    "file name, like %s%sfigure.svg",
                                                    output, output,
                                                    output[strlen(output) - 1] == '/' ? "" : "/"));
        if (fmt < 0) {
            const char *dot = strrchr(output, '.');
            return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                    "cannot tell the format of '%s' from its "
                                                    "extension%s%s%s; use .dot, .gv, .svg, .png, "
                                                    ".pdf, .json or .html, or -T FORMAT",
                                                    output, dot ? " '" : "", dot ? dot : "",
                                                    dot ? "'" : ""));
        }
    }
    /* never draw over the model being drawn (-T svg -o model.bp) */
    struct stat ms, os;
    if (o->model && strcmp(o->model, "-") != 0 && strcmp(output, "-") != 0 &&
        stat(o->model, &ms) == 0 && stat(output, &os) == 0 && ms.st_dev == os.st_dev &&
        ms.st_ino == os.st_ino)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                "'%s' is the model being drawn; writing the "
                                                "figure there would replace it: choose another "
                                                "output name",
                                                output));
    const char *spec = o->steps ? o->steps : "1";
    /* first-nonfinite: the step is found while training (inspect.c) */
    bool first_nf = strcmp(spec, "first-nonfinite") == 0;
    bpv_step_set *keep = first_nf ? NULL : bpv_step_set_parse(spec, err);
    if (!keep && !first_nf) return BPV_ERR_MODEL;
    bpv_model *m = load_input(o->model, err);
    if (!m) {
        bpv_step_set_free(keep);
        return err && *err ? (*err)->status : BPV_ERR_MODEL;
    }
    if (m->trace) { /* its steps are there already: select, draw */
        bpv_step_set_free(keep);
        int rc = BPV_OK;
        if (o->gradcheck)
            rc = bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                  "the gradient check runs the model, and '%s' "
                                                  "is a trace: it holds the numbers only (the "
                                                  "marks of a trace written with --gradcheck "
                                                  "are drawn without it)",
                                                  o->model));
        if (rc == BPV_OK && !bpv_trace_select(m, o->steps, err))
            rc = err && *err ? (*err)->status : BPV_ERR_MODEL;
        if (rc == BPV_OK) rc = write_selection(m, output, fmt, spec, &o->figure, err);
        bpv_model_free(m);
        return rc;
    }
    int rc = BPV_OK;
    long total = bpv_model_step_count(m);
    long first = keep ? bpv_step_set_min(keep, total) : 0;
    long last = keep ? bpv_step_set_max(keep, total) : 0;

    if (total == 0) {
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                              "the model has no training step to draw; add a "
                                              "`train epochs=N` statement"));
    } else if (last > total) {
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                              "step %ld is past the end: the model has %ld "
                                              "step%s (steps 1 to %ld, or 'last')",
                                              first > total ? first : last, total,
                                              total == 1 ? "" : "s", total));
    }
    if (rc == BPV_OK) {
        bpv_run_options ro = {0};
        ro.keep = keep;
        ro.stop_after_last_kept = !first_nf;
        ro.keep_first_nonfinite = first_nf;
        ro.gradcheck = o->gradcheck;
        ro.on_progress = o->on_progress;
        ro.progress_user = o->progress_user;
        /* a trace or player holds every kept step's text until written:
         * a number takes at most 25 bytes ("-1.2345678901234567e-123, ") */
        bool one_doc = (fmt == BPV_FORMAT_JSON || fmt == BPV_FORMAT_HTML) &&
                       step_patterns(output) == 0;
        rc = run_budget(m, &ro, one_doc ? 25 : 0, err);
        if (rc == BPV_OK) rc = bpv_model_run(m, &ro, err);
    }
    if (rc == BPV_OK && first_nf && bpv_model_snapshot_count(m) == 0)
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                              "no value or gradient became NaN or infinite in "
                                              "the model's %ld training steps",
                                              total));
    if (rc == BPV_OK && o->gradcheck && o->report) {
        bpv_buf rep;
        bpv_buf_init(&rep);
        if (bpv_gradcheck_mismatches(m, &rep) > 0) fputs(rep.data, o->report);
        bpv_buf_free(&rep);
    }
    if (rc == BPV_OK) rc = write_selection(m, output, fmt, spec, &o->figure, err);
    bpv_model_free(m);
    bpv_step_set_free(keep);
    return rc;
}
