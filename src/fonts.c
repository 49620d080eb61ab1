/* --font: which family fontconfig will really use for a name (the
 * renderers of PNG and PDF, cairo and pango, draw with what fontconfig
 * matches, silently falling back to another family). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <fontconfig/fontconfig.h>

#include "bpviz/bpviz.h"

/* fontconfig's own comparison of family names: case and spaces ignored */
static bool same_family(const char *a, const char *b) {
    for (;;) {
        while (*a == ' ') a++;
        while (*b == ' ') b++;
        if (!*a || !*b) return !*a && !*b;
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
        a++;
        b++;
    }
}

int bpv_font_check(const char *family, char *used, size_t n) {
    if (used && n) used[0] = '\0';
    if (!family || !*family || !FcInit()) return -1;
    FcPattern *p = FcPatternBuild(NULL, FC_FAMILY, FcTypeString, (const FcChar8 *)family,
                                  (char *)0);
    if (!p) return -1;
    FcConfigSubstitute(NULL, p, FcMatchPattern);
    FcDefaultSubstitute(p);
    FcResult res = FcResultNoMatch;
    FcPattern *m = FcFontMatch(NULL, p, &res);
    FcPatternDestroy(p);
    if (!m) return -1;
    int found = 0;
    FcChar8 *s = NULL;
    for (int i = 0; FcPatternGetString(m, FC_FAMILY, i, &s) == FcResultMatch; i++) {
        if (i == 0 && used && n) snprintf(used, n, "%s", (const char *)s);
        if (same_family((const char *)s, family)) {
            found = 1;
            if (used && n) snprintf(used, n, "%s", (const char *)s);
            break;
        }
    }
    FcPatternDestroy(m);
    return found;
}
