#!/usr/bin/env python3
"""A local Adyen: the Checkout API v72 calls paybridge makes, and Adyen's signed notifications.

    adyen_fake.py PORT [--secrets local/secrets.json] [--webhook-url URL] [--notify-delay S]
                       [--port-file F]

PORT 0 picks a free port (written to --port-file). Binds 127.0.0.1 only; SIGINT/SIGTERM stop it.
Standard library only. Everything it knows lives in memory: every start is a clean slate.

Checkout API (what paybridge's Adyen adapter sends; shared/src/adapters/gateways/adyen/):

    POST /v72/payments                                   a payment of a stored card
    POST /v72/payments/{paymentPspReference}/captures    201 status "received", then CAPTURE
    POST /v72/payments/{paymentPspReference}/cancels     201 status "received", then CANCELLATION
    POST /v72/payments/{paymentPspReference}/refunds     201 status "received", then REFUND

Every call needs `X-API-Key` (adyen.api_key of the secrets file; 401 otherwise), a JSON body and
an `Idempotency-Key` of 1 to 64 characters (Adyen makes the key optional; this fake requires it,
as paybridge always sends one). The first answer to a key is replayed for every later request
with it, as Adyen does; a request whose key is still being answered gets 422 `704`. Fields a
structure of the published API does not define are refused (422 `702`), as Adyen refuses them.

What a payment answers is chosen by `paymentMethod.storedPaymentMethodId` (see OUTCOMES):
`stored_ok` authorises, `stored_refused` (and `stored_not_enough_balance`, `stored_expired_card`,
`stored_blocked_card`, `stored_cvc_declined`, `stored_fraud`) are refused with Adyen's refusalReason and code,
`stored_pending` is Pending and authorised by a later AUTHORISATION, `stored_3ds` asks for a
challenge, `stored_3ds_redirect` answers RedirectShopper (with its pspReference) and
`stored_3ds2` IdentifyShopper (without one) — both with an `action` shaped like Adyen's published
ones (tests/fixtures/adyen/), completed by the control endpoint `…/authenticate` below —
`stored_error` is a 500, `stored_throttled` a 429 with Retry-After, `stored_slow` answers after
3 s; anything else is 422 `803 PaymentDetail not found`.

Notifications: every item is signed (`additionalData.hmacSignature`, HMAC-SHA256 with the hex key
adyen.hmac_keys[0] over `pspReference:originalReference:merchantAccountCode:merchantReference:
value:currency:eventCode:success`, base64), wrapped as `{"live":"false","notificationItems":
[{"NotificationRequestItem":{…}}]}` (one item per delivery, as Adyen sends them) and POSTed as
JSON to the webhook URL, in order, `--notify-delay` seconds (default 1) after the event, with
HTTP basic auth when adyen.basic_auth is set. A delivery that is not answered 2xx is tried again
(after 1, 2, 5, 10 and 30 s; Adyen keeps trying for days). Without a webhook URL they wait.

Control endpoints for tests and the demo (no API key; not Adyen's):

    GET  /_paybridge/health                  200 {"ok": true}
    GET  /_paybridge/requests                every Checkout request received (X-API-Key masked)
    GET  /_paybridge/notifications           every notification, its item and delivery attempts
    GET  /_paybridge/payments[/{psp}]        the payments the fake knows, with their modifications
    GET|POST /_paybridge/config              {"webhook_url": …, "notify_delay": …}
    POST /_paybridge/reset                   forget payments, keys, requests and notifications
                                             (the config stays)
    POST /_paybridge/payments/{psp}/capture-failed   {"reason": "technical"|"shopper_cancelled"|
            "account_configuration"|"expired", "capture": psp?, "recapture": bool?}
            a late CAPTURE_FAILED for a captured payment; "technical" is followed, as Adyen
            documents, by its own re-capture: CAPTURE success=true, reason "Transaction Recaptured"
    POST /_paybridge/refunds/{psp or reference}/refund-failed   {"reason": …, "retry": bool?,
            "retry_reason": "", "retry_psp": "same"|"new"}
            a late REFUND_FAILED for a refund; "technical" is followed by REFUND success=true
    POST /_paybridge/payments/{psp}/dispute  {"eventCode": "NOTIFICATION_OF_CHARGEBACK"|
            "REQUEST_FOR_INFORMATION"|"CHARGEBACK"|"CHARGEBACK_REVERSED"|"SECOND_CHARGEBACK"|
            "PREARBITRATION_WON"|"PREARBITRATION_LOST"|"DISPUTE_DEFENSE_PERIOD_ENDED",
            "reasonCode"?, "schemeCode"?, "disputeStatus"?, "amount"?, "defendable"?,
            "defensePeriodDays"?}   one dispute event; all events of a payment's dispute share
            one pspReference, originalReference is the payment's
    POST /_paybridge/payments/{psp}/dashboard-refund   {"amount"?, "merchantReference"?}
            a refund made in the Customer Area: REFUND with a new pspReference, originalReference
            the payment, merchantReference the payment's own unless given
    POST /_paybridge/notify                  {"item": {…}} sign and send any item (missing
            merchantAccountCode, eventDate, success are filled in)
    POST /_paybridge/payments/{psp or merchant reference}/authenticate   {"success": true|false}
            the shopper completes (or fails) the redirect or 3DS2 step of a payment answered
            RedirectShopper / IdentifyShopper / ChallengeShopper, as Adyen's /payments/details
            would end it: AUTHORISATION success=true (authorised; captured unless manual capture),
            or success=false with refusal "3D Not Authenticated" (code 11); 409 once the payment
            is no longer waiting (completed, refused, or cancelled)

Each control endpoint answers the notification(s) it scheduled, with their items.

Where the shapes come from (the stored copies read on 2026-12-01):
- requests and answers: Adyen/adyen-openapi json/CheckoutService-v72.json (PaymentRequest,
  PaymentResponse, PaymentCaptureRequest/-Response, PaymentCancelRequest/-Response,
  PaymentRefundRequest/-Response, ServiceError, the Idempotency-Key parameter);
- notification items: Adyen/adyen-openapi json/Webhooks-v1.json (the examples of AUTHORISATION,
  CAPTURE, CAPTURE_FAILED, CANCELLATION, REFUND, REFUND_FAILED and of every dispute event, and
  DisputesNotificationAdditionalData with its disputeStatus values) and the mocks of
  Adyen/adyen-java-api-library src/test/resources/mocks/notification/ (authorisation-true,
  capture-false, refund-false: "Insufficient balance on payment");
- the signature: shared/src/webhooks/adyen/verify.rs and the published vectors of Adyen's Python
  and Java libraries (scripts/test_adyen_fake.py checks them);
- capture and refund failures: docs.adyen.com/online-payments/capture/failure-reasons and
  help.adyen.com "What is my capture expired?";
- refusal reasons: docs.adyen.com/development-resources/refusal-reasons;
- the shopper steps' `action` objects: Adyen/adyen-java-api-library
  src/test/resources/mocks/checkout/ paymentResponse.json (RedirectShopper) and
  payments-3ds2-identify-shopper.json (IdentifyShopper, no pspReference), as copied in
  tests/fixtures/adyen/ (whose README gives the commits); the redirect `url` points at this fake.
docs/local-stack.md lists where the fake differs from Adyen.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import signal
import string
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRETS = ROOT / "local" / "secrets.json"
API_VERSION = "v72"
MAX_BODY_BYTES = 1024 * 1024
MAX_LOGGED = 2000
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
SLOW_SECS = 3.0

# --------------------------------------------------------------------------- Adyen's shapes

# Top-level fields of PaymentRequest in CheckoutService-v72.json (additionalProperties: false).
PAYMENT_REQUEST_FIELDS = frozenset(
    """accountInfo additionalAmount additionalData amount applicationInfo authenticationData
    bankAccount billingAddress browserInfo captureDelayHours channel checkoutAttemptId company
    countryCode dateOfBirth dccQuote deliverAt deliveryAddress deliveryDate deviceFingerprint
    enableOneClick enablePayOut enableRecurring enhancedSchemeData entityType fraudOffset
    fundOrigin fundRecipient industryUsage installments lineItems localizedShopperStatement
    mandate mcc merchantAccount merchantOrderReference merchantRiskIndicator metadata mpiData
    order orderReference origin paymentMethod paymentValidations platformChargebackLogic
    recurringExpiry recurringFrequency recurringProcessingModel redirectFromIssuerMethod
    redirectToIssuerMethod reference returnUrl riskData sessionValidity shopperConversionId
    shopperEmail shopperIP shopperInteraction shopperLocale shopperName shopperReference
    shopperStatement shopperTaxInfo socialSecurityNumber splits store storePaymentMethod
    subMerchants surcharge telephoneNumber threeDS2RequestData threeDSAuthenticationOnly
    trustedShopper""".split()
)
PAYMENT_REQUIRED = ("amount", "merchantAccount", "paymentMethod", "reference", "returnUrl")
CAPTURE_REQUEST_FIELDS = frozenset(
    "amount applicationInfo enhancedSchemeData lineItems merchantAccount platformChargebackLogic reference splits subMerchants".split()
)
CANCEL_REQUEST_FIELDS = frozenset("applicationInfo merchantAccount reference".split())
REFUND_REQUEST_FIELDS = frozenset(
    "amount applicationInfo capturePspReference enhancedSchemeData lineItems merchantAccount merchantRefundReason reference splits store".split()
)
MERCHANT_REFUND_REASONS = ("FRAUD", "CUSTOMER REQUEST", "RETURN", "DUPLICATE", "OTHER")
SHOPPER_INTERACTIONS = ("Ecommerce", "ContAuth", "Moto", "POS")
RECURRING_MODELS = ("CardOnFile", "Subscription", "UnscheduledCardOnFile")

# storedPaymentMethodId -> (resultCode, refusalReason, refusalReasonCode). Codes and reasons from
# docs.adyen.com/development-resources/refusal-reasons. Special behaviours are in SPECIAL.
OUTCOMES: dict[str, tuple[str, str | None, str | None]] = {
    "stored_ok": ("Authorised", None, None),
    "stored_slow": ("Authorised", None, None),
    "stored_pending": ("Pending", None, None),
    "stored_3ds": ("ChallengeShopper", None, None),
    "stored_3ds_redirect": ("RedirectShopper", None, None),
    "stored_3ds2": ("IdentifyShopper", None, None),
    "stored_refused": ("Refused", "Refused", "2"),
    "stored_blocked_card": ("Refused", "Blocked Card", "5"),
    "stored_expired_card": ("Refused", "Expired Card", "6"),
    "stored_not_enough_balance": ("Refused", "Not enough balance", "12"),
    "stored_cvc_declined": ("Refused", "CVC Declined", "24"),
    "stored_fraud": ("Refused", "FRAUD", "20"),
}
SPECIAL = ("stored_error", "stored_throttled")
# The result codes of a payment that waits for the shopper; `…/authenticate` ends them.
SHOPPER_STEPS = ("RedirectShopper", "IdentifyShopper", "ChallengeShopper")
# docs.adyen.com/development-resources/refusal-reasons: code 11, a failed 3-D Secure authentication.
NOT_AUTHENTICATED = ("3D Not Authenticated", "11")

# Scheme rejections of captures, from docs.adyen.com/online-payments/capture/failure-reasons and
# help.adyen.com ("capture expired"). Adyen fixes a technical issue itself and re-captures.
CAPTURE_FAILURES = {
    "technical": "Capture rejected by card scheme because of a technical issue.",
    "shopper_cancelled": "Capture rejected by card scheme because the shopper cancelled the recurring payment through their bank.",
    "account_configuration": "Capture rejected by card scheme: raw error message from the scheme (account configuration error).",
    "expired": "Capture rejected by card scheme: raw error message from the scheme (capture expired).",
}
RECAPTURED = "Transaction Recaptured"
# "Captures and refunds are treated the same by card schemes": the same scenarios, said of a
# refund. Adyen documents no wording of its own for refunds; the default is its example's.
REFUND_FAILURES = {key: text.replace("Capture", "Refund", 1) for key, text in CAPTURE_FAILURES.items()}
REFUND_FAILED_DEFAULT = "Refund Failed"  # Webhooks-v1.json, REFUND_FAILED example
INSUFFICIENT_BALANCE = "Insufficient balance on payment"  # java library mocks capture-false/refund-false
NOT_CAPTURED = "Transaction hasn't been captured, refund not possible"  # Webhooks-v1.json, REFUND example

DISPUTE_EVENTS = (
    "REQUEST_FOR_INFORMATION",
    "NOTIFICATION_OF_CHARGEBACK",
    "CHARGEBACK",
    "CHARGEBACK_REVERSED",
    "SECOND_CHARGEBACK",
    "PREARBITRATION_WON",
    "PREARBITRATION_LOST",
    "DISPUTE_DEFENSE_PERIOD_ENDED",
)
# DisputesNotificationAdditionalData.disputeStatus in Webhooks-v1.json.
DISPUTE_STATUSES = ("Unresponded", "Responded", "Expired", "Undefended", "Accepted", "Pending", "Lost", "Won")
# The status each event carries unless the caller names one: the examples' where they have one
# (DISPUTE_DEFENSE_PERIOD_ENDED: Lost), otherwise what the event's description says.
DEFAULT_DISPUTE_STATUS = {
    "REQUEST_FOR_INFORMATION": "Unresponded",
    "NOTIFICATION_OF_CHARGEBACK": "Undefended",
    "CHARGEBACK": "Undefended",
    "CHARGEBACK_REVERSED": "Won",
    "SECOND_CHARGEBACK": "Lost",
    "PREARBITRATION_WON": "Won",
    "PREARBITRATION_LOST": "Lost",
    "DISPUTE_DEFENSE_PERIOD_ENDED": "Lost",
}
# (scheme, reason code) -> reason text, as the examples of Webhooks-v1.json send them.
DISPUTE_REASONS = {
    ("visa", "10.4"): "Other Fraud-Card Absent Environment",
    ("mc", "4853"): "Cardholder Dispute",
    ("jcb", "502"): "Cardmember Dispute",
}

PSP_ALPHABET = string.ascii_uppercase + string.digits


def new_psp() -> str:
    """A 16-character pspReference like Adyen's."""
    return "".join(secrets.choice(PSP_ALPHABET) for _ in range(16))


