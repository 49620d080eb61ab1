/* The static graph the compiler builds and the engine runs: a topologically
 * sorted array of nodes (inputs always before their users) whose values and
 * gradients live in flat double buffers. Under dtype f32 every stored value
 * is a float32 value widened to double, and every kernel rounds each
 * arithmetic step to float32 exactly where PyTorch's float32 kernel rounds,
 * so the numbers agree bit for bit where the operations are IEEE-exact. */
#ifndef BPV_GRAPH_H
#define BPV_GRAPH_H

#include <assert.h>

#include "base.h"
#include "ops.h"

int64_t bpv_shape_numel(const bpv_shape *s);
bool bpv_shape_eq(const bpv_shape *a, const bpv_shape *b);
/* "[]" for a scalar, "[3]", "[4, 2]". Appends to b. */
void bpv_shape_fmt(bpv_buf *b, const bpv_shape *s);
/* The same text into a caller's buffer (truncated to n), for messages;
 * returns buf. */
const char *bpv_shape_str(const bpv_shape *s, char *buf, size_t n);
/* PyTorch broadcasting: false when the shapes do not broadcast. */
bool bpv_shape_broadcast(const bpv_shape *a, const bpv_shape *b, bpv_shape *out);

/* ---- nodes --------------------------------------------------------------- */
typedef enum bpv_node_kind {
    BPV_NODE_DATA,
    BPV_NODE_PARAM,
    BPV_NODE_CONST,
    BPV_NODE_OP
} bpv_node_kind;

/* ---- custom functions (`fn f(a, b) = EXPR grad a = EXPR, b = EXPR`) ----------
 * The body and each partial are compiled once (fnprog.c) into a program: a
 * postfix list over the scalars a, b and out whose operations are
 * elementwise ops (op_elem.h), run element by element by the engine with a
 * fixed stack, so a step allocates nothing. */
typedef enum bpv_fnprog_push {
    BPV_FP_OP,   /* apply op (with variant and k) to the top one or two */
    BPV_FP_NUM,  /* push num */
    BPV_FP_A, BPV_FP_B, BPV_FP_OUT
} bpv_fnprog_push;

typedef struct bpv_fnprog_ins {
    bpv_fnprog_push kind;
    bpv_op op;          /* BPV_FP_OP: an elementwise op */
    int variant;        /* its BPV_VAR_* */
    double num;         /* BPV_FP_NUM: the number, rounded; BPV_VAR_RDIV: the numerator,
                         * rounded; BPV_VAR_POW_SCALAR: the exponent as written */
} bpv_fnprog_ins;

#define BPV_FNPROG_STACK 32 /* deepest expression a program may need */
typedef struct bpv_fnprog {
    const bpv_fnprog_ins *code;
    int n;
} bpv_fnprog;

typedef struct bpv_custom {
    const char *name;        /* the fn's name: figures draw the node with it */
    int nargs;               /* 1 or 2 */
    bpv_fnprog body, grad[2];
    const char *dlocal[2];   /* each partial as written, over a, b and out */
} bpv_custom;

typedef struct bpv_node {
    bpv_node_kind kind;
    bpv_op op;
    const char *name;    /* as written in the model, or NULL for an unnamed op */
    bool literal;        /* a const written as a number in an expression */
    double num;          /* a literal's number as written, unrounded: torch keeps a
                          * Python number in double where it calls libm's pow */
    int *in;             /* nin indices of inputs (always < this node's index); the
                          * compiler's arena */
    int nin;
    int variant;         /* BPV_VAR_*: the op's plan picks it once the inputs are known */
    /* the op's attributes, bpv_ops[op].nattrs of them in its row's order
     * (the compiler's arena), or NULL for ops without */
    const double *attr;
    bpv_shape shape;
    int64_t numel;
    /* numel values: val32 when the graph stores float32 (bpv_graph.f32) */
    union { double *val; float *val32; };
    /* numel gradient of the objective; NULL if !needs_grad */
    union { double *grad; float *grad32; };
    bool needs_grad;     /* on a path from a param to the objective */
    bool batched;        /* the first dimension is the batch's (data under train batch=N,
                          * and the ops over it): ops that count dimensions within a sample
                          * skip it */
    /* the `for` step that made this node (compile.c): loop variable and value of the
     * innermost loop, for figures' clusters; loop_var NULL outside loops */
    const char *loop_var;
    int64_t loop_value;
    int ref;             /* DATA: index into model data, PARAM: into params */
    size_t src_off, src_len; /* where the node comes from in the source */
    /* Backward contribution along each input edge (the input's shape), kept
     * so snapshots can show every chained partial: nin pointers, each NULL
     * if the input takes no gradient. */
    union { double **edge_grad; float **edge_grad32; };
    /* engine.c, during a backward pass: no contribution has reached grad
     * yet, so it stands for all -0.0 (written when the walk reaches it) */
    bool grad_pending;
    /* PARAM: exactly one op takes it as an input, so one edge carries its
     * whole gradient (compile.c) */
    bool sole_edge;
    const bpv_custom *custom; /* BPV_OP_CUSTOM: the fn (model's arena) */
} bpv_node;

