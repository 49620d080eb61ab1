/* `data NAME = npy("file.npy")`: a NumPy .npy file (format versions 1.0,
 * 2.0 and 3.0), read once at load into the model's storage.
 *
 * The file is: the magic "\x93NUMPY", the format version (two bytes), the
 * header's length (2 bytes little-endian in 1.0, 4 in 2.0 and 3.0), the
 * header, a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }
 * padded with spaces and a newline, then the values, nothing else. Nothing
 * in the header is trusted: it is parsed here (any key order and spacing;
 * unknown or repeated keys are refused, as NumPy refuses them), the shape's
 * product is checked for overflow and the limits, and the file's size must
 * be exactly the header's plus the values'. The values are read in blocks
 * straight into the model's arena (a Fortran-order array is transposed
 * into C order on the way), so reading takes no memory beyond the data. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"

enum {
    NPY_MAX_HEADER = 65536, /* bytes of header read (NumPy reads 10000) */
    NPY_MAX_DIMS = 64,      /* NumPy's own limit; more is a corrupt header */
    NPY_BLOCK = 1 << 16     /* bytes read at a time */
};

typedef enum npy_kind { NPY_FLOAT, NPY_INT, NPY_UINT, NPY_BOOL } npy_kind;

typedef struct npy_header {
    npy_kind kind;
    int size;  /* bytes per value: 1, 2, 4 or 8 */
    bool swap; /* stored in the other byte order than this machine's */
    bool fortran;
    int rank;
    int64_t dim[NPY_MAX_DIMS];
} npy_header;

/* ---- the header, a Python dict literal ----------------------------------- */

typedef struct npy_parser {
    const unsigned char *s;
    size_t n, i;
    char why[128]; /* what went wrong, for the message */
} npy_parser;

static void hp_space(npy_parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r' || p->s[p->i] == '\f' || p->s[p->i] == '\v'))
        p->i++;
}

static bool hp_fail(npy_parser *p, const char *why) {
    snprintf(p->why, sizeof p->why, "%s", why);
    return false;
}

/* A quoted string ('...' or "..."), its text in out (cut at cap - 1 bytes;
 * *cut tells). A backslash takes the next byte as it is. */
static bool hp_string(npy_parser *p, char *out, size_t cap, bool *cut) {
    *cut = false;
    if (p->i >= p->n || (p->s[p->i] != '\'' && p->s[p->i] != '"'))
        return hp_fail(p, "expected a quoted string");
    unsigned char q = p->s[p->i++];
    size_t k = 0;
    for (;;) {
        if (p->i >= p->n || p->s[p->i] == '\n') return hp_fail(p, "a string is not closed");
        unsigned char c = p->s[p->i++];
        if (c == q) break;
        if (c == '\\') {
            if (p->i >= p->n) return hp_fail(p, "a string is not closed");
            c = p->s[p->i++];
        }
        if (k + 1 < cap) out[k++] = (char)c;
        else *cut = true;
    }
    out[k] = '\0';
    return true;
}

static bool hp_word(npy_parser *p, const char *w) {
    size_t n = strlen(w);
    if (p->n - p->i < n || memcmp(p->s + p->i, w, n) != 0) return false;
    size_t j = p->i + n;
    if (j < p->n && (p->s[j] == '_' || (p->s[j] >= '0' && p->s[j] <= '9') ||
                     ((p->s[j] | 0x20) >= 'a' && (p->s[j] | 0x20) <= 'z')))
        return false;
    p->i = j;
    return true;
}

