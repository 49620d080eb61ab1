/* libFuzzer target 3: the CSV reader. The input's first byte picks the
 * column selection and dtype; the rest is written to a CSV file that a small
 * model reads with csv(). Loading must succeed or fail with a located error;
 * a successful model must train a step. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpviz/bpviz.h"
#include "fuzz_common.h"

static char csv_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(csv_path, sizeof csv_path, "%s/in.csv", fuzz_enter_sandbox());
    return 0;
}

static const char *const cols[] = {"0", "1", "2", "0:2", "1:3", "0:3", "3", "0:1"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned sel = data[0];
    FILE *f = fopen(csv_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data + 1, 1, size - 1, f) == size - 1);
    FUZZ_CHECK(fclose(f) == 0);

    const char *c = cols[sel & 7];
    bool vec = strchr(c, ':') != NULL;
    char model[512];
    /* a scalar parameter broadcasts against samples of any width */
    snprintf(model, sizeof model,
             "%sdata x = csv(\"in.csv\", %s)\n"
             "param w = 1.0\n"
             "loss = %s\n"
             "train epochs=1 lr=0.1 batch=%s\n",
             (sel & 8) ? "dtype f64\n" : "", c, vec ? "sum(x * w)" : "(x * w - 1)^2",
             (sel & 16) ? "all" : "1");
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string("fuzz.bp", model, strlen(model), &err);
    if (!m) {
        FUZZ_CHECK(err != NULL && err->status != BPV_OK);
        size_t n = strlen(err->message);
        FUZZ_CHECK(n > 0 && err->message[n - 1] == '\n');
        FUZZ_CHECK(fuzz_utf8_valid(err->message, n));
        bpv_error_free(err);
        return 0;
    }
    bpv_step_set *keep = bpv_step_set_parse("1", &err);
    FUZZ_CHECK(keep != NULL);
    bpv_run_options ro = {0};
    ro.keep = keep;
    ro.stop_after_last_kept = 1;
    int rc = bpv_model_run(m, &ro, &err);
    FUZZ_CHECK(rc == BPV_OK);
    FUZZ_CHECK(bpv_model_snapshot_count(m) == 1);
    bpv_step_set_free(keep);
    bpv_model_free(m);
    return 0;
}
