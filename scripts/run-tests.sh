#!/usr/bin/env bash
# Runs every test of the workspace (the local stack's settings must be in the environment; see
# scripts/stack.py run) and writes one summary line, "N passed, N failed, N skipped", to the
# file named by PAYBRIDGE_TEST_SUMMARY (or stdout): cargo test --workspace, then the Python
# scripts' own tests (scripts/run_script_tests.py: scripts/test_*.py), then the API fuzz
# (scripts/fuzz_api.py, one test per operation of openapi.json), their counts added up.
# Exits non-zero if any failed (cargo test's status first).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
log=$(mktemp)
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo
echo "     Running scripts/test_*.py (the Python scripts of the local stack)"
"$python" "$root/scripts/run_script_tests.py" 2>&1 | tee -a "$log"
py_status=${PIPESTATUS[0]}
[[ $status -ne 0 ]] || status=$py_status
# The billing API fuzzed against openapi.json (scripts/fuzz_api.py: schemathesis through a local
# gateway that checks SigV4), on the stack's functions; PAYBRIDGE_FUZZ=0 leaves it out.
if [[ ${PAYBRIDGE_FUZZ:-1} != 0 ]]; then
    echo
    echo "     Running scripts/fuzz_api.py (schemathesis: openapi.json against the local gateway)"
    "$python" "$root/scripts/fuzz_api.py" 2>&1 | tee -a "$log"
    fuzz_status=${PIPESTATUS[0]}
    [[ $status -ne 0 ]] || status=$fuzz_status
fi
summary=$(awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log")
rm -f "$log"
if [[ -n ${PAYBRIDGE_TEST_SUMMARY:-} ]]; then
    echo "$summary" > "$PAYBRIDGE_TEST_SUMMARY"
else
    echo "$summary"
fi
exit "$status"
