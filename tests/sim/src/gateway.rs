//! A Stripe-like gateway with a ledger: PaymentIntents, refunds and disputes, idempotency keys
//! remembered for 24 simulated hours and then forgotten, answers lost or refused (timeouts,
//! 429/5xx, 401 while a key is rolled), its own actions (dashboard refunds, disputes, late
//! successes and late refund failures), and every change as a Stripe-shaped event, delivered
//! signed to webhook intake — late, duplicated, shuffled, or not at all (then listed as
//! undelivered, as `/v1/events?delivery_success=false` lists it).
//!
//! The event and object shapes follow Stripe's published API objects (`stripe/openapi`
//! fixtures: `payment_intent`, `refund`, `charge`, `dispute`), trimmed to the fields paybridge
//! reads.

use std::collections::BTreeMap;

use paybridge::domain::{
    Charge, ChargeStatus, Failure, PaymentOutcome, Refund, RefundOutcome, RefundStatus,
};
use paybridge::ports::{GatewayError, PaymentRequest};
use serde_json::json;

use crate::rng::Rng;

mod act;
mod port;

pub use port::SimGateway;

/// Stripe keeps an idempotency key for 24 hours.
pub const KEY_MEMORY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct Intent {
    pub id: String,
    pub charge_id: String,
    pub invoice_id: String,
    pub key: String,
    pub amount: i64,
    /// `succeeded`, `requires_payment_method` (declined), `processing`.
    pub status: &'static str,
    pub created_ms: i64,
    /// Succeeded later, after it had failed.
    pub late_success: bool,
}

#[derive(Debug, Clone)]
pub struct GRefund {
    pub id: String,
    pub pi: String,
    pub amount: i64,
    /// `succeeded`, `pending`, `failed`.
    pub status: &'static str,
    /// paybridge's refund id (metadata); `None`: made on the dashboard.
    pub refund_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GDispute {
    pub id: String,
    pub pi: String,
    pub amount: i64,
    /// `needs_response`, `won`, `lost`.
    pub status: &'static str,
}

#[derive(Debug, Clone)]
enum Answer {
    Payment(PaymentOutcome),
    Refund(RefundOutcome),
}

#[derive(Debug, Clone)]
struct Remembered {
    fingerprint: String,
    answer: Answer,
    at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub json: String,
    pub created_ms: i64,
    /// Webhook intake acknowledged a delivery of it.
    pub delivered: bool,
}

/// Deliveries of events due, (at unix ms, event index).
pub type Deliveries = Vec<(i64, usize)>;

pub struct Ledger {
    pub rng: Rng,
    pub intents: BTreeMap<String, Intent>,
    pub refunds: BTreeMap<String, GRefund>,
    pub disputes: BTreeMap<String, GDispute>,
    keys: BTreeMap<String, Remembered>,
    pub events: Vec<Event>,
    pub deliveries: Deliveries,
    next: u64,
    /// Until this time (unix ms) the gateway answers 401: the API key was rolled.
    pub key_rolled_until_ms: i64,
    /// A PAN in a gateway object's free text, to prove it is masked wherever it is stored.
    pub hostile_text: bool,
}

/// The gateway's totals of one PaymentIntent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Totals {
    pub captured: i64,
    pub refunded: i64,
    pub disputed: i64,
}

