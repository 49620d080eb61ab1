/* Foundations: number format, UTF-8, located errors, suggestions, step
 * selections, atomic writes, JSON strings, the arena. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export.h"
#include "model.h"
#include "repr_ref.h"
#include "testutil.h"

static void check_repr(double v, const char *want) {
    char buf[40];
    assert_string_equal(bpv_fmt_repr_s(buf, v), want);
}

/* Expected texts are Python's repr() of the same doubles. */
static void test_repr_python(void **state) {
    (void)state;
    check_repr(1.0, "1.0");
    check_repr(0.1, "0.1");
    check_repr(1e-5, "1e-05");
    check_repr(0.0001, "0.0001");
    check_repr(1e16, "1e+16");
    check_repr(1e15, "1000000000000000.0");
    check_repr(-0.0, "-0.0");
    check_repr(0.0, "0.0");
    check_repr(-2.5, "-2.5");
    check_repr(1.0 / 0.0, "inf");
    check_repr(-1.0 / 0.0, "-inf");
    check_repr(0.0 / 0.0, "nan");
    check_repr(5e-324, "5e-324");
    check_repr(1.7976931348623157e308, "1.7976931348623157e+308");
    /* float32 values widened to double, as `bpviz run` prints them */
    check_repr((double)8.8f, "8.800000190734863");
    check_repr((double)0.006645866669714451f, "0.006645866669714451");
    check_repr((double)7.842553895898163e-05f, "7.842553895898163e-05");
    /* powers of two, where the shortest text is not the nearest one */
    check_repr(0x1p-652, "5.351097043477547e-197");
    check_repr(0x1p122, "5.316911983139664e+36");
}

#define REPR_DIR BPV_TEST_DIR "/data/repr"

static double repr_bits(uint64_t b) {
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

/* Edge cases (powers of two and ten and their neighbours, subnormals, the
 * extremes, the layout's switch points) against Python's repr(), written
 * by tests/data/repr/make_vectors.py; the old formatter must agree too. */
static void test_repr_edges(void **state) {
    (void)state;
    FILE *f = fopen(REPR_DIR "/edges.txt", "r");
    assert_non_null(f);
    char line[128], want[64], got[40], ref[40];
    unsigned long long bits;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        assert_int_equal(sscanf(line, "%llx %63s", &bits, want), 2);
        double v = repr_bits(bits);
        if (strcmp(bpv_fmt_repr_s(got, v), want) != 0) fail_msg("%016llx: %s, Python %s", bits, got, want);
        if (strcmp(repr_ref(ref, v), want) != 0) fail_msg("%016llx: old %s, Python %s", bits, ref, want);
        n++;
    }
    fclose(f);
    assert_true(n > 9000);
}

