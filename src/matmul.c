/* The matrix product kernel behind `@` and its two backward forms.
 *
 * Every output element is summed over t = 0..K-1 in order, from +0.0, in
 * the model's dtype: under f32 each product and each partial sum is rounded
 * to float32, under f64 to double. That is what the reference BLAS behind
 * PyTorch (sgemm/dgemm, sgemv, sdot; no FMA) does for torch.matmul and both
 * of its backward products, so `@` gives PyTorch's numbers bit for bit, NaN
 * and Inf included. Blocking only changes which elements are computed
 * together, never the order of one element's sum; a partial sum carried
 * between K-blocks is a value of the dtype, so storing it changes nothing.
 * No -ffast-math and no FMA (-ffp-contract=off): a fused a * b + s would
 * skip the product's rounding.
 *
 * Speed: the operands are packed into float32 (f32) or double (f64) panels
 * once per K-block, then a register tile of independent vector
 * accumulators (each fed by one broadcast and one load per t) walks them.
 * The f32 tile's multiplies and adds go to separate pipes. Clones are
 * chosen at run time: AVX2, SSE2 by default. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "pool.h"
#include "simd.h"

#define MR 4    /* f64: rows of the register tile */
#define NR 8    /* f64: columns, two vectors of four doubles */
#define MRF 4   /* f32: rows of the register tile */
#define NRF 16  /* f32: columns, two vectors of eight floats */
#define NRW 32  /* f32 under AVX-512: columns, two vectors of sixteen floats */
#define KC 256  /* rows of a packed K-block */
#define DIRECT_MAX 8192 /* floats of a float32 operand read in place (32 KiB) */

static int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

size_t bpv_matmul_work(int64_t M, int64_t N, int64_t K) {
    /* either orientation (bpv_matmul picks one) */
    int64_t kc = K < KC ? K : KC, a = round_up(M, MRF) + round_up(N, NRW);
    int64_t b = round_up(N, MRF) + round_up(M, NRW);
    return (size_t)((a > b ? a : b) * kc);
}

/* ---- f64 ------------------------------------------------------------------- */

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

BPV_CLONES
static void matmul_f64(int64_t M, int64_t N, int64_t K, const double *x, int64_t xr, int64_t xc,
                       const double *y, int64_t yr, int64_t yc, double *c) {
    double pack[KC * NR];
    for (int64_t j0 = 0; j0 < N; j0 += NR) {
        const int64_t nr = N - j0 < NR ? N - j0 : NR;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            const int64_t kc = K - k0 < KC ? K - k0 : KC;
            const bool first = k0 == 0;
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

/* ---- f32 ------------------------------------------------------------------- */

typedef float v4f __attribute__((vector_size(16)));

/* Element i of a double (s32 false) or float32 operand, as float32 (exact:
 * the values are float32 already). Callers pass constants for s32. */
#define AT(p, s32, i) ((s32) ? ((const float *)(p))[i] : (float)((const double *)(p))[i])
_Static_assert(MRF == 4 && NRF % 4 == 0, "pack_t4 packs four lines at a time");

/* dst[t * w + l] = src[l * ls + t] as float32 for l < 4, t < kc: four
 * operand lines, each contiguous along t, become t-major rows. Four by four
 * blocks are converted and transposed in registers; the conversion is exact
 * (the values are float32 already). */
static inline __attribute__((always_inline)) void pack_t4(float *dst, int64_t w,
                                                          const void *src_, bool s32,
                                                          int64_t ls, int64_t kc) {
    const double *src = src_;
    const float *srcf = src_;
    int64_t t = 0;
    for (; t + 4 <= kc; t += 4) {
        v4f r0, r1, r2, r3;
        if (s32) {
            memcpy(&r0, srcf + t, sizeof r0), memcpy(&r1, srcf + ls + t, sizeof r1);
            memcpy(&r2, srcf + 2 * ls + t, sizeof r2), memcpy(&r3, srcf + 3 * ls + t, sizeof r3);
        } else {
            v4d d0, d1, d2, d3;
            LOAD4(d0, src + t), LOAD4(d1, src + ls + t);
            LOAD4(d2, src + 2 * ls + t), LOAD4(d3, src + 3 * ls + t);
            r0 = __builtin_convertvector(d0, v4f), r1 = __builtin_convertvector(d1, v4f);
            r2 = __builtin_convertvector(d2, v4f), r3 = __builtin_convertvector(d3, v4f);
        }
        v4f a0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5);
        v4f a1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
        v4f a2 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5);
        v4f a3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
        v4f o0 = __builtin_shufflevector(a0, a2, 0, 1, 4, 5);
        v4f o1 = __builtin_shufflevector(a0, a2, 2, 3, 6, 7);
        v4f o2 = __builtin_shufflevector(a1, a3, 0, 1, 4, 5);
        v4f o3 = __builtin_shufflevector(a1, a3, 2, 3, 6, 7);
        memcpy(dst + t * w, &o0, sizeof o0), memcpy(dst + (t + 1) * w, &o1, sizeof o1);
        memcpy(dst + (t + 2) * w, &o2, sizeof o2), memcpy(dst + (t + 3) * w, &o3, sizeof o3);
    }
    for (; t < kc; t++)
        for (int64_t l = 0; l < 4; l++) dst[t * w + l] = AT(src_, s32, l * ls + t);
}