def event_date(now: float | None = None) -> str:
    """ISO 8601 with the offset, as Adyen writes eventDate: 2021-01-01T01:00:00+01:00."""
    return datetime.fromtimestamp(now or time.time(), timezone.utc).astimezone().isoformat(timespec="seconds")


# --------------------------------------------------------------------------- signatures


def data_to_sign(item: dict[str, Any]) -> str:
    """What Adyen signs for one item (verify.rs `data_to_sign`): missing fields empty, no escaping."""
    amount = item.get("amount") or {}
    value = amount.get("value")
    return ":".join(
        [
            str(item.get("pspReference") or ""),
            str(item.get("originalReference") or ""),
            str(item.get("merchantAccountCode") or ""),
            str(item.get("merchantReference") or ""),
            "" if value is None else str(value),
            str(amount.get("currency") or ""),
            str(item.get("eventCode") or ""),
            str(item.get("success") or ""),
        ]
    )


def sign(hex_key: str, item: dict[str, Any]) -> str:
    """base64(HMAC-SHA256(hex-decoded key, data_to_sign(item)))."""
    digest = hmac.new(bytes.fromhex(hex_key), data_to_sign(item).encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def batch(item: dict[str, Any]) -> dict[str, Any]:
    return {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}


# --------------------------------------------------------------------------- errors


class AdyenError(Exception):
    """An answer in Adyen's ServiceError shape."""

    def __init__(self, status: int, code: str, message: str, kind: str = "validation", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "errorCode": self.code, "message": self.message, "errorType": self.kind, "pspReference": new_psp()}


def invalid(message: str) -> AdyenError:
    return AdyenError(422, "702", message)


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- request checks


def obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"{what} must be an object")
    return value


