#!/bin/sh
# bench/run.sh: the whole benchmark suite in one command (see bench/README.md).
#
#   bench/run.sh [--quick] [--no-figures] [--course]
#   (--quick: 1 run, fewer steps, no figures of the two biggest graphs)
#
# Builds bpviz (Release) into build-bench/, generates the data (bench/gen.py,
# seeded), then prints, each as a table: training ns/step of bpviz and
# PyTorch in the same run and bpviz's speed-up; the cost of recording every
# step; peak memory of --step N for growing N; and figure time against dot.
# Every number is the median of REPS runs (default 3; --quick: 1), with the
# spread (min-max) beside it; recording ratios take the best run of each.
# The training table ends with mlp64 and mnist trained with momentum 0.9 and
# with Adam (models/*_momentum.bp, *_adam.bp) against torch.optim's.
# bpviz runs on its default thread count (the online CPUs) and with
# --threads 1; PyTorch at one thread, at its default and at one thread per
# CPU, with the system's (reference) BLAS and, if libopenblas0-pthread is
# installed, with OpenBLAS through LD_LIBRARY_PATH; each row names the
# fastest of those, the rival, and bpviz's speed-up against it.
# A second table times the course's CNN and RNN (models/lenet*.bp, rnn*.bp)
# the same way, plus PyTorch with oneDNN (mkldnn) off; it first checks that
# one epoch of each prints the same line in both.
# --course: that table only.
# Instruction counts and memory per model: bench/instructions.sh.
# Set BPVIZ=path to time an existing binary.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
reps=3 figures=1 scale=1 course=0
for a in "$@"; do
  case $a in
    --quick) reps=1 scale=5 ;;
    --no-figures) figures=0 ;;
    --course) course=1 figures=0 ;;
    *) echo "usage: bench/run.sh [--quick] [--no-figures] [--course]" >&2; exit 2 ;;
  esac
done
[ -n "${REPS:-}" ] && reps=$REPS

if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "bench: installing python3-torch" >&2
  apt-get install -y python3-torch >/dev/null
fi
if [ "$figures" = 1 ] && ! command -v dot >/dev/null; then apt-get install -y graphviz >/dev/null; fi

. "$here/common.sh"
out=$(mktemp -d /tmp/bpv-bench-XXXXXX)
trap 'rm -rf "$out"' EXIT

# median and spread of the numbers on standard input: "MEDIAN MIN MAX"
stats() { sort -g | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; print m, v[1], v[NR]}'; }
bpv_ns() { "$BPVIZ" bench "$@" | sed 's/.*steps, \([0-9.]*\) ns.*/\1/'; }
torch_ns() { /usr/bin/python3 "$here/torch_bench.py" "$@" "$data" | sed 's/.*steps, \([0-9.]*\) ns.*/\1/'; }

