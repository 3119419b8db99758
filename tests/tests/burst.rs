//! A burst of Stripe webhooks through the local gateway (`make test-burst`; not part of
//! `make test`, it takes minutes): 500 deliveries sent within 10 s, 350 distinct events and 150
//! duplicates of them, shuffled, about 16 in flight. Each event says a charge of ours succeeded.
//! A delivery that is not acknowledged (5xx, the gateway's timeout, a dropped connection) is
//! delivered again, as Stripe does. Then, polling with a deadline: every distinct event is
//! recorded once and processed, its charge succeeded with one notification, and the duplicates
//! made no record of their own.
//!
//! `cargo lambda watch` runs one invocation of a function at a time, so locally the burst queues
//! at the functions and some deliveries time out: the numbers printed are of this machine, not of
//! Lambda (docs/performance.md, *Webhook burst*).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use paybridge::adapters::dynamodb::{Table, keys};
use paybridge::domain::{Charge, ChargeStatus, EventStatus, Gateway};
use paybridge::ports::{ChargeStore, EventStore, NotificationStore};
use paybridge::webhooks::stripe;
use paybridge_tests::builders::{pending_charge, store_charge};
use paybridge_tests::{stack, unique, unix_now};
use serde_json::{Value, json};

const DISTINCT: usize = 350;
const DUPLICATES: usize = 150;
/// The burst's length: deliveries leave evenly spread over it.
const BURST: Duration = Duration::from_secs(10);
const IN_FLIGHT: usize = 16;
/// How long everything may take to be recorded and applied.
const DEADLINE: Duration = Duration::from_secs(20 * 60);

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: run this test with `make test-burst`"))
}

/// A deterministic shuffle (xorshift), so a failing order can be run again.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// What the deliveries came to.
#[derive(Default)]
struct Sent {
    /// Deliveries made again after one was not acknowledged.
    retries: AtomicUsize,
    /// Of those, after a timeout or a dropped connection (the others answered 5xx).
    timeouts: AtomicUsize,
}

