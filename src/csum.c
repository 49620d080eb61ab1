/* PyTorch's summation order (torch 1.13, CPU, a contiguous tensor summed to
 * one number; torch.mean is that sum divided by the count).
 *
 * torch sums in the dtype itself (float32 for float32), from +0.0, with a
 * cascade that keeps rounding error low and the vector units busy:
 *  - the terms are read as vectors (8 floats or 4 doubles: AVX2) and the
 *    vectors as rows of four; vector k of each row goes into accumulator k
 *    of level 0, lane by lane;
 *  - after every level_step rows (16, or more for sums of over 2^24
 *    elements) level 0 is added into level 1 and cleared, and so on up to
 *    level 3 while the row count is a multiple of the level's span;
 *  - at the end the levels are added into level 0 (1, 2, 3 in order), the
 *    vectors left over after the last whole row into accumulator 0, and
 *    accumulators 1, 2, 3 into 0;
 *  - the terms after the last whole vector are summed in order from +0.0,
 *    and the lanes of accumulator 0 are added to that, lane 0 first.
 * A sum of fewer terms than one vector takes the same path with vectors of
 * one element. Checked against torch.sum, torch.mean and mse_loss for
 * float32 and float64 and sizes from 1 to 140,001 (tests/torch/sum_reference.py).
 * Every term arrives in index order, so losses feed their elements as they
 * compute them. */
#include <string.h>

#include "csum.h"
#include "pool.h"

#define R(x) bpv_round(s->dt, (x))

/* lanes: 1, 4 or 8 */
static void init_lanes(bpv_csum *s, bpv_dtype dt, int64_t n, int lanes) {
    memset(s, 0, sizeof *s);
    s->dt = dt;
    s->lanes = lanes;
    const int64_t vec_size = n / s->lanes, rows = vec_size / 4;
    int p = bpv_ceil_log2(rows) / 4;
    s->level_power = p > 4 ? p : 4;
    s->level_step = (int64_t)1 << s->level_power;
    s->row_terms = 4 * (int64_t)s->lanes;
    s->rows_end = rows * s->row_terms;
    s->blocks_end = rows / s->level_step * s->level_step * s->row_terms;
    s->vec_end = vec_size * s->lanes;
}

void bpv_csum_init(bpv_csum *s, bpv_dtype dt, int64_t n) {
    const int lanes = dt == BPV_F32 ? 8 : 4;
    init_lanes(s, dt, n, n < lanes ? 1 : lanes);
}

/* Level 0 into 1, 1 into 2, ... while the row count i is a multiple of the
 * next level's span. */
void bpv_csum_cascade_(bpv_csum *s, int64_t i) {
    for (int j = 1; j < 4; j++) {
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < s->lanes; l++) {
                s->acc[j][k][l] = R(s->acc[j][k][l] + s->acc[j - 1][k][l]);
                s->acc[j - 1][k][l] = 0.0;
            }
        if ((i & ((s->level_step - 1) << (j * s->level_power))) != 0) break;
    }
}

void bpv_csum_stage_(bpv_csum *s) {
    if (s->stage == 0) { /* the levels into level 0 */
        for (int j = 1; j < 4; j++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < s->lanes; l++)
                    s->acc[0][k][l] = R(s->acc[0][k][l] + s->acc[j][k][l]);
    } else if (s->stage == 1) { /* accumulators 1, 2, 3 into 0 */
        for (int k = 1; k < 4; k++)
            for (int l = 0; l < s->lanes; l++)
                s->acc[0][0][l] = R(s->acc[0][0][l] + s->acc[0][k][l]);
    }
    s->stage++;
}

double bpv_csum_result(bpv_csum *s) {
    while (s->stage < 2) bpv_csum_stage_(s);
    double r = s->tail;
    for (int l = 0; l < s->lanes; l++) r = R(r + s->acc[0][0][l]);
    return r;
}

/* An element of a double (f32 false) or float32 array: the callers below
 * pass a constant, so each inlined copy reads one type. */
