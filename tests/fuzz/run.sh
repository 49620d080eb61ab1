#!/bin/bash
# Fuzzes the bpviz libFuzzer targets, one after another, for N minutes each.
#
#   tests/fuzz/run.sh [-b BUILD] [-m MINUTES] [-w WORKDIR] [TARGET...]
#
#   -b BUILD     build folder (default: build-fuzz beside the source tree);
#                configured and built here with CC=clang -DBPV_FUZZ=ON
#   -m MINUTES   minutes per target (default: 10); fractions like 0.5 work
#   -w WORKDIR   corpora, crashes and the CPU-time log (default: BUILD/fuzz)
#   TARGET       fuzz_load fuzz_run fuzz_csv fuzz_npy fuzz_escape fuzz_trace
#                (default: all six)
#
# The corpus of each target lives in WORKDIR/corpus/TARGET and grows from
# run to run; it starts from the seeds in samples/, tests/golden/,
# tests/errors/ and tests/fuzz/regress/. Runs are niced, one process at a
# time, with a 2 GiB RSS limit and a 10 s per-input timeout. Crashes, leaks
# and timeouts land in WORKDIR/artifacts/TARGET/; the script exits 1 if any
# target found one. Each run appends "TARGET SECONDS" of CPU time to
# WORKDIR/cputime.log; `run.sh -s` prints the totals.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build="$src/../build-fuzz"
minutes=10
work=""
summary=0
while getopts "b:m:w:s" opt; do
  case $opt in
    b) build=$OPTARG ;;
    m) minutes=$OPTARG ;;
    w) work=$OPTARG ;;
    s) summary=1 ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
build=$(mkdir -p "$build" && cd "$build" && pwd)
work=${work:-$build/fuzz}
mkdir -p "$work"
log="$work/cputime.log"

if [ $summary = 1 ]; then
  [ -f "$log" ] && awk '{t[$1] += $2; s += $2} END {for (k in t) printf "%-12s %8.0f s  %6.2f h\n", k, t[k], t[k]/3600; printf "%-12s %8.0f s  %6.2f h\n", "total", s, s/3600}' "$log"
  exit 0
fi

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_load fuzz_run fuzz_csv fuzz_npy fuzz_escape fuzz_trace)

if [ ! -x "$build/tests/fuzz/fuzz_load" ]; then
  CC=clang cmake -S "$src" -B "$build" -DBPV_FUZZ=ON -DBPV_TESTS=OFF >/dev/null
  cmake --build "$build" -j2 >/dev/null
elif ! cmake --build "$build" -j2 >/dev/null 2>&1; then
  echo "run.sh: the build failed; fuzzing the binaries built before" >&2
fi

seed() { # seed TARGET: fill an empty corpus from the tree
  local t=$1 dir="$work/corpus/$1"
  mkdir -p "$dir"
  [ -n "$(ls -A "$dir")" ] && return 0
  cp "$src/tests/fuzz/regress/$t/"* "$dir/" 2>/dev/null || true
  case $t in
    fuzz_load|fuzz_run)
      for f in "$src"/samples/*.bp "$src"/tests/golden/*.bp "$src"/tests/errors/*.bp; do
        cp "$f" "$dir/$(basename "$(dirname "$f")")-$(basename "$f")"
      done ;;
    fuzz_csv) # first byte: column selection and dtype; then the CSV text
      for f in "$src"/tests/errors/*.csv "$src"/tests/golden/*.csv; do
        [ -f "$f" ] || continue
        for b in '\000' '\003' '\013' '\025'; do
          { printf "$b"; cat "$f"; } > "$dir/$(basename "$f")-$(printf '%s' "$b" | tr -d '\\')"
        done
      done
      printf '\003a,b,c\n1,2,3\n4,5,6\n' > "$dir/seed-header"
      printf '\000"1.5"\r\n 2 \r\n\n-3e-2\n' > "$dir/seed-quotes-crlf"
      printf '\011x\n1e39\n' > "$dir/seed-f64-big" ;;
    fuzz_npy) # first byte: dtype and batch; then the .npy file
      for f in "$src"/tests/data/npy/*.npy "$src"/tests/errors/*.npy; do
        [ -f "$f" ] || continue
        for b in '\000' '\003'; do
          { printf "$b"; cat "$f"; } > "$dir/$(basename "$f")-$(printf '%s' "$b" | tr -d '\\')"
        done
      done ;;
    fuzz_trace) # JSON traces: hand-written, recorded-style, and the malformed ones
      for f in "$src"/tests/data/traces/*.json "$src"/tests/errors/*.json; do
        [ -f "$f" ] && cp "$f" "$dir/$(basename "$(dirname "$f")")-$(basename "$f")"
      done ;;
    fuzz_escape)
      printf 'y_hat1' > "$dir/seed-name"
      printf 'omega_bar_2' > "$dir/seed-greek"
      printf '2*a-b' > "$dir/seed-formula"
      printf '<b>&amp;"q"\\\x27\xc3\xa9\xff' > "$dir/seed-markup" ;;
  esac
}

found=0
for t in "${targets[@]}"; do
  seed "$t"
  mkdir -p "$work/artifacts/$t"
  dict="$src/tests/fuzz/bp.dict"
  [ "$t" = fuzz_trace ] && dict="$src/tests/fuzz/trace.dict"
  secs=$(awk -v m="$minutes" 'BEGIN {printf "%d", m * 60}')
  echo "== $t for ${secs}s" >&2
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2086
  /usr/bin/time -f "%U %S" -o "$work/.time" \
    env LSAN_OPTIONS="suppressions=$src/tests/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    nice -n 19 "$build/tests/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -max_len=8192 -dict="$dict" -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$t/" "$work/corpus/$t" 2>"$work/$t.log"
  rc=$?
  set -e
  tail -n1 "$work/.time" | awk -v t="$t" '{printf "%s %.1f\n", t, $1 + $2}' >> "$log"
  echo "   exit $rc after $(( $(date +%s) - start ))s; log $work/$t.log" >&2
  if [ $rc -ne 0 ]; then
    found=1
    grep -E "ERROR|SUMMARY|Test unit written" "$work/$t.log" | head -5 >&2
  fi
done
exit $found
