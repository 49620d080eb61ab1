/* The convolution and pooling kernels (src/conv.c) against torch 1.13
 * (tests/torch/conv_reference.py writes tests/torch/conv.ref), bit for
 * bit: every element of y, gx, gw and gb for the float32 functions, for the
 * double-storage ones computing in float32 (the same bits) and for float64.
 * Then checks that the comparison can fail: a one-ulp change of any result
 * is caught, and plausible other summation orders give other bits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conv.h"
#include "testutil.h"

enum { MAXA = 9 };
typedef struct arr {
    char name[4];
    int64_t n;
    double *v;
} arr;

typedef struct refcase {
    char head[128];   /* the header line, for messages */
    char kind[8];     /* conv, maxpool, avgpool */
    bpv_dtype dt;
    bool bias;
    bpv_conv2d_dims cd;
    bpv_pool2d_dims pd;
    arr a[MAXA];
    int na;
} refcase;

static const arr *get(const refcase *c, const char *name) {
    for (int i = 0; i < c->na; i++)
        if (strcmp(c->a[i].name, name) == 0) return &c->a[i];
    return NULL;
}

static const double *vals(const refcase *c, const char *name) {
    const arr *a = get(c, name);
    return a ? a->v : NULL;
}

/* Reads every case of conv.ref. */
static refcase *read_ref(int *count) {
    size_t len;
    char *text = tu_read_file(BPV_SOURCE_DIR "/tests/torch/conv.ref", &len);
    assert_non_null(text);
    int cap = 16, n = 0;
    refcase *cs = calloc((size_t)cap, sizeof *cs);
    assert_non_null(cs);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char word[8], dts[8];
        if (sscanf(line, "%7s", word) != 1) continue;
        if (!strcmp(word, "conv") || !strcmp(word, "maxpool") || !strcmp(word, "avgpool")) {
            if (n == cap) {
                cap *= 2;
                cs = realloc(cs, (size_t)cap * sizeof *cs);
                assert_non_null(cs);
            }
            refcase *c = &cs[n++];
            memset(c, 0, sizeof *c);
            snprintf(c->head, sizeof c->head, "%s", line);
            snprintf(c->kind, sizeof c->kind, "%s", word);
            long long v[12];
            int unb;
            if (!strcmp(word, "conv")) {
                assert_int_equal(sscanf(line, "%*s %7s %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %d",
                                        dts, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                                        &v[7], &v[8], &v[9], &unb),
                                 12);
                c->cd = (bpv_conv2d_dims){.n = v[0], .c = v[1], .h = v[2], .w = v[3], .o = v[4],
                                          .kh = v[5], .kw = v[6], .stride = v[7], .pad = v[8]};
                assert_true(bpv_conv2d_dims_fill(&c->cd));
                c->bias = v[9] != 0;
            } else {
                assert_int_equal(sscanf(line, "%*s %7s %lld %lld %lld %lld %lld %d %lld %lld", dts,
                                        &v[0], &v[1], &v[2], &v[3], &v[4], &unb, &v[5], &v[6]),
                                 9);
                c->pd = (bpv_pool2d_dims){.n = v[0], .c = v[1], .h = v[2], .w = v[3], .k = v[4],
                                          .stride = v[5], .pad = v[6],
                                          .oh = (v[2] + 2 * v[6] - v[4]) / v[5] + 1,
                                          .ow = (v[3] + 2 * v[6] - v[4]) / v[5] + 1};
            }
            c->dt = strcmp(dts, "f32") == 0 ? BPV_F32 : BPV_F64;
            continue;
        }
        assert_true(n > 0);
        refcase *c = &cs[n - 1];
        assert_true(c->na < MAXA);
        arr *a = &c->a[c->na++];
        long long cnt;
        int used;
        assert_int_equal(sscanf(line, "%3s %lld%n", a->name, &cnt, &used), 2);
        a->n = cnt;
        a->v = malloc((size_t)(cnt ? cnt : 1) * sizeof *a->v);
        assert_non_null(a->v);
        char *p = line + used;
        for (long long i = 0; i < cnt; i++) {
            char *end;
            a->v[i] = strtod(p, &end);
            assert_true(end != p);
            p = end;
        }
    }
    free(text);
    *count = n;
    return cs;
}