static inline __attribute__((always_inline)) double at(const void *x, bool f32, int64_t i) {
    return f32 ? ((const float *)x)[i] : ((const double *)x)[i];
}
static inline __attribute__((always_inline)) void put(void *x, bool f32, int64_t i, double v) {
    if (f32) ((float *)x)[i] = (float)v;
    else ((double *)x)[i] = v;
}

/* Columns of a reduction over the leading dimension that share a
 * multi_row_sum (four vectors of columns, or four columns): per column a
 * single accumulator per level, one term per row, the levels added in
 * order at the end. All the columns of a chunk go row by row together. */
enum { CHUNK = 64 };
/* ACC is the accumulator type: double with every step rounded to dt, or
 * float for float32 storage, whose additions round as R() of the double
 * ones (a float32 sum of two float32 values is the rounded exact sum) and
 * run eight lanes wide. */
#define CASCADE_COLS(NAME, IN, ACC, RD)                                                  \
    static inline __attribute__((always_inline)) void NAME(                              \
        bpv_dtype dt, const IN *x, int64_t rows, int64_t cols, int64_t j0, int64_t nc,   \
        double sign, IN *out) {                                                          \
        (void)dt;                                                                        \
        int p = bpv_ceil_log2(rows) / 4;                                                 \
        const int power = p > 4 ? p : 4;                                                 \
        const int64_t step = (int64_t)1 << power;                                        \
        const ACC sg = (ACC)sign;                                                        \
        ACC acc[4][CHUNK] = {{0}};                                                       \
        int64_t i = 0;                                                                   \
        for (; i + step <= rows;) {                                                      \
            for (int64_t r = 0; r < step; r++, i++) {                                    \
                const IN *row = x + i * cols + j0;                                       \
                for (int64_t c = 0; c < nc; c++) acc[0][c] = RD(acc[0][c] + sg * row[c]); \
            }                                                                            \
            for (int j = 1; j < 4; j++) {                                                \
                for (int64_t c = 0; c < nc; c++) {                                       \
                    acc[j][c] = RD(acc[j][c] + acc[j - 1][c]);                           \
                    acc[j - 1][c] = 0;                                                   \
                }                                                                        \
                if ((i & ((step - 1) << (j * power))) != 0) break;                       \
            }                                                                            \
        }                                                                                \
        for (; i < rows; i++) {                                                          \
            const IN *row = x + i * cols + j0;                                           \
            for (int64_t c = 0; c < nc; c++) acc[0][c] = RD(acc[0][c] + sg * row[c]);    \
        }                                                                                \
        for (int j = 1; j < 4; j++)                                                      \
            for (int64_t c = 0; c < nc; c++) acc[0][c] = RD(acc[0][c] + acc[j][c]);      \
        for (int64_t c = 0; c < nc; c++) out[j0 + c] = acc[0][c];                        \
    }
#define RD_DT(v) bpv_round(dt, (v))
#define RD_NONE(v) (v)
CASCADE_COLS(cascade_cols, double, double, RD_DT)
CASCADE_COLS(cascade_cols32, float, float, RD_NONE)

/* The columns left after the groups: each column's sum is bpv_csum's with
 * one-element vectors (its terms as rows of four, term k of a row into
 * accumulator k, the levels cascading every level_step rows; the levels,
 * then the last rows % 4 terms into accumulator 0, then accumulators 1, 2,
 * 3 into 0, then that added to +0.0), for nc columns at once so that the
 * loops run across the columns rather than one call per term. */