/* An operand's K-block as float32 panels of w lanes, t-major within each
 * panel (dst[panel][t][lane]); lanes past n are zero. Lane l of time t is
 * src[l * ls + t * ts]: X's rows (w = MRF) or Y's columns (w = NRF). The
 * two loops below read the operand along whichever index is contiguous. */
static inline __attribute__((always_inline)) void pack_f32(float *dst, const void *src,
                                                           bool s32, int64_t ls, int64_t ts,
                                                           int64_t n, int64_t w, int64_t kc) {
    for (int64_t l0 = 0; l0 < n; l0 += w, dst += kc * w) {
        const int64_t nl = n - l0 < w ? n - l0 : w;
        const int64_t o = l0 * ls; /* s0 = src + o */
        /* a partial panel's padding lanes: zeroed by one call for the whole
         * panel first (a short fill each time became a slow `rep stos`) */
        if (nl < w) memset(dst, 0, (size_t)(kc * w) * sizeof *dst);
        int64_t done = 0; /* lanes packed by a fast path; the rest below */
        if (ls == 1 && s32 && nl == w) { /* a time's lanes are contiguous */
            for (int64_t t = 0; t < kc; t++) /* w is a constant here: no call */
                memcpy(dst + t * w, (const float *)src + o + t * ts, (size_t)w * sizeof *dst);
            continue;
        }
        if (ls == 1) {
            for (int64_t t = 0; t < kc; t++)
                for (int64_t l = 0; l < nl; l++) dst[t * w + l] = AT(src, s32, o + t * ts + l);
            continue;
        }
        if (ts == 1) /* each lane is contiguous in time: four at a time */
            for (; done + 4 <= nl; done += 4)
                pack_t4(dst + done, w,
                        s32 ? (const void *)((const float *)src + o + done * ls)
                            : (const void *)((const double *)src + o + done * ls),
                        s32, ls, kc);
        for (int64_t t = 0; t < kc; t++)
            for (int64_t l = done; l < nl; l++) dst[t * w + l] = AT(src, s32, o + l * ls + t * ts);
    }
}

/* One MRF x (2 * VW)-column tile of c, c[r * cr + j * cc] for r < mr,
 * j < nr: each element's sum over t < kc, from +0.0 (first) or from c's
 * partial sum of the K-blocks before. a[r * ar] is row r's element at t and
 * steps by as per t, b holds the tile's columns at t and steps by bs: in
 * the panels or in the operands. VT is a vector of VW floats: the kernel is
 * written once and instantiated for 8-float (AVX2, SSE2) and 16-float
 * (AVX-512) registers, and the lanes never change an element's sum. */
