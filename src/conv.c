/* 2-D convolution and pooling kernels with PyTorch 1.13's CPU bits
 * (conv.h lists the orders). A convolution is im2col plus three products:
 * the forward one starts each sum from the bias, which bpv_matmul cannot,
 * so it has its own kernel here (the same loop order: each element summed
 * over l in order, never reassociated; vectors run across independent
 * output positions); the two backward products start from +0.0 and are
 * bpv_matmul's. No FMA (-ffp-contract=off): a fused multiply-add would skip
 * the product's rounding that reference BLAS makes. */
#include <math.h>
#include <string.h>

#include "conv.h"
#include "csum.h"
#include "graph.h"
#include "pool.h"
#include "simd.h"

#define CONV_CLONES BPV_CLONES

#define R(x) bpv_round(dt, (x))

bool bpv_conv2d_dims_fill(bpv_conv2d_dims *d) {
    if (d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1 || d->o < 1 || d->kh < 1 || d->kw < 1 ||
        d->stride < 1 || d->pad < 0 || d->h + 2 * d->pad < d->kh || d->w + 2 * d->pad < d->kw)
        return false;
    d->oh = (d->h + 2 * d->pad - d->kh) / d->stride + 1;
    d->ow = (d->w + 2 * d->pad - d->kw) / d->stride + 1;
    return true;
}

/* rows of the unfolded input (c * kh * kw) and its columns (oh * ow) */
static int64_t kdim(const bpv_conv2d_dims *d) { return d->c * d->kh * d->kw; }
static int64_t pdim(const bpv_conv2d_dims *d) { return d->oh * d->ow; }

/* Floats of bpv_matmul's packing space for either backward product. */
static size_t mm_work(const bpv_conv2d_dims *d) {
    const int64_t K = kdim(d), P = pdim(d);
    const size_t a = bpv_matmul_work(K, P, d->o), b = bpv_matmul_work(d->o, K, P);
    return a > b ? a : b;
}

/* work: the unfolded input [K][P], a second buffer for the column gradient
 * [K][P] or a sample's weight gradient [o][K], then bpv_matmul's floats
 * (counted as whole elements: more than enough when they are doubles). */
bool bpv_conv2d_dims_of(const bpv_shape *x, const bpv_shape *w, int64_t stride, int64_t pad,
                        bpv_conv2d_dims *d) {
    if ((x->rank != 3 && x->rank != 4) || w->rank != 4) return false;
    const int c = x->rank - 3; /* 1 with a batch in front */
    *d = (bpv_conv2d_dims){.n = c ? x->dim[0] : 1, .c = x->dim[c], .h = x->dim[c + 1],
                           .w = x->dim[c + 2], .o = w->dim[0], .kh = w->dim[2], .kw = w->dim[3],
                           .stride = stride, .pad = pad};
    return bpv_conv2d_dims_fill(d);
}

bpv_pool2d_dims bpv_pool2d_dims_of(const bpv_shape *x, int64_t k, double stride, int64_t pad) {
    const int c = x->rank - 3;
    bpv_pool2d_dims d = {.n = c ? x->dim[0] : 1, .c = x->dim[c], .h = x->dim[c + 1],
                         .w = x->dim[c + 2], .k = k,
                         .stride = isnan(stride) ? k : (int64_t)stride, .pad = pad};
    d.oh = (d.h + 2 * d.pad - k) / d.stride + 1;
    d.ow = (d.w + 2 * d.pad - k) / d.stride + 1;
    return d;
}

/* One thread's scratch: the unfolded input, a second buffer, the product's
 * packing space. */
static size_t thread_work(const bpv_conv2d_dims *d) {
    const int64_t K = kdim(d), P = pdim(d), g = K * P > d->o * K ? K * P : d->o * K;
    return (size_t)(K * P + g) + mm_work(d) + 8;
}

/* Samples whose weight gradients the threads compute at once, each into a
 * buffer of its own (bwd_w_threads): up to 1M elements of them. */
enum { SAMPLE_GRADS_MAX = 1 << 20 };
static int64_t grads_at_once(const bpv_conv2d_dims *d) {
    const int64_t per = d->o * kdim(d), k = per < SAMPLE_GRADS_MAX ? SAMPLE_GRADS_MAX / per : 1;
    return d->n < 2 ? 0 : k < d->n ? k : d->n;
}

size_t bpv_conv2d_work(const bpv_conv2d_dims *d) {
    return thread_work(d) + (size_t)(grads_at_once(d) * d->o * kdim(d));
}

/* The range [lo, hi) of output columns ox whose input column
 * ox * stride - pad + kj lies inside [0, w). */
static void valid_range(int64_t w, int64_t ow, int64_t stride, int64_t pad, int64_t kj,
                        int64_t *lo, int64_t *hi) {
    const int64_t a = pad - kj; /* ox * stride >= a */
    *lo = a > 0 ? (a + stride - 1) / stride : 0;
    const int64_t b = w + pad - kj; /* ox * stride < b */
    int64_t h = b > 0 ? (b + stride - 1) / stride : 0;
    *hi = h < ow ? h : ow;
    if (*hi < *lo) *hi = *lo;
}

/* im2col of one sample: col[(ci*kh + ki)*kw + kj][oy*ow + ox] = the input
 * under kernel tap (ki, kj) of output (oy, ox), 0 in the padding; only rows
 * l0 <= l < l1, stored from col's row 0. Written once per element type. */
#define DEFINE_IM2COL(NAME, T)                                                             \
    CONV_CLONES static void NAME(const bpv_conv2d_dims *d, const T *x, T *col, int64_t l0,            \
                                 int64_t l1) {                                                       \
        const int64_t P = pdim(d), s = d->stride;                                         \
        for (int64_t l = l0; l < l1; l++) {                                               \
                    const int64_t ci = l / (d->kh * d->kw), ki = l / d->kw % d->kh;      \
                    const int64_t kj = l % d->kw;                                         \
                    T *dst = col + (l - l0) * P;                                          \
                    int64_t lo, hi;                                                       \
                    valid_range(d->w, d->ow, s, d->pad, kj, &lo, &hi);                    \
                    for (int64_t oy = 0; oy < d->oh; oy++) {                              \
                        T *row = dst + oy * d->ow;                                        \
                        const int64_t iy = oy * s - d->pad + ki;                          \
                        if (iy < 0 || iy >= d->h) {                                       \
                            for (int64_t ox = 0; ox < d->ow; ox++) row[ox] = 0;           \
                            continue;                                                     \
                        }                                                                 \
                        /* input column of ox: off + ox * s */                            \
                        const int64_t off = (ci * d->h + iy) * d->w - d->pad + kj;        \
                        for (int64_t ox = 0; ox < lo; ox++) row[ox] = 0;                  \
                        if (s == 1) { /* short runs: 32-byte moves, no call */            \
                            int64_t ox = lo;                                              \
                            for (; ox + (int64_t)(32 / sizeof(T)) <= hi;                  \
                                 ox += (int64_t)(32 / sizeof(T)))                         \
                                memcpy(row + ox, x + off + ox, 32);                       \
                            for (; ox < hi; ox++) row[ox] = x[off + ox];                  \
                        } else                                                            \
                            for (int64_t ox = lo; ox < hi; ox++) row[ox] = x[off + ox * s]; \
                        for (int64_t ox = hi; ox < d->ow; ox++) row[ox] = 0;              \
                    }                                                                     \
        }                                                                                 \
    }
DEFINE_IM2COL(im2col32, float)
DEFINE_IM2COL(im2col64, double)

/* col2im of one sample into gx (written): each element is +0.0 plus the
 * column gradient's terms that fall on it, added in (ki, kj) order, as
 * torch accumulates them (each tap adds at most one term to an element).
 * ADD(a, b) is the rounded sum. */
