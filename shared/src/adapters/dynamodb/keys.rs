//! Every key and index value of the table, in one place (docs/data-model.md is the reference).
//!
//! | item | pk | sk | GSI1 (pk / sk) | GSI2, sparse (pk / sk) |
//! |---|---|---|---|---|
//! | charge | `CHARGE#{id}` | `CHARGE` | `INVOICE#{invoice_id}` / `{created_at:020}#{id}` | `OPEN#charge` / `{updated_at:020}#{id}` while pending or processing, `{required_at:020}#{id}` while requires_action; `ATTENTION#charge` once the reconciler set it aside |
//! | invoice (its charges, for the once-per-invoice guard) | `INVOICE#{invoice_id}` | `INVOICE` | — | — |
//! | refund | `CHARGE#{charge_id}` | `REFUND#{id}` | — | `OPEN#refund` / `{updated_at:020}#{id}` while pending; `ATTENTION#refund` once set aside |
//! | refund pointer | `REFUND#{id}` | `REFUND` | — | — |
//! | dispute pointer (the dispute itself lives on its charge item) | `DISPUTE#{id}` | `DISPUTE` | — | — |
//! | notification | `CHARGE#{charge_id}` | `NOTIFICATION#{id}` | `OUTBOX#pending` / `{next_attempt_at:020}#{id}` while pending | `UNDELIVERED#{status}` / `{created_at:020}#{id}` while pending, failed or exhausted |
//! | notification pointer | `NOTIFICATION#{id}` | `NOTIFICATION` | — | — |
//! | publication (a notification's delivery to the EventBridge bus) | `CHARGE#{charge_id}` | `PUBLICATION#{id}` | `PUBLISH#pending` / `{next_attempt_at:020}#{id}` while pending | — |
//! | gateway reference | `GWREF#{gateway}#{object_id}` | `GWREF` | — | — |
//! | gateway event | `EVENT#{gateway}#{event_id}` | `EVENT` | — | `OPEN#event` / `{received_at:020}#{gateway}#{event_id}` until final |
//! | idempotency | `IDEMPOTENCY#{operation}#{key}` | `IDEMPOTENCY` | — | — |
//! | reconciler resume point | `RECONCILE#resume` | `RECONCILE` | — | — |
//! | billing endpoint health | `ENDPOINT#billing` | `HEALTH` | — | — |
//!
//! Timestamps in sort keys are unix seconds padded to 20 digits, so string order is time order
//! and [`before`] bounds a range query. The `OPEN#…`, `ATTENTION#…`, `UNDELIVERED#…`,
//! `OUTBOX#pending` and `PUBLISH#pending` partitions are sharded: `{base}#{shard:02}` (see
//! [`SHARDS`]).

use crate::domain::{ChargeId, DeliveryStatus, DisputeId, Gateway, NotificationId, RefundId};

/// A `(pk, sk)` pair.
pub type Key = (String, String);

/// Where a query reads: the table itself or one of its global secondary indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Table,
    /// Invoices (`INVOICE#…`) and the outboxes (`OUTBOX#pending`, `PUBLISH#pending`, by next
    /// attempt).
    Gsi1,
    /// Work in flight (`OPEN#…`) and notifications billing does not have (`UNDELIVERED#…`, by
    /// creation), sparse.
    Gsi2,
}

impl Index {
    /// The index name for the query (none for the table).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Index::Table => None,
            Index::Gsi1 => Some("GSI1"),
            Index::Gsi2 => Some("GSI2"),
        }
    }

    /// The partition and sort key attributes.
    pub fn key_attributes(self) -> (&'static str, &'static str) {
        match self {
            Index::Table => ("pk", "sk"),
            Index::Gsi1 => ("gsi1pk", "gsi1sk"),
            Index::Gsi2 => ("gsi2pk", "gsi2sk"),
        }
    }
}

