/* Parser: statement forms, AST shapes (precedence, associativity, unary
 * minus against ^), spans, keyword arguments and ranges, multi-line
 * statements, nesting limits and located syntax errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "testutil.h"

typedef struct parsed {
    bpv_source src;
    bpv_arena *arena;
    bpv_program prog;
    char *text; /* malloc'd copy, so spans can be checked after the call */
} parsed;

static void parse_ok(parsed *p, const char *text) {
    size_t n = strlen(text);
    p->text = malloc(n + 1);
    memcpy(p->text, text, n + 1);
    p->src = (bpv_source){"t.bp", ".", p->text, n};
    p->arena = bpv_arena_new();
    bpv_error *err = NULL;
    if (!bpv_parse(&p->src, p->arena, &p->prog, &err)) fail_msg("parse failed:\n%s", err->message);
}

static void parsed_free(parsed *p) {
    bpv_arena_free(p->arena);
    free(p->text);
}

/* The whole error message for `len` bytes of text; the caller frees it. */
static char *parse_err_n(const char *text, size_t len) {
    bpv_source src = {"t.bp", ".", text, len};
    bpv_arena *a = bpv_arena_new();
    bpv_program prog;
    bpv_error *err = NULL;
    bool ok = bpv_parse(&src, a, &prog, &err);
    bpv_arena_free(a);
    if (ok) fail_msg("no error for \"%s\"", text);
    assert_non_null(err);
    assert_int_equal(err->status, BPV_ERR_MODEL);
    char *m = err->message;
    free(err);
    return m;
}

/* Checks the first line of the error for text. */
static void check_error(const char *text, const char *want) {
    char *m = parse_err_n(text, strlen(text));
    const char *nl = strchr(m, '\n');
    size_t n = nl ? (size_t)(nl - m) : strlen(m);
    if (strlen(want) != n || memcmp(m, want, n) != 0)
        fail_msg("for \"%s\"\n got: %.*s\nwant: %s", text, (int)n, m, want);
    free(m);
}

static void check_error_full(const char *text, const char *want) {
    char *m = parse_err_n(text, strlen(text));
    if (strcmp(m, want) != 0) fail_msg("for \"%s\"\n got: %s\nwant: %s", text, m, want);
    free(m);
}

/* S-expression of a tree: (+ a (* b c)), (neg x), (call f a seed=1), ... */
static void sexpr(bpv_buf *b, const bpv_ast *a) {
    switch (a->kind) {
    case AST_NUMBER: bpv_fmt_repr(b, a->num); return;
    case AST_NAME: bpv_buf_puts(b, a->name); return;
    case AST_STRING: bpv_buf_printf(b, "\"%s\"", a->name); return;
    case AST_UNARY:
        bpv_buf_puts(b, a->op == TK_MINUS ? "(neg " : "(pos ");
        sexpr(b, a->args[0]);
        bpv_buf_putc(b, ')');
        return;
    case AST_BINARY: {
        const char *op = a->op == TK_PLUS    ? "+"
                         : a->op == TK_MINUS ? "-"
                         : a->op == TK_STAR  ? "*"
                         : a->op == TK_SLASH ? "/"
                         : a->op == TK_AT    ? "@"
                         : a->op == TK_CARET ? "^"
                                             : "?";
        bpv_buf_printf(b, "(%s ", op);
        sexpr(b, a->args[0]);
        bpv_buf_putc(b, ' ');
        sexpr(b, a->args[1]);
        bpv_buf_putc(b, ')');
        return;
    }
    case AST_INDEX:
        bpv_buf_printf(b, "(index %s ", a->name);
        sexpr(b, a->args[0]);
        bpv_buf_putc(b, ')');
        return;
    case AST_RANGE:
        bpv_buf_puts(b, a->op == TK_DOTDOT ? "(.. " : "(range ");
        sexpr(b, a->args[0]);
        bpv_buf_putc(b, ' ');
        sexpr(b, a->args[1]);
        bpv_buf_putc(b, ')');
        return;
    case AST_CALL:
    case AST_LIST:
        if (a->kind == AST_CALL) bpv_buf_printf(b, "(call %s", a->name);
        else bpv_buf_puts(b, "(list");
        for (int i = 0; i < a->nargs; i++) {
            bpv_buf_putc(b, ' ');
            if (a->kwnames && a->kwnames[i]) bpv_buf_printf(b, "%s=", a->kwnames[i]);
            sexpr(b, a->args[i]);
        }
        bpv_buf_putc(b, ')');
        return;
    }
}

