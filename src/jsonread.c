/* The JSON reader (jsonread.h): recursive descent over the whole text, one
 * pass, with a located error for the first problem. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonread.h"

typedef struct jp {
    const bpv_source *src;
    const char *t;       /* the text */
    size_t n, pos;
    bpv_arena *a;
    const bpv_json_limits *lim;
    int depth;
    bpv_error **err;
    bool failed;
} jp;

static bool fail(jp *p, size_t off, size_t len, const char *fmt, ...) BPV_PRINTF(4, 5);

static bool fail(jp *p, size_t off, size_t len, const char *fmt, ...) {
    if (p->failed) return false;
    p->failed = true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (off > p->n) off = p->n;
    bpv_error_set(p->err, bpv_error_at(p->src, off, len ? len : 1, BPV_ERR_MODEL, "%s", msg));
    return false;
}

static bool oom(jp *p) {
    if (p->failed) return false;
    p->failed = true;
    bpv_error_set(p->err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory reading '%s'",
                                        p->src->name));
    return false;
}

/* Arena memory, within the limit. */
static void *alloc(jp *p, size_t n, size_t size) {
    if (n && size > (SIZE_MAX - bpv_arena_used(p->a)) / n) {
        oom(p);
        return NULL;
    }
    if (bpv_arena_used(p->a) + n * size > p->lim->arena_bytes) {
        if (!p->failed) {
            p->failed = true;
            bpv_error_set(p->err,
                          bpv_error_new(BPV_ERR_MODEL,
                                        "'%s' needs more than %zu MiB of memory to read; the "
                                        "limit is set by %s",
                                        p->src->name, p->lim->arena_bytes >> 20,
                                        p->lim->limit_env ? p->lim->limit_env : "bpviz"));
        }
        return NULL;
    }
    void *m = bpv_arena_calloc(p->a, n ? n : 1, size);
    if (!m) oom(p);
    return m;
}