impl Ledger {
    pub fn new(seed: u64) -> Self {
        Ledger {
            rng: Rng::new(seed ^ 0x6A7E),
            intents: BTreeMap::new(),
            refunds: BTreeMap::new(),
            disputes: BTreeMap::new(),
            keys: BTreeMap::new(),
            events: Vec::new(),
            deliveries: Vec::new(),
            next: 0,
            key_rolled_until_ms: 0,
            hostile_text: false,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_sim{:08}", self.next)
    }

    pub fn totals(&self, pi: &str) -> Totals {
        let Some(intent) = self.intents.get(pi) else {
            return Totals::default();
        };
        let captured = if intent.status == "succeeded" {
            intent.amount
        } else {
            0
        };
        let refunded = (self.refunds.values())
            .filter(|r| r.pi == pi && r.status == "succeeded")
            .map(|r| r.amount)
            .sum();
        let disputed = (self.disputes.values())
            .filter(|d| d.pi == pi && d.status != "won")
            .map(|d| d.amount)
            .sum();
        Totals {
            captured,
            refunded,
            disputed,
        }
    }

    /// Money out of a PaymentIntent that refunds or disputes hold (succeeded or pending refunds,
    /// open or lost disputes).
    fn committed(&self, pi: &str) -> i64 {
        let refunds: i64 = (self.refunds.values())
            .filter(|r| r.pi == pi && r.status != "failed")
            .map(|r| r.amount)
            .sum();
        let disputes: i64 = (self.disputes.values())
            .filter(|d| d.pi == pi && d.status != "won")
            .map(|d| d.amount)
            .sum();
        refunds + disputes
    }

    fn intent_json(&self, i: &Intent) -> serde_json::Value {
        let mut pi = json!({
            "id": i.id, "object": "payment_intent", "amount": i.amount,
            "amount_received": if i.status == "succeeded" { i.amount } else { 0 },
            "currency": "usd", "status": i.status, "capture_method": "automatic",
            "livemode": false,
            "metadata": {"paybridge_charge_id": i.charge_id, "invoice_id": i.invoice_id},
            "description": if self.hostile_text { "card 4242 4242 4242 4242 on file" } else { "" },
        });
        if i.status == "requires_payment_method" {
            pi["last_payment_error"] = json!({
                "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds."
            });
        }
        pi
    }

    fn refund_json(&self, r: &GRefund) -> serde_json::Value {
        let metadata = match &r.refund_id {
            Some(id) => json!({"paybridge_refund_id": id}),
            None => json!({}),
        };
        let mut refund = json!({
            "id": r.id, "object": "refund", "amount": r.amount, "currency": "usd",
            "status": r.status, "payment_intent": r.pi, "metadata": metadata,
            "reason": if r.refund_id.is_some() { serde_json::Value::Null } else { json!("requested_by_customer") },
        });
        if r.status == "failed" {
            refund["failure_reason"] = json!("expired_or_canceled_card");
        }
        refund
    }

    fn charge_json(&self, pi: &str) -> serde_json::Value {
        let i = &self.intents[pi];
        let refunded: i64 = (self.refunds.values())
            .filter(|r| r.pi == pi && r.status != "failed")
            .map(|r| r.amount)
            .sum();
        json!({
            "id": format!("ch_{}", &pi[3..]), "object": "charge", "payment_intent": pi,
            "amount": i.amount, "amount_captured": i.amount, "amount_refunded": refunded,
            "currency": "usd", "refunded": refunded == i.amount,
            "metadata": {"paybridge_charge_id": i.charge_id},
        })
    }

    fn dispute_json(&self, d: &GDispute) -> serde_json::Value {
        let mut moves = vec![json!({"amount": -d.amount})];
        if d.status == "won" {
            moves.push(json!({"amount": d.amount}));
        }
        let i = &self.intents[&d.pi];
        json!({
            "id": d.id, "object": "dispute", "amount": d.amount, "currency": "usd",
            "status": d.status, "payment_intent": d.pi, "charge": format!("ch_{}", &d.pi[3..]),
            "reason": "fraudulent", "metadata": {"paybridge_charge_id": i.charge_id},
            "evidence_details": {"due_by": 1_900_000_000},
            "balance_transactions": moves,
        })
    }

    /// Records an event about `object` and schedules its deliveries: usually one soon, sometimes
    /// late (Stripe retries for three days), duplicated, or none at all.
    fn emit(&mut self, event_type: &str, object: serde_json::Value, now_ms: i64) {
        let id = self.id("evt");
        let body = json!({
            "id": id, "object": "event", "api_version": "2025-03-31.basil",
            "created": now_ms / 1000, "livemode": false, "pending_webhooks": 1,
            "type": event_type, "data": {"object": object},
        });
        let index = self.events.len();
        self.events.push(Event {
            id,
            json: body.to_string(),
            created_ms: now_ms,
            delivered: false,
        });
        let copies = if self.rng.chance(0.05) {
            0
        } else if self.rng.chance(0.15) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if self.rng.chance(0.1) {
                self.rng.between(60_000, 3 * 24 * 3600 * 1000)
            } else {
                self.rng.between(100, 30_000)
            };
            self.deliveries.push((now_ms + delay, index));
        }
    }

    fn payment_outcome(&self, i: &Intent) -> PaymentOutcome {
        let status = match i.status {
            "succeeded" => ChargeStatus::Succeeded,
            "processing" => ChargeStatus::Processing,
            _ => ChargeStatus::Failed,
        };
        PaymentOutcome {
            gateway_ref: i.id.clone(),
            status,
            captured: if status == ChargeStatus::Succeeded {
                i.amount
            } else {
                0
            },
            failure: (status == ChargeStatus::Failed).then(|| Failure {
                code: "insufficient_funds".into(),
                message: "Your card has insufficient funds.".into(),
                advice: None,
            }),
            action: None,
        }
    }

