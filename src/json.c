/* JSON trace exporter: every kept snapshot as one JSON document. The schema
 * is documented in docs/json-trace.md. Numbers use the same shortest
 * round-trip format as `bpviz run`; NaN and infinities, which JSON cannot
 * spell, are the strings "nan", "inf" and "-inf". */
#include <math.h>
#include <string.h>

#include "export.h"

static const char *const kind_names[] = {"data", "param", "const", "op"};
static_assert(sizeof kind_names / sizeof kind_names[0] == BPV_NODE_OP + 1,
              "one name per node kind");

void bpv_json_string(bpv_buf *b, const char *s) {
    bpv_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': bpv_buf_puts(b, "\\\""); break;
        case '\\': bpv_buf_puts(b, "\\\\"); break;
        case '\n': bpv_buf_puts(b, "\\n"); break;
        case '\t': bpv_buf_puts(b, "\\t"); break;
        case '\r': bpv_buf_puts(b, "\\r"); break;
        default:
            /* '<' is escaped too so the text can sit inside an HTML <script> */
            if (*p < 0x20 || *p == 0x7f || *p == '<') {
                bpv_buf_printf(b, "\\u%04x", *p);
            } else if (*p < 0x80) {
                bpv_buf_putc(b, (char)*p);
            } else {
                /* JSON is UTF-8: a byte that starts no valid character (a
                 * file name in another encoding) becomes U+FFFD */
                size_t n = *p < 0xe0 ? 2 : *p < 0xf0 ? 3 : 4, k = 1;
                while (k < n && p[k]) k++;
                if (k == n && bpv_utf8_valid((const char *)p, n, NULL)) {
                    bpv_buf_add(b, (const char *)p, n);
                    p += n - 1;
                } else {
                    bpv_buf_puts(b, "\xef\xbf\xbd");
                }
            }
        }
    }
    bpv_buf_putc(b, '"');
}

static void json_number(bpv_buf *b, double v) {
    if (isfinite(v)) bpv_fmt_repr(b, v);
    else bpv_buf_puts(b, isnan(v) ? "\"nan\"" : v < 0 ? "\"-inf\"" : "\"inf\"");
}

/* A tensor as nested lists, a scalar as a number; NULL as null. */
static void json_tensor(bpv_buf *b, const double *v, const bpv_shape *s) {
    if (!v) {
        bpv_buf_puts(b, "null");
        return;
    }
    if (s->rank == 0) {
        json_number(b, v[0]);
        return;
    }
    int64_t idx[BPV_MAX_RANK] = {0};
    int64_t numel = bpv_shape_numel(s);
    if (numel == 0) {
        for (int d = 0; d < s->rank; d++) bpv_buf_putc(b, '[');
        for (int d = 0; d < s->rank; d++) bpv_buf_putc(b, ']');
        return;
    }
    for (int d = 0; d < s->rank; d++) bpv_buf_putc(b, '[');
    for (int64_t i = 0; i < numel; i++) {
        json_number(b, v[i]);
        /* advance the multi-index, closing and reopening brackets */
        int d = s->rank - 1;
        while (d >= 0 && ++idx[d] == s->dim[d]) {
            idx[d] = 0;
            d--;
        }
        int closed = s->rank - 1 - d;
        for (int k = 0; k < closed; k++) bpv_buf_putc(b, ']');
        if (d >= 0) {
            bpv_buf_puts(b, ", ");
            for (int k = 0; k < closed; k++) bpv_buf_putc(b, '[');
        }
    }
}

static void json_shape(bpv_buf *b, const bpv_shape *s) {
    bpv_buf_putc(b, '[');
    for (int d = 0; d < s->rank; d++)
        bpv_buf_printf(b, "%s%lld", d ? ", " : "", (long long)s->dim[d]);
    bpv_buf_putc(b, ']');
}

static void json_key(bpv_buf *b, const char *indent, const char *key) {
    bpv_buf_puts(b, indent);
    bpv_json_string(b, key);
    bpv_buf_puts(b, ": ");
}

/* Additive keys (docs/json-trace.md), written only when they say
 * something so that traces without them are unchanged. */