static void skip_ws(jp *p) {
    while (p->pos < p->n) {
        char c = p->t[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* What stands at pos, quoted for a message. */
static const char *found(jp *p, char *buf, size_t n) {
    if (p->pos >= p->n) return "the end of the file";
    unsigned char c = (unsigned char)p->t[p->pos];
    if (c < 0x20 || c >= 0x7f) snprintf(buf, n, "byte 0x%02x", c);
    else snprintf(buf, n, "'%c'", c);
    return buf;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex4(jp *p, size_t at, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = at + (size_t)k < p->n ? hexval(p->t[at + (size_t)k]) : -1;
        if (h < 0) return fail(p, at - 2, 2, "\\u needs four hexadecimal digits, as in \\u00e9");
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return true;
}

static void put_utf8(bpv_buf *b, unsigned cp) {
    char u[4];
    size_t k;
    if (cp < 0x80) u[0] = (char)cp, k = 1;
    else if (cp < 0x800) u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), k = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        u[2] = (char)(0x80 | (cp & 0x3f)), k = 3;
    else
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), k = 4;
    bpv_buf_add(b, u, k);
}

/* A string at pos (its opening quote): decoded into the arena. */
static bool string(jp *p, const char **out, size_t *outlen) {
    size_t start = p->pos++;
    bpv_buf b;
    bpv_buf_init(&b);
    /* the common case, no escapes: one copy */
    size_t q = p->pos;
    while (q < p->n && p->t[q] != '"' && p->t[q] != '\\' && (unsigned char)p->t[q] >= 0x20) q++;
    bpv_buf_add(&b, p->t + p->pos, q - p->pos);
    p->pos = q;
    for (;;) {
        if (b.len > p->lim->string_bytes) {
            bpv_buf_free(&b);
            return fail(p, start, 1, "a string longer than %zu bytes", p->lim->string_bytes);
        }
        if (p->pos >= p->n) {
            bpv_buf_free(&b);
            return fail(p, start, 1, "this string has no closing '\"'");
        }
        unsigned char c = (unsigned char)p->t[p->pos];
        if (c == '"') break;
        if (c == '\n' || c == '\r') {
            bpv_buf_free(&b);
            return fail(p, start, 1, "this string has no closing '\"' on its line");
        }
        if (c < 0x20) {
            bpv_buf_free(&b);
            return fail(p, p->pos, 1, "a control character in a string must be escaped "
                                      "(\\n, \\t, \\u001b)");
        }
        if (c != '\\') {
            bpv_buf_putc(&b, (char)c);
            p->pos++;
            continue;
        }
        char e = p->pos + 1 < p->n ? p->t[p->pos + 1] : '\0';
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char repl[] = "\"\\/\b\f\n\r\t";
            bpv_buf_putc(&b, repl[simple - "\"\\/bfnrt"]);
            p->pos += 2;
            continue;
        }
        if (e != 'u') {
            bpv_buf_free(&b);
            return fail(p, p->pos, 2, "unknown escape in a string (use \\\" \\\\ \\/ \\b \\f "
                                      "\\n \\r \\t or \\uXXXX)");
        }
        unsigned cp = 0, lo = 0;
        size_t at = p->pos;
        if (!hex4(p, at + 2, &cp)) {
            bpv_buf_free(&b);
            return false;
        }
        p->pos += 6;
        if (cp >= 0xdc00 && cp <= 0xdfff) {
            bpv_buf_free(&b);
            return fail(p, at, 6, "a lone low surrogate \\u%04x: a character above U+FFFF is "
                                  "a high and a low surrogate in a row", cp);
        }
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (p->pos + 1 >= p->n || p->t[p->pos] != '\\' || p->t[p->pos + 1] != 'u') {
                bpv_buf_free(&b);
                return fail(p, at, 6, "a lone high surrogate \\u%04x: a character above "
                                      "U+FFFF is a high and a low surrogate in a row", cp);
            }
            if (!hex4(p, p->pos + 2, &lo)) {
                bpv_buf_free(&b);
                return false;
            }
            if (lo < 0xdc00 || lo > 0xdfff) {
                bpv_buf_free(&b);
                return fail(p, at, 12, "a high surrogate \\u%04x followed by \\u%04x, not a "
                                       "low surrogate", cp, lo);
            }
            p->pos += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp == 0) {
            bpv_buf_free(&b);
            return fail(p, at, 6, "\\u0000: strings may not hold NUL characters");
        }
        put_utf8(&b, cp);
    }
    p->pos++; /* the closing quote */
    char *s = alloc(p, b.len + 1, 1);
    if (s && b.len) memcpy(s, b.data, b.len);
    bpv_buf_free(&b);
    if (!s) return false;
    *out = s;
    *outlen = b.len;
    return true;
}

/* A number at pos, JSON's grammar exactly, read with strtod (correctly
 * rounded). Python's json module also writes NaN, Infinity and -Infinity:
 * taken too. */
static bool number(jp *p, double *out) {
    size_t s = p->pos, q = s;
    const char *t = p->t;
    static const struct { const char *w; double v; } words[] = {
        {"NaN", NAN}, {"Infinity", INFINITY}, {"-Infinity", -INFINITY}};
    for (size_t k = 0; k < 3; k++) {
        size_t wl = strlen(words[k].w);
        if (p->n - s >= wl && memcmp(t + s, words[k].w, wl) == 0) {
            p->pos += wl;
            *out = words[k].v;
            return true;
        }
    }
    if (q < p->n && t[q] == '-') q++;
    if (q < p->n && t[q] == '0') {
        q++;
        if (q < p->n && t[q] >= '0' && t[q] <= '9')
            return fail(p, s, q - s + 1, "a number may not start with 0 (JSON)");
    } else if (q < p->n && t[q] >= '1' && t[q] <= '9') {
        while (q < p->n && t[q] >= '0' && t[q] <= '9') q++;
    } else {
        return fail(p, s, 1, "expected a digit after '-'");
    }
    if (q < p->n && t[q] == '.') {
        q++;
        if (q >= p->n || t[q] < '0' || t[q] > '9')
            return fail(p, s, q - s, "expected a digit after the decimal point");
        while (q < p->n && t[q] >= '0' && t[q] <= '9') q++;
    }
    if (q < p->n && (t[q] == 'e' || t[q] == 'E')) {
        q++;
        if (q < p->n && (t[q] == '+' || t[q] == '-')) q++;
        if (q >= p->n || t[q] < '0' || t[q] > '9')
            return fail(p, s, q - s, "expected the exponent's digits");
        while (q < p->n && t[q] >= '0' && t[q] <= '9') q++;
    }
    size_t len = q - s;
    char small[64], *buf = len < sizeof small ? small : malloc(len + 1);
    if (!buf) return oom(p);
    memcpy(buf, t + s, len);
    buf[len] = '\0';
    double v = strtod(buf, NULL);
    if (buf != small) free(buf);
    if (!isfinite(v)) return fail(p, s, len, "the number is beyond the range of a double");
    p->pos = q;
    *out = v;
    return true;
}

