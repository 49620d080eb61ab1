/* Tensors drawn as heatmaps (--tensors heatmap): grids of coloured cells
 * as a Graphviz HTML-like <TABLE>, one <TD BGCOLOR> per cell, so the
 * colours are exact in every renderer (SVG, PNG, PDF) and the DOT carries
 * them too; no external image files. No Graphviz calls: graphviz.c puts
 * the table in a label. */
#ifndef BPV_HEATMAP_H
#define BPV_HEATMAP_H

#include "figure.h"
#include "snapshot.h"

/* Forward values on ColorBrewer's RdBu (blue negative, red positive),
 * gradients on PuOr (purple negative, orange positive): diverging scales
 * that stay distinguishable with the common colour-vision deficiencies and
 * in greyscale (dark at both ends, light at 0). */
typedef enum bpv_heat_scale { BPV_HEAT_VALUE, BPV_HEAT_GRAD } bpv_heat_scale;

/* Limits that keep a figure's labels small next to its layout time: at
 * most HEAT_GRIDS grids per tensor (channels, kernels), grids of at most
 * HEAT_SIDE cells a side and HEAT_CELLS cells per tensor; larger grids are
 * shown in blocks (each block the element of largest magnitude). */
#define BPV_HEAT_GRIDS 10
#define BPV_HEAT_SIDE 28
#define BPV_HEAT_CELLS 1600

/* A cell's colour is one of BPV_HEAT_LEVELS steps of its scale (from −m
 * to m; the middle one is 0) or grey for NaN: few enough that the player
 * sends one character a cell per step (bpv_heat_codes), many enough that
 * neighbouring steps look continuous. */
#define BPV_HEAT_LEVELS 91
#define BPV_HEAT_NAN BPV_HEAT_LEVELS
/* the player's character of a level: '!' + level */
#define BPV_HEAT_CODE0 '!'

/* The level of v on the scale symmetric about 0 with half-range m (> 0;
 * m == 0 gives the middle level). NaN gives BPV_HEAT_NAN; ±inf the ends. */
int bpv_heat_level(double v, double m);

/* "#rrggbb" of a level (0 .. BPV_HEAT_NAN) of a scale. */
void bpv_heat_level_color(bpv_heat_scale sc, int level, char out[8]);

/* "#rrggbb" of v on the scale symmetric about 0 with half-range m:
 * bpv_heat_level_color(sc, bpv_heat_level(v, m)). */
void bpv_heat_color(bpv_heat_scale sc, double v, double m, char out[8]);

/* How a tensor of shape `sh` splits into grids: `skip` leading elements
 * (a batch's later samples are skipped: the first sample is shown), ngrid
 * grids of rows x cols elements each (of which nshow are drawn), each drawn
 * in blocks of fr x fc elements. */
typedef struct bpv_heat_plan {
    bool batch;          /* dim 0 is the batch: the first sample is drawn */
    int64_t nsamples;    /* its size */
    int64_t ngrid, nshow;
    int64_t rows, cols;
    int64_t fr, fc;      /* block size (1 x 1: every element) */
} bpv_heat_plan;

/* `batch`: the tensor's first dimension is the batch's (a data or op node
 * of rank 3 or more whose first dimension is the step's batch size). */
void bpv_heat_plan_make(const bpv_shape *sh, bool batch, bpv_heat_plan *p);

/* The step player (player.c) lays a heatmap out once and recolours its
 * cells at every step. For bpv_heat_table: `number` writes the range's
 * two numbers (a text the player swaps); `anchor`, when not NULL, becomes
 * the ID of the heatmap's table (with HREF="#", without which Graphviz
 * writes no ID into the SVG), so the page finds its cells: the first
 * polygons of that group with a transparent stroke, in the order of
 * bpv_heat_codes. */
typedef struct bpv_heat_step {
    void (*number)(void *ctx, bpv_buf *b, double v);
    void *ctx;
    const char *anchor;
} bpv_heat_step;

/* Appends the heatmap of v as one HTML <TABLE>: the grids (up to five a
 * row), then a line with the scale's range (symmetric: −m … m, m the
 * largest magnitude of the whole tensor) in `text_color`, and a note of what
 * was left out or merged. `precision`: significant digits of the range.
 * `step`: the player's hooks, or NULL for a figure of one step. */
void bpv_heat_table(bpv_buf *b, const double *v, const bpv_shape *sh, bool batch,
                    bpv_heat_scale sc, const char *text_color, int precision,
                    const bpv_heat_step *step);

/* Appends the cells' colours of the heatmap of v: 'v' (value scale) or
 * 'g' (gradient scale), then one character per drawn cell in the order
 * bpv_heat_table writes them, BPV_HEAT_CODE0 + its level. */
void bpv_heat_codes(bpv_buf *b, const double *v, const bpv_shape *sh, bool batch,
                    bpv_heat_scale sc);

#endif
