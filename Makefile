# paybridge - developer entry points (GNU make).
#
#   make test        lint the template, start a throw-away local stack + functions, cargo test --workspace
#   make dev         the whole stack: gateway on 3000, billing receiver 3900, moto, localstripe, local Adyen, functions
#                    (make dev LOCAL_IAM=1: the gateway checks SigV4 on the billing routes, as API Gateway does)
#   make demo        a scripted walk through paybridge against a running `make dev` (LOCAL_IAM=1: signed calls)
#   make fuzz        the API fuzzed against openapi.json (schemathesis) and webhook intake with generated
#                    deliveries, on a throw-away stack: make fuzz EXAMPLES=200 SEED=7 WEBHOOK_CASES=500
#   make test-burst  500 shuffled webhooks (30 % duplicates) in 10 s through the local gateway of a throw-away
#                    stack: each event recorded and applied once (minutes; not part of make test)
#   make lint        cargo fmt --check, clippy -D warnings, cfn-lint (plain and serverless rules)
#   make build       release arm64 zips of every function (cargo lambda build), not part of test
#   make bench       cargo bench -p paybridge, then bench-lambdas: every function's init, latency, RSS and AWS calls
#                    beside an empty lambda_http function ([BENCH_ARGS=--cpu-quota 7.2] [PROBE=1]);
#                    make bench-reconcile [IN_FLIGHT=1000,10000] against a local stack
#   make simulate    the deterministic simulation: SEEDS=N seeded histories (default 100000) from FROM=S,
#                    or TRACE=S to replay one history step by step (docs/simulation.md)
#   make stack-up / stack-down / stack-reset / stack-status / clean-stack   the dev stack by hand
#   make redrive [MAX=N] / resend ID=ntf_… / deliveries CHARGE=ch_… / sweep-outbox / reconcile [AFTER=S]
#   make attention / unpark ID=ch_…|rf_…   what the reconciler set aside for a person
#   make undelivered [STATUS=…] [SINCE=…] / recover SINCE=… [DRY_RUN=1] / index-notifications
#
# Needs only a Rust toolchain and python3 (with its venv module); every Python tool is pinned in
# requirements-dev.txt and installed into .venv on first use.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.requirements-installed
# scripts/stack.py owns every process of the local stacks. Stopping needs no venv packages.
STACK := $(PY) scripts/stack.py
STACK_STOP := $(if $(wildcard $(PY)),$(PY),$(PYTHON3)) scripts/stack.py
# cargo-lambda, cfn-lint and the zig linker come from the venv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

FUNCTIONS := webhook-intake charges refunds retry-worker reconciler
DEV_STATE := .stack/dev
MOTO_PORT ?= 4566
STRIPE_PORT ?= 8420
ADYEN_PORT ?= 8430
LAMBDA_PORT ?= 9000
GATEWAY_PORT ?= 3000
# The billing receiver's port; empty = the port of billing.endpoint in local/secrets.json (3900).
RECEIVER_PORT ?=
CARGO_TEST_ARGS ?=
# make test runs the API fuzz (scripts/fuzz_api.py) after the tests; FUZZ=0 leaves it out.
FUZZ ?= 1
# make fuzz (and make test): schemathesis cases per operation and phase, its seed, its wall-clock
# budget in seconds (empty: 240 + 6 per example), and the webhook deliveries of tests/tests/webhook_fuzz.rs.
EXAMPLES ?=
SEED ?=
FUZZ_BUDGET ?=
WEBHOOK_CASES ?=
FUZZ_ENV = PAYBRIDGE_FUZZ_EXAMPLES=$(EXAMPLES) PAYBRIDGE_FUZZ_SEED=$(SEED) PAYBRIDGE_FUZZ_BUDGET_SECS=$(FUZZ_BUDGET) \
  PAYBRIDGE_WEBHOOK_FUZZ_CASES=$(WEBHOOK_CASES)
# 1: the local gateway checks SigV4 on the AWS_IAM (billing) routes with the stack's credentials,
# and make demo signs its calls; 0 or empty: billing routes take any caller (the default).
LOCAL_IAM ?=
ifneq ($(filter-out 0 1,$(LOCAL_IAM)),)
$(error LOCAL_IAM must be 1 (check SigV4) or 0 (do not), not '$(LOCAL_IAM)')
endif
IAM_FLAG := $(if $(filter 1,$(LOCAL_IAM)),--iam,)

.PHONY: help venv .venv test fuzz lint lint-template fmt-check clippy dev demo stack-up stack-down \
        stack-reset stack-status clean-stack build bench test-burst bench-lambdas bench-reconcile simulate redrive resend deliveries sweep-outbox reconcile \
        attention unpark undelivered recover index-notifications

help:
	@sed -n '3,/^#$$/{/^#$$/d;p}' Makefile | sed 's/^# \{0,1\}//'

# ----------------------------------------------------------------------------- Python tools

venv .venv: $(VENV_STAMP)