/// How many pages a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// One page of at most this many items (DynamoDB's `Limit`): a batch of work to look at.
    OnePage(i32),
    /// Pages until this many items or more have been read (no `Limit`; the last page is kept
    /// whole).
    AtLeast(usize),
    /// Pages of at most the items still wanted, until this many have been read or the partition
    /// ends: one shard's share of the first `n` items of a sharded partition.
    UpTo(usize),
    /// Every page.
    All,
}

/// Which items of a partition a query reads, by sort key.
#[derive(Debug, Clone, Copy)]
pub enum SortRange<'a> {
    All,
    BeginsWith(&'a str),
    /// Time-ordered sort keys of items last moved before this unix second.
    Before(i64),
    /// Time-ordered sort keys from this unix second on.
    Since(i64),
    /// Time-ordered sort keys after `after` (exclusive: a cursor, the last sort key of the page
    /// before) and before this unix second.
    After {
        after: &'a str,
        before: i64,
    },
}

/// The smallest sort key greater than `cursor` (string order): where the page after it starts.
pub fn just_after(cursor: &str) -> String {
    format!("{cursor}\u{0}")
}

/// Upper bound of a time-ordered sort-key range (`gsi*sk < before(t)` = last moved before `t`).
pub fn before(unix_secs: i64) -> String {
    format!("{unix_secs:020}")
}

/// A time-ordered sort key: `{unix_secs:020}#{rest}` (when the item was created or last moved).
pub fn time_ordered(unix_secs: i64, rest: &str) -> String {
    format!("{unix_secs:020}#{rest}")
}

/// An item in its charge's partition: `CHARGE#{charge}` / `{prefix}{id}`.
fn beside_charge(charge: &ChargeId, prefix: &str, id: &str) -> Key {
    (charge_pk(charge), format!("{prefix}{id}"))
}

/// A lookup pointer by id: `{prefix}{id}` / `{prefix without its #}` (`REFUND#rf_…` / `REFUND`).
fn pointer(prefix: &str, id: &str) -> Key {
    (
        format!("{prefix}{id}"),
        prefix.trim_end_matches('#').to_owned(),
    )
}

// ---- the partitions of the sparse indexes: work in flight (GSI2) and the outbox (GSI1)
//
// Each is sharded: an item's partition is `{base}#{shard:02}`, the shard chosen by the item's
// own id (`OPEN#charge#07`), so every rewrite of an item lands in the same partition and no
// partition takes more than about 1/SHARDS of the writes (docs/data-model.md, *Sharding*).
// Readers query every shard and the unsharded `{base}` that releases before sharding wrote
// ([`every_shard`]); the next write of such an item moves it into its shard.

/// How many shards each sparse partition has. Changing it moves items between partitions on their
/// next write, and readers must then read the old shards too: treat it as fixed.
pub const SHARDS: u32 = 32;

/// The shard of the item with id `id`: FNV-1a (32-bit) of its bytes, modulo [`SHARDS`]. Stable
/// across releases and platforms (no `std` hasher), so a reader finds what any writer wrote.
pub fn shard_of(id: &str) -> u32 {
    let hash = (id.bytes()).fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % SHARDS
}

/// The partition of the item with id `id` in the sharded partition `base`: `{base}#{shard:02}`.
pub fn sharded(base: &str, id: &str) -> String {
    shard_key(base, shard_of(id))
}

fn shard_key(base: &str, shard: u32) -> String {
    format!("{base}#{shard:02}")
}

/// Every partition a reader of `base` queries: its [`SHARDS`] shards, then the unsharded `base`
/// itself, where items written before sharding stay until their next write.
pub fn every_shard(base: &str) -> Vec<String> {
    (0..SHARDS)
        .map(|shard| shard_key(base, shard))
        .chain([base.to_owned()])
        .collect()
}