#define DEFINE_COL2IM(NAME, T, ADD)                                                        \
    CONV_CLONES static void NAME(bpv_dtype dt, const bpv_conv2d_dims *d, const T *colg, T *gx) {      \
        (void)dt;                                                                         \
        const int64_t P = pdim(d), s = d->stride;                                         \
        for (int64_t i = 0; i < d->c * d->h * d->w; i++) gx[i] = 0;                       \
        for (int64_t ci = 0; ci < d->c; ci++)                                             \
            for (int64_t ki = 0; ki < d->kh; ki++)                                        \
                for (int64_t kj = 0; kj < d->kw; kj++) {                                  \
                    const T *src = colg + ((ci * d->kh + ki) * d->kw + kj) * P;           \
                    int64_t lo, hi;                                                       \
                    valid_range(d->w, d->ow, s, d->pad, kj, &lo, &hi);                    \
                    for (int64_t oy = 0; oy < d->oh; oy++) {                              \
                        const int64_t iy = oy * s - d->pad + ki;                          \
                        if (iy < 0 || iy >= d->h) continue;                               \
                        const int64_t off = (ci * d->h + iy) * d->w - d->pad + kj;        \
                        const T *row = src + oy * d->ow;                                  \
                        if (s == 1) { /* the elements are independent */                  \
                            int64_t ox = lo;                                              \
                            if (sizeof(T) == 4 && dt == BPV_F32)                          \
                                for (; ox + 8 <= hi; ox += 8) {                           \
                                    v8f a, b;                                             \
                                    LOAD8F(a, gx + off + ox), LOAD8F(b, row + ox);        \
                                    a += b;                                               \
                                    STORE8F(gx + off + ox, a);                            \
                                }                                                         \
                            for (; ox < hi; ox++) gx[off + ox] = ADD(gx[off + ox], row[ox]); \
                        } else                                                            \
                            for (int64_t ox = lo; ox < hi; ox++)                          \
                                gx[off + ox * s] = ADD(gx[off + ox * s], row[ox]);        \
                    }                                                                     \
                }                                                                         \
    }
#define ADD32(a, b) ((a) + (b))
#define ADD64(a, b) bpv_round(dt, (a) + (b))
DEFINE_COL2IM(col2im32, float, ADD32)
DEFINE_COL2IM(col2im64, double, ADD64)

/* ---- the forward product ----------------------------------------------------
 * c[i][j] += a[i][t] * b[t][j] for t = 0..K-1 in order, from whatever c
 * holds (the bias or +0.0), each product and sum rounded: reference sgemm's
 * NN loop for C = finput^T-by-weight in torch's column-major view. A tile
 * of 4 rows by 16 columns keeps eight independent vector sums. */
CONV_CLONES
static void gemm_acc32(int64_t M, int64_t N, int64_t K, const float *a, int64_t lda,
                       const float *b, int64_t ldb, float *c, int64_t ldc) {
    for (int64_t i0 = 0; i0 < M; i0 += 4) {
        const int64_t mr = M - i0 < 4 ? M - i0 : 4;
        /* rows past M repeat the last row: the same sums, stored twice */
        const int64_t r1 = i0 + (mr > 1 ? 1 : 0), r2 = i0 + (mr > 2 ? 2 : 0),
                      r3 = i0 + (mr > 3 ? 3 : 0);
        const float *a0 = a + i0 * lda, *a1 = a + r1 * lda, *a2 = a + r2 * lda,
                    *a3 = a + r3 * lda;
        float *c0 = c + i0 * ldc, *c1 = c + r1 * ldc, *c2 = c + r2 * ldc, *c3 = c + r3 * ldc;
        int64_t j = 0;
        for (; j + 16 <= N; j += 16) {
            v8f s00, s01, s10, s11, s20, s21, s30, s31;
            LOAD8F(s00, c0 + j), LOAD8F(s01, c0 + j + 8);
            LOAD8F(s10, c1 + j), LOAD8F(s11, c1 + j + 8);
            LOAD8F(s20, c2 + j), LOAD8F(s21, c2 + j + 8);
            LOAD8F(s30, c3 + j), LOAD8F(s31, c3 + j + 8);
            const float *bt = b + j;
            for (int64_t t = 0; t < K; t++, bt += ldb) {
                v8f b0, b1;
                LOAD8F(b0, bt), LOAD8F(b1, bt + 8);
                TILE4X16_STEP(a0[t], a1[t], a2[t], a3[t], b0, b1);
            }
            STORE8F(c3 + j, s30), STORE8F(c3 + j + 8, s31);
            STORE8F(c2 + j, s20), STORE8F(c2 + j + 8, s21);
            STORE8F(c1 + j, s10), STORE8F(c1 + j + 8, s11);
            STORE8F(c0 + j, s00), STORE8F(c0 + j + 8, s01);
        }
        for (; j + 8 <= N; j += 8) {
            v8f s0, s1, s2, s3;
            LOAD8F(s0, c0 + j), LOAD8F(s1, c1 + j), LOAD8F(s2, c2 + j), LOAD8F(s3, c3 + j);
            const float *bt = b + j;
            for (int64_t t = 0; t < K; t++, bt += ldb) {
                v8f b0;
                LOAD8F(b0, bt);
                s0 += SPLAT8F(a0[t]) * b0;
                s1 += SPLAT8F(a1[t]) * b0;
                s2 += SPLAT8F(a2[t]) * b0;
                s3 += SPLAT8F(a3[t]) * b0;
            }
            STORE8F(c3 + j, s3), STORE8F(c2 + j, s2), STORE8F(c1 + j, s1), STORE8F(c0 + j, s0);
        }
        for (; j < N; j++)
            for (int64_t r = 0; r < mr; r++) {
                const float *ar = a + (i0 + r) * lda;
                float s = c[(i0 + r) * ldc + j];
                for (int64_t t = 0; t < K; t++) s += ar[t] * b[t * ldb + j];
                c[(i0 + r) * ldc + j] = s;
            }
    }
}

/* The forward product without im2col, for stride 1 and rows of whole
 * vectors (ow % 8 == 0): eight adjacent outputs of a row read eight
 * adjacent inputs, so the unfolded operand's vectors are loads from the
 * (padded) input, xp [c][hp][wp]. Each output still sums over l = (ci, ki,
 * kj) in order from what y holds, as gemm_acc32. */
/* The weights and outputs of a tile's four channels from i0: channels past
 * o repeat the first, whose sums they compute and store again. */
static inline void tile_channels(const bpv_conv2d_dims *d, const float *w, float *y, int64_t i0,
                                 const float *a[4], float *c[4]) {
    const int64_t K = kdim(d), P = pdim(d);
    for (int r = 0; r < 4; r++) {
        const int64_t i = i0 + r < d->o ? i0 + r : i0;
        a[r] = w + i * K, c[r] = y + i * P;
    }
}

CONV_CLONES
static void direct_fwd32(const bpv_conv2d_dims *d, const float *xp, int64_t hp, int64_t wp,
                         const float *w, float *y) {
    const int64_t P = pdim(d), ow = d->ow;
    for (int64_t i0 = 0; i0 < d->o; i0 += 4) {
        const float *a[4];
        float *cr[4];
        tile_channels(d, w, y, i0, a, cr);
        const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
        float *c0 = cr[0], *c1 = cr[1], *c2 = cr[2], *c3 = cr[3];
        for (int64_t p0 = 0; p0 < P; p0 += 16) {
            /* a second vector when one is left (P is a multiple of 8) */
            const bool two = p0 + 8 < P;
            const int64_t p1 = two ? p0 + 8 : p0;
            const int64_t base0 = p0 / ow * wp + p0 % ow, base1 = p1 / ow * wp + p1 % ow;
            v8f s00, s01, s10, s11, s20, s21, s30, s31;
            LOAD8F(s00, c0 + p0), LOAD8F(s01, c0 + p1);
            LOAD8F(s10, c1 + p0), LOAD8F(s11, c1 + p1);
            LOAD8F(s20, c2 + p0), LOAD8F(s21, c2 + p1);
            LOAD8F(s30, c3 + p0), LOAD8F(s31, c3 + p1);
            int64_t t = 0;
            for (int64_t ci = 0; ci < d->c; ci++)
                for (int64_t ki = 0; ki < d->kh; ki++) {
                    const float *row = xp + (ci * hp + ki) * wp;
                    for (int64_t kj = 0; kj < d->kw; kj++, t++) {
                        v8f b0, b1;
                        LOAD8F(b0, row + kj + base0), LOAD8F(b1, row + kj + base1);
                        TILE4X16_STEP(a0[t], a1[t], a2[t], a3[t], b0, b1);
                    }
                }
            /* repeated rows store the same sums; the second vector only if
             * it is one */
            STORE8F(c3 + p0, s30), STORE8F(c2 + p0, s20), STORE8F(c1 + p0, s10);
            STORE8F(c0 + p0, s00);
            if (two) {
                STORE8F(c3 + p1, s31), STORE8F(c2 + p1, s21), STORE8F(c1 + p1, s11);
                STORE8F(c0 + p1, s01);
            }
        }
    }
}

#if BPV_HAVE_WIDE
/* direct_fwd32 with 16-float vectors (AVX-512, bpv_simd_wide): a tile of 4
 * channels by 32 outputs, each vector two groups of eight adjacent outputs
 * of a row (so any ow % 8 == 0 works). Groups past P repeat the last one
 * and store the same sums again. The same sums in the same order. */
