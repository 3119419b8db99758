//! Cost of the PAN detector on a 256 KiB payload: realistic gateway JSON with many digit runs
//! (amounts, unix times in s and ms, ISO dates, phone numbers, postcodes, ids), once with no
//! card number and once with one at the very end. The target is ≤ 1 ms for the whole payload.
//! Run with `make bench` (or `cargo bench -p paybridge --bench pan_detector`).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use paybridge::domain::pci;
use paybridge::webhooks::adyen;

const SIZE: usize = 256 * 1024;

/// One Stripe-like charge object with the digit runs such objects carry.
fn object(i: u64) -> serde_json::Value {
    let created = 1_767_225_600 + i * 37;
    serde_json::json!({
        "id": format!("ch_3Q{i:06}benchAbCdEfGhIjKl"), "object": "charge",
        "amount": 1999 + i, "amount_captured": 1999 + i, "amount_refunded": i % 500,
        "created": created, "created_ms": created * 1000 + i % 1000,
        "currency": "eur", "paid": true, "status": "succeeded",
        "description": format!("Invoice INV-2026-{i:06} for {} seats, 19.99 EUR each", i % 40),
        "metadata": {"invoice_id": format!("inv_{i}"), "order": format!("2026/{i:06}"),
                     "issued": "2026-01-15T10:30:00.123+01:00"},
        "billing_details": {"phone": format!("+49 30 {:07}", i % 10_000_000),
            "address": {"postal_code": format!("{:05}", 10_000 + i % 89_999), "line1": format!("Street {}", i % 300)}},
        "payment_method_details": {"card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}},
        "outcome": {"risk_score": i % 100, "network_status": "approved_by_network"},
        "balance_transaction": format!("txn_1Q{i:08}xYz")
    })
}

/// `SIZE` bytes of JSON: a list of objects (none holding a card number), padded to the size.
fn payload(with_pan_at_end: bool) -> String {
    let mut items = Vec::new();
    let mut len = 0;
    let mut i = 0;
    while len < SIZE - 4096 {
        let o = object(i);
        let text = o.to_string();
        i += 1;
        if pci::contains_pan(&text) {
            continue; // a generated phone number or order that happens to be one: not in the payload
        }
        len += text.len() + 1;
        items.push(o);
    }
    let items: Vec<String> = items.iter().map(|o| o.to_string()).collect();
    let mut doc = format!(r#"{{"object":"list","data":[{}"#, items.join(","));
    let tail = if with_pan_at_end {
        r#"],"note":"card 4111 1111 1111 1111 123"}"#
    } else {
        r#"],"note":"nothing here"}"#
    };
    while doc.len() + tail.len() < SIZE {
        doc.push(' ');
    }
    doc.push_str(tail);
    doc
}

fn detector(c: &mut Criterion) {
    let clean = payload(false);
    let dirty = payload(true);
    assert_eq!(clean.len(), SIZE);
    assert!(
        !pci::contains_pan(&clean),
        "the clean payload holds no card number"
    );
    assert!(pci::contains_pan(&dirty));
    let clean_json: serde_json::Value = serde_json::from_str(&clean).unwrap();
    let dirty_json: serde_json::Value = serde_json::from_str(&dirty).unwrap();

    let mut g = c.benchmark_group("pan_detector_256KiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("contains_pan/no_pan", |b| {
        b.iter(|| pci::contains_pan_bytes(black_box(clean.as_bytes())))
    });
    g.bench_function("contains_pan/pan_at_end", |b| {
        b.iter(|| pci::contains_pan_bytes(black_box(dirty.as_bytes())))
    });
    g.bench_function("mask_text/no_pan", |b| {
        b.iter(|| pci::mask_bytes(black_box(clean.as_bytes())))
    });
    g.bench_function("mask_text/pan_at_end", |b| {
        b.iter(|| pci::mask_bytes(black_box(dirty.as_bytes())))
    });
    g.bench_function("json_contains_pan/no_pan", |b| {
        b.iter(|| pci::json_contains_pan(black_box(&clean_json)))
    });
    g.bench_function("mask_json_with_exemptions/no_pan", |b| {
        b.iter_batched_ref(
            || clean_json.clone(),
            |v| pci::mask_json_except(v, adyen::IDENTIFIERS),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("mask_json_with_exemptions/pan_at_end", |b| {
        b.iter_batched_ref(
            || dirty_json.clone(),
            |v| pci::mask_json_except(v, adyen::IDENTIFIERS),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, detector);
criterion_main!(benches);