/* Whether a string is one of the spellings of a non-finite number. */
static bool nonfinite_word(const char *s, double *v) {
    if (strcmp(s, "nan") == 0) *v = NAN;
    else if (strcmp(s, "inf") == 0) *v = INFINITY;
    else if (strcmp(s, "-inf") == 0) *v = -INFINITY;
    else return false;
    return true;
}

static bool value(jp *p, bpv_jval *v);

/* A growable malloc'd vector for the items of one array or object. */
typedef struct vec {
    void *d;
    size_t n, cap, size;
} vec;

static void *vec_push(jp *p, vec *x) {
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 8;
        void *d = realloc(x->d, cap * x->size);
        if (!d) {
            oom(p);
            return NULL;
        }
        x->d = d;
        x->cap = cap;
    }
    return (char *)x->d + x->size * x->n++;
}

static bool array(jp *p, bpv_jval *v) {
    v->type = BPV_J_ARR;
    p->pos++;
    vec nums = {NULL, 0, 0, sizeof(double)}, items = {NULL, 0, 0, sizeof(bpv_jval)};
    bool all_nums = true, ok = true;
    skip_ws(p);
    if (p->pos < p->n && p->t[p->pos] == ']') {
        p->pos++;
        return true;
    }
    while (ok) {
        bpv_jval it;
        memset(&it, 0, sizeof it);
        if (!(ok = value(p, &it))) break;
        double d;
        bool num = it.type == BPV_J_NUM ? (d = it.num, true)
                   : it.type == BPV_J_STR && nonfinite_word(it.str.s, &d);
        if (all_nums && !num) {
            /* a mixed array: the numbers so far become items */
            all_nums = false;
            for (size_t k = 0; k < nums.n && ok; k++) {
                bpv_jval *x = vec_push(p, &items);
                if (!(ok = x != NULL)) break;
                memset(x, 0, sizeof *x);
                x->type = BPV_J_NUM;
                x->off = v->off;
                x->len = 1;
                x->num = ((double *)nums.d)[k];
            }
        }
        if (ok && all_nums) {
            double *x = vec_push(p, &nums);
            if ((ok = x != NULL)) *x = d;
        } else if (ok) {
            bpv_jval *x = vec_push(p, &items);
            if ((ok = x != NULL)) *x = it;
        }
        if (!ok) break;
        skip_ws(p);
        if (p->pos < p->n && p->t[p->pos] == ',') {
            p->pos++;
            skip_ws(p);
            if (p->pos < p->n && p->t[p->pos] == ']') {
                ok = fail(p, p->pos - 1, 1, "a comma before ']': JSON has no trailing commas");
            }
            continue;
        }
        if (p->pos < p->n && p->t[p->pos] == ']') {
            p->pos++;
            break;
        }
        char fb[32];
        ok = fail(p, p->pos, 1, "expected ',' or ']' after an array item, found %s",
                  found(p, fb, sizeof fb));
    }
    if (ok && all_nums) {
        v->type = BPV_J_NUMS;
        v->nums.n = nums.n;
        ok = (v->nums.v = alloc(p, nums.n, sizeof(double))) != NULL;
        if (ok) memcpy(v->nums.v, nums.d, nums.n * sizeof(double));
    } else if (ok) {
        v->arr.n = items.n;
        ok = (v->arr.v = alloc(p, items.n, sizeof(bpv_jval))) != NULL;
        if (ok) memcpy(v->arr.v, items.d, items.n * sizeof(bpv_jval));
    }
    free(nums.d);
    free(items.d);
    return ok;
}