#define ROW_SUM_COLS(NAME, IN, ACC, RD)                                                  \
    static inline __attribute__((always_inline)) void NAME(                              \
        bpv_dtype dt, const IN *x, int64_t rows, int64_t cols, int64_t j0, int64_t nc,   \
        double sign, IN *out) {                                                          \
        (void)dt;                                                                        \
        const int64_t quads = rows / 4;                                                  \
        int p = bpv_ceil_log2(quads) / 4;                                                \
        const int power = p > 4 ? p : 4;                                                 \
        const int64_t step = (int64_t)1 << power, blocks = quads / step * step;          \
        const ACC sg = (ACC)sign;                                                        \
        ACC acc[4][4][CHUNK] = {{{0}}}; /* [level][term of the row][column] */          \
        for (int64_t q = 0; q < quads; q++) {                                            \
            for (int k = 0; k < 4; k++) {                                                \
                const IN *row = x + (4 * q + k) * cols + j0;                             \
                for (int64_t c = 0; c < nc; c++)                                         \
                    acc[0][k][c] = RD(acc[0][k][c] + sg * row[c]);                       \
            }                                                                            \
            if (q + 1 > blocks || (q + 1) % step != 0) continue;                         \
            for (int j = 1; j < 4; j++) {                                                \
                for (int k = 0; k < 4; k++)                                              \
                    for (int64_t c = 0; c < nc; c++) {                                   \
                        acc[j][k][c] = RD(acc[j][k][c] + acc[j - 1][k][c]);              \
                        acc[j - 1][k][c] = 0;                                            \
                    }                                                                    \
                if (((q + 1) & ((step - 1) << (j * power))) != 0) break;                 \
            }                                                                            \
        }                                                                                \
        for (int j = 1; j < 4; j++)                                                      \
            for (int k = 0; k < 4; k++)                                                  \
                for (int64_t c = 0; c < nc; c++) acc[0][k][c] = RD(acc[0][k][c] + acc[j][k][c]); \
        for (int64_t i = 4 * quads; i < rows; i++)                                       \
            for (int64_t c = 0; c < nc; c++)                                             \
                acc[0][0][c] = RD(acc[0][0][c] + sg * x[i * cols + j0 + c]);             \
        for (int k = 1; k < 4; k++)                                                      \
            for (int64_t c = 0; c < nc; c++) acc[0][0][c] = RD(acc[0][0][c] + acc[0][k][c]); \
        for (int64_t c = 0; c < nc; c++) out[j0 + c] = RD((ACC)0 + acc[0][0][c]);        \
    }
ROW_SUM_COLS(row_sum_cols, double, double, RD_DT)
ROW_SUM_COLS(row_sum_cols32, float, float, RD_NONE)

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define CSUM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CSUM_CLONES
#endif
CSUM_CLONES
static void column_cascade(bpv_dtype dt, const double *x, int64_t rows, int64_t cols,
                           int64_t j0, int64_t nc, double sign, double *out) {
    cascade_cols(dt, x, rows, cols, j0, nc, sign, out);
}
CSUM_CLONES
static void column_cascade32(bpv_dtype dt, const float *x, int64_t rows, int64_t cols,
                             int64_t j0, int64_t nc, double sign, float *out) {
    cascade_cols32(dt, x, rows, cols, j0, nc, sign, out);
}
CSUM_CLONES
static void column_rows(bpv_dtype dt, const double *x, int64_t rows, int64_t cols, int64_t j0,
                        int64_t nc, double sign, double *out) {
    row_sum_cols(dt, x, rows, cols, j0, nc, sign, out);
}
CSUM_CLONES
static void column_rows32(bpv_dtype dt, const float *x, int64_t rows, int64_t cols, int64_t j0,
                          int64_t nc, double sign, float *out) {
    row_sum_cols32(dt, x, rows, cols, j0, nc, sign, out);
}

/* Column sums on threads: chunk k of CHUNK columns (the grouped columns'
 * chunks first, then the rest's) is one part's, summed as serially. */
typedef struct col_job {
    bpv_dtype dt;
    const void *x;
    bool f32;
    int64_t rows, cols, full; /* full: the columns in whole groups */
    int64_t chunks;           /* of CHUNK columns, the groups' first */
    double sign;
    void *out;
} col_job;

