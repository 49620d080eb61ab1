/* Foundations: the version, arena, string buffer, located errors, UTF-8,
 * suggestions and Python-repr number formatting. */
#include "base.h"

#include <math.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* CMake defines it for the library's objects (the project's VERSION); the
 * version lives at the bottom so every module, the player's page included,
 * can print it without calling up into the API glue. */
#ifndef BPV_VERSION_STRING
#define BPV_VERSION_STRING "0.0.0"
#endif

const char *bpv_version(void) { return BPV_VERSION_STRING; }

/* ---- arena --------------------------------------------------------------- */

/* Chunks are chained; big requests get a chunk of their own so a huge
 * tensor does not waste the rest of a block. */
typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    max_align_t data[]; /* aligned for any type */
} chunk;

struct bpv_arena {
    chunk *head;
    size_t total;
};

#define ARENA_CHUNK ((size_t)64 * 1024)
#define ARENA_ALIGN (sizeof(max_align_t))
/* Requests of ARENA_LINE_MIN bytes or more (tensors) start on a cache
 * line: the engine's threads split a tensor into blocks of whole lines
 * (pool.h), and a line shared by two threads' blocks would travel between
 * their cores at every write. */
#define ARENA_LINE 64
#define ARENA_LINE_MIN 256

bpv_arena *bpv_arena_new(void) { return calloc(1, sizeof(bpv_arena)); }

