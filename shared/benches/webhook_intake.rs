//! CPU cost of webhook intake, excluding AWS round trips: Stripe signature verification, event
//! parsing with PCI masking, and building the event record — against plain HMAC-SHA256 of the
//! same body as the floor. Run with `make bench` (or `cargo bench -p paybridge`).

#![recursion_limit = "256"]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use paybridge::domain::event::EventRecord;
use paybridge::secrets::SecretString;
use paybridge::webhooks::stripe;
use sha2::Sha256;

/// A 3 KiB `payment_intent.succeeded` event, shaped like Stripe's.
fn stripe_body() -> Vec<u8> {
    let mut body = serde_json::json!({
        "id": "evt_3QbenchmarkAAAAAAAAAAAAA", "object": "event", "api_version": "2026-11-18.endive",
        "created": 1_764_230_400, "type": "payment_intent.succeeded", "livemode": false,
        "pending_webhooks": 1, "request": {"id": "req_abc", "idempotency_key": "paybridge-ch_1-create"},
        "data": {"object": {
            "id": "pi_3QbenchmarkAAAAAAAAAAAAA", "object": "payment_intent", "amount": 1999,
            "amount_capturable": 0, "amount_received": 1999, "currency": "eur", "status": "succeeded",
            "customer": "cus_Pbenchmark", "description": "Invoice 123",
            "metadata": {"paybridge_charge_id": "ch_0192f0a4b7c87d2a9d3f8e1b2c3d4e5f", "invoice_id": "inv_123", "plan": "pro"},
            "payment_method": "pm_1QbenchmarkAAAAAAAAAAAAA", "latest_charge": "ch_3QbenchmarkAAAAAAAAAAAAA",
            "payment_method_types": ["card"], "capture_method": "automatic", "confirmation_method": "automatic",
            "charges": {"object": "list", "data": [{
                "id": "ch_3QbenchmarkAAAAAAAAAAAAA", "amount": 1999, "amount_captured": 1999, "paid": true,
                "balance_transaction": "txn_3QbenchmarkAAAAAAAAAAAAA", "captured": true, "currency": "eur",
                "outcome": {"network_status": "approved_by_network", "reason": null, "risk_level": "normal",
                            "risk_score": 32, "seller_message": "Payment complete.", "type": "authorized"},
                "payment_method_details": {"type": "card", "card": {"brand": "visa", "country": "US",
                    "exp_month": 12, "exp_year": 2030, "fingerprint": "Xt5EWLLDS7FJjR1c", "funding": "credit",
                    "last4": "4242", "network": "visa", "three_d_secure": null,
                    "checks": {"address_line1_check": null, "address_postal_code_check": "pass", "cvc_check": "pass"}}},
                "billing_details": {"address": {"city": "Berlin", "country": "DE", "line1": "Street 1",
                    "line2": null, "postal_code": "10115", "state": null}, "email": "payer@example.com",
                    "name": "Jenny Rosen", "phone": null},
                "receipt_url": "https://pay.example/receipts/payment/CAcaFwoVYWNjdF8xTTJKVGtMa2RJd0h1N2l4KKa",
                "refunds": {"object": "list", "data": [], "has_more": false, "total_count": 0}
            }], "has_more": false, "total_count": 1}
        }}
    })
    .to_string();
    // Pad to ~3 KiB with a realistic metadata blob.
    while body.len() < 3 * 1024 {
        body = body.replacen(
            "\"plan\":\"pro\"",
            "\"plan\":\"pro\",\"note\":\"renewal of the annual subscription\"",
            1,
        );
    }
    body.into_bytes()
}

fn intake(c: &mut Criterion) {
    let body = stripe_body();
    let secret = "whsec_paybridgeBenchmarkSecret000001";
    let secrets = vec![SecretString::new(secret)];
    let now = 1_764_230_400;
    let header = stripe::sign(secret, now, &body);

    let mut group = c.benchmark_group(format!("stripe_event_{}_bytes", body.len()));
    group.bench_function("hmac_sha256_only", |b| {
        b.iter(|| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(black_box(&body));
            black_box(mac.finalize().into_bytes())
        })
    });
    group.bench_function("verify_parse_and_build_record", |b| {
        b.iter(|| {
            stripe::verify(
                Some(black_box(&header)),
                black_box(&body),
                &secrets,
                now,
                300,
            )
            .unwrap();
            let event = stripe::parse(black_box(&body)).unwrap();
            black_box(EventRecord::new(event, now, 15, 30 * 86_400))
        })
    });
    group.finish();
}

criterion_group!(benches, intake);
criterion_main!(benches);
