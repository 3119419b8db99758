#!/usr/bin/env bash
# `make dev`: the whole paybridge stack on this machine, in the foreground, until Ctrl-C.
#
#   moto server   http://127.0.0.1:4566   DynamoDB, SQS, Secrets Manager (from template.yaml)
#   localstripe   http://127.0.0.1:8420   fake Stripe API; its signed webhooks go to the gateway
#   cargo lambda  http://127.0.0.1:9000   every function of the workspace (cargo lambda watch)
#   gateway       http://127.0.0.1:3000   template.yaml's routes (API Gateway v2 events) and the
#                                         SQS trigger of retry-worker (scripts/local_gateway.py)
#   billing       http://127.0.0.1:3900   a billing receiver that verifies and prints every
#                                         notification (scripts/billing_receiver.py)
#
# The functions are built before anything listens (`cargo build --bin …`, minutes the first
# time), so the first request is quick. State (pids, logs, env file) lives in .stack/dev. On
# exit (Ctrl-C, an error, any of the processes ending) everything started here is stopped again.
#
#   scripts/dev.sh            start (what `make dev` runs)
#   scripts/dev.sh stop [DIR] stop what a killed `make dev` (or `with-stack.sh --functions`)
#                             left running from DIR (default .stack/dev), then its stack
#
# Environment knobs (all optional):
#   DEV_STATE_DIR      default .stack/dev
#   MOTO_PORT          default 4566
#   STRIPE_PORT        default 8420
#   LAMBDA_PORT        default 9000
#   GATEWAY_PORT       default 3000
#   BILLING_RECEIVER   1 (default) starts the billing receiver; 0 if you run your own
#   RECEIVER_PORT      default: the port of billing.endpoint in local/secrets.json (3900); when
#                      set, the functions deliver there (PAYBRIDGE_BILLING_URL) unless that is set
#   PAYBRIDGE_BILLING_URL  passed through to the functions (see local/README.md)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-.venv/bin/python}
state_dir=${DEV_STATE_DIR:-.stack/dev}

die() { echo "dev: $*" >&2; exit 1; }
say() { echo "dev: $*" >&2; }

# The helpers recorded in the state dir as NAME.pid, with the program each must be running.
helpers=(gateway:local_gateway.py receiver:billing_receiver.py "cargo-lambda:lambda watch" localstripe-functions:localstripe_server.py)