def only_fields(value: dict[str, Any], structure: str, allowed: frozenset[str]) -> None:
    unknown = sorted(k for k in value if k not in allowed)
    if unknown:
        raise invalid(f"Structure {structure} contains the following unknown fields: {unknown}")


def text(value: dict[str, Any], field: str, max_len: int, required: bool = True) -> str | None:
    if field not in value:
        if required:
            raise invalid(f"Required field '{field}' is not provided.")
        return None
    got = value[field]
    if not isinstance(got, str):
        raise invalid(f"{field} must be a string")
    if not got or len(got) > max_len:
        raise invalid(f"{field} must have 1 to {max_len} characters")
    return got


def one_of(value: dict[str, Any], field: str, allowed: tuple[str, ...], required: bool = True) -> str | None:
    got = text(value, field, 100, required)
    if got is not None and got not in allowed:
        raise invalid(f"{field} must be one of {list(allowed)}, got `{got}`")
    return got


def amount_of(value: Any) -> tuple[int, str]:
    """Amount {"value": minor units, "currency": ISO 4217 upper case}."""
    amount = obj(value, "amount")
    only_fields(amount, "Amount", frozenset(("value", "currency")))
    minor = amount.get("value")
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise invalid("amount.value must be an integer number of minor units")
    if minor <= 0:
        raise invalid(f"amount.value must be positive, got {minor}")
    currency = amount.get("currency")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isupper() and currency.isalpha()):
        raise invalid(f"amount.currency must be an upper-case ISO 4217 code, got `{currency}`")
    return minor, currency


