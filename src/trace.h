/* Traces read back (trace.c): a JSON trace (docs/json-trace.md), written by
 * bpviz or recorded from another framework, checked like a model and turned
 * into a model that holds no program, only the trace's steps as snapshots,
 * so every exporter draws them as it draws a run's. */
#ifndef BPV_TRACE_H
#define BPV_TRACE_H

#include "model.h"

/* Whether a file is a trace rather than a model: its name ends in ".json"
 * (any case), or its first byte other than white space is '{' (a model
 * never starts with one). `text` may be NULL (the name alone decides). */
bool bpv_trace_detect(const char *name, const char *text, size_t len);

/* Checks `len` bytes of `text` (copied) and builds the trace model `name`
 * ("trace.json" in messages). NULL with a located error (status 2) when
 * the trace is wrong or beyond a limit, status 1 when out of memory. */
bpv_model *bpv_trace_read(const char *name, const char *text, size_t len, bpv_error **err);

/* Keeps the trace's steps that `spec` selects (bpv_step_set_parse's
 * syntax, "last" the trace's last step, NULL its first step, or
 * "first-nonfinite") and frees the others. False with an error (status 2)
 * when the selection names a step the trace does not hold. */
bool bpv_trace_select(bpv_model *m, const char *spec, bpv_error **err);

#endif
