"""Events as Stripe sends them: `api_version` (the shim's), `data.object` rendered at that version
and copied at the moment of the change, `data.previous_attributes` on updates, `request`
(`{"id": "req_…", "idempotency_key": …}` for events an API call caused, nulls otherwise),
`pending_webhooks`; `GET /v1/events` newest first; deliveries signed when they are sent
(`Stripe-Signature: t=<now>,v1=<HMAC-SHA256 of "t.payload" with the endpoint secret>`).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import time

import aiohttp
from aiohttp import web
from localstripe import resources, webhooks

from .context import REQUEST, RENDER_VERSION, SETTINGS, log


def event_init(self, type, data, previous_attributes=None):
    resources.StripeObject.__init__(self)
    self.type = type
    token = RENDER_VERSION.set(SETTINGS.api_version)
    try:
        self.data = {"object": copy.deepcopy(data._export())}
    finally:
        RENDER_VERSION.reset(token)
    if previous_attributes is not None:
        self.data["previous_attributes"] = copy.deepcopy(previous_attributes)
    self.api_version = SETTINGS.api_version
    self.pending_webhooks = sum(1 for w in webhooks._webhooks.values() if w.events is None or type in w.events)
    request = REQUEST.get() or {}
    self.request = {"id": request.get("id"), "idempotency_key": request.get("idempotency_key")}


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), b"%d.%s" % (timestamp, payload), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


async def send_webhook(event) -> None:
    await asyncio.sleep(SETTINGS.webhook_delay)
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode("utf-8")
    for hook in list(webhooks._webhooks.values()):
        if hook.events is not None and event.type not in hook.events:
            continue
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": signature(hook.secret, int(time.time()), payload),
        }
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(hook.url, data=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as r:
                    log.info('webhook "%s" %s to %s: %d', event.type, event.id, hook.url, r.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.info('webhook "%s" %s to %s failed: %s', event.type, event.id, hook.url, exc)


@web.middleware
async def stripe_request(request, handler):
    """Renders answers at the request's `Stripe-Version`; names the request in its events."""
    version = RENDER_VERSION.set(request.headers.get("Stripe-Version"))
    caused = None
    if request.method in ("POST", "DELETE") and request.path.startswith("/v1/"):
        caused = {"id": "req_" + resources.random_id(14), "idempotency_key": request.headers.get("Idempotency-Key")}
    current = REQUEST.set(caused)
    try:
        return await handler(request)
    finally:
        REQUEST.reset(current)
        RENDER_VERSION.reset(version)


def install() -> None:
    resources.Event.__init__ = event_init
    webhooks._send_webhook = send_webhook

    listed = resources.Event._api_list_all.__func__

    def newest_first(cls, url, **kwargs):
        li = listed(cls, url, **kwargs)
        li._list = list(reversed(li._list))
        return li

    resources.Event._api_list_all = classmethod(newest_first)


def install_middleware(app) -> None:
    app.middlewares.append(stripe_request)
