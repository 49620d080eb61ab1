/* Data declarations: `data x = [...]` (a list of samples),
 * `data x = csv("file.csv", COLUMNS)` and `data x = npy("file.npy")`
 * (npy.c), read once at load into arena
 * values rounded to the dtype, and under float32 storage a float32 copy
 * the graphs read batches from. Further file formats belong here. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"

int bpv_data_open(const bpv_model *m, const bpv_ast *fa, const char *kind, bpv_buf *path,
                  struct stat *st, bpv_error **err) {
    bpv_buf_init(path);
    if (fa->name[0] != '/' && m->src.dir && *m->src.dir && strcmp(m->src.dir, ".") != 0) {
        bpv_buf_puts(path, m->src.dir);
        bpv_buf_putc(path, '/');
    }
    bpv_buf_puts(path, fa->name);
    if (!path->data) {
        bpv_model_oom(err);
        return -1;
    }
    /* only a regular file: a FIFO without a writer would block for ever
     * (O_NONBLOCK opens it at once, and fstat then tells what it is), and
     * a device or folder is no data */
    int fd = open(path->data, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        bpv_model_fail(m, err, fa->off, fa->len, "cannot read '%s': %s", path->data,
                       strerror(errno));
        bpv_buf_free(path);
        return -1;
    }
    if (fstat(fd, st) != 0) {
        bpv_model_fail(m, err, fa->off, fa->len, "cannot read '%s': %s", path->data,
                       strerror(errno));
        close(fd);
        bpv_buf_free(path);
        return -1;
    }
    if (!S_ISREG(st->st_mode)) {
        if (S_ISDIR(st->st_mode))
            bpv_model_fail(m, err, fa->off, fa->len, "'%s' is a folder, not %s", path->data, kind);
        else
            bpv_model_fail(m, err, fa->off, fa->len,
                           "'%s' is not a regular file (a pipe or a device)", path->data);
        close(fd);
        bpv_buf_free(path);
        return -1;
    }
    /* reads block again: a regular file never waits anyway */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

/* Under float32 storage a list's values are also kept as float32, the
 * form the graphs read batches from (the doubles the list was read into
 * stay in the arena; a CSV file's go straight to float32). */
static bool data_store(bpv_model *m, bpv_data *d, const bpv_ast *e, bpv_error **err) {
    if (!m->f32store) return true;
    const int64_t nv = d->nsamples * bpv_shape_numel(&d->sample);
    const size_t bytes = (size_t)(nv ? nv : 1) * sizeof(float);
    if (!bpv_model_fits(m, bytes))
        return bpv_model_too_big(m, err, e->off, e->len, "the model with this data", bytes);
    if (!(d->values32 = bpv_arena_alloc(m->arena, bytes))) return bpv_model_oom(err);
    for (int64_t i = 0; i < nv; i++) d->values32[i] = (float)d->values[i];
    return true;
}

/* Splits a list value into samples: the first dimension counts samples. */
static bool data_list(bpv_model *m, const bpv_stmt *st, bpv_data *d, bpv_error **err) {
    char what[300];
    snprintf(what, sizeof what, "data '%s'", st->name);
    const bpv_ast *e = st->value;
    if (e->kind == AST_LIST && e->nargs == 0)
        return bpv_model_fail(m, err, e->off, e->len, "data '%s' is empty; give it at least one sample",
                    st->name);
    if (e->kind != AST_LIST)
        return bpv_model_fail(m, err, e->off, e->len,
                    "data '%s' needs a list of samples, like [1, 2, 3], csv(\"file.csv\", 0) "
                    "or npy(\"file.npy\")",
                    st->name);
    bpv_shape s;
    double *v;
    if (!bpv_const_eval(m, e, what, &s, &v, err)) return false;
    d->nsamples = s.dim[0];
    d->sample.rank = s.rank - 1;
    for (int k = 1; k < s.rank; k++) d->sample.dim[k - 1] = s.dim[k];
    d->values = v;
    return data_store(m, d, e, err);
}

