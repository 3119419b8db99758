#!/usr/bin/env python3
"""`make demo`: a scripted walk through paybridge, against the `make dev` running in another terminal.

    demo.py [--gateway http://127.0.0.1:3000] [--receiver URL] [--stripe http://127.0.0.1:8420]
            [--sign] [--env-file .stack/dev/env]

Plays the billing system: it charges an invoice through the local gateway, watches localstripe's
webhook come in and the signed billing notification reach the local billing receiver, replays a
request, refunds part of the charge, authorizes and cancels another, sees a declined card, sees a
refund made in Stripe's dashboard and a dispute reach billing, and sends a forged Stripe webhook. Every step prints what was sent and what came back.

Billing calls SigV4-signed, as billing signs them in AWS: with `--sign` (`make demo LOCAL_IAM=1`),
or by itself when the gateway refuses an unsigned call (`make dev LOCAL_IAM=1`). It signs with
botocore's SigV4Auth (service execute-api) and the credentials and region of the dev stack's env
file, and then also shows an unsigned and a wrongly signed call refused with 403.

Unsigned it needs only the standard library; signing needs botocore (the project's .venv, which
`make demo` uses when it exists). The receiver defaults to the billing.endpoint of local/secrets.json.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRETS = ROOT / "local" / "secrets.json"
DEV_ENV = ROOT / ".stack" / "dev" / "env"
WAIT_SECS = 45.0
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

from stack import read_env  # noqa: E402 - standard library only (PyYAML is optional there)


class DemoError(Exception):
    """A step did not go as the demo expects; the message says which and what came back."""


class Reply:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.text = body.decode("utf-8", errors="replace")
        try:
            self.json: Any = json.loads(self.text) if self.text else None
        except ValueError:
            self.json = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Signer:
    """SigV4 for the billing routes, as a billing system signs its calls in AWS (botocore's SigV4Auth)."""

    def __init__(self, access_key: str, secret_key: str, region: str, token: str | None = None) -> None:
        from botocore.auth import SigV4Auth  # ImportError: the caller says how to get botocore
        from botocore.credentials import Credentials

        self.access_key = access_key
        self.region = region
        self._auth = SigV4Auth(Credentials(access_key, secret_key, token), "execute-api", region)

    @classmethod
    def from_env_file(cls, path: Path) -> Signer:
        """The credentials the gateway checks against: the dev stack's env file."""
        if not path.is_file():
            raise DemoError(f"no env file at {path}: signing needs the running stack's (make dev writes it; see --env-file)")
        env = read_env(path)
        if not env.get("AWS_ACCESS_KEY_ID") or not env.get("AWS_SECRET_ACCESS_KEY"):
            raise DemoError(f"{path} has no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY to sign with")
        try:
            return cls(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_REGION") or "us-east-1", env.get("AWS_SESSION_TOKEN") or None)
        except ImportError as exc:
            raise DemoError(
                "signing needs botocore: run the demo with the project's .venv/bin/python (make demo does, once make venv or make dev made it)"
            ) from exc

    def headers(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """`headers` plus X-Amz-Date and the Authorization of a SigV4 signature over the request."""
        from botocore.awsrequest import AWSRequest

        signed = AWSRequest(method=method, url=url, data=data or b"", headers=dict(headers))
        self._auth.add_auth(signed)
        return dict(signed.headers.items())


def request(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    signer: Signer | None = None,
) -> Reply:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = dict(headers or {})
    if body is not None and raw is None:
        headers["content-type"] = "application/json"
    if signer is not None:
        headers = signer.headers(method, url, data, headers)
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as response:  # noqa: S310 - loopback only
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers, exc.read())


def step(number: int, title: str) -> None:
    print(f"\n{number}. {title}\n{'-' * (len(title) + len(str(number)) + 2)}", flush=True)


def show(label: str, value: Any) -> None:
    print(f"   {label:<25} {value}", flush=True)


def expect(reply: Reply, status: int, what: str) -> Any:
    if reply.status != status:
        raise DemoError(f"{what}: expected HTTP {status}, got {reply.status}: {reply.text[:500]}")
    return reply.json


def poll(what: str, check: Any, seconds: float = WAIT_SECS) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise DemoError(f"waited {seconds:.0f} s for {what}; see the `make dev` terminal (or .stack/dev/gateway.log)")
        time.sleep(0.3)


class Demo:
    def __init__(
        self, gateway: str, receiver: str | None, stripe: str, stripe_secret: str, signer: Signer | None = None, checks_iam: bool = False
    ) -> None:
        self.gateway = gateway.rstrip("/")
        self.receiver = receiver.rstrip("/") if receiver else None
        self.stripe = stripe.rstrip("/")
        self.stripe_secret = stripe_secret
        self.signer = signer  # signs the billing calls (--sign, or the gateway checks SigV4)
        self.checks_iam = checks_iam  # the gateway refused an unsigned billing call
        self.run_id = uuid.uuid4().hex[:8]

    def key(self, name: str) -> str:
        return f"demo-{self.run_id}-{name}"

    def post(self, path: str, body: Any, key: str | None = None, note: str = "") -> Reply:
        headers = {"Idempotency-Key": key} if key else {}
        shown = f"POST {path}" + (f"   Idempotency-Key: {key}" if key else "") + (f"   ({note})" if note else "")
        print(f"   > {shown}", flush=True)
        return request("POST", self.gateway + path, body, headers, signer=self.signer)

    def get(self, path: str) -> Reply:
        print(f"   > GET {path}", flush=True)
        return request("GET", self.gateway + path, signer=self.signer)

    def notifications(self, charge_id: str) -> list[dict[str, Any]]:
        if not self.receiver:
            return []
        reply = request("GET", f"{self.receiver}/received?{urllib.parse.urlencode({'charge_id': charge_id})}")
        return reply.json if reply.status == 200 and isinstance(reply.json, list) else []

    def await_notification(self, charge_id: str, event_type: str, object_id: str | None = None) -> None:
        if not self.receiver:
            show("billing", f"(no receiver to ask; {event_type} goes to the configured endpoint)")
            return
        found = poll(
            f"the billing notification {event_type} for {object_id or charge_id}",
            lambda: [
                n
                for n in self.notifications(charge_id)
                if n.get("type") == event_type and (object_id is None or n.get("object_id") == object_id)
            ],
        )
        for n in found:
            amount = f"{n.get('amount')} {n.get('currency')}" if n.get("amount") is not None else ""
            verdict = "signature verified" if n.get("verified") else f"NOT VERIFIED ({n.get('error')})"
            show("billing received", f"{n['type']} {n.get('object_id')} {amount} - {verdict} [{n.get('webhook_id')}]")

    def stripe_events_about(self, object_id: str) -> list[dict[str, Any]]:
        req = urllib.request.Request(f"{self.stripe}/v1/events?limit=100", headers={"Authorization": "Bearer sk_test_demo"})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310 - loopback only
                events = json.loads(response.read())["data"]
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return []
        return [e for e in events if (e.get("data") or {}).get("object", {}).get("id") == object_id]

    def stripe_call(self, method: str, path: str, form: dict[str, str] | None = None) -> Any:
        """A call to localstripe's API, as Stripe's dashboard (or another integration) would make."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(
            f"{self.stripe}{path}", data=data, method=method,
            headers={"Authorization": "Bearer sk_test_demo", "Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310 - loopback only
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise DemoError(f"localstripe answered {method} {path} with {e.code}: {e.read()[:300]!r}") from e

    def signed_stripe_post(self, body: bytes, signature: str) -> Reply:
        return request(
            "POST",
            f"{self.gateway}/webhooks/stripe",
            raw=body,
            headers={"content-type": "application/json; charset=utf-8", "Stripe-Signature": signature},
        )

    def stripe_signature(self, timestamp: int, body: bytes, secret: str | None = None) -> str:
        key = (secret or self.stripe_secret).encode()
        digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={digest}"

    def show_refused_billing_calls(self, charge_body: dict[str, Any]) -> None:
        """An unsigned charge and one signed with the wrong secret: both 403, neither reaches the function."""
        assert self.signer is not None
        print("   > POST /charges   not signed", flush=True)
        reply = request("POST", f"{self.gateway}/charges", charge_body, {"Idempotency-Key": self.key("unsigned")})
        refused = expect(reply, 403, "POST /charges (unsigned)")
        show("answer", f"{reply.status} {refused.get('message')} - the charges function never ran")
        print("   > POST /charges   signed with the wrong secret", flush=True)
        forger = Signer(self.signer.access_key, "not-the-secret", self.signer.region)
        reply = request("POST", f"{self.gateway}/charges", charge_body, {"Idempotency-Key": self.key("forged")}, signer=forger)
        refused = expect(reply, 403, "POST /charges (wrong secret)")
        show("answer", f"{reply.status} {refused.get('message')}")

    # ------------------------------------------------------------------ the story

    def run(self) -> None:
        invoice = f"inv_demo_{self.run_id}"
        charge_body = {
            "invoice_id": invoice,
            "amount": 1999,
            "currency": "eur",
            "gateway": "stripe",
            "payment_method": "pm_card_visa",
            "capture": True,
            "description": f"Invoice {invoice}",
            "metadata": {"plan": "pro"},
        }

        step(1, "The billing system charges an invoice")
        reply = self.post("/charges", charge_body, self.key("charge"))
        charge = expect(reply, 201, "POST /charges")
        show("answer", f"{reply.status} - charge {charge['id']} is {charge['status']}")
        show("amount", f"{charge['amount']} {charge['currency']} (minor units), captured {charge['captured']}")
        show("at Stripe", f"PaymentIntent {charge['gateway_ref']}")
        charge_id, intent = charge["id"], charge["gateway_ref"]

        step(2, "Read it back")
        reply = self.get(f"/charges/{charge_id}")
        read = expect(reply, 200, "GET /charges/{id}")
        show("answer", f"{reply.status} - {read['status']}, captured {read['captured']}, refunded {read['refunded']}")
        reply = self.get(f"/charges?invoice_id={invoice}")
        listed = expect(reply, 200, "GET /charges?invoice_id=")
        show("the invoice's charges", ", ".join(f"{c['id']} ({c['status']})" for c in listed["data"]))
        reply = self.post("/charges", charge_body, self.key("charge-again"))
        again = expect(reply, 409, "POST /charges (the same invoice, a new key)")["error"]
        show("billing lost its key", f"{reply.status} {again['code']} - the invoice is held by {again['charge_id']}")

        step(3, "Stripe's own webhook arrives")
        events = poll(f"localstripe's event about {intent}", lambda: self.stripe_events_about(intent), 15)
        for event in events:
            show("localstripe sent", f"{event['type']} {event['id']} (signed, to {self.gateway}/webhooks/stripe)")
        # localstripe posts it a second after the event; give it time to land, then deliver the
        # same event again the way Stripe retries: intake knows it already.
        event = events[0]
        time.sleep(max(0.0, event["created"] + 3 - time.time()))
        body = json.dumps(event).encode()
        reply = self.signed_stripe_post(body, self.stripe_signature(int(time.time()), body))
        outcome = expect(reply, 200, "POST /webhooks/stripe (a Stripe retry)")
        outcomes = ", ".join(f"{e['id']} {e['outcome']}" for e in outcome.get("events", []))
        show("Stripe retries it", f"{reply.status} - {outcomes}: recorded once, applied once")
        show("the charge", f"still {expect(self.get(f'/charges/{charge_id}'), 200, 'GET /charges/{id}')['status']} - events only move charges forward")

        step(4, "Billing is told, with a signed notification")
        self.await_notification(charge_id, "charge.succeeded")

        step(5, "The billing system retries the same request")
        reply = self.post("/charges", charge_body, self.key("charge"), "the same body")
        again = expect(reply, 201, "POST /charges (replay)")
        show("answer", f"{reply.status} - Idempotent-Replayed: {reply.header('Idempotent-Replayed')}, same charge {again['id']}")
        if again["id"] != charge_id or reply.header("Idempotent-Replayed") != "true":
            raise DemoError(f"the replay should return {charge_id} with Idempotent-Replayed: true, got {reply.text}")
        changed = dict(charge_body, amount=2999)
        reply = self.post("/charges", changed, self.key("charge"), "amount 2999 this time")
        refused = expect(reply, 422, "POST /charges (same key, other amount)")
        show("same key, other body", f"{reply.status} {refused['error']['code']} - {refused['error']['message']}")

        step(6, "Refund part of it")
        reply = self.post(f"/charges/{charge_id}/refunds", {"amount": 500, "reason": "requested_by_customer"}, self.key("refund"))
        refund = expect(reply, 201, "POST /charges/{id}/refunds")
        show("answer", f"{reply.status} - refund {refund['id']} is {refund['status']}, {refund['amount']} {refund['currency']}")
        reply = self.get(f"/charges/{charge_id}")
        after = expect(reply, 200, "GET /charges/{id}")
        show("the charge", f"{after['status']}, refunded {after['refunded']} of {after['captured']}")
        reply = self.get(f"/charges/{charge_id}/refunds")
        refunds = expect(reply, 200, "GET /charges/{id}/refunds")
        show("its refunds", ", ".join(f"{r['id']} ({r['status']}, {r['amount']})" for r in refunds["data"]))
        self.await_notification(charge_id, "refund.succeeded", refund["id"])
        self.await_notification(charge_id, "charge.partially_refunded")

        step(7, "Authorize a charge, then cancel it")
        held = dict(charge_body, invoice_id=f"{invoice}_hold", capture=False, description="held, then canceled")
        reply = self.post("/charges", held, self.key("hold"))
        authorized = expect(reply, 201, "POST /charges (capture: false)")
        show("answer", f"{reply.status} - charge {authorized['id']} is {authorized['status']}, captured {authorized['captured']}")
        reply = self.post(f"/charges/{authorized['id']}/cancel", None, self.key("cancel"))
        canceled = expect(reply, 200, "POST /charges/{id}/cancel")
        show("answer", f"{reply.status} - {canceled['status']}")
        self.await_notification(authorized["id"], "charge.canceled")

        step(8, "A declined card")
        declined_body = dict(charge_body, invoice_id=f"{invoice}_declined", payment_method="pm_card_chargeCustomerFail")
        reply = self.post("/charges", declined_body, self.key("declined"))
        declined = expect(reply, 201, "POST /charges (declined card)")
        failure = declined.get("failure") or {}
        show("answer", f"{reply.status} - {declined['status']}: {failure.get('code')} ({failure.get('message')})")
        show("advice", f"{failure.get('advice')} (retryable: {str(failure.get('retryable')).lower()}) - billing's dunning acts on this")
        show("note", "a decline is an outcome, not an error: billing gets charge.failed")
        self.await_notification(declined["id"], "charge.failed")

        step(9, "Someone refunds in Stripe's dashboard")
        print(f"   > POST {self.stripe}/v1/refunds   payment_intent={intent} amount=300 (no paybridge metadata)", flush=True)
        outside = self.stripe_call("POST", "/v1/refunds", {"payment_intent": intent, "amount": "300"})
        show("at Stripe", f"refund {outside['id']} {outside['status']}, 300 {outside['currency']} - paybridge did not ask for it")
        adopted = poll(
            "paybridge to adopt the dashboard refund",
            lambda: [r for r in expect(self.get(f"/charges/{charge_id}/refunds"), 200, "GET /charges/{id}/refunds")["data"]
                     if r.get("gateway_ref") == outside["id"]],
        )[0]
        show("paybridge", f"refund {adopted['id']} ({adopted['status']}, {adopted['amount']}, external: {adopted['external']})")
        self.await_notification(charge_id, "refund.succeeded", adopted["id"])
        self.await_notification(charge_id, "charge.updated")
        reply = self.post(f"/charges/{charge_id}/refunds", {}, self.key("rest"), "no amount: refund the rest")
        rest = expect(reply, 201, "POST /charges/{id}/refunds (the rest)")
        show("answer", f"{reply.status} - refund {rest['id']} of {rest['amount']}: what Stripe has not refunded (1999 - 500 - 300)")
        self.await_notification(charge_id, "charge.refunded")

        step(10, "A customer disputes a charge")
        disputed_body = dict(charge_body, invoice_id=f"{invoice}_disputed", payment_method="pm_card_createDispute")
        reply = self.post("/charges", disputed_body, self.key("disputed"))
        disputed = expect(reply, 201, "POST /charges (a card whose payment the customer will dispute)")
        show("answer", f"{reply.status} - charge {disputed['id']} is {disputed['status']}")
        self.await_notification(disputed["id"], "dispute.opened")
        dispute = poll(
            "the dispute's funds withdrawn",
            lambda: [d for d in expect(self.get(f"/charges/{disputed['id']}/disputes"), 200, "GET /charges/{id}/disputes")["data"]
                     if d["funds_withdrawn"] > 0],
        )[0]
        show("the dispute", f"{dispute['id']} {dispute['status']} ({dispute['reason']}), {dispute['funds_withdrawn']} withdrawn, evidence due {dispute['evidence_due_by']}")
        reply = self.post(f"/charges/{disputed['id']}/refunds", {}, self.key("disputed-refund"), "refund it while disputed")
        refused = expect(reply, 422, "POST /charges/{id}/refunds (disputed)")
        show("answer", f"{reply.status} {refused['error']['code']} - a refund on top of a lost dispute pays the customer twice")
        print(f"   > POST {self.stripe}/v1/disputes/{dispute['gateway_ref']}   evidence[uncategorized_text]=winning_evidence", flush=True)
        self.stripe_call("POST", f"/v1/disputes/{dispute['gateway_ref']}", {"evidence[uncategorized_text]": "winning_evidence"})
        self.await_notification(disputed["id"], "dispute.won", dispute["id"])
        won = expect(self.get(f"/disputes/{dispute['id']}"), 200, "GET /disputes/{id}")
        show("the dispute", f"{won['status']}: {won['funds_reinstated']} reinstated")

        step(11, "A forged Stripe webhook")
        forged = json.dumps(
            {"id": f"evt_forged_{self.run_id}", "object": "event", "type": "payment_intent.succeeded",
             "data": {"object": {"id": intent, "object": "payment_intent", "status": "succeeded"}}}
        ).encode()
        signature = self.stripe_signature(int(time.time()), forged, secret="whsec_not_the_real_secret")
        print("   > POST /webhooks/stripe   Stripe-Signature signed with the wrong secret", flush=True)
        reply = self.signed_stripe_post(forged, signature)
        error = expect(reply, 400, "POST /webhooks/stripe (forged)")
        show("answer", f"{reply.status} {error['error']['code']} - {error['error']['message']}")

        last = 12
        if self.signer is not None and self.checks_iam:
            last = 13
            step(12, "Billing calls without a valid signature (the gateway checks SigV4, as API Gateway does)")
            self.show_refused_billing_calls(charge_body)

        step(last, "What billing received")
        if not self.receiver:
            show("billing", "no receiver to ask (make dev with BILLING_RECEIVER=0)")
        else:
            received = []
            for cid in (charge_id, authorized["id"], declined["id"], disputed["id"]):
                received += self.notifications(cid)
            for n in received:
                mark = "verified" if n.get("verified") else "NOT VERIFIED"
                show(n.get("type", "?"), f"{n.get('object_id')} - {mark}")
            ids = [n.get("webhook_id") for n in received]
            show("in all", f"{len(received)} notifications, {len(set(ids))} distinct, "
                 f"{sum(1 for n in received if n.get('verified'))} verified")
        print("\nDone. The `make dev` terminal shows each request, batch and notification as it happened.", flush=True)


# A charge that does not exist: paybridge's gateway answers 404 with its JSON error (a 403
# {"message":"Forbidden"} if it checks SigV4 and the call is not signed).
PROBE = "/charges/ch_00000000000000000000000000000000"


def connect(gateway: str, sign: bool, env_file: Path) -> tuple[Signer | None, bool]:
    """The signer for the billing calls (None: unsigned) and whether the gateway refuses unsigned ones.

    Signs with `sign`, and when the gateway refuses the unsigned probe. Raises DemoError saying what
    to do when the gateway is not paybridge's or refuses the signed probe too; URLError or OSError
    when nothing answers.
    """
    probe = request("GET", gateway + PROBE)
    checks_iam = probe.status == 403 and probe.json == {"message": "Forbidden"}
    signer = None
    if sign or checks_iam:
        try:
            signer = Signer.from_env_file(env_file)
        except DemoError as exc:
            hint = " (the gateway refuses unsigned billing calls: it runs with make dev LOCAL_IAM=1)" if checks_iam else ""
            raise DemoError(f"{exc}{hint}") from exc
        why = "--sign" if sign else "the gateway refused an unsigned call: make dev LOCAL_IAM=1"
        print(f"demo: signing the billing calls (SigV4, execute-api, {signer.region}, access key {signer.access_key}; {why})")
        probe = request("GET", gateway + PROBE, signer=signer)
        if probe.status == 403:
            raise DemoError(
                f"the gateway refused the signed call too ({probe.text[:300]}); is {env_file} the env file "
                "of the running make dev? (its gateway log says why: .stack/dev/gateway.log)"
            )
    if probe.status != 404 or not isinstance(probe.json, dict) or "error" not in probe.json:
        raise DemoError(f"{gateway} does not answer like paybridge's local gateway ({probe.status} {probe.text[:200]})")
    return signer, checks_iam


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default="http://127.0.0.1:3000", help="the local gateway (default %(default)s)")
    parser.add_argument("--receiver", help="the billing receiver (default: billing.endpoint of local/secrets.json)")
    parser.add_argument("--stripe", default="http://127.0.0.1:8420", help="localstripe (default %(default)s)")
    parser.add_argument("--sign", action="store_true", help="SigV4-sign the billing calls (make demo LOCAL_IAM=1); also done when the gateway asks for it")
    parser.add_argument("--env-file", type=Path, default=DEV_ENV, help="the credentials and region to sign with (default: the dev stack's .stack/dev/env)")
    args = parser.parse_args(argv)

    secrets = json.loads(SECRETS.read_text(encoding="utf-8"))
    receiver = args.receiver
    if receiver is None:
        endpoint = urllib.parse.urlsplit(secrets["billing"]["endpoint"])
        receiver = f"{endpoint.scheme}://{endpoint.netloc}"

    try:
        signer, checks_iam = connect(args.gateway, args.sign, args.env_file)
    except (urllib.error.URLError, OSError):
        print(
            f"demo: nothing answers at {args.gateway}: `make dev` is not running.\n"
            "      Start it in another terminal with `make dev`, wait for \"Ctrl-C stops everything\",\n"
            "      then run `make demo` again.",
            file=sys.stderr,
        )
        return 1
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    try:
        request("GET", f"{receiver}/received")
    except (urllib.error.URLError, OSError):
        print(f"demo: no billing receiver at {receiver}; the notification steps only say where they went", file=sys.stderr)
        receiver = None

    print(f"paybridge demo against {args.gateway} (billing receiver {receiver or 'none'}, localstripe {args.stripe})")
    demo = Demo(args.gateway, receiver, args.stripe, secrets["stripe"]["webhook_secrets"][0], signer, checks_iam)
    try:
        demo.run()
    except DemoError as exc:
        print(f"\ndemo: {exc}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"\ndemo: lost the connection to `make dev` ({exc}); is it still running?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
