/* libFuzzer target 5: the .npy reader (src/npy.c). The input's first byte
 * picks the dtype and the batch; the rest is written to a .npy file that a
 * small model reads with npy(). Loading must succeed or fail with a located
 * error; a successful model must train a step. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpviz/bpviz.h"
#include "fuzz_common.h"

static char npy_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(npy_path, sizeof npy_path, "%s/in.npy", fuzz_enter_sandbox());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned sel = data[0];
    FILE *f = fopen(npy_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data + 1, 1, size - 1, f) == size - 1);
    FUZZ_CHECK(fclose(f) == 0);

    char model[512];
    /* a scalar parameter broadcasts against samples of any shape */
    snprintf(model, sizeof model,
             "%sdata x = npy(\"in.npy\")\n"
             "param w = 1.0\n"
             "loss = sum(x * w)\n"
             "train epochs=1 lr=0.1 batch=%s\n",
             (sel & 1) ? "dtype f64\n" : "", (sel & 2) ? "all" : "1");
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string("fuzz.bp", model, strlen(model), &err);
    if (!m) {
        FUZZ_CHECK(err != NULL && err->status != BPV_OK);
        size_t n = strlen(err->message);
        FUZZ_CHECK(n > 0 && err->message[n - 1] == '\n');
        FUZZ_CHECK(fuzz_utf8_valid(err->message, n));
        /* a bad file is the model's error, located in it */
        FUZZ_CHECK(err->status != BPV_ERR_MODEL || strncmp(err->message, "fuzz.bp:1:", 10) == 0 ||
                   strncmp(err->message, "fuzz.bp:2:", 10) == 0);
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