static int mem_cmp(const void *x, const void *y) {
    const bpv_jmem *a = *(const bpv_jmem *const *)x, *b = *(const bpv_jmem *const *)y;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->key_off > b->key_off) - (a->key_off < b->key_off);
}

/* The second of two equal keys, or NULL. */
static const bpv_jmem *duplicate(jp *p, const bpv_jmem *m, size_t n) {
    if (n <= 32) {
        for (size_t i = 1; i < n; i++)
            for (size_t k = 0; k < i; k++)
                if (strcmp(m[i].key, m[k].key) == 0) return &m[i];
        return NULL;
    }
    const bpv_jmem **s = malloc(n * sizeof *s);
    if (!s) {
        oom(p);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) s[i] = &m[i];
    qsort(s, n, sizeof *s, mem_cmp);
    const bpv_jmem *d = NULL;
    for (size_t i = 1; i < n && !d; i++)
        if (strcmp(s[i]->key, s[i - 1]->key) == 0) d = s[i];
    free(s);
    return d;
}

static bool object(jp *p, bpv_jval *v) {
    v->type = BPV_J_OBJ;
    p->pos++;
    vec mems = {NULL, 0, 0, sizeof(bpv_jmem)};
    bool ok = true;
    skip_ws(p);
    if (p->pos < p->n && p->t[p->pos] == '}') {
        p->pos++;
        return true;
    }
    while (ok) {
        char fb[32];
        skip_ws(p);
        if (p->pos >= p->n || p->t[p->pos] != '"') {
            ok = fail(p, p->pos, 1, "expected a key in double quotes, found %s",
                      found(p, fb, sizeof fb));
            break;
        }
        bpv_jmem *m = vec_push(p, &mems);
        if (!(ok = m != NULL)) break;
        memset(m, 0, sizeof *m);
        m->key_off = p->pos;
        size_t kl;
        if (!(ok = string(p, &m->key, &kl))) break;
        skip_ws(p);
        if (p->pos >= p->n || p->t[p->pos] != ':') {
            ok = fail(p, p->pos, 1, "expected ':' after the key \"%.60s\", found %s", m->key,
                      found(p, fb, sizeof fb));
            break;
        }
        p->pos++;
        if (!(ok = value(p, &m->val))) break;
        skip_ws(p);
        if (p->pos < p->n && p->t[p->pos] == ',') {
            p->pos++;
            skip_ws(p);
            if (p->pos < p->n && p->t[p->pos] == '}')
                ok = fail(p, p->pos - 1, 1, "a comma before '}': JSON has no trailing commas");
            continue;
        }
        if (p->pos < p->n && p->t[p->pos] == '}') {
            p->pos++;
            break;
        }
        ok = fail(p, p->pos, 1, "expected ',' or '}' after a member, found %s",
                  found(p, fb, sizeof fb));
    }
    if (ok) {
        const bpv_jmem *d = duplicate(p, mems.d, mems.n);
        if (d) ok = fail(p, d->key_off, strlen(d->key) + 2, "the key \"%.60s\" appears twice",
                         d->key);
        else ok = !p->failed;
    }
    if (ok) {
        v->obj.n = mems.n;
        ok = (v->obj.m = alloc(p, mems.n, sizeof(bpv_jmem))) != NULL;
        if (ok) memcpy(v->obj.m, mems.d, mems.n * sizeof(bpv_jmem));
    }
    free(mems.d);
    return ok;
}

