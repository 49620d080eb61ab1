/* Custom derivatives: `fn f(a, b) = EXPR grad a = EXPR, b = EXPR`.
 *
 * A call of such a fn is one graph node (BPV_OP_CUSTOM) whose forward runs
 * the body and whose backward multiplies the incoming gradient by the
 * user's partials, right or wrong: that is the point, the gradient check
 * then shows a wrong one. The body and each partial are compiled here, once
 * per fn, into programs of elementwise ops (their element functions,
 * op_elem.h) that the engine runs element by element; so they may use only
 * elementwise arithmetic over the arguments, numbers and (partials) `out`,
 * the fn's value. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "op_elem.h"

typedef struct prog_cc {
    bpv_model *m;
    const bpv_stmt *fn;
    bool allow_out;
    bpv_fnprog_ins *code;
    int n, cap;
    int depth, maxdepth;
    bpv_error **err;
} prog_cc;

static bool tfail(prog_cc *t, const bpv_ast *e, const char *fmt, const char *arg)
    BPV_PRINTF(3, 0);
static bool tfail(prog_cc *t, const bpv_ast *e, const char *fmt, const char *arg) {
    char msg[400];
    snprintf(msg, sizeof msg, fmt, arg);
    bpv_error_set(t->err, bpv_error_at(&t->m->src, e->off, e->len, BPV_ERR_MODEL, "%s", msg));
    return false;
}

static bool emit(prog_cc *t, const bpv_ast *e, bpv_fnprog_push kind, bpv_op op, int variant,
                 double num, int push) {
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 16;
        bpv_fnprog_ins *c = realloc(t->code, (size_t)cap * sizeof *c);
        if (!c) return tfail(t, e, "out of memory compiling fn '%s'", t->fn->name);
        t->code = c;
        t->cap = cap;
    }
    t->code[t->n++] = (bpv_fnprog_ins){kind, op, variant, num};
    t->depth += push;
    if (t->depth > t->maxdepth) t->maxdepth = t->depth;
    if (t->maxdepth > BPV_FNPROG_STACK)
        return tfail(t, e, "this expression nests too deeply for a fn with `grad` (%s)",
                     "split it into several fns");
    return true;
}

/* A number as written, signs folded in, rounded to the model's dtype
 * (false when e is not one; out of range gives an infinity, which binary()
 * refuses). */
static bool number(const prog_cc *t, const bpv_ast *e, double *v) {
    if (!bpv_ast_number(e, v)) return false;
    *v = bpv_round(t->m->dtype, *v);
    return true;
}

/* An op a fn program may call by name: elementwise, called by name in the
 * language, with one input or two. */
static bool callable(bpv_op op) {
    return op != BPV_OP_NONE && op != BPV_OP_CUSTOM && (bpv_ops[op].flags & BPV_OPF_ELEMWISE) &&
           bpv_ops[op].call && op != BPV_OP_POW && bpv_ops[op].nattrs == 0;
}

static const char only[] =
    "a fn with `grad` works element by element: it may use its arguments, numbers, "
    "+ - * / ^ and sigmoid relu tanh exp log sqrt abs max min%s";

static const char range_msg[] = "this number is out of range for the model's dtype%s";

static bool expr(prog_cc *t, const bpv_ast *e);

static bool binary(prog_cc *t, const bpv_ast *e, const bpv_ast *l, const bpv_ast *r,
                   bpv_token_kind op) {
    double v;
    /* the same kernels the inlined body would use: x^2 and 1/x are torch's
     * Python-number paths */
    if ((op == TK_CARET || op == TK_STARSTAR) && number(t, r, &v)) {
        if (!isfinite(v)) return tfail(t, r, range_msg, "");
        bpv_ast_number(r, &v); /* a Python number: libm's pow takes it unrounded */
        return expr(t, l) && emit(t, e, BPV_FP_OP, BPV_OP_POW, BPV_VAR_POW_SCALAR, v, 0);
    }
    if (op == TK_SLASH && number(t, l, &v) && !number(t, r, &v)) {
        number(t, l, &v);
        if (!isfinite(v)) return tfail(t, l, range_msg, "");
        return expr(t, r) && emit(t, e, BPV_FP_OP, BPV_OP_DIV, BPV_VAR_RDIV, v, 0);
    }
    const bpv_op to = bpv_op_of_token(op);
    if (to == BPV_OP_NONE || to == BPV_OP_MATMUL) return tfail(t, e, only, " (no matrix product)");
    return expr(t, l) && expr(t, r) && emit(t, e, BPV_FP_OP, to, BPV_VAR_DEFAULT, 0, -1);
}

static bool expr(prog_cc *t, const bpv_ast *e) {
    double v;
    switch (e->kind) {
    case AST_NUMBER:
        if (!isfinite(bpv_round(t->m->dtype, e->num)))
            return tfail(t, e, range_msg, "");
        return emit(t, e, BPV_FP_NUM, BPV_OP_NONE, 0, bpv_round(t->m->dtype, e->num), 1);
    case AST_UNARY:
        if (number(t, e, &v)) {
            if (!isfinite(v)) return tfail(t, e, range_msg, "");
            return emit(t, e, BPV_FP_NUM, BPV_OP_NONE, 0, v, 1);
        }
        if (e->op == TK_PLUS) return expr(t, e->args[0]);
        return expr(t, e->args[0]) && emit(t, e, BPV_FP_OP, BPV_OP_NEG, 0, 0, 0);
    case AST_BINARY:
        return binary(t, e, e->args[0], e->args[1], e->op);
    case AST_NAME:
        for (int i = 0; i < t->fn->nparams; i++)
            if (strcmp(t->fn->params[i], e->name) == 0)
                return emit(t, e, i ? BPV_FP_B : BPV_FP_A, BPV_OP_NONE, 0, 0, 1);
        if (strcmp(e->name, "out") == 0) {
            if (t->allow_out) return emit(t, e, BPV_FP_OUT, BPV_OP_NONE, 0, 0, 1);
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
        bpv_op op = bpv_op_by_call(e->name);
        if (callable(op)) {
            const int want = bpv_ops[op].min_in;
            if (e->nargs != want)
                return tfail(t, e, want == 1 ? "%s() takes 1 argument" : "%s() takes 2 arguments",
                             e->name);
            for (int i = 0; i < want; i++)
                if (!expr(t, e->args[i])) return false;
            return emit(t, e, BPV_FP_OP, op, BPV_VAR_DEFAULT, 0, 1 - want);
        }
        return tfail(t, e, only, "");
    default:
        return tfail(t, e, only, "");
    }
}

static bool compile_prog(bpv_model *m, const bpv_stmt *fn, const bpv_ast *e, bool allow_out,
                         bpv_fnprog *out, bpv_error **err) {
    prog_cc t = {.m = m, .fn = fn, .allow_out = allow_out, .err = err};
    bool ok = expr(&t, e);
    bpv_fnprog_ins *code = ok ? bpv_arena_alloc(m->arena, (size_t)t.n * sizeof *code) : NULL;
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
    if (!compile_prog(m, st, st->value, false, &c->body, err)) return false;
    for (int k = 0; k < st->nparams; k++) {
        if (!compile_prog(m, st, st->grads[k], true, &c->grad[k], err)) return false;
        if (!(c->dlocal[k] = partial_text(m, st, st->grads[k]))) {
            bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
            return false;
        }
    }
    m->customs[stmt] = c;
    return true;
}
