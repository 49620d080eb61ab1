/* Parser: tokens -> AST (after Lua's lparser.c). Statements by recursive
 * descent, expressions by precedence climbing over a {left, right} priority
 * table. Nesting is counted so that hostile input gets a located error
 * instead of exhausting the C stack. Every error names the token found. */
#include "ast.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Operator chains such as a+b+c+... are parsed in a loop but still make a
 * deep tree, and later stages walk trees recursively: bound the height. */
#define MAX_TREE_HEIGHT 1000

/* Nodes carry their tree height, hidden behind the public struct. */
typedef struct node {
    bpv_ast ast; /* first: a bpv_ast * to it is a node * */
    int height;
} node;

typedef struct parser {
    const bpv_source *src;
    bpv_arena *arena;
    bpv_lexer lx;
    bpv_token tok;                    /* current token */
    bpv_token prev;                   /* last consumed token */
    int nest;                         /* open brackets, unary operators and ^ operands */
    size_t open[BPV_NESTING_CEILING + 1]; /* offsets of the open ( and [ */
    int nopen;
    int blocks;                       /* open `for` blocks: '}' may end a statement */
    bpv_error **err;
} parser;

/* ---- errors --------------------------------------------------------------- */

static char *vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static bool error_at(parser *p, size_t off, size_t len, const char *fmt, ...) BPV_PRINTF(4, 5);
static bool error_at(parser *p, size_t off, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    bpv_error_set(p->err,
                  bpv_error_at(p->src, off, len, BPV_ERR_MODEL, "%s", msg ? msg : "out of memory"));
    free(msg);
    return false;
}

static bool out_of_memory(parser *p) {
    bpv_error_set(p->err,
                  bpv_error_new(BPV_ERR_RUNTIME, "out of memory while reading '%s'", p->src->name));
    return false;
}

/* Up to 32 bytes of source text, "..." when cut; buf holds 40 bytes. */
static const char *clip(const char *s, size_t n, char *buf) {
    if (n <= 32) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        return buf;
    }
    size_t k = 29;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    memcpy(buf, s, k);
    strcpy(buf + k, "...");
    return buf;
}

/* How a message names a token: 'x', '(', end of line, string "a.csv". */
static const char *describe(const parser *p, const bpv_token *t, char *buf /* 48 */) {
    if (t->kind == TK_EOF) return "end of file";
    if (t->kind == TK_NEWLINE) return "end of line";
    char tmp[40];
    clip(p->src->text + t->off, t->len, tmp);
    snprintf(buf, 48, t->kind == TK_STRING ? "string %s" : "'%s'", tmp);
    return buf;
}

static const char *text_of(const parser *p, const bpv_token *t, char *buf /* 40 */) {
    return clip(p->src->text + t->off, t->len, buf);
}

static bool is_keyword(bpv_token_kind k) { return k >= TK_FIRST_KEYWORD && k < TK_COUNT; }

static bool keyword_error(parser *p) {
    char b[40];
    return error_at(p, p->tok.off, p->tok.len, "'%s' is a keyword and cannot be used as a name",
                    text_of(p, &p->tok, b));
}

static const char *const colon_hint =
    "; a range A:B is only allowed as a call argument, as in csv(\"data.csv\", 0:2)";

/* "<what>, found <token>" at the current token. When the file ends inside
 * brackets the real mistake is the unclosed bracket, so point at it.
 * `closing`: the caller wanted the innermost bracket's closer. */
static bool expected_hint(parser *p, bool closing, const char *hint, const char *fmt, ...)
    BPV_PRINTF(4, 5);
static bool expected_hint(parser *p, bool closing, const char *hint, const char *fmt, ...) {
    if (p->tok.kind == TK_EOF && p->nopen > 0) {
        size_t o = p->open[p->nopen - 1];
        return error_at(p, o, 1, "'%c' is never closed", p->src->text[o]);
    }
    va_list ap;
    va_start(ap, fmt);
    char *what = vformat(fmt, ap);
    va_end(ap);
    if (!what) return out_of_memory(p);
    char d[48];
    bpv_buf b;
    bpv_buf_init(&b);
    bpv_buf_printf(&b, "%s, found %s", what, describe(p, &p->tok, d));
    free(what);
    if (hint)
        bpv_buf_puts(&b, hint);
    else if (p->tok.kind == TK_COLON)
        bpv_buf_puts(&b, colon_hint);
    if (closing && p->nopen > 0) {
        size_t o = p->open[p->nopen - 1];
        int l1, c1, l2, c2;
        bpv_source_locate(p->src, o, &l1, &c1);
        bpv_source_locate(p->src, p->tok.off, &l2, &c2);
        if (l2 > l1)
            bpv_buf_printf(&b, " (the '%c' on line %d is still open)", p->src->text[o], l1);
    }
    error_at(p, p->tok.off, p->tok.len, "%s", b.data);
    bpv_buf_free(&b);
    return false;
}

/* ---- tokens --------------------------------------------------------------- */

static bool next(parser *p) {
    p->prev = p->tok;
    return bpv_lexer_next(&p->lx, &p->tok, p->err);
}

static bool peek_is(parser *p, bpv_token_kind k, bool *ok) {
    bpv_token t;
    *ok = bpv_lexer_peek(&p->lx, &t, p->err);
    return *ok && t.kind == k;
}

static size_t prev_end(const parser *p) { return p->prev.off + p->prev.len; }

static bool enter(parser *p, size_t off, size_t len) {
    int max = bpv_limits_get()->nesting;
    if (p->nest >= max)
        return error_at(p, off, len,
                        "expression nested too deeply (more than %d levels; BPV_MAX_NESTING)", max);
    p->nest++;
    return true;
}

/* Consumes an opening bracket, counting it as one nesting level. */
static bool open_bracket(parser *p) {
    if (!enter(p, p->tok.off, p->tok.len)) return false;
    p->open[p->nopen++] = p->tok.off;
    return next(p);
}