void bpv_arena_free(bpv_arena *a) {
    if (!a) return;
    chunk *c = a->head;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

/* bytes to skip in c so that the next request starts at a multiple of align */
static size_t arena_pad(const chunk *c, size_t align) {
    const uintptr_t at = (uintptr_t)((const char *)c->data + c->used);
    return (align - at % align) % align;
}

void *bpv_arena_alloc(bpv_arena *a, size_t size) {
    if (size == 0) size = 1;
    if (size > SIZE_MAX / 2) return NULL;
    size = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    const size_t align = size >= ARENA_LINE_MIN ? ARENA_LINE : ARENA_ALIGN;
    chunk *c = a->head;
    size_t pad = c ? arena_pad(c, align) : 0;
    if (!c || c->size - c->used < size + pad) {
        const bool own = size + align > ARENA_CHUNK / 4;
        const size_t cap = own ? size + align : ARENA_CHUNK;
        chunk *n = malloc(sizeof(chunk) + cap);
        if (!n) return NULL;
        n->size = cap;
        n->used = 0;
        if (c && own) {
            /* keep the partly used head for later small requests */
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            a->head = n;
        }
        c = n;
        pad = arena_pad(c, align);
    }
    void *p = (char *)c->data + c->used + pad;
    c->used += pad + size;
    a->total += pad + size;
    memset(p, 0, size);
    return p;
}

void *bpv_arena_calloc(bpv_arena *a, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    return bpv_arena_alloc(a, n * size);
}

char *bpv_arena_strndup(bpv_arena *a, const char *s, size_t n) {
    char *p = bpv_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *bpv_arena_strdup(bpv_arena *a, const char *s) { return bpv_arena_strndup(a, s, strlen(s)); }

size_t bpv_arena_used(const bpv_arena *a) { return a->total; }

/* ---- string buffer ------------------------------------------------------- */

void bpv_buf_init(bpv_buf *b) {
    b->data = NULL;
    b->len = b->cap = 0;
}

void bpv_buf_free(bpv_buf *b) {
    free(b->data);
    bpv_buf_init(b);
}

static void buf_reserve(bpv_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) abort(); /* text buffers are small; running out here is fatal */
    b->data = p;
    b->cap = cap;
}

void bpv_buf_add(bpv_buf *b, const char *s, size_t n) {
    buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void bpv_buf_puts(bpv_buf *b, const char *s) { bpv_buf_add(b, s, strlen(s)); }

void bpv_buf_putc(bpv_buf *b, char c) { bpv_buf_add(b, &c, 1); }

static void buf_vprintf(bpv_buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void bpv_buf_printf(bpv_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

char *bpv_buf_take(bpv_buf *b) {
    if (!b->data) bpv_buf_add(b, "", 0);
    char *p = b->data;
    bpv_buf_init(b);
    return p;
}

/* ---- source locations and errors ----------------------------------------- */

static bool utf8_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

void bpv_source_locate(const bpv_source *src, size_t off, int *line, int *col) {
    if (off > src->len) off = src->len;
    int l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)src->text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if (!utf8_cont(ch)) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* Characters shown either side of the spot on a long line. */
#define CARET_WINDOW 100

/* Appends the source line holding `off` and a caret line under it. Tabs are
 * kept in the caret line so the caret lines up in any terminal. */
static void append_caret(bpv_buf *b, const bpv_source *src, size_t off, size_t len) {
    if (off > src->len) off = src->len;
    size_t start = off, end = off;
    while (start > 0 && src->text[start - 1] != '\n') start--;
    while (end < src->len && src->text[end] != '\n') end++;
    size_t shown_end = end;
    if (shown_end > start && src->text[shown_end - 1] == '\r') shown_end--;
    /* a long line shows a window around the spot, cut at character starts */
    bool cut_left = false, cut_right = false;
    if (shown_end - start > 2 * CARET_WINDOW) {
        if (off > start + CARET_WINDOW) {
            start = off - CARET_WINDOW;
            while (start < off && utf8_cont((unsigned char)src->text[start])) start++;
            cut_left = true;
        }
        if (shown_end > off + CARET_WINDOW) {
            shown_end = off + CARET_WINDOW;
            while (shown_end > off && utf8_cont((unsigned char)src->text[shown_end])) shown_end--;
            cut_right = true;
        }
    }
    bpv_buf_puts(b, cut_left ? "    ..." : "    ");
    /* control bytes other than tab and invalid UTF-8 would garble a
     * terminal: show them as '?' */
    for (size_t i = start; i < shown_end;) {
        unsigned char ch = (unsigned char)src->text[i];
        size_t n = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : 4;
        if (ch >= 0x80 && i + n <= shown_end && bpv_utf8_valid(src->text + i, n, NULL)) {
            bpv_buf_add(b, src->text + i, n);
            i += n;
            continue;
        }
        bpv_buf_putc(b, (ch < 0x20 && ch != '\t') || ch >= 0x7f ? '?' : (char)ch);
        i++;
    }
    if (cut_right) bpv_buf_puts(b, "...");
    bpv_buf_puts(b, cut_left ? "\n       " : "\n    ");
    for (size_t i = start; i < off; i++) {
        unsigned char ch = (unsigned char)src->text[i];
        if (ch == '\t') bpv_buf_putc(b, '\t');
        else if (!utf8_cont(ch)) bpv_buf_putc(b, ' ');
    }
    bpv_buf_putc(b, '^');
    size_t stop = off + len;
    if (stop > shown_end) stop = shown_end;
    for (size_t i = off + 1; i < stop; i++)
        if (!utf8_cont((unsigned char)src->text[i])) bpv_buf_putc(b, '~');
    bpv_buf_putc(b, '\n');
}

void bpv_buf_put_clean(bpv_buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        size_t k = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : 4;
        if (ch >= 0x80 && i + k <= n && bpv_utf8_valid(s + i, k, NULL)) {
            bpv_buf_add(b, s + i, k);
            i += k;
            continue;
        }
        bpv_buf_putc(b, (ch < 0x20 && ch != '\t') || ch >= 0x7f ? '?' : (char)ch);
        i++;
    }
}

/* A message is one line: what it quotes (a file name, a CSV cell) goes
 * through bpv_buf_put_clean, so a newline in a file name cannot split
 * FILE:LINE:COL; the message's own final newline is dropped here and put
 * back by the caller. */
static void append_clean(bpv_buf *b, const char *s, size_t n) {
    while (n > 0 && s[n - 1] == '\n') n--;
    bpv_buf_put_clean(b, s, n);
}

static bpv_error *error_make(int status, char *msg) {
    bpv_error *e = malloc(sizeof *e);
    if (!e) {
        free(msg);
        return NULL;
    }
    e->status = status;
    e->message = msg;
    return e;
}

bpv_error *bpv_error_at(const bpv_source *src, size_t off, size_t len, int status,
                        const char *fmt, ...) {
    int line, col;
    bpv_source_locate(src, off, &line, &col);
    bpv_buf b, raw;
    bpv_buf_init(&b);
    bpv_buf_init(&raw);
    bpv_buf_printf(&raw, "%s:%d:%d: error: ", src->name, line, col);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&raw, fmt, ap);
    va_end(ap);
    append_clean(&b, raw.data, raw.len);
    bpv_buf_free(&raw);
    bpv_buf_putc(&b, '\n');
    append_caret(&b, src, off, len);
    return error_make(status, bpv_buf_take(&b));
}

bpv_error *bpv_error_new(int status, const char *fmt, ...) {
    bpv_buf b, raw;
    bpv_buf_init(&b);
    bpv_buf_init(&raw);
    bpv_buf_puts(&b, "bpviz: error: ");
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&raw, fmt, ap);
    va_end(ap);
    append_clean(&b, raw.data, raw.len);
    bpv_buf_free(&raw);
    bpv_buf_putc(&b, '\n');
    return error_make(status, bpv_buf_take(&b));
}

bpv_error *bpv_error_null(const char *fn, const char *arg) {
    return bpv_error_new(BPV_ERR_MODEL, "%s: %s is NULL", fn, arg);
}

int bpv_error_set(bpv_error **err, bpv_error *e) {
    int status = e ? e->status : BPV_ERR_RUNTIME;
    if (err && !*err) *err = e;
    else bpv_error_free(e);
    return status;
}

void bpv_error_free(bpv_error *err) {
    if (!err) return;
    free(err->message);
    free(err);
}

/* ---- UTF-8 ----------------------------------------------------------------- */

bool bpv_utf8_valid(const char *s, size_t len, size_t *bad_off) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned min;
        if (c == 0) goto bad;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            min = 0x80;
            c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            min = 0x800;
            c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            min = 0x10000;
            c &= 0x07;
        } else {
            goto bad;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || !utf8_cont(p[i + k])) goto bad;
            c = (c << 6) | (p[i + k] & 0x3F);
        }
        /* overlong forms, surrogates and values past U+10FFFF are invalid */
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) goto bad;
        i += n + 1;
    }
    return true;
