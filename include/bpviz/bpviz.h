/* bpviz: backpropagation made visible.
 *
 * One public header. Every type is opaque unless its fields are part of the
 * contract; every function says who owns what it returns.
 *
 * Flow: source text -> lexer -> parser -> compiler -> engine -> snapshot ->
 * exporters. A caller loads a model, runs it (training and predictions, as
 * the model's statements say), keeps the snapshots of the steps it asks for
 * and exports them.
 *
 * NULL arguments: no function crashes on one. Each function's comment says
 * which of its pointers may be NULL and what that means; any other NULL is
 * an error: the function returns BPV_ERR_MODEL (or its NULL, -1 or NAN) and
 * stores "bpviz: error: FUNCTION: ARGUMENT is NULL" in *err, as in
 * "bpv_render: opts is NULL". Every `bpv_error **err` may itself be NULL:
 * the error is then dropped. An error is stored only in an empty *err (set
 * it to NULL before the call): a function never overwrites one already
 * there.
 */
#ifndef BPVIZ_H
#define BPVIZ_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library version, "MAJOR.MINOR.PATCH". Static storage; do not free. */
const char *bpv_version(void);

/* ---- errors ----------------------------------------------------------- */

/* Exit statuses the command uses; the library reports them in bpv_error. */
enum {
    BPV_OK = 0,
    BPV_ERR_RUNTIME = 1, /* a failure while running: I/O, output, resources */
    BPV_ERR_MODEL = 2    /* the model (or the command line) is wrong */
};

/* An error: its status and its full text, already formatted for a terminal:
 *   file.bp:3:9: error: unknown name 'wx' (did you mean 'w'?)
 *       y_hat = x * wx
 *                   ^~
 * The message ends with a newline. Free with bpv_error_free. */
typedef struct bpv_error {
    int status;
    char *message;
} bpv_error;

/* `err` NULL: does nothing. */
void bpv_error_free(bpv_error *err);

/* ---- models ----------------------------------------------------------- */

typedef struct bpv_model bpv_model;

/* Reads and parses a model file. `path` "-" reads standard input (errors
 * then name "<stdin>"). On failure returns NULL and, if `err` is not NULL,
 * stores an error the caller frees with bpv_error_free. The caller frees the
 * returned model with bpv_model_free. `path` NULL: an error. */
bpv_model *bpv_model_load(const char *path, bpv_error **err);

/* Same as bpv_model_load for text in memory. `name` is used in messages and
 * as the folder that relative CSV and .npy paths start from ("." when it has none).
 * The text is copied; the caller keeps ownership of `text`. `name` NULL:
 * "<string>" (relative paths then start from "."). `text` NULL: an error
 * when `len` > 0, the empty model when `len` is 0. */
bpv_model *bpv_model_load_string(const char *name, const char *text, size_t len,
                                 bpv_error **err);

/* `model` NULL: does nothing. */
void bpv_model_free(bpv_model *model);

/* ---- traces (additive) -------------------------------------------------- */

/* Reads a JSON trace (docs/json-trace.md), written by `bpviz -T json` or
 * recorded from PyTorch (python/bpviz_torch.py), checked like a model: a
 * wrong or oversized trace gives a located error ("t.json:12:40: error:
 * steps[0].nodes[3].value: expected 6 numbers (shape [2, 3]), found 5")
 * with status BPV_ERR_MODEL. Returns a model that holds no program, only
 * the trace's steps: bpv_model_snapshot_count and bpv_model_snapshot list
 * them, bpv_export draws them, bpv_model_step_count is the last step's
 * number and bpv_model_nonfinite_step the first with a NaN or infinity;
 * bpv_model_run and bpv_model_bench refuse it. The caller frees it with
 * bpv_model_free. `path` "-" reads standard input ("<stdin>" in
 * messages). `path` NULL: an error. */
bpv_model *bpv_trace_load(const char *path, bpv_error **err);

/* The same for text in memory (copied; the caller keeps `text`). `name`
 * NULL: "<string>". `text` NULL: an error when `len` > 0. */
