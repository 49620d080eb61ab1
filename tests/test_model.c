/* Runner: the tutorial acceptance, optimizers against torch 1.13
 * (tests/torch/optim_reference.py), batching, shuffling, zero_grad=false,
 * snapshots and stopping early. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "testutil.h"
#include "snapshot.h"

static bpv_model *load(const char *text) {
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string("t.bp", text, strlen(text), &err);
    if (!m) fail_msg("load failed: %s", err ? err->message : "(no error)");
    return m;
}

/* Runs m keeping `keep` (NULL: none) and returns what it printed (free it). */
static char *run(bpv_model *m, const char *keep, int stop) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    bpv_error *err = NULL;
    bpv_step_set *set = keep ? bpv_step_set_parse(keep, &err) : NULL;
    bpv_run_options o = {0};
    o.out = f;
    o.keep = set;
    o.stop_after_last_kept = stop;
    int rc = bpv_model_run(m, &o, &err);
    fclose(f);
    bpv_step_set_free(set);
    if (rc != BPV_OK) fail_msg("run failed: %s", err ? err->message : "");
    return out;
}

static const char *last_line(const char *s) {
    size_t n = strlen(s);
    if (n && s[n - 1] == '\n') n--;
    while (n && s[n - 1] != '\n') n--;
    return s + n;
}

/* Element i of a param's value or grad, whatever the model stores. */
static double pnum(const bpv_model *m, int q, bool grad, int64_t i) {
    const bpv_param *p = &m->params[q];
    if (m->f32store) return grad ? p->grad32[i] : p->val32[i];
    return grad ? p->grad[i] : p->val[i];
}

static void test_acceptance_quadratic(void **state) {
    (void)state;
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(BPV_SOURCE_DIR "/samples/quadratic.bp", &err);
    assert_non_null(m);
    assert_int_equal(bpv_model_step_count(m), 800);
    char *out = run(m, NULL, 0);
    assert_true(strncmp(out, "predict y_hat(x=5) = 8.800000190734863\n", 39) == 0);
    assert_non_null(strstr(out, "\nepoch=199 loss=7.842553895898163e-05 w1=0.006645866669714451 "
                                "w2=1.955818772315979 b=0.060525789856910706\n"
                                "predict y_hat(x=5) = 10.005765914916992\n"));
    assert_string_equal(last_line(out), "predict y_hat(x=5) = 10.005765914916992\n");
    free(out);
    bpv_model_free(m);
}

static void test_linear_sample(void **state) {
    (void)state;
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(BPV_SOURCE_DIR "/samples/linear.bp", &err);
    assert_non_null(m);
    char *out = run(m, NULL, 0);
    assert_true(strncmp(out, "predict y_hat(x=5) = 5.0\nepoch=0 loss=", 38) == 0);
    free(out);
    bpv_model_free(m);
}

/* Gradient is exactly c each step, so only the optimizer is under test;
 * expected values printed by tests/torch/optim_reference.py. */
#define OPT_MODEL "param w = [0.5, -1.25, 2.0, 0.1]\nconst c = [0.3, -0.7, 1.1, 0.05]\n" \
                  "loss = sum(w * c)\n"

static void check_opt(const char *train, const char *want) {
    char text[512];
    snprintf(text, sizeof text, "%s%s\n", OPT_MODEL, train);
    bpv_model *m = load(text);
    char *out = run(m, NULL, 0);
    const char *w = strstr(last_line(out), " w=");
    assert_non_null(w);
    assert_string_equal(w + 3, want);
    free(out);
    bpv_model_free(m);
}

