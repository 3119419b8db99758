//! Billing notifications end to end: the outbox on moto (written with a charge's state change),
//! delivered by `deliver` through the real HTTP notifier to a billing receiver on 127.0.0.1 that
//! verifies every delivery with the `standardwebhooks` crate — what billing itself would run —
//! and answers from a script (503 twice, a redirect, a hang…).
//!
//! The schedule tests (billing down for a day, the schedule running out, recovery) run the retry
//! worker's use case on messages that really travel through moto's SQS, with the clock injected:
//! each message is handled at the simulated time it would become visible, so three days of
//! backoff take seconds and nothing sleeps.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use paybridge::adapters::billing::{DEFAULT_TIMEOUT, HttpNotifier};
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::eventbridge::EventBridgeBus;
use paybridge::adapters::gateways::{GatewayRouter, http_client};
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{
    Charge, ChargeStatus, DeliveryStatus, EndpointAttempt, Gateway, Notification, WorkMessage,
};
use paybridge::ports::{
    ChargeStore, DeadLetters, NotificationStore, QueueError, ReceivedMessages, WorkQueue,
};
use paybridge::secrets::SecretString;
use paybridge::services::deliver::{
    Delivery, DeliveryMessage, MAX_MESSAGE_DELAY, NOTIFICATION_ATTEMPTS, deliver, sweep_outbox,
};
use paybridge::services::notify;
use paybridge::services::recover::{recover, resend, undelivered};
use paybridge::services::work::{Received as WorkReceived, Verdict, Worker};
use paybridge_tests::builders::pending_charge;
use paybridge_tests::{Stack, eventually, receive_batch, stack, unique, unix_now};

// ---- the billing receiver -----------------------------------------------------------------------

/// One scripted answer of the receiver.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Wait this long before answering (a hanging endpoint).
    delay: Duration,
}

impl Answer {
    fn status(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }
    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    webhook_id: Option<String>,
    content_type: Option<String>,
    user_agent: Option<String>,
    /// The `standardwebhooks` crate's verdict.
    verified: Result<(), String>,
    body: String,
    /// The receiver answered 2xx.
    accepted: bool,
}

#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    received: Vec<Received>,
}

/// Billing's endpoint: answers from its script, then 200 to everything.
struct Billing {
    /// The notification endpoint (`/billing`).
    url: String,
    base: String,
    secret: String,
    script: Arc<Mutex<Script>>,
}

#[derive(Clone)]
struct ReceiverState {
    verifier: Arc<standardwebhooks::Webhook>,
    script: Arc<Mutex<Script>>,
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let verified = state
        .verifier
        .verify(&body, &headers)
        .map_err(|e| e.to_string());
    let answer = {
        let mut script = state.script.lock().unwrap();
        let answer = script
            .answers
            .pop_front()
            .unwrap_or_else(|| Answer::status(200));
        // A delivery that does not verify is refused, as billing would.
        let status = if verified.is_ok() { answer.status } else { 401 };
        script.received.push(Received {
            path: uri.path().to_owned(),
            webhook_id: header("webhook-id"),
            content_type: header("content-type"),
            user_agent: header("user-agent"),
            verified: verified.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
            accepted: (200..300).contains(&status),
        });
        Answer { status, ..answer }
    };
    tokio::time::sleep(answer.delay).await;
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap(),
        answer.body.clone(),
    )
        .into_response();
    for (name, value) in answer.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a valid header value"));
    }
    response
}