#define HALVES(lo, hi) __builtin_shufflevector((lo), (hi), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
BPV_WIDE
static void direct_fwd32_wide(const bpv_conv2d_dims *d, const float *xp, int64_t hp, int64_t wp,
                              const float *w, float *y) {
    const int64_t P = pdim(d), ow = d->ow;
    for (int64_t i0 = 0; i0 < d->o; i0 += 4) {
        const float *a[4];
        float *cr[4];
        tile_channels(d, w, y, i0, a, cr);
        const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
        for (int64_t p0 = 0; p0 < P; p0 += 32) {
            int64_t pg[4], base[4]; /* each group's first output, and its input */
            for (int g = 0; g < 4; g++) {
                pg[g] = p0 + 8 * g < P ? p0 + 8 * g : P - 8;
                base[g] = pg[g] / ow * wp + pg[g] % ow;
            }
            /* named accumulators: an array of them was kept on the stack */
            v8f l0, h0, l1, h1;
#define LOADS(r, c)                                                               \
    LOAD8F(l0, cr[r] + pg[0]), LOAD8F(h0, cr[r] + pg[1]);                         \
    LOAD8F(l1, cr[r] + pg[2]), LOAD8F(h1, cr[r] + pg[3]);                         \
    c##0 = HALVES(l0, h0), c##1 = HALVES(l1, h1)
            v16f s00, s01, s10, s11, s20, s21, s30, s31;
            LOADS(0, s0);
            LOADS(1, s1);
            LOADS(2, s2);
            LOADS(3, s3);
#undef LOADS
            int64_t t = 0;
            for (int64_t ci = 0; ci < d->c; ci++)
                for (int64_t ki = 0; ki < d->kh; ki++) {
                    const float *row = xp + (ci * hp + ki) * wp;
                    for (int64_t kj = 0; kj < d->kw; kj++, t++) {
                        v8f g0, g1, g2, g3;
                        LOAD8F(g0, row + kj + base[0]), LOAD8F(g1, row + kj + base[1]);
                        LOAD8F(g2, row + kj + base[2]), LOAD8F(g3, row + kj + base[3]);
                        const v16f b0 = HALVES(g0, g1), b1 = HALVES(g2, g3);
                        s00 += a0[t] * b0, s01 += a0[t] * b1;
                        s10 += a1[t] * b0, s11 += a1[t] * b1;
                        s20 += a2[t] * b0, s21 += a2[t] * b1;
                        s30 += a3[t] * b0, s31 += a3[t] * b1;
                    }
                }
            /* repeated rows store the same sums, row 0 last (by value: an
             * accumulator whose address is taken lives on the stack) */
#define STORES(r, v, h)                                                           \
    do {                                                                          \
        const v8f lo_ = __builtin_shufflevector((v), (v), 0, 1, 2, 3, 4, 5, 6, 7); \
        const v8f hi_ = __builtin_shufflevector((v), (v), 8, 9, 10, 11, 12, 13, 14, 15); \
        STORE8F(cr[r] + pg[2 * (h)], lo_);                                        \
        STORE8F(cr[r] + pg[2 * (h) + 1], hi_);                                    \
    } while (0)
            STORES(3, s30, 0); STORES(3, s31, 1); STORES(2, s20, 0); STORES(2, s21, 1);
            STORES(1, s10, 0); STORES(1, s11, 1); STORES(0, s00, 0); STORES(0, s01, 1);
#undef STORES
        }
    }
}
#undef HALVES
#endif

/* direct_fwd32 by the widest vectors this CPU runs */
static void direct_fwd(const bpv_conv2d_dims *d, const float *xp, int64_t hp, int64_t wp,
                       const float *w, float *y) {
#if BPV_HAVE_WIDE
    if (bpv_simd_wide()) {
        direct_fwd32_wide(d, xp, hp, wp, w, y);
        return;
    }
#endif
    direct_fwd32(d, xp, hp, wp, w, y);
}

/* The same over double storage in dt: rows of c updated along j, which
 * vectorises without changing any element's order. */
CONV_CLONES
static void gemm_acc64(bpv_dtype dt, int64_t M, int64_t N, int64_t K, const double *a,
                       int64_t lda, const double *b, int64_t ldb, double *c, int64_t ldc) {
    for (int64_t i = 0; i < M; i++) {
        double *ci = c + i * ldc;
        for (int64_t t = 0; t < K; t++) {
            const double av = a[i * lda + t];
            const double *bt = b + t * ldb;
            if (dt == BPV_F32)
                for (int64_t j = 0; j < N; j++)
                    ci[j] = (double)(float)(ci[j] + (double)(float)(av * bt[j]));
            else
                for (int64_t j = 0; j < N; j++) ci[j] = ci[j] + av * bt[j];
        }
    }
}

/* ---- convolution -------------------------------------------------------------
 * Each entry point computes samples [s0, s1) (or weight columns [l0, l1) of
 * the weight gradient) with its own scratch; on several threads each part
 * is one such range (pool.h), computed exactly as the whole. */

static void fwd32(const bpv_conv2d_dims *d, const float *x, const float *w, const float *b,
                  float *y, float *work, int64_t s0, int64_t s1) {
    const int64_t K = kdim(d), P = pdim(d), in = d->c * d->h * d->w, out = d->o * P;
    const bool direct = d->stride == 1 && d->ow % 8 == 0;
    const int64_t hp = d->h + 2 * d->pad, wp = d->w + 2 * d->pad;
    float *col = work; /* the unfolded input, or the padded one (smaller) */
    for (int64_t s = s0; s < s1; s++) {
        float *ys = y + s * out;
        for (int64_t o = 0; o < d->o; o++) { /* beta = 1 over the bias, else C = 0 */
            const float init = b ? b[o] : 0.0f;
            for (int64_t p = 0; p < P; p++) ys[o * P + p] = init;
        }
        if (direct && d->pad == 0) {
            direct_fwd(d, x + s * in, hp, wp, w, ys);
        } else if (direct) {
            memset(col, 0, (size_t)(d->c * hp * wp) * sizeof *col);
            for (int64_t ci = 0; ci < d->c; ci++)
                for (int64_t i = 0; i < d->h; i++)
                    memcpy(col + (ci * hp + i + d->pad) * wp + d->pad,
                           x + s * in + (ci * d->h + i) * d->w, (size_t)d->w * sizeof *col);
            direct_fwd(d, col, hp, wp, w, ys);
        } else {
            im2col32(d, x + s * in, col, 0, K);
            gemm_acc32(d->o, P, K, w, K, col, P, ys, P);
        }
    }
}

static void fwd64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *x, const double *w,
                  const double *b, double *y, double *work, int64_t s0, int64_t s1) {
    const int64_t K = kdim(d), P = pdim(d), in = d->c * d->h * d->w, out = d->o * P;
    double *col = work;
    for (int64_t s = s0; s < s1; s++) {
        im2col64(d, x + s * in, col, 0, K);
        double *ys = y + s * out;
        for (int64_t o = 0; o < d->o; o++) {
            const double init = b ? b[o] : 0.0;
            for (int64_t p = 0; p < P; p++) ys[o * P + p] = init;
        }
        gemm_acc64(dt, d->o, P, K, w, K, col, P, ys, P);
    }
}

/* The column gradient colg[l][p] = sum over o of w[o][l] * gy[o][p], in o
 * order from +0.0 (reference sgemm's NT loop), then col2im. */
#if BPV_HAVE_WIDE
#include <immintrin.h>
/* col2im32 for stride 1 with AVX-512: each row of gx, sixteen elements at
 * a time, takes its taps' terms in (ki, kj) order in a register and is
 * stored once (col2im32's stores of rows shifted by one element each tap
 * were most of its time). A term that does not fall on an element is a
 * masked-off +0.0 there, which leaves the sum as it is: a sum from +0.0
 * is never -0.0. */
BPV_WIDE
static void col2im32_wide(const bpv_conv2d_dims *d, const float *colg, float *gx) {
    const int64_t P = pdim(d), ow = d->ow, pad = d->pad;
    for (int64_t ci = 0; ci < d->c; ci++)
        for (int64_t iy = 0; iy < d->h; iy++)
            for (int64_t ix0 = 0; ix0 < d->w; ix0 += 16) {
                const int64_t n = d->w - ix0 < 16 ? d->w - ix0 : 16;
                __m512 acc = _mm512_setzero_ps();
                for (int64_t ki = 0; ki < d->kh; ki++) {
                    const int64_t oy = iy + pad - ki;
                    if (oy < 0 || oy >= d->oh) continue;
                    for (int64_t kj = 0; kj < d->kw; kj++) {
                        /* lane e is output column ox0 + e */
                        const int64_t ox0 = ix0 + pad - kj;
                        const int64_t lo = ox0 < 0 ? -ox0 : 0, hi = ow - ox0 < n ? ow - ox0 : n;
                        if (hi <= lo) continue;
                        const __mmask16 m = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
                        const float *row = colg + ((ci * d->kh + ki) * d->kw + kj) * P + oy * ow;
                        /* a lane before the row's start is expanded into
                         * place rather than addressed */
                        acc = _mm512_add_ps(acc, lo ? _mm512_maskz_expandloadu_ps(m, row)
                                                    : _mm512_maskz_loadu_ps(m, row + ox0));
                    }
                }
                _mm512_mask_storeu_ps(gx + (ci * d->h + iy) * d->w + ix0,
                                      (__mmask16)((1u << n) - 1), acc);
            }
}
#endif

