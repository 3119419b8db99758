#!/usr/bin/env python3
"""Tests of scripts/moto_server.py's `patch_for_scale`: what moto answers is unchanged.

The same requests run against moto as published and against moto patched, each in a process of
its own (the patch changes moto's classes for the whole process), and every answer and the final
table must be the same: queries of the table and of an index (ranges, both directions, pages, a
filter, number keys written two ways, items without the index's attributes), transactions that
succeed and transactions that fail at their first, a middle or their last write (each of Put,
Update, Delete, ConditionCheck), and one refused before it writes. Then the point of the patch,
counted rather than timed: patched, a transaction copies no table and a query lists no item
outside its partition. What that saves at 20 000 items (`timings`, below): a 4-write transaction
2.5 s → 2 ms, an index query 0.15–0.38 s → 36 ms, on this kind of machine.

    .venv/bin/python -m unittest scripts/test_moto_server.py -v
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unittest
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

REGION = "eu-west-1"


def client() -> Any:
    import boto3

    return boto3.client(
        "dynamodb", region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )


def create_tables(c: Any) -> None:
    c.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
            {"AttributeName": "gs", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byg",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "gs", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "byn",
                "KeySchema": [{"AttributeName": "n", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    c.create_table(
        TableName="h",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def item(pk: str, sk: str, **attrs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}}
    for name, value in attrs.items():
        out[name] = {"N": value} if name in ("n", "v") else {"S": value}
    return out


def seed(c: Any) -> None:
    for i in range(40):
        attrs: dict[str, str] = {"v": str(i)}
        if i % 3:  # a third of the items are not in the index `byg`
            attrs |= {"g": f"G#{i % 4}", "gs": f"{i % 5:02}#{i:03}"}
        attrs["n"] = ("7", "7.0", "8")[i % 3]  # one number written two ways
        c.put_item(TableName="t", Item=item(f"P#{i % 6}", f"S#{i:03}", **attrs))
    for i in range(10):
        c.put_item(TableName="h", Item={"id": {"S": f"H#{i}"}, "v": {"N": str(i)}})


def all_pages(c: Any, **query: Any) -> list[Any]:
    pages = []
    while True:
        page = c.query(**query)
        pages.append({"Items": page["Items"], "Count": page["Count"], "LastEvaluatedKey": page.get("LastEvaluatedKey")})
        if "LastEvaluatedKey" not in page:
            return pages
        query = {**query, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def queries(c: Any) -> list[Any]:
    v = lambda s: {"S": s}  # noqa: E731
    asked: list[dict[str, Any]] = []
    for forward in (True, False):
        for limit in (3, 100):
            asked += [
                dict(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": v("P#2")}),
                dict(
                    KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
                    ExpressionAttributeValues={":p": v("P#1"), ":a": v("S#005"), ":b": v("S#030")},
                ),
                dict(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": v("P#none")}),
                dict(IndexName="byg", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": v("G#1")}),
                dict(
                    IndexName="byg",
                    KeyConditionExpression="g = :g AND begins_with(gs, :s)",
                    ExpressionAttributeValues={":g": v("G#2"), ":s": v("01#")},
                ),
                dict(
                    IndexName="byg",
                    KeyConditionExpression="g = :g AND gs < :s",
                    FilterExpression="v > :v",
                    ExpressionAttributeValues={":g": v("G#3"), ":s": v("03"), ":v": {"N": "10"}},
                ),
                dict(IndexName="byn", KeyConditionExpression="n = :n", ExpressionAttributeValues={":n": {"N": "7"}}),
                dict(IndexName="byn", KeyConditionExpression="n = :n", ExpressionAttributeValues={":n": {"N": "8.00"}}),
            ]
            for q in asked[-8:]:
                q.update(ScanIndexForward=forward, Limit=limit)
    return [all_pages(c, TableName="t", **q) for q in asked]


def put(pk: str, sk: str, condition: str | None = None, **attrs: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"TableName": "t", "Item": item(pk, sk, **attrs)}
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


TRANSACTIONS: list[list[dict[str, Any]]] = [
    # succeeds: a new item, an update, a delete, a check, and a write to the other table
    [
        put("P#9", "S#new", "attribute_not_exists(pk)", v="1", g="G#1", gs="99#new"),
        {"Update": {"TableName": "t", "Key": key("P#0", "S#000"), "UpdateExpression": "SET v = v + :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Delete": {"TableName": "t", "Key": key("P#1", "S#001")}},
        {"ConditionCheck": {"TableName": "t", "Key": key("P#2", "S#002"), "ConditionExpression": "attribute_exists(pk)"}},
        {"Put": {"TableName": "h", "Item": {"id": {"S": "H#new"}}}},
    ],
    # fails at the last write: the new items, the update and the delete before it are undone
    [
        put("P#9", "S#undone", "attribute_not_exists(pk)", v="1", g="G#1", gs="99#undone"),
        {"Update": {"TableName": "t", "Key": key("P#3", "S#003"), "UpdateExpression": "SET g = :g, gs = :s", "ExpressionAttributeValues": {":g": {"S": "G#9"}, ":s": {"S": "x"}}}},
        {"Delete": {"TableName": "t", "Key": key("P#4", "S#004")}},
        {"Put": {"TableName": "h", "Item": {"id": {"S": "H#undone"}}}},
        {"ConditionCheck": {"TableName": "t", "Key": key("P#5", "S#005"), "ConditionExpression": "attribute_not_exists(pk)"}},
    ],
    # fails at its first write
    [
        put("P#0", "S#006", "attribute_not_exists(pk)", v="100"),
        {"Update": {"TableName": "t", "Key": key("P#0", "S#012"), "UpdateExpression": "REMOVE g"}},
        {"Delete": {"TableName": "h", "Key": {"id": {"S": "H#1"}}}},
    ],
    # fails in the middle (an update whose condition does not hold)
    [
        {"Delete": {"TableName": "t", "Key": key("P#1", "S#007")}},
        {"Update": {"TableName": "t", "Key": key("P#2", "S#008"), "UpdateExpression": "SET v = :v", "ConditionExpression": "v = :nope", "ExpressionAttributeValues": {":v": {"N": "0"}, ":nope": {"N": "-1"}}}},
        put("P#9", "S#late", v="3"),
    ],
    # refused before any write: two writes to one item
    [put("P#9", "S#twice", v="1"), put("P#9", "S#twice", v="2")],
    # refused: an item without its range key
    [put("P#9", "S#ok", v="1"), {"Put": {"TableName": "t", "Item": {"pk": {"S": "P#9"}}}}],
]


def scenario() -> dict[str, Any]:
    from moto import mock_aws

    with mock_aws():
        c = client()
        create_tables(c)
        seed(c)
        out: dict[str, Any] = {"before": queries(c), "transactions": []}
        for writes in TRANSACTIONS:
            try:
                c.transact_write_items(TransactItems=writes)
                out["transactions"].append("ok")
            except c.exceptions.ClientError as e:
                error = e.response["Error"]
                reasons = [r.get("Code", "None") for r in e.response.get("CancellationReasons", [])]
                out["transactions"].append([error["Code"], reasons])
        out["after"] = queries(c)
        out["table"] = sorted(json.dumps(i, sort_keys=True) for i in c.scan(TableName="t")["Items"])
        out["hash_table"] = sorted(json.dumps(i, sort_keys=True) for i in c.scan(TableName="h")["Items"])
        return out


def work() -> dict[str, int]:
    """How often a transaction deep-copies a whole table and a query lists every item of one."""
    from moto import mock_aws
    from moto.dynamodb.models.table import Table

    counts = {"table_copies": 0, "items_listed": 0}
    with mock_aws():
        c = client()
        create_tables(c)
        seed(c)
        all_items = Table.all_items

        def copied(self: Table, memo: Any) -> Table:
            counts["table_copies"] += 1
            return self  # the probe counts; whether moto could roll back is the scenario's test

        def listed(self: Table) -> Any:
            counts["items_listed"] += 1
            return all_items(self)

        Table.__deepcopy__ = copied  # type: ignore[attr-defined]
        Table.all_items = listed  # type: ignore[method-assign]
        c.transact_write_items(TransactItems=TRANSACTIONS[0])
        queries(c)
    return counts


def timings() -> dict[str, float]:
    """The cost at 20 000 items: MOTO_PATCH=0|1 .venv/bin/python scripts/test_moto_server.py timings"""
    from moto import mock_aws

    with mock_aws():
        c = client()
        create_tables(c)
        for i in range(20_000):
            c.put_item(TableName="t", Item=item(f"P#{i}", "S#0", g=f"G#{i % 33}", gs=f"{i:06}", v=str(i), pad="x" * 500))
        start = time.perf_counter()
        for i in range(5):
            c.transact_write_items(TransactItems=[put(f"Q#{i}", f"S#{j}", "attribute_not_exists(pk)", v="1") for j in range(4)])
        transaction = (time.perf_counter() - start) / 5
        start = time.perf_counter()
        for i in range(5):
            c.query(TableName="t", IndexName="byg", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": {"S": f"G#{i}"}}, Limit=10)
        query = (time.perf_counter() - start) / 5
        return {"transaction_s": round(transaction, 4), "index_query_s": round(query, 4)}


def run(what: str, patched: bool) -> Any:
    # In-process moto only: no endpoint or profile of the environment (make test's points at the
    # stack's moto server) may send these requests elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["MOTO_PATCH"] = "1" if patched else "0"
    out = subprocess.run([sys.executable, __file__, what], env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise AssertionError(f"{what} (patched: {patched}) exited {out.returncode}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


class PatchForScaleTest(unittest.TestCase):
    def test_moto_answers_every_query_and_transaction_as_it_did_unpatched(self) -> None:
        stock, patched = run("scenario", False), run("scenario", True)
        self.assertEqual(stock["transactions"][0], "ok")
        self.assertTrue(all(t != "ok" for t in stock["transactions"][1:]), stock["transactions"])
        self.assertNotEqual(stock["before"], stock["after"], "the successful transaction changed the table")
        for part in ("before", "transactions", "after", "table", "hash_table"):
            self.assertEqual(stock[part], patched[part], part)

    def test_a_transaction_copies_no_table_and_a_query_reads_no_other_partition(self) -> None:
        stock, patched = run("work", False), run("work", True)
        self.assertGreater(stock["table_copies"], 0, "the probe sees moto's own backups")
        self.assertGreater(stock["items_listed"], 0, "the probe sees moto's own full reads")
        self.assertEqual(patched, {"table_copies": 0, "items_listed": 0})


if __name__ == "__main__" and len(sys.argv) == 2 and sys.argv[1] in ("scenario", "work", "timings"):
    if os.environ.get("MOTO_PATCH") == "1":
        import moto_server

        moto_server.patch_for_scale()
    print(json.dumps({"scenario": scenario, "work": work, "timings": timings}[sys.argv[1]]()))
elif __name__ == "__main__":
    unittest.main()
