/* The engine over double storage (engine_impl.h): the graphs of f64
 * models, and the double copies that snapshots' local partials and the
 * gradient check evaluate f32 arithmetic on. */
#include "engine_impl.h"
