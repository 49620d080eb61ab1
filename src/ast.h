/* Parser: tokens -> AST. The AST is a list of statements, every node owned
 * by the model's arena and located by byte offsets into the source. */
#ifndef BPV_AST_H
#define BPV_AST_H

#include "base.h"
#include "lexer.h"

/* Binding powers of the operators (parser.c), which figures and the C
 * builder read too (through the op rows) to write expressions: a higher one
 * binds tighter. */
enum {
    BPV_PREC_NONE = 0,
    BPV_PREC_ADD = 10,
    BPV_PREC_MUL = 11,
    BPV_PREC_NEG = 12, /* between * and ^: -x*y is (-x)*y, -x^2 is -(x^2) */
    BPV_PREC_POW_RIGHT = 13,
    BPV_PREC_POW = 14,
    BPV_PREC_ATOM = 20
};

typedef enum bpv_ast_kind {
    AST_NUMBER, /* num */
    AST_NAME,   /* name */
    AST_STRING, /* name holds the unquoted text (escapes resolved) */
    AST_UNARY,  /* op = TK_MINUS or TK_PLUS, args[0] */
    AST_BINARY, /* op = TK_PLUS ... TK_AT (TK_STARSTAR is folded to TK_CARET), args[0], args[1] */
    AST_CALL,   /* name(args...); kwnames[i] non-NULL for NAME=VALUE arguments */
    AST_LIST,   /* [args...] */
    AST_RANGE,  /* A:B inside a call (csv columns), or A..B inside an index (op = TK_DOTDOT):
                 * args[0], args[1] */
    AST_INDEX   /* name[args[0]]: a family member (h[t-1]), a range of them (h[1..5], args[0]
                 * an AST_RANGE) or one slice of a tensor's first sample dimension (x[2]);
                 * name_off locates the name */
} bpv_ast_kind;

typedef struct bpv_ast {
    bpv_ast_kind kind;
    size_t off, len; /* whole expression's span, for carets under it */
    bpv_token_kind op;
    double num;
    const char *name; /* arena string */
    size_t name_off;  /* AST_CALL: offset of the function name */
    struct bpv_ast **args;
    const char **kwnames; /* NULL when the call has no keyword arguments */
    size_t *kwoffs;
    int nargs;
} bpv_ast;

/* KEY=VALUE as in `train epochs=100` or `param w = 1 lr=0.1`. */
typedef struct bpv_ast_kv {
    const char *key;
    size_t key_off, key_len;
    bpv_ast *value;
} bpv_ast_kv;

/* The loop variables in force for a statement that a `for` block unrolled:
 * innermost first, each with its value for this copy (the parser's arena). */
typedef struct bpv_loop_env {
    const char *var;
    int64_t value;
    size_t for_off, for_len;        /* the `for ... {` header, for messages */
    const struct bpv_loop_env *up;  /* the enclosing loop's, or NULL */
} bpv_loop_env;

typedef enum bpv_stmt_kind {
    ST_DATA,    /* data NAME = value */
    ST_PARAM,   /* param NAME = value [kv...] */
    ST_CONST,   /* const NAME = value */
    ST_LET,     /* NAME = value */
    ST_FN,      /* fn NAME(params) = value [grad p = e, ...] */
    ST_TRAIN,   /* train kv... */
    ST_PREDICT, /* predict NAME(kv...): name is the node, kv the bindings */
    ST_DTYPE,   /* dtype NAME (f32 | f64): name */
    ST_FOR      /* parser only: a `for` block, unrolled into the statements it makes */
} bpv_stmt_kind;

typedef struct bpv_stmt {
    bpv_stmt_kind kind;
    size_t off, len; /* whole statement, without comment and newline */
    const char *name;
    size_t name_off, name_len;
    bpv_ast *value;
    /* ST_FN */
    const char **params;
    size_t *param_offs;
    int nparams;
    /* ST_FN with `grad`: grads[i] is the partial for params[i] or NULL */
    bpv_ast **grads;
    /* ST_PARAM options, ST_TRAIN keys, ST_PREDICT bindings */
    bpv_ast_kv *kv;
    int nkv;
    /* ST_LET of a family member, `h[t] = ...`: name is the member's own
     * ("h[3]"), family the family's ("h") and member its index */
    const char *family;
    int64_t member;
    bpv_ast *index;            /* the index as written */
    const bpv_loop_env *env;   /* a statement a `for` unrolled: its loop variables, else NULL */
    /* ST_FOR (parser only): `for var in lo..hi { body }` */
    bpv_ast *lo, *hi;
    struct bpv_stmt *body;
    int nbody;
} bpv_stmt;

typedef struct bpv_program {
    bpv_stmt *stmts;
    int nstmts;
} bpv_program;

/* Default maximum nesting of parentheses/brackets/unary operators the
 * parser accepts; deeper input gets a located error instead of exhausting
 * the stack. The limit in force is bpv_limits_get()->nesting (environment
 * variable BPV_MAX_NESTING, at most BPV_NESTING_CEILING). */
#define BPV_MAX_NESTING 200

/* A number as written, with any unary signs around it folded in ("-2",
 * "--0.5"); false when e is not one. */
bool bpv_ast_number(const bpv_ast *e, double *v);

/* Evaluates an index or a loop bound: a whole number, a loop variable of
 * env, and + - * of them. Returns true with the value in *v, or false with
 * a message in msg and *bad set to the sub-expression at fault. */
bool bpv_index_eval(const bpv_ast *e, const bpv_loop_env *env, int64_t *v, const bpv_ast **bad,
                    char *msg, size_t msglen);

/* Parses the whole source. Returns false with a located error in *err on the
 * first syntax error. All nodes are allocated in `arena`. */
bool bpv_parse(const bpv_source *src, bpv_arena *arena, bpv_program *out, bpv_error **err);

#endif
