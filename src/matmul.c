/* The matrix product kernel behind `@` and its two backward forms.
 *
 * Every output element is summed in double over t = 0..K-1 in order, from
 * +0.0, and rounded once, exactly as the plain triple loop would: blocking
 * only changes which elements are computed together, never the order of one
 * element's sum, so results are bit for bit those of the naive loop (and NaN
 * and Inf propagate the same way). No -ffast-math and no FMA contraction.
 *
 * Speed comes from a 4x8 register tile (eight independent vector
 * accumulators, each fed by one broadcast and one load per t), a packed
 * K-block of the right operand that stays in L1, and an AVX2 clone chosen
 * at load time on CPUs that have it (the default clone uses SSE2). */
#include <string.h>

#include "graph.h"

#define MR 4    /* rows of the register tile */
#define NR 8    /* columns: two vectors of four doubles */
#define KC 256  /* rows of the packed right operand: 16 KiB */

typedef double v4d __attribute__((vector_size(32)));

/* Macros, not functions: a function returning a 32-byte vector would have
 * a different ABI in the SSE2 and AVX2 clones. */
#define LOAD4(v, p) memcpy(&(v), (p), sizeof(v4d)) /* unaligned load */
#define SPLAT(a) ((v4d){(a), (a), (a), (a)})

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BPV_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define BPV_CLONES
#endif

BPV_CLONES
void bpv_matmul(bpv_dtype dt, int64_t M, int64_t N, int64_t K, const double *x, int64_t xr,
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
            /* pack Y[k0.., j0..] as kc rows of NR, zero columns past N;
             * walk the operand along its contiguous dimension */
            if (yr == 1 && yc != 1) {
                for (int64_t jj = 0; jj < NR; jj++)
                    for (int64_t t = 0; t < kc; t++)
                        pack[t * NR + jj] = jj < nr ? y[(k0 + t) + (j0 + jj) * yc] : 0.0;
            } else {
                for (int64_t t = 0; t < kc; t++)
                    for (int64_t jj = 0; jj < NR; jj++)
                        pack[t * NR + jj] = jj < nr ? y[(k0 + t) * yr + (j0 + jj) * yc] : 0.0;
            }
            for (int64_t i0 = 0; i0 < M; i0 += MR) {
                const int64_t mr = M - i0 < MR ? M - i0 : MR;
                /* rows past M repeat the last row; their results are dropped */
                const double *x0 = x + (i0 + 0) * xr + k0 * xc;
                const double *x1 = x + (i0 + (mr > 1 ? 1 : 0)) * xr + k0 * xc;
                const double *x2 = x + (i0 + (mr > 2 ? 2 : 0)) * xr + k0 * xc;
                const double *x3 = x + (i0 + (mr > 3 ? 3 : 0)) * xr + k0 * xc;
                double tile[MR][NR];
                for (int r = 0; r < MR; r++)
                    for (int jj = 0; jj < NR; jj++)
                        tile[r][jj] = (!first && r < mr && jj < nr) ? c[(i0 + r) * N + j0 + jj]
                                                                     : 0.0;
                v4d c00, c01, c10, c11, c20, c21, c30, c31;
                LOAD4(c00, &tile[0][0]), LOAD4(c01, &tile[0][4]);
                LOAD4(c10, &tile[1][0]), LOAD4(c11, &tile[1][4]);
                LOAD4(c20, &tile[2][0]), LOAD4(c21, &tile[2][4]);
                LOAD4(c30, &tile[3][0]), LOAD4(c31, &tile[3][4]);
                const double *p = pack;
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
                memcpy(&tile[0][0], &c00, 32), memcpy(&tile[0][4], &c01, 32);
                memcpy(&tile[1][0], &c10, 32), memcpy(&tile[1][4], &c11, 32);
                memcpy(&tile[2][0], &c20, 32), memcpy(&tile[2][4], &c21, 32);
                memcpy(&tile[3][0], &c30, 32), memcpy(&tile[3][4], &c31, 32);
                for (int64_t r = 0; r < mr; r++) {
                    double *cr = c + (i0 + r) * N + j0;
                    if (last)
                        for (int64_t jj = 0; jj < nr; jj++) cr[jj] = bpv_round(dt, tile[r][jj]);
                    else
                        for (int64_t jj = 0; jj < nr; jj++) cr[jj] = tile[r][jj];
                }
            }
        }
    }
}