static void json_gradcheck(bpv_buf *b, const bpv_gradcheck_mark *k) {
    static const char *const states[] = {"none", "ok", "skip", "mismatch"};
    if (k->state == BPV_GRADCHECK_NONE) return;
    bpv_buf_printf(b, ", \"check\": {\"state\": \"%s\"", states[k->state]);
    if (k->state != BPV_GRADCHECK_SKIP) {
        bpv_buf_printf(b, ", \"element\": %lld, \"analytic\": ", (long long)k->elem);
        json_number(b, k->analytic);
        bpv_buf_puts(b, ", \"numeric\": ");
        json_number(b, k->numeric);
        bpv_buf_puts(b, ", \"relerr\": ");
        json_number(b, k->relerr);
    }
    bpv_buf_putc(b, '}');
}

static void json_snapshot(bpv_buf *b, const bpv_snapshot *s) {
    bpv_snapshot_locals(s);
    bpv_buf_printf(b, "    {\n      \"step\": %ld,\n      \"epoch\": %ld,\n", s->step, s->epoch);
    json_key(b, "      ", "samples");
    bpv_buf_putc(b, '[');
    for (int64_t i = 0; i < s->nsamples; i++)
        bpv_buf_printf(b, "%s%lld", i ? ", " : "", (long long)s->samples[i]);
    bpv_buf_puts(b, "],\n");
    json_key(b, "      ", "loss");
    json_number(b, s->loss);
    bpv_buf_printf(b, ",\n      \"objective\": %d,\n", s->objective);
    if (s->nf_pass) {
        bpv_buf_printf(b, "      \"nonfinite\": {\"pass\": \"%s\", \"node\": %d, \"edge\": ",
                       s->nf_pass == 1 ? "forward" : "backward", s->nf_node);
        if (s->nf_edge >= 0) bpv_buf_printf(b, "%d", s->nf_edge);
        else bpv_buf_puts(b, "null");
        bpv_buf_puts(b, ", \"note\": ");
        bpv_json_string(b, s->nf_note);
        bpv_buf_puts(b, "},\n");
    }

    bpv_buf_puts(b, "      \"nodes\": [");
    for (int i = 0; i < s->nnodes; i++) {
        const bpv_snap_node *n = &s->nodes[i];
        bpv_buf_printf(b, "%s\n        {\"id\": %d, \"name\": ", i ? "," : "", i);
        if (n->name) bpv_json_string(b, n->name);
        else bpv_buf_puts(b, "null");
        bpv_buf_puts(b, ", \"kind\": ");
        bpv_json_string(b, kind_names[n->kind]);
        bpv_buf_puts(b, ", \"op\": ");
        if (n->kind == BPV_NODE_OP)
            bpv_json_string(b, n->recorded && n->fn ? n->fn : bpv_ops[n->op].name);
        else bpv_buf_puts(b, "null");
        bpv_buf_puts(b, ", \"inputs\": [");
        for (int k = 0; k < n->nin; k++) bpv_buf_printf(b, "%s%d", k ? ", " : "", n->in[k]);
        bpv_buf_puts(b, "], \"shape\": ");
        json_shape(b, &n->shape);
        bpv_buf_puts(b, ", \"value\": ");
        json_tensor(b, n->novalue ? NULL : n->value, &n->shape);
        bpv_buf_puts(b, ", \"grad\": ");
        json_tensor(b, n->grad, &n->shape);
        const bpv_op_def *d = &bpv_ops[n->op];
        if (n->kind == BPV_NODE_OP && d->nattrs && n->attr) {
            bpv_buf_puts(b, ", \"attrs\": {");
            if (d->flags & BPV_OPF_SHAPE_ARG) { /* reshape: "shape": [3, -1] */
                bpv_buf_puts(b, "\"shape\": [");
                for (int a = 0; a < d->nattrs && !isnan(n->attr[a]); a++)
                    bpv_buf_printf(b, "%s%lld", a ? ", " : "", (long long)n->attr[a]);
                bpv_buf_putc(b, ']');
            }
            bool first = true;
            for (int a = 0; !(d->flags & BPV_OPF_SHAPE_ARG) && a < d->nattrs; a++) {
                if (isnan(n->attr[a])) continue; /* not given: pooling's stride */
                bpv_buf_puts(b, first ? "" : ", ");
                first = false;
                bpv_json_string(b, d->attrs[a].name);
                bpv_buf_puts(b, ": ");
                if (d->attrs[a].kind == BPV_ATTR_INT) /* "stride": 1, a whole number */
                    bpv_buf_printf(b, "%lld", (long long)n->attr[a]);
                else
                    bpv_fmt_repr(b, n->attr[a]);
            }
            bpv_buf_putc(b, '}');
        }
        if (n->loop_var) { /* the unrolled time step: "loop": {"t": 3} */
            bpv_buf_puts(b, ", \"loop\": {");
            bpv_json_string(b, n->loop_var);
            bpv_buf_printf(b, ": %lld}", (long long)n->loop_value);
        }
        if (n->fn && !n->recorded) {
            bpv_buf_puts(b, ", \"fn\": ");
            bpv_json_string(b, n->fn);
            /* its partials as written, over a, b and out: figures spell
             * them with the inputs' names */
            bpv_buf_puts(b, ", \"fn_grad\": [");
            for (int k = 0; k < n->nin && k < 2; k++) {
                if (k) bpv_buf_puts(b, ", ");
                if (n->fn_dlocal[k]) bpv_json_string(b, n->fn_dlocal[k]);
                else bpv_buf_puts(b, "null");
            }
            bpv_buf_putc(b, ']');
        }
        /* a recorded trace's additions (docs/json-trace.md) */
        const char *const extra[][2] = {{"torch", n->torch},
                                        {"module", n->module},
                                        {"module_class", n->module_class}};
        for (size_t k = 0; k < sizeof extra / sizeof extra[0]; k++) {
            if (!extra[k][1]) continue;
            bpv_buf_printf(b, ", \"%s\": ", extra[k][0]);
            bpv_json_string(b, extra[k][1]);
        }
        if (n->nonfinite) bpv_buf_puts(b, ", \"nonfinite\": true");
        bpv_buf_putc(b, '}');
    }
    bpv_buf_puts(b, "\n      ],\n      \"edges\": [");
    for (int i = 0; i < s->nedges; i++) {
        const bpv_snap_edge *e = &s->edges[i];
        bpv_buf_printf(b, "%s\n        {\"from\": %d, \"to\": %d, \"slot\": %d, \"formula\": ",
                       i ? "," : "", e->from, e->to, e->slot);
        if (e->formula) bpv_json_string(b, e->formula);
        else bpv_buf_puts(b, "null");
        bpv_buf_puts(b, ", \"local\": ");
        /* an elementwise local derivative has the consumer's shape; a
         * constant one (sum, mean) is a single number */
        const bpv_shape *to_shape = &s->nodes[e->to].shape;
        bpv_shape one = {0, {0}};
        json_tensor(b, e->local, e->nlocal == 1 && bpv_shape_numel(to_shape) != 1 ? &one : to_shape);
        bpv_buf_puts(b, ", \"chained\": ");
        json_tensor(b, e->chained, &s->nodes[e->from].shape);
        json_gradcheck(b, &e->gradcheck);
        bpv_buf_putc(b, '}');
    }
    bpv_buf_puts(b, "\n      ],\n      \"params\": [");
    for (int i = 0; i < s->nparams; i++) {
        const bpv_snap_param *p = &s->params[i];
        bpv_buf_printf(b, "%s\n        {\"name\": ", i ? "," : "");
        bpv_json_string(b, p->name);
        bpv_buf_printf(b, ", \"node\": %d, \"after\": ", p->node);
        json_tensor(b, p->after, &p->shape);
        json_gradcheck(b, &p->gradcheck);
        if (p->accumulating) bpv_buf_puts(b, ", \"accumulating\": true");
        bpv_buf_putc(b, '}');
    }
    bpv_buf_puts(b, "\n      ]\n    }");
}

void bpv_export_json(bpv_buf *b, const char *model_name, bpv_dtype dtype,
                     const bpv_snapshot *const *snaps, size_t n) {
    bpv_buf_puts(b, "{\n  \"model\": ");
    bpv_json_string(b, model_name);
    bpv_buf_printf(b, ",\n  \"dtype\": \"%s\",\n  \"steps\": [", dtype == BPV_F32 ? "f32" : "f64");
    for (size_t i = 0; i < n; i++) {
        bpv_buf_puts(b, i ? ",\n" : "\n");
        json_snapshot(b, snaps[i]);
    }
    bpv_buf_puts(b, n ? "\n  ]\n}\n" : "]\n}\n");
}