static void check_tree(const bpv_ast *a, const char *want) {
    bpv_buf b;
    bpv_buf_init(&b);
    sexpr(&b, a);
    if (strcmp(b.data, want) != 0) fail_msg(" got: %s\nwant: %s", b.data, want);
    bpv_buf_free(&b);
}

/* Parses "y = EXPR" and checks the tree of EXPR. */
static void check_expr(const char *expr, const char *want) {
    char text[512];
    snprintf(text, sizeof text, "y = %s\n", expr);
    parsed p;
    parse_ok(&p, text);
    assert_int_equal(p.prog.nstmts, 1);
    assert_int_equal(p.prog.stmts[0].kind, ST_LET);
    check_tree(p.prog.stmts[0].value, want);
    /* the value's span is the expression as written */
    assert_int_equal(p.prog.stmts[0].value->off, 4);
    assert_int_equal(p.prog.stmts[0].value->len, strlen(expr));
    parsed_free(&p);
}

static void check_span(const parsed *p, const bpv_ast *a, const char *want) {
    if (a->len != strlen(want) || memcmp(p->text + a->off, want, a->len) != 0)
        fail_msg("span: got \"%.*s\", want \"%s\"", (int)a->len, p->text + a->off, want);
}

static void test_index_and_ranges(void **state) {
    (void)state;
    check_expr("h[t-1]", "(index h (- t 1.0))");
    check_expr("x[0] * 2", "(* (index x 0.0) 2.0)");
    check_expr("stack(h[1..5])", "(call stack (index h (.. 1.0 5.0)))");
    check_expr("W @ x[2*t+1]", "(@ W (index x (+ (* 2.0 t) 1.0)))");
    /* 1..5 is two numbers and '..', not 1. and .5 */
    check_expr("h[1..n]", "(index h (.. 1.0 n))");
}

/* for loops are unrolled by the parser: one statement per member, each
 * with its loop variables */
static void test_for_unrolled(void **state) {
    (void)state;
    parsed p;
    parse_ok(&p, "h[0] = zeros([2])\n"
                 "for t in 1..3 {\n"
                 "    h[t] = h[t-1] + 1\n"
                 "    for k in 0..t-1 { g[10*t+k] = h[t] }\n"
                 "}\n"
                 "y = sum(stack(h[1..3]))\n");
    const char *want[] = {"h[0]", "h[1]", "g[10]", "h[2]", "g[20]", "g[21]",
                          "h[3]", "g[30]", "g[31]", "g[32]", "y"};
    assert_int_equal(p.prog.nstmts, 11);
    for (int i = 0; i < 11; i++) {
        const bpv_stmt *st = &p.prog.stmts[i];
        assert_int_equal(st->kind, ST_LET);
        assert_string_equal(st->name, want[i]);
    }
    /* the loop variables in force, innermost first */
    const bpv_stmt *g21 = &p.prog.stmts[5];
    assert_string_equal(g21->family, "g");
    assert_int_equal(g21->member, 21);
    assert_string_equal(g21->env->var, "k");
    assert_int_equal(g21->env->value, 1);
    assert_string_equal(g21->env->up->var, "t");
    assert_int_equal(g21->env->up->value, 2);
    assert_null(g21->env->up->up);
    assert_null(p.prog.stmts[0].env);
    /* every copy shares the body's tree and span */
    assert_ptr_equal(p.prog.stmts[1].value, p.prog.stmts[3].value);
    check_span(&p, p.prog.stmts[1].value, "h[t-1] + 1");
    parsed_free(&p);
}

static void test_for_errors(void **state) {
    (void)state;
    check_error("for t in 1..3 {\n}\nfor t in 1 {\n}\n",
                "t.bp:3:12: error: expected '..' after 'for t in 1', found '{'; a loop runs over "
                "a range A..B, both ends included");
    check_error("for t in 1..2 { h[t] = 1 }}\n", "t.bp:1:27: error: unexpected '}' after the end of the statement");
    check_error("h[0..2] = 1\n", "t.bp:1:4: error: a definition names one member, like h[t]; a "
                                  "range A..B selects several, for stack() and cat()");
    check_error("for t in 0..2 {\n  h[t/2] = 1\n}\n",
                "t.bp:2:5: error: an index may only add, subtract and multiply (like 2*t+1)");
}

