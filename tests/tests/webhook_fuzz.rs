//! Webhook intake fuzzed through the local gateway: generated headers and bodies, as anyone on
//! the internet can send them to `POST /webhooks/{gateway}` (the route has no IAM, and
//! openapi.json does not describe it, so schemathesis does not reach it).
//!
//! The properties, for every generated delivery:
//! - the answer is 2xx or 4xx — never 5xx (nor anything else): a malformed, forged, stale or
//!   hostile delivery is the sender's fault, and a 5xx would make a real gateway retry it for days;
//! - a 4xx wrote nothing to DynamoDB: no event record (`EVENT#…`) appeared. Checked through the
//!   SDK against the stack's table (moto) after every delivery, by listing the event records'
//!   keys: a 2xx may add only the records of the events it carried, a 4xx none.
//!
//! Deliveries are drawn per gateway (`stripe`, `adyen`, `standard`, or an unknown name) from
//! signature headers that are missing, garbage, well-formed but signed with another secret, or
//! signed with the real secret (now, outside the tolerance, or over a body changed afterwards),
//! bodies that are random bytes, random JSON or the gateway's event shape with generated field
//! values, a content type (or none) and extra headers. A valid signature over a well-formed event
//! must be accepted, so the run also asserts that both answers occurred.
//!
//! Needs `make test` (or `make fuzz`): PAYBRIDGE_GATEWAY_URL, the functions under cargo lambda
//! watch and the stack's table. `PAYBRIDGE_WEBHOOK_FUZZ_CASES` sets the number of cases
//! (default 64); proptest's seed is fixed, so a run is repeatable.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use paybridge::webhooks::{adyen, standard, stripe};
use paybridge_tests::{Stack, stack, unique, unix_now};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

const DEFAULT_CASES: u32 = 64;

/// How the signature header of a delivery is made.
#[derive(Debug, Clone)]
enum Signature {
    Missing,
    /// A header of the right name with generated text.
    Garbage(String),
    /// Well-formed, made with a secret that is not the stack's.
    OtherSecret,
    /// Made with the stack's secret, `skew` seconds off now (within the 300 s tolerance or not).
    Real {
        skew: i64,
    },
    /// Made with the stack's secret now, over the body before it was changed.
    RealThenTampered,
}

/// What the body of a delivery is.
#[derive(Debug, Clone)]
enum Payload {
    Bytes(Vec<u8>),
    Json(Value),
    /// The gateway's own event shape, with generated values in its fields.
    Event {
        event_type: String,
        amount: i64,
        currency: String,
        object_id: String,
        extra: Value,
    },
}

#[derive(Debug, Clone)]
struct Delivery {
    gateway: String,
    signature: Signature,
    payload: Payload,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
        "[0-9 .-]{12,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn delivery() -> impl Strategy<Value = Delivery> {
    let gateway = prop_oneof![
        4 => Just("stripe".to_owned()),
        4 => Just("adyen".to_owned()),
        4 => Just("standard".to_owned()),
        1 => "[A-Za-z0-9_.~-]{0,12}",
    ];
    let signature = prop_oneof![
        1 => Just(Signature::Missing),
        1 => "[ -~]{0,80}".prop_map(Signature::Garbage),
        1 => Just(Signature::OtherSecret),
        3 => prop_oneof![Just(0i64), -290i64..290, Just(-301i64), Just(301i64), -100_000i64..-301, 301i64..100_000]
            .prop_map(|skew| Signature::Real { skew }),
        1 => Just(Signature::RealThenTampered),
    ];
    let payload = prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(Payload::Bytes),
        1 => json_value().prop_map(Payload::Json),
        3 => (
            prop_oneof![
                Just("payment_intent.succeeded".to_owned()),
                Just("payment_intent.payment_failed".to_owned()),
                Just("charge.refunded".to_owned()),
                Just("AUTHORISATION".to_owned()),
                Just("REFUND".to_owned()),
                Just("CHARGEBACK".to_owned()),
                Just("charge.succeeded".to_owned()),
                ".{0,20}",
            ],
            prop_oneof![Just(1999i64), any::<i64>()],
            prop_oneof![Just("eur".to_owned()), Just("EUR".to_owned()), ".{0,5}"],
            prop_oneof![Just("pi_3Fz".to_owned()), "[ -~]{0,40}"],
            json_value(),
        )
            .prop_map(|(event_type, amount, currency, object_id, extra)| Payload::Event {
                event_type,
                amount,
                currency,
                object_id,
                extra,
            }),
    ];
    let content_type = prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("application/octet-stream".to_owned())),
        Just(Some("text/plain".to_owned())),
        "[ -~]{0,40}".prop_map(Some),
    ];
    let headers = prop::collection::vec(("[a-z][a-z0-9-]{0,20}", "[!-~]([ -~]{0,40}[!-~])?"), 0..4);
    (gateway, signature, payload, content_type, headers).prop_map(
        |(gateway, signature, payload, content_type, headers)| Delivery {
            gateway,
            signature,
            payload,
            content_type,
            headers,
        },
    )
}