bpv_threads=$("$BPVIZ" bench "$root/samples/linear.bp" --steps 10 | sed 's/.*, \([0-9]*\) threads*$/\1/')
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bpviz $("$BPVIZ" --version | cut -d' ' -f2) on $bpv_threads threads (its default: the online CPUs) and on 1 (--threads 1); torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'); median of $reps, spread min-max"
ob=/usr/lib/x86_64-linux-gnu/openblas-pthread
[ -e "$ob/libblas.so.3" ] || ob=
echo "torch configs: 1t = torch.set_num_threads(1); dflt = PyTorch's default ($(/usr/bin/python3 -c 'import torch; print(torch.get_num_threads())') threads here); nt = torch.set_num_threads($(nproc));"
echo "  BLAS: $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3) (the system's, reference)"
[ -n "$ob" ] && echo "  ob = OpenBLAS: LD_LIBRARY_PATH=$ob (ob 1t also OPENBLAS_NUM_THREADS=1)"
echo "  best = the fastest of those (the rival); (x) = its time / bpviz's"
configs="1t dflt nt"
[ -n "$ob" ] && configs="$configs ob_1t ob_dflt ob_nt"
# torch ns/step of one config: MODEL STEPS CONFIG
torch_cfg() {
  case $3 in
    1t) torch_ns "$1" "$2" ;;
    1t-dnn) torch_ns --no-mkldnn "$1" "$2" ;;
    dflt) torch_ns --threads default "$1" "$2" ;;
    ob_1t) OPENBLAS_NUM_THREADS=1 LD_LIBRARY_PATH=$ob torch_ns "$1" "$2" ;;
    ob_dflt) LD_LIBRARY_PATH=$ob torch_ns --threads default "$1" "$2" ;;
    nt) torch_ns --threads "$(nproc)" "$1" "$2" ;;
    ob_nt) LD_LIBRARY_PATH=$ob torch_ns --threads "$(nproc)" "$1" "$2" ;;
  esac
}
# One table row: NAME BPVIZ_ARGS BSTEPS TSTEPS CONFIGS, times in UNIT (ns or µs),
# every run of bpviz (N threads, 1 thread) and torch config interleaved.
row() {
  name=$1 file=$2 bsteps=$3 tsteps=$4 cfgs=$5 div=$6
  : >"$out/b" ; : >"$out/b1"
  for c in $cfgs; do : >"$out/t_$c"; done
  i=0
  while [ $i -lt "$reps" ]; do # interleaved, so all see the same load
    bpv_ns "$file" --steps "$bsteps" >>"$out/b"
    bpv_ns "$file" --steps "$bsteps" --threads 1 >>"$out/b1"
    for c in $cfgs; do torch_cfg "$name" "$tsteps" "$c" >>"$out/t_$c"; done
    i=$((i + 1))
  done
  set -- $(stats <"$out/b")
  b=$1
  b1=$(stats <"$out/b1" | cut -d' ' -f1)
  printf '%-14s %9.1f %17s %9.1f' "$name" "$(echo "$1 / $div" | bc -l)" \
    "($(printf '%.1f-%.1f' "$(echo "$2 / $div" | bc -l)" "$(echo "$3 / $div" | bc -l)"))" \
    "$(echo "$b1 / $div" | bc -l)"
  best= bestc=
  for c in $cfgs; do
    t=$(stats <"$out/t_$c" | cut -d' ' -f1)
    printf ' %8.1f %6s' "$(echo "$t / $div" | bc -l)" "($(printf '%.1f' "$(echo "$t / $b" | bc -l)")x)"
    case $c in *-dnn) continue ;; esac # not a configuration a user runs
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t bestc=$c; fi
  done
  printf '   %-7s %8.1f %6sx\n' "$bestc" "$(echo "$best / $div" | bc -l)" \
    "$(printf '%.2f' "$(echo "$best / $b" | bc -l)")"
}
header() { # UNIT CONFIGS
  printf '%-14s %9s %17s %9s' model "bpviz $1" "(spread)" "1t $1"
  for c in $2; do printf ' %15s' "$c"; done
  printf '   %-7s %8s %7s\n' best "$1" "speed-up"
}

if [ "$course" = 0 ]; then
echo
echo "## training steps: ns/step"
header ns "$configs"
# name, model file, bpviz steps, torch steps
while read -r name file bsteps tsteps; do
  row "$name" "$file" $((bsteps / scale)) $((tsteps / scale)) "$configs" 1
done <<EOF2
linear $root/samples/linear.bp 2000000 20000
quadratic $root/samples/quadratic.bp 1000000 10000
mlp8641 $here/models/mlp8641.bp 50000 3000
mlp64 $here/models/mlp64.bp 5000 1000
mnist $here/models/mnist.bp 1000 300
micrograd $data/micrograd.bp 5000 50
mlp64_momentum $here/models/mlp64_momentum.bp 5000 1000
mlp64_adam $here/models/mlp64_adam.bp 5000 1000
mnist_momentum $here/models/mnist_momentum.bp 1000 300
mnist_adam $here/models/mnist_adam.bp 1000 300
EOF2
fi

echo
echo "## the course's CNN and RNN: µs/step; 1t-dnn = 1t with torch.backends.mkldnn disabled"
echo "   (the im2col path bpviz matches bit for bit; not counted as a rival)"
for m in lenet lenet_b1 rnn rnn_b64; do  # one epoch, mkldnn off: the whole printed line
  /usr/bin/python3 "$here/torch_bench.py" --epoch $m "$data" >"$out/e"
  if "$BPVIZ" run "$here/models/$m.bp" | cmp -s - "$out/e"; then
    echo "  $m: one epoch, bpviz run = torch (mkldnn off): loss and params bit for bit"
  else
    echo "  $m: one epoch, bpviz run and torch (mkldnn off) DIFFER"
  fi
done
cconfigs="1t 1t-dnn dflt nt"
[ -n "$ob" ] && cconfigs="$cconfigs ob_1t ob_dflt ob_nt"
header µs "$cconfigs"
# name, bpviz steps, torch steps
while read -r name bsteps tsteps; do
  row "$name" "$here/models/$name.bp" $((bsteps / scale)) $((tsteps / scale)) "$cconfigs" 1000
done <<EOF2
lenet_b1 2000 300
lenet 100 30
rnn 5000 200
rnn_b64 500 60
EOF2
[ "$course" = 0 ] || exit 0

