//! A card number in a webhook, in the disguises that used to slip through, goes through intake
//! (verify, mask, record, enqueue) and the worker (interpret, apply to the charge, notify
//! billing) with the production log subscriber capturing every line: afterwards no Luhn-valid
//! 13–19 digit window, in any disguise, is in the logs, in any stored record (event, charge,
//! notification) or in what billing is sent — except the exempt Adyen pspReference, which is
//! asserted to be kept exactly where it is exempt.
//!
//! The judge is `pci::tests::oracle`, a naive implementation of the rule, not the scanner.

use std::sync::{Arc, Mutex};

use crate::domain::pci::tests::oracle;
use crate::domain::{Charge, ChargeId, ChargeStatus, EventStatus, Gateway, Money};
use crate::ports::{EventStore, NotifyOutcome};
use crate::services::fakes::{MemBus, MemQueue, MemStore, ScriptedBilling, ScriptedGateway};
use crate::services::record_webhook::{self, IntakeSettings};
use crate::services::work::{Received, Worker};
use crate::webhooks::{adyen, stripe};

const NOW: i64 = 1_767_225_600;
/// adyen-python-api-library's test HMAC key (test/UtilTest.py).
const HMAC_KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";
/// The pspReference of the same library's test notification: 16 digits whose first 14 pass the
/// Luhn check — what the exemption by path is for.
const PSP: &str = "7914073381342284";

/// Every log line the subscriber writes, in a buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The card-number windows of `text` (none expected).
fn pans(text: &str) -> Vec<String> {
    oracle::pans(text)
        .into_iter()
        .map(|d| String::from_utf8_lossy(&d).into_owned())
        .collect()
}

/// Whether Visa's test card number 4111 1111 1111 1111 is anywhere in `text`, whatever
/// separators stand between its digits.
fn visa_test_card_in(text: &str) -> bool {
    oracle::sequences(text)
        .iter()
        .any(|s| String::from_utf8_lossy(s).contains("4111111111111111"))
}

type TestWorker = Worker<MemStore, ScriptedGateway, MemQueue, ScriptedBilling, MemBus>;

async fn run_queued(w: &TestWorker, queue: &MemQueue) {
    loop {
        let next = queue.sent.lock().unwrap().pop();
        let Some((message, _)) = next else { break };
        let body = serde_json::to_string(&message).unwrap();
        let received = Received {
            id: "m-1",
            body: &body,
            receipt_handle: Some("rh-1"),
            receive_count: 1,
            sent_at_ms: Some(NOW * 1000),
        };
        w.handle(&received, NOW).await;
        // What the worker queued (a billing notification) is handled next.
        let more: Vec<_> = w.queue.sent.lock().unwrap().drain(..).collect();
        queue.sent.lock().unwrap().extend(more);
    }
}

