/* Tensors as heatmaps; see heatmap.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "heatmap.h"

/* ColorBrewer (Cynthia Brewer, colorbrewer2.org) 11-class diverging
 * schemes, from the negative end to the positive end. */
static const unsigned char rdbu[11][3] = {
    {0x05, 0x30, 0x61}, {0x21, 0x66, 0xac}, {0x43, 0x93, 0xc3}, {0x92, 0xc5, 0xde},
    {0xd1, 0xe5, 0xf0}, {0xf7, 0xf7, 0xf7}, {0xfd, 0xdb, 0xc7}, {0xf4, 0xa5, 0x82},
    {0xd6, 0x60, 0x4d}, {0xb2, 0x18, 0x2b}, {0x67, 0x00, 0x1f}};
static const unsigned char puor[11][3] = {
    {0x2d, 0x00, 0x4b}, {0x54, 0x27, 0x88}, {0x80, 0x73, 0xac}, {0xb2, 0xab, 0xd2},
    {0xd8, 0xda, 0xeb}, {0xf7, 0xf7, 0xf7}, {0xfe, 0xe0, 0xb6}, {0xfd, 0xb8, 0x63},
    {0xe0, 0x82, 0x14}, {0xb3, 0x58, 0x06}, {0x7f, 0x3b, 0x08}};

int bpv_heat_level(double v, double m) {
    if (isnan(v)) return BPV_HEAT_NAN;
    double t = m > 0 && isfinite(m) ? v / m : 0; /* -1 .. 1 */
    if (isinf(v)) t = v > 0 ? 1 : -1;
    t = t < -1 ? -1 : t > 1 ? 1 : t;
    return (int)lround((t + 1) * ((BPV_HEAT_LEVELS - 1) / 2));
}

