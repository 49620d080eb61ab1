#!/bin/sh
# Writes the hostile-* error cases: truncated files, binary garbage, huge
# numbers, deep nesting, long lines, names and CSV files full of quotes,
# markup, backslashes and non-ASCII. Run from this folder, then
# BPV_UPDATE_GOLDEN=1 ctest -R test_errors to refresh the .err files.
set -e
# -- truncated files
printf 'data x = [1, 2,' > hostile-truncated-list.bp
printf 'data x = [1, 2]\nparam w = 1.5e' > hostile-truncated-number.bp
printf 'data x = csv("da' > hostile-truncated-string.bp
printf 'param w = 1\n# caf\303' > hostile-truncated-utf8.bp
printf 'data x = [1, 2]\nparam w = 1\nloss = (x * w)^2\ntrain epochs=' > hostile-truncated-train.bp
printf 'fn f(a, ' > hostile-truncated-fn.bp
printf 'data x = [1, 2]\nparam w = 1\nloss = (x * w - ' > hostile-truncated-expression.bp
printf 'param w = uniform([2], -1' > hostile-truncated-call.bp
# -- binary garbage
printf '\177ELF\002\001\001\000\000\000' > hostile-binary-elf.bp
printf '\211PNG\r\n\032\n\000\000\000\rIHDR' > hostile-binary-png.bp
printf '\037\213\010\000\000\000\000\000' > hostile-binary-gzip.bp
printf '\377\376p\000a\000r\000' > hostile-binary-utf16.bp
printf 'param w = 1\nloss = w \033[31m+ 1\n' > hostile-escape-sequence.bp
printf 'param w = 1\nloss = w\342\200\256 + 1\n' > hostile-bidi-override.bp
printf '\357\273\277param w = 1\nparam w = 2\n' > hostile-utf8-bom.bp
# -- huge numbers
printf 'param w = 1e999999999999\n' > hostile-huge-exponent.bp
printf 'param w = 3.5e38\n' > hostile-huge-f32.bp
printf 'param w = 0.%01000d1\nparam w = 2\n' 0 > hostile-long-fraction.bp
{ printf 'param w = '; i=0; while [ $i -lt 400 ]; do printf 9; i=$((i+1)); done; printf '\n'; } > hostile-long-digits.bp
printf 'data x = [1, 2]\nparam w = 1\nloss = sum(x * w)\ntrain epochs=1e300\n' > hostile-huge-epochs.bp
printf 'data x = [1, 2]\nparam w = 1\nloss = sum(x * w)\ntrain epochs=1 batch=1e300\n' > hostile-huge-batch.bp
printf 'param w = zeros([4294967296, 4294967296])\n' > hostile-huge-shape.bp
printf 'param w = randn(1e8, seed=1)\n' > hostile-huge-scalar-shape.bp
printf 'param w = randn([2], seed=1e300)\n' > hostile-huge-seed.bp
printf 'data x = [1, 2]\nparam w = 1 lr=1e999\n' > hostile-huge-lr.bp
{ printf 'data x = [0'; i=1; while [ $i -lt 2000 ]; do printf ', %d' $i; i=$((i+1)); done; printf ']\nparam w = 1\nloss = sum(x * w)\ntrain epochs=1000000000 lr=0\n'; } > hostile-huge-total-steps.bp
# -- deep nesting and long lines
{ printf 'param w = 1\n'; printf 'fn f0(a) = a + w\n'; i=1; while [ $i -le 40 ]; do printf 'fn f%d(a) = f%d(f%d(a))\n' $i $((i-1)) $((i-1)); i=$((i+1)); done; printf 'loss = f40(w)\n'; } > hostile-fn-exponential.bp
{ printf 'param w = 1\nloss = w'; i=0; while [ $i -lt 1200 ]; do printf ' + w'; i=$((i+1)); done; printf '\n'; } > hostile-long-sum-chain.bp
{ printf 'param w = 1\nloss = w'; i=0; while [ $i -lt 300 ]; do printf '^w'; i=$((i+1)); done; printf '\n'; } > hostile-power-tower.bp
{ printf 'data x = '; i=0; while [ $i -lt 12 ]; do printf '['; i=$((i+1)); done; printf '1'; i=0; while [ $i -lt 12 ]; do printf ']'; i=$((i+1)); done; printf '\n'; } > hostile-deep-list-rank.bp
# -- names and strings full of quotes, markup, backslashes and non-ASCII
printf 'param w<b> = 1\n' > hostile-name-markup.bp
printf 'data x&y = [1, 2]\n' > hostile-name-ampersand.bp
printf 'param "w" = 1\n' > hostile-name-quoted.bp
printf 'param w\\b = 1\n' > hostile-name-backslash.bp
printf 'param \316\273 = 1\n' > hostile-name-greek.bp
printf "data x = csv(\"<&'\\\\\\\\\303\251>.csv\", 0)\n" > hostile-csv-path-markup.bp
printf 'a<b>,"c&d",\\\\e\n1,2,3\n<script>&amp;\\\\,5,6\n' > hostile-csv-cell-markup.csv
printf 'data x = csv("hostile-csv-cell-markup.csv", 0)\n' > hostile-csv-cell-markup.bp
printf 'x,y\n1,2\n\033]0;pwned\007\377\376,4\n' > hostile-csv-cell-binary.csv
printf 'data x = csv("hostile-csv-cell-binary.csv", 0)\n' > hostile-csv-cell-binary.bp
: > hostile-csv-empty.csv
printf 'data x = csv("hostile-csv-empty.csv", 0)\n' > hostile-csv-empty.bp
printf '"\303\251","<x>","&"\n' > hostile-csv-only-header.csv
printf 'data x = csv("hostile-csv-only-header.csv", 0)\n' > hostile-csv-only-header.bp
printf 'data x = csv(".", 0)\n' > hostile-csv-folder.bp
printf 'data x = csv("/dev/null", 0)\n' > hostile-csv-dev-null.bp
printf 'data x = csv("hostile-csv-only-header.csv", 999999)\n' > hostile-csv-huge-column.bp
printf 'data x = csv("hostile-csv-only-header.csv", 1e300)\n' > hostile-csv-huge-column-number.bp
printf 'data x = [1, 2]\nparam w = 1\ny = x * w\npredict y(x=<1>)\n' > hostile-predict-markup.bp