# Re-runs only when requirements-dev.txt changes (or the venv is gone).
$(VENV_STAMP): requirements-dev.txt
	@if [[ ! -x $(PY) ]]; then \
	  echo "creating $(VENV) with $$($(PYTHON3) --version)"; \
	  $(PYTHON3) -m venv $(VENV) || { rm -rf $(VENV); \
	    echo "error: '$(PYTHON3) -m venv' failed. On Debian/Ubuntu install the venv module: apt-get install python3-venv" >&2; \
	    exit 1; }; \
	fi
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# ----------------------------------------------------------------------------- checks

lint-template: $(VENV_STAMP)
	cfn-lint template.yaml
	cfn-lint --append-rules cfn_lint_serverless.rules -- template.yaml

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

lint: fmt-check clippy lint-template

# A fresh stack on free ports for every run, so `make test` and `make dev` can run side by side;
# --functions adds what the end-to-end tests (tests/tests/e2e.rs) go through: the functions under
# cargo lambda watch, the local gateway, the billing receiver and a localstripe of their own.
# `stack.py run` stops it all again whatever the tests do, and exits with their status.
# scripts/run-tests.sh runs cargo test and the scripts' own Python tests (scripts/test_*.py).
# The last line printed is the summary, "N passed, N failed, N skipped".
test: lint-template
	@summary=$$(mktemp); status=0; \
	PAYBRIDGE_TEST_SUMMARY=$$summary PAYBRIDGE_FUZZ=$(FUZZ) $(FUZZ_ENV) $(STACK) run --functions --state-dir .stack/test-$$(date +%Y%m%d-%H%M%S)-$$$$ -- \
	  scripts/run-tests.sh $(CARGO_TEST_ARGS) || status=$$?; \
	echo; cat "$$summary" 2>/dev/null || echo "0 passed, 1 failed (the test run did not start)"; \
	rm -f "$$summary"; exit $$status

# The fuzzing part of make test alone, on a fresh stack with the functions: the webhook property
# test (WEBHOOK_CASES deliveries), then schemathesis (EXAMPLES, SEED, FUZZ_BUDGET). Reports, logs
# and the stack's logs stay in .stack/fuzz-*/ when it fails. docs/local-gateway.md#fuzzing-the-contract
fuzz: $(VENV_STAMP)
	$(FUZZ_ENV) $(STACK) run --functions --state-dir .stack/fuzz-$$(date +%Y%m%d-%H%M%S)-$$$$ -- \
	  bash -c 'cargo test -p paybridge-tests --test webhook_fuzz -- --nocapture && "$$0" scripts/fuzz_api.py' $(PY)

# A burst of webhooks through the local gateway of a fresh stack with the functions
# (tests/tests/burst.rs, a test target `cargo test --workspace` leaves out: it takes minutes).
test-burst: $(VENV_STAMP)
	$(STACK) run --functions --state-dir .stack/burst-$$(date +%Y%m%d-%H%M%S)-$$$$ -- \
	  cargo test -p paybridge-tests --test burst -- --nocapture

# ----------------------------------------------------------------------------- local stack

# In the foreground until Ctrl-C; BILLING_RECEIVER=0 leaves the billing receiver out, LOCAL_IAM=1
# makes the gateway check SigV4 on the billing routes.
dev: $(VENV_STAMP)
	$(STACK) dev --state-dir $(DEV_STATE) --moto-port $(MOTO_PORT) --stripe-port $(STRIPE_PORT) --adyen-port $(ADYEN_PORT) \
	  --lambda-port $(LAMBDA_PORT) --gateway-port $(GATEWAY_PORT) $(if $(RECEIVER_PORT),--receiver-port $(RECEIVER_PORT),) $(IAM_FLAG)