bad:
    if (bad_off) *bad_off = i;
    return false;
}

/* ---- suggestions ------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *bpv_closest(const char *name, const char *const *known, size_t n) {
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    size_t len = strlen(name);
    /* allow about one edit per three characters, at least one */
    size_t limit = len < 3 ? 1 : len / 3 + 1;
    for (size_t i = 0; i < n; i++) {
        if (!known[i]) continue;
        size_t d = edit_distance(name, known[i]);
        if (d < best_d && d <= limit && d < strlen(known[i]) + (len > 1)) {
            best = known[i];
            best_d = d;
        }
    }
    return best;
}

/* ---- numbers ------------------------------------------------------------------ */

/* Shortest digits by Schubfach (R. Giulietti, "The Schubfach way to render
 * doubles", 2020), which gives the text Python's repr() gives. A finite
 * v > 0 is c * 2^q; every real in its rounding interval R = [(c - 1/2) 2^q,
 * (c + 1/2) 2^q] (lower half-gap 1/4 at a power of two; the ends belong to R
 * when c is even, as strtod rounds ties to even) reads back to v. With
 * k = floor(log10 |R|), R holds at most one multiple of 10^(k+1) and at least
 * one of 10^k. So the answer is the multiple of 10^(k+1) in R if there is
 * one, else whichever of s*10^k, (s+1)*10^k (s = floor(v 10^-k)) is in R,
 * the nearer to v when both are, the even one on a tie.
 * Invariant that makes the 64-bit arithmetic exact: R's ends and v are
 * scaled by 4 * 10^-k, so every comparison above is with an even integer
 * (4s, 4s+2, 4s+4, 40s', 40s'+40), and each scaled value is computed as its
 * floor with the lowest bit set when it is not an integer ("round to odd"),
 * which decides every comparison with an even integer as the exact value
 * would. g(-k) (cmake/pow10_gen.c) is 10^-k to 128 bits rounded up by less
 * than one unit; the paper proves this never changes that floor nor hides a
 * fraction, for every double's c and q, hence "mid > 1" below. */
