/* The op definitions: one row per op (ops.c) holds everything about it, and
 * every other module reads that row: the compiler (the name the language
 * calls it by, arity, attributes, shape rule, compile-time variant), the
 * engine (its forward and backward kernels), snapshots (its local partial,
 * which is the backward with an upstream gradient of one), the gradient
 * check (whether it is elementwise), figures and JSON (name, symbol, how an
 * expression of it is written, the symbolic local derivative) and the C
 * builder (the language text it writes). docs/architecture.md lists the
 * steps to add an op. */
#ifndef BPV_OPS_H
#define BPV_OPS_H

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "ast.h"
#include "base.h"

typedef enum bpv_dtype { BPV_F32, BPV_F64 } bpv_dtype;

/* Rounds x to the dtype: float32 (round to nearest even) or unchanged. */
static inline double bpv_round(bpv_dtype dt, double x) {
    return dt == BPV_F32 ? (double)(float)x : x;
}

/* a * b + c rounded once to the dtype: the FMAs torch's AVX2 build makes
 * of `x + y * z` (optimizer updates, softmax's backward). */
static inline double bpv_fma(bpv_dtype dt, double a, double b, double c) {
    return dt == BPV_F32 ? (double)fmaf((float)a, (float)b, (float)c) : fma(a, b, c);
}

#define BPV_MAX_RANK 4
typedef struct bpv_shape {
    int rank;
    int64_t dim[BPV_MAX_RANK];
} bpv_shape;

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
    BPV_OP_MAX,      /* torch.maximum, broadcasting */
    BPV_OP_MIN,      /* torch.minimum */
    BPV_OP_CLAMP,    /* torch.clamp(a, lo, hi): attributes lo, hi */
    /* Dimensions of these count within one sample: a batched node (bpv_node.batched)
     * has one more in front, which they leave alone. */
    BPV_OP_SUM_DIM,  /* sum(a, dim=D): torch.sum over one dimension */
    BPV_OP_MEAN_DIM, /* mean(a, dim=D) */
    BPV_OP_CONV2D,   /* conv2d(x, w[, b], stride=, padding=): x [C,H,W] or [N,C,H,W] */
    BPV_OP_MAX_POOL2D, /* max_pool2d(x, K): kernel K, stride K */
    BPV_OP_AVG_POOL2D, /* avg_pool2d(x, K) */
    BPV_OP_FLATTEN,  /* a sample's dimensions into one */
    BPV_OP_RESHAPE,  /* reshape(x, [d1, ...]): a sample's new shape (attributes d0..d3) */
    BPV_OP_CAT,      /* cat(a, b, ..., dim=D) */
    BPV_OP_STACK,    /* stack(a, b, ..., dim=D): along a new dimension */
    BPV_OP_INDEX,    /* x[i]: element i of a sample's first dimension (attribute index) */
    BPV_OP_COUNT
} bpv_op;

/* ---- attributes ------------------------------------------------------------
 * Numbers an op takes besides its tensor inputs (a stride, a padding, a
 * dimension, a kernel size, a bound). In the language they follow the
 * tensor inputs, by position or as NAME=VALUE; the compiler checks them
 * against the row's list and stores them in the node. */
#define BPV_MAX_ATTRS 6
typedef enum bpv_attr_kind {
    BPV_ATTR_INT, /* a whole number in [lo, hi] */
    BPV_ATTR_NUM  /* any finite number */
} bpv_attr_kind;

typedef struct bpv_attr_def {
    const char *name;
    bpv_attr_kind kind;
    bool required;   /* else dflt */
    double dflt;
    double lo, hi;   /* BPV_ATTR_INT bounds */
} bpv_attr_def;

/* Variants the compiler picks once per node (bpv_op_def.plan), where torch
 * takes another kernel for the same op depending on its operands. */
enum {
    BPV_VAR_DEFAULT,
    BPV_VAR_RDIV,       /* number / tensor: torch's x.reciprocal() * number */
    BPV_VAR_POW_SCALAR, /* tensor ** Python number: torch's scalar-exponent kernel */
};

/* How a figure writes an unnamed node of the op as an expression over its
 * inputs' names. */