static void test_precedence(void **state) {
    (void)state;
    check_expr("a + b * c", "(+ a (* b c))");
    check_expr("a * b + c", "(+ (* a b) c)");
    check_expr("a - b - c", "(- (- a b) c)");
    check_expr("a / b / c", "(/ (/ a b) c)");
    check_expr("a @ b * c", "(* (@ a b) c)");
    check_expr("a * b @ c", "(@ (* a b) c)");
    check_expr("a + b @ c", "(+ a (@ b c))");
    check_expr("(a + b) * c", "(* (+ a b) c)");
    check_expr("a ^ b * c", "(* (^ a b) c)");
    check_expr("x^2 * w1 + x * w2 + b", "(+ (+ (* (^ x 2.0) w1) (* x w2)) b)");
}

static void test_power_and_unary(void **state) {
    (void)state;
    check_expr("2^3^2", "(^ 2.0 (^ 3.0 2.0))");
    check_expr("2**3**2", "(^ 2.0 (^ 3.0 2.0))"); /* ** folds into ^ */
    check_expr("2**3^2", "(^ 2.0 (^ 3.0 2.0))");
    check_expr("-x^2", "(neg (^ x 2.0))");
    check_expr("-x**2", "(neg (^ x 2.0))");
    check_expr("x^-2", "(^ x (neg 2.0))");
    check_expr("x^-y^2", "(^ x (neg (^ y 2.0)))");
    check_expr("-x * y", "(* (neg x) y)");
    check_expr("-x + y", "(+ (neg x) y)");
    check_expr("a - -b", "(- a (neg b))");
    check_expr("- - x", "(neg (neg x))");
    check_expr("+x", "(pos x)");
    check_expr("-2", "(neg 2.0)");
    check_expr("(-x)^2", "(^ (neg x) 2.0)");
    check_expr("2 * -3 ^ 2", "(* 2.0 (neg (^ 3.0 2.0)))");
}

static void test_primaries(void **state) {
    (void)state;
    check_expr("sigmoid(x @ w + b)", "(call sigmoid (+ (@ x w) b))");
    check_expr("pow(a, b)", "(call pow a b)");
    check_expr("f()", "(call f)");
    check_expr("f(a,)", "(call f a)");
    check_expr("randn([3, 2], seed=1, std=0.5)", "(call randn (list 3.0 2.0) seed=1.0 std=0.5)");
    check_expr("csv(\"data/x.csv\", 0:3)", "(call csv \"data/x.csv\" (range 0.0 3.0))");
    check_expr("csv(\"a.csv\", cols=1:n-1)", "(call csv \"a.csv\" cols=(range 1.0 (- n 1.0)))");
    check_expr("[1, 2, 3]", "(list 1.0 2.0 3.0)");
    check_expr("[[1, 2], [3, 4],]", "(list (list 1.0 2.0) (list 3.0 4.0))");
    check_expr("[]", "(list)");
    check_expr("[-1, 2 * x]", "(list (neg 1.0) (* 2.0 x))");
    check_expr("\"q\\\"\\\\\\n\\t\"", "\"q\"\\\n\t\"");
    check_expr("1e-3 + .5", "(+ 0.001 0.5)");
    /* keyword arguments: names and offsets; positional ones have NULL */
    parsed p;
    parse_ok(&p, "u = uniform([2], -1, 1, seed=7)\n");
    const bpv_ast *c = p.prog.stmts[0].value;
    assert_int_equal(c->kind, AST_CALL);
    assert_string_equal(c->name, "uniform");
    assert_int_equal(c->name_off, 4);
    assert_int_equal(c->nargs, 4);
    assert_non_null(c->kwnames);
    assert_null(c->kwnames[0]);
    assert_null(c->kwnames[2]);
    assert_string_equal(c->kwnames[3], "seed");
    assert_int_equal(c->kwoffs[3], 24);
    parsed_free(&p);
    parse_ok(&p, "s = sum(x)\n");
    assert_null(p.prog.stmts[0].value->kwnames);
    parsed_free(&p);
}