bpv_model *bpv_trace_load_string(const char *name, const char *text, size_t len,
                                 bpv_error **err);

/* 1 when `model` was read from a trace, 0 for a model, -1 when NULL. */
int bpv_model_is_trace(const bpv_model *model);

/* ---- running ---------------------------------------------------------- */

/* Which training steps to keep snapshots of. Steps count from 1. */
typedef struct bpv_step_set bpv_step_set;

/* Parses "N", "A-B", "A-B/K", "1,5,9", "all", "last" (combinations joined
 * by commas). A-B/K is A, A+K, A+2K, ... and B itself (1-800/100 ends on
 * 800). Returns NULL on a bad spec and stores an error in `err`.
 * The caller frees the result with bpv_step_set_free. `spec` NULL: an
 * error. bpv_step_set_free accepts NULL (it does nothing). */
bpv_step_set *bpv_step_set_parse(const char *spec, bpv_error **err);
void bpv_step_set_free(bpv_step_set *set);

typedef struct bpv_snapshot bpv_snapshot;

/* Called for each kept snapshot, in step order. The snapshot stays valid
 * until the model's next run or bpv_model_free; do not free it. Return
 * non-zero to stop the run. */
typedef int (*bpv_snapshot_fn)(const bpv_snapshot *snap, void *user);

/* Called after every training step with the steps taken so far and the
 * model's total, for a progress display (the library itself never prints).
 * Called often: keep it cheap. */
typedef void (*bpv_progress_fn)(long step, long total, void *user);

typedef struct bpv_run_options {
    /* Where `predict` and per-epoch lines go; NULL prints nothing. */
    FILE *out;
    /* Steps to keep; NULL keeps none. */
    const bpv_step_set *keep;
    /* Stop training once every kept step has been taken (for figures). */
    int stop_after_last_kept;
    bpv_snapshot_fn on_snapshot;
    void *user;
    /* Optional progress callback and its argument (additive). */
    bpv_progress_fn on_progress;
    void *progress_user;
    /* Inspecting the backward pass (additive). `gradcheck`: run the
     * gradient check on every kept step (a snapshot's figure then marks
     * mismatches). `keep_first_nonfinite`: also keep the step where a value
     * or gradient first becomes NaN or infinite, and stop there.
     * `on_warning`: called once, the first time that happens, with one
     * newline-terminated line naming the step, epoch, node and operation
     * (valid during the call); training goes on unless the train statement
     * says stop_on_nonfinite=true. */
    int gradcheck;
    int keep_first_nonfinite;
    void (*on_warning)(const char *message, void *user);
    void *warning_user;
} bpv_run_options;

/* Runs the model's statements top to bottom: predictions are printed, train
 * statements train. Returns BPV_OK or an error status and stores an error
 * in `err` (the caller frees it). A model can be run again: every run starts
 * from the initial params with new optimizers, so the same options give the
 * same output and snapshots; the previous run's snapshots are freed.
 * `opts` NULL: all defaults (prints nothing, keeps no snapshot; each
 * pointer field of bpv_run_options may be NULL as its comment says).
 * `model` NULL: an error. */
int bpv_model_run(bpv_model *model, const bpv_run_options *opts, bpv_error **err);

/* Number of training steps the model takes in total (known after loading:
 * epochs x batches summed over train statements); -1 when `model` is NULL. */
long bpv_model_step_count(const bpv_model *model);

/* After a run: the first step where the latest run found a value or
 * gradient NaN or infinite, or 0 (additive); -1 when `model` is NULL. */
long bpv_model_nonfinite_step(const bpv_model *model);

/* `bpviz check`: loads the model (parse and shapes), trains it, runs the
 * gradient check on the steps `steps` selects (NULL: 1, 2, the last and a
 * spread between) and looks for the first NaN or infinity and for params
 * that never get a gradient. Returns BPV_OK when clean or
 * BPV_CHECK_PROBLEMS when it found some, with the text report in
 * `*report` (malloc'd, the caller frees it) either way; or an error status
 * (BPV_ERR_MODEL for a bad model) with `err` set and no report.
 * `model` (the model file's path) NULL: an error. `steps` NULL: the
 * default above. `report` NULL: the report is made and dropped, only the
 * status is returned. */
