"""PaymentIntents as Stripe's test mode runs them.

- A decline answers 402 with a `card_error` (code, decline_code, message, charge,
  payment_method and the `payment_intent` as it is now); the PaymentIntent goes back to
  `requires_payment_method` without a payment method, `last_payment_error` set, and Stripe's
  `charge.failed` + `payment_intent.payment_failed` are sent.
- `off_session=true` with a card that needs authentication fails the same way with
  `authentication_required` (Stripe cannot ask an absent customer for 3DS); on session it asks
  for it (`requires_action`, `payment_intent.requires_action`).
- A PaymentIntent in `requires_payment_method` can be confirmed again with a new
  `payment_method` (a late success after a failure) — or on session with the declined one, which
  then asks for 3DS (`requires_action`).
- localstripe's `POST /v1/payment_intents/{id}/_authenticate` (`client_secret`, `success=true|false`)
  plays the customer completing (or failing) 3DS in the browser. Success charges the card
  (`payment_intent.succeeded`); failure leaves the PaymentIntent in `requires_payment_method` with
  Stripe's `payment_intent_authentication_failure` as `last_payment_error` and sends
  `payment_intent.payment_failed`, as Stripe does (localstripe sent nothing).
- Success sends `charge.succeeded` + `payment_intent.succeeded`; an authorization (manual capture)
  `charge.succeeded` + `payment_intent.amount_capturable_updated`; a capture `charge.captured` +
  `payment_intent.succeeded` (a partial one creates no Refund for the rest, as since basil); a
  cancellation `payment_intent.canceled`.
"""

from __future__ import annotations

import contextvars
import time

from localstripe import resources
from localstripe.resources import UserError, try_convert_to_bool

from . import cards, disputes
from .context import emit

# Set while a charge is created that must fail with this decline whatever the card.
FORCED_DECLINE: contextvars.ContextVar[cards.Decline | None] = contextvars.ContextVar("forced_decline", default=None)

# Confirmation parameters Stripe takes that change nothing here.
IGNORED_CONFIRM_PARAMS = {
    "return_url", "use_stripe_sdk", "client_secret", "payment_method_options", "mandate_data",
    "setup_future_usage", "error_on_requires_action", "receipt_email", "shipping", "capture_method",
}
CONFIRMABLE = ("requires_payment_method", "requires_confirmation")


def card_error(charge) -> dict:
    """The `card_error` of a declined charge, as `last_payment_error` and the 402 body carry it."""
    decline = getattr(charge, "_shim_decline", None) or cards.GENERIC_DECLINE
    error = {
        "type": "card_error",
        "code": decline.code,
        "message": decline.message,
        "doc_url": f"https://docs.stripe.com/error-codes/{decline.code.replace('_', '-')}",
        "charge": charge.id,
    }
    if decline.decline_code:
        error["decline_code"] = decline.decline_code
    if decline.param:
        error["param"] = decline.param
    pm = cards.payment_method_of(charge)
    error["payment_method"] = pm._export() if pm is not None else None
    return error


def raise_card_error(body: dict):
    error = UserError(402, body.get("message"))
    error.body = {"error": body}
    raise error


def unexpected_state(pi, action: str):
    raise UserError(
        400,
        f"You cannot {action} this PaymentIntent because it has a status of {pi.status}.",
        {"code": "payment_intent_unexpected_state"},
    )


def resolve_payment_method(payment_method):
    """A test payment method id (`pm_card_visa`) becomes the PaymentMethod it creates (`pm_…`)."""
    if payment_method is None:
        return None
    if not isinstance(payment_method, str) or not payment_method.startswith(("pm_", "src_", "card_")):
        raise UserError(400, "Bad request")
    canonical = resources.PaymentMethod._try_get_canonical_test_article(payment_method)
    if canonical is not None:
        return canonical.id
    resources.PaymentMethod._api_retrieve(payment_method)  # 404 if unknown
    return payment_method


