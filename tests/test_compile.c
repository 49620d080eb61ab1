/* Compiler: shapes, named-node sharing, literals, fn inlining, gradient
 * flags, batching shapes, step counts and model errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "model.h"

static bpv_model *load(const char *text) {
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string("t.bp", text, strlen(text), &err);
    if (!m) fail_msg("load failed: %s", err ? err->message : "(no error)");
    return m;
}

/* Loads a model that must fail; checks status 2 and a piece of the message. */
static void load_fails(const char *text, const char *want) {
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string("t.bp", text, strlen(text), &err);
    if (m) {
        bpv_model_free(m);
        fail_msg("model loaded but should fail with: %s", want);
    }
    assert_non_null(err);
    assert_int_equal(err->status, BPV_ERR_MODEL);
    if (!strstr(err->message, want)) fail_msg("message\n%s\ndoes not contain '%s'", err->message, want);
    bpv_error_free(err);
}

static bpv_graph *graph(bpv_model *m, const char *target, int64_t batch) {
    bpv_error *err = NULL;
    bpv_graph *g = bpv_compile(m, m->prog.nstmts, target, 0, 0, batch, NULL, 0, &err);
    if (!g) fail_msg("compile failed: %s", err ? err->message : "");
    return g;
}

static int find(const bpv_graph *g, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0) return i;
    return -1;
}

static int count_op(const bpv_graph *g, bpv_op op) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++) n += g->nodes[i].kind == BPV_NODE_OP && g->nodes[i].op == op;
    return n;
}

static void assert_shape(const bpv_shape *s, int rank, int64_t d0, int64_t d1) {
    assert_int_equal(s->rank, rank);
    if (rank > 0) assert_int_equal(s->dim[0], d0);
    if (rank > 1) assert_int_equal(s->dim[1], d1);
}

static void test_shapes(void **state) {
    (void)state;
    bpv_model *m = load("data x = [[1, 2, 3], [4, 5, 6]]\n"
                        "param W = zeros([3, 2])\n"
                        "param v = [1, 2]\n"
                        "h = x @ W\n"
                        "o = h @ v\n"
                        "s = sum(h * v)\n"
                        "t = T(W)\n"
                        "p = softmax(h)\n");
    bpv_graph *g = graph(m, "h", 0);
    assert_shape(&g->nodes[find(g, "x")].shape, 1, 3, 0);
    assert_shape(&g->nodes[find(g, "h")].shape, 1, 2, 0);
    g = graph(m, "h", 2); /* a batch of 2: leading dimension */
    assert_shape(&g->nodes[find(g, "x")].shape, 2, 2, 3);
    assert_shape(&g->nodes[find(g, "h")].shape, 2, 2, 2);
    assert_int_equal(g->batch, 2);
    g = graph(m, "o", 0);
    assert_shape(&g->nodes[find(g, "o")].shape, 0, 0, 0);
    g = graph(m, "o", 5);
    assert_shape(&g->nodes[find(g, "o")].shape, 1, 5, 0);
    g = graph(m, "s", 4);
    assert_shape(&g->nodes[find(g, "s")].shape, 0, 0, 0);
    g = graph(m, "t", 0);
    assert_shape(&g->nodes[find(g, "t")].shape, 2, 2, 3);
    g = graph(m, "p", 3);
    assert_shape(&g->nodes[find(g, "p")].shape, 2, 3, 2);
    bpv_model_free(m);
}

static void test_topological_and_sharing(void **state) {
    (void)state;
    bpv_model *m = load("data x = [1, 2]\nparam w = 1\n"
                        "a = x * w\n"
                        "b = a\n"
                        "loss = a + b * a\n");
    bpv_graph *g = graph(m, "loss", 0);
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) assert_true(g->nodes[i].in[k] < i);
    assert_int_equal(count_op(g, BPV_OP_MUL), 2); /* a once, b * a once */
    int a = find(g, "a"), b = find(g, "b");
    assert_int_equal(g->nodes[b].op, BPV_OP_IDENTITY);
    assert_int_equal(g->nodes[b].in[0], a);
    assert_int_equal(g->objective, find(g, "loss"));
    /* one node per data / param symbol */
    int nx = 0;
    for (int i = 0; i < g->nnodes; i++) nx += g->nodes[i].kind == BPV_NODE_DATA;
    assert_int_equal(nx, 1);
    bpv_model_free(m);
}

