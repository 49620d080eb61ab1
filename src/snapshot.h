/* A snapshot: the whole graph as it was at one training step, after the
 * backward pass and before the update, plus each parameter after the
 * update. One malloc'd block owns every record and number, so exporters
 * need nothing else and the engine can go on overwriting its buffers; the
 * strings (names, formulas) are shared with the model's arena and, like
 * the snapshot, valid until bpv_model_free (the snapshot itself: until the
 * model's next run, which frees the kept ones). */
#ifndef BPV_SNAPSHOT_H
#define BPV_SNAPSHOT_H

#include "graph.h"

/* The gradient check of one edge's local partial or one parameter's
 * gradient (inspect.c): the element with the largest relative error. */
typedef enum bpv_gradcheck_state {
    BPV_GRADCHECK_NONE,  /* not checked */
    BPV_GRADCHECK_OK,
    BPV_GRADCHECK_SKIP,  /* not differentiable there (relu or abs at 0) or not finite */
    BPV_GRADCHECK_BAD    /* analytic and numeric disagree */
} bpv_gradcheck_state;

typedef struct bpv_gradcheck_mark {
    bpv_gradcheck_state state;
    int64_t elem;         /* flat index of the element reported */
    double analytic;      /* as the engine computed it (the snapshot's number) */
    double numeric;       /* central difference in double precision */
    double relerr;        /* the error the threshold is applied to */
} bpv_gradcheck_mark;

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
    const int *in;        /* nin input indices (the graph's, model's arena) */
    const double *attr;   /* the op's attributes, bpv_ops[op].nattrs of them (the graph's) */
    size_t src_off;       /* where it comes from in the model source */
    /* additive: BPV_OP_CUSTOM's fn name and partials over a, b, out */
    const char *fn;
    const char *fn_dlocal[2];
    size_t src_len;       /* with src_off: the node's text in the model */
    bool nonfinite;       /* some element of value or grad is NaN or ±inf */
    /* the unrolled `for` step that made it (additive): innermost loop
     * variable and value; loop_var NULL outside loops */
    const char *loop_var;
    int64_t loop_value;
    /* additive, for traces read from a file (trace.c) that another program
     * recorded: `recorded` marks an op bpviz has no row for, drawn by its
     * name (op is BPV_OP_CUSTOM and fn holds the name; no elementwise rule
     * applies); `novalue`: the trace holds no forward value (value is NaN,
     * not reported as non-finite); `torch`: the recorder's class of the op
     * (AddmmBackward0), a tooltip; `module`: the dotted path of the module
     * that made the node ("features.0"), NULL at top level, drawn as nested
     * clusters; `module_class` its class ("Linear") or NULL */
    bool recorded, novalue;
    const char *torch, *module, *module_class;
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
    bpv_gradcheck_mark gradcheck; /* additive: gradient check of `local` */
} bpv_snap_edge;

typedef struct bpv_snap_param {
    const char *name;
    int node;             /* index in nodes, or -1 if not in this graph */
    bpv_shape shape;
    int64_t numel;
    double *after;        /* value after this step's update */
    int ref;              /* index into the model's params (additive) */
    bpv_gradcheck_mark gradcheck; /* additive: gradient check of the node's grad */
    bool accumulating;    /* its grad still holds earlier steps' (zero_grad=false) */
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
    /* additive (inspect.c): where the first NaN or ±inf of this step comes
     * from. nf_pass 0: everything is finite; 1: forward, nf_node is the
     * first node whose inputs are finite and whose value is not; 2:
     * backward, nf_edge the first edge (in reverse order) whose op's
     * gradient and inputs are finite and whose partial is not. */
    int nf_pass;
    int nf_node, nf_edge;
    char nf_note[160];    /* "log(−0.5) = nan", raw UTF-8 */
    bool gradchecked;     /* the gradient check ran on this snapshot */
    /* recycling (snapshot.c): the per-graph cache whose records this block
     * holds, its room for samples, and whether only numbers differ from the
     * cache's template (nothing marked non-finite: a take sets it when every
     * value and grad is finite, bpv_inspect_nonfinite when it marks none) */
    const struct bpv_snap_cache *cache;
    int64_t cap_samples;
    bool pristine;
    /* edges[].local not derived yet: see bpv_snapshot_locals */
    bool locals_pending;
};

struct bpv_model;
/* Copies the graph's current state into a new snapshot (the caller frees it
 * with bpv_snapshot_free or hands it back with bpv_snapshot_release).
 * Parameter `after` values are filled by bpv_snapshot_set_after once the
 * update has run. */
bpv_snapshot *bpv_snapshot_take(struct bpv_model *m, const bpv_graph *g, long step, long epoch,
                                const int64_t *samples, int64_t nsamples);
void bpv_snapshot_set_after(bpv_snapshot *s, const struct bpv_model *m);
/* An upper bound of the bytes one snapshot of graph g takes (records and
 * numbers, with room for nsamples sample indices), for the memory budget
 * before a run; *numbers (if not NULL) gets how many numbers it holds. */
size_t bpv_snapshot_bytes(const struct bpv_model *m, const bpv_graph *g, int64_t nsamples,
                          int64_t *numbers);
/* Fills edges[].local. A take records values, grads and chained partials;
 * the local partials are functions of the recorded values, so they are
 * computed from them (the engine's own bpv_graph_local, on a copy of the
 * graph pointing at the snapshot's values: the same bits as at the step)
 * the first time something reads them. Every reader of edges[].local calls
 * this first; after the first call it returns at once. */
void bpv_snapshot_locals(const bpv_snapshot *s);
void bpv_snapshot_free(bpv_snapshot *s);
/* Gives a snapshot nobody reads any more back to the model, whose next
 * bpv_snapshot_take of the same graph refills it instead of building a new
 * block: recording every step and dropping each (bench, traces written as
 * they go) then costs the numbers only. Frees it when it cannot be reused. */
void bpv_snapshot_release(struct bpv_model *m, bpv_snapshot *s);

#endif
