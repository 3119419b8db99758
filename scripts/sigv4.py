#!/usr/bin/env python3
"""AWS Signature Version 4 checks for the local gateway's `AWS_IAM` routes (`make dev LOCAL_IAM=1`).

In AWS, API Gateway refuses a call to an `AWS_IAM` route with 403 unless it carries a valid SigV4
signature (`Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` with
`X-Amz-Date`), and only then evaluates the caller's IAM policies. Locally there is one caller, the
stack's credentials (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` of the env file), and no policy:
any well-formed signature made with them, for service `execute-api` and the stack's region, within
15 minutes of the gateway's clock, passes.

`verify` recomputes the signature from the request as it arrived - method, path, query string, the
headers named in `SignedHeaders` and the SHA-256 of the body - following AWS's published algorithm
(the test vectors of AWS's SigV4 test suite are in test_sigv4.py) and compares in constant time. It
is a pure function: the clock is passed in, and the answer is the verified caller or a `Refusal`
with the message API Gateway answers and, for the log, what exactly did not match. Standard
library only. docs/local-gateway.md lists every answer and where each message comes from.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import posixpath
import re
import time
import urllib.parse
from dataclasses import dataclass, field

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
TERMINATOR = "aws4_request"
# AWS refuses a signature whose X-Amz-Date is more than 15 minutes from its clock (the window its
# "Signature expired: … (… - 15 min.)" message names).
CLOCK_SKEW_SECS = 15 * 60

# The bodies' messages. An HTTP API answers an unsigned call to an AWS_IAM route with
# {"message":"Forbidden"} (not a REST API's "Missing Authentication Token"); a signed one that does
# not verify gets the SigV4 message of the check that failed.
FORBIDDEN = "Forbidden"
INVALID_TOKEN = "The security token included in the request is invalid."
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

_AMZ_DATE = re.compile(r"^(\d{8})T(\d{6})Z$")
_HEX_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_UNRESERVED = "-_.~"


@dataclass(frozen=True)
class LocalCredentials:
    """The one caller the local gateway knows: the stack's credentials, scoped to `region` and `service`."""

    access_key: str
    secret_key: str = field(repr=False)
    region: str
    session_token: str | None = field(default=None, repr=False)
    service: str = SERVICE