static void test_optimizers(void **state) {
    (void)state;
    check_opt("train epochs=3 lr=0.1 momentum=0.9",
              "[0.33169999718666077, -0.8572999238967896, 1.3828999996185303, "
              "0.07195000350475311]\n");
    check_opt("train epochs=3 lr=0.01 optimizer=adam",
              "[0.4700000286102295, -1.2200000286102295, 1.9700000286102295, "
              "0.07000000774860382]\n");
    check_opt("train epochs=5 lr=0.05 optimizer=adam beta1=0.8 beta2=0.99 eps=1e-6",
              "[0.25000083446502686, -1.000000238418579, 1.750000238418579, "
              "-0.14999502897262573]\n");
    /* plain SGD: p - fl(lr) * g in float32: 0.5 - 0.1f*0.3f, twice */
    float w = 0.5f;
    for (int i = 0; i < 2; i++) w = w - (float)(0.1f * 0.3f);
    bpv_model *m = load(OPT_MODEL "train epochs=2 lr=0.1\n");
    char *out = run(m, NULL, 0);
    assert_true(pnum(m, 0, false, 0) == (double)w);
    free(out);
    bpv_model_free(m);
}

static const bpv_snap_node *snode(const bpv_snapshot *s, const char *name) {
    for (int i = 0; i < s->nnodes; i++)
        if (s->nodes[i].name && strcmp(s->nodes[i].name, name) == 0) return &s->nodes[i];
    fail_msg("no node %s", name);
    return NULL;
}

static void test_batches(void **state) {
    (void)state;
    bpv_model *m = load("data x = [1, 2, 3, 4, 5]\nparam w = 1\n"
                        "loss = mean((x * w - 2 * x)^2)\n"
                        "train epochs=2 batch=2 lr=0.01\n");
    assert_int_equal(bpv_model_step_count(m), 6);
    char *out = run(m, "all", 0);
    free(out);
    assert_int_equal(m->run.nsnaps, 6);
    const bpv_snapshot *s1 = m->run.snaps[0], *s3 = m->run.snaps[2], *s4 = m->run.snaps[3];
    assert_int_equal(s1->nsamples, 2);
    assert_int_equal(s1->samples[0], 0);
    assert_int_equal(s1->samples[1], 1);
    assert_int_equal(snode(s1, "x")->shape.rank, 1);
    assert_int_equal(snode(s1, "x")->shape.dim[0], 2);
    assert_true(snode(s1, "x")->value[1] == 2.0);
    /* the last, smaller batch keeps its batch dimension */
    assert_int_equal(s3->nsamples, 1);
    assert_int_equal(s3->samples[0], 4);
    assert_int_equal(snode(s3, "x")->shape.rank, 1);
    assert_int_equal(snode(s3, "x")->shape.dim[0], 1);
    assert_true(snode(s3, "x")->value[0] == 5.0);
    assert_int_equal(s3->epoch, 0);
    assert_int_equal(s4->epoch, 1);
    assert_int_equal(s4->step, 4);
    bpv_model_free(m);
}

static void perm_of(const bpv_snapshot *const *s, int n, int64_t *order) {
    for (int i = 0; i < n; i++) {
        assert_int_equal(s[i]->nsamples, 1);
        order[i] = s[i]->samples[0];
    }
}

static void test_shuffle(void **state) {
    (void)state;
    const char *text = "data x = [1, 2, 3, 4, 5, 6, 7, 8]\nparam w = 1\nloss = (x * w - x)^2\n"
                       "train epochs=3 shuffle=true seed=11\n";
    bpv_model *a = load(text), *b = load(text);
    char *oa = run(a, "all", 0), *ob = run(b, "all", 0);
    assert_string_equal(oa, ob);
    assert_int_equal(a->run.nsnaps, 24);
    int64_t e0[8], e1[8], e0b[8];
    perm_of((const bpv_snapshot *const *)a->run.snaps, 8, e0);
    perm_of((const bpv_snapshot *const *)a->run.snaps + 8, 8, e1);
    perm_of((const bpv_snapshot *const *)b->run.snaps, 8, e0b);
    assert_memory_equal(e0, e0b, sizeof e0);
    int seen[8] = {0};
    for (int i = 0; i < 8; i++) seen[e0[i]]++;
    for (int i = 0; i < 8; i++) assert_int_equal(seen[i], 1);
    assert_true(memcmp(e0, e1, sizeof e0) != 0); /* a new order each epoch */
    free(oa);
    free(ob);
    bpv_model_free(a);
    bpv_model_free(b);
}

