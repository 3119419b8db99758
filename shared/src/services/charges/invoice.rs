//! An invoice is charged once unless billing says otherwise: the invoice record lists every
//! charge of its invoice, and a new charge is written only together with that list at the
//! version its creator read — so the check "does a charge of this invoice hold it?" and the write
//! are one conditional transaction, and of two concurrent requests with different keys at most
//! one makes a charge.

use crate::domain::{Charge, ChargeId, ChargeStatus};
use crate::error::{Code, Error};
use crate::ports::{ChargeInserted, ChargeStore, InvoiceCharges};
use crate::telemetry::Metric;

/// Where [`place`] left the charge.
pub(super) enum Placed {
    /// Stored now, listed on its invoice.
    New,
    /// An earlier request with this key stored it.
    Resumed,
}

/// How often [`place`] reads the invoice again after another charge for it was created between
/// its read and its write. Each lost round means another request won one, and a request that
/// may not add a charge then finds the winner and stops: more rounds only serve a burst of
/// `allow_additional_charge` requests for one invoice.
const INVOICE_ROUNDS: usize = 5;

/// Stores `charge` (pending) and lists it on its invoice, unless a charge of the invoice holds
/// it and `charge.additional` is not set: then 409 `invoice_already_charged` with that charge's
/// id. The write is conditional on the invoice record being as read, so of two concurrent
/// requests for one invoice at most one passes.
pub(super) async fn place(store: &impl ChargeStore, charge: &Charge) -> Result<Placed, Error> {
    for _ in 0..INVOICE_ROUNDS {
        let listed = store.invoice_charges(&charge.invoice_id).await?;
        if listed.charge_ids.contains(&charge.id) {
            return Ok(Placed::Resumed);
        }
        if !charge.additional
            && let Some(holder) = holding_charge(store, &listed).await?
        {
            tracing::warn!(invoice_id = %charge.invoice_id, holder = %holder.id, status = holder.status.as_str(), "a new charge for an invoice that already has one refused");
            crate::telemetry::Metrics::new("charges")
                .dimension("Gateway", charge.gateway.as_str())
                .count(Metric::InvoiceAlreadyCharged)
                .emit();
            return Err(Error::new(
                Code::InvoiceAlreadyCharged,
                format!(
                    "invoice `{}` already has charge `{}` ({}); {}",
                    charge.invoice_id,
                    holder.id,
                    holder.status.as_str(),
                    next_step(holder.status)
                ),
            )
            .with_charge_id(holder.id.to_string()));
        }
        match store.insert_charge(charge, &listed).await? {
            ChargeInserted::Done => return Ok(Placed::New),
            ChargeInserted::Exists => return Ok(Placed::Resumed),
            ChargeInserted::InvoiceMoved => continue,
        }
    }
    Err(Error::new(
        Code::ConcurrentUpdate,
        "other charges for this invoice were being created at the same moment; retry with the same Idempotency-Key",
    )
    .with_retry_after(1))
}

/// What billing can do about the charge that holds its invoice.
fn next_step(status: ChargeStatus) -> &'static str {
    if status.outcome_open() {
        "its outcome is still open and it may yet succeed: follow it (`GET /charges/{id}`) before charging again"
    } else if matches!(
        status,
        ChargeStatus::Authorized | ChargeStatus::CaptureFailed
    ) {
        "its funds are held: capture or cancel it; to charge the invoice beside it on purpose, send `allow_additional_charge: true`"
    } else {
        "to charge it again on purpose (a partial payment, a top-up), send `allow_additional_charge: true` with a new Idempotency-Key"
    }
}

