/* The matrix product kernel behind `@` and its two backward forms.
 *
 * Every output element is summed in double over t = 0..K-1 in order, from
 * +0.0, and rounded once, exactly as the plain triple loop would: blocking
 * only changes which elements are computed together, never the order of one
 * element's sum, so results are bit for bit those of the naive loop (NaN and
 * Inf land in the same places). No -ffast-math, and FMA only where it cannot
 * change a number: under f32 both factors are float32 values, whose
 * product (48 significant bits) is exact in double, so fma(a, b, s) rounds
 * once exactly where s + a * b does (only a NaN's sign bit may differ, which
 * nothing prints). f64 products are not exact: no FMA.
 *
 * Speed comes from a 4x8 register tile (eight independent vector
 * accumulators, each fed by one broadcast and one load per t), a packed
 * K-block of the right operand that stays in L1, and clones chosen at run
 * time: AVX2 (SSE2 by default) for f64, and AVX2 with FMA for f32 on CPUs
 * that have it. */
#include <string.h>

#include "graph.h"

#define MR 4    /* rows of the register tile */
#define NR 8    /* columns: two vectors of four doubles */
#define KC 256  /* rows of the packed right operand: 16 KiB */

typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

/* Macros, not functions: a function returning a 32-byte vector would have
 * a different ABI in the SSE2 and AVX2 clones. */
#define LOAD4(v, p) memcpy(&(v), (p), sizeof(v4d)) /* unaligned load */
#define STORE4(p, v) memcpy((p), &(v), sizeof(v4d))
#define SPLAT(a) ((v4d){(a), (a), (a), (a)})
/* four roundings to float32, each what (double)(float)x gives */
#define ROUND4F(v) __builtin_convertvector(__builtin_convertvector((v), v4f), v4d)

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BPV_CLONES __attribute__((target_clones("avx2", "default")))
/* The f32 kernel with a += b * c contracted into vfmadd (see above). */
#define BPV_FMA_KERNEL __attribute__((target("avx2,fma"), optimize("fp-contract=fast")))
#else
#define BPV_CLONES
#endif

/* Y[k0 + t, j0 + jj] for t < kc, jj < NR into pack, columns past nr zero;
 * walks the operand along its contiguous dimension. */
static inline __attribute__((always_inline)) void pack_y(double *pack, const double *y,
                                                         int64_t yr, int64_t yc, int64_t k0,
                                                         int64_t kc, int64_t j0, int64_t nr) {
    const double *y0 = y + k0 * yr + j0 * yc;
    if (nr < NR) {
        for (int64_t t = 0; t < kc; t++)
            for (int64_t jj = 0; jj < NR; jj++)
                pack[t * NR + jj] = jj < nr ? y0[t * yr + jj * yc] : 0.0;
    } else if (yc == 1) {
        for (int64_t t = 0; t < kc; t++) memcpy(pack + t * NR, y0 + t * yr, NR * sizeof *pack);
    } else if (yr == 1) {
        for (int64_t jj = 0; jj < NR; jj++)
            for (int64_t t = 0; t < kc; t++) pack[t * NR + jj] = y0[t + jj * yc];
    } else {
        for (int64_t t = 0; t < kc; t++)
            for (int64_t jj = 0; jj < NR; jj++) pack[t * NR + jj] = y0[t * yr + jj * yc];
    }
}

/* The whole product; inlined into each clone, so each compiles it for its
 * own instruction set (and only the FMA kernel contracts). */
