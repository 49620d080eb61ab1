/* Lexer: token kinds, byte offsets, numbers, strings, line ends inside
 * brackets, lookahead and located errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lexer.h"
#include "testutil.h"

#define MAXTOK 64

typedef struct lexed {
    bpv_source src;
    bpv_token tok[MAXTOK];
    int n;
    bpv_error *err; /* set when lexing stopped on an error */
} lexed;

/* Lexes `len` bytes up to EOF (included) or the first error. */
static void lex_n(lexed *l, const char *text, size_t len) {
    memset(l, 0, sizeof *l);
    l->src = (bpv_source){"t.bp", ".", text, len};
    bpv_lexer lx;
    bpv_lexer_init(&lx, &l->src);
    while (l->n < MAXTOK) {
        if (!bpv_lexer_next(&lx, &l->tok[l->n], &l->err)) return;
        if (l->tok[l->n++].kind == TK_EOF) return;
    }
    fail_msg("more than %d tokens", MAXTOK);
}

static void lex(lexed *l, const char *text) { lex_n(l, text, strlen(text)); }

static void check_kinds(const lexed *l, const bpv_token_kind *want, int n) {
    if (l->err) fail_msg("unexpected error: %s", l->err->message);
    assert_int_equal(l->n, n);
    for (int i = 0; i < n; i++) {
        if (l->tok[i].kind != want[i])
            fail_msg("token %d: got %s, want %s", i, bpv_token_name(l->tok[i].kind),
                     bpv_token_name(want[i]));
    }
}
#define KINDS(l, ...)                                                                              \
    do {                                                                                           \
        const bpv_token_kind want_[] = {__VA_ARGS__};                                              \
        check_kinds(l, want_, (int)(sizeof want_ / sizeof want_[0]));                              \
    } while (0)

static void check_tok(const lexed *l, int i, bpv_token_kind k, size_t off, size_t len) {
    assert_true(i < l->n);
    assert_int_equal(l->tok[i].kind, k);
    assert_int_equal(l->tok[i].off, off);
    assert_int_equal(l->tok[i].len, len);
}

/* The first line of the error message. */
static void check_error(const char *text, const char *want) {
    lexed l;
    lex(&l, text);
    if (!l.err) fail_msg("no error for \"%s\"", text);
    assert_int_equal(l.err->status, BPV_ERR_MODEL);
    const char *nl = strchr(l.err->message, '\n');
    size_t n = nl ? (size_t)(nl - l.err->message) : strlen(l.err->message);
    if (strlen(want) != n || memcmp(l.err->message, want, n) != 0)
        fail_msg("for \"%s\"\n got: %.*s\nwant: %s", text, (int)n, l.err->message, want);
    bpv_error_free(l.err);
}

static void test_token_names(void **state) {
    (void)state;
    assert_string_equal(bpv_token_name(TK_EOF), "end of file");
    assert_string_equal(bpv_token_name(TK_STARSTAR), "'**'");
    assert_string_equal(bpv_token_name(TK_PREDICT), "'predict'");
    assert_true(bpv_is_keyword("train", 5));
    assert_true(bpv_is_keyword("dtype", 5));
    assert_false(bpv_is_keyword("trainx", 6));
    assert_false(bpv_is_keyword("train", 4)); /* "trai" */
    assert_false(bpv_is_keyword("loss", 4));
}

static void test_statement_tokens(void **state) {
    (void)state;
    lexed l;
    lex(&l, "param w = 1.0 lr=0.1\n");
    KINDS(&l, TK_PARAM, TK_NAME, TK_ASSIGN, TK_NUMBER, TK_NAME, TK_ASSIGN, TK_NUMBER, TK_NEWLINE,
          TK_EOF);
    check_tok(&l, 0, TK_PARAM, 0, 5);
    check_tok(&l, 1, TK_NAME, 6, 1);
    check_tok(&l, 3, TK_NUMBER, 10, 3);
    check_tok(&l, 4, TK_NAME, 14, 2);
    check_tok(&l, 6, TK_NUMBER, 17, 3);
    check_tok(&l, 7, TK_NEWLINE, 20, 1);
    check_tok(&l, 8, TK_EOF, 21, 0);
    assert_true(l.tok[3].num == 1.0);
    assert_true(l.tok[6].num == 0.1);
}

