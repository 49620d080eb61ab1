/* The scalar fast path (tape.c): a training graph whose nodes are all
 * scalars is compiled once into two flat instruction arrays, forward and
 * backward, each run as one tight switch loop with every operand address
 * resolved up front: no shapes, no broadcasting, no node lookups per step.
 * The formulas and their float32 rounding are engine.c's, element for
 * element, so results are bit for bit those of bpv_graph_forward/backward
 * (values, grads and every edge's chained partial, which snapshots read). */
#ifndef BPV_TAPE_H
#define BPV_TAPE_H

#include "graph.h"

typedef struct bpv_stape bpv_stape;

/* NULL when the graph has a non-scalar node or an op the tape does not
 * handle (the caller then runs the general engine), or out of memory.
 * The tape points into g's buffers and lives in the arena. */
bpv_stape *bpv_stape_build(bpv_arena *a, bpv_graph *g);
/* bpv_graph_forward(g) for the tape's graph. */
void bpv_stape_forward(const bpv_stape *t);
/* bpv_graph_backward(g): falls back to it when some param grad is not zero
 * (zero_grad=false), where torch's per-param gathering order matters. */
void bpv_stape_backward(const bpv_stape *t);

#endif
