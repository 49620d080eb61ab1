/* Rounding noise in a snapshot's numbers (noise.c), for figures that print
 * 0 where the hand calculation gives 0.
 *
 * For every number a figure prints (values, gradients, chained partials,
 * elementwise local partials, values after the update) it bounds how far
 * the stored number can be from the same calculation done exactly with the
 * numbers written in the model: a first-order running error bound in the
 * model's dtype (unit roundoff u = 2^-24 for f32, 2^-53 for f64):
 *   leaf x (data, param, const):   u·|x|   (the written decimal, rounded)
 *   a ± b:                         e_a + e_b + u·|out|
 *   a · b:                         |b|·e_a + |a|·e_b + u·|out|
 *   a / b:                         (e_a + |out|·e_b)/|b| + u·|out|
 *   A @ B, element over K terms:   Σ(|a|·e_b + e_a·|b|) + K·u·Σ|a·b|
 *   sum, mean of n:                Σe + (⌈log2 n⌉+1)·u·Σ|x|  (mean: /n)
 *   other elementwise f:           Σ|∂f/∂in|·e_in + 2u·|out|
 * and the same rules run backward through each edge's chain-rule product
 * (a broadcast input's gradient summed over its copies). Ops without a rule
 * (Jacobian ops: softmax, conv2d, ...) give bound 0, "exact", so their
 * numbers and what they feed never print as 0 unless they are 0.
 * A number v with |v| <= its bound prints as 0. */
#ifndef BPV_NOISE_H
#define BPV_NOISE_H

#include "snapshot.h"

typedef struct bpv_noise bpv_noise;

/* Bounds for every number of s; NULL when out of memory (then nothing is
 * cleaned). */
bpv_noise *bpv_noise_new(const bpv_snapshot *s);
void bpv_noise_free(bpv_noise *nz);

/* The bounds of one of s's number arrays (a node's value or grad, an edge's
 * chained or local, a param's after), or NULL when it has none. */
const double *bpv_noise_of(const bpv_noise *nz, const double *numbers);

/* numbers[i], or 0 when it is within its bound. */
double bpv_noise_clean(const bpv_noise *nz, const double *numbers, int64_t i);

#endif
