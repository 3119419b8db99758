"""Cold start, latency, memory and AWS calls of every function's release binary (`make bench`).

Each function's binary (and `empty-lambda`, the yardstick: a bare lambda_http function built with
the same release profile) runs under a small Lambda Runtime API emulator served here, against the
local stack that `scripts/stack.py run` started (its env file is in this process's environment).
Between the functions and moto sits a counting proxy: every AWS call is counted by its
`X-Amz-Target` header (or the `Action` of a query-protocol request), per invoke.

Measured per function, all in one run so every figure has its ratio to the empty function:
- init: from spawning the process to its first `GET /runtime/invocation/next` (the median of
  `--cold-starts` spawns, taken in turns across the functions so load drift hits all alike);
- first invoke: the first event handed out to the first `/response` (median of those spawns),
  and init + first invoke, so work moved from init into the first request does not hide;
- warm invoke p50 / p99 over `--invokes` events of the last spawn;
- peak RSS: `VmHWM` of /proc/<pid>/status after the last invoke;
- AWS calls during init and per warm invoke, by operation, and for webhook-intake per duplicate
  delivery too (`--duplicates` redeliveries of webhooks it already recorded, after its warm invokes);
- the zip of each binary, and the size and capacity units of every kind of item the run left in
  the table (benches/bench_bytes.py).

`--cpu-quota 7.2` runs every function in a cgroup with that CPU share (the share of a 128 MB
function): cgroup v2 `cpu.max` or cgroup v1 `cpu.cfs_quota_us`, whichever this machine has; when
neither can be written the table says so and the run goes on unthrottled.

Events are the real shapes: API Gateway v2 events built by scripts/local_gateway.py for the
template's routes, SQS records as the local event source mapping builds them, a scheduled event.
Only 127.0.0.1 is contacted.

Usage (make bench runs it under `stack.py run`):
  .venv/bin/python benches/lambda_bench.py --bin-dir TARGET/release [--invokes 100]
      [--cold-starts 5] [--cpu-quota 7.2] [--only charges,empty-lambda]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench_bytes  # noqa: E402 - zip and item sizes
import local_gateway  # noqa: E402 - the API Gateway v2 event builder and the SQS record shape
import stack  # noqa: E402 - template names, account and region

HOST = "127.0.0.1"
EMPTY = "empty-lambda"
# The order of a run: the reconciler first, while little is in flight (its run's cost grows with
# what is: the outbox sweep looks at every pending notification); charges makes the charges that
# refunds refunds and the webhooks concern; intake records the events the worker applies.
FUNCTIONS = [EMPTY, "reconciler", "charges", "refunds", "webhook-intake", "retry-worker"]
# A reconciler run pages through everything in flight: a few runs say what one costs.
MAX_WARM = {"reconciler": 10}
INIT_TIMEOUT_SECS = 60.0
INVOKE_TIMEOUT_SECS = 60.0


# --------------------------------------------------------------------------- the counting proxy


def aws_operation(headers: Any, path: str, body: bytes) -> str:
    """`service.Operation` of one AWS request: X-Amz-Target, else the query protocol's Action."""
    target = headers.get("X-Amz-Target")
    if target:
        prefix, _, op = target.partition(".")
        service = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs", "secretsmanager": "secretsmanager", "AWSEvents": "events"}
        return f"{service.get(prefix, prefix)}.{op}"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    if "Action" not in query and body and "x-www-form-urlencoded" in (headers.get("Content-Type") or ""):
        query = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    action = (query.get("Action") or ["?"])[0]
    return f"query.{action}"


class CallCounter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[str] = []

    def add(self, op: str) -> None:
        with self.lock:
            self.calls.append(op)

    def take(self) -> list[str]:
        with self.lock:
            calls, self.calls = self.calls, []
            return calls