impl Billing {
    /// A receiver on 127.0.0.1 verifying with `secret`, answering `answers` first.
    async fn start(secret: &str, answers: Vec<Answer>) -> Billing {
        let script = Arc::new(Mutex::new(Script {
            answers: answers.into(),
            received: Vec::new(),
        }));
        let state = ReceiverState {
            verifier: Arc::new(standardwebhooks::Webhook::new(secret).expect("a whsec secret")),
            script: script.clone(),
        };
        let app = axum::Router::new().fallback(receive).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Billing {
            url: format!("{base}/billing"),
            base,
            secret: secret.to_owned(),
            script,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// The notifier paybridge would build, pointed at this receiver.
    fn notifier(&self, timeout: Duration) -> HttpNotifier {
        HttpNotifier::new(
            http_client(timeout),
            &self.url,
            &SecretString::new(&self.secret),
        )
        .expect("a valid endpoint and secret")
    }
}

/// A fresh Standard Webhooks secret (24 random bytes).
fn new_secret() -> String {
    let bytes: Vec<u8> = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .chain(&uuid::Uuid::new_v4().as_bytes()[..8])
        .copied()
        .collect();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

// ---- the outbox -------------------------------------------------------------------------------

struct Outbox {
    stack: Stack,
    table: Table,
    /// Where `deliver` queues the next attempts (a queue of this test's own).
    follow_ups: SqsWorkQueue,
    follow_ups_url: String,
}

async fn outbox() -> Outbox {
    let stack = stack().await;
    let table = Table::from_conf(&stack.aws, &stack.config.table);
    outbox_on(stack, table).await
}

/// An outbox on a table of its own: for tests that read across charges (every notification in
/// the table) or the billing endpoint's health record (one per table).
async fn own_outbox() -> Outbox {
    let stack = stack().await;
    let table = Table::from_conf(&stack.aws, stack.new_table().await);
    outbox_on(stack, table).await
}

async fn outbox_on(stack: Stack, table: Table) -> Outbox {
    let follow_ups_url = stack.new_queue().await;
    let follow_ups = SqsWorkQueue::from_conf(&stack.aws, &follow_ups_url);
    Outbox {
        stack,
        table,
        follow_ups,
        follow_ups_url,
    }
}

impl Outbox {
    /// Stores a pending charge, then its success with the `charge.succeeded` notification in the
    /// same transaction, exactly as a use case does. The notification is dated `created_at`.
    async fn charge_succeeded(&self, created_at: i64) -> Notification {
        let pending = Charge {
            customer: Some("cus_123".into()),
            description: Some("Invoice 123".into()),
            metadata: BTreeMap::from([("plan".into(), "pro".into())]),
            ..pending_charge(Gateway::Stripe, created_at)
        };
        paybridge_tests::builders::store_charge(&self.table, &pending)
            .await
            .unwrap();
        let succeeded = Charge {
            gateway_ref: Some(unique("pi_")),
            status: ChargeStatus::Succeeded,
            captured: 1999,
            version: 2,
            updated_at: created_at + 1,
            ..pending
        };
        let notification = notify::for_charge(&succeeded, created_at + 1);
        self.table
            .save_charge(&succeeded, std::slice::from_ref(&notification))
            .await
            .unwrap();
        notification
    }

    async fn stored(&self, n: &Notification) -> Notification {
        self.table
            .get_notification(&n.id)
            .await
            .unwrap()
            .expect("the notification is stored")
    }

    /// The next attempt of `n`'s current series, made when it is due (now, or the injected time
    /// the schedule set) — what the worker does with the message for it.
    async fn deliver(&self, billing: &HttpNotifier, n: &Notification) -> Delivery {
        let stored = self.stored(n).await;
        let due = stored.series.next_attempt_at.unwrap_or(stored.created_at);
        let message = DeliveryMessage {
            notification_id: &n.id,
            series: Some(stored.series.number),
            attempt: Some(stored.series.attempts + 1),
            message_id: &unique("m-"),
        };
        let now = unix_now().max(due);
        deliver(&self.table, billing, &self.follow_ups, &message, now)
            .await
            .expect("the attempt is recorded")
    }

    async fn new_queue(&self) -> (SqsWorkQueue, String) {
        let url = self.stack.new_queue().await;
        (SqsWorkQueue::from_conf(&self.stack.aws, &url), url)
    }

    /// The notification ids of the `deliver_notification` messages on `url` (drained).
    async fn queued_notifications(&self, url: &str) -> Vec<String> {
        self.stack
            .drain(url)
            .await
            .iter()
            .map(|body| match serde_json::from_str(body) {
                Ok(WorkMessage::DeliverNotification {
                    notification_id, ..
                }) => notification_id.to_string(),
                other => panic!("unexpected message {body}: {other:?}"),
            })
            .collect()
    }
}

// ---- the schedule, simulated ------------------------------------------------------------------

/// The work queue as the worker sees it, around a real SQS queue on moto: every message really
/// goes through SQS, but is sent without a delay and stamped with the simulated time its delay
/// would make it visible, so [`Simulation::run`] can hand it to the worker at that time.
struct SimQueue {
    sqs: SqsWorkQueue,
    url: String,
    clock: AtomicI64,
    /// (body, visible at) of every message sent and not yet received back.
    due: Mutex<Vec<(String, i64)>>,
    /// Visibility changes and dead letters: the schedule must need neither.
    unexpected: Mutex<Vec<String>>,
}

impl WorkQueue for SimQueue {
    async fn send(&self, message: &WorkMessage, delay: Duration) -> Result<(), QueueError> {
        assert!(
            delay <= MAX_MESSAGE_DELAY,
            "SQS refuses a delay of {delay:?}"
        );
        let body = serde_json::to_string(message).unwrap();
        let visible_at = self.clock.load(Ordering::SeqCst) + delay.as_secs() as i64;
        self.due.lock().unwrap().push((body, visible_at));
        self.sqs.send(message, Duration::ZERO).await
    }
}

impl ReceivedMessages for SimQueue {
    async fn redeliver_after(&self, _: &str, after: Duration) -> Result<(), QueueError> {
        (self.unexpected.lock().unwrap()).push(format!("a backoff of {after:?}"));
        Ok(())
    }
}

impl DeadLetters for SimQueue {
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        (self.unexpected.lock().unwrap()).push(format!("dead-lettered {body}: {reason}"));
        Ok(())
    }
}

/// One message received from SQS, waiting for its simulated time.
struct InFlight {
    id: String,
    body: String,
    receipt: String,
    visible_at: i64,
}

/// The retry worker on the outbox's table and a [`SimQueue`], delivering to `notifier`.
struct Simulation {
    worker: Worker<Table, GatewayRouter, SimQueue, HttpNotifier, EventBridgeBus>,
    sqs: aws_sdk_sqs::Client,
    inbox: Vec<InFlight>,
}

impl Simulation {
    async fn new(o: &Outbox, notifier: HttpNotifier, start: i64) -> Simulation {
        let url = o.stack.new_queue().await;
        let queue = SimQueue {
            sqs: SqsWorkQueue::from_conf(&o.stack.aws, &url),
            url,
            clock: AtomicI64::new(start),
            due: Mutex::new(Vec::new()),
            unexpected: Mutex::new(Vec::new()),
        };
        Simulation {
            worker: Worker {
                store: o.table.clone(),
                gateways: GatewayRouter {
                    stripe: None,
                    adyen: None,
                },
                queue,
                dlq: None,
                notifier,
                bus: None,
                max_receive_count: 8,
            },
            sqs: o.stack.sqs(),
            inbox: Vec::new(),
        }
    }

    fn queue(&self) -> &SimQueue {
        &self.worker.queue
    }

    fn now(&self) -> i64 {
        self.queue().clock.load(Ordering::SeqCst)
    }

    /// Receives from SQS every message sent so far, pairing each with its simulated time.
    async fn receive(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.queue().due.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "messages sent never arrived");
            let (event, receipts) =
                receive_batch(&self.sqs, &self.queue().url, Duration::ZERO).await;
            for record in event.records {
                let (id, body) = (record.message_id.unwrap(), record.body.unwrap());
                let visible_at = {
                    let mut due = self.worker.queue.due.lock().unwrap();
                    let i = (due.iter().position(|(b, _)| *b == body))
                        .unwrap_or_else(|| panic!("a message nobody sent: {body}"));
                    due.remove(i).1
                };
                let receipt = receipts[&id].clone();
                self.inbox.push(InFlight {
                    id,
                    body,
                    receipt,
                    visible_at,
                });
            }
        }
    }

