/* Data declarations (data.c, npy.c): the values of `data NAME = ...`. */
#ifndef BPV_DATA_H
#define BPV_DATA_H

#include <sys/stat.h>

#include "model.h"

/* Reads statement st's value (a list of samples, csv("file", COLUMNS) or
 * npy("file"), files relative to the model's folder) into d: its samples,
 * their shape and values in the arena, rounded to the dtype, and their
 * float32 copy when the model stores float32. */
bool bpv_data_load(bpv_model *m, const bpv_stmt *st, bpv_data *d, bpv_error **err);

/* Opens the file the string literal fa names, relative to the model's
 * folder, for reading: a regular file only (a FIFO is opened without
 * waiting for a writer and refused, as are folders and devices; `kind`
 * names what was wanted in the message, "a CSV file"). Returns the file
 * descriptor, with the path in *path (the caller frees it) and the file's
 * status in *st; or -1 with a located error and *path freed. */
int bpv_data_open(const bpv_model *m, const bpv_ast *fa, const char *kind, bpv_buf *path,
                  struct stat *st, bpv_error **err);

/* `data NAME = npy("file.npy")` (npy.c): a NumPy .npy file, versions 1.0
 * to 3.0, of float16/32/64, signed or unsigned integers or bool, either
 * byte order, C or Fortran order. The first dimension counts samples; the
 * values are converted to the model's dtype as torch.from_numpy(a).float()
 * (or .double()) would convert them. */
bool bpv_npy_load(bpv_model *m, const bpv_stmt *st, bpv_data *d, bpv_error **err);

#endif