def start_proxy(upstream: str, counter: CallCounter) -> ThreadingHTTPServer:
    target = urllib.parse.urlsplit(upstream)

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle and delayed ACKs add 40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            counter.add(aws_operation(self.headers, self.path, body))
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

    server = Server((HOST, 0), Proxy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_sink() -> ThreadingHTTPServer:
    """Billing's endpoint for the worker's deliveries: 200 to everything."""

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle and delayed ACKs add 40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = Server((HOST, 0), Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --------------------------------------------------------------------------- the Runtime API emulator


@dataclass
class Invocation:
    event: bytes
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    handed_out: float = 0.0
    answered: float = 0.0
    status: str = ""
    response: bytes = b""
    done: threading.Event = field(default_factory=threading.Event)


class Runtime:
    """One function process's Runtime API: events in order, one at a time."""

    def __init__(self) -> None:
        self.first_next: float = 0.0
        self.first_next_seen = threading.Event()
        self.init_error: bytes = b""
        self.lock = threading.Condition()
        self.pending: list[Invocation] = []
        self.by_id: dict[str, Invocation] = {}
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if not self.path.endswith("/runtime/invocation/next"):
                    return self.answer(404)
                now = time.perf_counter()
                if not runtime.first_next:
                    runtime.first_next = now
                    runtime.first_next_seen.set()
                with runtime.lock:
                    while not runtime.pending:
                        runtime.lock.wait()
                    inv = runtime.pending.pop(0)
                inv.handed_out = time.perf_counter()
                deadline = int(time.time() * 1000) + 900_000
                self.answer(
                    200,
                    inv.event,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:{stack.REGION}:{stack.ACCOUNT_ID}:function:bench",
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                    },
                )

            def do_POST(self) -> None:
                now = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.split("/")
                if self.path.endswith("/runtime/init/error"):
                    runtime.init_error = body or b"init error"
                    runtime.first_next_seen.set()
                    return self.answer(202)
                if len(parts) >= 6 and parts[3] == "invocation":
                    inv = runtime.by_id.get(parts[4])
                    if inv is None:
                        return self.answer(404)
                    inv.answered, inv.status, inv.response = now, parts[5], body
                    inv.done.set()
                    return self.answer(202)
                return self.answer(404)

        self.server = Server((HOST, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.server.server_address[1]}"

    def invoke(self, event: dict[str, Any]) -> Invocation:
        inv = Invocation(json.dumps(event).encode())
        self.by_id[inv.request_id] = inv
        with self.lock:
            self.pending.append(inv)
            self.lock.notify_all()
        if not inv.done.wait(INVOKE_TIMEOUT_SECS):
            raise BenchError(f"no answer to an invocation within {INVOKE_TIMEOUT_SECS:.0f} s")
        return inv

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BenchError(Exception):
    pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A function killed at the end of its run drops its connections: not worth a traceback.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


# --------------------------------------------------------------------------- CPU quota


class CpuQuota:
    """A cgroup with `percent` of one CPU, which spawned functions join before they exec."""

    def __init__(self, percent: float) -> None:
        self.percent = percent
        self.procs: Path | None = None
        self.dir: Path | None = None
        self.why_not = ""
        period = 100_000
        quota = int(period * percent / 100)
        name = f"paybridge-bench-{os.getpid()}"
        attempts = [
            (Path("/sys/fs/cgroup") / name, "cpu.max", f"{quota} {period}"),
            (Path("/sys/fs/cgroup/unified") / name, "cpu.max", f"{quota} {period}"),
            (Path("/sys/fs/cgroup/cpu") / name, "cpu.cfs_quota_us", str(quota)),
        ]
        errors = []
        for directory, knob, value in attempts:
            try:
                directory.mkdir()
            except OSError as exc:
                errors.append(f"{directory}: {exc.strerror}")
                continue
            # A directory without the knob is no cgroup with a CPU controller (a tmpfs, or v2
            # without the cpu controller): writing there would only make a file.
            if not (directory / knob).exists() or not (directory / "cgroup.procs").exists():
                errors.append(f"{directory}: no {knob}")
                directory.rmdir()
                continue
            try:
                if knob == "cpu.cfs_quota_us":
                    (directory / "cpu.cfs_period_us").write_text(str(period))
                (directory / knob).write_text(value)
                self.dir, self.procs = directory, directory / "cgroup.procs"
                self.kind = f"{knob}={value}"
                return
            except OSError as exc:
                errors.append(f"{directory / knob}: {exc.strerror}")
                directory.rmdir()
        self.why_not = "; ".join(errors)

    def preexec(self) -> Callable[[], None] | None:
        procs = self.procs
        if procs is None:
            return None
        return lambda: procs.write_text(str(os.getpid()))

    def throttled(self) -> str:
        """What the cgroup's cpu.stat says about throttling (the proof the quota bit)."""
        try:
            stat = dict(line.split() for line in (self.dir / "cpu.stat").read_text().splitlines() if line.strip())  # type: ignore[operator]
        except (OSError, TypeError, ValueError):
            return "cpu.stat unreadable"
        return f"throttled {stat.get('nr_throttled', '?')} of {stat.get('nr_periods', '?')} periods"

    def close(self) -> None:
        if self.dir is not None:
            try:
                self.dir.rmdir()
            except OSError:
                pass


# --------------------------------------------------------------------------- events


class Events:
    """The events of each function; what one function's run made feeds the next one's events."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        template = local_gateway.read_template(ROOT / "template.yaml")
        self.routes = template.routes
        queue = env["PAYBRIDGE_WORK_QUEUE_URL"].rstrip("/").rsplit("/", 1)[-1]
        self.queue_arn = f"arn:aws:sqs:{stack.REGION}:{stack.ACCOUNT_ID}:{queue}"
        secrets = json.loads((ROOT / "local" / "secrets.json").read_text(encoding="utf-8"))
        self.stripe_secret = secrets["stripe"]["webhook_secrets"][0]
        self.charges: list[tuple[str, str]] = []  # (charge id, gateway ref) made by the charges run
        self.events: list[str] = []  # Stripe event ids recorded by the intake run
        self.webhooks: list[dict[str, Any]] = []  # the intake events sent, to deliver again
        self.n = 0

    def http(self, method: str, target: str, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        found = local_gateway.find_route(self.routes, method, target.partition("?")[0])
        if found is None:
            route, params = local_gateway.Route("ANY", "$default", EMPTY, "Empty", False), {}
        else:
            route, params = found
        pairs = [("host", f"{HOST}:3000"), ("user-agent", "paybridge-bench"), *(headers or [])]
        now = time.time()
        return local_gateway.build_event(
            route, params, method, target, pairs, body, HOST, 3000, local_gateway.request_id(), now
        )

    def next(self, function: str) -> dict[str, Any]:
        self.n += 1
        n, tag = self.n, uuid.uuid4().hex[:12]
        json_type = [("content-type", "application/json")]
        if function == EMPTY:
            return self.http("GET", "/")
        if function == "charges":
            body = {
                "invoice_id": f"inv_bench_{tag}",
                "amount": 1999,
                "currency": "eur",
                "gateway": "stripe",
                "payment_method": "pm_card_visa",
                "capture": True,
                "description": "bench",
            }
            return self.http("POST", "/charges", json.dumps(body).encode(), [*json_type, ("idempotency-key", f"bench-{tag}")])
        if function == "refunds":
            if not self.charges:
                return self.http("GET", f"/refunds/rf_{'0' * 26}")
            charge_id, _ = self.charges[n % len(self.charges)]
            body = {"amount": 1, "reason": "requested_by_customer"}
            return self.http("POST", f"/charges/{charge_id}/refunds", json.dumps(body).encode(), [*json_type, ("idempotency-key", f"bench-{tag}")])
        if function == "webhook-intake":
            pi = self.charges[n % len(self.charges)][1] if self.charges else f"pi_bench_{tag}"
            event_id = f"evt_bench_{tag}"
            created = int(time.time())
            body = json.dumps(
                {
                    "id": event_id,
                    "object": "event",
                    "api_version": "2026-07-29.dahlia",
                    "created": created,
                    "type": "payment_intent.succeeded",
                    "livemode": False,
                    "data": {"object": {"id": pi, "object": "payment_intent", "amount": 1999, "amount_received": 1999, "currency": "eur", "status": "succeeded"}},
                }
            ).encode()
            mac = _hmac(self.stripe_secret.encode(), f"{created}.".encode() + body)
            self.events.append(event_id)
            webhook = self.http("POST", "/webhooks/stripe", body, [*json_type, ("stripe-signature", f"t={created},v1={mac}")])
            self.webhooks.append(webhook)
            return webhook
        if function == "retry-worker":
            event_id = self.events[n % len(self.events)] if self.events else f"evt_bench_{tag}"
            message = {
                "MessageId": str(uuid.uuid4()),
                "ReceiptHandle": f"bench-{tag}",
                "Body": json.dumps({"kind": "apply_event", "v": 2, "gateway": "stripe", "event_id": event_id}),
                "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
            }
            return {"Records": [local_gateway.sqs_record(message, self.queue_arn, stack.REGION)]}
        if function == "reconciler":
            return {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": stack.ACCOUNT_ID,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "region": stack.REGION,
                "resources": [],
                "detail": {},
            }
        raise BenchError(f"no events for {function}")

    def duplicate(self) -> dict[str, Any]:
        """A webhook intake recorded before, delivered again as Stripe does (same body and
        signature), under a new API Gateway request id."""
        self.n += 1
        event = json.loads(json.dumps(self.webhooks[self.n % len(self.webhooks)]))
        event["requestContext"]["requestId"] = local_gateway.request_id()
        return event

    def answered(self, function: str, inv: Invocation) -> None:
        """Keeps what later functions' events need (the charges made)."""
        if function != "charges" or inv.status != "response":
            return
        try:
            body = json.loads(json.loads(inv.response).get("body") or "{}")
        except (ValueError, AttributeError):
            return
        if body.get("status") == "succeeded" and body.get("gateway_ref"):
            self.charges.append((body["id"], body["gateway_ref"]))


def _hmac(key: bytes, msg: bytes) -> str:
    import hashlib
    import hmac

    return hmac.new(key, msg, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- one function


@dataclass
class ColdStart:
    init_ms: float
    first_ms: float
    init_calls: list[str]
    first_calls: list[str]
    phases_us: dict[str, int] = field(default_factory=dict)


def init_phases(log: bytes) -> dict[str, int]:
    """The phases of the `init phases` line a function logs (paybridge::init_phases), in µs."""
    for line in log.splitlines():
        if b"init phases" not in line:
            continue
        try:
            text = json.loads(line).get("phases", "")
        except ValueError:
            continue
        return {name: int(us) for name, _, us in (p.partition("=") for p in text.split())}
    return {}


@dataclass
class Result:
    function: str
    cold: list[ColdStart] = field(default_factory=list)
    warm_ms: list[float] = field(default_factory=list)
    warm_calls: list[list[str]] = field(default_factory=list)
    rss_kb: int = 0
    errors: list[str] = field(default_factory=list)
    duplicate_calls: list[list[str]] = field(default_factory=list)
    zip_bytes: int = 0


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def lambda_env(base: dict[str, str], function: str, runtime: Runtime, proxy: str, sink: str) -> dict[str, str]:
    """What Lambda gives a provided.al2023 function, with the stack's settings and the proxy as endpoint."""
    # Only the stack's env file and what Lambda sets: nothing of this shell (AWS_CA_BUNDLE, HOME).
    env = dict(base)
    env.update(
        {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "AWS_ENDPOINT_URL": proxy,
            "AWS_SESSION_TOKEN": "test",
            "AWS_LAMBDA_RUNTIME_API": runtime.address,
            "AWS_LAMBDA_FUNCTION_NAME": function,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "LAMBDA_TASK_ROOT": "/var/task",
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "PAYBRIDGE_BILLING_URL": f"{sink}/paybridge",
            # Lambda's default level (INFO), and the init phases' line (paybridge::init_phases).
            "RUST_LOG": "info,paybridge::init_phases=debug",
        }
    )
    env.pop("AWS_PROFILE", None)
    return env


def cold_start(
    function: str, binary: Path, env: dict[str, str], events: Events, counter: CallCounter, quota: CpuQuota | None,
    result: Result, proxy: str, sink: str, log_dir: Path, warm_invokes: int, duplicates: int = 0,
) -> None:
    runtime = Runtime()
    log_path = log_dir / f"{function}.log"
    process = None
    try:
        counter.take()
        offset = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            started = time.perf_counter()
            process = subprocess.Popen(
                [str(binary)], env=lambda_env(env, function, runtime, proxy, sink), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=quota.preexec() if quota else None, cwd="/",
            )
            deadline = started + INIT_TIMEOUT_SECS
            while not runtime.first_next_seen.wait(0.02):
                if process.poll() is not None or time.perf_counter() > deadline:
                    break
            if not runtime.first_next or runtime.init_error:
                why = runtime.init_error[:300] or f"exit status {process.poll()}"
                raise BenchError(f"{function} did not finish init: {why!r} (log: {log_path})")
            init_ms = (runtime.first_next - started) * 1000
            init_calls = counter.take()
            inv = runtime.invoke(events.next(function))
            if inv.status != "response":
                result.errors.append(f"first invoke: {inv.status} {inv.response[:200]!r}")
            events.answered(function, inv)
            with log_path.open("rb") as log:
                log.seek(offset)
                phases = init_phases(log.read())
            result.cold.append(ColdStart(init_ms, (inv.answered - inv.handed_out) * 1000, init_calls, counter.take(), phases))
            for _ in range(warm_invokes):
                inv = runtime.invoke(events.next(function))
                result.warm_ms.append((inv.answered - inv.handed_out) * 1000)
                result.warm_calls.append(counter.take())
                events.answered(function, inv)
                if inv.status != "response" and len(result.errors) < 3:
                    result.errors.append(f"warm invoke: {inv.status} {inv.response[:200]!r}")
            for _ in range(duplicates if function == "webhook-intake" and events.webhooks else 0):
                inv = runtime.invoke(events.duplicate())
                result.duplicate_calls.append(counter.take())
                if inv.status != "response" and len(result.errors) < 3:
                    result.errors.append(f"duplicate invoke: {inv.status} {inv.response[:200]!r}")
            if warm_invokes:
                result.rss_kb = peak_rss_kb(process.pid)
    finally:
        if process is not None:
            process.kill()
            process.wait()
        runtime.close()


# --------------------------------------------------------------------------- the report


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def calls_summary(per_invoke: list[list[str]]) -> tuple[float, str]:
    if not per_invoke:
        return 0.0, ""
    mean = sum(len(c) for c in per_invoke) / len(per_invoke)
    ops: dict[str, int] = {}
    for calls in per_invoke:
        for op in calls:
            ops[op] = ops.get(op, 0) + 1
    detail = ", ".join(f"{op.split('.', 1)[1]} {n / len(per_invoke):g}" for op, n in sorted(ops.items()))
    return mean, detail


def table(results: list[Result], quota_note: str) -> str:
    empty = next((r for r in results if r.function == EMPTY), None)
    base_init = statistics.median(c.init_ms for c in empty.cold) if empty and empty.cold else float("nan")
    base_sum = statistics.median(c.init_ms + c.first_ms for c in empty.cold) if empty and empty.cold else float("nan")
    base_rss = empty.rss_kb if empty else 0
    lines = [
        f"CPU: {quota_note}",
        "",
        "| function | init ms | init ratio | first invoke ms | init + first ms (ratio) | warm p50 ms | warm p99 ms | peak RSS MB (ratio) | zip MB | AWS calls at init | AWS calls per warm invoke |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if not r.cold:
            lines.append(f"| {r.function} | failed: {'; '.join(r.errors)[:200]} |")
            continue
        init = statistics.median(c.init_ms for c in r.cold)
        first = statistics.median(c.first_ms for c in r.cold)
        total = statistics.median(c.init_ms + c.first_ms for c in r.cold)
        init_calls = statistics.median(len(c.init_calls) for c in r.cold)
        init_ops = ", ".join(sorted({op.split(".", 1)[1] for c in r.cold for op in c.init_calls}))
        mean, detail = calls_summary(r.warm_calls)
        rss = r.rss_kb / 1024
        lines.append(
            f"| {r.function} | {init:.1f} | {init / base_init:.2f}× | {first:.1f} | {total:.1f} ({total / base_sum:.2f}×) "
            f"| {pct(r.warm_ms, 50):.1f} | {pct(r.warm_ms, 99):.1f} | {rss:.1f} ({r.rss_kb / base_rss if base_rss else float('nan'):.2f}×) "
            f"| {r.zip_bytes / 1e6:.2f} | {init_calls:g}{f' ({init_ops})' if init_ops else ''} | {mean:g}{f' ({detail})' if detail else ''} |"
        )
    for r in results:
        if r.duplicate_calls:
            mean, detail = calls_summary(r.duplicate_calls)
            lines += ["", f"{r.function}, AWS calls per duplicate delivery ({len(r.duplicate_calls)} redeliveries): {mean:g} ({detail})"]
    breakdown = [r for r in results if any(c.phases_us for c in r.cold)]
    if breakdown:
        lines += ["", "Init phases (median µs of the cold starts; `main` is the time from spawn to main, from the init above):", ""]
        for r in breakdown:
            names = list(dict.fromkeys(n for c in r.cold for n in c.phases_us))
            medians = {n: statistics.median(c.phases_us.get(n, 0) for c in r.cold) for n in names}
            spawn_to_main = statistics.median(c.init_ms for c in r.cold) * 1000 - sum(medians.values())
            parts = [f"spawn→main ≈{spawn_to_main:.0f}"] + [f"{n} {medians[n]:.0f}" for n in names if n != "main"]
            lines.append(f"- {r.function}: " + ", ".join(parts))
    for r in results:
        for e in r.errors:
            lines.append(f"\n{r.function}: {e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", type=Path, required=True, help="the release binaries (TARGET/release)")
    parser.add_argument("--invokes", type=int, default=50, help="warm invokes per function (default %(default)s)")
    parser.add_argument("--cold-starts", type=int, default=5, help="spawns per function (default %(default)s)")
    parser.add_argument("--cpu-quota", type=float, default=0.0, help="percent of one CPU for the functions (0: none)")
    parser.add_argument("--only", default="", help="comma-separated functions (default: all, and always empty-lambda)")
    parser.add_argument("--probe", type=Path, default=None, help="also run this init probe (tools/init-probe), both ways, through the proxy")
    parser.add_argument("--duplicates", type=int, default=20, help="redeliveries of recorded webhooks to intake (default %(default)s)")
    parser.add_argument("--log-dir", type=Path, default=None, help="the functions' output (default: $PAYBRIDGE_STACK_DIR)")
    args = parser.parse_args(argv)

    stack_dir = os.environ.get("PAYBRIDGE_STACK_DIR")
    if not stack_dir or not (Path(stack_dir) / "env").exists():
        print("no stack: run this under scripts/stack.py run (make bench-lambdas does)", file=sys.stderr)
        return 2
    env = stack.read_env(Path(stack_dir) / "env")
    functions = FUNCTIONS
    if args.only:
        wanted = set(args.only.split(",")) | {EMPTY}
        functions = [f for f in FUNCTIONS if f in wanted]
    binaries = {f: args.bin_dir / f for f in functions}
    missing = [str(p) for p in binaries.values() if not p.exists()]
    if missing:
        print(f"missing binaries (cargo build --release first): {', '.join(missing)}", file=sys.stderr)
        return 2
    log_dir = args.log_dir or Path(stack_dir)
    log_dir.mkdir(parents=True, exist_ok=True)

    counter = CallCounter()
    proxy = start_proxy(env["AWS_ENDPOINT_URL"], counter)
    proxy_url = f"http://{HOST}:{proxy.server_address[1]}"
    sink = start_sink()
    sink_url = f"http://{HOST}:{sink.server_address[1]}"
    quota = CpuQuota(args.cpu_quota) if args.cpu_quota else None
    if quota is None:
        quota_note = "unthrottled"
    elif quota.procs is None:
        quota_note = f"unthrottled: a {args.cpu_quota}% quota could not be set ({quota.why_not})"
        quota = None
    else:
        quota_note = f"{args.cpu_quota}% of one CPU ({quota.kind})"
    print(f"# functions: {', '.join(functions)}; {args.cold_starts} cold starts each, {args.invokes} warm invokes; {quota_note}", flush=True)

    events = Events(env)
    results = {f: Result(f, zip_bytes=bench_bytes.zip_bytes(binaries[f])) for f in functions}
    try:
        # Cold starts in turns across the functions; the last round also runs the warm invokes.
        for round_ in range(args.cold_starts):
            last = round_ == args.cold_starts - 1
            for f in functions:
                if results[f].errors and not results[f].cold:
                    continue
                try:
                    cold_start(f, binaries[f], env, events, counter, quota, results[f], proxy_url, sink_url, log_dir, min(args.invokes, MAX_WARM.get(f, args.invokes)) if last else 0, args.duplicates if last else 0)
                except BenchError as exc:
                    results[f].errors.append(str(exc))
            print(f"# round {round_ + 1}/{args.cold_starts} done", flush=True)
        for mode in ("default", "paybridge") if args.probe else ():
            runtime = Runtime()
            probe_env = lambda_env(env, "init-probe", runtime, proxy_url, sink_url)
            counter.take()
            done = subprocess.run(
                [str(args.probe), mode], env=probe_env, capture_output=True, text=True, check=False,
                preexec_fn=quota.preexec() if quota else None,
            )
            runtime.close()
            print(f"\n# init probe, {mode} (each step once, in a fresh process):")
            print(done.stdout + done.stderr[-2000:])
            print(f"# AWS calls of the probe: {', '.join(counter.take())}")
    finally:
        if quota is not None:
            quota_note += f"; {quota.throttled()}"
            quota.close()
        proxy.shutdown()
        sink.shutdown()
    print()
    print(table([results[f] for f in functions], quota_note))
    try:
        items = bench_bytes.scan_items(env)
        print(f"\nItems the run left in the table ({len(items)}; sizes by DynamoDB's rules, benches/bench_bytes.py):\n")
        print(bench_bytes.item_table(items))
    except Exception as exc:  # the figures above stand without it
        print(f"\nitem sizes: cannot scan the table: {exc}")
    return 1 if any(r.errors for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
