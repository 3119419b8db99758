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

And it makes two of moto's DynamoDB operations cost what they cost in DynamoDB, not what the
whole table costs (`patch_for_scale`). moto 5.2 answers every Query by sorting every item of the
table, then keeping those of the partition asked for, and backs up a TransactWriteItems by
deep-copying the whole table once per write in it. On a table that grows through `make test`
(thousands of items by its last tests) a 4-write transaction took 2.5 s and an index query 0.15-0.38 s
at 20 000 items; under the lock, eight concurrent saves then queue past the SDK's attempt timeout
(15 s locally), the SDK retries a transaction that had taken effect, and the retry loses its
version condition (moto does not honour ClientRequestToken as DynamoDB does). Patched, a Query
looks only at the items of its partition and a transaction backs up only the items it writes;
what either returns is unchanged (scripts/test_moto_server.py compares them with moto's own).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable, Iterable

HOST = "127.0.0.1"

# The moto these patches were written against (requirements-dev.txt pins it): they reach into its
# internals, so another version fails the start instead of changing moto's behaviour unseen.
PATCHED_MOTO = "5.2.5"


def patch_for_scale() -> None:
    """Query reads one partition, a transaction backs up only its own items (module docstring)."""
    import copy

    import moto
    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table

    if moto.__version__ != PATCHED_MOTO:
        raise SystemExit(f"moto_server.py patches moto {PATCHED_MOTO}, found {moto.__version__}: re-check patch_for_scale")
    if getattr(Table.query, "_paybridge", False):
        return

    moto_query = Table.query

    def matches(value: DynamoType | None, wanted: DynamoType) -> bool:
        # A key attribute is S, N or B; S and B compare as stored (moto's == casts every value).
        if value is None or value.type != wanted.type:
            return False
        return value.value == wanted.value if wanted.type in ("S", "B") else value == wanted

    def items_of(table: Table) -> Iterable[Item]:
        if table.range_key_attr:
            return (item for hash_set in table.items.values() for item in hash_set.values())
        return iter(table.items.values())

    def query(self: Table, hash_key: DynamoType | None, *args: Any, **kwargs: Any) -> Any:
        # moto keeps the items a query may return from `self.all_items()`, every item of the
        # table in key order; hand it only those that can match the partition key (its own
        # filter still runs, and it sorts what it keeps by the index's keys or the range key).
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions") or []
        if index_name:
            if not conditions:
                return moto_query(self, hash_key, *args, **kwargs)
            (name, wanted), rest = conditions[0], conditions[1:]
            candidates = [
                item
                for item in items_of(self)
                if matches(item.attrs.get(name), wanted)
                and all(matches(item.attrs.get(n), v) for n, v in rest)
            ]
        else:
            hash_set = self.items.get(hash_key) if hash_key is not None else None
            if not hash_set:
                candidates = []
            elif self.range_key_attr:
                candidates = list(hash_set.values())
            else:
                candidates = [hash_set]
        self.all_items = lambda: candidates  # type: ignore[method-assign]
        try:
            return moto_query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    query._paybridge = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]

    moto_transact = models.DynamoDBBackend.transact_write_items

    class CopyButNotTables:
        """moto's `copy` inside transact_write_items: its backup of each whole table is skipped."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def key_of(table: Table, op: dict[str, Any]) -> tuple[DynamoType, DynamoType | None] | None:
        attrs = op.get("Item") or op.get("Key") or {}
        try:
            hash_value = DynamoType(attrs[table.hash_key_attr])
            range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
        except (KeyError, TypeError):
            return None  # moto refuses the request itself, before writing anything
        return hash_value, range_value

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        # Back up the items the transaction may write (as they were), put them back if it fails.
        backup: list[tuple[Table, DynamoType, DynamoType | None, Item | None]] = []
        for entry in transact_items:
            for op in entry.values():
                table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
                key = key_of(table, op) if table is not None else None
                if key is not None:
                    before = table.get_item(*key)
                    backup.append((table, key[0], key[1], copy.deepcopy(before)))
        models.copy = CopyButNotTables  # type: ignore[assignment]
        try:
            return moto_transact(self, transact_items)
        except BaseException:
            for table, hash_value, range_value, before in reversed(backup):
                if table.range_key_attr:
                    hash_set = table.items[hash_value]
                    if before is None:
                        hash_set.pop(range_value, None)
                    else:
                        hash_set[range_value] = before
                    if not hash_set:
                        del table.items[hash_value]
                elif before is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = before
            raise
        finally:
            models.copy = copy  # type: ignore[assignment]

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


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

    patch_for_scale()
    app = SerializeDynamoDB(DomainDispatcherApplication(create_backend_app))
    print(f"moto server (DynamoDB serialised) on http://{HOST}:{port}", flush=True)
    run_simple(HOST, port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