static void col_chunk(const col_job *j, int64_t k) {
    const int64_t grouped = (j->full + CHUNK - 1) / CHUNK;
    if (k < grouped) {
        const int64_t j0 = k * CHUNK, nc = j->full - j0 < CHUNK ? j->full - j0 : CHUNK;
        if (j->f32) column_cascade32(j->dt, j->x, j->rows, j->cols, j0, nc, j->sign, j->out);
        else column_cascade(j->dt, j->x, j->rows, j->cols, j0, nc, j->sign, j->out);
    } else {
        const int64_t j0 = j->full + (k - grouped) * CHUNK;
        const int64_t nc = j->cols - j0 < CHUNK ? j->cols - j0 : CHUNK;
        if (j->f32) column_rows32(j->dt, j->x, j->rows, j->cols, j0, nc, j->sign, j->out);
        else column_rows(j->dt, j->x, j->rows, j->cols, j0, nc, j->sign, j->out);
    }
}

static void col_part(void *ctx, int part, int nparts, float *scratch) {
    (void)scratch;
    const col_job *j = ctx;
    int64_t lo, hi;
    bpv_pool_range(j->chunks, part, nparts, &lo, &hi);
    for (int64_t k = lo; k < hi; k++) col_chunk(j, k);
}

static void columns(bpv_dtype dt, const void *x, bool f32, int64_t rows, int64_t cols,
                    bool negate, void *out) {
    const double sign = negate ? -1.0 : 1.0;
    if (cols == 1) { /* one column is a contiguous sum */
        bpv_csum c;
        bpv_csum_init(&c, dt, rows);
        for (int64_t i = 0; i < rows; i++) bpv_csum_add(&c, sign * at(x, f32, i));
        put(out, f32, 0, bpv_csum_result(&c));
        return;
    }
    /* columns in whole groups of four vectors (four columns when there are
     * fewer columns than one vector) share a multi_row_sum; the rest are
     * each a row_sum: four interleaved partial sums, as bpv_csum with
     * one-element vectors */
    const int64_t lanes = dt == BPV_F32 ? 8 : 4, group = cols >= lanes ? 4 * lanes : 4;
    const int64_t full = cols / group * group;
    const int64_t chunks = (full + CHUNK - 1) / CHUNK + (cols - full + CHUNK - 1) / CHUNK;
    col_job j = {dt, x, f32, rows, cols, full, chunks, sign, out};
    /* an element: about 4 multiply-adds of a product, as the convolution's
     * bias gradient weighs it; the chunks of columns are independent */
    const double cost = 4.0 * (double)rows * (double)cols;
    if (bpv_pool_big(cost)) {
        const int np = bpv_pool_want(cost, chunks);
        if (np > 1 && bpv_pool_run(np, 0, col_part, &j)) return;
    }
    for (int64_t k = 0; k < chunks; k++) col_chunk(&j, k);
}

void bpv_csum_columns(bpv_dtype dt, const double *x, int64_t rows, int64_t cols, bool negate,
                      double *out) {
    columns(dt, x, false, rows, cols, negate, out);
}

void bpv_csum_columns32(bpv_dtype dt, const float *x, int64_t rows, int64_t cols, bool negate,
                        float *out) {
    columns(dt, x, true, rows, cols, negate, out);
}

double bpv_csum_array(bpv_dtype dt, const double *x, int64_t n) {
    bpv_csum s;
    bpv_csum_init(&s, dt, n);
    for (int64_t i = 0; i < n; i++) bpv_csum_add(&s, x[i]);
    return bpv_csum_result(&s);
}

double bpv_csum_array32(bpv_dtype dt, const float *x, int64_t n) {
    bpv_csum s;
    bpv_csum_init(&s, dt, n);
    for (int64_t i = 0; i < n; i++) bpv_csum_add(&s, x[i]);
    return bpv_csum_result(&s);
}