static void bwd_x32(const bpv_conv2d_dims *d, const float *gy, const float *w, float *gx,
                    float *work, int64_t s0, int64_t s1) {
    const int64_t K = kdim(d), P = pdim(d), in = d->c * d->h * d->w, out = d->o * P;
    float *colg = work + K * P, *mm = colg + (K * P > d->o * K ? K * P : d->o * K);
    for (int64_t s = s0; s < s1; s++) {
        bpv_matmul32(K, P, d->o, w, 1, K, gy + s * out, P, 1, colg, mm);
#if BPV_HAVE_WIDE
        if (d->stride == 1 && bpv_simd_wide()) {
            col2im32_wide(d, colg, gx + s * in);
            continue;
        }
#endif
        col2im32(BPV_F32, d, colg, gx + s * in);
    }
}

static void bwd_x64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *gy, const double *w,
                    double *gx, double *work, int64_t s0, int64_t s1) {
    const int64_t K = kdim(d), P = pdim(d), in = d->c * d->h * d->w, out = d->o * P;
    double *colg = work + K * P;
    float *mm = (float *)(colg + (K * P > d->o * K ? K * P : d->o * K));
    for (int64_t s = s0; s < s1; s++) {
        bpv_matmul(dt, K, P, d->o, w, 1, K, gy + s * out, P, 1, colg, mm);
        col2im64(dt, d, colg, gx + s * in);
    }
}

static bool wgrad_direct(const bpv_conv2d_dims *d, const float *gy, const float *x, float *g,
                         float *work, int64_t s);

/* Each sample's gw_s[o][l] = sum over p of gy[o][p] * col[l][p], in p
 * order from +0.0 (reference sgemm's TN loop: a dot product), then added to
 * the running gradient: gw = gw + gw_s with beta = 1, sample by sample from
 * +0.0. The first sample's sum is written directly: +0.0 + v is v, since a
 * sum from +0.0 is never -0.0. Here only columns l0 <= l < l1 of gw (all
 * samples, in order): the unfolded rows of those columns, and gw_s for
 * them, [o][l1 - l0]. */
static void bwd_w32(const bpv_conv2d_dims *d, const float *gy, const float *x, float *gw,
                    float *work, int64_t l0, int64_t l1) {
    const int64_t K = kdim(d), P = pdim(d), in = d->c * d->h * d->w, out = d->o * P;
    const int64_t L = l1 - l0;
    float *col = work, *g = work + K * P, *mm = g + (K * P > d->o * K ? K * P : d->o * K);
    for (int64_t s = 0; s < d->n; s++) {
        if (L == K) { /* the whole gradient: gw_s straight into gw at first */
            float *gs = s == 0 ? gw : g;
            if (!wgrad_direct(d, gy, x, gs, work, s)) {
                im2col32(d, x + s * in, col, 0, K);
                bpv_matmul32(d->o, K, P, gy + s * out, P, 1, col, 1, P, gs, mm);
            }
            if (s > 0)
                for (int64_t i = 0; i < d->o * K; i++) gw[i] += g[i];
            continue;
        }
        im2col32(d, x + s * in, col, l0, l1);
        bpv_matmul32(d->o, L, P, gy + s * out, P, 1, col, 1, P, g, mm);
        for (int64_t o = 0; o < d->o; o++) {
            float *gwo = gw + o * K + l0;
            const float *go = g + o * L;
            if (s == 0) memcpy(gwo, go, (size_t)L * sizeof *gwo);
            else
                for (int64_t l = 0; l < L; l++) gwo[l] += go[l];
        }
    }
}

static void bwd_w64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *gy, const double *x,
                    double *gw, double *work, int64_t l0, int64_t l1) {
    const int64_t K = kdim(d), P = pdim(d), in = d->c * d->h * d->w, out = d->o * P;
    const int64_t L = l1 - l0;
    double *col = work, *g = work + K * P;
    float *mm = (float *)(g + (K * P > d->o * K ? K * P : d->o * K));
    for (int64_t s = 0; s < d->n; s++) {
        im2col64(d, x + s * in, col, l0, l1);
        if (L == K) {
            bpv_matmul(dt, d->o, K, P, gy + s * out, P, 1, col, 1, P, s == 0 ? gw : g, mm);
            if (s > 0)
                for (int64_t i = 0; i < d->o * K; i++) gw[i] = R(gw[i] + g[i]);
            continue;
        }
        bpv_matmul(dt, d->o, L, P, gy + s * out, P, 1, col, 1, P, g, mm);
        for (int64_t o = 0; o < d->o; o++) {
            double *gwo = gw + o * K + l0;
            const double *go = g + o * L;
            if (s == 0) memcpy(gwo, go, (size_t)L * sizeof *gwo);
            else
                for (int64_t l = 0; l < L; l++) gwo[l] = R(gwo[l] + go[l]);
        }
    }
}

/* One sample's weight gradient without unfolding x, for no padding (any
 * stride): gw_s[o][l] = sum over outputs p in order, from +0.0, of
 * gy[o][p] times the input under tap l at p, each product and sum rounded:
 * the unfolded product's numbers (bwd_w32). A tile's rows are four taps
 * (pointers into x that walk each output row, then jump to the next), its
 * columns 2 * VW channels read from gyT [P][opad] (gy transposed, the
 * channels past o zero; their sums are not stored). Instantiated for
 * 8-float and, with AVX-512, 16-float vectors. */
#define DEFINE_WGRAD(NAME, VT, VW, ATTR)                                                   \
    ATTR static void NAME(const bpv_conv2d_dims *d, const float *x, const float *gyT,     \
                          int64_t opad, float *g) {                                        \
        const int64_t K = kdim(d), st = d->stride, hw = d->h * d->w, rs = st * d->w;      \
        for (int64_t l0 = 0; l0 < K; l0 += 4) {                                            \
            const float *xr[4]; /* rows past K repeat the last tap, not stored */          \
            for (int r = 0; r < 4; r++) {                                                  \
                const int64_t l = l0 + r < K ? l0 + r : K - 1;                             \
                xr[r] = x + l / (d->kh * d->kw) * hw + l / d->kw % d->kh * d->w + l % d->kw; \
            }                                                                              \
            for (int64_t o0 = 0; o0 < d->o; o0 += 2 * VW) {                                \
                VT c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0},       \
                   c30 = {0}, c31 = {0};                                                   \
                const float *b = gyT + o0;                                                 \
                for (int64_t oy = 0; oy < d->oh; oy++) {                                   \
                    const float *q0 = xr[0] + oy * rs, *q1 = xr[1] + oy * rs;              \
                    const float *q2 = xr[2] + oy * rs, *q3 = xr[3] + oy * rs;              \
                    for (int64_t ox = 0; ox < d->ow; ox++, b += opad) {                    \
                        VT b0, b1;                                                         \
                        memcpy(&b0, b, sizeof b0), memcpy(&b1, b + VW, sizeof b1);         \
                        const float a0 = q0[ox * st], a1 = q1[ox * st];                    \
                        const float a2 = q2[ox * st], a3 = q3[ox * st];                    \
                        c00 += a0 * b0, c01 += a0 * b1, c10 += a1 * b0, c11 += a1 * b1;    \
                        c20 += a2 * b0, c21 += a2 * b1, c30 += a3 * b0, c31 += a3 * b1;    \
                    }                                                                      \
                }                                                                          \
                float t[4][2 * VW];                                                        \
                memcpy(t[0], &c00, sizeof c00), memcpy(t[0] + VW, &c01, sizeof c01);      \
                memcpy(t[1], &c10, sizeof c10), memcpy(t[1] + VW, &c11, sizeof c11);      \
                memcpy(t[2], &c20, sizeof c20), memcpy(t[2] + VW, &c21, sizeof c21);      \
                memcpy(t[3], &c30, sizeof c30), memcpy(t[3] + VW, &c31, sizeof c31);      \
                for (int64_t r = 0; r < 4 && l0 + r < K; r++)                              \
                    for (int64_t j = 0; j < 2 * VW && o0 + j < d->o; j++)                  \
                        g[(o0 + j) * K + l0 + r] = t[r][j];                                \
            }                                                                              \
        }                                                                                  \
    }
