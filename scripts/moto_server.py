#!/usr/bin/env python3
"""Run moto server (DynamoDB, SQS, Secrets Manager, ...) on 127.0.0.1:PORT.

Usage: python scripts/moto_server.py PORT

Why not the stock `moto_server`: it serves requests on threads and moto's DynamoDB backend does
not hold a lock between evaluating a ConditionExpression and applying the write. Two concurrent
`PutItem ... attribute_not_exists(pk)` on one key can then both succeed - exactly the race our
conditional writes exist to prevent. A single-threaded server fixes that but lets one SQS long
poll (WaitTimeSeconds up to 20 s) block every other request.

So this runner stays threaded and wraps moto's WSGI app in a middleware that holds one global
lock around every DynamoDB request (X-Amz-Target: DynamoDB_20120810.*): DynamoDB behaves as if
linearisable, while SQS / Secrets Manager requests still run concurrently.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable, Iterable

HOST = "127.0.0.1"


class SerializeDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, everything else passes straight through."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB"):  # DynamoDB_20120810.* and DynamoDBStreams_*
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                # Materialise the body inside the lock: the response is complete before the next
                # DynamoDB request may look at the table.
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: moto_server.py PORT", file=sys.stderr)
        return 2
    port = int(argv[0])
    # moto reads MOTO_PORT when it needs to build URLs that point back at itself.
    os.environ.setdefault("MOTO_PORT", str(port))

    from werkzeug.serving import run_simple
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    def stop(signum: int, _frame: Any) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    app = SerializeDynamoDB(DomainDispatcherApplication(create_backend_app))
    print(f"moto server (DynamoDB serialised) on http://{HOST}:{port}", flush=True)
    run_simple(HOST, port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
