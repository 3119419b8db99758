#!/usr/bin/env python3
"""The local API gateway: template.yaml's HTTP API routes and SQS triggers, in front of `cargo lambda watch`.

    local_gateway.py [--port 3000] [--lambda-url http://127.0.0.1:9000] [--env-file .stack/dev/env]
                     [--register-stripe-webhook http://127.0.0.1:8420] [--iam] [--ready-file F] [--log-file F]
    local_gateway.py --routes        print the routes and event sources read from the template, exit
    local_gateway.py --functions     print the functions they invoke (one per line), exit

HTTP: every `HttpApi` event of every `AWS::Serverless::Function` in template.yaml becomes a route
(`METHOD /path/{param}`); a request is matched the way API Gateway HTTP APIs match routes, turned
into the payload format 2.0 event AWS would send (route key, path parameters, lower-cased headers,
cookies, query parameters, request context, base64 body for non-text content, an IAM identity on
`AWS_IAM` routes) and sent to the cargo lambda runtime emulator
(`POST {lambda-url}/2015-03-31/functions/<Metadata.BuildProperties.Binary>/invocations`). The
function's answer (statusCode, headers, cookies, body, isBase64Encoded) goes back as HTTP. No
route (an unknown path, or a method no route of that path takes, whatever the method): 404
`{"message":"Not Found"}`, as API Gateway answers. No answer within the function's
`Timeout` (500) or API Gateway's 30 s integration timeout (504): given up, as in AWS.

IAM: with `--iam` (`make dev LOCAL_IAM=1`) a call to an `AWS_IAM` route must carry a SigV4
signature made with the env file's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for `execute-api`
in AWS_REGION (scripts/sigv4.py checks it); otherwise it is refused with 403 as API Gateway
refuses it (`{"message":"Forbidden"}` when unsigned) and never reaches the function. Without
`--iam` any caller passes, with a fixed local identity. Routes without auth are never checked.

SQS: every `SQS` event plays Lambda's event source mapping: a thread long-polls the queue (the
template's queue, provisioned by scripts/stack.py), invokes the function with batches of the
configured size as a real SQS event, deletes what succeeded and leaves the messages listed in
`batchItemFailures` (and the whole batch when the invocation fails or does not answer within the
function's `Timeout`) for SQS to hand out again after the visibility timeout.

Until a function has answered once, its invocations may take FIRST_CALL_ALLOWANCE_SECS longer:
under cargo lambda watch the first request builds the function.

Other event types (schedules, ...) are listed at start and not emulated. docs/local-gateway.md has
the details and the differences from AWS. Binds 127.0.0.1 only; SIGINT/SIGTERM stop it cleanly.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import sigv4  # noqa: E402 - scripts/sigv4.py: the SigV4 check of AWS_IAM routes (--iam)
import stack  # noqa: E402 - scripts/stack.py: the template loader, local names, account and region

HOST = "127.0.0.1"
DEFAULT_PORT = 3000
DEFAULT_LAMBDA_URL = "http://127.0.0.1:9000"
API_ID = "local"
# API Gateway refuses larger requests with 413.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# How long an invocation may take is the function's `Timeout` in template.yaml (Lambda ends the
# function then; 3 s, Lambda's default, when the template gives none) and, for an HTTP route, at
# most API Gateway's integration timeout (HTTP APIs: 30 s, then 504).
DEFAULT_FUNCTION_TIMEOUT_SECS = 3.0
INTEGRATION_TIMEOUT_SECS = 30.0
# Under `cargo lambda watch` the first request to a function builds it (`cargo run`): minutes on a
# cold build on 2 cores (about 7 for the SDK crates). Until a function has answered once, an
# invocation may take this much longer than the limits above; once it has answered, they apply
# as they are - so a call lost by a restart of the function (cargo lambda watch restarts it when
# the workspace is rebuilt, and never answers the call in flight) is given up after its Timeout,
# not after a quarter of an hour.
FIRST_CALL_ALLOWANCE_SECS = 900.0
# SQS long polls stay short so that a stop request is honoured within seconds.
MAX_WAIT_SECS = 5
STRIPE_WEBHOOK_ID = "paybridge-local-gateway"

# The local billing system's IAM identity, put into requestContext.authorizer.iam on AWS_IAM routes
# (with --iam, accessKey is the access key the call was verified with).
LOCAL_CALLER = {
    "accessKey": "AKIAPAYBRIDGELOCAL01",
    "accountId": stack.ACCOUNT_ID,
    "callerId": "AIDAPAYBRIDGELOCAL001",
    "cognitoIdentity": None,
    "principalOrgId": None,
    "userArn": f"arn:aws:iam::{stack.ACCOUNT_ID}:user/paybridge-local-billing",
    "userId": "AIDAPAYBRIDGELOCAL001",
}

# Content types API Gateway passes as text; every other body (form posts, octet streams, no
# content type at all) arrives base64-encoded with isBase64Encoded = true.
_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|xml|javascript|ecmascript|x-javascript|graphql)|application/[^;]*\+(json|xml))$"
)

_print_lock = threading.Lock()
_log_file: Any = None  # --log-file: a copy of every line


def log(msg: str) -> None:
    line = f"gateway: {msg}"
    with _print_lock:
        print(line, flush=True)
        if _log_file is not None:
            _log_file.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            _log_file.flush()


# --------------------------------------------------------------------------- the template


@dataclass
class Route:
    method: str  # GET, POST, ... or ANY
    path: str  # /charges/{id}
    function: str  # the cargo-lambda binary
    logical_id: str
    iam: bool
    segments: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """Path parameters if this route takes `method raw_path`, else None."""
        if self.method not in ("ANY", method):
            return None
        if self.path == "$default":
            return {}
        parts = raw_path.split("/")[1:]
        params: dict[str, str] = {}
        for i, segment in enumerate(self.segments):
            if segment.startswith("{") and segment.endswith("+}"):
                rest = parts[i:]
                if not rest or rest == [""]:
                    return None
                params[segment[1:-2]] = urllib.parse.unquote("/".join(rest))
                return params
            if i >= len(parts):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                if parts[i] == "":
                    return None
                params[segment[1:-1]] = urllib.parse.unquote(parts[i])
            elif segment != parts[i]:
                return None
        return params if len(parts) == len(self.segments) else None

    def specificity(self) -> tuple[int, int, int, int]:
        """API Gateway prefers exact paths, then fewer/later variables, greedy last, methods over ANY."""
        greedy = any(s.endswith("+}") for s in self.segments)
        literal = sum(1 for s in self.segments if not s.startswith("{"))
        return (0 if self.path == "$default" else 1, 0 if greedy else 1, literal, 0 if self.method == "ANY" else 1)


@dataclass
class QueueSource:
    function: str
    logical_id: str
    queue_logical_id: str
    batch_size: int
    window_secs: float
    report_failures: bool
    enabled: bool


@dataclass
class Template:
    routes: list[Route]
    queues: list[QueueSource]
    other: list[str]  # events not emulated, described for the log

    def functions(self) -> list[str]:
        names = [r.function for r in self.routes] + [q.function for q in self.queues]
        return list(dict.fromkeys(names))


def _logical_id(value: Any) -> str | None:
    """`WorkQueue` from !GetAtt WorkQueue.Arn or !Ref WorkQueue."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return target[0] if isinstance(target, list) else str(target).split(".")[0]
        if "Ref" in value:
            return str(value["Ref"])
    return None


