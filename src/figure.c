/* Text helpers of the figure exporter; see figure.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figure.h"

/* ---- names ---------------------------------------------------------------- */

static const char *const greek[][2] = {
    {"alpha", "α"},   {"beta", "β"},   {"gamma", "γ"},   {"delta", "δ"},  {"epsilon", "ε"},
    {"zeta", "ζ"},    {"eta", "η"},    {"theta", "θ"},   {"iota", "ι"},   {"kappa", "κ"},
    {"lambda", "λ"},  {"mu", "μ"},     {"nu", "ν"},      {"xi", "ξ"},     {"omicron", "ο"},
    {"pi", "π"},      {"rho", "ρ"},    {"sigma", "σ"},   {"tau", "τ"},    {"upsilon", "υ"},
    {"phi", "φ"},     {"chi", "χ"},    {"psi", "ψ"},     {"omega", "ω"},  {"Alpha", "Α"},
    {"Beta", "Β"},    {"Gamma", "Γ"},  {"Delta", "Δ"},   {"Epsilon", "Ε"}, {"Zeta", "Ζ"},
    {"Eta", "Η"},     {"Theta", "Θ"},  {"Iota", "Ι"},    {"Kappa", "Κ"},  {"Lambda", "Λ"},
    {"Mu", "Μ"},      {"Nu", "Ν"},     {"Xi", "Ξ"},      {"Omicron", "Ο"}, {"Pi", "Π"},
    {"Rho", "Ρ"},     {"Sigma", "Σ"},  {"Tau", "Τ"},     {"Upsilon", "Υ"}, {"Phi", "Φ"},
    {"Chi", "Χ"},     {"Psi", "Ψ"},    {"Omega", "Ω"},
};

/* Accents written as a suffix: the letters that have a precomposed form
 * (better spacing in every font), else a combining mark after the letter. */
static const struct accent {
    const char *suffix;
    const char *combining;
    const char *letters;     /* ASCII letters with a precomposed form ... */
    const char *const *forms; /* ... and those forms, in the same order */
} accents[] = {
    {"_hat", "\xcc\x82", "aeiouywcghjszAEIOUYWCGHJSZ",
     (const char *const[]){"â", "ê", "î", "ô", "û", "ŷ", "ŵ", "ĉ", "ĝ", "ĥ", "ĵ", "ŝ", "ẑ",
                           "Â", "Ê", "Î", "Ô", "Û", "Ŷ", "Ŵ", "Ĉ", "Ĝ", "Ĥ", "Ĵ", "Ŝ", "Ẑ"}},
    {"_bar", "\xcc\x84", "aeiouyAEIOUY",
     (const char *const[]){"ā", "ē", "ī", "ō", "ū", "ȳ", "Ā", "Ē", "Ī", "Ō", "Ū", "Ȳ"}},
    {"_tilde", "\xcc\x83", "aeiouynAOUN",
     (const char *const[]){"ã", "ẽ", "ĩ", "õ", "ũ", "ỹ", "ñ", "Ã", "Õ", "Ũ", "Ñ"}},
};

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_ident(char c) { return is_ident_start(c) || is_digit(c); }