def install() -> None:
    pi_class = resources.PaymentIntent
    charge_class = resources.Charge

    original_init = pi_class.__init__

    def init(self, **kwargs):
        original_init(self, **kwargs)
        self.payment_method = resolve_payment_method(self.payment_method)
        self._shim_error = None
        self._canceled_at = None
        self._cancellation_reason = None
        self._capturing = False
        types = kwargs.get("payment_method_types")
        self._payment_method_types = types if isinstance(types, list) and types else ["card"]

    pi_class.__init__ = init

    original_charge_init = charge_class.__init__

    def charge_init(self, **kwargs):
        original_charge_init(self, **kwargs)
        forced = FORCED_DECLINE.get()
        self._shim_decline = forced
        self._amount_captured = None
        if forced is not None:
            self._authorized = False

    charge_class.__init__ = charge_init

    def set_auth_failure(self):
        if self._shim_decline is None:
            pm = cards.payment_method_of(self)
            self._shim_decline = cards.decline_of(pm) if pm is not None else cards.GENERIC_DECLINE
        self.status = "failed"
        self.failure_code = self._shim_decline.code
        self.failure_message = self._shim_decline.message

    charge_class._set_auth_failure = set_auth_failure

    def charge_raise_failure(self):  # POST /v1/charges
        emit("charge.failed", self)
        raise_card_error(card_error(self))

    charge_class._raise_failure = charge_raise_failure

    def report_failure(self):
        charge = self.latest_charge
        self._shim_error = card_error(charge)
        self.payment_method = None  # Stripe: the customer must supply another one
        emit("charge.failed", charge)
        emit("payment_intent.payment_failed", self)
        if self.invoice:
            resources.Invoice._api_retrieve(self.invoice)._on_payment_failure_now()
        raise_card_error(dict(self._shim_error, payment_intent=self._export()))

    pi_class._report_failure = report_failure

    original_on_success = pi_class._on_success

    def on_success(self):
        charge = self.latest_charge
        emit("charge.captured" if self._capturing else "charge.succeeded", charge)
        self._capturing = False
        original_on_success(self)  # payment_intent.succeeded (+ localstripe's invoice hooks)
        disputes.open_later_if_the_card_says_so(charge)

    pi_class._on_success = on_success

    def confirm(self, on_failure_now, off_session=None):
        self._authentication_failed = False
        self._shim_error = None
        if not self.payment_method:
            raise UserError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                {"code": "payment_intent_unexpected_state"},
            )
        pm = resources.PaymentMethod._api_retrieve(self.payment_method)
        if pm._requires_authentication():
            if off_session:
                token = FORCED_DECLINE.set(cards.AUTHENTICATION_REQUIRED)
                try:
                    self._create_charge(on_failure_now=on_failure_now)
                finally:
                    FORCED_DECLINE.reset(token)
                return
            self.next_action = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": ""},
            }
            emit("payment_intent.requires_action", self)
            return
        self._create_charge(on_failure_now=on_failure_now)
        if self.status == "requires_capture":
            emit("charge.succeeded", self.latest_charge)
            emit("payment_intent.amount_capturable_updated", self)

    pi_class._confirm = confirm

    def api_create(cls, confirm=None, off_session=None, **data):
        confirm = try_convert_to_bool(confirm)
        off_session = try_convert_to_bool(off_session)
        if confirm is not None and type(confirm) is not bool:
            raise UserError(400, "Bad request")
        if off_session is not None and (type(off_session) is not bool or confirm is not True):
            raise UserError(400, "Bad request")
        obj = cls(**data)
        if confirm:
            obj._confirm(on_failure_now=obj._report_failure, off_session=off_session)
        return obj

    pi_class._api_create = classmethod(api_create)

    def api_confirm(cls, id, payment_method=None, off_session=None, **kwargs):
        unexpected = set(kwargs) - IGNORED_CONFIRM_PARAMS
        if unexpected:
            raise UserError(400, "Unexpected " + ", ".join(sorted(unexpected)))
        off_session = try_convert_to_bool(off_session)
        obj = cls._api_retrieve(id)
        if obj.status not in CONFIRMABLE:
            unexpected_state(obj, "confirm")
        if payment_method is not None:
            obj.payment_method = resolve_payment_method(payment_method)
        obj.latest_charge = None  # a new attempt, with a new charge
        obj.next_action = None
        obj._confirm(on_failure_now=obj._report_failure, off_session=off_session)
        return obj

    pi_class._api_confirm = classmethod(api_confirm)

    original_capture = pi_class._api_capture.__func__

    def api_capture(cls, id, amount_to_capture=None, **kwargs):
        obj = cls._api_retrieve(id)
        if obj.status != "requires_capture":
            unexpected_state(obj, "capture")
        charge = obj.latest_charge
        amount = resources.try_convert_to_int(amount_to_capture) if amount_to_capture is not None else charge.amount
        if type(amount) is not int or not 0 < amount <= charge.amount:
            raise UserError(400, "The amount to capture must be positive and at most the authorized amount.",
                            {"code": "amount_too_large", "param": "amount_to_capture"})
        obj._capturing = True
        charge._amount_captured = amount
        return original_capture(cls, id, amount_to_capture=amount_to_capture, **kwargs)

    pi_class._api_capture = classmethod(api_capture)

    def charge_capture(self, amount, on_success=None):
        # Since 2025-03-31.basil a partial capture creates no Refund for the uncaptured rest
        # (localstripe's did): the charge's amount_captured says what was taken.
        amount = resources.try_convert_to_int(self.amount if amount is None else amount)
        if type(amount) is not int or not 0 <= amount <= self.amount or self.captured or self.status != "succeeded":
            raise UserError(400, "Bad request")
        self._amount_captured = amount

        def captured():
            self.captured = True
            if on_success:
                on_success()

        self._trigger_payment(on_success=captured)

    charge_class._capture = charge_capture

    original_cancel = pi_class._api_cancel.__func__

    def api_cancel(cls, id, cancellation_reason=None, **kwargs):
        obj = cls._api_retrieve(id)
        if obj.status in ("succeeded", "canceled", "processing"):
            unexpected_state(obj, "cancel")
        original_cancel(cls, id, **kwargs)
        obj._canceled_at = int(time.time())
        obj._cancellation_reason = cancellation_reason
        emit("payment_intent.canceled", obj)
        return obj

    pi_class._api_cancel = classmethod(api_cancel)

    original_authenticate = pi_class._api_authenticate.__func__

    def api_authenticate(cls, id, client_secret=None, success=False, **kwargs):
        obj = cls._api_retrieve(id)
        pm = resources.PaymentMethod._api_retrieve(obj.payment_method) if obj.payment_method else None
        obj = original_authenticate(cls, id, client_secret=client_secret, success=success, **kwargs)
        if obj._authentication_failed:
            # Stripe's card error for a failed 3DS, with the payment method the customer tried.
            obj._shim_error = {
                "type": "card_error",
                "code": "payment_intent_authentication_failure",
                "message": "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
                "doc_url": "https://docs.stripe.com/error-codes/payment-intent-authentication-failure",
                "payment_method": pm._export() if pm is not None else None,
            }
            emit("payment_intent.payment_failed", obj)
        return obj

    pi_class._api_authenticate = classmethod(api_authenticate)

    # localstripe's routes hold the methods as they were at import: point them at ours.
    routes = {
        "/v1/payment_intents/{id}/confirm": "_api_confirm",
        "/v1/payment_intents/{id}/capture": "_api_capture",
        "/v1/payment_intents/{id}/cancel": "_api_cancel",
        "/v1/payment_intents/{id}/_authenticate": "_api_authenticate",
    }
    for i, (method, url, func) in enumerate(resources.extra_apis):
        if url in routes:
            resources.extra_apis[i] = (method, url, getattr(pi_class, routes[url]))