#define DEFINE_TILE_F32(name, VT, VW)                                                    \
    static inline __attribute__((always_inline)) void name(                             \
        const float *a, int64_t ar, int64_t as, const float *b, int64_t bs, int64_t kc,   \
        bool first, void *c_, int64_t o0, int64_t cr, int64_t cc, int64_t mr, int64_t nr,  \
        bool io32) {                                                                      \
        float tile[MRF][2 * VW];                                                          \
        VT c00, c01, c10, c11, c20, c21, c30, c31;                                        \
        if (first) { /* the sums start from +0.0 */                                      \
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = (VT){0};                      \
        } else { /* partial sums of the K-blocks before: float32 values */               \
            for (int r = 0; r < MRF; r++)                                                 \
                for (int jj = 0; jj < 2 * VW; jj++)                                       \
                    tile[r][jj] = r < mr && jj < nr ? AT(c_, io32, o0 + r * cr + jj * cc) \
                                                    : 0.0f;                               \
            memcpy(&c00, &tile[0][0], sizeof c00), memcpy(&c01, &tile[0][VW], sizeof c01); \
            memcpy(&c10, &tile[1][0], sizeof c10), memcpy(&c11, &tile[1][VW], sizeof c11); \
            memcpy(&c20, &tile[2][0], sizeof c20), memcpy(&c21, &tile[2][VW], sizeof c21); \
            memcpy(&c30, &tile[3][0], sizeof c30), memcpy(&c31, &tile[3][VW], sizeof c31); \
        }                                                                                 \
        const int64_t ar2 = 2 * ar, ar3 = 3 * ar;                                         \
        /* one rounded multiply and one rounded add per element and t: never             \
         * contracted (-ffp-contract=off); a scalar times a vector is that                \
         * scalar in every lane */                                                        \
        _Pragma("GCC unroll 2") for (int64_t t = 0; t < kc; t++, a += as, b += bs) {      \
            VT b0, b1;                                                                    \
            memcpy(&b0, b, sizeof b0), memcpy(&b1, b + VW, sizeof b1);                    \
            c00 += a[0] * b0;                                                             \
            c01 += a[0] * b1;                                                             \
            c10 += a[ar] * b0;                                                            \
            c11 += a[ar] * b1;                                                            \
            c20 += a[ar2] * b0;                                                           \
            c21 += a[ar2] * b1;                                                           \
            c30 += a[ar3] * b0;                                                           \
            c31 += a[ar3] * b1;                                                           \
        }                                                                                 \
        if (mr == MRF && nr == 2 * VW && cc == 1 && io32) {                               \
            float *cf = (float *)c_ + o0;                                                 \
            memcpy(cf, &c00, sizeof c00), memcpy(cf + VW, &c01, sizeof c01);              \
            memcpy(cf + cr, &c10, sizeof c10), memcpy(cf + cr + VW, &c11, sizeof c11);    \
            memcpy(cf + 2 * cr, &c20, sizeof c20), memcpy(cf + 2 * cr + VW, &c21, sizeof c21); \
            memcpy(cf + 3 * cr, &c30, sizeof c30), memcpy(cf + 3 * cr + VW, &c31, sizeof c31); \
            return;                                                                       \
        }                                                                                 \
        memcpy(&tile[0][0], &c00, sizeof c00), memcpy(&tile[0][VW], &c01, sizeof c01);    \
        memcpy(&tile[1][0], &c10, sizeof c10), memcpy(&tile[1][VW], &c11, sizeof c11);    \
        memcpy(&tile[2][0], &c20, sizeof c20), memcpy(&tile[2][VW], &c21, sizeof c21);    \
        memcpy(&tile[3][0], &c30, sizeof c30), memcpy(&tile[3][VW], &c31, sizeof c31);    \
        double *cd = io32 ? NULL : (double *)c_ + o0;                                     \
        float *cf = io32 ? (float *)c_ + o0 : NULL;                                       \
        for (int64_t r = 0; r < mr; r++)                                                  \
            for (int64_t jj = 0; jj < nr; jj++) {                                         \
                if (io32) cf[r * cr + jj * cc] = tile[r][jj];                             \
                else cd[r * cr + jj * cc] = tile[r][jj]; /* exact */                      \
            }                                                                             \
    }