def read_template(path: Path) -> Template:
    """Routes, SQS sources and the other event sources of every function in the template."""
    template = stack.load_template(path)
    resources = template["Resources"]
    routes: list[Route] = []
    queues: list[QueueSource] = []
    other: list[str] = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != stack.FUNCTION:
            continue
        props = resource.get("Properties") or {}
        binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        events = props.get("Events") or {}
        if not binary:
            if events:
                log(f"{logical_id} has no Metadata.BuildProperties.Binary: its events are not served")
            continue
        for event_name, event in events.items():
            kind = event.get("Type")
            ep = event.get("Properties") or {}
            if kind == "HttpApi":
                api_auth = {}
                api_id = _logical_id(ep.get("ApiId"))
                if api_id and api_id in resources:
                    api_auth = ((resources[api_id].get("Properties") or {}).get("Auth")) or {}
                authorizer = (ep.get("Auth") or {}).get("Authorizer") or api_auth.get("DefaultAuthorizer") or "NONE"
                if "Path" in ep or "Method" in ep:
                    path_, method = str(ep.get("Path", "/")), str(ep.get("Method", "ANY")).upper()
                else:  # an HttpApi event without properties is the $default route
                    path_, method = "$default", "ANY"
                if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                    method = "ANY"
                routes.append(
                    Route(
                        method=method,
                        path=path_,
                        function=binary,
                        logical_id=logical_id,
                        iam=authorizer == "AWS_IAM",
                        segments=[] if path_ == "$default" else path_.split("/")[1:],
                    )
                )
            elif kind == "SQS":
                queue_id = _logical_id(ep.get("Queue"))
                if not queue_id:
                    other.append(f"{logical_id}.{event_name} (SQS on a queue outside the template)")
                    continue
                queues.append(
                    QueueSource(
                        function=binary,
                        logical_id=logical_id,
                        queue_logical_id=queue_id,
                        batch_size=int(ep.get("BatchSize", 10)),
                        window_secs=float(ep.get("MaximumBatchingWindowInSeconds", 0)),
                        report_failures="ReportBatchItemFailures" in (ep.get("FunctionResponseTypes") or []),
                        enabled=stack.flag(ep.get("Enabled", True)),
                    )
                )
            else:
                detail = ep.get("ScheduleExpression") or ep.get("Schedule") or ""
                other.append(f"{logical_id}.{event_name} ({kind}{' ' + str(detail) if detail else ''}) -> {binary}")
    return Template(routes, queues, other)