/// The newest charge of the invoice that holds it, if any: read strongly consistent, newest
/// first, eight at a time, stopping at the first that holds it.
async fn holding_charge(
    store: &impl ChargeStore,
    listed: &InvoiceCharges,
) -> Result<Option<Charge>, Error> {
    let newest_first: Vec<&ChargeId> = listed.charge_ids.iter().rev().collect();
    for ids in newest_first.chunks(8) {
        let mut reads = Vec::with_capacity(ids.len());
        for id in ids {
            reads.push(store.get_charge(id));
        }
        for charge in futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
        {
            if charge.status.holds_its_invoice() {
                return Ok(Some(charge));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::{DisputeId, Notification, charge::example};
    use crate::ports::StoreError;
    use crate::services::fakes::MemStore;

    /// An earlier charge of `inv_1`, stored through the API's path, now in `status`.
    async fn earlier(store: &MemStore, status: ChargeStatus) -> Charge {
        let mut c = example(1);
        store.put_charge(&c).await;
        c.status = status;
        c.version += 1;
        store.save_charge(&c, &[]).await.unwrap();
        c
    }

    fn new_charge(additional: bool) -> Charge {
        Charge {
            additional,
            ..example(2)
        }
    }

    #[tokio::test]
    async fn a_charge_that_took_holds_or_may_take_money_keeps_its_invoice_from_a_second_charge() {
        for status in ChargeStatus::ALL {
            let store = MemStore::default();
            let holder = earlier(&store, status).await;
            let result = place(&store, &new_charge(false)).await;
            if status.holds_its_invoice() {
                let err = result.err().expect("refused");
                assert_eq!(
                    (err.kind().status(), err.code(), err.charge_id()),
                    (409, "invoice_already_charged", Some(holder.id.as_str())),
                    "{status:?}"
                );
                assert_eq!(store.charges.lock().unwrap().len(), 1, "nothing stored");
            } else {
                assert!(matches!(result, Ok(Placed::New)), "{status:?}");
            }
            // Billing says so: a second charge is made whatever the first one's status.
            let store = MemStore::default();
            earlier(&store, status).await;
            let placed = place(&store, &new_charge(true)).await.unwrap();
            assert!(matches!(placed, Placed::New), "{status:?}");
            assert_eq!(
                store
                    .invoice_charges("inv_1")
                    .await
                    .unwrap()
                    .charge_ids
                    .len(),
                2
            );
        }
        let holding: Vec<_> = (ChargeStatus::ALL.into_iter())
            .filter(|s| s.holds_its_invoice())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            holding,
            [
                "pending",
                "requires_action",
                "processing",
                "authorized",
                "succeeded",
                "partially_refunded",
                "capture_failed"
            ]
        );
    }

    #[tokio::test]
    async fn the_newest_holder_is_named_and_an_additional_charge_also_holds_the_invoice() {
        let store = MemStore::default();
        earlier(&store, ChargeStatus::Failed).await;
        let first = earlier(&store, ChargeStatus::Succeeded).await;
        let top_up = new_charge(true);
        place(&store, &top_up).await.unwrap();
        let err = place(&store, &new_charge(false)).await.err().unwrap();
        assert_eq!(err.charge_id(), Some(top_up.id.as_str()), "the newest");
        assert!(err.message().contains("still open"), "{}", err.message());
        assert_ne!(first.id, top_up.id);
    }

    #[tokio::test]
    async fn the_same_key_again_resumes_its_own_charge_instead_of_being_refused_by_it() {
        let store = MemStore::default();
        let charge = new_charge(false);
        assert!(matches!(place(&store, &charge).await, Ok(Placed::New)));
        // A crashed request's retry: its own pending charge does not hold the invoice against it.
        assert!(matches!(place(&store, &charge).await, Ok(Placed::Resumed)));
    }

    #[tokio::test]
    async fn an_invoice_charged_before_the_invoice_record_existed_is_read_from_its_charges() {
        let store = MemStore::default();
        let mut old = example(1);
        old.status = ChargeStatus::Succeeded;
        store
            .charges
            .lock()
            .unwrap()
            .insert(old.id.clone(), old.clone());
        let err = place(&store, &new_charge(false)).await.err().unwrap();
        assert_eq!(err.charge_id(), Some(old.id.as_str()));
        let top_up = new_charge(true);
        place(&store, &top_up).await.unwrap();
        let listed = store.invoice_charges("inv_1").await.unwrap();
        assert_eq!(
            (listed.charge_ids, listed.version),
            (vec![old.id, top_up.id], 1),
            "the record starts with the charges it found"
        );
    }

    /// A store where another request creates `competitor` between this one's read of the
    /// invoice and its write.
    struct Racing {
        inner: MemStore,
        competitor: Mutex<Option<Charge>>,
    }

    impl ChargeStore for Racing {
        async fn invoice_charges(&self, invoice_id: &str) -> Result<InvoiceCharges, StoreError> {
            self.inner.invoice_charges(invoice_id).await
        }
        async fn insert_charge(
            &self,
            charge: &Charge,
            seen: &InvoiceCharges,
        ) -> Result<ChargeInserted, StoreError> {
            let competitor = self.competitor.lock().unwrap().take();
            if let Some(c) = competitor {
                self.inner.put_charge(&c).await;
            }
            self.inner.insert_charge(charge, seen).await
        }
        async fn get_charge(&self, id: &ChargeId) -> Result<Option<Charge>, StoreError> {
            self.inner.get_charge(id).await
        }
        async fn save_charge(&self, c: &Charge, n: &[Notification]) -> Result<(), StoreError> {
            self.inner.save_charge(c, n).await
        }
        async fn charge_of_dispute(&self, id: &DisputeId) -> Result<Option<Charge>, StoreError> {
            self.inner.charge_of_dispute(id).await
        }
        async fn charges_for_invoice(&self, invoice_id: &str) -> Result<Vec<Charge>, StoreError> {
            self.inner.charges_for_invoice(invoice_id).await
        }
    }

    #[tokio::test]
    async fn a_charge_created_between_the_read_and_the_write_is_found_on_the_second_read() {
        let competitor = new_charge(false);
        let store = Racing {
            inner: MemStore::default(),
            competitor: Mutex::new(Some(competitor.clone())),
        };
        let err = place(&store, &new_charge(false)).await.err().unwrap();
        assert_eq!(
            (err.code(), err.charge_id()),
            ("invoice_already_charged", Some(competitor.id.as_str()))
        );
        assert_eq!(store.inner.charges.lock().unwrap().len(), 1, "one charge");

        // An additional charge loses the round too, and is written on the next.
        let store = Racing {
            inner: MemStore::default(),
            competitor: Mutex::new(Some(new_charge(false))),
        };
        assert!(matches!(
            place(&store, &new_charge(true)).await,
            Ok(Placed::New)
        ));
        assert_eq!(
            store.inner.invoice_charges("inv_1").await.unwrap().version,
            2
        );
    }
}
