#!/usr/bin/env python3
"""Tests of scripts/local_gateway.py: what an invocation that is never answered does.

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
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
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
        answer = {"batchItemFailures": []} if "Records" in event else {"statusCode": 200, "body": "ok"}
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


if __name__ == "__main__":
    unittest.main()
