/* `bpviz check`: loads a model, trains it with the gradient check on a few
 * steps and reports what inspection (inspect.c) finds, plus params that
 * never get a gradient. It loads and runs a model, so it sits with the API
 * glue (bpviz.c), above everything it calls. */
#include <stdlib.h>
#include <string.h>

#include "inspect.h"

static void capture(const char *msg, void *user) {
    char **dst = user;
    if (!*dst) *dst = strdup(msg);
}

/* Step 1, step 2 (where zero_grad=false first shows), the last step and a
 * spread between: at most 8 steps. */
static void default_steps(long total, bpv_buf *b) {
    long prev = 0;
    for (int k = 0; k < 8; k++) {
        long s = k == 0 ? 1 : k == 1 ? 2 : 2 + (total - 2) * (k - 1) / 6;
        if (s > total) s = total;
        if (s <= prev) continue;
        bpv_buf_printf(b, "%s%ld", prev ? "," : "", s);
        prev = s;
    }
}

int bpv_check(const char *path, const char *steps, char **report, bpv_error **err) {
    if (!path) {
        if (report) *report = NULL;
        return bpv_error_set(err, bpv_error_null("bpv_check", "model"));
    }
    if (!report) { /* the status alone: the report is made and dropped */
        char *dropped = NULL;
        int rc = bpv_check(path, steps, &dropped, err);
        free(dropped);
        return rc;
    }
    *report = NULL;
    bpv_model *m = bpv_model_load(path, err);
    if (!m) return err && *err ? (*err)->status : BPV_ERR_MODEL;
    long total = bpv_model_step_count(m);
    bpv_buf spec, out;
    bpv_buf_init(&spec);
    bpv_buf_init(&out);
    if (steps) bpv_buf_puts(&spec, steps);
    else default_steps(total, &spec);
    bpv_step_set *keep = total ? bpv_step_set_parse(spec.data, err) : NULL;
    int rc = BPV_OK;
    if (total && !keep) rc = BPV_ERR_MODEL;
    else if (keep && bpv_step_set_max(keep, total) > total)
        rc = bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                              "step %ld is past the end: the model has %ld "
                                              "steps",
                                              bpv_step_set_max(keep, total), total));
    char *nf_msg = NULL;
    if (rc == BPV_OK) {
        bpv_run_options ro = {0};
        ro.keep = keep;
        ro.gradcheck = 1;
        ro.on_warning = capture;
        ro.warning_user = &nf_msg;
        bpv_error *run_err = NULL;
        rc = bpv_model_run(m, &ro, &run_err);
        if (rc != BPV_OK && m->run.nf_step && run_err) {
            /* stop_on_nonfinite: the stop is the finding, not a failure */
            nf_msg = nf_msg ? nf_msg : strdup(run_err->message);
            bpv_error_free(run_err);
            rc = BPV_OK;
        } else if (rc != BPV_OK) {
            bpv_error_set(err, run_err);
        }
    }
    long problems = 0;
    if (rc == BPV_OK) {
        problems = bpv_gradcheck_mismatches(m, &out);
        if (nf_msg) {
            bpv_buf_puts(&out, nf_msg);
            problems++;
        }
        for (int p = 0; p < m->nparams && total; p++) {
            const bpv_param *mp = &m->params[p];
            bool used = m->run.grad_used && m->run.grad_used[p], seen = m->run.grad_seen && m->run.grad_seen[p];
            if (seen || (m->run.nf_step && used)) continue;
            bpv_inspect_loc(m, mp->stmt->name_off, &out);
            if (!used)
                bpv_buf_printf(&out, "param '%s' is not connected to the objective: it never "
                                     "receives a gradient\n", mp->name);
            else
                bpv_buf_printf(&out, "param '%s' never receives a nonzero gradient in %ld "
                                     "steps (a dead relu?)\n", mp->name, m->run.step);
            problems++;
        }
        bpv_buf_put_clean(&out, m->src.name, strlen(m->src.name));
        bpv_buf_puts(&out, ": ");
        if (problems) bpv_buf_printf(&out, "%ld problem%s", problems, problems == 1 ? "" : "s");
        else bpv_buf_puts(&out, "ok");
        if (total) bpv_buf_printf(&out, " (%ld training step%s; gradient check at step%s %s)\n",
                                  m->run.step, m->run.step == 1 ? "" : "s",
                                  strchr(spec.data, ',') || strchr(spec.data, '-') ? "s" : "",
                                  spec.data);
        else bpv_buf_puts(&out, " (no train statement: parsed and shape-checked)\n");
        *report = bpv_buf_take(&out);
        if (!*report) rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
        else if (problems) rc = BPV_CHECK_PROBLEMS;
    }
    free(nf_msg);
    bpv_buf_free(&out);
    bpv_buf_free(&spec);
    bpv_step_set_free(keep);
    bpv_model_free(m);
    return rc;
}