DEFINE_WGRAD(wgrad_direct8, v8f, 8, CONV_CLONES)
#if BPV_HAVE_WIDE
DEFINE_WGRAD(wgrad_direct16, v16f, 16, BPV_WIDE)
#endif

/* Sample s's weight gradient into g [o][K] by wgrad_direct, when x has no
 * padding and gy transposed fits in the unfolded input's space of work;
 * false: unfold and multiply instead. */
static bool wgrad_direct(const bpv_conv2d_dims *d, const float *gy, const float *x, float *g,
                         float *work, int64_t s) {
    /* 16-float vectors only when they take fewer blocks of channels */
    const int64_t K = kdim(d), P = pdim(d);
    const int64_t vw = bpv_simd_wide() && (d->o + 31) / 32 < (d->o + 15) / 16 ? 16 : 8;
    const int64_t opad = (d->o + 2 * vw - 1) / (2 * vw) * (2 * vw);
    if (d->pad != 0 || P * opad > K * P) return false;
    const float *gs = gy + s * d->o * P;
    float *gyT = work;
    if (opad > d->o) memset(gyT, 0, (size_t)(P * opad) * sizeof *gyT);
    for (int64_t o = 0; o < d->o; o++) /* gy read along its rows */
        for (int64_t p = 0; p < P; p++) gyT[p * opad + o] = gs[o * P + p];
    const float *xs = x + s * d->c * d->h * d->w;
#if BPV_HAVE_WIDE
    if (vw == 16) {
        wgrad_direct16(d, xs, gyT, opad, g);
        return true;
    }
#endif
    wgrad_direct8(d, xs, gyT, opad, g);
    return true;
}

/* The weight gradient on threads by samples, for a batch: each sample's
 * gw_s (bwd_w32's product, from +0.0) into a buffer of its own, the samples
 * split over the threads (each unfolds and multiplies its own samples);
 * then gw = gw_0 + gw_1 + ... added sample by sample in order, the
 * elements split over the threads: every element the same sums in the
 * same order as bwd_w32 and bwd_w64. Samples s0..s1-1 at a time (their
 * buffers: grads_at_once). */
static void sample_grad(const bpv_conv2d_dims *d, bool f32s, bpv_dtype dt, const void *gy,
                        const void *x, void *gs, void *work, int64_t s) {
    const int64_t K = kdim(d), P = pdim(d), in = d->c * d->h * d->w, out = d->o * P;
    const int64_t g = K * P > d->o * K ? K * P : d->o * K;
    if (f32s) {
        if (wgrad_direct(d, gy, x, gs, work, s)) return;
        float *col = work, *mm = col + K * P + g;
        im2col32(d, (const float *)x + s * in, col, 0, K);
        bpv_matmul32(d->o, K, P, (const float *)gy + s * out, P, 1, col, 1, P, gs, mm);
    } else {
        double *col = work;
        float *mm = (float *)(col + K * P + g);
        im2col64(d, (const double *)x + s * in, col, 0, K);
        bpv_matmul(dt, d->o, K, P, (const double *)gy + s * out, P, 1, col, 1, P, gs, mm);
    }
}

/* gw's elements [lo, hi) plus the gradients of samples s0..s1-1 (gs[s - s0]),
 * in sample order; sample 0's is gw's first value */
static void sample_grads_add(const bpv_conv2d_dims *d, bool f32s, bpv_dtype dt, const void *gs,
                             void *gw, int64_t s0, int64_t s1, int64_t lo, int64_t hi) {
    const int64_t ok = d->o * kdim(d);
    for (int64_t s = s0; s < s1; s++) {
        if (f32s) {
            const float *g = (const float *)gs + (s - s0) * ok;
            float *w = gw;
            if (s == 0) memcpy(w + lo, g + lo, (size_t)(hi - lo) * sizeof *w);
            else
                for (int64_t i = lo; i < hi; i++) w[i] += g[i];
        } else {
            const double *g = (const double *)gs + (s - s0) * ok;
            double *w = gw;
            if (s == 0) memcpy(w + lo, g + lo, (size_t)(hi - lo) * sizeof *w);
            else
                for (int64_t i = lo; i < hi; i++) w[i] = R(w[i] + g[i]);
        }
    }
}

typedef enum { FWD, BWD_X, BWD_W, BWD_W_SAMPLES, BWD_W_ADD } conv_kind;

typedef struct conv_job {
    conv_kind kind;
    bool f32s; /* float32 storage, else double in dt */
    bpv_dtype dt;
    const bpv_conv2d_dims *d;
    const void *a, *b, *bias; /* the kernel's two inputs and the bias */
    void *out;
    /* samples, weight columns (BWD_W), a block's samples (BWD_W_SAMPLES) or
     * lines of gw's elements (BWD_W_ADD) */
    int64_t units;
    void *grads;    /* BWD_W_*: the samples' gradients */
    int64_t s0, s1; /* BWD_W_*: the block of samples */
} conv_job;

enum { LINE = 16 }; /* BWD_W_ADD's unit: a cache line of floats */

static void conv_range(const conv_job *j, void *work, int64_t lo, int64_t hi) {
    const bpv_conv2d_dims *d = j->d;
    switch (j->kind) {
    case FWD:
        if (j->f32s) fwd32(d, j->a, j->b, j->bias, j->out, work, lo, hi);
        else fwd64(j->dt, d, j->a, j->b, j->bias, j->out, work, lo, hi);
        break;
    case BWD_X:
        if (j->f32s) bwd_x32(d, j->a, j->b, j->out, work, lo, hi);
        else bwd_x64(j->dt, d, j->a, j->b, j->out, work, lo, hi);
        break;
    case BWD_W:
        if (j->f32s) bwd_w32(d, j->a, j->b, j->out, work, lo, hi);
        else bwd_w64(j->dt, d, j->a, j->b, j->out, work, lo, hi);
        break;
    case BWD_W_SAMPLES: {
        const int64_t ok = d->o * kdim(d), esz = j->f32s ? sizeof(float) : sizeof(double);
        for (int64_t s = j->s0 + lo; s < j->s0 + hi; s++)
            sample_grad(d, j->f32s, j->dt, j->a, j->b,
                        (char *)j->grads + (size_t)((s - j->s0) * ok * esz), work, s);
        break;
    }
    case BWD_W_ADD: {
        const int64_t ok = d->o * kdim(d);
        sample_grads_add(d, j->f32s, j->dt, j->grads, j->out, j->s0, j->s1, lo * LINE,
                         hi * LINE < ok ? hi * LINE : ok);
        break;
    }
    }
}

static void conv_part(void *ctx, int part, int nparts, float *scratch) {
    const conv_job *j = ctx;
    int64_t lo, hi;
    bpv_pool_range(j->units, part, nparts, &lo, &hi);
    if (hi > lo) conv_range(j, scratch, lo, hi);
}

/* Runs job j's units on np threads, or serially in work when the pool is
 * taken. */
static void conv_parts(conv_job *j, int np, void *work) {
    /* the scratch in floats: the storage type's elements, doubles twice */
    const size_t scratch = thread_work(j->d) * (j->f32s ? 1 : 2);
    if (np > 1 && bpv_pool_run(np, scratch, conv_part, j)) return;
    conv_range(j, work, 0, j->units);
}

/* The weight gradient of a batch by samples (sample_grad): block by block,
 * the samples' gradients after work's first thread_work elements, then
 * added into gw. False when the pool is taken before anything is done. */
static bool bwd_w_threads(const conv_job *j, int np, void *work) {
    const bpv_conv2d_dims *d = j->d;
    const int64_t at_once = grads_at_once(d), ok = d->o * kdim(d);
    const size_t esz = j->f32s ? sizeof(float) : sizeof(double);
    void *grads = (char *)work + thread_work(d) * esz;
    for (int64_t s0 = 0; s0 < d->n; s0 += at_once) {
        const int64_t s1 = d->n - s0 < at_once ? d->n : s0 + at_once;
        conv_job b = *j;
        b.kind = BWD_W_SAMPLES, b.grads = grads, b.s0 = s0, b.s1 = s1, b.units = s1 - s0;
        const int nb = np < b.units ? np : (int)b.units;
        if (s0 == 0 && !bpv_pool_run(nb, thread_work(d) * (esz / sizeof(float)), conv_part, &b))
            return false;
        if (s0 > 0) conv_parts(&b, nb, work);
        b.kind = BWD_W_ADD, b.units = (ok + LINE - 1) / LINE;
        /* an addition: about a multiply-add of a product */
        conv_parts(&b, bpv_pool_want((double)(s1 - s0) * (double)ok, b.units), work);
    }
    return true;
}