/* shape: a tuple of whole numbers, (), (3,), (60000, 28, 28) */
static bool hp_shape(npy_parser *p, npy_header *h) {
    if (p->i >= p->n || p->s[p->i] != '(')
        return hp_fail(p, "'shape' must be a tuple of whole numbers, like (60000, 28, 28)");
    p->i++;
    h->rank = 0;
    for (;;) {
        hp_space(p);
        if (p->i < p->n && p->s[p->i] == ')') break;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
            return hp_fail(p, "'shape' must be a tuple of whole numbers, like (60000, 28, 28)");
        int64_t v = 0;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
            if (v > (INT64_C(1) << 58)) return hp_fail(p, "a dimension of 'shape' is too large");
            v = v * 10 + (p->s[p->i++] - '0');
        }
        if (p->i < p->n && (p->s[p->i] == 'L' || p->s[p->i] == 'l')) p->i++; /* Python 2 */
        if (h->rank == NPY_MAX_DIMS) return hp_fail(p, "'shape' has more than 64 dimensions");
        h->dim[h->rank++] = v;
        hp_space(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == ')') break;
        return hp_fail(p, "expected ',' or ')' in 'shape'");
    }
    p->i++;
    return true;
}

/* The header dict: its three keys, each once. descr is returned as text
 * (a list there, a structured dtype, sets *record). */
