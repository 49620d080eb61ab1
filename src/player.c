/* The HTML step player: one self-contained page holding the figure laid out
 * once (graphviz.c, bpv_export_figure_steps), the texts of every chosen step
 * as JSON, and the page itself (src/player/, compiled in by
 * cmake/embed.cmake). The page swaps the texts in place; it needs nothing
 * from the network. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "figure.h"
#include "heatmap.h"

/* the files of src/player/, NUL-terminated (player_assets.c, generated) */
extern const char bpv_asset_player_html[], bpv_asset_player_css[], bpv_asset_player_js[];

static const char *const theme_names[] = {"tutorial", "print", "colorblind"};

static bool starts(const char *p, const char *end, const char *s) {
    size_t n = strlen(s);
    return (size_t)(end - p) >= n && memcmp(p, s, n) == 0;
}

/* ---- the page's data ---------------------------------------------------------
 *
 * Every text the page shows goes into one table of distinct strings, and
 * the per-step arrays hold indices into it: parameter values recur in the
 * figure, the table and the next step, so this halves the file. */
typedef struct strtab {
    bpv_buf json;      /* the table as JSON, without its brackets */
    size_t count;
    char **keys;       /* open addressing; index in `idx` */
    uint64_t *hash;    /* of each key, compared before the key */
    size_t *idx, cap;
    bool oom;
} strtab;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static bool strtab_grow(strtab *t) {
    size_t cap = t->cap ? t->cap * 2 : 1024;
    char **keys = calloc(cap, sizeof *keys);
    size_t *idx = calloc(cap, sizeof *idx);
    uint64_t *hash = calloc(cap, sizeof *hash);
    if (!keys || !idx || !hash) {
        free(keys);
        free(idx);
        free(hash);
        return false;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->keys[i]) continue;
        size_t h = (size_t)t->hash[i] & (cap - 1);
        while (keys[h]) h = (h + 1) & (cap - 1);
        keys[h] = t->keys[i];
        idx[h] = t->idx[i];
        hash[h] = t->hash[i];
    }
    free(t->keys);
    free(t->idx);
    free(t->hash);
    t->keys = keys;
    t->idx = idx;
    t->hash = hash;
    t->cap = cap;
    return true;
}

/* Appends the index of `s` to b, adding it to the table if new. */
static void put_str(bpv_buf *b, strtab *t, const char *s) {
    if (t->count * 2 >= t->cap && !strtab_grow(t)) t->oom = true;
    if (t->oom) return;
    uint64_t hs = hash_str(s);
    size_t h = (size_t)hs & (t->cap - 1);
    while (t->keys[h] && (t->hash[h] != hs || strcmp(t->keys[h], s) != 0)) h = (h + 1) & (t->cap - 1);
    if (!t->keys[h]) {
        t->hash[h] = hs;
        if (!(t->keys[h] = strdup(s))) {
            t->oom = true;
            return;
        }
        t->idx[h] = t->count++;
        if (t->json.len) bpv_buf_putc(&t->json, ',');
        bpv_json_string(&t->json, s);
    }
    bpv_buf_printf(b, "%zu", t->idx[h]);
}

static void strtab_free(strtab *t) {
    for (size_t i = 0; i < t->cap; i++) free(t->keys[i]);
    free(t->keys);
    free(t->idx);
    free(t->hash);
    bpv_buf_free(&t->json);
}

static void put_number_text(bpv_buf *b, strtab *t, double v, int precision) {
    bpv_buf s;
    bpv_buf_init(&s);
    bpv_fig_number(&s, v, precision);
    put_str(b, t, s.data);
    bpv_buf_free(&s);
}

/* A parameter's value or gradient for the table: a number, a short list,
 * or the first few elements of a big tensor. */
static void put_tensor_text(bpv_buf *b, strtab *t, const double *v, int64_t numel,
                            int rank, const int64_t *dims, int precision) {
    bpv_buf s;
    bpv_buf_init(&s);
    if (!v) {
        bpv_buf_puts(&s, "—");
    } else if (numel == 1) {
        bpv_fig_number(&s, v[0], precision);
    } else if (rank == 2 && dims[0] <= 6 && dims[1] <= 6 && dims[0] * dims[1] == numel) {
        /* a small matrix: rows by '\n', entries by '\t' (player.js draws it) */
        for (int64_t i = 0; i < numel; i++) {
            if (i) bpv_buf_putc(&s, i % dims[1] ? '\t' : '\n');
            bpv_fig_number(&s, v[i], precision);
        }
    } else {
        int64_t shown = numel <= 6 ? numel : 4;
        bpv_buf_putc(&s, '[');
        for (int64_t i = 0; i < shown; i++) {
            if (i) bpv_buf_puts(&s, ", ");
            bpv_fig_number(&s, v[i], precision);
        }
        if (shown < numel) bpv_buf_printf(&s, ", … (%lld values)", (long long)numel);
        bpv_buf_putc(&s, ']');
    }
    put_str(b, t, s.data);
    bpv_buf_free(&s);
}

