//! One history: the scheduler that advances the clock, picks what happens next (a billing call,
//! a webhook delivery, a worker receive — sometimes two at once —, a gateway action, a reconciler
//! run, an operator's redrive, an outage), runs the real use cases as the functions do, and
//! then lets the system go quiet for the invariants.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use paybridge::domain::idempotency::IdempotencyKey;
use paybridge::secrets::SecretString;
use paybridge::services::charges::create::{ChargeDeps, create_charge};
use paybridge::services::deliver::sweep_outbox;
use paybridge::services::fakes::{MemBus, MemStore};
use paybridge::services::idempotency::Call;
use paybridge::services::reconcile::{ReconcileSettings, reconcile};
use paybridge::services::record_webhook::{IntakeSettings, record};
use paybridge::services::refunds::create::refund_charge;
use paybridge::services::work::{Received, Verdict, Worker};
use paybridge::webhooks::stripe;

use crate::billing::{BillingState, Request, SimBilling};
use crate::faults::{Faults, Invocation, Rates};
use crate::gateway::{Ledger, SimGateway};
use crate::queue::{MAX_RECEIVES, Queues, SimQueue};
use crate::rng::Rng;

mod quiet;

const SECRET: &str = "whsec_simulated";
/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// What a history is made of.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Scheduler steps before the system is let go quiet.
    pub steps: u32,
    pub rates: Rates,
    /// Gateway and billing faults per call.
    pub gateway_faults: f64,
    pub billing_faults: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            steps: 60,
            rates: Rates {
                store_fail: 0.03,
                store_fail_after: 0.02,
                crash: 0.02,
                queue_fail: 0.03,
                interleave: 0.3,
            },
            gateway_faults: 0.12,
            billing_faults: 0.1,
        }
    }
}

/// What happened in one history.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    pub lines: Vec<String>,
    pub operations: u64,
}

impl Trace {
    fn log(&mut self, now_ms: i64, line: impl Into<String>) {
        self.operations += 1;
        self.lines.push(format!(
            "t+{:>9}s {}",
            (now_ms - START_MS) / 1000,
            line.into()
        ));
    }
}

pub struct World {
    pub rng: Rng,
    pub now_ms: Arc<AtomicI64>,
    pub faults: Arc<Faults>,
    pub mem: Arc<MemStore>,
    pub queue: SimQueue,
    pub gateway: SimGateway,
    pub billing: SimBilling,
    pub trace: Trace,
    config: Config,
    invoices: u64,
}