/// Delivers `body` until the gateway acknowledges it (2xx), re-signed each time.
async fn deliver(http: &reqwest::Client, url: &str, secret: &str, body: &str, sent: &Sent) {
    for attempt in 0.. {
        assert!(attempt < 30, "a delivery was refused 30 times: {body}");
        if attempt > 0 {
            sent.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(500 * attempt.min(6))).await;
        }
        let signature = stripe::sign(secret, unix_now(), body.as_bytes());
        let answer = (http.post(url))
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body.to_owned())
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if r.status().is_server_error() => {}
            Ok(r) => panic!("a delivery was refused with {}: {body}", r.status()),
            Err(_) => {
                sent.timeouts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `read`'s answer, asked again (up to 5 times) when moto, busy with the functions, does not
/// answer in time.
async fn patiently<T, E, F, Fut>(what: &str, read: F) -> T
where
    E: std::fmt::Debug,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match read().await {
            Ok(value) => return value,
            Err(e) if tries < 5 => eprintln!("{what}: {e:?}; asking again"),
            Err(e) => panic!("{what}: {e:?}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// How many event records the table holds whose id starts with `prefix` (every page of a scan).
async fn records_with_prefix(table: &Table, prefix: &str) -> usize {
    let (mut count, mut start) = (0, None);
    loop {
        let scan = || {
            (table.client().scan())
                .table_name(table.name())
                .filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start.clone())
                .send()
        };
        let out = patiently("scan the event records", scan).await;
        count += out.count as usize;
        match out.last_evaluated_key {
            Some(key) => start = Some(key),
            None => return count,
        }
    }
}

#[tokio::test]
async fn a_burst_of_500_shuffled_webhooks_with_30_percent_duplicates_records_and_applies_each_event_once()
 {
    let gateway = required("PAYBRIDGE_GATEWAY_URL");
    let stack = stack().await;
    // The stack's own table: the functions behind the gateway write there.
    let table = Table::from_conf(&stack.aws, &stack.config.table);

    // A pending charge per event, and the event saying it succeeded.
    let charges: Vec<Charge> = (0..DISTINCT)
        .map(|_| pending_charge(Gateway::Stripe, unix_now()))
        .collect();
    let stored = futures::stream::iter(charges.iter().map(|c| store_charge(&table, c)))
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    stored
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .expect("store the charges");
    let run = unique("evt_burst_");
    let events: Vec<(String, String)> = (charges.iter().enumerate())
        .map(|(i, c)| {
            let id = format!("{run}_{i:04}");
            let object = json!({"id": unique("pi_"), "object": "payment_intent",
                "status": "succeeded", "amount": 1999, "amount_received": 1999, "currency": "eur",
                "metadata": {"paybridge_charge_id": c.id.to_string()}});
            let event = json!({"id": id, "object": "event", "type": "payment_intent.succeeded",
                "created": unix_now(), "data": {"object": object}});
            (id, event.to_string())
        })
        .collect();
    let mut deliveries: Vec<&str> = events.iter().map(|(_, body)| body.as_str()).collect();
    deliveries.extend(events.iter().take(DUPLICATES).map(|(_, b)| b.as_str()));
    shuffle(&mut deliveries, 0x5eed_cafe);

    let (url, secret) = (
        format!("{gateway}/webhooks/stripe"),
        (stack.secrets.stripe.as_ref().expect("a Stripe section")).webhook_secrets[0]
            .expose()
            .to_owned(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let sent = Sent::default();
    let started = Instant::now();
    let spacing = BURST / deliveries.len() as u32;
    let last_sent = AtomicUsize::new(0);
    futures::stream::iter(deliveries.iter().enumerate())
        .map(|(i, body)| {
            let (http, url, secret, sent) = (&http, &url, &secret, &sent);
            let last_sent = &last_sent;
            async move {
                let due = started + spacing * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let first_at = started.elapsed().as_millis() as usize;
                last_sent.fetch_max(first_at, Ordering::Relaxed);
                deliver(http, url, secret, body, sent).await;
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    let acknowledged = started.elapsed();
    let (retries, timeouts) = (sent.retries.into_inner(), sent.timeouts.into_inner());
    eprintln!(
        "burst: all {} deliveries acknowledged after {:.1} s ({retries} redeliveries, {timeouts} \
         after a timeout); the last first attempt left at {:.1} s",
        deliveries.len(),
        acknowledged.as_secs_f64(),
        last_sent.load(Ordering::Relaxed) as f64 / 1000.0,
    );

    // Every distinct event processed (polled, with a deadline; a read that moto, busy with the
    // functions, does not answer in time is asked again in the next round).
    let mut open: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    while !open.is_empty() {
        assert!(
            started.elapsed() < DEADLINE,
            "{} events not processed after {DEADLINE:?}: {:?}",
            open.len(),
            &open[..open.len().min(5)]
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        let statuses = futures::stream::iter(open.iter().map(|id| {
            let table = &table;
            async move { table.get_event(Gateway::Stripe, id).await }
        }))
        .buffered(4)
        .collect::<Vec<_>>()
        .await;
        let mut still = Vec::new();
        for (id, record) in open.iter().zip(statuses) {
            match record.map(|r| r.map(|r| r.status)) {
                Ok(Some(EventStatus::Processed)) => {}
                Ok(Some(EventStatus::Received | EventStatus::Queued) | None) | Err(_) => {
                    still.push(*id)
                }
                Ok(Some(other)) => panic!("event {id} ended {other:?}"),
            }
        }
        open = still;
    }
    let processed = started.elapsed();

    // Exactly the distinct events were recorded, and each applied once.
    let prefix = keys::event(Gateway::Stripe, &run).0;
    assert_eq!(records_with_prefix(&table, &prefix).await, DISTINCT);
    for c in &charges {
        let stored = patiently("read a charge", || table.get_charge(&c.id)).await;
        let stored = stored.expect("stored");
        assert_eq!(stored.status, ChargeStatus::Succeeded, "{}", c.id);
        assert_eq!(stored.version, c.version + 1, "{}: one change", c.id);
        let read = || table.notifications_for_charge(&c.id);
        let notifications = patiently("read a charge's notifications", read).await;
        let types: Vec<&str> = notifications
            .iter()
            .map(|n| n.event_type.as_str())
            .collect();
        assert_eq!(types, ["charge.succeeded"], "{}: one notification", c.id);
    }
    println!(
        "burst: {} deliveries ({DISTINCT} distinct, {DUPLICATES} duplicates, {IN_FLIGHT} in flight), \
         last first attempt at {:.1} s, all acknowledged after {:.1} s with {retries} redeliveries \
         ({timeouts} after a timeout), all {DISTINCT} processed after {:.1} s",
        deliveries.len(),
        last_sent.load(Ordering::Relaxed) as f64 / 1000.0,
        acknowledged.as_secs_f64(),
        processed.as_secs_f64(),
    );
}