static bool close_bracket(parser *p) {
    p->nopen--;
    p->nest--;
    return next(p);
}

/* ---- growable arrays in the arena ------------------------------------------ */

typedef struct vec {
    void *data;
    int n, cap;
} vec;

static bool vec_push(parser *p, vec *v, size_t elem, const void *item) {
    if (v->n == v->cap) {
        if (v->cap > (1 << 29)) return out_of_memory(p);
        int cap = v->cap ? v->cap * 2 : 4;
        void *d = bpv_arena_calloc(p->arena, (size_t)cap, elem);
        if (!d) return out_of_memory(p);
        if (v->n) memcpy(d, v->data, (size_t)v->n * elem);
        v->data = d;
        v->cap = cap;
    }
    memcpy((char *)v->data + (size_t)v->n * elem, item, elem);
    v->n++;
    return true;
}

/* ---- duplicate names --------------------------------------------------------- */

typedef struct named {
    const char *name;
    size_t off;
    int idx;
} named;

static int named_cmp(const void *a, const void *b) {
    const named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Sorted copy of n names with their offsets; the caller frees it. Sorting
 * keeps duplicate checks O(n log n) on hostile input. */
static named *sorted_names(const char *const *names, const size_t *offs, int n) {
    named *s = malloc((size_t)(n ? n : 1) * sizeof *s);
    if (!s) return NULL;
    for (int i = 0; i < n; i++)
        s[i] = (named){names[i], offs[i], i};
    qsort(s, (size_t)n, sizeof *s, named_cmp);
    return s;
}

/* Reports the earliest repeated name: "<fmt with the name>". names[i] may
 * be NULL (positional arguments). */
static bool check_unique(parser *p, const char *const *names, const size_t *offs, int n,
                         const char *fmt) {
    if (n < 2) return true;
    named *s = malloc((size_t)n * sizeof *s);
    if (!s) return out_of_memory(p);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (names[i]) s[k++] = (named){names[i], offs[i], i};
    qsort(s, (size_t)k, sizeof *s, named_cmp);
    const named *dup = NULL;
    for (int i = 1; i < k; i++)
        if (strcmp(s[i].name, s[i - 1].name) == 0 && (!dup || s[i].off < dup->off)) dup = &s[i];
    bool ok = true;
    if (dup) {
        char b[40];
        ok = error_at(p, dup->off, strlen(dup->name), fmt, clip(dup->name, strlen(dup->name), b));
    }
    free(s);
    return ok;
}

/* ---- expressions --------------------------------------------------------- */

static bpv_ast *new_node(parser *p, bpv_ast_kind kind, size_t off, int height, size_t loc,
                         size_t loclen) {
    if (height > MAX_TREE_HEIGHT) {
        error_at(p, loc, loclen,
                 "expression too complex (more than %d operations deep); split it into named "
                 "steps",
                 MAX_TREE_HEIGHT);
        return NULL;
    }
    node *n = bpv_arena_alloc(p->arena, sizeof *n);
    if (!n) {
        out_of_memory(p);
        return NULL;
    }
    n->height = height;
    n->ast.kind = kind;
    n->ast.off = off;
    n->ast.len = prev_end(p) - off;
    return &n->ast;
}

static int height_of(const bpv_ast *a) { return ((const node *)a)->height; }

/* Binding powers: a higher left priority binds tighter; right < left makes
 * an operator right associative. */
static const struct {
    unsigned char left, right;
} priority[TK_COUNT] = {
    [TK_PLUS] = {BPV_PREC_ADD, BPV_PREC_ADD},
    [TK_MINUS] = {BPV_PREC_ADD, BPV_PREC_ADD},
    [TK_STAR] = {BPV_PREC_MUL, BPV_PREC_MUL},
    [TK_SLASH] = {BPV_PREC_MUL, BPV_PREC_MUL},
    [TK_AT] = {BPV_PREC_MUL, BPV_PREC_MUL},
    [TK_CARET] = {BPV_PREC_POW, BPV_PREC_POW_RIGHT},
    [TK_STARSTAR] = {BPV_PREC_POW, BPV_PREC_POW_RIGHT},
};
/* Between * and ^: -x*y is (-x)*y, -x^2 is -(x^2). */
#define UNARY_PRIORITY BPV_PREC_NEG

static bpv_ast *subexpr(parser *p, int limit);
static bpv_ast *parse_expr(parser *p) { return subexpr(p, 0); }

static char *unescape(parser *p, const bpv_token *t) {
    const char *s = p->src->text + t->off + 1;
    size_t n = t->len - 2;
    char *out = bpv_arena_alloc(p->arena, n + 1);
    if (!out) {
        out_of_memory(p);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            c = s[++i];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c; /* the lexer allowed only \" \\ \n \t */
        }
        out[k++] = c;
    }
    out[k] = '\0';
    return out;
}