/* ---- Sums and means along one dimension (torch.sum(x, dim), torch.mean(x, dim))
 *
 * x is viewed as [outer, len, inner]. For each outer index torch's
 * TensorIterator puts the reduced dimension first and hands cascade_sum one
 * [len, inner] slice (dimensions of size one and the dimensions after the
 * reduced one are coalesced, so only outer, len and inner matter). The slice
 * is summed in the dtype from +0.0 (the output is zero-filled and the sum
 * added to it), as SumKernel.cpp's cascade_sum picks:
 *  - inner == 1, len >= V (V: 8 floats or 4 doubles): vectorized_inner_sum,
 *    the whole-tensor order of bpv_csum: a row_sum of the len / V vectors,
 *    then the last len % V terms in order from +0.0, then the V lanes;
 *  - inner == 1, len < V: a scalar row_sum;
 *  - inner >= V: vectorized_outer_sum: the columns in groups of 4V share a
 *    multi_row_sum (each column its own cascade over the len rows), then
 *    groups of V columns each a vector row_sum, then each last column a
 *    scalar row_sum;
 *  - 1 < inner < V: scalar_outer_sum: groups of 4 columns share a
 *    multi_row_sum, each last column a row_sum.
 * multi_row_sum: per column one accumulator per level (4 levels); every
 * level_step = 2^max(4, CeilLog2(rows) / 4) rows level 0 is added into 1
 * and cleared, on up while the row count is a multiple of the next level's
 * span; the levels are added into level 0 at the end. row_sum of n terms:
 * the terms as rows of four (term 4r + k into accumulator k) through
 * multi_row_sum over n / 4 rows, the last n % 4 terms into accumulator 0,
 * then accumulators 1, 2, 3 into 0.
 * torch.mean(x, dim) is that sum then div_(len): each sum divided by len
 * converted to the dtype, rounded once; its backward is the upstream
 * gradient divided the same way (sum_backward's expand, then / len). */

/* A kernel set per storage and rounding: S the suffix, IN the element
 * type, ACC the accumulator type, RD the rounding of each step, V the
 * lanes of torch's vector. */
