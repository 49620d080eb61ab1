/* Shared foundations: arena, growable string buffer, source text and
 * located diagnostics, number formatting. Every other module builds on
 * these and nothing here knows about models. */
#ifndef BPV_BASE_H
#define BPV_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bpviz/bpviz.h"

#if defined(__GNUC__)
#define BPV_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BPV_PRINTF(f, a)
#endif

/* ---- arena: owns every AST node, graph node and buffer of a model ------ */
/* Memory is released all at once by bpv_arena_free; there is no per-object
 * free. Allocations are zeroed and aligned for any type. */
typedef struct bpv_arena bpv_arena;
bpv_arena *bpv_arena_new(void);
void bpv_arena_free(bpv_arena *a);
/* Returns NULL when the request overflows or the system is out of memory. */
void *bpv_arena_alloc(bpv_arena *a, size_t size);
/* alloc of n * size with overflow check. */
void *bpv_arena_calloc(bpv_arena *a, size_t n, size_t size);
char *bpv_arena_strndup(bpv_arena *a, const char *s, size_t n);
char *bpv_arena_strdup(bpv_arena *a, const char *s);
/* Bytes handed out so far (for the model memory limit). */
size_t bpv_arena_used(const bpv_arena *a);

/* ---- string buffer ----------------------------------------------------- */
typedef struct bpv_buf {
    char *data; /* NUL-terminated, malloc'd; owned by the buffer */
    size_t len, cap;
} bpv_buf;
void bpv_buf_init(bpv_buf *b);
void bpv_buf_free(bpv_buf *b);
void bpv_buf_add(bpv_buf *b, const char *s, size_t n);
void bpv_buf_puts(bpv_buf *b, const char *s);
void bpv_buf_putc(bpv_buf *b, char c);
void bpv_buf_printf(bpv_buf *b, const char *fmt, ...) BPV_PRINTF(2, 3);
/* Hands the malloc'd text to the caller and resets the buffer. */
char *bpv_buf_take(bpv_buf *b);

/* ---- source text and diagnostics --------------------------------------- */
typedef struct bpv_source {
    const char *name; /* "model.bp" or "<stdin>" as shown in messages */
    const char *dir;  /* folder relative CSV paths start from */
    const char *text; /* NUL-terminated copy of the file */
    size_t len;
} bpv_source;

/* Line and column (both from 1; the column counts UTF-8 characters) of a
 * byte offset, computed on demand: tokens and AST nodes carry offsets only. */
void bpv_source_locate(const bpv_source *src, size_t off, int *line, int *col);

/* Makes a located error:
 *   NAME:LINE:COL: error: MESSAGE
 *       <source line>
 *       ^~~~   (caret under off, tildes over the rest of len, at least 1)
 * `status` is BPV_ERR_MODEL for mistakes in the model. Returns a malloc'd
 * bpv_error the caller frees with bpv_error_free. */
bpv_error *bpv_error_at(const bpv_source *src, size_t off, size_t len, int status,
                        const char *fmt, ...) BPV_PRINTF(5, 6);
/* An error with no location: "bpviz: error: MESSAGE\n". */
bpv_error *bpv_error_new(int status, const char *fmt, ...) BPV_PRINTF(2, 3);
/* A public function's argument that must not be NULL:
 * "bpviz: error: FN: ARG is NULL" with status BPV_ERR_MODEL (the caller's
 * mistake, like a wrong command line). */
bpv_error *bpv_error_null(const char *fn, const char *arg);
/* Stores e in *err when err is not NULL, frees it otherwise; returns status. */
int bpv_error_set(bpv_error **err, bpv_error *e);

/* Appends n bytes of text a user wrote (a file name, an argument, a CSV
 * cell) for a message on one line: valid UTF-8 and tabs are kept; line
 * ends, other control bytes (a terminal's escape sequences) and invalid
 * UTF-8 show as '?'. */
void bpv_buf_put_clean(bpv_buf *b, const char *s, size_t n);

/* Checks that text is valid UTF-8 with no NUL bytes; on failure returns
 * false and the offset of the first bad byte. */