echo
# a ratio of two short times: the best (least disturbed) of the runs, which
# on a shared machine varies far less than their median
echo "## recording every step (--snapshot every against none), best of $reps"
printf '%-11s %12s %14s %8s\n' model "none ns" "every ns" ratio
while read -r name file steps; do
  steps=$((steps / scale))
  : >"$out/n" ; : >"$out/e"
  i=0
  while [ $i -lt "$reps" ]; do
    bpv_ns "$file" --steps "$steps" >>"$out/n"
    bpv_ns "$file" --steps "$steps" --snapshot every >>"$out/e"
    i=$((i + 1))
  done
  n=$(stats <"$out/n" | cut -d' ' -f2) e=$(stats <"$out/e" | cut -d' ' -f2)
  printf '%-11s %12.1f %14.1f %7.2fx\n' "$name" "$n" "$e" "$(echo "$e / $n" | bc -l)"
done <<EOF2
linear $root/samples/linear.bp 500000
quadratic $root/samples/quadratic.bp 500000
mlp8641 $here/models/mlp8641.bp 20000
mlp64 $here/models/mlp64.bp 2000
mnist $here/models/mnist.bp 100
micrograd $data/micrograd.bp 2000
EOF2

echo
echo "## peak memory of 'bpviz MODEL --step N -o f.json' (max RSS, KiB)"
sed 's/^train epochs=200 /train epochs=250000 /' "$root/samples/quadratic.bp" >"$out/long.bp"
sed 's/^train epochs=10 /train epochs=2000 /' "$here/models/mlp8641.bp" | sed "s#\.\./data/#$data/#" >"$out/mlp_long.bp"
printf '%-10s' step; for n in 10 1000 100000 1000000; do printf ' %10s' "$n"; done; echo
for m in long mlp_long; do
  printf '%-10s' "$m"
  for n in 10 1000 100000 1000000; do
    if [ "$m" = mlp_long ] && [ $n -gt 40000 ]; then printf ' %10s' -; continue; fi
    rss=$(/usr/bin/time -f %M "$BPVIZ" "$out/$m.bp" --step $n -o "$out/f.json" 2>&1 >/dev/null | tail -1)
    printf ' %10s' "$rss"
  done
  echo
done

[ "$figures" = 1 ] || exit 0
echo
echo "## figures: whole 'bpviz MODEL --step S -o f.svg' against 'dot -Tsvg' on the DOT it wrote (s)"
for h in 4 16 28 40; do /usr/bin/python3 "$here/gen.py" --mlp $h "$out/mlp$h.bp"; done
printf '%-20s %6s %10s %10s %8s %10s\n' model nodes "bpviz s" "dot s" ratio "bpviz dot"
now() { date +%s.%N; }
# the figure module refuses big graphs unless asked; a layout past FIG_TIMEOUT s counts as failed;
# FIG_REPS runs per figure (default: as the rest), since a 2,700-node layout takes minutes
mx=; "$BPVIZ" --help | grep -q -- --max-nodes && mx="--max-nodes 1000000"
to=${FIG_TIMEOUT:-300} freps=${FIG_REPS:-$reps}
# --quick leaves out the two big layouts (mlp28, mlp40: minutes of dot each)
big="$out/mlp28.bp $out/mlp40.bp"; [ "$scale" = 1 ] || big=
for f in "$root"/samples/*.bp "$out/mlp4.bp" "$out/mlp16.bp" $big; do
  s=3
  nsteps=$("$BPVIZ" "$f" --step last -T json -o "$out/n.json" 2>/dev/null && /usr/bin/python3 -c "import json,sys; d=json.load(open('$out/n.json')); s=d['steps'][0]; print(s['step'], len(s['nodes']))") || continue
  [ "${nsteps% *}" -lt 3 ] && s=${nsteps% *}
  nodes=${nsteps#* }
  : >"$out/tb" ; : >"$out/td" ; : >"$out/tw"
  i=0
  while [ $i -lt "$freps" ]; do
    t0=$(now); timeout "$to" "$BPVIZ" "$f" --step $s $mx -o "$out/f.svg" || echo "(bpviz failed or timed out)" >&2; t1=$(now)
    echo "$t1 - $t0" | bc -l >>"$out/tb"
    t0=$(now); "$BPVIZ" "$f" --step $s $mx -o "$out/f.dot" || true; t1=$(now)
    echo "$t1 - $t0" | bc -l >>"$out/tw"
    t0=$(now); timeout "$to" dot -Tsvg "$out/f.dot" -o "$out/g.svg" || echo "(dot failed or timed out)" >&2; t1=$(now)
    echo "$t1 - $t0" | bc -l >>"$out/td"
    i=$((i + 1))
  done
  b=$(stats <"$out/tb" | cut -d' ' -f1) d=$(stats <"$out/td" | cut -d' ' -f1) w=$(stats <"$out/tw" | cut -d' ' -f1)
  printf '%-20s %6s %10.3f %10.3f %7.2fx %10.3f\n' "$(basename "$f")" "$nodes" "$b" "$d" \
    "$(echo "$b / $d" | bc -l)" "$w"
done
