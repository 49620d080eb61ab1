/* A JSON reader for files bpviz reads (traces, trace.c): the whole text
 * parsed into a tree in an arena, every value with the byte offset it
 * starts at so that a reader of the tree can report located errors. Strict
 * RFC 8259: UTF-8 without NUL bytes, no trailing commas or comments, no
 * duplicate keys, numbers within the double range; bounded nesting and
 * string lengths. An array of numbers (a tensor's row) is kept as a flat
 * array of doubles rather than one node per number; in such an array the
 * strings "nan", "inf" and "-inf" are the numbers they name, the spelling
 * bpviz writes them with. */
#ifndef BPV_JSONREAD_H
#define BPV_JSONREAD_H

#include "base.h"

typedef enum bpv_jtype {
    BPV_J_NULL,
    BPV_J_BOOL,
    BPV_J_NUM,
    BPV_J_STR,
    BPV_J_ARR,  /* any array; items in arr */
    BPV_J_NUMS, /* a non-empty array of numbers only; in nums */
    BPV_J_OBJ
} bpv_jtype;

typedef struct bpv_jval bpv_jval;
typedef struct bpv_jmem bpv_jmem;

struct bpv_jval {
    bpv_jtype type;
    bool b;             /* BPV_J_BOOL */
    size_t off;         /* byte offset of its first character */
    size_t len;         /* bytes of its text for scalars, 1 for arrays and objects */
    union {
        double num;                                 /* BPV_J_NUM */
        struct { const char *s; size_t n; } str;    /* decoded, NUL-terminated */
        struct { bpv_jval *v; size_t n; } arr;
        struct { double *v; size_t n; } nums;
        struct { bpv_jmem *m; size_t n; } obj;
    };
};

struct bpv_jmem {
    const char *key;
    size_t key_off;     /* where the key's opening quote is */
    bpv_jval val;
};

typedef struct bpv_json_limits {
    int depth;          /* arrays and objects nested deeper: an error */
    size_t string_bytes; /* longest string (decoded bytes) */
    size_t arena_bytes; /* memory the tree may take (bpv_arena_used) */
    const char *limit_env; /* named in the memory message (the budget's option) */
} bpv_json_limits;

/* Parses src->text (src->len bytes, NUL-terminated) into a tree allocated
 * in `a` (freed with it). Returns the root, or NULL with a located error
 * (status 2; status 1 when out of memory) stored in err. */
const bpv_jval *bpv_json_parse(const bpv_source *src, bpv_arena *a, const bpv_json_limits *lim,
                               bpv_error **err);

/* The member `key` of an object, or NULL (also when v is not an object). */
const bpv_jval *bpv_json_get(const bpv_jval *v, const char *key);

/* The JSON type's name for messages: "null", "a number", "an array"... */
const char *bpv_json_type_name(const bpv_jval *v);

#endif