static void test_keywords_and_names(void **state) {
    (void)state;
    lexed l;
    lex(&l, "data param const fn grad train predict dtype _x9 Data trained");
    KINDS(&l, TK_DATA, TK_PARAM, TK_CONST, TK_FN, TK_GRAD, TK_TRAIN, TK_PREDICT, TK_DTYPE,
          TK_NAME, TK_NAME, TK_NAME, TK_EOF);
    check_tok(&l, 8, TK_NAME, 45, 3);
    check_tok(&l, 10, TK_NAME, 54, 7);
}

static void test_operators(void **state) {
    (void)state;
    lexed l;
    lex(&l, "+-*/^**@()[],=:");
    KINDS(&l, TK_PLUS, TK_MINUS, TK_STAR, TK_SLASH, TK_CARET, TK_STARSTAR, TK_AT, TK_LPAREN,
          TK_RPAREN, TK_LBRACKET, TK_RBRACKET, TK_COMMA, TK_ASSIGN, TK_COLON, TK_EOF);
    check_tok(&l, 5, TK_STARSTAR, 5, 2);
    check_tok(&l, 6, TK_AT, 7, 1);
    lex(&l, "a***b"); /* ** then * */
    KINDS(&l, TK_NAME, TK_STARSTAR, TK_STAR, TK_NAME, TK_EOF);
}

static void test_numbers(void **state) {
    (void)state;
    lexed l;
    lex(&l, "1 1.5 .5 1e-3 2.5E+3 7. 0.1 123456789012345678901234567890 1e-400");
    KINDS(&l, TK_NUMBER, TK_NUMBER, TK_NUMBER, TK_NUMBER, TK_NUMBER, TK_NUMBER, TK_NUMBER,
          TK_NUMBER, TK_NUMBER, TK_EOF);
    assert_true(l.tok[0].num == 1.0);
    assert_true(l.tok[1].num == 1.5);
    assert_true(l.tok[2].num == 0.5);
    check_tok(&l, 2, TK_NUMBER, 6, 2);
    assert_true(l.tok[3].num == 1e-3);
    check_tok(&l, 3, TK_NUMBER, 9, 4);
    assert_true(l.tok[4].num == 2500.0);
    assert_true(l.tok[5].num == 7.0);
    assert_true(l.tok[6].num == 0.1); /* correctly rounded, as strtod reads it */
    assert_true(l.tok[7].num == 123456789012345678901234567890.0);
    assert_true(l.tok[8].num == 0.0); /* underflow is zero, as in Python */
    /* a sign is an operator, not part of the number */
    lex(&l, "-2");
    KINDS(&l, TK_MINUS, TK_NUMBER, TK_EOF);
    /* the largest double is fine; one step further is not */
    lex(&l, "1.7976931348623157e308");
    KINDS(&l, TK_NUMBER, TK_EOF);
    assert_true(l.tok[0].num == 1.7976931348623157e308);
}

static void test_number_errors(void **state) {
    (void)state;
    check_error("x = 1e999",
                "t.bp:1:5: error: number out of range: 1e999 is larger than the largest double "
                "(about 1.8e308)");
    check_error("x = 2x", "t.bp:1:5: error: malformed number '2x'; to multiply, write '2 * x'");
    check_error("x = 3w_1 + 1",
                "t.bp:1:5: error: malformed number '3w_1'; to multiply, write '3 * w_1'");
    check_error("x = 1e", "t.bp:1:5: error: malformed number '1e'; an exponent needs digits, as "
                          "in 1e-3");
    check_error("x = 1e+", "t.bp:1:5: error: malformed number '1e+'; an exponent needs digits, as "
                           "in 1e-3");
    check_error("x = 1.2.3", "t.bp:1:5: error: malformed number '1.2.3'");
    check_error("x = 1_0", "t.bp:1:5: error: malformed number '1_0'");
    check_error("x = 0x1F", "t.bp:1:5: error: malformed number '0x1F'; only decimal numbers are "
                            "allowed");
    check_error("x = .", "t.bp:1:5: error: unexpected character '.'");
    /* long runs are cut in the message but fully underlined */
    char text[64] = "x = 1", caret[64] = "^";
    memset(text + 5, 'a', 49);
    memset(caret + 1, '~', 49);
    strcat(caret, "\n");
    lexed l;
    lex(&l, text);
    assert_non_null(l.err);
    assert_non_null(strstr(l.err->message, "malformed number '1aaaaaaaaaaaaaaaaaaaaaaaaaaaa...'"));
    assert_non_null(strstr(l.err->message, caret));
    bpv_error_free(l.err);
}