/* On threads when the work is worth it, else serially in `work`. */
static void conv_run(conv_job *j, void *work) {
    const bpv_conv2d_dims *d = j->d;
    const double cost = (double)d->n * (double)d->o * (double)kdim(d) * (double)pdim(d);
    if (j->kind == BWD_W && d->n > 1) { /* a batch: by samples */
        const int np = bpv_pool_want(cost, d->n);
        if (np > 1 && bwd_w_threads(j, np, work)) return;
    }
    j->units = j->kind == BWD_W ? kdim(d) : d->n;
    conv_parts(j, bpv_pool_want(cost, j->units), work);
}

void bpv_conv2d_fwd32(const bpv_conv2d_dims *d, const float *x, const float *w, const float *b,
                      float *y, float *work) {
    conv_job j = {.kind = FWD, .f32s = true, .d = d, .a = x, .b = w, .bias = b, .out = y};
    conv_run(&j, work);
}

void bpv_conv2d_fwd64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *x, const double *w,
                      const double *b, double *y, double *work) {
    conv_job j = {.kind = FWD, .dt = dt, .d = d, .a = x, .b = w, .bias = b, .out = y};
    conv_run(&j, work);
}

void bpv_conv2d_bwd_x32(const bpv_conv2d_dims *d, const float *gy, const float *w, float *gx,
                        float *work) {
    conv_job j = {.kind = BWD_X, .f32s = true, .d = d, .a = gy, .b = w, .out = gx};
    conv_run(&j, work);
}

void bpv_conv2d_bwd_x64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *gy,
                        const double *w, double *gx, double *work) {
    conv_job j = {.kind = BWD_X, .dt = dt, .d = d, .a = gy, .b = w, .out = gx};
    conv_run(&j, work);
}

void bpv_conv2d_bwd_w32(const bpv_conv2d_dims *d, const float *gy, const float *x, float *gw,
                        float *work) {
    conv_job j = {.kind = BWD_W, .f32s = true, .d = d, .a = gy, .b = x, .out = gw};
    conv_run(&j, work);
}

void bpv_conv2d_bwd_w64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *gy,
                        const double *x, double *gw, double *work) {
    conv_job j = {.kind = BWD_W, .dt = dt, .d = d, .a = gy, .b = x, .out = gw};
    conv_run(&j, work);
}

/* x[0] + ... + x[n-1] in torch's cascade order over float32, as
 * bpv_csum_array32 computes it term by term (csum.c describes the order),
 * with its accumulators as vectors: rows of four vectors into level 0,
 * levels carried up every `step` rows, then the levels, the leftover
 * vectors, the four accumulators, the tail and the lanes, in that order. */
CONV_CLONES
static float row_sum32(const float *x, int64_t n) {
    if (n < 8) return (float)bpv_csum_array32(BPV_F32, x, n);
    const int64_t vecs = n / 8, rows = vecs / 4;
    const int p = bpv_ceil_log2(rows) / 4, power = p > 4 ? p : 4;
    const int64_t step = (int64_t)1 << power;
    v8f acc[4][4];
    for (int j = 0; j < 4; j++)
        for (int k = 0; k < 4; k++) acc[j][k] = SPLAT8F(0.0f);
    for (int64_t i = 0; i < rows;) {
        for (int k = 0; k < 4; k++) {
            v8f v;
            LOAD8F(v, x + i * 32 + k * 8);
            acc[0][k] += v;
        }
        if (++i % step) continue;
        for (int j = 1; j < 4; j++) {
            for (int k = 0; k < 4; k++) acc[j][k] += acc[j - 1][k], acc[j - 1][k] = SPLAT8F(0.0f);
            if ((i & ((step - 1) << (j * power))) != 0) break;
        }
    }
    for (int j = 1; j < 4; j++)
        for (int k = 0; k < 4; k++) acc[0][k] += acc[j][k];
    for (int64_t v = rows * 4; v < vecs; v++) {
        v8f t;
        LOAD8F(t, x + v * 8);
        acc[0][0] += t;
    }
    for (int k = 1; k < 4; k++) acc[0][0] += acc[0][k];
    float r = 0.0f;
    for (int64_t t = vecs * 8; t < n; t++) r += x[t];
    for (int l = 0; l < 8; l++) r += acc[0][0][l];
    return r;
}

/* gb[o] for channels [o0, o1): each channel's sum, sample by sample, is
 * one thread's (a part of the float32 channel loop below) */
typedef struct bias_job {
    const bpv_conv2d_dims *d;
    const float *gy;
    float *gb;
} bias_job;

static void bias_range(const bias_job *j, int64_t o0, int64_t o1) {
    const bpv_conv2d_dims *d = j->d;
    const int64_t P = pdim(d);
    for (int64_t o = o0; o < o1; o++) {
        float acc = 0.0f;
        for (int64_t s = 0; s < d->n; s++) acc += row_sum32(j->gy + (s * d->o + o) * P, P);
        j->gb[o] = acc;
    }
}

static void bias_part(void *ctx, int part, int nparts, float *scratch) {
    (void)scratch;
    const bias_job *j = ctx;
    int64_t lo, hi;
    bpv_pool_range(j->d->o, part, nparts, &lo, &hi);
    bias_range(j, lo, hi);
}

/* torch's sum over (n, oh, ow) of gy [n][o][oh*ow]. The reduction's
 * iterator puts the plane innermost and the samples next; each sample's
 * plane is a contiguous cascade sum added to the output (+0.0 at first).
 * With one channel the samples and planes merge into one contiguous sum;
 * with 1 x 1 planes it is a sum over the leading dimension of [n][o]. */
void bpv_conv2d_bwd_b32(const bpv_conv2d_dims *d, const float *gy, float *gb) {
    const int64_t P = pdim(d);
    if (d->o == 1) {
        gb[0] = 0.0f + row_sum32(gy, d->n * P);
        return;
    }
    if (P == 1) {
        bpv_csum_columns32(BPV_F32, gy, d->n, d->o, false, gb);
        return;
    }
    bias_job j = {d, gy, gb};
    /* an element of a vector row sum: about 4 multiply-adds of a product */
    const int np = bpv_pool_want(4.0 * (double)d->n * (double)d->o * (double)P, d->o);
    if (np > 1 && bpv_pool_run(np, 0, bias_part, &j)) return;
    bias_range(&j, 0, d->o);
}

void bpv_conv2d_bwd_b64(bpv_dtype dt, const bpv_conv2d_dims *d, const double *gy, double *gb) {
    const int64_t P = pdim(d);
    if (d->o == 1) {
        gb[0] = 0.0 + bpv_csum_array(dt, gy, d->n * P);
        return;
    }
    if (P == 1) {
        bpv_csum_columns(dt, gy, d->n, d->o, false, gb);
        return;
    }
    for (int64_t o = 0; o < d->o; o++) {
        double acc = 0.0;
        for (int64_t s = 0; s < d->n; s++)
            acc = R(acc + bpv_csum_array(dt, gy + (s * d->o + o) * P, P));
        gb[o] = acc;
    }
}

/* ---- pooling ------------------------------------------------------------------
 * One plane (a sample's channel) at a time. Window (oy, ox) covers rows
 * oy*stride - pad .. + k - 1, clipped to the plane (padding is never read),
 * likewise columns. Each function is written once over the storage type T
 * with RD rounding a result to the dtype (a float's own arithmetic for
 * the 32 functions). */

typedef struct win {
    int64_t y0, y1, x0, x1; /* rows [y0, y1) and columns [x0, x1) inside the plane */
} win;

static inline win window(const bpv_pool2d_dims *d, int64_t oy, int64_t ox) {
    win r;
    r.y0 = oy * d->stride - d->pad, r.x0 = ox * d->stride - d->pad;
    r.y1 = r.y0 + d->k < d->h ? r.y0 + d->k : d->h;
    r.x1 = r.x0 + d->k < d->w ? r.x0 + d->k : d->w;
    if (r.y0 < 0) r.y0 = 0;
    if (r.x0 < 0) r.x0 = 0;
    return r;
}

/* The index (within its plane) of a window's maximum: scanned row by row
 * from -inf, replaced by a greater value or by any NaN; nothing greater
 * keeps the first element. Each kernel runs over planes [q0, q1) (a
 * thread's part; the planes are independent) and takes its arrays untyped,
 * so that one job type serves them all. */
