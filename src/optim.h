/* The optimizers (optim.c): the params' update after a step's backward,
 * as torch.optim computes it, rounding for rounding, over the model's
 * storage (float32 for f32 models, else double). */
#ifndef BPV_OPTIM_H
#define BPV_OPTIM_H

#include "model.h"
#include "ops.h"

/* One optimizer step for p with train t's settings, over double storage
 * (an f64 model, or an f32 one under BPV_STORE_F64=1) or float32 storage
 * (optim.c), st the param's optimizer state. */
void bpv_optim_update_f64(bpv_dtype dt, const bpv_train *t, bpv_param *p,
                          bpv_optim_state *st);
void bpv_optim_update_f32(const bpv_train *t, bpv_param *p, bpv_optim_state *st);

/* A new optimizer's state for p: no momentum buffer yet, no Adam step. */
void bpv_optim_reset(const bpv_model *m, const bpv_param *p, bpv_optim_state *st);

/* One optimizer step for param `ref` of m (its optimizer state is
 * m->run.optim[ref]) with train t's settings, over the model's storage.
 * Plain SGD on a scalar is inline: on a model of a few scalars it is a few
 * instructions a step, which a call would outweigh (samples/linear.bp);
 * the tutorial's `w.data = w.data - lr * w.grad.data`. */
static inline void bpv_optim_update(const bpv_model *m, const bpv_train *t, int ref) {
    bpv_param *p = &m->params[ref];
    if (!t->adam && t->momentum == 0 && p->numel == 1) {
        if (m->f32store) {
            const bpv_dtype dt = BPV_F32;
            const double lr = bpv_round(dt, p->has_lr ? p->lr : t->lr);
            p->val32[0] = (float)bpv_round(dt, p->val32[0] - bpv_round(dt, lr * p->grad32[0]));
        } else {
            const bpv_dtype dt = m->dtype;
            const double lr = bpv_round(dt, p->has_lr ? p->lr : t->lr);
            p->val[0] = bpv_round(dt, p->val[0] - bpv_round(dt, lr * p->grad[0]));
        }
        return;
    }
    if (m->f32store) bpv_optim_update_f32(t, p, &m->run.optim[ref]);
    else bpv_optim_update_f64(m->dtype, t, p, &m->run.optim[ref]);
}

#endif