#define BPV_CHECK_PROBLEMS 1
int bpv_check(const char *model, const char *steps, char **report, bpv_error **err);

/* The latest run's kept snapshots, in step order. Owned by the model and
 * valid until its next run (bpv_model_run, bpv_model_bench) or
 * bpv_model_free. bpv_model_snapshot returns NULL when `i` is past the end.
 * `model` NULL: a count of 0 and no snapshot (NULL). */
size_t bpv_model_snapshot_count(const bpv_model *model);
const bpv_snapshot *bpv_model_snapshot(const bpv_model *model, size_t i);

/* ---- benchmarking (`bpviz bench`) --------------------------------------- */

typedef struct bpv_bench_options {
    long steps;         /* timed training steps; 0: 1000 */
    long warmup;        /* untimed steps before them; -1: steps / 10; at least 1 */
    int snapshot_every; /* 1: take a snapshot of every step (and drop it), as a
                           trace of every step would; 0: none */
} bpv_bench_options;

typedef struct bpv_bench_result {
    long steps;         /* steps timed */
    double seconds;     /* their wall-clock time */
    double ns_per_step;
    int threads;        /* the engine's thread count it ran with (bpv_threads_get) */
} bpv_bench_result;

/* Trains the model as bpv_model_run does, printing nothing, and times
 * `steps` training steps after `warmup` untimed ones; a model with fewer
 * steps trains on with more epochs of its last train statement, for this
 * run only. This runs the model as bpv_model_run does (from its initial
 * params, the previous run's snapshots freed) and keeps no snapshots.
 * `opts` NULL takes the defaults; the result goes to the caller's `res`
 * (NULL: the timing is dropped). `model` NULL: an error.
 * Returns BPV_OK or an error status with `err` set (the caller frees it). */
int bpv_model_bench(bpv_model *model, const bpv_bench_options *opts, bpv_bench_result *res,
                    bpv_error **err);

/* ---- threads ---------------------------------------------------------- */

/* The engine computes large products, convolutions, poolings and updates on
 * up to this many threads; small work stays on the calling thread. Every
 * number is the same bit for bit whatever the count: each output element is
 * computed by one thread, in the order one thread computes it. The setting
 * is process-wide; the threads (one pool per process, created when first
 * needed) are joined at exit. Models run from several threads at once share
 * the pool: a kernel that finds it busy computes on its caller alone.
 * bpv_threads_set: n from 1 to 256, or 0 for the number of online CPUs;
 * returns the count now set, or -1 (nothing changed) for any other n. */
int bpv_threads_set(int n);
/* The count set, else the environment's BPV_THREADS (1 to 256), else the
 * number of online CPUs. */
int bpv_threads_get(void);

/* ---- snapshots -------------------------------------------------------- */

/* The step (from 1); with `snap` NULL these three return -1, -1 and NAN. */
long bpv_snapshot_step(const bpv_snapshot *snap);
/* The epoch (from 0) and the objective's value at this step. */
long bpv_snapshot_epoch(const bpv_snapshot *snap);
double bpv_snapshot_loss(const bpv_snapshot *snap);

/* Looks up the node called `name` (a data, param, const or named node).
 * Returns its number of elements and stores pointers into the snapshot:
 * `*value` to its forward value, `*grad` to d objective / d node or NULL
 * when no gradient reaches it (either pointer argument may be NULL). The
 * numbers belong to the snapshot and live as long as it does. Returns -1
 * when no node has that name, and when `snap` or `name` is NULL (the
 * outputs are then left as they were). */
long bpv_snapshot_node(const bpv_snapshot *snap, const char *name, const double **value,
                       const double **grad);

/* ---- exporting -------------------------------------------------------- */

