/* Vectorised elementwise math. tanh was a third of a 64-64-64-1 tanh
 * network's step through libm's scalar tanh/expm1. Here tanh(x) is computed
 * in double from expm1(2|x|) = em as em / (em + 2), with expm1 from its
 * Taylor series below 0.5 and from exp (Cody-Waite reduction, degree-13
 * Taylor polynomial, exact scaling by 2^k) above: a few ulps of double,
 * far below float32's half ulp, so rounding it to float gives what
 * (float)tanh(x) gives except when tanh(x) lies within ~1e-16 of a float32
 * rounding boundary. PyTorch's own vectorised float tanh (Sleef) is itself
 * within 1 ulp of the correctly rounded result, and the tests of tanh
 * compare within 1e-5, so this is the same contract. Only for f32: f64
 * keeps libm. Plain double operations with no contraction (the build has
 * -ffp-contract=off): every clone computes the same bits. no-trapping-math
 * only lets gcc turn the selects below into vector blends; values are
 * unchanged. */
#include <math.h>
#include <string.h>

#include "vmath.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VM_CLONES __attribute__((target_clones("avx2", "default"), optimize("no-trapping-math")))
#else
#define VM_CLONES
#endif

/* 1/k! for k = 0..14 */
static const double inv_fact[15] = {
    1.0,           1.0,             1.0 / 2.0,        1.0 / 6.0,         1.0 / 24.0,
    1.0 / 120.0,   1.0 / 720.0,     1.0 / 5040.0,     1.0 / 40320.0,     1.0 / 362880.0,
    1.0 / 3628800.0, 1.0 / 39916800.0, 1.0 / 479001600.0, 1.0 / 6227020800.0,
    1.0 / 87178291200.0};

/* sum of x^(k-1)/k! for k = 1..top by Horner's rule, highest term first:
 * exp's series after its constant term, shared by both branches below.
 * Inlined and fully unrolled so each clone still vectorises the caller. */
static inline __attribute__((always_inline)) double taylor_tail(double x, int top) {
    double s = inv_fact[top];
#pragma GCC unroll 16
    for (int k = top - 1; k >= 1; k--) s = s * x + inv_fact[k];
    return s;
}

VM_CLONES
void bpv_tanh_f32(const double *x, double *o, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const double xi = x[i];
        double ax = fabs(xi);
        ax = ax < 20.0 ? ax : 20.0; /* tanh(20) rounds to 1 in double; NaN is restored below */
        const double u = 2.0 * ax;
        /* expm1(u) for u < 0.5: Taylor series to u^14 (error < 5e-17 relative) */
        const double em_small = taylor_tail(u, 14) * u;
        /* exp(u) - 1 for u >= 0.5: u = k ln2 + r, |r| <= ln2/2 */
        const double shift = 0x1.8p52; /* k lands in kd's low mantissa bits */
        const double kd = u * 0x1.71547652b82fep0 + shift;
        const double k = kd - shift;
        const double r = (u - k * 0x1.62e42fee00000p-1) - k * 0x1.a39ef35793c76p-33;
        const double p = taylor_tail(r, 13) * r + 1.0; /* exp(r) to r^13 */
        uint64_t kb;
        memcpy(&kb, &kd, sizeof kb);
        kb = (kb + 1023) << 52; /* 2^k, 0 <= k <= 58 */
        double scale;
        memcpy(&scale, &kb, sizeof scale);
        const double em = u < 0.5 ? em_small : p * scale - 1.0;
        const double t = copysign(em / (em + 2.0), xi);
        o[i] = (double)(float)(xi != xi ? xi + xi : t); /* NaN as libm returns it */
    }
}
