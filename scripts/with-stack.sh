#!/usr/bin/env bash
# Run one command against a fresh local stack, then stop the stack whatever happened.
#
#   scripts/with-stack.sh [--functions] STATE_DIR -- COMMAND [ARGS...]
#
# Starts moto + localstripe on free ports with state in STATE_DIR (scripts/stack.py up),
# exports the variables of STATE_DIR/env, runs COMMAND, stops the stack (also on failure,
# Ctrl-C or SIGTERM) and exits with COMMAND's status. On success STATE_DIR is removed; on
# failure it is kept with the servers' logs (moto.log, localstripe.log, ...) for a look.
# Uses .venv/bin/python unless PYTHON is set.
#
# --functions also runs the functions the way `make dev` does, for the end-to-end tests, all on
# free 127.0.0.1 ports:
#   - a second localstripe of their own (localstripe-functions.log): its webhooks then concern
#     only the end-to-end tests' charges, never the charges other tests make on the first one;
#   - the billing receiver (scripts/billing_receiver.py, receiver.log);
#   - the functions, built first, under `cargo lambda watch` (cargo-lambda.log) with the env file
#     plus PAYBRIDGE_BILLING_URL = the receiver and Stripe = their localstripe (functions.env);
#   - the local gateway (scripts/local_gateway.py, gateway.log) with its SQS event source
#     mapping, registered as its localstripe's webhook endpoint, every function started once.
# COMMAND then also gets PAYBRIDGE_GATEWAY_URL, PAYBRIDGE_RECEIVER_URL and
# PAYBRIDGE_FUNCTIONS_STRIPE_URL (the functions' localstripe).
set -euo pipefail

usage() { echo "usage: $0 [--functions] STATE_DIR -- COMMAND [ARGS...]" >&2; exit 2; }
functions=false
if [[ ${1:-} == --functions ]]; then
    functions=true
    shift
