/* Data declarations (data.c): the values of `data NAME = ...`. */
#ifndef BPV_DATA_H
#define BPV_DATA_H

#include "model.h"

/* Reads statement st's value (a list of samples, or csv("file", COLUMNS)
 * relative to the model's folder) into d: its samples, their shape and
 * values in the arena, rounded to the dtype, and their float32 copy when
 * the model stores float32. */
bool bpv_data_load(bpv_model *m, const bpv_stmt *st, bpv_data *d, bpv_error **err);

#endif
