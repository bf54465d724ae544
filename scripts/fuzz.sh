#!/usr/bin/env bash
# fuzz.sh PKG TARGET DURATION: runs one Go fuzz target for DURATION.
#
# Go 1.26's fuzz coordinator can fail a run with a bare "context deadline
# exceeded" at the -fuzztime boundary, writing no failing input
# (golang/go#75804, fixed in Go 1.27). This script fails on a real finding,
# a failing input written to PKG/testdata/fuzz/TARGET, or any other error,
# and reports that known race as such instead of failing.
set -uo pipefail
pkg=$1 target=$2 duration=$3
corpus="$pkg/testdata/fuzz/$target"
before=$(ls "$corpus" 2>/dev/null | sort)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -fuzz "^${target}\$" -fuzztime "$duration" "./$pkg/" >"$out" 2>&1
status=$?
if [ "$status" = 0 ]; then
	grep -v '^fuzz: elapsed' "$out"
	exit 0
fi
after=$(ls "$corpus" 2>/dev/null | sort)
if [ "$before" != "$after" ]; then
	cat "$out"
	echo "fuzz: $target found a failing input in $corpus (commit it as a regression case once fixed)" >&2
	exit 1
fi
if grep -q "context deadline exceeded" "$out" && ! grep -qE "panic:|Failing input|fuzz_test.go:[0-9]+:" "$out"; then
	echo "fuzz: $target ran $duration without a failing input; the run ended in Go's fuzztime deadline race (golang/go#75804), not a finding"
	exit 0
fi
cat "$out"
exit "$status"
