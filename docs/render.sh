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
# a PyTorch MLP recorded with python/bpviz_torch.py (docs/torch.md), when a
# python3 with torch is at hand
py=${PYTHON:-python3}
if "$py" -c "import torch" 2>/dev/null || { py=/usr/bin/python3; "$py" -c "import torch" 2>/dev/null; }; then
    trace=$(mktemp)
    PYTHONPATH="$root/python" "$py" "$root/samples/torch_mlp.py" "$trace"
    "$bpviz" "$trace" -o "$here/torch_mlp.svg"
    rm -f "$trace"
    echo "docs/torch_mlp.svg"
else
    echo "docs/torch_mlp.svg: skipped, no python3 with torch" >&2
fi