/* "sample 3", "samples 0–3", "batch of 32 samples": numbered from 0, as
 * the figure's caption and the JSON trace number them */
static void put_samples(bpv_buf *b, strtab *t, const bpv_snapshot *s) {
    bpv_buf d;
    bpv_buf_init(&d);
    if (s->nsamples == 1) {
        bpv_buf_printf(&d, "sample %lld", (long long)s->samples[0]);
    } else if (s->nsamples > 1) {
        bool run = true;
        for (int64_t k = 1; k < s->nsamples; k++)
            run = run && s->samples[k] == s->samples[k - 1] + 1;
        if (run)
            bpv_buf_printf(&d, "samples %lld–%lld", (long long)s->samples[0],
                           (long long)s->samples[s->nsamples - 1]);
        else
            bpv_buf_printf(&d, "batch of %lld samples", (long long)s->nsamples);
    }
    put_str(b, t, d.data ? d.data : "");
    bpv_buf_free(&d);
}

/* Which varying texts the page carries: map[K] is the column of text K, or
 * -1 when it is the same at every step (it stays as laid out). Texts that
 * agree at every step (a gradient passed along a sum) share a column.
 * Returns the number of columns. */
static long map_columns(const bpv_fig_steps *fs, long *map, size_t *first) {
    size_t nv = fs->nvary, n = fs->nsteps;
    uint64_t *h = calloc(nv + 1, sizeof *h);
    long cols = 0;
    for (size_t k = 0; k < nv; k++) {
        bool same = true;
        uint64_t hk = 0;
        for (size_t i = 0; i < n; i++) {
            const char *t = fs->text[i * nv + k];
            same = same && strcmp(t, fs->text[k]) == 0;
            hk = (hk ^ hash_str(t)) * 1099511628211u;
        }
        map[k] = -1;
        if (same) continue;
        if (h) h[k] = hk;
        for (size_t j = 0; j < k && h && map[k] < 0; j++) {
            if (map[j] < 0 || h[j] != hk) continue;
            size_t i = 0;
            while (i < n && strcmp(fs->text[i * nv + j], fs->text[i * nv + k]) == 0) i++;
            if (i == n) map[k] = map[j];
        }
        if (map[k] < 0) {
            first[cols] = k;
            map[k] = cols++;
        }
    }
    free(h);
    return cols;
}

/* Graphviz's SVG from its <svg> element on, without comments and <title>s
 * (hover tooltips like "n3" mean nothing to a class), each varying text
 * turned into <tspan data-k="COLUMN">widest value</tspan>. */
static void put_svg(bpv_buf *b, const char *svg, size_t len, const long *map, size_t nvary) {
    const char *p = strstr(svg, "<svg"), *end = svg + len;
    int heat_open = 0; /* heatmap groups whose </a> is still to come */
    if (!p) p = end;
    while (p < end) {
        if (starts(p, end, "<g id=\"a_" BPV_HEAT_ANCHOR)) {
            /* <g id="a_bpvheatK"><a xlink:href="#" ...> around a heatmap's
             * cells: <g data-heat="COLUMN"><g>, no link */
            char *num_end;
            unsigned long k = strtoul(p + strlen("<g id=\"a_" BPV_HEAT_ANCHOR), &num_end, 10);
            const char *a = strstr(num_end, "<a ");
            const char *gt = a ? strchr(a, '>') : NULL;
            if (!gt) gt = end - 1;
            if (k < nvary && map[k] >= 0) bpv_buf_printf(b, "<g data-heat=\"%ld\"><g>", map[k]);
            else bpv_buf_puts(b, "<g><g>");
            heat_open++;
            p = gt + 1;
        } else if (heat_open && starts(p, end, "</a>")) {
            bpv_buf_puts(b, "</g>");
            heat_open--;
            p += 4;
        } else if (starts(p, end, "<!--")) {
            const char *q = strstr(p, "-->");
            p = q ? q + 3 : end;
            if (p < end && *p == '\n') p++;
        } else if (starts(p, end, "<title>")) {
            const char *q = strstr(p, "</title>");
            p = q ? q + 8 : end;
            if (p < end && *p == '\n') p++;
        } else if (starts(p, end, BPV_VARY_OPEN)) {
            size_t k = 0;
            p += strlen(BPV_VARY_OPEN);
            for (;;) {
                if (starts(p, end, BPV_VARY_ZERO)) {
                    k = k * 2;
                    p += strlen(BPV_VARY_ZERO);
                } else if (starts(p, end, BPV_VARY_ONE)) {
                    k = k * 2 + 1;
                    p += strlen(BPV_VARY_ONE);
                } else {
                    break;
                }
            }
            if (starts(p, end, BPV_VARY_MID)) p += strlen(BPV_VARY_MID);
            const char *q = strstr(p, BPV_VARY_CLOSE);
            if (!q) q = end;
            if (k < nvary && map[k] >= 0) bpv_buf_printf(b, "<tspan data-k=\"%ld\">", map[k]);
            bpv_buf_add(b, p, (size_t)(q - p));
            if (k < nvary && map[k] >= 0) bpv_buf_puts(b, "</tspan>");
            p = q < end ? q + strlen(BPV_VARY_CLOSE) : end;
        } else {
            const char *q = p + 1;
            while (q < end && *q != '<' && (unsigned char)*q != 0xe2) q++;
            bpv_buf_add(b, p, (size_t)(q - p));
            p = q;
        }
    }
}