# Prints the pid in DIR/NAME.pid if that process still runs PROGRAM (guards against pid reuse).
live_helper() { # DIR NAME PROGRAM
    local pid
    pid=$(cat "$1/$2.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$3" || return 1
    echo "$pid"
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

if [[ ${1:-} == stop ]]; then
    dir=${2:-$state_dir}
    for entry in "${helpers[@]}"; do
        if pid=$(live_helper "$dir" "${entry%%:*}" "${entry#*:}"); then
            say "stopping ${entry%%:*} (pid $pid)"
            stop_group "${entry%%:*}" "$pid"
        fi
        rm -f "$dir/${entry%%:*}.pid"
    done
    [[ ! -x $python ]] || "$python" scripts/stack.py down --state-dir "$dir"
    exit 0
fi

moto_port=${MOTO_PORT:-4566}
stripe_port=${STRIPE_PORT:-8420}
lambda_port=${LAMBDA_PORT:-9000}
gateway_port=${GATEWAY_PORT:-3000}
receiver=${BILLING_RECEIVER:-1}

port_taken() { "$python" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

[[ -x $python ]] || die "$python not found; run 'make venv' first"
command -v cargo-lambda >/dev/null || die "cargo-lambda not on PATH; run 'make dev' (it puts .venv/bin on PATH)"

# Refuse to start a second dev stack.
dev_status=$("$python" scripts/stack.py status --state-dir "$state_dir" 2>/dev/null || true)
if [[ $dev_status == *" running "* ]]; then
    die "a dev stack is already running from $state_dir (see 'make stack-status').
     Stop it with 'make stack-down' (or end the other 'make dev' with Ctrl-C), then run 'make dev' again."
fi
for entry in "${helpers[@]}"; do
    if pid=$(live_helper "$state_dir" "${entry%%:*}" "${entry#*:}"); then
        die "the ${entry%%:*} of an earlier 'make dev' still runs (pid $pid).
     Stop it with 'make stack-down' (or end the other 'make dev' with Ctrl-C), then run 'make dev' again."
    fi
done

if [[ $receiver == 1 ]]; then
    receiver_port=${RECEIVER_PORT:-$("$python" -c '
import json, sys, urllib.parse
endpoint = urllib.parse.urlsplit(json.load(open(sys.argv[1]))["billing"]["endpoint"])
print(endpoint.port if endpoint.hostname in ("127.0.0.1", "localhost") and endpoint.port else 3900)' local/secrets.json)}
    if [[ -n ${RECEIVER_PORT:-} && -z ${PAYBRIDGE_BILLING_URL:-} ]]; then
        export PAYBRIDGE_BILLING_URL="http://127.0.0.1:$receiver_port/paybridge"
    fi
fi

ports=("moto:$moto_port" "localstripe:$stripe_port" "cargo-lambda:$lambda_port" "gateway:$gateway_port")
[[ $receiver != 1 ]] || ports+=("billing receiver:$receiver_port")
for entry in "${ports[@]}"; do
    if port_taken "${entry#*:}"; then
        die "port 127.0.0.1:${entry#*:} (for ${entry%%:*}) is already in use by another process.
     Find it with 'ss -ltnp | grep :${entry#*:}' and stop it, or, if it is an old dev stack, run 'make stack-down'."
    fi
done

pids=()
names=()
start_bg() { # NAME COMMAND... (own process group; output to this terminal)
    local name=$1
    shift
    setsid "$@" </dev/null &
    pids+=("$!")
    names+=("$name")
    echo "$!" >"$state_dir/$name.pid"
}
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    echo >&2
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        stop_group "${names[i]}" "${pids[i]}"
        rm -f "$state_dir/${names[i]}.pid"
    done
    say "stopping the local stack"
    "$python" scripts/stack.py down --state-dir "$state_dir" || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT  # Ctrl-C is how make dev is meant to end
trap 'exit 143' TERM

"$python" scripts/stack.py up --state-dir "$state_dir" --moto-port "$moto_port" --stripe-port "$stripe_port"

# Build the functions the gateway serves before anything waits on them: the same selection as
# cargo lambda watch's `cargo run --bin <function>`, so it finds them fresh.
mapfile -t served < <("$python" scripts/local_gateway.py --functions)
[[ ${#served[@]} -gt 0 ]] || die "template.yaml gives the local gateway no function to serve"
bins=()
for f in "${served[@]}"; do bins+=(--bin "$f"); done
say "building ${served[*]} (a few minutes the first time; later only what changed)"
build_started=$SECONDS
if cargo build "${bins[@]}"; then
    say "functions built in $((SECONDS - build_started)) s"
else
    say "the functions do not build (see above); starting anyway: cargo lambda watch rebuilds when you save a fix"
fi

if [[ $receiver == 1 ]]; then
    start_bg receiver "$python" -u scripts/billing_receiver.py --port "$receiver_port" \
        --log-file "$state_dir/receiver.log"
fi
start_bg cargo-lambda cargo lambda watch -A 127.0.0.1 -P "$lambda_port" --env-file "$state_dir/env"
rm -f "$state_dir/gateway.url"
start_bg gateway "$python" -u scripts/local_gateway.py --port "$gateway_port" \
    --lambda-url "http://127.0.0.1:$lambda_port" --env-file "$state_dir/env" \
    --register-stripe-webhook "http://127.0.0.1:$stripe_port" \
    --ready-file "$state_dir/gateway.url" --log-file "$state_dir/gateway.log"

# Wait until the gateway serves, has registered with localstripe and reaches cargo lambda watch.
until [[ -s $state_dir/gateway.url ]]; do
    for i in "${!pids[@]}"; do
        kill -0 "${pids[i]}" 2>/dev/null || die "${names[i]} ended during start-up (see above)"
    done
    sleep 0.3
done

billing_line="not started (BILLING_RECEIVER=0); notifications go to ${PAYBRIDGE_BILLING_URL:-billing.endpoint of local/secrets.json}"
if [[ $receiver == 1 ]]; then
    billing_line="http://127.0.0.1:$receiver_port        verifies and prints notifications; curl -s http://127.0.0.1:$receiver_port/received"
fi
cat <<EOF

paybridge local stack (state in $state_dir/, env file $state_dir/env)
  gateway           http://127.0.0.1:$gateway_port        template.yaml's routes; retry-worker fed from the work queue
  billing receiver  $billing_line
  localstripe       http://127.0.0.1:$stripe_port        its webhooks go to http://127.0.0.1:$gateway_port/webhooks/stripe
  moto (AWS APIs)   http://127.0.0.1:$moto_port        DynamoDB, SQS, Secrets Manager
  functions         http://127.0.0.1:$lambda_port        cargo lambda watch: ${served[*]} (rebuilt when you save)
Logs: this terminal; also $state_dir/gateway.log, receiver.log, moto.log, localstripe.log.
Try it: make demo   (or curl, e.g.:)
  curl -s http://127.0.0.1:$gateway_port/charges -H 'content-type: application/json' -H 'Idempotency-Key: try-1' \\
    -d '{"invoice_id":"inv_1","amount":1999,"currency":"eur","gateway":"stripe","payment_method":"pm_card_visa"}'
Ctrl-C stops everything.

EOF

# Run until Ctrl-C or until one of the processes ends (then stop the rest).
set +e
wait -n "${pids[@]}"
set -e
for i in "${!pids[@]}"; do
    kill -0 "${pids[i]}" 2>/dev/null || die "${names[i]} ended; stopping everything"
done
exit 1
