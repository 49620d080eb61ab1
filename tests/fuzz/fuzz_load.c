/* libFuzzer target 1: lex, parse and check a model from arbitrary bytes
 * (bpv_model_load_string). Every input must either load or fail with a
 * located error and a model status; nothing may crash, leak or hang. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bpv_error *err = NULL;
    bpv_model *m = bpv_model_load_string("fuzz.bp", (const char *)data, size, &err);
    if (m) {
        FUZZ_CHECK(err == NULL);
        FUZZ_CHECK(bpv_model_step_count(m) >= 0);
        bpv_model_free(m);
    } else {
        FUZZ_CHECK(err != NULL && err->message != NULL);
        FUZZ_CHECK(err->status == BPV_ERR_MODEL || err->status == BPV_ERR_RUNTIME);
        size_t n = strlen(err->message);
        FUZZ_CHECK(n > 0 && err->message[n - 1] == '\n');
        FUZZ_CHECK(fuzz_utf8_valid(err->message, n));
        bpv_error_free(err);
    }
    return 0;
}