/* name(args): positional arguments first, then NAME=VALUE; A:B ranges. */
static bpv_ast *parse_call(parser *p) {
    bpv_token name = p->prev;
    vec args = {0}, kwnames = {0}, kwoffs = {0};
    int height = 0;
    bool any_kw = false;
    char b[40];
    if (!open_bracket(p)) return NULL;
    while (p->tok.kind != TK_RPAREN) {
        const char *kw = NULL;
        size_t kwoff = 0;
        bool ok = true;
        if ((p->tok.kind == TK_NAME || is_keyword(p->tok.kind)) && peek_is(p, TK_ASSIGN, &ok)) {
            if (p->tok.kind != TK_NAME) return keyword_error(p), NULL;
            kw = bpv_arena_strndup(p->arena, p->src->text + p->tok.off, p->tok.len);
            if (!kw) return out_of_memory(p), NULL;
            kwoff = p->tok.off;
            any_kw = true;
            if (!next(p) || !next(p)) return NULL;
        } else if (!ok) {
            return NULL;
        } else if (any_kw && p->tok.kind != TK_EOF) {
            error_at(p, p->tok.off, p->tok.len,
                     "a positional argument cannot follow a keyword argument in '%s(...)'",
                     text_of(p, &name, b));
            return NULL;
        }
        size_t start = p->tok.off;
        bpv_ast *a = parse_expr(p);
        if (!a) return NULL;
        if (p->tok.kind == TK_COLON) {
            size_t colon = p->tok.off;
            if (!next(p)) return NULL;
            bpv_ast *hi = parse_expr(p);
            if (!hi) return NULL;
            int h = height_of(a) > height_of(hi) ? height_of(a) : height_of(hi);
            bpv_ast *r = new_node(p, AST_RANGE, start, h + 1, colon, 1);
            if (!r) return NULL;
            r->args = bpv_arena_calloc(p->arena, 2, sizeof *r->args);
            if (!r->args) return out_of_memory(p), NULL;
            r->args[0] = a;
            r->args[1] = hi;
            r->nargs = 2;
            a = r;
        }
        if (height_of(a) > height) height = height_of(a);
        if (!vec_push(p, &args, sizeof a, &a) || !vec_push(p, &kwnames, sizeof kw, &kw) ||
            !vec_push(p, &kwoffs, sizeof kwoff, &kwoff))
            return NULL;
        if (p->tok.kind == TK_COMMA) {
            if (!next(p)) return NULL;
        } else if (p->tok.kind != TK_RPAREN) {
            expected_hint(p, true, NULL, "expected ',' or ')' after an argument of '%s'",
                          text_of(p, &name, b));
            return NULL;
        }
    }
    if (!close_bracket(p)) return NULL;
    if (any_kw && !check_unique(p, kwnames.data, kwoffs.data, kwnames.n,
                                "keyword argument '%s' is given twice"))
        return NULL;
    bpv_ast *c = new_node(p, AST_CALL, name.off, height + 1, name.off, name.len);
    if (!c) return NULL;
    c->name = bpv_arena_strndup(p->arena, p->src->text + name.off, name.len);
    if (!c->name) return out_of_memory(p), NULL;
    c->name_off = name.off;
    c->args = args.data;
    c->nargs = args.n;
    if (any_kw) {
        c->kwnames = kwnames.data;
        c->kwoffs = kwoffs.data;
    }
    return c;
}

/* name[i], name[A..B]: the name is the token just consumed. */
static bpv_ast *parse_index(parser *p) {
    bpv_token name = p->prev;
    char b[40];
    if (!open_bracket(p)) return NULL;
    size_t start = p->tok.off;
    bpv_ast *i = parse_expr(p);
    if (!i) return NULL;
    if (p->tok.kind == TK_DOTDOT) {
        size_t dots = p->tok.off;
        if (!next(p)) return NULL;
        bpv_ast *hi = parse_expr(p);
        if (!hi) return NULL;
        int h = height_of(i) > height_of(hi) ? height_of(i) : height_of(hi);
        bpv_ast *r = new_node(p, AST_RANGE, start, h + 1, dots, 2);
        if (!r) return NULL;
        r->op = TK_DOTDOT;
        r->args = bpv_arena_calloc(p->arena, 2, sizeof *r->args);
        if (!r->args) return out_of_memory(p), NULL;
        r->args[0] = i;
        r->args[1] = hi;
        r->nargs = 2;
        i = r;
    }
    if (p->tok.kind != TK_RBRACKET) {
        expected_hint(p, true, NULL, "expected ']' after the index of '%s'", text_of(p, &name, b));
        return NULL;
    }
    if (!close_bracket(p)) return NULL;
    bpv_ast *x = new_node(p, AST_INDEX, name.off, height_of(i) + 1, name.off, name.len);
    if (!x) return NULL;
    x->name = bpv_arena_strndup(p->arena, p->src->text + name.off, name.len);
    if (!x->name) return out_of_memory(p), NULL;
    x->name_off = name.off;
    x->args = bpv_arena_calloc(p->arena, 1, sizeof *x->args);
    if (!x->args) return out_of_memory(p), NULL;
    x->args[0] = i;
    x->nargs = 1;
    return x;
}

static bpv_ast *parse_list(parser *p) {
    size_t start = p->tok.off;
    vec elems = {0};
    int height = 0;
    if (!open_bracket(p)) return NULL;
    while (p->tok.kind != TK_RBRACKET) {
        bpv_ast *e = parse_expr(p);
        if (!e || !vec_push(p, &elems, sizeof e, &e)) return NULL;
        if (height_of(e) > height) height = height_of(e);
        if (p->tok.kind == TK_COMMA) {
            if (!next(p)) return NULL;
        } else if (p->tok.kind != TK_RBRACKET) {
            expected_hint(p, true, NULL, "expected ',' or ']' after a list element");
            return NULL;
        }
    }
    if (!close_bracket(p)) return NULL;
    bpv_ast *l = new_node(p, AST_LIST, start, height + 1, start, 1);
    if (!l) return NULL;
    l->args = elems.data;
    l->nargs = elems.n;
    return l;
}

