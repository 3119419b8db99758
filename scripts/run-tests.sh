#!/usr/bin/env bash
# Runs every test of the workspace (the local stack's settings must be in the environment; see
# scripts/with-stack.sh) and writes one summary line, "N passed, N failed, N skipped", to the
# file named by PAYBRIDGE_TEST_SUMMARY (or stdout). Exits with cargo test's status.
set -uo pipefail
log=$(mktemp)
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
summary=$(awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log")
rm -f "$log"
if [[ -n ${PAYBRIDGE_TEST_SUMMARY:-} ]]; then
    echo "$summary" > "$PAYBRIDGE_TEST_SUMMARY"
else
    echo "$summary"
fi
exit "$status"
