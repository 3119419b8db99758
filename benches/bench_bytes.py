"""Bytes of `make bench-lambdas`: each function's zip, and the size of every kind of item a run left
in the table, with the DynamoDB capacity units one write or read of it costs.

Item size follows DynamoDB's published rules ("Item sizes and formats" in the DynamoDB developer
guide): attribute names count in UTF-8 bytes; a string by its UTF-8 bytes; binary by its bytes; a
number about one byte per two significant digits plus one; boolean and null one byte; a list or map
3 bytes plus 1 per element, plus its elements (a map's keys included). A standard write costs one
WCU per started KB, a strongly consistent read one RCU per started 4 KB (half for an eventually
consistent one), a transactional write or read twice that; every GSI the item is in takes the write
again at the item's size (paybridge's GSIs project ALL attributes).
"""

from __future__ import annotations

import io
import math
import statistics
import zipfile
from pathlib import Path
from typing import Any


def zip_bytes(binary: Path) -> int:
    """The size of the function's deployment zip: the binary as `bootstrap`, deflated at level 9
    (what `zip -9` and cargo-lambda's zips do)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, binary.read_bytes(), compresslevel=9)
    return len(buf.getvalue())


def number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
    return math.ceil(len(digits) / 2) + 1 + (1 if text.startswith("-") else 0)


def value_size(value: dict[str, Any]) -> int:
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode("utf-8"))
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in v)
    if kind == "NS":
        return sum(number_size(n) for n in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(e) for k, e in v.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode("utf-8")) + value_size(v) for name, v in item.items())


def kind_of(item: dict[str, dict[str, Any]]) -> str:
    pk = item.get("pk", {}).get("S", "")
    sk = item.get("sk", {}).get("S", "")
    prefix = pk.split("#", 1)[0]
    if prefix == "CHARGE":
        return {"CHARGE": "charge"}.get(sk, sk.split("#", 1)[0].lower() or "charge")
    return {
        "EVENT": "gateway event",
        "IDEMPOTENCY": "idempotency record",
        "INVOICE": "invoice",
        "GWREF": "gateway reference",
    }.get(prefix, f"{prefix.lower()} pointer" if sk == prefix else f"{prefix.lower()} / {sk.lower()}")


def gsis(item: dict[str, dict[str, Any]]) -> int:
    return sum(1 for name in ("gsi1pk", "gsi2pk") if name in item)


def scan_items(env: dict[str, str]) -> list[dict[str, dict[str, Any]]]:
    import boto3  # the venv has it (moto's client side); imported here so the zip part needs nothing

    client = boto3.client(
        "dynamodb",
        endpoint_url=env["PAYBRIDGE_MOTO_URL"],
        region_name=env.get("AWS_REGION", "eu-west-1"),
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "test"),
    )
    items: list[dict[str, dict[str, Any]]] = []
    for page in client.get_paginator("scan").paginate(TableName=env["PAYBRIDGE_TABLE"]):
        items.extend(page["Items"])
    return items


def item_table(items: list[dict[str, dict[str, Any]]]) -> str:
    by_kind: dict[str, list[dict[str, dict[str, Any]]]] = {}
    for item in items:
        by_kind.setdefault(kind_of(item), []).append(item)
    lines = [
        "| item | count | size B (median / max) | WCU per write (median) | GSI keys at the end (max) | RCU per strong read |",
        "|---|---|---|---|---|---|",
    ]
    for kind, group in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        sizes = [item_size(i) for i in group]
        med = statistics.median(sizes)
        lines.append(
            f"| {kind} | {len(group)} | {med:.0f} / {max(sizes)} | {math.ceil(med / 1024)} "
            f"| {max(gsis(i) for i in group)} | {math.ceil(med / 4096)} |"
        )
    return "\n".join(lines)
