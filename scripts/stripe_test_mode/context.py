"""The shim's settings and per-request state, and the two ways its patches act later or elsewhere:
`emit` (an event, delivered to every registered webhook endpoint) and `later` (a deferred step,
as Stripe does some things a moment after the API call: disputes, refund failures)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass
from typing import Any, Callable

# The Stripe API version paybridge pins (STRIPE_VERSION in shared/src/adapters/gateways/stripe,
# docs/stripe-api.md); Stripe's newest generally available one. Events carry it.
API_VERSION = "2026-11-18.endive"
# Before this version a PaymentIntent embeds its charges (`charges`) and a Charge its refunds.
CHARGES_UNEMBEDDED = "2022-11-15"
# From this version PaymentIntents and Charges no longer have `invoice` (basil).
INVOICE_REMOVED = "2025-03-31"


@dataclass
class Settings:
    api_version: str = API_VERSION
    webhook_delay: float = 1.0  # seconds between an event and its delivery
    async_delay: float = 0.3  # seconds until a deferred step (a dispute opening, a refund failing)
    # Refuse refunds beyond what is left (amount_too_large, charge_already_refunded) as Stripe
    # does. Off by default: tests/tests/refunds.rs fails a refund in paybridge's store only and
    # then refunds the amount again at the gateway, which Stripe would refuse.
    enforce_refund_limits: bool = False


SETTINGS = Settings()

# The API version objects are rendered in: the request's Stripe-Version, the event's version while
# an event is built, None for a request without the header (localstripe's old rendering).
RENDER_VERSION: contextvars.ContextVar[str | None] = contextvars.ContextVar("render_version", default=None)
# `{"id": "req_…", "idempotency_key": …}` of the API request being served, None otherwise.
REQUEST: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("request", default=None)

log = logging.getLogger("aiohttp.access")


def renders_before(version: str) -> bool:
    """Whether objects are being rendered for an API version older than `version` (a date)."""
    current = RENDER_VERSION.get()
    return current is None or current[:10] < version


def emit(event_type: str, obj: Any, previous_attributes: dict[str, Any] | None = None) -> None:
    """Creates the event (a snapshot of `obj` now) and schedules its delivery to the webhooks."""
    from localstripe import resources

    resources.schedule_webhook(resources.Event(event_type, obj, previous_attributes))


def later(step: Callable[[], None]) -> None:
    """Runs `step` after `SETTINGS.async_delay`, outside any API request (events it emits carry
    no request id, as Stripe's automatic events do)."""

    def run() -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - a deferred step must not kill the loop; log it
            log.exception("deferred step failed")

    asyncio.get_event_loop().call_later(SETTINGS.async_delay, run, context=contextvars.Context())