/* The page's data: what the controls, the loss plot and the table show at
 * each step, and the figure's varying texts, as indices into "strings". */
static void put_data(bpv_buf *b, const bpv_snapshot *const *snaps, size_t n,
                     const bpv_figure_options *opt, const bpv_fig_steps *fs, const size_t *first,
                     long cols, strtab *st) {
    const bpv_snapshot *s0 = snaps[0];
    int prec = opt->precision;
    bpv_buf t;
    bpv_buf_init(&t);
    bpv_buf_puts(b, "{\"model\":");
    bpv_json_string(b, s0->model ? s0->model : "");
    /* the objective's name as the figures write it */
    const char *obj = s0->objective >= 0 && s0->objective < s0->nnodes
                          ? s0->nodes[s0->objective].name
                          : NULL;
    bpv_fig_name(&t, obj ? obj : "L", opt->plain_names);
    bpv_buf_puts(b, ",\n\"lossName\":");
    bpv_json_string(b, t.data);
    bpv_buf_puts(b, ",\n\"params\":[");
    for (int k = 0; k < s0->nparams; k++) {
        t.len = 0;
        bpv_fig_name(&t, s0->params[k].name, opt->plain_names);
        bpv_buf_puts(b, k ? "," : "");
        bpv_json_string(b, t.data);
    }
    bpv_buf_free(&t);
    bpv_buf_puts(b, "],\n\"step\":[");
    for (size_t i = 0; i < n; i++) bpv_buf_printf(b, "%s%ld", i ? "," : "", snaps[i]->step);
    bpv_buf_puts(b, "],\n\"epoch\":[");
    for (size_t i = 0; i < n; i++) bpv_buf_printf(b, "%s%ld", i ? "," : "", snaps[i]->epoch);
    bpv_buf_puts(b, "],\n\"samples\":[");
    for (size_t i = 0; i < n; i++) {
        bpv_buf_puts(b, i ? "," : "");
        put_samples(b, st, snaps[i]);
    }
    /* raw losses for the plot (null: not finite), formatted ones for text */
    bpv_buf_puts(b, "],\n\"loss\":[");
    for (size_t i = 0; i < n; i++) {
        bpv_buf_puts(b, i ? "," : "");
        if (isfinite(snaps[i]->loss)) bpv_fmt_repr(b, snaps[i]->loss);
        else bpv_buf_puts(b, "null");
    }
    bpv_buf_puts(b, "],\n\"lossText\":[");
    for (size_t i = 0; i < n; i++) {
        bpv_buf_puts(b, i ? "," : "");
        put_number_text(b, st, snaps[i]->loss, prec);
    }
    /* per step and parameter: value, gradient, value after the update */
    bpv_buf_puts(b, "],\n\"pv\":[");
    for (size_t i = 0; i < n; i++) {
        const bpv_snapshot *s = snaps[i];
        bpv_buf_puts(b, i ? ",\n[" : "\n[");
        for (int k = 0; k < s->nparams; k++) {
            const bpv_snap_param *q = &s->params[k];
            const bpv_snap_node *nd = q->node >= 0 && q->node < s->nnodes ? &s->nodes[q->node]
                                                                            : NULL;
            bpv_buf_puts(b, k ? "," : "");
            put_tensor_text(b, st, nd ? nd->value : NULL, q->numel, q->shape.rank, q->shape.dim,
                            prec);
            bpv_buf_putc(b, ',');
            put_tensor_text(b, st, nd ? nd->grad : NULL, q->numel, q->shape.rank, q->shape.dim,
                            prec);
            bpv_buf_putc(b, ',');
            put_tensor_text(b, st, q->after, q->numel, q->shape.rank, q->shape.dim, prec);
        }
        bpv_buf_putc(b, ']');
    }
    /* the heatmaps' colours by level (heatmap.h), if the figure has any */
    if (strstr(fs->svg, "a_" BPV_HEAT_ANCHOR)) {
        bpv_buf_puts(b, "],\n\"heatColors\":[");
        for (int sc = 0; sc < 2; sc++) {
            bpv_buf_puts(b, sc ? "],[" : "[");
            for (int l = 0; l <= BPV_HEAT_NAN; l++) {
                char col[8];
                bpv_heat_level_color(sc ? BPV_HEAT_GRAD : BPV_HEAT_VALUE, l, col);
                bpv_buf_printf(b, "%s\"%s\"", l ? "," : "", col);
            }
        }
        bpv_buf_putc(b, ']');
    }
    bpv_buf_puts(b, "],\n\"text\":[");
    for (size_t i = 0; i < n; i++) {
        bpv_buf_puts(b, i ? ",\n[" : "\n[");
        for (long c = 0; c < cols; c++) {
            bpv_buf_puts(b, c ? "," : "");
            put_str(b, st, fs->text[i * fs->nvary + first[c]]);
        }
        bpv_buf_putc(b, ']');
    }
    bpv_buf_puts(b, "],\n\"strings\":[");
    bpv_buf_add(b, st->json.data ? st->json.data : "", st->json.len);
    bpv_buf_puts(b, "]}");
}