static bpv_ast *primary(parser *p) {
    char b[40];
    switch (p->tok.kind) {
    case TK_NUMBER: {
        if (!next(p)) return NULL;
        bpv_ast *n = new_node(p, AST_NUMBER, p->prev.off, 1, 0, 0);
        if (n) n->num = p->prev.num;
        return n;
    }
    case TK_STRING: {
        if (!next(p)) return NULL;
        bpv_ast *s = new_node(p, AST_STRING, p->prev.off, 1, 0, 0);
        if (s && !(s->name = unescape(p, &p->prev))) return NULL;
        return s;
    }
    case TK_NAME: {
        if (!next(p)) return NULL;
        if (p->tok.kind == TK_LPAREN) return parse_call(p);
        if (p->tok.kind == TK_LBRACKET) return parse_index(p);
        bpv_ast *n = new_node(p, AST_NAME, p->prev.off, 1, 0, 0);
        if (n && !(n->name = bpv_arena_strndup(p->arena, p->src->text + p->prev.off, p->prev.len)))
            return out_of_memory(p), NULL;
        return n;
    }
    case TK_LPAREN: {
        if (!open_bracket(p)) return NULL;
        bpv_ast *e = parse_expr(p);
        if (!e) return NULL;
        if (p->tok.kind != TK_RPAREN) {
            expected_hint(p, true, NULL, "expected ')' after the expression");
            return NULL;
        }
        /* the node keeps its own span; enclosing nodes' spans cover the parens */
        return close_bracket(p) ? e : NULL;
    }
    case TK_LBRACKET: return parse_list(p);
    case TK_LBRACE:
    case TK_RBRACE:
        error_at(p, p->tok.off, p->tok.len,
                 "unexpected '%c'; lists are written with '[' and ']' (braces hold the body of a "
                 "for loop)",
                 p->src->text[p->tok.off]);
        return NULL;
    default: break;
    }
    if (is_keyword(p->tok.kind)) return keyword_error(p), NULL;
    if (p->tok.kind == TK_NEWLINE && priority[p->prev.kind].left > 0) {
        expected_hint(p, false,
                      "; to continue an expression on the next line, wrap it in parentheses",
                      "expected an expression after '%s'", text_of(p, &p->prev, b));
        return NULL;
    }
    expected_hint(p, false, NULL, "expected an expression after '%s'", text_of(p, &p->prev, b));
    return NULL;
}

static bpv_ast *subexpr(parser *p, int limit) {
    size_t start = p->tok.off;
    bpv_ast *left;
    if (p->tok.kind == TK_MINUS || p->tok.kind == TK_PLUS) {
        bpv_token op = p->tok;
        if (!enter(p, op.off, op.len) || !next(p)) return NULL;
        bpv_ast *operand = subexpr(p, UNARY_PRIORITY);
        if (!operand) return NULL;
        p->nest--;
        left = new_node(p, AST_UNARY, start, height_of(operand) + 1, op.off, op.len);
        if (!left) return NULL;
        left->op = op.kind;
        left->args = bpv_arena_calloc(p->arena, 1, sizeof *left->args);
        if (!left->args) return out_of_memory(p), NULL;
        left->args[0] = operand;
        left->nargs = 1;
    } else {
        left = primary(p);
        if (!left) return NULL;
    }
    while (priority[p->tok.kind].left > limit) {
        bpv_token op = p->tok;
        bool power = op.kind == TK_CARET || op.kind == TK_STARSTAR;
        /* ^ chains recurse once per operator; + - * / @ loop instead */
        if (power && !enter(p, op.off, op.len)) return NULL;
        if (!next(p)) return NULL;
        bpv_ast *right = subexpr(p, priority[op.kind].right);
        if (!right) return NULL;
        if (power) p->nest--;
        int h = height_of(left) > height_of(right) ? height_of(left) : height_of(right);
        bpv_ast *bin = new_node(p, AST_BINARY, start, h + 1, op.off, op.len);
        if (!bin) return NULL;
        bin->op = op.kind == TK_STARSTAR ? TK_CARET : op.kind;
        bin->args = bpv_arena_calloc(p->arena, 2, sizeof *bin->args);
        if (!bin->args) return out_of_memory(p), NULL;
        bin->args[0] = left;
        bin->args[1] = right;
        bin->nargs = 2;
        left = bin;
    }
    return left;
}

/* ---- statements ------------------------------------------------------------ */

static bool expect_name(parser *p, const char *fmt, const char *arg) {
    if (p->tok.kind == TK_NAME) return true;
    if (is_keyword(p->tok.kind)) return keyword_error(p);
    return expected_hint(p, false, NULL, fmt, arg);
}

/* The statement text so far, for messages like "expected '=' after 'param w'". */
static const char *so_far(const parser *p, size_t start, char *buf /* 40 */) {
    return clip(p->src->text + start, prev_end(p) - start, buf);
}

static bool take_name(parser *p, const char **name, size_t *off, size_t *len) {
    *name = bpv_arena_strndup(p->arena, p->src->text + p->tok.off, p->tok.len);
    if (!*name) return out_of_memory(p);
    if (off) *off = p->tok.off;
    if (len) *len = p->tok.len;
    return next(p);
}

/* KEY=VALUE, the current token being KEY (a name or a keyword). */
static bool parse_kv(parser *p, vec *kv, const char *what) {
    if (p->tok.kind != TK_NAME) return keyword_error(p);
    bpv_ast_kv item = {0};
    if (!take_name(p, &item.key, &item.key_off, &item.key_len)) return false;
    if (p->tok.kind != TK_ASSIGN) {
        char b[40];
        return expected_hint(p, false, NULL, "expected '=' after the %s '%s'", what,
                             clip(item.key, item.key_len, b));
    }
    if (!next(p) || !(item.value = parse_expr(p))) return false;
    return vec_push(p, kv, sizeof item, &item);
}

static bool check_kv_unique(parser *p, const vec *kv, const char *fmt) {
    const bpv_ast_kv *items = kv->data;
    const char **names = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *names);
    size_t *offs = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *offs);
    bool ok = names && offs;
    if (!ok) out_of_memory(p);
    for (int i = 0; ok && i < kv->n; i++) {
        names[i] = items[i].key;
        offs[i] = items[i].key_off;
    }
    if (ok) ok = check_unique(p, names, offs, kv->n, fmt);
    free(names);
    free(offs);
    return ok;
}

