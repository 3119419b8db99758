#!/usr/bin/env python3
"""Tests of scripts/fuzz_hooks.py: its signature passes the local gateway's SigV4 check
(scripts/sigv4.py, what `--iam` runs), it leaves alone the cases that are about the signature or
the idempotency key, and it replaces only an idempotency key already sent with another request.

No stack needed: requests are prepared, never sent; schemathesis cases are stand-ins with the
fields the hooks read.
"""

from __future__ import annotations

import importlib
import os
import sys
import unittest
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import requests

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import sigv4  # noqa: E402

ACCESS_KEY, SECRET_KEY, REGION = "test", "test", "us-east-1"

with mock.patch.dict(os.environ, {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION}):
    os.environ.pop("AWS_SESSION_TOKEN", None)
    fuzz_hooks = importlib.import_module("fuzz_hooks")


def case(
    headers: dict[str, str] | None = None,
    body: Any = None,
    negative_on: str | None = None,
    label: str = "POST /charges",
    path: dict[str, str] | None = None,
) -> Any:
    """A stand-in for a schemathesis Case: negative with `negative_on` as its invalid part, or positive."""
    data = SimpleNamespace(parameter=negative_on, mutations=())
    meta = SimpleNamespace(generation=SimpleNamespace(mode=SimpleNamespace(is_negative=negative_on is not None)), phase=SimpleNamespace(data=data))
    return SimpleNamespace(
        meta=meta, headers=dict(headers or {}), body=body, path_parameters=dict(path or {}), operation=SimpleNamespace(label=label)
    )


def prepared(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> requests.PreparedRequest:
    return requests.Request(method, url, data=body, headers=headers).prepare()


def verdict(request: requests.PreparedRequest) -> Any:
    host = request.url.split("/")[2]
    target = request.url.split(host, 1)[1]
    pairs = [("Host", host)] + list(request.headers.items())
    body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
    return sigv4.verify(request.method, target, pairs, body, sigv4.LocalCredentials(ACCESS_KEY, SECRET_KEY, REGION))


class SignerTest(unittest.TestCase):
    def test_a_signed_post_passes_the_gateways_check_and_the_generated_authorization_is_replaced(self) -> None:
        request = prepared(
            "POST",
            "http://127.0.0.1:3000/charges/ch_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b/refunds?x=1&a=%20b",
            b'{"amount": 500}',
            {"Idempotency-Key": "k 1", "Content-Type": "application/json", "Authorization": "generated garbage"},
        )
        signed = fuzz_hooks.SIGNER(request)
        self.assertTrue(signed.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"))
        self.assertIsInstance(verdict(signed), sigv4.Verified)

    def test_a_signed_get_without_a_body_passes(self) -> None:
        signed = fuzz_hooks.SIGNER(prepared("GET", "http://127.0.0.1:3000/charges?invoice_id=inv_1", None, {}))
        self.assertIsInstance(verdict(signed), sigv4.Verified)

    def test_a_body_changed_after_signing_is_refused_so_the_check_is_real(self) -> None:
        signed = fuzz_hooks.SIGNER(prepared("POST", "http://127.0.0.1:3000/charges", b'{"amount": 1}', {"Idempotency-Key": "k"}))
        signed.body = b'{"amount": 2}'
        self.assertIsInstance(verdict(signed), sigv4.Refusal)


class BeforeCallTest(unittest.TestCase):
    def test_every_case_is_signed_except_one_about_the_authorization_header(self) -> None:
        for c, signed in [
            (case({"Authorization": "x"}), True),
            (case({"Authorization": "x"}, negative_on="amount"), True),
            (case({}, negative_on="Authorization"), False),
            (case({"Authorization": "x"}, negative_on="authorization"), False),
            # The stateful phase: a negative case that left the header out without naming it.
            (case({"Idempotency-Key": "k"}, negative_on="Idempotency-Key"), False),
            (case({}), True),
        ]:
            kwargs: dict[str, Any] = {}
            before = dict(c.headers)
            fuzz_hooks.before_call(None, c, kwargs)
            self.assertEqual("auth" in kwargs, signed, c.meta.phase.data)
            # Not edited: schemathesis would check an edited case again, and one without its
            # Authorization would count as negative.
            self.assertEqual(c.headers, before)

    def test_an_idempotency_key_sent_with_another_request_is_replaced_and_a_replay_is_not(self) -> None:
        fuzz_hooks._requests_by_key.clear()
        first = case({"Idempotency-Key": "0"}, {"amount": 1})
        fuzz_hooks.before_call(None, first, {})
        self.assertEqual(first.headers["Idempotency-Key"], "0")
        replay = case({"Idempotency-Key": "0"}, {"amount": 1})
        fuzz_hooks.before_call(None, replay, {})
        self.assertEqual(replay.headers["Idempotency-Key"], "0", "an exact replay keeps its key")
        other = case({"Idempotency-Key": "0"}, {"amount": 2})
        fuzz_hooks.before_call(None, other, {})
        self.assertTrue(other.headers["Idempotency-Key"].startswith("fuzz-"), other.headers)
        elsewhere = case({"Idempotency-Key": "0"}, {"amount": 1}, path={"id": "ch_1"}, label="POST /charges/{id}/refunds")
        fuzz_hooks.before_call(None, elsewhere, {})
        self.assertNotEqual(elsewhere.headers["Idempotency-Key"], "0", "another operation or path is another request")
        about_the_key = case({"Idempotency-Key": "0"}, {"amount": 3}, negative_on="Idempotency-Key")
        fuzz_hooks.before_call(None, about_the_key, {})
        self.assertEqual(about_the_key.headers["Idempotency-Key"], "0", "a case about the key goes out as generated")


if __name__ == "__main__":
    unittest.main()
