"""Disputes (`dp_…`) with Stripe's shape and life cycle.

A charge of `pm_card_createDispute` succeeds and is disputed a moment later as `fraudulent`:
`charge.dispute.created` (status `needs_response`), then `charge.dispute.funds_withdrawn` (a
withdrawal balance transaction). Submitting evidence (`POST /v1/disputes/{id}`, `submit`
defaults to true) sends `charge.dispute.updated` (status `under_review`); with
`evidence[uncategorized_text]=winning_evidence` the dispute then closes as `won`
(`charge.dispute.closed`, `charge.dispute.funds_reinstated`), with `losing_evidence` as `lost`
(`charge.dispute.closed`) — Stripe's test-mode evidence tokens. `POST /v1/disputes/{id}/close`
accepts the dispute (lost). `pm_card_createDisputeInquiry` opens an inquiry
(`warning_needs_response`, no funds move; it closes as `warning_closed`).
"""

from __future__ import annotations

import time

from localstripe import resources
from localstripe.resources import UserError, random_id, try_convert_to_bool

from . import cards
from .context import emit, later

EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
    "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
    "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation",
    "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt",
    "refund_policy", "refund_policy_disclosure", "refund_refusal_explanation", "service_date",
    "service_documentation", "shipping_address", "shipping_carrier", "shipping_date",
    "shipping_documentation", "shipping_tracking_number", "uncategorized_file", "uncategorized_text",
)
CLOSED = ("won", "lost", "warning_closed")
OPEN = ("needs_response", "under_review", "warning_needs_response", "warning_under_review")
NETWORK_REASON_CODES = {"fraudulent": "10.4", "product_not_received": "13.1"}
TEST_EVIDENCE = {"winning_evidence": "won", "losing_evidence": "lost"}
DAY = 86400


def balance_transaction(dispute, amount: int, description: str, category: str) -> dict:
    now = int(time.time())
    return {
        "id": "txn_" + random_id(24), "object": "balance_transaction", "amount": amount,
        "available_on": now, "created": now, "currency": dispute.currency, "description": description,
        "exchange_rate": None, "fee": 0, "fee_details": [], "net": amount, "reporting_category": category,
        "source": dispute.id, "status": "available", "type": "adjustment",
    }


