/* The scalar fast path (scalar.c): a training graph whose nodes are all
 * scalars is compiled once into two flat instruction arrays, forward and
 * backward, each run as one tight switch loop with every operand address
 * resolved up front: no shapes, no broadcasting, no node lookups per step.
 * Each instruction runs its op's element functions (op_elem.h), the very
 * ones the engine runs over tensors, so results are bit for bit those of
 * bpv_graph_forward/backward (values, grads and every edge's chained
 * partial, which snapshots read). */
#ifndef BPV_SCALAR_H
#define BPV_SCALAR_H

#include "graph.h"

typedef struct bpv_scalar_plan bpv_scalar_plan;

/* NULL when the graph has a non-scalar node or an op the plan does not
 * handle (the caller then runs the general engine), or out of memory.
 * The plan points into g's buffers and lives in the arena. */
bpv_scalar_plan *bpv_scalar_build(bpv_arena *a, bpv_graph *g);
/* bpv_graph_forward(g) for the plan's graph. */
void bpv_scalar_forward(const bpv_scalar_plan *t);
/* bpv_graph_backward(g): falls back to it when some param grad is not zero
 * (zero_grad=false), where torch's per-param gathering order matters. */
void bpv_scalar_backward(const bpv_scalar_plan *t);

#endif