static void test_zero_grad_false(void **state) {
    (void)state;
    bpv_model *m = load("data x = [1, 2, 4]\nparam w = 1\nloss = x * w\n"
                        "train epochs=1 lr=0.1 zero_grad=false\n");
    char *out = run(m, "all", 0);
    assert_int_equal(m->run.nsnaps, 3);
    assert_true(snode(m->run.snaps[0], "w")->grad[0] == 1.0);
    assert_true(snode(m->run.snaps[1], "w")->grad[0] == 3.0); /* 1 + 2 */
    assert_true(snode(m->run.snaps[2], "w")->grad[0] == 7.0); /* 1 + 2 + 4 */
    float w = 1.0f;
    w = w - 0.1f * 1.0f;
    w = w - 0.1f * 3.0f;
    w = w - 0.1f * 7.0f;
    assert_true(pnum(m, 0, false, 0) == (double)w);
    free(out);
    bpv_model_free(m);
}

static void test_snapshot_contents(void **state) {
    (void)state;
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load(BPV_SOURCE_DIR "/samples/linear.bp", &err);
    assert_non_null(m);
    char *out = run(m, "1,6", 0);
    free(out);
    assert_int_equal(m->run.nsnaps, 2);
    const bpv_snapshot *s = m->run.snaps[0];
    assert_int_equal(s->step, 1);
    assert_int_equal(s->epoch, 0);
    assert_int_equal(s->nsamples, 1);
    assert_int_equal(s->samples[0], 0);
    assert_true(s->loss == 1.0); /* (1*1 - 2)^2 */
    assert_int_equal(s->nnodes, 7);
    assert_int_equal(s->nodes[s->objective].kind, BPV_NODE_OP);
    assert_string_equal(s->nodes[s->objective].name, "loss");
    assert_true(snode(s, "x")->value[0] == 1.0);
    assert_null(snode(s, "x")->grad);
    assert_true(snode(s, "y")->value[0] == 2.0);
    assert_true(snode(s, "y_hat")->value[0] == 1.0);
    assert_true(snode(s, "y_hat")->grad[0] == -2.0);
    assert_true(snode(s, "w")->grad[0] == -2.0);
    assert_true(snode(s, "loss")->grad[0] == 1.0);
    /* edges into y_hat = x * w. Their local partials are derived from the
     * snapshot's own values when first read, here after the whole run: w
     * has moved on since, so reading the live graph would give another w */
    assert_true(s->locals_pending);
    bpv_snapshot_locals(s);
    assert_false(s->locals_pending);
    int yh = (int)(snode(s, "y_hat") - s->nodes);
    int found = 0;
    for (int e = 0; e < s->nedges; e++) {
        const bpv_snap_edge *ed = &s->edges[e];
        if (ed->to != yh) continue;
        found++;
        const char *from = s->nodes[ed->from].name;
        if (strcmp(from, "x") == 0) {
            assert_string_equal(ed->formula, "w");
            assert_true(ed->local && ed->local[0] == 1.0);
            assert_null(ed->chained);
        } else {
            assert_string_equal(from, "w");
            assert_string_equal(ed->formula, "x");
            assert_true(ed->local[0] == 1.0);
            assert_non_null(ed->chained);
            assert_true(ed->chained[0] == -2.0);
        }
    }
    assert_int_equal(found, 2);
    /* the edge into the power: 2·(y_hat − y)... named after the input */
    for (int e = 0; e < s->nedges; e++)
        if (s->edges[e].to == s->objective && s->edges[e].slot == 0)
            assert_non_null(strstr(s->edges[e].formula, "2"));
    assert_int_equal(s->nparams, 1);
    assert_string_equal(s->params[0].name, "w");
    assert_true(s->params[0].after[0] == (double)(1.0f - 0.01f * -2.0f));
    assert_int_equal(m->run.snaps[1]->step, 6);
    assert_int_equal(m->run.snaps[1]->epoch, 1);
    assert_int_equal(m->run.snaps[1]->samples[0], 1);
    bpv_model_free(m);
}