void bpv_heat_level_color(bpv_heat_scale sc, int level, char out[8]) {
    if (level < 0 || level >= BPV_HEAT_LEVELS) {
        snprintf(out, 8, "#%02x%02x%02x", 0x99, 0x99, 0x99);
        return;
    }
    double x = level * 10.0 / (BPV_HEAT_LEVELS - 1); /* 0 .. 10 */
    int k = (int)floor(x);
    if (k >= 10) k = 9;
    double u = x - k;
    const unsigned char(*s)[3] = sc == BPV_HEAT_GRAD ? puor : rdbu;
    int rgb[3];
    for (int c = 0; c < 3; c++) rgb[c] = (int)lround(s[k][c] * (1 - u) + s[k + 1][c] * u);
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

void bpv_heat_color(bpv_heat_scale sc, double v, double m, char out[8]) {
    bpv_heat_level_color(sc, bpv_heat_level(v, m), out);
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void bpv_heat_plan_make(const bpv_shape *sh, bool batch, bpv_heat_plan *p) {
    memset(p, 0, sizeof *p);
    int64_t d[BPV_MAX_RANK + 1] = {0};
    int r = sh->rank, at = 0;
    p->batch = batch && r >= 3;
    if (p->batch) {
        p->nsamples = sh->dim[0];
        at = 1;
    }
    int n = r - at; /* dims of what is drawn */
    for (int k = 0; k < n; k++) d[k] = sh->dim[at + k];
    p->ngrid = 1;
    if (n <= 0) {
        p->rows = p->cols = 1;
    } else if (n == 1) {
        p->rows = 1;
        p->cols = d[0];
    } else {
        for (int k = 0; k < n - 2; k++) p->ngrid *= d[k];
        p->rows = d[n - 2];
        p->cols = d[n - 1];
    }
    p->nshow = p->ngrid < BPV_HEAT_GRIDS ? p->ngrid : BPV_HEAT_GRIDS;
    p->fr = ceil_div(p->rows, BPV_HEAT_SIDE);
    p->fc = ceil_div(p->cols, BPV_HEAT_SIDE);
    if (p->fr < 1) p->fr = 1;
    if (p->fc < 1) p->fc = 1;
    /* then the same factor both ways until the cells fit the budget */
    while (p->nshow * ceil_div(p->rows, p->fr) * ceil_div(p->cols, p->fc) > BPV_HEAT_CELLS &&
           (p->fr < p->rows || p->fc < p->cols)) {
        if (p->fr < p->rows) p->fr++;
        if (p->fc < p->cols) p->fc++;
    }
}

/* The element of largest magnitude of a block (NaN wins: it must show). */
static double block_value(const double *g, int64_t cols, int64_t r0, int64_t r1, int64_t c0,
                          int64_t c1) {
    double best = g[r0 * cols + c0];
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = c0; c < c1; c++) {
            double x = g[r * cols + c];
            if (isnan(x)) return x;
            if (fabs(x) > fabs(best)) best = x;
        }
    return best;
}

static void font_open(bpv_buf *b, const char *color) {
    bpv_buf_printf(b, "<FONT POINT-SIZE=\"9\" COLOR=\"%s\">", color);
}

/* The scale's half-range: the largest finite magnitude of everything
 * drawn (the first sample of a batch, every grid of it, hidden ones too). */
static double scale_of(const double *v, const bpv_heat_plan *p) {
    int64_t drawn = p->ngrid * p->rows * p->cols;
    double m = 0;
    for (int64_t i = 0; i < drawn; i++)
        if (isfinite(v[i]) && fabs(v[i]) > m) m = fabs(v[i]);
    return m;
}

/* The level of cell (r, c) of grid g, as drawn. */
static int cell_level(const double *v, const bpv_heat_plan *p, int64_t g, int64_t r, int64_t c,
                      double m) {
    int64_t r0 = r * p->fr, c0 = c * p->fc;
    int64_t r1 = r0 + p->fr < p->rows ? r0 + p->fr : p->rows;
    int64_t c1 = c0 + p->fc < p->cols ? c0 + p->fc : p->cols;
    return bpv_heat_level(block_value(v + g * p->rows * p->cols, p->cols, r0, r1, c0, c1), m);
}

void bpv_heat_codes(bpv_buf *b, const double *v, const bpv_shape *sh, bool batch,
                    bpv_heat_scale sc) {
    bpv_heat_plan p;
    bpv_heat_plan_make(sh, batch, &p);
    double m = scale_of(v, &p);
    int64_t rows = ceil_div(p.rows, p.fr), cols = ceil_div(p.cols, p.fc);
    bpv_buf_putc(b, sc == BPV_HEAT_GRAD ? 'g' : 'v');
    for (int64_t g = 0; g < p.nshow; g++)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                bpv_buf_putc(b, (char)(BPV_HEAT_CODE0 + cell_level(v, &p, g, r, c, m)));
}

static void range_number(const bpv_heat_step *step, bpv_buf *b, double v, int precision) {
    if (step && step->number) step->number(step->ctx, b, v);
    else bpv_fig_number(b, v, precision);
}

void bpv_heat_table(bpv_buf *b, const double *v, const bpv_shape *sh, bool batch,
                    bpv_heat_scale sc, const char *text_color, int precision,
                    const bpv_heat_step *step) {
    bpv_heat_plan p;
    bpv_heat_plan_make(sh, batch, &p);
    double m = scale_of(v, &p);
    int64_t rows = ceil_div(p.rows, p.fr), cols = ceil_div(p.cols, p.fc);
    int64_t side = rows > cols ? rows : cols;
    int cell = (int)(84 / (side > 0 ? side : 1));
    cell = cell < 3 ? 3 : cell > 12 ? 12 : cell;
    int across = p.nshow < 5 ? (int)p.nshow : 5;
    char col[8];

    bpv_buf_puts(b, "<TABLE BORDER=\"0\" CELLBORDER=\"0\" CELLSPACING=\"3\" CELLPADDING=\"0\"");
    if (step && step->anchor) bpv_buf_printf(b, " ID=\"%s\" HREF=\"#\"", step->anchor);
    bpv_buf_putc(b, '>');
    for (int64_t g = 0; g < p.nshow; g++) {
        if (g % across == 0) bpv_buf_puts(b, g ? "</TR><TR>" : "<TR>");
        /* a fixed size: a wider row elsewhere must not stretch the cells */
        bpv_buf_printf(b, "<TD VALIGN=\"TOP\" ALIGN=\"LEFT\"><TABLE BORDER=\"1\" COLOR=\"#9a9a9a\" "
                          "CELLBORDER=\"0\" CELLSPACING=\"0\" CELLPADDING=\"0\" FIXEDSIZE=\"TRUE\" "
                          "WIDTH=\"%lld\" HEIGHT=\"%lld\">",
                       (long long)(cols * cell + 2), (long long)(rows * cell + 2));
        for (int64_t r = 0; r < rows; r++) {
            bpv_buf_puts(b, "<TR>");
            for (int64_t c = 0; c < cols; c++) {
                bpv_heat_level_color(sc, cell_level(v, &p, g, r, c, m), col);
                bpv_buf_printf(b, "<TD BGCOLOR=\"%s\" WIDTH=\"%d\" HEIGHT=\"%d\" FIXEDSIZE=\"TRUE\"></TD>",
                               col, cell, cell);
            }
            bpv_buf_puts(b, "</TR>");
        }
        bpv_buf_puts(b, "</TABLE></TD>");
    }
    if (p.nshow) bpv_buf_puts(b, "</TR>");

    /* the range: −m [colour bar] m */
    bpv_buf_printf(b, "<TR><TD COLSPAN=\"%d\" ALIGN=\"LEFT\"><TABLE BORDER=\"0\" CELLBORDER=\"0\" "
                      "CELLSPACING=\"0\" CELLPADDING=\"0\"><TR><TD>",
                   across > 0 ? across : 1);
    font_open(b, text_color);
    range_number(step, b, -m, precision);
    bpv_buf_puts(b, "&#160;</FONT></TD>");
    for (int k = -4; k <= 4; k++) {
        bpv_heat_color(sc, k / 4.0, 1, col);
        bpv_buf_printf(b, "<TD BGCOLOR=\"%s\" WIDTH=\"7\" HEIGHT=\"8\" FIXEDSIZE=\"TRUE\"></TD>", col);
    }
    bpv_buf_puts(b, "<TD>");
    font_open(b, text_color);
    bpv_buf_puts(b, "&#160;");
    range_number(step, b, m, precision);
    bpv_buf_puts(b, "</FONT></TD></TR></TABLE></TD></TR>");

    /* what is not drawn one element a cell */
    bpv_buf note;
    bpv_buf_init(&note);
    if (p.batch) bpv_buf_printf(&note, "sample 1 of %lld", (long long)p.nsamples);
    if (p.nshow < p.ngrid)
        bpv_buf_printf(&note, "%sfirst %lld of %lld grids", note.len ? " · " : "",
                       (long long)p.nshow, (long long)p.ngrid);
    if (p.fr > 1 || p.fc > 1)
        bpv_buf_printf(&note, "%s%lld×%lld shown in %lld×%lld blocks (largest |x|)",
                       note.len ? " · " : "", (long long)p.rows, (long long)p.cols,
                       (long long)p.fr, (long long)p.fc);
    if (note.len) {
        bpv_buf_printf(b, "<TR><TD COLSPAN=\"%d\" ALIGN=\"LEFT\">", across > 0 ? across : 1);
        bpv_buf_printf(b, "<FONT POINT-SIZE=\"8\" COLOR=\"%s\">", text_color);
        bpv_buf_puts(b, note.data);
        bpv_buf_puts(b, "</FONT></TD></TR>");
    }
    bpv_buf_free(&note);
    bpv_buf_puts(b, "</TABLE>");
}