    /// Hands the earliest message to the worker at its time; `false` if none is left.
    async fn step(&mut self) -> bool {
        self.receive().await;
        let Some(i) = (0..self.inbox.len()).min_by_key(|&i| self.inbox[i].visible_at) else {
            return false;
        };
        let m = self.inbox.remove(i);
        let now = self.now().max(m.visible_at);
        self.queue().clock.store(now, Ordering::SeqCst);
        let received = WorkReceived {
            id: &m.id,
            body: &m.body,
            receipt_handle: None,
            receive_count: 1,
            sent_at_ms: None,
        };
        let verdict = self.worker.handle(&received, now).await;
        assert_eq!(verdict, Verdict::Done, "{}", m.body);
        self.sqs
            .delete_message()
            .queue_url(&self.queue().url)
            .receipt_handle(&m.receipt)
            .send()
            .await
            .expect("delete");
        true
    }

    /// Runs until no message is left.
    async fn run(&mut self) {
        for _ in 0..20_000 {
            if !self.step().await {
                let unexpected = self.queue().unexpected.lock().unwrap().clone();
                assert!(unexpected.is_empty(), "{unexpected:?}");
                return;
            }
        }
        panic!("the schedule does not settle");
    }
}

/// One request the clocked receiver got.
#[derive(Debug, Clone)]
struct Delivered {
    webhook_id: String,
    /// `webhook-timestamp`: the simulated time of the attempt.
    at: i64,
    answered: u16,
    body: serde_json::Value,
}

/// How the clocked receiver answers a delivery signed at simulated time `at`.
enum Plan {
    /// 500 before `until`, then `then` in turn, then 200.
    OutageUntil { until: i64, then: VecDeque<u16> },
}

#[derive(Clone)]
struct ClockedState {
    verifier: Arc<standardwebhooks::Webhook>,
    plan: Arc<Mutex<Plan>>,
    log: Arc<Mutex<Vec<Delivered>>>,
}

/// Billing's endpoint on simulated time. It verifies each signature as billing's Standard
/// Webhooks library does, except for the 5-minute window around the real clock (the timestamps
/// are simulated): the signature must be that of `webhook-id.webhook-timestamp.body`.
async fn clocked_receive(
    State(state): State<ClockedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, at) = (header("webhook-id"), header("webhook-timestamp"));
    let at: i64 = at.parse().expect("webhook-timestamp is unix seconds");
    let expected = state.verifier.sign(&id, at, &body).expect("a UTF-8 body");
    let verified = header("webhook-signature")
        .split(' ')
        .any(|s| s == expected);
    let answered = if !verified {
        401
    } else {
        match &mut *state.plan.lock().unwrap() {
            Plan::OutageUntil { until, .. } if at < *until => 500,
            Plan::OutageUntil { then, .. } => then.pop_front().unwrap_or(200),
        }
    };
    state.log.lock().unwrap().push(Delivered {
        webhook_id: id,
        at,
        answered,
        body: serde_json::from_slice(&body).expect("a JSON body"),
    });
    StatusCode::from_u16(answered).unwrap().into_response()
}

