#!/bin/sh
# bench/instructions.sh: instructions per training step and peak memory of
# every bench model (see bench/README.md), as markdown tables.
#
#   bench/instructions.sh
#   BPVIZ=/path/to/bpviz bench/instructions.sh     measure an existing binary
#   ONLY='mlp64|mnist' bench/instructions.sh       only the models matching ONLY
#
# Builds bpviz (Release) into build-bench/ unless BPVIZ is set, installs
# valgrind and GNU time with apt-get if missing, generates the data
# (bench/gen.py, seeded), then prints two tables:
#
# - Instructions per step, counted by `valgrind --tool=callgrind` on
#   `bpviz bench MODEL --steps N` and on `--steps 2N` with the same warm-up
#   (W = N/10 steps, as bench takes by default, passed as --warmup W so both
#   runs warm up alike): (I(2N) - I(N)) / N, so start-up (parsing, loading the
#   CSV, compiling) cancels out. Once plain and once with `--snapshot every`
#   (each step recorded, as a trace would). N is a whole number of epochs
#   where the epoch is short, and small enough that each run takes seconds
#   under callgrind. The start-up column is I(N) - (W + N) x the step count.
#   Instruction counts do not depend on the machine's load: they are the
#   number to compare between two binaries (callgrind does not weigh cache
#   misses or vector width, so a change in memory traffic shows in time only).
# - Peak memory (max RSS, KiB, `/usr/bin/time -f %M`) of
#   `bpviz MODEL --step S -o f.json` for S = 10 and a long S (the model's last
#   train statement is given enough epochs), and of `bpviz bench MODEL
#   --steps S`, plain and with `--snapshot every`. Equal numbers across S mean
#   memory does not grow with the steps trained.
#
# One measurement at a time; 5.5 minutes of CPU, 6-9 minutes on a shared
# 2-core VM.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
[ $# -eq 0 ] || { echo "usage: [BPVIZ=path] [ONLY=regex] bench/instructions.sh" >&2; exit 2; }

command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
[ -x /usr/bin/time ] || apt-get install -y time >/dev/null

. "$here/common.sh"
out=$(mktemp -d /tmp/bpv-instr-XXXXXX)
trap 'rm -rf "$out"' EXIT

# name, model file, N for callgrind, S for the long memory runs
models() {
  grep -E "^(${ONLY:-.})" <<EOF2 || true
linear $root/samples/linear.bp 100000 1000000
quadratic $root/samples/quadratic.bp 100000 1000000
mlp8641 $here/models/mlp8641.bp 2400 20000
mlp64 $here/models/mlp64.bp 320 5000
mlp64_momentum $here/models/mlp64_momentum.bp 320 5000
mlp64_adam $here/models/mlp64_adam.bp 320 5000
mnist $here/models/mnist.bp 32 1000
mnist_momentum $here/models/mnist_momentum.bp 32 1000
mnist_adam $here/models/mnist_adam.bp 32 1000
micrograd $data/micrograd.bp 1000 20000
EOF2
}

# 1234567 -> 1,234,567
commas() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
# instructions callgrind counts for one run of bpviz ARGS ("failed" if it fails)
instr() {
  if valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BPVIZ" "$@" >/dev/null 2>"$out/vg"; then
    sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' "$out/vg" | tail -1
  else
    echo failed
  fi
}
# max RSS (KiB) of one run of bpviz ARGS
rss() { /usr/bin/time -f %M "$BPVIZ" "$@" 2>&1 >/dev/null | tail -1; }

# Binaries without --warmup: both runs warm up N/10 and 2N/10 steps, and the
# difference covers N + N/10 steps.
warmopt=1
"$BPVIZ" bench "$root/samples/linear.bp" --steps 1 --warmup 1 >/dev/null 2>&1 || warmopt=0

t0=$(date +%s)
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bpviz: $BPVIZ ($("$BPVIZ" --version)); $(valgrind --version); $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "### Instructions per training step (callgrind, \`bpviz bench\`, (I(2N) - I(N)) / N)"
echo
echo "| model | N | plain | \`--snapshot every\` | every / plain | start-up (plain) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
models | while read -r name file n long; do
  w=$((n / 10)); [ $w -ge 1 ] || w=1
  row="| $name | $(echo $n | commas)"
  plain= start=
  for snap in none every; do
    if [ $warmopt = 1 ]; then
      i1=$(instr bench "$file" --steps $n --warmup $w --snapshot $snap)
      i2=$(instr bench "$file" --steps $((2 * n)) --warmup $w --snapshot $snap)
      d=$n
    else
      i1=$(instr bench "$file" --steps $n --snapshot $snap)
      i2=$(instr bench "$file" --steps $((2 * n)) --snapshot $snap)
      d=$((n + 2 * n / 10 - n / 10))
    fi
    if [ "$i1" = failed ] || [ "$i2" = failed ] || [ -z "$i1" ] || [ -z "$i2" ]; then
      row="$row | failed"; per=; continue
    fi
    per=$(awk -v a="$i1" -v b="$i2" -v d="$d" 'BEGIN {printf "%.0f", (b - a) / d}')
    row="$row | $(echo "$per" | commas)"
    if [ $snap = none ]; then
      plain=$per
      start=$(awk -v a="$i1" -v p="$per" -v s=$((n + w)) 'BEGIN {printf "%.0f", a - p * s}')
    fi
  done
  if [ -n "$plain" ] && [ -n "$per" ]; then
    ratio=$(awk -v a="$plain" -v b="$per" 'BEGIN {printf "%.2f×", b / a}')
  else
    ratio=—
  fi
  echo "$row | $ratio | $(echo "${start:-—}" | commas) |"
done

echo
echo "### Peak memory (max RSS, KiB)"
echo
echo "| model | \`--step 10 -o f.json\` | \`--step S -o f.json\` | S | \`bench --steps S\` | \`bench --steps S --snapshot every\` |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
models | while read -r name file n long; do
  # the same model with enough epochs for S steps, its CSV paths made absolute
  dir=$(dirname "$file")
  sed -e "s/^train epochs=[0-9]*/train epochs=$long/" \
      -e "s#csv(\"\\([^/\"]\\)#csv(\"$dir/\\1#g" "$file" >"$out/long.bp"
  a=$(rss "$out/long.bp" --step 10 -o "$out/f.json")
  b=$(rss "$out/long.bp" --step $long -o "$out/f.json")
  c=$(rss bench "$file" --steps $long)
  e=$(rss bench "$file" --steps $long --snapshot every)
  echo "| $name | $(echo $a | commas) | $(echo $b | commas) | $(echo $long | commas) | $(echo $c | commas) | $(echo $e | commas) |"
done
echo
echo "($(($(date +%s) - t0)) s)"
