"""Refunds as Stripe's test mode makes them, whoever asks (paybridge, or a "dashboard refund":
`POST /v1/refunds` without paybridge's metadata, with `payment_intent=` or `charge=`).

- Refused before anything is stored: a charged-back charge (`charge_disputed`); with
  `--enforce-refund-limits` also a charge already fully refunded (`charge_already_refunded`) and
  more than is left (`amount_too_large`).
- A refund sends `refund.created` and `charge.refunded` (the Charge, with `amount_refunded` and
  `refunded`; refunds are not embedded from 2022-11-15 on); `POST /v1/refunds/{id}` sends
  `refund.updated` with `previous_attributes`.
- Refunds of `pm_card_refundFail` charges succeed, then fail a moment later (as Stripe's do):
  `refund.updated`, `charge.refund.updated`, `refund.failed`; the amount is refundable again.
"""

from __future__ import annotations

import copy

from localstripe import resources
from localstripe.resources import UserError, try_convert_to_int

from . import cards
from .context import SETTINGS, emit, later
from .shapes import captured_amount


def charge_of(data: dict):
    """The charge a refund request names, or None to let localstripe refuse the request."""
    try:
        if isinstance(data.get("charge"), str):
            return resources.Charge._api_retrieve(data["charge"])
        if isinstance(data.get("payment_intent"), str):
            return resources.PaymentIntent._api_retrieve(data["payment_intent"]).latest_charge
    except UserError:
        return None
    return None


def refuse_what_stripe_refuses(data: dict) -> None:
    """Raises Stripe's error for a refund it would not make; nothing is stored before."""
    charge = charge_of(data)
    if charge is None or charge.status != "succeeded" or not charge.captured:
        return
    for key, dispute in resources.store.items():
        if key.startswith("dispute:") and dispute.charge == charge.id and not dispute._inquiry and dispute.status != "won":
            raise UserError(400, f"Charge {charge.id} has been charged back; cannot issue a refund.", {"code": "charge_disputed"})
    if not SETTINGS.enforce_refund_limits:
        return
    left = captured_amount(charge) - charge.amount_refunded
    if left <= 0:
        raise UserError(400, f"Charge {charge.id} has already been refunded.", {"code": "charge_already_refunded"})
    amount = try_convert_to_int(data.get("amount"))
    if type(amount) is int and amount > left:
        raise UserError(
            400,
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            {"code": "amount_too_large", "param": "amount"},
        )


def fail(refund, failure_reason: str) -> None:
    """A succeeded (or pending) refund fails: its amount goes back to the charge."""
    if refund.status in ("failed", "canceled"):
        return
    previous = {"status": refund.status}
    txn = resources.BalanceTransaction(
        amount=refund.amount, currency=refund.currency, description="REFUND FAILURE", exchange_rate=1.0,
        reporting_category="refund", source=refund.id, type="refund",
    )
    refund.status = "failed"
    refund._failure_reason = failure_reason
    refund._failure_balance_transaction = txn.id
    emit("refund.updated", refund, previous)
    emit("charge.refund.updated", refund, previous)
    emit("refund.failed", refund)


def install() -> None:
    refund_class = resources.Refund
    original_init = refund_class.__init__

    def init(self, **kwargs):
        original_init(self, **kwargs)
        if self.payment_intent is None:
            self.payment_intent = resources.Charge._api_retrieve(self.charge).payment_intent
        self._failure_reason = None
        self._failure_balance_transaction = None

    refund_class.__init__ = init

    def api_create(cls, **data):
        refuse_what_stripe_refuses(data)
        charge = charge_of(data)
        if data.get("amount") is None and charge is not None and charge.status == "succeeded":
            data["amount"] = captured_amount(charge) - charge.amount_refunded  # Stripe: what is left
        refund = cls(**data)
        charge = resources.Charge._api_retrieve(refund.charge)
        emit("refund.created", refund)
        emit("charge.refunded", charge)
        pm = cards.payment_method_of(charge)
        reason = cards.REFUND_FAILURES.get(cards.card_number(pm) or "")
        if reason is not None:
            later(lambda: fail(refund, reason))
        return refund

    refund_class._api_create = classmethod(api_create)

    def api_update(cls, id, **data):
        refund = cls._api_retrieve(id)
        previous = {key: copy.deepcopy(getattr(refund, key, None)) for key in data if not key.startswith("_")}
        refund._update(**data)
        emit("refund.updated", refund, previous)
        return refund

    refund_class._api_update = classmethod(api_update)

