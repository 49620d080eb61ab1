/* Elementwise tanh, exp, log and sigmoid as PyTorch's CPU kernels compute
 * them (vmath.c): SLEEF's vector functions where torch uses them, libm
 * where torch uses libm. */
#ifndef BPV_VMATH_H
#define BPV_VMATH_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

typedef enum bpv_vfn { BPV_VF_TANH, BPV_VF_EXP, BPV_VF_LOG, BPV_VF_SIGMOID } bpv_vfn;

/* o[i] = fn(x[i]) for i < n, in dtype dt (x holds values of dt), as torch
 * computes fn on a contiguous tensor of n elements: for sigmoid, an
 * element's bits depend on its position (the last n % 16 floats, n % 8
 * doubles, take libm's path). o may equal x. */
void bpv_vmath(bpv_vfn fn, bpv_dtype dt, const double *x, double *o, int64_t n);
/* bpv_vmath under f32 over float32 storage. o may equal x. */
void bpv_vmath32(bpv_vfn fn, const float *x, float *o, int64_t n);
/* Whether torch's AVX2 kernels are the ones to follow here (CPU with AVX2
 * and FMA, ATEN_CPU_CAPABILITY not "default"): SLEEF, and the FMAs and
 * reduction orders of that build. */
bool bpv_vmath_sleef(void);
/* How many leading elements of an n-element result torch computes in whole
 * blocks of two vectors (sigmoid, pow), in either of its builds. */
int64_t bpv_vmath_blocks(bpv_dtype dt, int64_t n);
/* One element of sigmoid as torch computes it: vec when the element lies
 * in a whole block (bpv_vmath_blocks). */
double bpv_vmath_sigmoid(bpv_dtype dt, double x, bool vec);
/* One element of a ** b as torch's pow kernel computes it: vec when the
 * element lies in a whole block (bpv_vmath_blocks); scalar when b is a
 * Python number. */
double bpv_vmath_pow(bpv_dtype dt, double a, double b, bool vec, bool scalar);
/* fn of one value, as for a one-element tensor. */
double bpv_vmath1(bpv_vfn fn, bpv_dtype dt, double x);

#endif
