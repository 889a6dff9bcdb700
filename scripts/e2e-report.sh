#!/usr/bin/env bash
# Passes the end-to-end test output through and keeps its exit status; the
# suite prints its own per-scenario table (scenario, finding type, seconds to
# the API) and the benign suite's finding counts.
set -o pipefail
status=0
while IFS= read -r line; do
  printf '%s\n' "$line"
  case "$line" in
    FAIL*|"--- FAIL"*) status=1 ;;
  esac
done
exit $status
