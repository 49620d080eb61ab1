/* libFuzzer target 4: the escapers fed arbitrary bytes (up to the first NUL,
 * as they take C strings). JSON string escaping must give one well-formed
 * JSON string in valid UTF-8; HTML-label escaping must give valid UTF-8 with
 * no raw markup character, every '&' starting an entity; the name and formula
 * prettifiers must not read or write out of bounds and, fed valid UTF-8,
 * must give valid UTF-8; text cleaned for a message (bpv_buf_put_clean,
 * NUL bytes included) must be one line of valid UTF-8 with no control
 * byte but tabs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "export.h"
#include "figure.h"
#include "fuzz_common.h"

static void check_json_string(const char *s, size_t n) {
    FUZZ_CHECK(fuzz_utf8_valid(s, n));
    FUZZ_CHECK(n >= 2 && s[0] == '"' && s[n - 1] == '"');
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        FUZZ_CHECK(c >= 0x20 && c != 0x7f && c != '<' && c != '"');
        if (c == '\\') {
            FUZZ_CHECK(i + 1 < n - 1);
            char e = s[++i];
            if (e == 'u') {
                FUZZ_CHECK(i + 4 < n - 1);
                for (int k = 1; k <= 4; k++) FUZZ_CHECK(strchr("0123456789abcdefABCDEF", s[i + k]));
                i += 4;
            } else {
                FUZZ_CHECK(strchr("\"\\/bfnrt", e) != NULL && e != '\0');
            }
        }
    }
}

static void check_html(const char *s, size_t n) {
    FUZZ_CHECK(fuzz_utf8_valid(s, n));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        FUZZ_CHECK(c != '<' && c != '>' && c != '"' && c != '\'');
        FUZZ_CHECK(c >= 0x20 && c != 0x7f);
        if (c == '&') {
            size_t j = i + 1;
            if (j < n && s[j] == '#') {
                j++;
                size_t d = j;
                while (j < n && s[j] >= '0' && s[j] <= '9') j++;
                FUZZ_CHECK(j > d);
            } else {
                size_t d = j;
                while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z'))) j++;
                FUZZ_CHECK(j > d);
            }
            FUZZ_CHECK(j < n && s[j] == ';');
            i = j;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* an exact-size copy, so ASan sees any read past the terminator */
    char *s = malloc(size + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    size_t slen = strlen(s);
    bool valid = fuzz_utf8_valid(s, slen);

    bpv_buf b;
    bpv_buf_init(&b);
    bpv_json_string(&b, s);
    check_json_string(b.data, b.len);
    bpv_buf_free(&b);

    bpv_buf_init(&b);
    bpv_fig_html(&b, s);
    check_html(b.data, b.len);
    bpv_buf_free(&b);

    /* text quoted in a message: one line, valid UTF-8, nothing a terminal
     * would act on (tabs only); ASCII printable bytes kept as they are */
    bpv_buf_init(&b);
    bpv_buf_put_clean(&b, (const char *)data, size);
    FUZZ_CHECK(b.len == 0 || fuzz_utf8_valid(b.data, b.len));
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = (unsigned char)b.data[i];
        FUZZ_CHECK((c >= 0x20 || c == '\t') && c != 0x7f);
    }
    bpv_buf_free(&b);

    for (int plain = 0; plain < 2; plain++) {
        bpv_buf_init(&b);
        bpv_fig_name(&b, s, plain);
        if (valid) FUZZ_CHECK(fuzz_utf8_valid(b.data, b.len));
        /* what the figure puts in a label: the name, then escaped */
        bpv_buf h;
        bpv_buf_init(&h);
        bpv_fig_html(&h, b.data);
        check_html(h.data, h.len);
        bpv_buf_free(&h);
        bpv_buf_free(&b);

        bpv_buf_init(&b);
        bpv_fig_formula(&b, s, plain);
        if (valid) FUZZ_CHECK(fuzz_utf8_valid(b.data, b.len));
        bpv_buf_free(&b);
    }
    free(s);
    return 0;
}
