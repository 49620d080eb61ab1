/* Custom derivatives: `fn f(a, b) = EXPR grad a = EXPR, b = EXPR`.
 *
 * A call of such a fn is one graph node (BPV_OP_CUSTOM) whose forward runs
 * the body and whose backward multiplies the incoming gradient by the
 * user's partials, right or wrong: that is the point, the gradient check
 * then shows a wrong one. The body and each partial are compiled here, once
 * per fn, into tapes the engine runs element by element; so they may use
 * only elementwise arithmetic over the arguments, numbers and (partials)
 * `out`, the fn's value. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct tape_cc {
    bpv_model *m;
    const bpv_stmt *fn;
    bool allow_out;
    bpv_tape_ins *code;
    int n, cap;
    int depth, maxdepth;
    bpv_error **err;
} tape_cc;

static bool tfail(tape_cc *t, const bpv_ast *e, const char *fmt, const char *arg)
    BPV_PRINTF(3, 0);
static bool tfail(tape_cc *t, const bpv_ast *e, const char *fmt, const char *arg) {
    char msg[400];
    snprintf(msg, sizeof msg, fmt, arg);
    bpv_error_set(t->err, bpv_error_at(&t->m->src, e->off, e->len, BPV_ERR_MODEL, "%s", msg));
    return false;
}

static bool emit(tape_cc *t, const bpv_ast *e, bpv_tape_op op, double num, int push) {
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 16;
        bpv_tape_ins *c = realloc(t->code, (size_t)cap * sizeof *c);
        if (!c) return tfail(t, e, "out of memory compiling fn '%s'", t->fn->name);
        t->code = c;
        t->cap = cap;
    }
    t->code[t->n++] = (bpv_tape_ins){op, num};
    t->depth += push;
    if (t->depth > t->maxdepth) t->maxdepth = t->depth;
    if (t->maxdepth > BPV_TAPE_STACK)
        return tfail(t, e, "this expression nests too deeply for a fn with `grad` (%s)",
                     "split it into several fns");
    return true;
}

/* A number as written, signs folded in, rounded to the model's dtype
 * (false when e is not one; out of range gives an infinity, which binary()
 * refuses). */
static bool number(const tape_cc *t, const bpv_ast *e, double *v) {
    if (!bpv_ast_number(e, v)) return false;
    *v = bpv_round(t->m->dtype, *v);
    return true;
}

static const struct {
    const char *name;
    bpv_tape_op op;
} unary_fns[] = {{"sigmoid", BPV_T_SIGMOID}, {"relu", BPV_T_RELU}, {"tanh", BPV_T_TANH},
                 {"exp", BPV_T_EXP},         {"log", BPV_T_LOG},   {"sqrt", BPV_T_SQRT},
                 {"abs", BPV_T_ABS}};

static const char only[] =
    "a fn with `grad` works element by element: it may use its arguments, numbers, "
    "+ - * / ^ and sigmoid relu tanh exp log sqrt abs%s";

static const char range_msg[] = "this number is out of range for the model's dtype%s";

static bool expr(tape_cc *t, const bpv_ast *e);

static bool binary(tape_cc *t, const bpv_ast *e, const bpv_ast *l, const bpv_ast *r,
                   bpv_token_kind op) {
    double v;
    /* the same kernels the inlined body would use: x^2 and 1/x are torch's
     * Python-number paths */
    if ((op == TK_CARET || op == TK_STARSTAR) && number(t, r, &v)) {
        if (!isfinite(v)) return tfail(t, r, range_msg, "");
        bpv_ast_number(r, &v); /* a Python number: libm's pow takes it unrounded */
        return expr(t, l) && emit(t, e, BPV_T_POWK, v, 0);
    }
    if (op == TK_SLASH && number(t, l, &v) && !number(t, r, &v)) {
        number(t, l, &v);
        if (!isfinite(v)) return tfail(t, l, range_msg, "");
        return expr(t, r) && emit(t, e, BPV_T_RDIV, v, 0);
    }
    bpv_tape_op to;
    switch (op) {
    case TK_PLUS: to = BPV_T_ADD; break;
    case TK_MINUS: to = BPV_T_SUB; break;
    case TK_STAR: to = BPV_T_MUL; break;
    case TK_SLASH: to = BPV_T_DIV; break;
    case TK_CARET:
    case TK_STARSTAR: to = BPV_T_POW; break;
    default: return tfail(t, e, only, " (no matrix product)");
    }
    return expr(t, l) && expr(t, r) && emit(t, e, to, 0, -1);
}