#define DEFINE_POOL(SFX, T, RD)                                                            \
    static inline int64_t argmax##SFX(const T *plane, const bpv_pool2d_dims *d, int64_t oy,  \
                                      int64_t ox) {                                         \
        const win r = window(d, oy, ox);                                                   \
        int64_t best = r.y0 * d->w + r.x0;                                                 \
        T m = -(T)INFINITY;                                                                \
        for (int64_t i = r.y0; i < r.y1; i++)                                              \
            for (int64_t j = r.x0; j < r.x1; j++) {                                        \
                const T v = plane[i * d->w + j];                                           \
                if (v > m || isnan(v)) m = v, best = i * d->w + j;                         \
            }                                                                              \
        return best;                                                                       \
    }                                                                                      \
    static void maxfwd##SFX(bpv_dtype dt, const bpv_pool2d_dims *d, const void *x_,         \
                            const void *unused, void *y_, int64_t q0, int64_t q1) {         \
        (void)dt, (void)unused;                                                            \
        const T *x = x_;                                                                   \
        T *y = y_;                                                                         \
        for (int64_t q = q0; q < q1; q++) {                                                \
            const T *plane = x + q * d->h * d->w;                                          \
            T *yq = y + q * d->oh * d->ow;                                                 \
            for (int64_t oy = 0; oy < d->oh; oy++)                                         \
                for (int64_t ox = 0; ox < d->ow; ox++)                                     \
                    yq[oy * d->ow + ox] = plane[argmax##SFX(plane, d, oy, ox)];            \
        }                                                                                  \
    }                                                                                      \
    /* +0.0, then each window's gy added at its pick: +0.0 + gy where windows \
     * do not overlap (a -0.0 gradient arrives as +0.0, as into torch's zeroed \
     * buffer) */                                                                          \
    static void maxbwd##SFX(bpv_dtype dt, const bpv_pool2d_dims *d, const void *x_,         \
                            const void *gy_, void *gx_, int64_t q0, int64_t q1) {           \
        (void)dt;                                                                          \
        const T *x = x_, *gy = gy_;                                                        \
        T *gx = gx_;                                                                       \
        const int64_t hw = d->h * d->w, ohw = d->oh * d->ow;                               \
        for (int64_t i = q0 * hw; i < q1 * hw; i++) gx[i] = 0;                             \
        for (int64_t q = q0; q < q1; q++)                                                  \
            for (int64_t oy = 0; oy < d->oh; oy++)                                         \
                for (int64_t ox = 0; ox < d->ow; ox++) {                                   \
                    T *g = &gx[q * hw + argmax##SFX(x + q * hw, d, oy, ox)];               \
                    *g = RD(*g + gy[q * ohw + oy * d->ow + ox]);                           \
                }                                                                          \
    }                                                                                      \
    /* the window summed row by row from +0.0 in the dtype, divided by k*k \
     * (a division, as torch's kernel, not a product with 1/(k*k)) */                     \
    static void avgfwd##SFX(bpv_dtype dt, const bpv_pool2d_dims *d, const void *x_,         \
                            const void *unused, void *y_, int64_t q0, int64_t q1) {         \
        (void)dt, (void)unused;                                                            \
        const T *x = x_;                                                                   \
        T *y = y_;                                                                         \
        const T kk = (T)(d->k * d->k);                                                     \
        for (int64_t q = q0; q < q1; q++) {                                                \
            const T *plane = x + q * d->h * d->w;                                          \
            T *yq = y + q * d->oh * d->ow;                                                 \
            for (int64_t oy = 0; oy < d->oh; oy++)                                         \
                for (int64_t ox = 0; ox < d->ow; ox++) {                                   \
                    const win r = window(d, oy, ox);                                       \
                    T s = 0;                                                               \
                    for (int64_t i = r.y0; i < r.y1; i++)                                  \
                        for (int64_t j = r.x0; j < r.x1; j++) s = RD(s + plane[i * d->w + j]); \
                    yq[oy * d->ow + ox] = (T)0 + RD(s / kk);                               \
                }                                                                          \
        }                                                                                  \
    }                                                                                      \
    static void avgbwd##SFX(bpv_dtype dt, const bpv_pool2d_dims *d, const void *unused,     \
                            const void *gy_, void *gx_, int64_t q0, int64_t q1) {           \
        (void)dt, (void)unused;                                                            \
        const T *gy = gy_;                                                                 \
        T *gx = gx_;                                                                       \
        const T kk = (T)(d->k * d->k);                                                     \
        const int64_t hw = d->h * d->w, ohw = d->oh * d->ow;                               \
        for (int64_t i = q0 * hw; i < q1 * hw; i++) gx[i] = 0;                             \
        for (int64_t q = q0; q < q1; q++)                                                  \
            for (int64_t oy = 0; oy < d->oh; oy++)                                         \
                for (int64_t ox = 0; ox < d->ow; ox++) {                                   \
                    const win r = window(d, oy, ox);                                       \
                    const T g = RD(gy[q * ohw + oy * d->ow + ox] / kk);                    \
                    for (int64_t i = r.y0; i < r.y1; i++)                                  \
                        for (int64_t j = r.x0; j < r.x1; j++) {                            \
                            T *e = &gx[q * hw + i * d->w + j];                             \
                            *e = RD(*e + g);                                               \
                        }                                                                  \
                }                                                                          \
    }

#define RD32(x) ((float)(x))
DEFINE_POOL(32, float, RD32)
DEFINE_POOL(64, double, R)

/* ---- 2 x 2 max pooling, stride 2, no padding, over float32 ---------------------
 * The common case, eight windows at a time: the scan above as selects. The
 * window's four elements in scan order are row 0's even and odd columns,
 * then row 1's; each replaces the running maximum when greater or NaN, so
 * the value and the index are the scalar scan's. The backward pass writes
 * +0.0 + gy at the pick and +0.0 elsewhere (the windows do not overlap). */
typedef int v8i __attribute__((vector_size(32)));

/* the even and odd elements of 16 floats at p */
static inline void deinterleave(const float *p, v8f *even, v8f *odd) {
    v8f a, b;
    LOAD8F(a, p), LOAD8F(b, p + 8);
    *even = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
    *odd = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
}

/* the scan's step: take v (index k) where it is greater or NaN */
#define SCAN_STEP(v, k)                                                                   \
    do {                                                                                  \
        const v8i take_ = ((v) > m) | ((v) != (v));                                      \
        m = (v8f)(((v8i)(v) & take_) | ((v8i)m & ~take_));                                \
        idx = (SPLAT8I(k) & take_) | (idx & ~take_);                                      \
    } while (0)
#define SPLAT8I(a) ((v8i){(a), (a), (a), (a), (a), (a), (a), (a)})

static inline bool pool22(const bpv_pool2d_dims *d) {
    return d->k == 2 && d->stride == 2 && d->pad == 0;
}

/* The picks (0-3, scan order) and maxima of windows ox .. ox+7 of row oy. */
static inline void picks8(const float *plane, int64_t w, int64_t oy, int64_t ox, v8f *max,
                          v8i *pick) {
    const float *r0 = plane + 2 * oy * w + 2 * ox, *r1 = r0 + w;
    v8f e0, o0, e1, o1;
    deinterleave(r0, &e0, &o0);
    deinterleave(r1, &e1, &o1);
    v8f m = SPLAT8F(-INFINITY);
    v8i idx = SPLAT8I(0);
    SCAN_STEP(e0, 0);
    SCAN_STEP(o0, 1);
    SCAN_STEP(e1, 2);
    SCAN_STEP(o1, 3);
    *max = m, *pick = idx;
}

typedef float v4f_ __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));
#define SPLAT4I(a) ((v4i){(a), (a), (a), (a)})

/* the same for four windows (a row's last ones) */
static inline void picks4(const float *plane, int64_t w, int64_t oy, int64_t ox, v4f_ *max,
                          v4i *pick) {
    const float *r0 = plane + 2 * oy * w + 2 * ox, *r1 = r0 + w;
    v4f_ a, b, c, e;
    memcpy(&a, r0, sizeof a), memcpy(&b, r0 + 4, sizeof b);
    memcpy(&c, r1, sizeof c), memcpy(&e, r1 + 4, sizeof e);
    const v4f_ e0 = __builtin_shufflevector(a, b, 0, 2, 4, 6);
    const v4f_ o0 = __builtin_shufflevector(a, b, 1, 3, 5, 7);
    const v4f_ e1 = __builtin_shufflevector(c, e, 0, 2, 4, 6);
    const v4f_ o1 = __builtin_shufflevector(c, e, 1, 3, 5, 7);
    v4f_ m = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    v4i idx = SPLAT4I(0);
#define SCAN_STEP4(v, k)                                                                  \
    do {                                                                                  \
        const v4i take_ = ((v) > m) | ((v) != (v));                                      \
        m = (v4f_)(((v4i)(v) & take_) | ((v4i)m & ~take_));                              \
        idx = (SPLAT4I(k) & take_) | (idx & ~take_);                                      \
    } while (0)
    SCAN_STEP4(e0, 0);
    SCAN_STEP4(o0, 1);
    SCAN_STEP4(e1, 2);
    SCAN_STEP4(o1, 3);
#undef SCAN_STEP4
    *max = m, *pick = idx;
}

/* one window's pick (0-3, scan order) by the same scan, for the windows
 * left over after the whole vectors */
