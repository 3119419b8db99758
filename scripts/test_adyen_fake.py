#!/usr/bin/env python3
"""Tests of scripts/adyen_fake.py, the local Adyen of the dev and test stacks.

The fake runs in this process on 127.0.0.1:0 with local/secrets.json, and its notifications go to
a receiver started here that records every delivery and answers `[accepted]` as paybridge does.
Signatures are checked with this file's own implementation of Adyen's scheme, which first has to
reproduce the published vectors of Adyen's Python and Java libraries. No other process is needed:

    .venv/bin/python -m unittest scripts/test_adyen_fake.py -v

`make test` runs it through scripts/run_script_tests.py. It takes about two seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import adyen_fake  # noqa: E402

SECRETS = json.loads((SCRIPTS.parent / "local" / "secrets.json").read_text(encoding="utf-8"))
API_KEY = SECRETS["adyen"]["api_key"]
MERCHANT = SECRETS["adyen"]["merchant_account"]
HMAC_KEY = SECRETS["adyen"]["hmac_keys"][0]
DEADLINE = 5.0


def expected_signature(hex_key: str, item: dict[str, Any]) -> str:
    """Adyen's scheme, written again from shared/src/webhooks/adyen/verify.rs (not the fake's)."""
    amount = item.get("amount") or {}
    fields = [
        item.get("pspReference", ""), item.get("originalReference", ""), item.get("merchantAccountCode", ""),
        item.get("merchantReference", ""), "" if amount.get("value") is None else str(amount["value"]),
        amount.get("currency", ""), item.get("eventCode", ""), item.get("success", ""),
    ]
    mac = hmac.new(bytes.fromhex(hex_key), ":".join(fields).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class Receiver(ThreadingHTTPServer):
    """paybridge's /webhooks/adyen as the fake sees it: records deliveries, answers [accepted]."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.deliveries: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answer the next deliveries with these, then 200
        self.lock = threading.Lock()


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            status = self.server.statuses.pop(0) if self.server.statuses else 200
            self.server.deliveries.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(raw), "answered": status})
        body = b"[accepted]"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class AdyenFakeTest(unittest.TestCase):
    receiver: Receiver
    fake: adyen_fake.Fake
    server: adyen_fake.Server
    base: str

    @classmethod
    def setUpClass(cls) -> None:
        adyen_fake.QUIET = True
        cls.receiver = Receiver()
        threading.Thread(target=cls.receiver.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{cls.receiver.server_address[1]}/webhooks/adyen"
        cls.fake = adyen_fake.Fake(SECRETS, webhook_url=url, notify_delay=0.0)
        cls.server, _, _ = adyen_fake.serve(0, cls.fake)
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()
        cls.server.shutdown()
        cls.receiver.shutdown()

    def setUp(self) -> None:
        self.fake.reset()
        with self.receiver.lock:
            self.receiver.deliveries.clear()
            self.receiver.statuses.clear()
        self.keys = 0

    # ---- helpers

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read()), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read()), dict(exc.headers)

    def adyen(self, path: str, body: Any, key: str | None = None, api_key: str = API_KEY) -> tuple[int, Any, dict[str, str]]:
        if key is None:
            self.keys += 1
            key = f"{self.id()}-{self.keys}"[-64:]
        headers = {"Content-Type": "application/json", "X-API-Key": api_key, "Idempotency-Key": key}
        return self.call("POST", f"/v72{path}", body, headers)

    def payment_body(self, stored: str = "stored_ok", manual: bool = False, **extra: Any) -> dict[str, Any]:
        """What shared/src/adapters/gateways/adyen/wire.rs `payment_body` sends."""
        body = {
            "amount": {"value": 1999, "currency": "EUR"}, "reference": "ch_01JTESTCHARGE0000000000000",
            "merchantAccount": MERCHANT, "paymentMethod": {"type": "scheme", "storedPaymentMethodId": stored},
            "shopperReference": "shopper_42", "shopperInteraction": "ContAuth",
            "recurringProcessingModel": "UnscheduledCardOnFile", "returnUrl": "https://paybridge.invalid/adyen/return",
            "metadata": {"invoice_id": "inv_1"},
        }
        if manual:
            body["additionalData"] = {"manualCapture": "true"}
        body.update(extra)
        return body

    def pay(self, stored: str = "stored_ok", manual: bool = False) -> str:
        status, answer, _ = self.adyen("/payments", self.payment_body(stored, manual))
        self.assertEqual(status, 200, answer)
        return answer["pspReference"]

    def items(self, count: int) -> list[dict[str, Any]]:
        """The first `count` items delivered (waiting up to DEADLINE), each checked to be one
        signed item in Adyen's envelope."""
        end = time.monotonic() + DEADLINE
        while True:
            with self.receiver.lock:
                got = [d for d in self.receiver.deliveries if d["answered"] == 200]
            if len(got) >= count or time.monotonic() > end:
                break
            time.sleep(0.02)
        self.assertGreaterEqual(len(got), count, f"{len(got)} of {count} notifications arrived: {got}")
        out = []
        for delivery in got:
            body = delivery["body"]
            self.assertEqual(body["live"], "false")
            self.assertEqual(len(body["notificationItems"]), 1)
            item = body["notificationItems"][0]["NotificationRequestItem"]
            self.assertEqual(item["additionalData"]["hmacSignature"], expected_signature(HMAC_KEY, item), item)
            self.assertEqual(item["merchantAccountCode"], MERCHANT)
            datetime.fromisoformat(item["eventDate"])
            self.assertEqual(delivery["path"], "/webhooks/adyen")
            self.assertTrue(delivery["headers"]["Content-Type"].startswith("application/json"))
            out.append(item)
        return out

    def assert_no_more_than(self, count: int) -> None:
        time.sleep(0.2)
        with self.receiver.lock:
            self.assertEqual(len(self.receiver.deliveries), count, self.receiver.deliveries)

    # ---- signatures

    def test_the_signature_scheme_reproduces_adyens_published_vectors(self) -> None:
        # adyen-python-api-library test/UtilTest.py (also in verify.rs).
        python_item = {
            "amount": {"currency": "EUR", "value": 1130}, "eventCode": "AUTHORISATION",
            "merchantAccountCode": "TestMerchant", "merchantReference": "TestPayment-1407325143704",
            "pspReference": "7914073381342284", "success": "true",
        }
        key = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
        # adyen-java-api-library HMACValidatorTest: testValidateHMAC and ...WithoutEscaping.
        report = {
            "amount": {"currency": "EUR", "value": "0"}, "eventCode": "REPORT_AVAILABLE",
            "merchantAccountCode": "Magento2Rik", "merchantReference": "testMerchantRef1",
            "pspReference": "test_REPORT_AVAILABLE", "success": "true",
        }
        slashes = {
            "amount": {"currency": "EUR", "value": 1000}, "eventCode": "AUTHORISATION",
            "merchantAccountCode": "AntoniStroinski", "merchantReference": "\\:/\\/slashes are fun",
            "pspReference": "ZVWN7D3WSMK2WN82", "success": "true",
        }
        vectors = [
            (key, python_item, "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="),
            ("9064450A8892A093D9E97EFCC9639DE31B74F3A7803135555A3C96F5A57915D6", report, "NuEkADFmlCC6VgX+wcoPAegIWxVPNBPCuKlM4Hzo5qc="),
            ("74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174", slashes, "CZErGCNQaSsxbaQfZaJlakqo7KPP+mIa8a+wx3yNs9A="),
        ]
        for hex_key, item, signature in vectors:
            self.assertEqual(expected_signature(hex_key, item), signature, item)
            self.assertEqual(adyen_fake.sign(hex_key, item), signature, item)

    # ---- the Checkout API

    def test_an_ok_stored_card_is_authorised_and_its_signed_authorisation_follows(self) -> None:
        status, answer, _ = self.adyen("/payments", self.payment_body())
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["resultCode"], "Authorised")
        self.assertRegex(answer["pspReference"], r"^[A-Z0-9]{16}$")
        (item,) = self.items(1)
        self.assertEqual(
            {k: item[k] for k in ("eventCode", "success", "pspReference", "merchantReference", "amount")},
            {"eventCode": "AUTHORISATION", "success": "true", "pspReference": answer["pspReference"],
             "merchantReference": "ch_01JTESTCHARGE0000000000000", "amount": {"value": 1999, "currency": "EUR"}},
        )
        self.assertNotIn("originalReference", item)
        self.assertEqual(item["operations"], ["CANCEL", "CAPTURE", "REFUND"])
        self.assertEqual(item["additionalData"]["metadata.invoice_id"], "inv_1")

    def test_a_refused_card_answers_refused_with_adyens_reason_and_a_failed_authorisation(self) -> None:
        for stored, reason, code in [("stored_refused", "Refused", "2"), ("stored_not_enough_balance", "Not enough balance", "12")]:
            status, answer, _ = self.adyen("/payments", self.payment_body(stored))
            self.assertEqual((status, answer["resultCode"], answer["refusalReason"], answer["refusalReasonCode"]), (200, "Refused", reason, code))
        items = self.items(2)
        self.assertEqual([(i["eventCode"], i["success"], i["reason"]) for i in items],
                         [("AUTHORISATION", "false", "Refused"), ("AUTHORISATION", "false", "Not enough balance")])

    def test_a_pending_payment_is_authorised_by_a_later_notification(self) -> None:
        status, answer, _ = self.adyen("/payments", self.payment_body("stored_pending"))
        self.assertEqual((status, answer["resultCode"]), (200, "Pending"))
        (item,) = self.items(1)
        self.assertEqual((item["eventCode"], item["success"], item["pspReference"]), ("AUTHORISATION", "true", answer["pspReference"]))
        _, payment, _ = self.call("GET", f"/_paybridge/payments/{answer['pspReference']}")
        self.assertEqual((payment["status"], payment["captured"]), ("Authorised", 1999))

    # ---- shopper steps (3-D Secure)

    FIXTURES = SCRIPTS.parent / "tests" / "fixtures" / "adyen"

    def published(self, name: str) -> dict[str, Any]:
        return json.loads((self.FIXTURES / name).read_text(encoding="utf-8"))

    def test_a_redirect_card_answers_redirect_shopper_shaped_like_adyens_and_completes_by_authenticate(self) -> None:
        status, answer, _ = self.adyen("/payments", self.payment_body("stored_3ds_redirect"))
        self.assertEqual((status, answer["resultCode"]), (200, "RedirectShopper"), answer)
        mock = self.published("payments-redirect-shopper.json")
        self.assertEqual(set(answer["action"]), set(mock["action"]), "the keys of Adyen's published action")
        self.assertEqual({k: answer["action"][k] for k in ("method", "paymentMethodType", "type")},
                         {k: mock["action"][k] for k in ("method", "paymentMethodType", "type")})
        self.assertTrue(answer["action"]["url"].startswith(self.base + "/_paybridge/"), "it never points off this machine")
        psp = answer["pspReference"]
        self.assert_no_more_than(0)  # nothing is decided until the shopper is back
        status, sent, _ = self.call("POST", f"/_paybridge/payments/{psp}/authenticate", {"success": True})
        self.assertEqual(status, 202, sent)
        (item,) = self.items(1)
        self.assertEqual((item["eventCode"], item["success"], item["pspReference"], item["merchantReference"], item["amount"]["value"]),
                         ("AUTHORISATION", "true", psp, "ch_01JTESTCHARGE0000000000000", 1999))
        _, payment, _ = self.call("GET", f"/_paybridge/payments/{psp}")
        self.assertEqual((payment["status"], payment["captured"]), ("Authorised", 1999))
        status, again, _ = self.call("POST", f"/_paybridge/payments/{psp}/authenticate", {"success": True})
        self.assertEqual(status, 409, again)

    def test_a_3ds2_card_answers_identify_shopper_without_a_psp_reference_and_can_fail(self) -> None:
        body = self.payment_body("stored_3ds2", reference="ch_01JTEST3DS2000000000000000")
        status, answer, _ = self.adyen("/payments", body)
        self.assertEqual((status, answer["resultCode"]), (200, "IdentifyShopper"), answer)
        mock = self.published("payments-3ds2-identify-shopper.json")
        self.assertNotIn("pspReference", mock)
        self.assertNotIn("pspReference", answer, "as Adyen's mock: no pspReference before the 3DS2 step")
        self.assertEqual(list(answer["action"]), list(mock["action"]), "the keys of Adyen's published action, in order")
        self.assertEqual((answer["action"]["type"], answer["action"]["subtype"]), ("threeDS2", "fingerprint"))
        # Found by its merchant reference; the shopper fails the challenge.
        status, sent, _ = self.call("POST", "/_paybridge/payments/ch_01JTEST3DS2000000000000000/authenticate", {"success": False})
        self.assertEqual(status, 202, sent)
        (item,) = self.items(1)
        self.assertEqual((item["eventCode"], item["success"], item["reason"], item["merchantReference"]),
                         ("AUTHORISATION", "false", "3D Not Authenticated", "ch_01JTEST3DS2000000000000000"))
        self.assertRegex(item["pspReference"], r"^[A-Z0-9]{16}$")

    def test_a_payment_waiting_for_the_shopper_can_be_cancelled_and_then_not_completed(self) -> None:
        status, answer, _ = self.adyen("/payments", self.payment_body("stored_3ds_redirect"))
        psp = answer["pspReference"]
        status, cancel, _ = self.adyen(f"/payments/{psp}/cancels", {"merchantAccount": MERCHANT, "reference": "ch_expired"})
        self.assertEqual((status, cancel["status"]), (201, "received"), cancel)
        (item,) = self.items(1)
        self.assertEqual((item["eventCode"], item["success"], item["originalReference"]), ("CANCELLATION", "true", psp))
        status, late, _ = self.call("POST", f"/_paybridge/payments/{psp}/authenticate", {"success": True})
        self.assertEqual(status, 409, late)
        self.assert_no_more_than(1)

    def test_the_same_idempotency_key_replays_the_first_answer_and_pays_once(self) -> None:
        first = self.adyen("/payments", self.payment_body(), key="charge-1-create")
        again = self.adyen("/payments", self.payment_body(), key="charge-1-create")
        self.assertEqual((first[0], first[1]), (again[0], again[1]))
        _, payments, _ = self.call("GET", "/_paybridge/payments")
        self.assertEqual(len(payments), 1)
        _, requests, _ = self.call("GET", "/_paybridge/requests")
        self.assertEqual([r["replayed"] for r in requests], [False, True])
        self.assertEqual(requests[0]["headers"]["x-api-key"], "****")
        self.items(1)
        self.assert_no_more_than(1)

    def test_requests_that_break_adyens_rules_are_refused_in_its_error_shape(self) -> None:
        cases = [
            (self.adyen("/payments", self.payment_body(), api_key="wrong"), 401, "000"),
            (self.adyen("/payments", self.payment_body(shopperEmail="a@example.com", colour="blue")), 422, "702"),
            (self.adyen("/payments", self.payment_body(merchantAccount="SomeoneElse")), 403, "901"),
            (self.adyen("/payments", self.payment_body(amount={"value": 19.99, "currency": "EUR"})), 422, "702"),
            (self.adyen("/payments", self.payment_body("stored_who_knows")), 422, "803"),
            (self.adyen("/payments", self.payment_body(), key="x" * 65), 422, "702"),
            (self.adyen("/payments/NOSUCHPAYMENT000/captures", {"merchantAccount": MERCHANT, "amount": {"value": 1, "currency": "EUR"}}), 422, "702"),
        ]
        for (status, body, _), want_status, want_code in cases:
            self.assertEqual((status, body["errorCode"]), (want_status, want_code), body)
            self.assertEqual(set(body), {"status", "errorCode", "message", "errorType", "pspReference"})
        self.assertIn("colour", cases[1][0][1]["message"])
        self.assertNotIn("shopperEmail", cases[1][0][1]["message"], "a field Adyen defines is not refused")
        status, body, headers = self.adyen("/payments", self.payment_body("stored_throttled"))
        self.assertEqual((status, headers.get("Retry-After")), (429, "3"))
        status, body, _ = self.adyen("/payments", self.payment_body("stored_error"))
        self.assertEqual(status, 500)
        self.assert_no_more_than(0)

    def test_capture_cancel_and_refund_are_received_and_confirmed_by_their_notifications(self) -> None:
        manual = self.pay(manual=True)
        status, capture, _ = self.adyen(f"/payments/{manual}/captures", {"merchantAccount": MERCHANT, "amount": {"value": 1500, "currency": "EUR"}, "reference": "ch_capture"})
        self.assertEqual((status, capture["status"], capture["paymentPspReference"]), (201, "received", manual))
        self.assertEqual(set(capture), {"merchantAccount", "paymentPspReference", "pspReference", "reference", "status", "amount"})
        status, refund, _ = self.adyen(f"/payments/{manual}/refunds", {"merchantAccount": MERCHANT, "amount": {"value": 500, "currency": "EUR"}, "reference": "rf_1"})
        self.assertEqual((status, refund["status"]), (201, "received"))
        other = self.pay(manual=True)
        status, cancel, _ = self.adyen(f"/payments/{other}/cancels", {"merchantAccount": MERCHANT, "reference": "ch_cancel"})
        self.assertEqual((status, cancel["status"]), (201, "received"))
        self.assertNotIn("amount", cancel)
        items = self.items(5)
        self.assertEqual([i["eventCode"] for i in items], ["AUTHORISATION", "CAPTURE", "REFUND", "AUTHORISATION", "CANCELLATION"])
        capture_item, refund_item, cancel_item = items[1], items[2], items[4]
        self.assertEqual(
            (capture_item["eventCode"], capture_item["pspReference"], capture_item["originalReference"], capture_item["merchantReference"], capture_item["amount"]["value"], capture_item["success"]),
            ("CAPTURE", capture["pspReference"], manual, "ch_capture", 1500, "true"),
        )
        self.assertEqual(
            (refund_item["eventCode"], refund_item["pspReference"], refund_item["originalReference"], refund_item["merchantReference"], refund_item["amount"]["value"]),
            ("REFUND", refund["pspReference"], manual, "rf_1", 500),
        )
        self.assertEqual((cancel_item["eventCode"], cancel_item["originalReference"], cancel_item["success"]), ("CANCELLATION", other, "true"))

    def test_a_refund_beyond_what_was_captured_is_received_and_then_fails(self) -> None:
        psp = self.pay()
        status, refund, _ = self.adyen(f"/payments/{psp}/refunds", {"merchantAccount": MERCHANT, "amount": {"value": 5000, "currency": "EUR"}, "reference": "rf_big"})
        self.assertEqual(status, 201)
        _, item = self.items(2)
        self.assertEqual((item["eventCode"], item["success"], item["reason"]), ("REFUND", "false", "Insufficient balance on payment"))

    # ---- control endpoints

    def test_a_technical_capture_failure_is_followed_by_adyens_own_recapture(self) -> None:
        psp = self.pay(manual=True)
        _, capture, _ = self.adyen(f"/payments/{psp}/captures", {"merchantAccount": MERCHANT, "amount": {"value": 1999, "currency": "EUR"}, "reference": "ch_c"})
        status, sent, _ = self.call("POST", f"/_paybridge/payments/{psp}/capture-failed", {"reason": "technical", "retry_after": 0})
        self.assertEqual(status, 202, sent)
        _, _, failed, recaptured = self.items(4)
        self.assertEqual(
            (failed["eventCode"], failed["success"], failed["pspReference"], failed["originalReference"], failed["merchantReference"], failed["reason"]),
            ("CAPTURE_FAILED", "true", capture["pspReference"], psp, "ch_c", "Capture rejected by card scheme because of a technical issue."),
        )
        self.assertEqual(
            (recaptured["eventCode"], recaptured["success"], recaptured["pspReference"], recaptured["reason"]),
            ("CAPTURE", "true", capture["pspReference"], "Transaction Recaptured"),
        )

    def test_an_expired_capture_fails_for_good(self) -> None:
        psp = self.pay()  # captured automatically
        status, sent, _ = self.call("POST", f"/_paybridge/payments/{psp}/capture-failed", {"reason": "expired"})
        self.assertEqual(status, 202, sent)
        _, failed = self.items(2)
        self.assertEqual((failed["eventCode"], failed["originalReference"], failed["amount"]["value"]), ("CAPTURE_FAILED", psp, 1999))
        self.assertIn("(capture expired)", failed["reason"])
        self.assert_no_more_than(2)
        _, payment, _ = self.call("GET", f"/_paybridge/payments/{psp}")
        self.assertEqual(payment["captured"], 0)
        status, _, _ = self.call("POST", f"/_paybridge/payments/{psp}/capture-failed", {"reason": "expired"})
        self.assertEqual(status, 409)

    def test_a_refund_failure_then_adyens_retry_reports_the_same_refund_again(self) -> None:
        psp = self.pay()
        _, refund, _ = self.adyen(f"/payments/{psp}/refunds", {"merchantAccount": MERCHANT, "amount": {"value": 700, "currency": "EUR"}, "reference": "rf_late"})
        status, sent, _ = self.call("POST", "/_paybridge/refunds/rf_late/refund-failed", {"reason": "technical", "retry_after": 0})
        self.assertEqual((status, [n["eventCode"] for n in sent["notifications"]]), (202, ["REFUND_FAILED", "REFUND"]))
        _, first, failed, retried = self.items(4)
        for item, code, success in [(first, "REFUND", "true"), (failed, "REFUND_FAILED", "true"), (retried, "REFUND", "true")]:
            self.assertEqual(
                (item["eventCode"], item["success"], item["pspReference"], item["originalReference"], item["merchantReference"], item["amount"]["value"]),
                (code, success, refund["pspReference"], psp, "rf_late", 700),
            )
        self.assertEqual(failed["reason"], "Refund rejected by card scheme because of a technical issue.")

    def test_each_dispute_event_has_adyens_fields_and_one_dispute_reference(self) -> None:
        psp = self.pay(manual=True)
        self.adyen(f"/payments/{psp}/captures", {"merchantAccount": MERCHANT, "amount": {"value": 1999, "currency": "EUR"}, "reference": "ch_cap"})
        for event in adyen_fake.DISPUTE_EVENTS:
            status, sent, _ = self.call("POST", f"/_paybridge/payments/{psp}/dispute", {"eventCode": event})
            self.assertEqual(status, 202, sent)
        items = self.items(2 + len(adyen_fake.DISPUTE_EVENTS))[2:]
        self.assertEqual([i["eventCode"] for i in items], list(adyen_fake.DISPUTE_EVENTS))
        self.assertEqual(len({i["pspReference"] for i in items}), 1, "every event of a dispute has its pspReference")
        self.assertNotEqual(items[0]["pspReference"], psp)
        for item in items:
            data = item["additionalData"]
            self.assertEqual((item["originalReference"], item["success"], item["amount"]["value"]), (psp, "true", 1999), item)
            self.assertIn(data["disputeStatus"], adyen_fake.DISPUTE_STATUSES)
            self.assertEqual(data["modificationMerchantReferences"], "ch_cap")
        by_code = {i["eventCode"]: i for i in items}
        noc = by_code["NOTIFICATION_OF_CHARGEBACK"]["additionalData"]
        self.assertEqual((noc["chargebackReasonCode"], noc["chargebackSchemeCode"], noc["disputeStatus"]), ("10.4", "visa", "Undefended"))
        datetime.fromisoformat(noc["defensePeriodEndsAt"])
        self.assertEqual(by_code["REQUEST_FOR_INFORMATION"]["additionalData"]["rfiReasonCode"], "10.4")
        self.assertEqual(by_code["SECOND_CHARGEBACK"]["reason"], "10.4:Other Fraud-Card Absent Environment")
        self.assertEqual(
            [by_code[c]["additionalData"]["disputeStatus"] for c in ("CHARGEBACK_REVERSED", "SECOND_CHARGEBACK", "PREARBITRATION_WON", "PREARBITRATION_LOST")],
            ["Won", "Lost", "Won", "Lost"],
        )
        status, _, _ = self.call("POST", f"/_paybridge/payments/{psp}/dispute", {"eventCode": "CHARGEBACK", "disputeStatus": "Maybe"})
        self.assertEqual(status, 400)

    def test_a_dashboard_refund_names_the_payment_and_no_refund_of_paybridges(self) -> None:
        psp = self.pay()
        status, sent, _ = self.call("POST", f"/_paybridge/payments/{psp}/dashboard-refund", {"amount": 300})
        self.assertEqual(status, 202, sent)
        _, item = self.items(2)
        self.assertEqual(
            (item["eventCode"], item["success"], item["originalReference"], item["merchantReference"], item["amount"]["value"]),
            ("REFUND", "true", psp, "ch_01JTESTCHARGE0000000000000", 300),
        )
        self.assertNotEqual(item["pspReference"], psp)

    def test_an_undelivered_notification_is_tried_again_and_reset_forgets_everything(self) -> None:
        with self.receiver.lock:
            self.receiver.statuses = [500]
        self.pay()
        (item,) = self.items(1)
        _, notifications, _ = self.call("GET", "/_paybridge/notifications")
        self.assertEqual([a["status"] for a in notifications[0]["attempts"]], [500, 200])
        self.assertEqual(notifications[0]["status"], "delivered")
        self.assertEqual(self.call("POST", "/_paybridge/reset")[0], 200)
        for what in ("payments", "requests", "notifications"):
            self.assertEqual(self.call("GET", f"/_paybridge/{what}")[1], [], what)
        self.assertEqual(self.call("GET", "/_paybridge/config")[1]["webhook_url"], self.fake.webhook_url)

    def test_basic_auth_is_sent_when_the_secret_configures_it_and_urls_off_this_machine_are_refused(self) -> None:
        config = json.loads(json.dumps(SECRETS))
        config["adyen"]["basic_auth"] = {"username": "adyen", "password": "s3cret"}
        fake = adyen_fake.Fake(config, webhook_url=self.fake.webhook_url, notify_delay=0.0)
        self.assertEqual(fake.post(fake.webhook_url, adyen_fake.batch({"eventCode": "X"}))[0], 200)
        with self.receiver.lock:
            auth = self.receiver.deliveries[-1]["headers"]["Authorization"]
        self.assertEqual(base64.b64decode(auth.removeprefix("Basic ")), b"adyen:s3cret")
        status, body, _ = self.call("POST", "/_paybridge/config", {"webhook_url": "https://example.com/webhooks/adyen"})
        self.assertEqual(status, 400, body)


if __name__ == "__main__":
    unittest.main()