static void test_strings(void **state) {
    (void)state;
    lexed l;
    lex(&l, "csv(\"a b.csv\", \"q\\\"\\\\\\n\")");
    KINDS(&l, TK_NAME, TK_LPAREN, TK_STRING, TK_COMMA, TK_STRING, TK_RPAREN, TK_EOF);
    check_tok(&l, 2, TK_STRING, 4, 9);
    check_tok(&l, 4, TK_STRING, 15, 9);
    /* non-ASCII text is fine inside strings and comments */
    lex(&l, "\"ωλ\" # σ(x) × 2\n");
    KINDS(&l, TK_STRING, TK_NEWLINE, TK_EOF);
    check_tok(&l, 0, TK_STRING, 0, 6);
    check_error("x = \"abc\ny = 1",
                "t.bp:1:5: error: unterminated string; a string must end with '\"' on the line "
                "it starts");
    check_error("x = 1\ny = \"abc",
                "t.bp:2:5: error: unterminated string; a string must end with '\"' on the line "
                "it starts");
    check_error("x = \"ab\\", "t.bp:1:5: error: unterminated string; a string must end with '\"' "
                              "on the line it starts");
    check_error("x = \"a\\qb\"",
                "t.bp:1:7: error: unknown escape '\\q' in a string; use \\\", \\\\, \\n or \\t");
}

static void test_comments_and_newlines(void **state) {
    (void)state;
    lexed l;
    lex(&l, "# only a comment\nx = 1 # trailing ( [\n\n");
    KINDS(&l, TK_NEWLINE, TK_NAME, TK_ASSIGN, TK_NUMBER, TK_NEWLINE, TK_NEWLINE, TK_EOF);
    check_tok(&l, 0, TK_NEWLINE, 16, 1);
    check_tok(&l, 4, TK_NEWLINE, 37, 1);
    /* \r\n is one line end covering both bytes */
    lex(&l, "x = 1\r\ny = 2\r\n");
    KINDS(&l, TK_NAME, TK_ASSIGN, TK_NUMBER, TK_NEWLINE, TK_NAME, TK_ASSIGN, TK_NUMBER,
          TK_NEWLINE, TK_EOF);
    check_tok(&l, 3, TK_NEWLINE, 5, 2);
    check_tok(&l, 4, TK_NAME, 7, 1);
    lex(&l, "x = 1 # comment\r\n");
    KINDS(&l, TK_NAME, TK_ASSIGN, TK_NUMBER, TK_NEWLINE, TK_EOF);
    check_tok(&l, 3, TK_NEWLINE, 15, 2);
    check_error("x = 1\ry = 2", "t.bp:1:6: error: unexpected carriage return without a newline; "
                                "save the file with \\n or \\r\\n line endings");
}

static void test_newlines_inside_brackets(void **state) {
    (void)state;
    lexed l;
    lex(&l, "x = f(1,\n  [2,\n 3])\ny");
    KINDS(&l, TK_NAME, TK_ASSIGN, TK_NAME, TK_LPAREN, TK_NUMBER, TK_COMMA, TK_LBRACKET, TK_NUMBER,
          TK_COMMA, TK_NUMBER, TK_RBRACKET, TK_RPAREN, TK_NEWLINE, TK_NAME, TK_EOF);
    /* a stray closer never drives the depth below zero */
    lex(&l, ")\n]\n(\n)\nz");
    KINDS(&l, TK_RPAREN, TK_NEWLINE, TK_RBRACKET, TK_NEWLINE, TK_LPAREN, TK_RPAREN, TK_NEWLINE,
          TK_NAME, TK_EOF);
}

