/* bpviz: backpropagation made visible.
 *
 * One public header. Every type is opaque unless its fields are part of the
 * contract; every function says who owns what it returns.
 *
 * Flow: source text -> lexer -> parser -> compiler -> engine -> snapshot ->
 * exporters. A caller loads a model, runs it (training and predictions, as
 * the model's statements say), keeps the snapshots of the steps it asks for
 * and exports them.
 */
#ifndef BPVIZ_H
#define BPVIZ_H

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

void bpv_error_free(bpv_error *err);

/* ---- models ----------------------------------------------------------- */

typedef struct bpv_model bpv_model;

/* Reads and parses a model file. `path` "-" reads standard input (errors
 * then name "<stdin>"). On failure returns NULL and, if `err` is not NULL,
 * stores an error the caller frees with bpv_error_free. The caller frees the
 * returned model with bpv_model_free. */
bpv_model *bpv_model_load(const char *path, bpv_error **err);

/* Same as bpv_model_load for text in memory. `name` is used in messages and
 * as the folder that relative CSV paths start from ("." when it has none).
 * The text is copied; the caller keeps ownership of `text`. */
bpv_model *bpv_model_load_string(const char *name, const char *text, size_t len,
                                 bpv_error **err);

void bpv_model_free(bpv_model *model);

/* ---- running ---------------------------------------------------------- */

/* Which training steps to keep snapshots of. Steps count from 1. */
typedef struct bpv_step_set bpv_step_set;

/* Parses "N", "A-B", "A-B/K", "1,5,9", "all", "last" (combinations joined
 * by commas). Returns NULL on a bad spec and stores an error in `err`.
 * The caller frees the result with bpv_step_set_free. */
bpv_step_set *bpv_step_set_parse(const char *spec, bpv_error **err);
void bpv_step_set_free(bpv_step_set *set);

typedef struct bpv_snapshot bpv_snapshot;

/* Called for each kept snapshot, in step order. The snapshot stays valid
 * until bpv_model_free; do not free it. Return non-zero to stop the run. */
typedef int (*bpv_snapshot_fn)(const bpv_snapshot *snap, void *user);

typedef struct bpv_run_options {
    /* Where `predict` and per-epoch lines go; NULL prints nothing. */
    FILE *out;
    /* Steps to keep; NULL keeps none. */
    const bpv_step_set *keep;
    /* Stop training once every kept step has been taken (for figures). */
    int stop_after_last_kept;
    bpv_snapshot_fn on_snapshot;
    void *user;
} bpv_run_options;

/* Runs the model's statements top to bottom: predictions are printed, train
 * statements train. Returns BPV_OK or an error status and stores an error
 * in `err` (the caller frees it). A model can be run once. */
int bpv_model_run(bpv_model *model, const bpv_run_options *opts, bpv_error **err);

/* Number of training steps the model takes in total (known after loading:
 * epochs x batches summed over train statements). */
long bpv_model_step_count(const bpv_model *model);

/* The kept snapshots after a run, in step order. Owned by the model. */
size_t bpv_model_snapshot_count(const bpv_model *model);
const bpv_snapshot *bpv_model_snapshot(const bpv_model *model, size_t i);

/* ---- snapshots -------------------------------------------------------- */

long bpv_snapshot_step(const bpv_snapshot *snap);

/* ---- exporting -------------------------------------------------------- */

typedef enum bpv_format {
    BPV_FORMAT_DOT,
    BPV_FORMAT_SVG,
    BPV_FORMAT_PNG,
    BPV_FORMAT_PDF,
    BPV_FORMAT_JSON,
    BPV_FORMAT_COUNT
} bpv_format;

/* "dot"/"gv", "svg", "png", "pdf", "json" -> format; -1 when unknown. */
int bpv_format_from_name(const char *name);
/* The format a file name's extension selects; -1 when none matches. */
int bpv_format_from_path(const char *path);

typedef enum bpv_labels { BPV_LABELS_VALUES, BPV_LABELS_FULL } bpv_labels;
typedef enum bpv_theme { BPV_THEME_TUTORIAL, BPV_THEME_PRINT, BPV_THEME_COLORBLIND } bpv_theme;

typedef struct bpv_figure_options {
    int rankdir_tb;   /* 0: left to right (default), 1: top to bottom */
    bpv_theme theme;
    bpv_labels labels;
    int precision;    /* significant digits, default 4 */
    int plain_names;  /* 1: print names as written */
} bpv_figure_options;

/* Fills in the defaults above. */
void bpv_figure_options_init(bpv_figure_options *opts);

/* Exports the snapshots of a run as one document: JSON holds them all, the
 * figure formats draw the first one. On success stores a malloc'd buffer and
 * its length (PNG and PDF hold NUL bytes) that the caller frees with free().
 * Returns BPV_OK or an error status with `err` set. */
int bpv_export(const bpv_model *model, const bpv_snapshot *const *snaps, size_t nsnaps,
               bpv_format format, const bpv_figure_options *fig,
               char **out, size_t *out_len, bpv_error **err);

/* ---- the whole job ------------------------------------------------------ */

/* What `bpviz MODEL.bp -o FILE ...` does, as one call: load the model, train
 * it up to the last selected step, export the selection and write it. */
typedef struct bpv_render_options {
    const char *model;   /* path, or "-" for standard input */
    const char *output;  /* path, or "-"/NULL for standard output */
    int format;          /* a bpv_format, or -1: from the output's extension (DOT if none) */
    const char *steps;   /* step selection (bpv_step_set_parse), NULL: "1" */
    bpv_figure_options figure;
} bpv_render_options;

/* Fills in the defaults: standard output, format from the extension,
 * step 1, default figure options. */
void bpv_render_options_init(bpv_render_options *opts);

/* Returns BPV_OK or an error status with `err` set (the caller frees it). An
 * existing output file is left untouched on any failure. */
int bpv_render(const bpv_render_options *opts, bpv_error **err);

/* Writes `len` bytes to `path` atomically: a temporary file in the same
 * folder, renamed over `path` on success. "-" writes standard output. On
 * failure the existing file is untouched and no temporary file remains. */
int bpv_file_write_atomic(const char *path, const char *data, size_t len, bpv_error **err);

#ifdef __cplusplus
}
#endif
#endif