static void test_spans(void **state) {
    (void)state;
    parsed p;
    parse_ok(&p, "loss = (y_hat - y)^2 + mean( [1, 2] ) * -w\n");
    const bpv_ast *sum = p.prog.stmts[0].value;
    check_span(&p, sum, "(y_hat - y)^2 + mean( [1, 2] ) * -w");
    const bpv_ast *pw = sum->args[0];
    check_span(&p, pw, "(y_hat - y)^2"); /* parens belong to the enclosing node */
    check_span(&p, pw->args[0], "y_hat - y");
    check_span(&p, pw->args[1], "2");
    const bpv_ast *mul = sum->args[1];
    check_span(&p, mul, "mean( [1, 2] ) * -w");
    check_span(&p, mul->args[0], "mean( [1, 2] )");
    check_span(&p, mul->args[0]->args[0], "[1, 2]");
    check_span(&p, mul->args[1], "-w");
    parsed_free(&p);
    parse_ok(&p, "x = csv(\"f.csv\", 1 : 3)  # columns\n");
    check_span(&p, p.prog.stmts[0].value->args[1], "1 : 3");
    check_span(&p, p.prog.stmts[0].value->args[0], "\"f.csv\"");
    parsed_free(&p);
}

static void test_statements(void **state) {
    (void)state;
    parsed p;
    parse_ok(&p, "# the classic tutorial model\n"
                 "data x = [1, 2, 3, 4]   # one sample per element\n"
                 "\n"
                 "param w = 1.0 lr=0.05\n"
                 "const c = 2\n"
                 "y_hat = x * w\n"
                 "fn sq(a) = a^2\n"
                 "predict y_hat(x=5)\n"
                 "train epochs=100 lr=0.01 batch=all\n"
                 "dtype f64\n"
                 "predict w");
    assert_int_equal(p.prog.nstmts, 9);
    const bpv_stmt *s = p.prog.stmts;
    assert_int_equal(s[0].kind, ST_DATA);
    assert_string_equal(s[0].name, "x");
    assert_int_equal(s[0].name_off, 34);
    assert_int_equal(s[0].name_len, 1);
    check_span(&p, &(bpv_ast){.off = s[0].off, .len = s[0].len}, "data x = [1, 2, 3, 4]");
    check_tree(s[0].value, "(list 1.0 2.0 3.0 4.0)");

    assert_int_equal(s[1].kind, ST_PARAM);
    assert_string_equal(s[1].name, "w");
    assert_int_equal(s[1].nkv, 1);
    assert_string_equal(s[1].kv[0].key, "lr");
    assert_int_equal(s[1].kv[0].key_len, 2);
    check_span(&p, &(bpv_ast){.off = s[1].kv[0].key_off, .len = 2}, "lr");
    check_tree(s[1].kv[0].value, "0.05");
    check_span(&p, &(bpv_ast){.off = s[1].off, .len = s[1].len}, "param w = 1.0 lr=0.05");

    assert_int_equal(s[2].kind, ST_CONST);
    assert_int_equal(s[3].kind, ST_LET);
    assert_string_equal(s[3].name, "y_hat");

    assert_int_equal(s[4].kind, ST_FN);
    assert_string_equal(s[4].name, "sq");
    assert_int_equal(s[4].nparams, 1);
    assert_string_equal(s[4].params[0], "a");
    assert_null(s[4].grads);
    check_tree(s[4].value, "(^ a 2.0)");

    assert_int_equal(s[5].kind, ST_PREDICT);
    assert_string_equal(s[5].name, "y_hat");
    assert_int_equal(s[5].nkv, 1);
    assert_string_equal(s[5].kv[0].key, "x");
    check_span(&p, &(bpv_ast){.off = s[5].off, .len = s[5].len}, "predict y_hat(x=5)");

    assert_int_equal(s[6].kind, ST_TRAIN);
    assert_null(s[6].name);
    assert_int_equal(s[6].nkv, 3);
    assert_string_equal(s[6].kv[2].key, "batch");
    check_tree(s[6].kv[2].value, "all");

    assert_int_equal(s[7].kind, ST_DTYPE);
    assert_string_equal(s[7].name, "f64");

    assert_int_equal(s[8].kind, ST_PREDICT); /* nothing to bind */
    assert_int_equal(s[8].nkv, 0);
    parsed_free(&p);

    parse_ok(&p, "");
    assert_int_equal(p.prog.nstmts, 0);
    parsed_free(&p);
    parse_ok(&p, "\n\n# nothing\n  \n");
    assert_int_equal(p.prog.nstmts, 0);
    parsed_free(&p);
}