static void test_peek(void **state) {
    (void)state;
    bpv_source src = {"t.bp", ".", "a = b", 5};
    bpv_lexer lx;
    bpv_lexer_init(&lx, &src);
    bpv_token t, u;
    bpv_error *err = NULL;
    assert_true(bpv_lexer_peek(&lx, &t, &err));
    assert_int_equal(t.kind, TK_NAME);
    assert_true(bpv_lexer_peek(&lx, &u, &err)); /* peeking twice sees the same token */
    assert_int_equal(u.off, 0);
    assert_true(bpv_lexer_next(&lx, &t, &err));
    assert_int_equal(t.kind, TK_NAME);
    assert_true(bpv_lexer_peek(&lx, &t, &err));
    assert_int_equal(t.kind, TK_ASSIGN);
    assert_true(bpv_lexer_next(&lx, &t, &err));
    assert_int_equal(t.kind, TK_ASSIGN);
    assert_true(bpv_lexer_next(&lx, &t, &err));
    assert_int_equal(t.off, 4);
    assert_true(bpv_lexer_next(&lx, &t, &err));
    assert_int_equal(t.kind, TK_EOF);
    assert_true(bpv_lexer_next(&lx, &t, &err)); /* EOF repeats */
    assert_int_equal(t.kind, TK_EOF);
    assert_null(err);
}

static void test_bad_characters(void **state) {
    (void)state;
    check_error("y = x ; z", "t.bp:1:7: error: unexpected character ';'; a statement ends at the "
                             "end of its line");
    check_error("y = $x", "t.bp:1:5: error: unexpected character '$'");
    check_error("y = 'a'", "t.bp:1:5: error: unexpected single quote; strings use double quotes");
    /* the whole UTF-8 character is shown, and the column counts characters */
    check_error("# ü\nσ = 1", "t.bp:2:1: error: unexpected character 'σ'; names use only ASCII "
                              "letters, digits and '_'");
    check_error("y = x × 2", "t.bp:1:7: error: unexpected character '×'; use '*' to multiply");
    check_error("y = x − 2", "t.bp:1:7: error: unexpected character '−'; use '-' (the ASCII minus "
                             "sign)");
    check_error("y = “a”", "t.bp:1:5: error: unexpected character '“'; strings use straight double "
                           "quotes '\"'");
    check_error("y = x\xc2\xa0+ 1",
                "t.bp:1:6: error: unexpected invisible character U+00A0; use an ordinary space");
    check_error("y = x → z", "t.bp:1:7: error: unexpected character '→'");
    check_error("y = x\x01", "t.bp:1:6: error: unexpected control character 0x01");
    check_error("y = x\x7f", "t.bp:1:6: error: unexpected control character 0x7F");
    /* the lexer alone stays safe on bytes the parser would have refused */
    check_error("y = \xff", "t.bp:1:5: error: invalid UTF-8 byte 0xFF");
    lexed l;
    lex_n(&l, "y\0", 2);
    assert_non_null(l.err);
    assert_non_null(strstr(l.err->message, "t.bp:1:2: error: unexpected control character 0x00"));
    bpv_error_free(l.err);
}

static void test_byte_order_mark(void **state) {
    (void)state;
    lexed l;
    lex(&l, "\xEF\xBB\xBFx = 1");
    KINDS(&l, TK_NAME, TK_ASSIGN, TK_NUMBER, TK_EOF);
    check_tok(&l, 0, TK_NAME, 3, 1);
}

static void test_caret_of_lexer_error(void **state) {
    (void)state;
    lexed l;
    lex(&l, "data x = [1, 2]\ny = 3q + x\n");
    assert_non_null(l.err);
    assert_string_equal(l.err->message,
                        "t.bp:2:5: error: malformed number '3q'; to multiply, write '3 * q'\n"
                        "    y = 3q + x\n"
                        "        ^~\n");
    bpv_error_free(l.err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_names),
        cmocka_unit_test(test_statement_tokens),
        cmocka_unit_test(test_keywords_and_names),
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_number_errors),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_comments_and_newlines),
        cmocka_unit_test(test_newlines_inside_brackets),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_bad_characters),
        cmocka_unit_test(test_byte_order_mark),
        cmocka_unit_test(test_caret_of_lexer_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
