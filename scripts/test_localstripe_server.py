#!/usr/bin/env python3
"""Tests of scripts/localstripe_server.py: localstripe as Stripe's test mode.

Starts the server on 127.0.0.1 (a free port, short delays), registers a webhook endpoint that
points at a receiver in this process, and checks what each test payment method does, each
event (type, object shape, `Stripe-Signature` verified with the endpoint secret), refunds,
disputes and the `/_paybridge/` control endpoints. Runs alone or in `make test` (through
scripts/run_script_tests.py); needs the `.venv` with localstripe:

    .venv/bin/python -m unittest discover -s scripts -p 'test_localstripe_server.py' -v
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SECRET = "whsec_test_" + uuid.uuid4().hex
VERSION = "2024-06-20"  # what paybridge's Stripe adapter sends
EVENT_VERSION = "2026-11-18.endive"  # what paybridge pins on main
DEADLINE = 5.0  # seconds for an event to arrive (deliveries leave after 0.05 s here)


class Receiver(ThreadingHTTPServer):
    """A webhook endpoint that keeps every delivery: (Stripe-Signature, raw body)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((HOST, 0), ReceiverHandler)
        self.changed = threading.Condition()
        self.deliveries: list[tuple[str, bytes]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def events_about(self, object_id: str, wanted: list[str]) -> dict[str, list[dict]]:
        """Waits until every type in `wanted` arrived about `object_id`; {type: [events]}."""
        deadline = time.monotonic() + DEADLINE
        with self.changed:
            while True:
                found: dict[str, list[dict]] = {}
                for header, body in self.deliveries:
                    event = json.loads(body)
                    if event["data"]["object"].get("id") == object_id:
                        found.setdefault(event["type"], []).append(event)
                if all(t in found for t in wanted):
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"events {wanted} about {object_id} did not all arrive; got {sorted(found)}")
                self.changed.wait(left)


class ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.changed:
            self.server.deliveries.append((self.headers.get("Stripe-Signature", ""), body))
            self.server.changed.notify_all()
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def verify(header: str, body: bytes, secret: str, tolerance: int = 300) -> None:
    """Stripe's scheme: `t=…,v1=…`, v1 = HMAC-SHA256(secret, "t.body"), t recent."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts["v1"]):
        raise AssertionError(f"signature does not verify: {header}")
    if abs(time.time() - int(parts["t"])) > tolerance:
        raise AssertionError(f"signature timestamp is stale: {header}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class LocalStripeTestMode(unittest.TestCase):
    server: subprocess.Popen
    receiver: Receiver
    url: str

    @classmethod
    def setUpClass(cls) -> None:
        port = free_port()
        cls.url = f"http://{HOST}:{port}"
        cls.server = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, str(SCRIPTS / "localstripe_server.py"), str(port), "--webhook-delay", "0.05", "--async-delay", "0.05",
             "--enforce-refund-limits"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    break
            except OSError:
                if cls.server.poll() is not None or time.monotonic() > deadline:
                    cls.tearDownClass()
                    raise RuntimeError("localstripe_server.py did not start")
                time.sleep(0.1)
        cls.receiver = Receiver()
        hook = f"http://{HOST}:{cls.receiver.server_address[1]}/webhooks/stripe"
        data = urllib.parse.urlencode({"url": hook, "secret": SECRET}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{cls.url}/_config/webhooks/test", data=data), timeout=5).close()  # noqa: S310

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.terminate()
        try:
            cls.server.wait(10)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            cls.server.wait()
        if getattr(cls, "receiver", None) is not None:
            cls.receiver.shutdown()
            cls.receiver.server_close()

    # ---------------------------------------------------------------- helpers

    def call(self, method: str, path: str, form: dict | None = None, version: str | None = VERSION,
             key: str | None = None, as_json: bool = False) -> tuple[int, dict]:
        headers = {"Authorization": "Bearer sk_test_script"}
        if version:
            headers["Stripe-Version"] = version
        if key:
            headers["Idempotency-Key"] = key
        data = None
        if form is not None:
            if as_json:
                data, headers["Content-Type"] = json.dumps(form).encode(), "application/json"
            else:
                data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - loopback
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def pay(self, pm: str, **extra: str) -> tuple[int, dict]:
        form = {"amount": "1999", "currency": "eur", "payment_method": pm, "confirm": "true", "off_session": "true",
                "metadata[invoice_id]": "inv_" + uuid.uuid4().hex}
        form.update(extra)
        return self.call("POST", "/v1/payment_intents", form, key=uuid.uuid4().hex)

    def paid(self, pm: str = "pm_card_visa") -> dict:
        status, pi = self.pay(pm)
        self.assertEqual((status, pi["status"]), (200, "succeeded"), pi)
        return pi

    def events(self, object_id: str, *wanted: str) -> dict[str, list[dict]]:
        found = self.receiver.events_about(object_id, list(wanted))
        with self.receiver.changed:
            for header, body in self.receiver.deliveries:
                if json.loads(body)["data"]["object"].get("id") == object_id:
                    verify(header, body, SECRET)
        for event in (e for es in found.values() for e in es):
            self.assertEqual((event["object"], event["api_version"], event["livemode"]), ("event", EVENT_VERSION, False))
            self.assertTrue(event["id"].startswith("evt_"), event)
            self.assertIn("idempotency_key", event["request"])
            self.assertIsInstance(event["pending_webhooks"], int)
        return found

    def one(self, object_id: str, event_type: str) -> dict:
        return self.events(object_id, event_type)[event_type][0]["data"]["object"]

    # ---------------------------------------------------------------- payments

    def test_pm_card_visa_succeeds_with_the_current_shape_and_signed_events(self) -> None:
        key = uuid.uuid4().hex
        status, pi = self.call("POST", "/v1/payment_intents", {"amount": "1999", "currency": "eur", "payment_method": "pm_card_visa",
                                                               "confirm": "true", "off_session": "true"}, key=key)
        self.assertEqual((status, pi["status"], pi["amount_received"]), (200, "succeeded", 1999), pi)
        self.assertTrue(pi["latest_charge"].startswith("ch_"), pi)
        self.assertNotIn("charges", pi)
        self.assertTrue(pi["payment_method"].startswith("pm_") and pi["payment_method"] != "pm_card_visa", pi)
        found = self.events(pi["id"], "payment_intent.succeeded")
        event = found["payment_intent.succeeded"][0]
        self.assertEqual(event["request"]["idempotency_key"], key)
        self.assertTrue(event["request"]["id"].startswith("req_"), event)
        self.assertEqual(event["data"]["object"]["latest_charge"], pi["latest_charge"])
        self.assertNotIn("charges", event["data"]["object"])
        self.assertNotIn("invoice", event["data"]["object"])
        charge = self.one(pi["latest_charge"], "charge.succeeded")
        self.assertEqual((charge["object"], charge["amount_captured"], charge["paid"], charge["payment_intent"]),
                         ("charge", 1999, True, pi["id"]))
        self.assertNotIn("refunds", charge)

    def test_each_declining_test_card_answers_402_with_stripes_card_error(self) -> None:
        cases = {
            "pm_card_visa_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
            "pm_card_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
            "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
            "pm_card_chargeDeclinedLostCard": ("card_declined", "lost_card", "Your card was declined."),
            "pm_card_authenticationRequired": ("authentication_required", "authentication_required",
                                               "Your card was declined. This transaction requires authentication."),
            "pm_card_chargeCustomerFail": ("card_declined", None, "Your card was declined."),
        }
        for pm, (code, decline_code, message) in cases.items():
            with self.subTest(pm):
                status, body = self.pay(pm)
                self.assertEqual(status, 402, body)
                error = body["error"]
                self.assertEqual((error["type"], error["code"], error.get("decline_code"), error["message"]),
                                 ("card_error", code, decline_code, message))
                pi = error["payment_intent"]
                self.assertEqual((pi["status"], pi["payment_method"], pi["amount_received"]), ("requires_payment_method", None, 0))
                self.assertEqual(pi["last_payment_error"]["code"], code)
                self.assertEqual(pi["last_payment_error"]["charge"], error["charge"])
                self.assertTrue(pi["last_payment_error"]["payment_method"]["id"].startswith("pm_"))
                failed = self.one(pi["id"], "payment_intent.payment_failed")
                self.assertEqual((failed["status"], failed["last_payment_error"].get("decline_code")),
                                 ("requires_payment_method", decline_code))
                charge = self.one(error["charge"], "charge.failed")
                self.assertEqual((charge["status"], charge["failure_code"], charge["outcome"]["type"]),
                                 ("failed", code, "issuer_declined"))

    def test_authentication_required_on_session_asks_for_3ds(self) -> None:
        status, pi = self.call("POST", "/v1/payment_intents", {"amount": "500", "currency": "eur",
                                                               "payment_method": "pm_card_authenticationRequired", "confirm": "true"})
        self.assertEqual((status, pi["status"], pi["next_action"]["type"]), (200, "requires_action", "use_stripe_sdk"), pi)
        self.events(pi["id"], "payment_intent.requires_action")

    def authentication_required_off_session(self) -> tuple[str, str, str]:
        """(PaymentIntent id, client_secret, declined payment method) of an off-session decline."""
        status, body = self.pay("pm_card_authenticationRequired")
        self.assertEqual(status, 402, body)
        pi = body["error"]["payment_intent"]
        self.assertEqual((pi["status"], pi["last_payment_error"]["code"]), ("requires_payment_method", "authentication_required"))
        self.assertTrue(pi["client_secret"].startswith(pi["id"] + "_secret_"), pi)
        return pi["id"], pi["client_secret"], body["error"]["payment_method"]["id"]

    def test_the_customer_completes_an_authentication_required_payment_on_session(self) -> None:
        pi_id, secret, pm = self.authentication_required_off_session()
        # What Stripe.js confirmCardPayment(client_secret, {payment_method}) sends, on session.
        status, pi = self.call("POST", f"/v1/payment_intents/{pi_id}/confirm", {"payment_method": pm, "client_secret": secret})
        self.assertEqual((status, pi["status"], pi["next_action"]["type"]), (200, "requires_action", "use_stripe_sdk"), pi)
        self.events(pi_id, "payment_intent.requires_action")
        status, bad = self.call("POST", f"/v1/payment_intents/{pi_id}/_authenticate", {"client_secret": "pi_x_secret_wrong", "success": "true"})
        self.assertEqual(status, 401, bad)
        status, pi = self.call("POST", f"/v1/payment_intents/{pi_id}/_authenticate", {"client_secret": secret, "success": "true"})
        self.assertEqual((status, pi["status"], pi["amount_received"], pi["next_action"]), (200, "succeeded", 1999, None), pi)
        succeeded = self.one(pi_id, "payment_intent.succeeded")
        self.assertEqual((succeeded["status"], succeeded["client_secret"]), ("succeeded", secret))
        status, again = self.call("POST", f"/v1/payment_intents/{pi_id}/cancel", {})
        self.assertEqual((status, again["error"]["code"]), (400, "payment_intent_unexpected_state"), again)

    def test_a_failed_authentication_sends_payment_failed_with_stripes_code(self) -> None:
        pi_id, secret, pm = self.authentication_required_off_session()
        self.call("POST", f"/v1/payment_intents/{pi_id}/confirm", {"payment_method": pm, "client_secret": secret})
        status, pi = self.call("POST", f"/v1/payment_intents/{pi_id}/_authenticate", {"client_secret": secret, "success": "false"})
        self.assertEqual((status, pi["status"], pi["last_payment_error"]["code"]),
                         (200, "requires_payment_method", "payment_intent_authentication_failure"), pi)
        failed = [e["data"]["object"] for e in self.events(pi_id, "payment_intent.payment_failed")["payment_intent.payment_failed"]]
        codes = sorted(f["last_payment_error"]["code"] for f in failed)
        deadline = time.monotonic() + DEADLINE
        while len(codes) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            failed = [e["data"]["object"] for e in self.events(pi_id, "payment_intent.payment_failed")["payment_intent.payment_failed"]]
            codes = sorted(f["last_payment_error"]["code"] for f in failed)
        self.assertEqual(codes, ["authentication_required", "payment_intent_authentication_failure"])
        self.assertEqual(failed[-1]["last_payment_error"]["payment_method"]["id"], pm)

    def test_an_unauthenticated_payment_intent_is_canceled(self) -> None:
        pi_id, _, _ = self.authentication_required_off_session()
        status, pi = self.call("POST", f"/v1/payment_intents/{pi_id}/cancel", {})
        self.assertEqual((status, pi["status"]), (200, "canceled"), pi)
        self.one(pi_id, "payment_intent.canceled")

    def test_a_declined_payment_intent_confirmed_again_with_another_card_succeeds_late(self) -> None:
        status, body = self.pay("pm_card_chargeDeclinedInsufficientFunds")
        self.assertEqual(status, 402, body)
        pi_id = body["error"]["payment_intent"]["id"]
        self.events(pi_id, "payment_intent.payment_failed")
        status, pi = self.call("POST", f"/v1/payment_intents/{pi_id}/confirm", {"payment_method": "pm_card_visa", "off_session": "true"})
        self.assertEqual((status, pi["status"], pi["last_payment_error"]), (200, "succeeded", None), pi)
        self.assertNotEqual(pi["latest_charge"], body["error"]["charge"])
        found = self.events(pi_id, "payment_intent.payment_failed", "payment_intent.succeeded")
        self.assertEqual(found["payment_intent.succeeded"][0]["data"]["object"]["amount_received"], 1999)
        status, again = self.call("POST", f"/v1/payment_intents/{pi_id}/confirm", {"payment_method": "pm_card_visa"})
        self.assertEqual((status, again["error"]["code"]), (400, "payment_intent_unexpected_state"), again)

    def test_a_manual_capture_is_authorized_then_captured_in_part(self) -> None:
        status, pi = self.pay("pm_card_visa", capture_method="manual")
        self.assertEqual((status, pi["status"], pi["amount_capturable"]), (200, "requires_capture", 1999), pi)
        self.assertEqual(self.one(pi["id"], "payment_intent.amount_capturable_updated")["amount_capturable"], 1999)
        status, pi = self.call("POST", f"/v1/payment_intents/{pi['id']}/capture", {"amount_to_capture": "1200"})
        self.assertEqual((status, pi["status"], pi["amount_received"]), (200, "succeeded", 1200), pi)
        self.assertEqual(self.one(pi["id"], "payment_intent.succeeded")["amount_received"], 1200)
        charge = self.one(pi["latest_charge"], "charge.captured")
        self.assertEqual((charge["amount_captured"], charge["amount_refunded"], charge["refunded"]), (1200, 0, False))
        status, rest = self.call("POST", "/v1/refunds", {"payment_intent": pi["id"]})
        self.assertEqual((status, rest["amount"]), (200, 1200), rest)

    def test_a_canceled_payment_intent_sends_payment_intent_canceled(self) -> None:
        status, pi = self.pay("pm_card_visa", capture_method="manual")
        status, pi = self.call("POST", f"/v1/payment_intents/{pi['id']}/cancel", {"cancellation_reason": "abandoned"})
        self.assertEqual((status, pi["status"], pi["cancellation_reason"]), (200, "canceled", "abandoned"), pi)
        canceled = self.one(pi["id"], "payment_intent.canceled")
        self.assertIsInstance(canceled["canceled_at"], int)

    def test_without_stripe_version_answers_keep_localstripes_embedded_charges(self) -> None:
        pi = self.paid()
        status, old = self.call("GET", f"/v1/payment_intents/{pi['id']}", version=None)
        self.assertEqual(old["charges"]["data"][0]["id"], pi["latest_charge"])
        status, expanded = self.call("GET", f"/v1/payment_intents/{pi['id']}?expand[]=latest_charge")
        self.assertEqual(expanded["latest_charge"]["id"], pi["latest_charge"])

    def test_events_are_listed_newest_first(self) -> None:
        first, second = self.paid(), self.paid()
        self.events(second["id"], "payment_intent.succeeded")
        status, page = self.call("GET", "/v1/events?limit=100&type=payment_intent.succeeded")
        ids = [e["data"]["object"]["id"] for e in page["data"]]
        self.assertLess(ids.index(second["id"]), ids.index(first["id"]))

    def test_payment_intents_are_found_by_their_metadata_and_other_queries_are_refused(self) -> None:
        tag = "ch_" + uuid.uuid4().hex
        status, first = self.pay("pm_card_visa", **{"metadata[paybridge_charge_id]": tag})
        self.assertEqual(status, 200, first)
        self.paid()  # another PaymentIntent, without the tag
        query = urllib.parse.quote(f"metadata['paybridge_charge_id']:'{tag}'")
        status, found = self.call("GET", f"/v1/payment_intents/search?query={query}&limit=10")
        self.assertEqual((status, found["object"], found["has_more"], found["next_page"]), (200, "search_result", False, None), found)
        self.assertEqual([pi["id"] for pi in found["data"]], [first["id"]])
        self.assertEqual(found["data"][0]["metadata"]["paybridge_charge_id"], tag)
        nothing = urllib.parse.quote("metadata['paybridge_charge_id']:'ch_nobody'")
        self.assertEqual(self.call("GET", f"/v1/payment_intents/search?query={nothing}")[1]["data"], [])
        status, error = self.call("GET", "/v1/payment_intents/search?query=" + urllib.parse.quote("amount>100"))
        self.assertEqual(status, 400, error)
        # An id is still retrieved as before: the search route does not shadow /{id}.
        self.assertEqual(self.call("GET", f"/v1/payment_intents/{first['id']}")[1]["id"], first["id"])

    def test_a_payment_intents_refunds_are_listed_with_their_metadata(self) -> None:
        pi = self.paid()
        status, refund = self.call("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": "300",
                                                           "metadata[paybridge_refund_id]": "rf_x"}, key=uuid.uuid4().hex)
        self.assertEqual(status, 200, refund)
        status, page = self.call("GET", f"/v1/refunds?payment_intent={pi['id']}&limit=100")
        self.assertEqual(status, 200, page)
        self.assertEqual([(r["id"], r["metadata"].get("paybridge_refund_id")) for r in page["data"]], [(refund["id"], "rf_x")])

    # ---------------------------------------------------------------- refunds

    def test_a_dashboard_refund_by_charge_sends_refund_created_and_charge_refunded(self) -> None:
        pi = self.paid()
        charge_id = pi["latest_charge"]
        status, refund = self.call("POST", "/v1/refunds", {"charge": charge_id, "amount": "500"})
        self.assertEqual((status, refund["status"], refund["payment_intent"], refund["metadata"]), (200, "succeeded", pi["id"], {}), refund)
        self.assertEqual(self.one(refund["id"], "refund.created")["amount"], 500)
        charge = self.one(charge_id, "charge.refunded")
        self.assertEqual((charge["amount_refunded"], charge["refunded"]), (500, False))
        self.assertNotIn("refunds", charge)
        status, too_much = self.call("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": "1500"})
        self.assertEqual((status, too_much["error"]["code"]), (400, "amount_too_large"), too_much)
        status, rest = self.call("POST", "/v1/refunds", {"payment_intent": pi["id"]})
        self.assertEqual((status, rest["amount"]), (200, 1499), rest)
        refunded = [e["data"]["object"] for e in self.events(charge_id, "charge.refunded")["charge.refunded"]]
        deadline = time.monotonic() + DEADLINE
        while len(refunded) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            refunded = [e["data"]["object"] for e in self.events(charge_id, "charge.refunded")["charge.refunded"]]
        self.assertIn((1999, True), [(c["amount_refunded"], c["refunded"]) for c in refunded])
        status, again = self.call("POST", "/v1/refunds", {"charge": charge_id})
        self.assertEqual((status, again["error"]["code"]), (400, "charge_already_refunded"), again)
        self.call("POST", f"/v1/refunds/{refund['id']}", {"metadata[note]": "dashboard"})
        event = self.events(refund["id"], "refund.updated")["refund.updated"][0]
        self.assertEqual((event["data"]["object"]["metadata"], event["data"]["previous_attributes"]["metadata"]), ({"note": "dashboard"}, {}))

    def test_a_refund_of_pm_card_refundfail_succeeds_then_fails(self) -> None:
        pi = self.paid("pm_card_refundFail")
        status, refund = self.call("POST", "/v1/refunds", {"payment_intent": pi["id"], "metadata[paybridge_refund_id]": "rf_1"})
        self.assertEqual((status, refund["status"]), (200, "succeeded"), refund)
        found = self.events(refund["id"], "refund.created", "refund.updated", "refund.failed")
        failed = found["refund.failed"][0]["data"]["object"]
        self.assertEqual((failed["status"], failed["failure_reason"], failed["metadata"]),
                         ("failed", "expired_or_canceled_card", {"paybridge_refund_id": "rf_1"}))
        self.assertEqual(found["refund.updated"][0]["data"]["previous_attributes"], {"status": "succeeded"})
        status, charge = self.call("GET", f"/v1/charges/{pi['latest_charge']}")
        self.assertEqual((charge["amount_refunded"], charge["refunded"]), (0, False))

    def test_the_control_endpoint_fails_any_refund(self) -> None:
        pi = self.paid()
        status, refund = self.call("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": "100"})
        status, failed = self.call("POST", f"/_paybridge/refunds/{refund['id']}/fail", {"failure_reason": "lost_or_stolen_card"},
                                   as_json=True)
        self.assertEqual((status, failed["status"], failed["failure_reason"]), (200, "failed", "lost_or_stolen_card"), failed)
        self.events(refund["id"], "refund.failed", "charge.refund.updated")

    # ---------------------------------------------------------------- disputes

    def created_dispute_id(self, pi: dict) -> str:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            status, page = self.call("GET", f"/v1/disputes?charge={pi['latest_charge']}")
            if page["data"]:
                return page["data"][0]["id"]
            time.sleep(0.05)
        raise AssertionError(f"no dispute on {pi['latest_charge']}")

    def test_pm_card_createdispute_is_disputed_and_winning_evidence_wins(self) -> None:
        pi = self.paid("pm_card_createDispute")
        dispute_id = self.created_dispute_id(pi)
        found = self.events(dispute_id, "charge.dispute.created", "charge.dispute.funds_withdrawn")
        dispute = found["charge.dispute.created"][0]["data"]["object"]
        self.assertEqual(
            {k: dispute[k] for k in ("object", "amount", "currency", "charge", "payment_intent", "status", "reason", "livemode", "metadata")},
            {"object": "dispute", "amount": 1999, "currency": "eur", "charge": pi["latest_charge"], "payment_intent": pi["id"],
             "status": "needs_response", "reason": "fraudulent", "livemode": False, "metadata": {}})
        self.assertGreater(dispute["evidence_details"]["due_by"], time.time())
        self.assertIs(dispute["is_charge_refundable"], False)
        withdrawn = found["charge.dispute.funds_withdrawn"][0]["data"]["object"]["balance_transactions"]
        self.assertEqual([t["amount"] for t in withdrawn], [-1999])
        status, charge = self.call("GET", f"/v1/charges/{pi['latest_charge']}")
        self.assertIs(charge["disputed"], True)
        status, refused = self.call("POST", "/v1/refunds", {"payment_intent": pi["id"]})
        self.assertEqual((status, refused["error"]["code"]), (400, "charge_disputed"), refused)
        status, submitted = self.call("POST", f"/v1/disputes/{dispute_id}", {"evidence[uncategorized_text]": "winning_evidence"})
        self.assertEqual((status, submitted["status"], submitted["evidence_details"]["submission_count"]), (200, "under_review", 1), submitted)
        found = self.events(dispute_id, "charge.dispute.updated", "charge.dispute.closed", "charge.dispute.funds_reinstated")
        self.assertEqual(found["charge.dispute.updated"][0]["data"]["previous_attributes"]["status"], "needs_response")
        self.assertEqual(found["charge.dispute.closed"][0]["data"]["object"]["status"], "won")
        reinstated = found["charge.dispute.funds_reinstated"][0]["data"]["object"]["balance_transactions"]
        self.assertEqual([t["amount"] for t in reinstated], [-1999, 1999])
        status, read = self.call("GET", f"/v1/disputes/{dispute_id}")
        self.assertEqual((status, read["status"]), (200, "won"))

    def test_losing_evidence_loses_and_closing_a_dispute_accepts_it(self) -> None:
        for how in ("losing_evidence", "close"):
            with self.subTest(how):
                pi = self.paid("pm_card_createDispute")
                dispute_id = self.created_dispute_id(pi)
                if how == "close":
                    status, closed = self.call("POST", f"/v1/disputes/{dispute_id}/close", {})
                    self.assertEqual((status, closed["status"]), (200, "lost"))
                else:
                    self.call("POST", f"/v1/disputes/{dispute_id}", {"evidence[uncategorized_text]": how})
                found = self.events(dispute_id, "charge.dispute.closed")
                self.assertEqual(found["charge.dispute.closed"][0]["data"]["object"]["status"], "lost")
                self.assertNotIn("charge.dispute.funds_reinstated", found)

    def test_control_endpoints_dispute_any_charge_move_and_close_it(self) -> None:
        pi = self.paid()
        status, dispute = self.call("POST", f"/_paybridge/charges/{pi['latest_charge']}/dispute", {"reason": "fraudulent"}, as_json=True)
        self.assertEqual((status, dispute["status"]), (200, "needs_response"), dispute)
        status, moved = self.call("POST", f"/_paybridge/disputes/{dispute['id']}/update", {"status": "under_review"}, as_json=True)
        self.assertEqual((status, moved["status"]), (200, "under_review"), moved)
        status, closed = self.call("POST", f"/_paybridge/disputes/{dispute['id']}/close", {"status": "lost"}, as_json=True)
        self.assertEqual((status, closed["status"]), (200, "lost"), closed)
        found = self.events(dispute["id"], "charge.dispute.created", "charge.dispute.funds_withdrawn",
                            "charge.dispute.updated", "charge.dispute.closed")
        self.assertEqual(found["charge.dispute.updated"][0]["data"]["previous_attributes"], {"status": "needs_response"})
        status, again = self.call("POST", f"/_paybridge/disputes/{dispute['id']}/close", {"status": "won"}, as_json=True)
        self.assertEqual(status, 400, again)


if __name__ == "__main__":
    unittest.main()
