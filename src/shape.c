/* Shapes: element counts, equality, text, PyTorch broadcasting. */
#include <stdio.h>

#include "graph.h"

int64_t bpv_shape_numel(const bpv_shape *s) {
    int64_t n = 1;
    for (int d = 0; d < s->rank; d++) n *= s->dim[d];
    return n;
}

const char *bpv_shape_str(const bpv_shape *s, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < s->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)s->dim[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

bool bpv_shape_eq(const bpv_shape *a, const bpv_shape *b) {
    if (a->rank != b->rank) return false;
    for (int d = 0; d < a->rank; d++)
        if (a->dim[d] != b->dim[d]) return false;
    return true;
}

void bpv_shape_fmt(bpv_buf *b, const bpv_shape *s) {
    bpv_buf_putc(b, '[');
    for (int d = 0; d < s->rank; d++)
        bpv_buf_printf(b, d ? ", %lld" : "%lld", (long long)s->dim[d]);
    bpv_buf_putc(b, ']');
}

/* Dimensions align from the right; each pair must be equal or contain a 1. */
bool bpv_shape_broadcast(const bpv_shape *a, const bpv_shape *b, bpv_shape *out) {
    bpv_shape r;
    r.rank = a->rank > b->rank ? a->rank : b->rank;
    if (r.rank > BPV_MAX_RANK || a->rank < 0 || b->rank < 0) return false;
    for (int d = 0; d < r.rank; d++) {
        int da = d - (r.rank - a->rank), db = d - (r.rank - b->rank);
        int64_t x = da >= 0 ? a->dim[da] : 1, y = db >= 0 ? b->dim[db] : 1;
        if (x != y && x != 1 && y != 1) return false;
        r.dim[d] = x == 1 ? y : x;
    }
    for (int d = r.rank; d < BPV_MAX_RANK; d++) r.dim[d] = 0;
    *out = r;
    return true;
}
