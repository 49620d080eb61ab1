/* The engine's entry points: each runs the instantiation of engine_impl.h
 * that the graph's storage is (engine_f32.c, engine_f64.c). */
#include "graph.h"

void bpv_k64_forward(bpv_graph *g);
void bpv_k64_backward(bpv_graph *g);
void bpv_k32_forward(bpv_graph *g);
void bpv_k32_backward(bpv_graph *g);

void bpv_graph_forward(bpv_graph *g) {
    if (g->f32) bpv_k32_forward(g);
    else bpv_k64_forward(g);
}

void bpv_graph_backward(bpv_graph *g) {
    if (g->f32) bpv_k32_backward(g);
    else bpv_k64_backward(g);
}
