//! The charges port: charge records, and each invoice's list of its charges — the record that
//! makes "an invoice is charged once unless billing says otherwise" race-free.

use std::future::Future;

use super::StoreError;
use crate::domain::{Charge, ChargeId, DisputeId, Notification};

/// The charges created for one invoice, oldest first, as its invoice record lists them, and
/// that record's version (0: none yet). A new charge is written only together with an update of
/// this list at the version its creator read, so two creators of charges for one invoice cannot
/// both miss each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceCharges {
    pub charge_ids: Vec<ChargeId>,
    pub version: u64,
}

/// What writing a new charge found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeInserted {
    /// The charge is stored and listed on its invoice.
    Done,
    /// A charge with this id exists already (a crashed attempt with the same key stored it).
    Exists,
    /// Another charge for the invoice was created since the list was read: read it again.
    InvoiceMoved,
}

/// Charge records.
pub trait ChargeStore: Send + Sync {
    /// The charges of `invoice_id` as its invoice record lists them (strongly consistent). An
    /// invoice charged before the record existed is listed from the invoice index at version 0,
    /// and [`ChargeStore::insert_charge`] writes that list into the new record.
    fn invoice_charges(
        &self,
        invoice_id: &str,
    ) -> impl Future<Output = Result<InvoiceCharges, StoreError>> + Send;

    /// Writes a new charge and appends its id to its invoice's list, all or nothing, provided
    /// the list is still at `seen.version`.
    fn insert_charge(
        &self,
        charge: &Charge,
        seen: &InvoiceCharges,
    ) -> impl Future<Output = Result<ChargeInserted, StoreError>> + Send;

    fn get_charge(
        &self,
        id: &ChargeId,
    ) -> impl Future<Output = Result<Option<Charge>, StoreError>> + Send;

    /// Replaces a charge whose stored version is `charge.version - 1` (the caller bumped it), and
    /// records the gateway reference → charge pointer and the `notifications` the change causes
    /// with it, all or nothing. `Conflict` if someone wrote first.
    fn save_charge(
        &self,
        charge: &Charge,
        notifications: &[Notification],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The charge a dispute of ours is on (disputes live on their charge).
    fn charge_of_dispute(
        &self,
        id: &DisputeId,
    ) -> impl Future<Output = Result<Option<Charge>, StoreError>> + Send;

    /// The charges of an invoice, oldest first.
    fn charges_for_invoice(
        &self,
        invoice_id: &str,
    ) -> impl Future<Output = Result<Vec<Charge>, StoreError>> + Send;
}
