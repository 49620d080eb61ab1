#!/bin/bash
# scripts/outputs.sh BPVIZ OUTDIR: writes every output bpviz makes of every
# sample, golden model and bench model into OUTDIR, for a byte comparison
# of two builds across a refactoring:
#
#   scripts/outputs.sh old/bpviz /tmp/before
#   scripts/outputs.sh build/bpviz /tmp/after
#   diff -r /tmp/before /tmp/after        # nothing: every output is the same
#
# Per model: `bpviz run` (also with BPV_STORE_F64=1 BPV_NO_SCALAR=1, the
# other storage and the general engine), figures at step 1 and the last
# (DOT), `--labels full`, `--gradcheck`, a 30-step JSON trace, a 5-step
# player, `bpviz check`, `--step first-nonfinite`, and SVG of the samples.
# The bench models need their data: python3 bench/gen.py bench/data.
set -u
B=$1 O=$2
mkdir -p "$O"
cd "$(dirname "$0")/.."
for f in samples/*.bp tests/golden/*.bp bench/models/*.bp; do
  n=$(echo "$f" | tr / _)
  "$B" run "$f" > "$O/$n.run" 2>&1; echo "rc=$?" >> "$O/$n.run"
  BPV_STORE_F64=1 BPV_NO_SCALAR=1 "$B" run "$f" > "$O/$n.runslow" 2>&1
  echo "rc=$?" >> "$O/$n.runslow"
  case $f in bench/*) continue ;; esac
  "$B" "$f" -o "$O/$n.1.dot" 2>&1
  "$B" "$f" --step last -o "$O/$n.last.dot" 2>&1
  "$B" "$f" --labels full -o "$O/$n.full.dot" 2>&1
  "$B" "$f" --gradcheck -o "$O/$n.gc.dot" > "$O/$n.gc.txt" 2>&1
  "$B" "$f" --steps 1-30 -o "$O/$n.json" 2>&1
  "$B" "$f" --steps 1-5 -o "$O/$n.html" 2>&1
  "$B" check "$f" > "$O/$n.check" 2>&1; echo "rc=$?" >> "$O/$n.check"
  "$B" "$f" --step first-nonfinite -o "$O/$n.nf.dot" > "$O/$n.nf.txt" 2>&1
done
for f in samples/*.bp; do n=$(echo "$f" | tr / _); "$B" "$f" -o "$O/$n.svg"; done
exit 0