/// Charges whose outcome is still open (pending, processing), or that wait for their customer
/// (requires_action: the reconciler expires them). Sharded by charge id.
pub const OPEN_CHARGES: &str = "OPEN#charge";
/// Refunds whose outcome is still open (pending). Sharded by refund id.
pub const OPEN_REFUNDS: &str = "OPEN#refund";
/// Events not yet processed (received or queued). Sharded by the gateway's event id.
pub const OPEN_EVENTS: &str = "OPEN#event";
/// Charges set aside for a person by the reconciler (still pending or processing).
pub const ATTENTION_CHARGES: &str = "ATTENTION#charge";
/// Refunds set aside for a person by the reconciler (still pending).
pub const ATTENTION_REFUNDS: &str = "ATTENTION#refund";
/// Notifications whose attempts continue (pending), by when the next one is due. Sharded by
/// notification id.
pub const OUTBOX_PENDING: &str = "OUTBOX#pending";

/// The GSI1 partition of publications not yet on the bus, by next attempt (sparse). Sharded by
/// publication (notification) id.
pub const PUBLISH_PENDING: &str = "PUBLISH#pending";

/// The (unsharded base of the) GSI2 partition of notifications of `status` that billing does not
/// have, by creation time (`UNDELIVERED#pending`, `#failed`, `#exhausted`); none for delivered
/// ones. Sharded by notification id.
pub fn undelivered_gsi2pk(status: DeliveryStatus) -> Option<String> {
    (status != DeliveryStatus::Delivered).then(|| format!("UNDELIVERED#{}", status.as_str()))
}

// ---- charges

pub const CHARGE_SK: &str = "CHARGE";

/// The partition of a charge, its refunds and its notifications.
pub fn charge_pk(id: &ChargeId) -> String {
    format!("CHARGE#{id}")
}

pub fn charge(id: &ChargeId) -> Key {
    (charge_pk(id), CHARGE_SK.to_owned())
}

/// The invoice record: the ids of its charges and a version every new charge moves.
pub fn invoice(invoice_id: &str) -> Key {
    (format!("INVOICE#{invoice_id}"), "INVOICE".to_owned())
}

pub fn invoice_gsi1pk(invoice_id: &str) -> String {
    format!("INVOICE#{invoice_id}")
}

// ---- refunds

pub const REFUND_SK_PREFIX: &str = "REFUND#";

pub fn refund(charge: &ChargeId, id: &RefundId) -> Key {
    beside_charge(charge, REFUND_SK_PREFIX, id.as_str())
}

/// The pointer `DISPUTE#{id}` / `DISPUTE` → charge id, for lookup by dispute id.
pub fn dispute_pointer(id: &DisputeId) -> Key {
    pointer("DISPUTE#", id.as_str())
}

/// The pointer `REFUND#{id}` / `REFUND` → charge id, for lookup by refund id.
pub fn refund_pointer(id: &RefundId) -> Key {
    pointer(REFUND_SK_PREFIX, id.as_str())
}

// ---- notifications (the outbox)

pub const NOTIFICATION_SK_PREFIX: &str = "NOTIFICATION#";

pub fn notification(charge: &ChargeId, id: &NotificationId) -> Key {
    beside_charge(charge, NOTIFICATION_SK_PREFIX, id.as_str())
}

/// A notification's publication on the bus, beside its notification: `CHARGE#{charge}` /
/// `PUBLICATION#{id}` (the work message names both, so no pointer is needed).
pub fn publication(charge: &ChargeId, id: &NotificationId) -> Key {
    beside_charge(charge, "PUBLICATION#", id.as_str())
}

/// The pointer `NOTIFICATION#{id}` / `NOTIFICATION` → charge id, for lookup by notification id.
pub fn notification_pointer(id: &NotificationId) -> Key {
    pointer(NOTIFICATION_SK_PREFIX, id.as_str())
}

/// The one record of the billing endpoint's health (consecutive failures, last success).
pub fn billing_endpoint_health() -> Key {
    ("ENDPOINT#billing".to_owned(), "HEALTH".to_owned())
}