/// The secrets of the local stack, as the functions load them.
struct Secrets {
    stripe: String,
    adyen_hmac: String,
    standard: Vec<u8>,
}

/// A delivery made concrete: path, headers, body, and the event ids it carries.
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    marker: String,
}

fn body_of(d: &Delivery, marker: &str, now: i64) -> Vec<u8> {
    match &d.payload {
        Payload::Bytes(b) => b.clone(),
        Payload::Json(v) => v.to_string().into_bytes(),
        Payload::Event {
            event_type,
            amount,
            currency,
            object_id,
            extra,
        } => match d.gateway.as_str() {
            "adyen" => json!({"live": "false", "notificationItems": [{"NotificationRequestItem": {
                "amount": {"currency": currency, "value": amount}, "eventCode": event_type,
                "eventDate": "2026-12-02T10:00:00+01:00", "merchantAccountCode": "PaybridgeLocalECOM",
                "merchantReference": object_id, "pspReference": marker,
                "reason": "", "success": "true", "additionalData": {"extra": extra}
            }}]})
            .to_string()
            .into_bytes(),
            "standard" => json!({"type": event_type, "timestamp": "2026-12-02T10:00:00Z",
                "data": {"id": object_id, "amount": amount, "currency": currency, "extra": extra}})
            .to_string()
            .into_bytes(),
            _ => json!({"id": format!("evt_{marker}"), "object": "event", "created": now,
                "type": event_type, "livemode": false,
                "data": {"object": {"id": object_id, "object": "payment_intent", "amount": amount,
                    "currency": currency, "status": "succeeded", "metadata": extra}}})
            .to_string()
            .into_bytes(),
        },
    }
}

/// Adyen signs each notification item; the HMAC goes into the item's `additionalData`.
fn sign_adyen_items(body: &[u8], key: &str) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    for item in v.get_mut("notificationItems")?.as_array_mut()? {
        let item = item.get_mut("NotificationRequestItem")?;
        let sig = adyen::sign_item(key, item)?;
        item.get_mut("additionalData")?["hmacSignature"] = json!(sig);
    }
    Some(v.to_string().into_bytes())
}

fn concrete(d: &Delivery, secrets: &Secrets, marker: String, now: i64) -> Request {
    let mut body = body_of(d, &marker, now);
    let mut headers: Vec<(String, String)> = Vec::new();
    let ts = match d.signature {
        Signature::Real { skew } => now + skew,
        _ => now,
    };
    let other_stripe = "whsec_bm90LXRoZS1zZWNyZXQ";
    let other_adyen = "00".repeat(32);
    let other_standard = b"not-the-secret-not-the-secret!!!".to_vec();
    let real = matches!(
        d.signature,
        Signature::Real { .. } | Signature::RealThenTampered
    );
    match (d.gateway.as_str(), &d.signature) {
        (_, Signature::Missing) => {}
        ("adyen", Signature::Garbage(g)) => {
            if let Ok(mut v) = serde_json::from_slice::<Value>(&body)
                && let Some(items) = v.get_mut("notificationItems").and_then(Value::as_array_mut)
            {
                for item in items {
                    if let Some(extra) = item.pointer_mut("/NotificationRequestItem/additionalData")
                    {
                        extra["hmacSignature"] = json!(g);
                    }
                }
                body = v.to_string().into_bytes();
            }
        }
        (_, Signature::Garbage(g)) => {
            for name in ["Stripe-Signature", "webhook-signature"] {
                headers.push((name.to_owned(), g.clone()));
            }
            headers.push(("webhook-id".to_owned(), format!("msg_{marker}")));
            headers.push(("webhook-timestamp".to_owned(), now.to_string()));
        }
        ("adyen", _) => {
            let key = if real {
                secrets.adyen_hmac.as_str()
            } else {
                other_adyen.as_str()
            };
            if let Some(signed) = sign_adyen_items(&body, key) {
                body = signed;
            }
        }
        ("standard", _) => {
            let key = if real {
                &secrets.standard
            } else {
                &other_standard
            };
            let id = format!("msg_{marker}");
            headers.push((
                "webhook-signature".to_owned(),
                standard::sign(key, &id, ts, &body),
            ));
            headers.push(("webhook-id".to_owned(), id));
            headers.push(("webhook-timestamp".to_owned(), ts.to_string()));
        }
        _ => {
            let secret = if real {
                secrets.stripe.as_str()
            } else {
                other_stripe
            };
            headers.push((
                "Stripe-Signature".to_owned(),
                stripe::sign(secret, ts, &body),
            ));
        }
    }
    if let Signature::RealThenTampered = d.signature {
        // One byte changed after signing (appended when there is none to change).
        match body.iter().position(|b| b.is_ascii_digit()) {
            Some(i) => body[i] = if body[i] == b'9' { b'0' } else { body[i] + 1 },
            None => body.push(b' '),
        }
    }
    if let Some(ct) = &d.content_type {
        headers.push(("content-type".to_owned(), ct.clone()));
    }
    headers.extend(d.headers.iter().cloned());
    Request {
        path: format!("/webhooks/{}", d.gateway),
        headers,
        body,
        marker,
    }
}