typedef enum bpv_format {
    BPV_FORMAT_DOT,
    BPV_FORMAT_SVG,
    BPV_FORMAT_PNG,
    BPV_FORMAT_PDF,
    BPV_FORMAT_JSON,
    BPV_FORMAT_HTML, /* the step player: one self-contained page */
    BPV_FORMAT_COUNT
} bpv_format;

/* "dot"/"gv", "svg", "png", "pdf", "json", "html" -> format; -1 when unknown
 * or NULL. */
int bpv_format_from_name(const char *name);
/* The format a file name's extension selects; -1 when none matches or
 * `path` is NULL. */
int bpv_format_from_path(const char *path);

/* BPV_LABELS_SHAPES (additive): tensors as their shapes (W₁ 3×2), no
 * numbers on tensor edges; scalars keep their values. */
typedef enum bpv_labels { BPV_LABELS_VALUES, BPV_LABELS_FULL, BPV_LABELS_SHAPES } bpv_labels;
typedef enum bpv_theme { BPV_THEME_TUTORIAL, BPV_THEME_PRINT, BPV_THEME_COLORBLIND } bpv_theme;
/* How tensors print (additive). AUTO: numbers up to 6 x 6, a heatmap when
 * larger; VALUES: numbers up to 6 x 6, min/mean/max when larger;
 * HEATMAP: every tensor of two or more elements as a heatmap. */
typedef enum bpv_tensors { BPV_TENSORS_AUTO, BPV_TENSORS_VALUES, BPV_TENSORS_HEATMAP } bpv_tensors;
/* Op symbols (additive): DEFAULT as they have always been; TUTORIAL as the
 * tutorial draws them (a matrix product as MM). */
typedef enum bpv_op_symbols { BPV_OP_SYMBOLS_DEFAULT, BPV_OP_SYMBOLS_TUTORIAL } bpv_op_symbols;

typedef struct bpv_figure_options {
    int rankdir_tb;   /* 0: left to right (default), 1: top to bottom */
    bpv_theme theme;
    bpv_labels labels;
    int precision;    /* significant digits, default 4 */
    int plain_names;  /* 1: print names as written */
    /* Font family of every text, as fontconfig names it; NULL: "DejaVu Sans".
     * Borrowed: it must outlive the export call. One font for all the
     * figures of a course keeps slides consistent. */
    const char *font;
    /* Scale the drawing up or down to fit a box of size_w x size_h inches
     * (0 x 0: natural size; one 0 means the same as the other). */
    double size_w, size_h;
    /* PNG resolution in pixels per inch; 0: 96. Other formats ignore it. */
    double dpi;
    /* Additive. Draw only the nodes within focus_depth edges (default 2) of
     * the node called `focus` (NULL: the whole graph); a cut edge ends in a
     * small "…" stub. Borrowed, like `font`. */
    const char *focus;
    int focus_depth;
    /* A figure of more nodes than this is refused with a message suggesting
     * --focus (0: BPV_FIGURE_MAX_NODES; negative: no limit). */
    long max_nodes;
    /* Additive (labels and numbers). exact_numbers 1: every number as
     * stored, float32 rounding noise included; 0 (default): a number within
     * the rounding error of the calculation that made it prints as 0
     * (docs/language.md, "Numbers in figures"). no_update 1: no "after
     * update" row in parameters' boxes. */
    int exact_numbers;
    int no_update;
    /* Additive. Tensors as numbers or heatmaps (default: AUTO). In the HTML
     * player AUTO keeps min/mean/max, which change step by step, and a
     * heatmap shows the colours of the first step drawn. */
    bpv_tensors tensors;
    /* Additive. 1: a small key in the bottom corner (forward value,
     * backward partial, data, parameter, an op node's numbers). */
    int legend;
    bpv_op_symbols op_symbols;
    /* Additive. Fit the figure to a slide of shape fit_w:fit_h (0: off):
     * the direction (unless fit_keep_rankdir is 1) and the wrapping of
     * long chains are chosen so that the drawing comes closest to that
     * shape, never smaller than its natural size, then the page is padded
     * to exactly that shape. DOT output carries the choices as attributes. */
    double fit_w, fit_h;
    int fit_keep_rankdir;
} bpv_figure_options;