#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 u128; /* GCC and Clang, even with -pedantic */
static inline uint64_t mul_hi(uint64_t a, uint64_t b, uint64_t *lo) {
    u128 p = (u128)a * b;
    *lo = (uint64_t)p;
    return (uint64_t)(p >> 64);
}
#else
static inline uint64_t mul_hi(uint64_t a, uint64_t b, uint64_t *lo) {
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    *lo = (mid << 32) | (uint32_t)p00;
    return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}
#endif

#include "pow10_table.h"

/* floor(g * cp / 2^128), its lowest bit set when the rest is not zero
 * (g overestimates by less than one unit, hence "> 1"). */
static inline uint64_t round_to_odd(const uint64_t g[2], uint64_t cp) {
    uint64_t xlo, ylo;
    uint64_t xhi = mul_hi(g[1], cp, &xlo);
    uint64_t yhi = mul_hi(g[0], cp, &ylo);
    uint64_t mid = ylo + xhi;
    uint64_t hi = yhi + (mid < xhi);
    return hi | (mid > 1);
}

/* v = c * 2^q > 0 -> shortest decimal sig * 10^*exp10 that reads back. */
static uint64_t shortest(uint64_t c, int q, bool lower_closer, int *exp10) {
    bool even = (c & 1) == 0;
    uint64_t cbl = 4 * c - 2 + lower_closer, cb = 4 * c, cbr = 4 * c + 2;
    /* k = floor(log10(2^q)), or floor(log10(3/4 2^q)) when the lower gap is
     * half the upper; exact over the doubles' q (fixed-point log10 2). */
    int k = (q * 315653 - (lower_closer ? 131237 : 0)) >> 20;
    int h = q + ((-k * 217707) >> 16) + 1; /* 1..4 */
    const uint64_t *g = bpv_pow10_g[-k - BPV_POW10_MIN];
    uint64_t vbl = round_to_odd(g, cbl << h);
    uint64_t vb = round_to_odd(g, cb << h);
    uint64_t vbr = round_to_odd(g, cbr << h);
    uint64_t lower = vbl + !even, upper = vbr - !even;
    uint64_t s = vb / 4;
    if (s >= 10) {
        uint64_t sp = s / 10;
        bool u_in = lower <= 40 * sp, w_in = 40 * sp + 40 <= upper;
        if (u_in != w_in) {
            *exp10 = k + 1;
            return sp + w_in;
        }
    }
    bool u_in = lower <= 4 * s, w_in = 4 * s + 4 <= upper;
    *exp10 = k;
    if (u_in != w_in) return s + w_in;
    uint64_t mid = 4 * s + 2;
    return s + (vb > mid || (vb == mid && (s & 1)));
}

char *bpv_fmt_repr_s(char *buf, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    bool neg = bits >> 63;
    unsigned be = (unsigned)(bits >> 52) & 0x7ff;
    uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
    char *o = buf;
    if (be == 0x7ff) {
        strcpy(buf, frac ? "nan" : neg ? "-inf" : "inf");
        return buf;
    }
    if (neg) *o++ = '-';
    if (be == 0 && frac == 0) {
        strcpy(o, "0.0");
        return buf;
    }
    int exp10;
    uint64_t sig = be ? shortest(frac | UINT64_C(1) << 52, (int)be - 1075, frac == 0 && be > 1,
                                 &exp10)
                      : shortest(frac, -1074, false, &exp10);
    /* digits of sig, trailing zeros dropped: value = 0.MANT x 10^decpt */
    char mant[24];
    int nm = 0;
    while (sig % 10 == 0) {
        sig /= 10;
        exp10++;
    }
    char rev[24];
    do {
        rev[nm++] = (char)('0' + sig % 10);
        sig /= 10;
    } while (sig);
    for (int i = 0; i < nm; i++) mant[i] = rev[nm - 1 - i];
    int decpt = exp10 + nm;
    /* Python's repr layout: positional for 1e-4 <= |v| < 1e16 */
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -decpt; i++) *o++ = '0';
            for (int i = 0; i < nm; i++) *o++ = mant[i];
        } else {
            for (int i = 0; i < decpt; i++) *o++ = i < nm ? mant[i] : '0';
            *o++ = '.';
            if (nm > decpt)
                for (int i = decpt; i < nm; i++) *o++ = mant[i];
            else
                *o++ = '0';
        }
        *o = '\0';
    } else {
        *o++ = mant[0];
        if (nm > 1) {
            *o++ = '.';
            for (int i = 1; i < nm; i++) *o++ = mant[i];
        }
        int e = decpt - 1;
        *o++ = 'e';
        *o++ = e < 0 ? '-' : '+';
        if (e < 0) e = -e;
        if (e >= 100) *o++ = (char)('0' + e / 100);
        *o++ = (char)('0' + e / 10 % 10);
        *o++ = (char)('0' + e % 10);
        *o = '\0';
    }
    return buf;
}