static void test_fn_grad(void **state) {
    (void)state;
    parsed p;
    parse_ok(&p, "fn f(a, b, c) = a * b + c grad c = 1, a = b\n");
    const bpv_stmt *s = &p.prog.stmts[0];
    assert_int_equal(s->nparams, 3);
    assert_string_equal(s->params[1], "b");
    assert_int_equal(s->param_offs[1], 8);
    assert_non_null(s->grads);
    check_tree(s->grads[0], "b"); /* aligned with the parameters */
    assert_null(s->grads[1]);
    check_tree(s->grads[2], "1.0");
    check_tree(s->value, "(+ (* a b) c)");
    parsed_free(&p);
    parse_ok(&p, "fn one() = 1\n");
    assert_int_equal(p.prog.stmts[0].nparams, 0);
    parsed_free(&p);
}

static void test_multiline(void **state) {
    (void)state;
    parsed p;
    parse_ok(&p, "data x = [[1, 2],\n"
                 "          [3, 4]]   # comment inside\n"
                 "y = (x +\n"
                 "     1)\r\n"
                 "w = randn([2,\n"
                 "  2], seed=1,\n"
                 "  std=0.1\n"
                 ")\n"
                 "predict y(\n  x=[[1, 2]]\n)\n");
    assert_int_equal(p.prog.nstmts, 4);
    check_tree(p.prog.stmts[0].value, "(list (list 1.0 2.0) (list 3.0 4.0))");
    check_tree(p.prog.stmts[1].value, "(+ x 1.0)");
    check_tree(p.prog.stmts[2].value, "(call randn (list 2.0 2.0) seed=1.0 std=0.1)");
    check_span(&p, &(bpv_ast){.off = p.prog.stmts[1].off, .len = p.prog.stmts[1].len},
               "y = (x +\n     1)");
    assert_int_equal(p.prog.stmts[3].nkv, 1);
    parsed_free(&p);
}

static void test_syntax_errors(void **state) {
    (void)state;
    check_error("x = 1 *\n", "t.bp:1:8: error: expected an expression after '*', found end of "
                             "line; to continue an expression on the next line, wrap it in "
                             "parentheses");
    check_error("x = 1 * )", "t.bp:1:9: error: expected an expression after '*', found ')'");
    check_error("x = ", "t.bp:1:5: error: expected an expression after '=', found end of file");
    check_error("y = {1}", "t.bp:1:5: error: unexpected '{'; lists are written with '[' and ']' "
                           "(braces hold the body of a for loop)");
    check_error("y = (a b)", "t.bp:1:8: error: expected ')' after the expression, found 'b'");
    check_error("y = x)", "t.bp:1:6: error: unexpected ')'");
    check_error(")", "t.bp:1:1: error: unexpected ')'");
    check_error("y = x w", "t.bp:1:7: error: unexpected 'w' after the end of the statement");
    check_error("y = 2 x", "t.bp:1:7: error: unexpected 'x' after the end of the statement; "
                           "write '*' to multiply");
    check_error("x = 1, 2", "t.bp:1:6: error: unexpected ',' after the end of the statement; a "
                            "list is written in brackets, like [1, 2]");
    check_error("param w 1", "t.bp:1:9: error: expected '=' after 'param w', found '1'");
    check_error("param = 1", "t.bp:1:7: error: expected a name after 'param', found '='");
    check_error("train = 1", "t.bp:1:1: error: 'train' is a keyword and cannot be used as a name");
    check_error("param\n", "t.bp:1:6: error: expected a name after 'param', found end of line");
    check_error("data 3 = 1", "t.bp:1:6: error: expected a name after 'data', found '3'");
    check_error("param train = 1",
                "t.bp:1:7: error: 'train' is a keyword and cannot be used as a name");
    check_error("y = data * 2", "t.bp:1:5: error: 'data' is a keyword and cannot be used as a name");
    check_error("fn f(grad) = 1", "t.bp:1:6: error: 'grad' is a keyword and cannot be used as a "
                                  "name");
    check_error("y = f(const=1)",
                "t.bp:1:7: error: 'const' is a keyword and cannot be used as a name");
    check_error("3 = x", "t.bp:1:1: error: expected a statement, found '3'");
    check_error("y(x) = x", "t.bp:1:2: error: expected '=' after 'y', found '('; to define a "
                            "function, write 'fn NAME(a, b) = ...'");
    check_error("x = [0:2]", "t.bp:1:7: error: expected ',' or ']' after a list element, found "
                             "':'; a range A:B is only allowed as a call argument, as in "
                             "csv(\"data.csv\", 0:2)");
    check_error("y = f(1 2)",
                "t.bp:1:9: error: expected ',' or ')' after an argument of 'f', found '2'");
    check_error("y = f(a=1, 2)", "t.bp:1:12: error: a positional argument cannot follow a "
                                 "keyword argument in 'f(...)'");
    check_error("y = f(a=1, a=2)", "t.bp:1:12: error: keyword argument 'a' is given twice");
    check_error("y = [1,,2]", "t.bp:1:8: error: expected an expression after ',', found ','");
    check_error("y = ()", "t.bp:1:6: error: expected an expression after '(', found ')'");
    check_error("dtype f16", "t.bp:1:7: error: unknown dtype 'f16'; use f32 or f64");
    check_error("grad a = 1", "t.bp:1:1: error: unexpected 'grad'; 'grad' belongs at the end of a "
                              "'fn' definition, on the same line");
}