@dataclass(frozen=True)
class Verified:
    """A request whose signature is the local credentials'."""

    access_key: str
    signed_headers: tuple[str, ...]


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: `message` goes into the 403's body, `reason` into the gateway's log."""

    message: str
    reason: str
    error_type: str | None = None  # the x-amzn-ErrorType header AWS sends with it, if any

    @property
    def status(self) -> int:
        return 403


def verify(
    method: str,
    target: str,
    header_pairs: list[tuple[str, str]],
    body: bytes,
    credentials: LocalCredentials,
    now: float | None = None,
) -> Verified | Refusal:
    """Checks the SigV4 signature of one request (`target` is the path and query as sent)."""
    now = time.time() if now is None else now
    headers = _header_values(header_pairs)
    raw_path, _, raw_query = target.partition("?")

    authorizations = headers.get("authorization", [])
    if not authorizations:
        if _is_presigned(raw_query):
            return Refusal(FORBIDDEN, "a query-string (presigned) signature; the local gateway checks the Authorization header only")
        return Refusal(FORBIDDEN, "no Authorization header: the call is not signed")
    if len(authorizations) > 1:
        return Refusal(FORBIDDEN, "more than one Authorization header")
    parsed = _parse_authorization(authorizations[0])
    if isinstance(parsed, Refusal):
        return parsed
    credential, signed_headers, signature = parsed

    dates = headers.get("x-amz-date", [])
    if len(dates) != 1 or not _AMZ_DATE.match(dates[0].strip()):
        return Refusal(FORBIDDEN, f"X-Amz-Date is missing or not YYYYMMDD'T'HHMMSS'Z' ({dates!r})")
    amz_date = dates[0].strip()

    access_key, scope_date, region, service, terminator = credential
    if not hmac.compare_digest(access_key.encode(), credentials.access_key.encode()):
        return Refusal(INVALID_TOKEN, f"access key {access_key!r} is not the stack's ({credentials.access_key!r})", "UnrecognizedClientException")
    tokens = headers.get("x-amz-security-token", [])
    if credentials.session_token is None and tokens:
        return Refusal(INVALID_TOKEN, "X-Amz-Security-Token sent, but the stack's credentials have no session token", "UnrecognizedClientException")
    if credentials.session_token is not None and (
        len(tokens) != 1 or not hmac.compare_digest(tokens[0].strip().encode(), credentials.session_token.encode())
    ):
        return Refusal(INVALID_TOKEN, "X-Amz-Security-Token is missing or not the stack's AWS_SESSION_TOKEN", "UnrecognizedClientException")
    if scope_date != amz_date[:8]:
        return Refusal(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
            "the credential scope's date is not X-Amz-Date's",
            "InvalidSignatureException",
        )
    if region != credentials.region:
        return Refusal(
            f"Credential should be scoped to a valid region, not '{region}'. ",
            f"signed for region {region!r}; the local stack's is {credentials.region!r}",
            "InvalidSignatureException",
        )
    if service != credentials.service or terminator != TERMINATOR:
        return Refusal(
            f"Credential should be scoped to correct service: '{credentials.service}'. ",
            f"signed for service {service!r} ({terminator!r}); API Gateway is {credentials.service!r} (aws4_request)",
            "InvalidSignatureException",
        )
    signed_at = _epoch(amz_date)
    if signed_at is None:
        return Refusal(FORBIDDEN, f"X-Amz-Date {amz_date!r} is not a date")
    stale = _skew_refusal(amz_date, signed_at, now)
    if stale is not None:
        return stale

    payload_hash = hashlib.sha256(body).hexdigest()
    # API Gateway hashes the body itself; a client's own x-amz-content-sha256 (S3's header) must
    # then agree with the bytes that arrived, or the body was changed after signing.
    declared = headers.get("x-amz-content-sha256", [])
    if declared and declared[0].strip() != payload_hash:
        return Refusal(
            SIGNATURE_MISMATCH,
            f"x-amz-content-sha256 {declared[0].strip()!r} is not the SHA-256 of the body that arrived ({payload_hash})",
            "InvalidSignatureException",
        )
    missing = [name for name in signed_headers if name not in headers]
    if missing:
        return Refusal(SIGNATURE_MISMATCH, f"signed header(s) {missing} are not in the request", "InvalidSignatureException")

    request = canonical_request(method, raw_path, raw_query, headers, signed_headers, payload_hash)
    scope = f"{scope_date}/{region}/{service}/{TERMINATOR}"
    to_sign = string_to_sign(amz_date, scope, request)
    expected = signature_of(credentials.secret_key, scope_date, region, service, to_sign)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        canonical = request.replace("\n", "\\n")
        return Refusal(
            SIGNATURE_MISMATCH,
            f"signature does not match (wrong secret, or the method, path, query, a signed header or the body "
            f"differ from what was signed); canonical request here: '{canonical}'",
            "InvalidSignatureException",
        )
    return Verified(access_key, signed_headers)


# --------------------------------------------------------------------------- the algorithm


def canonical_request(
    method: str, raw_path: str, raw_query: str, headers: dict[str, list[str]], signed_headers: tuple[str, ...], payload_hash: str
) -> str:
    """AWS's canonical request: method, URI, query, headers, signed header names, payload hash."""
    lines = [
        method.upper(),
        canonical_uri(raw_path),
        canonical_query(raw_query),
        "".join(f"{name}:{_canonical_value(headers[name])}\n" for name in signed_headers),
        ";".join(signed_headers),
        payload_hash,
    ]
    return "\n".join(lines)


def canonical_uri(raw_path: str) -> str:
    """The path normalised (`.`, `..`, `//` removed) and URI-encoded once more, as every service but S3 does."""
    path = raw_path or "/"
    normalized = posixpath.normpath(path)
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return urllib.parse.quote(normalized, safe="/~")


