/* --font through every format: the PDF embeds the family asked for (read
 * back with pdffonts), the SVG names it, and a family fontconfig lacks
 * gives a warning naming the one used instead. Needs pdffonts
 * (poppler-utils) and Nimbus Roman (fonts-urw-base35), whose last word
 * pango once read as a style; without them the test reports itself
 * skipped (exit 77, ctest's SKIP_RETURN_CODE), not passed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpviz/bpviz.h"
#include "testutil.h"

#define CLI BPV_CLI_PATH
#define LINEAR BPV_SOURCE_DIR "/samples/linear.bp"

static void test_pdf_and_svg_name_the_family(void **state) {
    (void)state;
    const char *pdf = tu_tmp_path("nr.pdf"), *svg = tu_tmp_path("nr.svg");
    assert_int_equal(tu_sh("'%s' '%s' --font 'Nimbus Roman' -o '%s'", CLI, LINEAR, pdf), 0);
    /* every font of the PDF is Nimbus Roman, none DejaVu */
    assert_int_equal(tu_sh("pdffonts '%s' | grep -q NimbusRoman", pdf), 0);
    assert_int_not_equal(tu_sh("pdffonts '%s' | grep -q DejaVu", pdf), 0);
    assert_int_equal(tu_sh("'%s' '%s' --font 'Nimbus Roman' -o '%s'", CLI, LINEAR, svg), 0);
    size_t len;
    char *s = tu_read_file(svg, &len);
    assert_non_null(s);
    assert_non_null(strstr(s, "font-family=\"Nimbus Roman\""));
    assert_null(strstr(s, "Nimbus Roman,"));
    free(s);
    /* the DOT too */
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, LINEAR, "--font", "Nimbus Roman", NULL), 0);
    assert_non_null(strstr(out, "fontname=\"Nimbus Roman\""));
    assert_null(strstr(out, "Nimbus Roman,"));
    assert_string_equal(err, ""); /* found: no warning */
    free(out);
    free(err);
    char used[128];
    assert_int_equal(bpv_font_check("nimbus roman", used, sizeof used), 1);
    assert_string_equal(used, "Nimbus Roman");
}

static void test_missing_family_warns(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_bpviz(&out, &err, LINEAR, "--font", "No Such Family Xq", NULL), 0);
    assert_non_null(strstr(err, "warning: font family 'No Such Family Xq' not found"));
    assert_non_null(strstr(err, "instead"));
    free(out);
    free(err);
    char used[128];
    assert_int_equal(bpv_font_check("No Such Family Xq", used, sizeof used), 0);
    assert_true(used[0] != '\0');
}

int main(void) {
    if (tu_sh("command -v pdffonts >/dev/null && fc-list : family | grep -q '^Nimbus Roman'") !=
        0) {
        fprintf(stderr, "test_fonts: skipped: needs pdffonts (poppler-utils) and Nimbus Roman "
                        "(fonts-urw-base35); scripts/install-deps.sh installs both\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pdf_and_svg_name_the_family),
        cmocka_unit_test(test_missing_family_warns),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