DEFINE_TILE_F32(tile_f32_8, v8f, 8)
DEFINE_TILE_F32(tile_f32_16, v16f, 16)

/* The f32 product; io32: x, y and c are float32 arrays, else doubles
 * holding float32 values; nrf: the tile's columns (NRF, or NRW in the
 * AVX-512 kernel). Inlined into one function per storage type and width. */
static inline __attribute__((always_inline)) void
matmul_f32_io(int64_t M, int64_t N, int64_t K, const void *x, int64_t xr, int64_t xc,
              const void *y, int64_t yr, int64_t yc, void *c_, int64_t cr, int64_t cc,
              float *work, bool io32, const int64_t nrf) {
    const int64_t kcmax = K < KC ? K : KC;
    float *xp = work, *yp = work + round_up(M, MRF) * kcmax;
    /* Float32 operands small enough to stay in cache are read in place
     * rather than packed: X (also when its rows are adjacent, xr == 1),
     * and Y when each of its rows is contiguous. Only a last partial tile
     * of rows, or panel of columns, is then packed, zero-padded. */
    const bool xdir = io32 && (M * K <= DIRECT_MAX || xr == 1);
    const bool ydir = io32 && yc == 1 && K * N <= DIRECT_MAX;
    const int64_t mfull = M / MRF * MRF, nfull = N / nrf * nrf;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = K - k0 < KC ? K - k0 : KC;
        /* X's rows, Y's columns: all of them, or the partial ones */
        if (io32) {
            const float *xk = (const float *)x + k0 * xc, *yk = (const float *)y + k0 * yr;
            if (!xdir) pack_f32(xp, xk, true, xr, xc, M, MRF, kc);
            else if (mfull < M)
                pack_f32(xp + mfull * kc, xk + mfull * xr, true, xr, xc, M - mfull, MRF, kc);
            if (!ydir) pack_f32(yp, yk, true, yc, yr, N, nrf, kc);
            else if (nfull < N)
                pack_f32(yp + nfull * kc, yk + nfull * yc, true, yc, yr, N - nfull, nrf, kc);
        } else {
            pack_f32(xp, (const double *)x + k0 * xc, false, xr, xc, M, MRF, kc);
            pack_f32(yp, (const double *)y + k0 * yr, false, yc, yr, N, nrf, kc);
        }
        for (int64_t i0 = 0; i0 < M; i0 += MRF) {
            const int64_t mr = M - i0 < MRF ? M - i0 : MRF;
            for (int64_t j0 = 0; j0 < N; j0 += nrf) {
                const int64_t nr = N - j0 < nrf ? N - j0 : nrf;
                const float *a = xp + i0 * kc, *b = yp + j0 * kc;
                int64_t ar = 1, as = MRF, bs = nrf;
                if (xdir && mr == MRF) a = (const float *)x + i0 * xr + k0 * xc, ar = xr, as = xc;
                if (ydir && nr == nrf) b = (const float *)y + k0 * yr + j0, bs = yr;
                const int64_t o0 = i0 * cr + j0 * cc; /* the tile's corner in c */
                if (nrf == NRW)
                    tile_f32_16(a, ar, as, b, bs, kc, k0 == 0, c_, o0, cr, cc, mr, nr, io32);
                else
                    tile_f32_8(a, ar, as, b, bs, kc, k0 == 0, c_, o0, cr, cc, mr, nr, io32);
            }
        }
    }
}

