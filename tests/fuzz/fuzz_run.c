/* libFuzzer target 2: a whole run of a few training steps with a figure
 * exported to DOT (and the JSON trace), then the same steps recorded one by
 * one as `bench --snapshot every` does. Models with many steps are skipped
 * so each input stays fast. The DOT must be UTF-8 and look like a digraph;
 * the JSON must be UTF-8 and hold no raw control characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpviz/bpviz.h"
#include "fuzz_common.h"

#define MAX_STEPS 50

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_enter_sandbox();
    return 0;
}

static void check_json(const char *s, size_t n) {
    FUZZ_CHECK(fuzz_utf8_valid(s, n));
    FUZZ_CHECK(n >= 2 && s[0] == '{');
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (in_str) {
            FUZZ_CHECK(c >= 0x20);
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        }
    }
    FUZZ_CHECK(!in_str);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string("fuzz.bp", (const char *)data, size, &err);
    if (!m) {
        FUZZ_CHECK(err != NULL);
        bpv_error_free(err);
        return 0;
    }
    long total = bpv_model_step_count(m);
    if (total > MAX_STEPS || total < 1) {
        bpv_model_free(m);
        return -1; /* do not add to the corpus */
    }
    /* the last step, and the first one too when there are several */
    bpv_step_set *keep = bpv_step_set_parse(total > 1 ? "1,last" : "1", &err);
    FUZZ_CHECK(keep != NULL);
    bpv_run_options ro = {0};
    ro.keep = keep;
    int rc = bpv_model_run(m, &ro, &err);
    if (rc != BPV_OK) {
        FUZZ_CHECK(err != NULL && err->status == rc);
        bpv_error_free(err);
        err = NULL;
    } else {
        size_t n = bpv_model_snapshot_count(m);
        FUZZ_CHECK(n >= 1 && n <= 2);
        const bpv_snapshot *snaps[2];
        for (size_t i = 0; i < n; i++) snaps[i] = bpv_model_snapshot(m, i);
        FUZZ_CHECK(bpv_snapshot_step(snaps[0]) == 1);
        bpv_figure_options fig;
        bpv_figure_options_init(&fig);
        fig.labels = (size & 1) ? BPV_LABELS_FULL : BPV_LABELS_VALUES;
        fig.plain_names = (size & 2) != 0;
        char *out = NULL;
        size_t len = 0;
        rc = bpv_export(m, &snaps[n - 1], 1, BPV_FORMAT_DOT, &fig, &out, &len, &err);
        if (rc == BPV_OK) {
            FUZZ_CHECK(out != NULL && len > 0);
            FUZZ_CHECK(fuzz_utf8_valid(out, len));
            FUZZ_CHECK(strncmp(out, "digraph", 7) == 0 || strncmp(out, "strict digraph", 14) == 0);
        } else {
            FUZZ_CHECK(err != NULL);
            bpv_error_free(err);
            err = NULL;
        }
        free(out);
        out = NULL;
        rc = bpv_export(m, snaps, n, BPV_FORMAT_JSON, &fig, &out, &len, &err);
        FUZZ_CHECK(rc == BPV_OK);
        check_json(out, len);
        free(out);
    }
    bpv_step_set_free(keep);
    bpv_model_free(m);
    /* the same steps again recording every one and dropping it, as a trace
     * does: released snapshots are refilled by the next step's take */
    m = bpv_model_load_string("fuzz.bp", (const char *)data, size, &err);
    FUZZ_CHECK(m != NULL);
    bpv_bench_options bo = {total, 0, 1};
    bpv_bench_result br;
    rc = bpv_model_bench(m, &bo, &br, &err);
    if (rc != BPV_OK) {
        FUZZ_CHECK(err != NULL && err->status == rc);
        bpv_error_free(err);
    }
    bpv_model_free(m);
    return 0;
}
