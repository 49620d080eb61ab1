/* npy(): NumPy .npy files as data (src/npy.c). Every array of
 * tests/data/npy/ loads with its shape and exactly the values torch gives
 * it (expect.txt, from tests/torch/npy_cases.py) under f32, f64 and f32
 * with double storage; a model over .npy files trains as the same model
 * written with lists; and files npy() must refuse, written here, fail
 * with a located message (the generated ones are tests/errors/npy-*). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "testutil.h"

#define NPY_DIR BPV_TEST_DIR "/data/npy"

/* Loads `text` as a model in `dir` (npy() paths are relative to it). */
static bpv_model *load_in(const char *dir, const char *text, bpv_error **err) {
    char name[1024];
    snprintf(name, sizeof name, "%s/t.bp", dir);
    return bpv_model_load_string(name, text, strlen(text), err);
}

/* The message of a model in `dir` that must fail to load (free it). */
static char *load_error(const char *dir, const char *text) {
    bpv_error *err = NULL;
    bpv_model *m = load_in(dir, text, &err);
    if (m) {
        bpv_model_free(m);
        fail_msg("loaded without an error: %s", text);
    }
    assert_non_null(err);
    assert_int_equal(err->status, BPV_ERR_MODEL);
    char *msg = strdup(err->message);
    bpv_error_free(err);
    return msg;
}

#define EXPECT_ERROR(dir, text, want)                                                              \
    do {                                                                                           \
        char *msg_ = load_error(dir, text);                                                        \
        if (!strstr(msg_, want)) fail_msg("want '%s' in:\n%s", want, msg_);                        \
        free(msg_);                                                                                \
    } while (0)

/* ---- every array of tests/data/npy against expect.txt ---------------------- */

typedef struct expect_case {
    char name[64];
    int rank;
    int64_t dim[8];
    int64_t n;
    uint32_t *f32;
    uint64_t *f64;
} expect_case;

/* Reads one line's hex words into a new array; returns how many. */
static int64_t hex_words(char *line, const char *tag, bool wide, void **out) {
    size_t tl = strlen(tag);
    assert_int_equal(strncmp(line, tag, tl), 0);
    int64_t n = 0, cap = 16;
    void *a = malloc((size_t)cap * 8);
    char *p = line + tl, *end;
    for (;;) {
        unsigned long long v = strtoull(p, &end, 16);
        if (end == p) break;
        if (n == cap) a = realloc(a, (size_t)(cap *= 2) * 8);
        if (wide) ((uint64_t *)a)[n++] = v;
        else ((uint32_t *)a)[n++] = (uint32_t)v;
        p = end;
    }
    *out = a;
    return n;
}

/* Checks that data 0 of m holds case c: shape and bits. `store` is
 * 'f' (float32 storage), 'd' (double holding float32 values) or 'D'
 * (an f64 model). */
static void check_case(const bpv_model *m, const expect_case *c, char store) {
    assert_int_equal(m->ndata, 1);
    const bpv_data *d = &m->data[0];
    assert_int_equal(d->nsamples, c->dim[0]);
    assert_int_equal(d->sample.rank, c->rank - 1);
    int64_t n = d->nsamples;
    for (int k = 1; k < c->rank; k++) {
        assert_int_equal(d->sample.dim[k - 1], c->dim[k]);
        n *= c->dim[k];
    }
    assert_int_equal(n, c->n);
    for (int64_t i = 0; i < n; i++) {
        if (store == 'f') {
            assert_non_null(d->values32);
            uint32_t got;
            memcpy(&got, &d->values32[i], 4);
            if (got != c->f32[i])
                fail_msg("%s (f32) value %lld: %08x, want %08x", c->name, (long long)i, got,
                         c->f32[i]);
        } else {
            assert_non_null(d->values);
            uint64_t got, want;
            if (store == 'd') {
                float f;
                memcpy(&f, &c->f32[i], 4);
                double w = f;
                memcpy(&want, &w, 8);
            } else {
                want = c->f64[i];
            }
            memcpy(&got, &d->values[i], 8);
            if (got != want)
                fail_msg("%s (%s) value %lld: %016llx, want %016llx", c->name,
                         store == 'd' ? "f32, double storage" : "f64", (long long)i,
                         (unsigned long long)got, (unsigned long long)want);
        }
    }
}

static void load_case(const expect_case *c, const char *dtype, char store) {
    char text[256];
    snprintf(text, sizeof text, "%sdata x = npy(\"%s.npy\")\n", dtype, c->name);
    bpv_error *err = NULL;
    bpv_model *m = load_in(NPY_DIR, text, &err);
    if (!m) fail_msg("%s: %s", c->name, err ? err->message : "(no error)");
    check_case(m, c, store);
    bpv_model_free(m);
}

