/* Param initial values: a constant, or zeros/ones/randn/uniform with a
 * seed; and the shuffle of a train's samples.
 *
 * Seeded initialisers and shuffling use splitmix64 (Steele et al.), a 64-bit
 * generator that needs no tables and gives the same stream on every machine:
 * uniform numbers are the top 53 bits / 2^53, randn is Box-Muller in double
 * (both values of each pair used), and every result is rounded to the dtype
 * once. Shuffling is Fisher-Yates over a stream seeded once per train. */
#include <math.h>
#include <string.h>

#include "init.h"

/* ---- random numbers ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double unit(uint64_t *s) { return (double)(splitmix64(s) >> 11) * 0x1p-53; }
static const char *const init_names[] = {"zeros", "ones", "randn", "uniform"};

bool bpv_param_init(bpv_model *m, const bpv_stmt *st, bpv_param *p, bpv_error **err) {
    const bpv_ast *e = st->value;
    if (e->kind != AST_CALL) {
        char what[300];
        snprintf(what, sizeof what, "the initial value of '%s'", st->name);
        double *v;
        if (!bpv_const_eval(m, e, what, &p->shape, &v, err)) return false;
        p->numel = bpv_shape_numel(&p->shape);
        p->val = v;
        return true;
    }
    int kind = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(e->name, init_names[i]) == 0) kind = i;
    if (kind < 0) {
        const char *s = bpv_closest(e->name, init_names, 4);
        return bpv_model_fail(m, err, e->name_off, strlen(e->name),
                    "a param starts as a number, a list, zeros(), ones(), randn() or uniform(), "
                    "not %s()%s%s%s",
                    e->name, s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
    }
    static const int npos[] = {1, 1, 1, 3};
    static const char *const usage[] = {"zeros([3, 2])", "ones([3, 2])",
                                        "randn([3, 2], seed=1, std=0.1)",
                                        "uniform([3, 2], -0.5, 0.5, seed=1)"};
    int pos = 0;
    double seed = 0, stdv = 1, lo = 0, hi = 1;
    for (int i = 0; i < e->nargs; i++) {
        const bpv_ast *a = e->args[i];
        const char *kw = e->kwnames ? e->kwnames[i] : NULL;
        if (!kw) {
            if (pos++ >= npos[kind] || (i > 0 && e->kwnames && e->kwnames[i - 1]))
                return bpv_model_fail(m, err, a->off, a->len, "too many arguments; use it like %s",
                            usage[kind]);
            continue;
        }
        size_t ko = e->kwoffs[i], kl = strlen(kw);
        if (strcmp(kw, "seed") == 0 && (kind == 2 || kind == 3)) {
            if (!bpv_ast_whole(a, 0, 9007199254740992.0, &seed))
                return bpv_model_fail(m, err, a->off, a->len, "seed must be a whole number from 0");
        } else if (strcmp(kw, "std") == 0 && kind == 2) {
            if (!bpv_ast_number(a, &stdv) || !(stdv >= 0) || !isfinite(stdv))
                return bpv_model_fail(m, err, a->off, a->len, "std must be a number of at least 0");
        } else {
            return bpv_model_fail(m, err, ko, kl, "%s() has no option '%s'; use it like %s", e->name, kw,
                        usage[kind]);
        }
    }
    if (pos != npos[kind])
        return bpv_model_fail(m, err, e->off, e->len, "%s() takes %d value%s before its options; use it like %s",
                    e->name, npos[kind], npos[kind] == 1 ? "" : "s", usage[kind]);
    if (!bpv_shape_eval(m, e->args[0], &p->shape, err)) return false;
    if (kind == 3) {
        if (!bpv_ast_number(e->args[1], &lo) || !isfinite(lo))
            return bpv_model_fail(m, err, e->args[1]->off, e->args[1]->len, "LO must be a number");
        if (!bpv_ast_number(e->args[2], &hi) || !isfinite(hi) || hi < lo)
            return bpv_model_fail(m, err, e->args[2]->off, e->args[2]->len,
                        "HI must be a number not below LO");
    }
    p->numel = bpv_shape_numel(&p->shape);
    if (!bpv_model_fits(m, (size_t)p->numel * 8))
        return bpv_model_too_big(m, err, e->off, e->len, "the model with this param",
                                 (size_t)p->numel * 8);
    p->val = bpv_arena_calloc(m->arena, (size_t)p->numel, sizeof(double));
    if (!p->val) return bpv_model_oom(err);
    uint64_t s = (uint64_t)seed;
    for (int64_t i = 0; i < p->numel; i++) {
        double v = kind == 1 ? 1.0 : 0.0;
        if (kind == 2) {
            if (i % 2 == 0) {
                double u1 = 1.0 - unit(&s), u2 = unit(&s);
                double r = sqrt(-2.0 * log(u1)), t = 2.0 * 3.14159265358979323846 * u2;
                v = r * cos(t);
                if (i + 1 < p->numel) p->val[i + 1] = r * sin(t); /* the pair's second value */
            } else {
                v = p->val[i];
            }
            v *= stdv;
        } else if (kind == 3) {
            v = lo + (hi - lo) * unit(&s);
        }
        p->val[i] = v;
    }
    for (int64_t i = 0; i < p->numel; i++) {
        double r = bpv_round(m->dtype, p->val[i]);
        if (isinf(r) && isfinite(p->val[i]))
            return bpv_model_fail(m, err, e->off, e->len, "the initial values are out of range for f32");
        p->val[i] = r;
    }
    return true;
}
void bpv_shuffle(int64_t *perm, int64_t n, uint64_t *rng) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix64(rng) % (uint64_t)(i + 1));
        int64_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
}