def caller_identity(access_key: str) -> dict[str, Any]:
    """requestContext.authorizer.iam for a call signed with `access_key`: the local caller, that key."""
    return dict(LOCAL_CALLER, accessKey=access_key)


def find_route(routes: list[Route], method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
    best: tuple[Route, dict[str, str]] | None = None
    for route in routes:
        params = route.match(method, raw_path)
        if params is not None and (best is None or route.specificity() > best[0].specificity()):
            best = (route, params)
    return best


# --------------------------------------------------------------------------- invoking functions


class InvokeError(Exception):
    """The function could not be invoked or failed; `status` is what API Gateway would answer."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class InvokeTimeout(InvokeError):
    """No answer within `waited` seconds; `allowance` of them were the first-call allowance."""

    def __init__(self, message: str, waited: float, allowance: float) -> None:
        super().__init__(message, 504)
        self.waited = waited
        self.allowance = allowance


class StartupError(Exception):
    """Something the gateway needs at start-up is missing; the message says what."""


class Lambda:
    """Invokes functions through the cargo lambda runtime emulator's Invoke API.

    `function_timeouts` are the functions' `Timeout`s (template.yaml); `timeout_override`, if set,
    replaces every one of them. A function's invocations get `first_call_allowance` seconds more
    until it has answered once (the first request under cargo lambda watch builds it).
    """

    def __init__(
        self,
        base_url: str,
        function_timeouts: dict[str, float],
        first_call_allowance: float = FIRST_CALL_ALLOWANCE_SECS,
        timeout_override: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.function_timeouts = function_timeouts
        self.first_call_allowance = max(0.0, first_call_allowance)
        self.timeout_override = timeout_override
        self._answered: set[str] = set()
        self._announced: set[str] = set()
        self._lock = threading.Lock()

    def timeout(self, function: str) -> float:
        """The function's `Timeout` (seconds): how long Lambda lets one invocation run."""
        if self.timeout_override is not None:
            return self.timeout_override
        return self.function_timeouts.get(function, DEFAULT_FUNCTION_TIMEOUT_SECS)

    def has_answered(self, function: str) -> bool:
        with self._lock:
            return function in self._answered

    def allowance(self, function: str) -> float:
        """The extra seconds an invocation of `function` gets now: the first-call allowance, until it answered once."""
        return 0.0 if self.has_answered(function) else self.first_call_allowance

    def reachable(self) -> bool:
        """True if cargo lambda watch accepts connections."""
        parts = urllib.parse.urlsplit(self.base_url)
        try:
            with socket.create_connection((parts.hostname or HOST, parts.port or 80), timeout=1):
                return True
        except OSError:
            return False

    def wait_until_reachable(self, stop: threading.Event, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self.reachable():
            if stop.is_set() or time.monotonic() > deadline:
                return False
            stop.wait(0.5)
        return True

    def invoke(self, function: str, event: dict[str, Any], limit: float | None = None, limit_name: str = "") -> Any:
        """The function's answer to `event`.

        Waits at most `limit` seconds (default: the function's Timeout; `limit_name` says what the
        limit is, for the messages), plus the first-call allowance while the function has not
        answered yet; then raises InvokeTimeout. The call itself is abandoned, not cancelled.
        """
        if limit is None:
            limit, limit_name = self.timeout(function), "its Timeout"
        allowance = self.allowance(function)
        wait = limit + allowance
        with self._lock:
            first = function not in self._announced
            self._announced.add(function)
        if first:
            log(
                f"first call of {function}: cargo lambda watch starts it, and builds it first if it "
                f"is out of date (minutes on a cold build; waiting up to {wait:g} s: {limit_name} "
                f"{limit:g} s plus {allowance:g} s first-call allowance)"
            )
        url = f"{self.base_url}/2015-03-31/functions/{urllib.parse.quote(function)}/invocations"
        data = json.dumps(event).encode()
        request = urllib.request.Request(url, data=data, method="POST", headers={"content-type": "application/json"})
        started = time.monotonic()
        what = f"{limit_name} {limit:g} s" + (f" plus the first-call allowance {allowance:g} s" if allowance else "")
        try:
            with urllib.request.urlopen(request, timeout=wait) as response:  # noqa: S310 - loopback
                status, body = response.status, response.read()
                function_error = response.headers.get("X-Amz-Function-Error")
        except urllib.error.HTTPError as exc:
            status, body, function_error = exc.code, exc.read(), exc.headers.get("X-Amz-Function-Error")
        except (TimeoutError, socket.timeout) as exc:
            raise InvokeTimeout(f"{function} did not answer within {wait:g} s ({what})", wait, allowance) from exc
        except (urllib.error.URLError, OSError) as exc:
            if isinstance(getattr(exc, "reason", None), TimeoutError):
                raise InvokeTimeout(f"{function} did not answer within {wait:g} s ({what})", wait, allowance) from exc
            with self._lock:
                self._announced.discard(function)
            raise InvokeError(f"cargo lambda watch is not reachable at {self.base_url} ({exc})") from exc
        elapsed = time.monotonic() - started
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        if status == 404 and isinstance(payload, dict) and "detail" in payload:
            raise InvokeError(f"cargo lambda watch does not know {function}: {payload['detail']}")
        if status == 200:
            # The function itself answered (its result or its error): it is built and running.
            with self._lock:
                self._answered.add(function)
        if allowance and elapsed > limit:
            log(f"{function} took {elapsed:.1f} s, longer than {limit_name} ({limit:g} s): a first call (build and start)")
        if status != 200 or function_error:
            if isinstance(payload, dict) and "errorMessage" in payload:
                detail = f"{payload.get('errorType', 'error')}: {str(payload['errorMessage']).strip()}"
            else:
                detail = body[:300].decode(errors="replace")
            raise InvokeError(f"{function} failed (HTTP {status}): {detail}")
        if payload is None and body:
            raise InvokeError(f"{function} answered with something that is not JSON: {body[:200]!r}")
        return payload


# --------------------------------------------------------------------------- HTTP API events


def request_id() -> str:
    """An id shaped like API Gateway's (`JKJaXmPLvHcESHA=`)."""
    return base64.b64encode(secrets.token_bytes(11)).decode()


def trace_id(now: float) -> str:
    return f"Root=1-{int(now):08x}-{secrets.token_hex(12)}"


def is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    return bool(_TEXT_TYPES.match(content_type.split(";")[0].strip().lower()))


def build_event(
    route: Route,
    params: dict[str, str],
    method: str,
    target: str,
    header_pairs: list[tuple[str, str]],
    body: bytes,
    client_ip: str,
    port: int,
    req_id: str,
    now: float,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API payload format 2.0 event for one request (`identity`: the verified IAM caller)."""
    raw_path, _, raw_query = target.partition("?")
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in header_pairs:
        lname = name.lower()
        if lname == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        headers[lname] = f"{headers[lname]},{value}" if lname in headers else value
    headers.setdefault("x-forwarded-for", client_ip)
    headers["x-forwarded-port"] = str(port)
    headers["x-forwarded-proto"] = "http"
    headers.setdefault("x-amzn-trace-id", trace_id(now))
    host = re.sub(r":\d+$", "", headers.get("host") or HOST)

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if raw_query:
        query: dict[str, str] = {}
        for key, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    context: dict[str, Any] = {
        "accountId": stack.ACCOUNT_ID,
        "apiId": API_ID,
    }
    if route.iam:
        context["authorizer"] = {"iam": dict(identity) if identity is not None else dict(LOCAL_CALLER)}
    context.update(
        {
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": client_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": req_id,
            "routeKey": route.key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        }
    )
    event["requestContext"] = context
    if params:
        event["pathParameters"] = params
    if body:
        if is_text(headers.get("content-type")):
            try:
                event["body"] = body.decode("utf-8")
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


@dataclass
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_answer(status: int, message: str) -> HttpAnswer:
    return HttpAnswer(status, [("content-type", "application/json")], json.dumps({"message": message}, separators=(",", ":")).encode())


def refusal_answer(refusal: sigv4.Refusal) -> HttpAnswer:
    """API Gateway's 403 for a call to an AWS_IAM route that is unsigned or does not verify."""
    answer = json_answer(refusal.status, refusal.message)
    if refusal.error_type:
        answer.headers.append(("x-amzn-ErrorType", refusal.error_type))
    return answer


def translate_response(function: str, payload: Any) -> HttpAnswer:
    """The HTTP answer API Gateway makes of a payload 2.0 function response."""
    if not isinstance(payload, dict) or "statusCode" not in payload:
        # A response without statusCode is taken as the JSON body of a 200.
        body = payload if isinstance(payload, str) else json.dumps(payload)
        return HttpAnswer(200, [("content-type", "application/json")], body.encode())
    try:
        status = int(payload["statusCode"])
        if not 100 <= status <= 599:
            raise ValueError(status)
    except (TypeError, ValueError):
        log(f"{function} answered an invalid statusCode {payload.get('statusCode')!r}")
        return json_answer(500, "Internal Server Error")
    headers: list[tuple[str, str]] = []
    for name, value in (payload.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    have = {name.lower() for name, _ in headers}
    # Payload 2.0 has no multiValueHeaders: API Gateway ignores them (lambda_http repeats its
    # headers there). Say so when a header would be lost in AWS.
    lost = [n for n in (payload.get("multiValueHeaders") or {}) if n.lower() not in have]
    if lost:
        log(f"{function}: multiValueHeaders {lost} are ignored, as API Gateway (payload 2.0) ignores them; use headers")
    for cookie in payload.get("cookies") or []:
        headers.append(("set-cookie", str(cookie)))
    body_field = payload.get("body")
    if body_field is None:
        body = b""
    elif payload.get("isBase64Encoded"):
        try:
            body = base64.b64decode(str(body_field), validate=False)
        except ValueError:
            log(f"{function} flagged its body as base64 but it is not")
            return json_answer(500, "Internal Server Error")
    else:
        body = (body_field if isinstance(body_field, str) else json.dumps(body_field)).encode()
    return HttpAnswer(status, headers, body)


# --------------------------------------------------------------------------- the HTTP server


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, routes: list[Route], lam: Lambda, iam: sigv4.LocalCredentials | None = None) -> None:
        super().__init__((HOST, port), Handler)
        self.routes = routes
        self.lam = lam
        # With credentials, AWS_IAM routes take only calls signed with them (--iam); without, any call.
        self.iam = iam


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Gateway

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per request is written by handle_any

    def read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def answer(self, answer: HttpAnswer, req_id: str) -> None:
        self.send_response_only(answer.status)
        names = set()
        for name, value in answer.headers:
            if name.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            names.add(name.lower())
            self.send_header(name, value)
        if "date" not in names:
            self.send_header("date", formatdate(usegmt=True))
        self.send_header("apigw-requestid", req_id)
        self.send_header("content-length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def handle_any(self) -> None:
        started = time.monotonic()
        now = time.time()
        req_id = request_id()
        target = self.path if self.path.startswith("/") else urllib.parse.urlsplit(self.path).path or "/"
        raw_path = target.partition("?")[0]
        body = self.read_body()
        if body is None:
            self.close_connection = True
            self.answer(json_answer(413, "Request Entity Too Large"), req_id)
            log(f"{self.command} {raw_path} -> 413 (over {MAX_REQUEST_BYTES} bytes)")
            return
        found = find_route(self.server.routes, self.command, raw_path)
        if found is None:
            self.answer(json_answer(404, "Not Found"), req_id)
            log(f"{self.command} {raw_path} -> no route: 404")
            return
        route, params = found
        header_pairs = list(self.headers.items())
        identity = None
        if route.iam and self.server.iam is not None:
            verdict = sigv4.verify(self.command, target, header_pairs, body, self.server.iam, now)
            if isinstance(verdict, sigv4.Refusal):
                # As API Gateway: refused before the function is invoked.
                self.answer(refusal_answer(verdict), req_id)
                log(f"{self.command} {raw_path} -> 403 [{route.key}] AWS_IAM: {verdict.reason}; {route.function} not invoked")
                return
            identity = caller_identity(verdict.access_key)
        event = build_event(
            route,
            params,
            self.command,
            target,
            header_pairs,
            body,
            self.client_address[0],
            self.server.server_address[1],
            req_id,
            now,
            identity,
        )
        lam = self.server.lam
        function_timeout = lam.timeout(route.function)
        # API Gateway waits for the integration at most 30 s; Lambda ends the function at its Timeout.
        if function_timeout < INTEGRATION_TIMEOUT_SECS:
            limit, limit_name = function_timeout, "its Timeout"
        else:
            limit, limit_name = INTEGRATION_TIMEOUT_SECS, "API Gateway's integration timeout"
        try:
            answer = translate_response(route.function, lam.invoke(route.function, event, limit, limit_name))
            note = ""
        except InvokeTimeout as exc:
            if function_timeout < INTEGRATION_TIMEOUT_SECS:
                # Lambda would have ended the function ("Task timed out"): a function error, 500.
                answer = json_answer(500, "Internal Server Error")
                note = f" ({exc}; Lambda ends a function at its Timeout: 500, as API Gateway answers)"
            else:
                answer = json_answer(504, "Gateway Timeout")
                note = f" ({exc}: 504, as API Gateway answers)"
        except InvokeError as exc:
            answer = json_answer(exc.status, "Service Unavailable" if exc.status == 503 else "Internal Server Error")
            note = f" ({exc})"
        self.answer(answer, req_id)
        ms = (time.monotonic() - started) * 1000
        log(f"{self.command} {raw_path} -> {route.function} [{route.key}] {answer.status} in {ms:.0f} ms{note}")

    def __getattr__(self, name: str) -> Any:
        # http.server looks up `do_<METHOD>` and answers 501 with an HTML page when there is none.
        # API Gateway routes on the method like on the path: any method, TRACE or one it has never
        # heard of included, is matched against the routes, and one no route takes is
        # 404 {"message":"Not Found"} like an unknown path.
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)


# --------------------------------------------------------------------------- SQS event source


def sqs_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    """One record of the SQS event Lambda delivers, from a ReceiveMessage result."""
    attributes = {str(k): str(v) for k, v in (message.get("Attributes") or {}).items()}
    message_attributes: dict[str, Any] = {}
    for name, attr in (message.get("MessageAttributes") or {}).items():
        value: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": attr.get("DataType", "String")}
        if "StringValue" in attr:
            value["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            value["binaryValue"] = base64.b64encode(attr["BinaryValue"]).decode()
        message_attributes[name] = value
    body = message.get("Body", "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


def failed_ids(source: QueueSource, ids: list[str], payload: Any) -> tuple[set[str], str]:
    """The message ids Lambda would keep after a successful invocation, and why."""
    if not source.report_failures:
        return set(), ""
    if payload is None or payload == {} or payload == "":
        return set(), ""
    if not isinstance(payload, dict):
        return set(ids), "the response is not a batch response: the whole batch counts as failed"
    items = payload.get("batchItemFailures")
    if items is None:
        return set(), ""
    if not isinstance(items, list):
        return set(ids), "batchItemFailures is not a list: the whole batch counts as failed"
    failed: set[str] = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in ids:
            return set(ids), f"itemIdentifier {identifier!r} is not in the batch: the whole batch counts as failed"
        failed.add(identifier)
    return failed, ""


class QueuePoller(threading.Thread):
    """Lambda's event source mapping for one SQS event: poll, invoke, delete what succeeded."""

    def __init__(self, source: QueueSource, lam: Lambda, stop: threading.Event, wait_secs: int) -> None:
        super().__init__(name=f"sqs-{source.function}", daemon=True)
        self.source = source
        self.lam = lam
        self.stop_event = stop
        self.wait_secs = wait_secs
        self.sqs = stack.aws_client("sqs", os.environ["AWS_ENDPOINT_URL"])
        self.region = os.environ.get("AWS_REGION", stack.REGION)
        self.queue_name = stack.local_name(source.queue_logical_id)
        self.url = ""
        self.arn = ""
        self.visibility_timeout = ""

    def resolve(self) -> None:
        self.url = self.sqs.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn", "VisibilityTimeout"])
        self.arn = attrs["Attributes"]["QueueArn"]
        self.visibility_timeout = attrs["Attributes"].get("VisibilityTimeout", "")

    def receive(self, wait: int, most: int) -> list[dict[str, Any]]:
        out = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(10, most)),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return out.get("Messages") or []

    def batch(self) -> list[dict[str, Any]]:
        messages = self.receive(self.wait_secs, self.source.batch_size)
        if not messages:
            return []
        # MaximumBatchingWindowInSeconds: keep gathering until the batch is full or the window ends.
        until = time.monotonic() + self.source.window_secs
        seen = {m["MessageId"] for m in messages}
        while len(messages) < self.source.batch_size and time.monotonic() < until and not self.stop_event.is_set():
            more = self.receive(min(1, self.wait_secs), self.source.batch_size - len(messages))
            for m in more:
                if m["MessageId"] not in seen:
                    seen.add(m["MessageId"])
                    messages.append(m)
        return messages

    def run(self) -> None:
        problem = ""
        while not self.stop_event.is_set():
            try:
                if not self.url:
                    self.resolve()
                    log(
                        f"sqs: {self.queue_name} -> {self.source.function} (batch {self.source.batch_size}, "
                        f"window {self.source.window_secs:g} s, "
                        f"{'ReportBatchItemFailures' if self.source.report_failures else 'whole-batch results'})"
                    )
                # Never take messages off the queue while nothing could process them.
                if not self.lam.wait_until_reachable(self.stop_event, 5):
                    if problem != "unreachable":
                        log(f"sqs: waiting for cargo lambda watch at {self.lam.base_url} before polling {self.queue_name}")
                        problem = "unreachable"
                    continue
                messages = self.batch()
                problem = ""
            except Exception as exc:  # noqa: BLE001 - moto down, queue missing: report once, retry
                text = f"{type(exc).__name__}: {exc}"
                if text != problem:
                    log(f"sqs: cannot poll {self.queue_name} ({text}); retrying")
                    problem = text
                self.url = ""
                self.stop_event.wait(2)
                continue
            if messages:
                self.deliver(messages)

    def deliver(self, messages: list[dict[str, Any]]) -> None:
        started = time.monotonic()
        ids = [m["MessageId"] for m in messages]
        event = {"Records": [sqs_record(m, self.arn, self.region) for m in messages]}
        try:
            payload = self.lam.invoke(self.source.function, event)
        except InvokeTimeout as exc:
            # As Lambda: the function is ended at its Timeout, the batch is neither deleted nor
            # made visible again; SQS hands it out again when its visibility timeout has passed.
            visibility = f"{self.visibility_timeout} s" if self.visibility_timeout else "the queue's"
            log(
                f"sqs: WARNING {self.source.function} did not answer within {exc.waited:g} s "
                f"({'its Timeout plus the first-call allowance' if exc.allowance else 'its Timeout'}): "
                f"gave up on the invocation; its {len(messages)} message(s) stay on {self.queue_name} and come back "
                f"after the visibility timeout ({visibility})"
            )
            return
        except InvokeError as exc:
            ms = (time.monotonic() - started) * 1000
            log(
                f"sqs: {self.source.function} <- {len(messages)} message(s): invocation failed in {ms:.0f} ms, "
                f"all left on the queue ({exc})"
            )
            return
        failed, why = failed_ids(self.source, ids, payload)
        done = [m for m in messages if m["MessageId"] not in failed]
        delete_errors = 0
        for i in range(0, len(done), 10):
            chunk = done[i : i + 10]
            try:
                out = self.sqs.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)],
                )
                delete_errors += len(out.get("Failed") or [])
            except Exception as exc:  # noqa: BLE001 - the messages come back: at-least-once, as in AWS
                log(f"sqs: could not delete {len(chunk)} message(s): {exc}")
                delete_errors += len(chunk)
        ms = (time.monotonic() - started) * 1000
        kinds = sorted({_kind(m.get("Body", "")) for m in messages})
        text = f"sqs: {self.source.function} <- {len(messages)} message(s) [{', '.join(kinds)}]: {len(done)} done"
        if failed:
            text += f", {len(failed)} left for retry"
        if delete_errors:
            text += f" ({delete_errors} could not be deleted and will come back)"
        log(f"{text} in {ms:.0f} ms{'; ' + why if why else ''}")


def _kind(body: str) -> str:
    try:
        value = json.loads(body)
        return str(value.get("kind", "?")) if isinstance(value, dict) else "?"
    except ValueError:
        return "unreadable"


# --------------------------------------------------------------------------- start-up helpers


def load_env_file(path: Path) -> None:
    """Puts the `export NAME=value` lines of a stack.py env file into os.environ."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SystemExit(f"gateway: cannot read the env file {path}: {exc}") from exc
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        if not sep:
            continue
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        os.environ[name.strip()] = value


def register_stripe_webhook(stripe_url: str, gateway_url: str, secrets_path: Path) -> None:
    """Points localstripe's webhooks at this gateway's /webhooks/stripe, signed with the current secret."""
    try:
        secret = json.loads(secrets_path.read_text(encoding="utf-8"))["stripe"]["webhook_secrets"][0]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise StartupError(f"no stripe.webhook_secrets[0] in {secrets_path}: {exc}") from exc
    target = f"{gateway_url}/webhooks/stripe"
    data = urllib.parse.urlencode({"url": target, "secret": secret}).encode()
    request = urllib.request.Request(f"{stripe_url.rstrip('/')}/_config/webhooks/{STRIPE_WEBHOOK_ID}", data=data, method="POST")
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - loopback
                break
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() > deadline:
                raise StartupError(f"could not register the webhook with localstripe at {stripe_url}: {exc}") from exc
            time.sleep(0.5)
    log(f"localstripe ({stripe_url}) now sends its signed events to {target}")


def describe(template: Template) -> str:
    lines = ["routes (template.yaml, HttpApi events):"]
    for r in sorted(template.routes, key=lambda r: (r.path, r.method)):
        lines.append(f"  {r.key:32} -> {r.function:16} {'AWS_IAM' if r.iam else 'no auth'}")
    lines.append("event sources:")
    for q in template.queues:
        lines.append(
            f"  SQS {q.queue_logical_id} -> {q.function} (BatchSize {q.batch_size}, window {q.window_secs:g} s"
            f"{', ReportBatchItemFailures' if q.report_failures else ''}{'' if q.enabled else ', disabled'})"
        )
    for o in template.other:
        lines.append(f"  not emulated: {o}")
    if template.other:
        lines.append("  (invoke one by hand: curl -X POST <cargo lambda>/2015-03-31/functions/<function>/invocations -d '{}')")
    return "\n".join(lines)


def function_timeouts(path: Path) -> dict[str, float]:
    template = stack.load_template(path)
    default = ((template.get("Globals") or {}).get("Function") or {}).get("Timeout", 3)
    out = {}
    for resource in template["Resources"].values():
        if resource.get("Type") == stack.FUNCTION:
            binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
            timeout = (resource.get("Properties") or {}).get("Timeout", default)
            if binary and isinstance(timeout, (int, float, str)) and str(timeout).isdigit():
                out[binary] = float(timeout)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PAYBRIDGE_GATEWAY_PORT", DEFAULT_PORT)), help="0 = a free port (default 3000)")
    parser.add_argument("--lambda-url", default=os.environ.get("PAYBRIDGE_LAMBDA_URL", DEFAULT_LAMBDA_URL), help="cargo lambda watch (default %(default)s)")
    parser.add_argument("--template", type=Path, default=stack.DEFAULT_TEMPLATE, help="SAM template (default: template.yaml)")
    parser.add_argument("--env-file", type=Path, help="stack.py's env file: AWS endpoint, region, credentials for SQS")
    parser.add_argument("--secrets", type=Path, default=stack.DEFAULT_SECRETS, help="local secret (default: local/secrets.json)")
    parser.add_argument("--register-stripe-webhook", metavar="LOCALSTRIPE_URL", help="make localstripe send its events to this gateway")
    parser.add_argument(
        "--iam",
        action="store_true",
        help="check SigV4 on AWS_IAM routes against AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION (of --env-file); 403 otherwise",
    )
    parser.add_argument("--no-sqs", action="store_true", help="serve HTTP only; do not poll the queues")
    parser.add_argument("--sqs-wait", type=int, default=MAX_WAIT_SECS, help=f"long-poll seconds, at most {MAX_WAIT_SECS}")
    parser.add_argument("--invoke-timeout", type=float, help="use this Timeout (seconds) for every function instead of template.yaml's")
    parser.add_argument(
        "--first-call-allowance",
        type=float,
        default=FIRST_CALL_ALLOWANCE_SECS,
        help="extra seconds for a function's calls until it has answered once, for the build (default %(default)g)",
    )
    parser.add_argument("--log-file", type=Path, help="also append every line to this file, with the time")
    parser.add_argument("--ready-file", type=Path, help="write the gateway's URL here once it serves, cargo lambda watch answers and localstripe knows it")
    parser.add_argument("--routes", action="store_true", help="print the routes and event sources, then exit")
    parser.add_argument("--functions", action="store_true", help="print the functions the gateway invokes, then exit")
    args = parser.parse_args(argv)

    try:
        template = read_template(args.template)
    except stack.StackError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    if args.routes:
        print(describe(template))
        return 0
    if args.functions:
        print("\n".join(template.functions()))
        return 0
    if args.log_file:
        global _log_file
        _log_file = args.log_file.open("a", encoding="utf-8")
    if args.env_file:
        load_env_file(args.env_file)
    if template.queues and not args.no_sqs and not os.environ.get("AWS_ENDPOINT_URL"):
        print("gateway: AWS_ENDPOINT_URL is not set; pass --env-file .stack/dev/env (or --no-sqs)", file=sys.stderr)
        return 2

    iam = None
    if args.iam:
        # The env file's credentials only (not a session token left in the shell's environment).
        source = stack.read_env(args.env_file) if args.env_file else dict(os.environ)
        access_key, secret_key = source.get("AWS_ACCESS_KEY_ID"), source.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            print("gateway: --iam needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; pass --env-file .stack/dev/env", file=sys.stderr)
            return 2
        iam = sigv4.LocalCredentials(
            access_key, secret_key, source.get("AWS_REGION") or stack.REGION, source.get("AWS_SESSION_TOKEN") or None
        )

    lam = Lambda(args.lambda_url, function_timeouts(args.template), args.first_call_allowance, args.invoke_timeout)
    try:
        server = Gateway(args.port, template.routes, lam, iam)
    except OSError as exc:
        print(f"gateway: cannot listen on {HOST}:{args.port}: {exc}", file=sys.stderr)
        return 1
    url = f"http://{HOST}:{server.server_address[1]}"
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    for line in describe(template).splitlines():
        log(line)
    iam_routes = sum(1 for r in template.routes if r.iam)
    if iam is not None:
        log(
            f"IAM: SigV4 checked on the {iam_routes} AWS_IAM route(s): signed with access key {iam.access_key!r} "
            f"for {iam.service} in {iam.region}, X-Amz-Date within {sigv4.CLOCK_SKEW_SECS // 60} min; "
            "anything else gets 403 and never reaches the function"
        )
    elif iam_routes:
        log(f"IAM: not checked - any caller reaches the {iam_routes} AWS_IAM route(s) (check SigV4 with --iam: make dev LOCAL_IAM=1)")
    serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    serving.start()
    log(f"listening on {url}, invoking functions through {lam.base_url}")

    pollers = []
    if not args.no_sqs:
        wait = max(0, min(MAX_WAIT_SECS, args.sqs_wait))
        for source in template.queues:
            if source.enabled:
                poller = QueuePoller(source, lam, stop, wait)
                poller.start()
                pollers.append(poller)

    failed: list[str] = []

    def start_up() -> None:
        try:
            if args.register_stripe_webhook:
                register_stripe_webhook(args.register_stripe_webhook, url, args.secrets)
            if not lam.wait_until_reachable(stop, 120):
                if stop.is_set():
                    return
                raise StartupError(f"cargo lambda watch does not answer at {lam.base_url} (waited 120 s)")
        except StartupError as exc:
            log(f"error: {exc}")
            failed.append(str(exc))
            stop.set()
            return
        if stop.is_set():
            return
        if args.ready_file:
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(url + "\n", encoding="utf-8")
            tmp.replace(args.ready_file)
        log(f"ready on {url}")

    threading.Thread(target=start_up, name="start-up", daemon=True).start()

    while not stop.wait(0.5):
        pass
    log("stopping")
    server.shutdown()
    server.server_close()
    for poller in pollers:
        poller.join(timeout=MAX_WAIT_SECS + 5)
        if poller.is_alive():
            log(f"{poller.name} is still waiting for {poller.source.function}; its batch returns to the queue after the visibility timeout")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