/// The keys (`pk`) of every event record in the table.
async fn event_keys(stack: &Stack) -> BTreeSet<String> {
    let ddb = stack.dynamodb();
    let mut keys = BTreeSet::new();
    let mut start = None;
    loop {
        let out = ddb
            .scan()
            .table_name(&stack.config.table)
            .projection_expression("pk")
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(":p", AttributeValue::S("EVENT#".to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan the table");
        for item in out.items() {
            if let Some(AttributeValue::S(pk)) = item.get("pk") {
                keys.insert(pk.clone());
            }
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return keys,
        }
    }
}

#[derive(Default)]
struct Tally {
    accepted: u32,
    refused: u32,
}

#[test]
fn generated_webhook_deliveries_get_2xx_or_4xx_and_a_4xx_writes_nothing() {
    let gateway = std::env::var("PAYBRIDGE_GATEWAY_URL")
        .expect("PAYBRIDGE_GATEWAY_URL: run the webhook fuzz with `make test` or `make fuzz`");
    let cases = std::env::var("PAYBRIDGE_WEBHOOK_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stack = rt.block_on(stack());
    let s = &stack.secrets;
    let secrets = Secrets {
        stripe: s.stripe.as_ref().expect("stripe secret").webhook_secrets[0]
            .expose()
            .to_owned(),
        adyen_hmac: s.adyen.as_ref().expect("adyen secret").hmac_keys[0]
            .expose()
            .to_owned(),
        standard: standard::secret_key(
            s.standard
                .as_ref()
                .expect("standard secret")
                .webhook_secrets[0]
                .expose(),
        )
        .expect("a whsec_ secret"),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .expect("client");
    // Adyen pspReferences are 16 letters and digits; every delivery's ids carry its own.
    let run = unique("")
        .chars()
        .take(6)
        .collect::<String>()
        .to_uppercase();
    let counter = AtomicU32::new(0);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let known = Mutex::new(rt.block_on(event_keys(&stack)));

    let config = Config {
        cases,
        max_shrink_iters: 64,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[14; 32]));
    let result = runner.run(&delivery(), |d| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let marker = format!("FZ{run}{n:08}");
        let req = concrete(&d, &secrets, marker, unix_now());
        let (status, answer) = rt.block_on(async {
            let mut call = http
                .post(format!("{gateway}{}", req.path))
                .body(req.body.clone());
            for (name, value) in &req.headers {
                call = call.header(name.as_str(), value.as_str());
            }
            let resp = call.send().await.expect("the gateway answers");
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        });
        prop_assert!(
            (200..300).contains(&status) || (400..500).contains(&status),
            "{status} for {d:?}: {answer}"
        );
        let now_known = rt.block_on(event_keys(&stack));
        let mut known = known.lock().unwrap();
        let new: Vec<String> = now_known.difference(&known).cloned().collect();
        *known = now_known;
        if (400..500).contains(&status) {
            prop_assert!(
                new.is_empty(),
                "a {status} wrote event records {new:?} for {d:?}: {answer}"
            );
            tally.lock().unwrap().refused += 1;
        } else {
            let foreign: Vec<&String> = new.iter().filter(|k| !k.contains(&req.marker)).collect();
            prop_assert!(
                foreign.is_empty(),
                "a {status} wrote event records {foreign:?} that are not its own for {d:?}"
            );
            tally.lock().unwrap().accepted += 1;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let tally = tally.lock().unwrap();
    println!(
        "webhook fuzz: {cases} deliveries through {gateway}: {} accepted (2xx), {} refused (4xx), none 5xx; no 4xx wrote an event record",
        tally.accepted, tally.refused
    );
    assert!(
        tally.accepted > 0 && tally.refused > 0,
        "the generated deliveries were all answered alike ({} accepted, {} refused): the generator is broken",
        tally.accepted,
        tally.refused
    );
}
