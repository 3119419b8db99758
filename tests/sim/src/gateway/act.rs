//! What the gateway does by itself: processing payments settle, successes after failures,
//! dashboard refunds, disputes opened and closed, refunds that settle or fail late.

use super::{GDispute, GRefund, Intent, Ledger};

impl Ledger {
    /// One PaymentIntent that `holds`, picked at random.
    fn pick_intent(&mut self, holds: impl Fn(&Intent) -> bool) -> Option<String> {
        let list: Vec<String> = (self.intents.values())
            .filter(|i| holds(i))
            .map(|i| i.id.clone())
            .collect();
        self.rng.pick(&list).cloned()
    }

    /// One action the gateway takes by itself, if any applies.
    pub fn act(&mut self, now_ms: i64) -> Option<(&'static str, String)> {
        let pick = self.rng.below(5);
        match pick {
            // A processing payment settles.
            0 => {
                let id = self.pick_intent(|i| i.status == "processing")?;
                let ok = self.rng.chance(0.7);
                let i = self.intents.get_mut(&id)?;
                i.status = if ok {
                    "succeeded"
                } else {
                    "requires_payment_method"
                };
                let json = self.intent_json(&self.intents[&id]);
                self.emit(
                    if ok {
                        "payment_intent.succeeded"
                    } else {
                        "payment_intent.payment_failed"
                    },
                    json,
                    now_ms,
                );
                Some(("gateway_settles_processing", id))
            }
            // A success after a failure (the customer's bank approves on a later try).
            1 => {
                let id = self.pick_intent(|i| {
                    i.status == "requires_payment_method" && now_ms - i.created_ms > 60_000
                })?;
                let i = self.intents.get_mut(&id)?;
                i.status = "succeeded";
                i.late_success = true;
                let json = self.intent_json(&self.intents[&id]);
                self.emit("payment_intent.succeeded", json, now_ms);
                Some(("gateway_late_success", id))
            }
            // A refund on the dashboard.
            2 => {
                let pi = self.pick_intent(|i| i.status == "succeeded")?;
                let left = self.totals(&pi).captured - self.committed(&pi);
                if left <= 0 {
                    return None;
                }
                let amount = self.rng.between(1, left);
                let r = GRefund {
                    id: self.id("re"),
                    pi: pi.clone(),
                    amount,
                    status: "succeeded",
                    refund_id: None,
                };
                self.emit("refund.created", self.refund_json(&r), now_ms);
                let charge = self.charge_json_with(&pi, &r);
                self.emit("charge.refunded", charge, now_ms);
                let what = format!("{} {amount} on {pi}", r.id);
                self.refunds.insert(r.id.clone(), r);
                Some(("gateway_dashboard_refund", what))
            }
            // A dispute opens, or an open one closes.
            3 => {
                let open: Vec<String> = (self.disputes.values())
                    .filter(|d| d.status == "needs_response")
                    .map(|d| d.id.clone())
                    .collect();
                if let (true, Some(id)) = (self.rng.chance(0.5), self.rng.pick(&open).cloned()) {
                    let won = self.rng.chance(0.5);
                    let d = self.disputes.get_mut(&id)?;
                    d.status = if won { "won" } else { "lost" };
                    let json = self.dispute_json(&self.disputes[&id]);
                    self.emit("charge.dispute.closed", json, now_ms);
                    return Some(("gateway_dispute_closed", id));
                }
                let pi = self.pick_intent(|i| i.status == "succeeded")?;
                let left = self.totals(&pi).captured - self.committed(&pi);
                if left <= 0 || self.disputes.values().any(|d| d.pi == pi) {
                    return None;
                }
                let d = GDispute {
                    id: self.id("dp"),
                    pi: pi.clone(),
                    amount: left,
                    status: "needs_response",
                };
                let json = self.dispute_json(&d);
                self.disputes.insert(d.id.clone(), d);
                self.emit("charge.dispute.created", json, now_ms);
                Some(("gateway_dispute_opened", format!("{left} on {pi}")))
            }
            // A pending refund settles, or a succeeded one fails late (the card was closed).
            _ => {
                let list: Vec<String> = (self.refunds.values())
                    .filter(|r| {
                        r.status == "pending" || (r.status == "succeeded" && r.refund_id.is_some())
                    })
                    .map(|r| r.id.clone())
                    .collect();
                let id = self.rng.pick(&list)?.clone();
                let was = self.refunds[&id].status;
                let fail = was == "succeeded" || self.rng.chance(0.3);
                if was == "succeeded" && !self.rng.chance(0.2) {
                    return None;
                }
                let r = self.refunds.get_mut(&id)?;
                r.status = if fail { "failed" } else { "succeeded" };
                let json = self.refund_json(&self.refunds[&id]);
                self.emit(
                    if fail {
                        "refund.failed"
                    } else {
                        "refund.updated"
                    },
                    json,
                    now_ms,
                );
                Some((
                    if was == "succeeded" {
                        "gateway_late_refund_failure"
                    } else {
                        "gateway_settles_refund"
                    },
                    id,
                ))
            }
        }
    }
}
