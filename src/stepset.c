/* Step selections: "3", "1-8", "1-100/10", "1,5,9", "all", "last",
 * combined with commas. A stepped range A-B/K holds A, A+K, A+2K, ... and
 * always its end B (1-800/100: 1, 101, ..., 701, 800; A-last/K: the last
 * step too), so a training's final step is never left out. "last" stands for the model's final step, known only
 * once the model is loaded, so it is resolved against a total. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct step_range {
    long from, to, every; /* to == -1: up to the last step */
    bool from_last;       /* "last" */
} step_range;

struct bpv_step_set {
    step_range *r;
    size_t n;
};

static bool parse_long(const char **p, long *out) {
    if (!isdigit((unsigned char)**p)) return false;
    errno = 0;
    char *end;
    long v = strtol(*p, &end, 10);
    if (errno || v < 1) return false;
    *out = v;
    *p = end;
    return true;
}

bpv_step_set *bpv_step_set_parse(const char *spec, bpv_error **err) {
    if (!spec) {
        bpv_error_set(err, bpv_error_null("bpv_step_set_parse", "spec"));
        return NULL;
    }
    bpv_step_set *s = calloc(1, sizeof *s);
    size_t cap = 0;
    const char *p = spec;
    if (!s) goto bad;
    while (*p) {
        step_range r = {0, 0, 1, false};
        if (strncmp(p, "all", 3) == 0 && (p[3] == ',' || !p[3])) {
            r.from = 1;
            r.to = -1;
            p += 3;
        } else if (strncmp(p, "last", 4) == 0 && (p[4] == ',' || !p[4])) {
            r.from_last = true;
            p += 4;
        } else {
            if (!parse_long(&p, &r.from)) goto bad;
            r.to = r.from;
            if (*p == '-') {
                p++;
                if (strncmp(p, "last", 4) == 0) {
                    r.to = -1;
                    p += 4;
                } else if (!parse_long(&p, &r.to) || r.to < r.from) {
                    goto bad;
                }
                if (*p == '/') {
                    p++;
                    if (!parse_long(&p, &r.every)) goto bad;
                }
            }
        }
        if (*p == ',') {
            p++;
            if (!*p) goto bad;
        } else if (*p) {
            goto bad;
        }
        if (s->n == cap) {
            cap = cap ? cap * 2 : 4;
            step_range *nr = realloc(s->r, cap * sizeof *nr);
            if (!nr) goto bad;
            s->r = nr;
        }
        s->r[s->n++] = r;
    }
    if (s->n == 0) goto bad;
    return s;
bad:
    bpv_step_set_free(s);
    bpv_error_set(err, bpv_error_new(BPV_ERR_MODEL,
                                     "bad step selection '%s': use N, A-B, A-B/K, a list "
                                     "like 1,5,9, 'all' or 'last' (steps count from 1)",
                                     spec));
    return NULL;
}

void bpv_step_set_free(bpv_step_set *s) {
    if (!s) return;
    free(s->r);
    free(s);
}

long bpv_step_set_max(const bpv_step_set *s, long total) {
    long best = 0;
    if (!s) return 0;
    for (size_t i = 0; i < s->n; i++) {
        const step_range *r = &s->r[i];
        long to = (r->from_last || r->to < 0) ? total : r->to; /* the end is in the set */
        if (to > best) best = to;
    }
    return best;
}

long bpv_step_set_min(const bpv_step_set *s, long total) {
    long best = LONG_MAX;
    if (!s) return 0;
    for (size_t i = 0; i < s->n; i++) {
        long from = s->r[i].from_last ? total : s->r[i].from;
        if (from < best) best = from;
    }
    return best;
}

long bpv_step_set_next(const bpv_step_set *s, long step, long total) {
    long best = LONG_MAX;
    if (!s) return best;
    for (size_t i = 0; i < s->n; i++) {
        const step_range *r = &s->r[i];
        long c = LONG_MAX;
        if (r->from_last) {
            if (total >= step) c = total;
        } else {
            long to = r->to < 0 ? total : r->to;
            if (r->every == 1 && step >= r->from && step <= to) {
                c = step; /* "all" and plain ranges, at every step: no division */
            } else if (step <= r->from) {
                if (r->from <= to) c = r->from;
            } else if (to >= step) {
                long d = step - r->from, q = d / r->every + (d % r->every != 0);
                if (q <= (to - r->from) / r->every) c = r->from + q * r->every;
                else c = to; /* a stepped range ends on its end */
            }
        }
        if (c < best) best = c;
    }
    return best;
}

long bpv_step_set_count(const bpv_step_set *s, long total) {
    if (!s || total <= 0) return 0;
    /* ranges rarely overlap; when they do, the sum is capped by total */
    long n = 0;
    for (size_t i = 0; i < s->n && n < total; i++) {
        const step_range *r = &s->r[i];
        if (r->from_last) {
            n++;
            continue;
        }
        long to = r->to < 0 || r->to > total ? total : r->to;
        if (to >= r->from)
            n += (to - r->from) / r->every + 1 + ((to - r->from) % r->every != 0);
    }
    return n < total ? n : total;
}
