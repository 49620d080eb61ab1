/* torch.sum(x, dim), torch.mean(x, dim) and their backward against PyTorch
 * 1.13 (tests/torch/sumdim.ref, written by tests/torch/sumdim_reference.py),
 * bit for bit: float32 and float64, rank 1 to 4, every dim, lengths 1 to
 * 70000, inner sizes 1 to 100, outer sizes 1 to 6; over double storage
 * (float32 values rounded at every step) and over float32 storage. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csum.h"
#include "testutil.h"

/* One value of tests/torch/sumdim_reference.py's generator, advancing *st:
 * 53 bits of mantissa from one step, the scale from the next. */
static double lcg_value(uint64_t *st) {
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    const double mant = (double)(*st >> 11) / 9007199254740992.0 - 0.5;
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    return ldexp(mant, (int)((*st >> 20) & 15) - 7);
}

static bool same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void *xalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* One case of sumdim.ref. */
typedef struct sd_case {
    bpv_dtype dt;
    const char *name;
    unsigned long long seed;
    int kind, dim, rank;
    long long shape[4];
    int64_t outer, len, inner;
    double *x, *g;       /* inputs, values of dt */
    double *s, *m, *mg;  /* torch: sum, mean, mean's x.grad[o, 0, i] */
} sd_case;

static double *parse_values(char *line, char tag, int64_t n) {
    assert_true(line != NULL && line[0] == tag);
    double *v = xalloc((size_t)n * sizeof *v);
    char *p = line + 1;
    for (int64_t i = 0; i < n; i++) {
        char *end;
        v[i] = strtod(p, &end);
        assert_true(end != p);
        p = end;
    }
    while (*p == ' ') p++;
    assert_int_equal(*p, '\0');
    return v;
}

/* Reads the case at *pos (four lines), or returns false at the end. */
static bool next_case(char **pos, sd_case *c) {
    char *lines[4];
    for (int k = 0; k < 4; k++) {
        char *nl = strchr(*pos, '\n');
        if (!nl) {
            assert_int_equal(k, 0);
            return false;
        }
        *nl = '\0';
        lines[k] = *pos;
        *pos = nl + 1;
    }
    char dts[8];
    int used = 0;
    memset(c, 0, sizeof *c);
    assert_int_equal(sscanf(lines[0], "C %7s %llu %d %d %d%n", dts, &c->seed, &c->kind, &c->dim,
                            &c->rank, &used),
                     5);
    assert_true(c->rank >= 1 && c->rank <= 4 && c->dim >= 0 && c->dim < c->rank);
    c->dt = strcmp(dts, "f32") == 0 ? BPV_F32 : BPV_F64;
    c->name = c->dt == BPV_F32 ? "f32" : "f64";
    char *p = lines[0] + used;
    c->outer = c->inner = 1;
    for (int k = 0; k < c->rank; k++) {
        c->shape[k] = strtoll(p, &p, 10);
        if (k < c->dim) c->outer *= c->shape[k];
        else if (k == c->dim) c->len = c->shape[k];
        else c->inner *= c->shape[k];
    }
    const int64_t numel = c->outer * c->len * c->inner, nout = c->outer * c->inner;
    uint64_t st = c->seed;
    c->x = xalloc((size_t)numel * sizeof *c->x);
    c->g = xalloc((size_t)nout * sizeof *c->g);
    for (int64_t i = 0; i < numel; i++) c->x[i] = bpv_round(c->dt, lcg_value(&st));
    for (int64_t i = 0; i < nout; i++) c->g[i] = bpv_round(c->dt, lcg_value(&st));
    if (c->kind == 1)
        for (int64_t i = 0; i < numel; i++) c->x[i] = -0.0;
    c->s = parse_values(lines[1], 'S', nout);
    c->m = parse_values(lines[2], 'M', nout);
    c->mg = parse_values(lines[3], 'G', nout);
    return true;
}

static void free_case(sd_case *c) {
    free(c->x), free(c->g), free(c->s), free(c->m), free(c->mg);
}