static void test_stop_early_and_continue(void **state) {
    (void)state;
    const char *text = "data x = [1, 2]\nparam w = 1\nloss = (x * w - 2)^2\n"
                       "train epochs=3 lr=0.01\ntrain epochs=2 lr=0.01\npredict w()\n";
    bpv_model *m = load(text);
    assert_int_equal(bpv_model_step_count(m), 10);
    char *out = run(m, "3", 1);
    assert_int_equal(m->run.step, 3);
    assert_int_equal(m->run.nsnaps, 1);
    free(out);
    bpv_model_free(m);
    m = load(text);
    out = run(m, "8", 0);
    assert_int_equal(m->run.step, 10);
    assert_int_equal(m->run.snaps[0]->epoch, 3); /* epochs keep counting */
    assert_non_null(strstr(out, "\nepoch=4 loss="));
    assert_non_null(strstr(out, "\npredict w() = "));
    free(out);
    bpv_model_free(m);
}

static void test_predict_tensors(void **state) {
    (void)state;
    bpv_model *m = load("data x = [[1, 2], [3, 4]]\nparam W = [[0.5, -0.4], [0.3, 0.8]]\n"
                        "h = x @ W\npredict W()\npredict h(x=[1, 0])\n"
                        "predict h(x = [[1, 0], [0, 1]])   # a batch\n");
    char *out = run(m, NULL, 0);
    assert_string_equal(out, "predict W() = [[0.5, -0.4000000059604645], [0.30000001192092896, "
                             "0.800000011920929]]\n"
                             "predict h(x=[1, 0]) = [0.5, -0.4000000059604645]\n"
                             "predict h(x = [[1, 0], [0, 1]]) = [[0.5, -0.4000000059604645], "
                             "[0.30000001192092896, 0.800000011920929]]\n");
    free(out);
    bpv_model_free(m);
}

static void test_csv(void **state) {
    (void)state;
    const char *dir = "/tmp";
    char path[256], bp[256];
    snprintf(path, sizeof path, "%s/bpv_test_model.csv", dir);
    FILE *f = fopen(path, "w");
    fputs("a,b,c\n1,2,3\n4,5,6\r\n7,8,9\n\n", f);
    fclose(f);
    snprintf(bp, sizeof bp, "%s/t.bp", dir);
    const char *text = "data x = csv(\"bpv_test_model.csv\", 0:2)\n"
                       "data y = csv(\"bpv_test_model.csv\", 2)\n";
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string(bp, text, strlen(text), &err);
    if (!m) fail_msg("%s", err->message);
    assert_int_equal(m->data[0].nsamples, 3);
    assert_int_equal(m->data[0].sample.rank, 1);
    assert_int_equal(m->data[0].sample.dim[0], 2);
    assert_null(m->data[0].values); /* an f32 model keeps a file's data as float32 only */
    assert_true(m->data[0].values32[5] == 8.0f);
    assert_int_equal(m->data[1].sample.rank, 0);
    assert_true(m->data[1].values32[2] == 9.0f);
    bpv_model_free(m);
    remove(path);
}

/* A tensor's NaN or infinity is found while its numbers are copied into the
 * snapshot: the step with one is marked, the next is not. */