static void free_ref(refcase *cs, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < cs[i].na; j++) free(cs[i].a[j].v);
    free(cs);
}

static bool same_bits(double a, double b) {
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* The index of the first element of got that differs from want in its
 * bits (any NaN matching any NaN), or -1. */
static int64_t first_diff(const double *want, const double *got, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!same_bits(want[i], got[i])) return i;
    return -1;
}

static void check(const refcase *c, const char *how, const char *name, const double *got) {
    const arr *a = get(c, name);
    assert_non_null(a);
    const int64_t i = first_diff(a->v, got, a->n);
    if (i >= 0)
        fail_msg("%s, %s: %s[%lld] is %a, torch %a", c->head, how, name, (long long)i, got[i],
                 a->v[i]);
}

static float *to32(const double *v, int64_t n) {
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    assert_non_null(f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)v[i];
    return f;
}

static double *to64(const float *v, int64_t n) {
    double *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    assert_non_null(d);
    for (int64_t i = 0; i < n; i++) d[i] = v[i];
    return d;
}

/* An output buffer full of NaN: a kernel that adds to it, or leaves an
 * element unwritten, shows. */
static void *garbage(int64_t n, size_t size) {
    void *p = malloc((size_t)(n ? n : 1) * size);
    assert_non_null(p);
    memset(p, 0xff, (size_t)(n ? n : 1) * size);
    return p;
}

static int64_t xn(const bpv_conv2d_dims *d) { return d->n * d->c * d->h * d->w; }
static int64_t yn(const bpv_conv2d_dims *d) { return d->n * d->o * d->oh * d->ow; }
static int64_t wn(const bpv_conv2d_dims *d) { return d->o * d->c * d->kh * d->kw; }

/* The float32 functions; results widened to double. */
static void run_conv32(const refcase *c, double **y, double **gx, double **gw, double **gb) {
    const bpv_conv2d_dims *d = &c->cd;
    float *x = to32(vals(c, "x"), xn(d)), *w = to32(vals(c, "w"), wn(d));
    float *gy = to32(vals(c, "gy"), yn(d));
    float *b = c->bias ? to32(vals(c, "b"), d->o) : NULL;
    float *work = garbage((int64_t)bpv_conv2d_work(d), sizeof(float));
    float *yf = garbage(yn(d), 4), *gxf = garbage(xn(d), 4), *gwf = garbage(wn(d), 4);
    float *gbf = garbage(d->o, 4);
    bpv_conv2d_fwd32(d, x, w, b, yf, work);
    bpv_conv2d_bwd_x32(d, gy, w, gxf, work);
    bpv_conv2d_bwd_w32(d, gy, x, gwf, work);
    bpv_conv2d_bwd_b32(d, gy, gbf);
    *y = to64(yf, yn(d)), *gx = to64(gxf, xn(d)), *gw = to64(gwf, wn(d));
    *gb = to64(gbf, d->o);
    free(x), free(w), free(gy), free(b), free(work), free(yf), free(gxf), free(gwf), free(gbf);
}

/* The double-storage functions in dt. */
static void run_conv64(const refcase *c, bpv_dtype dt, double **y, double **gx, double **gw,
                       double **gb) {
    const bpv_conv2d_dims *d = &c->cd;
    double *work = garbage((int64_t)bpv_conv2d_work(d), sizeof(double));
    *y = garbage(yn(d), 8), *gx = garbage(xn(d), 8), *gw = garbage(wn(d), 8);
    *gb = garbage(d->o, 8);
    bpv_conv2d_fwd64(dt, d, vals(c, "x"), vals(c, "w"), c->bias ? vals(c, "b") : NULL, *y, work);
    bpv_conv2d_bwd_x64(dt, d, vals(c, "gy"), vals(c, "w"), *gx, work);
    bpv_conv2d_bwd_w64(dt, d, vals(c, "gy"), vals(c, "x"), *gw, work);
    bpv_conv2d_bwd_b64(dt, d, vals(c, "gy"), *gb);
    free(work);
}

