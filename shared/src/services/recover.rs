//! Use cases: send billing notifications again after billing was down or refused them — one by
//! id (support's resend), or every one not delivered since a time (recovery after an outage) —
//! and list the ones billing does not have, across all charges.
//!
//! Sending again starts a **fresh series**: the whole schedule once more, from an immediate
//! attempt. The notification keeps its id (billing deduplicates on it), its attempts so far and
//! its last error. A chain of messages still waiting for the old series is not doubled: its
//! next message finds the series replaced and is dropped (by the delivery use case).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::domain::{DeliveryStatus, Notification, NotificationId, WorkMessage};
use crate::error::{Code, Error};
use crate::ports::{CreatedFrom, NotificationStore, StoreError, WorkQueue};

/// Writes tried before giving up on a notification being changed concurrently.
const SAVE_TRIES: usize = 5;

/// Notifications read per page when listing across charges.
const PAGE: i32 = 100;

/// Support's "re-send by id": puts the notification back to `pending` with a fresh series
/// started at `now` (keeping its attempts and last error, so the log still shows what happened)
/// and queues the series' first attempt.
///
/// Works for every status: a failed or exhausted notification gets the whole schedule again; a
/// pending one a fresh series now (the chain waiting for its old series is dropped at its next
/// message); a delivered one is sent again with the same `webhook-id` — billing, which
/// deduplicates on that id, may ignore it, which is the point of resending a notification billing
/// says it never processed only after checking its own dedupe records.
///
/// If queueing fails after the record was written, the error says so and the notification is
/// `pending` with its first attempt due: the outbox sweep queues it (or run this again).
pub async fn resend(
    store: &impl NotificationStore,
    queue: &impl WorkQueue,
    id: &NotificationId,
    now: i64,
) -> Result<Notification, Error> {
    let n = start_series(store, queue, id, now, Resend::Always).await?;
    n.ok_or_else(|| Error::internal("a resend skipped a notification", None))
}

/// Which notifications [`start_series`] sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    Always,
    /// Not one billing has meanwhile (a recovery reads an index that may lag).
    UnlessDelivered,
}

/// Starts a fresh series of notification `id` and queues its first attempt; `None` if `which`
/// skips it.
async fn start_series(
    store: &impl NotificationStore,
    queue: &impl WorkQueue,
    id: &NotificationId,
    now: i64,
    which: Resend,
) -> Result<Option<Notification>, Error> {
    for _ in 0..SAVE_TRIES {
        let mut n = (store.get_notification(id).await?).ok_or_else(|| {
            Error::new(
                Code::NotificationNotFound,
                format!("notification {id} does not exist"),
            )
        })?;
        let was = n.status;
        if which == Resend::UnlessDelivered && was == DeliveryStatus::Delivered {
            return Ok(None);
        }
        n.status = DeliveryStatus::Pending;
        n.series = n.series.next(now);
        n.version += 1;
        match store.save_notification(&n).await {
            Ok(()) => {
                let first = WorkMessage::deliver_notification(id, n.series.number, 1);
                queue.send(&first, Duration::ZERO).await?;
                tracing::info!(notification_id = %id, event_type = %n.event_type, was = was.as_str(), series = n.series.number, attempts = n.attempts, "notification queued for re-sending with a fresh series");
                return Ok(Some(n));
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::new(
        Code::ConcurrentUpdate,
        "the notification is being changed concurrently; retry",
    )
    .with_retry_after(1))
}

/// What a recovery did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Recovered {
    /// Notifications sent again, by the status they had.
    pub resent: BTreeMap<&'static str, usize>,
    /// The ids sent again, oldest first within each status.
    pub ids: Vec<NotificationId>,
}

impl Recovered {
    pub fn total(&self) -> usize {
        self.ids.len()
    }
}

/// Re-sends every notification billing does not have (pending, failed, exhausted) created at or
/// after `since`, across all charges, each with a fresh series started at `now` (see [`resend`]).
/// Pending ones are taken first, so one that moves from failed to pending during the run is not
/// sent twice; each id is sent at most once per run.
pub async fn recover(
    store: &impl NotificationStore,
    queue: &impl WorkQueue,
    since: i64,
    now: i64,
) -> Result<Recovered, Error> {
    let mut done = Recovered::default();
    let mut seen = HashSet::new();
    for status in DeliveryStatus::UNDELIVERED {
        let mut resent = 0;
        let mut last: Option<Notification> = None;
        loop {
            let from = last
                .as_ref()
                .map_or(CreatedFrom::Since(since), CreatedFrom::After);
            let page = store.undelivered_notifications(status, from, PAGE).await?;
            for n in &page {
                if !seen.insert(n.id.clone()) {
                    continue;
                }
                if start_series(store, queue, &n.id, now, Resend::UnlessDelivered)
                    .await?
                    .is_some()
                {
                    done.ids.push(n.id.clone());
                    resent += 1;
                }
            }
            let full = page.len() >= PAGE as usize;
            last = page.into_iter().last();
            if !full || last.is_none() {
                break;
            }
        }
        if resent > 0 {
            done.resent.insert(status.as_str(), resent);
        }
    }
    tracing::info!(since, resent = done.total(), by_status = ?done.resent, "recovery: notifications sent again");
    Ok(done)
}

/// The notifications billing does not have, across all charges: of `statuses`, created at or
/// after `since`, oldest first within each status, at most `limit` in all.
pub async fn undelivered(
    store: &impl NotificationStore,
    statuses: &[DeliveryStatus],
    since: i64,
    limit: usize,
) -> Result<Vec<Notification>, Error> {
    let mut out = Vec::new();
    for &status in statuses {
        let mut last: Option<Notification> = None;
        while out.len() < limit {
            let from = last
                .as_ref()
                .map_or(CreatedFrom::Since(since), CreatedFrom::After);
            let want = (limit - out.len()).min(PAGE as usize) as i32;
            let page = store.undelivered_notifications(status, from, want).await?;
            let full = page.len() >= want as usize;
            last = page.last().cloned();
            out.extend(page.into_iter().filter(|n| n.status == status));
            if !full || last.is_none() {
                break;
            }
        }
    }
    out.truncate(limit);
    Ok(out)
}
