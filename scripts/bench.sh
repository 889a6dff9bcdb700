#!/usr/bin/env bash
# Runs every benchmark the project names and prints one table of figures:
# each benchmark's own metrics (events/s, ns/event, p99-ms, ratios, lost
# records, ...) next to ns/op and allocs/op. Raw output goes to
# bench-output.txt for benchstat.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-bench-output.txt}
benchtime=${BENCHTIME:-1s}
pkgs=$(go list ./... | grep -v /test/e2e)
: >"$out"
export VIGIL_REQUIRE_PRIVILEGED=${VIGIL_REQUIRE_PRIVILEGED:-$([[ $(id -u) == 0 ]] && echo 1 || echo 0)}
# One package at a time: the machine has two cores and the capture
# benchmarks compare runs with and without the sensor.
for p in $pkgs; do
  go test -run '^$' -bench . -benchmem -benchtime "$benchtime" -timeout 30m "$p" 2>&1 | tee -a "$out" | grep -E '^(Benchmark|ok|FAIL|---)' >&2 || true
done
echo
awk '
/^pkg: / { pkg = $2; sub("github.com/vigilsec/vigil/", "", pkg) }
/^Benchmark/ {
  name = $1; sub(/-[0-9]+$/, "", name)
  figs = ""
  for (i = 3; i < NF; i += 2) {
    v = $i; u = $(i+1)
    if (u == "B/op") continue
    figs = figs sprintf("%s %s  ", v, u)
  }
  printf "| %-22s | %-48s | %s|\n", pkg, name, figs
}' "$out" | { printf "| %-22s | %-48s | %s\n" package benchmark figures; printf "|%s|%s|%s\n" "------------------------" "--------------------------------------------------" "--------"; cat; }
