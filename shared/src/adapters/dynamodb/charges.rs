//! Charge records (keys in [`super::keys`]): found by id, by invoice through GSI1, and by
//! gateway reference through the pointer written in the same transaction as the charge
//! (`gateway_refs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::keys::{Index, Paging, SortRange};
use super::{Item, Table, TableError, Write, gateway_refs, keys, outbox, pointer_item};
use crate::domain::Gateway;
use crate::domain::{
    ActionDetails, Charge, ChargeId, ChargeStatus, CustomerAction, Dispute, DisputeId,
    DisputeStatus, Failure, Money, Notification,
};
use crate::ports::{ChargeInserted, ChargeStore, GatewayObject, InvoiceCharges, StoreError};

#[skip_serializing_none]
#[derive(Serialize, Deserialize)]
struct ChargeItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    /// GSI2 (sparse): set while the charge is in flight — its outcome open (pending, processing)
    /// or waiting for its customer (requires_action) — or set aside for a person.
    gsi2pk: Option<String>,
    gsi2sk: Option<String>,
    id: String,
    invoice_id: String,
    amount: i64,
    currency: String,
    gateway: Gateway,
    gateway_ref: Option<String>,
    status: ChargeStatus,
    captured: i64,
    refunded: i64,
    refund_reserved: i64,
    failure: Option<Failure>,
    payment_method: String,
    customer: Option<String>,
    capture: bool,
    /// Created with `allow_additional_charge` (absent: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    additional: bool,
    description: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    version: u64,
    created_at: i64,
    updated_at: i64,
    /// Derived: captured − refunded − refund_reserved − disputed, and 0 while a dispute blocks
    /// refunds. Kept in the item so a refund can reserve its amount with one conditional update
    /// (`refundable >= :amount`): DynamoDB conditions cannot do arithmetic.
    #[serde(default)]
    refundable: i64,
    status_at: Option<i64>,
    /// The charge's disputes, kept on the charge so a dispute and the refundable amount it
    /// changes move in one conditional write (see docs/data-model.md).
    #[serde(default)]
    disputes: Vec<DisputeItem>,
    /// While `requires_action`: what the customer must do.
    customer_action: Option<ActionItem>,
}

/// A charge's customer action. The gateway's JSON (`next_action`, Adyen's `action`) is kept as
/// the text the gateway sent, opaque to paybridge.
#[skip_serializing_none]
#[derive(Serialize, Deserialize)]
struct ActionItem {
    /// `stripe` or `adyen`.
    kind: String,
    required_at: i64,
    payment_intent: Option<String>,
    client_secret: Option<String>,
    payment_method: Option<String>,
    next_action: Option<String>,
    reason: Option<String>,
    result_code: Option<String>,
    action: Option<String>,
}

impl ActionItem {
    fn of(a: &CustomerAction) -> ActionItem {
        let json = |v: &serde_json::Value| v.to_string();
        let empty = ActionItem {
            kind: String::new(),
            required_at: a.required_at,
            payment_intent: None,
            client_secret: None,
            payment_method: None,
            next_action: None,
            reason: None,
            result_code: None,
            action: None,
        };
        match &a.details {
            ActionDetails::Stripe {
                payment_intent,
                client_secret,
                payment_method,
                next_action,
                reason,
            } => ActionItem {
                kind: "stripe".into(),
                payment_intent: Some(payment_intent.clone()),
                client_secret: client_secret.clone(),
                payment_method: payment_method.clone(),
                next_action: next_action.as_ref().map(json),
                reason: reason.clone(),
                ..empty
            },
            ActionDetails::Adyen {
                result_code,
                action,
            } => ActionItem {
                kind: "adyen".into(),
                result_code: Some(result_code.clone()),
                action: Some(json(action)),
                ..empty
            },
        }
    }

    fn action(self) -> Result<CustomerAction, String> {
        let json = |text: Option<String>| -> Result<Option<serde_json::Value>, String> {
            text.map(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
                .transpose()
        };
        let details = match self.kind.as_str() {
            "stripe" => ActionDetails::Stripe {
                payment_intent: self
                    .payment_intent
                    .ok_or("a Stripe action without its PaymentIntent")?,
                client_secret: self.client_secret,
                payment_method: self.payment_method,
                next_action: json(self.next_action)?,
                reason: self.reason,
            },
            "adyen" => ActionDetails::Adyen {
                result_code: self.result_code.unwrap_or_default(),
                action: json(self.action)?.unwrap_or_default(),
            },
            other => return Err(format!("customer action of unknown kind `{other}`")),
        };
        Ok(CustomerAction {
            details,
            required_at: self.required_at,
        })
    }
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize)]
struct DisputeItem {
    id: String,
    gateway_ref: String,
    status: DisputeStatus,
    #[serde(default)]
    stage: u8,
    amount: i64,
    reason: Option<String>,
    evidence_due_by: Option<i64>,
    funds_withdrawn: i64,
    funds_reinstated: i64,
    version: u64,
    created_at: i64,
    updated_at: i64,
}