static void test_snapshot_nonfinite_tensor(void **state) {
    (void)state;
    bpv_model *m = load("data x = [1, 0, 2, 3]\ndata y = [2, 0, 4, 6]\nparam w = 1.5\n"
                        "loss = sum((x * w - y)^2 + relu(-1 / x))\n"
                        "train epochs=1 lr=0.01 batch=2\n");
    char *out = run(m, "1,2", 0);
    free(out);
    assert_int_equal(m->run.nsnaps, 2);
    const bpv_snapshot *s = m->run.snaps[0];
    assert_int_equal(s->nf_pass, 1);
    assert_int_equal(s->nodes[s->nf_node].op, BPV_OP_DIV);
    assert_true(s->nodes[s->nf_node].nonfinite);
    s = m->run.snaps[1];
    assert_int_equal(s->nf_pass, 0);
    for (int i = 0; i < s->nnodes; i++) assert_false(s->nodes[i].nonfinite);
    bpv_model_free(m);
}

/* Snapshots handed back with bpv_snapshot_release are refilled by the next
 * step's take: every step must still read exactly as a fresh snapshot of
 * it would. Each model is run twice, once keeping every snapshot and once
 * releasing each as soon as it is exported (as bench and streaming do), and
 * every step's JSON and DOT must be the same bytes. The models cover a
 * partial last batch followed by a full one (a block too small for the
 * samples), a second train statement (another graph), and NaN steps (marked
 * blocks, which are not reused). */
typedef struct recycle_log {
    bpv_model *m;
    char *out[64];
    int n;
    bool release;
} recycle_log;

static int on_recycle(const bpv_snapshot *s, void *user) {
    recycle_log *r = user;
    bpv_error *err = NULL;
    char *json = NULL, *dot = NULL;
    size_t jl = 0, dl = 0;
    assert_int_equal(bpv_snapshot_export(s, BPV_FORMAT_JSON, NULL, &json, &jl, &err), BPV_OK);
    assert_int_equal(bpv_snapshot_export(s, BPV_FORMAT_DOT, NULL, &dot, &dl, &err), BPV_OK);
    assert_true(r->n < 64);
    r->out[r->n] = malloc(jl + dl + 1);
    memcpy(r->out[r->n], json, jl);
    memcpy(r->out[r->n] + jl, dot, dl);
    r->out[r->n++][jl + dl] = '\0';
    free(json), free(dot);
    if (r->release) {
        bpv_model *m = r->m;
        assert_ptr_equal(m->run.snaps[m->run.nsnaps - 1], s);
        bpv_snapshot_release(m, m->run.snaps[--m->run.nsnaps]);
    }
    return 0;
}

static void run_recycled(const char *text, recycle_log *r, bool release) {
    memset(r, 0, sizeof *r);
    r->m = load(text);
    r->release = release;
    bpv_error *err = NULL;
    bpv_step_set *set = bpv_step_set_parse("all", &err);
    bpv_run_options o = {0};
    o.keep = set;
    o.on_snapshot = on_recycle;
    o.user = r;
    FILE *devnull = fopen("/dev/null", "w");
    o.out = devnull;
    int rc = bpv_model_run(r->m, &o, &err);
    fclose(devnull);
    bpv_step_set_free(set);
    if (rc != BPV_OK) fail_msg("run failed: %s", err ? err->message : "");
    assert_int_equal(r->m->run.nsnaps, release ? 0 : (size_t)r->n);
    bpv_model_free(r->m);
}

static void test_snapshot_recycled(void **state) {
    (void)state;
    const char *models[] = {
        "data x = [1, 2, 3, 4, 5]\ndata y = [2, 4, 6, 8, 10]\nparam w = 0.5\nparam b = 0\n"
        "y_hat = x * w + b\nloss = mean((y_hat - y)^2)\n"
        "train epochs=3 lr=0.01 batch=2\nparam c = 1\ntrain epochs=2 lr=0.02 batch=all\n",
        "data x = [1, 2, 3]\nparam w = 1.5\nz = log(w - x)\nloss = z * z\n"
        "train epochs=3 lr=0.1\n",
        /* an infinity off the gradient's path: steps 2, 5, 8 are marked and
         * the others are not */
        "data x = [1, 0, 2]\ndata y = [2, 0, 4]\nparam w = 1.5\n"
        "loss = (x * w - y)^2 + relu(-1 / x)\ntrain epochs=3 lr=0.01\n",
        /* the same with tensors: the infinity is in the first batch only */
        "data x = [1, 0, 2, 3]\ndata y = [2, 0, 4, 6]\nparam w = 1.5\n"
        "loss = sum((x * w - y)^2 + relu(-1 / x))\ntrain epochs=3 lr=0.01 batch=2\n",
    };
    for (size_t k = 0; k < sizeof models / sizeof *models; k++) {
        recycle_log kept, released;
        run_recycled(models[k], &kept, false);
        run_recycled(models[k], &released, true);
        assert_true(kept.n > 5);
        assert_int_equal(kept.n, released.n);
        for (int i = 0; i < kept.n; i++) {
            assert_string_equal(kept.out[i], released.out[i]);
            free(kept.out[i]), free(released.out[i]);
        }
    }
}

