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

#endif
