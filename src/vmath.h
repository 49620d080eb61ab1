/* Vectorised elementwise math (vmath.c). */
#ifndef BPV_VMATH_H
#define BPV_VMATH_H

#include <stdint.h>

/* o[i] = tanh(x[i]) rounded to float32, for dtype f32: libm's
 * (float)tanh(x) for every float32 x (checked exhaustively), several times
 * fewer instructions. o may equal x. */
void bpv_tanh_f32(const double *x, double *o, int64_t n);
/* o[i] = exp(x[i]) rounded to float32, for float32 x: libm's (float)exp(x)
 * for every float32 x (checked exhaustively). o may equal x. */
void bpv_exp_f32(const double *x, double *o, int64_t n);

#endif