typedef struct bpv_graph {
    bpv_dtype dtype; /* the arithmetic: every kernel rounds to it */
    bool f32;        /* the storage: float32 (val32, grad32...), else double */
    bpv_node *nodes; /* topologically sorted */
    int nnodes;
    int objective;   /* the node whose gradient is computed (loss), or -1 */
    int64_t batch;   /* samples per step this graph was compiled for (0: none) */
    float *mm_work;  /* matmul packing space (bpv_matmul_work), sized by the compiler */
    /* the convolutions' scratch (bpv_conv2d_work of the largest), in the storage type */
    union { double *conv_work; float *conv_work32; };
    int64_t nconv_work; /* its elements */
    /* the largest broadcast op's contributions, gathered before they are
     * summed in torch's order (engine.c GRAD2); NULL: summed in double */
    union { double *red_work; float *red_work32; };
    int64_t nred;    /* elements of red_work */
    /* under float32 storage, a double scratch (numel of its largest node)
     * where the sums torch does not order are accumulated before rounding;
     * NULL over double storage, which accumulates in the edge itself */
    double *acc_work;
    /* every val, grad and edge_grad of the graph's own nodes (not params'
     * or constants'), one block in node order (compile.c); may be NULL */
    union { double *nums; float *nums32; };
    int64_t nnums;
    /* Set by each backward pass (engine.c): every param grad was ±0 at its
     * start, so contributions go straight into .grad (bit for bit what
     * torch's sum-then-add gives) instead of being gathered per param. */
    bool param_direct;
    /* Set by the caller before a backward pass in place of zeroing every
     * param grad (zero_grad): the pass writes each param's first
     * contribution as +0.0 + e and zeroes the params none reaches. Cleared
     * by the pass. */
    bool params_zeroed;
    /* Set by the caller before a backward pass whose edge_grad values nobody
     * reads (no snapshot, no inspection): a param's sole edge out of a
     * matmul is then written straight into its zeroed .grad (the same bits:
     * a matmul never yields -0.0) and that edge_grad is left stale. Cleared
     * by the pass. */
    bool edges_unread;
    /* snapshot.c: the parts of a snapshot that never change from step to
     * step (strings, layout), built at the first snapshot (model's arena) */
    struct bpv_snap_cache *snap_cache;
} bpv_graph;

/* Element i of node n's value, whatever g's storage. */
static inline double bpv_node_value(const bpv_graph *g, const bpv_node *n, int64_t i) {
    return g->f32 ? (double)n->val32[i] : n->val[i];
}

/* Whether input k of op takes a gradient: its row has a local derivative
 * for it (ops with more than two inputs repeat the last). */
static inline bool bpv_op_grad_input(bpv_op op, int k) {
    return bpv_ops[op].dlocal[k < 1 ? k : 1] != NULL;
}

/* ---- the engine ------------------------------------------------------------ */
/* Computes every op node's value from its inputs, in order. */
void bpv_graph_forward(bpv_graph *g);
/* Computes one op node's value from its inputs (the gradient check). */
void bpv_graph_forward_node(bpv_graph *g, int i);
/* Seeds d objective/d objective = 1 and fills grad and edge_grad of every
 * node that needs a gradient, in reverse order. Param grads are added to
 * (accumulated), not overwritten: the caller zeroes them when zero_grad. */
void bpv_graph_backward(bpv_graph *g);
/* The local partial derivative of node n's output with respect to input k,
 * evaluated elementwise into out (n's numel values), for the ops where it is
 * elementwise. Returns false (out untouched) for ops whose local derivative
 * is a Jacobian (matmul, reductions over other elements, softmax...). */
bool bpv_graph_local(const bpv_graph *g, int n, int k, double *out);

/* Finiteness scans (finite.c). True when every value and gradient of the
 * graph is finite, whatever its storage. */
bool bpv_graph_finite(const bpv_graph *g);
/* The index of the first NaN or ±inf among v[0..n), or -1 (also for v NULL). */
int64_t bpv_first_nonfinite(const double *v, int64_t n);

/* c[M x N] = X @ Y in dt (matmul.c), where X(i, t) = x[i*xr + t*xc] and
 * Y(t, j) = y[t*yr + j*yc]: strides give the transposed forms of the
 * backward pass without copying. Each element is summed in t order from
 * +0.0, every product and partial sum rounded to dt: reference BLAS's
 * order, so torch.matmul's bits. c must not overlap x or y. work holds
 * bpv_matmul_work(M, N, K) floats under f32 (unused, may be NULL, under
 * f64). */
void bpv_matmul(bpv_dtype dt, int64_t M, int64_t N, int64_t K, const double *x, int64_t xr,
                int64_t xc, const double *y, int64_t yr, int64_t yc, double *c, float *work);
/* bpv_matmul under f32 with float32 operands and result. */
void bpv_matmul32(int64_t M, int64_t N, int64_t K, const float *x, int64_t xr, int64_t xc,
                  const float *y, int64_t yr, int64_t yc, float *c, float *work);
/* Floats of work space bpv_matmul needs for an M x K by K x N product. */
size_t bpv_matmul_work(int64_t M, int64_t N, int64_t K);

#endif
