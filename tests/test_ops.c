/* The op table and shapes: every op has a complete row; shapes format and
 * broadcast like PyTorch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph.h"

static bpv_shape shp(int rank, int64_t d0, int64_t d1, int64_t d2) {
    bpv_shape s = {rank, {d0, d1, d2, 0}};
    return s;
}

static void test_table_complete(void **state) {
    (void)state;
    for (int i = 1; i < BPV_OP_COUNT; i++) {
        const bpv_op_def *o = &bpv_ops[i];
        assert_non_null(o->name);
        assert_non_null(o->symbol);
        assert_true(o->symbol[0] != '\0');
        assert_true(o->min_in >= 1 && (o->max_in < 0 || o->max_in >= o->min_in));
        assert_non_null(o->dlocal[0]);
        if (o->max_in == 1) assert_null(o->dlocal[1]);
        /* every op has a shape rule and kernels for both storages */
        assert_non_null(o->shape);
        assert_non_null(o->fwd);
        assert_non_null(o->bwd);
        assert_non_null(o->fwd32);
        assert_non_null(o->bwd32);
        /* an elementwise op has an elementwise local partial */
        if (o->flags & BPV_OPF_ELEMWISE) assert_non_null(o->local);
        /* figures can write it */
        assert_true(o->fig_prec > 0);
        for (int j = 1; j < i; j++) {
            assert_string_not_equal(o->name, bpv_ops[j].name);
            if (o->call && bpv_ops[j].call) assert_string_not_equal(o->call, bpv_ops[j].call);
        }
        for (int a = 0; a < o->nattrs; a++) assert_non_null(o->attrs[a].name);
        assert_true(o->nattrs <= BPV_MAX_ATTRS);
    }
}

static void test_table_rows(void **state) {
    (void)state;
    assert_string_equal(bpv_ops[BPV_OP_MUL].name, "mul");
    assert_string_equal(bpv_ops[BPV_OP_MUL].symbol, "×");
    assert_string_equal(bpv_ops[BPV_OP_MUL].dlocal[0], "b");
    assert_string_equal(bpv_ops[BPV_OP_MUL].dlocal[1], "a");
    assert_string_equal(bpv_ops[BPV_OP_SUB].dlocal[1], "−1");
    assert_string_equal(bpv_ops[BPV_OP_SIGMOID].dlocal[0], "σ·(1−σ)");
    assert_string_equal(bpv_ops[BPV_OP_T].name, "transpose");
    assert_string_equal(bpv_ops[BPV_OP_T].call, "T");
    assert_string_equal(bpv_ops[BPV_OP_LOG_SOFTMAX].symbol, "log softmax");
    assert_string_equal(bpv_ops[BPV_OP_CROSS_ENTROPY].name, "cross_entropy");
    assert_int_equal(bpv_ops[BPV_OP_CROSS_ENTROPY].min_in, 2);
    /* class-index targets take no gradient */
    assert_null(bpv_ops[BPV_OP_CROSS_ENTROPY].dlocal[1]);
    assert_false(bpv_op_grad_input(BPV_OP_CROSS_ENTROPY, 1));
    assert_true(bpv_op_grad_input(BPV_OP_MUL, 1));
    assert_int_equal(bpv_ops[BPV_OP_IDENTITY].max_in, 1);
    /* the language's names */
    assert_int_equal(bpv_op_by_call("max"), BPV_OP_MAX);
    assert_int_equal(bpv_op_by_call("min"), BPV_OP_MIN);
    assert_int_equal(bpv_op_by_call("T"), BPV_OP_T);
    assert_int_equal(bpv_op_by_call("add"), BPV_OP_NONE); /* an operator, not a call */
    assert_true(bpv_ops[BPV_OP_MAX].flags & BPV_OPF_ELEMWISE);
}

static void test_shape_numel_eq(void **state) {
    (void)state;
    bpv_shape s0 = shp(0, 0, 0, 0), s3 = shp(1, 3, 0, 0), s23 = shp(2, 2, 3, 0);
    assert_int_equal(bpv_shape_numel(&s0), 1);
    assert_int_equal(bpv_shape_numel(&s3), 3);
    assert_int_equal(bpv_shape_numel(&s23), 6);
    bpv_shape e = shp(2, 4, 0, 0);
    assert_int_equal(bpv_shape_numel(&e), 0);
    assert_true(bpv_shape_eq(&s23, &s23));
    bpv_shape s32 = shp(2, 3, 2, 0);
    assert_false(bpv_shape_eq(&s23, &s32));
    assert_false(bpv_shape_eq(&s0, &s3));
}

static void test_shape_fmt(void **state) {
    (void)state;
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_shape s0 = shp(0, 0, 0, 0), s3 = shp(1, 3, 0, 0), s42 = shp(2, 4, 2, 0);
    bpv_shape_fmt(&b, &s0);
    bpv_shape_fmt(&b, &s3);
    bpv_shape_fmt(&b, &s42);
    assert_string_equal(b.data, "[][3][4, 2]");
    bpv_buf_free(&b);
}

static void expect_bcast(bpv_shape a, bpv_shape b, bool ok, bpv_shape want) {
    bpv_shape out;
    assert_int_equal(bpv_shape_broadcast(&a, &b, &out), ok);
    if (ok) assert_true(bpv_shape_eq(&out, &want));
}

static void test_shape_broadcast(void **state) {
    (void)state;
    bpv_shape s0 = shp(0, 0, 0, 0);
    expect_bcast(shp(1, 3, 0, 0), s0, true, shp(1, 3, 0, 0));
    expect_bcast(s0, s0, true, s0);
    expect_bcast(shp(2, 2, 3, 0), shp(1, 3, 0, 0), true, shp(2, 2, 3, 0));
    expect_bcast(shp(2, 2, 1, 0), shp(2, 1, 3, 0), true, shp(2, 2, 3, 0));
    expect_bcast(shp(3, 4, 1, 5), shp(2, 3, 1, 0), true, shp(3, 4, 3, 5));
    expect_bcast(shp(1, 3, 0, 0), shp(1, 4, 0, 0), false, s0);
    expect_bcast(shp(2, 2, 3, 0), shp(1, 2, 0, 0), false, s0);
    expect_bcast(shp(1, 0, 0, 0), shp(1, 1, 0, 0), true, shp(1, 0, 0, 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_complete),  cmocka_unit_test(test_table_rows),
        cmocka_unit_test(test_shape_numel_eq),  cmocka_unit_test(test_shape_fmt),
        cmocka_unit_test(test_shape_broadcast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