/* Whether s is a number as the language writes one (lexer.c): an optional
 * sign, digits with at most one '.', at least one digit, and an optional
 * exponent with digits: no inf, nan or hexadecimal, which strtod takes. */
static bool number_syntax(const char *s) {
    if (*s == '+' || *s == '-') s++;
    int digits = 0;
    while (*s >= '0' && *s <= '9') s++, digits++;
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++) digits++;
    if (!digits) return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return false;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == '\0';
}

/* Parses one CSV number cell: surrounding blanks and quotes are ignored.
 * 0: a number; 1: not a number; 2: a number too large for a double. */
static int csv_cell(const char *s, size_t n, double *v) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') s++, n -= 2;
    if (n == 0 || n > 63) return 1;
    char buf[64];
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!number_syntax(buf)) return 1;
    *v = strtod(buf, NULL);
    return isinf(*v) ? 2 : 0;
}

/* Text of a CSV row or cell for a message: at most `max` bytes, control
 * bytes shown as '?'. */
static void put_clipped(bpv_buf *b, const char *s, size_t n, size_t max) {
    for (size_t i = 0; i < n && i < max; i++)
        bpv_buf_putc(b, (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i]);
    if (n > max) bpv_buf_puts(b, "...");
}

/* The note that a CSV's first row was taken as a header: a row of numbers
 * with a typo would otherwise vanish without a word. */
static void header_note(const bpv_model *m, const bpv_ast *fa, int lineno, const char *row,
                        size_t rowlen, const char *cell, size_t celllen, int col) {
    int line, c;
    bpv_source_locate(&m->src, fa->off, &line, &c);
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_buf_printf(&b, "%s:%d:%d: note: line %d of '", m->src.name, line, c, lineno);
    put_clipped(&b, fa->name, strlen(fa->name), 200);
    bpv_buf_puts(&b, "' is taken as a header and skipped (");
    put_clipped(&b, row, rowlen, 60);
    bpv_buf_puts(&b, "): '");
    put_clipped(&b, cell, celllen, 40);
    bpv_buf_printf(&b, "' in column %d is not a number\n", col);
    if (b.data) bpv_note(b.data);
    bpv_buf_free(&b);
}