static void test_statement_errors(void **state) {
    (void)state;
    check_error("param w = 1 lr", "t.bp:1:15: error: expected '=' after the param option 'lr', "
                                  "found end of file");
    check_error("param w = 1 lr=1 lr=2",
                "t.bp:1:18: error: the option 'lr' is given twice");
    check_error("train epochs=1 5",
                "t.bp:1:16: error: expected a train setting such as epochs=100, found '5'");
    check_error("train epochs=1 lr=1 lr=2",
                "t.bp:1:21: error: the train setting 'lr' is given twice");
    check_error("predict\n",
                "t.bp:1:8: error: expected the name of a node after 'predict', found end of line");
    check_error("predict y(5)", "t.bp:1:11: error: expected NAME=VALUE in 'predict', like predict "
                                "y(x=5), found '5'");
    check_error("predict y(x=1, x=2)", "t.bp:1:16: error: 'x' is given twice");
    check_error("fn f = 1",
                "t.bp:1:6: error: expected '(' and the parameters after 'fn f', found '='");
    check_error("fn f(a b) = 1",
                "t.bp:1:8: error: expected ',' or ')' after a parameter, found 'b'");
    check_error("fn f(a) a", "t.bp:1:9: error: expected '=' after 'fn f(a)', found 'a'");
    check_error("fn f(a, a) = a", "t.bp:1:9: error: parameter 'a' is listed twice");
    check_error("fn f(a, b) = a grad c = 1", "t.bp:1:21: error: 'c' is not a parameter of 'f'; "
                                             "its parameters are 'a', 'b'");
    check_error("fn f() = 1 grad c = 1",
                "t.bp:1:17: error: 'c' is not a parameter of 'f', which has none");
    check_error("fn f(a) = a grad a = 1, a = 2",
                "t.bp:1:25: error: the gradient for 'a' is given twice");
    check_error("fn f(a) = a grad a 1",
                "t.bp:1:20: error: expected '=' after 'grad a', found '1'");
    check_error("fn f(a) = a\ngrad a = 1", "t.bp:2:1: error: unexpected 'grad'; 'grad' belongs at "
                                           "the end of a 'fn' definition, on the same line");
}

static void test_unclosed_brackets(void **state) {
    (void)state;
    check_error_full("data x = [1, 2]\n\nparam w = (1 + 2\n",
                     "t.bp:3:11: error: '(' is never closed\n"
                     "    param w = (1 + 2\n"
                     "              ^\n");
    check_error("x = f(1,\n  [2, 3\n", "t.bp:2:3: error: '[' is never closed");
    check_error("predict y(x=1", "t.bp:1:10: error: '(' is never closed");
    check_error("fn f(a", "t.bp:1:5: error: '(' is never closed");
    check_error("y = [1, 2\nz = 3\n", "t.bp:2:1: error: expected ',' or ']' after a list element, "
                                      "found 'z' (the '[' on line 1 is still open)");
    check_error("y = sum(x\nz = 3\n", "t.bp:2:1: error: expected ',' or ')' after an argument of "
                                      "'sum', found 'z' (the '(' on line 1 is still open)");
}