fi
[[ $# -ge 3 && $2 == "--" ]] || usage
state_dir=$1
shift 2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
[[ -x $python ]] || { echo "with-stack: $python not found; run 'make venv' first" >&2; exit 2; }

say() { echo "with-stack: $*" >&2; }

# Background helpers, each the leader of its own process group (setsid), stopped as a group.
pids=()
names=()
start_bg() { # NAME LOG COMMAND... ; sets $last_pid
    local name=$1 logfile=$2
    shift 2
    setsid "$@" </dev/null >"$logfile" 2>&1 &
    last_pid=$!
    pids+=("$last_pid")
    names+=("$name")
    # For `scripts/dev.sh stop STATE_DIR` (make clean-stack) should this script be killed hard.
    echo "$last_pid" >"$state_dir/$name.pid"
}
stop_group() { # NAME PID
    local name=$1 pid=$2 i
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 -- "-$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "$name (pid $pid) did not stop within 10 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || true
}
alive() { kill -0 "$1" 2>/dev/null; }
free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for_file() { # FILE PID NAME LOG SECONDS
    local file=$1 pid=$2 name=$3 logfile=$4 deadline=$((SECONDS + $5))
    until [[ -s $file ]]; do
        if ! alive "$pid"; then
            say "$name ended during start-up; last lines of $logfile:"
            tail -n 30 "$logfile" >&2 || true
            return 1
        fi
        if ((SECONDS > deadline)); then
            say "$name was not ready within $5 s; last lines of $logfile:"
            tail -n 30 "$logfile" >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

status=0
cleanup() {
    local rc=$? i
    [[ $status -ne 0 ]] || status=$rc
    trap - EXIT INT TERM
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        stop_group "${names[i]}" "${pids[i]}"
        rm -f "$state_dir/${names[i]}.pid"
    done
    "$python" "$root/scripts/stack.py" down --state-dir "$state_dir" || true
    if [[ $status -eq 0 ]]; then
        rm -rf -- "$state_dir"
    else
        say "exit status $status; stack logs kept in $state_dir/"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'status=130; exit 130' INT
trap 'status=143; exit 143' TERM

"$python" "$root/scripts/stack.py" up --state-dir "$state_dir"

if $functions; then
    command -v cargo-lambda >/dev/null || { say "cargo-lambda not on PATH (make puts .venv/bin there)"; exit 2; }

    # The functions' own localstripe.
    stripe_port=$(free_port)
    stripe_url="http://127.0.0.1:$stripe_port"
    start_bg localstripe-functions "$state_dir/localstripe-functions.log" \
        "$python" -u "$root/scripts/localstripe_server.py" "$stripe_port"
    stripe_pid=$last_pid
    deadline=$((SECONDS + 30))
    until "$python" -c 'import sys, urllib.request as u
r = u.Request(sys.argv[1] + "/v1/customers?limit=1", headers={"Authorization": "Bearer sk_test_ready"})
u.urlopen(r, timeout=2)' "$stripe_url" 2>/dev/null; do
        alive "$stripe_pid" && ((SECONDS < deadline)) || {
            say "the functions' localstripe did not start; last lines of its log:"
            tail -n 30 "$state_dir/localstripe-functions.log" >&2 || true
            exit 1
        }
        sleep 0.2
    done

    # The billing receiver.
    rm -f "$state_dir/receiver.port"
    start_bg receiver "$state_dir/receiver.log" \
        "$python" -u "$root/scripts/billing_receiver.py" --port 0 --port-file "$state_dir/receiver.port"
    wait_for_file "$state_dir/receiver.port" "$last_pid" "the billing receiver" "$state_dir/receiver.log" 30
    receiver_url="http://127.0.0.1:$(<"$state_dir/receiver.port")"

    # The functions' environment: the stack's, with their localstripe and the receiver.
    grep -v -E '^export (PAYBRIDGE_STRIPE_API_BASE|PAYBRIDGE_LOCALSTRIPE_URL|PAYBRIDGE_BILLING_URL)=' \
        "$state_dir/env" >"$state_dir/functions.env"
    {
        echo "export PAYBRIDGE_STRIPE_API_BASE=$stripe_url"
        echo "export PAYBRIDGE_LOCALSTRIPE_URL=$stripe_url"
        echo "export PAYBRIDGE_BILLING_URL=$receiver_url/paybridge"
    } >>"$state_dir/functions.env"

    # Build the functions now, where a compile error is plain to see, rather than inside
    # cargo lambda watch on the first request. `--bin` is what `cargo run --bin` (cargo lambda
    # watch) selects, so the binaries are then fresh for it.
    mapfile -t served < <("$python" "$root/scripts/local_gateway.py" --functions)
    [[ ${#served[@]} -gt 0 ]] || { say "template.yaml gives the local gateway no function to serve"; exit 1; }
    bins=()
    for f in "${served[@]}"; do bins+=(--bin "$f"); done
    say "building the functions the local gateway serves (${served[*]})"
    build_started=$SECONDS
    (cd "$root" && cargo build "${bins[@]}")
    say "functions built in $((SECONDS - build_started)) s"

    lambda_port=$(free_port)
    start_bg cargo-lambda "$state_dir/cargo-lambda.log" \
        bash -c 'cd "$1" && exec cargo lambda watch -A 127.0.0.1 -P "$2" --env-file "$3"' _ \
        "$root" "$lambda_port" "$(realpath "$state_dir/functions.env")"

    rm -f "$state_dir/gateway.url"
    start_bg gateway "$state_dir/gateway.log" \
        "$python" -u "$root/scripts/local_gateway.py" --port 0 \
        --lambda-url "http://127.0.0.1:$lambda_port" --env-file "$state_dir/env" \
        --register-stripe-webhook "$stripe_url" --ready-file "$state_dir/gateway.url"
    wait_for_file "$state_dir/gateway.url" "$last_pid" "the local gateway" "$state_dir/gateway.log" 180
    gateway_url=$(<"$state_dir/gateway.url")
    say "local gateway $gateway_url (cargo lambda watch on :$lambda_port), billing receiver $receiver_url, functions' localstripe $stripe_url"
fi

set -a
# shellcheck disable=SC1091
. "$state_dir/env"
set +a
if $functions; then
    export PAYBRIDGE_GATEWAY_URL=$gateway_url PAYBRIDGE_RECEIVER_URL=$receiver_url \
        PAYBRIDGE_FUNCTIONS_STRIPE_URL=$stripe_url
fi

set +e
"$@"
status=$?
set -e
exit "$status"