void bpv_fmt_repr(bpv_buf *b, double v) {
    char tmp[40];
    bpv_buf_puts(b, bpv_fmt_repr_s(tmp, v));
}

/* ---- resource limits ------------------------------------------------------- */

static const struct limit_def {
    const char *env;
    unsigned long long def, min, max, unit; /* value = env * unit */
} limit_defs[] = {
    {"BPV_MAX_TENSOR_ELEMS", 1ull << 26, 1, 1ull << 40, 1},
    {"BPV_MAX_NODES", 1000000, 1, 100000000, 1},
    {"BPV_MAX_NESTING", 200, 1, BPV_NESTING_CEILING, 1},
    {"BPV_MAX_LINE_BYTES", 1ull << 20, 80, 1ull << 30, 1},
    {"BPV_MAX_SOURCE_MB", 16, 1, 1ull << 12, 1ull << 20},
    {"BPV_MAX_TRACE_MB", 1024, 1, 1ull << 24, 1ull << 20},
};
enum { NLIMITS = sizeof limit_defs / sizeof limit_defs[0] };

static bpv_limits limits;
static int limits_bad = -1; /* index of the first bad variable, or -1 */
static bool limits_read;

/* A whole decimal number in [min, max] with nothing else around it. */
static bool limit_parse(const char *s, unsigned long long min, unsigned long long max,
                        unsigned long long *out) {
    if (!s || *s < '0' || *s > '9') return false;
    unsigned long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (max - (unsigned)(*s - '0')) / 10) return false;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v < min) return false;
    *out = v;
    return true;
}

const bpv_limits *bpv_limits_get(void) {
    if (limits_read) return &limits;
    unsigned long long v[NLIMITS];
    for (int i = 0; i < NLIMITS; i++) {
        const char *env = getenv(limit_defs[i].env);
        v[i] = limit_defs[i].def;
        if (env && *env && !limit_parse(env, limit_defs[i].min, limit_defs[i].max, &v[i])) {
            v[i] = limit_defs[i].def;
            if (limits_bad < 0) limits_bad = i;
        }
        v[i] *= limit_defs[i].unit;
    }
    limits.tensor_elems = (int64_t)v[0];
    limits.nodes = (int)v[1];
    limits.nesting = (int)v[2];
    limits.line_bytes = (size_t)v[3];
    limits.source_bytes = (size_t)v[4];
    limits.trace_bytes = (size_t)v[5];
    limits_read = true;
    return &limits;
}

/* The separate memory limits of earlier versions, now one budget: a run
 * that sets one is told, rather than silently getting the budget's
 * default. */
static const char *const retired_limits[] = {"BPV_MAX_MODEL_MB", "BPV_MAX_KEPT_STEPS",
                                              "BPV_MAX_CSV_MB", "BPV_MAX_NPY_MB",
                                              "BPV_MAX_RASTER_MP"};

bpv_error *bpv_limits_error(void) {
    bpv_limits_get();
    if (limits_bad >= 0) {
        const struct limit_def *d = &limit_defs[limits_bad];
        return bpv_error_new(BPV_ERR_MODEL, "%s must be a whole number from %llu to %llu, not '%s'",
                             d->env, d->min, d->max, getenv(d->env));
    }
    const char *mem = getenv("BPV_MEMORY");
    uint64_t v;
    if (mem && *mem && (!bpv_size_parse(mem, &v) || v < (1u << 20)))
        return bpv_error_new(BPV_ERR_MODEL,
                             "BPV_MEMORY must be a size of at least 1M, like 512M or 16G, not "
                             "'%s'",
                             mem);
    for (size_t i = 0; i < sizeof retired_limits / sizeof *retired_limits; i++)
        if (getenv(retired_limits[i]))
            return bpv_error_new(BPV_ERR_MODEL,
                                 "%s is no longer read: one memory budget covers the model, "
                                 "kept steps, data files and PNGs; set BPV_MEMORY (like "
                                 "BPV_MEMORY=16G) or --memory instead",
                                 retired_limits[i]);
    return NULL;
}