BPV_CLONES
static void matmul_f32(int64_t M, int64_t N, int64_t K, const double *x, int64_t xr, int64_t xc,
                       const double *y, int64_t yr, int64_t yc, double *c, int64_t cr,
                       int64_t cc, float *work) {
    matmul_f32_io(M, N, K, x, xr, xc, y, yr, yc, c, cr, cc, work, false, NRF);
}

BPV_CLONES
static void matmul_f32s(int64_t M, int64_t N, int64_t K, const float *x, int64_t xr,
                        int64_t xc, const float *y, int64_t yr, int64_t yc, float *c,
                        int64_t cr, int64_t cc, float *work) {
    matmul_f32_io(M, N, K, x, xr, xc, y, yr, yc, c, cr, cc, work, true, NRF);
}

#if BPV_HAVE_WIDE
BPV_WIDE
static void matmul_f32s_wide(int64_t M, int64_t N, int64_t K, const float *x, int64_t xr,
                             int64_t xc, const float *y, int64_t yr, int64_t yc, float *c,
                             int64_t cr, int64_t cc, float *work) {
    matmul_f32_io(M, N, K, x, xr, xc, y, yr, yc, c, cr, cc, work, true, NRW);
}
#endif

bool bpv_simd_wide(void) {
    static atomic_int wide = -1; /* -1: not decided yet */
    int w = atomic_load_explicit(&wide, memory_order_relaxed);
    if (w < 0) {
#if BPV_HAVE_WIDE
        const char *e = getenv("BPV_AVX512");
        w = __builtin_cpu_supports("avx512f") && !(e && strcmp(e, "0") == 0);
#else
        w = 0;
#endif
        atomic_store_explicit(&wide, w, memory_order_relaxed);
    }
    return w;
}

/* The float32 tile's columns on this CPU. */
static int64_t tile_cols(void) { return bpv_simd_wide() ? NRW : NRF; }


/* matmul_f32s by the kernel of tiles nrf columns wide */
static void f32s(int64_t nrf, int64_t M, int64_t N, int64_t K, const float *x, int64_t xr,
                 int64_t xc, const float *y, int64_t yr, int64_t yc, float *c, int64_t cr,
                 int64_t cc, float *work) {
#if BPV_HAVE_WIDE
    if (nrf == NRW) {
        matmul_f32s_wide(M, N, K, x, xr, xc, y, yr, yc, c, cr, cc, work);
        return;
    }
#endif
    matmul_f32s(M, N, K, x, xr, xc, y, yr, yc, c, cr, cc, work);
}

/* K = 1, an outer product: +0.0 plus one rounded product (-0.0 becomes
 * +0.0). */
BPV_CLONES
static void outer(bpv_dtype dt, int64_t M, int64_t N, const double *x, int64_t xr,
                  const double *y, int64_t yc, double *c) {
    for (int64_t i = 0; i < M; i++) {
        const double a = x[i * xr];
        double *ci = c + i * N;
        if (dt == BPV_F32 && yc == 1)
            for (int64_t j = 0; j < N; j++) ci[j] = (double)(float)(a * y[j]) + 0.0;
        else
            for (int64_t j = 0; j < N; j++) ci[j] = bpv_round(dt, a * y[j * yc]) + 0.0;
    }
}

/* outer over float32 storage: a float32 product is the rounded double one */
BPV_CLONES
static void outer32(int64_t M, int64_t N, const float *x, int64_t xr, const float *y, int64_t yc,
                    float *c, int64_t cr, int64_t cc) {
    if (cc != 1) { /* a thread's columns of a transposed product */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) c[i * cr + j * cc] = x[i * xr] * y[j * yc] + 0.0f;
        return;
    }
    for (int64_t i = 0; i < M; i++) {
        const float a = x[i * xr];
        float *ci = c + i * cr;
        for (int64_t j = 0; j < N; j++) ci[j] = a * y[j * yc] + 0.0f;
    }
}