#define DIM_KERNELS(S, IN, ACC, RD, V)                                                    \
    /* multi_row_sum: term x[i * rs + k * ks + l] of row i into column (k, l),           \
     * k < nk, l < nl; res[k][l] the column sums */                                      \
    static inline __attribute__((always_inline)) void mrs_##S(                            \
        const IN *x, int64_t size, int64_t rs, int64_t ks, int nk, int nl,                \
        ACC res[4][V]) {                                                                  \
        const int p = bpv_ceil_log2(size) / 4, power = p > 4 ? p : 4;                    \
        const int64_t step = (int64_t)1 << power;                                         \
        ACC acc[4][4][V];                                                                 \
        for (int j = 0; j < 4; j++)                                                       \
            for (int k = 0; k < nk; k++)                                                  \
                for (int l = 0; l < nl; l++) acc[j][k][l] = 0;                            \
        int64_t i = 0;                                                                    \
        while (i + step <= size) {                                                        \
            for (int64_t r = 0; r < step; r++, i++) {                                     \
                const IN *row = x + i * rs;                                               \
                for (int k = 0; k < nk; k++)                                              \
                    for (int l = 0; l < nl; l++)                                          \
                        acc[0][k][l] = RD(acc[0][k][l] + (ACC)row[k * ks + l]);           \
            }                                                                             \
            for (int j = 1; j < 4; j++) {                                                 \
                for (int k = 0; k < nk; k++)                                              \
                    for (int l = 0; l < nl; l++) {                                        \
                        acc[j][k][l] = RD(acc[j][k][l] + acc[j - 1][k][l]);               \
                        acc[j - 1][k][l] = 0;                                             \
                    }                                                                     \
                if ((i & ((step - 1) << (j * power))) != 0) break;                        \
            }                                                                             \
        }                                                                                 \
        for (; i < size; i++) {                                                           \
            const IN *row = x + i * rs;                                                   \
            for (int k = 0; k < nk; k++)                                                  \
                for (int l = 0; l < nl; l++)                                              \
                    acc[0][k][l] = RD(acc[0][k][l] + (ACC)row[k * ks + l]);               \
        }                                                                                 \
        for (int j = 1; j < 4; j++)                                                       \
            for (int k = 0; k < nk; k++)                                                  \
                for (int l = 0; l < nl; l++) acc[0][k][l] = RD(acc[0][k][l] + acc[j][k][l]); \
        for (int k = 0; k < nk; k++)                                                      \
            for (int l = 0; l < nl; l++) res[k][l] = acc[0][k][l];                        \
    }                                                                                     \
    /* row_sum of size terms, term t being the nl values at x + t * stride */            \
    static inline __attribute__((always_inline)) void rowsum_##S(                         \
        const IN *x, int64_t size, int64_t stride, int nl, ACC out[V]) {                  \
        const int64_t ilp = size / 4;                                                     \
        if (nl == 1 && ilp < 16) {                                                        \
            /* no cascade step within 16 rows, and adding the empty levels                \
             * (+0.0 to sums that are never -0.0) changes nothing: plain                  \
             * registers, no stores and reloads of a zeroed array */                      \
            ACC p0 = 0, p1 = 0, p2 = 0, p3 = 0;                                           \
            for (int64_t r = 0; r < ilp; r++) {                                           \
                const IN *q = x + 4 * r * stride;                                         \
                p0 = RD(p0 + (ACC)q[0]);                                                  \
                p1 = RD(p1 + (ACC)q[stride]);                                             \
                p2 = RD(p2 + (ACC)q[2 * stride]);                                         \
                p3 = RD(p3 + (ACC)q[3 * stride]);                                         \
            }                                                                             \
            for (int64_t t = ilp * 4; t < size; t++) p0 = RD(p0 + (ACC)x[t * stride]);    \
            out[0] = RD(RD(RD(p0 + p1) + p2) + p3);                                       \
            return;                                                                       \
        }                                                                                 \
        ACC p[4][V];                                                                      \
        mrs_##S(x, ilp, 4 * stride, stride, 4, nl, p);                                    \
        for (int64_t t = ilp * 4; t < size; t++)                                          \
            for (int l = 0; l < nl; l++) p[0][l] = RD(p[0][l] + (ACC)x[t * stride + l]);  \
        for (int k = 1; k < 4; k++)                                                       \
            for (int l = 0; l < nl; l++) p[0][l] = RD(p[0][l] + p[k][l]);                 \
        for (int l = 0; l < nl; l++) out[l] = p[0][l];                                    \
    }                                                                                     \
    /* one [len, inner] slice into out[inner] */                                          \
    CSUM_CLONES static void slice_##S(const IN *x, int64_t len, int64_t inner, IN *out) { \
        ACC v[V], r[4][V];                                                                \
        if (inner == 1) {                                                                 \
            if (len < V) {                                                                \
                rowsum_##S(x, len, 1, 1, v);                                              \
                out[0] = (IN)v[0];                                                        \
                return;                                                                   \
            }                                                                             \
            const int64_t nv = len / V;                                                   \
            rowsum_##S(x, nv, V, V, v);                                                   \
            ACC f = 0;                                                                    \
            for (int64_t t = nv * V; t < len; t++) f = RD(f + (ACC)x[t]);                 \
            for (int l = 0; l < V; l++) f = RD(f + v[l]);                                 \
            out[0] = (IN)f;                                                               \
            return;                                                                       \
        }                                                                                 \
        int64_t j = 0;                                                                    \
        if (inner >= V) {                                                                 \
            for (; j + 4 * V <= inner; j += 4 * V) {                                      \
                mrs_##S(x + j, len, inner, V, 4, V, r);                                   \
                for (int k = 0; k < 4; k++)                                               \
                    for (int l = 0; l < V; l++) out[j + k * V + l] = (IN)r[k][l];         \
            }                                                                             \
            for (; j + V <= inner; j += V) {                                              \
                rowsum_##S(x + j, len, inner, V, v);                                      \
                for (int l = 0; l < V; l++) out[j + l] = (IN)v[l];                        \
            }                                                                             \
        } else {                                                                          \
            for (; j + 4 <= inner; j += 4) {                                              \
                mrs_##S(x + j, len, inner, 1, 4, 1, r);                                   \
                for (int k = 0; k < 4; k++) out[j + k] = (IN)r[k][0];                     \
            }                                                                             \
        }                                                                                 \
        for (; j < inner; j++) {                                                          \
            rowsum_##S(x + j, len, inner, 1, v);                                          \
            out[j] = (IN)v[0];                                                            \
        }                                                                                 \
    }
