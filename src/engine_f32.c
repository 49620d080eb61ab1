/* The engine over float32 storage (engine_impl.h): the graphs of f32
 * models store float32, so the matrix products and SLEEF read and write
 * it directly and every buffer is half the size of a double one. */
#define BPV_STORE_F32 1
#include "engine_impl.h"
