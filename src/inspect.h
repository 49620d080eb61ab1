/* Inspecting a failing backward pass on the snapshots of its steps
 * (inspect.c): the gradient check, where a NaN or infinity comes from, and
 * the lines that report them. Above the snapshots, below the runner, which
 * calls it on the steps it takes. */
#ifndef BPV_INSPECT_H
#define BPV_INSPECT_H

#include "model.h"
#include "snapshot.h"

/* Relative error above which analytic and numeric derivatives disagree.
 * Both sides are computed in double precision from the step's float32
 * inputs, so float32 rounding does not enter; on the samples and golden
 * models the largest error of a sound derivative is 1.5e-5, most are below
 * 1e-6 (docs/language.md). */
#define BPV_GRADCHECK_TOL 1e-3
/* At most this many elements are perturbed per edge and per parameter, so
 * a big tensor costs a bounded number of re-evaluations. */
#define BPV_GRADCHECK_MAX_ELEMS 64

/* Marks the non-finite nodes of a snapshot and finds the origin of the
 * first NaN or infinity (nf_* fields). A take only copies: the runner calls
 * this on every snapshot it takes, before anything reads it. A snapshot the
 * take found all finite (s->pristine) keeps its template's marks; one with
 * no node marked becomes pristine. NULL is allowed. */
void bpv_inspect_nonfinite(bpv_snapshot *s);

/* Appends the origin note of a snapshot bpv_inspect_nonfinite marked
 * ("log(−0.4) = NaN") with `precision` significant digits; nothing when
 * everything is finite. s->nf_note holds it at the default 4 digits. */
void bpv_inspect_origin_note(const bpv_snapshot *s, int precision, bpv_buf *b);

/* Runs the gradient check for graph g at its current step (after backward,
 * before the update) and stores the marks in s, the snapshot of that step.
 * Returns false when out of memory. */
bool bpv_gradcheck(const bpv_model *m, const bpv_graph *g, bpv_snapshot *s);
/* The bytes bpv_gradcheck allocates for graph g at most (its double copy of
 * the graph and one param's gradient), for the memory budget. */
size_t bpv_gradcheck_bytes(const bpv_graph *g);

/* Appends one line per distinct gradient-check mismatch found in the
 * model's kept snapshots ("file.bp:L:C: gradient check: the partial of ...
 * is wrong at step N: analytic A vs numeric B"); returns how many. */
long bpv_gradcheck_mismatches(const bpv_model *m, bpv_buf *out);

/* One line, newline-terminated: "file.bp:L:C: warning: step 3 (epoch 0):
 * ..." naming the node and op where the first NaN or infinity of s
 * appears. `what` ends the line ("training goes on"). */
void bpv_nonfinite_message(const bpv_model *m, const bpv_snapshot *s, bool is_error,
                           const char *what, bpv_buf *b);

/* The text name of node i of s as the model writes it: its name, or its
 * expression as written. Appends to b. */
void bpv_inspect_node_text(const bpv_model *m, const bpv_snapshot *s, int i, bpv_buf *b);

/* Appends "file.bp:L:C: " for byte offset `off` of the model's source: the
 * start of every report line. */
void bpv_inspect_loc(const bpv_model *m, size_t off, bpv_buf *b);

#endif
