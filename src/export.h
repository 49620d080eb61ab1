/* Exporters: a snapshot (or a run's snapshots) -> a document. The Graphviz
 * exporter (graphviz.c) is the only module that includes Graphviz headers. */
#ifndef BPV_EXPORT_H
#define BPV_EXPORT_H

#include "snapshot.h"

/* JSON trace: {"model": ..., "dtype": ..., "steps": [ ... ]}; see
 * docs/json-trace.md. Appends to b. */
void bpv_export_json(bpv_buf *b, const char *model_name, bpv_dtype dtype,
                     const bpv_snapshot *const *snaps, size_t n);

/* Draws one snapshot as DOT, SVG, PNG or PDF into a malloc'd buffer the
 * caller frees. Returns BPV_OK or an error status with *err set. */
int bpv_export_figure(const bpv_snapshot *snap, bpv_format fmt, const bpv_figure_options *opt,
                      char **out, size_t *out_len, bpv_error **err);

/* JSON string escaping (quotes included), for every exporter that writes
 * JSON or JavaScript. */
void bpv_json_string(bpv_buf *b, const char *s);

/* Several snapshots of one graph laid out once (the HTML player). Every
 * text of the figure that differs between the snapshots (numbers, the
 * caption) is a "varying text" K. In `svg` each appears as
 *   OPEN, K in binary (ZERO/ONE, most significant first), MID,
 *   the widest of its values (already XML-escaped), CLOSE
 * so that the layout has room for all of them. The markers are invisible
 * format characters Graphviz measures as zero width. */
#define BPV_VARY_OPEN "\xe2\x81\xa3"  /* U+2063 */
#define BPV_VARY_ZERO "\xe2\x80\x8b"  /* U+200B */
#define BPV_VARY_ONE "\xe2\x80\x8c"   /* U+200C */
#define BPV_VARY_MID "\xe2\x81\xa4"   /* U+2064 */
#define BPV_VARY_CLOSE "\xe2\x81\xa2" /* U+2062 */
/* A heatmap whose colours vary is a group <g id="a_bpvheatK"><a ...>
 * around its cells; text K holds its colours (heatmap.h, bpv_heat_codes). */
#define BPV_HEAT_ANCHOR "bpvheat"

typedef struct bpv_fig_steps {
    char *svg;      /* the figure of the first snapshot, texts marked */
    size_t svg_len;
    size_t nvary;   /* varying texts per snapshot */
    size_t nsteps;
    char **text;    /* text[i * nvary + K]: raw UTF-8 of text K at snapshot i */
} bpv_fig_steps;

/* Fills `out` (freed with bpv_fig_steps_free). Fails when the snapshots'
 * figures differ in more than their varying texts. */
int bpv_export_figure_steps(const bpv_snapshot *const *snaps, size_t n,
                            const bpv_figure_options *opt, bpv_fig_steps *out, bpv_error **err);
void bpv_fig_steps_free(bpv_fig_steps *fs);

/* The HTML step player: one self-contained page (player.c). */
int bpv_export_player(const bpv_snapshot *const *snaps, size_t n, const bpv_figure_options *opt,
                      bpv_buf *out, bpv_error **err);

/* Frees the process's Graphviz context (graphviz.c creates it on first use
 * and reuses it). Optional, at the end of the process; nothing Graphviz may
 * run afterwards. */
void bpv_graphviz_shutdown(void);

/* Graphviz's messages about one figure (what its agerr printed, lines of
 * "Warning: ..." or "Error: ..."): BPV_OK when there are none or all are
 * known to be harmless, else an error (status 1) quoting the first other
 * one, which fails the figure. */
int bpv_graphviz_messages(const char *log, size_t len, bpv_error **err);

#endif
