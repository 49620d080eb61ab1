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

typedef enum bpv_dtype { BPV_F32, BPV_F64 } bpv_dtype;

/* Rounds x to the dtype: float32 (round to nearest even) or unchanged. */
static inline double bpv_round(bpv_dtype dt, double x) {
    return dt == BPV_F32 ? (double)(float)x : x;
}

#define BPV_MAX_RANK 4
typedef struct bpv_shape {
    int rank;
    int64_t dim[BPV_MAX_RANK];
} bpv_shape;

int64_t bpv_shape_numel(const bpv_shape *s);
bool bpv_shape_eq(const bpv_shape *a, const bpv_shape *b);
/* "[]" for a scalar, "[3]", "[4, 2]". Appends to b. */
void bpv_shape_fmt(bpv_buf *b, const bpv_shape *s);
/* The same text into a caller's buffer (truncated to n), for messages;
 * returns buf. */
const char *bpv_shape_str(const bpv_shape *s, char *buf, size_t n);
/* PyTorch broadcasting: false when the shapes do not broadcast. */
bool bpv_shape_broadcast(const bpv_shape *a, const bpv_shape *b, bpv_shape *out);

/* ---- the op table ---------------------------------------------------------
 * One row per op: name, symbol for figures, arity, and the symbolic local
 * derivative per input. Forward and backward are one switch each in engine.c.
 * The table is sized by BPV_OP_COUNT and checked by static_assert. */
typedef enum bpv_op {
    BPV_OP_NONE,     /* leaves: data, param, const */
    BPV_OP_ADD,      /* a + b, broadcasting */
    BPV_OP_SUB,      /* a - b */
    BPV_OP_MUL,      /* a * b */
    BPV_OP_DIV,      /* a / b */
    BPV_OP_NEG,      /* -a */
    BPV_OP_POW,      /* a ^ b (b any tensor broadcastable; a literal b is folded in figures) */
    BPV_OP_MATMUL,   /* a @ b, torch.matmul for 1-D and 2-D */
    BPV_OP_SIGMOID,
    BPV_OP_RELU,
    BPV_OP_TANH,
    BPV_OP_EXP,
    BPV_OP_LOG,
    BPV_OP_SQRT,
    BPV_OP_ABS,
    BPV_OP_SUM,      /* all elements -> scalar */
    BPV_OP_MEAN,     /* all elements -> scalar */
    BPV_OP_T,        /* transpose of a 2-D tensor (1-D and scalars unchanged, like torch .T) */
    BPV_OP_MSE,      /* mean((a-b)^2), torch MSELoss(reduction='mean') */
    BPV_OP_BCE,      /* torch BCELoss(reduction='mean'), log clamped at -100 */
    BPV_OP_SOFTMAX,  /* over the last dimension */
    BPV_OP_LOG_SOFTMAX,
    BPV_OP_CROSS_ENTROPY, /* logits [C] or [N, C]; targets class indices [] or [N] */
    BPV_OP_IDENTITY, /* `b = a` where a is already a named node: a node of its own */
    BPV_OP_CUSTOM,   /* a call of `fn f(a[, b]) = ... grad a = ...`: node->custom */
    BPV_OP_COUNT
} bpv_op;

typedef struct bpv_op_info {
    const char *name;     /* "mul": JSON and messages */
    const char *symbol;   /* "×": figures */
    int arity;            /* 1 or 2 */
    /* Local partial derivative of the output with respect to each input, as
     * text over the names a, b (the inputs) and out (the output); figures
     * substitute the real names. NULL for inputs that take no gradient. */
    const char *dlocal[2];
} bpv_op_info;

extern const bpv_op_info bpv_op_table[BPV_OP_COUNT];

/* ---- nodes --------------------------------------------------------------- */
typedef enum bpv_node_kind {
    BPV_NODE_DATA,
    BPV_NODE_PARAM,
    BPV_NODE_CONST,
    BPV_NODE_OP
} bpv_node_kind;

/* ---- custom functions (`fn f(a, b) = EXPR grad a = EXPR, b = EXPR`) ----------
 * The body and each partial are compiled once (custom.c) into a tape: a
 * postfix program over the scalars a, b and out, run element by element by
 * the engine with a fixed stack, so a step allocates nothing. */
typedef enum bpv_tape_op {
    BPV_T_NUM, BPV_T_A, BPV_T_B, BPV_T_OUT,
    BPV_T_ADD, BPV_T_SUB, BPV_T_MUL, BPV_T_DIV,
    BPV_T_RDIV,  /* number / x: torch's x.reciprocal() * number */
    BPV_T_POW,   /* x ^ y */
    BPV_T_POWK,  /* x ^ number (num): torch's scalar-exponent kernel */
    BPV_T_NEG, BPV_T_SIGMOID, BPV_T_RELU, BPV_T_TANH, BPV_T_EXP, BPV_T_LOG, BPV_T_SQRT,
    BPV_T_ABS
} bpv_tape_op;