# Against the `make dev` running in another terminal. Unsigned it needs only the standard library;
# signing (LOCAL_IAM=1, or a gateway that refuses unsigned calls) uses botocore, so the venv's
# Python runs it when there is one (make dev made it), with the dev stack's env file for the credentials.
demo:
	@$(if $(wildcard $(PY)),$(PY),$(PYTHON3)) scripts/demo.py --gateway http://127.0.0.1:$(GATEWAY_PORT) \
	  --stripe http://127.0.0.1:$(STRIPE_PORT) --env-file $(DEV_STATE)/env \
	  $(if $(RECEIVER_PORT),--receiver http://127.0.0.1:$(RECEIVER_PORT),) $(if $(IAM_FLAG),--sign,)

stack-up: $(VENV_STAMP)
	$(STACK) up --state-dir $(DEV_STATE) --moto-port $(MOTO_PORT) --stripe-port $(STRIPE_PORT) --adyen-port $(ADYEN_PORT)
	@echo "load it into a shell with: set -a; . $(DEV_STATE)/env; set +a"

# Also stops the gateway, receiver and cargo lambda watch of a `make dev` that was killed hard.
stack-down:
	@$(STACK_STOP) down --state-dir $(DEV_STATE)

# Wipes every table item, message, secret, Stripe object and local Adyen payment, then provisions again (stack keeps running).
stack-reset: $(VENV_STAMP)
	$(STACK) reset --state-dir $(DEV_STATE)

stack-status: $(VENV_STAMP)
	$(STACK) status --state-dir $(DEV_STATE)

# Stops every stack started from .stack/ (dev and any test leftovers, with their gateways,
# receivers and cargo lambda watch, and stragglers of a hard-killed run), then deletes .stack/.
clean-stack:
	@$(STACK_STOP) clean --root .stack

# ----------------------------------------------------------------------------- artifacts

# target/lambda/<function>/bootstrap.zip for provided.al2023 on arm64 (what `sam build` runs too).
build: $(VENV_STAMP)
	cargo lambda build --release --arm64 --output-format zip $(addprefix -p ,$(FUNCTIONS))

# The criterion benchmarks (intake CPU, PAN detector), then the functions' cold start, latency,
# memory and AWS calls beside an empty lambda_http function (bench-lambdas).
bench: $(VENV_STAMP)
	cargo bench -p paybridge
	$(MAKE) bench-lambdas

# Every function's release binary and tools/empty-lambda under a Runtime API emulator, against a
# throw-away local stack with a call-counting proxy in front of moto (benches/lambda_bench.py):
# init, first and warm invoke, peak RSS, AWS calls; a markdown table at the end.
# BENCH_ARGS: e.g. --cpu-quota 7.2 (a 128 MB function's CPU share), --invokes 200, --cold-starts 9.
# PROBE=1 also times each init step on its own (tools/init-probe), the SDK's default way and paybridge's.
BENCH_ARGS ?=
PROBE ?=
BENCH_BIN := $(abspath $(or $(CARGO_TARGET_DIR),target))/release
bench-lambdas: $(VENV_STAMP)
	cargo build --release $(addprefix -p ,$(FUNCTIONS)) -p empty-lambda $(if $(filter 1,$(PROBE)),-p init-probe,)
	$(STACK) run --state-dir .stack/bench-$$(date +%Y%m%d-%H%M%S)-$$$$ -- \
	  $(PY) benches/lambda_bench.py --bin-dir $(BENCH_BIN) $(if $(filter 1,$(PROBE)),--probe $(BENCH_BIN)/init-probe,) $(BENCH_ARGS)

# Reconciler run time with N items in flight, against a throw-away local stack (tests/scale/reconcile.rs).
IN_FLIGHT ?= 1000,10000
# No stack: the real use cases against in-memory ports with a fault injector, a gateway ledger and a
# billing system, one seed per history (tests/sim). make test runs a fixed 2000 of them.
SEEDS ?= 100000
FROM ?= 1
simulate:
	cargo run -q -p paybridge-sim --release -- $(if $(TRACE),--trace $(TRACE),--seeds $(SEEDS) --from $(FROM))

bench-reconcile: $(VENV_STAMP)
	PAYBRIDGE_BENCH_IN_FLIGHT=$(IN_FLIGHT) $(STACK) run --state-dir .stack/bench-$$(date +%Y%m%d-%H%M%S)-$$$$ -- \
	  cargo test -q -p paybridge-tests --test reconcile_scale

# ----------------------------------------------------------------------------- operations
# Against the dev stack by default; point OPS_ENV at another env file (or export the variables
# for a deployed stack and use OPS_ENV=/dev/null) to run them elsewhere. See docs/runbook.md.
OPS_ENV ?= $(DEV_STATE)/env
OPS = set -a; [[ -f $(OPS_ENV) ]] && . $(OPS_ENV); set +a; cargo run -q -p paybridge-ops --

redrive:
	@$(OPS) redrive $(if $(MAX),--max $(MAX),)

resend:
	@[[ -n "$(ID)" ]] || { echo "usage: make resend ID=ntf_..." >&2; exit 2; }
	@$(OPS) resend $(ID)

deliveries:
	@[[ -n "$(CHARGE)" ]] || { echo "usage: make deliveries CHARGE=ch_..." >&2; exit 2; }
	@$(OPS) deliveries $(CHARGE)

sweep-outbox:
	@$(OPS) sweep-outbox

# Notifications billing does not have, across all charges (STATUS: pending, failed or exhausted;
# SINCE: RFC 3339 or unix seconds).
undelivered:
	@$(OPS) undelivered $(if $(STATUS),--status $(STATUS),) $(if $(SINCE),--since $(SINCE),)

# Every notification not delivered created since SINCE, sent again with a fresh series.
recover:
	@[[ -n "$(SINCE)" ]] || { echo "usage: make recover SINCE=2026-12-01T09:00:00Z (or unix seconds) [DRY_RUN=1]" >&2; exit 2; }
	@$(OPS) recover --since $(SINCE) $(if $(DRY_RUN),--dry-run,)

# Once after upgrading from a release without delivery series: index its undelivered notifications.
index-notifications:
	@$(OPS) index-notifications

# One reconciliation run now (what the scheduled reconciler function does; not run by make dev).
reconcile:
	@$(OPS) reconcile $(if $(AFTER),--after $(AFTER),)

attention:
	@$(OPS) attention

unpark:
	@[[ -n "$(ID)" ]] || { echo "usage: make unpark ID=ch_...|rf_..." >&2; exit 2; }
	@$(OPS) unpark $(ID)