def canonical_query(raw_query: str) -> str:
    """Names and values decoded, URI-encoded with AWS's unreserved set, sorted by name then value."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append(
            (
                urllib.parse.quote(urllib.parse.unquote(name), safe=_UNRESERVED),
                urllib.parse.quote(urllib.parse.unquote(value), safe=_UNRESERVED),
            )
        )
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])


def signature_of(secret_key: str, date: str, region: str, service: str, to_sign: str) -> str:
    """HMAC-SHA256 of the string to sign with the key derived from the secret, date, region and service."""
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- parsing


def _header_values(header_pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in header_pairs:
        headers.setdefault(name.strip().lower(), []).append(value)
    return headers


def _canonical_value(values: list[str]) -> str:
    """Each value trimmed, runs of spaces made one; repeated headers joined with commas."""
    return ",".join(" ".join(value.split()) for value in values)


def _is_presigned(raw_query: str) -> bool:
    names = {urllib.parse.unquote(part.partition("=")[0]).lower() for part in raw_query.split("&") if part}
    return bool(names & {"x-amz-signature", "x-amz-algorithm", "x-amz-credential"})


def _parse_authorization(value: str) -> tuple[tuple[str, str, str, str, str], tuple[str, ...], str] | Refusal:
    """(credential parts, signed header names, signature) of `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return Refusal(FORBIDDEN, f"Authorization is not {ALGORITHM} (it starts {algorithm[:40]!r})")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, item_value = item.strip().partition("=")
        if not sep or name in fields:
            return Refusal(FORBIDDEN, f"Authorization has a malformed or repeated component {item.strip()[:60]!r}")
        fields[name] = item_value.strip()
    absent = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if absent or set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        return Refusal(FORBIDDEN, f"Authorization needs exactly Credential, SignedHeaders and Signature (missing {absent}, has {sorted(fields)})")
    credential = fields["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        return Refusal(FORBIDDEN, f"Credential is not <access key>/<date>/<region>/<service>/aws4_request ({fields['Credential']!r})")
    signed = tuple(fields["SignedHeaders"].split(";"))
    if not all(signed) or list(signed) != sorted(set(signed)) or any(name != name.lower() for name in signed):
        return Refusal(FORBIDDEN, f"SignedHeaders must be lower-case, sorted and without repeats ({fields['SignedHeaders']!r})")
    if "host" not in signed:
        return Refusal(FORBIDDEN, f"the Host header is not signed (SignedHeaders={fields['SignedHeaders']})")
    signature = fields["Signature"]
    if not _HEX_SIGNATURE.match(signature):
        return Refusal(SIGNATURE_MISMATCH, "Signature is not 64 lower-case hex digits", "InvalidSignatureException")
    access_key, date, region, service, terminator = credential
    return (access_key, date, region, service, terminator), signed, signature


def _epoch(amz_date: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))
    except (ValueError, OverflowError):
        return None


def _skew_refusal(amz_date: str, signed_at: float, now: float) -> Refusal | None:
    fmt = "%Y%m%dT%H%M%SZ"
    if signed_at < now - CLOCK_SKEW_SECS:
        earliest = time.strftime(fmt, time.gmtime(now - CLOCK_SKEW_SECS))
        return Refusal(
            f"Signature expired: {amz_date} is now earlier than {earliest} ({time.strftime(fmt, time.gmtime(now))} - 15 min.)",
            f"X-Amz-Date {amz_date} is {int(now - signed_at)} s old; at most {CLOCK_SKEW_SECS} s are accepted",
            "InvalidSignatureException",
        )
    if signed_at > now + CLOCK_SKEW_SECS:
        latest = time.strftime(fmt, time.gmtime(now + CLOCK_SKEW_SECS))
        return Refusal(
            f"Signature not yet current: {amz_date} is still later than {latest} ({time.strftime(fmt, time.gmtime(now))} + 15 min.)",
            f"X-Amz-Date {amz_date} is {int(signed_at - now)} s in the future; at most {CLOCK_SKEW_SECS} s are accepted",
            "InvalidSignatureException",
        )
    return None
