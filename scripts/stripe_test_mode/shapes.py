"""PaymentIntent, Charge and Refund objects in the shape of the API version being rendered
(field names from Stripe's published fixtures, `stripe/openapi` `openapi/fixtures3.json`).

From 2022-11-15 a PaymentIntent's `latest_charge` is an id and it has no `charges` list, and a
Charge lists its refunds only when `expand[]=refunds` asks; from 2025-03-31 (basil) neither has
`invoice`. Events always render at the shim's API version; an API answer at the request's
`Stripe-Version`, or — without the header — as localstripe did (charges and refunds embedded),
which callers written against localstripe still read.
"""

from __future__ import annotations

from localstripe import resources

from . import cards
from .context import CHARGES_UNEMBEDDED, INVOICE_REMOVED, renders_before

PAYMENT_INTENT_DEFAULTS = {
    "amount_details": {"tip": {}},
    "application": None,
    "application_fee_amount": None,
    "automatic_payment_methods": None,
    "confirmation_method": "automatic",
    "description": None,
    "excluded_payment_method_types": None,
    "on_behalf_of": None,
    "payment_method_configuration_details": None,
    "payment_method_options": {},
    "processing": None,
    "receipt_email": None,
    "review": None,
    "setup_future_usage": None,
    "shipping": None,
    "source": None,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "transfer_data": None,
    "transfer_group": None,
}

CHARGE_DEFAULTS = {
    "application": None,
    "application_fee": None,
    "application_fee_amount": None,
    "calculated_statement_descriptor": "PAYBRIDGE LOCAL",
    "failure_balance_transaction": None,
    "fraud_details": {},
    "on_behalf_of": None,
    "receipt_url": None,
    "review": None,
    "shipping": None,
    "source_transfer": None,
    "statement_descriptor_suffix": None,
    "transfer_data": None,
    "transfer_group": None,
}

REFUND_DEFAULTS = {
    "customer": None,
    "destination_details": {"card": {"type": "refund"}, "type": "card"},
    "payment_method": None,
    "receipt_number": None,
    "source_transfer_reversal": None,
    "transfer_reversal": None,
}


def captured_amount(charge) -> int:
    if charge is None or charge.status != "succeeded" or not charge.captured:
        return 0
    return charge._amount_captured if getattr(charge, "_amount_captured", None) is not None else charge.amount


def is_disputed(charge) -> bool:
    return any(key.startswith("dispute:") and d.charge == charge.id for key, d in resources.store.items())


def top_level(expand) -> set[str]:
    return {path.split(".")[0] for path in expand or [] if isinstance(path, str)}


def outcome(charge) -> dict:
    if charge.status == "failed":
        decline = getattr(charge, "_shim_decline", None) or cards.GENERIC_DECLINE
        return {
            "advice_code": None, "network_advice_code": None, "network_decline_code": None,
            "network_status": "declined_by_network", "reason": decline.decline_code or decline.code,
            "risk_level": "normal", "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    return {
        "advice_code": None, "network_advice_code": None, "network_decline_code": None,
        "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
        "seller_message": "Payment complete.", "type": "authorized",
    }


def card_details(charge) -> tuple[dict | None, dict]:
    """(payment_method_details, billing_details) of the charge's payment method."""
    pm = cards.payment_method_of(charge)
    billing = {"address": None, "email": None, "name": None, "phone": None, "tax_id": None}
    if pm is None or getattr(pm, "object", None) != "payment_method" or pm.type != "card":
        return None, billing
    card = pm.card
    details = {
        "card": {
            "amount_authorized": charge.amount if charge.status == "succeeded" else None,
            "brand": card["brand"], "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": card["country"], "exp_month": card["exp_month"], "exp_year": card["exp_year"],
            "fingerprint": card["fingerprint"], "funding": card["funding"], "last4": card["last4"],
            "mandate": None, "network": card["brand"], "three_d_secure": None, "wallet": None,
        },
        "type": "card",
    }
    return details, dict(billing, **{k: v for k, v in (pm.billing_details or {}).items() if k in billing})


def render_payment_intent(pi, obj: dict, expanded: set[str]) -> None:
    charge = pi.latest_charge
    if "latest_charge" not in expanded:
        obj["latest_charge"] = charge.id if charge is not None else None
    if not renders_before(CHARGES_UNEMBEDDED):
        obj.pop("charges", None)
    if not renders_before(INVOICE_REMOVED):
        obj.pop("invoice", None)
    status = obj["status"]
    obj["amount_received"] = captured_amount(charge) if status == "succeeded" else 0
    obj["amount_capturable"] = charge.amount if status == "requires_capture" and charge is not None else 0
    if getattr(pi, "_shim_error", None) is not None:
        obj["last_payment_error"] = pi._shim_error
    obj["canceled_at"] = getattr(pi, "_canceled_at", None)
    obj["cancellation_reason"] = getattr(pi, "_cancellation_reason", None)
    obj["payment_method_types"] = getattr(pi, "_payment_method_types", ["card"])
    for key, value in PAYMENT_INTENT_DEFAULTS.items():
        obj.setdefault(key, value)


def render_charge(charge, obj: dict, expanded: set[str]) -> None:
    if not renders_before(CHARGES_UNEMBEDDED) and "refunds" not in expanded:
        obj.pop("refunds", None)
    if not renders_before(INVOICE_REMOVED):
        obj.pop("invoice", None)
    obj["amount_captured"] = captured_amount(charge)
    obj["disputed"] = is_disputed(charge)
    obj["outcome"] = outcome(charge)
    obj["payment_method_details"], obj["billing_details"] = card_details(charge)
    for key, value in CHARGE_DEFAULTS.items():
        obj.setdefault(key, value)


def render_refund(refund, obj: dict, expanded: set[str]) -> None:
    if not renders_before(CHARGES_UNEMBEDDED):
        obj.pop("date", None)
    if refund.status == "failed":
        obj["failure_reason"] = getattr(refund, "_failure_reason", None)
        obj["failure_balance_transaction"] = getattr(refund, "_failure_balance_transaction", None)
    for key, value in REFUND_DEFAULTS.items():
        obj.setdefault(key, value)


def wrap_export(cls, render) -> None:
    original = cls._export

    def export(self, expand=None):
        obj = original(self, expand=expand)
        render(self, obj, top_level(expand))
        return obj

    cls._export = export


def install() -> None:
    wrap_export(resources.PaymentIntent, render_payment_intent)
    wrap_export(resources.Charge, render_charge)
    wrap_export(resources.Refund, render_refund)

    # A failed or canceled refund gives its amount back.
    resources.Charge.amount_refunded = property(
        lambda self: sum(r.amount for r in self.refunds._list if r.status not in ("failed", "canceled"))
    )
