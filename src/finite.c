/* Finiteness scans of a graph's buffers: the runner asks after each step
 * whether anything is NaN or infinite before it inspects the step
 * (inspect.c), so these belong with the engine, below everything that
 * inspects. */
#include <math.h>
#include <string.h>

#include "graph.h"

/* Whether every float is finite: an exponent of all ones is ±inf or NaN.
 * No early exit, so the loop vectorizes. */
static bool finite32(const float *v, int64_t n) {
    uint32_t bad = 0;
    if (v)
        for (int64_t i = 0; i < n; i++) {
            uint32_t b;
            memcpy(&b, &v[i], sizeof b);
            bad |= (b & 0x7f800000u) == 0x7f800000u;
        }
    return !bad;
}

static bool graph32_finite(const bpv_graph *g) {
    for (int i = 0; i < g->nnodes; i++) {
        const bpv_node *n = &g->nodes[i];
        if (!finite32(n->val32, n->numel) || !finite32(n->grad32, n->numel)) return false;
    }
    return true;
}

int64_t bpv_first_nonfinite(const double *v, int64_t n) {
    if (v)
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(v[i])) return i;
    return -1;
}

bool bpv_graph_finite(const bpv_graph *g) {
    if (g->f32) return graph32_finite(g);
    for (int i = 0; i < g->nnodes; i++) {
        const bpv_node *n = &g->nodes[i];
        if (bpv_first_nonfinite(n->val, n->numel) >= 0 ||
            bpv_first_nonfinite(n->grad, n->numel) >= 0)
            return false;
    }
    return true;
}
