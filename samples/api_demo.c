/* Draws y = sigmoid(w*x + b) from C, without a .bp file, using libbpviz's
 * graph builder: one forward and backward pass, written as an SVG figure.
 *
 *   cc api_demo.c $(pkg-config --cflags --libs bpviz) -o api_demo
 *   ./api_demo [OUT.svg]          (default: api_demo.svg)
 */
#include <stdio.h>

#include <bpviz/bpviz.h>

int main(int argc, char **argv) {
    const char *out = argc > 1 ? argv[1] : "api_demo.svg";
    bpv_error *err = NULL;
    bpv_builder *b = bpv_builder_new();
    if (!b) return 1;

    /* Leaves: two parameters and one data value (scalars: rank 0). */
    int w = bpv_builder_param(b, "w", (double[]){0.5}, NULL, 0);
    int bias = bpv_builder_param(b, "b", (double[]){-0.25}, NULL, 0);
    int x = bpv_builder_data(b, "x", (double[]){1.5}, NULL, 0);

    /* Ops: w*x stays unnamed (drawn as "w·x"); z and y are named. */
    int wx = bpv_builder_op(b, NULL, "mul", w, x);
    int z = bpv_builder_op(b, "z", "add", wx, bias);
    int y = bpv_builder_op(b, "y", "sigmoid", z, -1);

    /* Forward, then backward from y; lr 0: no update. Any error in the
     * calls above is reported here. */
    const bpv_snapshot *s = bpv_builder_run(b, y, 0.0, &err);
    if (s) {
        const double *v, *g;
        bpv_snapshot_node(s, "y", &v, NULL);
        printf("y = %.6f\n", v[0]);
        const char *names[] = {"w", "b", "x"};
        for (int i = 0; i < 3; i++) {
            bpv_snapshot_node(s, names[i], &v, &g);
            if (g) printf("dy/d%s = %.6f\n", names[i], g[0]);
        }
        bpv_figure_options fig;
        bpv_figure_options_init(&fig);
        fig.labels = BPV_LABELS_FULL; /* show the chain rule on every edge */
        if (bpv_snapshot_write(s, out, BPV_FORMAT_SVG, &fig, &err) == BPV_OK)
            printf("wrote %s (bpviz %s)\n", out, bpv_version());
    }
    int rc = err ? err->status : 0;
    if (err) fputs(err->message, stderr);
    bpv_error_free(err);
    bpv_builder_free(b);
    return rc;
}
