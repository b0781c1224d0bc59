#!/usr/bin/env bash
# The static checks `npm test` runs before the suite, side by side (each is one process on one
# core, and the lint alone takes as long as the others together): the type check, import
# cycles, lint and formatting. Each one's output is printed whole once it ends, and any that
# fails fails the run, naming it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/faithd6-checks-XXXXXX)
trap 'rm -rf "$out"' EXIT
checks=(typecheck cycles lint format:check)
pids=()
for check in "${checks[@]}"; do
  npm run --silent "$check" > "$out/$check" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!checks[@]}"; do
  if wait "${pids[$i]}"; then
    echo "check ${checks[$i]}: ok"
  else
    echo "check ${checks[$i]}: FAILED"
    cat "$out/${checks[$i]}"
    status=1
  fi
done
exit "$status"
