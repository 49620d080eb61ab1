/* Helpers shared by the libFuzzer targets. */
#ifndef BPV_FUZZ_COMMON_H
#define BPV_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* An invariant of the code under test: abort (a libFuzzer crash) when false. */
#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. NUL bytes
 * are allowed only when allow_nul. */
static inline bool fuzz_utf8_check(const char *s, size_t n, bool allow_nul) {
    if (n == 0) return true;
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        unsigned c = *p;
        if (c < 0x80) {
            if (c == 0 && !allow_nul) return false;
            p++;
            continue;
        }
        size_t k;
        unsigned cp, min;
        if (c >= 0xc2 && c <= 0xdf) k = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef) k = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4) k = 3, cp = c & 0x07, min = 0x10000;
        else return false;
        if ((size_t)(e - p) <= k) return false;
        for (size_t i = 1; i <= k; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        p += k + 1;
    }
    return true;
}
static inline bool fuzz_utf8_valid(const char *s, size_t n) { return fuzz_utf8_check(s, n, false); }

/* Lowers the resource limits (environment variables, docs/language.md) so
 * that inputs stay fast under the sanitizers, and the limit checks
 * themselves get fuzzed. Models the size of the samples fit easily. */
static inline void fuzz_small_limits(void) {
    setenv("BPV_MAX_TENSOR_ELEMS", "100000", 1);
    setenv("BPV_MEMORY", "64M", 1);
    setenv("BPV_MAX_NODES", "20000", 1);
    setenv("BPV_MAX_TRACE_MB", "4", 1);
}

/* Moves into a fresh temporary folder so that relative CSV and .npy paths a
 * fuzzed model names resolve there (and never to the tree), and returns its path. */
static char fuzz_sandbox_dir[] = "/tmp/bpv-fuzz-XXXXXX";

static inline void fuzz_leave_sandbox(void) {
    if (chdir("/") != 0) return;
    char path[64];
    snprintf(path, sizeof path, "%s/in.csv", fuzz_sandbox_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/in.npy", fuzz_sandbox_dir);
    unlink(path);
    rmdir(fuzz_sandbox_dir);
}

static inline const char *fuzz_enter_sandbox(void) {
    fuzz_small_limits();
    if (!mkdtemp(fuzz_sandbox_dir) || chdir(fuzz_sandbox_dir) != 0) {
        perror("bpv fuzz: sandbox");
        abort();
    }
    atexit(fuzz_leave_sandbox);
    return fuzz_sandbox_dir;
}

#endif