static void expect(const sd_case *c, const char *what, int64_t i, double got, double want) {
    if (!same_bits(got, want))
        fail_msg("%s seed %llu [outer %lld, len %lld, inner %lld] %s [%lld]: %a, torch %a",
                 c->name, c->seed, (long long)c->outer, (long long)c->len, (long long)c->inner,
                 what, (long long)i, got, want);
}

/* Every number of one case, over double storage and (f32) float32 storage. */
static void check_case(const sd_case *c) {
    const int64_t O = c->outer, L = c->len, I = c->inner, numel = O * L * I, nout = O * I;
    double *out = xalloc((size_t)nout * sizeof *out);
    double *gx = xalloc((size_t)numel * sizeof *gx);
    bpv_csum_dim(c->dt, c->x, O, L, I, out);
    for (int64_t i = 0; i < nout; i++) expect(c, "sum", i, out[i], c->s[i]);
    bpv_cmean_dim(c->dt, c->x, O, L, I, out);
    for (int64_t i = 0; i < nout; i++) expect(c, "mean", i, out[i], c->m[i]);
    for (int64_t i = 0; i < nout; i++)
        expect(c, "mean_dim_grad", i, bpv_mean_dim_grad(c->dt, c->g[i], L), c->mg[i]);
    for (int pass = 0; pass < 2; pass++) { /* sum's backward, then mean's */
        for (int64_t i = 0; i < numel; i++) gx[i] = NAN;
        bpv_csum_dim_backward(c->dt, pass == 1, c->g, O, L, I, gx);
        for (int64_t o = 0; o < O; o++)
            for (int64_t j = 0; j < L; j++)
                for (int64_t i = 0; i < I; i++)
                    expect(c, pass ? "mean backward" : "sum backward", (o * L + j) * I + i,
                           gx[(o * L + j) * I + i], pass ? c->mg[o * I + i] : c->g[o * I + i]);
    }
    if (c->dt == BPV_F32) {
        float *xf = xalloc((size_t)numel * sizeof *xf), *gf = xalloc((size_t)nout * sizeof *gf);
        float *of = xalloc((size_t)nout * sizeof *of), *gxf = xalloc((size_t)numel * sizeof *gxf);
        for (int64_t i = 0; i < numel; i++) xf[i] = (float)c->x[i];
        for (int64_t i = 0; i < nout; i++) gf[i] = (float)c->g[i];
        bpv_csum_dim32(c->dt, xf, O, L, I, of);
        for (int64_t i = 0; i < nout; i++) expect(c, "sum (float32 storage)", i, of[i], c->s[i]);
        bpv_cmean_dim32(c->dt, xf, O, L, I, of);
        for (int64_t i = 0; i < nout; i++) expect(c, "mean (float32 storage)", i, of[i], c->m[i]);
        for (int pass = 0; pass < 2; pass++) {
            for (int64_t i = 0; i < numel; i++) gxf[i] = NAN;
            bpv_csum_dim_backward32(c->dt, pass == 1, gf, O, L, I, gxf);
            for (int64_t o = 0; o < O; o++)
                for (int64_t j = 0; j < L; j++)
                    for (int64_t i = 0; i < I; i++)
                        expect(c, pass ? "mean backward (float32)" : "sum backward (float32)",
                               (o * L + j) * I + i, gxf[(o * L + j) * I + i],
                               pass ? c->mg[o * I + i] : c->g[o * I + i]);
        }
        free(xf), free(gf), free(of), free(gxf);
    }
    free(out), free(gx);
}

static char *read_ref(void) {
    size_t len;
    char *text = tu_read_file(BPV_SOURCE_DIR "/tests/torch/sumdim.ref", &len);
    assert_non_null(text);
    return text;
}

static void test_sumdim_torch(void **state) {
    (void)state;
    char *text = read_ref(), *pos = text;
    int cases = 0, ranks[5] = {0}, f32 = 0;
    int64_t longest = 0;
    sd_case c;
    while (next_case(&pos, &c)) {
        check_case(&c);
        cases++, ranks[c.rank]++, f32 += c.dt == BPV_F32;
        if (c.len > longest) longest = c.len;
        free_case(&c);
    }
    /* the file is all there: every rank, both dtypes, the longest sums */
    assert_int_equal(cases, 460);
    assert_int_equal(f32, 230);
    for (int r = 1; r <= 4; r++) assert_true(ranks[r] > 0);
    assert_int_equal(longest, 70000);
    free(text);
}

