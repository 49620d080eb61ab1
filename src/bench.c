/* `bpviz bench`: times training steps exactly as `run` takes them (same
 * statements, same loop, no output), after untimed warm-up steps.
 *
 * The clock is read in the progress callback, which the runner calls after
 * each step's backward pass: the time between the call for step W and the
 * call for step W+N covers N whole steps (one update and snapshot of step W,
 * then N-1 full steps and the forward and backward of step W+N). */
#include <stdlib.h>
#include <time.h>

#include "train.h"
#include "snapshot.h"

typedef struct bench_state {
    bpv_model *m;
    long start_step, end_step;
    struct timespec t0, t1;
} bench_state;

static void on_step(long step, long total, void *user) {
    bench_state *b = user;
    (void)total;
    if (step == b->start_step) clock_gettime(CLOCK_MONOTONIC, &b->t0);
    else if (step == b->end_step) clock_gettime(CLOCK_MONOTONIC, &b->t1);
}

/* Snapshots are taken as a trace would take them, then dropped at once so
 * that memory stays flat however many steps run. The runner has just stored
 * `snap` as the model's last one. */
static int on_snap(const bpv_snapshot *snap, void *user) {
    bench_state *b = user;
    bpv_model *m = b->m;
    long step = snap->step;
    if (m->run.nsnaps && m->run.snaps[m->run.nsnaps - 1] == snap) {
        m->run.nsnaps--;
        bpv_snapshot_release(m, m->run.snaps[m->run.nsnaps]);
    }
    return step >= b->end_step;
}

int bpv_model_bench(bpv_model *m, const bpv_bench_options *opts, bpv_bench_result *res,
                    bpv_error **err) {
    if (!m) return bpv_error_set(err, bpv_error_null("bpv_model_bench", "model"));
    if (m->trace)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                "'%s' is a JSON trace, not a model: there is "
                                                "no training to time",
                                                m->src.name));
    bpv_bench_options def = {0, -1, 0};
    if (!opts) opts = &def;
    if (m->ntrains == 0 || m->total_steps == 0)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                "%s: the model has no training steps to time",
                                                m->src.name));
    long steps = opts->steps > 0 ? opts->steps : 1000;
    long warm = opts->warmup >= 0 ? opts->warmup : steps / 10;
    if (warm < 1) warm = 1; /* the clock starts at a step's end */
    if (steps > (long)1 << 40 || warm > (long)1 << 40)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL, "too many steps to time"));

    /* A model shorter than warm-up plus timed steps trains on: its last
     * train statement gets more epochs, for this run only. */
    long need = warm + steps;
    bpv_train *lt = &m->trains[m->ntrains - 1];
    const long epochs = lt->epochs, total = m->total_steps;
    char spec[32];
    snprintf(spec, sizeof spec, "%ld", need);
    bpv_step_set *keep = bpv_step_set_parse(opts->snapshot_every ? "all" : spec, err);
    if (!keep) return BPV_ERR_RUNTIME;
    if (m->total_steps < need) {
        long spe = lt->steps_per_epoch > 0 ? lt->steps_per_epoch : 1;
        long extra = (need - m->total_steps + spe - 1) / spe;
        lt->epochs += extra;
        m->total_steps += extra * spe;
    }
    bench_state b = {m, warm, need, {0, 0}, {0, 0}};
    bpv_run_options ro = {0};
    ro.keep = keep; /* "none" keeps only the last step: the run stops there */
    ro.on_snapshot = on_snap;
    ro.user = &b;
    ro.on_progress = on_step;
    ro.progress_user = &b;
    int rc = bpv_model_exec(m, &ro, err);
    bpv_step_set_free(keep);
    lt->epochs = epochs;
    m->total_steps = total;
    if (rc != BPV_OK) return rc;
    double s = (double)(b.t1.tv_sec - b.t0.tv_sec) + (double)(b.t1.tv_nsec - b.t0.tv_nsec) * 1e-9;
    if (res) {
        res->steps = steps;
        res->seconds = s;
        res->ns_per_step = s * 1e9 / (double)steps;
        res->threads = bpv_threads_get();
    }
    return BPV_OK;
}
