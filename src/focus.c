/* --focus NAME --depth K: the nodes of a snapshot within K edges of NAME,
 * edges taken in either direction, so that one spot of a big graph can be
 * drawn on its own. */
#include <stdlib.h>
#include <string.h>

#include "focus.h"

int bpv_focus_select(const bpv_snapshot *s, const char *name, int depth, bool *keep,
                     bpv_error **err) {
    int n = s->nnodes, start = -1;
    for (int i = 0; i < n; i++)
        if (s->nodes[i].name && strcmp(s->nodes[i].name, name) == 0) start = i;
    if (start < 0) {
        const char **names = malloc(((size_t)n + 1) * sizeof *names);
        size_t nn = 0;
        for (int i = 0; names && i < n; i++)
            if (s->nodes[i].name) names[nn++] = s->nodes[i].name;
        const char *near = names ? bpv_closest(name, names, nn) : NULL;
        int rc = bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                  "--focus: no node named '%s' in the graph%s%s%s",
                                                  name, near ? " (did you mean '" : "",
                                                  near ? near : "", near ? "'?)" : ""));
        free(names);
        return rc;
    }
    int *dist = malloc(((size_t)n + 1) * sizeof *dist);
    if (!dist) return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    for (int i = 0; i < n; i++) dist[i] = -1;
    dist[start] = 0;
    /* breadth-first by rounds: depth is small, the edge list is scanned
     * once per round */
    for (int d = 0; d < depth; d++) {
        bool grew = false;
        for (int e = 0; e < s->nedges; e++) {
            int a = s->edges[e].from, b = s->edges[e].to;
            if (a < 0 || b < 0 || a >= n || b >= n) continue;
            if (dist[a] == d && dist[b] < 0) dist[b] = d + 1, grew = true;
            else if (dist[b] == d && dist[a] < 0) dist[a] = d + 1, grew = true;
        }
        if (!grew) break;
    }
    for (int i = 0; i < n; i++) keep[i] = dist[i] >= 0;
    free(dist);
    return BPV_OK;
}
