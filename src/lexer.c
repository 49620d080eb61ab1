/* Lexer: source text -> tokens with byte offsets (after Lua's llex.c).
 * Errors are located with bpv_error_at; the parser rejects NUL bytes and
 * invalid UTF-8 before lexing, but the lexer stays safe on any bytes. */
#include "lexer.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const token_names[TK_COUNT] = {
#define BPV_TK_NAME(k, s) s,
    BPV_TOKENS(BPV_TK_NAME)
#undef BPV_TK_NAME
};

/* Same order as the keyword tokens in BPV_TOKENS. */
static const char *const keywords[] = {"data",  "param",   "const", "fn", "grad",
                                       "train", "predict", "dtype", "for"};
static_assert(sizeof keywords / sizeof keywords[0] == TK_COUNT - TK_FIRST_KEYWORD,
              "keyword table and token list disagree");

const char *bpv_token_name(bpv_token_kind k) {
    return (unsigned)k < TK_COUNT ? token_names[k] : "token";
}

static bpv_token_kind keyword_kind(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (strlen(keywords[i]) == n && memcmp(keywords[i], s, n) == 0)
            return (bpv_token_kind)(TK_FIRST_KEYWORD + i);
    return TK_NAME;
}

bool bpv_is_keyword(const char *s, size_t n) { return keyword_kind(s, n) != TK_NAME; }

void bpv_lexer_init(bpv_lexer *lx, const bpv_source *src) {
    memset(lx, 0, sizeof *lx);
    lx->src = src;
    /* an editor's UTF-8 byte order mark is not part of the model */
    if (src->len >= 3 && memcmp(src->text, "\xEF\xBB\xBF", 3) == 0) lx->pos = 3;
}

static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_alnum(int c) { return is_alpha(c) || is_digit(c); }

static int at(const bpv_lexer *lx, size_t i) {
    return i < lx->src->len ? (unsigned char)lx->src->text[i] : -1;
}

static bool fail(bpv_lexer *lx, bpv_error **err, size_t off, size_t len, const char *fmt, ...)
    BPV_PRINTF(5, 6);

/* Formats the message first so that bpv_error_at gets it as one "%s". */
static bool fail(bpv_lexer *lx, bpv_error **err, size_t off, size_t len, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (msg) vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    bpv_error_set(
        err, bpv_error_at(lx->src, off, len, BPV_ERR_MODEL, "%s", msg ? msg : "out of memory"));
    free(msg);
    return false;
}

/* Quotes at most 32 bytes of source text for a message. */
static void quote_text(bpv_buf *b, const char *s, size_t n) {
    if (n > 32) {
        size_t k = 29;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--; /* whole characters */
        bpv_buf_add(b, s, k);
        bpv_buf_puts(b, "...");
    } else {
        bpv_buf_add(b, s, n);
    }
}

/* Length of the UTF-8 character starting at i (1 for a stray byte). */
static size_t utf8_len(const bpv_lexer *lx, size_t i, uint32_t *cp) {
    int c = at(lx, i);
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    uint32_t v = n == 1 ? (uint32_t)c : (uint32_t)c & (0x7Fu >> n);
    for (size_t k = 1; k < n; k++) {
        int d = at(lx, i + k);
        if (d < 0 || (d & 0xC0) != 0x80) {
            *cp = (uint32_t)c;
            return 1;
        }
        v = (v << 6) | ((uint32_t)d & 0x3F);
    }
    *cp = v;
    return n;
}

