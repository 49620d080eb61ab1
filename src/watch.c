/* Watch mode: render, then render again whenever the model changes.
 *
 * The model's folder is watched rather than the file: editors that save by
 * writing a temporary file and renaming it over the model replace the
 * inode, and a watch on the old inode would go quiet after the first save. */
/* realpath() is an X/Open function */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"

/* How long the folder must stay quiet before rendering: one save is often
 * several events (write, rename, attribute change). */
#define SETTLE_MS 60
/* Upper bound on one wait, so a stop flag set between the check and poll()
 * is seen soon even if no signal interrupts poll(). */
#define POLL_MS 200

static bool ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The figure's own file(s) in the watched folder, whose writes must not
 * trigger a render (an output named out.csv would otherwise re-render for
 * ever): its name, or for per-step files (step%03d.png) the parts around
 * the step number. Empty prefix and suffix: the output is elsewhere. */
typedef struct own {
    char prefix[256], suffix[256];
    bool pattern, here;
} own;

static void own_init(own *o, const char *dir, const char *output) {
    memset(o, 0, sizeof *o);
    const char *slash = strrchr(output, '/');
    const char *base = slash ? slash + 1 : output;
    char *odir = slash ? strndup(output, slash == output ? 1 : (size_t)(slash - output))
                       : strdup(".");
    char *a = odir ? realpath(odir, NULL) : NULL, *b = realpath(dir, NULL);
    o->here = a && b && strcmp(a, b) == 0;
    free(a), free(b), free(odir);
    const char *pct = strchr(base, '%');
    size_t n = pct ? (size_t)(pct - base) : strlen(base);
    if (n >= sizeof o->prefix) n = sizeof o->prefix - 1;
    memcpy(o->prefix, base, n);
    if (pct) { /* %d or %0Nd */
        const char *d = pct + 1;
        while (*d >= '0' && *d <= '9') d++;
        if (*d == 'd') d++;
        snprintf(o->suffix, sizeof o->suffix, "%s", d);
        o->pattern = true;
    }
}

static bool own_file(const own *o, const char *name) {
    if (!o->here) return false;
    size_t n = strlen(name), p = strlen(o->prefix), q = strlen(o->suffix);
    if (!o->pattern) return strcmp(name, o->prefix) == 0;
    return n >= p + q && memcmp(name, o->prefix, p) == 0 && ends_with(name, n, o->suffix);
}

/* Reads the pending events; true if one concerns the model or a CSV or .npy file
 * beside it (not the figure's own). Sets *gone when the folder itself went away. */
static bool drain(int fd, const char *base, const own *mine, bool *gone) {
    bool hit = false;
    _Alignas(struct inotify_event) char buf[8192];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) return hit; /* EAGAIN: nothing more for now */
        for (char *p = buf; p < buf + r;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) *gone = true;
            if (ev->len) {
                size_t n = strlen(ev->name);
                if (own_file(mine, ev->name)) {
                    /* our own figure: never a reason to render */
                } else if (strcmp(ev->name, base) == 0 || ends_with(ev->name, n, ".csv") ||
                           ends_with(ev->name, n, ".npy")) {
                    hit = true;
                }
            }
            p += sizeof *ev + ev->len;
        }
    }
}

static bool stopped(const bpv_watch_options *w) { return w->stop && *w->stop; }

/* Renders once and reports; returns true to go on watching. */
static bool render_once(const bpv_render_options *ro, const bpv_watch_options *w) {
    bpv_error *e = NULL;
    int rc = bpv_render(ro, &e);
    int halt = w->on_render ? w->on_render(rc, e, w->user) : 0;
    bpv_error_free(e);
    return !halt;
}

int bpv_watch(const bpv_render_options *ro, const bpv_watch_options *wo, bpv_error **err) {
    bpv_watch_options none = {0};
    const bpv_watch_options *w = wo ? wo : &none;
    if (!ro) return bpv_error_set(err, bpv_error_null("bpv_watch", "render"));
    if (!ro->model || strcmp(ro->model, "-") == 0)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                "--watch needs a model file, not standard "
                                                "input"));
    if (!ro->output || strcmp(ro->output, "-") == 0)
        return bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                                "--watch rewrites a file: give one with -o "
                                                "FILE"));
    const char *slash = strrchr(ro->model, '/');
    const char *base = slash ? slash + 1 : ro->model;
    char *dir = slash ? strndup(ro->model, slash == ro->model ? 1 : (size_t)(slash - ro->model))
                      : strdup(".");
    if (!dir) return bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "out of memory"));
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE |
                                                 IN_DELETE_SELF | IN_MOVE_SELF |
                                                 IN_ONLYDIR) < 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        int rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                                  "cannot watch the folder '%s': %s", dir,
                                                  strerror(e)));
        free(dir);
        return rc;
    }
    /* inotify reports a removed folder only once nothing uses it any more,
     * which a file open inside it (our own stderr, say) can delay forever;
     * its link count says it at once. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    own mine;
    own_init(&mine, dir, ro->output);
    int rc = BPV_OK;
    bool go = render_once(ro, w);
    bool pending = false, gone = false;
    while (go && !stopped(w)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, pending ? SETTLE_MS : POLL_MS);
        if (n < 0 && errno != EINTR) {
            rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME, "cannot watch '%s': %s",
                                                  ro->model, strerror(errno)));
            break;
        }
        if (n > 0) {
            if (drain(fd, base, &mine, &gone)) pending = true;
            if (gone) {
                rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                                      "the folder '%s' was removed or moved; "
                                                      "stopped watching",
                                                      dir));
                break;
            }
        } else if (n == 0 && !pending) {
            struct stat st;
            if (dfd >= 0 && fstat(dfd, &st) == 0 && st.st_nlink == 0) gone = true;
            if (gone) {
                rc = bpv_error_set(err, bpv_error_new(BPV_ERR_RUNTIME,
                                                      "the folder '%s' was removed; stopped "
                                                      "watching",
                                                      dir));
                break;
            }
        } else if (n == 0 && pending && !stopped(w)) {
            pending = false;
            go = render_once(ro, w);
        }
    }
    close(fd);
    if (dfd >= 0) close(dfd);
    free(dir);
    return rc;
}