/* Above this many nodes a layout takes seconds and the figure is
 * unreadable (measured: docs/language.md, "Large graphs"). */
#define BPV_FIGURE_MAX_NODES 150

/* Fills in the defaults above. `opts` NULL: does nothing. */
void bpv_figure_options_init(bpv_figure_options *opts);

/* Whether fontconfig has the font family `family` (case and spaces
 * ignored), the family every figure format then draws with (additive).
 * Returns 1 if it has it, 0 if it falls back to another family, -1 if it
 * cannot tell (also for `family` NULL or empty); `used` (n bytes, may be
 * NULL) receives the family used. */
int bpv_font_check(const char *family, char *used, size_t n);

/* Exports the snapshots of a run as one document: JSON and HTML (the step
 * player, laid out once for all of them) hold them all, the figure formats
 * draw the first one. On success stores a malloc'd buffer and
 * its length (PNG and PDF hold NUL bytes) that the caller frees with free().
 * Returns BPV_OK or an error status with `err` set, and then *out NULL and
 * *out_len 0. `fig` NULL: the defaults. `snaps` may be NULL only when
 * `nsnaps` is 0. `model`, an element of `snaps`, `out` or `out_len` NULL:
 * an error. */
int bpv_export(const bpv_model *model, const bpv_snapshot *const *snaps, size_t nsnaps,
               bpv_format format, const bpv_figure_options *fig,
               char **out, size_t *out_len, bpv_error **err);

/* Exports one snapshot (from a run or a builder) in any format: JSON
 * writes a trace of that one step. On success stores a malloc'd buffer and
 * its length the caller frees with free(); `fig` may be NULL for the
 * defaults. Returns BPV_OK or an error status with `err` set (*out NULL,
 * *out_len 0). `snap`, `out` or `out_len` NULL: an error. */
int bpv_snapshot_export(const bpv_snapshot *snap, bpv_format format,
                        const bpv_figure_options *fig, char **out, size_t *out_len,
                        bpv_error **err);

/* bpv_snapshot_export into the file `path`, written atomically ("-":
 * standard output). `format` is a bpv_format, or -1 to take it from the
 * extension. `fig` NULL: the defaults. `snap` or `path` NULL: an error. */
int bpv_snapshot_write(const bpv_snapshot *snap, const char *path, int format,
                       const bpv_figure_options *fig, bpv_error **err);

/* ---- building a graph in C ------------------------------------------------
 * For a program that wants its own computation drawn without writing a .bp
 * file: declare parameters and data, combine them with ops, then run one
 * forward and backward pass (and optionally one SGD update):
 *
 *     bpv_builder *b = bpv_builder_new();
 *     int w = bpv_builder_param(b, "w", (double[]){0.5}, NULL, 0);
 *     int x = bpv_builder_data(b, "x", (double[]){1.5}, NULL, 0);
 *     int y = bpv_builder_op(b, "y", "sigmoid", bpv_builder_op(b, NULL, "mul", w, x), -1);
 *     const bpv_snapshot *s = bpv_builder_run(b, y, 0.1, &err);
 *     bpv_snapshot_write(s, "y.svg", -1, NULL, &err);
 *     bpv_builder_free(b);
 *
 * Nodes are small integers (handles); a function that fails returns -1 and
 * the builder remembers the first error, which bpv_builder_run reports, so
 * a sequence of calls needs one check at the end. Numbers are float32 like
 * PyTorch's default (see bpv_builder_new_f64). */
typedef struct bpv_builder bpv_builder;

/* A new, empty builder; NULL when out of memory. Free with
 * bpv_builder_free. */
bpv_builder *bpv_builder_new(void);
/* The same with every number a double (the language's `dtype f64`). */
bpv_builder *bpv_builder_new_f64(void);
/* Frees the builder and every snapshot it returned. NULL is allowed (does
 * nothing). */