static void test_literals(void **state) {
    (void)state;
    bpv_model *m = load("param w = 3\n"
                        "a = -2 * w\n"
                        "b = -w\n"
                        "c = w^2\n"
                        "d = pow(w, 3)\n"
                        "e = -w^2\n");
    bpv_graph *g = graph(m, "a", 0);
    const bpv_node *lit = &g->nodes[g->nodes[find(g, "a")].in[0]];
    assert_int_equal(lit->kind, BPV_NODE_CONST);
    assert_true(lit->literal);
    assert_null(lit->name);
    assert_true(bpv_node_value(g, lit, 0) == -2.0);
    assert_int_equal(lit->shape.rank, 0);
    g = graph(m, "b", 0);
    assert_int_equal(g->nodes[find(g, "b")].op, BPV_OP_NEG);
    g = graph(m, "c", 0);
    const bpv_node *c = &g->nodes[find(g, "c")];
    assert_int_equal(c->op, BPV_OP_POW);
    assert_true(g->nodes[c->in[1]].literal && bpv_node_value(g, &g->nodes[c->in[1]], 0) == 2.0);
    g = graph(m, "d", 0);
    assert_int_equal(g->nodes[find(g, "d")].op, BPV_OP_POW);
    g = graph(m, "e", 0); /* -(w^2) */
    const bpv_node *e = &g->nodes[find(g, "e")];
    assert_int_equal(e->op, BPV_OP_NEG);
    assert_int_equal(g->nodes[e->in[0]].op, BPV_OP_POW);
    bpv_model_free(m);
}

static void test_fn_inlining(void **state) {
    (void)state;
    bpv_model *m = load("param w = 2\nparam k = 3\n"
                        "fn sq(t) = t * t\n"
                        "fn scaled(t) = sq(t) * k\n"
                        "loss = scaled(w) + sq(w + 1)\n"
                        "one = sq(w)\n");
    bpv_graph *g = graph(m, "loss", 0);
    assert_int_equal(count_op(g, BPV_OP_MUL), 3);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].kind == BPV_NODE_OP && i != g->objective) assert_null(g->nodes[i].name);
    /* one param node for k, even though the fn body names it */
    int nk = 0;
    for (int i = 0; i < g->nnodes; i++)
        nk += g->nodes[i].kind == BPV_NODE_PARAM && strcmp(g->nodes[i].name, "k") == 0;
    assert_int_equal(nk, 1);
    g = graph(m, "one", 0); /* the inlined body's root takes the name */
    assert_int_equal(g->nodes[find(g, "one")].op, BPV_OP_MUL);
    bpv_model_free(m);
}

static void test_needs_grad(void **state) {
    (void)state;
    bpv_model *m = load("data x = [1, 2]\ndata y = [3, 4]\nparam w = 1\nconst c = 2\n"
                        "z = x * c\n"
                        "loss = (z * w - y)^2\n");
    bpv_graph *g = graph(m, "loss", 0);
    assert_false(g->nodes[find(g, "x")].needs_grad);
    assert_false(g->nodes[find(g, "z")].needs_grad);
    assert_null(g->nodes[find(g, "z")].grad);
    assert_true(g->nodes[find(g, "w")].needs_grad);
    assert_ptr_equal(g->nodes[find(g, "w")].grad, m->params[0].grad);
    assert_ptr_equal(g->nodes[find(g, "w")].val, m->params[0].val);
    assert_true(g->nodes[g->objective].needs_grad);
    /* the mul z*w: edge to w carries a gradient, the edge to z does not */
    int mul = g->nodes[g->nodes[g->objective].in[0]].in[0];
    assert_int_equal(g->nodes[mul].op, BPV_OP_MUL);
    assert_null(g->nodes[mul].edge_grad[0]);
    assert_non_null(g->nodes[mul].edge_grad[1]);
    bpv_model_free(m);
}

static void test_step_count(void **state) {
    (void)state;
    bpv_model *m = load("data x = [1, 2, 3, 4, 5]\nparam w = 1\nloss = mean((x * w - 1)^2)\n"
                        "train epochs=3 batch=2\n"
                        "train epochs=2\n"
                        "train epochs=4 batch=all\n");
    assert_int_equal(bpv_model_step_count(m), 3 * 3 + 2 * 5 + 4 * 1);
    assert_int_equal(m->ntrains, 3);
    assert_non_null(m->trains[0].part);
    assert_int_equal(m->trains[0].part->batch, 1); /* last batch of one keeps its dim */
    assert_int_equal(m->trains[0].part->nodes[find(m->trains[0].part, "x")].shape.rank, 1);
    assert_null(m->trains[1].part);
    assert_int_equal(m->trains[1].full->nodes[find(m->trains[1].full, "x")].shape.rank, 0);
    assert_null(m->trains[2].part);
    assert_int_equal(m->trains[2].full->nodes[find(m->trains[2].full, "x")].shape.dim[0], 5);
    bpv_model_free(m);
    /* no data: one step per epoch */
    m = load("param w = 1\nloss = (w - 3)^2\ntrain epochs=7\n");
    assert_int_equal(bpv_model_step_count(m), 7);
    bpv_model_free(m);
}