impl DisputeItem {
    fn of(d: &Dispute) -> DisputeItem {
        DisputeItem {
            id: d.id.to_string(),
            gateway_ref: d.gateway_ref.clone(),
            status: d.status,
            stage: d.stage,
            amount: d.amount,
            reason: d.reason.clone(),
            evidence_due_by: d.evidence_due_by,
            funds_withdrawn: d.funds_withdrawn,
            funds_reinstated: d.funds_reinstated,
            version: d.version,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }

    fn dispute(self) -> Result<Dispute, String> {
        Ok(Dispute {
            id: DisputeId::parse(&self.id).map_err(|e| e.to_string())?,
            gateway_ref: self.gateway_ref,
            status: self.status,
            stage: self.stage,
            amount: self.amount,
            reason: self.reason,
            evidence_due_by: self.evidence_due_by,
            funds_withdrawn: self.funds_withdrawn,
            funds_reinstated: self.funds_reinstated,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The stored item of a charge (and of nothing else: no invoice record, no pointers).
pub fn to_item(c: &Charge) -> Result<Item, StoreError> {
    // Work in flight (GSI2): an open outcome by when it last moved; a charge waiting for its
    // customer by when the customer was first asked, so the oldest — the first to expire — come
    // first, however often the gateway repeats its request.
    let in_flight = match c.status {
        ChargeStatus::Pending | ChargeStatus::Processing => Some(c.updated_at),
        ChargeStatus::RequiresAction => Some(
            c.customer_action
                .as_ref()
                .map_or(c.updated_at, |a| a.required_at),
        ),
        _ => None,
    };
    let (gsi2pk, gsi2sk) = (
        in_flight.map(|_| keys::sharded(keys::OPEN_CHARGES, c.id.as_str())),
        in_flight.map(|t| keys::time_ordered(t, c.id.as_str())),
    );
    let (pk, sk) = keys::charge(&c.id);
    let item = ChargeItem {
        pk,
        sk,
        gsi1pk: keys::invoice_gsi1pk(&c.invoice_id),
        gsi1sk: keys::time_ordered(c.created_at, c.id.as_str()),
        id: c.id.to_string(),
        invoice_id: c.invoice_id.clone(),
        amount: c.amount.minor(),
        currency: c.currency().code().to_owned(),
        gateway: c.gateway,
        gateway_ref: c.gateway_ref.clone(),
        status: c.status,
        captured: c.captured,
        refunded: c.refunded,
        refund_reserved: c.refund_reserved,
        failure: c.failure.clone(),
        payment_method: c.payment_method.clone(),
        customer: c.customer.clone(),
        capture: c.capture,
        additional: c.additional,
        description: c.description.clone(),
        metadata: c.metadata.clone(),
        version: c.version,
        created_at: c.created_at,
        updated_at: c.updated_at,
        refundable: c.refundable(),
        status_at: c.status_at,
        disputes: c.disputes.iter().map(DisputeItem::of).collect(),
        customer_action: c.customer_action.as_ref().map(ActionItem::of),
        gsi2pk,
        gsi2sk,
    };
    serde_dynamo::to_item(item)
        .map_err(|e| StoreError::Invalid(format!("charge not serialisable: {e}")))
}

pub(super) fn from_item(item: Item) -> Result<Charge, StoreError> {
    let bad = |what: String| StoreError::Invalid(format!("unreadable charge record: {what}"));
    let i: ChargeItem = serde_dynamo::from_item(item).map_err(|e| bad(e.to_string()))?;
    Ok(Charge {
        id: ChargeId::parse(&i.id).map_err(|e| bad(e.to_string()))?,
        invoice_id: i.invoice_id,
        amount: Money::parse(i.amount, &i.currency).map_err(|e| bad(e.to_string()))?,
        gateway: i.gateway,
        gateway_ref: i.gateway_ref,
        status: i.status,
        captured: i.captured,
        refunded: i.refunded,
        refund_reserved: i.refund_reserved,
        failure: i.failure,
        status_at: i.status_at,
        disputes: (i.disputes.into_iter().map(DisputeItem::dispute))
            .collect::<Result<_, _>>()
            .map_err(bad)?,
        customer_action: i
            .customer_action
            .map(ActionItem::action)
            .transpose()
            .map_err(bad)?,
        payment_method: i.payment_method,
        customer: i.customer,
        capture: i.capture,
        additional: i.additional,
        description: i.description,
        metadata: i.metadata,
        version: i.version,
        created_at: i.created_at,
        updated_at: i.updated_at,
    })
}

/// The invoice record's charge ids and version.
#[derive(Serialize, Deserialize)]
struct InvoiceItem {
    pk: String,
    sk: String,
    charge_ids: Vec<String>,
    version: u64,
}

impl ChargeStore for Table {
    async fn invoice_charges(&self, invoice_id: &str) -> Result<InvoiceCharges, StoreError> {
        let bad = |what: String| StoreError::Invalid(format!("unreadable invoice record: {what}"));
        let mut listed = InvoiceCharges::default();
        if let Some(item) = self.get_at(keys::invoice(invoice_id)).await? {
            let i: InvoiceItem = serde_dynamo::from_item(item).map_err(|e| bad(e.to_string()))?;
            let ids = i.charge_ids.iter().map(|id| ChargeId::parse(id));
            listed.charge_ids = ids
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            listed.version = i.version;
        }
        // Also what the invoice index knows: charges written without the record (by the release
        // before it, during a rollout or after a rollback) are held against the invoice as well,
        // and the next write lists them. The index trails writes by well under a second; the
        // record, read strongly consistent, covers every writer of this release.
        for charge in self.charges_for_invoice(invoice_id).await? {
            if !listed.charge_ids.contains(&charge.id) {
                listed.charge_ids.push(charge.id);
            }
        }
        Ok(listed)
    }

    async fn insert_charge(
        &self,
        charge: &Charge,
        seen: &InvoiceCharges,
    ) -> Result<ChargeInserted, StoreError> {
        let (pk, sk) = keys::invoice(&charge.invoice_id);
        let mut charge_ids: Vec<String> = seen.charge_ids.iter().map(|c| c.to_string()).collect();
        charge_ids.push(charge.id.to_string());
        let invoice = InvoiceItem {
            pk,
            sk,
            charge_ids,
            version: seen.version + 1,
        };
        let invoice = serde_dynamo::to_item(invoice)
            .map_err(|e| StoreError::Invalid(format!("invoice not serialisable: {e}")))?;
        let listed = match seen.version {
            0 => Write::PutNew(invoice),
            v => Write::PutAtVersion(invoice, v),
        };
        match self
            .transact(vec![Write::PutNew(to_item(charge)?), listed])
            .await
        {
            Ok(()) => Ok(ChargeInserted::Done),
            Err(TableError::ConditionFailed { failed, .. }) if failed.contains(&0) => {
                Ok(ChargeInserted::Exists)
            }
            Err(TableError::ConditionFailed { .. }) => Ok(ChargeInserted::InvoiceMoved),
            // Another transaction on the invoice record at the same moment: read it again.
            Err(TableError::Contended(_)) => Ok(ChargeInserted::InvoiceMoved),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_charge(&self, id: &ChargeId) -> Result<Option<Charge>, StoreError> {
        self.get_at(keys::charge(id))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn save_charge(
        &self,
        charge: &Charge,
        notifications: &[Notification],
    ) -> Result<(), StoreError> {
        let expected = charge
            .version
            .checked_sub(1)
            .ok_or_else(|| StoreError::Invalid("charge version 0 cannot be saved".into()))?;
        let mut writes = vec![Write::PutAtVersion(to_item(charge)?, expected)];
        if let Some(reference) = charge.gateway_ref.as_deref().filter(|r| !r.is_empty()) {
            writes.push(gateway_refs::pointer(
                charge.gateway,
                reference,
                &GatewayObject::Charge(charge.id.clone()),
            ));
        }
        // The lookup by dispute id, with the save that adds the dispute (at its version 1; an
        // idempotent put, so a later save of a still-unchanged dispute may repeat it harmlessly).
        for d in charge.disputes.iter().filter(|d| d.version == 1) {
            writes.push(Write::Put(pointer_item(
                keys::dispute_pointer(&d.id),
                &[("charge_id", charge.id.as_str())],
            )));
        }
        writes.extend(outbox::writes(notifications)?);
        if writes.len() == 1 {
            let Some(Write::PutAtVersion(item, expected)) = writes.pop() else {
                unreachable!()
            };
            return self
                .put_at_version(item, expected)
                .await
                .map_err(StoreError::from);
        }
        self.transact(writes).await.map_err(StoreError::from)
    }

    async fn charge_of_dispute(&self, id: &DisputeId) -> Result<Option<Charge>, StoreError> {
        (self
            .through_pointer(keys::dispute_pointer(id), keys::charge)
            .await?)
            .map(from_item)
            .transpose()
    }

    async fn charges_for_invoice(&self, invoice_id: &str) -> Result<Vec<Charge>, StoreError> {
        let partition = keys::invoice_gsi1pk(invoice_id);
        // As many pages as it takes to read 1000 charges (the last page kept whole).
        let paging = Paging::AtLeast(1000);
        let items = (self.query_partition(Index::Gsi1, partition, SortRange::All, paging)).await?;
        let is_charge =
            |i: &Item| i.get("sk").and_then(|v| v.as_s().ok()) == Some(&keys::CHARGE_SK.to_owned());
        items.into_iter().filter(is_charge).map(from_item).collect()
    }
}