/* The register tiles of nrf columns an M x N product takes: a wide tile
 * costs the cycles of a narrow one (twice the lanes), so the fewest tiles
 * win. */
static int64_t tiles(int64_t M, int64_t N, int64_t nrf) {
    return (M + MRF - 1) / MRF * ((N + nrf - 1) / nrf);
}

static void mm64(bpv_dtype dt, int64_t M, int64_t N, int64_t K, const double *x, int64_t xr,
                 int64_t xc, const double *y, int64_t yr, int64_t yc, double *c, float *work) {
    if (K == 0) { /* an empty sum is +0.0 */
        for (int64_t i = 0; i < M * N; i++) c[i] = 0.0;
        return;
    }
    if (K == 1) {
        outer(dt, M, N, x, xr, y, yc, c);
        return;
    }
    /* A narrow product (a few columns, many rows) fills the 16-lane tiles
     * better as its transpose, C^T = Y^T X^T: each element is the same sum
     * of the same products in the same order (a * b == b * a exactly). */
    if (dt == BPV_F32 && tiles(N, M, NRF) < tiles(M, N, NRF))
        matmul_f32(N, M, K, y, yc, yr, x, xc, xr, c, 1, N, work);
    else if (dt == BPV_F32)
        matmul_f32(M, N, K, x, xr, xc, y, yr, yc, c, N, 1, work);
    else
        matmul_f64(M, N, K, x, xr, xc, y, yr, yc, c);
}

/* A matrix times a vector over float32 storage, c[i] = sum over t of
 * X(i, t) * y[t * yr], each sum in t order from +0.0 as the tiles do it,
 * eight rows to a vector: X read in place when its rows are adjacent
 * (xr == 1), else packed eight rows to a panel. np panels (1 to 4) go
 * together, so that up to four sums are in flight. */
static inline __attribute__((always_inline)) void
mv_panels(int np, const float *p, int64_t ps, int64_t ts, const float *y, int64_t yr,
          int64_t kc, bool first, float *c, int64_t rows) {
    v8f a0 = SPLAT8F(0.0f), a1 = a0, a2 = a0, a3 = a0;
    float tile[4][8] = {{0}};
    if (!first) { /* the partial sums of the K-blocks before */
        memcpy(tile, c, (size_t)rows * sizeof *c);
        LOAD8F(a0, tile[0]), LOAD8F(a1, tile[1]), LOAD8F(a2, tile[2]), LOAD8F(a3, tile[3]);
    }
    for (int64_t t = 0; t < kc; t++, p += ts) {
        const v8f b = SPLAT8F(y[t * yr]);
        v8f v;
        LOAD8F(v, p), a0 += v * b;
        if (np > 1) LOAD8F(v, p + ps), a1 += v * b;
        if (np > 2) LOAD8F(v, p + 2 * ps), a2 += v * b;
        if (np > 3) LOAD8F(v, p + 3 * ps), a3 += v * b;
    }
    memcpy(tile[0], &a0, sizeof a0), memcpy(tile[1], &a1, sizeof a1);
    memcpy(tile[2], &a2, sizeof a2), memcpy(tile[3], &a3, sizeof a3);
    memcpy(c, tile, (size_t)rows * sizeof *c);
}