struct ClockedBilling {
    url: String,
    secret: String,
    plan: Arc<Mutex<Plan>>,
    log: Arc<Mutex<Vec<Delivered>>>,
}

impl ClockedBilling {
    async fn start(plan: Plan) -> ClockedBilling {
        let secret = new_secret();
        let state = ClockedState {
            verifier: Arc::new(standardwebhooks::Webhook::new(&secret).unwrap()),
            plan: Arc::new(Mutex::new(plan)),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        let (plan, log) = (state.plan.clone(), state.log.clone());
        let app = axum::Router::new()
            .fallback(clocked_receive)
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/billing", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ClockedBilling {
            url,
            secret,
            plan,
            log,
        }
    }

    fn notifier(&self) -> HttpNotifier {
        HttpNotifier::new(
            http_client(DEFAULT_TIMEOUT),
            &self.url,
            &SecretString::new(&self.secret),
        )
        .unwrap()
    }

    fn log(&self) -> Vec<Delivered> {
        self.log.lock().unwrap().clone()
    }

    /// The deliveries of notification `id`, in order.
    fn of(&self, id: &str) -> Vec<Delivered> {
        self.log()
            .into_iter()
            .filter(|d| d.webhook_id == id)
            .collect()
    }
}

impl Outbox {
    /// A charge of its own that went pending → processing → succeeded → partially refunded, each
    /// change stored with its notification in one transaction at `at` (as the use cases do).
    async fn charge_history(&self, at: i64) -> Vec<Notification> {
        let pending = pending_charge(Gateway::Stripe, at);
        paybridge_tests::builders::store_charge(&self.table, &pending)
            .await
            .unwrap();
        let mut charge = pending;
        let mut notifications = Vec::new();
        for status in [
            ChargeStatus::Processing,
            ChargeStatus::Succeeded,
            ChargeStatus::PartiallyRefunded,
        ] {
            let before = charge.clone();
            charge.status = status;
            charge.version += 1;
            if status == ChargeStatus::Succeeded {
                (charge.gateway_ref, charge.captured) = (Some(unique("pi_")), 1999);
            }
            if status == ChargeStatus::PartiallyRefunded {
                charge.refunded = 500;
            }
            let n = notify::for_charge_change(&before, &charge, at).expect("a change billing sees");
            self.table
                .save_charge(&charge, std::slice::from_ref(&n))
                .await
                .unwrap();
            notifications.push(n);
        }
        notifications
    }
}

const HOUR: i64 = 3600;

// ---- tests --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_billing_endpoint_down_for_20_hours_then_refusing_twice_receives_every_notification_in_an_order_it_can_sort_by_version()
 {
    let o = own_outbox().await;
    let start = unix_now();
    let billing = ClockedBilling::start(Plan::OutageUntil {
        until: start + 20 * HOUR,
        then: VecDeque::from([401, 401]),
    })
    .await;
    let notifications = o.charge_history(start).await;
    let mut sim = Simulation::new(&o, billing.notifier(), start).await;
    notify::enqueue(sim.queue(), &notifications).await;

    sim.run().await;

    let log = billing.log();
    for n in &notifications {
        let stored = o.stored(n).await;
        assert_eq!(stored.status, DeliveryStatus::Delivered, "{stored:?}");
        let tried = billing.of(n.id.as_str());
        assert_eq!(
            tried.len() as u32,
            stored.attempts,
            "every attempt is in the log"
        );
        assert_eq!(tried[0].at, start, "the first attempt at once");
        assert!(
            tried
                .iter()
                .all(|d| d.answered != 500 || d.at < start + 20 * HOUR),
            "500 only during the outage"
        );
        let accepted: Vec<&Delivered> = tried.iter().filter(|d| d.answered == 200).collect();
        assert_eq!(accepted.len(), 1, "delivered once: {tried:#?}");
        assert_eq!(tried.last().unwrap().answered, 200, "nothing after the 2xx");
        // The published schedule: 7 attempts fit in the first 20 hours (the 7th at 17 h 35 min
        // with jitter at most a tenth on top), the 8th comes about 10 h later.
        let during: Vec<&Delivered> = tried.iter().filter(|d| d.at < start + 20 * HOUR).collect();
        assert_eq!(during.len(), 7, "{tried:#?}");
        assert!(tried[7].at - tried[6].at >= 10 * HOUR);
        assert!(stored.delivered_at.unwrap() - start < 72 * HOUR);
    }
    assert_eq!(
        log.iter().filter(|d| d.answered == 401).count(),
        2,
        "the two refusals were retried like 5xx"
    );

    // Billing orders what it received by data.version, whatever order it came in.
    let mut accepted: Vec<&serde_json::Value> = log
        .iter()
        .filter(|d| d.answered == 200)
        .map(|d| &d.body)
        .collect();
    assert_eq!(accepted.len(), notifications.len());
    accepted.sort_by_key(|b| b["data"]["version"].as_u64().expect("data.version"));
    let types: Vec<&str> = accepted
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "charge.processing",
            "charge.succeeded",
            "charge.partially_refunded"
        ]
    );
    let versions: Vec<u64> = accepted
        .iter()
        .map(|b| b["data"]["version"].as_u64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(
        accepted.last().unwrap()["data"]["status"],
        "partially_refunded"
    );

    let health = o.table.endpoint_health().await.unwrap().expect("recorded");
    assert_eq!(health.consecutive_failures, 0);
    assert!(health.last_success_at.unwrap() >= start + 20 * HOUR);
}