static bool hp_dict(npy_parser *p, npy_header *h, char *descr, size_t dcap, bool *dcut,
                    bool *record) {
    bool seen[3] = {false, false, false};
    hp_space(p);
    if (p->i >= p->n || p->s[p->i] != '{') return hp_fail(p, "expected '{'");
    p->i++;
    for (;;) {
        hp_space(p);
        if (p->i < p->n && p->s[p->i] == '}') break;
        char key[32];
        bool cut;
        size_t kstart = p->i;
        if (!hp_string(p, key, sizeof key, &cut)) return hp_fail(p, "expected a quoted key or '}'");
        int k = cut                                 ? -1
                : strcmp(key, "descr") == 0         ? 0
                : strcmp(key, "fortran_order") == 0 ? 1
                : strcmp(key, "shape") == 0         ? 2
                                                    : -1;
        if (k < 0 || seen[k]) {
            /* the key, quoted, printable ASCII only */
            for (char *c = key; *c; c++)
                if (*c < 0x20 || *c > 0x7e || *c == '\'') *c = '?';
            p->i = kstart; /* the message points at the key */
            if (k < 0)
                snprintf(
                    p->why, sizeof p->why,
                    "unknown key '%s%s' (a .npy header has 'descr', 'fortran_order' and 'shape')",
                    key, cut ? "..." : "");
            else snprintf(p->why, sizeof p->why, "the key '%s' is given twice", key);
            return false;
        }
        seen[k] = true;
        hp_space(p);
        if (p->i >= p->n || p->s[p->i] != ':') return hp_fail(p, "expected ':' after a key");
        p->i++;
        hp_space(p);
        if (k == 0) {
            if (p->i < p->n && p->s[p->i] == '[') {
                *record = true;
                return true; /* the caller refuses it: nothing more to read */
            }
            if (!hp_string(p, descr, dcap, dcut))
                return hp_fail(p, "'descr' must be a dtype in quotes, like '<f4'");
        } else if (k == 1) {
            if (hp_word(p, "True")) h->fortran = true;
            else if (hp_word(p, "False")) h->fortran = false;
            else return hp_fail(p, "'fortran_order' must be True or False");
        } else if (!hp_shape(p, h)) {
            return false;
        }
        hp_space(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') break;
        if (p->i >= p->n) return hp_fail(p, "it ends before its closing '}'");
        return hp_fail(p, "expected ',' or '}' after a value");
    }
    p->i++;
    hp_space(p);
    if (p->i != p->n) return hp_fail(p, "text after the closing '}'");
    if (!seen[0]) return hp_fail(p, "no 'descr' key");
    if (!seen[1]) return hp_fail(p, "no 'fortran_order' key");
    if (!seen[2]) return hp_fail(p, "no 'shape' key");
    return true;
}

/* ---- dtypes --------------------------------------------------------------- */

static bool host_little(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Reads a descr like '<f4' into h; NULL when bpviz reads it, else why not
 * (the start of a sentence that the caller completes). */
static const char *descr_parse(const char *d, npy_header *h) {
    char order = '|';
    if (*d == '<' || *d == '>' || *d == '|' || *d == '=') order = *d++;
    char t = *d ? *d++ : '\0';
    int size = 0;
    if (*d >= '1' && *d <= '9' && d[1] == '\0') size = *d - '0';
    else if (*d == '1' && d[1] == '6' && d[2] == '\0') size = 16;
    else if (*d == '\0' && t == '?') size = 1;
    switch (t) {
    case 'O': return "a pickled object array";
    case 'c': return "an array of complex numbers";
    case 'U':
    case 'S':
    case 'a': return "an array of strings";
    case 'M':
    case 'm': return "an array of dates or times";
    case 'V': return "an array of raw bytes (void)";
    case 'f':
        if (size != 2 && size != 4 && size != 8) return "";
        h->kind = NPY_FLOAT;
        break;
    case 'i':
    case 'u':
        if (size != 1 && size != 2 && size != 4 && size != 8) return "";
        h->kind = t == 'i' ? NPY_INT : NPY_UINT;
        break;
    case 'b':
    case '?':
        if (size != 1) return "";
        h->kind = NPY_BOOL;
        break;
    default: return "";
    }
    h->size = size;
    bool little = host_little();
    h->swap = size > 1 && ((order == '<' && !little) || (order == '>' && little));
    return NULL;
}

static const char *kind_name(const npy_header *h) {
    switch (h->kind) {
    case NPY_FLOAT: return h->size == 2 ? "float16" : h->size == 4 ? "float32" : "float64";
    case NPY_INT:
        return h->size == 1 ? "int8" : h->size == 2 ? "int16" : h->size == 4 ? "int32" : "int64";
    case NPY_UINT:
        return h->size == 1   ? "uint8"
               : h->size == 2 ? "uint16"
               : h->size == 4 ? "uint32"
                              : "uint64";
    case NPY_BOOL: return "bool";
    }
    return "?";
}

/* IEEE half to float, exactly (NaN payloads aside). */
static float half_to_float(uint16_t x) {
    int e = (x >> 10) & 0x1f, man = x & 0x3ff;
    float v = e == 0    ? ldexpf((float)man, -24)
              : e == 31 ? (man ? NAN : INFINITY)
                        : ldexpf((float)(man | 0x400), e - 25);
    return (x & 0x8000) ? -v : v;
}

/* One value of the file in the model's dtype, converted as torch converts
 * an array it takes from NumPy: integers straight to float32 (or double),
 * rounded once to nearest; float64 rounded once to float32. *over is set
 * when a finite value is beyond float32's range. */
static double npy_value(const npy_header *h, const unsigned char *src, bpv_dtype dt, bool *over) {
    unsigned char b[8];
    memcpy(b, src, (size_t)h->size);
    if (h->swap)
        for (int i = 0; i < h->size / 2; i++) {
            unsigned char t = b[i];
            b[i] = b[h->size - 1 - i];
            b[h->size - 1 - i] = t;
        }
    const bool f32 = dt == BPV_F32;
    switch (h->kind) {
    case NPY_BOOL: return b[0] != 0;
    case NPY_FLOAT:
        if (h->size == 2) {
            uint16_t u;
            memcpy(&u, b, 2);
            return half_to_float(u);
        }
        if (h->size == 4) {
            float f;
            memcpy(&f, b, 4);
            return f;
        } else {
            double x;
            memcpy(&x, b, 8);
            if (!f32) return x;
            float f = (float)x;
            if (isinf(f) && isfinite(x)) {
                *over = true;
                return x;
            }
            return f;
        }
    case NPY_INT: {
        int64_t x;
        if (h->size == 1) {
            int8_t v;
            memcpy(&v, b, 1);
            x = v;
        } else if (h->size == 2) {
            int16_t v;
            memcpy(&v, b, 2);
            x = v;
        } else if (h->size == 4) {
            int32_t v;
            memcpy(&v, b, 4);
            x = v;
        } else memcpy(&x, b, 8);
        return f32 ? (double)(float)x : (double)x;
    }
    case NPY_UINT: {
        uint64_t x;
        if (h->size == 1) x = b[0];
        else if (h->size == 2) {
            uint16_t v;
            memcpy(&v, b, 2);
            x = v;
        } else if (h->size == 4) {
            uint32_t v;
            memcpy(&v, b, 4);
            x = v;
        } else memcpy(&x, b, 8);
        return f32 ? (double)(float)x : (double)x;
    }
    }
    return 0;
}

/* ---- the file -------------------------------------------------------------- */

/* "(60000, 28, 28)", "(4,)", "()" as Python writes a shape. */
static const char *shape_text(const npy_header *h, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < h->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)h->dim[i]);
    if (k < n) snprintf(buf + k, n - k, h->rank == 1 ? ",)" : ")");
    return buf;
}

