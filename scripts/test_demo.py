#!/usr/bin/env python3
"""Tests of scripts/demo.py's SigV4 signing (`make demo LOCAL_IAM=1`) against the local gateway.

The whole demo needs `make dev` (functions, localstripe, receiver); these tests check what signing
adds, against local_gateway.py serving template.yaml in front of a stub function that answers the
demo's probe as the charges function does (404 with paybridge's JSON error):

- `connect` signs when asked (`--sign`) and when the gateway refuses an unsigned call, and says
  what to do when it cannot sign or its signature is refused;
- the demo's signed calls (JSON body, Idempotency-Key, query strings) pass the gateway's check.

    .venv/bin/python -m unittest scripts/test_demo.py -v
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import unittest
from pathlib import Path
from typing import Any
from unittest import mock

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import demo  # noqa: E402
import stack  # noqa: E402
from test_local_gateway import ACCESS_KEY, TAG, GatewayOnTemplate, new_tag  # noqa: E402

NOT_FOUND = {
    "statusCode": 404,
    "headers": {"content-type": "application/json"},
    "body": json.dumps({"error": {"code": "not_found", "message": "no charge with this id"}}),
}


def quietly(fn: Any, *args: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


class DemoAgainstAnIamGatewayTest(unittest.TestCase):
    gateway: GatewayOnTemplate
    env: Path

    @classmethod
    def setUpClass(cls) -> None:
        cls.gateway = GatewayOnTemplate(["--iam"])
        cls.gateway.stub.http_answer = NOT_FOUND
        cls.env = cls.gateway.tmp / "env"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.gateway.stop()

    def test_connect_signs_when_the_gateway_refuses_an_unsigned_call(self) -> None:
        signer, checks_iam = quietly(demo.connect, self.gateway.url, False, self.env)
        self.assertTrue(checks_iam)
        self.assertIsNotNone(signer)
        self.assertEqual((signer.access_key, signer.region), (ACCESS_KEY, stack.REGION))

    def test_connect_says_what_to_do_without_an_env_file(self) -> None:
        with self.assertRaises(demo.DemoError) as caught:
            quietly(demo.connect, self.gateway.url, False, self.gateway.tmp / "no-such-env")
        self.assertIn("no env file at", str(caught.exception))
        self.assertIn("make dev LOCAL_IAM=1", str(caught.exception))

    def test_connect_says_when_the_gateway_refuses_its_signature(self) -> None:
        other = self.gateway.tmp / "other-env"
        stack.write_env(other, {"AWS_REGION": stack.REGION, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": "another-stack"})
        with self.assertRaises(demo.DemoError) as caught:
            quietly(demo.connect, self.gateway.url, True, other)
        self.assertIn("refused the signed call too", str(caught.exception))
        self.assertIn("The request signature we calculated does not match", str(caught.exception))

    def test_the_demos_signed_calls_pass_the_gateways_check(self) -> None:
        signer = demo.Signer.from_env_file(self.env)
        cases = [
            ("POST", "/charges", {"invoice_id": "inv_demo", "amount": 1999, "currency": "eur"}),
            ("POST", "/charges/ch_demo/cancel", None),
            ("GET", "/charges?invoice_id=inv_demo_1234", None),
            ("GET", "/charges/ch_demo/refunds", None),
        ]
        for method, path, body in cases:
            with self.subTest(f"{method} {path}"):
                tag = new_tag()
                headers = {TAG: tag, **({"Idempotency-Key": f"demo-{tag}"} if method == "POST" else {})}
                unsigned = demo.request(method, self.gateway.url + path, body, headers)
                self.assertEqual((unsigned.status, unsigned.json), (403, {"message": "Forbidden"}))
                reply = demo.request(method, self.gateway.url + path, body, headers, signer=signer)
                self.assertEqual(reply.status, 404, reply.text)
                calls = self.gateway.calls_tagged(tag)
                self.assertEqual(len(calls), 1)
                event = calls[0].event
                self.assertEqual(event["requestContext"]["authorizer"]["iam"]["accessKey"], ACCESS_KEY)
                if body is not None:
                    self.assertEqual(json.loads(event["body"]), body)

    def test_the_demos_refusal_step_sees_both_calls_refused_before_the_function(self) -> None:
        signer = demo.Signer.from_env_file(self.env)
        runner = demo.Demo(self.gateway.url, None, "http://127.0.0.1:1", "whsec_unused", signer, checks_iam=True)
        before = len(self.gateway.stub.calls)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            runner.show_refused_billing_calls({"invoice_id": "inv_demo", "amount": 1999, "currency": "eur"})
        self.assertEqual(len(self.gateway.stub.calls), before, "a refused call reached the function")
        self.assertIn("403 Forbidden - the charges function never ran", out.getvalue())
        self.assertIn("403 The request signature we calculated does not match", out.getvalue())

    def test_without_botocore_the_demo_says_how_to_get_it(self) -> None:
        with mock.patch.dict(sys.modules, {"botocore.auth": None, "botocore.credentials": None}):
            with self.assertRaises(demo.DemoError) as caught:
                demo.Signer.from_env_file(self.env)
        self.assertIn(".venv/bin/python", str(caught.exception))


class DemoAgainstAnOpenGatewayTest(unittest.TestCase):
    """The default make dev: the demo runs unsigned, or signed with --sign (which an open gateway ignores)."""

    gateway: GatewayOnTemplate

    @classmethod
    def setUpClass(cls) -> None:
        cls.gateway = GatewayOnTemplate([])
        cls.gateway.stub.http_answer = NOT_FOUND

    @classmethod
    def tearDownClass(cls) -> None:
        cls.gateway.stop()

    def test_connect_does_not_sign_unless_asked(self) -> None:
        self.assertEqual(quietly(demo.connect, self.gateway.url, False, self.gateway.tmp / "env"), (None, False))
        signer, checks_iam = quietly(demo.connect, self.gateway.url, True, self.gateway.tmp / "env")
        self.assertIsNotNone(signer)
        self.assertFalse(checks_iam)


if __name__ == "__main__":
    unittest.main()
