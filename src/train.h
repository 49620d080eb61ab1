/* Running a loaded model (train.c): statements top to bottom, training
 * steps, snapshots of the kept ones, one line per epoch. */
#ifndef BPV_TRAIN_H
#define BPV_TRAIN_H

#include "model.h"

/* Executes the statements top to bottom: predictions, training, snapshots
 * of the kept steps opts->keep selects. */
int bpv_model_exec(bpv_model *m, const bpv_run_options *opts, bpv_error **err);

#endif