static void test_arrays(void **state) {
    (void)state;
    size_t len;
    char *text = tu_read_file(NPY_DIR "/expect.txt", &len);
    assert_non_null(text);
    int ncases = 0;
    bool seen_fortran = false, seen_v2 = false, seen_d5 = false;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        expect_case c = {0};
        char *p = line;
        assert_int_equal(strncmp(p, "case ", 5), 0);
        p += 5;
        int used = 0;
        assert_int_equal(sscanf(p, "%63s%n", c.name, &used), 1);
        p += used;
        for (char *end;; p = end) {
            long long v = strtoll(p, &end, 10);
            if (end == p) break;
            assert_true(c.rank < 8);
            c.dim[c.rank++] = v;
        }
        int64_t n1 = hex_words(strtok(NULL, "\n"), "f32", false, (void **)&c.f32);
        c.n = hex_words(strtok(NULL, "\n"), "f64", true, (void **)&c.f64);
        assert_int_equal(n1, c.n);
        load_case(&c, "", 'f');
        load_case(&c, "dtype f64\n", 'D');
        setenv("BPV_STORE_F64", "1", 1);
        load_case(&c, "", 'd');
        unsetenv("BPV_STORE_F64");
        seen_fortran |= strncmp(c.name, "fortran", 7) == 0;
        seen_v2 |= strcmp(c.name, "v2") == 0;
        seen_d5 |= strcmp(c.name, "d5") == 0 && c.rank == 5;
        free(c.f32);
        free(c.f64);
        ncases++;
    }
    free(text);
    assert_true(ncases >= 20);
    assert_true(seen_fortran && seen_v2 && seen_d5);
}

/* ---- the same model over .npy files and over lists ------------------------- */

static char *run_text(const char *dir, const char *text) {
    bpv_error *err = NULL;
    bpv_model *m = load_in(dir, text, &err);
    if (!m) fail_msg("load failed: %s", err ? err->message : "(no error)");
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    bpv_run_options o = {0};
    o.out = f;
    int rc = bpv_model_run(m, &o, &err);
    fclose(f);
    if (rc != BPV_OK) fail_msg("run failed: %s", err ? err->message : "");
    bpv_model_free(m);
    return out;
}

static void test_same_as_lists(void **state) {
    (void)state;
    static const char *const heads[] = {"", "dtype f64\n"};
    static const char *const trains[] = {"train epochs=2 lr=0.01\n",
                                         "train epochs=3 lr=0.01 batch=all\n",
                                         "train epochs=2 lr=0.01 batch=3 shuffle=true seed=4\n"};
    const char *body = "param w = zeros([3])\nparam b = 0\n"
                       "loss = %s\n";
    for (size_t h = 0; h < 2; h++)
        for (size_t t = 0; t < 3; t++) {
            const char *loss = t == 0 ? "(sum(x * w) + b - y)^2" : "mse(x @ w + b, y)";
            char npy[1024], list[1024], b[256];
            snprintf(b, sizeof b, body, loss);
            snprintf(npy, sizeof npy, "%sdata x = npy(\"x.npy\")\ndata y = npy(\"y.npy\")\n%s%s",
                     heads[h], b, trains[t]);
            snprintf(list, sizeof list,
                     "%sdata x = [[1, 2, 3], [0.5, -1, 2], [3, 1, 0.25], [2, 2, 2]]\n"
                     "data y = [6, 1, 4, 7]\n%s%s",
                     heads[h], b, trains[t]);
            char *a = run_text(NPY_DIR, npy), *c = run_text(NPY_DIR, list);
            assert_true(strlen(a) > 20);
            assert_string_equal(a, c);
            free(a);
            free(c);
        }
}

/* ---- files npy() refuses, written here --------------------------------------- */

/* Writes a version 1.0 .npy file with the given header text and `nbytes`
 * bytes after it: `payload`, or bytes of value 0x01 when it is NULL. */
static void write_npy_with(const char *name, const char *header, const void *payload,
                           size_t nbytes) {
    size_t hl = strlen(header);
    size_t pad = (64 - (10 + hl + 1) % 64) % 64, total = hl + pad + 1;
    char *buf = malloc(10 + total + nbytes);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(total & 0xff);
    buf[9] = (char)(total >> 8);
    memcpy(buf + 10, header, hl);
    memset(buf + 10 + hl, ' ', pad);
    buf[10 + hl + pad] = '\n';
    if (payload) memcpy(buf + 10 + total, payload, nbytes);
    else memset(buf + 10 + total, 1, nbytes);
    assert_int_equal(tu_write_file(tu_tmp_path(name), buf, 10 + total + nbytes), 0);
    free(buf);
}

static void write_npy(const char *name, const char *header, size_t nbytes) {
    write_npy_with(name, header, NULL, nbytes);
}

