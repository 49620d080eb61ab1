/* The op table: one row per op, indexed by bpv_op. Forward and backward live
 * in engine.c; this table is what messages, JSON and figures read. */
#include "graph.h"

const bpv_op_info bpv_op_table[BPV_OP_COUNT] = {
    [BPV_OP_NONE] = {"none", "", 0, {NULL, NULL}},
    [BPV_OP_ADD] = {"add", "+", 2, {"1", "1"}},
    [BPV_OP_SUB] = {"sub", "−", 2, {"1", "−1"}},
    [BPV_OP_MUL] = {"mul", "×", 2, {"b", "a"}},
    [BPV_OP_DIV] = {"div", "÷", 2, {"1/b", "−a/b²"}},
    [BPV_OP_NEG] = {"neg", "−", 1, {"−1", NULL}},
    [BPV_OP_POW] = {"pow", "^", 2, {"b·a^(b−1)", "out·ln a"}},
    [BPV_OP_MATMUL] = {"matmul", "@", 2, {"∂/∂a: g @ bᵀ", "∂/∂b: aᵀ @ g"}},
    [BPV_OP_SIGMOID] = {"sigmoid", "σ", 1, {"σ·(1−σ)", NULL}},
    [BPV_OP_RELU] = {"relu", "ReLU", 1, {"1 if a>0 else 0", NULL}},
    [BPV_OP_TANH] = {"tanh", "tanh", 1, {"1−out²", NULL}},
    [BPV_OP_EXP] = {"exp", "exp", 1, {"out", NULL}},
    [BPV_OP_LOG] = {"log", "log", 1, {"1/a", NULL}},
    [BPV_OP_SQRT] = {"sqrt", "√", 1, {"1/(2·out)", NULL}},
    [BPV_OP_ABS] = {"abs", "|·|", 1, {"sign(a)", NULL}},
    [BPV_OP_SUM] = {"sum", "Σ", 1, {"1", NULL}},
    [BPV_OP_MEAN] = {"mean", "mean", 1, {"1/N", NULL}},
    [BPV_OP_T] = {"transpose", "ᵀ", 1, {"gᵀ", NULL}},
    [BPV_OP_MSE] = {"mse", "MSE", 2, {"2·(a−b)/N", "2·(b−a)/N"}},
    [BPV_OP_BCE] = {"bce", "BCE", 2, {"(a−b)/(a·(1−a))/N", "−ln(a/(1−a))/N"}},
    [BPV_OP_SOFTMAX] = {"softmax", "softmax", 1, {"out·(g − Σ g·out)", NULL}},
    [BPV_OP_LOG_SOFTMAX] = {"log_softmax", "log softmax", 1, {"g − exp(out)·Σ g", NULL}},
    [BPV_OP_CROSS_ENTROPY] = {"cross_entropy", "CE", 2, {"(softmax(a) − onehot(b))/N", NULL}},
    [BPV_OP_IDENTITY] = {"identity", "=", 1, {"1", NULL}},
    /* the real symbol and partials are the fn's (bpv_node.custom) */
    [BPV_OP_CUSTOM] = {"custom", "f", 2, {"∂f/∂a", "∂f/∂b"}},
};

/* A new op without a row would leave a NULL name for figures and JSON. */
static_assert(sizeof bpv_op_table / sizeof bpv_op_table[0] == BPV_OP_COUNT,
              "bpv_op_table needs one row per bpv_op");