// ---- gateway references

/// The pointer from a gateway's object id to our charge or refund.
pub fn gateway_ref(gateway: Gateway, reference: &str) -> Key {
    (format!("GWREF#{gateway}#{reference}"), "GWREF".to_owned())
}

// ---- gateway events

pub fn event(gateway: Gateway, event_id: &str) -> Key {
    (format!("EVENT#{gateway}#{event_id}"), "EVENT".to_owned())
}

/// The GSI2 sort key of an open event: received time, gateway and event id.
pub fn open_event_gsi2sk(received_at: i64, gateway: Gateway, event_id: &str) -> String {
    time_ordered(received_at, &format!("{gateway}#{event_id}"))
}

// ---- the reconciler's resume point

/// Where the last reconciler run that ran out of time stopped, per kind of work in flight.
pub fn reconcile_resume() -> Key {
    ("RECONCILE#resume".to_owned(), "RECONCILE".to_owned())
}

// ---- idempotency

pub fn idempotency(operation: &str, key: &str) -> Key {
    (
        format!("IDEMPOTENCY#{operation}#{key}"),
        "IDEMPOTENCY".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CH: &str = "ch_0190b1c2d3e4f5a6b7c8d9e0f1a2b3c4";
    const RF: &str = "rf_0190b1c2d3e4f5a6b7c8d9e0f1a2b3c4";
    const NTF: &str = "ntf_0190b1c2d3e4f5a6b7c8d9e0f1a2b3c4";

    fn pair(pk: &str, sk: &str) -> Key {
        (pk.to_owned(), sk.to_owned())
    }

    #[test]
    fn a_charge_lives_in_its_own_partition_and_is_found_by_invoice_and_while_open() {
        let ch = ChargeId::parse(CH).unwrap();
        assert_eq!(charge(&ch), pair(&format!("CHARGE#{CH}"), "CHARGE"));
        assert_eq!(charge_pk(&ch), format!("CHARGE#{CH}"));
        assert_eq!(invoice_gsi1pk("inv_1"), "INVOICE#inv_1");
        assert_eq!(OPEN_CHARGES, "OPEN#charge");
    }

    #[test]
    fn a_refund_lives_beside_its_charge_with_a_pointer_by_its_own_id() {
        let (ch, rf) = (ChargeId::parse(CH).unwrap(), RefundId::parse(RF).unwrap());
        let key = refund(&ch, &rf);
        assert_eq!(key, pair(&format!("CHARGE#{CH}"), &format!("REFUND#{RF}")));
        assert!(key.1.starts_with(REFUND_SK_PREFIX));
        assert_eq!(refund_pointer(&rf), pair(&format!("REFUND#{RF}"), "REFUND"));
        assert_eq!(OPEN_REFUNDS, "OPEN#refund");
    }

    #[test]
    fn a_notification_lives_beside_its_charge_and_in_the_outbox_while_pending() {
        let ch = ChargeId::parse(CH).unwrap();
        let n = NotificationId::parse(NTF).unwrap();
        let key = notification(&ch, &n);
        assert_eq!(key.1, format!("NOTIFICATION#{NTF}"));
        assert!(key.1.starts_with(NOTIFICATION_SK_PREFIX) && key.0 == charge_pk(&ch));
        let pointer = notification_pointer(&n);
        assert_eq!(
            pointer,
            pair(&format!("NOTIFICATION#{NTF}"), "NOTIFICATION")
        );
        assert_eq!(OUTBOX_PENDING, "OUTBOX#pending");
        assert_eq!(PUBLISH_PENDING, "PUBLISH#pending");
        let undelivered = |s| undelivered_gsi2pk(s).unwrap_or_default();
        assert_eq!(undelivered(DeliveryStatus::Pending), "UNDELIVERED#pending");
        assert_eq!(undelivered(DeliveryStatus::Failed), "UNDELIVERED#failed");
        assert_eq!(
            undelivered(DeliveryStatus::Exhausted),
            "UNDELIVERED#exhausted"
        );
        assert_eq!(undelivered_gsi2pk(DeliveryStatus::Delivered), None);
        assert_eq!(
            billing_endpoint_health(),
            pair("ENDPOINT#billing", "HEALTH")
        );
    }

    #[test]
    fn gateway_references_events_and_idempotency_records_have_keys_of_their_own() {
        let gwref = gateway_ref(Gateway::Adyen, "8815");
        assert_eq!(gwref, pair("GWREF#adyen#8815", "GWREF"));
        let evt = event(Gateway::Stripe, "evt_1");
        assert_eq!(evt, pair("EVENT#stripe#evt_1", "EVENT"));
        assert_eq!(OPEN_EVENTS, "OPEN#event");
        let open = open_event_gsi2sk(3, Gateway::Standard, "msg_1");
        assert_eq!(open, "00000000000000000003#standard#msg_1");
        let idem = idempotency("create_charge", "k-1");
        assert_eq!(idem, pair("IDEMPOTENCY#create_charge#k-1", "IDEMPOTENCY"));
    }

    #[test]
    fn an_items_shard_is_fnv_1a_of_its_id_and_never_changes_between_releases() {
        // FNV-1a's published test vectors ("" → 0x811c9dc5, "a" → 0xe40c292c, "foobar" →
        // 0xbf9cf968), modulo 32: a different hash would strand every item written before it.
        assert_eq!(SHARDS, 32);
        assert_eq!(shard_of(""), 0x811c_9dc5 % 32);
        assert_eq!(shard_of("a"), 0xe40c_292c % 32);
        assert_eq!(shard_of("foobar"), 0xbf9c_f968 % 32);
        assert_eq!(shard_of(CH), 23);
        assert_eq!(shard_of(RF), 30);
        assert_eq!(shard_of(NTF), 16);
        assert_eq!(sharded(OPEN_CHARGES, CH), "OPEN#charge#23");
        assert_eq!(sharded(OPEN_EVENTS, "evt_1"), "OPEN#event#02");
        assert_eq!(sharded(OUTBOX_PENDING, NTF), "OUTBOX#pending#16");
    }

    #[test]
    fn ids_spread_over_every_shard_and_readers_also_read_the_unsharded_partition() {
        let mut used = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let shard = shard_of(ChargeId::generate().as_str());
            assert!(shard < SHARDS);
            used.insert(shard);
        }
        assert_eq!(used.len(), SHARDS as usize, "2000 ids miss no shard");
        let all = every_shard(OPEN_REFUNDS);
        assert_eq!(all.len(), SHARDS as usize + 1);
        assert_eq!(all[0], "OPEN#refund#00");
        assert_eq!(all[31], "OPEN#refund#31");
        assert_eq!(all[32], "OPEN#refund", "items written before sharding");
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        assert!(all.contains(&sharded(OPEN_REFUNDS, RF)));
    }

    #[test]
    fn time_ordered_sort_keys_compare_as_their_times_do() {
        assert_eq!(
            time_ordered(1_700_000_000, CH),
            format!("00000000001700000000#{CH}")
        );
        assert!(time_ordered(99, CH) < before(100));
        assert!(time_ordered(100, CH) > before(100));
        assert!(time_ordered(9, CH) < time_ordered(10, CH));
        // A cursor's successor sorts after it and before every later key, even one it prefixes.
        let cursor = open_event_gsi2sk(5, Gateway::Stripe, "evt_1");
        assert!(just_after(&cursor) > cursor);
        assert!(just_after(&cursor) < open_event_gsi2sk(5, Gateway::Stripe, "evt_10"));
        assert!(just_after(&cursor) < open_event_gsi2sk(5, Gateway::Stripe, "evt_2"));
    }
}