#define RD_F32(v) ((double)(float)(v))
DIM_KERNELS(d32, double, double, RD_F32, 8) /* float32 values over double storage */
DIM_KERNELS(d64, double, double, RD_NONE, 4)
DIM_KERNELS(f32, float, float, RD_NONE, 8)

void bpv_csum_dim(bpv_dtype dt, const double *x, int64_t outer, int64_t len, int64_t inner,
                  double *out) {
    for (int64_t o = 0; o < outer; o++) {
        if (dt == BPV_F32) slice_d32(x + o * len * inner, len, inner, out + o * inner);
        else slice_d64(x + o * len * inner, len, inner, out + o * inner);
    }
}

void bpv_csum_dim32(bpv_dtype dt, const float *x, int64_t outer, int64_t len, int64_t inner,
                    float *out) {
    (void)dt;
    for (int64_t o = 0; o < outer; o++) slice_f32(x + o * len * inner, len, inner, out + o * inner);
}

void bpv_cmean_dim(bpv_dtype dt, const double *x, int64_t outer, int64_t len, int64_t inner,
                   double *out) {
    bpv_csum_dim(dt, x, outer, len, inner, out);
    const double n = bpv_round(dt, (double)len);
    for (int64_t i = 0; i < outer * inner; i++) out[i] = bpv_round(dt, out[i] / n);
}

void bpv_cmean_dim32(bpv_dtype dt, const float *x, int64_t outer, int64_t len, int64_t inner,
                     float *out) {
    bpv_csum_dim32(dt, x, outer, len, inner, out);
    const float n = (float)len;
    for (int64_t i = 0; i < outer * inner; i++) out[i] = out[i] / n;
}

double bpv_mean_dim_grad(bpv_dtype dt, double g, int64_t len) {
    return bpv_round(dt, g / bpv_round(dt, (double)len));
}

/* Row 0 of each outer index computed, the other len - 1 rows copies of it. */
void bpv_csum_dim_backward(bpv_dtype dt, bool mean, const double *g, int64_t outer, int64_t len,
                           int64_t inner, double *gx) {
    for (int64_t o = 0; o < outer && len > 0; o++) {
        double *first = gx + o * len * inner;
        const double *go = g + o * inner;
        if (mean)
            for (int64_t i = 0; i < inner; i++) first[i] = bpv_mean_dim_grad(dt, go[i], len);
        else memcpy(first, go, (size_t)inner * sizeof *first);
        for (int64_t j = 1; j < len; j++) memcpy(first + j * inner, first, (size_t)inner * sizeof *first);
    }
}

void bpv_csum_dim_backward32(bpv_dtype dt, bool mean, const float *g, int64_t outer, int64_t len,
                             int64_t inner, float *gx) {
    (void)dt;
    const float n = (float)len;
    for (int64_t o = 0; o < outer && len > 0; o++) {
        float *first = gx + o * len * inner;
        const float *go = g + o * inner;
        if (mean)
            for (int64_t i = 0; i < inner; i++) first[i] = go[i] / n;
        else memcpy(first, go, (size_t)inner * sizeof *first);
        for (int64_t j = 1; j < len; j++) memcpy(first + j * inner, first, (size_t)inner * sizeof *first);
    }
}