static void header_error(const char *header, size_t nbytes, const char *want) {
    write_npy("h.npy", header, nbytes);
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(\"h.npy\")\n", want);
}

static void test_headers(void **state) {
    (void)state;
    /* what loads: any spacing and order, a 1-tuple written without its comma */
    write_npy("ok.npy", "{'shape':(2,),'descr':'|i1','fortran_order':True}", 2);
    bpv_error *err = NULL;
    bpv_model *m = load_in(tu_tmpdir(), "data x = npy(\"ok.npy\")\n", &err);
    assert_non_null(m);
    assert_int_equal(m->data[0].nsamples, 2);
    assert_true(m->data[0].values32[0] == 1.0f && m->data[0].values32[1] == 1.0f);
    bpv_model_free(m);
    write_npy("ok.npy", "{\"descr\" : \"<u2\", \"fortran_order\" : False, \"shape\" : (3) }", 6);
    m = load_in(tu_tmpdir(), "data x = npy(\"ok.npy\")\n", &err);
    assert_non_null(m);
    assert_int_equal(m->data[0].nsamples, 3);
    assert_true(m->data[0].values32[2] == 257.0f);
    bpv_model_free(m);

    header_error("{'descr': '<f4', 'fortran_order': False}", 0, "no 'shape' key");
    header_error("{'descr': '<f4', 'shape': (1,)}", 4, "no 'fortran_order' key");
    header_error("{'fortran_order': False, 'shape': (1,)}", 4, "no 'descr' key");
    header_error("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4,
                 "the key 'descr' is given twice");
    header_error("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", 4,
                 "'fortran_order' must be True or False");
    header_error("{'descr': '<f4', 'fortran_order': False, 'shape': [1]}", 4,
                 "'shape' must be a tuple of whole numbers");
    header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", 4,
                 "'shape' must be a tuple of whole numbers");
    header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", 4,
                 "text after the closing '}'");
    header_error("{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}", 4,
                 "does not parse at byte");
    header_error("['descr', '<f4']", 4, "does not parse at byte 0: expected '{'");
    header_error("{'descr': '<f3', 'fortran_order': False, 'shape': (1,)}", 4,
                 "dtype '<f3' cannot be read; bpviz reads float16, float32, float64, signed "
                 "and unsigned integers and bool");
    header_error("{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (1,)}", 8,
                 "an array of dates or times ('<M8[ns]') cannot be read");
    header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0)}", 0,
                 "its samples hold no values (shape (4, 0))");
    header_error("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", 4,
                 "a dimension of 'shape' is too large");
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (1073741824, 1073741824, "
                 "1024)}",
                 4, "its shape (1073741824, 1073741824, 1024) promises more values than any file");
    /* a header bigger than the file, or than bpviz reads */
    assert_int_equal(tu_write_file(tu_tmp_path("h.npy"), "\x93NUMPY\x01\x00\xff\x7f{", 11), 0);
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(\"h.npy\")\n",
                 "h.npy is truncated: its header is 32767 bytes long but 1 bytes follow");
    assert_int_equal(tu_write_file(tu_tmp_path("h.npy"), "\x93NUMPY\x02\x00\x01\x00\x01\x00{", 13),
                     0);
    EXPECT_ERROR(
        tu_tmpdir(), "data x = npy(\"h.npy\")\n",
        "h.npy: its header is 65537 bytes long; a .npy header bpviz reads is at most 65536");
    assert_int_equal(tu_write_file(tu_tmp_path("h.npy"), "\x93NUMPY\x02\x00\x00\x00\x01\x01{", 13),
                     0);
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(\"h.npy\")\n",
                 "its header is 16842752 bytes long; a .npy header bpviz reads is at most 65536");
    assert_int_equal(tu_write_file(tu_tmp_path("h.npy"), "\x93NUMPY\x02", 7), 0);
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(\"h.npy\")\n",
                 "h.npy is truncated: it ends inside its .npy preamble");
    assert_int_equal(tu_write_file(tu_tmp_path("h.npy"), "\x93NUMPY\x02\x00\x05", 9), 0);
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(\"h.npy\")\n",
                 "h.npy is truncated: it ends inside its .npy preamble");
    assert_int_equal(tu_write_file(tu_tmp_path("h.npy"), "", 0), 0);
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(\"h.npy\")\n", "h.npy is not a NumPy .npy file");
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(\"missing.npy\")\n", "cannot read '");
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(\"missing.npy\")\n", "missing.npy': No such file");
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(x)\n", "npy() needs a file name in quotes");
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(file=\"a.npy\")\n",
                 "npy() takes only a file name: npy(\"file.npy\")");
    EXPECT_ERROR(tu_tmpdir(), "data x = npy()\n", "npy() takes one argument, a file name");
    EXPECT_ERROR(tu_tmpdir(), "data npy = [1]\n",
                 "'npy' is a built-in function; choose another name");
    /* f64 takes what f32 cannot hold; f32 refuses it (as csv() does) */
    const double big[2] = {1.0, -1e39};
    write_npy_with("h.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", big,
                   sizeof big);
    m = load_in(tu_tmpdir(), "dtype f64\ndata x = npy(\"h.npy\")\n", &err);
    assert_non_null(m);
    assert_true(m->data[0].values[1] == -1e39);
    bpv_model_free(m);
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(\"h.npy\")\n",
                 "h.npy: value 1 (counting from 0, in the file's order) is -1e+39, out of range "
                 "for f32; use `dtype f64`");
    unlink(tu_tmp_path("h.npy")), unlink(tu_tmp_path("ok.npy"));
}