static void check_conv(const refcase *c, const char *how, double *y, double *gx, double *gw,
                       double *gb) {
    check(c, how, "y", y);
    check(c, how, "gx", gx);
    check(c, how, "gw", gw);
    if (c->bias) check(c, how, "gb", gb);
    free(y), free(gx), free(gw), free(gb);
}

static void run_pool32(const refcase *c, double **y, double **gx) {
    const bpv_pool2d_dims *d = &c->pd;
    const int64_t nx = d->n * d->c * d->h * d->w, ny = d->n * d->c * d->oh * d->ow;
    float *x = to32(vals(c, "x"), nx), *gy = to32(vals(c, "gy"), ny);
    float *yf = garbage(ny, 4), *gxf = garbage(nx, 4);
    if (c->kind[0] == 'm') {
        bpv_maxpool2d_fwd32(d, x, yf);
        bpv_maxpool2d_bwd32(d, x, gy, gxf);
    } else {
        bpv_avgpool2d_fwd32(d, x, yf);
        bpv_avgpool2d_bwd32(d, gy, gxf);
    }
    *y = to64(yf, ny), *gx = to64(gxf, nx);
    free(x), free(gy), free(yf), free(gxf);
}

static void run_pool64(const refcase *c, bpv_dtype dt, double **y, double **gx) {
    const bpv_pool2d_dims *d = &c->pd;
    const int64_t nx = d->n * d->c * d->h * d->w, ny = d->n * d->c * d->oh * d->ow;
    *y = garbage(ny, 8), *gx = garbage(nx, 8);
    if (c->kind[0] == 'm') {
        bpv_maxpool2d_fwd64(dt, d, vals(c, "x"), *y);
        bpv_maxpool2d_bwd64(dt, d, vals(c, "x"), vals(c, "gy"), *gx);
    } else {
        bpv_avgpool2d_fwd64(dt, d, vals(c, "x"), *y);
        bpv_avgpool2d_bwd64(dt, d, vals(c, "gy"), *gx);
    }
}

static void check_pool(const refcase *c, const char *how, double *y, double *gx) {
    check(c, how, "y", y);
    check(c, how, "gx", gx);
    free(y), free(gx);
}

/* Every case, every function, bit for bit. */
static void test_conv_torch(void **state) {
    (void)state;
    int n;
    refcase *cs = read_ref(&n);
    assert_true(n >= 50);
    int convs = 0, pools = 0;
    for (int i = 0; i < n; i++) {
        const refcase *c = &cs[i];
        double *y, *gx, *gw, *gb;
        if (!strcmp(c->kind, "conv")) {
            convs++;
            if (c->dt == BPV_F32) {
                run_conv32(c, &y, &gx, &gw, &gb);
                check_conv(c, "float32", y, gx, gw, gb);
                run_conv64(c, BPV_F32, &y, &gx, &gw, &gb);
                check_conv(c, "double storage in f32", y, gx, gw, gb);
            } else {
                run_conv64(c, BPV_F64, &y, &gx, &gw, &gb);
                check_conv(c, "float64", y, gx, gw, gb);
            }
        } else {
            pools++;
            if (c->dt == BPV_F32) {
                run_pool32(c, &y, &gx);
                check_pool(c, "float32", y, gx);
                run_pool64(c, BPV_F32, &y, &gx);
                check_pool(c, "double storage in f32", y, gx);
            } else {
                run_pool64(c, BPV_F64, &y, &gx);
                check_pool(c, "float64", y, gx);
            }
        }
    }
    print_message("%d conv and %d pool cases agree with torch\n", convs, pools);
    free_ref(cs, n);
}

