#!/bin/sh
# Regenerates the figures in docs/ from samples/ with a built bpviz.
#   docs/render.sh [PATH/TO/bpviz]     (default: build/bpviz)
# Each figure is the first training step, as in the tutorial; chain_rule
# shows every step of the chain rule (--labels full).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bpviz=${1:-$root/build/bpviz}
[ -x "$bpviz" ] || { echo "render.sh: no bpviz at $bpviz (build first, or pass its path)" >&2; exit 1; }

render() { # OUTPUT-NAME SAMPLE [OPTIONS...]
    out=$1 name=$2
    shift 2
    "$bpviz" "$root/samples/$name.bp" -o "$here/$out.svg" "$@"
    echo "docs/$out.svg"
}

render linear linear --step 1
render linear_full linear --step 1 --labels full
render quadratic quadratic --step 3
render two_layer_linear two_layer_linear --step 1
render two_layer_sigmoid two_layer_sigmoid --step 1
render chain_rule chain_rule --step 1 --labels full
render broken_grad broken_grad --step 1 --gradcheck
# the course's later lectures: CNNs top to bottom, recurrences left to right
render lenet lenet --step 1 --rankdir TB
render residual residual --step 1 --rankdir TB
render inception inception --step 1 --rankdir TB
render rnn_hello rnn_hello --step 1
render bptt bptt --step 1