static bool word(jp *p, const char *w) {
    size_t n = strlen(w);
    if (p->n - p->pos < n || memcmp(p->t + p->pos, w, n) != 0) return false;
    p->pos += n;
    return true;
}

static bool value(jp *p, bpv_jval *v) {
    skip_ws(p);
    v->off = p->pos;
    v->len = 1;
    if (p->pos >= p->n) return fail(p, p->pos, 1, "expected a value, found the end of the file");
    char c = p->t[p->pos];
    if (c == '[' || c == '{') {
        if (p->depth >= p->lim->depth)
            return fail(p, p->pos, 1, "arrays and objects nested more than %d deep "
                                      "(BPV_MAX_NESTING)", p->lim->depth);
        p->depth++;
        bool ok = c == '[' ? array(p, v) : object(p, v);
        p->depth--;
        return ok;
    }
    if (c == '"') {
        v->type = BPV_J_STR;
        bool ok = string(p, &v->str.s, &v->str.n);
        v->len = p->pos - v->off;
        return ok;
    }
    if (word(p, "null")) {
        v->type = BPV_J_NULL;
    } else if (word(p, "true")) {
        v->type = BPV_J_BOOL;
        v->b = true;
    } else if (word(p, "false")) {
        v->type = BPV_J_BOOL;
    } else if (c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I') {
        v->type = BPV_J_NUM;
        if (!number(p, &v->num)) return false;
    } else {
        char fb[32];
        return fail(p, p->pos, 1, "expected a value (a number, \"string\", [array], {object}, "
                                  "true, false or null), found %s", found(p, fb, sizeof fb));
    }
    v->len = p->pos - v->off;
    /* "nullx", "1true": a word must end where the value does */
    if (p->pos < p->n) {
        char d = p->t[p->pos];
        if ((d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || (d >= '0' && d <= '9') ||
            d == '.' || d == '_')
            return fail(p, v->off, p->pos - v->off + 1, "not a JSON value");
    }
    return true;
}

const bpv_jval *bpv_json_parse(const bpv_source *src, bpv_arena *a, const bpv_json_limits *lim,
                               bpv_error **err) {
    jp p = {src, src->text, src->len, 0, a, lim, 0, err, false};
    size_t bad;
    if (!bpv_utf8_valid(src->text, src->len, &bad)) {
        fail(&p, bad, 1, src->text[bad] ? "invalid UTF-8: JSON text is UTF-8"
                                         : "a NUL byte: JSON text has none");
        return NULL;
    }
    /* a byte order mark is not JSON, but some editors write one */
    if (p.n >= 3 && memcmp(p.t, "\xef\xbb\xbf", 3) == 0) p.pos = 3;
    skip_ws(&p);
    if (p.pos >= p.n) {
        fail(&p, p.pos, 1, "the file is empty: expected a JSON value");
        return NULL;
    }
    bpv_jval *root = alloc(&p, 1, sizeof *root);
    if (!root || !value(&p, root)) return NULL;
    skip_ws(&p);
    if (p.pos < p.n) {
        fail(&p, p.pos, 1, "more text after the JSON value ends");
        return NULL;
    }
    return root;
}

const bpv_jval *bpv_json_get(const bpv_jval *v, const char *key) {
    if (!v || v->type != BPV_J_OBJ) return NULL;
    for (size_t i = 0; i < v->obj.n; i++)
        if (strcmp(v->obj.m[i].key, key) == 0) return &v->obj.m[i].val;
    return NULL;
}

const char *bpv_json_type_name(const bpv_jval *v) {
    if (!v) return "nothing";
    switch (v->type) {
    case BPV_J_NULL: return "null";
    case BPV_J_BOOL: return v->b ? "true" : "false";
    case BPV_J_NUM: return "a number";
    case BPV_J_STR: return "a string";
    case BPV_J_ARR:
    case BPV_J_NUMS: return "an array";
    case BPV_J_OBJ: return "an object";
    }
    return "a value";
}