BPV_CLONES
static void matvec32(int64_t M, int64_t K, const float *x, int64_t xr, int64_t xc,
                     const float *y, int64_t yr, float *c, float *work) {
    enum { W = 8 };
    const bool direct = xr == 1 && M % W == 0;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = K - k0 < KC ? K - k0 : KC;
        if (!direct) pack_f32(work, x + k0 * xc, true, xr, xc, M, W, kc);
        for (int64_t i0 = 0; i0 < M; i0 += 4 * W) {
            const int64_t rows = M - i0 < 4 * W ? M - i0 : 4 * W;
            const int np = (int)((rows + W - 1) / W);
            /* panel q's lanes at t: p + q * ps + t * ts */
            const float *p = direct ? x + i0 + k0 * xc : work + i0 * kc;
            const int64_t ps = direct ? W : W * kc, ts = direct ? xc : W;
            switch (np) {
            case 4: mv_panels(4, p, ps, ts, y + k0 * yr, yr, kc, k0 == 0, c + i0, rows); break;
            case 3: mv_panels(3, p, ps, ts, y + k0 * yr, yr, kc, k0 == 0, c + i0, rows); break;
            case 2: mv_panels(2, p, ps, ts, y + k0 * yr, yr, kc, k0 == 0, c + i0, rows); break;
            default: mv_panels(1, p, ps, ts, y + k0 * yr, yr, kc, k0 == 0, c + i0, rows); break;
            }
        }
    }
}

/* The f32 product into c with row stride cr and column stride cc: a
 * thread's block of a larger product is one of these. */
static inline __attribute__((always_inline)) void mm32(int64_t M, int64_t N, int64_t K, const float *x, int64_t xr, int64_t xc,
                 const float *y, int64_t yr, int64_t yc, float *c, int64_t cr, int64_t cc,
                 float *work) {
    if (K == 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) c[i * cr + j * cc] = 0.0f;
        return;
    }
    if (K == 1) {
        outer32(M, N, x, xr, y, yc, c, cr, cc);
        return;
    }
    if (N == 1 && (cr == 1 || M == 1)) {
        matvec32(M, K, x, xr, xc, y, yr, c, work);
        return;
    }
    if (M == 1 && cc == 1) { /* c^T = Y^T x^T: the same products, the same order */
        matvec32(N, K, y, yc, yr, x, xc, c, work);
        return;
    }
    /* C or its transpose, C^T = Y^T X^T (the same products in the same
     * order), by narrow or wide tiles: the fewest tiles, narrow ones on a
     * tie (less padding to pack) */
    int64_t nrf = NRF, best = tiles(M, N, NRF);
    bool tr = tiles(N, M, NRF) < best;
    if (tr) best = tiles(N, M, NRF);
    if (bpv_simd_wide()) {
        if (tiles(M, N, NRW) < best) nrf = NRW, tr = false, best = tiles(M, N, NRW);
        if (tiles(N, M, NRW) < best) nrf = NRW, tr = true;
    }
    if (tr)
        f32s(nrf, N, M, K, y, yc, yr, x, xc, xr, c, cc, cr, work);
    else
        f32s(nrf, M, N, K, x, xr, xc, y, yr, yc, c, cr, cc, work);
}

/* ---- threads -------------------------------------------------------------------
 * A product on several threads: each computes a block of whole rows or
 * whole columns of c, by the serial kernel, with its own packing space; an
 * element's sum is the same whichever block it is in. Rows are split when
 * the operand every thread then packs whole (Y, K x N) is the smaller,
 * else columns (each packs X, M x K). */
typedef struct mm_job {
    bool f32s, rows;
    bpv_dtype dt;
    int64_t M, N, K, units, xr, xc, yr, yc;
    const void *x, *y;
    void *c;
} mm_job;