static bool invisible(uint32_t cp) {
    return (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || (cp >= 0x2000 && cp <= 0x200F) ||
           (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 ||
           cp == 0xFEFF;
}

/* The usual characters that word processors and slides substitute. */
static const char *lookalike_hint(uint32_t cp) {
    switch (cp) {
    case 0xD7: return "; use '*' to multiply";
    case 0xF7: return "; use '/' to divide";
    case 0x2212:
    case 0x2013:
    case 0x2014: return "; use '-' (the ASCII minus sign)";
    case 0x201C:
    case 0x201D: return "; strings use straight double quotes '\"'";
    case 0x2018:
    case 0x2019: return "; strings use straight double quotes '\"'";
    case 0x22C5:
    case 0xB7: return "; use '*' to multiply";
    default: return NULL;
    }
}

static bool bad_char(bpv_lexer *lx, size_t i, bpv_error **err) {
    int c = at(lx, i);
    if (c == '\r')
        return fail(lx, err, i, 1,
                    "unexpected carriage return without a newline; save the file with \\n or "
                    "\\r\\n line endings");
    if (c < 0x20 || c == 0x7F) return fail(lx, err, i, 1, "unexpected control character 0x%02X", c);
    if (c == '\'') return fail(lx, err, i, 1, "unexpected single quote; strings use double quotes");
    if (c < 0x80) {
        const char *hint = c == ';'               ? "; a statement ends at the end of its line"
                           : c == '{' || c == '}' ? "; lists are written with '[' and ']'"
                                                  : "";
        return fail(lx, err, i, 1, "unexpected character '%c'%s", c, hint);
    }
    uint32_t cp;
    size_t n = utf8_len(lx, i, &cp);
    if (n == 1) return fail(lx, err, i, 1, "invalid UTF-8 byte 0x%02X", c);
    if (invisible(cp))
        return fail(lx, err, i, n, "unexpected invisible character U+%04X; use an ordinary space",
                    (unsigned)cp);
    const char *hint = lookalike_hint(cp);
    if (!hint) {
        /* a letter such as 'é' inside or next to a name */
        bool near_name = (i > 0 && is_alnum(at(lx, i - 1))) || is_alnum(at(lx, i + n));
        bool letter = (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) ||
                      (cp >= 0x370 && cp <= 0x3FF) || (cp >= 0x400 && cp <= 0x4FF);
        hint = near_name || letter ? "; names use only ASCII letters, digits and '_'" : "";
    }
    return fail(lx, err, i, n, "unexpected character '%.*s'%s", (int)n, lx->src->text + i, hint);
}

static bool lex_number(bpv_lexer *lx, size_t start, bpv_token *tok, bpv_error **err) {
    size_t i = start;
    while (is_digit(at(lx, i)))
        i++;
    if (at(lx, i) == '.' && at(lx, i + 1) != '.') { /* 1..5 is a range */
        i++;
        while (is_digit(at(lx, i)))
            i++;
    }
    if (at(lx, i) == 'e' || at(lx, i) == 'E') {
        size_t j = i + 1;
        if (at(lx, j) == '+' || at(lx, j) == '-') j++;
        if (is_digit(at(lx, j))) {
            while (is_digit(at(lx, j)))
                j++;
            i = j;
        }
    }
    size_t numlen = i - start;
    if (is_alnum(at(lx, i)) || (at(lx, i) == '.' && at(lx, i + 1) != '.')) {
        /* underline the whole run a reader sees as one word */
        size_t end = i;
        while (is_alnum(at(lx, end)) || at(lx, end) == '.')
            end++;
        /* `1e+` : the sign belongs to the exponent being written */
        if ((at(lx, end - 1) == 'e' || at(lx, end - 1) == 'E') &&
            (at(lx, end) == '+' || at(lx, end) == '-') && !is_digit(at(lx, end + 1)))
            end++;
        const char *s = lx->src->text;
        bpv_buf b;
        bpv_buf_init(&b);
        bpv_buf_puts(&b, "malformed number '");
        quote_text(&b, s + start, end - start);
        bpv_buf_putc(&b, '\'');
        bool name_follows = is_alpha(at(lx, i)) && at(lx, i) != '_';
        for (size_t k = i; k < end; k++)
            if (s[k] == '.') name_follows = false;
        if (numlen == 1 && s[start] == '0' && strchr("xXbBoO", at(lx, i)))
            bpv_buf_puts(&b, "; only decimal numbers are allowed");
        else if ((at(lx, i) == 'e' || at(lx, i) == 'E') &&
                 (end == i + 1 || (end == i + 2 && (s[i + 1] == '+' || s[i + 1] == '-'))))
            bpv_buf_puts(&b, "; an exponent needs digits, as in 1e-3");
        else if (name_follows && end - start <= 32)
            bpv_buf_printf(&b, "; to multiply, write '%.*s * %.*s'", (int)numlen, s + start,
                           (int)(end - i), s + i);
        fail(lx, err, start, end - start, "%s", b.data);
        bpv_buf_free(&b);
        return false;
    }
    /* strtod needs a terminated copy: the source continues after the number */
    char small[64];
    char *buf = numlen < sizeof small ? small : malloc(numlen + 1);
    if (!buf) return fail(lx, err, start, numlen, "out of memory reading a number");
    memcpy(buf, lx->src->text + start, numlen);
    buf[numlen] = '\0';
    double v = strtod(buf, NULL);
    if (buf != small) free(buf);
    if (isinf(v)) {
        bpv_buf b;
        bpv_buf_init(&b);
        quote_text(&b, lx->src->text + start, numlen);
        fail(lx, err, start, numlen,
             "number out of range: %s is larger than the largest double (about 1.8e308)", b.data);
        bpv_buf_free(&b);
        return false;
    }
    tok->kind = TK_NUMBER;
    tok->off = start;
    tok->len = numlen;
    tok->num = v;
    lx->pos = i;
    return true;
}

static bool lex_string(bpv_lexer *lx, size_t start, bpv_token *tok, bpv_error **err) {
    size_t i = start + 1;
    for (;;) {
        int c = at(lx, i);
        if (c < 0 || c == '\n' || (c == '\r' && at(lx, i + 1) == '\n'))
            return fail(lx, err, start, 1,
                        "unterminated string; a string must end with '\"' on the line it starts");
        if (c == '"') break;
        if (c == '\\') {
            int e = at(lx, i + 1);
            if (e < 0 || e == '\n' || e == '\r')
                return fail(lx, err, start, 1,
                            "unterminated string; a string must end with '\"' on the line it "
                            "starts");
            if (e != '"' && e != '\\' && e != 'n' && e != 't') {
                uint32_t cp;
                size_t n = utf8_len(lx, i + 1, &cp);
                if (e < 0x20 || e == 0x7F)
                    return fail(lx, err, i, 2,
                                "unknown escape in a string; use \\\", \\\\, \\n or \\t");
                return fail(lx, err, i, n + 1,
                            "unknown escape '\\%.*s' in a string; use \\\", \\\\, \\n or \\t",
                            (int)n, lx->src->text + i + 1);
            }
            i += 2;
            continue;
        }
        i++;
    }
    tok->kind = TK_STRING;
    tok->off = start;
    tok->len = i + 1 - start;
    lx->pos = i + 1;
    return true;
}

static bool scan(bpv_lexer *lx, bpv_token *tok, bpv_error **err) {
    size_t i = lx->pos;
    tok->num = 0;
    for (;;) {
        int c = at(lx, i);
        switch (c) {
        case -1:
            tok->kind = TK_EOF;
            tok->off = lx->src->len;
            tok->len = 0;
            lx->pos = lx->src->len;
            return true;
        case ' ':
        case '\t': i++; continue;
        case '#':
            while (at(lx, i) >= 0 && at(lx, i) != '\n' &&
                   !(at(lx, i) == '\r' && at(lx, i + 1) == '\n'))
                i++;
            continue;
        case '\r': /* \r\n is one line end; a lone \r is refused */
        case '\n': {
            if (c == '\r' && at(lx, i + 1) != '\n') return bad_char(lx, i, err);
            size_t n = c == '\r' ? 2 : 1;
            if (lx->depth > 0) { /* inside brackets a line end is only space */
                i += n;
                continue;
            }
            tok->kind = TK_NEWLINE;
            tok->off = i;
            tok->len = n;
            lx->pos = i + n;
            return true;
        }
        case '"': return lex_string(lx, i, tok, err);
        case '.':
            if (at(lx, i + 1) == '.') {
                tok->kind = TK_DOTDOT;
                tok->off = i;
                tok->len = 2;
                lx->pos = i + 2;
                return true;
            }
            if (!is_digit(at(lx, i + 1))) return bad_char(lx, i, err);
            return lex_number(lx, i, tok, err);
        default: break;
        }
        if (is_digit(c)) return lex_number(lx, i, tok, err);
        if (is_alpha(c)) {
            size_t j = i;
            while (is_alnum(at(lx, j)))
                j++;
            tok->kind = keyword_kind(lx->src->text + i, j - i);
            tok->off = i;
            tok->len = j - i;
            lx->pos = j;
            return true;
        }
        bpv_token_kind k;
        size_t n = 1;
        switch (c) {
        case '+': k = TK_PLUS; break;
        case '-': k = TK_MINUS; break;
        case '*':
            k = at(lx, i + 1) == '*' ? TK_STARSTAR : TK_STAR;
            n = k == TK_STARSTAR ? 2 : 1;
            break;
        case '/': k = TK_SLASH; break;
        case '^': k = TK_CARET; break;
        case '@': k = TK_AT; break;
        case '(': k = TK_LPAREN; break;
        case ')': k = TK_RPAREN; break;
        case '[': k = TK_LBRACKET; break;
        case ']': k = TK_RBRACKET; break;
        case ',': k = TK_COMMA; break;
        case '=': k = TK_ASSIGN; break;
        case ':': k = TK_COLON; break;
        case '{': k = TK_LBRACE; break; /* a block: its lines stay statements */
        case '}': k = TK_RBRACE; break;
        default: return bad_char(lx, i, err);
        }
        if (k == TK_LPAREN || k == TK_LBRACKET) {
            if (lx->depth < INT32_MAX) lx->depth++;
        } else if ((k == TK_RPAREN || k == TK_RBRACKET) && lx->depth > 0) {
            lx->depth--;
        }
        tok->kind = k;
        tok->off = i;
        tok->len = n;
        lx->pos = i + n;
        return true;
    }
}

bool bpv_lexer_next(bpv_lexer *lx, bpv_token *tok, bpv_error **err) {
    if (lx->has_ahead) {
        *tok = lx->ahead;
        lx->has_ahead = false;
        return true;
    }
    return scan(lx, tok, err);
}

bool bpv_lexer_peek(bpv_lexer *lx, bpv_token *tok, bpv_error **err) {
    if (!lx->has_ahead) {
        if (!scan(lx, &lx->ahead, err)) return false;
        lx->has_ahead = true;
    }
    *tok = lx->ahead;
    return true;
}
