/* The vector types and the register-tile step the float32 kernels share
 * (matmul.c, conv.c): GCC's generic vectors, which the AVX2 clones compile
 * to whole registers. Macros, not functions: a function taking or
 * returning a 32-byte vector would have a different ABI in the SSE2 and
 * AVX2 clones. Every step is one rounded multiply and one rounded add
 * (-ffp-contract=off), so a tile gives each element's sequential sum. */
#ifndef BPV_SIMD_H
#define BPV_SIMD_H

#include <string.h>

/* Not under ThreadSanitizer: a clone's resolver runs while the program is
 * relocated, before TSan's runtime is ready, and its instrumented code
 * crashes there. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define BPV_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define BPV_CLONES
#endif

/* BPV_WIDE marks a kernel compiled for AVX-512 (sixteen-float vectors),
 * run only where bpv_simd_wide() says the CPU has it. A plain target
 * attribute, not a clone: the choice is made by the caller at run time. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BPV_HAVE_WIDE 1
#define BPV_WIDE __attribute__((target("avx512f")))
#else
#define BPV_HAVE_WIDE 0
#define BPV_WIDE
#endif

#include <stdbool.h>

/* Whether the AVX-512 kernels run: the CPU has AVX-512F and BPV_AVX512 is
 * not 0 (the tests' knob to compare both kernels); read once. Either
 * kernel gives the same bits. */
bool bpv_simd_wide(void);

typedef double v4d __attribute__((vector_size(32)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));

#define LOAD4(v, p) memcpy(&(v), (p), sizeof(v4d)) /* unaligned load */
#define STORE4(p, v) memcpy((p), &(v), sizeof(v4d))
#define SPLAT(a) ((v4d){(a), (a), (a), (a)})
#define LOAD8F(v, p) memcpy(&(v), (p), sizeof(v8f))
#define STORE8F(p, v) memcpy((p), &(v), sizeof(v8f))
#define SPLAT8F(a) ((v8f){(a), (a), (a), (a), (a), (a), (a), (a)})

/* One step of a 4 x 16 float tile: row r's two accumulators sRr0, sRr1
 * (named s00 s01 s10 s11 s20 s21 s30 s31 by the caller) add a_r times the
 * sixteen columns b0, b1. */
#define TILE4X16_STEP(a0, a1, a2, a3, b0, b1)                                     \
    do {                                                                          \
        v8f v_ = SPLAT8F(a0);                                                     \
        s00 += v_ * (b0);                                                         \
        s01 += v_ * (b1);                                                         \
        v_ = SPLAT8F(a1);                                                         \
        s10 += v_ * (b0);                                                         \
        s11 += v_ * (b1);                                                         \
        v_ = SPLAT8F(a2);                                                         \
        s20 += v_ * (b0);                                                         \
        s21 += v_ * (b1);                                                         \
        v_ = SPLAT8F(a3);                                                         \
        s30 += v_ * (b0);                                                         \
        s31 += v_ * (b1);                                                         \
    } while (0)

#endif
