# paybridge - developer entry points (GNU make).
#
#   make test        lint the template, start a throw-away local stack, cargo test --workspace
#   make dev         local stack on 4566/8420 + cargo lambda watch on 9000, until Ctrl-C
#   make lint        cargo fmt --check, clippy -D warnings, cfn-lint (plain and serverless rules)
#   make build       release arm64 zips of every function (cargo lambda build), not part of test
#   make bench       cargo bench -p paybridge
#   make stack-up / stack-down / stack-reset / stack-status / clean-stack   the dev stack by hand
#   make redrive [MAX=N] / resend ID=ntf_… / deliveries CHARGE=ch_… / sweep-outbox   operations
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
# cargo-lambda, cfn-lint and the zig linker come from the venv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

FUNCTIONS := webhook-intake charges refunds retry-worker
DEV_STATE := .stack/dev
MOTO_PORT ?= 4566
STRIPE_PORT ?= 8420
LAMBDA_PORT ?= 9000
# Hook for the local API gateway (127.0.0.1:3000); empty until it exists. See scripts/dev.sh.
LOCAL_GATEWAY_CMD ?=
export LOCAL_GATEWAY_CMD
CARGO_TEST_ARGS ?=

.PHONY: help venv .venv test lint lint-template fmt-check clippy dev stack-up stack-down \
        stack-reset stack-status clean-stack build bench redrive resend deliveries sweep-outbox

help:
	@sed -n '3,9p' Makefile | sed 's/^# \{0,1\}//'

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

# A fresh stack on free ports for every run, so `make test` and `make dev` can run side by side.
# scripts/with-stack.sh stops it again whatever the tests do, and exits with their status.
# The last line printed is the summary, "N passed, N failed, N skipped".
test: lint-template
	@summary=$$(mktemp); status=0; \
	PAYBRIDGE_TEST_SUMMARY=$$summary scripts/with-stack.sh .stack/test-$$(date +%Y%m%d-%H%M%S)-$$$$ -- \
	  scripts/run-tests.sh $(CARGO_TEST_ARGS) || status=$$?; \
	echo; cat "$$summary" 2>/dev/null || echo "0 passed, 1 failed (the test run did not start)"; \
	rm -f "$$summary"; exit $$status

# ----------------------------------------------------------------------------- local stack

dev: $(VENV_STAMP)
	DEV_STATE_DIR=$(DEV_STATE) MOTO_PORT=$(MOTO_PORT) STRIPE_PORT=$(STRIPE_PORT) \
	  LAMBDA_PORT=$(LAMBDA_PORT) scripts/dev.sh

stack-up: $(VENV_STAMP)
	$(PY) scripts/stack.py up --state-dir $(DEV_STATE) --moto-port $(MOTO_PORT) --stripe-port $(STRIPE_PORT)
	@echo "load it into a shell with: set -a; . $(DEV_STATE)/env; set +a"

stack-down:
	@if [[ -x $(PY) ]]; then $(PY) scripts/stack.py down --state-dir $(DEV_STATE); fi

# Wipes every table item, message, secret and Stripe object, then provisions again (stack keeps running).
stack-reset: $(VENV_STAMP)
	$(PY) scripts/stack.py reset --state-dir $(DEV_STATE)

stack-status: $(VENV_STAMP)
	$(PY) scripts/stack.py status --state-dir $(DEV_STATE)

# Stops every stack started from .stack/ (dev and any test leftovers), then deletes .stack/.
clean-stack:
	@if [[ -x $(PY) ]]; then \
	  for dir in .stack/*/; do \
	    [[ -d $$dir ]] && $(PY) scripts/stack.py down --state-dir "$${dir%/}"; \
	  done; \
	fi; true
	rm -rf .stack

# ----------------------------------------------------------------------------- artifacts

# target/lambda/<function>/bootstrap.zip for provided.al2023 on arm64 (what `sam build` runs too).
build: $(VENV_STAMP)
	cargo lambda build --release --arm64 --output-format zip $(addprefix -p ,$(FUNCTIONS))

bench:
	cargo bench -p paybridge

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
