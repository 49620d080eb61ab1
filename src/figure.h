/* Text helpers of the figure exporter that need no Graphviz: names as a
 * lecturer writes them, numbers with a true minus sign, HTML escaping.
 * Kept apart from graphviz.c so they can be tested on their own. */
#ifndef BPV_FIGURE_H
#define BPV_FIGURE_H

#include <string.h>

#include "base.h"

/* Appends `name` as it prints in a figure: y_hat -> ŷ, x_bar -> x̄,
 * omega -> ω, Sigma -> Σ, w1 and w_1 -> w₁ (combinations too: y_hat1 -> ŷ₁).
 * Names that fit no rule, and every name when `plain`, are appended as
 * written. Not escaped. */
void bpv_fig_name(bpv_buf *b, const char *name, bool plain);

/* Appends v with `precision` significant digits (clamped to 1..17), no
 * trailing zeros, a true minus sign (U+2212), "×10⁻⁵" for very small or
 * large magnitudes, "0" for both zeros, "NaN", "∞" and "−∞", and "?" for
 * bpv_unknown(). */
void bpv_fig_number(bpv_buf *b, double v, int precision);

/* A number a trace did not record (a forward value PyTorch did not keep):
 * a NaN with a payload of its own, which copies keep and figures print as
 * "?" (trace.c fills such values with it). */
#define BPV_UNKNOWN_BITS 0x7ff80000b9b1ce00ull
static inline double bpv_unknown(void) {
    uint64_t u = BPV_UNKNOWN_BITS;
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}
static inline bool bpv_is_unknown(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u == BPV_UNKNOWN_BITS;
}

/* Appends a formula from the op table (or a snapshot edge) for display:
 * every identifier goes through bpv_fig_name, ASCII '-' becomes '−' and
 * '*' becomes '·'. Not escaped. */
void bpv_fig_formula(bpv_buf *b, const char *formula, bool plain);

/* Appends s escaped for a Graphviz HTML-like label: & < > " ' become
 * entities, control bytes become spaces and invalid UTF-8 bytes become
 * U+FFFD, so the result is always well-formed. */
void bpv_fig_html(bpv_buf *b, const char *s);

/* Appends the superscript form of an integer ("⁻¹²"). */
void bpv_fig_superscript(bpv_buf *b, long long v);

#endif
