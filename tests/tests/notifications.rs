//! Billing notifications end to end: the outbox on moto (written with a charge's state change),
//! delivered by `deliver` through the real HTTP notifier to a billing receiver on 127.0.0.1 that
//! verifies every delivery with the `standardwebhooks` crate — what billing itself would run —
//! and answers from a script (503 twice, a redirect, a hang…).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use paybridge::adapters::billing::{DEFAULT_TIMEOUT, HttpNotifier};
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::http_client;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{Charge, ChargeStatus, DeliveryStatus, Gateway, Notification, WorkMessage};
use paybridge::ports::{ChargeStore, NotificationStore};
use paybridge::secrets::SecretString;
use paybridge::services::deliver::{Delivery, MAX_ATTEMPTS, deliver, resend, sweep_outbox};
use paybridge::services::notify;
use paybridge_tests::builders::pending_charge;
use paybridge_tests::{Stack, stack, unique, unix_now};

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
}

async fn outbox() -> Outbox {
    let stack = stack().await;
    let table = Table::from_conf(&stack.aws, &stack.config.table);
    Outbox { stack, table }
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
        self.table.insert_charge(&pending).await.unwrap();
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

    async fn deliver(&self, billing: &HttpNotifier, n: &Notification, attempt: u32) -> Delivery {
        deliver(
            &self.table,
            billing,
            &n.id,
            attempt,
            MAX_ATTEMPTS,
            unix_now(),
        )
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

// ---- tests --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_billing_endpoint_that_fails_twice_then_succeeds_gets_the_notification_exactly_once_as_delivered()
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
    let billing = Billing::start(
        secret.expose(),
        vec![Answer::status(503), Answer::status(503)],
    )
    .await;
    let mut config = o.stack.config.clone();
    config.billing_url_override = Some(billing.url.clone());
    let notifier = HttpNotifier::from_secrets(&config, &o.stack.secrets, DEFAULT_TIMEOUT).unwrap();

    let first = o.deliver(&notifier, &n, 1).await;
    assert!(matches!(first, Delivery::Retry { .. }), "{first:?}");
    let second = o.deliver(&notifier, &n, 2).await;
    assert!(matches!(second, Delivery::Retry { .. }), "{second:?}");
    assert_eq!(o.deliver(&notifier, &n, 3).await, Delivery::Delivered);
    // A duplicate message after the delivery sends nothing.
    assert_eq!(o.deliver(&notifier, &n, 4).await, Delivery::Delivered);

    let got = billing.received();
    assert_eq!(got.len(), 3, "{got:#?}");
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
    let body: serde_json::Value = serde_json::from_str(&got[2].body).unwrap();
    assert_eq!(body["id"], n.id.as_str());
    assert_eq!(body["type"], "charge.succeeded");
    assert_eq!(body["data"]["status"], "succeeded");

    let stored = o.stored(&n).await;
    assert_eq!(
        (stored.status, stored.attempts, stored.last_status),
        (DeliveryStatus::Delivered, 3, Some(200))
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
async fn a_4xx_is_recorded_as_failed_with_billings_response() {
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

    let got = o.deliver(&billing.notifier(DEFAULT_TIMEOUT), &n, 1).await;
    assert_eq!(got, Delivery::Failed);

    let stored = o.stored(&n).await;
    assert_eq!(
        (stored.status, stored.attempts, stored.last_status),
        (DeliveryStatus::Failed, 1, Some(422))
    );
    let error = stored.last_error.unwrap();
    assert!(error.contains("unknown invoice"), "{error}");
    assert!(error.len() < 700, "billing's answer is cut short: {error}");
    assert_eq!(billing.received().len(), 1);
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

    let got = o.deliver(&billing.notifier(DEFAULT_TIMEOUT), &n, 1).await;
    let Delivery::Retry { after } = got else {
        panic!("expected a retry, got {got:?}")
    };
    assert!(after >= Duration::from_secs(600), "{after:?}");

    let stored = o.stored(&n).await;
    assert_eq!(
        (stored.status, stored.attempts, stored.last_status),
        (DeliveryStatus::Pending, 1, Some(429))
    );
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

    let got = o.deliver(&billing.notifier(DEFAULT_TIMEOUT), &n, 1).await;
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
        .deliver(&billing.notifier(Duration::from_secs(1)), &n, 1)
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
async fn sweep_outbox_queues_pending_notifications_and_not_delivered_ones() {
    let o = outbox().await;
    // Dated long ago, at a time of this test's own, so the sweep window holds only this test's
    // notifications (and those of earlier runs of it) whatever else is in the table.
    let long_ago = 1_000_000_000 + (uuid::Uuid::new_v4().as_u128() % 100_000_000) as i64;
    let pending = o.charge_succeeded(long_ago).await;
    let delivered = o.charge_succeeded(long_ago).await;
    let billing = Billing::start(&new_secret(), Vec::new()).await;
    let got = o
        .deliver(&billing.notifier(DEFAULT_TIMEOUT), &delivered, 1)
        .await;
    assert_eq!(got, Delivery::Delivered);
    let (queue, url) = o.new_queue().await;

    let queued = sweep_outbox(
        &o.table,
        &queue,
        Duration::from_secs(60),
        long_ago + 120,
        100,
    )
    .await
    .unwrap();

    let ids = o.queued_notifications(&url).await;
    assert_eq!(queued, ids.len());
    assert!(ids.contains(&pending.id.to_string()), "{ids:?}");
    assert!(!ids.contains(&delivered.id.to_string()), "{ids:?}");

    // Notifications younger than the window are left for their own messages.
    let fresh = o.charge_succeeded(unix_now()).await;
    sweep_outbox(&o.table, &queue, Duration::from_secs(300), unix_now(), 20)
        .await
        .unwrap();
    let ids = o.queued_notifications(&url).await;
    assert!(!ids.contains(&fresh.id.to_string()), "{ids:?}");
}

#[tokio::test]
async fn resend_puts_a_failed_notification_back_and_queues_it() {
    let o = outbox().await;
    let n = o.charge_succeeded(unix_now()).await;
    let billing = Billing::start(&new_secret(), vec![Answer::status(410).body("gone")]).await;
    let notifier = billing.notifier(DEFAULT_TIMEOUT);
    assert_eq!(o.deliver(&notifier, &n, 1).await, Delivery::Failed);
    let failed = o.stored(&n).await;
    assert_eq!(failed.status, DeliveryStatus::Failed);
    let (queue, url) = o.new_queue().await;

    let back = resend(&o.table, &queue, &n.id).await.unwrap();

    assert_eq!(
        (back.status, back.attempts, back.version),
        (DeliveryStatus::Pending, 1, failed.version + 1)
    );
    assert!(
        back.last_error.as_deref().unwrap_or("").contains("gone"),
        "the log keeps the last error: {back:?}"
    );
    assert_eq!(o.stored(&n).await, back);
    assert_eq!(o.queued_notifications(&url).await, vec![n.id.to_string()]);

    // The worker takes the message: billing, fixed, accepts it.
    assert_eq!(o.deliver(&notifier, &n, 1).await, Delivery::Delivered);
    let stored = o.stored(&n).await;
    assert_eq!(
        (stored.status, stored.attempts),
        (DeliveryStatus::Delivered, 2)
    );
    let got = billing.received();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.verified.is_ok()), "{got:#?}");
}