typedef struct bpv_tape_ins {
    bpv_tape_op op;
    double num;         /* BPV_T_NUM, BPV_T_RDIV: the number, rounded; BPV_T_POWK: as written */
} bpv_tape_ins;

#define BPV_TAPE_STACK 32 /* deepest expression a tape may need */
typedef struct bpv_tape {
    const bpv_tape_ins *code;
    int n;
} bpv_tape;

typedef struct bpv_custom {
    const char *name;        /* the fn's name: figures draw the node with it */
    int nargs;               /* 1 or 2 */
    bpv_tape body, grad[2];
    const char *dlocal[2];   /* each partial as written, over a, b and out */
} bpv_custom;

/* Runs a tape on one element (engine.c), rounding every step to dt; vec:
 * the element lies in a whole vector block of its tensor, where torch's
 * sigmoid and pow take SLEEF's path (vmath.c). */
double bpv_tape_eval(bpv_dtype dt, const bpv_tape *t, double a, double b, double out, bool vec);

typedef struct bpv_node {
    bpv_node_kind kind;
    bpv_op op;
    const char *name;    /* as written in the model, or NULL for an unnamed op */
    bool literal;        /* a const written as a number in an expression */
    double num;          /* a literal's number as written, unrounded: torch keeps a
                          * Python number in double where it calls libm's pow */
    int in[2];           /* indices of inputs (always < this node's index) */
    int nin;
    bpv_shape shape;
    int64_t numel;
    /* numel values; val32 in a float32 twin (bpv_graph_twin32) */
    union { double *val; float *val32; };
    /* numel gradient of the objective; NULL if !needs_grad */
    union { double *grad; float *grad32; };
    bool needs_grad;     /* on a path from a param to the objective */
    int ref;             /* DATA: index into model data, PARAM: into params */
    size_t src_off, src_len; /* where the node comes from in the source */
    /* Backward contribution along each input edge (the input's shape), kept
     * so snapshots can show every chained partial. NULL if the input takes
     * no gradient. */
    union { double *edge_grad[2]; float *edge_grad32[2]; };
    /* engine.c, during a backward pass: no contribution has reached grad
     * yet, so it stands for all -0.0 (written when the walk reaches it) */
    bool grad_pending;
    /* PARAM: exactly one op takes it as an input, so one edge carries its
     * whole gradient (compile.c) */
    bool sole_edge;
    const bpv_custom *custom; /* BPV_OP_CUSTOM: the fn (model's arena) */
} bpv_node;

typedef struct bpv_graph {
    bpv_dtype dtype;
    bpv_node *nodes; /* topologically sorted */
    int nnodes;
    int objective;   /* the node whose gradient is computed (loss), or -1 */
    int64_t batch;   /* samples per step this graph was compiled for (0: none) */
    float *mm_work;  /* matmul packing space (bpv_matmul_work), sized by the compiler */
    /* the largest broadcast op's contributions, gathered before they are
     * summed in torch's order (engine.c GRAD2); NULL: summed in double */
    union { double *red_work; float *red_work32; };
    int64_t nred;    /* elements of red_work */
    /* a float32 twin's double scratch (numel of its largest node), where the
     * sums torch does not order are accumulated before rounding; NULL in a
     * double graph, which accumulates in the edge itself */
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
    /* model.c: the float32 twin that trains this graph's steps (plain SGD),
     * built at the first of them (NULL: none) */
    struct bpv_graph *twin32;
    bool twin32_tried;
} bpv_graph;

/* ---- the engine ------------------------------------------------------------ */
/* Computes every op node's value from its inputs, in order. */
void bpv_graph_forward(bpv_graph *g);
/* The same two passes over a float32 twin (engine32.c): the same kernels,
 * so the same numbers, on float32 storage. */
void bpv_graph32_forward(bpv_graph *g);
void bpv_graph32_backward(bpv_graph *g);
/* A twin of an f32 graph that stores every number as float32 (compile.c):
 * the same nodes, ops and buffer sharing, its own buffers (constants
 * converted; params' and data's filled by the caller), the arena's. NULL
 * when out of memory. */
bpv_graph *bpv_graph_twin32(bpv_arena *arena, const bpv_graph *g);
/* Bytes of the arena bpv_graph_twin32(g) takes at most. */
size_t bpv_graph_twin32_bytes(const bpv_graph *g);
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
 * graph is finite; bpv_graph32_finite asks the same of a float32 twin
 * (bpv_graph32_*). */
bool bpv_graph_finite(const bpv_graph *g);
bool bpv_graph32_finite(const bpv_graph *g);
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