void bpv_builder_free(bpv_builder *b);

/* A trainable parameter, or a data value (one sample), called `name`: an
 * identifier, not a keyword or built-in. `values` holds the elements in
 * row-major order of a tensor of shape dims[0] x ... x dims[rank-1]
 * (rank 0, dims NULL: a scalar, one value); it is copied. Values must be
 * finite. Returns the node's handle, or -1. `b` NULL: -1 (bpv_builder_run
 * reports it). `name` or `values` NULL, or `dims` NULL with rank > 0: -1
 * and the builder's error "bpv_builder_param: name is NULL" (or
 * "bpv_builder_data: ..."). */
int bpv_builder_param(bpv_builder *b, const char *name, const double *values,
                      const int64_t *dims, int rank);
int bpv_builder_data(bpv_builder *b, const char *name, const double *values,
                     const int64_t *dims, int rank);
/* A literal scalar constant; figures fold it into the op that uses it
 * (x^2, x + 1). Returns its handle, or -1 (and -1 when `b` is NULL). */
int bpv_builder_const(bpv_builder *b, double value);

/* The op `op` over the nodes `a` and `c` (c is -1 for a one-input op). Op
 * names are the language's: add sub mul div pow matmul neg sigmoid relu
 * tanh exp log sqrt abs sum mean T mse bce softmax log_softmax
 * cross_entropy max min (not clamp, which takes its bounds as numbers). `name` (copied) names the result in figures, or is NULL
 * for an unnamed intermediate, drawn as its expression. Shapes are checked
 * by bpv_builder_run. Returns the result's handle, or -1. `b` NULL: -1.
 * `op` NULL: -1 and the builder's error "bpv_builder_op: op is NULL". */
int bpv_builder_op(bpv_builder *b, const char *name, const char *op, int a, int c);

/* Compiles the graph, runs forward, then backward from `objective` (a
 * scalar node), then, if lr > 0, one SGD update p = p - lr * grad so the
 * figure shows each parameter after the step too. Returns the snapshot,
 * owned by the builder and valid until the next bpv_builder_run or
 * bpv_builder_free; or NULL with `err` set (the caller frees it). `b` NULL
 * (bpv_builder_new ran out of memory): NULL and a BPV_ERR_RUNTIME error
 * "bpv_builder_run: b is NULL". */
const bpv_snapshot *bpv_builder_run(bpv_builder *b, int objective, double lr,
                                    bpv_error **err);

/* The .bp program equivalent to what has been built, NUL-terminated and
 * owned by the builder (valid until its next call); save it to go on with
 * the command line. NULL after an error, before the first run, and when `b`
 * is NULL. */
const char *bpv_builder_source(bpv_builder *b);

/* ---- the whole job ------------------------------------------------------ */

/* What `bpviz MODEL.bp -o FILE ...` does, as one call: load the model, train
 * it up to the last selected step, export the selection and write it. A
 * trace (a name ending in .json, or text starting with '{') is read
 * instead of trained (additive): its selected steps are drawn, "last" is
 * its last step, no `steps` its first, and gradcheck is an error. */
typedef struct bpv_render_options {
    const char *model;   /* path, or "-" for standard input */
    const char *output;  /* path, or "-"/NULL for standard output */
    int format;          /* a bpv_format, or -1: from the output's extension (DOT if none) */
    const char *steps;   /* step selection (bpv_step_set_parse), NULL: "1" */
    bpv_figure_options figure;
    /* Optional progress callback for the training it runs (additive). */
    bpv_progress_fn on_progress;
    void *progress_user;
    /* Run the gradient check on the drawn step and mark mismatches
     * (additive). `steps` may also be "first-nonfinite": the step where a
     * value or gradient first becomes NaN or infinite. */
    int gradcheck;
    /* With gradcheck: where each mismatch is reported as a line of text
     * naming the step, node, input and both numbers; NULL: nowhere. */
    FILE *report;
} bpv_render_options;