/* Models for the two storages of f32 models (float32, and doubles holding
 * float32 values under BPV_STORE_F64=1): every op, the broadcast reductions
 * torch orders and those it does not, the last partial batch (a graph of
 * its own), per-param learning rates, zero_grad=false, two trains, and the
 * three optimizers. */
static const char *const storage_models[] = {
    "data x = [[1, 2, 3], [0.5, -1, 2], [2, 0.25, -3], [-1, 1, 1]]\n"
    "data y = [1, 0, 2, -1]\n"
    "param W1 = uniform([3, 4], -0.5, 0.5, seed=1)\nparam b1 = zeros([4])\n"
    "param W2 = uniform([4], -0.5, 0.5, seed=2)\nparam v = 0.5\n"
    "h = tanh(x @ W1 + b1)\ny_hat = W2 @ T(h) * v + v\nloss = mse(y_hat, y)\n"
    "train epochs=3 lr=0.1 batch=2\n",
    "data x = [[1, 2], [3, 4], [5, 6]]\ndata y = [1, 2, 3]\n"
    "param W = uniform([2], -1, 1, seed=4)\ny_hat = x @ W\nloss = mse(y_hat, y)\n"
    "train epochs=2 lr=0.01 batch=1 zero_grad=false\n",
    "data x = [[1, 2], [0.5, -1], [2, 0.25], [-1, 1], [0, 3]]\ndata y = [0, 1, 2, 1, 0]\n"
    "param W = uniform([2, 3], -0.5, 0.5, seed=3)\nparam b = zeros([3])\n"
    "loss = cross_entropy(relu(x @ W + b) - log_softmax(x @ W) * 0.1, y)\n"
    "train epochs=3 lr=0.1 batch=2\n",
    "data x = [[1, 0.5], [0.2, -1], [2, 1], [-0.5, 0.3]]\ndata y = [1, 0, 1, 0]\n"
    "param w = uniform([2], -1, 1, seed=5) lr=0.5\nparam c = 0.1\n"
    "p = sigmoid(x @ w + c)\nloss = bce(p, y)\n"
    "train epochs=2 lr=0.1 batch=2\ntrain epochs=2 lr=0.05 batch=all\n",
    "data x = [1, 2, 3, 4]\n"
    "param q = uniform([1, 2, 1, 3], -1, 1, seed=6)\nparam r = uniform([2, 2, 2, 3], -1, 1, seed=7)\n"
    "param a = uniform([3, 1], -1, 1, seed=8)\nparam s = uniform([3], -1, 1, seed=9)\n"
    "loss = mean(q * r) * mean(x) + mse(a, s)\n"
    "train epochs=3 lr=0.1 batch=2\n",
    "fn sq(u) = u * u grad u = 2 * u\n"
    "data x = [[0.5, 1.5], [1, 2], [2, 0.25]]\n"
    "param w = uniform([2, 2], 0.1, 1, seed=10)\n"
    "z = abs(x @ w)\n"
    "h = exp(-z) + sqrt(z + 1) + log(z + 2) + 1 / (z + 1)\n"
    "loss = sum(sq(h) ^ 1.5) / 10 + sum(h ^ w) + sum(softmax(h) * x) - mean(h / w)\n"
    "train epochs=3 lr=0.01 batch=2\n",
    "data x = [[1, 2, 3], [0.5, -1, 2], [2, 0.25, -3], [-1, 1, 1]]\n"
    "data y = [1, 0, 2, -1]\n"
    "param W = uniform([3, 2], -0.5, 0.5, seed=11)\nparam v = uniform([2], -1, 1, seed=12)\n"
    "loss = mse(max(x @ W, 0.1 * (x @ W)) @ v, y)\n"
    "train epochs=3 lr=0.1 batch=2 momentum=0.9\n"
    "train epochs=3 lr=0.01 batch=3 optimizer=adam\n",
};