fn sign(body: &str, t: i64) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl World {
    pub fn new(seed: u64, config: Config) -> Self {
        let now_ms = Arc::new(AtomicI64::new(START_MS));
        let faults = Faults::new(seed, config.rates);
        let mem = Arc::new(MemStore::default());
        World {
            rng: Rng::new(seed),
            queue: SimQueue {
                queues: Arc::new(Mutex::new(Queues::default())),
                faults: faults.clone(),
                now_ms: now_ms.clone(),
            },
            gateway: SimGateway {
                ledger: Arc::new(Mutex::new(Ledger::new(seed))),
                faults: faults.clone(),
                now_ms: now_ms.clone(),
                fault_rate: Arc::new(Mutex::new(config.gateway_faults)),
            },
            billing: SimBilling {
                state: Arc::new(Mutex::new(BillingState::default())),
                faults: faults.clone(),
                now_ms: now_ms.clone(),
                fault_rate: Arc::new(Mutex::new(config.billing_faults)),
            },
            now_ms,
            faults,
            mem,
            trace: Trace::default(),
            config,
            invoices: 0,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn advance(&self, ms: i64) {
        self.now_ms.fetch_add(ms.max(0), Ordering::SeqCst);
    }

    fn store(&self) -> crate::store::SimStore {
        crate::store::SimStore {
            mem: self.mem.clone(),
            faults: self.faults.clone(),
        }
    }

    // ---- billing's calls ------------------------------------------------------------------

    fn new_invoice(&mut self) {
        self.invoices += 1;
        let invoice = format!("inv_{:05}", self.invoices);
        let amount = self.rng.between(100, 20_000);
        let body = serde_json::json!({
            "invoice_id": invoice, "amount": amount, "currency": "usd", "gateway": "stripe",
            "payment_method": "pm_card_visa", "customer": "cus_sim",
        });
        let key = format!("{invoice}-a1");
        (self.billing.state.lock().unwrap().requests).push(Request {
            invoice,
            kind: "charge",
            key,
            body: body.to_string(),
            charge_id: None,
            answered: false,
            attempts: 0,
            refused: None,
        });
    }

    /// A refund of a charge billing's view says is succeeded with something refundable.
    fn new_refund(&mut self) {
        let candidates: Vec<(String, i64)> = {
            let state = self.billing.state.lock().unwrap();
            (state.views.values())
                .filter(|v| v["object"] == "charge" && v["status"] == "succeeded")
                .filter_map(|v| Some((v["id"].as_str()?.to_owned(), v["refundable"].as_i64()?)))
                .filter(|(_, r)| *r > 0)
                .collect()
        };
        let Some((charge, refundable)) = self.rng.pick(&candidates).cloned() else {
            return;
        };
        let amount = if self.rng.chance(0.4) {
            refundable
        } else {
            self.rng.between(1, refundable)
        };
        // One key per request billing makes (a retry keeps it).
        let n = self.billing.state.lock().unwrap().requests.len();
        let body = serde_json::json!({"amount": amount, "reason": "requested_by_customer"});
        (self.billing.state.lock().unwrap().requests).push(Request {
            invoice: String::new(),
            kind: "refund",
            key: format!("rf-{charge}-{n}"),
            body: body.to_string(),
            charge_id: Some(charge),
            answered: false,
            attempts: 0,
            refused: None,
        });
    }

    /// Billing sends (or re-sends) one of its unanswered requests.
    async fn billing_call(&mut self) {
        let open: Vec<usize> = {
            let state = self.billing.state.lock().unwrap();
            (0..state.requests.len())
                .filter(|i| !state.requests[*i].answered)
                .collect()
        };
        let Some(&at) = self.rng.pick(&open) else {
            return;
        };
        let mut request = self.billing.state.lock().unwrap().requests[at].clone();
        // Now and then billing lost its key: the retry comes with a new one.
        if request.attempts > 0 && request.kind == "charge" && self.rng.chance(0.05) {
            request.key = format!("{}-lost{}", request.key, request.attempts);
            self.faults.count("billing_lost_key");
        }
        request.attempts += 1;
        let now = self.now_ms();
        let key = IdempotencyKey::parse(&request.key).expect("billing's keys are valid");
        let call = Call {
            key: &key,
            now_ms: now,
            lease_until_ms: now + 30_000,
        };
        let store = self.store();
        let deps = ChargeDeps {
            store: &store,
            gateway: &self.gateway,
            queue: &self.queue,
            idempotency_ttl: Duration::from_secs(24 * 3600),
        };
        let answer = match request.kind {
            "charge" => {
                Invocation::new(
                    &self.faults,
                    create_charge(&deps, call, request.body.as_bytes()),
                )
                .await
            }
            _ => {
                let charge = request.charge_id.clone().unwrap_or_default();
                Invocation::new(
                    &self.faults,
                    refund_charge(&deps, call, &charge, request.body.as_bytes()),
                )
                .await
            }
        };
        let (status, body, retryable) = match answer {
            None => (
                0,
                "crashed: the caller's request timed out".to_owned(),
                true,
            ),
            Some(Ok(r)) => (r.status, r.body, false),
            Some(Err(e)) => (
                e.kind().status(),
                format!("{} {}", e.code(), e.message()),
                e.retry_after_secs().is_some(),
            ),
        };
        // Retry later on a lost answer, a 5xx, anything that says when to come back.
        let retry = (status == 0 || status >= 500 || retryable) && request.attempts < 40;
        if request.kind == "charge" && status == 201 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if let Some(id) = v["id"].as_str() {
                request.charge_id = Some(id.to_owned());
            }
        }
        request.answered = !retry;
        if !retry && (400..500).contains(&status) {
            let operation = if request.kind == "charge" {
                "create_charge"
            } else {
                "refund_charge"
            };
            let chosen = (self.mem.idempotency.lock().unwrap())
                .get(&(operation.to_owned(), request.key.clone()))
                .map(|r| r.resource_id.clone());
            request.refused = Some((status, chosen));
        }
        self.trace.log(
            now,
            format!(
                "billing {} {}{} key={} → {status} {}",
                request.kind,
                request.invoice,
                request.charge_id.as_deref().unwrap_or(""),
                request.key,
                body.chars().take(80).collect::<String>()
            ),
        );
        self.billing.state.lock().unwrap().requests[at] = request;
    }

    // ---- webhooks -------------------------------------------------------------------------

    /// Delivers the due webhook deliveries (in a random order); an unacknowledged one comes again
    /// later, as Stripe retries for three days.
    async fn deliver_webhooks(&mut self, all: bool) {
        let now = self.now_ms();
        let mut due: Vec<(i64, usize)> = {
            let mut l = self.gateway.ledger.lock().unwrap();
            let (due, later) = l
                .deliveries
                .drain(..)
                .partition(|(at, _)| all || *at <= now);
            l.deliveries = later;
            due
        };
        // Shuffled.
        for i in (1..due.len()).rev() {
            due.swap(i, self.rng.below(i as u64 + 1) as usize);
        }
        for (_, index) in due {
            let (json, created_ms) = {
                let l = self.gateway.ledger.lock().unwrap();
                (l.events[index].json.clone(), l.events[index].created_ms)
            };
            let ok = self.intake(&json).await;
            let mut l = self.gateway.ledger.lock().unwrap();
            if ok {
                l.events[index].delivered = true;
            } else if now - created_ms < 3 * 24 * 3600 * 1000 {
                let again = now + l.rng.between(60_000, 3_600_000);
                l.deliveries.push((again, index));
            }
        }
    }

    /// webhook-intake: verify the signature, parse, record and queue.
    async fn intake(&mut self, json: &str) -> bool {
        let now = self.now_ms();
        let t = now / 1000;
        let header = sign(json, t);
        let secrets = [SecretString::new(SECRET)];
        let store = self.store();
        let queue = self.queue.clone();
        let settings = IntakeSettings::default();
        let run = async {
            stripe::verify(Some(&header), json.as_bytes(), &secrets, t, 300)
                .map_err(|e| e.to_string())?;
            let event = stripe::parse(json.as_bytes()).map_err(|e| e.to_string())?;
            record(&store, &queue, &settings, vec![event], t)
                .await
                .map_err(|e| e.to_string())
        };
        let answer = Invocation::new(&self.faults, run).await;
        let id = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let ok = matches!(answer, Some(Ok(_)));
        self.trace.log(
            now,
            format!(
                "intake {id} → {}",
                match &answer {
                    None => "crashed".to_owned(),
                    Some(Ok(_)) => "200".to_owned(),
                    Some(Err(e)) => format!("error {e}"),
                }
            ),
        );
        ok
    }

    // ---- the worker -----------------------------------------------------------------------

    /// The retry worker: one received message, or two handled at once.
    async fn work(&mut self, two: bool) {
        let first = self.queue.receive(&mut self.rng);
        let second = if two {
            self.queue.receive(&mut self.rng)
        } else {
            None
        };
        let now = self.now_ms();
        let worker = Worker {
            store: self.store(),
            gateways: self.gateway.clone(),
            queue: self.queue.clone(),
            dlq: Some(self.queue.clone()),
            notifier: self.billing.clone(),
            bus: None::<MemBus>,
            max_receive_count: MAX_RECEIVES,
        };
        let handle = |m: Option<crate::queue::Message>| {
            let worker = &worker;
            let faults = self.faults.clone();
            async move {
                let m = m?;
                let id = m.id.to_string();
                let received = Received {
                    id: &id,
                    body: &m.body,
                    receipt_handle: Some(&m.receipt),
                    receive_count: m.receive_count,
                    sent_at_ms: Some(m.sent_at_ms),
                };
                let verdict = Invocation::new(&faults, worker.handle(&received, now / 1000)).await;
                Some((m, verdict))
            }
        };
        let (a, b) = futures::join!(handle(first), handle(second));
        for (m, verdict) in [a, b].into_iter().flatten() {
            let what = serde_json::from_str::<serde_json::Value>(&m.body)
                .ok()
                .map(|v| {
                    let fields = v
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| k.as_str() != "kind");
                    let about: Vec<String> = fields
                        .map(|(_, x)| x.as_str().map_or(x.to_string(), str::to_owned))
                        .collect();
                    format!("{} {}", v["kind"].as_str().unwrap_or(""), about.join(" "))
                });
            let kind = what.unwrap_or_default();
            if matches!(verdict, Some(Verdict::Done | Verdict::DeadLettered)) {
                self.queue.delete(&m.receipt);
            }
            self.trace.log(
                now,
                format!(
                    "worker {kind} #{} (receive {}) → {verdict:?}",
                    m.id, m.receive_count
                ),
            );
        }
    }

    // ---- the reconciler, the sweep and the operator ----------------------------------------

    async fn reconcile(&mut self) -> Option<paybridge::services::reconcile::Summary> {
        let now = self.now_ms();
        let store = self.store();
        let settings = ReconcileSettings {
            page_size: 10,
            ..ReconcileSettings::default()
        };
        let run = reconcile(&store, &self.gateway, &self.queue, &settings, now / 1000);
        let out = Invocation::new(&self.faults, run).await;
        self.trace.log(
            now,
            format!(
                "reconciler → {}",
                match &out {
                    None => "crashed".to_owned(),
                    Some(Ok(s)) => format!(
                        "checked {} fixed {} unknown {} parked {}; events requeued {} recovered {}",
                        s.checked,
                        s.fixed,
                        s.unknown,
                        s.parked,
                        s.events_requeued,
                        s.events_recovered
                    ),
                    Some(Err(e)) => format!("error {e}"),
                }
            ),
        );
        out.and_then(Result::ok)
    }

    async fn sweep(&mut self) {
        let now = self.now_ms();
        let store = self.store();
        let run = sweep_outbox(
            &store,
            &self.queue,
            Duration::from_secs(60),
            now / 1000,
            100,
        );
        let out = Invocation::new(&self.faults, run).await;
        self.trace.log(
            now,
            format!(
                "outbox sweep → {:?}",
                out.map(|r| r.map_err(|e| e.to_string()))
            ),
        );
    }

    // ---- a history --------------------------------------------------------------------------

    pub async fn run(&mut self) {
        let mut scheduled = self.now_ms();
        for _ in 0..self.config.steps {
            let step = self.rng.between(0, 90_000);
            self.advance(step);
            let jumped = self.rng.chance(0.03);
            if jumped {
                let jump = self.rng.between(3_600_000, 26 * 3_600_000);
                self.advance(jump);
            }
            // The reconciler's schedule, every 15 minutes: a quiet stretch of hours stands for
            // many runs, of which a few are played (until one gets through the faults); the steps
            // below add runs at random moments, overlapping others.
            if self.now_ms() - scheduled >= 15 * 60_000 {
                scheduled = self.now_ms();
                for _ in 0..if jumped { 3 } else { 1 } {
                    if self.reconcile().await.is_some() {
                        break;
                    }
                }
            }
            let now = self.now_ms();
            match self.rng.below(100) {
                0..=11 => self.new_invoice(),
                12..=29 => self.billing_call().await,
                30..=35 => self.new_refund(),
                36..=55 => self.deliver_webhooks(false).await,
                56..=79 => {
                    let two = self.rng.chance(0.3);
                    self.work(two).await;
                }
                80..=87 => {
                    let did = self.gateway.ledger.lock().unwrap().act(now);
                    if let Some((what, on)) = did {
                        self.faults.count(what);
                        self.trace.log(now, format!("gateway {what} {on}"));
                    }
                }
                88..=91 => {
                    self.reconcile().await;
                }
                92..=93 => self.sweep().await,
                94 => {
                    let n = self.queue.redrive();
                    self.trace
                        .log(now, format!("operator redrives {n} dead letters"));
                }
                95..=96 => {
                    let until = now + self.rng.between(60_000, 12 * 3_600_000);
                    self.billing.state.lock().unwrap().down_until_ms = until;
                    self.faults.count("billing_outage");
                    self.trace
                        .log(now, format!("billing down for {} s", (until - now) / 1000));
                }
                97 => {
                    let until = now + self.rng.between(60_000, 3_600_000);
                    self.gateway.ledger.lock().unwrap().key_rolled_until_ms = until;
                    self.faults.count("gateway_key_rolled");
                    self.trace.log(
                        now,
                        format!("gateway API key rolled for {} s", (until - now) / 1000),
                    );
                }
                98 => {
                    let expired = self.mem.expire_idempotency(now / 1000);
                    self.trace.log(
                        now,
                        format!("DynamoDB TTL deletes {expired} idempotency records"),
                    );
                }
                _ => {
                    let hostile = !self.gateway.ledger.lock().unwrap().hostile_text;
                    self.gateway.ledger.lock().unwrap().hostile_text = hostile;
                }
            }
        }
        self.quiesce().await;
    }
}
