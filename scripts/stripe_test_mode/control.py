"""Test-only endpoints under `/_paybridge/` (no API key needed), for what a person would do in
Stripe's dashboard or what Stripe decides on its own time. Each answers with the object.

- `POST /_paybridge/charges/{id}/dispute` `{"reason": "fraudulent", "inquiry": false}`: opens a
  dispute on any succeeded charge now (as `pm_card_createDispute` does by itself).
- `POST /_paybridge/disputes/{id}/update` `{"status": "under_review"}`: moves an open dispute.
- `POST /_paybridge/disputes/{id}/close` `{"status": "won" | "lost"}`: closes it (Stripe's way is
  evidence `winning_evidence` / `losing_evidence`, which works too).
- `POST /_paybridge/refunds/{id}/fail` `{"failure_reason": "expired_or_canceled_card"}`: a refund
  fails after the fact (as `pm_card_refundFail` refunds do by themselves).
"""

from __future__ import annotations

from aiohttp import web
from localstripe import resources
from localstripe.resources import UserError, try_convert_to_bool

from . import disputes, refunds

PREFIX = "/_paybridge/"


def open_dispute(id, reason="fraudulent", inquiry=False, **kwargs):
    charge = resources.Charge._api_retrieve(id)
    if charge.status != "succeeded" or not charge.captured:
        raise UserError(400, f"charge {id} is not a captured, succeeded charge")
    return disputes.open_dispute(charge, reason, bool(try_convert_to_bool(inquiry)))


def update_dispute(id, status=None, **kwargs):
    dispute = disputes.Dispute._api_retrieve(id)
    disputes.set_status(dispute, status)
    return dispute


def close_dispute(id, status=None, **kwargs):
    dispute = disputes.Dispute._api_retrieve(id)
    disputes.close(dispute, status)
    return dispute


def fail_refund(id, failure_reason="expired_or_canceled_card", **kwargs):
    refund = resources.Refund._api_retrieve(id)
    if refund.status in ("failed", "canceled"):
        raise UserError(400, f"refund {id} is {refund.status} already")
    refunds.fail(refund, failure_reason)
    return refund


def install() -> None:
    resources.extra_apis.extend((
        ("POST", PREFIX + "charges/{id}/dispute", open_dispute),
        ("POST", PREFIX + "disputes/{id}/update", update_dispute),
        ("POST", PREFIX + "disputes/{id}/close", close_dispute),
        ("POST", PREFIX + "refunds/{id}/fail", fail_refund),
    ))


def install_middleware(app) -> None:
    """Lets control requests past localstripe's API-key check, as its `/_config/` ones are."""
    from localstripe import server

    index = app.middlewares.index(server.auth_middleware)

    @web.middleware
    async def auth(request, handler):
        if request.path.startswith(PREFIX):
            return await handler(request)
        return await server.auth_middleware(request, handler)

    app.middlewares[index] = auth