static void mm_part(void *ctx, int tid, int nt, float *work) {
    const mm_job *j = ctx;
    int64_t lo, hi;
    bpv_pool_range(j->units, tid, nt, &lo, &hi);
    if (j->rows) {
        const int64_t i0 = lo * MRF, i1 = hi * MRF < j->M ? hi * MRF : j->M;
        if (i1 <= i0) return;
        if (j->f32s)
            mm32(i1 - i0, j->N, j->K, (const float *)j->x + i0 * j->xr, j->xr, j->xc, j->y, j->yr,
                 j->yc, (float *)j->c + i0 * j->N, j->N, 1, work);
        else
            mm64(j->dt, i1 - i0, j->N, j->K, (const double *)j->x + i0 * j->xr, j->xr, j->xc,
                 j->y, j->yr, j->yc, (double *)j->c + i0 * j->N, work);
    } else {
        const int64_t tw = tile_cols();
        const int64_t j0 = lo * tw, j1 = hi * tw < j->N ? hi * tw : j->N;
        if (j1 <= j0) return;
        /* A product of several K-blocks stores and reloads each tile's
         * partial sums once a block: into the thread's own block of c,
         * then copied, or the other part's tiles beside them in c slow
         * both threads (a 64 x 128 x 784 product on two: 56 µs in place,
         * 47 µs so). With one K-block the copy costs more than it saves. */
        const int64_t w = j1 - j0;
        if (j->K <= KC) {
            mm32(j->M, w, j->K, j->x, j->xr, j->xc, (const float *)j->y + j0 * j->yc, j->yr,
                 j->yc, (float *)j->c + j0, j->N, 1, work);
            return;
        }
        float *blk = work + bpv_matmul_work(j->M, j->N, j->K);
        mm32(j->M, w, j->K, j->x, j->xr, j->xc, (const float *)j->y + j0 * j->yc, j->yr, j->yc,
             blk, w, 1, work);
        for (int64_t i = 0; i < j->M; i++)
            memcpy((float *)j->c + i * j->N + j0, blk + i * w, (size_t)w * sizeof *blk);
    }
}

/* Runs the product on threads when it is worth it; false: run it serially. */
static bool mm_threads(mm_job *j) {
    if (j->K < 2) return false;
    const int64_t w = j->f32s ? tile_cols() : NRF;
    const int64_t ru = (j->M + MRF - 1) / MRF, cu = (j->N + w - 1) / w;
    /* only float32 storage has a column-split kernel (strided c) */
    j->rows = !j->f32s || j->N == 1 || (j->M > 1 && j->N <= j->M);
    if (j->f32s && j->M > 1 && j->N > 1 && (j->rows ? ru : cu) < bpv_threads_get())
        j->rows = ru >= cu; /* the dimension with more blocks */
    j->units = j->rows ? ru : cu;
    const int nt = bpv_pool_want((double)j->M * (double)j->N * (double)j->K, j->units);
    /* a column part's own block of c (mm_part) after its packing space */
    const size_t blk = j->rows || j->K <= KC ? 0 : (size_t)j->M * (size_t)j->N;
    return nt > 1 && bpv_pool_run(nt, bpv_matmul_work(j->M, j->N, j->K) + blk, mm_part, j) > 0;
}

void bpv_matmul(bpv_dtype dt, int64_t M, int64_t N, int64_t K, const double *x, int64_t xr,
                int64_t xc, const double *y, int64_t yr, int64_t yc, double *c, float *work) {
    if (bpv_pool_big((double)M * (double)N * (double)K)) {
        mm_job j = {.f32s = false, .dt = dt, .M = M, .N = N, .K = K, .x = x, .xr = xr,
                    .xc = xc, .y = y, .yr = yr, .yc = yc, .c = c};
        if (mm_threads(&j)) return;
    }
    mm64(dt, M, N, K, x, xr, xc, y, yr, yc, c, work);
}

void bpv_matmul32(int64_t M, int64_t N, int64_t K, const float *x, int64_t xr, int64_t xc,
                  const float *y, int64_t yr, int64_t yc, float *c, float *work) {
    if (bpv_pool_big((double)M * (double)N * (double)K)) {
        mm_job j = {.f32s = true, .M = M, .N = N, .K = K, .x = x, .xr = xr, .xc = xc,
                    .y = y, .yr = yr, .yc = yc, .c = c};
        if (mm_threads(&j)) return;
    }
    mm32(M, N, K, x, xr, xc, y, yr, yc, c, N, 1, work);
}