#[tokio::test]
async fn a_card_number_in_a_webhook_reaches_no_log_no_record_and_no_billing_notification() {
    let logs = Captured::default();
    let _guard =
        tracing::subscriber::set_default(crate::telemetry::subscriber("debug", logs.clone()));

    let w: TestWorker = Worker {
        store: MemStore::default(),
        gateways: ScriptedGateway::timing_out(),
        queue: MemQueue::default(),
        dlq: Some(MemQueue::default()),
        notifier: ScriptedBilling::answering(vec![NotifyOutcome::Delivered { status: 200 }]),
        bus: Some(MemBus::default()),
        max_receive_count: 5,
    };
    let intake_queue = MemQueue::default();
    let charge = Charge::pending(
        ChargeId::generate(),
        "inv_1",
        Money::parse(1130, "eur").unwrap(),
        Gateway::Adyen,
        "stored_ok",
        NOW,
    );
    w.store
        .charges
        .lock()
        .unwrap()
        .insert(charge.id.clone(), charge.clone());

    // Adyen: a refused authorisation whose reason, additional data and keys carry the card.
    let mut item = serde_json::json!({
        "amount": {"currency": "EUR", "value": 1130},
        "eventCode": "AUTHORISATION", "eventDate": "2026-01-01T00:00:00+01:00",
        "merchantAccountCode": "TestMerchant", "merchantReference": charge.id.to_string(),
        "pspReference": PSP, "paymentMethod": "visa", "success": "false",
        "reason": "Refused: card 4111 1111 1111 1111 123",
        "additionalData": {
            "shopperStatement": "4111111111111111 12/26",
            "cardHolderNote": "pan4111111111111111",
            "4111.1111.1111.1111": "as a key",
            "nested": [{"n": 4111111111111111u64}, "0099 4111-1111-1111-1111"]
        }
    });
    let signature = adyen::sign_item(HMAC_KEY, &item).unwrap();
    item["additionalData"]["hmacSignature"] = serde_json::json!(signature);
    let batch = serde_json::json!({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]});
    let keys = [crate::secrets::SecretString::new(HMAC_KEY)];
    let events = adyen::verify_and_parse(batch.to_string().as_bytes(), &keys).unwrap();

    // Stripe: a PaymentIntent whose error message and status carry it (the status ends up in a
    // log line: "PaymentIntent status not mapped: …").
    let stripe_body = serde_json::json!({
        "id": "evt_1PanPanPanPanPanPanPanPa", "type": "payment_intent.payment_failed",
        "data": {"object": {"id": "pi_3PanPanPanPanPanPanPanPa", "object": "payment_intent",
            "status": "card 4111 1111 1111 1111 123",
            "last_payment_error": {"message": "card 4111111111111111 12/26 declined"}}}
    });
    let stripe_event = stripe::parse(stripe_body.to_string().as_bytes()).unwrap();

    let mut all = events;
    all.push(stripe_event);
    record_webhook::record(
        &w.store,
        &intake_queue,
        &IntakeSettings::default(),
        all,
        NOW,
    )
    .await
    .unwrap();
    run_queued(&w, &intake_queue).await;

    // The Adyen event was applied: the charge failed with Adyen's (masked) reason, billing told.
    let stored = w.store.charges.lock().unwrap()[&charge.id].clone();
    assert_eq!(stored.status, ChargeStatus::Failed);
    let failure = stored.failure.clone().expect("the refusal is recorded");
    assert_eq!(failure.message, "Refused: card **** **** **** 1111 ***");
    assert_eq!(
        w.notifier.received.lock().unwrap().len(),
        1,
        "billing was notified"
    );
    let adyen_event_id = w
        .store
        .events
        .lock()
        .unwrap()
        .keys()
        .find(|(g, _)| *g == Gateway::Adyen)
        .unwrap()
        .1
        .clone();
    let record = w
        .store
        .get_event(Gateway::Adyen, &adyen_event_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, EventStatus::Processed);
    let payload: serde_json::Value = serde_json::from_str(&record.payload).unwrap();
    assert_eq!(
        payload["pspReference"], PSP,
        "the exempt identifier is kept"
    );

    // Nothing of the card number anywhere.
    let log_text = logs.text();
    assert!(
        log_text.contains("webhook event recorded"),
        "the logs were captured: {log_text}"
    );
    assert!(
        log_text.contains("PaymentIntent status not mapped"),
        "{log_text}"
    );
    assert!(
        pans(&log_text).is_empty(),
        "logs: {:?}\n{log_text}",
        pans(&log_text)
    );
    assert!(!visa_test_card_in(&log_text), "{log_text}");
    let stored_text = format!(
        "{:?}\n{:?}\n{:?}",
        w.store.events.lock().unwrap(),
        w.store.charges.lock().unwrap(),
        w.store.notifications.lock().unwrap(),
    );
    assert!(!visa_test_card_in(&stored_text), "{stored_text}");
    // The pspReference is exempt where it is an identifier (its field, the event id, the
    // object ref); with it taken out, nothing that looks like a card number is left.
    let without_psp = stored_text.replace(PSP, "<psp>");
    assert!(
        pans(&without_psp).is_empty(),
        "{:?}\n{without_psp}",
        pans(&without_psp)
    );
    assert!(stored_text.contains(PSP));
}

#[test]
fn the_log_writer_masks_any_line_whatever_it_carries() {
    let logs = Captured::default();
    tracing::subscriber::with_default(crate::telemetry::subscriber("info", logs.clone()), || {
        tracing::info!(
            path = "/charges/4111 1111 1111 1111/capture",
            psp = PSP,
            "request refused"
        );
        tracing::error!(
            error = "gateway said: card 4111111111111111 12/26 declined",
            "failed"
        );
    });
    let text = logs.text();
    assert!(
        text.contains("request refused") && text.contains("failed"),
        "{text}"
    );
    assert!(pans(&text).is_empty(), "{text}");
    assert!(!visa_test_card_in(&text), "{text}");
    // Logs have no exemptions: the pspReference is masked there too.
    assert!(!text.contains(PSP), "{text}");
    assert!(
        text.contains("/charges/**** **** **** 1111/capture"),
        "{text}"
    );
}
