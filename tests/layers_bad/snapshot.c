/* A deliberate layering fault for the `layers_catches` test: the snapshots
 * sit below inspection, so this include must be reported. */
#include "inspect.h"
#include "model.h"
