#!/usr/bin/env python3
"""A local billing endpoint: receives paybridge's notifications, verifies and prints them.

    billing_receiver.py [--port N] [--secrets local/secrets.json] [--port-file F] [--log-file F] [--quiet]

Every POST (any path) is verified with the `standardwebhooks` library's own verifier — what a
billing system would run — using `billing.signing_secret` of local/secrets.json, then answered 204
(verified) or 401 (not verified), and printed as one line: type, object id, status, amount.
The port defaults to the one of `billing.endpoint` in the secrets file (3900), so `make dev`'s
functions deliver here without any setting; 0 picks a free port (written to --port-file).

For tests and the demo:
    GET    /received                    everything received, oldest first, as JSON
    GET    /received?charge_id=ch_...    only what concerns one charge (its own and its refunds')
    DELETE /received                    forget it all
    POST   /answers   {"statuses": [503, 503]}   answer the next deliveries with these statuses
                                                  (then 204 again) - to watch paybridge retry
Each entry of /received: webhook_id, type, verified, error (why not verified), object_id,
charge_id, status, amount, currency, path, answered (the status we answered), received_at.

Binds 127.0.0.1 only; SIGINT/SIGTERM stop it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRETS = ROOT / "local" / "secrets.json"
FALLBACK_PORT = 3900
MAX_BODY_BYTES = 1024 * 1024

_print_lock = threading.Lock()
_log_file: Any = None  # --log-file: a copy of every line


def say(msg: str) -> None:
    line = f"billing: {msg}"
    with _print_lock:
        print(line, flush=True)
        if _log_file is not None:
            _log_file.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            _log_file.flush()


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, secret: str, quiet: bool) -> None:
        super().__init__((HOST, port), Handler)
        self.verifier = Webhook(secret)
        self.quiet = quiet
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []


def describe(entry: dict[str, Any]) -> str:
    amount = f" {entry['amount']} {entry['currency'] or ''}".rstrip() if entry.get("amount") is not None else ""
    parts = [entry.get("type") or "(no type)", entry.get("object_id") or "?"]
    if entry.get("status"):
        parts.append(entry["status"])
    text = " ".join(parts) + amount
    if entry.get("refunded"):
        text += f", refunded {entry['refunded']}"
    if entry.get("object_id") != entry.get("charge_id") and entry.get("charge_id"):
        text += f" (charge {entry['charge_id']})"
    verdict = "verified" if entry["verified"] else f"NOT VERIFIED: {entry['error']}"
    return f"{text} - {verdict}, answered {entry['answered']} [{entry.get('webhook_id') or 'no webhook-id'}]"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def reply(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body, indent=None).encode()
        self.send_response_only(status)
        if body is not None:
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/received":
            self.reply(404, {"error": "GET /received lists what was received"})
            return
        query = dict(urllib.parse.parse_qsl(url.query))
        with self.server.lock:
            entries = list(self.server.received)
        for key in ("charge_id", "object_id", "type", "webhook_id"):
            if key in query:
                entries = [e for e in entries if e.get(key) == query[key]]
        self.reply(200, entries)

    def do_DELETE(self) -> None:  # noqa: N802
        if urllib.parse.urlsplit(self.path).path != "/received":
            self.reply(404, {"error": "DELETE /received forgets what was received"})
            return
        with self.server.lock:
            self.server.received.clear()
        self.reply(204)

    def do_POST(self) -> None:  # noqa: N802
        raw = self.body()
        if raw is None:
            self.close_connection = True
            self.reply(413, {"error": "too large"})
            return
        path = urllib.parse.urlsplit(self.path).path
        if path == "/answers":
            self.script(raw)
            return
        headers = {k: v for k, v in self.headers.items()}
        try:
            self.server.verifier.verify(raw, headers, json_parse=False)
            verified, error = True, None
        except Exception as exc:  # noqa: BLE001 - any failure means: not verified
            verified, error = False, f"{type(exc).__name__}: {exc}"
        try:
            notification = json.loads(raw)
        except ValueError:
            notification = None
        data = notification.get("data") if isinstance(notification, dict) else None
        data = data if isinstance(data, dict) else {}
        with self.server.lock:
            scripted = self.server.answers.pop(0) if self.server.answers and verified else None
        answered = scripted or (204 if verified else 401)
        object_id = data.get("id")
        entry = {
            "webhook_id": self.headers.get("webhook-id"),
            "type": notification.get("type") if isinstance(notification, dict) else None,
            "verified": verified,
            "error": error,
            "object_id": object_id,
            "charge_id": data.get("charge_id") or (object_id if str(object_id or "").startswith("ch_") else None),
            "status": data.get("status"),
            "amount": data.get("amount"),
            "currency": data.get("currency"),
            "refunded": data.get("refunded"),
            "path": path,
            "answered": answered,
            "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        with self.server.lock:
            self.server.received.append(entry)
        if not self.server.quiet:
            say(describe(entry))
        if answered == 204:
            self.reply(204)
        else:
            self.reply(answered, {"error": error or f"scripted answer {answered}"})

    def script(self, raw: bytes) -> None:
        try:
            statuses = json.loads(raw)["statuses"]
            assert isinstance(statuses, list) and all(isinstance(s, int) and 200 <= s <= 599 for s in statuses)
        except (ValueError, KeyError, TypeError, AssertionError):
            self.reply(400, {"error": 'expected {"statuses": [503, ...]}'})
            return
        with self.server.lock:
            self.server.answers = list(statuses)
        say(f"the next {len(statuses)} deliveries will be answered {statuses}")
        self.reply(204)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, help="default: the port of billing.endpoint in the secrets file; 0 = a free port")
    parser.add_argument("--secrets", type=Path, default=DEFAULT_SECRETS, help="local secret (default: local/secrets.json)")
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    parser.add_argument("--quiet", action="store_true", help="do not print each notification")
    parser.add_argument("--log-file", type=Path, help="also append every line to this file, with the time")
    args = parser.parse_args(argv)
    if args.log_file:
        global _log_file
        _log_file = args.log_file.open("a", encoding="utf-8")

    try:
        billing = json.loads(args.secrets.read_text(encoding="utf-8"))["billing"]
        secret = billing["signing_secret"]
        endpoint = urllib.parse.urlsplit(billing.get("endpoint") or "")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"billing: cannot read billing.signing_secret from {args.secrets}: {exc}", file=sys.stderr)
        return 2
    port = args.port
    if port is None:
        port = endpoint.port if endpoint.hostname in ("127.0.0.1", "localhost") and endpoint.port else FALLBACK_PORT
    try:
        server = Receiver(port, secret, args.quiet)
    except OSError as exc:
        print(f"billing: cannot listen on {HOST}:{port}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the library refuses a malformed secret
        print(f"billing: billing.signing_secret is not a Standard Webhooks secret: {exc}", file=sys.stderr)
        return 2
    actual = server.server_address[1]
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(f"{actual}\n", encoding="utf-8")
        tmp.replace(args.port_file)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    say(f"receiving notifications on http://{HOST}:{actual} (verified with billing.signing_secret; GET /received lists them)")
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