/* Number of bytes of the UTF-8 character at s (1 for ASCII). */
static size_t utf8_len(const char *s) {
    unsigned char c = (unsigned char)*s;
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

void bpv_fig_name(bpv_buf *b, const char *name, bool plain) {
    size_t n = strlen(name), end = n;
    const struct accent *acc = NULL;
    size_t dig = 0, ndig = 0;
    /* Suffixes in either order: y_hat1 and y1_hat both give ŷ₁. */
    for (int pass = 0; pass < 2 && !plain; pass++) {
        for (size_t a = 0; !acc && a < sizeof accents / sizeof accents[0]; a++) {
            size_t k = strlen(accents[a].suffix);
            if (end > k && memcmp(name + end - k, accents[a].suffix, k) == 0) {
                acc = &accents[a];
                end -= k;
            }
        }
        if (!ndig) {
            size_t k = end;
            while (k > 0 && is_digit(name[k - 1])) k--;
            if (k > 0 && k < end) {
                dig = k;
                ndig = end - k;
                end = k;
                if (end > 1 && name[end - 1] == '_') end--;
            }
        }
    }
    if (plain || end == 0 || name[end - 1] == '_' || ndig > 6) {
        bpv_buf_puts(b, name);
        return;
    }
    const char *base = NULL;
    for (size_t g = 0; g < sizeof greek / sizeof greek[0]; g++)
        if (strlen(greek[g][0]) == end && memcmp(name, greek[g][0], end) == 0) base = greek[g][1];
    if (acc) {
        const char *letter = base ? base : name;
        size_t len = base ? strlen(base) : end;
        if (utf8_len(letter) != len) {
            /* an accent over a word reads badly: keep the name as written */
            bpv_buf_puts(b, name);
            return;
        }
        const char *p = len == 1 ? strchr(acc->letters, letter[0]) : NULL;
        if (p) {
            bpv_buf_puts(b, acc->forms[p - acc->letters]);
        } else {
            bpv_buf_add(b, letter, len);
            bpv_buf_puts(b, acc->combining);
        }
    } else if (base) {
        bpv_buf_puts(b, base);
    } else {
        bpv_buf_add(b, name, end);
    }
    for (size_t i = 0; i < ndig; i++) {
        char sub[4] = {'\xe2', '\x82', (char)(0x80 + (name[dig + i] - '0')), 0};
        bpv_buf_puts(b, sub);
    }
}

/* ---- numbers -------------------------------------------------------------- */

void bpv_fig_superscript(bpv_buf *b, long long v) {
    static const char *const sup[10] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
    char digits[32];
    if (v < 0) bpv_buf_puts(b, "⁻");
    snprintf(digits, sizeof digits, "%llu",
             v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
    for (const char *p = digits; *p; p++) bpv_buf_puts(b, sup[*p - '0']);
}

/* Drops trailing zeros of a fraction ("1.500" -> "1.5", "2.000" -> "2"). */
static void trim_zeros(char *s) {
    if (!strchr(s, '.')) return;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '0') s[--n] = '\0';
    if (n > 0 && s[n - 1] == '.') s[--n] = '\0';
}

void bpv_fig_number(bpv_buf *b, double v, int precision) {
    if (precision < 1) precision = 1;
    if (precision > 17) precision = 17;
    if (isnan(v)) {
        bpv_buf_puts(b, bpv_is_unknown(v) ? "?" : "NaN");
        return;
    }
    if (v == 0) { /* -0 too: a sign on zero only confuses a reader */
        bpv_buf_putc(b, '0');
        return;
    }
    if (v < 0) bpv_buf_puts(b, "−");
    double a = fabs(v);
    if (isinf(a)) {
        bpv_buf_puts(b, "∞");
        return;
    }
    /* %e rounds to the precision first, so the exponent is the one of the
     * printed number (9.99996 -> 1.000e+01). */
    char text[64];
    snprintf(text, sizeof text, "%.*e", precision - 1, a);
    char *e = strchr(text, 'e');
    int exp10 = atoi(e + 1);
    if (exp10 >= -4 && exp10 < (precision > 6 ? precision : 6)) {
        int decimals = precision - 1 - exp10;
        snprintf(text, sizeof text, "%.*f", decimals > 0 ? decimals : 0, a);
        trim_zeros(text);
        bpv_buf_puts(b, text);
        return;
    }
    *e = '\0';
    trim_zeros(text);
    bpv_buf_puts(b, text);
    bpv_buf_puts(b, "×10");
    bpv_fig_superscript(b, exp10);
}

/* ---- formulas and escaping ------------------------------------------------ */

void bpv_fig_formula(bpv_buf *b, const char *f, bool plain) {
    char word[256];
    while (*f) {
        if (is_ident_start(*f)) {
            size_t n = 0;
            while (is_ident(f[n])) n++;
            if (n < sizeof word) {
                memcpy(word, f, n);
                word[n] = '\0';
                bpv_fig_name(b, word, plain);
            } else {
                bpv_buf_add(b, f, n);
            }
            f += n;
        } else if (*f == '-') {
            bpv_buf_puts(b, "−");
            f++;
        } else if (*f == '*') {
            bpv_buf_puts(b, "·");
            f++;
        } else {
            bpv_buf_putc(b, *f++);
        }
    }
}

/* Length of a valid UTF-8 sequence at s (not overlong, no surrogates, at
 * most U+10FFFF), or 0. */
static size_t utf8_valid_len(const unsigned char *s) {
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void bpv_fig_html(bpv_buf *b, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        switch (*p) {
        case '&': bpv_buf_puts(b, "&amp;"); p++; continue;
        case '<': bpv_buf_puts(b, "&lt;"); p++; continue;
        case '>': bpv_buf_puts(b, "&gt;"); p++; continue;
        case '"': bpv_buf_puts(b, "&quot;"); p++; continue;
        case '\'': bpv_buf_puts(b, "&#39;"); p++; continue;
        default: break;
        }
        if (*p < 0x20 || *p == 0x7f) {
            bpv_buf_putc(b, ' ');
            p++;
            continue;
        }
        size_t n = utf8_valid_len(p);
        if (n == 0) {
            bpv_buf_puts(b, "\xef\xbf\xbd");
            p++;
        } else {
            bpv_buf_add(b, (const char *)p, n);
            p += n;
        }
    }
}