/* ---- notes ------------------------------------------------------------------ */

static FILE *notes_stream;

void bpv_notes_to(FILE *stream) { notes_stream = stream; }

void bpv_note(const char *line) {
    if (!notes_stream || !line) return;
    fflush(stdout); /* after what was printed before it */
    fputs(line, notes_stream);
    fflush(notes_stream);
}

/* ---- the memory budget ------------------------------------------------------ */

static uint64_t budget_set; /* bpv_memory_budget_set's; 0: none */

bool bpv_size_parse(const char *s, uint64_t *out) {
    if (!s || *s < '0' || *s > '9') return false;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    int shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: break;
    }
    if (shift) {
        s++;
        if (*s == 'i' && s[1] == 'B') s++;
    }
    if (*s == 'B') s++;
    if (*s || v > (UINT64_MAX >> shift)) return false;
    *out = v << shift;
    return true;
}

char *bpv_size_text(char *buf, uint64_t bytes) {
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, 32, "%llu bytes", (unsigned long long)bytes);
        return buf;
    }
    int u = 0;
    double v = (double)bytes / 1024;
    while (v >= 1024 && u < 5) v /= 1024, u++;
    /* one decimal, rounded up so that a need is never understated */
    double t = ceil(v * 10 - 1e-9) / 10;
    if (t == floor(t)) snprintf(buf, 32, "%.0f %s", t, unit[u]);
    else snprintf(buf, 32, "%.1f %s", t, unit[u]);
    return buf;
}

/* Physical memory in bytes, or 0 when the system does not say. */
static uint64_t physical_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

uint64_t bpv_memory_budget(void) {
    if (budget_set) return budget_set;
    const char *mem = getenv("BPV_MEMORY");
    uint64_t v;
    if (mem && *mem && bpv_size_parse(mem, &v) && v >= (1u << 20)) return v;
    uint64_t def = 4ull << 30, half = physical_memory() / 2;
    return half && half < def ? half : def;
}

int bpv_memory_budget_set(uint64_t bytes) {
    if (bytes != 0 && bytes < (1u << 20)) return BPV_ERR_MODEL;
    budget_set = bytes;
    return BPV_OK;
}

uint64_t bpv_memory_held(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#else
    return 0;
#endif
}

bool bpv_memory_fits(uint64_t used, uint64_t need) {
    uint64_t b = bpv_memory_budget();
    return need <= b && used <= b - need;
}

char *bpv_memory_text(char *buf, size_t size, const char *what, uint64_t need,
                      const char *advice) {
    char n[32], b[32], sugg[32];
    /* a budget to suggest: the next power of two GiB (or MiB) that holds it */
    uint64_t want = 1ull << 20;
    while (want < need && want < (1ull << 62)) want <<= 1;
    if (want >= (1ull << 30)) snprintf(sugg, sizeof sugg, "%lluG", (unsigned long long)(want >> 30));
    else snprintf(sugg, sizeof sugg, "%lluM", (unsigned long long)(want >> 20));
    snprintf(buf, size,
             "%s needs %s, more than the memory budget of %s; %s%sraise it with --memory %s "
             "(or BPV_MEMORY=%s)",
             what, bpv_size_text(n, need), bpv_size_text(b, bpv_memory_budget()),
             advice ? advice : "", advice ? ", or " : "", sugg, sugg);
    return buf;
}

bpv_error *bpv_memory_error(const char *what, uint64_t need, const char *advice) {
    char msg[1024];
    return bpv_error_new(BPV_ERR_MODEL, "%s", bpv_memory_text(msg, sizeof msg, what, need, advice));
}
