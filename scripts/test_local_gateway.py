#!/usr/bin/env python3
"""Tests of scripts/local_gateway.py: what an invocation that is never answered does, and the
SigV4 check of the billing routes (`--iam`, `make dev LOCAL_IAM=1`).

`cargo lambda watch` restarts a function when the workspace is rebuilt and never answers the
invocation in flight. The gateway must then give up at the function's `Timeout` (template.yaml),
as Lambda ends a function, instead of waiting on the socket for a quarter of an hour:

- the SQS event source mapping leaves the batch alone (not deleted, visibility not changed), so
  SQS hands it out again after the queue's visibility timeout, and logs one warning line;
- an HTTP route answers as API Gateway would: 500 when Lambda ended the function (Timeout under
  the 30 s integration timeout), 504 when the integration timeout came first.

Against a stub of cargo lambda watch's Invoke API that accepts every connection and answers or
never answers, as each test says, and a real SQS: the moto server of `make test`'s stack
(AWS_ENDPOINT_URL), or one started here when run alone:

    .venv/bin/python -m unittest discover -s scripts -p 'test_*.py' -v

Timeouts are shortened (a template with `Timeout: 1` and a queue with `VisibilityTimeout: 3`), so
the whole file takes about ten seconds. `make test` runs it through scripts/run_script_tests.py.

IAM: the gateway serves the real template.yaml (with `--no-sqs`) against the same stub, once with
`--iam` and once without. Every `AWS_IAM` route of the template gets its own test that an unsigned
call is refused with 403 and never reaches the function (generated from the template, so a new
billing route is covered without a change here; BILLING_ROUTES lists what is expected, so the
count is checked too). Signed calls are made with botocore's SigV4Auth, as boto3 clients make them,
and, where the system curl has `--aws-sigv4`, with curl as the README shows.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import local_gateway  # noqa: E402
import sigv4  # noqa: E402
import stack  # noqa: E402

HOST = "127.0.0.1"
FUNCTION = "stub-fn"
FUNCTION_TIMEOUT = 1  # seconds: the template's Timeout of the stub function
VISIBILITY_TIMEOUT = 3  # seconds: the test queue's VisibilityTimeout


# --------------------------------------------------------------------------- a stub of cargo lambda watch


@dataclass
class Call:
    arrived: float
    event: Any
    mode: str
    gave_up: float | None = None  # when the caller closed the connection of an unanswered call


class StubLambda(ThreadingHTTPServer):
    """`POST /2015-03-31/functions/<f>/invocations`: answers, or holds the connection and never answers."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((HOST, 0), StubHandler)
        self.lock = threading.Condition()
        self.calls: list[Call] = []
        self.plan: list[str] = []  # modes of the next calls ("hang" / "answer"); then "answer"
        self.http_answer: dict[str, Any] = {"statusCode": 200, "body": "ok"}  # the function's answer to an HTTP event
        self.released = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def hang_next(self, count: int = 1) -> None:
        with self.lock:
            self.plan += ["hang"] * count

    def wait_for(self, predicate: Any, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        with self.lock:
            while not predicate(self.calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True

    def stop(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubLambda

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        stub = self.server
        with stub.lock:
            mode = stub.plan.pop(0) if stub.plan else "answer"
            call = Call(time.monotonic(), json.loads(body or b"null"), mode)
            stub.calls.append(call)
            stub.lock.notify_all()
        if mode == "hang":
            # Accepted, never answered (a function restarted mid-invocation): wait until the
            # caller gives up and closes the connection, or the test ends.
            self.close_connection = True
            while not stub.released.is_set():
                readable, _, _ = select.select([self.connection], [], [], 0.05)
                if readable and not self.connection.recv(1):
                    with stub.lock:
                        call.gave_up = time.monotonic()
                        stub.lock.notify_all()
                    return
            return
        event = call.event if isinstance(call.event, dict) else {}
        answer = {"batchItemFailures": []} if "Records" in event else stub.http_answer
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def moto_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):  # noqa: S310 - loopback
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def http_get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  StubFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: {function}
    Properties:
      Timeout: {timeout}
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt {queue}.Arn
            BatchSize: 10
            MaximumBatchingWindowInSeconds: 0
            FunctionResponseTypes: [ReportBatchItemFailures]
        Get:
          Type: HttpApi
          Properties:
            Path: /stub
            Method: GET
  {queue}:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: {visibility}
"""


# --------------------------------------------------------------------------- the gateway as `make dev` runs it


class UnansweredInvocationTest(unittest.TestCase):
    """The gateway process (its SQS event source mapping and HTTP routes) against a stub that never answers."""

    moto_server: Any = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = Path(tempfile.mkdtemp(prefix="paybridge-gateway-test-"))
        moto_url = os.environ.get("AWS_ENDPOINT_URL", "")
        if not (moto_url and moto_answers(moto_url)):
            import logging

            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
            port = free_port()
            cls.moto_server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
            cls.moto_server.start()
            moto_url = f"http://{HOST}:{port}"
        cls.sqs = stack.aws_client("sqs", moto_url)
        cls.queue_id = f"GatewayTestQueue{uuid.uuid4().hex[:12]}"
        cls.queue_url = cls.sqs.create_queue(
            QueueName=stack.local_name(cls.queue_id), Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT)}
        )["QueueUrl"]

        template = cls.tmp / "template.yaml"
        template.write_text(
            TEMPLATE.format(function=FUNCTION, timeout=FUNCTION_TIMEOUT, queue=cls.queue_id, visibility=VISIBILITY_TIMEOUT),
            encoding="utf-8",
        )
        env = cls.tmp / "env"
        stack.write_env(
            env,
            {
                "AWS_ENDPOINT_URL": moto_url,
                "AWS_REGION": stack.REGION,
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
            },
        )
        cls.stub = StubLambda()
        cls.log_file = cls.tmp / "gateway.log"
        ready = cls.tmp / "gateway.url"
        cls.gateway = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                sys.executable, "-u", str(SCRIPTS / "local_gateway.py"),
                "--port", "0",
                "--lambda-url", cls.stub.url,
                "--template", str(template),
                "--env-file", str(env),
                "--sqs-wait", "1",
                "--ready-file", str(ready),
                "--log-file", str(cls.log_file),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not (ready.exists() and ready.read_text().strip()):
            if cls.gateway.poll() is not None or time.monotonic() > deadline:
                log = cls.log_file.read_text() if cls.log_file.exists() else "(no log)"
                cls.tearDownClass()
                raise RuntimeError(f"the gateway did not start (exit {cls.gateway.returncode}):\n{log}")
            time.sleep(0.1)
        cls.gateway_url = ready.read_text().strip()
        # The function answers once (its first call may take the first-call allowance); from
        # then on only its Timeout applies.
        status, body = http_get(f"{cls.gateway_url}/stub", timeout=10)
        if status != 200:
            cls.tearDownClass()
            raise RuntimeError(f"the first call through the gateway answered {status} {body!r}")

    @classmethod
    def tearDownClass(cls) -> None:
        gateway = getattr(cls, "gateway", None)
        if gateway is not None and gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGTERM)
            try:
                gateway.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(gateway.pid, signal.SIGKILL)
                gateway.wait()
        if getattr(cls, "stub", None) is not None:
            cls.stub.stop()
        if getattr(cls, "queue_url", None):
            try:
                cls.sqs.delete_queue(QueueUrl=cls.queue_url)
            except Exception:  # noqa: BLE001 - moto may be gone already
                pass
        if cls.moto_server is not None:
            cls.moto_server.stop()
        for path in sorted(cls.tmp.glob("*")):
            path.unlink()
        cls.tmp.rmdir()

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8") if self.log_file.exists() else ""

    def test_sqs_batch_is_given_up_at_the_timeout_and_comes_back_after_the_visibility_timeout(self) -> None:
        self.stub.hang_next()
        message_id = self.sqs.send_message(QueueUrl=self.queue_url, MessageBody='{"kind":"test"}')["MessageId"]

        def deliveries(calls: list[Call]) -> list[Call]:
            out = []
            for call in calls:
                records = call.event.get("Records", []) if isinstance(call.event, dict) else []
                if any(r.get("messageId") == message_id for r in records):
                    out.append(call)
            return out

        # Today's bug: the first invocation is waited on for 900 s, so it never gives up here.
        gave_up = self.stub.wait_for(lambda calls: any(c.gave_up for c in deliveries(calls)), 10)
        self.assertTrue(gave_up, f"the event source mapping did not give up on the unanswered invocation\n{self.log_text()}")
        first = deliveries(self.stub.calls)[0]
        assert first.gave_up is not None
        waited = first.gave_up - first.arrived
        self.assertGreaterEqual(waited, FUNCTION_TIMEOUT - 0.1)
        # (The margins only absorb a loaded machine: today's code waits 900 s.)
        self.assertLess(waited, FUNCTION_TIMEOUT + 2.0, "gave up, but not at the function's Timeout")

        # Not deleted, visibility untouched: SQS hands it out again after its visibility timeout.
        again = self.stub.wait_for(lambda calls: len(deliveries(calls)) >= 2, VISIBILITY_TIMEOUT + 8)
        self.assertTrue(again, f"the message did not come back\n{self.log_text()}")
        second = deliveries(self.stub.calls)[1]
        self.assertEqual(second.mode, "answer")
        self.assertGreaterEqual(
            second.arrived - first.arrived, VISIBILITY_TIMEOUT - 0.5, "the message came back before its visibility timeout"
        )
        record = next(r for r in second.event["Records"] if r["messageId"] == message_id)
        self.assertEqual(record["attributes"]["ApproximateReceiveCount"], "2")

        # One clear warning line: the function, the timeout, what happens next.
        deadline = time.monotonic() + 5
        while "WARNING" not in self.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        warnings = [line for line in self.log_text().splitlines() if "WARNING" in line]
        self.assertEqual(len(warnings), 1, self.log_text())
        self.assertIn(f"{FUNCTION} did not answer within {FUNCTION_TIMEOUT} s (its Timeout)", warnings[0])
        self.assertIn(f"come back after the visibility timeout ({VISIBILITY_TIMEOUT} s)", warnings[0])

        # Answered the second time: deleted then.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            attrs = self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0":
                break
            time.sleep(0.2)
        else:
            self.fail(f"the message was not deleted after it was processed: {attrs}")

    def test_http_route_answers_500_when_lambda_would_end_the_function(self) -> None:
        self.stub.hang_next()
        started = time.monotonic()
        status, body = http_get(f"{self.gateway_url}/stub", timeout=FUNCTION_TIMEOUT + 5)
        elapsed = time.monotonic() - started
        self.assertEqual((status, json.loads(body)), (500, {"message": "Internal Server Error"}))
        self.assertLess(elapsed, FUNCTION_TIMEOUT + 2.0)
        self.assertGreaterEqual(elapsed, FUNCTION_TIMEOUT - 0.1)


# --------------------------------------------------------------------------- the pieces, in this process


class InvokeLimitsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.stub = StubLambda()
        self.addCleanup(self.stub.stop)
        self.logged: list[str] = []
        patcher = mock.patch.object(local_gateway, "log", side_effect=self.logged.append)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_first_call_allowance_applies_until_the_function_answered_once(self) -> None:
        lam = local_gateway.Lambda(self.stub.url, {"f": 0.5}, first_call_allowance=1.5)
        self.assertEqual(lam.allowance("f"), 1.5)
        self.stub.hang_next()
        started = time.monotonic()
        with self.assertRaises(local_gateway.InvokeTimeout) as caught:
            lam.invoke("f", {})
        self.assertGreaterEqual(time.monotonic() - started, 1.9)  # Timeout + allowance
        self.assertEqual((caught.exception.waited, caught.exception.allowance), (2.0, 1.5))
        self.assertEqual(lam.allowance("f"), 1.5, "a call that was never answered keeps the allowance")

        self.assertEqual(lam.invoke("f", {}), {"statusCode": 200, "body": "ok"})
        self.assertEqual(lam.allowance("f"), 0.0)
        self.stub.hang_next()
        started = time.monotonic()
        with self.assertRaises(local_gateway.InvokeTimeout) as caught:
            lam.invoke("f", {})
        self.assertLess(time.monotonic() - started, 1.5)  # the Timeout alone
        self.assertEqual((caught.exception.waited, caught.exception.allowance), (0.5, 0.0))
        self.assertTrue(any("first call of f" in line and "1.5 s first-call allowance" in line for line in self.logged), self.logged)

    def test_http_route_answers_504_at_the_integration_timeout(self) -> None:
        # A function whose Timeout (60 s) is longer than API Gateway's integration timeout,
        # shortened here to half a second.
        lam = local_gateway.Lambda(self.stub.url, {"slow": 60.0}, first_call_allowance=0)
        route = local_gateway.Route(method="GET", path="/slow", function="slow", logical_id="Slow", iam=False, segments=["slow"])
        with mock.patch.object(local_gateway, "INTEGRATION_TIMEOUT_SECS", 0.5):
            server = local_gateway.Gateway(0, [route], lam)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.addCleanup(server.server_close)
            self.addCleanup(server.shutdown)
            self.stub.hang_next()
            started = time.monotonic()
            status, body = http_get(f"http://{HOST}:{server.server_address[1]}/slow", timeout=5)
        self.assertEqual((status, json.loads(body)), (504, {"message": "Gateway Timeout"}))
        self.assertLess(time.monotonic() - started, 3.0)
        # The request's log line is written just after the answer is sent.
        deadline = time.monotonic() + 3
        while not any("504" in line for line in self.logged) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(any("504" in line and "integration timeout" in line for line in self.logged), self.logged)



# --------------------------------------------------------------------------- IAM: SigV4 on the billing routes

# Every AWS_IAM route of template.yaml. A route added to the template gets its unsigned-call test
# on its own (below); this list makes the change visible here too.
BILLING_ROUTES = [
    "GET /charges",
    "POST /charges",
    "GET /charges/{id}",
    "POST /charges/{id}/capture",
    "POST /charges/{id}/cancel",
    "GET /charges/{id}/disputes",
    "GET /disputes/{id}",
    "POST /charges/{id}/refunds",
    "GET /charges/{id}/refunds",
    "GET /refunds/{id}",
]
TEMPLATE_ROUTES = local_gateway.read_template(stack.DEFAULT_TEMPLATE).routes
IAM_ROUTES = sorted((r for r in TEMPLATE_ROUTES if r.iam), key=lambda r: r.key)
# Not the stack's "test"/"test": proves the gateway checks what the env file says.
ACCESS_KEY = "AKIDPAYBRIDGETEST"
SECRET_KEY = "local/secret+for-the-tests"
FORBIDDEN = b'{"message":"Forbidden"}'
MISMATCH = json.dumps({"message": sigv4.SIGNATURE_MISMATCH}, separators=(",", ":")).encode()
# Every request of these tests carries a unique X-Test-Call header, so a test finds its own
# invocation (or its absence) among the stub's calls.
TAG = "X-Test-Call"


def concrete_path(route: local_gateway.Route, tag: str) -> str:
    """A path the route takes, with a unique value in each {parameter}."""
    parts = []
    for segment in route.segments:
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"{tag}/rest")
        elif segment.startswith("{"):
            parts.append(f"{segment[1:-1]}_{tag}")
        else:
            parts.append(segment)
    return "/" + "/".join(parts)


def slug(route: local_gateway.Route) -> str:
    return re.sub(r"[^a-z0-9]+", "_", route.key.lower()).strip("_")


def new_tag() -> str:
    return uuid.uuid4().hex


def http_call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def signed_headers(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    secret_key: str = SECRET_KEY,
    access_key: str = ACCESS_KEY,
    at: float | None = None,
) -> dict[str, str]:
    """`headers` plus the SigV4 signature botocore (boto3's signer) makes, for execute-api in the stack's region."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    when = datetime.datetime.fromtimestamp(time.time() if at is None else at, tz=datetime.timezone.utc).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(Credentials(access_key, secret_key), "execute-api", stack.REGION).add_auth(request)
    return dict(request.headers.items())


def curl_has_sigv4() -> bool:
    if not shutil.which("curl"):
        return False
    out = subprocess.run(["curl", "--help", "all"], capture_output=True, text=True, check=False)  # noqa: S603, S607
    return "--aws-sigv4" in out.stdout


class GatewayOnTemplate:
    """local_gateway.py serving the real template.yaml (HTTP only) against a stub, as `make dev` starts it."""

    def __init__(self, extra_args: list[str]) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="paybridge-gateway-iam-test-"))
        env = self.tmp / "env"
        stack.write_env(env, {"AWS_REGION": stack.REGION, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
        self.stub = StubLambda()
        self.log_file = self.tmp / "gateway.log"
        ready = self.tmp / "gateway.url"
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                sys.executable, "-u", str(SCRIPTS / "local_gateway.py"),
                "--port", "0",
                "--lambda-url", self.stub.url,
                "--template", str(stack.DEFAULT_TEMPLATE),
                "--env-file", str(env),
                "--no-sqs",
                "--ready-file", str(ready),
                "--log-file", str(self.log_file),
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A developer's shell may hold a real session token; only the env file's credentials count.
            env={**os.environ, "AWS_SESSION_TOKEN": "left-in-the-shell"},
        )
        deadline = time.monotonic() + 30
        while not (ready.exists() and ready.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log_text()
                self.stop()
                raise RuntimeError(f"the gateway did not start (exit {self.process.returncode}):\n{log}")
            time.sleep(0.1)
        self.url = ready.read_text().strip()

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8") if self.log_file.exists() else ""

    def wait_for_log(self, text: str, seconds: float = 3) -> str:
        """The gateway's log once it has `text` (a request's line is written just after its answer)."""
        deadline = time.monotonic() + seconds
        while text not in self.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.log_text()

    def calls_tagged(self, tag: str) -> list[Call]:
        """The invocations of requests that carried `X-Test-Call: tag`."""
        with self.stub.lock:
            return [
                c for c in self.stub.calls
                if isinstance(c.event, dict) and (c.event.get("headers") or {}).get(TAG.lower()) == tag
            ]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.stub.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class IamGatewayTest(unittest.TestCase):
    """`--iam`: the billing routes take only calls signed with the env file's credentials."""

    gateway: GatewayOnTemplate

    @classmethod
    def setUpClass(cls) -> None:
        cls.gateway = GatewayOnTemplate(["--iam"])

    @classmethod
    def tearDownClass(cls) -> None:
        cls.gateway.stop()

    def url(self, path: str) -> str:
        return self.gateway.url + path

    def assert_refused(self, answer: tuple[int, Any, bytes], tag: str, body: bytes = FORBIDDEN) -> None:
        status, headers, text = answer
        self.assertEqual((status, text), (403, body))
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertEqual(self.gateway.calls_tagged(tag), [], "a refused call reached the function")

    def assert_reached(self, answer: tuple[int, Any, bytes], tag: str) -> dict[str, Any]:
        status, _, text = answer
        self.assertEqual((status, text), (200, b"ok"), self.gateway.log_text()[-3000:])
        calls = self.gateway.calls_tagged(tag)
        self.assertEqual(len(calls), 1, calls)
        return calls[0].event

    def check_unsigned_call_is_refused(self, route: local_gateway.Route) -> None:
        tag = new_tag()
        path = concrete_path(route, tag[:12])
        body = b'{"amount":500}' if route.method == "POST" else None
        headers = {TAG: tag}
        if body:
            headers.update({"content-type": "application/json", "Idempotency-Key": f"unsigned-{tag}"})
        self.assert_refused(http_call(route.method, self.url(path), body, headers), tag)
        log = self.gateway.wait_for_log(f"{route.method} {path} -> 403")
        self.assertIn(f"{route.method} {path} -> 403 [{route.key}] AWS_IAM: no Authorization header", log)
        self.assertIn(f"{route.function} not invoked", log)

    def test_the_template_has_the_billing_routes_these_tests_expect(self) -> None:
        self.assertEqual(sorted(r.key for r in IAM_ROUTES), sorted(BILLING_ROUTES))
        self.assertEqual(len(IAM_ROUTES), 10)
        generated = [name for name in dir(self) if name.startswith("test_unsigned_") and name.endswith("_is_refused_with_403")]
        self.assertEqual(len(generated), len(IAM_ROUTES), generated)

    def test_the_gateway_says_at_start_that_it_checks_sigv4(self) -> None:
        self.assertIn(f"IAM: SigV4 checked on the 10 AWS_IAM route(s): signed with access key '{ACCESS_KEY}'", self.gateway.log_text())

    def test_a_signed_get_reaches_the_function_with_the_callers_identity(self) -> None:
        tag, url = new_tag(), self.url(f"/charges/ch_{new_tag()}")
        event = self.assert_reached(http_call("GET", url, headers=signed_headers("GET", url, headers={TAG: tag})), tag)
        self.assertEqual(event["routeKey"], "GET /charges/{id}")
        identity = event["requestContext"]["authorizer"]["iam"]
        self.assertEqual(identity, dict(local_gateway.LOCAL_CALLER, accessKey=ACCESS_KEY))
        self.assertEqual(
            sorted(identity), ["accessKey", "accountId", "callerId", "cognitoIdentity", "principalOrgId", "userArn", "userId"]
        )
        self.assertEqual(identity["accountId"], stack.ACCOUNT_ID)

    def test_a_signed_get_with_a_query_string_reaches_the_function(self) -> None:
        tag, invoice = new_tag(), f"inv_{new_tag()}"
        url = self.url("/charges?" + urllib.parse.urlencode({"invoice_id": invoice}))
        event = self.assert_reached(http_call("GET", url, headers=signed_headers("GET", url, headers={TAG: tag})), tag)
        self.assertEqual((event["routeKey"], event["queryStringParameters"]), ("GET /charges", {"invoice_id": invoice}))

    def test_a_signed_post_with_a_body_reaches_the_function_intact(self) -> None:
        tag = new_tag()
        payload = json.dumps({"invoice_id": f"inv_{tag}", "amount": 1999, "currency": "eur", "gateway": "stripe"}).encode()
        url = self.url("/charges")
        headers = signed_headers("POST", url, payload, {"content-type": "application/json", "Idempotency-Key": f"k-{tag}", TAG: tag})
        event = self.assert_reached(http_call("POST", url, payload, headers), tag)
        self.assertEqual(event["routeKey"], "POST /charges")
        self.assertEqual((event["body"], event["isBase64Encoded"]), (payload.decode(), False))
        self.assertEqual(event["headers"]["idempotency-key"], f"k-{tag}")
        self.assertEqual(event["requestContext"]["authorizer"]["iam"]["accessKey"], ACCESS_KEY)

    def test_a_call_signed_with_the_wrong_secret_is_refused(self) -> None:
        tag, path = new_tag(), f"/charges/ch_{new_tag()}"
        headers = signed_headers("GET", self.url(path), headers={TAG: tag}, secret_key="not-the-secret")
        answer = http_call("GET", self.url(path), headers=headers)
        self.assert_refused(answer, tag, MISMATCH)
        self.assertEqual(answer[1].get("x-amzn-ErrorType"), "InvalidSignatureException")
        log = self.gateway.wait_for_log(f"GET {path} -> 403")
        self.assertIn(f"GET {path} -> 403 [GET /charges/{{id}}] AWS_IAM: signature does not match", log)

    def test_a_call_signed_with_another_access_key_is_refused(self) -> None:
        tag, url = new_tag(), self.url(f"/refunds/rf_{new_tag()}")
        headers = signed_headers("GET", url, headers={TAG: tag}, access_key="AKIDSOMEONEELSE")
        self.assert_refused(http_call("GET", url, headers=headers), tag, b'{"message":"The security token included in the request is invalid."}')

    def test_a_body_changed_after_signing_is_refused(self) -> None:
        tag, url = new_tag(), self.url(f"/charges/ch_{new_tag()}/refunds")
        headers = signed_headers("POST", url, b'{"amount":500}', {"content-type": "application/json", "Idempotency-Key": f"k-{tag}", TAG: tag})
        self.assert_refused(http_call("POST", url, b'{"amount":50000}', headers), tag, MISMATCH)

    def test_a_stale_x_amz_date_is_refused(self) -> None:
        tag, url = new_tag(), self.url(f"/charges/ch_{new_tag()}")
        headers = signed_headers("GET", url, headers={TAG: tag}, at=time.time() - sigv4.CLOCK_SKEW_SECS - 60)
        status, _, body = http_call("GET", url, headers=headers)
        self.assertEqual(status, 403)
        self.assertTrue(json.loads(body)["message"].startswith(f"Signature expired: {headers['X-Amz-Date']} is now earlier than"), body)
        self.assertEqual(self.gateway.calls_tagged(tag), [])
        # Within the window (AWS's 15 minutes) an older signature still passes.
        fresh_tag = new_tag()
        fresh = signed_headers("GET", url, headers={TAG: fresh_tag}, at=time.time() - sigv4.CLOCK_SKEW_SECS + 60)
        self.assert_reached(http_call("GET", url, headers=fresh), fresh_tag)

    def test_a_signature_for_another_path_is_refused(self) -> None:
        # A refund signed for one charge cannot be replayed on another.
        tag = new_tag()
        signed_for, other = self.url(f"/charges/ch_{new_tag()}/refunds"), self.url(f"/charges/ch_{new_tag()}/refunds")
        headers = signed_headers("POST", signed_for, b"{}", {"content-type": "application/json", "Idempotency-Key": f"k-{tag}", TAG: tag})
        self.assert_refused(http_call("POST", other, b"{}", headers), tag, MISMATCH)

    def test_a_signed_header_changed_after_signing_is_refused(self) -> None:
        tag, url = new_tag(), self.url("/charges")
        headers = signed_headers("POST", url, b"{}", {"content-type": "application/json", "Idempotency-Key": "key-a", TAG: tag})
        headers["Idempotency-Key"] = "key-b"
        self.assert_refused(http_call("POST", url, b"{}", headers), tag, MISMATCH)

    def test_webhook_routes_stay_open(self) -> None:
        for gateway_name in ("stripe", "adyen", "standard"):
            with self.subTest(gateway_name):
                tag = new_tag()
                answer = http_call("POST", self.url(f"/webhooks/{gateway_name}"), b'{"id":"evt_1"}', {"content-type": "application/json", TAG: tag})
                event = self.assert_reached(answer, tag)
                self.assertEqual(event["routeKey"], "POST /webhooks/{gateway}")
                self.assertNotIn("authorizer", event["requestContext"])

    @unittest.skipUnless(curl_has_sigv4(), "the system curl has no --aws-sigv4")
    def test_curl_aws_sigv4_as_the_readme_shows_reaches_the_function(self) -> None:
        tag = new_tag()
        payload = '{"invoice_id":"inv_curl","amount":1999,"currency":"eur","gateway":"stripe","payment_method":"pm_card_visa"}'
        common = ["curl", "-s", f"{self.gateway.url}/charges", "-H", "content-type: application/json", "-H", f"{TAG}: {tag}", "-d", payload]
        signing = ["--aws-sigv4", f"aws:amz:{stack.REGION}:execute-api", "--user", f"{ACCESS_KEY}:{SECRET_KEY}"]
        # Unsigned, curl is refused; signed as the README shows, it reaches the function.
        unsigned = subprocess.run(common, capture_output=True, text=True, check=False, timeout=20)  # noqa: S603
        self.assertEqual(unsigned.stdout, FORBIDDEN.decode())
        self.assertEqual(self.gateway.calls_tagged(tag), [])
        signed = subprocess.run(common + signing, capture_output=True, text=True, check=False, timeout=20)  # noqa: S603
        self.assertEqual(signed.stdout, "ok", self.gateway.log_text()[-2000:])
        calls = self.gateway.calls_tagged(tag)
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0].event["body"], payload)


def _unsigned_call_test(route: local_gateway.Route) -> Any:
    def test(self: IamGatewayTest) -> None:
        self.check_unsigned_call_is_refused(route)

    test.__doc__ = f"An unsigned {route.key} gets 403 Forbidden and {route.function} is not invoked."
    return test


# One test per AWS_IAM route of template.yaml, e.g. test_unsigned_post_charges_id_refunds_is_refused_with_403.
for _route in IAM_ROUTES:
    setattr(IamGatewayTest, f"test_unsigned_{slug(_route)}_is_refused_with_403", _unsigned_call_test(_route))


class IamOffGatewayTest(unittest.TestCase):
    """Without `--iam` (the default make dev, make test, make demo): nothing changes, unsigned calls pass."""

    gateway: GatewayOnTemplate

    @classmethod
    def setUpClass(cls) -> None:
        cls.gateway = GatewayOnTemplate([])

    @classmethod
    def tearDownClass(cls) -> None:
        cls.gateway.stop()

    def test_every_billing_route_takes_an_unsigned_call_with_the_local_identity(self) -> None:
        self.assertEqual(len(IAM_ROUTES), len(BILLING_ROUTES))
        for route in IAM_ROUTES:
            with self.subTest(route.key):
                tag = new_tag()
                body = b"{}" if route.method == "POST" else None
                headers = {TAG: tag, **({"content-type": "application/json"} if body else {})}
                status, _, answer = http_call(route.method, self.gateway.url + concrete_path(route, tag[:12]), body, headers)
                self.assertEqual((status, answer), (200, b"ok"))
                calls = self.gateway.calls_tagged(tag)
                self.assertEqual(len(calls), 1)
                self.assertEqual(calls[0].event["routeKey"], route.key)
                self.assertEqual(calls[0].event["requestContext"]["authorizer"]["iam"], local_gateway.LOCAL_CALLER)

    def test_the_gateway_says_at_start_that_it_does_not_check_sigv4(self) -> None:
        self.assertIn("IAM: not checked - any caller reaches the 10 AWS_IAM route(s)", self.gateway.log_text())


class UnroutedTest(unittest.TestCase):
    """What API Gateway answers when no route takes a request: 404 {"message":"Not Found"}, for any method."""

    gateway: GatewayOnTemplate

    @classmethod
    def setUpClass(cls) -> None:
        cls.gateway = GatewayOnTemplate([])

    @classmethod
    def tearDownClass(cls) -> None:
        cls.gateway.stop()

    def assert_not_found(self, method: str, path: str, body: bytes | None = None) -> None:
        tag = new_tag()
        status, headers, text = http_call(method, self.gateway.url + path, body, {TAG: tag})
        self.assertEqual(status, 404, text)
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertEqual(text, b"" if method == "HEAD" else b'{"message":"Not Found"}')
        self.assertEqual(self.gateway.calls_tagged(tag), [], "an unrouted call reached a function")

    def test_a_method_no_route_of_a_known_path_takes_is_not_found(self) -> None:
        # Standard methods, methods http.server has no handler for (it would answer 501 with an
        # HTML page), and one nobody has heard of.
        for method in ("PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "CONNECT", "PROPFIND", "BREW"):
            for path in ("/charges", "/charges/ch_1/refunds", "/webhooks/stripe"):
                with self.subTest(method=method, path=path):
                    self.assert_not_found(method, path, b"{}" if method in ("PUT", "PATCH") else None)

    def test_an_unknown_path_is_not_found_for_every_method(self) -> None:
        for method in ("GET", "POST", "TRACE", "BREW"):
            for path in ("/", "/nope", "/charges/", "/charges/ch_1/refunds/rf_1", "/webhooks", "/webhooks/stripe/x"):
                with self.subTest(method=method, path=path):
                    self.assert_not_found(method, path, b"{}" if method == "POST" else None)

    def test_a_routed_call_still_reaches_its_function(self) -> None:
        tag = new_tag()
        status, _, text = http_call("GET", self.gateway.url + "/charges/ch_1", None, {TAG: tag})
        self.assertEqual((status, text), (200, b"ok"))
        self.assertEqual(len(self.gateway.calls_tagged(tag)), 1)


class IamStartupTest(unittest.TestCase):
    def test_iam_without_credentials_refuses_to_start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        out = subprocess.run(  # noqa: S603 - fixed argv
            [sys.executable, str(SCRIPTS / "local_gateway.py"), "--iam", "--no-sqs", "--port", "0"],
            env=env, capture_output=True, text=True, check=False, timeout=30,
        )
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("--iam needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", out.stderr)


if __name__ == "__main__":
    unittest.main()
