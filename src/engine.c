/* The engine's entry points: each runs the instantiation of engine_impl.h
 * that the graph's storage is (engine_f32.c, engine_f64.c); and custom fn
 * programs (fnprog.c compiles them), which the element functions of
 * BPV_OP_CUSTOM run. */
#include "op_elem.h"

void bpv_k64_forward(bpv_graph *g);
void bpv_k64_backward(bpv_graph *g);
void bpv_k32_forward(bpv_graph *g);
void bpv_k32_backward(bpv_graph *g);

void bpv_graph_forward(bpv_graph *g) {
    if (g->f32) bpv_k32_forward(g);
    else bpv_k64_forward(g);
}

void bpv_graph_backward(bpv_graph *g) {
    if (g->f32) bpv_k32_backward(g);
    else bpv_k64_backward(g);
}

/* ---- running a program --------------------------------------------------------- */

/* The ops round like the engine's (the same element functions), so a fn
 * with `grad` computes the same values as its body inlined. */
double bpv_fnprog_eval(bpv_dtype dt, const bpv_fnprog *p, double a, double b, double out,
                       bool vec) {
    double st[BPV_FNPROG_STACK];
    int sp = 0;
    for (int i = 0; i < p->n; i++) {
        const bpv_fnprog_ins *in = &p->code[i];
        switch (in->kind) {
        case BPV_FP_NUM: st[sp++] = in->num; break;
        case BPV_FP_A: st[sp++] = a; break;
        case BPV_FP_B: st[sp++] = b; break;
        case BPV_FP_OUT: st[sp++] = out; break;
        case BPV_FP_OP: {
            /* a unary op works on the top; a binary one on the two below it,
             * except that RDIV's numerator and POW_SCALAR's exponent are
             * the instruction's number */
            const bpv_ectx c = {in->variant, in->num, NULL, NULL, false}; /* no backward here */
            const bool one = bpv_ops[in->op].max_in == 1 || in->variant != BPV_VAR_DEFAULT;
            double *x = &st[sp - 1], *y = one ? x : &st[sp - 2];
            double l = one ? *x : *y, r = one ? 0.0 : *x;
            if (in->variant == BPV_VAR_RDIV) l = in->num, r = *x;
            double v = 0;
            switch (in->op) {
#define X(OP, fn, vf, arity)                                                      \
            case OP: v = bpv_ef_##fn(dt, &c, l, r, vec); break;
                BPV_ELEM_OPS(X)
#undef X
            default: v = NAN; break;
            }
            *y = v;
            if (!one) sp--;
            break;
        }
        }
    }
    return sp > 0 ? st[sp - 1] : NAN;
}
