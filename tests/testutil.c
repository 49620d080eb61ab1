#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "snapshot.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) free(buf);
            buf = p;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int tu_write_file(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

/* Reads a descriptor to its end into a malloc'd string. */
static char *slurp_fd(int fd, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (cap - n - 1 == 0) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int tu_run(char *const argv[], char **out, size_t *out_len, char **err) {
    /* stderr goes to a temporary file so that a child writing a lot to both
     * streams cannot deadlock against us reading one pipe */
    char errpath[] = "/tmp/bpv-test-err-XXXXXX";
    int errfd = mkstemp(errpath);
    if (errfd < 0) return -2;
    unlink(errpath);
    int pfd[2];
    if (pipe(pfd) != 0) return -2;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(pfd[1], 1);
        dup2(errfd, 2);
        close(pfd[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t n;
    char *o = slurp_fd(pfd[0], &n);
    close(pfd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (out) *out = o;
    else free(o);
    if (out_len) *out_len = n;
    lseek(errfd, 0, SEEK_SET);
    char *e = slurp_fd(errfd, NULL);
    close(errfd);
    if (err) *err = e;
    else free(e);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int tu_bpviz(char **out, char **err, ...) {
    char *argv[32] = {BPV_CLI_PATH};
    va_list ap;
    va_start(ap, err);
    int n = 1;
    char *a;
    while (n < 31 && (a = va_arg(ap, char *))) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return tu_run(argv, out, NULL, err);
}

int tu_sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(NULL);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char tmpdir[64];

int tu_tmpdir_setup(void **state) {
    (void)state;
    strcpy(tmpdir, "/tmp/bpv-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

int tu_tmpdir_teardown(void **state) {
    (void)state;
    return tmpdir[0] && tu_sh("rm -rf '%s'", tmpdir) == 0 ? 0 : -1;
}

const char *tu_tmpdir(void) { return tmpdir; }

char *tu_tmp_path(const char *name) {
    static char path[8][512];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", tmpdir, name);
    return p;
}

/* ---- snapshots ---- */

static void same_numbers(const double *a, const double *b, int64_t n) {
    assert_true((a == NULL) == (b == NULL));
    if (a) assert_memory_equal(a, b, (size_t)n * sizeof *a);
}

void tu_same_snapshot(const bpv_snapshot *a, const bpv_snapshot *b) {
    assert_int_equal(a->step, b->step);
    assert_int_equal(a->epoch, b->epoch);
    assert_memory_equal(&a->loss, &b->loss, sizeof a->loss);
    assert_int_equal(a->nsamples, b->nsamples);
    for (int64_t i = 0; i < a->nsamples; i++) assert_int_equal(a->samples[i], b->samples[i]);
    assert_int_equal(a->nnodes, b->nnodes);
    for (int i = 0; i < a->nnodes; i++) {
        same_numbers(a->nodes[i].value, b->nodes[i].value, a->nodes[i].numel);
        same_numbers(a->nodes[i].grad, b->nodes[i].grad, a->nodes[i].numel);
    }
    assert_int_equal(a->nedges, b->nedges);
    for (int e = 0; e < a->nedges; e++)
        same_numbers(a->edges[e].chained, b->edges[e].chained, a->nodes[a->edges[e].from].numel);
    assert_int_equal(a->nparams, b->nparams);
    for (int q = 0; q < a->nparams; q++)
        same_numbers(a->params[q].after, b->params[q].after, a->params[q].numel);
}
