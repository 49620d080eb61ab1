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

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
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
    for (int64_t j = 0; j < full; j += CHUNK) {
        const int64_t nc = full - j < CHUNK ? full - j : CHUNK;
        if (f32) column_cascade32(dt, x, rows, cols, j, nc, sign, out);
        else column_cascade(dt, x, rows, cols, j, nc, sign, out);
    }
    for (int64_t j = full; j < cols; j++) {
        bpv_csum c;
        init_lanes(&c, dt, rows, 1);
        for (int64_t i = 0; i < rows; i++) bpv_csum_add(&c, sign * at(x, f32, i * cols + j));
        put(out, f32, j, bpv_csum_result(&c));
    }
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

/* TODO(sumdim): torch's order */
void bpv_sum_dim(bpv_dtype dt, bool mean, const double *x, int64_t outer, int64_t len,
                 int64_t inner, double *out) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0;
            for (int64_t j = 0; j < len; j++) s = bpv_round(dt, s + x[(o * len + j) * inner + i]);
            out[o * inner + i] = mean ? bpv_round(dt, s / (double)len) : s;
        }
}

void bpv_sum_dim32(bpv_dtype dt, bool mean, const float *x, int64_t outer, int64_t len,
                   int64_t inner, float *out) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0;
            for (int64_t j = 0; j < len; j++) s = bpv_round(dt, s + x[(o * len + j) * inner + i]);
            out[o * inner + i] = (float)(mean ? bpv_round(dt, s / (double)len) : s);
        }
}
