#!/usr/bin/env bash
# Run one command against a fresh local stack, then stop the stack whatever happened.
#
#   scripts/with-stack.sh [--functions] STATE_DIR -- COMMAND [ARGS...]
#
# A front for `scripts/stack.py run [--functions] --state-dir STATE_DIR -- COMMAND...`, which owns
# the processes (see its help and docs/local-stack.md). Uses .venv/bin/python unless PYTHON is set.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
[[ -x $python ]] || { echo "with-stack: $python not found; run 'make venv' first" >&2; exit 2; }
functions=()
if [[ ${1:-} == --functions ]]; then
    functions=(--functions)
    shift
fi
[[ $# -ge 3 && $2 == "--" ]] || { echo "usage: $0 [--functions] STATE_DIR -- COMMAND [ARGS...]" >&2; exit 2; }
state_dir=$1
shift 2
exec "$python" "$root/scripts/stack.py" run "${functions[@]}" --state-dir "$state_dir" -- "$@"
