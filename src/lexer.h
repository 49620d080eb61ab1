/* Lexer: source text -> tokens. Tokens carry byte offsets; line and column
 * are computed only when an error is reported. */
#ifndef BPV_LEXER_H
#define BPV_LEXER_H

#include "base.h"

/* X-macro so the token names table and the enum cannot drift apart. */
#define BPV_TOKENS(X)              \
    X(TK_EOF, "end of file")       \
    X(TK_NEWLINE, "end of line")   \
    X(TK_NAME, "name")             \
    X(TK_NUMBER, "number")         \
    X(TK_STRING, "string")         \
    X(TK_PLUS, "'+'")              \
    X(TK_MINUS, "'-'")             \
    X(TK_STAR, "'*'")              \
    X(TK_SLASH, "'/'")             \
    X(TK_CARET, "'^'")             \
    X(TK_STARSTAR, "'**'")         \
    X(TK_AT, "'@'")                \
    X(TK_LPAREN, "'('")            \
    X(TK_RPAREN, "')'")            \
    X(TK_LBRACKET, "'['")          \
    X(TK_RBRACKET, "']'")          \
    X(TK_COMMA, "','")             \
    X(TK_ASSIGN, "'='")            \
    X(TK_COLON, "':'")             \
    X(TK_DOTDOT, "'..'")           \
    X(TK_LBRACE, "'{'")            \
    X(TK_RBRACE, "'}'")            \
    /* keywords */                 \
    X(TK_DATA, "'data'")           \
    X(TK_PARAM, "'param'")         \
    X(TK_CONST, "'const'")         \
    X(TK_FN, "'fn'")               \
    X(TK_GRAD, "'grad'")           \
    X(TK_TRAIN, "'train'")         \
    X(TK_PREDICT, "'predict'")     \
    X(TK_DTYPE, "'dtype'")         \
    X(TK_FOR, "'for'")

typedef enum bpv_token_kind {
#define BPV_TK_ENUM(k, s) k,
    BPV_TOKENS(BPV_TK_ENUM)
#undef BPV_TK_ENUM
    TK_COUNT
} bpv_token_kind;

#define TK_FIRST_KEYWORD TK_DATA

/* Printable name of a token kind for messages ("'+'", "name"). */
const char *bpv_token_name(bpv_token_kind k);

typedef struct bpv_token {
    bpv_token_kind kind;
    size_t off, len; /* bytes of the token in the source */
    double num;      /* TK_NUMBER: value (strtod of the text) */
} bpv_token;

typedef struct bpv_lexer {
    const bpv_source *src;
    size_t pos;
    int depth;        /* open ( and [: newlines inside them are not ends */
    bpv_token ahead;  /* one-token lookahead */
    bool has_ahead;
} bpv_lexer;

void bpv_lexer_init(bpv_lexer *lx, const bpv_source *src);
/* Reads the next token. On a lexical error returns false and stores a
 * located error in *err. Comments are skipped; a newline is TK_NEWLINE only
 * outside brackets. */
bool bpv_lexer_next(bpv_lexer *lx, bpv_token *tok, bpv_error **err);
/* Looks at the next token without consuming it. */
bool bpv_lexer_peek(bpv_lexer *lx, bpv_token *tok, bpv_error **err);

/* Keyword names, for "names that are keywords" errors and suggestions. */
bool bpv_is_keyword(const char *s, size_t n);

#endif