static void test_encoding_errors(void **state) {
    (void)state;
    char *m = parse_err_n("x = 1\ny = \0\n", 12);
    assert_string_equal(m, "t.bp:2:5: error: NUL byte in model source\n"
                           "    y = ?\n"
                           "        ^\n");
    free(m);
    check_error("x = 1 # caf\xe9\n",
                "t.bp:1:12: error: invalid UTF-8 byte 0xE9 (is the file saved as UTF-8?)");
    check_error("x = \xc0\x80", "t.bp:1:5: error: invalid UTF-8 byte 0xC0 (is the file saved as "
                                "UTF-8?)");
    /* a byte order mark is skipped */
    parsed p;
    parse_ok(&p, "\xEF\xBB\xBFx = 1\n");
    assert_int_equal(p.prog.nstmts, 1);
    parsed_free(&p);
}

/* Builds prefix + n copies of unit + middle + n copies of close. */
static char *repeat(const char *prefix, const char *unit, size_t n, const char *middle,
                    const char *close) {
    size_t lp = strlen(prefix), lu = strlen(unit), lm = strlen(middle), lc = strlen(close);
    char *s = malloc(lp + n * (lu + lc) + lm + 1), *o = s;
    memcpy(o, prefix, lp), o += lp;
    for (size_t i = 0; i < n; i++) memcpy(o, unit, lu), o += lu;
    memcpy(o, middle, lm), o += lm;
    for (size_t i = 0; i < n; i++) memcpy(o, close, lc), o += lc;
    *o = '\0';
    return s;
}

static void check_deep(const char *unit, const char *middle, const char *close, size_t n,
                       const char *want) {
    char *text = repeat("x = ", unit, n, middle, close);
    if (want) {
        check_error(text, want);
    } else {
        parsed p;
        parse_ok(&p, text);
        parsed_free(&p);
    }
    free(text);
}

static void test_nesting_limits(void **state) {
    (void)state;
    const char *deep = "t.bp:1:205: error: expression nested too deeply (more than 200 levels; BPV_MAX_NESTING)";
    /* the limit itself is fine */
    check_deep("(", "1", ")", 200, NULL);
    check_deep("[", "1", "]", 200, NULL);
    check_deep("-", "1", "", 200, NULL);
    check_deep("f(", "1", ")", 200, NULL);
    check_deep("(", "1", ")", 201, deep);
    check_deep("[", "1", "]", 201, deep);
    check_deep("-", "1", "", 201, deep);
    /* hostile depths get the same located error, not a stack overflow (20000
     * levels keep the line under the line-length limit, BPV_MAX_LINE_BYTES) */
    check_deep("(", "1", ")", 20000, deep);
    check_deep("-", "1", "", 20000, deep);
    check_deep("[", "1", "]", 20000, deep);
    check_deep("g(", "1", ")", 20000,
               "t.bp:1:406: error: expression nested too deeply (more than 200 levels; BPV_MAX_NESTING)");
    check_deep("2^", "2", "", 20000,
               "t.bp:1:406: error: expression nested too deeply (more than 200 levels; BPV_MAX_NESTING)");
    check_deep("-(", "1", ")", 20000,
               "t.bp:1:205: error: expression nested too deeply (more than 200 levels; BPV_MAX_NESTING)");
    check_deep("2**", "2", "", 200, NULL);
    /* long flat chains parse in a loop, but their tree height is bounded */
    check_deep("1+", "1", "", 999, NULL);
    check_deep("1+", "1", "", 20000,
               "t.bp:1:2004: error: expression too complex (more than 1000 operations deep); "
               "split it into named steps");
    /* wide is fine: a long list and many statements */
    char *wide = repeat("x = [", "1, ", 100000, "1]\n", "");
    parsed p;
    parse_ok(&p, wide);
    assert_int_equal(p.prog.stmts[0].value->nargs, 100001);
    parsed_free(&p);
    free(wide);
    char *many = repeat("", "y = 1\n", 20000, "", "");
    parse_ok(&p, many);
    assert_int_equal(p.prog.nstmts, 20000);
    parsed_free(&p);
    free(many);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),        cmocka_unit_test(test_power_and_unary),
        cmocka_unit_test(test_primaries),         cmocka_unit_test(test_spans),
        cmocka_unit_test(test_statements),        cmocka_unit_test(test_fn_grad),
        cmocka_unit_test(test_multiline),         cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_statement_errors),  cmocka_unit_test(test_unclosed_brackets),
        cmocka_unit_test(test_encoding_errors),   cmocka_unit_test(test_nesting_limits),
        cmocka_unit_test(test_index_and_ranges),  cmocka_unit_test(test_for_unrolled),
        cmocka_unit_test(test_for_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