bool bpv_utf8_valid(const char *s, size_t len, size_t *bad_off);

/* The known name closest to `name` by edit distance, or NULL if none is
 * close enough to suggest. */
const char *bpv_closest(const char *name, const char *const *known, size_t n);

/* ---- resource limits ---------------------------------------------------- */
/* Every input-driven size bpviz accepts has a limit, so that no file can make
 * it allocate without bound. Each has a default and an environment variable
 * that overrides it (docs/language.md, "Limits"). Values are read once, on
 * first use. */
typedef struct bpv_limits {
    int64_t tensor_elems; /* BPV_MAX_TENSOR_ELEMS: elements of one tensor */
    int nodes;            /* BPV_MAX_NODES: nodes of one compiled graph */
    int nesting;          /* BPV_MAX_NESTING: brackets/unary/^ nesting depth */
    size_t line_bytes;    /* BPV_MAX_LINE_BYTES: bytes in one source line */
    size_t source_bytes;  /* BPV_MAX_SOURCE_MB: size of a model file (bytes) */
    size_t trace_bytes;   /* BPV_MAX_TRACE_MB: size of a JSON trace file (bytes) */
} bpv_limits;

/* Hard ceiling of BPV_MAX_NESTING: the parser and compiler recurse once per
 * level, and this many levels fit any thread's stack. */
#define BPV_NESTING_CEILING 1000

/* The limits in force: defaults, overridden by valid environment values. */
const bpv_limits *bpv_limits_get(void);
/* An error (status 2) naming the first environment variable whose value is
 * not a valid limit, or NULL when all are valid. */
bpv_error *bpv_limits_error(void);

/* Writes one note (a whole line, newline included) to bpv_notes_to's
 * stream, if any. */
void bpv_note(const char *line);

/* ---- the memory budget ------------------------------------------------------
 * One budget covers everything a run holds: the model (data, params with
 * gradients and optimizer state, compiled graphs), the files read whole
 * (CSV, .npy), the kept snapshots, the output text of a JSON trace or HTML
 * player, the gradient check's double copy of a graph and a PNG's pixels.
 * Each is sized before it is allocated and refused with a message that
 * says what needed how much. The budget is bpv_memory_budget_set's, else
 * BPV_MEMORY's (a size: 512M, 16G), else 4 GiB or half the physical memory
 * when that is less. */
uint64_t bpv_memory_budget(void);
/* A size: a whole number of bytes, or with K, M, G or T (powers of 1024),
 * optionally followed by "B" or "iB" ("512M", "16GiB"). */
bool bpv_size_parse(const char *s, uint64_t *out);
/* "4 GiB", "12.8 GiB", "512 MiB", "1.5 KiB", "300 bytes" into buf (>= 32 bytes). */
char *bpv_size_text(char *buf, uint64_t bytes);
/* The message for `need` bytes over the budget:
 * "WHAT needs 12.8 GiB, more than the memory budget of 4 GiB; ADVICE, or
 * raise it with --memory 16G (or BPV_MEMORY)". advice may be NULL. */
bpv_error *bpv_memory_error(const char *what, uint64_t need, const char *advice);
/* The same message into buf (for located errors); returns buf. */
char *bpv_memory_text(char *buf, size_t size, const char *what, uint64_t need,
                      const char *advice);
/* The heap bytes the process holds now (glibc's count; 0 elsewhere), for
 * a check made where the model's own count is not at hand. */
uint64_t bpv_memory_held(void);
/* Whether `need` more bytes on top of `used` fit the budget. */
bool bpv_memory_fits(uint64_t used, uint64_t need);

/* ---- numbers ----------------------------------------------------------- */
/* Formats v the way Python's repr() formats a float: shortest text that
 * reads back to the same double, "1.0", "0.1", "1e-05", "1e+16", "nan",
 * "inf", "-inf", "-0.0". Appends to b. For a float32 value, widen it to
 * double first (the printed digits are those of the widened double). */
void bpv_fmt_repr(bpv_buf *b, double v);
/* Same, into a fixed buffer of at least 32 bytes; returns buf. */
char *bpv_fmt_repr_s(char *buf, double v);

#endif
