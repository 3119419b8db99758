#!/usr/bin/env python3
"""Fuzzes the billing API against its own contract: schemathesis, openapi.json, the local gateway.

    fuzz_api.py [--examples N] [--seed S] [--budget SECONDS] [--phases LIST]

Run by `make test` (scripts/run-tests.sh, after cargo test and the scripts' tests) and by
`make fuzz [EXAMPLES=N] [SEED=S]`, inside `scripts/stack.py run --functions`: the stack's
environment names cargo lambda watch (PAYBRIDGE_LAMBDA_URL) and the state directory
(PAYBRIDGE_STACK_DIR).

1. Starts a local gateway of its own (scripts/local_gateway.py) in front of the stack's cargo
   lambda watch, with `--iam`: every billing route checks SigV4 as API Gateway does in AWS, and
   `--no-sqs` (the stack's gateway already feeds the retry worker).
2. Runs schemathesis (pinned in requirements-dev.txt) on openapi.json against it, with the checks
   in CHECKS, every phase (examples, coverage, fuzzing, stateful), at most N generated cases per
   operation and phase, seed S, requests SigV4-signed by scripts/fuzz_hooks.py. Its working
   directory is a temporary one outside the checkout: schemathesis and Hypothesis write
   `.schemathesis/` and `.hypothesis/` there, and a file written inside the workspace makes
   cargo lambda watch restart the functions, losing the invocations in flight. Hypothesis's
   example database is off, so a run depends on its seed only, not on earlier runs.
3. Gives it SECONDS of wall-clock time; a run that takes longer is stopped and fails. The budget
   is not schemathesis's `--max-time`: that makes the fuzzing and stateful phases repeat until the
   time is spent, so every run would last the whole budget and its case count would depend on the
   machine's speed.
4. Prints one line in cargo test's format, one test per API operation
   (`test result: ok. 10 passed; 0 failed; ...`), which scripts/run-tests.sh adds to make test's
   summary, and the number of generated cases. Exits 1 if schemathesis found anything (a failed
   check or an error such as a request that got no answer).

The JUnit report, schemathesis's output and the gateway's log go to PAYBRIDGE_STACK_DIR/fuzz/
(kept when the run fails). docs/local-gateway.md#fuzzing-the-contract has the details.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
OPENAPI = ROOT / "openapi.json"
HOOKS = SCRIPTS / "fuzz_hooks.py"

# The checks every response is held to (schemathesis names): no 5xx; the status, content type
# and body schema documented for that operation; a request that breaks the schema refused (4xx).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
DEFAULT_EXAMPLES = 25
DEFAULT_SEED = 14
# The wall-clock budget unless one is given: generous for this 2-core machine under load (25
# examples take about 1.5 min here), growing with the example count.
BUDGET_BASE_SECS = 240
BUDGET_PER_EXAMPLE_SECS = 6
# Above the gateway's 30 s integration timeout: a call that hangs shows as the gateway's 504
# (a not_a_server_error failure), not as a client timeout.
REQUEST_TIMEOUT_SECS = 35
GATEWAY_START_SECS = 60


def say(message: str) -> None:
    print(f"fuzz: {message}", flush=True)


def schemathesis_bin() -> str:
    local = Path(sys.executable).with_name("schemathesis")
    return str(local) if local.exists() else "schemathesis"


def start_gateway(lambda_url: str, env_file: Path | None, out_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = out_dir / "gateway-iam.url"
    ready.unlink(missing_ok=True)
    argv = [
        sys.executable, "-u", str(SCRIPTS / "local_gateway.py"),
        "--port", "0", "--iam", "--no-sqs",
        "--lambda-url", lambda_url,
        "--ready-file", str(ready),
    ]
    if env_file is not None:
        argv += ["--env-file", str(env_file)]
    log = (out_dir / "gateway-iam.log").open("ab")
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
    deadline = time.monotonic() + GATEWAY_START_SECS
    while not (ready.exists() and ready.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise SystemExit(f"fuzz: the --iam gateway did not start; see {out_dir / 'gateway-iam.log'}")
        time.sleep(0.2)
    return process, ready.read_text().strip()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def operations(junit: Path) -> tuple[int, int]:
    """(passed, failed) operations of schemathesis's JUnit report."""
    root = ET.parse(junit).getroot()
    passed = failed = 0
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        else:
            passed += 1
    return passed, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=int(os.environ.get("PAYBRIDGE_FUZZ_EXAMPLES") or DEFAULT_EXAMPLES),
                        help="generated cases per operation and phase (default %(default)s; PAYBRIDGE_FUZZ_EXAMPLES)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("PAYBRIDGE_FUZZ_SEED") or DEFAULT_SEED),
                        help="schemathesis --seed (default %(default)s; PAYBRIDGE_FUZZ_SEED)")
    parser.add_argument("--budget", type=float, default=float(os.environ.get("PAYBRIDGE_FUZZ_BUDGET_SECS") or 0),
                        help=f"wall-clock seconds the run may take, or it fails (default {BUDGET_BASE_SECS} + "
                        f"{BUDGET_PER_EXAMPLE_SECS} per example; PAYBRIDGE_FUZZ_BUDGET_SECS)")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful", help="schemathesis --phases (default: all)")
    parser.add_argument("--lambda-url", default=os.environ.get("PAYBRIDGE_LAMBDA_URL"), help="cargo lambda watch (default: PAYBRIDGE_LAMBDA_URL)")
    args = parser.parse_args(argv)
    if not args.lambda_url:
        print("fuzz: PAYBRIDGE_LAMBDA_URL is not set: run this through `make fuzz` or `make test` (scripts/stack.py run --functions)", file=sys.stderr)
        return 2
    if args.examples < 1:
        print("fuzz: --examples must be at least 1", file=sys.stderr)
        return 2
    if args.budget <= 0:
        args.budget = BUDGET_BASE_SECS + BUDGET_PER_EXAMPLE_SECS * args.examples

    stack_dir = Path(os.environ["PAYBRIDGE_STACK_DIR"]) if os.environ.get("PAYBRIDGE_STACK_DIR") else None
    out_dir = (stack_dir / "fuzz") if stack_dir else Path(tempfile.mkdtemp(prefix="paybridge-fuzz-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    env_file = stack_dir / "env" if stack_dir and (stack_dir / "env").exists() else None
    work_dir = Path(tempfile.mkdtemp(prefix="paybridge-schemathesis-"))
    junit = out_dir / "junit.xml"
    junit.unlink(missing_ok=True)

    started = time.monotonic()
    gateway, url = start_gateway(args.lambda_url, env_file, out_dir)
    say(
        f"schemathesis on openapi.json against a local gateway with --iam ({url}): checks {','.join(CHECKS)}; "
        f"phases {args.phases}; at most {args.examples} cases per operation and phase; seed {args.seed}; budget {args.budget:g} s"
    )
    command = [
        schemathesis_bin(), "run", str(OPENAPI),
        "--url", url,
        "--checks", ",".join(CHECKS),
        "--phases", args.phases,
        "--max-examples", str(args.examples),
        "--seed", str(args.seed),
        "--generation-database", "none",
        "--workers", "1",  # cargo lambda watch runs one invocation per function at a time
        "--request-timeout", str(REQUEST_TIMEOUT_SECS),
        "--no-color",
        "--output-truncate", "false",
        "--report", "junit",
        "--report-junit-path", str(junit),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    output = out_dir / "schemathesis.log"
    over_budget = False
    with output.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            command, cwd=work_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        assert process.stdout is not None
        deadline = started + args.budget
        # Streamed, so a long run shows its progress; a watchdog holds it to the budget.
        def watchdog() -> None:
            nonlocal over_budget
            while process.poll() is None:
                if time.monotonic() > deadline:
                    over_budget = True
                    os.killpg(process.pid, signal.SIGKILL)
                    return
                time.sleep(0.5)

        threading.Thread(target=watchdog, daemon=True).start()
        text = []
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
            text.append(line)
        status = process.wait()
    stop(gateway)
    shutil.rmtree(work_dir, ignore_errors=True)
    elapsed = time.monotonic() - started

    generated = re.search(r"^\s*(\d+) generated", "".join(text), re.MULTILINE)
    cases = generated.group(1) if generated else "?"
    if over_budget:
        say(f"FAILED: the run took longer than its budget of {args.budget:g} s and was stopped (raise --budget, or lower --examples)")
        passed, failed = 0, 1
    elif junit.exists():
        passed, failed = operations(junit)
        if status != 0 and failed == 0:
            failed = 1  # schemathesis failed outside any operation (schema, configuration)
    else:
        passed, failed = 0, 1
    ok = status == 0 and not over_budget and failed == 0
    say(f"{cases} generated cases in {elapsed:.0f} s; report {junit}, output {output}, gateway log {out_dir / 'gateway-iam.log'}")
    print(
        f"test result: {'ok' if ok else 'FAILED'}. {passed} passed; {failed} failed; 0 ignored; 0 measured; "
        f"0 filtered out; finished in {elapsed:.2f}s",
        flush=True,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
