#!/bin/sh
# Writes the error cases that cannot be typed in an editor (NUL bytes,
# invalid UTF-8, control characters, line endings, deep nesting). Run from
# this folder, then BPV_UPDATE_GOLDEN=1 ctest -R test_errors to refresh
# the .err files.
set -e
printf 'data x = [1, 2]\nparam w = 1\0\n' > encoding-nul-byte.bp
printf 'data x = [1, 2]\n# caf\351 au lait\nparam w = 1\n' > encoding-latin1.bp
printf 'param w = 1\ny = \300\200\n' > encoding-overlong.bp
printf 'data x = [1, 2]\nparam w = \001\n' > syntax-control-character.bp
printf 'data x = [1, 2]\rparam w = 1\r' > syntax-lone-cr.bp
printf 'data x = [1, 2]\r\nparam w = 1\r\ny_hat = x * * w\r\n' > syntax-crlf-error.bp
printf 'param w = 1\nloss = w\302\240+ 1\n' > syntax-nbsp.bp
# 201 nested parentheses, one per line (a newline inside brackets is space)
{ printf 'loss = '; i=0; while [ $i -lt 201 ]; do printf '(\n'; i=$((i+1)); done; printf 'w\n'; } > nesting-parens.bp
{ printf 'loss = '; i=0; while [ $i -lt 250 ]; do printf -- '-'; i=$((i+1)); done; printf 'w\n'; } > nesting-unary.bp
{ printf 'loss = '; i=0; while [ $i -lt 201 ]; do printf '[\n'; i=$((i+1)); done; printf '1\n'; } > nesting-brackets.bp
