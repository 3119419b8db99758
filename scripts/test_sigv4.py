#!/usr/bin/env python3
"""Tests of scripts/sigv4.py: the SigV4 check of the local gateway's AWS_IAM routes.

Two independent references: the published vectors of AWS's Signature Version 4 test suite
(aws-sig-v4-test-suite: get-vanilla, get-vanilla-query-order-key-case, post-vanilla; credentials
AKIDEXAMPLE, 2015-08-30T12:36:00Z, service `service`), and botocore's signer (`SigV4Auth`, what
every boto3 client and the demo use) for the requests billing makes. The gateway's own tests
(test_local_gateway.py) send such requests over HTTP.

    .venv/bin/python -m unittest scripts/test_sigv4.py -v
"""

from __future__ import annotations

import calendar
import datetime
import sys
import unittest
import urllib.parse
from pathlib import Path
from typing import Any
from unittest import mock

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import sigv4  # noqa: E402

# AWS's SigV4 test suite.
SUITE = sigv4.LocalCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", service="service")
SUITE_NOW = calendar.timegm((2015, 8, 30, 12, 36, 0))
SUITE_CASES = {
    # name: (method, target, signature)
    "get-vanilla": ("GET", "/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    "get-vanilla-query-order-key-case": (
        "GET",
        "/?Param2=value2&Param1=value1",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    "post-vanilla": ("POST", "/", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
}

LOCAL = sigv4.LocalCredentials("test", "test", "us-east-1")
NOW = calendar.timegm((2026, 12, 1, 10, 0, 0))
HOST = "127.0.0.1:3000"


def suite_headers(signature: str) -> list[tuple[str, str]]:
    return [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        (
            "Authorization",
            f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={signature}",
        ),
    ]


def botocore_signed(
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    access_key: str = "test",
    secret_key: str = "test",
    token: str | None = None,
    region: str = "us-east-1",
    service: str = "execute-api",
    at: float = NOW,
) -> list[tuple[str, str]]:
    """The headers botocore's SigV4Auth sends for this request (plus Host, which the HTTP client adds)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=f"http://{HOST}{target}", data=body, headers=dict(headers or {}))
    when = datetime.datetime.fromtimestamp(at, tz=datetime.timezone.utc).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(Credentials(access_key, secret_key, token), service, region).add_auth(request)
    return [("Host", HOST)] + list(request.headers.items())


def replace(headers: list[tuple[str, str]], name: str, value: str | None) -> list[tuple[str, str]]:
    out = [(n, v) for n, v in headers if n.lower() != name.lower()]
    return out if value is None else out + [(name, value)]


class AwsTestSuiteTest(unittest.TestCase):
    def test_the_published_vectors_of_aws_sigv4_test_suite_verify(self) -> None:
        for name, (method, target, signature) in SUITE_CASES.items():
            with self.subTest(name):
                result = sigv4.verify(method, target, suite_headers(signature), b"", SUITE, SUITE_NOW)
                self.assertEqual(result, sigv4.Verified("AKIDEXAMPLE", ("host", "x-amz-date")))

    def test_a_vector_with_another_method_or_query_does_not_verify(self) -> None:
        _, _, get_signature = SUITE_CASES["get-vanilla"]
        for method, target in (("POST", "/"), ("GET", "/?Param1=value1"), ("GET", "/other")):
            with self.subTest(f"{method} {target}"):
                result = sigv4.verify(method, target, suite_headers(get_signature), b"", SUITE, SUITE_NOW)
                self.assertIsInstance(result, sigv4.Refusal)
                assert isinstance(result, sigv4.Refusal)
                self.assertEqual(result.message, sigv4.SIGNATURE_MISMATCH)


class CanonicalFormTest(unittest.TestCase):
    """AWS's rules for the canonical request, where a client could encode differently."""

    def test_query_names_and_values_are_reencoded_with_only_unreserved_characters_left(self) -> None:
        self.assertEqual(sigv4.canonical_query("b=x~y&a=b:c&a=%7e&c=%2a&d"), "a=b%3Ac&a=~&b=x~y&c=%2A&d=")

    def test_the_path_is_normalised_and_encoded_once_more(self) -> None:
        self.assertEqual(sigv4.canonical_uri("/charges/ch%201"), "/charges/ch%25201")
        self.assertEqual(sigv4.canonical_uri("/a/./b/../c//d/"), "/a/c/d/")
        self.assertEqual(sigv4.canonical_uri(""), "/")


class BotocoreSignedTest(unittest.TestCase):
    """What billing sends (boto3/botocore's signer) verifies; any change after signing does not."""

    def verify(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"", now: float = NOW) -> Any:
        return sigv4.verify(method, target, headers, body, LOCAL, now)

    def assertRefused(self, result: Any, message: str, reason: str = "") -> None:  # noqa: N802 - unittest style
        self.assertIsInstance(result, sigv4.Refusal, result)
        self.assertEqual(result.message, message)
        self.assertEqual(result.status, 403)
        self.assertIn(reason, result.reason)

    def test_a_signed_get_with_a_query_verifies(self) -> None:
        target = "/charges?" + urllib.parse.urlencode({"invoice_id": "inv_123"})
        result = self.verify("GET", target, botocore_signed("GET", target))
        self.assertIsInstance(result, sigv4.Verified, result)
        self.assertEqual(result.access_key, "test")

    def test_a_query_that_needs_encoding_verifies(self) -> None:
        target = "/charges?" + urllib.parse.urlencode({"invoice_id": "inv 1/2:ü", "b": "x~y"}, quote_via=urllib.parse.quote)
        self.assertIsInstance(self.verify("GET", target, botocore_signed("GET", target)), sigv4.Verified)

    def test_a_percent_encoded_path_verifies(self) -> None:
        self.assertIsInstance(self.verify("GET", "/charges/ch%201", botocore_signed("GET", "/charges/ch%201")), sigv4.Verified)

    def test_a_signed_post_with_a_body_and_signed_headers_verifies(self) -> None:
        body = b'{"invoice_id":"inv_1","amount":1999,"currency":"eur"}'
        headers = botocore_signed(
            "POST", "/charges", body, {"Content-Type": "application/json", "Idempotency-Key": "inv_1-1"}
        )
        result = self.verify("POST", "/charges", headers, body)
        self.assertIsInstance(result, sigv4.Verified, result)
        self.assertEqual(result.signed_headers, ("content-type", "host", "idempotency-key", "x-amz-date"))

    def test_header_values_are_compared_trimmed_with_inner_spaces_collapsed(self) -> None:
        headers = botocore_signed("POST", "/charges", b"{}", {"X-Note": "a  b"})
        respaced = replace(headers, "X-Note", "  a   b ")
        self.assertIsInstance(self.verify("POST", "/charges", respaced, b"{}"), sigv4.Verified)

    def test_a_session_token_must_be_the_stacks(self) -> None:
        with_token = sigv4.LocalCredentials("test", "test", "us-east-1", session_token="tok")
        headers = botocore_signed("GET", "/refunds/rf_1", token="tok")
        self.assertIsInstance(sigv4.verify("GET", "/refunds/rf_1", headers, b"", with_token, NOW), sigv4.Verified)
        other = botocore_signed("GET", "/refunds/rf_1", token="other")
        self.assertRefused(sigv4.verify("GET", "/refunds/rf_1", other, b"", with_token, NOW), sigv4.INVALID_TOKEN)
        self.assertRefused(self.verify("GET", "/refunds/rf_1", headers), sigv4.INVALID_TOKEN, "no session token")

    def test_the_wrong_secret_is_refused(self) -> None:
        headers = botocore_signed("GET", "/charges/ch_1", secret_key="not-the-secret")
        self.assertRefused(self.verify("GET", "/charges/ch_1", headers), sigv4.SIGNATURE_MISMATCH, "signature does not match")

    def test_another_access_key_is_refused(self) -> None:
        headers = botocore_signed("GET", "/charges/ch_1", access_key="AKIAOTHER")
        result = self.verify("GET", "/charges/ch_1", headers)
        self.assertRefused(result, sigv4.INVALID_TOKEN, "AKIAOTHER")
        self.assertEqual(result.error_type, "UnrecognizedClientException")

    def test_a_body_changed_after_signing_is_refused(self) -> None:
        headers = botocore_signed("POST", "/charges/ch_1/refunds", b'{"amount":500}', {"Content-Type": "application/json"})
        self.assertRefused(self.verify("POST", "/charges/ch_1/refunds", headers, b'{"amount":50000}'), sigv4.SIGNATURE_MISMATCH)

    def test_a_declared_payload_hash_must_be_the_bodys(self) -> None:
        headers = botocore_signed("POST", "/charges", b"{}", {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
        self.assertRefused(self.verify("POST", "/charges", headers, b"{}"), sigv4.SIGNATURE_MISMATCH, "x-amz-content-sha256")

    def test_a_signed_header_changed_after_signing_is_refused(self) -> None:
        headers = botocore_signed("POST", "/charges", b"{}", {"Idempotency-Key": "key-1"})
        self.assertRefused(self.verify("POST", "/charges", replace(headers, "Idempotency-Key", "key-2"), b"{}"), sigv4.SIGNATURE_MISMATCH)
        self.assertRefused(
            self.verify("POST", "/charges", replace(headers, "Idempotency-Key", None), b"{}"), sigv4.SIGNATURE_MISMATCH, "not in the request"
        )

    def test_a_signature_for_another_path_method_or_query_is_refused(self) -> None:
        headers = botocore_signed("GET", "/charges/ch_A")
        for method, target in (("GET", "/charges/ch_B"), ("POST", "/charges/ch_A"), ("GET", "/charges/ch_A?x=1")):
            with self.subTest(f"{method} {target}"):
                self.assertRefused(self.verify(method, target, headers), sigv4.SIGNATURE_MISMATCH)

    def test_a_signature_is_accepted_for_15_minutes_either_way_and_no_longer(self) -> None:
        window = sigv4.CLOCK_SKEW_SECS
        for signed_at in (NOW - window + 1, NOW + window - 1):
            self.assertIsInstance(self.verify("GET", "/charges/ch_1", botocore_signed("GET", "/charges/ch_1", at=signed_at)), sigv4.Verified)
        old = self.verify("GET", "/charges/ch_1", botocore_signed("GET", "/charges/ch_1", at=NOW - window - 1))
        self.assertRefused(old, "Signature expired: 20261201T094459Z is now earlier than 20261201T094500Z (20261201T100000Z - 15 min.)")
        ahead = self.verify("GET", "/charges/ch_1", botocore_signed("GET", "/charges/ch_1", at=NOW + window + 1))
        self.assertRefused(
            ahead, "Signature not yet current: 20261201T101501Z is still later than 20261201T101500Z (20261201T100000Z + 15 min.)"
        )

    def test_a_signature_for_another_region_or_service_is_refused(self) -> None:
        elsewhere = self.verify("GET", "/charges/ch_1", botocore_signed("GET", "/charges/ch_1", region="eu-west-1"))
        self.assertRefused(elsewhere, "Credential should be scoped to a valid region, not 'eu-west-1'. ")
        other_service = self.verify("GET", "/charges/ch_1", botocore_signed("GET", "/charges/ch_1", service="lambda"))
        self.assertRefused(other_service, "Credential should be scoped to correct service: 'execute-api'. ")

    def test_a_scope_date_that_is_not_the_requests_is_refused(self) -> None:
        headers = botocore_signed("GET", "/charges/ch_1")
        auth = dict(headers)["Authorization"].replace("/20261201/", "/20261130/")
        self.assertRefused(
            self.verify("GET", "/charges/ch_1", replace(headers, "Authorization", auth)),
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            "'20261130' != '20261201', from '20261201T100000Z'.",
        )


class UnsignedOrMalformedTest(unittest.TestCase):
    """Everything that is not a complete SigV4 Authorization header: 403 {"message":"Forbidden"}."""

    def assertForbidden(self, headers: list[tuple[str, str]], reason: str, target: str = "/charges/ch_1") -> None:  # noqa: N802
        result = sigv4.verify("GET", target, headers, b"", LOCAL, NOW)
        self.assertIsInstance(result, sigv4.Refusal, result)
        assert isinstance(result, sigv4.Refusal)
        self.assertEqual((result.status, result.message), (403, "Forbidden"))
        self.assertIn(reason, result.reason)

    def test_an_unsigned_call_is_forbidden(self) -> None:
        self.assertForbidden([("Host", HOST)], "not signed")

    def test_a_presigned_url_is_forbidden_as_not_checked_locally(self) -> None:
        self.assertForbidden([("Host", HOST)], "presigned", "/charges/ch_1?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00")

    def test_malformed_authorization_headers_are_forbidden(self) -> None:
        good = dict(botocore_signed("GET", "/charges/ch_1"))["Authorization"]
        cases = {
            "Bearer abc": "is not AWS4-HMAC-SHA256",
            "AWS4-ECDSA-P256-SHA256 " + good.partition(" ")[2]: "is not AWS4-HMAC-SHA256",
            good.replace(", Signature=", ", Sig="): "exactly Credential, SignedHeaders and Signature",
            good.replace("Credential=test/", "Credential="): "Credential is not",
            good.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date;host"): "sorted",
            good.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date"): "Host header is not signed",
            good + ", Signature=00": "repeated",
        }
        for authorization, reason in cases.items():
            with self.subTest(authorization):
                headers = replace(botocore_signed("GET", "/charges/ch_1"), "Authorization", authorization)
                self.assertForbidden(headers, reason)

    def test_a_missing_or_malformed_x_amz_date_is_forbidden(self) -> None:
        headers = botocore_signed("GET", "/charges/ch_1")
        self.assertForbidden(replace(headers, "X-Amz-Date", None), "X-Amz-Date")
        self.assertForbidden(replace(headers, "X-Amz-Date", "Tue, 01 Dec 2026 10:00:00 GMT"), "X-Amz-Date")


if __name__ == "__main__":
    unittest.main()