static void test_errors(void **state) {
    (void)state;
    load_fails("param w = 1\ny_hat = 2 * wx\n", "unknown name 'wx' (did you mean 'w'?)");
    load_fails("param w = 1\nparam w = 2\n", "'w' is already defined at line 1");
    load_fails("param relu = 1\n", "'relu' is a built-in function");
    load_fails("param a = [1, 2, 3]\nparam b = [1, 2]\nloss = sum(a * b)\n",
               "cannot multiply shapes [3] and [2]");
    load_fails("param a = zeros([2, 3])\nparam b = [1, 2]\nloss = sum(a @ b)\n",
               "matmul: [2, 3] @ [2] — inner sizes 3 and 2 differ");
    load_fails("param a = [1, 2]\nloss = a * 2\ntrain epochs=1\n",
               "the loss 'loss' has shape [2]; wrap it in mean() or sum()");
    load_fails("param a = 1\ntrain epochs=1\n", "no node named 'loss' to train");
    load_fails("param a = 1\nloss = a^2\ntrain epochs=1 loss=los\n",
               "unknown name 'los' (did you mean 'loss'?)");
    load_fails("data x = [1, 2]\ndata y = [1]\nparam w = 1\nloss = (x * w - y)^2\ntrain epochs=1\n",
               "data 'y' has 1 sample but 'x' has 2");
    load_fails("data x = [[1, 2], [3, 4, 5]]\n", "ragged");
    load_fails("param w = 1\nloss = w^2\ntrain epochs=1 lr=-1\n", "lr must be a number");
    load_fails("param w = 1\nloss = w^2\ntrain epochs=1.5\n", "epochs must be a whole number");
    load_fails("param w = 1\nloss = w^2\ntrain epochs=2 batch=0\n", "batch must be");
    load_fails("param w = 1\nloss = w^2\ntrain epochs=2 zero_grad=maybe\n",
               "zero_grad must be true or false");
    load_fails("param w = 1\nloss = w^2\ntrain epochs=2 beta1=0.9\n", "add optimizer=adam");
    load_fails("param w = 1\nloss = exp(w, w)\n", "exp() takes 1 argument, got 2");
    load_fails("param w = 1\nfn f(a) = f(a)\n", "calls itself");
    load_fails("param w = 1\nfn f(a) = a\nloss = f\n", "'f' is a function");
    load_fails("param w = 1\nloss = w(2)\n", "'w' is not a function");
    load_fails("param w = 1\ny = w\npredict y(w=3)\n", "'w' is a param, not data");
    load_fails("param w = 1\npredict z()\n", "unknown name 'z'");
    load_fails("param W = ones([70000, 70000])\n", "the limit is");
    load_fails("param w = 1\nx = w + randn([2], seed=1)\n", "randn() makes a param's initial value");
    load_fails("param w = randn([2], seed=1, mean=3)\n", "randn() has no option 'mean'");
    load_fails("param w = 1 lf=0.1\n", "unknown param option 'lf' (did you mean 'lr'?)");
    load_fails("param w = 1\nz = [1, 2] + [1, 2, 3]\n", "cannot add shapes [2] and [3]");
    load_fails("data x = [1, 2]\nparam w = 1\nloss = (x * w)^2\nloss2 = T(zeros)\n",
               "built-in function");
    load_fails("dtype f16\n", "unknown dtype 'f16'");
    load_fails("param w = 1\nloss = w^2\ndtype f64\n", "dtype must come before");
    load_fails("param w = [[1, 2]]\nconst y = [0, 2]\nloss = cross_entropy(w, y)\n",
               "logits of shape [1, 2] need class-index targets of shape [1], got [2]");
}

static void test_dtype_and_init(void **state) {
    (void)state;
    bpv_model *m = load("dtype f64\nparam w = 0.1\nparam r = randn([3, 2], seed=7, std=0.5)\n"
                        "param u = uniform([4], -1, 1, seed=2)\n");
    assert_int_equal(m->dtype, BPV_F64);
    assert_true(m->params[0].val[0] == 0.1); /* not rounded to float32 */
    for (int i = 0; i < 4; i++) assert_true(m->params[2].val[i] >= -1 && m->params[2].val[i] < 1);
    double r0 = m->params[1].val[0];
    bpv_model_free(m);
    m = load("dtype f64\nparam w = 0.1\nparam r = randn([3, 2], seed=7, std=0.5)\n");
    assert_true(m->params[1].val[0] == r0); /* seeded: the same every time */
    bpv_model_free(m);
    m = load("param w = 0.1\nparam z = zeros([2, 2])\nparam o = ones(3)\n");
    assert_true(m->f32store); /* an f32 model stores float32 */
    assert_true(m->params[0].val32[0] == 0.1f);
    assert_int_equal(m->params[1].numel, 4);
    assert_true(m->params[2].val32[2] == 1.0f);
    bpv_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_topological_and_sharing),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_fn_inlining),
        cmocka_unit_test(test_needs_grad),
        cmocka_unit_test(test_step_count),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_dtype_and_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