/* The data tell orders apart: per layout torch's order takes (the
 * contiguous inner sum, columns below one vector, groups of four vectors,
 * single vectors, leftover columns), a plain running sum in the dtype gets
 * some sums wrong, and so do mean = sum * (1 / len) and mean's gradient
 * g * (1 / len). So an order that is not torch's, or a one-ulp slip, fails
 * test_sumdim_torch. */
static void test_sumdim_orders_matter(void **state) {
    (void)state;
    char *text = read_ref(), *pos = text;
    int64_t wrong[2][5] = {{0}}, recip_mean = 0, recip_grad = 0;
    sd_case c;
    while (next_case(&pos, &c)) {
        const int t = c.dt == BPV_F32;
        const int64_t V = t ? 8 : 4, I = c.inner, L = c.len;
        const double inv = bpv_round(c.dt, 1.0 / (double)L);
        for (int64_t o = 0; o < c.outer; o++)
            for (int64_t i = 0; i < I; i++) {
                double s = 0;
                for (int64_t j = 0; j < L; j++) s = bpv_round(c.dt, s + c.x[(o * L + j) * I + i]);
                const int64_t col = i;
                const int path = I == 1                 ? 0
                                 : I < V                ? 1
                                 : col < I / (4 * V) * 4 * V ? 2
                                 : col < I / V * V      ? 3
                                                        : 4;
                wrong[t][path] += !same_bits(s, c.s[o * I + i]);
                recip_mean += !same_bits(bpv_round(c.dt, c.s[o * I + i] * inv), c.m[o * I + i]);
                recip_grad += !same_bits(bpv_round(c.dt, c.g[o * I + i] * inv), c.mg[o * I + i]);
            }
        free_case(&c);
    }
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < 5; p++)
            if (wrong[t][p] < 5)
                fail_msg("%s layout %d: a running sum matches torch almost always (%lld differ)",
                         t ? "f32" : "f64", p, (long long)wrong[t][p]);
    assert_true(recip_mean > 100);
    assert_true(recip_grad > 100);
    free(text);
}

/* Empty dimensions: sums of nothing are +0.0, means of nothing NaN (torch:
 * 0 / 0), backward writes nothing; nothing read or written out of bounds. */
static void test_sumdim_empty(void **state) {
    (void)state;
    double x[1] = {1.0}, out[6], gx[1] = {7.0};
    float xf[1] = {1.0f}, of[6], gxf[1] = {7.0f};
    for (int dt = 0; dt < 2; dt++) {
        bpv_csum_dim((bpv_dtype)dt, x, 2, 0, 3, out);
        for (int i = 0; i < 6; i++) assert_true(same_bits(out[i], 0.0));
        bpv_cmean_dim((bpv_dtype)dt, x, 2, 0, 3, out);
        for (int i = 0; i < 6; i++) assert_true(isnan(out[i]));
        bpv_csum_dim((bpv_dtype)dt, x, 0, 5, 3, out);
        bpv_csum_dim((bpv_dtype)dt, x, 2, 5, 0, out);
        bpv_csum_dim_backward((bpv_dtype)dt, true, x, 2, 0, 3, gx);
        assert_true(gx[0] == 7.0);
    }
    bpv_csum_dim32(BPV_F32, xf, 3, 0, 2, of);
    for (int i = 0; i < 6; i++) assert_true(same_bits(of[i], 0.0));
    bpv_cmean_dim32(BPV_F32, xf, 3, 0, 2, of);
    for (int i = 0; i < 6; i++) assert_true(isnan(of[i]));
    bpv_csum_dim_backward32(BPV_F32, false, xf, 3, 0, 2, gxf);
    assert_true(gxf[0] == 7.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sumdim_torch),
        cmocka_unit_test(test_sumdim_orders_matter),
        cmocka_unit_test(test_sumdim_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