#[tokio::test]
async fn an_exhausted_notification_is_listed_across_charges_and_recover_since_sends_it_again() {
    let o = own_outbox().await;
    let start = unix_now();
    let billing = ClockedBilling::start(Plan::OutageUntil {
        until: i64::MAX,
        then: VecDeque::new(),
    })
    .await;
    // Two charges since `start`, and one from the day before.
    let a = o.charge_succeeded(start).await;
    let b = o.charge_succeeded(start).await;
    let older = o.charge_succeeded(start - 24 * HOUR).await;
    let mut sim = Simulation::new(&o, billing.notifier(), start).await;
    notify::enqueue(sim.queue(), &[a.clone(), b.clone(), older.clone()]).await;

    sim.run().await;

    for n in [&a, &b, &older] {
        let stored = o.stored(n).await;
        assert_eq!(
            (stored.status, stored.attempts),
            (DeliveryStatus::Exhausted, NOTIFICATION_ATTEMPTS),
            "kept, not deleted"
        );
        assert!(billing.of(n.id.as_str()).iter().all(|d| d.answered == 500));
    }
    let listed = undelivered(&o.table, &[DeliveryStatus::Exhausted], 0, 100)
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    for n in [&a, &b, &older] {
        assert!(ids.contains(&n.id.as_str()), "{ids:?}");
    }
    assert_ne!(a.charge_id, b.charge_id, "across charges");
    let health = o.table.endpoint_health().await.unwrap().unwrap();
    assert_eq!(health.consecutive_failures, 3 * NOTIFICATION_ATTEMPTS);
    assert!(health.seconds_since_success(sim.now()) >= 72 * HOUR);

    // A pending one whose chain is waiting, to show recovery does not double it.
    let c = o.charge_succeeded(sim.now()).await;
    notify::enqueue(sim.queue(), std::slice::from_ref(&c)).await;
    assert!(sim.step().await, "its first attempt fails");
    assert_eq!(o.stored(&c).await.series.attempts, 1);

    // Billing is fixed; support recovers everything since `start`.
    *billing.plan.lock().unwrap() = Plan::OutageUntil {
        until: 0,
        then: VecDeque::new(),
    };
    let recovered = recover(&o.table, sim.queue(), start, sim.now())
        .await
        .unwrap();
    assert_eq!(recovered.total(), 3, "{recovered:?}");
    assert_eq!(recovered.resent.get("exhausted"), Some(&2));
    assert_eq!(recovered.resent.get("pending"), Some(&1));

    let sent_before = billing.log().len();
    sim.run().await;

    for n in [&a, &b, &c] {
        let stored = o.stored(n).await;
        assert_eq!(
            (stored.status, stored.series.number),
            (DeliveryStatus::Delivered, 2),
            "{stored:?}"
        );
    }
    let after: Vec<Delivered> = billing.log().split_off(sent_before);
    assert_eq!(
        after.len(),
        3,
        "one attempt each, none from c's old chain: {after:#?}"
    );
    assert!(after.iter().all(|d| d.answered == 200));
    assert_eq!(
        o.stored(&older).await.status,
        DeliveryStatus::Exhausted,
        "created before --since"
    );
    let left = undelivered(&o.table, &DeliveryStatus::UNDELIVERED, 0, 100)
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|n| &n.id).collect::<Vec<_>>(),
        vec![&older.id]
    );
}

#[tokio::test]
async fn concurrent_attempts_count_every_failure_in_the_endpoints_health() {
    let o = own_outbox().await;
    let now = unix_now();
    let failures = (0..20).map(|i| {
        o.table
            .record_endpoint_attempt(EndpointAttempt::NotAccepted { status: Some(503) }, now + i)
    });
    for r in futures::future::join_all(failures).await {
        r.unwrap();
    }
    let health = o.table.endpoint_health().await.unwrap().unwrap();
    assert_eq!(
        (health.consecutive_failures, health.last_success_at),
        (20, None),
        "no lost update"
    );
    // The run of failures began with whichever of them was recorded first.
    assert!((now..now + 20).contains(&health.failing_since.unwrap()));
    let after = o
        .table
        .record_endpoint_attempt(EndpointAttempt::Accepted, now + 30)
        .await
        .unwrap();
    assert_eq!(
        (after.consecutive_failures, after.last_success_at),
        (0, Some(now + 30))
    );
    // A failure from before that success, recorded late, does not count.
    let late = o
        .table
        .record_endpoint_attempt(EndpointAttempt::NotAccepted { status: None }, now + 25)
        .await
        .unwrap();
    assert_eq!(late.consecutive_failures, 0);
}