static inline __attribute__((always_inline)) void
matmul_body(bpv_dtype dt, int64_t M, int64_t N, int64_t K, const double *x, int64_t xr,
            int64_t xc, const double *y, int64_t yr, int64_t yc, double *c) {
    double pack[KC * NR];
    if (K == 0) { /* an empty sum is +0.0 */
        for (int64_t i = 0; i < M * N; i++) c[i] = 0.0;
        return;
    }
    for (int64_t j0 = 0; j0 < N; j0 += NR) {
        const int64_t nr = N - j0 < NR ? N - j0 : NR;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            const int64_t kc = K - k0 < KC ? K - k0 : KC;
            const bool first = k0 == 0, last = k0 + kc == K;
            pack_y(pack, y, yr, yc, k0, kc, j0, nr);
            for (int64_t i0 = 0; i0 < M; i0 += MR) {
                const int64_t mr = M - i0 < MR ? M - i0 : MR;
                const bool full = mr == MR && nr == NR;
                /* rows past M repeat the last row; their results are dropped */
                const double *x0 = x + (i0 + 0) * xr + k0 * xc;
                const double *x1 = x + (i0 + (mr > 1 ? 1 : 0)) * xr + k0 * xc;
                const double *x2 = x + (i0 + (mr > 2 ? 2 : 0)) * xr + k0 * xc;
                const double *x3 = x + (i0 + (mr > 3 ? 3 : 0)) * xr + k0 * xc;
                double *c0 = c + i0 * N + j0;
                double tile[MR][NR];
                v4d c00, c01, c10, c11, c20, c21, c30, c31;
                if (first) { /* the sums start from +0.0 */
                    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = SPLAT(0.0);
                } else if (full) { /* partial sums of the K-blocks before */
                    LOAD4(c00, c0), LOAD4(c01, c0 + 4);
                    LOAD4(c10, c0 + N), LOAD4(c11, c0 + N + 4);
                    LOAD4(c20, c0 + 2 * N), LOAD4(c21, c0 + 2 * N + 4);
                    LOAD4(c30, c0 + 3 * N), LOAD4(c31, c0 + 3 * N + 4);
                } else {
                    for (int r = 0; r < MR; r++)
                        for (int jj = 0; jj < NR; jj++)
                            tile[r][jj] = r < mr && jj < nr ? c0[r * N + jj] : 0.0;
                    LOAD4(c00, &tile[0][0]), LOAD4(c01, &tile[0][4]);
                    LOAD4(c10, &tile[1][0]), LOAD4(c11, &tile[1][4]);
                    LOAD4(c20, &tile[2][0]), LOAD4(c21, &tile[2][4]);
                    LOAD4(c30, &tile[3][0]), LOAD4(c31, &tile[3][4]);
                }
                const double *p = pack;
#pragma GCC unroll 2 /* halves the loop's counting */
                for (int64_t t = 0; t < kc; t++, p += NR) {
                    v4d b0, b1;
                    LOAD4(b0, p), LOAD4(b1, p + 4);
                    v4d a = SPLAT(x0[t * xc]);
                    c00 += a * b0;
                    c01 += a * b1;
                    a = SPLAT(x1[t * xc]);
                    c10 += a * b0;
                    c11 += a * b1;
                    a = SPLAT(x2[t * xc]);
                    c20 += a * b0;
                    c21 += a * b1;
                    a = SPLAT(x3[t * xc]);
                    c30 += a * b0;
                    c31 += a * b1;
                }
                if (last && dt == BPV_F32) {
                    c00 = ROUND4F(c00), c01 = ROUND4F(c01), c10 = ROUND4F(c10);
                    c11 = ROUND4F(c11), c20 = ROUND4F(c20), c21 = ROUND4F(c21);
                    c30 = ROUND4F(c30), c31 = ROUND4F(c31);
                }
                if (full) {
                    STORE4(c0, c00), STORE4(c0 + 4, c01);
                    STORE4(c0 + N, c10), STORE4(c0 + N + 4, c11);
                    STORE4(c0 + 2 * N, c20), STORE4(c0 + 2 * N + 4, c21);
                    STORE4(c0 + 3 * N, c30), STORE4(c0 + 3 * N + 4, c31);
                } else {
                    STORE4(&tile[0][0], c00), STORE4(&tile[0][4], c01);
                    STORE4(&tile[1][0], c10), STORE4(&tile[1][4], c11);
                    STORE4(&tile[2][0], c20), STORE4(&tile[2][4], c21);
                    STORE4(&tile[3][0], c30), STORE4(&tile[3][4], c31);
                    for (int64_t r = 0; r < mr; r++)
                        for (int64_t jj = 0; jj < nr; jj++) c0[r * N + jj] = tile[r][jj];
                }
            }
        }
    }
}

#ifdef BPV_FMA_KERNEL
BPV_FMA_KERNEL
static void matmul_f32_fma(int64_t M, int64_t N, int64_t K, const double *x, int64_t xr,
                           int64_t xc, const double *y, int64_t yr, int64_t yc, double *c) {
    matmul_body(BPV_F32, M, N, K, x, xr, xc, y, yr, yc, c);
}
#endif

BPV_CLONES
void bpv_matmul(bpv_dtype dt, int64_t M, int64_t N, int64_t K, const double *x, int64_t xr,
                int64_t xc, const double *y, int64_t yr, int64_t yc, double *c) {
#ifdef BPV_FMA_KERNEL
    if (dt == BPV_F32 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        matmul_f32_fma(M, N, K, x, xr, xc, y, yr, yc, c);
        return;
    }
#endif
    matmul_body(dt, M, N, K, x, xr, xc, y, yr, yc, c);
}
