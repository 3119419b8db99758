//! Test objects built from the domain's own constructors, so a test names only what it cares
//! about and a new field of `Charge` is added in one place.

use paybridge::domain::{Charge, ChargeId, Gateway, Money};

use crate::unique;

/// A pending 19.99 EUR charge through `gateway` for a fresh invoice, paid with `pm_card_visa`,
/// captured at once, created at `now` (set other fields with struct update syntax).
pub fn pending_charge(gateway: Gateway, now: i64) -> Charge {
    Charge::pending(
        ChargeId::generate(),
        unique("inv_"),
        Money::parse(1999, "eur").expect("a valid amount"),
        gateway,
        "pm_card_visa",
        now,
    )
}

/// Stores a new charge and lists it on its invoice, as `POST /charges` does; panics unless it
/// was stored. `Exists` with our own record is an SDK retry of a transaction that had taken
/// effect (moto does not honour the transaction's `ClientRequestToken` as DynamoDB does).
pub async fn store_charge(
    store: &impl paybridge::ports::ChargeStore,
    charge: &Charge,
) -> Result<(), paybridge::ports::StoreError> {
    use paybridge::ports::ChargeInserted;
    let seen = store.invoice_charges(&charge.invoice_id).await?;
    match store.insert_charge(charge, &seen).await? {
        ChargeInserted::Done => {}
        ChargeInserted::Exists => {
            let stored = store.get_charge(&charge.id).await?;
            assert_eq!(stored.as_ref(), Some(charge), "charge {} exists", charge.id);
            let listed = store.invoice_charges(&charge.invoice_id).await?;
            assert!(
                listed.charge_ids.contains(&charge.id),
                "listed on its invoice"
            );
        }
        ChargeInserted::InvoiceMoved => panic!("invoice of {} moved", charge.id),
    }
    Ok(())
}

/// Writes a charge's item alone — one `PutItem`, no invoice record (the invoice index still
/// finds it) — for tests that seed thousands of charges and are not about creating them.
pub async fn seed_charge(
    table: &paybridge::adapters::dynamodb::Table,
    charge: &Charge,
) -> Result<(), paybridge::ports::StoreError> {
    let item = paybridge::adapters::dynamodb::charges::to_item(charge)?;
    table.put_new(item).await.map_err(Into::into)
}