/* Fills in the defaults: standard output, format from the extension,
 * step 1, default figure options. `opts` NULL: does nothing. Its `model`
 * is NULL: set it before bpv_render. */
void bpv_render_options_init(bpv_render_options *opts);

/* Returns BPV_OK or an error status with `err` set (the caller frees it). An
 * existing output file is left untouched on any failure. `opts` NULL or
 * `opts->model` NULL: an error ("bpv_render: opts->model is NULL"); the
 * other pointer fields may be NULL as their comments say. */
int bpv_render(const bpv_render_options *opts, bpv_error **err);

/* Writes `len` bytes to `path` atomically: a temporary file in the same
 * folder, renamed over `path` on success. "-" writes standard output. On
 * failure the existing file is untouched and no temporary file remains. A
 * symbolic link stays a link (its target is replaced); a device or a pipe
 * (/dev/null, a FIFO) is written to directly, not replaced. A dangling link
 * is written through: its target is created, as a shell's `>` would.
 * Returns BPV_OK or an error status with `err` set. `path` NULL: an error.
 * `data` NULL: an error when `len` > 0, an empty file when `len` is 0. */
int bpv_file_write_atomic(const char *path, const char *data, size_t len, bpv_error **err);

/* Where notes go: remarks on a model that are not errors, made while it
 * loads, one line each ("m.bp:1:14: note: the first row of 'data.csv' ...
 * is taken as a header and skipped"). NULL (the default) drops them; the
 * bpviz command sends them to standard error. Process-wide; the stream is
 * the caller's and stays open. */
void bpv_notes_to(FILE *stream);

/* The memory budget, in bytes, that everything a run holds must fit: the
 * model, files read whole (CSV, .npy), kept snapshots, the text of a JSON
 * trace or HTML player, the gradient check's copies and a PNG's pixels.
 * Each is sized before it is allocated; a run past the budget fails with
 * an error saying what needs how much. `bytes` 0 restores the default:
 * the environment's BPV_MEMORY (like 16G), else 4 GiB or half the physical
 * memory when that is less. Process-wide, like the limits; set it before
 * loading. Returns BPV_OK, or BPV_ERR_MODEL (and changes nothing) when
 * bytes is not 0 and below 1 MiB. */
int bpv_memory_budget_set(uint64_t bytes);

/* Installs handlers for SIGINT, SIGTERM and SIGHUP that remove the
 * temporary file of a write in progress (bpv_file_write_atomic) and then
 * end the process as the signal would have. For programs, like the bpviz
 * command, that want no hidden temporary file left behind when they are
 * interrupted; a library user that handles these signals itself should not
 * call it. */
void bpv_signals_cleanup(void);

/* ---- watching ------------------------------------------------------------ */

/* Called after each rendering: status BPV_OK, or an error whose `err` is
 * owned by the watcher and valid only during the call. Return non-zero to
 * stop watching. */
typedef int (*bpv_watch_fn)(int status, const bpv_error *err, void *user);

typedef struct bpv_watch_options {
    bpv_watch_fn on_render; /* NULL: errors are dropped */
    void *user;
    /* Polled: set it non-zero (from a signal handler, say) to return. */
    volatile sig_atomic_t *stop;
} bpv_watch_options;

/* Renders as bpv_render does, then again each time the model file (or a
 * .csv or .npy file beside it) is written, until stopped. The model's folder is
 * watched with inotify, so editors that save by writing a new file and
 * renaming it over the old one work too. A failed rendering is reported to
 * on_render and watching goes on. The model must be a file and the output a
 * file (not "-"). Returns BPV_OK once stopped, or an error status with
 * `err` set when watching cannot start. `render` NULL: an error; `watch`
 * NULL: no callback and no stop flag (it then watches until an error). */
int bpv_watch(const bpv_render_options *render, const bpv_watch_options *watch,
              bpv_error **err);

#ifdef __cplusplus
}
#endif
#endif