static bool parse_fn(parser *p, bpv_stmt *st, size_t start) {
    char b[40];
    if (!expect_name(p, "expected a function name after '%s'", "fn") ||
        !take_name(p, &st->name, &st->name_off, &st->name_len))
        return false;
    if (p->tok.kind != TK_LPAREN)
        return expected_hint(p, false, NULL, "expected '(' and the parameters after '%s'",
                             so_far(p, start, b));
    if (!open_bracket(p)) return false;
    vec params = {0}, offs = {0};
    while (p->tok.kind != TK_RPAREN) {
        const char *name;
        size_t off;
        if (!expect_name(p, "expected a parameter name in '%s'", so_far(p, start, b)) ||
            !take_name(p, &name, &off, NULL) || !vec_push(p, &params, sizeof name, &name) ||
            !vec_push(p, &offs, sizeof off, &off))
            return false;
        if (p->tok.kind == TK_COMMA) {
            if (!next(p)) return false;
        } else if (p->tok.kind != TK_RPAREN) {
            return expected_hint(p, true, NULL, "expected ',' or ')' after a parameter");
        }
    }
    if (!close_bracket(p)) return false;
    st->params = params.data;
    st->param_offs = offs.data;
    st->nparams = params.n;
    if (!check_unique(p, st->params, st->param_offs, st->nparams, "parameter '%s' is listed twice"))
        return false;
    if (p->tok.kind != TK_ASSIGN)
        return expected_hint(p, false, NULL, "expected '=' after '%s'", so_far(p, start, b));
    if (!next(p) || !(st->value = parse_expr(p))) return false;
    if (p->tok.kind != TK_GRAD) return true;

    /* grad a = EXPR, b = EXPR: stored aligned with the parameters */
    if (!next(p)) return false;
    st->grads =
        bpv_arena_calloc(p->arena, (size_t)(st->nparams ? st->nparams : 1), sizeof *st->grads);
    named *sorted = sorted_names(st->params, st->param_offs, st->nparams);
    if (!st->grads || !sorted) {
        free(sorted);
        return out_of_memory(p);
    }
    bool ok = true;
    for (;;) {
        if (!(ok = expect_name(p, "expected a parameter name after '%s'", "grad"))) break;
        char *gname = bpv_arena_strndup(p->arena, p->src->text + p->tok.off, p->tok.len);
        if (!gname) {
            ok = out_of_memory(p);
            break;
        }
        named *hit = NULL;
        for (int lo = 0, hi = st->nparams; lo < hi;) { /* names are unique: compare names only */
            int mid = lo + (hi - lo) / 2;
            int c = strcmp(gname, sorted[mid].name);
            if (c == 0) {
                hit = &sorted[mid];
                break;
            }
            if (c < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        if (!hit) {
            bpv_buf list;
            bpv_buf_init(&list);
            for (int i = 0; i < st->nparams && i < 8; i++)
                bpv_buf_printf(&list, "%s'%s'", i ? ", " : "",
                               clip(st->params[i], strlen(st->params[i]), b));
            if (st->nparams > 8) bpv_buf_puts(&list, ", ...");
            char fb[40];
            if (st->nparams == 0)
                error_at(p, p->tok.off, p->tok.len,
                         "'%s' is not a parameter of '%s', which has none", text_of(p, &p->tok, b),
                         clip(st->name, st->name_len, fb));
            else
                error_at(p, p->tok.off, p->tok.len,
                         "'%s' is not a parameter of '%s'; its parameters are %s",
                         text_of(p, &p->tok, b), clip(st->name, st->name_len, fb), list.data);
            bpv_buf_free(&list);
            ok = false;
            break;
        }
        if (st->grads[hit->idx]) {
            ok = error_at(p, p->tok.off, p->tok.len, "the gradient for '%s' is given twice",
                          text_of(p, &p->tok, b));
            break;
        }
        if (!(ok = next(p))) break;
        if (p->tok.kind != TK_ASSIGN) {
            ok = expected_hint(p, false, NULL, "expected '=' after 'grad %s'",
                               clip(gname, strlen(gname), b));
            break;
        }
        if (!(ok = next(p))) break;
        bpv_ast *g = parse_expr(p);
        if (!g) {
            ok = false;
            break;
        }
        st->grads[hit->idx] = g;
        if (p->tok.kind != TK_COMMA) break;
        if (!(ok = next(p))) break;
    }
    free(sorted);
    return ok;
}

static bool member_name(parser *p, bpv_stmt *st, const bpv_loop_env *env);

/* `[I]` after a statement's name: the one family member it defines or
 * predicts (a range is for stack() and cat()); the name's span then covers
 * the brackets. */
static bool member_index(parser *p, bpv_stmt *st) {
    char b[40];
    if (!open_bracket(p) || !(st->index = parse_expr(p))) return false;
    if (p->tok.kind == TK_DOTDOT)
        return error_at(p, p->tok.off, p->tok.len,
                        "a definition names one member, like %s[t]; a range A..B selects "
                        "several, for stack() and cat()",
                        clip(st->name, st->name_len, b));
    if (p->tok.kind != TK_RBRACKET)
        return expected_hint(p, true, NULL, "expected ']' after the index of '%s'",
                             clip(st->name, st->name_len, b));
    if (!close_bracket(p)) return false;
    st->name_len = prev_end(p) - st->name_off;
    return true;
}

static bool parse_predict(parser *p, bpv_stmt *st) {
    if (!expect_name(p, "expected the name of a node after '%s'", "predict") ||
        !take_name(p, &st->name, &st->name_off, &st->name_len))
        return false;
    if (p->tok.kind == TK_LBRACKET) { /* predict h[2](...): a family member */
        if (!member_index(p, st) || !member_name(p, st, NULL)) return false;
        st->family = NULL;
    }
    if (p->tok.kind != TK_LPAREN) return true; /* `predict w`: nothing to bind */
    vec kv = {0};
    char b[40];
    if (!open_bracket(p)) return false;
    while (p->tok.kind != TK_RPAREN) {
        bool ok = true;
        bool is_kv =
            (p->tok.kind == TK_NAME || is_keyword(p->tok.kind)) && peek_is(p, TK_ASSIGN, &ok);
        if (!ok) return false;
        if (!is_kv)
            return expected_hint(p, false, NULL,
                                 "expected NAME=VALUE in 'predict', like predict %s(x=5)",
                                 clip(st->name, st->name_len, b));
        if (!parse_kv(p, &kv, "name")) return false;
        if (p->tok.kind == TK_COMMA) {
            if (!next(p)) return false;
        } else if (p->tok.kind != TK_RPAREN) {
            return expected_hint(p, true, NULL, "expected ',' or ')' after a value in 'predict'");
        }
    }
    if (!close_bracket(p)) return false;
    st->kv = kv.data;
    st->nkv = kv.n;
    return check_kv_unique(p, &kv, "'%s' is given twice");
}

static bool end_of_statement(parser *p) {
    bpv_token_kind k = p->tok.kind;
    if (k == TK_NEWLINE || k == TK_EOF || (k == TK_RBRACE && p->blocks > 0)) return true;
    char d[48];
    if (k == TK_RPAREN || k == TK_RBRACKET)
        return error_at(p, p->tok.off, p->tok.len, "unexpected %s", describe(p, &p->tok, d));
    const char *hint = "";
    if (p->prev.kind == TK_NUMBER && (k == TK_NAME || k == TK_LPAREN))
        hint = "; write '*' to multiply";
    else if (k == TK_COLON)
        hint = colon_hint;
    else if (k == TK_COMMA)
        hint = "; a list is written in brackets, like [1, 2]";
    else if (k == TK_GRAD)
        hint = "; 'grad' belongs at the end of a 'fn' definition";
    return error_at(p, p->tok.off, p->tok.len, "unexpected %s after the end of the statement%s",
                    describe(p, &p->tok, d), hint);
}

static bool parse_statement(parser *p, bpv_stmt *st);

/* for VAR in LO..HI { statements }: the body is kept as parsed, and
 * unrolled (unroll) once the enclosing loops' values are known. */
static bool parse_for(parser *p, bpv_stmt *st, size_t start) {
    char b[40];
    if (!expect_name(p, "expected a loop variable after '%s'", "for") ||
        !take_name(p, &st->name, &st->name_off, &st->name_len))
        return false;
    if (!(p->tok.kind == TK_NAME && p->tok.len == 2 && memcmp(p->src->text + p->tok.off, "in", 2) == 0))
        return expected_hint(p, false, NULL, "expected 'in' after '%s'", so_far(p, start, b));
    if (!next(p) || !(st->lo = parse_expr(p))) return false;
    if (p->tok.kind != TK_DOTDOT)
        return expected_hint(p, false, "; a loop runs over a range A..B, both ends included",
                             "expected '..' after '%s'", so_far(p, start, b));
    if (!next(p) || !(st->hi = parse_expr(p))) return false;
    if (p->tok.kind != TK_LBRACE)
        return expected_hint(p, false, NULL, "expected '{' after '%s'", so_far(p, start, b));
    size_t brace = p->tok.off;
    if (!enter(p, brace, 1) || !next(p)) return false;
    st->len = prev_end(p) - start;
    vec body = {0};
    p->blocks++;
    for (;;) {
        while (p->tok.kind == TK_NEWLINE)
            if (!next(p)) return false;
        if (p->tok.kind == TK_RBRACE) break;
        if (p->tok.kind == TK_EOF) return error_at(p, brace, 1, "'{' is never closed");
        bpv_stmt in;
        if (!parse_statement(p, &in)) return false;
        if (in.kind != ST_LET && in.kind != ST_FOR)
            return error_at(p, in.off, in.kind == ST_FN || in.kind == ST_TRAIN ? 1 : in.len,
                            "only node definitions (NAME[%s] = ...) and for loops can be inside a "
                            "for block",
                            clip(st->name, st->name_len, b));
        if (in.kind == ST_LET && !in.index) {
            char v[40];
            return error_at(p, in.name_off, in.name_len,
                            "'%s' would be defined again at every step of the loop; make it a "
                            "family member indexed by the loop variable, like %s[%s]",
                            clip(in.name, in.name_len, b), b, clip(st->name, st->name_len, v));
        }
        if (in.kind == ST_FOR && strcmp(in.name, st->name) == 0)
            return error_at(p, in.name_off, in.name_len,
                            "the loop variable '%s' is already the enclosing loop's",
                            clip(in.name, in.name_len, b));
        if (!vec_push(p, &body, sizeof in, &in)) return false;
    }
    p->blocks--;
    p->nest--;
    if (!next(p)) return false; /* the '}' */
    st->body = body.data;
    st->nbody = body.n;
    return true;
}

/* A family member's definition, `h[t] = ...`: its own name, h[3], from the
 * index under env. */
static bool member_name(parser *p, bpv_stmt *st, const bpv_loop_env *env) {
    char msg[200];
    const bpv_ast *bad;
    int64_t k;
    if (!bpv_index_eval(st->index, env, &k, &bad, msg, sizeof msg))
        return error_at(p, bad->off, bad->len, "%s", msg);
    if (k < 0)
        return error_at(p, st->index->off, st->index->len,
                        "a family member's index must be 0 or more; this one is %lld%s%s%s",
                        (long long)k, env ? " (when " : "", env ? env->var : "",
                        env ? " has the value that makes it negative)" : "");
    st->family = st->name;
    st->member = k;
    size_t n = strlen(st->name) + 24;
    char *name = bpv_arena_alloc(p->arena, n);
    if (!name) return out_of_memory(p);
    snprintf(name, n, "%s[%lld]", st->family, (long long)k);
    st->name = name;
    return true;
}

/* Appends the statements a for block makes: its body once per value of
 * its variable, innermost loops unrolled in turn. */
static bool unroll(parser *p, const bpv_stmt *f, const bpv_loop_env *env, vec *out) {
    char msg[200];
    const bpv_ast *bad;
    int64_t lo, hi;
    if (!bpv_index_eval(f->lo, env, &lo, &bad, msg, sizeof msg) ||
        !bpv_index_eval(f->hi, env, &hi, &bad, msg, sizeof msg)) {
        if (bad->kind == AST_NAME)
            return error_at(p, bad->off, bad->len,
                            "a loop's bounds must be constant: whole numbers, or expressions of "
                            "an enclosing loop's variable; '%s' is neither",
                            bad->name);
        return error_at(p, bad->off, bad->len, "%s", msg);
    }
    size_t span = f->hi->off + f->hi->len - f->lo->off;
    if (hi < lo)
        return error_at(p, f->lo->off, span,
                        "this loop would run from %lld down to %lld; a range A..B needs A <= B",
                        (long long)lo, (long long)hi);
    const int64_t limit = bpv_limits_get()->nodes, room = limit - out->n;
    const int64_t steps = hi - lo + 1; /* the bounds are below 2^53 in size */
    if (steps > room || (f->nbody > 0 && steps > room / f->nbody))
        return error_at(p, f->off, f->len,
                        "this for loop would unroll to %lld steps of %d statement%s; a model may "
                        "have at most %lld statements once unrolled (BPV_MAX_NODES)",
                        (long long)steps, f->nbody, f->nbody == 1 ? "" : "s", (long long)limit);
    for (int64_t v = lo; v <= hi; v++) {
        bpv_loop_env *e = bpv_arena_alloc(p->arena, sizeof *e);
        if (!e) return out_of_memory(p);
        *e = (bpv_loop_env){f->name, v, f->off, f->len, env};
        for (int i = 0; i < f->nbody; i++) {
            const bpv_stmt *b = &f->body[i];
            if (b->kind == ST_FOR) {
                if (!unroll(p, b, e, out)) return false;
                continue;
            }
            bpv_stmt c = *b;
            c.env = e;
            if (!member_name(p, &c, e) || !vec_push(p, out, sizeof c, &c)) return false;
        }
    }
    return true;
}

bool bpv_index_eval(const bpv_ast *e, const bpv_loop_env *env, int64_t *v, const bpv_ast **bad,
                    char *msg, size_t msglen) {
    /* whole numbers well inside a double's exact range: sums and products
     * of them are checked against it */
    const double big = 0x1p52;
    *bad = e;
    switch (e->kind) {
    case AST_NUMBER:
        if (e->num != floor(e->num)) {
            snprintf(msg, msglen, "an index must be a whole number");
            return false;
        }
        if (fabs(e->num) >= big) break;
        *v = (int64_t)e->num;
        return true;
    case AST_NAME:
        for (const bpv_loop_env *l = env; l; l = l->up)
            if (strcmp(l->var, e->name) == 0) {
                *v = l->value;
                return true;
            }
        snprintf(msg, msglen,
                 "'%.40s' is not a loop variable here; an index is a whole number or an "
                 "expression of a loop variable, like t-1",
                 e->name);
        return false;
    case AST_UNARY: {
        int64_t a;
        if (!bpv_index_eval(e->args[0], env, &a, bad, msg, msglen)) return false;
        *v = e->op == TK_MINUS ? -a : a;
        return true;
    }
    case AST_BINARY: {
        int64_t a, b;
        if (e->op != TK_PLUS && e->op != TK_MINUS && e->op != TK_STAR) {
            snprintf(msg, msglen, "an index may only add, subtract and multiply (like 2*t+1)");
            return false;
        }
        if (!bpv_index_eval(e->args[0], env, &a, bad, msg, msglen) ||
            !bpv_index_eval(e->args[1], env, &b, bad, msg, msglen))
            return false;
        *bad = e;
        double r = e->op == TK_PLUS ? (double)a + (double)b
                   : e->op == TK_MINUS ? (double)a - (double)b
                                       : (double)a * (double)b;
        if (fabs(r) >= big) break;
        *v = (int64_t)r;
        return true;
    }
    default:
        snprintf(msg, msglen,
                 "an index is a whole number or an expression of a loop variable, like t-1");
        return false;
    }
    snprintf(msg, msglen, "this index is too large");
    return false;
}

static bool parse_statement(parser *p, bpv_stmt *st) {
    memset(st, 0, sizeof *st);
    size_t start = p->tok.off;
    st->off = start;
    bpv_token_kind k = p->tok.kind;
    char b[40], d[48];
    bool ok = true;
    /* `train = 1`: a keyword used as a name, not a train statement. After
     * data/param/const a forgotten name is likelier: their parse says so. */
    if (is_keyword(k) && k != TK_DATA && k != TK_PARAM && k != TK_CONST &&
        peek_is(p, TK_ASSIGN, &ok))
        return keyword_error(p);
    if (!ok) return false;
    switch (k) {
    case TK_DATA:
    case TK_PARAM:
    case TK_CONST:
        st->kind = k == TK_DATA ? ST_DATA : k == TK_PARAM ? ST_PARAM : ST_CONST;
        if (!next(p) || !expect_name(p, "expected a name after '%s'", text_of(p, &p->prev, b)) ||
            !take_name(p, &st->name, &st->name_off, &st->name_len))
            return false;
        if (p->tok.kind != TK_ASSIGN)
            return expected_hint(p, false, NULL, "expected '=' after '%s'", so_far(p, start, b));
        if (!next(p) || !(st->value = parse_expr(p))) return false;
        if (k == TK_PARAM) {
            vec kv = {0};
            while (p->tok.kind == TK_NAME || is_keyword(p->tok.kind))
                if (!parse_kv(p, &kv, "param option")) return false;
            st->kv = kv.data;
            st->nkv = kv.n;
            if (!check_kv_unique(p, &kv, "the option '%s' is given twice")) return false;
        }
        break;
    case TK_NAME:
        st->kind = ST_LET;
        if (!take_name(p, &st->name, &st->name_off, &st->name_len)) return false;
        if (p->tok.kind == TK_LBRACKET && !member_index(p, st)) /* h[t] = ... */
            return false;
        if (p->tok.kind == TK_LPAREN)
            return expected_hint(p, false, "; to define a function, write 'fn NAME(a, b) = ...'",
                                 "expected '=' after '%s'", so_far(p, start, b));
        if (p->tok.kind != TK_ASSIGN)
            return expected_hint(p, false, NULL, "expected '=' after '%s'", so_far(p, start, b));
        if (!next(p) || !(st->value = parse_expr(p))) return false;
        break;
    case TK_FN:
        st->kind = ST_FN;
        if (!next(p) || !parse_fn(p, st, start)) return false;
        break;
    case TK_TRAIN: {
        st->kind = ST_TRAIN;
        if (!next(p)) return false;
        vec kv = {0};
        while (p->tok.kind != TK_NEWLINE && p->tok.kind != TK_EOF) {
            if (p->tok.kind != TK_NAME && !is_keyword(p->tok.kind))
                return expected_hint(p, false, NULL, "expected a train setting such as epochs=100");
            if (!parse_kv(p, &kv, "train setting")) return false;
        }
        st->kv = kv.data;
        st->nkv = kv.n;
        if (!check_kv_unique(p, &kv, "the train setting '%s' is given twice")) return false;
        break;
    }
    case TK_PREDICT:
        st->kind = ST_PREDICT;
        if (!next(p) || !parse_predict(p, st)) return false;
        break;
    case TK_FOR:
        st->kind = ST_FOR;
        if (!next(p) || !parse_for(p, st, start)) return false;
        return end_of_statement(p); /* st->len stays the header's */
    case TK_DTYPE:
        st->kind = ST_DTYPE;
        if (!next(p) || !expect_name(p, "expected f32 or f64 after '%s'", "dtype") ||
            !take_name(p, &st->name, &st->name_off, &st->name_len))
            return false;
        if (strcmp(st->name, "f32") != 0 && strcmp(st->name, "f64") != 0)
            return error_at(p, st->name_off, st->name_len, "unknown dtype '%s'; use f32 or f64",
                            clip(st->name, st->name_len, b));
        break;
    case TK_RPAREN:
    case TK_RBRACKET:
        return error_at(p, p->tok.off, p->tok.len, "unexpected %s", describe(p, &p->tok, d));
    case TK_GRAD:
        return error_at(p, p->tok.off, p->tok.len,
                        "unexpected 'grad'; 'grad' belongs at the end of a 'fn' definition, on "
                        "the same line");
    default:
        return error_at(p, p->tok.off, p->tok.len, "expected a statement, found %s",
                        describe(p, &p->tok, d));
    }
    st->len = prev_end(p) - start;
    return end_of_statement(p);
}

bool bpv_parse(const bpv_source *src, bpv_arena *arena, bpv_program *out, bpv_error **err) {
    out->stmts = NULL;
    out->nstmts = 0;
    size_t bad;
    if (!bpv_utf8_valid(src->text, src->len, &bad)) {
        bpv_error *e = src->text[bad] == '\0'
                           ? bpv_error_at(src, bad, 1, BPV_ERR_MODEL, "NUL byte in model source")
                           : bpv_error_at(src, bad, 1, BPV_ERR_MODEL,
                                          "invalid UTF-8 byte 0x%02X (is the file saved as UTF-8?)",
                                          (unsigned char)src->text[bad]);
        bpv_error_set(err, e);
        return false;
    }
    /* long lines: the limit keeps messages (which show the line) and the
     * lexer's work per token bounded; brackets may span lines */
    size_t maxline = bpv_limits_get()->line_bytes;
    for (size_t i = 0, start = 0; i <= src->len; i++) {
        if (i < src->len && src->text[i] != '\n') continue;
        if (i - start > maxline) {
            bpv_error_set(err, bpv_error_at(src, start + maxline, 1, BPV_ERR_MODEL,
                                            "this line is longer than %zu bytes "
                                            "(BPV_MAX_LINE_BYTES); a list may span lines "
                                            "inside its brackets",
                                            maxline));
            return false;
        }
        start = i + 1;
    }
    parser p;
    memset(&p, 0, sizeof p);
    p.src = src;
    p.arena = arena;
    p.err = err;
    p.prev.kind = TK_NEWLINE;
    bpv_lexer_init(&p.lx, src);
    if (!bpv_lexer_next(&p.lx, &p.tok, err)) return false;
    vec stmts = {0};
    for (;;) {
        while (p.tok.kind == TK_NEWLINE)
            if (!next(&p)) return false;
        if (p.tok.kind == TK_EOF) break;
        bpv_stmt st;
        if (!parse_statement(&p, &st)) return false;
        if (st.kind == ST_FOR) {
            if (!unroll(&p, &st, NULL, &stmts)) return false;
            continue;
        }
        if (st.kind == ST_LET && st.index && !member_name(&p, &st, NULL)) return false;
        if (!vec_push(&p, &stmts, sizeof st, &st)) return false;
    }
    out->stmts = stmts.data;
    out->nstmts = stmts.n;
    return true;
}

bool bpv_ast_number(const bpv_ast *e, double *v) {
    double sign = 1;
    while (e->kind == AST_UNARY && e->nargs == 1) {
        if (e->op == TK_MINUS) sign = -sign;
        e = e->args[0];
    }
    if (e->kind != AST_NUMBER) return false;
    *v = sign * e->num;
    return true;
}
