#!/usr/bin/env python3
"""Check that a moto server serialises DynamoDB conditional writes.

Usage: python scripts/moto_race_check.py --endpoint http://127.0.0.1:PORT
           [--writers 32] [--rounds 100] [--processes]

Each round, WRITERS writers start together (a barrier) and each does
PutItem(pk=round key) with ConditionExpression attribute_not_exists(pk). Exactly one must win;
the others must get ConditionalCheckFailedException. Exits 1 if any round had != 1 winner.
Writers are threads by default; with --processes they are separate processes (no client-side
GIL, so far more requests overlap on the server). The check creates and deletes its own table,
so it can run against a stack that is in use.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
import uuid
from typing import Any

import boto3
from botocore.config import Config


def client(endpoint: str) -> Any:
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    cfg = Config(max_pool_connections=64, retries={"max_attempts": 1})
    return session.client("dynamodb", endpoint_url=endpoint, config=cfg)


def put_once(ddb: Any, table: str, key: str, writer: int) -> int:
    """1 if this writer won, 0 if its condition failed; raises on anything else."""
    try:
        ddb.put_item(
            TableName=table,
            Item={"pk": {"S": key}, "writer": {"N": str(writer)}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        return 1
    except ddb.exceptions.ConditionalCheckFailedException:
        return 0


def process_writer(endpoint: str, table: str, rounds: int, writer: int, barrier: Any, wins: Any, errors: Any) -> None:
    ddb = client(endpoint)
    for rnd in range(rounds):
        barrier.wait()
        try:
            won = put_once(ddb, table, f"round-{rnd}", writer)
        except Exception:  # noqa: BLE001 - counted and reported by the parent
            with errors.get_lock():
                errors.value += 1
            continue
        if won:
            with wins.get_lock():
                wins[rnd] += 1


def run_processes(endpoint: str, table: str, writers: int, rounds: int) -> tuple[list[int], int]:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(writers)
    wins = ctx.Array("i", rounds)
    errors = ctx.Value("i", 0)
    procs = [
        ctx.Process(target=process_writer, args=(endpoint, table, rounds, w, barrier, wins, errors))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return list(wins), errors.value


def run_threads(endpoint: str, table: str, writers: int, rounds: int) -> tuple[list[int], int]:
    clients = [client(endpoint) for _ in range(writers)]
    wins = [0] * rounds
    errors = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(writers)

    def work(w: int) -> None:
        for rnd in range(rounds):
            barrier.wait()
            try:
                won = put_once(clients[w], table, f"round-{rnd}", w)
            except Exception:  # noqa: BLE001 - counted and reported below
                with lock:
                    errors[0] += 1
                continue
            with lock:
                wins[rnd] += won

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins, errors[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--processes", action="store_true", help="writers are processes, not threads")
    args = parser.parse_args()

    ddb = client(args.endpoint)
    table = f"race-check-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    started = time.monotonic()
    try:
        run = run_processes if args.processes else run_threads
        wins, errors = run(args.endpoint, table, args.writers, args.rounds)
    finally:
        ddb.delete_table(TableName=table)
    elapsed = time.monotonic() - started

    bad = [(rnd, n) for rnd, n in enumerate(wins) if n != 1]
    kind = "processes" if args.processes else "threads"
    print(
        f"{args.rounds} rounds x {args.writers} {kind} in {elapsed:.1f}s: "
        f"{args.rounds - len(bad)} rounds with exactly one winner, {len(bad)} without, {errors} errors"
    )
    for rnd, n in bad[:20]:
        print(f"  round {rnd}: {n} winners")
    return 0 if not bad and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
