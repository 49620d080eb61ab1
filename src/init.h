/* Seeded initial values and shuffling (init.c): the same numbers on every
 * machine. */
#ifndef BPV_INIT_H
#define BPV_INIT_H

#include "model.h"

/* Checks `param NAME = VALUE`'s value (a constant, or zeros/ones/randn/
 * uniform with their options) and fills p's shape, numel and val: doubles
 * in the arena, rounded to the dtype. */
bool bpv_param_init(bpv_model *m, const bpv_stmt *st, bpv_param *p, bpv_error **err);

/* Fisher-Yates over perm[0..n) with the generator state *rng. */
void bpv_shuffle(int64_t *perm, int64_t n, uint64_t *rng);

#endif
