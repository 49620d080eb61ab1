/* Sums in PyTorch's order (csum.c): `sum`, `mean` and the mean of `mse`
 * and `bce` give torch's bits. Terms are fed one at a time in index order,
 * so a loss can sum its elements as it computes them, with no buffer. */
#ifndef BPV_CSUM_H
#define BPV_CSUM_H

#include <stdbool.h>

#include "graph.h"

/* ceil(log2(x)), at least 1: the CeilLog2 torch sizes its cascades with */
static inline int bpv_ceil_log2(int64_t x) {
    return x <= 2 ? 1 : 64 - __builtin_clzll((unsigned long long)(x - 1));
}

typedef struct bpv_csum {
    bpv_dtype dt;
    int lanes;             /* of one vector: 8 floats, 4 doubles; 1 for short sums */
    int64_t t;             /* terms so far */
    int64_t rows_end;      /* terms in rows of four vectors */
    int64_t blocks_end;    /* terms in whole blocks of level_step rows */
    int64_t vec_end;       /* terms in whole vectors */
    int64_t row_terms;     /* 4 * lanes */
    int64_t level_step;    /* rows per block */
    int level_power;
    double acc[4][4][8];   /* [level][vector of the row][lane] */
    double tail;           /* the terms after the last whole vector */
    int stage;             /* 0 rows, 1 leftover vectors, 2 tail */
} bpv_csum;

/* Starts a sum of n terms in dtype dt. */
void bpv_csum_init(bpv_csum *s, bpv_dtype dt, int64_t n);
void bpv_csum_cascade_(bpv_csum *s, int64_t rows); /* csum.c, for bpv_csum_add */
void bpv_csum_stage_(bpv_csum *s);

/* Adds the next term (a value of dt). Inline: losses call it per element. */
static inline void bpv_csum_add(bpv_csum *s, double x) {
    const int64_t t = s->t++;
    if (t < s->rows_end) {
        const int k = (int)(t / s->lanes % 4), l = (int)(t % s->lanes);
        s->acc[0][k][l] = bpv_round(s->dt, s->acc[0][k][l] + x);
        if ((t + 1) % s->row_terms == 0 && t + 1 <= s->blocks_end &&
            (t + 1) / s->row_terms % s->level_step == 0)
            bpv_csum_cascade_(s, (t + 1) / s->row_terms);
        return;
    }
    if (s->stage == 0) bpv_csum_stage_(s);
    if (t < s->vec_end) {
        const int l = (int)(t % s->lanes);
        s->acc[0][0][l] = bpv_round(s->dt, s->acc[0][0][l] + x);
        return;
    }
    if (s->stage == 1) bpv_csum_stage_(s);
    s->tail = bpv_round(s->dt, s->tail + x);
}
/* The sum, once all n terms are in. */
double bpv_csum_result(bpv_csum *s);
/* The column sums of x (rows x cols, row-major) into out[cols], negated
 * terms when negate: torch's sum over the leading dimension, as a
 * broadcast bias's gradient is reduced. */
void bpv_csum_columns(bpv_dtype dt, const double *x, int64_t rows, int64_t cols, bool negate,
                      double *out);
/* x[0] + ... + x[n-1] in torch's order. */
double bpv_csum_array(bpv_dtype dt, const double *x, int64_t n);
/* The same two over float32 storage. */
void bpv_csum_columns32(bpv_dtype dt, const float *x, int64_t rows, int64_t cols, bool negate,
                        float *out);
double bpv_csum_array32(bpv_dtype dt, const float *x, int64_t n);


/* ---- One dimension, as torch.sum(x, dim) and torch.mean(x, dim) order it
 * (torch 1.13, CPU, single-threaded, contiguous x): x is viewed as
 * [outer, len, inner] (len the size of dim, inner the product of the later
 * sizes, outer of the earlier ones) and the result as [outer, inner]. Any
 * of the three may be 0. Over double storage with dt == BPV_F32 the values
 * are float32 and every step is rounded to float32, giving the bits of the
 * float32 storage version; the *32 versions take float32 values and dtype
 * (dt is ignored). */

/* out[o * inner + i] = the sum over j of x[(o * len + j) * inner + i] in
 * torch's order: for inner == 1 each row's whole-tensor cascade (as
 * bpv_csum_array), for inner > 1 the column cascade of bpv_csum_columns. */
void bpv_csum_dim(bpv_dtype dt, const double *x, int64_t outer, int64_t len, int64_t inner,
                  double *out);
void bpv_csum_dim32(bpv_dtype dt, const float *x, int64_t outer, int64_t len, int64_t inner,
                    float *out);
/* torch.mean(x, dim): the same sums, each then divided by len converted to
 * the dtype, rounded once (torch: sum_out(...).div_(len)). */
void bpv_cmean_dim(bpv_dtype dt, const double *x, int64_t outer, int64_t len, int64_t inner,
                   double *out);
void bpv_cmean_dim32(bpv_dtype dt, const float *x, int64_t outer, int64_t len, int64_t inner,
                     float *out);
/* mean's backward for one element: what torch puts in each x.grad element
 * that the upstream gradient value g reaches, g / len rounded once to dt
 * (len converted to dt first; not g * (1 / len), which differs). */
double bpv_mean_dim_grad(bpv_dtype dt, double g, int64_t len);
/* The backward of bpv_csum_dim (mean false: g copied) or bpv_cmean_dim
 * (mean true: bpv_mean_dim_grad): gx[(o * len + j) * inner + i] for g[o *
 * inner + i], every element of gx (outer * len * inner) written, not added. */
void bpv_csum_dim_backward(bpv_dtype dt, bool mean, const double *g, int64_t outer, int64_t len,
                           int64_t inner, double *gx);
void bpv_csum_dim_backward32(bpv_dtype dt, bool mean, const float *g, int64_t outer, int64_t len,
                             int64_t inner, float *gx);

#endif