def check_payment(body: dict[str, Any], merchant: str) -> dict[str, Any]:
    """A PaymentRequest for a stored card, as Checkout v72 defines it; the parts the fake uses."""
    only_fields(body, "PaymentRequest", PAYMENT_REQUEST_FIELDS)
    for field in PAYMENT_REQUIRED:
        if field not in body:
            raise invalid(f"Required field '{field}' is not provided.")
    value, currency = amount_of(body["amount"])
    reference = text(body, "reference", 80)
    check_merchant(body, merchant)
    method = obj(body["paymentMethod"], "paymentMethod")
    stored = method.get("storedPaymentMethodId")
    if not isinstance(stored, str) or not stored:
        raise invalid("this fake answers payments of stored payment methods only (paymentMethod.storedPaymentMethodId)")
    if len(stored) > 64:
        raise invalid("paymentMethod.storedPaymentMethodId must have 1 to 64 characters")
    if method.get("type", "scheme") != "scheme":
        raise invalid(f"paymentMethod.type must be `scheme` for a stored card, got `{method.get('type')}`")
    shopper = text(body, "shopperReference", 256)
    if shopper is not None and len(shopper) < 3:
        raise invalid("shopperReference must have at least 3 characters")
    one_of(body, "shopperInteraction", SHOPPER_INTERACTIONS, required=False)
    one_of(body, "recurringProcessingModel", RECURRING_MODELS)
    text(body, "returnUrl", 8000)
    metadata = body.get("metadata")
    if metadata is not None:
        metadata = obj(metadata, "metadata")
        if len(metadata) > 20:
            raise invalid("metadata takes at most 20 entries")
        for k, v in metadata.items():
            if len(k) > 20 or not isinstance(v, str) or len(v) > 80:
                raise invalid(f"metadata `{k}`: keys of at most 20 and string values of at most 80 characters")
    manual = False
    if "additionalData" in body:
        additional = obj(body["additionalData"], "additionalData")
        if not all(isinstance(v, str) for v in additional.values()):
            raise invalid("additionalData values must be strings")
        if additional.get("manualCapture") not in (None, "true", "false"):
            raise invalid(f"additionalData.manualCapture must be \"true\" or \"false\", got `{additional['manualCapture']}`")
        manual = additional.get("manualCapture") == "true"
    return {
        "value": value, "currency": currency, "reference": reference, "stored": stored, "shopper": shopper,
        "manual": manual, "metadata": dict(metadata or {}),
    }


def check_merchant(body: dict[str, Any], merchant: str) -> None:
    got = text(body, "merchantAccount", 1000)
    if got != merchant:
        # What Adyen answers for an account the API credential has no access to.
        raise AdyenError(403, "901", "Invalid Merchant Account", "security")


# --------------------------------------------------------------------------- state


