/* The engine over float32 storage: engine.c compiled a second time with
 * BPV_ENGINE32, for the float32 twins the training loop runs f32 tensor
 * graphs on (model.c). Same source, same kernels, same numbers; half the
 * memory traffic, and matrix products and SLEEF read and write float32
 * directly instead of converting. */
#define BPV_ENGINE32 1
#include "engine.c"