/* Reads exactly n bytes; false at the end of the file (*eof) or an error. */
static bool read_full(int fd, unsigned char *buf, size_t n, bool *eof) {
    *eof = false;
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return false;
        if (r == 0) {
            *eof = true;
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

typedef struct npy_file {
    bpv_model *m;
    const bpv_ast *fa; /* the string literal: every message points at it */
    const char *name;  /* as written in the model */
    const char *path;  /* as opened */
    int fd;
    int64_t size;
    bpv_error **err;
} npy_file;

#define NPY_FAIL(f, ...) bpv_model_fail((f)->m, (f)->err, (f)->fa->off, (f)->fa->len, __VA_ARGS__)

static bool npy_read_error(npy_file *f, bool eof) {
    if (eof) /* the file shrank while it was read */
        return NPY_FAIL(f, "%s is truncated: it ended while it was read", f->name);
    return NPY_FAIL(f, "cannot read '%s': %s", f->path, strerror(errno));
}

/* The preamble and the header: h filled and checked, *data_off the offset
 * of the first value. */
static bool npy_header_read(npy_file *f, npy_header *h, int64_t *data_off) {
    unsigned char pre[12];
    bool eof;
    size_t npre = f->size < 8 ? (size_t)f->size : 8;
    if (!read_full(f->fd, pre, npre, &eof)) return npy_read_error(f, eof);
    if (npre < 6 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return NPY_FAIL(f, "%s is not a NumPy .npy file (it does not start with \\x93NUMPY)",
                        f->name);
    if (npre < 8) return NPY_FAIL(f, "%s is truncated: it ends inside its .npy preamble", f->name);
    unsigned major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return NPY_FAIL(f,
                        "%s: .npy format version %u.%u is not one bpviz reads (1.0, 2.0 and 3.0)",
                        f->name, major, minor);
    size_t plen = major == 1 ? 10 : 12;
    if ((int64_t)plen > f->size)
        return NPY_FAIL(f, "%s is truncated: it ends inside its .npy preamble", f->name);
    if (!read_full(f->fd, pre + 8, plen - 8, &eof)) return npy_read_error(f, eof);
    uint32_t hlen = major == 1 ? (uint32_t)pre[8] | (uint32_t)pre[9] << 8
                               : (uint32_t)pre[8] | (uint32_t)pre[9] << 8 |
                                     (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
    if (hlen > NPY_MAX_HEADER)
        return NPY_FAIL(f,
                        "%s: its header is %lu bytes long; a .npy header bpviz reads is at most %d",
                        f->name, (unsigned long)hlen, NPY_MAX_HEADER);
    if ((int64_t)(plen + hlen) > f->size)
        return NPY_FAIL(f, "%s is truncated: its header is %lu bytes long but %lld bytes follow",
                        f->name, (unsigned long)hlen, (long long)(f->size - (int64_t)plen));
    unsigned char *text = malloc(hlen ? hlen : 1);
    if (!text) return bpv_model_oom(f->err);
    if (!read_full(f->fd, text, hlen, &eof)) {
        free(text);
        return npy_read_error(f, eof);
    }
    /* 1.0 and 2.0 headers are latin-1, 3.0 ones UTF-8: every byte that
     * matters is ASCII either way */
    npy_parser p = {text, hlen, 0, ""};
    char descr[64];
    bool dcut = false, record = false;
    memset(h, 0, sizeof *h);
    bool ok = hp_dict(&p, h, descr, sizeof descr, &dcut, &record);
    size_t at = p.i;
    free(text);
    if (!ok)
        return NPY_FAIL(f, "%s: the .npy header does not parse at byte %zu: %s", f->name, at,
                        p.why);
    if (record)
        return NPY_FAIL(f,
                        "%s: a structured array (named fields) cannot be read; save a plain "
                        "numeric array",
                        f->name);
    /* the descr, quoted in messages, printable ASCII only */
    for (char *c = descr; *c; c++)
        if (*c < 0x20 || *c > 0x7e || *c == '\'') *c = '?';
    const char *why = dcut ? "" : descr_parse(descr, h);
    if (why && *why)
        return NPY_FAIL(f,
                        "%s: %s ('%s') cannot be read; save a numeric array (float, integer or "
                        "bool)",
                        f->name, why, descr);
    if (why)
        return NPY_FAIL(f,
                        "%s: dtype '%s%s' cannot be read; bpviz reads float16, float32, "
                        "float64, signed and unsigned integers and bool",
                        f->name, descr, dcut ? "..." : "");
    *data_off = (int64_t)(plen + hlen);
    return true;
}

/* Reads the values into dst (float or double, the model's storage), in C
 * order. */
static bool npy_values(npy_file *f, const npy_header *h, int64_t nvals, void *dst) {
    const bpv_model *m = f->m;
    unsigned char *buf = malloc(NPY_BLOCK);
    if (!buf) return bpv_model_oom(f->err);
    /* C-order strides, and the Fortran-order position walked */
    int64_t stride[NPY_MAX_DIMS], idx[NPY_MAX_DIMS] = {0};
    int64_t s = 1;
    for (int k = h->rank - 1; k >= 0; k--) stride[k] = s, s *= h->dim[k];
    int64_t off = 0; /* C offset of the next value */
    const int64_t per = NPY_BLOCK / h->size;
    bool ok = true;
    for (int64_t done = 0; ok && done < nvals;) {
        int64_t n = nvals - done < per ? nvals - done : per;
        bool eof;
        if (!read_full(f->fd, buf, (size_t)(n * h->size), &eof)) {
            ok = npy_read_error(f, eof);
            break;
        }
        for (int64_t i = 0; i < n; i++) {
            bool over = false;
            double v = npy_value(h, buf + i * h->size, m->dtype, &over);
            if (over) {
                ok = NPY_FAIL(f,
                              "%s: value %lld (counting from 0, in the file's order) is %g, "
                              "out of range for f32; use `dtype f64`",
                              f->name, (long long)(done + i), v);
                break;
            }
            int64_t at = h->fortran ? off : done + i;
            if (m->f32store) ((float *)dst)[at] = (float)v;
            else ((double *)dst)[at] = v;
            if (h->fortran) /* next position, the first index fastest */
                for (int k = 0; k < h->rank; k++) {
                    off += stride[k];
                    if (++idx[k] < h->dim[k]) break;
                    off -= stride[k] * h->dim[k];
                    idx[k] = 0;
                }
        }
        done += n;
    }
    free(buf);
    return ok;
}

static bool npy_load(npy_file *f, bpv_data *d) {
    bpv_model *m = f->m;
    npy_header h;
    int64_t data_off = 0;
    if (!npy_header_read(f, &h, &data_off)) return false;
    char sh[64 * 22 + 8];
    if (h.rank == 0)
        return NPY_FAIL(f,
                        "%s is a 0-d array (shape ()), a single number; data needs a first "
                        "dimension of samples: save np.atleast_1d(a)",
                        f->name);
    if (h.rank > BPV_MAX_RANK + 1)
        return NPY_FAIL(f,
                        "%s has %d dimensions (shape %s); data takes at most %d: the samples "
                        "and a sample of at most %d",
                        f->name, h.rank, shape_text(&h, sh, sizeof sh), BPV_MAX_RANK + 1,
                        BPV_MAX_RANK);
    if (h.dim[0] == 0)
        return NPY_FAIL(f, "%s has no samples (shape %s)", f->name, shape_text(&h, sh, sizeof sh));
    int64_t nvals = 1;
    for (int k = 0; k < h.rank; k++) {
        if (h.dim[k] == 0)
            return NPY_FAIL(f, "%s: its samples hold no values (shape %s)", f->name,
                            shape_text(&h, sh, sizeof sh));
        if (nvals > (INT64_MAX / 8) / h.dim[k])
            return NPY_FAIL(f, "%s: its shape %s promises more values than any file holds", f->name,
                            shape_text(&h, sh, sizeof sh));
        nvals *= h.dim[k];
    }
    const int64_t want = nvals * h.size, have = f->size - data_off;
    if (have != want)
        return NPY_FAIL(f,
                        "%s %s: the header promises %lld %s value%s (%lld bytes) but %lld "
                        "bytes follow",
                        f->name, have < want ? "is truncated" : "has bytes after its values",
                        (long long)nvals, kind_name(&h), nvals == 1 ? "" : "s", (long long)want,
                        (long long)have);
    if (nvals > BPV_MAX_TENSOR_ELEMS)
        return NPY_FAIL(
            f, "%s holds %lld values (shape %s); the limit is %lld (BPV_MAX_TENSOR_ELEMS)", f->name,
            (long long)nvals, shape_text(&h, sh, sizeof sh), (long long)BPV_MAX_TENSOR_ELEMS);
    const size_t esz = m->f32store ? sizeof(float) : sizeof(double);
    if (!bpv_model_fits(m, (size_t)nvals * esz)) {
        char what[600];
        snprintf(what, sizeof what, "the model with the values of '%s'", f->path);
        return bpv_model_too_big(m, f->err, f->fa->off, f->fa->len, what, (size_t)nvals * esz);
    }
    void *dst = bpv_arena_alloc(m->arena, (size_t)nvals * esz);
    if (!dst) return bpv_model_oom(f->err);
    if (!npy_values(f, &h, nvals, dst)) return false;
    d->nsamples = h.dim[0];
    d->sample = (bpv_shape){0};
    d->sample.rank = h.rank - 1;
    for (int k = 1; k < h.rank; k++) d->sample.dim[k - 1] = h.dim[k];
    /* a file's values go to the model in its storage only, as csv()'s */
    if (m->f32store) d->values32 = dst;
    else d->values = dst;
    return true;
}

bool bpv_npy_load(bpv_model *m, const bpv_stmt *st, bpv_data *d, bpv_error **err) {
    const bpv_ast *e = st->value;
    if (e->kwnames)
        for (int i = 0; i < e->nargs; i++)
            if (e->kwnames[i])
                return bpv_model_fail(m, err, e->kwoffs[i], strlen(e->kwnames[i]),
                                      "npy() takes only a file name: npy(\"file.npy\")");
    if (e->nargs != 1)
        return bpv_model_fail(
            m, err, e->off, e->len,
            "npy() takes one argument, a file name, like npy(\"file.npy\"); got %d", e->nargs);
    const bpv_ast *fa = e->args[0];
    if (fa->kind != AST_STRING)
        return bpv_model_fail(m, err, fa->off, fa->len,
                              "npy() needs a file name in quotes, like \"data.npy\"");
    bpv_buf path;
    struct stat fst;
    int fd = bpv_data_open(m, fa, "a .npy file", &path, &fst, err);
    if (fd < 0) return false;
    npy_file f = {m, fa, fa->name, path.data, fd, (int64_t)fst.st_size, err};
    bool ok = npy_load(&f, d);
    close(fd);
    bpv_buf_free(&path);
    return ok;
}