#[tokio::test]
async fn a_billing_endpoint_that_fails_once_then_succeeds_gets_the_notification_exactly_once_as_delivered()
 {
    let o = outbox().await;
    let n = o.charge_succeeded(unix_now()).await;
    // The local secret's signing key, through the same constructor the worker uses.
    let secret = o
        .stack
        .secrets
        .billing
        .as_ref()
        .unwrap()
        .signing_secret
        .clone();
    let billing = Billing::start(secret.expose(), vec![Answer::status(503)]).await;
    let mut config = o.stack.config.clone();
    config.billing_url_override = Some(billing.url.clone());
    let notifier = HttpNotifier::from_secrets(&config, &o.stack.secrets, DEFAULT_TIMEOUT).unwrap();

    let before = unix_now();
    let first = o.deliver(&notifier, &n).await;
    let Delivery::Retry { attempt: 2, at } = first else {
        panic!("{first:?}")
    };
    // 5 s after the attempt (the notification is dated a second after the charge it reports).
    assert!(
        (before + 5..=unix_now() + 6).contains(&at),
        "5 s later: {}",
        at - before
    );
    // The next attempt is queued, visible once its 5 s delay has passed.
    let queued = eventually(
        Duration::from_secs(20),
        "the next attempt's message",
        || async {
            let ids = o.queued_notifications(&o.follow_ups_url).await;
            (!ids.is_empty()).then_some(ids)
        },
    )
    .await;
    assert_eq!(queued, vec![n.id.to_string()]);
    assert_eq!(o.deliver(&notifier, &n).await, Delivery::Delivered);
    // A duplicate message after the delivery sends nothing.
    assert_eq!(o.deliver(&notifier, &n).await, Delivery::Delivered);

    let got = billing.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    for r in &got {
        assert_eq!(r.verified, Ok(()), "every delivery verifies");
        assert_eq!(r.path, "/billing");
        assert_eq!(r.webhook_id.as_deref(), Some(n.id.as_str()));
        assert_eq!(r.body, n.body, "the stored body, byte for byte");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert!(
            r.user_agent
                .as_deref()
                .unwrap_or("")
                .starts_with("paybridge/"),
            "{r:?}"
        );
    }
    assert_eq!(got.iter().filter(|r| r.accepted).count(), 1);
    let body: serde_json::Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(body["id"], n.id.as_str());
    assert_eq!(body["type"], "charge.succeeded");
    assert_eq!(body["data"]["status"], "succeeded");

    let stored = o.stored(&n).await;
    assert_eq!(
        (stored.status, stored.attempts, stored.last_status),
        (DeliveryStatus::Delivered, 2, Some(200))
    );
    assert!(stored.delivered_at.is_some());
    let log = o
        .table
        .notifications_for_charge(&n.charge_id)
        .await
        .unwrap();
    assert_eq!(log, vec![stored], "the charge's delivery log");
}

#[tokio::test]
async fn a_4xx_is_retried_with_billings_response_in_the_log() {
    let o = outbox().await;
    let n = o.charge_succeeded(unix_now()).await;
    let long_detail = "x".repeat(2000);
    let billing = Billing::start(
        &new_secret(),
        vec![Answer::status(422).body(format!(
            r#"{{"error":"unknown invoice","detail":"{long_detail}"}}"#
        ))],
    )
    .await;

    let got = o.deliver(&billing.notifier(DEFAULT_TIMEOUT), &n).await;
    assert!(matches!(got, Delivery::Retry { attempt: 2, .. }), "{got:?}");

    let stored = o.stored(&n).await;
    assert_eq!(
        (stored.status, stored.attempts, stored.last_status),
        (DeliveryStatus::Pending, 1, Some(422))
    );
    let error = stored.last_error.unwrap();
    assert!(error.contains("unknown invoice"), "{error}");
    assert!(error.len() < 700, "billing's answer is cut short: {error}");
    assert_eq!(billing.received().len(), 1);
}

