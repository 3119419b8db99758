#!/usr/bin/env bash
# `make dev`: the whole paybridge stack on this machine, in the foreground, until Ctrl-C.
#
#   moto server   http://127.0.0.1:4566   DynamoDB, SQS, Secrets Manager (from template.yaml)
#   localstripe   http://127.0.0.1:8420   fake Stripe API
#   cargo lambda  http://127.0.0.1:9000   every function of the workspace (cargo lambda watch)
#   gateway       http://127.0.0.1:3000   template.yaml's routes - when LOCAL_GATEWAY_CMD is set
#
# State (pids, logs, env file) lives in .stack/dev. On exit (Ctrl-C, error, cargo lambda
# ending) everything started here is stopped again.
#
# Environment knobs (all optional):
#   DEV_STATE_DIR      default .stack/dev
#   MOTO_PORT          default 4566
#   STRIPE_PORT        default 8420
#   LAMBDA_PORT        default 9000
#   GATEWAY_PORT       default 3000
#   LOCAL_GATEWAY_CMD  hook for the local API gateway: a command started in the background
#                      after the stack is up, with the env file's variables plus
#                      PAYBRIDGE_LAMBDA_URL and PAYBRIDGE_GATEWAY_PORT in its environment;
#                      stopped on exit. Empty (the default) = no gateway yet.
#   PAYBRIDGE_BILLING_URL  passed through to the functions (see local/README.md)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-.venv/bin/python}
state_dir=${DEV_STATE_DIR:-.stack/dev}
moto_port=${MOTO_PORT:-4566}
stripe_port=${STRIPE_PORT:-8420}
lambda_port=${LAMBDA_PORT:-9000}
gateway_port=${GATEWAY_PORT:-3000}
gateway_cmd=${LOCAL_GATEWAY_CMD:-}
functions=(webhook-intake charges refunds retry-worker)

die() { echo "dev: $*" >&2; exit 1; }
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
ports=("moto:$moto_port" "localstripe:$stripe_port" "cargo-lambda:$lambda_port")
[[ -z $gateway_cmd ]] || ports+=("gateway:$gateway_port")
for entry in "${ports[@]}"; do
    if port_taken "${entry#*:}"; then
        die "port 127.0.0.1:${entry#*:} (for ${entry%%:*}) is already in use by another process.
     Find it with 'ss -ltnp | grep :${entry#*:}' and stop it, or, if it is an old dev stack, run 'make stack-down'."
    fi
done

gateway_pid=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $gateway_pid ]]; then
        kill -TERM -- "-$gateway_pid" 2>/dev/null || kill -TERM "$gateway_pid" 2>/dev/null || true
        wait "$gateway_pid" 2>/dev/null || true
    fi
    echo "dev: stopping the local stack" >&2
    "$python" scripts/stack.py down --state-dir "$state_dir" || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$python" scripts/stack.py up --state-dir "$state_dir" --moto-port "$moto_port" --stripe-port "$stripe_port"

# Hook: the local API gateway (template.yaml's routes on 127.0.0.1:$gateway_port, building API
# Gateway v2 events for cargo lambda's invoke API, and polling SQS for retry-worker) starts here.
if [[ -n $gateway_cmd ]]; then
    (
        set -a
        # shellcheck disable=SC1091
        . "$state_dir/env"
        set +a
        export PAYBRIDGE_LAMBDA_URL="http://127.0.0.1:$lambda_port" PAYBRIDGE_GATEWAY_PORT="$gateway_port"
        exec setsid bash -c "$gateway_cmd"
    ) >"$state_dir/gateway.log" 2>&1 &
    gateway_pid=$!
fi

cat <<EOF

paybridge local stack (state in $state_dir/, env file $state_dir/env)
  moto (AWS APIs)   http://127.0.0.1:$moto_port        reset: curl -X POST http://127.0.0.1:$moto_port/moto-api/reset
  localstripe       http://127.0.0.1:$stripe_port        e.g. curl -u sk_test_x: http://127.0.0.1:$stripe_port/v1/customers
  functions         http://127.0.0.1:$lambda_port/lambda-url/<function>/<path>   (function URL event)
                    POST http://127.0.0.1:$lambda_port/2015-03-31/functions/<function>/invocations   (any event JSON)
                    functions: ${functions[*]}
EOF
if [[ -n $gateway_cmd ]]; then
    echo "  gateway           http://127.0.0.1:$gateway_port   (log: $state_dir/gateway.log)"
else
    echo "  gateway           not started (set LOCAL_GATEWAY_CMD; see scripts/dev.sh)"
fi
cat <<EOF
The first request to a function compiles it (minutes on 2 cores). Ctrl-C stops everything.

EOF

# Not exec: the EXIT trap must run to stop the stack when cargo lambda ends.
cargo lambda watch -A 127.0.0.1 -P "$lambda_port" --env-file "$state_dir/env"