/* The limits, and files that are not regular files: through the CLI, so
 * that each run reads the limits from its own environment. */
static void test_limits_and_files(void **state) {
    (void)state;
    const char *model = "data x = npy(\"in.npy\")\nparam w = 1\nloss = sum(x * w)\n"
                        "train epochs=1\n";
    char *bp = tu_tmp_path("lim.bp");
    assert_int_equal(tu_write_file(bp, model, strlen(model)), 0);
    char *err = NULL;
    /* 12 values against a limit of 5 */
    assert_int_equal(tu_sh("cp '%s/x.npy' '%s'", NPY_DIR, tu_tmp_path("in.npy")), 0);
    setenv("BPV_MAX_TENSOR_ELEMS", "5", 1);
    assert_int_equal(tu_bpviz(NULL, &err, "run", bp, NULL), 2);
    unsetenv("BPV_MAX_TENSOR_ELEMS");
    assert_non_null(strstr(err, "lim.bp:1:14: error: in.npy holds 12 values (shape (4, 3)); "
                                "the limit is 5 (BPV_MAX_TENSOR_ELEMS)"));
    free(err);
    /* 2 MiB of float32 against a memory budget of 1 MiB */
    write_npy("in.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (524288,), }",
              (size_t)2 << 20);
    setenv("BPV_MEMORY", "1M", 1);
    assert_int_equal(tu_bpviz(NULL, &err, "run", bp, NULL), 2);
    unsetenv("BPV_MEMORY");
    assert_non_null(strstr(err, "lim.bp:1:14: error: the model with the values of "));
    assert_non_null(strstr(err, "in.npy' needs 2.1 MiB, more than the memory budget of 1 MiB; "
                                "make its tensors or batches smaller, or raise it with "
                                "--memory 4M (or BPV_MEMORY=4M)"));
    free(err);
    /* the retired limit is named, not silently ignored */
    setenv("BPV_MAX_NPY_MB", "1", 1);
    assert_int_equal(tu_bpviz(NULL, &err, "run", bp, NULL), 2);
    unsetenv("BPV_MAX_NPY_MB");
    assert_non_null(strstr(err, "BPV_MAX_NPY_MB is no longer read"));
    free(err);
    setenv("BPV_MEMORY", "lots", 1);
    assert_int_equal(tu_bpviz(NULL, &err, "run", bp, NULL), 2);
    unsetenv("BPV_MEMORY");
    assert_non_null(strstr(err, "BPV_MEMORY must be a size of at least 1M, like 512M or 16G, not "
                                "'lots'"));
    free(err);
    /* within the limits it trains */
    assert_int_equal(tu_bpviz(NULL, &err, "run", bp, NULL), 0);
    free(err);
    /* a FIFO nobody writes: an error at once, not a hang */
    unlink(tu_tmp_path("in.npy"));
    assert_int_equal(tu_sh("mkfifo '%s'", tu_tmp_path("in.npy")), 0);
    assert_int_equal(tu_sh("timeout 10 '%s' run '%s' 2>/dev/null; test $? -eq 2", BPV_CLI_PATH, bp),
                     0);
    assert_int_equal(tu_bpviz(NULL, &err, "run", bp, NULL), 2);
    assert_non_null(strstr(err, "in.npy' is not a regular file (a pipe or a device)"));
    free(err);
    unlink(tu_tmp_path("in.npy"));
    /* a device */
    EXPECT_ERROR(tu_tmpdir(), "data x = npy(\"/dev/null\")\n",
                 "'/dev/null' is not a regular file (a pipe or a device)");
    /* a folder */
    assert_int_equal(mkdir(tu_tmp_path("in.npy"), 0700), 0);
    assert_int_equal(tu_bpviz(NULL, &err, "run", bp, NULL), 2);
    assert_non_null(strstr(err, "in.npy' is a folder, not a .npy file"));
    free(err);
    rmdir(tu_tmp_path("in.npy"));
    unlink(bp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_same_as_lists),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_limits_and_files),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
