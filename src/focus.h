/* Neighbourhood selection for --focus (focus.c). */
#ifndef BPV_FOCUS_H
#define BPV_FOCUS_H

#include "snapshot.h"

/* Sets keep[i] (one per node of s) for the nodes within `depth` edges of
 * the node named `name`, edges followed in either direction. Returns BPV_OK,
 * or BPV_ERR_MODEL with `err` set when no node has that name. */
int bpv_focus_select(const bpv_snapshot *s, const char *name, int depth, bool *keep,
                     bpv_error **err);

#endif
