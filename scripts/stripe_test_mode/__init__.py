"""Stripe test mode on top of localstripe: what `scripts/localstripe_server.py` adds to it.

localstripe 1.15.x is a good store of Stripe objects but not Stripe's test mode: it declines few
test payment methods (and `pm_card_visa_chargeDeclined` only on *attach*), sends no refund or
dispute events, renders objects as API version 2017-08-15 and cannot confirm a PaymentIntent
again after a decline. `install()` patches its classes, before its server module is imported,
so that paybridge's tests and `make demo` see Stripe's documented test-mode behaviour.

Layout:
- `context`: the shim's settings (API version, delays), the per-request rendering version and
  request id, `emit` (an event to every webhook endpoint) and `later` (a deferred step).
- `cards`: Stripe's test payment methods (`pm_card_…`) and what each does.
- `shapes`: PaymentIntent, Charge and Refund objects as the requested API version shows them.
- `payments`: PaymentIntent confirmation, declines (402 card errors), re-confirmation, capture,
  cancellation and their events.
- `refunds`: refund checks, `refund.*` / `charge.refunded` events, asynchronous refund failures.
- `disputes`: `dp_…` objects, their life cycle, events and `/v1/disputes` endpoints.
- `events`: event objects (version, `request`, `previous_attributes`), newest-first listing and
  webhook delivery signed at send time.
- `search`: `GET /v1/payment_intents/search` by metadata (localstripe has no search).
- `control`: test-only endpoints under `/_paybridge/` for what Stripe's dashboard would do.
"""

from __future__ import annotations

from . import cards, context, control, disputes, events, payments, refunds, search, shapes

__all__ = ["install", "context"]


def install(api_version: str | None = None, webhook_delay: float | None = None, async_delay: float | None = None,
            enforce_refund_limits: bool = False) -> None:
    """Patches localstripe's resources; call before `localstripe.server` is imported."""
    context.SETTINGS.enforce_refund_limits = enforce_refund_limits
    if api_version is not None:
        context.SETTINGS.api_version = api_version
    if webhook_delay is not None:
        context.SETTINGS.webhook_delay = webhook_delay
    if async_delay is not None:
        context.SETTINGS.async_delay = async_delay
    cards.install()
    payments.install()
    refunds.install()
    disputes.install()
    shapes.install()
    events.install()
    search.install()
    control.install()


def install_server(app) -> None:
    """What needs the aiohttp app: the request-context middleware, auth-free control routes."""
    events.install_middleware(app)
    control.install_middleware(app)