/* The comparison catches a one-ulp change of any element of any result: for
 * every case and array, torch's value moved by one ulp (of float32 or
 * float64) in turn at the first, a middle and the last element. */
static void test_one_ulp_caught(void **state) {
    (void)state;
    int n;
    refcase *cs = read_ref(&n);
    int caught = 0;
    for (int i = 0; i < n; i++) {
        const refcase *c = &cs[i];
        for (int k = 0; k < c->na; k++) {
            const arr *a = &c->a[k];
            if (!strcmp(a->name, "x") || !strcmp(a->name, "w") || !strcmp(a->name, "b") ||
                !strcmp(a->name, "gy"))
                continue; /* inputs */
            double *got = malloc((size_t)a->n * sizeof *got);
            assert_non_null(got);
            const int64_t at[3] = {0, a->n / 2, a->n - 1};
            for (int j = 0; j < 3; j++) {
                memcpy(got, a->v, (size_t)a->n * sizeof *got);
                assert_int_equal(first_diff(a->v, got, a->n), -1);
                const double v = got[at[j]];
                if (isnan(v) || isinf(v)) continue;
                got[at[j]] = c->dt == BPV_F32 ? (double)nextafterf((float)v, INFINITY)
                                              : nextafter(v, INFINITY);
                assert_int_equal(first_diff(a->v, got, a->n), at[j]);
                caught++;
            }
            free(got);
        }
    }
    assert_true(caught > 300);
    free_ref(cs, n);
}

/* The data tell summation orders apart: on the LeNet-sized cases, y summed
 * in double and rounded once, gw's batch summed as one long dot product,
 * and gb summed plainly in order each miss torch's bits somewhere. */
static void test_other_orders_differ(void **state) {
    (void)state;
    int n;
    refcase *cs = read_ref(&n);
    int tried = 0;
    for (int i = 0; i < n; i++) {
        const refcase *c = &cs[i];
        if (strcmp(c->kind, "conv") || c->dt != BPV_F32 || c->cd.kh != 5 || c->cd.n < 2 ||
            !c->bias)
            continue;
        const bpv_conv2d_dims *d = &c->cd;
        const int64_t K = d->c * d->kh * d->kw, P = d->oh * d->ow;
        const double *x = vals(c, "x"), *w = vals(c, "w"), *b = vals(c, "b"), *gy = vals(c, "gy");
        double *y = malloc((size_t)yn(d) * sizeof *y), *gw = calloc((size_t)wn(d), sizeof *gw);
        double *gb = calloc((size_t)d->o, sizeof *gb);
        assert_non_null(y), assert_non_null(gw), assert_non_null(gb);
        for (int64_t s = 0; s < d->n; s++)
            for (int64_t o = 0; o < d->o; o++)
                for (int64_t p = 0; p < P; p++) {
                    const int64_t oy = p / d->ow, ox = p % d->ow;
                    double acc = b[o]; /* exact-ish in double, rounded once */
                    for (int64_t l = 0; l < K; l++) {
                        const int64_t ci = l / (d->kh * d->kw), ki = l / d->kw % d->kh,
                                      kj = l % d->kw;
                        const int64_t iy = oy * d->stride - d->pad + ki,
                                      ix = ox * d->stride - d->pad + kj;
                        if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                        acc += w[o * K + l] * x[((s * d->c + ci) * d->h + iy) * d->w + ix];
                    }
                    y[(s * d->o + o) * P + p] = (float)acc;
                }
        /* gw: one float32 dot product over (sample, position) */
        for (int64_t o = 0; o < d->o; o++)
            for (int64_t l = 0; l < K; l++) {
                const int64_t ci = l / (d->kh * d->kw), ki = l / d->kw % d->kh, kj = l % d->kw;
                float acc = 0.0f;
                for (int64_t s = 0; s < d->n; s++)
                    for (int64_t p = 0; p < P; p++) {
                        const int64_t iy = p / d->ow * d->stride - d->pad + ki,
                                      ix = p % d->ow * d->stride - d->pad + kj;
                        if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                        acc += (float)gy[(s * d->o + o) * P + p] *
                               (float)x[((s * d->c + ci) * d->h + iy) * d->w + ix];
                    }
                gw[o * K + l] = acc;
            }
        for (int64_t o = 0; o < d->o; o++) {
            float acc = 0.0f;
            for (int64_t s = 0; s < d->n; s++)
                for (int64_t p = 0; p < P; p++) acc += (float)gy[(s * d->o + o) * P + p];
            gb[o] = acc;
        }
        assert_true(first_diff(vals(c, "y"), y, yn(d)) >= 0);
        assert_true(first_diff(vals(c, "gw"), gw, wn(d)) >= 0);
        assert_true(first_diff(vals(c, "gb"), gb, d->o) >= 0);
        tried++;
        free(y), free(gw), free(gb);
    }
    assert_true(tried >= 2);
    free_ref(cs, n);
}

