//! The promise, checked once a history is quiet (faults off, billing up, every request answered,
//! every delivery made, the queue drained, the reconciler run until nothing changes):
//!
//! 1. every billing idempotency key made at most one payment at the gateway, and no invoice was
//!    paid twice by paybridge (two payments that kept money; a late success of a payment that
//!    had failed aside);
//! 2. the gateway never refunded (or lost to disputes) more than it captured;
//! 3. paybridge's captured, refunded and disputed totals, and its status, equal the gateway
//!    ledger's for every charge;
//! 4. billing's view, built only from the notifications it accepted, equals paybridge's state of
//!    every charge, refund and dispute;
//! 5. every notification was delivered, and no state change reached billing under two ids;
//! 6. nothing is left in flight unless it is set aside for a person (`needs_attention`);
//! 7. no card number anywhere in stored state;
//! 8. a refusal is a refusal: no charge or refund that billing was told was refused (a final
//!    4xx) took or gave back money.

use std::collections::BTreeMap;

use paybridge::domain::pci::contains_pan;
use paybridge::domain::{ChargeStatus, DeliveryStatus, EventStatus, RefundStatus};

use crate::world::World;

pub fn check(w: &World) -> Vec<String> {
    let mut v = Vec::new();
    let ledger = w.gateway.ledger.lock().unwrap();
    let billing = w.billing.state.lock().unwrap();
    let charges = w.mem.charges.lock().unwrap().clone();
    let refunds = w.mem.refunds.lock().unwrap().clone();
    let parked = w.mem.parked.lock().unwrap().clone();
    let is_parked = |kind: &str, id: &str| parked.contains_key(&format!("{kind}#{id}"));

    // 1. One payment per key; one paid invoice.
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut paid: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in ledger.intents.values() {
        by_key.entry(&i.key).or_default().push(&i.id);
        // Kept money: a charge refunded in full leaves the invoice unpaid, to be charged again.
        let t = ledger.totals(&i.id);
        if i.status == "succeeded" && !i.late_success && t.refunded < t.captured {
            paid.entry(&i.invoice_id).or_default().push(&i.id);
        }
    }
    for (key, pis) in by_key.iter().filter(|(_, p)| p.len() > 1) {
        v.push(format!(
            "key {key} made {} payments at the gateway: {pis:?}",
            pis.len()
        ));
    }
    for (invoice, pis) in paid.iter().filter(|(_, p)| p.len() > 1) {
        v.push(format!(
            "invoice {invoice} paid {} times: {pis:?}",
            pis.len()
        ));
    }

    // 2. Never more out than in.
    for i in ledger.intents.values() {
        let t = ledger.totals(&i.id);
        let out: i64 = (ledger.refunds.values())
            .filter(|r| r.pi == i.id && r.status != "failed")
            .map(|r| r.amount)
            .sum();
        if out + t.disputed > t.captured {
            v.push(format!(
                "{}: refunds {out} + disputed {} exceed captured {}",
                i.id, t.disputed, t.captured
            ));
        }
    }

    // 3. paybridge's record equals the gateway's.
    for c in charges.values() {
        if is_parked("charge", c.id.as_str()) {
            continue;
        }
        let intent = (ledger.intents.values()).find(|i| i.charge_id == c.id.as_str());
        let Some(i) = intent else {
            if !matches!(c.status, ChargeStatus::Failed | ChargeStatus::Canceled) {
                v.push(format!(
                    "{} is {} but the gateway has no payment for it",
                    c.id,
                    c.status.as_str()
                ));
            }
            continue;
        };
        let t = ledger.totals(&i.id);
        let expected = match i.status {
            "succeeded" if t.refunded == 0 => ChargeStatus::Succeeded,
            "succeeded" if t.refunded >= t.captured => ChargeStatus::Refunded,
            "succeeded" => ChargeStatus::PartiallyRefunded,
            "processing" => ChargeStatus::Processing,
            _ => ChargeStatus::Failed,
        };
        if c.status != expected || c.gateway_ref.as_deref() != Some(i.id.as_str()) {
            v.push(format!(
                "{} is {} ({:?}); the gateway's {} is {}",
                c.id,
                c.status.as_str(),
                c.gateway_ref,
                i.id,
                i.status
            ));
        }
        if (c.captured, c.refunded, c.disputed()) != (t.captured, t.refunded, t.disputed) {
            v.push(format!(
                "{}: paybridge captured/refunded/disputed {}/{}/{}, the gateway {}/{}/{}",
                c.id,
                c.captured,
                c.refunded,
                c.disputed(),
                t.captured,
                t.refunded,
                t.disputed
            ));
        }
        if c.refund_reserved != 0
            && !refunds
                .values()
                .any(|r| r.charge_id == c.id && r.status == RefundStatus::Pending)
        {
            v.push(format!(
                "{}: {} reserved by no refund in flight",
                c.id, c.refund_reserved
            ));
        }
    }
    for r in refunds.values() {
        if is_parked("refund", r.id.as_str()) {
            continue;
        }
        let at_gateway = r.gateway_ref.as_deref().and_then(|g| ledger.refunds.get(g));
        match (at_gateway, r.status) {
            (Some(g), s) if g.status != s.as_str() => {
                v.push(format!(
                    "{} is {}; the gateway's {} is {}",
                    r.id,
                    s.as_str(),
                    g.id,
                    g.status
                ));
            }
            (None, RefundStatus::Succeeded | RefundStatus::Pending) => {
                v.push(format!(
                    "{} is {} but the gateway has no such refund",
                    r.id,
                    r.status.as_str()
                ));
            }
            _ => {}
        }
    }

    // 4. Billing's view equals paybridge's.
    let seen_status = |id: &str| {
        let view = billing.views.get(id);
        view.and_then(|x| x["status"].as_str().map(str::to_owned))
    };
    for c in charges.values() {
        let Some(view) = billing.views.get(c.id.as_str()) else {
            if c.status != ChargeStatus::Pending || !is_parked("charge", c.id.as_str()) {
                v.push(format!(
                    "billing never heard of {} ({})",
                    c.id,
                    c.status.as_str()
                ));
            }
            continue;
        };
        let seen = (
            view["status"].as_str().unwrap_or(""),
            view["captured"].as_i64(),
            view["refunded"].as_i64(),
            view["disputed"].as_i64(),
        );
        let is = (
            c.status.as_str(),
            Some(c.captured),
            Some(c.refunded),
            Some(c.disputed()),
        );
        if seen != is {
            v.push(format!(
                "billing sees {} as {seen:?}, paybridge has {is:?}",
                c.id
            ));
        }
        for d in &c.disputes {
            let seen = seen_status(d.id.as_str());
            if seen.as_deref() != Some(d.status.as_str()) {
                v.push(format!(
                    "billing sees dispute {} as {seen:?}, paybridge has {}",
                    d.id,
                    d.status.as_str()
                ));
            }
        }
    }
    for r in refunds.values() {
        let seen = seen_status(r.id.as_str());
        if r.status != RefundStatus::Pending && seen.as_deref() != Some(r.status.as_str()) {
            v.push(format!(
                "billing sees {} as {seen:?}, paybridge has {}",
                r.id,
                r.status.as_str()
            ));
        }
    }

    // 5. Every notification delivered, each change under one id.
    for n in w.mem.notifications.lock().unwrap().values() {
        if n.status != DeliveryStatus::Delivered || !billing.accepted.contains_key(n.id.as_str()) {
            v.push(format!(
                "notification {} ({} of {}) is {:?}, billing has it: {}",
                n.id,
                n.event_type,
                n.object_id,
                n.status,
                billing.accepted.contains_key(n.id.as_str())
            ));
        }
    }
    for ((object, ty, version), ids) in billing.carried.iter().filter(|(_, ids)| ids.len() > 1) {
        v.push(format!(
            "{ty} of {object} at version {version} reached billing under {} ids: {ids:?}",
            ids.len()
        ));
    }

    // 6. Nothing in flight without a mark.
    for c in charges.values() {
        let open = matches!(
            c.status,
            ChargeStatus::Pending | ChargeStatus::Processing | ChargeStatus::RequiresAction
        );
        let gateway_says_processing = (ledger.intents.values())
            .any(|i| i.charge_id == c.id.as_str() && i.status == "processing");
        if open && !gateway_says_processing && !is_parked("charge", c.id.as_str()) {
            v.push(format!(
                "{} is stuck {} without needs_attention",
                c.id,
                c.status.as_str()
            ));
        }
    }
    for r in refunds.values() {
        let gateway_pending = r
            .gateway_ref
            .as_deref()
            .and_then(|g| ledger.refunds.get(g))
            .is_some_and(|g| g.status == "pending");
        if r.status == RefundStatus::Pending
            && !gateway_pending
            && !is_parked("refund", r.id.as_str())
        {
            v.push(format!("{} is stuck pending without needs_attention", r.id));
        }
    }
    for e in w.mem.events.lock().unwrap().values() {
        if matches!(e.status, EventStatus::Received | EventStatus::Queued) {
            v.push(format!(
                "event {} ({}) is still {:?}",
                e.event_id, e.event_type, e.status
            ));
        }
    }
    if !w.queue.is_empty() {
        v.push("work is left on the queue or its dead-letter queue".into());
    }

    // 8. A refusal is a refusal: what billing was told was refused did not happen.
    for r in &billing.requests {
        let Some((status, Some(id))) = &r.refused else {
            continue;
        };
        let charge = charges.values().find(|c| c.id.as_str() == id.as_str());
        // A decline that the gateway turned into a success later is news billing is told, not a lie.
        let late = |c: &&paybridge::domain::Charge| {
            (ledger.intents.values()).any(|i| i.charge_id == c.id.as_str() && i.late_success)
        };
        if let Some(c) = charge.filter(|c| c.captured > 0 && !late(c)) {
            v.push(format!(
                "billing was told {} (key {}) was refused ({status}), yet {} took {}",
                r.kind, r.key, c.id, c.captured
            ));
        }
        let refund = refunds.values().find(|x| x.id.as_str() == id.as_str());
        if let Some(x) =
            refund.filter(|x| matches!(x.status, RefundStatus::Succeeded | RefundStatus::Pending))
        {
            v.push(format!(
                "billing was told its refund (key {}) was refused ({status}), yet {} is {}",
                r.key,
                x.id,
                x.status.as_str()
            ));
        }
    }

    // 7. No card number stored.
    for e in w.mem.events.lock().unwrap().values() {
        if contains_pan(&e.payload) {
            v.push(format!("event {} is stored with a card number", e.event_id));
        }
    }
    for n in w.mem.notifications.lock().unwrap().values() {
        if contains_pan(&n.body) {
            v.push(format!("notification {} carries a card number", n.id));
        }
    }
    for c in charges.values() {
        let text = format!("{:?}", c);
        if contains_pan(&text) {
            v.push(format!("{} is stored with a card number", c.id));
        }
    }
    v
}
