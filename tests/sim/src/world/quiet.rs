//! The end of a history: the system let go quiet, so the invariants can judge it.

use std::sync::atomic::Ordering;

use super::World;
use crate::faults::Rates;

impl World {
    /// Faults off, billing up, billing's requests answered, every delivery made, the queue
    /// drained (dead letters redriven), and the reconciler run until nothing changes.
    pub(super) async fn quiesce(&mut self) {
        self.faults.set_rates(Rates::NONE);
        *self.gateway.fault_rate.lock().unwrap() = 0.0;
        *self.billing.fault_rate.lock().unwrap() = 0.0;
        self.gateway.ledger.lock().unwrap().key_rolled_until_ms = 0;
        self.billing.state.lock().unwrap().down_until_ms = 0;
        self.trace
            .log(self.now_ms(), "— quiet: faults off, billing up —");
        let (mut calm, mut unresolved) = (0, false);
        for _round in 0..60 {
            while (self.billing.state.lock().unwrap().requests.iter()).any(|r| !r.answered) {
                self.billing_call().await;
                self.advance(1000);
            }
            self.deliver_webhooks(true).await;
            let mut steps = 0;
            while let Some(at) = self.queue.next_visible() {
                steps += 1;
                if steps > 2000 {
                    break;
                }
                if at > self.now_ms() {
                    self.now_ms.store(at, Ordering::SeqCst);
                }
                self.work(false).await;
            }
            let redriven = self.queue.redrive();
            // The reconciler runs every 20 minutes; an item it cannot resolve yet (a refusal of a
            // retry whose first outcome is unknown waits for the gateway's key window) needs hours.
            self.advance(if unresolved {
                2 * 3_600_000
            } else {
                20 * 60_000
            });
            let summary = self.reconcile().await;
            unresolved = summary.as_ref().is_some_and(|s| s.unknown > 0);
            let deliveries_left = !self.gateway.ledger.lock().unwrap().deliveries.is_empty();
            let busy = redriven > 0
                || deliveries_left
                || !self.queue.is_empty()
                || unresolved
                || summary.is_none_or(|s| {
                    s.fixed + s.events_requeued + s.events_recovered + s.notifications_queued > 0
                });
            calm = if busy { 0 } else { calm + 1 };
            if calm >= 2 {
                break;
            }
        }
    }
}