/* The float32 bias gradient's vectorised cascade against csum.c's
 * term-by-term one (the 64 function in f32), on planes of every length
 * through the cascade's first levels and its leftover vectors and tail, one
 * and three channels, values of mixed magnitude. */
static void test_bias_sum_lengths(void **state) {
    (void)state;
    uint64_t st = 99;
    for (int64_t len = 1; len < 9000; len += len < 600 ? 1 : 97) {
        for (int64_t o = 1; o <= 3; o += 2) {
            bpv_conv2d_dims d = {.n = 2, .c = 1, .h = len, .w = 1, .o = o, .kh = 1, .kw = 1,
                                 .stride = 1};
            assert_true(bpv_conv2d_dims_fill(&d));
            const int64_t ny = yn(&d);
            float *gy = malloc((size_t)ny * sizeof *gy), gb[3];
            double *gyd = malloc((size_t)ny * sizeof *gyd), gbd[3];
            assert_non_null(gy), assert_non_null(gyd);
            for (int64_t i = 0; i < ny; i++) {
                st = st * 6364136223846793005ull + 1442695040888963407ull;
                gy[i] = ldexpf((float)(st >> 40) / (float)(1 << 24) - 0.5f, (int)((st >> 20) & 15) - 7);
                gyd[i] = gy[i];
            }
            bpv_conv2d_bwd_b32(&d, gy, gb);
            bpv_conv2d_bwd_b64(BPV_F32, &d, gyd, gbd);
            for (int64_t k = 0; k < o; k++)
                if (!same_bits(gb[k], gbd[k]))
                    fail_msg("plane of %lld, o=%lld: %a, csum %a", (long long)len, (long long)o,
                             (double)gb[k], gbd[k]);
            free(gy), free(gyd);
        }
    }
}

/* Dimensions: output sizes, and sizes a convolution cannot take. */
static void test_dims(void **state) {
    (void)state;
    bpv_conv2d_dims d = {.n = 1, .c = 1, .h = 28, .w = 28, .o = 10, .kh = 5, .kw = 5, .stride = 1};
    assert_true(bpv_conv2d_dims_fill(&d));
    assert_int_equal(d.oh, 24), assert_int_equal(d.ow, 24);
    d.stride = 3, d.pad = 2, d.kw = 2;
    assert_true(bpv_conv2d_dims_fill(&d));
    assert_int_equal(d.oh, 10), assert_int_equal(d.ow, 11);
    bpv_conv2d_dims bad = {.n = 1, .c = 1, .h = 3, .w = 3, .o = 1, .kh = 5, .kw = 5, .stride = 1};
    assert_false(bpv_conv2d_dims_fill(&bad));
    bad.pad = 1;
    assert_true(bpv_conv2d_dims_fill(&bad));
    assert_int_equal(bad.oh, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_torch),
        cmocka_unit_test(test_one_ulp_caught),
        cmocka_unit_test(test_other_orders_differ),
        cmocka_unit_test(test_bias_sum_lengths),
        cmocka_unit_test(test_dims),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
