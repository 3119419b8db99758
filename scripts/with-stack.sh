#!/usr/bin/env bash
# Run one command against a fresh local stack, then stop the stack whatever happened.
#
#   scripts/with-stack.sh STATE_DIR -- COMMAND [ARGS...]
#
# Starts moto + localstripe on free ports with state in STATE_DIR (scripts/stack.py up),
# exports the variables of STATE_DIR/env, runs COMMAND, stops the stack (also on failure,
# Ctrl-C or SIGTERM) and exits with COMMAND's status. On success STATE_DIR is removed; on
# failure it is kept with the servers' logs (moto.log, localstripe.log) for a look.
# Uses .venv/bin/python unless PYTHON is set.
set -euo pipefail

usage() { echo "usage: $0 STATE_DIR -- COMMAND [ARGS...]" >&2; exit 2; }
[[ $# -ge 3 && $2 == "--" ]] || usage
state_dir=$1
shift 2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
[[ -x $python ]] || { echo "with-stack: $python not found; run 'make venv' first" >&2; exit 2; }

status=0
cleanup() {
    local rc=$?
    [[ $status -ne 0 ]] || status=$rc
    trap - EXIT INT TERM
    "$python" "$root/scripts/stack.py" down --state-dir "$state_dir" || true
    if [[ $status -eq 0 ]]; then
        rm -rf -- "$state_dir"
    else
        echo "with-stack: exit status $status; stack logs kept in $state_dir/" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'status=130; exit 130' INT
trap 'status=143; exit 143' TERM

"$python" "$root/scripts/stack.py" up --state-dir "$state_dir"

set -a
# shellcheck disable=SC1091
. "$state_dir/env"
set +a

set +e
"$@"
status=$?
set -e
exit "$status"