static bool expr(tape_cc *t, const bpv_ast *e) {
    double v;
    switch (e->kind) {
    case AST_NUMBER:
        if (!isfinite(bpv_round(t->m->dtype, e->num)))
            return tfail(t, e, range_msg, "");
        return emit(t, e, BPV_T_NUM, bpv_round(t->m->dtype, e->num), 1);
    case AST_UNARY:
        if (number(t, e, &v)) {
            if (!isfinite(v)) return tfail(t, e, range_msg, "");
            return emit(t, e, BPV_T_NUM, v, 1);
        }
        if (e->op == TK_PLUS) return expr(t, e->args[0]);
        return expr(t, e->args[0]) && emit(t, e, BPV_T_NEG, 0, 0);
    case AST_BINARY:
        return binary(t, e, e->args[0], e->args[1], e->op);
    case AST_NAME:
        for (int i = 0; i < t->fn->nparams; i++)
            if (strcmp(t->fn->params[i], e->name) == 0)
                return emit(t, e, i ? BPV_T_B : BPV_T_A, 0, 1);
        if (strcmp(e->name, "out") == 0) {
            if (t->allow_out) return emit(t, e, BPV_T_OUT, 0, 1);
            return tfail(t, e, "'out' is the fn's value: use it in `grad`, not in the body%s",
                         "");
        }
        return tfail(t, e,
                     "a fn with `grad` sees only its arguments (and `out` in `grad`), not "
                     "'%s'; pass it as an argument",
                     e->name);
    case AST_CALL:
        if (e->kwnames)
            for (int i = 0; i < e->nargs; i++)
                if (e->kwnames[i]) return tfail(t, e, "%s() takes no keyword arguments", e->name);
        if (strcmp(e->name, "pow") == 0 && e->nargs == 2)
            return binary(t, e, e->args[0], e->args[1], TK_CARET);
        for (size_t i = 0; i < sizeof unary_fns / sizeof unary_fns[0]; i++)
            if (strcmp(unary_fns[i].name, e->name) == 0) {
                if (e->nargs != 1) return tfail(t, e, "%s() takes 1 argument", e->name);
                return expr(t, e->args[0]) && emit(t, e, unary_fns[i].op, 0, 0);
            }
        return tfail(t, e, only, "");
    default:
        return tfail(t, e, only, "");
    }
}

static bool compile_tape(bpv_model *m, const bpv_stmt *fn, const bpv_ast *e, bool allow_out,
                         bpv_tape *out, bpv_error **err) {
    tape_cc t = {.m = m, .fn = fn, .allow_out = allow_out, .err = err};
    bool ok = expr(&t, e);
    bpv_tape_ins *code = ok ? bpv_arena_alloc(m->arena, (size_t)t.n * sizeof *code) : NULL;
    if (ok && !code) ok = tfail(&t, e, "out of memory compiling fn '%s'", fn->name);
    if (ok) {
        memcpy(code, t.code, (size_t)t.n * sizeof *code);
        out->code = code;
        out->n = t.n;
    }
    free(t.code);
    return ok;
}

static bool ident(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The partial as the user wrote it, with the arguments renamed a and b (the
 * names snapshots and figures substitute) and ** spelled ^. */
static const char *partial_text(bpv_model *m, const bpv_stmt *fn, const bpv_ast *e) {
    bpv_buf b;
    bpv_buf_init(&b);
    const char *s = m->src.text + e->off, *end = s + e->len;
    while (s < end) {
        if (ident(*s)) {
            const char *w = s;
            while (s < end && ident(*s)) s++;
            size_t n = (size_t)(s - w);
            int k = -1;
            for (int i = 0; i < fn->nparams; i++)
                if (strlen(fn->params[i]) == n && memcmp(fn->params[i], w, n) == 0) k = i;
            if (k >= 0) bpv_buf_putc(&b, k ? 'b' : 'a');
            else bpv_buf_add(&b, w, n);
        } else if (s + 1 < end && s[0] == '*' && s[1] == '*') {
            bpv_buf_putc(&b, '^');
            s += 2;
        } else {
            bpv_buf_putc(&b, *s++);
        }
    }
    char *r = bpv_arena_strdup(m->arena, b.data ? b.data : "");
    bpv_buf_free(&b);
    return r;
}

bool bpv_custom_make(bpv_model *m, const bpv_stmt *st, int stmt, bpv_error **err) {
    if (!m->customs) {
        m->customs = bpv_arena_calloc(m->arena, (size_t)m->prog.nstmts + 1, sizeof *m->customs);
        if (!m->customs) {
            bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
            return false;
        }
    }
    if (st->nparams < 1 || st->nparams > 2) {
        bpv_error_set(err, bpv_error_at(&m->src, st->name_off, st->name_len, BPV_ERR_MODEL,
                                        "a fn with `grad` takes one or two arguments; '%s' "
                                        "takes %d",
                                        st->name, st->nparams));
        return false;
    }
    for (int k = 0; k < st->nparams; k++) {
        size_t off = st->param_offs ? st->param_offs[k] : st->off;
        if (strcmp(st->params[k], "out") == 0) {
            bpv_error_set(err, bpv_error_at(&m->src, off, 3, BPV_ERR_MODEL,
                                            "'out' names the fn's value in `grad`; choose "
                                            "another argument name"));
            return false;
        }
        if (!st->grads[k]) {
            bpv_error_set(err, bpv_error_at(&m->src, st->off, st->len, BPV_ERR_MODEL,
                                            "fn '%s' gives no `grad %s = ...`; a fn with `grad` "
                                            "needs the partial for every argument",
                                            st->name, st->params[k]));
            return false;
        }
    }
    bpv_custom *c = bpv_arena_calloc(m->arena, 1, sizeof *c);
    if (!c) {
        bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        return false;
    }
    c->name = st->name;
    c->nargs = st->nparams;
    if (!compile_tape(m, st, st->value, false, &c->body, err)) return false;
    for (int k = 0; k < st->nparams; k++) {
        if (!compile_tape(m, st, st->grads[k], true, &c->grad[k], err)) return false;
        if (!(c->dlocal[k] = partial_text(m, st, st->grads[k]))) {
            bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
            return false;
        }
    }
    m->customs[stmt] = c;
    return true;
}