class Fake:
    """The fake's state and behaviour; the HTTP handler only translates. Thread-safe."""

    def __init__(self, config: dict[str, Any], webhook_url: str | None = None, notify_delay: float = 1.0) -> None:
        adyen = config.get("adyen") or {}
        self.api_key = str(adyen.get("api_key") or "")
        self.merchant = str(adyen.get("merchant_account") or "")
        keys = adyen.get("hmac_keys") or []
        self.hmac_key = str(keys[0]) if keys else ""
        bytes.fromhex(self.hmac_key)  # a malformed key stops the fake at start, not at the first delivery
        auth = adyen.get("basic_auth")
        self.basic_auth = (str(auth["username"]), str(auth["password"])) if isinstance(auth, dict) else None
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.webhook_url = webhook_url
        self.notify_delay = notify_delay
        self.stopping = False
        self.base_url = f"http://{HOST}:0"  # set by serve() once the port is known
        self._reset()

    def _reset(self) -> None:
        self.payments: dict[str, dict[str, Any]] = {}
        self.modifications: dict[str, dict[str, Any]] = {}  # by pspReference
        self.replays: dict[tuple[str, str], tuple[int, dict[str, Any], dict[str, str]]] = {}
        self.in_flight: set[tuple[str, str]] = set()
        self.requests: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []

    def reset(self) -> None:
        with self.lock:
            self._reset()
            self.wake.notify_all()

    # ---- the Checkout API

    def checkout(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One Checkout API request: (status, body, extra headers). Every request is logged."""
        entry: dict[str, Any] = {"method": method, "path": path, "headers": masked(headers), "replayed": False}
        try:
            entry["body"] = json.loads(raw) if raw else None
        except ValueError:
            entry["body"] = raw.decode("utf-8", "replace")
        with self.lock:
            entry["seq"] = len(self.requests) + 1
            self.requests.append(entry)
            del self.requests[:-MAX_LOGGED]
        try:
            status, body, extra = self._checkout(method, path, headers, raw, entry)
        except AdyenError as exc:
            status, body, extra = exc.status, exc.body(), exc.headers
        entry["status"] = status
        return status, body, extra

    def _checkout(self, method: str, path: str, headers: dict[str, str], raw: bytes, entry: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        parts = path.strip("/").split("/")
        if method != "POST" or len(parts) < 2 or parts[0] != API_VERSION or parts[1] != "payments" or len(parts) not in (2, 4):
            raise AdyenError(404, "000", f"this fake serves POST /{API_VERSION}/payments[/{{pspReference}}/captures|cancels|refunds], not {method} {path}", "validation")
        if len(parts) == 4 and parts[3] not in ("captures", "cancels", "refunds"):
            raise AdyenError(404, "000", f"unknown modification `{parts[3]}`")
        if not hmac.compare_digest(headers.get("x-api-key", ""), self.api_key) or not self.api_key:
            raise AdyenError(401, "000", "HTTP Status Response - Unauthorized", "security")
        content_type = headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            raise invalid(f"Content-Type must be application/json, got `{content_type}`")
        key = headers.get("idempotency-key", "")
        if not 1 <= len(key) <= 64:
            raise invalid("this fake requires an Idempotency-Key of 1 to 64 characters")
        scope = (self.api_key, key)
        with self.lock:
            if scope in self.replays:
                entry["replayed"] = True
                return self.replays[scope]
            if scope in self.in_flight:
                raise AdyenError(422, "704", "request already processed or in progress", "validation")
            self.in_flight.add(scope)
        try:
            try:
                body = obj(json.loads(raw), "the request body")
            except ValueError as exc:
                raise AdyenError(400, "000", f"Unable to parse message: {exc}") from exc
            if len(parts) == 2:
                answer = self.payment(body)
            else:
                answer = self.modification(parts[3], parts[2], body)
            with self.lock:
                self.replays[scope] = answer
            return answer
        finally:
            with self.lock:
                self.in_flight.discard(scope)

    def payment(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        req = check_payment(body, self.merchant)
        stored = req["stored"]
        if stored == "stored_error":
            raise AdyenError(500, "000", "An unexpected error occurred", "internal")
        if stored == "stored_throttled":
            raise AdyenError(429, "000", "Too many requests", "throttling", {"Retry-After": "3"})
        if stored not in OUTCOMES:
            raise AdyenError(422, "803", "PaymentDetail not found")
        if stored == "stored_slow":
            time.sleep(SLOW_SECS)
        result_code, refusal, refusal_code = OUTCOMES[stored]
        psp = new_psp()
        amount = {"value": req["value"], "currency": req["currency"]}
        answer: dict[str, Any] = {"pspReference": psp, "resultCode": result_code, "merchantReference": req["reference"], "amount": amount}
        if refusal:
            answer.update(refusalReason=refusal, refusalReasonCode=refusal_code)
        if result_code == "ChallengeShopper":
            answer["action"] = {"type": "threeDS2", "subtype": "challenge", "paymentMethodType": "scheme", "token": "eyJ0aHJlZURTTWV0aG9kTm90aWZpY2F0aW9uVVJMIjoi", "paymentData": "Ab02b4c0..."}
        elif result_code == "RedirectShopper":
            # paymentResponse.json of Adyen's Java library: GET redirect to the issuer's page.
            answer["action"] = {"method": "GET", "paymentMethodType": "scheme", "type": "redirect",
                                "url": f"{self.base_url}/_paybridge/payments/{psp}/authenticate?MD={secrets.token_urlsafe(12)}"}
        elif result_code == "IdentifyShopper":
            # payments-3ds2-identify-shopper.json: a 3DS2 fingerprint, and no pspReference yet.
            del answer["pspReference"]
            answer["action"] = {"paymentData": "Ab02b4c0!" + secrets.token_urlsafe(48), "paymentMethodType": "scheme",
                                "authorisationToken": "BQABAQ" + secrets.token_urlsafe(48), "subtype": "fingerprint",
                                "token": base64.b64encode(json.dumps({"threeDSMessageVersion": "2.1.0", "threeDSServerTransID": psp}).encode()).decode(),
                                "type": "threeDS2"}
        payment = {
            "pspReference": psp, "reference": req["reference"], "value": req["value"], "currency": req["currency"],
            "storedPaymentMethodId": stored, "shopperReference": req["shopper"], "manualCapture": req["manual"],
            "metadata": req["metadata"], "status": result_code, "captured": 0, "refunded": 0, "modifications": [],
            "dispute": None,
        }
        if result_code == "Authorised" and not req["manual"]:
            payment["captured"] = req["value"]  # automatic capture, as Adyen's default
        with self.lock:
            self.payments[psp] = payment
        if result_code in ("Authorised", "Refused"):
            self.schedule(self.authorisation_item(payment, result_code == "Authorised", refusal))
        elif result_code == "Pending":
            # The shopper's bank decides later; locally it always authorises.
            self.schedule(self.authorisation_item(payment, True, None), on_send=lambda: self._authorise_pending(psp))
        return 200, answer, {}

    def _authorise_pending(self, psp: str) -> None:
        with self.lock:
            payment = self.payments.get(psp)
            if payment and payment["status"] == "Pending":
                payment["status"] = "Authorised"
                if not payment["manualCapture"]:
                    payment["captured"] = payment["value"]

    def authorisation_item(self, payment: dict[str, Any], success: bool, refusal: str | None) -> dict[str, Any]:
        """AUTHORISATION as Webhooks-v1.json's example and the java library's authorisation-true."""
        additional = {"paymentMethodVariant": "visa", "shopperReference": payment["shopperReference"] or ""}
        additional.update({f"metadata.{k}": v for k, v in payment["metadata"].items()})
        if success:
            additional.update(authCode="052095", cardSummary="1111", expiryDate="03/2030")
        item = {
            "additionalData": additional,
            "amount": {"value": payment["value"], "currency": payment["currency"]},
            "eventCode": "AUTHORISATION",
            "merchantReference": payment["reference"],
            "paymentMethod": "visa",
            "pspReference": payment["pspReference"],
            "reason": "052095:1111:03/2030" if success else (refusal or "Refused"),
            "success": "true" if success else "false",
        }
        if success:
            item["operations"] = ["CANCEL", "CAPTURE", "REFUND"]
        return item

    def modification(self, kind: str, psp: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        allowed = {"captures": CAPTURE_REQUEST_FIELDS, "cancels": CANCEL_REQUEST_FIELDS, "refunds": REFUND_REQUEST_FIELDS}[kind]
        structure = {"captures": "PaymentCaptureRequest", "cancels": "PaymentCancelRequest", "refunds": "PaymentRefundRequest"}[kind]
        only_fields(body, structure, allowed)
        check_merchant(body, self.merchant)
        reference = text(body, "reference", 80, required=False)
        value = currency = None
        if kind != "cancels":
            if "amount" not in body:
                raise invalid("Required object 'amount' is not provided.")
            value, currency = amount_of(body["amount"])
        if kind == "refunds":
            one_of(body, "merchantRefundReason", MERCHANT_REFUND_REASONS, required=False)
        with self.lock:
            payment = self.payments.get(psp)
            waiting = payment is not None and payment["status"] in SHOPPER_STEPS and kind == "cancels"
            if payment is None or (payment["status"] not in ("Authorised", "Cancelled") and not waiting):
                raise invalid(f"Original pspReference required for this operation: no authorised payment {psp}")
            if currency is not None and currency != payment["currency"]:
                raise invalid(f"Currency of modification ({currency}) does not match the payment's ({payment['currency']})")
            mod = {
                "kind": kind[:-1], "pspReference": new_psp(), "paymentPspReference": psp,
                "reference": reference, "value": value if value is not None else payment["value"],
                "currency": payment["currency"], "status": "received",
            }
            self.modifications[mod["pspReference"]] = mod
            payment["modifications"].append(mod["pspReference"])
            success, reason = self._apply(payment, mod)
        answer: dict[str, Any] = {"merchantAccount": self.merchant, "paymentPspReference": psp, "pspReference": mod["pspReference"], "status": "received"}
        if reference is not None:
            answer["reference"] = reference
        if kind != "cancels":
            answer["amount"] = {"value": value, "currency": currency}
        if kind == "refunds" and "merchantRefundReason" in body:
            answer["merchantRefundReason"] = body["merchantRefundReason"]
        event = {"captures": "CAPTURE", "cancels": "CANCELLATION", "refunds": "REFUND"}[kind]
        self.schedule(self.modification_item(event, payment, mod, success, reason))
        return 201, answer, {}

    def _apply(self, payment: dict[str, Any], mod: dict[str, Any]) -> tuple[bool, str]:
        """Adyen accepts a modification first and decides later: the outcome its webhook reports."""
        kind, value = mod["kind"], mod["value"]
        if kind == "capture":
            if payment["status"] == "Cancelled" or payment["captured"] + value > payment["value"]:
                mod["status"] = "failed"
                return False, INSUFFICIENT_BALANCE
            payment["captured"] += value
        elif kind == "cancel":
            if payment["captured"] > 0 or payment["status"] == "Cancelled":
                mod["status"] = "failed"
                return False, "Transaction has already been captured, cancel not possible" if payment["captured"] else "Transaction already cancelled"
            payment["status"] = "Cancelled"
        elif kind == "refund":
            if payment["captured"] == 0:
                mod["status"] = "failed"
                return False, NOT_CAPTURED
            if payment["refunded"] + value > payment["captured"]:
                mod["status"] = "failed"
                return False, INSUFFICIENT_BALANCE
            payment["refunded"] += value
        mod["status"] = "succeeded"
        return True, ""

    def modification_item(self, event: str, payment: dict[str, Any], mod: dict[str, Any], success: bool, reason: str) -> dict[str, Any]:
        """CAPTURE, CANCELLATION, REFUND, CAPTURE_FAILED, REFUND_FAILED as Webhooks-v1.json's examples:
        pspReference the modification's, originalReference the payment's, merchantReference the
        modification's own reference (the payment's when it had none)."""
        return {
            "additionalData": {"paymentMethodVariant": "visa"},
            "amount": {"value": mod["value"], "currency": mod["currency"]},
            "eventCode": event,
            "merchantReference": mod["reference"] or payment["reference"],
            "originalReference": payment["pspReference"],
            "paymentMethod": "visa",
            "pspReference": mod["pspReference"],
            "reason": reason,
            "success": "true" if success else "false",
        }

    # ---- control endpoints

    def payment_or_404(self, psp: str) -> dict[str, Any]:
        payment = self.payments.get(psp)
        if payment is None:
            raise ControlError(404, f"no payment {psp}")
        return payment

    def capture_failed(self, psp: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        reason_key = body.get("reason", "technical")
        if reason_key not in CAPTURE_FAILURES:
            raise ControlError(400, f"reason must be one of {sorted(CAPTURE_FAILURES)}")
        recapture = bool(body.get("recapture", reason_key == "technical"))
        with self.lock:
            payment = self.payment_or_404(psp)
            if payment["captured"] <= 0:
                raise ControlError(409, f"payment {psp} has nothing captured")
            captures = [self.modifications[m] for m in payment["modifications"] if self.modifications[m]["kind"] == "capture" and self.modifications[m]["status"] == "succeeded"]
            if body.get("capture"):
                captures = [m for m in captures if m["pspReference"] == body["capture"]]
                if not captures:
                    raise ControlError(404, f"no successful capture {body['capture']} of {psp}")
            if captures:
                mod = captures[-1]
            else:
                # Captured automatically: the capture has no reference of the merchant's.
                mod = {"kind": "capture", "pspReference": new_psp(), "paymentPspReference": psp, "reference": None,
                       "value": payment["captured"], "currency": payment["currency"], "status": "succeeded"}
                self.modifications[mod["pspReference"]] = mod
                payment["modifications"].append(mod["pspReference"])
            mod["status"] = "failed"
            payment["captured"] -= mod["value"]
        # Webhooks-v1.json's CAPTURE_FAILED example has success "true": the event itself happened.
        sent = [self.schedule(self.modification_item("CAPTURE_FAILED", payment, mod, True, CAPTURE_FAILURES[reason_key]))]
        if recapture:

            def recaptured() -> None:
                with self.lock:
                    mod["status"] = "succeeded"
                    payment["captured"] += mod["value"]

            item = self.modification_item("CAPTURE", payment, mod, True, str(body.get("recapture_reason", RECAPTURED)))
            sent.append(self.schedule(item, extra_delay=float(body.get("retry_after", 2.0)), on_send=recaptured))
        return sent

    def refund_failed(self, ref: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        reason_key = body.get("reason")
        if reason_key is not None and reason_key not in REFUND_FAILURES:
            raise ControlError(400, f"reason must be one of {sorted(REFUND_FAILURES)} (or left out)")
        retry = bool(body.get("retry", reason_key == "technical"))
        retry_psp = body.get("retry_psp", "same")
        if retry_psp not in ("same", "new"):
            raise ControlError(400, 'retry_psp must be "same" or "new"')
        with self.lock:
            mods = [m for m in self.modifications.values() if m["kind"] == "refund" and ref in (m["pspReference"], m["reference"])]
            if not mods:
                raise ControlError(404, f"no refund {ref}")
            mod = mods[-1]
            if mod["status"] != "succeeded":
                raise ControlError(409, f"refund {mod['pspReference']} is {mod['status']}, not succeeded")
            payment = self.payments[mod["paymentPspReference"]]
            mod["status"] = "failed"
            payment["refunded"] -= mod["value"]
        reason = REFUND_FAILURES[reason_key] if reason_key else REFUND_FAILED_DEFAULT
        sent = [self.schedule(self.modification_item("REFUND_FAILED", payment, mod, True, reason))]
        if retry:
            again = dict(mod, pspReference=new_psp()) if retry_psp == "new" else mod

            def refunded() -> None:
                with self.lock:
                    mod["status"] = "succeeded"
                    payment["refunded"] += mod["value"]

            item = self.modification_item("REFUND", payment, again, True, str(body.get("retry_reason", "")))
            sent.append(self.schedule(item, extra_delay=float(body.get("retry_after", 2.0)), on_send=refunded))
        return sent

    def dispute(self, psp: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        event = body.get("eventCode")
        if event not in DISPUTE_EVENTS:
            raise ControlError(400, f"eventCode must be one of {list(DISPUTE_EVENTS)}")
        status = body.get("disputeStatus", DEFAULT_DISPUTE_STATUS[event])
        if status not in DISPUTE_STATUSES:
            raise ControlError(400, f"disputeStatus must be one of {list(DISPUTE_STATUSES)}")
        scheme = str(body.get("schemeCode", "visa"))
        code = str(body.get("reasonCode", "10.4"))
        with self.lock:
            payment = self.payment_or_404(psp)
            if payment["dispute"] is None:
                payment["dispute"] = new_psp()  # one pspReference for every event of the dispute
            value = body.get("amount", payment["captured"] or payment["value"])
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ControlError(400, "amount must be a positive integer (minor units)")
            refs = [self.modifications[m]["reference"] for m in payment["modifications"] if self.modifications[m]["reference"]]
            captures = [self.modifications[m] for m in payment["modifications"] if self.modifications[m]["kind"] == "capture"]
        text_reason = str(body.get("reason", DISPUTE_REASONS.get((scheme, code), "Cardholder Dispute")))
        additional: dict[str, str] = {"disputeStatus": status, "modificationMerchantReferences": ",".join(refs), "paymentMethodVariant": scheme}
        if event == "REQUEST_FOR_INFORMATION":
            additional.update(rfiReasonCode=code, rfiSchemeCode=scheme)
        elif event not in ("PREARBITRATION_WON", "PREARBITRATION_LOST"):
            additional.update(chargebackReasonCode=code, chargebackSchemeCode=scheme)
        if event in ("NOTIFICATION_OF_CHARGEBACK", "CHARGEBACK"):
            ends = datetime.now(timezone.utc).astimezone() + timedelta(days=float(body.get("defensePeriodDays", 14)))
            additional.update(
                defensePeriodEndsAt=ends.isoformat(timespec="seconds"),
                defendable=str(body.get("defendable", True)).lower(),
                autoDefended="false",
                grossCurrency=payment["currency"],
                grossValue=str(value),
            )
            if captures:
                additional.update(capturePspReference=captures[-1]["pspReference"], captureMerchantReference=captures[-1]["reference"] or payment["reference"])
        if event == "PREARBITRATION_LOST":
            additional["arn"] = "74987505199999999999999"
        item = {
            "additionalData": additional,
            "amount": {"value": value, "currency": payment["currency"]},
            "eventCode": event,
            "merchantReference": payment["reference"],
            "originalReference": payment["pspReference"],
            "paymentMethod": scheme,
            "pspReference": payment["dispute"],
            "reason": f"{code}:{text_reason}" if event == "SECOND_CHARGEBACK" else text_reason,
            "success": "true",
        }
        return [self.schedule(item)]

    def dashboard_refund(self, psp: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            payment = self.payment_or_404(psp)
            value = body.get("amount", payment["captured"] - payment["refunded"])
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ControlError(409 if "amount" not in body else 400, "nothing left to refund" if "amount" not in body else "amount must be a positive integer")
            reference = body.get("merchantReference")
            mod = {"kind": "refund", "pspReference": new_psp(), "paymentPspReference": psp, "reference": reference,
                   "value": value, "currency": payment["currency"], "status": "received", "source": "customer_area"}
            self.modifications[mod["pspReference"]] = mod
            payment["modifications"].append(mod["pspReference"])
            success, reason = self._apply(payment, mod)
        return [self.schedule(self.modification_item("REFUND", payment, mod, success, reason))]

    def authenticate(self, ref: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The shopper ends the redirect / 3DS2 step of a payment waiting for them."""
        success = body.get("success", True)
        if not isinstance(success, bool):
            raise ControlError(400, "success must be true or false")
        with self.lock:
            found = [p for p in self.payments.values() if ref in (p["pspReference"], p["reference"])]
            if not found:
                raise ControlError(404, f"no payment {ref}")
            payment = found[-1]
            if payment["status"] not in SHOPPER_STEPS:
                raise ControlError(409, f"payment {payment['pspReference']} is {payment['status']}, not waiting for the shopper")
            if success:
                payment["status"] = "Authorised"
                if not payment["manualCapture"]:
                    payment["captured"] = payment["value"]
            else:
                payment["status"] = "Refused"
        refusal = None if success else NOT_AUTHENTICATED[0]
        return [self.schedule(self.authorisation_item(payment, success, refusal))]

    def custom(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        item = body.get("item")
        if not isinstance(item, dict) or not item.get("eventCode") or not item.get("pspReference"):
            raise ControlError(400, 'body must be {"item": {"eventCode": …, "pspReference": …, …}}')
        item = dict(item)
        item.setdefault("success", "true")
        return [self.schedule(item)]

    # ---- notifications

    def schedule(self, item: dict[str, Any], extra_delay: float = 0.0, on_send: Any = None) -> dict[str, Any]:
        """Signs `item` and queues its delivery; returns its record (also in /_paybridge/notifications)."""
        item = dict(item)
        item.setdefault("merchantAccountCode", self.merchant)
        # The event happens when Adyen would send it: a retry scheduled `extra_delay` later (a
        # re-capture, a re-sent refund) carries a later eventDate, as Adyen's does.
        item.setdefault("eventDate", event_date(time.time() + self.notify_delay + extra_delay))
        additional = dict(item.get("additionalData") or {})
        additional.pop("hmacSignature", None)
        item["additionalData"] = additional
        additional["hmacSignature"] = sign(self.hmac_key, item)
        with self.lock:
            record = {
                "id": len(self.notifications) + 1, "eventCode": item["eventCode"], "pspReference": item.get("pspReference"),
                "success": item.get("success"), "item": item, "status": "pending", "attempts": [],
                "due": time.time() + self.notify_delay + extra_delay, "_on_send": on_send,
            }
            self.notifications.append(record)
            self.wake.notify_all()
        return public(record)

    def deliver_forever(self) -> None:
        """One worker: notifications leave in the order they were scheduled, each when it is due."""
        while True:
            with self.lock:
                while True:
                    if self.stopping:
                        return
                    nxt = next((n for n in self.notifications if n["status"] == "pending"), None)
                    wait = None if nxt is None or not self.webhook_url else nxt["due"] - time.time()
                    if wait is not None and wait <= 0:
                        break
                    self.wake.wait(timeout=wait)
                url, record = self.webhook_url, nxt
                on_send = record.pop("_on_send", None)
            if on_send is not None:
                on_send()
            status, answer = self.post(url, batch(record["item"]))
            with self.lock:
                if record not in self.notifications:
                    continue  # reset while it was on its way
                record["attempts"].append({"at": event_date(), "url": url, "status": status, "answer": answer[:200]})
                if 200 <= status < 300:
                    record["status"] = "delivered"
                elif len(record["attempts"]) > len(RETRY_DELAYS):
                    record["status"] = "failed"
                else:
                    record["due"] = time.time() + RETRY_DELAYS[len(record["attempts"]) - 1]
            log(f"{record['eventCode']} {record['pspReference']} success={record['success']} -> {url}: {status} {answer[:60]!r}")

    def post(self, url: str, body: dict[str, Any]) -> tuple[int, str]:
        data = json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("User-Agent", "Adyen HttpClient 1.0")
        if self.basic_auth:
            token = base64.b64encode(f"{self.basic_auth[0]}:{self.basic_auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - a loopback URL, checked in set_config
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            return 0, f"not delivered: {exc}"

    def set_config(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if "webhook_url" in body:
                url = body["webhook_url"]
                if url is not None:
                    check_loopback(url)
                self.webhook_url = url
            if "notify_delay" in body:
                self.notify_delay = float(body["notify_delay"])
            self.wake.notify_all()
            return self.config()

    def config(self) -> dict[str, Any]:
        return {"webhook_url": self.webhook_url, "notify_delay": self.notify_delay, "merchant_account": self.merchant, "api_version": API_VERSION}

    def snapshot(self, what: str, psp: str | None = None) -> Any:
        with self.lock:
            if what == "requests":
                return list(self.requests)
            if what == "notifications":
                return [public(n) for n in self.notifications]
            if psp is not None:
                payment = self.payment_or_404(psp)
                return dict(payment, modifications=[dict(self.modifications[m]) for m in payment["modifications"]])
            return [dict(p, modifications=[dict(self.modifications[m]) for m in p["modifications"]]) for p in self.payments.values()]

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.wake.notify_all()


def public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def masked(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("****" if k == "x-api-key" else v) for k, v in headers.items()}


def check_loopback(url: str) -> None:
    """The fake posts only to this machine: nothing of the local stack may reach the internet."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ControlError(400, f"webhook_url must be an http URL on 127.0.0.1, got `{url}`")


# --------------------------------------------------------------------------- HTTP


_print_lock = threading.Lock()
QUIET = False  # the tests' own instances keep the test output readable


def log(msg: str) -> None:
    if QUIET:
        return
    with _print_lock:
        print(f"adyen: {time.strftime('%H:%M:%S')} {msg}", flush=True)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, fake: Fake) -> None:
        super().__init__((HOST, port), Handler)
        self.fake = fake


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, indent=None).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ControlError(413, "body too large")
        return self.rfile.read(length) if length else b""

    def handle_any(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        try:
            raw = self.body()
            if path.startswith("/_paybridge/"):
                status, answer = self.control(path, raw)
                self.send_json(status, answer)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer, extra = self.server.fake.checkout(self.command, path, headers, raw)
            outcome = answer.get("resultCode") or (answer["status"] if status < 300 else f"{answer.get('errorCode')} {answer.get('message')}")
            log(f"{self.command} {path} -> {status} {outcome}")
            self.send_json(status, answer, extra)
        except ControlError as exc:
            self.send_json(exc.status, {"error": str(exc)})

    def control(self, path: str, raw: bytes) -> tuple[int, Any]:
        fake = self.server.fake
        parts = path.strip("/").split("/")[1:]
        method = self.command
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ControlError(400, f"not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ControlError(400, "the body must be a JSON object")
        if method == "GET" and parts == ["health"]:
            return 200, {"ok": True}
        if method == "GET" and parts in (["requests"], ["notifications"]):
            return 200, fake.snapshot(parts[0])
        if method == "GET" and parts[:1] == ["payments"] and len(parts) <= 2:
            return 200, fake.snapshot("payments", parts[1] if len(parts) == 2 else None)
        if parts == ["config"] and method in ("GET", "POST"):
            return 200, fake.set_config(body) if method == "POST" else fake.config()
        if method == "POST" and parts == ["reset"]:
            fake.reset()
            return 200, {"reset": True}
        if method == "POST" and parts == ["notify"]:
            return 202, {"notifications": fake.custom(body)}
        if method == "POST" and len(parts) == 3 and parts[0] == "payments":
            action = {"capture-failed": fake.capture_failed, "dispute": fake.dispute, "dashboard-refund": fake.dashboard_refund,
                      "authenticate": fake.authenticate}.get(parts[2])
            if action:
                return 202, {"notifications": action(parts[1], body)}
        if method == "POST" and len(parts) == 3 and parts[0] == "refunds" and parts[2] == "refund-failed":
            return 202, {"notifications": fake.refund_failed(parts[1], body)}
        raise ControlError(404, f"no control endpoint {method} {path} (see scripts/adyen_fake.py)")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any


def serve(port: int, fake: Fake) -> tuple[Server, threading.Thread, threading.Thread]:
    """Starts the fake on 127.0.0.1:port (0 = free) in threads; for tests and main."""
    server = Server(port, fake)
    fake.base_url = f"http://{HOST}:{server.server_address[1]}"
    http_thread = threading.Thread(target=server.serve_forever, name="adyen-http", daemon=True)
    worker = threading.Thread(target=fake.deliver_forever, name="adyen-notify", daemon=True)
    http_thread.start()
    worker.start()
    return server, http_thread, worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int, help="0: a free port")
    parser.add_argument("--secrets", type=Path, default=DEFAULT_SECRETS, help="api_key, merchant_account, hmac_keys[0], basic_auth of `adyen`")
    parser.add_argument("--webhook-url", help="where notifications go (also POST /_paybridge/config); must be on 127.0.0.1")
    parser.add_argument("--notify-delay", type=float, default=1.0, help="seconds between an event and its notification")
    parser.add_argument("--port-file", type=Path, help="write the port here once serving")
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.secrets.read_text(encoding="utf-8"))
        if args.webhook_url:
            check_loopback(args.webhook_url)
        fake = Fake(config, args.webhook_url, args.notify_delay)
    except (OSError, ValueError, KeyError, TypeError, ControlError) as exc:
        print(f"adyen_fake: cannot start: {exc}", file=sys.stderr)
        return 2
    server, _, _ = serve(args.port, fake)
    port = server.server_address[1]
    if args.port_file:
        args.port_file.write_text(f"{port}\n")
    log(f"local Adyen Checkout {API_VERSION} on http://{HOST}:{port}/{API_VERSION}; notifications to {fake.webhook_url or '(not set yet)'}")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    fake.stop()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
