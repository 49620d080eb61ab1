/* The long comparison of bpv_fmt_repr_s (Schubfach, src/base.c) with the
 * printf/strtod bisection it replaced (repr_ref.h), run by hand, not by
 * ctest (hours of reference time for the full float32 range):
 *
 *   cmake --build build --target repr_exhaustive
 *   build/tests/repr_exhaustive f32 FIRST STRIDE COUNT   float32 bit patterns, widened
 *   build/tests/repr_exhaustive rand SEED COUNT          random finite 64-bit patterns
 *   build/tests/repr_exhaustive edges                    powers, neighbours, subnormals,
 *                                                        integers, layout switch points
 *   build/tests/repr_exhaustive python FILE              "hexbits repr" lines (Python's)
 *   build/tests/repr_exhaustive bench                    ns a number, new and old
 *
 * Prints the numbers checked and the mismatches (each one, up to 20). */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"
#include "repr_ref.h"

static uint64_t checked, mismatches;

static double from_bits(uint64_t b) {
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t to_bits(double d) {
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static void check(double v) {
    char a[40], b[40];
    bpv_fmt_repr_s(a, v);
    repr_ref(b, v);
    checked++;
    if (strcmp(a, b) != 0 && ++mismatches <= 20)
        printf("MISMATCH %016" PRIx64 " new %s old %s\n", to_bits(v), a, b);
}

/* v and its n neighbours each side, both signs */
static void check_around(double v, int n) {
    if (!isfinite(v)) return;
    double up = v, down = v;
    check(v);
    check(-v);
    for (int i = 0; i < n; i++) {
        up = nextafter(up, INFINITY);
        down = nextafter(down, -INFINITY);
        check(up);
        check(down);
        check(-up);
        check(-down);
    }
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* CPU time: the machine may be shared while this runs */
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void edges(void) {
    /* the fast log formulas against exact ones over every exponent */
    for (int q = -1074; q <= 971; q++) {
        long double l = (long double)q * 0.301029995663981195213738894724493027L;
        long double l34 = l - 0.124938736608299953132449886193870744L; /* log10(4/3) */
        if ((q * 315653) >> 20 != (int)floorl(l) || (q * 315653 - 131237) >> 20 != (int)floorl(l34)) {
            printf("MISMATCH k formula at q=%d\n", q);
            mismatches++;
        }
    }
    check_around(DBL_MAX, 1000);
    check_around(DBL_MIN, 1000);
    check_around(DBL_TRUE_MIN, 1000);
    for (int e = -1074; e <= 1023; e++) check_around(ldexp(1.0, e), 64);
    char t[32];
    for (int e = -325; e <= 308; e++) {
        snprintf(t, sizeof t, "1e%d", e);
        check_around(strtod(t, NULL), 64);
        for (int m = 1; m <= 9; m++) {
            snprintf(t, sizeof t, "%de%d", m, e);
            check_around(strtod(t, NULL), 4);
        }
    }
    /* layout switch points: |v| near 1e16 and 1e-4 (and 1e-5, 1e15) */
    check_around(1e16, 100000);
    check_around(1e-4, 100000);
    check_around(1e15, 10000);
    check_around(1e-5, 10000);
    check_around(9999999999999998.0, 10000);
    /* subnormals: the smallest ones all, then random ones */
    for (uint64_t f = 1; f <= 2000000; f++) check(from_bits(f));
    uint64_t s = 7;
    for (int i = 0; i < 5000000; i++) check(from_bits(splitmix(&s) & ((UINT64_C(1) << 52) - 1)));
    /* integers: all up to 2e6, then random ones up to 2^53 */
    for (int i = 1; i <= 2000000; i++) check((double)i);
    for (int i = 0; i < 10000000; i++) check((double)(splitmix(&s) >> 11));
    check_around(9007199254740992.0, 1000);
    /* short decimals, d digits times 10^e, as strtod reads them */
    for (int i = 0; i < 10000000; i++) {
        uint64_t r = splitmix(&s);
        int d = 1 + (int)(r % 17);
        uint64_t m = (r >> 8) % (uint64_t)pow(10.0, d);
        int e = (int)((r >> 60) | ((r >> 4) & 0xff) << 4) % 660 - 340;
        snprintf(t, sizeof t, "%" PRIu64 "e%d", m, e);
        check(strtod(t, NULL));
    }
}

static int python(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    char line[128], want[64];
    uint64_t bits;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%" SCNx64 " %63s", &bits, want) != 2) continue;
        char a[40], b[40];
        double v = from_bits(bits);
        bpv_fmt_repr_s(a, v);
        repr_ref(b, v);
        checked++;
        if (strcmp(a, want) != 0 && ++mismatches <= 20)
            printf("MISMATCH %016" PRIx64 " python %s new %s\n", bits, want, a);
        if (strcmp(b, want) != 0) printf("OLD DIFFERS %016" PRIx64 " python %s old %s\n", bits, want, b);
    }
    fclose(f);
    return 0;
}

static void bench(void) {
    enum { N = 10000000 };
    double *f32 = malloc(N * sizeof *f32), *r64 = malloc(N * sizeof *r64);
    uint64_t s = 42;
    for (int i = 0; i < N; i++) {
        uint32_t b;
        float x;
        do {
            b = (uint32_t)splitmix(&s);
            memcpy(&x, &b, sizeof x);
        } while (!isfinite(x));
        f32[i] = x;
        uint64_t d;
        do d = splitmix(&s);
        while (!isfinite(from_bits(d)));
        r64[i] = from_bits(d);
    }
    char buf[40];
    size_t sink = 0;
    const char *names[2] = {"float32 widened", "random doubles"};
    double *sets[2] = {f32, r64};
    for (int k = 0; k < 2; k++) {
        double best = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            for (int i = 0; i < N; i++) sink += strlen(bpv_fmt_repr_s(buf, sets[k][i]));
            double ns = (now() - t0) * 1e9 / N;
            if (ns < best) best = ns;
        }
        int n_old = N / 20;
        double t0 = now();
        for (int i = 0; i < n_old; i++) sink += strlen(repr_ref(buf, sets[k][i]));
        double ns_old = (now() - t0) * 1e9 / n_old;
        printf("%s: new %.1f ns a number (best of 3 x 10M), old %.0f ns (500k)\n", names[k], best,
               ns_old);
    }
    printf("(%zu)\n", sink);
    free(f32);
    free(r64);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    double t0 = now();
    if (!strcmp(argv[1], "f32") && argc == 5) {
        uint64_t first = strtoull(argv[2], NULL, 0), stride = strtoull(argv[3], NULL, 0),
                 count = strtoull(argv[4], NULL, 0);
        for (uint64_t i = 0; i < count; i++) {
            uint32_t b = (uint32_t)(first + i * stride);
            float x;
            memcpy(&x, &b, sizeof x);
            check((double)x);
            if ((i & 0x3ffffff) == 0x3ffffff)
                fprintf(stderr, "f32 %" PRIu64 "/%" PRIu64 " %.0fs CPU\n", i + 1, count, now() - t0);
        }
    } else if (!strcmp(argv[1], "rand") && argc == 4) {
        uint64_t s = strtoull(argv[2], NULL, 0), count = strtoull(argv[3], NULL, 0);
        for (uint64_t i = 0; i < count;) {
            double v = from_bits(splitmix(&s));
            if (!isfinite(v)) continue;
            check(v);
            i++;
            if ((i & 0x3ffffff) == 0) fprintf(stderr, "rand %" PRIu64 " %.0fs\n", i, now() - t0);
        }
    } else if (!strcmp(argv[1], "edges")) {
        edges();
    } else if (!strcmp(argv[1], "python") && argc == 3) {
        if (python(argv[2])) return 1;
    } else if (!strcmp(argv[1], "bench")) {
        bench();
        return 0;
    } else {
        return 2;
    }
    printf("%s: checked %" PRIu64 ", mismatches %" PRIu64 " (%.0f s CPU)\n", argv[1], checked,
           mismatches, now() - t0);
    return mismatches != 0;
}