typedef enum bpv_fig_form {
    BPV_FIG_CALL,    /* symbol(a, b): σ(z), mse(ŷ, y) */
    BPV_FIG_INFIX,   /* a + b */
    BPV_FIG_PREFIX,  /* −a */
    BPV_FIG_POSTFIX, /* aᵀ */
    BPV_FIG_ENCLOSE, /* |a| */
    BPV_FIG_POWER,   /* a² or a^b */
    BPV_FIG_SAME     /* a itself (identity) */
} bpv_fig_form;

struct bpv_graph;
struct bpv_node;
struct bpv_compiler;

/* A kernel computes one node over the graph's storage: forward fills the
 * node's value from its inputs; backward fills the edge gradients of its
 * live inputs from its gradient and passes them on. */
typedef void (*bpv_kernel)(struct bpv_graph *g, struct bpv_node *n);

/* The local partial of node n's output with respect to input k, one number
 * per element of n (the backward with an upstream gradient of one), into
 * out; for ops whose partial is a Jacobian there is none (local NULL). */
typedef void (*bpv_local_fn)(const struct bpv_graph *g, const struct bpv_node *n, int k,
                             double *out);

/* The output shape from the inputs' shapes and the node's attributes, or
 * false with a message (both shapes in it) written to msg. */
typedef bool (*bpv_shape_fn)(const struct bpv_node *n, const bpv_shape *const *in, int nin,
                             bpv_shape *out, char *msg, size_t msglen);

typedef struct bpv_op_def {
    const char *name;        /* "mul": JSON, messages, the C builder */
    const char *call;        /* the language's function name ("sigmoid"), or NULL when the
                                op is written with an operator only */
    /* the op a call of `call` becomes when it is given attributes, as
     * sum(a, dim=1) becomes SUM_DIM (BPV_OP_NONE: none) */
    bpv_op with_attrs;
    const char *symbol;      /* "×": the figure's op node */
    int min_in, max_in;      /* tensor inputs (max_in -1: any number) */
    const bpv_attr_def *attrs;
    int nattrs;
    /* Local partial derivative of the output with respect to each input,
     * as text over the names a, b (the inputs) and out (the output);
     * figures substitute the real names. NULL for inputs that take no
     * gradient (class-index targets). Ops with more inputs than two
     * repeat the last entry. */
    const char *dlocal[2];
    unsigned flags;          /* BPV_OPF_* */
    /* The expression an unnamed node is drawn as, and the binding power of
     * that expression; fig_rneed: the binding power the right operand of
     * an infix op needs to go without parentheses. */
    bpv_fig_form fig_form;
    const char *fig_text;    /* infix " − ", prefix "−", postfix "ᵀ", call name "σ" */
    int fig_prec, fig_rneed;
    /* The language's own spelling for the builder: an infix operator
     * (" + ") with its binding power, or NULL for call syntax. */
    const char *lang_infix;
    int lang_prec;
    /* A non-finite note's operator between two numbers (" × "), or NULL
     * for call syntax. */
    const char *note_infix;
    bpv_shape_fn shape;      /* NULL: elementwise, the inputs broadcast */
    /* Picks the node's variant once its inputs are known (NULL: default). */
    int (*plan)(const struct bpv_graph *g, const struct bpv_node *n);
    /* Kernels over double storage and over float32 storage (engine.c). */
    bpv_kernel fwd, bwd, fwd32, bwd32;
    bpv_local_fn local;      /* NULL: a Jacobian, no elementwise partial */
} bpv_op_def;

/* Flags of a row. */
#define BPV_OPF_ELEMWISE 1u  /* out[i] depends on element i of each (broadcast) input */
#define BPV_OPF_SUM_LOCAL 2u /* a reduction to one number whose local partial is one number */
#define BPV_OPF_CONST_LOCAL 4u /* the local partial does not depend on the values */
#define BPV_OPF_LINEAR 16u /* elementwise with a backward of +g or -g per input */
#define BPV_OPF_CLASS_TARGETS 8u /* input 1 holds class indices into input 0's last dimension */
#define BPV_OPF_SHAPE_ARG 32u /* the attributes are one list argument, a shape: d0..d3, NAN
                                 where the shape has fewer dimensions */
#define BPV_OPF_UNBATCH 64u /* the output has no batch dimension even when an input has one */

extern const bpv_op_def bpv_ops[BPV_OP_COUNT];

/* The op the language calls `name` with, or BPV_OP_NONE. */
bpv_op bpv_op_by_call(const char *name);

#endif
