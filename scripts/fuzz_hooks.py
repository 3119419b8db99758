"""Schemathesis hooks for scripts/fuzz_api.py: every generated request is SigV4-signed, as a billing
system's calls are in AWS, unless the case is about the signature itself.

openapi.json says every billing route needs AWS Signature Version 4 (the `sigv4` scheme, an
`Authorization` header). The fuzz runs against a local gateway started with `--iam`, which checks
it as API Gateway does, so an unsigned call is refused with 403 before any function runs. For the
fuzz to reach the functions, each request is signed here over the exact bytes that go out (method,
URL, headers, body: a `requests` auth hook, applied after schemathesis has serialised the case)
with the local stack's credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION of the
stack's env), replacing whatever `Authorization` value schemathesis generated for the scheme
(botocore drops an existing `Authorization` before it signs).

A negative case that mutates the `Authorization` header itself (left out, or an invalid value), or
that comes without one (the stateful phase's negative cases do not always say what they mutated),
is sent as schemathesis made it, unsigned: the gateway must refuse it with 403, which
`negative_data_rejection` then checks.

Idempotency keys: schemathesis draws short keys (`0`, the example `inv_123-attempt-1`) again and
again, and paybridge rightly answers a key reused for another request `422
idempotency_key_reused` - so most POSTs would never get past the key. A key already sent with a
different request (operation, path, body) is therefore replaced by a fresh one; the first use of
every generated key, exact replays (same key, same request: the stored answer again) and cases
whose invalid part is the key itself go out as generated.

Loaded by schemathesis through SCHEMATHESIS_HOOKS (a file path); not imported by anything else.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from typing import Any

import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SIGNED_HEADERS_SET = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


class SigV4(requests.auth.AuthBase):
    """Signs a prepared request for `execute-api` the way boto3 clients sign."""

    def __init__(self) -> None:
        self.signer = SigV4Auth(
            Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], os.environ.get("AWS_SESSION_TOKEN")),
            "execute-api",
            os.environ.get("AWS_REGION", "us-east-1"),
        )

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        request = AWSRequest(method=prepared.method, url=prepared.url, data=body, headers=dict(prepared.headers))
        self.signer.add_auth(request)
        for name in SIGNED_HEADERS_SET:
            if name in request.headers:
                prepared.headers[name] = request.headers[name]
        return prepared


SIGNER = SigV4()


def mutates(case: Any, header: str) -> bool:
    """True for a negative case whose invalid part is the header `header`."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    data = meta.phase.data
    names = {getattr(data, "parameter", None)}
    names.update(getattr(m, "parameter", None) for m in (getattr(data, "mutations", None) or []))
    return any(isinstance(n, str) and n.lower() == header.lower() for n in names)


def drops_authorization(case: Any) -> bool:
    """True for a negative case sent without the `Authorization` header the scheme requires.

    The stateful phase's negative cases do not always name what they mutated in `meta.phase.data`
    (a case that left out both `Idempotency-Key` and `Authorization` was signed here, accepted, and
    reported as "schema-violating request accepted"): the header's absence says it instead.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    headers = case.headers or {}
    return not any(isinstance(n, str) and n.lower() == "authorization" for n in headers)


_requests_by_key: dict[str, str] = {}
_keys_lock = threading.Lock()


def request_of(case: Any) -> str:
    return json.dumps([case.operation.label, case.path_parameters, case.body], sort_keys=True, default=repr)


def fresh_idempotency_key(case: Any) -> None:
    """Replaces a generated Idempotency-Key that was already sent with another request."""
    if not case.headers or mutates(case, "Idempotency-Key"):
        return
    name = next((n for n in case.headers if n.lower() == "idempotency-key"), None)
    key = case.headers.get(name) if name else None
    if not isinstance(key, str):
        return
    this = request_of(case)
    with _keys_lock:
        if _requests_by_key.setdefault(key, this) != this:
            key = f"fuzz-{uuid.uuid4()}"
            _requests_by_key[key] = this
            case.headers[name] = key


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    # The case itself is left alone: schemathesis checks a case edited here against the schema
    # again, and one without the `Authorization` the scheme requires would count as negative. The
    # signer replaces the generated value in the prepared request instead.
    fresh_idempotency_key(case)
    if not mutates(case, "Authorization") and not drops_authorization(case):
        kwargs["auth"] = SIGNER