/* Steps nobody records skip work (a param's sole matmul edge goes straight
 * into its .grad): step 5 recorded alone, or with every step, over float32
 * storage, must hold exactly the numbers of step 5 over double storage
 * (BPV_STORE_F64=1). */
static void test_unrecorded_steps(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof storage_models / sizeof *storage_models; k++) {
        bpv_model *all = load(storage_models[k]), *one = load(storage_models[k]);
        bpv_model *dbl = load(storage_models[k]);
        free(run(all, "all", 0));
        free(run(one, "5", 0));
        unsetenv("BPV_STORE_F64");
        bpv_model_free(dbl);
        setenv("BPV_STORE_F64", "1", 1);
        dbl = load(storage_models[k]);
        free(run(dbl, "all", 0));
        unsetenv("BPV_STORE_F64");
        assert_true(all->run.nsnaps >= 5);
        assert_int_equal(one->run.nsnaps, 1);
        assert_int_equal(dbl->run.nsnaps, all->run.nsnaps);
        assert_int_equal(one->run.snaps[0]->step, 5);
        tu_same_snapshot(dbl->run.snaps[4], one->run.snaps[0]);
        for (size_t i = 0; i < all->run.nsnaps; i++) tu_same_snapshot(dbl->run.snaps[i], all->run.snaps[i]);
        bpv_model_free(all);
        bpv_model_free(one);
        bpv_model_free(dbl);
    }
}

/* An f32 model trains over float32 storage; BPV_STORE_F64=1 keeps doubles.
 * Both print the same and leave the same params and grads behind. */
static void test_storages_match(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof storage_models / sizeof *storage_models; k++) {
        bpv_model *fast = load(storage_models[k]);
        setenv("BPV_STORE_F64", "1", 1);
        bpv_model *slow = load(storage_models[k]);
        unsetenv("BPV_STORE_F64");
        assert_true(fast->f32store);
        assert_false(slow->f32store);
        char *a = run(fast, NULL, 0);
        char *b = run(slow, NULL, 0);
        assert_string_equal(a, b);
        assert_int_equal(fast->nparams, slow->nparams);
        for (int q = 0; q < fast->nparams; q++)
            for (int64_t i = 0; i < fast->params[q].numel; i++) {
                assert_true(pnum(fast, q, false, i) == pnum(slow, q, false, i));
                assert_true(pnum(fast, q, true, i) == pnum(slow, q, true, i) ||
                            (isnan(pnum(fast, q, true, i)) && isnan(pnum(slow, q, true, i))));
            }
        free(a), free(b);
        bpv_model_free(fast);
        bpv_model_free(slow);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acceptance_quadratic),
        cmocka_unit_test(test_linear_sample),
        cmocka_unit_test(test_optimizers),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_zero_grad_false),
        cmocka_unit_test(test_snapshot_contents),
        cmocka_unit_test(test_stop_early_and_continue),
        cmocka_unit_test(test_predict_tensors),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_snapshot_recycled),
        cmocka_unit_test(test_snapshot_nonfinite_tensor),
        cmocka_unit_test(test_unrecorded_steps),
        cmocka_unit_test(test_storages_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