static uint64_t repr_splitmix(uint64_t *s) {
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Case i of make_vectors.py's stream, from the random r. */
static double repr_stream_case(uint64_t i, uint64_t r) {
    switch (i % 4) {
    case 0:
        if ((r >> 52 & 0x7ff) == 0x7ff) r ^= UINT64_C(1) << 62;
        return repr_bits(r);
    case 1: {
        uint32_t b = (uint32_t)r;
        if ((b >> 23 & 0xff) == 0xff) b ^= UINT32_C(1) << 30;
        float x;
        memcpy(&x, &b, sizeof x);
        return x;
    }
    case 2:
        return (double)(r >> 11);
    default: {
        int d = 1 + (int)(r % 17);
        uint64_t p = 1;
        for (int k = 0; k < d; k++) p *= 10;
        char t[48];
        snprintf(t, sizeof t, "%llue%d", (unsigned long long)((r >> 8) % p),
                 (int)((r >> 40) % 660) - 340);
        return strtod(t, NULL);
    }
    }
}

/* Two million generated cases (random doubles and float32 values, integers,
 * short decimals) against the hashes of Python's repr() of the same, block
 * by block; every 16th also against the old formatter. */
static void test_repr_stream(void **state) {
    (void)state;
    FILE *f = fopen(REPR_DIR "/stream.txt", "r");
    assert_non_null(f);
    char line[128], got[40], ref[40];
    unsigned seed, nblocks, block;
    assert_non_null(fgets(line, sizeof line, f));
    assert_int_equal(sscanf(line, "# seed %u, %u blocks of %u", &seed, &nblocks, &block), 3);
    uint64_t s = seed, i = 0;
    for (unsigned b = 0; b < nblocks; b++) {
        unsigned idx;
        unsigned long long want;
        assert_non_null(fgets(line, sizeof line, f));
        assert_int_equal(sscanf(line, "%u %llx", &idx, &want), 2);
        assert_int_equal(idx, b);
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        for (unsigned k = 0; k < block; k++, i++) {
            double v = repr_stream_case(i, repr_splitmix(&s));
            bpv_fmt_repr_s(got, v);
            for (const char *c = got; *c; c++) h = (h ^ (unsigned char)*c) * UINT64_C(0x100000001b3);
            h = (h ^ '\n') * UINT64_C(0x100000001b3);
            if (i % 16 == 0 && strcmp(got, repr_ref(ref, v)) != 0)
                fail_msg("case %llu: %s, old %s", (unsigned long long)i, got, ref);
        }
        if (h != want) fail_msg("block %u (cases %u..): hash differs from Python's", b, b * block);
    }
    fclose(f);
    assert_true(i >= 2000000);
}

static void test_utf8(void **state) {
    (void)state;
    size_t off = 99;
    assert_true(bpv_utf8_valid("w = 1 # ω", strlen("w = 1 # ω"), &off));
    assert_false(bpv_utf8_valid("ab\xff", 3, &off));
    assert_int_equal(off, 2);
    assert_false(bpv_utf8_valid("a\0b", 3, &off));
    assert_int_equal(off, 1);
    assert_false(bpv_utf8_valid("\xc0\x80", 2, &off)); /* overlong NUL */
    assert_int_equal(off, 0);
    assert_false(bpv_utf8_valid("x\xe2\x82", 3, &off)); /* truncated */
    assert_int_equal(off, 1);
    assert_false(bpv_utf8_valid("\xed\xa0\x80", 3, &off)); /* surrogate */
}

static void test_error_caret(void **state) {
    (void)state;
    const char *text = "data x = [1, 2]\nloss = (x * ω1) ^ 2\n";
    bpv_source src = {"m.bp", ".", text, strlen(text)};
    const char *p = strstr(text, "ω1");
    bpv_error *e = bpv_error_at(&src, (size_t)(p - text), strlen("ω1"), BPV_ERR_MODEL,
                                "unknown name '%s'", "ω1");
    assert_non_null(e);
    assert_int_equal(e->status, 2);
    assert_string_equal(e->message, "m.bp:2:13: error: unknown name 'ω1'\n"
                                    "    loss = (x * ω1) ^ 2\n"
                                    "                ^~\n");
    bpv_error_free(e);
    int line, col;
    bpv_source_locate(&src, src.len, &line, &col);
    assert_int_equal(line, 3);
    assert_int_equal(col, 1);
}

static void test_closest(void **state) {
    (void)state;
    const char *known[] = {"epochs", "lr", "batch", "optimizer", "momentum"};
    assert_string_equal(bpv_closest("epoch", known, 5), "epochs");
    assert_string_equal(bpv_closest("optimiser", known, 5), "optimizer");
    assert_string_equal(bpv_closest("l", known, 5), "lr");
    assert_null(bpv_closest("zzzzzz", known, 5));
}

static void test_step_set(void **state) {
    (void)state;
    bpv_error *err = NULL;
    bpv_step_set *s = bpv_step_set_parse("1-8/3,20,last", &err);
    assert_non_null(s);
    /* a step is kept when the next kept step from it is itself */
    assert_int_equal(bpv_step_set_next(s, 1, 100), 1);
    assert_int_equal(bpv_step_set_next(s, 4, 100), 4);
    assert_int_equal(bpv_step_set_next(s, 7, 100), 7);
    assert_int_equal(bpv_step_set_next(s, 8, 100), 8); /* a stepped range keeps its end */
    assert_int_equal(bpv_step_set_next(s, 9, 100), 20); /* 9 is not kept */
    assert_int_equal(bpv_step_set_next(s, 20, 100), 20);
    assert_int_equal(bpv_step_set_next(s, 100, 100), 100);
    assert_int_equal(bpv_step_set_next(s, 99, 100), 100); /* 99 is not kept */
    assert_int_equal(bpv_step_set_max(s, 100), 100);
    assert_int_equal(bpv_step_set_min(s, 100), 1);
    bpv_step_set_free(s);

    s = bpv_step_set_parse("all", &err);
    assert_int_equal(bpv_step_set_max(s, 800), 800);
    bpv_step_set_free(s);

    /* 1-800/100: 1, 101, ..., 701 and the end, 800 */
    s = bpv_step_set_parse("1-800/100", &err);
    long kept[16], nk = 0;
    for (long st = bpv_step_set_next(s, 1, 800); st <= 800 && nk < 16;
         st = bpv_step_set_next(s, st + 1, 800))
        kept[nk++] = st;
    assert_int_equal(nk, 9);
    assert_int_equal(kept[0], 1);
    assert_int_equal(kept[7], 701);
    assert_int_equal(kept[8], 800);
    assert_int_equal(bpv_step_set_count(s, 800), 9);
    assert_int_equal(bpv_step_set_max(s, 800), 800);
    bpv_step_set_free(s);
    /* an end on the stride is not counted twice; A-last/K ends on the last step */
    s = bpv_step_set_parse("1-801/100", &err);
    assert_int_equal(bpv_step_set_count(s, 900), 9);
    assert_int_equal(bpv_step_set_next(s, 702, 900), 801);
    assert_int_equal(bpv_step_set_next(s, 802, 900), LONG_MAX);
    bpv_step_set_free(s);
    s = bpv_step_set_parse("5-last/10", &err);
    assert_int_equal(bpv_step_set_next(s, 96, 100), 100);
    assert_int_equal(bpv_step_set_count(s, 100), 11);
    bpv_step_set_free(s);

    const char *bad[] = {"", "0", "3-1", "1,", "x", "1-", "1-5/0", "-3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(bpv_step_set_parse(bad[i], &err));
        assert_non_null(err);
        assert_int_equal(err->status, 2);
        bpv_error_free(err);
        err = NULL;
    }
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.' || strlen(e->d_name) > 2;
    closedir(d);
    return n;
}

static void test_atomic_write(void **state) {
    (void)state;
    char dir[] = "/tmp/bpv-atomic-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], sub[256];
    snprintf(path, sizeof path, "%s/out.svg", dir);
    bpv_error *err = NULL;
    assert_int_equal(bpv_file_write_atomic(path, "first", 5, &err), BPV_OK);
    assert_int_equal(bpv_file_write_atomic(path, "second", 6, &err), BPV_OK);
    char *got = tu_read_file(path, NULL);
    assert_string_equal(got, "second");
    free(got);
    /* a folder in the way: the rename fails, nothing is left behind */
    snprintf(sub, sizeof sub, "%s/taken", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/x", sub);
    assert_int_equal(tu_write_file(inner, "keep", 4), 0);
    assert_int_equal(bpv_file_write_atomic(sub, "data", 4, &err), BPV_ERR_RUNTIME);
    assert_non_null(strstr(err->message, "cannot write"));
    bpv_error_free(err);
    err = NULL;
    assert_int_equal(count_entries(dir), 2); /* out.svg and taken/ only */
    /* a missing folder */
    snprintf(path, sizeof path, "%s/missing/out.svg", dir);
    assert_int_equal(bpv_file_write_atomic(path, "x", 1, &err), BPV_ERR_RUNTIME);
    assert_non_null(strstr(err->message, "No such file or directory"));
    bpv_error_free(err);
    unlink(inner);
    rmdir(sub);
    snprintf(path, sizeof path, "%s/out.svg", dir);
    unlink(path);
    rmdir(dir);
}

static void test_json_string(void **state) {
    (void)state;
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_json_string(&b, "a\"b\\c\n<ω>\x01");
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u003cω>\\u0001\"");
    bpv_buf_free(&b);
}

/* The arena: every request zeroed and aligned for any type, requests of
 * 256 bytes or more (tensors) on a 64-byte cache line, in shared chunks and
 * in chunks of their own, and the bytes counted include the padding. */
static void test_arena(void **state) {
    (void)state;
    bpv_arena *a = bpv_arena_new();
    assert_non_null(a);
    static const size_t sizes[] = {1, 3, 16, 255, 256, 257, 1000, 4096, 40000, 100000, 7, 300};
    size_t asked = 0;
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            const size_t n = sizes[i] + (size_t)round;
            unsigned char *p = bpv_arena_alloc(a, n);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % (n >= 256 ? 64 : sizeof(max_align_t)), 0);
            for (size_t j = 0; j < n; j++) assert_int_equal(p[j], 0);
            memset(p, 0xab, n); /* no later request may overlap it */
            asked += n;
        }
    assert_true(bpv_arena_used(a) >= asked);
    bpv_arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repr_python),  cmocka_unit_test(test_repr_edges),
        cmocka_unit_test(test_repr_stream),  cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_error_caret),  cmocka_unit_test(test_closest),
        cmocka_unit_test(test_step_set),     cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_json_string),  cmocka_unit_test(test_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
