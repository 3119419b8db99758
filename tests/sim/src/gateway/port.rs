//! The gateway as paybridge's adapters see it (the payment, refund and undelivered-events ports),
//! every call through the injector's gateway faults.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paybridge::domain::{Charge, PaymentOutcome, Refund, RefundOutcome};
use paybridge::ports::{
    GatewayError, PaymentGateway, PaymentRequest, RefundGateway, UndeliveredEvents,
};

use super::{Ledger, refused};
use crate::faults::Faults;

/// The gateway as paybridge's adapters see it: every call through the injector's gateway faults.
#[derive(Clone)]
pub struct SimGateway {
    pub ledger: Arc<Mutex<Ledger>>,
    pub faults: Arc<Faults>,
    pub now_ms: Arc<AtomicI64>,
    /// Probability of each gateway fault per call while faults are on.
    pub fault_rate: Arc<Mutex<f64>>,
}

impl SimGateway {
    fn now(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    /// The gateway's faults for one call: `Err` before any effect, or `true`: lose the answer after.
    fn before(&self) -> Result<bool, GatewayError> {
        if !self.faults.in_invocation() {
            return Ok(false);
        }
        if self.ledger.lock().unwrap().key_rolled_until_ms > self.now() {
            self.faults.count("gateway_401_rolled_key");
            return Err(refused(401, "api_key_expired"));
        }
        let rate = *self.fault_rate.lock().unwrap();
        if !self.faults.chance(rate) {
            return Ok(false);
        }
        let mut l = self.ledger.lock().unwrap();
        let unknown = |kind: &str, retry_after: Option<Duration>| GatewayError::Unknown {
            message: format!("injected: {kind}"),
            retry_after,
            source: None,
        };
        match l.rng.below(4) {
            0 => {
                self.faults.count("gateway_timeout_before");
                Err(unknown("timed out before the gateway acted", None))
            }
            1 => {
                self.faults.count("gateway_429");
                Err(unknown("429 rate limited", Some(Duration::from_secs(2))))
            }
            2 => {
                self.faults.count("gateway_5xx");
                Err(unknown("500 api_error", None))
            }
            _ => {
                self.faults.count("gateway_timeout_after");
                Ok(true)
            }
        }
    }

    async fn call<T>(
        &self,
        effect: impl FnOnce(&mut Ledger, i64) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let lose_answer = self.before()?;
        let out = {
            let mut l = self.ledger.lock().unwrap();
            effect(&mut l, self.now())
        };
        if lose_answer {
            return Err(GatewayError::Unknown {
                message: "injected: the gateway acted, the answer was lost".into(),
                retry_after: None,
                source: None,
            });
        }
        out
    }
}

impl PaymentGateway for SimGateway {
    async fn create_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, GatewayError> {
        self.call(|l, now| l.create_payment(request, now)).await
    }

    async fn capture(
        &self,
        _: &Charge,
        _: paybridge::domain::Money,
        _: &str,
    ) -> Result<PaymentOutcome, GatewayError> {
        Err(refused(400, "payment_intent_unexpected_state"))
    }

    async fn cancel(&self, _: &Charge, _: &str) -> Result<PaymentOutcome, GatewayError> {
        Err(refused(400, "payment_intent_unexpected_state"))
    }

    async fn retrieve(&self, charge: &Charge) -> Result<PaymentOutcome, GatewayError> {
        self.call(|l, _| {
            let pi = charge
                .gateway_ref
                .as_deref()
                .and_then(|p| l.intents.get(p))
                .ok_or_else(|| refused(404, "resource_missing"))?;
            Ok(l.payment_outcome(pi))
        })
        .await
    }

    async fn find_payments(&self, charge: &Charge) -> Result<Vec<PaymentOutcome>, GatewayError> {
        self.call(|l, _| {
            Ok((l.intents.values())
                .filter(|i| i.charge_id == charge.id.as_str())
                .map(|i| l.payment_outcome(i))
                .collect())
        })
        .await
    }
}

impl RefundGateway for SimGateway {
    async fn refund(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> Result<RefundOutcome, GatewayError> {
        self.call(|l, now| l.refund(charge, refund, now)).await
    }

    async fn retrieve_refund(
        &self,
        _: &Charge,
        refund: &Refund,
    ) -> Result<RefundOutcome, GatewayError> {
        self.call(|l, _| {
            let r = refund
                .gateway_ref
                .as_deref()
                .and_then(|g| l.refunds.get(g))
                .ok_or_else(|| refused(404, "resource_missing"))?;
            Ok(Ledger::refund_outcome(r))
        })
        .await
    }

    async fn find_refunds(
        &self,
        _: &Charge,
        refund: &Refund,
    ) -> Result<Vec<RefundOutcome>, GatewayError> {
        self.call(|l, _| {
            Ok((l.refunds.values())
                .filter(|r| r.refund_id.as_deref() == Some(refund.id.as_str()))
                .map(Ledger::refund_outcome)
                .collect())
        })
        .await
    }
}

impl UndeliveredEvents for SimGateway {
    async fn undelivered_events(
        &self,
        since: i64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, GatewayError> {
        self.call(|l, _| {
            Ok((l.events.iter())
                .filter(|e| !e.delivered && e.created_ms / 1000 >= since)
                .take(limit)
                .map(|e| e.json.clone().into_bytes())
                .collect())
        })
        .await
    }
}