static bool data_csv(bpv_model *m, const bpv_stmt *st, bpv_data *d, bpv_error **err) {
    const bpv_ast *e = st->value;
    if (e->kwnames)
        for (int i = 0; i < e->nargs; i++)
            if (e->kwnames[i])
                return bpv_model_fail(m, err, e->kwoffs[i], strlen(e->kwnames[i]),
                            "csv() takes a file name and a column: csv(\"file.csv\", 0)");
    if (e->nargs != 2)
        return bpv_model_fail(m, err, e->off, e->len,
                    "csv() takes a file name and a column, like csv(\"file.csv\", 0) or "
                    "csv(\"file.csv\", 0:3); got %d argument%s",
                    e->nargs, e->nargs == 1 ? "" : "s");
    const bpv_ast *fa = e->args[0], *ca = e->args[1];
    if (fa->kind != AST_STRING)
        return bpv_model_fail(m, err, fa->off, fa->len, "csv() needs a file name in quotes, like \"data.csv\"");
    double c0, c1;
    if (ca->kind == AST_RANGE) {
        if (!bpv_ast_whole(ca->args[0], 0, 1e6, &c0) || !bpv_ast_whole(ca->args[1], 0, 1e6, &c1) || c1 <= c0)
            return bpv_model_fail(m, err, ca->off, ca->len,
                        "a column range A:B needs whole numbers with A < B (columns A to B-1)");
    } else {
        if (!bpv_ast_whole(ca, 0, 1e6, &c0))
            return bpv_model_fail(m, err, ca->off, ca->len,
                        "the column must be a whole number from 0 (or a range A:B)");
        c1 = c0 + 1;
    }
    int col0 = (int)c0, ncol = (int)(c1 - c0);
    bool vec = ca->kind == AST_RANGE;

    bpv_buf path;
    struct stat fst;
    int fd = bpv_data_open(m, fa, "a CSV file", &path, &fst, err);
    if (fd < 0) return false;
    FILE *f = fdopen(fd, "rb");
    if (!f) close(fd);
    char *text = NULL;
    size_t len = 0;
    int saved = errno;
    /* the file is read whole: its bytes count against the memory budget,
     * before they are read (its size) and while (a file that grows) */
    const uint64_t used = bpv_arena_used(m->arena), budget = bpv_memory_budget();
    const uint64_t room = used < budget ? budget - used : 0;
    bool too_big = f && S_ISREG(fst.st_mode) && (uint64_t)fst.st_size > room;
    if (f && !too_big) {
        size_t cap = 1 << 16;
        text = malloc(cap);
        size_t r;
        while (text && (r = fread(text + len, 1, cap - len - 1, f)) > 0) {
            len += r;
            if (len > room) {
                too_big = true;
                break;
            }
            if (len + 1 == cap) {
                size_t next = cap * 2 > room + 2 ? (size_t)room + 2 : cap * 2;
                char *t = realloc(text, next);
                if (!t) free(text);
                text = t;
                cap = next;
            }
        }
        saved = ferror(f) ? errno : 0;
        if (ferror(f)) {
            free(text);
            text = NULL;
        }
        fclose(f);
        if (!text && !saved) saved = ENOMEM;
    } else if (f) {
        fclose(f);
    }
    if (too_big) {
        free(text);
        char what[600];
        snprintf(what, sizeof what, "the model with '%s' read", path.data);
        uint64_t size = S_ISREG(fst.st_mode) && (uint64_t)fst.st_size > len ? (uint64_t)fst.st_size : len;
        bpv_model_too_big(m, err, fa->off, fa->len, what, (size_t)size);
        bpv_buf_free(&path);
        return false;
    }
    if (!text) {
        bpv_model_fail(m, err, fa->off, fa->len, "cannot read '%s': %s", path.data,
             strerror(saved ? saved : EIO));
        bpv_buf_free(&path);
        return false;
    }
    text[len] = '\0';

    double *vals = NULL;
    size_t nvals = 0, capv = 0;
    int64_t rows = 0;
    bool ok = true, first = true;
    int lineno = 0;
    /* a spreadsheet's UTF-8 byte order mark is not part of the first cell */
    size_t start = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    for (size_t p = start; p < len && ok;) {
        /* a row ends at \n, \r\n or a lone \r (old Mac spreadsheets) */
        size_t q = p;
        while (q < len && text[q] != '\n' && text[q] != '\r') q++;
        lineno++;
        const char *ln = text + p;
        size_t ll = q - p;
        p = q + (q + 1 < len && text[q] == '\r' && text[q + 1] == '\n' ? 2 : 1);
        bool blank = true;
        for (size_t i = 0; i < ll; i++)
            if (ln[i] != ' ' && ln[i] != '\t') blank = false;
        if (blank) continue;
        /* cell boundaries of the columns we want */
        double row[64];
        double *rv = ncol <= 64 ? row : NULL;
        if (!rv) rv = malloc((size_t)ncol * sizeof *rv);
        if (!rv) {
            ok = bpv_model_oom(err);
            break;
        }
        int c = 0, got = 0;
        size_t cs = 0;
        bool bad = false, huge = false;
        size_t bad_s = 0, bad_n = 0;
        int bad_c = 0;
        for (size_t i = 0; i <= ll; i++) {
            if (i < ll && ln[i] != ',') continue;
            if (c >= col0 && c < col0 + ncol) {
                double v = 0;
                int st = csv_cell(ln + cs, i - cs, &v);
                if (st != 0 && !bad) {
                    bad = true;
                    huge = st == 2;
                    bad_s = cs;
                    bad_n = i - cs;
                    bad_c = c;
                }
                rv[c - col0] = v;
                got++;
            }
            c++;
            cs = i + 1;
        }
        if (first && bad && !huge) { /* a header row: said, never silent */
            first = false;
            if (rv != row) free(rv);
            header_note(m, fa, lineno, ln, ll, ln + bad_s, bad_n, bad_c);
            continue;
        }
        first = false;
        if (got < ncol) {
            ok = bpv_model_fail(m, err, ca->off, ca->len, "%s:%d: this row has %d column%s; column %d is missing",
                      fa->name, lineno, c, c == 1 ? "" : "s", col0 + got);
        } else if (bad && huge) {
            ok = bpv_model_fail(m, err, fa->off, fa->len,
                      "%s:%d: '%.*s' in column %d is out of range: larger than the largest "
                      "double (about 1.8e308)",
                      fa->name, lineno, (int)(bad_n > 40 ? 40 : bad_n), ln + bad_s, bad_c);
        } else if (bad) {
            ok = bpv_model_fail(m, err, fa->off, fa->len,
                      "%s:%d: '%.*s' in column %d is not a number (numbers are written as in "
                      "the language: 1, -2.5, 1e-3)",
                      fa->name, lineno, (int)(bad_n > 40 ? 40 : bad_n), ln + bad_s, bad_c);
        } else {
            if (nvals + (size_t)ncol > (size_t)BPV_MAX_TENSOR_ELEMS) {
                ok = bpv_model_fail(m, err, fa->off, fa->len,
                          "%s has more than %lld values in the chosen columns; the limit is %lld "
                          "(BPV_MAX_TENSOR_ELEMS)",
                          fa->name, (long long)BPV_MAX_TENSOR_ELEMS,
                          (long long)BPV_MAX_TENSOR_ELEMS);
            } else {
                if (nvals + (size_t)ncol > capv) {
                    size_t nc = capv ? capv * 2 : 1024;
                    while (nc < nvals + (size_t)ncol) nc *= 2;
                    double *nv = realloc(vals, nc * sizeof *nv);
                    if (!nv) ok = bpv_model_oom(err);
                    else vals = nv, capv = nc;
                }
                for (int k = 0; ok && k < ncol; k++) {
                    double r = bpv_round(m->dtype, rv[k]);
                    if (isinf(r) && isfinite(rv[k])) {
                        ok = bpv_model_fail(m, err, fa->off, fa->len,
                                  "%s:%d: %g is out of range for f32; use `dtype f64`", fa->name,
                                  lineno, rv[k]);
                    }
                    if (ok) vals[nvals++] = r;
                }
                rows++;
            }
        }
        if (rv != row) free(rv);
    }
    free(text);
    if (ok && rows == 0)
        ok = bpv_model_fail(m, err, fa->off, fa->len, "'%s' has no data rows", path.data);
    /* a file's values go to the model in its storage only: float32 under
     * f32 (the compiler's checks read them there), so no second copy */
    const size_t esz = m->f32store ? sizeof(float) : sizeof(double);
    if (ok && !bpv_model_fits(m, nvals * esz)) {
        char what[600];
        snprintf(what, sizeof what, "the model with the values of '%s'", path.data);
        ok = bpv_model_too_big(m, err, fa->off, fa->len, what, nvals * esz);
    }
    if (ok && m->f32store) {
        d->values32 = bpv_arena_alloc(m->arena, (nvals ? nvals : 1) * esz);
        if (!d->values32) ok = bpv_model_oom(err);
        else
            for (size_t i = 0; i < nvals; i++) d->values32[i] = (float)vals[i];
    } else if (ok) {
        d->values = bpv_arena_calloc(m->arena, nvals, sizeof(double));
        if (!d->values) ok = bpv_model_oom(err);
        else memcpy(d->values, vals, nvals * sizeof(double));
    }
    if (ok) {
        d->nsamples = rows;
        d->sample = (bpv_shape){0};
        if (vec) d->sample = (bpv_shape){1, {ncol}};
    }
    free(vals);
    bpv_buf_free(&path);
    return ok;
}

bool bpv_data_load(bpv_model *m, const bpv_stmt *st, bpv_data *d, bpv_error **err) {
    const bpv_ast *e = st->value;
    if (e->kind == AST_CALL && strcmp(e->name, "csv") == 0) return data_csv(m, st, d, err);
    if (e->kind == AST_CALL && strcmp(e->name, "npy") == 0) return bpv_npy_load(m, st, d, err);
    return data_list(m, st, d, err);
}
