/* libFuzzer target 6: the trace reader (src/jsonread.c, src/trace.c). The
 * bytes are a JSON trace (bpv_trace_load_string). It loads, or fails with a
 * located error ("fuzz.json:L:C: error: ...") and status 2 (1 when out of
 * memory). A trace that loads is written back to JSON, which must load
 * again and give the same JSON (nothing is lost or changed on the way), and
 * its first step is drawn as DOT. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpviz/bpviz.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_enter_sandbox();
    return 0;
}

static void check_error(bpv_error *err) {
    FUZZ_CHECK(err != NULL && err->message != NULL);
    FUZZ_CHECK(err->status == BPV_ERR_MODEL || err->status == BPV_ERR_RUNTIME);
    size_t n = strlen(err->message);
    FUZZ_CHECK(n > 0 && err->message[n - 1] == '\n');
    FUZZ_CHECK(fuzz_utf8_valid(err->message, n));
    /* a wrong trace is located in it; limits of memory name their variable */
    FUZZ_CHECK(err->status != BPV_ERR_MODEL || strncmp(err->message, "fuzz.json:", 10) == 0 ||
               strstr(err->message, "BPV_MAX_") != NULL);
}

/* The whole trace as JSON (malloc'd). */
static char *to_json(const bpv_model *t, size_t *len) {
    size_t n = bpv_model_snapshot_count(t);
    const bpv_snapshot **s = malloc((n ? n : 1) * sizeof *s);
    FUZZ_CHECK(s != NULL);
    for (size_t i = 0; i < n; i++) s[i] = bpv_model_snapshot(t, i);
    char *out = NULL;
    bpv_error *err = NULL;
    FUZZ_CHECK(bpv_export(t, s, n, BPV_FORMAT_JSON, NULL, &out, len, &err) == BPV_OK);
    free(s);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bpv_error *err = NULL;
    bpv_model *t = bpv_trace_load_string("fuzz.json", (const char *)data, size, &err);
    if (!t) {
        check_error(err);
        bpv_error_free(err);
        return 0;
    }
    FUZZ_CHECK(err == NULL);
    FUZZ_CHECK(bpv_model_is_trace(t) == 1);
    FUZZ_CHECK(bpv_model_snapshot_count(t) > 0);
    size_t len1, len2;
    char *j1 = to_json(t, &len1);
    FUZZ_CHECK(fuzz_utf8_valid(j1, len1));
    bpv_model *t2 = bpv_trace_load_string("fuzz.json", j1, len1, &err);
    if (!t2) fprintf(stderr, "%s", err->message);
    FUZZ_CHECK(t2 != NULL);
    char *j2 = to_json(t2, &len2);
    FUZZ_CHECK(len1 == len2 && memcmp(j1, j2, len1) == 0);
    free(j1);
    free(j2);
    bpv_model_free(t2);

    const bpv_snapshot *s = bpv_model_snapshot(t, 0);
    bpv_figure_options fo;
    bpv_figure_options_init(&fo);
    fo.max_nodes = 60; /* a layout of more costs seconds */
    char *dot = NULL;
    size_t dlen = 0;
    int rc = bpv_export(t, &s, 1, BPV_FORMAT_DOT, &fo, &dot, &dlen, &err);
    if (rc == BPV_OK) {
        FUZZ_CHECK(fuzz_utf8_valid(dot, dlen));
        FUZZ_CHECK(dlen > 8 && strncmp(dot, "digraph", 7) == 0);
    } else {
        check_error(err);
        bpv_error_free(err);
    }
    free(dot);
    bpv_model_free(t);
    return 0;
}
