/* Element formulas shared by the general kernels (engine.c) and the scalar
 * tape (tape.c), rounded exactly where PyTorch's float32 kernels round, so
 * both paths give the same bits. */
#ifndef BPV_KERNELS_H
#define BPV_KERNELS_H

#include <math.h>
#include <stdbool.h>

#include "graph.h"
#include "vmath.h"

/* A const scalar operand stands for a Python number in the torch program:
 * `x ** 2` takes torch's scalar-exponent path and `2 / x` is computed by
 * Tensor.__rtruediv__ as x.reciprocal() * 2. */
static inline bool bpv_python_number(const bpv_node *x) {
    return x->kind == BPV_NODE_CONST && x->numel == 1;
}

/* torch.pow(tensor, python_number): the CPU kernel special-cases these
 * exponents; others go through its pow kernel (vmath.c), where vec says
 * the element lies in a whole vector block. */
static inline double bpv_pow_scalar(bpv_dtype dt, double a, double e, bool vec) {
    if (e == 0) return 1.0;
    if (e == 1) return a;
    if (e == 2) return bpv_round(dt, a * a);
    if (e == 3) return bpv_round(dt, bpv_round(dt, a * a) * a);
    if (e == -2) return bpv_round(dt, 1.0 / bpv_round(dt, a * a));
    if (e == 0.5) return bpv_round(dt, sqrt(a));
    if (e == -0.5) return bpv_round(dt, 1.0 / bpv_round(dt, sqrt(a)));
    if (e == -1) return bpv_round(dt, 1.0 / a);
    return bpv_vmath_pow(dt, a, e, vec, true);
}

/* The exponent of a ** b as torch's pow kernel sees it: a literal keeps
 * the double it was written as (a Python number), anything else its value. */
static inline double bpv_pow_exponent(const bpv_node *b, double v) {
    return b->literal ? b->num : v;
}

/* d(a ** b)/da with grad 1, as torch's pow backward computes it,
 * b * a ** (b - 1); scalar: b is a Python number (bpv_pow_exponent), in
 * double for b - 1 and rounded to the dtype where it multiplies. */
static inline double bpv_pow_dbase(bpv_dtype dt, double a, double b, bool scalar, bool vec) {
    if (b == 0) return 0.0;
    double p = scalar ? bpv_pow_scalar(dt, a, b - 1.0, vec)
                      : bpv_vmath_pow(dt, a, bpv_round(dt, b - 1.0), vec, false);
    return bpv_round(dt, bpv_round(dt, b) * p);
}

/* d(a ** b)/db with grad 1: y log(a), 0 where a is 0 (torch masks it); the
 * log is torch's tensor log (vmath.c). */
static inline double bpv_pow_dexp(bpv_dtype dt, double a, double b, double y) {
    if (a == 0 && b >= 0) return 0.0;
    return bpv_round(dt, y * bpv_vmath1(BPV_VF_LOG, dt, a));
}

/* torch's sigmoid of a one-element tensor (or a custom fn's element):
 * 1 / (1 + exp(-a)) with libm's exp, each step in the dtype (vmath.c). */
static inline double bpv_sigmoid(bpv_dtype dt, double a) {
    return bpv_vmath_sigmoid(dt, a, false);
}

/* a * b + c rounded once to the dtype: the FMAs torch's AVX2 build makes
 * of `x + y * z` (optimizer updates, softmax's backward). */
static inline double bpv_fma(bpv_dtype dt, double a, double b, double c) {
    return dt == BPV_F32 ? (double)fmaf((float)a, (float)b, (float)c) : fma(a, b, c);
}

/* sign as torch's sgn: 0 for ±0 and NaN. */
static inline double bpv_sign(double a) { return (double)(a > 0) - (double)(a < 0); }

#endif