    fn refund_outcome(r: &GRefund) -> RefundOutcome {
        let status = match r.status {
            "succeeded" => RefundStatus::Succeeded,
            "pending" => RefundStatus::Pending,
            _ => RefundStatus::Failed,
        };
        RefundOutcome {
            gateway_ref: r.id.clone(),
            status,
            failure: (status == RefundStatus::Failed).then(|| Failure {
                code: "expired_or_canceled_card".into(),
                message: "the gateway could not complete the refund".into(),
                advice: None,
            }),
        }
    }

    /// The remembered answer of `key` (not forgotten yet), or a mismatch refusal.
    fn replay(
        &mut self,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
    ) -> Option<Result<Answer, GatewayError>> {
        self.keys.retain(|_, r| now_ms - r.at_ms < KEY_MEMORY_MS);
        let r = self.keys.get(key)?;
        if r.fingerprint != fingerprint {
            return Some(Err(GatewayError::Refused {
                status: 400,
                code: "idempotency_error".into(),
                message: "Keys for idempotent requests can only be used with the same parameters they were first used with.".into(),
            }));
        }
        Some(Ok(r.answer.clone()))
    }

    fn remember(&mut self, key: &str, fingerprint: String, answer: Answer, now_ms: i64) {
        self.keys.insert(
            key.to_owned(),
            Remembered {
                fingerprint,
                answer,
                at_ms: now_ms,
            },
        );
    }

    fn create_payment(
        &mut self,
        request: &PaymentRequest<'_>,
        now_ms: i64,
    ) -> Result<PaymentOutcome, GatewayError> {
        let c = request.charge;
        let fingerprint = format!("{}:{}", c.id, c.amount.minor());
        if let Some(answer) = self.replay(&request.idempotency_key, &fingerprint, now_ms) {
            return match answer? {
                Answer::Payment(p) => Ok(p),
                Answer::Refund(_) => Err(refused(400, "idempotency_error")),
            };
        }
        let roll = self.rng.below(100);
        let status = match roll {
            0..=69 => "succeeded",
            70..=89 => "requires_payment_method",
            _ => "processing",
        };
        let intent = Intent {
            id: self.id("pi"),
            charge_id: c.id.to_string(),
            invoice_id: c.invoice_id.clone(),
            key: request.idempotency_key.clone(),
            amount: c.amount.minor(),
            status,
            created_ms: now_ms,
            late_success: false,
        };
        let outcome = self.payment_outcome(&intent);
        let event = match status {
            "succeeded" => "payment_intent.succeeded",
            "processing" => "payment_intent.processing",
            _ => "payment_intent.payment_failed",
        };
        self.emit(event, self.intent_json(&intent), now_ms);
        self.intents.insert(intent.id.clone(), intent);
        self.remember(
            &request.idempotency_key,
            fingerprint,
            Answer::Payment(outcome.clone()),
            now_ms,
        );
        Ok(outcome)
    }

    fn refund(
        &mut self,
        charge: &Charge,
        refund: &Refund,
        now_ms: i64,
    ) -> Result<RefundOutcome, GatewayError> {
        let key = refund.gateway_idempotency_key();
        let fingerprint = format!("{}:{}", refund.id, refund.amount.minor());
        if let Some(answer) = self.replay(&key, &fingerprint, now_ms) {
            return match answer? {
                Answer::Refund(r) => Ok(r),
                Answer::Payment(_) => Err(refused(400, "idempotency_error")),
            };
        }
        let Some(pi) = charge
            .gateway_ref
            .clone()
            .filter(|p| self.intents.contains_key(p))
        else {
            return Err(refused(404, "resource_missing"));
        };
        let captured = self.totals(&pi).captured;
        if self.committed(&pi) + refund.amount.minor() > captured {
            return Err(refused(400, "amount_too_large"));
        }
        let r = GRefund {
            id: self.id("re"),
            pi: pi.clone(),
            amount: refund.amount.minor(),
            status: if self.rng.chance(0.15) {
                "pending"
            } else {
                "succeeded"
            },
            refund_id: Some(refund.id.to_string()),
        };
        let outcome = Self::refund_outcome(&r);
        self.emit("refund.created", self.refund_json(&r), now_ms);
        let charge = self.charge_json_with(&pi, &r);
        self.emit("charge.refunded", charge, now_ms);
        self.refunds.insert(r.id.clone(), r);
        self.remember(&key, fingerprint, Answer::Refund(outcome.clone()), now_ms);
        Ok(outcome)
    }

    /// The charge object as it is once `r` is counted.
    fn charge_json_with(&mut self, pi: &str, r: &GRefund) -> serde_json::Value {
        self.refunds.insert(r.id.clone(), r.clone());
        let json = self.charge_json(pi);
        self.refunds.remove(&r.id);
        json
    }
}

fn refused(status: u16, code: &str) -> GatewayError {
    GatewayError::Refused {
        status,
        code: code.into(),
        message: format!("{status} {code}"),
    }
}
