/* Vectorised elementwise math. tanh was a third of a 64-64-64-1 tanh
 * network's step through libm's scalar tanh/expm1. Here tanh(x) is computed
 * in double from expm1(2|x|) = em as em / (em + 2), with expm1 from one
 * Cody-Waite reduction (2|x| = k ln2 + r) and the Taylor series of expm1(r)
 * to r^14 (evaluated by Estrin's scheme): a few ulps of double, far below float32's half ulp. Rounded to
 * float it equals (float)tanh(x) from libm for every one of the 2^31
 * non-negative float32 inputs (checked exhaustively; tanh is odd and the
 * sign is copied). PyTorch's own vectorised float tanh (Sleef) is itself
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

/* sum of r^(k-1)/k! for k = 1..14, expm1(r)/r, by Estrin's scheme: pairs,
 * then quads in r^2, octets in r^4 and the halves in r^8. Horner's rule
 * would be one chain of 13 dependent multiply-adds per lane; this is four
 * levels deep, so the loop runs at the pipes' throughput instead of their
 * latency. Inlined so each clone vectorises the caller. */
static inline __attribute__((always_inline)) double expm1_tail(double r) {
    const double *c = inv_fact + 1; /* c[k] multiplies r^k */
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double p0 = c[0] + c[1] * r, p1 = c[2] + c[3] * r, p2 = c[4] + c[5] * r;
    const double p3 = c[6] + c[7] * r, p4 = c[8] + c[9] * r, p5 = c[10] + c[11] * r;
    const double p6 = c[12] + c[13] * r;
    const double q0 = p0 + p1 * r2, q1 = p2 + p3 * r2, q2 = p4 + p5 * r2;
    const double o0 = q0 + q1 * r4, o1 = q2 + p6 * r4;
    return o0 + o1 * r8;
}

/* u = k ln2 + r with |r| <= ln2/2 (Cody-Waite: ln2 in two parts, the first
 * with trailing zeros so k * ln2hi is exact): returns expm1(r) and sets
 * *scale = 2^k. k = 0 below ln2/2, where r = u exactly. For |k| <= 1022. */
static inline __attribute__((always_inline)) double exp_reduce(double u, double *scale) {
    const double shift = 0x1.8p52; /* k lands in kd's low mantissa bits */
    const double kd = u * 0x1.71547652b82fep0 + shift;
    const double k = kd - shift;
    const double r = (u - k * 0x1.62e42fee00000p-1) - k * 0x1.a39ef35793c76p-33;
    uint64_t kb;
    memcpy(&kb, &kd, sizeof kb);
    kb = (kb + 1023) << 52; /* k's low 12 bits, biased: the exponent of 2^k */
    memcpy(scale, &kb, sizeof *scale);
    return expm1_tail(r) * r; /* Taylor to r^14: error < 1e-17 relative */
}

VM_CLONES
void bpv_tanh_f32(const double *x, double *o, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const double xi = x[i];
        double ax = fabs(xi);
        ax = ax < 20.0 ? ax : 20.0; /* tanh(20) rounds to 1 in double; NaN is restored below */
        double scale;
        const double q = exp_reduce(2.0 * ax, &scale);
        /* expm1(2|x|) = 2^k expm1(r) + (2^k - 1): the product and 2^k - 1
         * are exact, and the sum cannot cancel (expm1(r) > -0.3), so there is
         * one rounding and no loss for small x */
        const double em = scale * q + (scale - 1.0);
        const double t = copysign(em / (em + 2.0), xi);
        o[i] = (double)(float)(xi != xi ? xi + xi : t); /* NaN as libm returns it */
    }
}

VM_CLONES
void bpv_exp_f32(const double *x, double *o, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const double xi = x[i];
        /* float32's exp overflows above 88.8 and is 0 below -104; the clamp
         * keeps 2^k a normal double (NaN passes it and is restored below) */
        double u = xi < -110.0 ? -110.0 : xi;
        u = u > 90.0 ? 90.0 : u;
        double scale;
        const double q = exp_reduce(u, &scale);
        const double e = scale * q + scale; /* 2^k exp(r), one rounding */
        o[i] = (double)(float)(xi != xi ? xi + xi : e);
    }
}
