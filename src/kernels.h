/* Element formulas shared by the general kernels (engine.c) and the scalar
 * tape (tape.c), rounded exactly where PyTorch's float32 kernels round, so
 * both paths give the same bits. */
#ifndef BPV_KERNELS_H
#define BPV_KERNELS_H

#include <math.h>

#include "graph.h"

/* torch.pow(tensor, python_number): the CPU kernel special-cases these
 * exponents; others go through std::pow(float, double), one rounding. */
static inline double bpv_pow_scalar(bpv_dtype dt, double a, double e) {
    if (e == 0) return 1.0;
    if (e == 1) return a;
    if (e == 2) return bpv_round(dt, a * a);
    if (e == 3) return bpv_round(dt, bpv_round(dt, a * a) * a);
    if (e == -2) return bpv_round(dt, 1.0 / bpv_round(dt, a * a));
    if (e == 0.5) return bpv_round(dt, sqrt(a));
    if (e == -0.5) return bpv_round(dt, 1.0 / bpv_round(dt, sqrt(a)));
    if (e == -1) return bpv_round(dt, 1.0 / a);
    return bpv_round(dt, pow(a, e));
}

/* torch's sigmoid kernel: 1 / (1 + exp(-a)), each step in float. */
static inline double bpv_sigmoid(bpv_dtype dt, double a) {
    return bpv_round(dt, 1.0 / bpv_round(dt, 1.0 + bpv_round(dt, exp(-a))));
}

/* sign as torch's sgn: 0 for ±0 and NaN. */
static inline double bpv_sign(double a) { return (double)(a > 0) - (double)(a < 0); }

#endif