class Dispute(resources.StripeObject):
    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, charge, reason: str = "fraudulent", inquiry: bool = False):
        super().__init__()
        from .shapes import captured_amount

        self.amount = captured_amount(charge)
        self.balance_transactions = []
        self.charge = charge.id
        self.currency = charge.currency
        self.enhanced_eligibility_types = []
        self.evidence = dict({field: None for field in EVIDENCE_FIELDS}, enhanced_evidence={})
        self.evidence_details = {
            "due_by": (self.created // DAY + 8) * DAY - 1,  # end of the day a week from now
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        }
        self.is_charge_refundable = inquiry  # a chargeback took the money already
        self.metadata = {}
        self.payment_intent = charge.payment_intent
        self.payment_method_details = {
            "card": {
                "brand": "visa", "case_type": "inquiry" if inquiry else "chargeback",
                "network_reason_code": NETWORK_REASON_CODES.get(reason, "10.4"), "network": "visa",
            },
            "type": "card",
        }
        self.reason = reason
        self.status = "warning_needs_response" if inquiry else "needs_response"
        self._inquiry = inquiry

    @classmethod
    def _api_get(cls, id, **kwargs):
        return cls._api_retrieve(id)

    @classmethod
    def _api_list_all(cls, url, charge=None, payment_intent=None, limit=None, starting_after=None, **kwargs):
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        li = super()._api_list_all(url, limit=limit, starting_after=starting_after)
        li._list = [d for d in reversed(li._list)
                    if (charge is None or d.charge == charge) and (payment_intent is None or d.payment_intent == payment_intent)]
        return li

    @classmethod
    def _api_update(cls, id, evidence=None, metadata=None, submit=None, **kwargs):
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        dispute = cls._api_retrieve(id)
        if dispute.status in CLOSED:
            raise UserError(400, f"This dispute is already closed (status {dispute.status}).")
        submit = try_convert_to_bool(submit)
        submit = True if submit is None else submit
        if type(submit) is not bool or (evidence is not None and type(evidence) is not dict) \
                or (metadata is not None and type(metadata) is not dict):
            raise UserError(400, "Bad request")
        unknown = set(evidence or {}) - set(EVIDENCE_FIELDS)
        if unknown:
            raise UserError(400, "Received unknown parameters: " + ", ".join(sorted(unknown)), {"param": "evidence"})
        previous = {}
        if metadata:
            previous["metadata"] = dict(dispute.metadata)
            dispute.metadata.update(metadata)
        if evidence:
            previous["evidence"] = dict(dispute.evidence)
            dispute.evidence.update(evidence)
            dispute.evidence_details["has_evidence"] = True
        outcome = None
        if submit and dispute.evidence_details["has_evidence"]:
            previous["status"] = dispute.status
            dispute.status = "warning_under_review" if dispute._inquiry else "under_review"
            dispute.evidence_details["submission_count"] += 1
            outcome = TEST_EVIDENCE.get(dispute.evidence.get("uncategorized_text") or "")
        emit("charge.dispute.updated", dispute, previous)
        if outcome is not None:
            later(lambda: close(dispute, outcome))
        return dispute

    @classmethod
    def _api_close(cls, id, **kwargs):
        """`POST /v1/disputes/{id}/close`: accepting the dispute, which loses it."""
        dispute = cls._api_retrieve(id)
        close(dispute, "lost")
        return dispute


def open_dispute(charge, reason: str = "fraudulent", inquiry: bool = False) -> Dispute:
    dispute = Dispute(charge, reason, inquiry)
    emit("charge.dispute.created", dispute)
    if not inquiry:
        dispute.balance_transactions.append(
            balance_transaction(dispute, -dispute.amount, f"Chargeback withdrawal for {charge.id}", "dispute"))
        emit("charge.dispute.funds_withdrawn", dispute)
    return dispute


def open_later_if_the_card_says_so(charge) -> None:
    pm = cards.payment_method_of(charge)
    plan = cards.DISPUTES.get(cards.card_number(pm) or "")
    if plan is not None:
        reason, inquiry = plan
        later(lambda: open_dispute(charge, reason, inquiry))


def set_status(dispute, status: str) -> None:
    """An open dispute moves to another open status (`charge.dispute.updated`)."""
    if dispute.status in CLOSED or status not in OPEN:
        raise UserError(400, f"cannot move a {dispute.status} dispute to {status}; open statuses: {', '.join(OPEN)}")
    previous = {"status": dispute.status}
    dispute.status = status
    emit("charge.dispute.updated", dispute, previous)


def close(dispute, outcome: str) -> None:
    """Closes the dispute as `won` or `lost` (an inquiry: `warning_closed`)."""
    if outcome not in ("won", "lost"):
        raise UserError(400, "status must be won or lost")
    if dispute.status in CLOSED:
        raise UserError(400, f"This dispute is already closed (status {dispute.status}).")
    dispute.status = "warning_closed" if dispute._inquiry else outcome
    dispute.is_charge_refundable = False
    reinstated = outcome == "won" and not dispute._inquiry and dispute.balance_transactions
    if reinstated:
        dispute.balance_transactions.append(
            balance_transaction(dispute, dispute.amount, f"Chargeback reversal for {dispute.charge}", "dispute_reversal"))
    emit("charge.dispute.closed", dispute)
    if reinstated:
        emit("charge.dispute.funds_reinstated", dispute)


def install() -> None:
    resources.extra_apis.extend((
        ("POST", "/v1/disputes/{id}/close", Dispute._api_close),
        ("GET", "/v1/disputes/{id}", Dispute._api_get),
        ("POST", "/v1/disputes/{id}", Dispute._api_update),
        ("GET", "/v1/disputes", lambda **data: Dispute._api_list_all("/v1/disputes", **data)),
    ))
