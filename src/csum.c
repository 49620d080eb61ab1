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
 * float32 and float64 and sizes from 1 to 100,003 (tests/torch/sum_reference.py).
 * Every term arrives in index order, so losses feed their elements as they
 * compute them. */
#include <string.h>

#include "csum.h"

#define R(x) bpv_round(s->dt, (x))

static int ceil_log2(int64_t x) {
    if (x <= 2) return 1;
    return 64 - __builtin_clzll((unsigned long long)(x - 1));
}

void bpv_csum_init(bpv_csum *s, bpv_dtype dt, int64_t n) {
    memset(s, 0, sizeof *s);
    s->dt = dt;
    s->n = n;
    const int lanes = dt == BPV_F32 ? 8 : 4;
    s->lanes = n < lanes ? 1 : lanes;
    const int64_t vec_size = n / s->lanes, rows = vec_size / 4;
    int p = ceil_log2(rows) / 4;
    s->level_power = p > 4 ? p : 4;
    s->level_step = (int64_t)1 << s->level_power;
    s->row_terms = 4 * (int64_t)s->lanes;
    s->rows_end = rows * s->row_terms;
    s->blocks_end = rows / s->level_step * s->level_step * s->row_terms;
    s->vec_end = vec_size * s->lanes;
}

/* Level 0 into 1, 1 into 2, ... while the row count i is a multiple of the
 * next level's span. */
static void cascade(bpv_csum *s, int64_t i) {
    for (int j = 1; j < 4; j++) {
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < s->lanes; l++) {
                s->acc[j][k][l] = R(s->acc[j][k][l] + s->acc[j - 1][k][l]);
                s->acc[j - 1][k][l] = 0.0;
            }
        if ((i & ((s->level_step - 1) << (j * s->level_power))) != 0) break;
    }
}

static void next_stage(bpv_csum *s) {
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

void bpv_csum_add(bpv_csum *s, double x) {
    const int64_t t = s->t++;
    if (t < s->rows_end) {
        const int k = (int)(t / s->lanes % 4), l = (int)(t % s->lanes);
        s->acc[0][k][l] = R(s->acc[0][k][l] + x);
        if ((t + 1) % s->row_terms == 0 && t + 1 <= s->blocks_end) {
            const int64_t rows = (t + 1) / s->row_terms;
            if (rows % s->level_step == 0) cascade(s, rows);
        }
        return;
    }
    if (s->stage == 0) next_stage(s);
    if (t < s->vec_end) {
        const int l = (int)(t % s->lanes);
        s->acc[0][0][l] = R(s->acc[0][0][l] + x);
        return;
    }
    if (s->stage == 1) next_stage(s);
    s->tail = R(s->tail + x);
}

double bpv_csum_result(bpv_csum *s) {
    while (s->stage < 2) next_stage(s);
    double r = s->tail;
    for (int l = 0; l < s->lanes; l++) r = R(r + s->acc[0][0][l]);
    return r;
}

double bpv_csum_array(bpv_dtype dt, const double *x, int64_t n) {
    bpv_csum s;
    bpv_csum_init(&s, dt, n);
    for (int64_t i = 0; i < n; i++) bpv_csum_add(&s, x[i]);
    return bpv_csum_result(&s);
}