static inline int pick1(const float *r0, int64_t w) {
    const float v[4] = {r0[0], r0[1], r0[w], r0[w + 1]};
    float m = -INFINITY;
    int best = 0;
    for (int k = 0; k < 4; k++)
        if (v[k] > m || isnan(v[k])) m = v[k], best = k;
    return best;
}

CONV_CLONES
static void maxfwd22(bpv_dtype dt, const bpv_pool2d_dims *d, const void *x_, const void *unused,
                     void *y_, int64_t q0, int64_t q1) {
    (void)dt, (void)unused;
    const float *x = x_;
    float *y = y_;
    const int64_t v8 = d->ow / 8 * 8; /* windows in whole vectors; the rest scalar */
    for (int64_t q = q0; q < q1; q++) {
        const float *plane = x + q * d->h * d->w;
        float *yq = y + q * d->oh * d->ow;
        for (int64_t oy = 0; oy < d->oh; oy++) {
            for (int64_t ox = 0; ox < v8; ox += 8) {
                v8f m;
                v8i idx;
                picks8(plane, d->w, oy, ox, &m, &idx);
                STORE8F(yq + oy * d->ow + ox, m);
            }
            int64_t ox = v8;
            if (ox + 4 <= d->ow) {
                v4f_ m;
                v4i idx;
                picks4(plane, d->w, oy, ox, &m, &idx);
                memcpy(yq + oy * d->ow + ox, &m, sizeof m);
                ox += 4;
            }
            for (; ox < d->ow; ox++) {
                const float *r0 = plane + 2 * oy * d->w + 2 * ox;
                const int k = pick1(r0, d->w);
                yq[oy * d->ow + ox] = r0[(k >> 1) * d->w + (k & 1)];
            }
        }
    }
}

CONV_CLONES
static void maxbwd22(bpv_dtype dt, const bpv_pool2d_dims *d, const void *x_, const void *gy_,
                     void *gx_, int64_t q0, int64_t q1) {
    (void)dt;
    const float *x = x_, *gy = gy_;
    float *gx = gx_;
    const int64_t hw = d->h * d->w, ohw = d->oh * d->ow, v8 = d->ow / 8 * 8;
    memset(gx + q0 * hw, 0, (size_t)((q1 - q0) * hw) * sizeof *gx);
    for (int64_t q = q0; q < q1; q++) {
        const float *plane = x + q * hw;
        float *gq = gx + q * hw;
        for (int64_t oy = 0; oy < d->oh; oy++) {
            for (int64_t ox = 0; ox < v8; ox += 8) {
                v8f m, g;
                v8i idx;
                picks8(plane, d->w, oy, ox, &m, &idx);
                LOAD8F(g, gy + q * ohw + oy * d->ow + ox);
                const v8i val = (v8i)(SPLAT8F(0.0f) + g);
                const v8f e0 = (v8f)(val & (idx == SPLAT8I(0)));
                const v8f o0 = (v8f)(val & (idx == SPLAT8I(1)));
                const v8f e1 = (v8f)(val & (idx == SPLAT8I(2)));
                const v8f o1 = (v8f)(val & (idx == SPLAT8I(3)));
                float *r0 = gq + 2 * oy * d->w + 2 * ox, *r1 = r0 + d->w;
                v8f lo = __builtin_shufflevector(e0, o0, 0, 8, 1, 9, 2, 10, 3, 11);
                v8f hi = __builtin_shufflevector(e0, o0, 4, 12, 5, 13, 6, 14, 7, 15);
                STORE8F(r0, lo), STORE8F(r0 + 8, hi);
                lo = __builtin_shufflevector(e1, o1, 0, 8, 1, 9, 2, 10, 3, 11);
                hi = __builtin_shufflevector(e1, o1, 4, 12, 5, 13, 6, 14, 7, 15);
                STORE8F(r1, lo), STORE8F(r1 + 8, hi);
            }
            int64_t ox = v8;
            if (ox + 4 <= d->ow) {
                v4f_ m, g;
                v4i idx;
                picks4(plane, d->w, oy, ox, &m, &idx);
                memcpy(&g, gy + q * ohw + oy * d->ow + ox, sizeof g);
                const v4i val = (v4i)((v4f_){0.0f, 0.0f, 0.0f, 0.0f} + g);
                const v4f_ e0 = (v4f_)(val & (idx == SPLAT4I(0)));
                const v4f_ o0 = (v4f_)(val & (idx == SPLAT4I(1)));
                const v4f_ e1 = (v4f_)(val & (idx == SPLAT4I(2)));
                const v4f_ o1 = (v4f_)(val & (idx == SPLAT4I(3)));
                float *r0 = gq + 2 * oy * d->w + 2 * ox, *r1 = r0 + d->w;
                v4f_ lo = __builtin_shufflevector(e0, o0, 0, 4, 1, 5);
                v4f_ hi = __builtin_shufflevector(e0, o0, 2, 6, 3, 7);
                memcpy(r0, &lo, sizeof lo), memcpy(r0 + 4, &hi, sizeof hi);
                lo = __builtin_shufflevector(e1, o1, 0, 4, 1, 5);
                hi = __builtin_shufflevector(e1, o1, 2, 6, 3, 7);
                memcpy(r1, &lo, sizeof lo), memcpy(r1 + 4, &hi, sizeof hi);
                ox += 4;
            }
            for (; ox < d->ow; ox++) {
                const int64_t o = 2 * oy * d->w + 2 * ox;
                const int k = pick1(plane + o, d->w);
                gq[o + (k >> 1) * d->w + (k & 1)] = 0.0f + gy[q * ohw + oy * d->ow + ox];
            }
        }
    }
}

typedef void pool_kernel(bpv_dtype dt, const bpv_pool2d_dims *d, const void *a, const void *b,
                         void *out, int64_t q0, int64_t q1);

typedef struct pool_job {
    pool_kernel *k;
    bpv_dtype dt;
    const bpv_pool2d_dims *d;
    const void *a, *b;
    void *out;
} pool_job;

static void pool_part(void *ctx, int part, int nparts, float *scratch) {
    (void)scratch;
    const pool_job *j = ctx;
    int64_t lo, hi;
    bpv_pool_range(j->d->n * j->d->c, part, nparts, &lo, &hi);
    if (hi > lo) j->k(j->dt, j->d, j->a, j->b, j->out, lo, hi);
}

/* Over the planes, on threads when there are enough of them: a window
 * costs k*k element steps, each about 8 multiply-adds of a product. */
static void pool_run(pool_kernel *k, bpv_dtype dt, const bpv_pool2d_dims *d, const void *a,
                     const void *b, void *out) {
    pool_job j = {k, dt, d, a, b, out};
    const int64_t planes = d->n * d->c;
    const double cost = 8.0 * (double)planes * (double)(d->oh * d->ow) * (double)(d->k * d->k);
    const int np = bpv_pool_want(cost, planes);
    if (np > 1 && bpv_pool_run(np, 0, pool_part, &j)) return;
    k(dt, d, a, b, out, 0, planes);
}

void bpv_maxpool2d_fwd32(const bpv_pool2d_dims *d, const float *x, float *y) {
    pool_run(pool22(d) ? maxfwd22 : maxfwd32, BPV_F32, d, x, NULL, y);
}
void bpv_maxpool2d_bwd32(const bpv_pool2d_dims *d, const float *x, const float *gy, float *gx) {
    pool_run(pool22(d) ? maxbwd22 : maxbwd32, BPV_F32, d, x, gy, gx);
}
void bpv_avgpool2d_fwd32(const bpv_pool2d_dims *d, const float *x, float *y) {
    pool_run(avgfwd32, BPV_F32, d, x, NULL, y);
}
void bpv_avgpool2d_bwd32(const bpv_pool2d_dims *d, const float *gy, float *gx) {
    pool_run(avgbwd32, BPV_F32, d, NULL, gy, gx);
}
void bpv_maxpool2d_fwd64(bpv_dtype dt, const bpv_pool2d_dims *d, const double *x, double *y) {
    pool_run(maxfwd64, dt, d, x, NULL, y);
}
void bpv_maxpool2d_bwd64(bpv_dtype dt, const bpv_pool2d_dims *d, const double *x,
                         const double *gy, double *gx) {
    pool_run(maxbwd64, dt, d, x, gy, gx);
}
void bpv_avgpool2d_fwd64(bpv_dtype dt, const bpv_pool2d_dims *d, const double *x, double *y) {
    pool_run(avgfwd64, dt, d, x, NULL, y);
}
void bpv_avgpool2d_bwd64(bpv_dtype dt, const bpv_pool2d_dims *d, const double *gy, double *gx) {
    pool_run(avgbwd64, dt, d, NULL, gy, gx);
}
