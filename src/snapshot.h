/* A snapshot: the whole graph as it was at one training step, after the
 * backward pass and before the update, plus each parameter after the
 * update. Self-contained (one malloc'd block owns everything), so exporters
 * need nothing else and the engine can go on overwriting its buffers. */
#ifndef BPV_SNAPSHOT_H
#define BPV_SNAPSHOT_H

#include "graph.h"

typedef struct bpv_snap_node {
    const char *name;     /* NULL for an unnamed intermediate */
    bpv_node_kind kind;
    bpv_op op;
    bool literal;         /* const written as a number in an expression */
    bpv_shape shape;
    int64_t numel;
    double *value;        /* numel */
    double *grad;         /* numel, or NULL when no gradient reaches it */
    int nin;
    int in[2];
    size_t src_off;       /* where it comes from in the model source */
} bpv_snap_node;

typedef struct bpv_snap_edge {
    int from, to;         /* input node -> op node */
    int slot;             /* which input of `to` */
    const char *formula;  /* symbolic local derivative from the op table, with
                             a/b/out replaced by the names in the model;
                             NULL when the input takes no gradient */
    double *local;        /* elementwise local derivative (numel of `to`),
                             NULL when it is a Jacobian or no gradient */
    int64_t nlocal;
    double *chained;      /* d objective / d from along this edge (numel of
                             `from`), NULL when no gradient */
} bpv_snap_edge;

typedef struct bpv_snap_param {
    const char *name;
    int node;             /* index in nodes, or -1 if not in this graph */
    bpv_shape shape;
    int64_t numel;
    double *after;        /* value after this step's update */
    int ref;              /* index into the model's params (additive) */
} bpv_snap_param;

struct bpv_snapshot {
    const char *model;    /* the model's file name */
    bpv_dtype dtype;
    long step;            /* from 1 */
    long epoch;           /* from 0 */
    int64_t *samples;     /* indices of the samples of this step */
    int64_t nsamples;
    double loss;
    int objective;        /* node index of the loss */
    bpv_snap_node *nodes;
    int nnodes;
    bpv_snap_edge *edges;
    int nedges;
    bpv_snap_param *params;
    int nparams;
};

struct bpv_model;
/* Copies the graph's current state into a new snapshot (the caller frees it
 * with bpv_snapshot_free). Parameter `after` values are filled by
 * bpv_snapshot_set_after once the update has run. */
bpv_snapshot *bpv_snapshot_take(const struct bpv_model *m, const bpv_graph *g, long step,
                                long epoch, const int64_t *samples, int64_t nsamples);
void bpv_snapshot_set_after(bpv_snapshot *s, const struct bpv_model *m);
void bpv_snapshot_free(bpv_snapshot *s);

#endif