#[tokio::test]
async fn a_410_or_an_answer_marked_paybridge_retry_never_is_final() {
    let o = outbox().await;
    for answer in [
        Answer::status(410).body("gone"),
        Answer::status(422)
            .header("paybridge-retry", "never")
            .body("invoice closed"),
        Answer::status(500).header("Paybridge-Retry", "Never"),
    ] {
        let n = o.charge_succeeded(unix_now()).await;
        let status = answer.status;
        let billing = Billing::start(&new_secret(), vec![answer]).await;
        let got = o.deliver(&billing.notifier(DEFAULT_TIMEOUT), &n).await;
        assert_eq!(got, Delivery::Failed, "{status}");
        let stored = o.stored(&n).await;
        assert_eq!(
            (
                stored.status,
                stored.last_status,
                stored.series.next_attempt_at
            ),
            (DeliveryStatus::Failed, Some(status), None)
        );
    }
    assert!(
        o.queued_notifications(&o.follow_ups_url).await.is_empty(),
        "nothing more queued"
    );
}

#[tokio::test]
async fn billings_retry_after_is_honoured() {
    let o = outbox().await;
    let n = o.charge_succeeded(unix_now()).await;
    let billing = Billing::start(
        &new_secret(),
        vec![Answer::status(429).header("retry-after", "600")],
    )
    .await;

    let before = unix_now();
    let got = o.deliver(&billing.notifier(DEFAULT_TIMEOUT), &n).await;
    let Delivery::Retry { at, .. } = got else {
        panic!("expected a retry, got {got:?}")
    };
    assert!(at >= before + 600, "{}", at - before);

    let stored = o.stored(&n).await;
    assert_eq!(
        (stored.status, stored.attempts, stored.last_status),
        (DeliveryStatus::Pending, 1, Some(429))
    );
    assert_eq!(stored.series.next_attempt_at, Some(at));
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_retried() {
    let o = outbox().await;
    let n = o.charge_succeeded(unix_now()).await;
    let secret = new_secret();
    let elsewhere = Billing::start(&secret, Vec::new()).await;
    let billing = Billing::start(
        &secret,
        vec![Answer::status(307).header("location", elsewhere.url.clone())],
    )
    .await;

    let got = o.deliver(&billing.notifier(DEFAULT_TIMEOUT), &n).await;
    assert!(matches!(got, Delivery::Retry { .. }), "{got:?}");
    assert_eq!(billing.received().len(), 1);
    assert!(
        elsewhere.received().is_empty(),
        "the redirect target got {:?}",
        elsewhere.received()
    );

    let stored = o.stored(&n).await;
    assert_eq!(
        (stored.status, stored.last_status),
        (DeliveryStatus::Pending, Some(307))
    );
    let error = stored.last_error.unwrap();
    assert!(error.contains("redirected"), "{error}");
    assert!(
        error.contains(&elsewhere.base),
        "the log names the target: {error}"
    );
}

#[tokio::test]
async fn an_endpoint_that_hangs_times_out_and_is_retried() {
    let o = outbox().await;
    let n = o.charge_succeeded(unix_now()).await;
    let billing = Billing::start(
        &new_secret(),
        vec![Answer::status(200).after(Duration::from_secs(5))],
    )
    .await;

    let started = Instant::now();
    let got = o
        .deliver(&billing.notifier(Duration::from_secs(1)), &n)
        .await;
    assert!(matches!(got, Delivery::Retry { .. }), "{got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );

    let stored = o.stored(&n).await;
    assert_eq!(
        (stored.status, stored.attempts, stored.last_status),
        (DeliveryStatus::Pending, 1, None)
    );
    let error = stored.last_error.unwrap();
    assert!(error.contains("did not answer in time"), "{error}");
}

#[tokio::test]
async fn plain_http_to_another_host_and_a_secret_without_whsec_are_refused_at_construction() {
    let http = http_client(DEFAULT_TIMEOUT);
    let good_secret = SecretString::new(new_secret());

    let err = HttpNotifier::new(
        http.clone(),
        "http://billing.example/paybridge",
        &good_secret,
    )
    .unwrap_err();
    assert!(err.contains("https://"), "{err}");
    let err =
        HttpNotifier::new(http.clone(), "http://127.0.0.1.example/x", &good_secret).unwrap_err();
    assert!(err.contains("https://"), "{err}");

    let raw = SecretString::new("tnD5f+sthMLCvUEft1NbL5V+fNFEkhza");
    let err = HttpNotifier::new(http.clone(), "https://billing.example/x", &raw).unwrap_err();
    assert!(err.contains("whsec_"), "{err}");
    assert!(!err.contains("tnD5f"), "the secret is not echoed: {err}");

    assert!(HttpNotifier::new(http, "https://billing.example/x", &good_secret).is_ok());
}

#[tokio::test]
async fn sweep_outbox_queues_unqueued_notifications_and_lost_chains_but_not_delivered_or_waiting_ones()
 {
    let o = own_outbox().await;
    let long_ago = unix_now() - 30 * 86_400;
    let pending = o.charge_succeeded(long_ago).await;
    let delivered = o.charge_succeeded(long_ago).await;
    let lost = o.charge_succeeded(long_ago).await;
    let billing = Billing::start(&new_secret(), vec![Answer::status(503)]).await;
    let notifier = billing.notifier(DEFAULT_TIMEOUT);
    // `lost` fails once; its next message never arrives.
    assert!(matches!(
        o.deliver(&notifier, &lost).await,
        Delivery::Retry { .. }
    ));
    assert_eq!(o.deliver(&notifier, &delivered).await, Delivery::Delivered);
    let next = o.stored(&lost).await.series.next_attempt_at.unwrap();
    let (queue, url) = o.new_queue().await;

    // An hour after the lost chain's attempt was due.
    let now = next + HOUR;
    let queued = sweep_outbox(&o.table, &queue, Duration::from_secs(60), now, 100)
        .await
        .unwrap();
    let bodies: Vec<WorkMessage> = o
        .stack
        .drain(&url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(queued, 2);
    assert!(
        bodies.contains(&WorkMessage::deliver_notification(&pending.id, 1, 1)),
        "{bodies:?}"
    );
    assert!(
        bodies.contains(&WorkMessage::deliver_notification(&lost.id, 1, 2)),
        "{bodies:?}"
    );

    // A chain whose next attempt is only a little overdue, or ahead, is left to its message.
    let queued = sweep_outbox(&o.table, &queue, Duration::from_secs(60), next + 60, 100)
        .await
        .unwrap();
    let ids = o.queued_notifications(&url).await;
    assert_eq!(queued, ids.len());
    assert_eq!(
        ids,
        vec![pending.id.to_string()],
        "only the never-queued one"
    );

    // Notifications younger than the window are left for their own messages.
    let fresh = o.charge_succeeded(unix_now()).await;
    sweep_outbox(&o.table, &queue, Duration::from_secs(300), unix_now(), 20)
        .await
        .unwrap();
    let ids = o.queued_notifications(&url).await;
    assert!(!ids.contains(&fresh.id.to_string()), "{ids:?}");
}

#[tokio::test]
async fn resend_puts_a_failed_notification_back_with_a_fresh_series_and_queues_it() {
    let o = outbox().await;
    let n = o.charge_succeeded(unix_now()).await;
    let billing = Billing::start(&new_secret(), vec![Answer::status(410).body("gone")]).await;
    let notifier = billing.notifier(DEFAULT_TIMEOUT);
    assert_eq!(o.deliver(&notifier, &n).await, Delivery::Failed);
    let failed = o.stored(&n).await;
    assert_eq!(failed.status, DeliveryStatus::Failed);
    let (queue, url) = o.new_queue().await;

    let back = resend(&o.table, &queue, &n.id, unix_now()).await.unwrap();

    assert_eq!(
        (back.status, back.attempts, back.version, back.series.number),
        (DeliveryStatus::Pending, 1, failed.version + 1, 2)
    );
    assert!(
        back.last_error.as_deref().unwrap_or("").contains("gone"),
        "the log keeps the last error: {back:?}"
    );
    assert_eq!(o.stored(&n).await, back);
    let queued: Vec<WorkMessage> = o
        .stack
        .drain(&url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(queued, vec![WorkMessage::deliver_notification(&n.id, 2, 1)]);

    // The worker takes the message: billing, fixed, accepts it.
    assert_eq!(o.deliver(&notifier, &n).await, Delivery::Delivered);
    let stored = o.stored(&n).await;
    assert_eq!(
        (stored.status, stored.attempts),
        (DeliveryStatus::Delivered, 2)
    );
    let got = billing.received();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.verified.is_ok()), "{got:#?}");
}

#[tokio::test]
async fn notifications_stored_before_the_upgrade_are_indexed_for_recovery() {
    let o = own_outbox().await;
    let n = o.charge_succeeded(unix_now()).await;
    // As the previous release stored a notification it had given up on: failed, without the
    // series attributes or the UNDELIVERED index keys.
    let ddb = o.stack.dynamodb();
    let key = HashMap::from([
        (
            "pk".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S(format!("CHARGE#{}", n.charge_id)),
        ),
        (
            "sk".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S(format!("NOTIFICATION#{}", n.id)),
        ),
    ]);
    ddb.update_item()
        .table_name(o.table.name())
        .set_key(Some(key))
        .update_expression(
            "SET #s = :failed REMOVE gsi1pk, gsi1sk, gsi2pk, gsi2sk, series, series_started_at, series_attempts, next_attempt_at",
        )
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":failed", aws_sdk_dynamodb::types::AttributeValue::S("failed".into()))
        .send()
        .await
        .unwrap();
    let listed = undelivered(&o.table, &DeliveryStatus::UNDELIVERED, 0, 10)
        .await
        .unwrap();
    assert!(listed.is_empty(), "not in the index yet: {listed:?}");

    assert_eq!(o.table.index_undelivered_notifications().await.unwrap(), 1);

    let listed = undelivered(&o.table, &[DeliveryStatus::Failed], 0, 10)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|n| &n.id).collect::<Vec<_>>(),
        vec![&n.id]
    );
    assert_eq!(
        o.table.index_undelivered_notifications().await.unwrap(),
        0,
        "once"
    );
}