/* The figure's shape in the page: about the room left under the controls
 * of a 1280x720 window (1214x560 pixels). A long chain laid out for it
 * (--fit) keeps its text readable once fitted to the window. */
#define PLAYER_FIT_W 2.0
#define PLAYER_FIT_H 1.0

int bpv_export_player(const bpv_snapshot *const *snaps, size_t n, const bpv_figure_options *opt,
                      bpv_buf *out, bpv_error **err) {
    bpv_fig_steps fs;
    bpv_figure_options fitted = *opt;
    if (!(fitted.fit_w > 0 && fitted.fit_h > 0)) {
        fitted.fit_w = PLAYER_FIT_W;
        fitted.fit_h = PLAYER_FIT_H;
        fitted.fit_keep_rankdir = fitted.rankdir_tb; /* a --rankdir TB stays */
    }
    int rc = bpv_export_figure_steps(snaps, n, &fitted, &fs, err);
    if (rc != BPV_OK) return rc;
    long *map = malloc((fs.nvary + 1) * sizeof *map);
    size_t *first = malloc((fs.nvary + 1) * sizeof *first);
    if (!map || !first) {
        free(map);
        free(first);
        bpv_fig_steps_free(&fs);
        return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    }
    long cols = map_columns(&fs, map, first);
    strtab st = {.oom = false};
    bpv_buf_init(&st.json);
    unsigned theme = (unsigned)opt->theme < 3 ? (unsigned)opt->theme : 0;
    /* the template's {{NAME}}s, filled in order of appearance */
    for (const char *p = bpv_asset_player_html; *p;) {
        const char *open = strstr(p, "{{");
        const char *close = open ? strstr(open, "}}") : NULL;
        if (!close) {
            bpv_buf_puts(out, p);
            break;
        }
        bpv_buf_add(out, p, (size_t)(open - p));
        size_t len = (size_t)(close - open - 2);
        const char *name = open + 2;
#define IS(s) (len == strlen(s) && memcmp(name, s, len) == 0)
        if (IS("TITLE")) {
            const char *m = snaps[0]->model ? snaps[0]->model : "model";
            const char *slash = strrchr(m, '/');
            bpv_fig_html(out, slash ? slash + 1 : m);
        } else if (IS("THEME")) {
            bpv_buf_puts(out, theme_names[theme]);
        } else if (IS("STYLE")) {
            bpv_buf_puts(out, bpv_asset_player_css);
        } else if (IS("SCRIPT")) {
            bpv_buf_puts(out, bpv_asset_player_js);
        } else if (IS("FIGURE")) {
            put_svg(out, fs.svg, fs.svg_len, map, fs.nvary);
        } else if (IS("DATA")) {
            put_data(out, snaps, n, opt, &fs, first, cols, &st);
        } else if (IS("VERSION")) {
            bpv_buf_puts(out, bpv_version());
        } else {
            bpv_buf_add(out, open, len + 4); /* not ours: kept as written */
        }
#undef IS
        p = close + 2;
    }
    bpv_fig_steps_free(&fs);
    free(map);
    free(first);
    bool oom = st.oom;
    strtab_free(&st);
    if (oom) return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    return BPV_OK;
}
